//! The scheduler: preemptive, SMP, one shared run queue.
//!
//! # Data structures
//!
//! One run queue (FIFO of runnable threads) and one list of sleeping
//! threads, both under the scheduler lock `SCHED`. Per CPU: the thread it
//! runs (`CURRENT`, an owned `Arc` reference in raw form), its idle thread
//! (`IDLE`), the user pmap loaded in its CR3 (`LOADED`, null for the
//! kernel's), whether its time slice ran out (`NEED_RESCHED`), and `PREV`,
//! the thread it just switched away from, whose reference the switched-to
//! thread drops once it runs on its own stack. `IDLE_MASK` has a bit for
//! each CPU halted in its idle loop.
//!
//! A thread pinned to a CPU (`Thread::pin`) is only ever picked by that
//! CPU; a forked child placed on an idle CPU (`Thread::place`,
//! [`make_runnable_forked`]) only by that CPU for its first run; others
//! are picked by whichever CPU looks first. The idle thread of
//! a CPU is the context that CPU booted in (kmain's, on CPU 0): it is never
//! queued, and runs when nothing else can.
//!
//! # Locking
//!
//! `SCHED` is taken with interrupts off, and is handed over across a
//! context switch (xv6's `ptable.lock` discipline): the switching thread
//! takes it, puts itself where it belongs (run queue, sleep list, or
//! nowhere if dead), switches, and the thread switched to releases it
//! ([`finish_switch`]). So no other CPU can pick a thread before its
//! registers are saved, and a sleeper cannot miss a wakeup: [`sleep_until`]
//! tests its condition under `SCHED`, and [`wakeup`] needs `SCHED` too.
//! Spinning on `SCHED` serves pending shootdowns (as the mm locks do).
//! Lock order: process table, a process's locks, then `SCHED`; nothing
//! that waits for another CPU may be done while holding it.
//!
//! # Address spaces
//!
//! A switch between threads of different processes deactivates the old
//! pmap on this CPU and activates the new one (OpenBSD 2010 semantics, seed
//! 000: loading a pmap sets this CPU's bit in `pm_cpus`, switching away
//! clears it); threads of one process share the pmap, so no change; idle
//! threads run on the kernel's tables. Exec and exit change the loaded
//! pmap of the running thread with [`load_pmap`].
//!
//! # Preemption
//!
//! The LAPIC timer (100 Hz) marks the CPU's time slice (one tick, 10 ms) as
//! used; a thread returning to user mode with its slice used yields
//! (proc::return_to_user). Making a thread runnable sends an IPI (kind
//! `other`) to an idle CPU that may run it, so it does not wait for that
//! CPU's next tick.
//!
//! Kernel code runs with interrupts on (syscalls and faults from user mode
//! enable them after entry, see crate::syscall and arch::trap) but is not
//! preempted: an interrupt taken in kernel mode (timer, shootdown, kick)
//! returns to the code it interrupted, and a thread leaves a CPU only where
//! it calls the scheduler (yield, sleep, exit) or on its way back to user
//! mode. So kernel code may still read `cpu_id()` once and use per-CPU
//! state written only from thread context (mm::shootdown's outstanding
//! request, dfly_batch's published VAs) without pinning; what interrupt
//! handlers touch is atomic (stats counters, `NEED_RESCHED`, IPI
//! mailboxes, the shootdown protocols' words). The sections that run with
//! interrupts off are those that hold a lock an interrupt handler could
//! need or that must not be split: `SCHED` and the context switch, the
//! console, the entry and exit paths, `load_pmap`. A shootdown IPI is
//! served at the next instruction boundary anywhere else.
//!
//! Each thread keeps its own interrupt state across a switch: the switch
//! itself runs with interrupts off (under `SCHED`), and [`yield_now`] and
//! [`sleep_until`] restore what their caller had when the thread runs
//! again; a new thread starts with them off and enables them by its
//! `iretq` to user mode.

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};

use x86_64::instructions::interrupts;
use x86_64::registers::control::{Cr3, Cr3Flags};
use x86_64::VirtAddr;

use super::switch::swtch;
use super::thread::{Thread, DEAD, RUNNABLE, RUNNING, SLEEPING};
use crate::arch::{cpu_id, gdt, ipi, percpu};
use crate::mm::pmap::{self, Pmap};
use crate::mm::shootdown;
use crate::stats::{self, Event, IpiKind, MAX_CPUS};

