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
//! `PUBLISHED`: per CPU, the VAs of its current List request, and how
//! many its batch recorded. The list and why it needs no lock (one
//! writer, which publishes only after its previous shootdown was waited
//! for; readers only while serving the request naming it) are the core's:
//! lab_core::protocol::batch.
//!
//! # Interrupts
//!
//! A flush runs with its caller's interrupts (on, from syscalls and
//! faults), through the compiled-in protocol (see its Interrupts section).
//! A CPU's list in `PUBLISHED` is written only from thread context on
//! that CPU; the handler that may interrupt the write serves other CPUs'
//! requests and reads only their lists. The kernel is not preempted, so
//! the flush cannot migrate between publishing and waiting.

use lab_core::protocol::batch::Published;
use x86_64::VirtAddr;

use super::{pmap_tlb_shootwait, shoot, targets, Request, ThisCpu};
use crate::arch;
use crate::mm::pmap::Pmap;
use crate::stats::{self, Event};

/// DragonFly's MAXPIR: VAs recorded before a flush becomes a full flush.
pub use lab_core::protocol::batch::MAXPIR;

/// Every CPU's published list (lab_core::protocol::batch).
static PUBLISHED: Published = Published::new();

/// How many VAs CPU `cpu` last published (at most MAXPIR): what its batch
/// recorded, even where its request names fewer (the memory-system
/// model's claim of what the shootdown covers;
/// mm::shootdown::tell_model_settled).
pub fn published_len(cpu: u32) -> usize {
    PUBLISHED.len(cpu)
}

/// Copies the first `out.len()` VAs CPU `cpu` published into `out`.
pub fn read_published(cpu: u32, out: &mut [u64]) {
    PUBLISHED.read(cpu, out)
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
                // Chaos point BatchPublished inside (ThisCpu's window).
                PUBLISHED.publish(&ThisCpu, &self.vas[..n]);
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
