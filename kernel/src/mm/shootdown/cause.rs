//! The cause of the shootdowns this CPU sends (lab_core::cause).
//!
//! A pmap-level operation that may shoot down starts under a [`Cause`]
//! guard (`let _cause = cause::set(ShootCause::Munmap);` in proc::vm and
//! the kernel workloads); [`super::shoot`] reads [`current`] and counts the
//! call, its IPIs and, at pmap_tlb_shootwait, its acknowledgement wait
//! under that cause. The guard restores the cause it replaced when dropped,
//! so guards nest (the innermost wins) and nothing leaks past the
//! operation; with no guard the cause is `other`.
//!
//! Per CPU, no lock: the kernel is not preempted, so an operation runs to
//! its end on the CPU that set its cause, and interrupt handlers never
//! initiate shootdowns (the IPI handlers only invalidate and acknowledge,
//! the timer only counts and kicks the scheduler, and pmap functions may
//! not be called from interrupt context: mm::pmap's Locking section). The
//! page-fault handler runs in the faulting thread's context and sets its
//! own cause (proc::vm's resolve).

use core::sync::atomic::{AtomicU8, Ordering};

use lab_core::cause::ShootCause;

use crate::arch;
use crate::stats::MAX_CPUS;

/// Per CPU: the cause in force (`ShootCause as u8`).
static CURRENT: [AtomicU8; MAX_CPUS] = [const { AtomicU8::new(0) }; MAX_CPUS];

/// Sets this CPU's cause until the returned guard is dropped.
#[must_use = "the cause holds only while the guard lives"]
pub fn set(cause: ShootCause) -> Cause {
    let me = arch::cpu_id() as usize;
    let prev = CURRENT[me].swap(cause as u8, Ordering::Relaxed);
    Cause { prev }
}

/// The cause in force on this CPU.
pub fn current() -> ShootCause {
    ShootCause::from_index(CURRENT[arch::cpu_id() as usize].load(Ordering::Relaxed) as usize)
}

/// Restores the previous cause when dropped (see [`set`]).
pub struct Cause {
    prev: u8,
}

impl Drop for Cause {
    fn drop(&mut self) {
        CURRENT[arch::cpu_id() as usize].store(self.prev, Ordering::Relaxed);
    }
}
