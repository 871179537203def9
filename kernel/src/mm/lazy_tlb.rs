//! Lazy TLB (feature `lazy-tlb`), as Linux does it (arch/x86/mm/tlb.c:
//! enter_lazy_tlb, switch_mm_irqs_off, and the shootdown's
//! should_flush_tlb / tlb_is_not_lazy).
//!
//! # The idea
//!
//! A CPU that switches from a user thread to its idle thread (or a kernel
//! thread) has no use for user mappings, but loading the kernel's tables
//! flushes its TLB, and switching back to the same process flushes it
//! again. In lazy mode the CPU keeps the user pmap loaded and its bit in
//! `pm_cpus`; if the next thread is of the same process, no CR3 load is
//! needed (proc::sched's switch_pmap).
//!
//! # Shootdowns (Linux since 4.19: only freed page tables reach lazy CPUs)
//!
//! A lazy CPU runs no user code, so a shootdown of its pmap can skip it
//! ([`skip_lazy`]) and leave it a note to flush the whole TLB when it
//! returns to that pmap ([`leave`]); Linux compares the mm's `tlb_gen`
//! with the CPU's instead. A shootdown whose operation frees page-table
//! pages is not skipped: the lazy CPU's paging-structure caches may still
//! walk them speculatively (Intel SDM vol. 3, 4.10.3), which is why
//! Linux sends lazy CPUs the IPIs of flushes with `freed_tables`.
//!
//! The skip and the return race; the order makes one side see the other
//! (both sides store, then load, all SeqCst): the initiator sets the
//! CPU's note, then reads its lazy mark again and sends the IPI after all if the
//! CPU has left; the CPU clears the mark, then takes the note. So either the
//! initiator sees the CPU gone and interrupts it, or the CPU sees the note
//! and flushes (or both, which costs a flush).
//!
//! # Freeing a pmap
//!
//! A lazy CPU has the pmap's PML4 in CR3, so before the pmap is freed its
//! last user (exit, exec) makes every lazy holder drop it
//! ([`request_evict`] and a sync IPI; the holder runs proc::sched's
//! `serve_evict` from its Other vector). Linux instead counts lazy users
//! in `mm_count` and frees the mm when the last switches away.
//!
//! # State
//!
//! Per CPU: its lab_core::protocol::lazy_tlb::LazyCpu (the pmap it holds
//! lazily, written only by that CPU with interrupts off, and the note set
//! by initiators and taken by that CPU); `EVICT`, a pmap its holder must
//! drop.

use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};

use lab_core::cpuset::CpuSet;
use lab_core::protocol::lazy_tlb::{skip, LazyCpu, SkipRule};

use super::pmap::Pmap;
use super::shootdown::ThisCpu;
use crate::stats::{self, Event, MAX_CPUS};

/// Per CPU: its lazy state, the handshake's core
/// (lab_core::protocol::lazy_tlb, model-checked on the host); the pmap is
/// named by its address.
static CPUS: [LazyCpu; MAX_CPUS] = [const { LazyCpu::new() }; MAX_CPUS];
static EVICT: [AtomicPtr<Pmap>; MAX_CPUS] = [const { AtomicPtr::new(ptr::null_mut()) }; MAX_CPUS];

/// Which shootdowns skip a lazy CPU.
const SKIP_RULE: SkipRule = if cfg!(feature = "mutant-lazy-skip-freed-tables") {
    // Mutant `mutant-lazy-skip-freed-tables`: lazy CPUs skipped even when
    // page-table pages are freed, which their paging-structure caches may
    // still walk.
    SkipRule::Always
} else {
    SkipRule::UnlessTablesFreed
};

fn token(pm: *const Pmap) -> u64 {
    pm as u64
}

/// The pmap CPU `cpu` holds lazily, or null.
pub fn held_by(cpu: usize) -> *const Pmap {
    CPUS[cpu].held() as *const Pmap
}

/// CPU `cpu` (this one, interrupts off) switches to a thread without
/// user mappings, keeping `pm` loaded.
pub fn enter(cpu: usize, pm: *const Pmap) {
    CPUS[cpu].enter(token(pm));
    stats::count(Event::LazyEnters);
}

/// CPU `cpu` (this one, interrupts off) leaves lazy mode; true if a
/// shootdown skipped it meanwhile, so the pmap it kept must be flushed
/// before it is used again.
pub fn leave(cpu: usize) -> bool {
    CPUS[cpu].leave()
}

/// `targets` of a shootdown of `pm`, without the CPUs that hold `pm`
/// lazily (each left a note to flush), unless the operation frees page
/// tables. The kernel pmap's shootdowns are never filtered.
pub fn skip_lazy(pm: &Pmap, targets: CpuSet, frees_tables: bool) -> CpuSet {
    if pm.is_kernel() {
        return targets;
    }
    let mut kept = targets;
    for cpu in targets.iter() {
        if skip(
            &ThisCpu,
            &CPUS[cpu as usize],
            token(pm),
            frees_tables,
            SKIP_RULE,
        ) {
            kept = kept.without(cpu);
            stats::count(Event::LazySkipped);
        }
    }
    kept
}

/// Asks CPU `cpu` to drop `pm` if it holds it lazily; the caller then
/// cross-calls it (arch::ipi::sync), whose Other handler serves the
/// request.
pub fn request_evict(cpu: usize, pm: &Pmap) {
    EVICT[cpu].store(ptr::from_ref(pm).cast_mut(), Ordering::SeqCst);
}

/// Takes this CPU's eviction request: the pmap to drop, if it is still
/// the one held lazily here. Interrupts off.
pub fn take_evict(cpu: usize) -> Option<*const Pmap> {
    let pm = EVICT[cpu].swap(ptr::null_mut(), Ordering::SeqCst);
    (!pm.is_null() && ptr::eq(held_by(cpu), pm)).then_some(pm.cast_const())
}
