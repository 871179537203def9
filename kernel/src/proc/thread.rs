//! Threads: the unit the scheduler runs.
//!
//! A [`Thread`] is either a user thread of a process (`proc` set), with a
//! kernel stack of its own whose top holds its user [`TrapFrame`] whenever
//! it is in the kernel (traps and `syscall` both build it there), or a
//! CPU's idle thread (no process), which runs on the stack that CPU booted
//! on. Threads are shared as `Arc<Thread>`: by the CPU running it, the run
//! queue or sleep list holding it, and its process's thread list.
//!
//! The scheduler fields (`state`, `chan`, `cpu`) change only under the
//! scheduler's lock; they are atomics so that they can live in a shared
//! `Arc` and be read for diagnostics. `pin` is written by the thread itself
//! (pin) or at creation. `dead` and `exit_value` are set once, under the
//! scheduler lock, as the thread switches away for the last time.
//!
//! Kernel stacks come from the kernel heap (frames reached through the
//! direct map), [`KSTACK_SIZE`] each, with a canary word at the bottom that
//! the scheduler checks at every switch (no guard page: the direct map has
//! none to give).

use alloc::alloc::{alloc, dealloc, Layout};
use alloc::sync::Arc;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, AtomicUsize, Ordering};

use super::process::Process;
use super::switch;
use crate::arch::gdt::{USER_CS, USER_SS};
use crate::arch::trap::TrapFrame;

/// Size of a thread's kernel stack.
pub const KSTACK_SIZE: usize = 32 * 1024;
const CANARY: u64 = 0x57ac_c0de_dead_57ac;
/// RFLAGS of a thread entering user mode: IF and the reserved bit 1.
pub const USER_RFLAGS: u64 = 0x202;

/// Scheduler states.
pub const RUNNING: u8 = 0;
pub const RUNNABLE: u8 = 1;
pub const SLEEPING: u8 = 2;
pub const DEAD: u8 = 3;

/// A kernel stack on the heap, freed with its thread.
struct KStack(*mut u8);

impl KStack {
    fn layout() -> Layout {
        Layout::from_size_align(KSTACK_SIZE, 64).unwrap()
    }

    fn new() -> Option<KStack> {
        // SAFETY: a non-zero-sized layout.
        let base = unsafe { alloc(Self::layout()) };
        if base.is_null() {
            return None;
        }
        // SAFETY: the first word of the fresh allocation.
        unsafe { (base as *mut u64).write(CANARY) };
        Some(KStack(base))
    }

    fn top(&self) -> u64 {
        self.0 as u64 + KSTACK_SIZE as u64
    }

    fn canary_ok(&self) -> bool {
        // SAFETY: the stack's first word, written by new().
        unsafe { (self.0 as *const u64).read_volatile() == CANARY }
    }
}

impl Drop for KStack {
    fn drop(&mut self) {
        // SAFETY: allocated in new() with this layout; the thread no longer
        // runs on it (the last reference is dropped after it switched away
        // for good, see sched::finish_switch).
        unsafe { dealloc(self.0, Self::layout()) };
    }
}

pub struct Thread {
    pub tid: u64,
    /// Its process; `None` for an idle thread.
    pub proc: Option<Arc<Process>>,
    kstack: Option<KStack>,
    /// Saved kernel stack pointer while switched out (written by swtch).
    pub(super) ctx: UnsafeCell<u64>,
    pub(super) state: AtomicU8,
    /// The sleep channel while SLEEPING.
    pub(super) chan: AtomicUsize,
    /// The CPU it runs or last ran on.
    pub(super) cpu: AtomicI64,
    /// The CPU it is pinned to, or -1.
    pub pin: AtomicI64,
    /// The CPU chosen for its first run, or -1 (a forked child's placement,
    /// [`super::sched::make_runnable_forked`]); cleared once it runs.
    pub(super) place: AtomicI64,
    /// Set once it has switched away for the last time.
    pub dead: AtomicBool,
    pub exit_value: AtomicU64,
    /// Set by the thread_join that claimed it.
    pub joined: AtomicBool,
}

// SAFETY: `ctx` is written only by swtch on the CPU switching this thread
// out, and read by the CPU switching it in, both under the scheduler lock.
unsafe impl Sync for Thread {}
unsafe impl Send for Thread {}

impl Thread {
    /// An idle thread for the CPU running this, on its current stack.
    pub fn idle(cpu: u32) -> Thread {
        Thread {
            tid: 0,
            proc: None,
            kstack: None,
            ctx: UnsafeCell::new(0),
            state: AtomicU8::new(RUNNING),
            chan: AtomicUsize::new(0),
            cpu: AtomicI64::new(cpu as i64),
            pin: AtomicI64::new(cpu as i64),
            place: AtomicI64::new(-1),
            dead: AtomicBool::new(false),
            exit_value: AtomicU64::new(0),
            joined: AtomicBool::new(false),
        }
    }

    /// A user thread `tid` of `proc` that will enter user mode with the
    /// registers of `frame` when first scheduled; pinned to `pin` (-1:
    /// not pinned). `None` if no kernel stack could be allocated.
    pub fn new_user(proc: Arc<Process>, tid: u64, frame: &TrapFrame, pin: i64) -> Option<Thread> {
        let kstack = KStack::new()?;
        // SAFETY: the top of the fresh stack is ours and unused.
        let ctx = unsafe { switch::prepare_stack(kstack.top(), frame) };
        Some(Thread {
            tid,
            proc: Some(proc),
            kstack: Some(kstack),
            ctx: UnsafeCell::new(ctx),
            state: AtomicU8::new(RUNNABLE),
            chan: AtomicUsize::new(0),
            cpu: AtomicI64::new(-1),
            pin: AtomicI64::new(pin),
            place: AtomicI64::new(-1),
            dead: AtomicBool::new(false),
            exit_value: AtomicU64::new(0),
            joined: AtomicBool::new(false),
        })
    }

    /// Top of its kernel stack (`None` for an idle thread): TSS.RSP0 and the
    /// syscall entry's stack while it runs.
    pub fn kstack_top(&self) -> Option<u64> {
        self.kstack.as_ref().map(KStack::top)
    }

    /// Panics if its kernel stack overflowed into the canary.
    pub fn check_stack(&self) {
        if let Some(k) = &self.kstack {
            assert!(
                k.canary_ok(),
                "kernel stack overflow in thread {} (canary overwritten)",
                self.tid
            );
        }
    }

    pub fn state(&self) -> u8 {
        self.state.load(Ordering::Relaxed)
    }

    /// Its process (panics for an idle thread).
    pub fn process(&self) -> &Arc<Process> {
        self.proc.as_ref().expect("idle thread has no process")
    }
}

/// The frame a new user thread starts from: `rip`, `rsp`, `rdi`, the user
/// segments, interrupts on, everything else zero.
pub fn user_frame(rip: u64, rsp: u64, rdi: u64) -> TrapFrame {
    TrapFrame {
        rip,
        rsp,
        rdi,
        cs: u64::from(USER_CS.0),
        ss: u64::from(USER_SS.0),
        rflags: USER_RFLAGS,
        ..TrapFrame::default()
    }
}
