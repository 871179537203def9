//! Batched invalidation, as DragonFly's pmap_inval_info (seeds 001, 002),
//! used by the pmap's range operations in the `dfly-batch` variant.
//!
//! # Provenance
//!
//! Seed 001 (Matthew Dillon, 2004, the API DragonFly's
//! sys/platform/pc64/x86_64/pmap_inval.c grew from): `struct
//! pmap_inval_info` records up to `MAXPIR` = 16 VAs, `pir_npages` becomes
//! MAXPIR + 1 (a full invltlb) beyond that; `pmap_inval_add(info, pmap,
//! va)` records a VA whose entry changed, `pmap_inval_flush(info)` makes
//! every CPU in `pm_active` invalidate everything recorded, and returns when
//! they have (synchronous, the CMU Mach algorithm). Seed 002 (DragonFly
//! commit e3c330f0, 2019, "Optimize single-threaded access to pmaps to
//! avoid pmap_inval_*()"): when the pmap is active only on the calling CPU,
//! invalidate with plain instructions and skip the machinery.
//!
//! # Here
//!
//! [`PmapInval::add`] only records (2004's add also pulled the targets
//! into a rendezvous at once, so the PTEs could be changed while they
//! spun; here the caller holds the pmap lock and changes entries first,
//! then flushes: one IPI round per flush, as DragonFly does today with its
//! per-CPU command blocks). [`PmapInval::flush`]:
//! - nothing recorded: nothing to do (no call, no IPI);
//! - no other CPU can cache the pmap (kernel pmap on one CPU, or a user
//!   pmap whose `pm_cpus` holds at most this CPU): invalidate here if the
//!   pmap is loaded, count `shoot.local_only`, and stop (seed 002; a pmap
//!   active nowhere is treated the same way, since nobody needs an IPI);
//! - else one shootdown through the compiled-in protocol to the pmap's
//!   CPUs: one VA as a shootpage, 2..=16 VAs as a [`Request::List`] on the
//!   ShootRange vector (counted as a shootrange), more as a full flush on
//!   the ShootTlb vector (counted as a shoottlb) but only to the pmap's
//!   CPUs (OpenBSD 2010's shoottlb interrupts every CPU), and waits.
//!
//! # Shared state
//!
//! `PUBLISHED[cpu]`: the VAs of CPU `cpu`'s current List request. Written
//! only by that CPU in `flush`, after its previous shootdown was waited
//! for, and before the request goes out; read by targets while they serve
//! it (the protocol's publication orders the two). It stays put until the
//! flush's shootwait returns, which is after every target has read it.
//!
//! # Interrupts
//!
//! A flush runs with its caller's interrupts (on, from syscalls and
//! faults), through the compiled-in protocol (see its Interrupts section).
//! `PUBLISHED[cpu]` is written only from thread context on that CPU; the
//! handler that may interrupt the write serves other CPUs' requests and
//! reads only their arrays. The kernel is not preempted, so the flush
//! cannot migrate between publishing and waiting.

use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::VirtAddr;

use super::{pmap_tlb_shootwait, shoot, targets, Request};
use crate::arch;
use crate::mm::pmap::Pmap;
use crate::stats::{self, Event, MAX_CPUS};

/// DragonFly's MAXPIR: VAs recorded before a flush becomes a full flush.
pub const MAXPIR: usize = 16;

static PUBLISHED: [[AtomicU64; MAXPIR]; MAX_CPUS] =
    [const { [const { AtomicU64::new(0) }; MAXPIR] }; MAX_CPUS];

/// How many VAs CPU `cpu` last published: what its batch recorded, even
/// where its request names fewer (the memory-system model's claim of what
/// the shootdown covers; mm::shootdown::tell_model_settled).
static PUBLISHED_LEN: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// How many VAs CPU `cpu` last published (at most MAXPIR).
pub fn published_len(cpu: u32) -> usize {
    PUBLISHED_LEN[cpu as usize].load(Ordering::Acquire) as usize
}

/// Copies the first `out.len()` VAs CPU `cpu` published into `out`.
pub fn read_published(cpu: u32, out: &mut [u64]) {
    for (o, w) in out.iter_mut().zip(&PUBLISHED[cpu as usize]) {
        *o = w.load(Ordering::Acquire);
    }
}

/// `struct pmap_inval_info`: the invalidations one pmap operation owes.
pub struct PmapInval {
    vas: [u64; MAXPIR],
    /// VAs recorded; MAXPIR + 1 once there were too many (a full flush).
    npages: usize,
}

impl PmapInval {
    /// An empty batch (DragonFly's pmap_inval_init: no IPI).
    pub const fn new() -> PmapInval {
        PmapInval {
            vas: [0; MAXPIR],
            npages: 0,
        }
    }

    /// Records that the entry for `va` changed (pmap_inval_add).
    pub fn add(&mut self, va: u64) {
        if self.npages < MAXPIR {
            self.vas[self.npages] = va;
            self.npages += 1;
        } else {
            self.npages = MAXPIR + 1;
        }
    }

    /// VAs recorded (MAXPIR + 1: more than MAXPIR).
    pub fn count(&self) -> usize {
        self.npages
    }

    /// Invalidates everything recorded on every CPU that may cache `pm`,
    /// in one IPI round, and returns when they all have (pmap_inval_flush;
    /// see the module comment). Leaves the batch empty. Not from
    /// interrupt context.
    #[cfg_attr(not(feature = "dfly-batch"), allow(dead_code))]
    pub fn flush(&mut self, pm: &Pmap) {
        let n = self.count();
        self.npages = 0;
        if n == 0 {
            return;
        }
        let targets = targets(pm);
        if targets.is_empty() {
            // Seed 002: nobody else can cache it; plain local invalidation.
            stats::count(Event::ShootLocalOnly);
            if pm.is_loaded_here() {
                if n > MAXPIR {
                    super::flush_all();
                } else {
                    self.vas[..n]
                        .iter()
                        .for_each(|&va| crate::arch::model_hint::invlpg(VirtAddr::new(va)));
                }
            }
            return;
        }
        let req = match n {
            1 => Request::Page(VirtAddr::new(self.vas[0])),
            n if n > MAXPIR => Request::Tlb,
            n => {
                // Our previous request may still name PUBLISHED: wait for it.
                pmap_tlb_shootwait();
                let me = arch::cpu_id();
                for (w, &va) in PUBLISHED[me as usize].iter().zip(&self.vas[..n]) {
                    w.store(va, Ordering::Release);
                }
                PUBLISHED_LEN[me as usize].store(n as u64, Ordering::Release);
                crate::arch::chaos::point(crate::arch::chaos::Point::BatchPublished);
                // Mutant `mutant-dfly-truncate`: the list reaches the targets
                // truncated to its first address (a count lost on the way);
                // the others stay cached there.
                let n = if cfg!(feature = "mutant-dfly-truncate") {
                    1
                } else {
                    n
                };
                Request::List {
                    cpu: me,
                    n: n as u32,
                }
            }
        };
        shoot(req, targets, pm.is_loaded_here(), Some(pm));
        pmap_tlb_shootwait();
    }
}
