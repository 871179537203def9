//! Lazy TLB (feature `lazy-tlb`), as Linux builds it (arch/x86/mm/tlb.c
//! since 4.20: enter_lazy_tlb, switch_mm_irqs_off, flush_tlb_func,
//! should_flush_tlb). Every call here does nothing without the feature,
//! so proc::sched and mm::shootdown call it unconditionally.
//!
//! # The idea
//!
//! A CPU that switches from a user thread to its idle thread (or a kernel
//! thread) has no use for user mappings, but loading the kernel's tables
//! flushes its TLB, and switching back to the same process flushes it
//! again. In lazy mode the CPU keeps the user pmap loaded and its bit in
//! `pm_cpus` ([`keep_on_switch`]); if the next thread is of the same
//! process, no CR3 load is needed.
//!
//! # Shootdowns: generations (lab_core::protocol::lazy_tlb)
//!
//! A lazy CPU runs no user code, so a shootdown of its pmap skips it
//! ([`skip_lazy`]) unless the operation frees page-table pages: the lazy
//! CPU's paging-structure caches may still walk those speculatively
//! (Intel SDM vol. 3, 4.10.3), which is why Linux sends lazy CPUs the
//! IPIs of flushes with `freed_tables`. A skipped CPU is told nothing:
//! each shootdown bumps the pmap's generation (`pm_tlb_gen`, the
//! lab_core::protocol::pcid::TlbGen that `pcid` uses too), each CPU
//! records the generation its TLB is current to, and a lazy CPU returning
//! to its pmap flushes only if it is behind (a catch-up flush). The
//! generation is bumped where the lazy marks are read, after `pm_cpus`
//! was (Linux bumps before it reads mm_cpumask, for its PCID switches): a
//! CPU loading the pmap in between records an older generation than its
//! fresh TLB deserves, which costs at most one needless catch-up flush.
//!
//! A lazy CPU that does take a user-page invalidation (a table-freeing
//! shootdown of its pmap) loads the kernel's tables instead and leaves
//! lazy mode ([`leave_if_lazy`]): Linux's flush_tlb_func, "switching to
//! init_mm is barely slower than a minimal flush". Its return is then a
//! CR3 load. A full flush it takes as a full flush and stays lazy: Linux's
//! flush_tlb_func returns at once for another mm's request, and this
//! kernel's requests do not say which pmap they are for, so an OpenBSD
//! all-CPU shoottlb of another process would otherwise throw every lazy
//! CPU out of its pmap (on forkexit x2, tcg-icount: 999 such exits, 1,000
//! more CR3 loads, no skips left).
//!
//! # Freeing a pmap
//!
//! A lazy CPU has the pmap's PML4 in CR3, so before the pmap is freed its
//! last user (exit, exec) makes every lazy holder drop it ([`evict`]; the
//! holder runs [`serve_evict`] from its Other vector). Linux instead
//! counts lazy users in `mm_count` and frees the mm when the last one
//! switches away. Teardown frees page tables, so its shootdown usually
//! has sent the holders away already.
//!
//! # State
//!
//! Per CPU: its lab_core::protocol::lazy_tlb::LazyCpu (the pmap it holds
//! lazily, read by initiators, and the generation its TLB is current to),
//! the generation of the user pmap loaded there, and `EVICT`, a pmap its
//! holder must drop. All written by that CPU with interrupts off, but
//! `EVICT`, which an evicting CPU sets.

use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use lab_core::cpuset::CpuSet;
use lab_core::protocol::lazy_tlb::{skip, LazyCpu, Return, SkipRule};
use lab_core::protocol::pcid::TlbGen;
use x86_64::instructions::interrupts;

use super::pmap::Pmap;
use super::shootdown::ThisCpu;
use crate::arch;
use crate::stats::{self, Event, MAX_CPUS};

const ON: bool = cfg!(feature = "lazy-tlb");