struct RunState {
    runq: VecDeque<Arc<Thread>>,
    sleepers: Vec<Arc<Thread>>,
}

/// The scheduler lock with the state it guards. Hand-written rather than a
/// `spin` mutex because it is released by another thread than the one that
/// took it (across the context switch), which a guard cannot express.
struct SchedLock {
    locked: AtomicBool,
    state: UnsafeCell<RunState>,
}

// SAFETY: `state` is only reached through `state()`, under `locked`.
unsafe impl Sync for SchedLock {}

impl SchedLock {
    fn acquire(&self) {
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            while self.locked.load(Ordering::Relaxed) {
                shootdown::poll();
                core::hint::spin_loop();
            }
        }
    }

    fn release(&self) {
        self.locked.store(false, Ordering::Release);
    }

    /// # Safety
    /// The caller holds the lock, and drops the reference before releasing.
    #[allow(clippy::mut_from_ref)]
    unsafe fn state(&self) -> &mut RunState {
        // SAFETY: the caller's.
        unsafe { &mut *self.state.get() }
    }
}

static SCHED: SchedLock = SchedLock {
    locked: AtomicBool::new(false),
    state: UnsafeCell::new(RunState {
        runq: VecDeque::new(),
        sleepers: Vec::new(),
    }),
};

static CURRENT: [AtomicPtr<Thread>; MAX_CPUS] =
    [const { AtomicPtr::new(ptr::null_mut()) }; MAX_CPUS];
static PREV: [AtomicPtr<Thread>; MAX_CPUS] = [const { AtomicPtr::new(ptr::null_mut()) }; MAX_CPUS];
static IDLE: [AtomicPtr<Thread>; MAX_CPUS] = [const { AtomicPtr::new(ptr::null_mut()) }; MAX_CPUS];
static LOADED: [AtomicPtr<Pmap>; MAX_CPUS] = [const { AtomicPtr::new(ptr::null_mut()) }; MAX_CPUS];
static NEED_RESCHED: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];
static IDLE_MASK: AtomicU64 = AtomicU64::new(0);

fn me() -> usize {
    cpu_id() as usize
}

/// Makes the context running on this CPU its idle thread (and current
/// thread). Once per CPU, before it schedules anything, interrupts off or
/// on; this CPU's CR3 must hold the kernel's tables.
pub fn init_cpu() {
    let cpu = cpu_id();
    ipi::set_cross_call_hook(cross_call);
    crate::mm::lazy_tlb::set_leave(leave_lazy);
    let idle = Arc::new(Thread::idle(cpu));
    IDLE[cpu as usize].store(Arc::into_raw(idle.clone()).cast_mut(), Ordering::Release);
    let raw = Arc::into_raw(idle).cast_mut();
    CURRENT[cpu as usize].store(raw, Ordering::Release);
    percpu::set_current(raw.cast());
}

/// The timer tick hook: this CPU's time slice is used up.
pub fn tick() {
    NEED_RESCHED[me()].store(true, Ordering::Relaxed);
    // LATR: the records other CPUs' munmaps left for this one (mm::latr).
    crate::mm::latr::sweep_here();
}

/// Clears and returns this CPU's "slice used" mark.
pub fn take_resched() -> bool {
    NEED_RESCHED[me()].swap(false, Ordering::Relaxed)
}

/// The thread running on this CPU. The reference is good for as long as
/// the caller runs as that thread (CURRENT keeps it alive until it has
/// switched away for the last time).
pub fn current() -> &'static Thread {
    let p = CURRENT[me()].load(Ordering::Acquire);
    assert!(!p.is_null(), "sched::current before sched::init_cpu");
    // SAFETY: see above; the caller is this thread.
    unsafe { &*p }
}

/// A counted reference to the current thread.
pub fn current_arc() -> Arc<Thread> {
    let p = CURRENT[me()].load(Ordering::Acquire);
    // SAFETY: CURRENT owns a reference, so the count is at least one.
    unsafe {
        Arc::increment_strong_count(p);
        Arc::from_raw(p)
    }
}

fn idle_arc(cpu: usize) -> Arc<Thread> {
    let p = IDLE[cpu].load(Ordering::Acquire);
    // SAFETY: IDLE owns a reference that is never dropped.
    unsafe {
        Arc::increment_strong_count(p);
        Arc::from_raw(p)
    }
}

