//! The invalidations a CPU has acknowledged but deferred to its next
//! return to user mode (`in-context-flush`; Amit, Tai, Wei, "Don't shoot
//! down TLB shootdowns!", EuroSys 2020, in-context flushes). Why deferring
//! is safe, and when, is in kernel/src/mm/shootdown/in_context.rs.
//!
//! One [`Deferred`] per CPU, touched only by that CPU, and only with
//! interrupts off: a push is a read of the length, a store of the entry
//! and a store of the new length, so a push interrupted by the IPI handler
//! whose own push lands in between would lose one of the two entries. The
//! IPI handler runs with interrupts off; every other caller must turn them
//! off (global_slot's [`PollIrqs::Off`](super::global_slot::PollIrqs)).

use super::sync::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use super::{Cpu, Window};

/// Page addresses kept per CPU before a deferral becomes a full flush.
pub const MAX_DEFERRED: usize = 16;

/// One CPU's deferred invalidations: up to [`MAX_DEFERRED`] page
/// addresses, beyond that a flag that makes [`Deferred::take`] flush the
/// whole TLB.
pub struct Deferred {
    vas: [AtomicU64; MAX_DEFERRED],
    count: AtomicUsize,
    all: AtomicBool,
}

impl Deferred {
    #[cfg(not(loom))]
    pub const fn new() -> Deferred {
        Deferred {
            vas: [const { AtomicU64::new(0) }; MAX_DEFERRED],
            count: AtomicUsize::new(0),
            all: AtomicBool::new(false),
        }
    }

    #[cfg(loom)]
    pub fn new() -> Deferred {
        Deferred {
            vas: core::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicUsize::new(0),
            all: AtomicBool::new(false),
        }
    }

    /// Records the page at `va` for the next return to user mode.
    pub fn push(&self, cpu: &impl Cpu, va: u64) {
        let n = self.count.load(Ordering::Relaxed);
        cpu.interruptible(Window::DeferPush);
        if n < MAX_DEFERRED {
            self.vas[n].store(va, Ordering::Relaxed);
            self.count.store(n + 1, Ordering::Relaxed);
        } else {
            self.all.store(true, Ordering::Relaxed);
        }
    }

    /// Records a flush of the whole TLB for the next return to user mode.
    pub fn push_all(&self) {
        self.all.store(true, Ordering::Relaxed);
    }

    /// Carries out and forgets what was deferred: `invalidate` for each
    /// page, or `flush_all` once if the list overflowed or a full flush was
    /// deferred. False if nothing was deferred.
    pub fn take(&self, mut invalidate: impl FnMut(u64), flush_all: impl FnOnce()) -> bool {
        let n = self.count.load(Ordering::Relaxed);
        let all = self.all.load(Ordering::Relaxed);
        if n == 0 && !all {
            return false;
        }
        if all {
            flush_all();
        } else {
            self.vas[..n]
                .iter()
                .for_each(|va| invalidate(va.load(Ordering::Relaxed)));
        }
        self.count.store(0, Ordering::Relaxed);
        self.all.store(false, Ordering::Relaxed);
        true
    }
}

impl Default for Deferred {
    fn default() -> Deferred {
        Deferred::new()
    }
}
