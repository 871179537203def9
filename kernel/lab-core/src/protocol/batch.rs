//! The shared half of batched invalidation (DragonFly's pmap_inval_info;
//! the kernel's glue and the provenance are in
//! kernel/src/mm/shootdown/dfly_batch.rs): each CPU's published list of
//! the VAs its current List request names.
//!
//! # Shared state ([`Published`])
//!
//! Per CPU, up to [`MAXPIR`] VAs and how many were last published. A List
//! request (the kernel's `Request::List { cpu, n }`) carries only the
//! publishing CPU and a count; the targets find the VAs here.
//!
//! # Why it needs no lock
//!
//! - One writer: CPU `cpu`'s list is written only by CPU `cpu`, from
//!   thread context ([`Published::publish`]). An IPI handler that
//!   interrupts the write serves other CPUs' requests and so reads only
//!   their lists, never the one being written.
//! - No reader while it is written: the writer publishes only after its
//!   previous shootdown was waited for, so every target of that request
//!   has already read (copied out) the old list; no target is reading it.
//! - Readers only while serving: a target reads a list only while it
//!   serves the request naming it, which the protocol delivers after the
//!   publication (the protocol's release on posting and the target's
//!   acquire on claiming order the two, besides the release stores here),
//!   and the list stays put until the initiator's wait returns, which is
//!   after every target has read it.
//!
//! The entries and then the length are stored with release and read with
//! acquire, the orderings the kernel used before this moved here; the
//! protocol's post (release) and claim (acquire) would order them as well.

use crate::cpuset::MAX_CPUS;

use super::sync::{AtomicU64, Ordering};
use super::{Cpu, Window};

/// DragonFly's MAXPIR: VAs a batch records before it becomes a full flush,
/// and so the most a list holds.
pub const MAXPIR: usize = 16;

/// Every CPU's published list, for up to `CPUS` CPUs (the kernel's static
/// is [`MAX_CPUS`]; the model checker's a few).
pub struct Published<const CPUS: usize = MAX_CPUS> {
    vas: [[AtomicU64; MAXPIR]; CPUS],
    /// How many VAs each CPU last published: what its batch recorded, even
    /// where its request names fewer.
    len: [AtomicU64; CPUS],
}

impl<const CPUS: usize> Published<CPUS> {
    #[cfg(not(loom))]
    pub const fn new() -> Published<CPUS> {
        Published {
            vas: [const { [const { AtomicU64::new(0) }; MAXPIR] }; CPUS],
            len: [const { AtomicU64::new(0) }; CPUS],
        }
    }

    #[cfg(loom)]
    pub fn new() -> Published<CPUS> {
        Published {
            vas: core::array::from_fn(|_| core::array::from_fn(|_| AtomicU64::new(0))),
            len: core::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Publishes `vas` (at most [`MAXPIR`]) as `cpu`'s list: the entries,
    /// then the length. Only on `cpu` itself, and only once its previous
    /// shootdown was waited for (see the module comment); the caller then
    /// posts the request naming them.
    pub fn publish(&self, cpu: &impl Cpu, vas: &[u64]) {
        let me = cpu.id() as usize;
        debug_assert!(vas.len() <= MAXPIR);
        for (w, &va) in self.vas[me].iter().zip(vas) {
            w.store(va, Ordering::Release);
        }
        self.len[me].store(vas.len() as u64, Ordering::Release);
        cpu.interruptible(Window::BatchPublished);
    }

    /// How many VAs CPU `cpu` last published (at most [`MAXPIR`]).
    pub fn len(&self, cpu: u32) -> usize {
        self.len[cpu as usize].load(Ordering::Acquire) as usize
    }

    /// Whether CPU `cpu` last published nothing.
    pub fn is_empty(&self, cpu: u32) -> bool {
        self.len(cpu) == 0
    }

    /// Copies the first `out.len()` VAs CPU `cpu` published into `out`.
    pub fn read(&self, cpu: u32, out: &mut [u64]) {
        for (o, w) in out.iter_mut().zip(&self.vas[cpu as usize]) {
            *o = w.load(Ordering::Acquire);
        }
    }
}

impl<const CPUS: usize> Default for Published<CPUS> {
    fn default() -> Published<CPUS> {
        Published::new()
    }
}
