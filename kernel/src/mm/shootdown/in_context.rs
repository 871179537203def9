//! In-context flushes: user-address invalidations a CPU has acknowledged
//! but deferred to its next return to user mode (feature
//! `in-context-flush`; Amit, Tai, Wei, "Don't shoot down TLB
//! shootdowns!", EuroSys 2020, in-context flushes).
//!
//! # Why it is safe here, and when
//!
//! A CPU interrupted in the kernel with a user pmap loaded uses that
//! pmap's user entries only once it is back in user mode: this kernel
//! reaches user memory through the direct map (proc::vm's user_pages),
//! never through user virtual addresses. So an invalidation of user
//! entries can wait until the CPU returns to user mode, provided
//! - it is applied before *any* return to user mode on this CPU (the
//!   thread that returns may be another thread of the same process, with
//!   the same tables and no CR3 reload between): [`apply`] runs in
//!   proc::return_to_user, the one way back to user mode, with interrupts
//!   off, after the last point at which this CPU could serve a request;
//! - the request is a user pmap's and frees no page-table page
//!   (`AckRule::MayPrecede`): a kernel entry is used by the kernel at
//!   once, and a freed page table may be walked speculatively through the
//!   paging-structure caches until invalidated.
//!
//! The paper defers the flush of the user PCID of a PTI kernel to the
//! kernel's exit to user mode, where it switches CR3 anyway; there the
//! kernel's own PCID keeps user mappings and is flushed at once. Without
//! PTI or PCID here, the deferred work is the INVLPGs themselves: they
//! move off the initiator's critical path to the target's exit.
//!
//! # State
//!
//! Per CPU, a lab_core::protocol::deferral::Deferred (up to
//! [`MAX_DEFERRED`] page addresses, beyond that a full flush), touched
//! only by that CPU with interrupts off: the IPI handler, a spin loop's
//! poll (which turns them off to serve, see global_slot.rs) and the return
//! to user mode.

use lab_core::protocol::deferral::{Deferred, MAX_DEFERRED};
use lab_core::shoot::{plan_range, Flush};
use x86_64::VirtAddr;

use super::{flush_all, Invalidation, Request, ThisCpu};
use crate::arch;
use crate::stats::{self, Event, MAX_CPUS};

static DEFERRED: [Deferred; MAX_CPUS] = [const { Deferred::new() }; MAX_CPUS];

/// Records `inv` (already acknowledged) for this CPU's next return to user
/// mode. Interrupts off.
#[cfg_attr(feature = "scoreboard", allow(dead_code))] // the global slot's only
pub fn defer(inv: &Invalidation) {
    let deferred = &DEFERRED[arch::cpu_id() as usize];
    stats::count(Event::ShootDeferred);
    let push = |va: u64| deferred.push(&ThisCpu, va);
    match inv.req {
        Request::Page(va) => push(va.as_u64()),
        Request::Range(s, e) => match plan_range(s.as_u64(), e.as_u64()) {
            pages @ Flush::Pages { count, .. } if count <= MAX_DEFERRED as u64 => {
                pages.pages().for_each(push)
            }
            _ => deferred.push_all(),
        },
        Request::List { n, .. } => inv.vas[..n as usize].iter().for_each(|&va| push(va)),
        Request::Tlb => deferred.push_all(),
    }
}

#[cfg_attr(not(feature = "in-context-flush"), allow(dead_code))]
/// Carries out this CPU's deferred invalidations. Called on the way back
/// to user mode with interrupts off; a no-op when nothing is deferred.
pub fn apply() {
    let applied = DEFERRED[arch::cpu_id() as usize]
        .take(|va| arch::model_hint::invlpg(VirtAddr::new(va)), flush_all);
    if applied {
        stats::count(Event::ShootDeferredApplied);
    }
}