/// Per CPU: its lazy state, the core's (model-checked on the host); the
/// pmap is named by its address.
static CPUS: [LazyCpu; MAX_CPUS] = [const { LazyCpu::new() }; MAX_CPUS];
/// Per CPU: the generation of the user pmap loaded there (null: the
/// kernel's tables). A pmap stays alive while it is loaded on a CPU.
static LOADED_GEN: [AtomicPtr<TlbGen>; MAX_CPUS] =
    [const { AtomicPtr::new(ptr::null_mut()) }; MAX_CPUS];
static EVICT: [AtomicPtr<Pmap>; MAX_CPUS] = [const { AtomicPtr::new(ptr::null_mut()) }; MAX_CPUS];
/// proc::sched's way to load the kernel's tables on this CPU (interrupts
/// off), registered by [`set_leave`]; 0 until then. The scheduler owns
/// which pmap each CPU has loaded, so mm asks it rather than writing CR3.
static LEAVE: AtomicUsize = AtomicUsize::new(0);

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

/// Registers `leave`: loads the kernel's tables on this CPU, dropping the
/// user pmap it holds (interrupts off). Called once by proc::sched.
pub fn set_leave(leave: fn()) {
    LEAVE.store(leave as usize, Ordering::Release);
}

/// Whether CPU `cpu` holds a user pmap lazily.
fn is_lazy(cpu: usize) -> bool {
    ON && CPUS[cpu].held() != 0
}

/// The switch part of lazy TLB, for proc::sched's switch_pmap on CPU `cpu`
/// (this one, interrupts off) from `loaded` to `want` (null: the kernel's
/// tables); `lazy_ok`: the next thread has no user mappings and may run
/// on the user pmap (exec and exit, leaving it for good, say false).
/// Returns true if the switch is done here, with no CR3 load: a switch
/// to such a thread keeps the user pmap (lazy), and a return to the pmap
/// kept flushes only if a shootdown skipped this CPU meanwhile. False:
/// the caller loads `want`'s tables (which flush), then calls [`loaded`].
pub fn keep_on_switch(cpu: usize, loaded: *const Pmap, want: *const Pmap, lazy_ok: bool) -> bool {
    if !ON {
        return false;
    }
    let me = &CPUS[cpu];
    let lazy = me.held() != 0;
    if want.is_null() && lazy_ok && !loaded.is_null() {
        if !lazy {
            me.enter(token(loaded));
            stats::count(Event::LazyEnters);
        }
        return true;
    }
    if !lazy {
        return false;
    }
    if !ptr::eq(loaded, want) {
        // Another address space: the caller's CR3 load flushes.
        me.drop_lazy();
        return false;
    }
    // SAFETY: `loaded` is the pmap loaded here, alive while loaded.
    let gen = unsafe { &(*loaded).pm_tlb_gen };
    match me.leave(gen) {
        Return::Kept => stats::count(Event::LazyKeptReturns),
        Return::Flush => {
            super::shootdown::flush_all();
            stats::count(Event::LazyCatchups);
        }
    }
    true
}

/// CPU `cpu` (this one, interrupts off) has loaded `pm`'s tables (null:
/// the kernel's), after setting its bit in `pm_cpus`: records the
/// generation its fresh TLB is current to.
pub fn loaded(cpu: usize, pm: *const Pmap) {
    if !ON {
        return;
    }
    if pm.is_null() {
        LOADED_GEN[cpu].store(ptr::null_mut(), Ordering::Relaxed);
        return;
    }
    // SAFETY: the caller's thread's process holds the pmap.
    let gen = unsafe { &(*pm).pm_tlb_gen };
    CPUS[cpu].loaded(gen);
    LOADED_GEN[cpu].store(ptr::from_ref(gen).cast_mut(), Ordering::Relaxed);
}