fn eligible(t: &Thread, cpu: usize) -> bool {
    let want = wanted_cpu(t);
    want < 0 || want as usize == cpu
}

/// The one CPU that may pick `t` (its pin, else its first-run placement),
/// or -1 for any.
fn wanted_cpu(t: &Thread) -> i64 {
    let pin = t.pin.load(Ordering::Relaxed);
    if pin >= 0 {
        pin
    } else {
        t.place.load(Ordering::Relaxed)
    }
}

fn has_work(rs: &RunState, cpu: usize) -> bool {
    rs.runq.iter().any(|t| eligible(t, cpu))
}

/// The CPU to interrupt so that `t`, just made runnable, is picked soon:
/// its pinned CPU or any other idle CPU, if halted. SCHED held.
fn kick_for(t: &Thread, me: usize) -> u64 {
    let idle = IDLE_MASK.load(Ordering::SeqCst) & !(1 << me);
    let want = wanted_cpu(t);
    if want >= 0 {
        idle & (1 << want)
    } else {
        idle & idle.wrapping_neg()
    }
}

fn send_kicks(mask: u64) {
    let mut m = mask;
    while m != 0 {
        let cpu = m.trailing_zeros();
        m &= m - 1;
        ipi::send(IpiKind::Other, cpu);
    }
}

/// Makes `cpu`'s CR3 hold `want` (null: the kernel's tables), deactivating
/// the pmap it had: the pm_cpus bookkeeping of a switch between processes.
/// Interrupts off. `lazy_ok`: a switch to a thread without user mappings
/// (idle, a kernel thread) may keep the user pmap (`lazy-tlb`); exec and
/// exit, which are leaving their pmap for good, say false.
///
/// Order (FreeBSD's pmap_activate_sw): set this CPU's bit in the new pmap
/// and load its CR3 (pmap_activate), and only then clear the bit in the old
/// one. Clearing first would open a window in which this CPU still runs on
/// the old tables while an initiator, seeing no bit, skips it.
fn switch_pmap(cpu: usize, want: *const Pmap, lazy_ok: bool) {
    let loaded = LOADED[cpu].load(Ordering::Relaxed);
    // Linux's lazy TLB (mm::lazy_tlb): keep the user pmap across idle and
    // kernel threads; on the way back to it, flush only if behind.
    if crate::mm::lazy_tlb::keep_on_switch(cpu, loaded, want, lazy_ok) {
        return;
    }
    if ptr::eq(loaded, want) {
        return;
    }
    stats::count(Event::SchedCr3Loads);
    if want.is_null() {
        // The kernel pmap: the boot tables. Its pm_cpus is never a
        // shootdown target set (kernel shootdowns go to every CPU), so
        // it is not kept.
        // `pcid`: PCID 0, keeping the TLB (mm::pcid).
        if !crate::mm::pcid::load(pmap::pmap_kernel()) {
            // SAFETY: the kernel tables map everything kernel code uses.
            unsafe { Cr3::write(pmap::pmap_kernel().pm_pml4, Cr3Flags::empty()) };
        }
    } else {
        // SAFETY: the caller's thread's process holds the pmap.
        pmap::pmap_activate(unsafe { &*want }, true);
    }
    crate::mm::lazy_tlb::loaded(cpu, want);
    crate::arch::chaos::point(crate::arch::chaos::Point::SwitchLoaded);
    if !loaded.is_null() {
        // SAFETY: a pmap stays alive while loaded on a CPU (exec and exit
        // wait until their other threads are off every CPU, and load
        // another pmap, before they destroy it; under `lazy-tlb` they also
        // make lazy holders drop it, mm::lazy_tlb::evict).
        pmap::pmap_deactivate(unsafe { &*loaded });
    }
    LOADED[cpu].store(want.cast_mut(), Ordering::Relaxed);
}

/// Makes this CPU's CR3 hold `want` (null: the kernel's tables), for exec
/// and exit, which change the running thread's address space. Interrupts
/// on or off (it keeps them off while `LOADED` and CR3 change).
pub fn load_pmap(want: *const Pmap) {
    interrupts::without_interrupts(|| switch_pmap(me(), want, false));
}

