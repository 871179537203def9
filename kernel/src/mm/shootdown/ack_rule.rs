//! When a target may acknowledge a request: before its invalidation, or
//! only after ([`AckRule`]), decided per shootdown from the pmap and from
//! whether the operation frees page-table pages after its wait.

use core::sync::atomic::Ordering;

use super::super::pmap::Pmap;
use crate::arch;
use crate::stats::MAX_CPUS;

/// When a target may acknowledge a request relative to invalidating it.
///
/// The initiator reuses what the old entries pointed at as soon as every
/// target has acknowledged. On x86 a target acknowledging from its IPI
/// handler (or from a spin loop's poll) cannot resume the code it
/// interrupted before the handler has invalidated, so an acknowledgement
/// before the invalidation is invisible to any architectural access; what
/// can still use the old entry is the hardware itself: a speculative walk
/// through a paging-structure cache into a page-table page the initiator
/// has freed and reused (Intel SDM vol. 3, 4.10.3; Linux sends lazy-TLB
/// CPUs IPIs only for freed tables for this reason). So a request may be
/// acknowledged early, or its invalidation deferred, only when it changes
/// user entries and frees no page-table page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckRule {
    /// Invalidate, then acknowledge: kernel-pmap requests, and any request
    /// whose operation frees page-table pages after the wait.
    AfterInvalidate,
    /// A user-pmap request that frees no page-table page: the target may
    /// acknowledge first (`early-ack`) or, in the kernel, defer the
    /// invalidation to its return to user mode (`in-context-flush`).
    MayPrecede,
}

/// Per CPU: the pmap operation in progress here frees page-table pages
/// after its shootdown (set by mm::pmap around the shootdown, see
/// [`tables_freed`]).
static FREES_TABLES: [core::sync::atomic::AtomicBool; MAX_CPUS] =
    [const { core::sync::atomic::AtomicBool::new(false) }; MAX_CPUS];

/// Marks this CPU's shootdowns, until the guard drops, as freeing
/// page-table pages after the wait if `frees` (mm::pmap's pmap_remove and
/// pmap_remove_pages, whose emptied PTPs are freed after
/// pmap_tlb_shootwait): such requests are [`AckRule::AfterInvalidate`].
#[must_use = "the mark holds only while the guard lives"]
pub fn tables_freed(frees: bool) -> TablesFreed {
    let me = arch::cpu_id() as usize;
    let prev = FREES_TABLES[me].swap(frees, Ordering::Relaxed);
    TablesFreed { prev }
}

/// Restores the previous mark when dropped (see [`tables_freed`]).
pub struct TablesFreed {
    prev: bool,
}

impl Drop for TablesFreed {
    fn drop(&mut self) {
        FREES_TABLES[arch::cpu_id() as usize].store(self.prev, Ordering::Relaxed);
    }
}

/// The rule for a shootdown of `pm` (None: no pmap, the kernel's or
/// OpenBSD's pmap-less shoottlb) from this CPU now.
pub(super) fn ack_rule(pm: Option<&Pmap>) -> AckRule {
    let user = pm.is_some_and(|pm| !pm.is_kernel());
    if user && !FREES_TABLES[arch::cpu_id() as usize].load(Ordering::Relaxed) {
        AckRule::MayPrecede
    } else {
        AckRule::AfterInvalidate
    }
}

/// Whether the pmap operation in progress on this CPU frees page-table
/// pages after its shootdown ([`tables_freed`]).
pub(super) fn frees_tables_here() -> bool {
    FREES_TABLES[arch::cpu_id() as usize].load(Ordering::Relaxed)
}
