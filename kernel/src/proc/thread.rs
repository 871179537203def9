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
//! Kernel stacks are runs of [`KSTACK_SIZE`] physically contiguous frames
//! (reached through the direct map), not heap memory, so that the heap,
//! which never shrinks, does not grow with the number of threads. A stack
//! is freed as soon as its thread has switched away for the last time
//! ([`Thread::release_kstack`], from the scheduler), not when it is
//! joined: a dead thread keeps only its record. A few freed stacks are
//! kept for reuse ([`KSTACK_CACHE`] of them), since finding a contiguous
//! run scans the frame table; [`drain_kstack_cache`] gives them back. Each
//! stack has a canary word at the bottom that the scheduler checks at
//! every switch (no guard page: the direct map has none to give).
//!
//! Thread records are counted ([`count`]) against lab_core::limits::THREADS.

use alloc::sync::Arc;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, AtomicUsize, Ordering};

use lab_core::limits::KSTACK_BYTES;
use x86_64::structures::paging::PhysFrame;
use x86_64::{PhysAddr, VirtAddr};

use super::process::Process;
use super::switch;
use crate::arch::gdt::{USER_CS, USER_SS};
use crate::arch::trap::TrapFrame;
use crate::memlayout::{phys_to_virt, virt_to_phys};
use crate::mm::frame;
use crate::mm::lock::SpinLock;

/// Size of a thread's kernel stack.
pub const KSTACK_SIZE: usize = KSTACK_BYTES;
const KSTACK_FRAMES: usize = KSTACK_SIZE / 4096;
const CANARY: u64 = 0x57ac_c0de_dead_57ac;
/// RFLAGS of a thread entering user mode: IF and the reserved bit 1.
pub const USER_RFLAGS: u64 = 0x202;

/// Scheduler states.
pub const RUNNING: u8 = 0;
pub const RUNNABLE: u8 = 1;
pub const SLEEPING: u8 = 2;
pub const DEAD: u8 = 3;

/// Freed kernel stacks kept for reuse.
const KSTACK_CACHE: usize = 32;
/// The kept stacks' bases (direct-map addresses), and how many.
static CACHE: SpinLock<([u64; KSTACK_CACHE], usize)> = SpinLock::new(([0; KSTACK_CACHE], 0));
/// User thread records in existence (live, or dead and not yet dropped).
static THREADS: AtomicUsize = AtomicUsize::new(0);

/// User thread records in existence.
pub fn count() -> usize {
    THREADS.load(Ordering::Relaxed)
}

/// A kernel stack's base (direct-map address), or `None` when no run of
/// frames is free. Its first word holds the canary.
fn kstack_alloc() -> Option<u64> {
    let cached = {
        let mut c = CACHE.lock();
        if c.1 > 0 {
            c.1 -= 1;
            Some(c.0[c.1])
        } else {
            None
        }
    };
    let base = match cached {
        Some(b) => b,
        None => {
            let f = frame::alloc_contiguous(KSTACK_FRAMES)?;
            phys_to_virt(f.start_address().as_u64()).as_u64()
        }
    };
    // SAFETY: the first word of a stack that is ours.
    unsafe { (base as *mut u64).write(CANARY) };
    Some(base)
}

/// Frees the stack at `base`: kept for reuse, or its frames freed. No CPU
/// may run on it any more.
fn kstack_free(base: u64) {
    {
        let mut c = CACHE.lock();
        if c.1 < KSTACK_CACHE {
            let n = c.1;
            c.0[n] = base;
            c.1 += 1;
            return;
        }
    }
    free_frames(base);
}

fn free_frames(base: u64) {
    let pa = virt_to_phys(VirtAddr::new(base)).as_u64();
    for i in 0..KSTACK_FRAMES as u64 {
        frame::free(PhysFrame::containing_address(PhysAddr::new(pa + i * 4096)));
    }
}

/// Gives every kept stack's frames back to the frame allocator (at the end
/// of a run, so that its frame accounting balances).
pub fn drain_kstack_cache() {
    loop {
        let base = {
            let mut c = CACHE.lock();
            if c.1 == 0 {
                return;
            }
            c.1 -= 1;
            c.0[c.1]
        };
        free_frames(base);
    }
}

pub struct Thread {
    pub tid: u64,
    /// Its process; `None` for an idle thread.
    pub proc: Option<Arc<Process>>,
    /// The kernel stack's base (0: none, an idle thread's, or freed once
    /// the thread died).
    kstack: AtomicU64,
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
            kstack: AtomicU64::new(0),
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
        let base = kstack_alloc()?;
        THREADS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the top of the fresh stack is ours and unused.
        let ctx = unsafe { switch::prepare_stack(base + KSTACK_SIZE as u64, frame) };
        Some(Thread {
            tid,
            proc: Some(proc),
            kstack: AtomicU64::new(base),
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
        match self.kstack.load(Ordering::Relaxed) {
            0 => None,
            base => Some(base + KSTACK_SIZE as u64),
        }
    }

    /// Frees its kernel stack; for a thread that has switched away for the
    /// last time (the scheduler calls it once the CPU is off the stack).
    pub fn release_kstack(&self) {
        let base = self.kstack.swap(0, Ordering::AcqRel);
        if base != 0 {
            kstack_free(base);
        }
    }

    /// Panics if its kernel stack overflowed into the canary.
    pub fn check_stack(&self) {
        let base = self.kstack.load(Ordering::Relaxed);
        if base != 0 {
            assert!(
                // SAFETY: the stack's first word, written by kstack_alloc.
                unsafe { (base as *const u64).read_volatile() } == CANARY,
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

impl Drop for Thread {
    fn drop(&mut self) {
        if self.proc.is_some() {
            // A thread that never ran (a failed fork) still has its stack.
            self.release_kstack();
            THREADS.fetch_sub(1, Ordering::Relaxed);
        }
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