/// What a cross-call (arch::ipi::sync) makes this CPU do before it
/// acknowledges: drop a lazily held pmap that is being freed (`lazy-tlb`,
/// mm::lazy_tlb::evict), sweep LATR's rings (`lazy-latr`, a quarantine
/// settled or past its bound). Each does nothing when its feature is off.
fn cross_call() {
    crate::mm::lazy_tlb::serve_evict();
    crate::mm::latr::sweep_here();
}

/// Loads the kernel's tables on this CPU (interrupts off), dropping the
/// user pmap it held lazily: mm::lazy_tlb's way out of lazy mode, for a
/// table-freeing shootdown or a pmap being freed.
fn leave_lazy() {
    switch_pmap(me(), ptr::null(), false);
}

fn pmap_of(t: &Thread) -> *const Pmap {
    t.proc
        .as_ref()
        .map_or(ptr::null(), |p| p.pmap_ptr.load(Ordering::Acquire))
}

/// Switches this CPU away from the current thread, whose state the caller
/// set (and which it queued if RUNNABLE or SLEEPING), to the first thread
/// of the run queue this CPU may run, or to its idle thread. Called with
/// interrupts off and SCHED held; returns, with SCHED released, when a CPU
/// switches back to the current thread.
///
/// # Safety
/// The caller holds SCHED (taken by this thread, interrupts off).
unsafe fn switch_away() {
    let cpu = me();
    let prev_ptr = CURRENT[cpu].load(Ordering::Relaxed);
    // SAFETY: CURRENT's reference keeps it alive.
    let prev = unsafe { &*prev_ptr };
    prev.check_stack();
    // SAFETY: SCHED is held.
    let rs = unsafe { SCHED.state() };
    let next = match rs.runq.iter().position(|t| eligible(t, cpu)) {
        Some(i) => rs.runq.remove(i).unwrap(),
        None => idle_arc(cpu),
    };
    if ptr::eq(Arc::as_ptr(&next), prev_ptr) {
        // It queued itself and nothing else is eligible here.
        prev.state.store(RUNNING, Ordering::Relaxed);
        drop(next); // CURRENT still holds one reference
        SCHED.release();
        return;
    }
    next.state.store(RUNNING, Ordering::Relaxed);
    next.cpu.store(cpu as i64, Ordering::Relaxed);
    next.place.store(-1, Ordering::Relaxed);
    switch_pmap(cpu, pmap_of(&next), true);
    // LATR sweeps at every context switch, too.
    crate::mm::latr::sweep_here();
    if let Some(top) = next.kstack_top() {
        gdt::set_kernel_stack(VirtAddr::new(top));
    }
    // SAFETY: the next thread is switched out (SCHED held), so its context
    // slot is stable.
    let next_ctx = unsafe { *next.ctx.get() };
    let next_raw = Arc::into_raw(next).cast_mut();
    CURRENT[cpu].store(next_raw, Ordering::Release);
    percpu::set_current(next_raw.cast());
    PREV[cpu].store(prev_ptr, Ordering::Relaxed);
    stats::count(Event::SchedSwitches);
    // SAFETY: prev is this thread; next's context was saved by swtch or
    // built by prepare_stack, and no CPU runs it (it was queued).
    unsafe { swtch(prev.ctx.get(), next_ctx) };
    finish_switch();
}

/// The second half of a switch, run by the thread switched to: releases
/// SCHED and drops the reference to the thread switched away from (the
/// last one, for a dead thread: its kernel stack is freed here, off it).
fn finish_switch() {
    let prev = PREV[me()].swap(ptr::null_mut(), Ordering::Relaxed);
    SCHED.release();
    if !prev.is_null() {
        // SAFETY: switch_away moved CURRENT's reference here.
        let prev = unsafe { Arc::from_raw(prev) };
        // This CPU is off its stack: a dead thread's is freed now, not
        // when it is joined.
        if prev.dead.load(Ordering::Acquire) {
            prev.release_kstack();
        }
        drop(prev);
    }
}

/// Where a new thread begins (from switch.rs's `proc_thread_start`), on
/// its own stack, before its first return to user mode.
pub extern "C" fn thread_start_tail() {
    finish_switch();
    super::return_to_user();
}