/// The targets of a shootdown of `pm`, without the CPUs that hold it
/// lazily (they catch up by generation), unless the operation frees page
/// tables; bumps `pm`'s generation first. Returns the targets and the
/// generation made (0 for the kernel pmap, which is never filtered, and
/// without the feature). For mm::shootdown's shoot, before its IPIs.
pub fn skip_lazy(pm: Option<&Pmap>, targets: CpuSet, frees_tables: bool) -> (CpuSet, u64) {
    let Some(pm) = pm.filter(|pm| ON && !pm.is_kernel()) else {
        return (targets, 0);
    };
    let made = pm.pm_tlb_gen.bump();
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
    (kept, made)
}

/// This CPU has invalidated, itself, what its shootdown of `pm` (which
/// made generation `made`, [`skip_lazy`]) changed: if its TLB was current
/// to the generation before, it is now current to `made`. Only when `pm`
/// is loaded here (`local`).
pub fn invalidated_here(pm: Option<&Pmap>, made: u64, local: bool) {
    if !ON || made == 0 || !local || pm.is_none() {
        return;
    }
    interrupts::without_interrupts(|| CPUS[arch::cpu_id() as usize].flushed_next(made));
}

/// Before this CPU flushes its whole TLB (interrupts off): with a user
/// pmap loaded, it is then current to that pmap's generation read now.
pub fn flushing_all() {
    if !ON {
        return;
    }
    let cpu = arch::cpu_id() as usize;
    let gen = LOADED_GEN[cpu].load(Ordering::Relaxed);
    if !gen.is_null() {
        // SAFETY: the pmap loaded here is alive (see LOADED_GEN).
        CPUS[cpu].flushed_all(unsafe { &*gen });
    }
}

/// For an invalidation reaching this CPU (an IPI handler's, interrupts
/// off): if it holds a user pmap only lazily, it loads the kernel's
/// tables instead, which flushes everything, and leaves lazy mode
/// (Linux's flush_tlb_func). Returns true if it did, so the caller has
/// nothing left to invalidate.
pub fn leave_if_lazy() -> bool {
    let cpu = arch::cpu_id() as usize;
    if !is_lazy(cpu) {
        return false;
    }
    let leave = LEAVE.load(Ordering::Acquire);
    if leave == 0 {
        return false;
    }
    // SAFETY: set_leave stores only `fn()` values.
    let leave: fn() = unsafe { core::mem::transmute::<usize, fn()>(leave) };
    interrupts::without_interrupts(leave);
    stats::count(Event::LazyLeftForKernel);
    true
}

/// Makes every other CPU that holds `pm` lazily drop it, so that it can
/// be freed: exit and exec call it after loading other tables and before
/// their last reference goes. Interrupts on (the holders are cross-called
/// and waited for).
pub fn evict(pm: &Pmap) {
    if !ON {
        return;
    }
    for cpu in arch::smp::online().without(arch::cpu_id()).iter() {
        if CPUS[cpu as usize].held() != token(pm) {
            continue;
        }
        EVICT[cpu as usize].store(ptr::from_ref(pm).cast_mut(), Ordering::SeqCst);
        if let Err(e) = arch::ipi::sync(cpu) {
            panic!("lazy-tlb: evicting a dying pmap: {e}");
        }
        assert!(
            CPUS[cpu as usize].held() != token(pm),
            "lazy-tlb: cpu {cpu} still holds a dying pmap after its eviction IPI"
        );
        stats::count(Event::LazyEvictions);
    }
}

/// The holder's side of [`evict`], from this CPU's Other vector
/// (interrupts off, before the sync is acknowledged): if asked to drop
/// the pmap it holds lazily, load the kernel's tables.
pub fn serve_evict() {
    if !ON {
        return;
    }
    let cpu = arch::cpu_id() as usize;
    let pm = EVICT[cpu].swap(ptr::null_mut(), Ordering::SeqCst);
    if pm.is_null() || CPUS[cpu].held() != token(pm) {
        return;
    }
    let leave = LEAVE.load(Ordering::Acquire);
    if leave != 0 {
        // SAFETY: set_leave stores only `fn()` values.
        let leave: fn() = unsafe { core::mem::transmute::<usize, fn()>(leave) };
        leave();
    }
}