/// Gives the CPU to another runnable thread this CPU may run, if any; if
/// the current thread is pinned elsewhere, moves it there (it is running
/// on its pinned CPU when this returns).
pub fn yield_now() {
    let enabled = interrupts::are_enabled();
    interrupts::disable();
    SCHED.acquire();
    let cpu = me();
    let cur = current();
    // SAFETY: SCHED is held; the reference is dropped before switch_away.
    let rs = unsafe { SCHED.state() };
    let must_move = !eligible(cur, cpu);
    if !must_move && !has_work(rs, cpu) {
        SCHED.release();
    } else {
        cur.state.store(RUNNABLE, Ordering::Relaxed);
        rs.runq.push_back(current_arc());
        if must_move {
            send_kicks(kick_for(cur, cpu));
        }
        // SAFETY: SCHED held, interrupts off.
        unsafe { switch_away() };
    }
    if enabled {
        interrupts::enable();
    }
}

/// Sleeps on channel `chan` until `cond()` holds (xv6's sleep, with the
/// condition re-checked under SCHED after every wakeup). `cond` runs with
/// SCHED held: it may only read atomics, and whoever makes it true must
/// call [`wakeup`]`(chan)` afterwards.
pub fn sleep_until(chan: usize, cond: impl Fn() -> bool) {
    let enabled = interrupts::are_enabled();
    interrupts::disable();
    loop {
        SCHED.acquire();
        if cond() {
            SCHED.release();
            break;
        }
        let cur = current();
        cur.state.store(SLEEPING, Ordering::Relaxed);
        cur.chan.store(chan, Ordering::Relaxed);
        // SAFETY: SCHED is held.
        unsafe { SCHED.state() }.sleepers.push(current_arc());
        // SAFETY: SCHED held, interrupts off.
        unsafe { switch_away() };
    }
    if enabled {
        interrupts::enable();
    }
}

/// Moves the sleepers on `chan` to the run queue; returns CPUs to kick.
fn wakeup_locked(rs: &mut RunState, chan: usize) -> u64 {
    let cpu = me();
    let mut kicks = 0;
    let mut i = 0;
    while i < rs.sleepers.len() {
        if rs.sleepers[i].chan.load(Ordering::Relaxed) == chan {
            let t = rs.sleepers.swap_remove(i);
            t.state.store(RUNNABLE, Ordering::Relaxed);
            kicks |= kick_for(&t, cpu);
            rs.runq.push_back(t);
        } else {
            i += 1;
        }
    }
    kicks
}

/// Wakes every thread sleeping on `chan`.
pub fn wakeup(chan: usize) {
    interrupts::without_interrupts(|| {
        SCHED.acquire();
        // SAFETY: SCHED is held.
        let kicks = wakeup_locked(unsafe { SCHED.state() }, chan);
        SCHED.release();
        send_kicks(kicks);
    });
}

/// Queues the new thread `t` to run.
pub fn make_runnable(t: Arc<Thread>) {
    interrupts::without_interrupts(|| {
        SCHED.acquire();
        t.state.store(RUNNABLE, Ordering::Relaxed);
        let kicks = kick_for(&t, me());
        // SAFETY: SCHED is held.
        unsafe { SCHED.state() }.runq.push_back(t);
        SCHED.release();
        send_kicks(kicks);
    });
}

/// Queues the first thread of a forked child. Like OpenBSD's
/// sched_choosecpu_fork (kern_sched.c, 2009), it goes to a CPU that is idle
/// with nothing queued, if there is one other than the parent's: the parent
/// keeps running here (it will usually wait for the child), and the child
/// starts at once over there. Only that CPU may pick it for its first run;
/// a pinned child keeps its pin. With no idle CPU it goes to whichever CPU
/// looks first. This is what makes a child run beside its parent, where the
/// fork-inherit bug (seed 000) costs IPIs, rather than after it on the same
/// CPU.
pub fn make_runnable_forked(t: Arc<Thread>) {
    interrupts::without_interrupts(|| {
        SCHED.acquire();
        let cpu = me();
        // SAFETY: SCHED is held.
        let rs = unsafe { SCHED.state() };
        if t.pin.load(Ordering::Relaxed) < 0 {
            let mut idle = IDLE_MASK.load(Ordering::SeqCst) & !(1 << cpu);
            // An idle CPU with a queued thread it will pick anyway is not free.
            for q in rs.runq.iter() {
                let want = wanted_cpu(q);
                if want >= 0 {
                    idle &= !(1 << want);
                }
            }
            if idle != 0 {
                t.place
                    .store(i64::from(idle.trailing_zeros()), Ordering::Relaxed);
            }
        }
        t.state.store(RUNNABLE, Ordering::Relaxed);
        let kicks = kick_for(&t, cpu);
        rs.runq.push_back(t);
        SCHED.release();
        send_kicks(kicks);
    });
}

/// Gets `t` (of a process that is exiting) to notice soon: wakes it if it
/// sleeps, interrupts its CPU if it runs elsewhere.
pub fn interrupt(t: &Thread) {
    interrupts::without_interrupts(|| {
        SCHED.acquire();
        let cpu = me();
        // SAFETY: SCHED is held.
        let rs = unsafe { SCHED.state() };
        let mut kicks = 0;
        match t.state() {
            SLEEPING => {
                if let Some(i) = rs.sleepers.iter().position(|s| ptr::eq(&**s, t)) {
                    let s = rs.sleepers.swap_remove(i);
                    s.state.store(RUNNABLE, Ordering::Relaxed);
                    kicks |= kick_for(&s, cpu);
                    rs.runq.push_back(s);
                }
            }
            RUNNING => {
                let on = t.cpu.load(Ordering::Relaxed);
                if on >= 0 && on as usize != cpu {
                    kicks |= 1 << on;
                }
            }
            _ => {}
        }
        SCHED.release();
        send_kicks(kicks);
    });
}

/// Wakes CPU `cpu` if it is halted in its idle loop (so that it re-checks
/// what it waits for).
pub fn kick_cpu(cpu: u32) {
    interrupts::without_interrupts(|| {
        SCHED.acquire();
        let halted = IDLE_MASK.load(Ordering::SeqCst) & (1 << cpu) != 0 && cpu as usize != me();
        SCHED.release();
        if halted {
            ipi::send(IpiKind::Other, cpu);
        }
    });
}

/// The channel on which the last thread of a process waits for the others
/// to finish their last switch ([`exit_current`] wakes it).
pub fn last_thread_chan(p: &super::process::Process) -> usize {
    p as *const super::process::Process as usize + 1
}

/// Ends the current thread: marks it dead, wakes its joiners (channel: its
/// address) and its process's last thread, and switches away for good; its
/// kernel stack is freed by the thread switched to. A sleeper that sees
/// the DEAD state under SCHED knows that switch (its pmap deactivation
/// included) is complete.
pub fn exit_current() -> ! {
    interrupts::disable();
    SCHED.acquire();
    let cur = current();
    cur.state.store(DEAD, Ordering::Relaxed);
    cur.dead.store(true, Ordering::Release);
    // SAFETY: SCHED is held.
    let rs = unsafe { SCHED.state() };
    let mut kicks = wakeup_locked(rs, cur as *const Thread as usize);
    if let Some(p) = &cur.proc {
        kicks |= wakeup_locked(rs, last_thread_chan(p));
    }
    send_kicks(kicks);
    // SAFETY: SCHED held, interrupts off.
    unsafe { switch_away() };
    unreachable!("a dead thread was scheduled");
}

/// The idle loop of this CPU (its idle thread must be current): runs what
/// the run queue has for it, halts (`sti; hlt`) when there is nothing,
/// and returns (interrupts on) once `done()` holds. `done` runs with SCHED
/// held; whoever makes it true calls [`kick_cpu`] for this CPU.
pub fn idle_until(done: &dyn Fn() -> bool) {
    let cpu = me();
    let bit = 1u64 << cpu;
    loop {
        interrupts::disable();
        SCHED.acquire();
        if done() {
            SCHED.release();
            interrupts::enable();
            return;
        }
        // SAFETY: SCHED is held.
        if has_work(unsafe { SCHED.state() }, cpu) {
            IDLE_MASK.fetch_and(!bit, Ordering::SeqCst);
            // SAFETY: SCHED held, interrupts off; the idle thread is never
            // queued, so nothing else can pick it.
            unsafe { switch_away() };
            continue;
        }
        IDLE_MASK.fetch_or(bit, Ordering::SeqCst);
        SCHED.release();
        // STI's one-instruction shadow covers HLT: a kick sent after the
        // release above wakes the HLT rather than being taken before it.
        interrupts::enable_and_hlt();
        IDLE_MASK.fetch_and(!bit, Ordering::SeqCst);
    }
}
