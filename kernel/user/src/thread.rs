//! Threads: [`spawn`] a closure on a fresh mmapped stack, [`JoinHandle::join`]
//! it for its `u64` result.
//!
//! The new thread's stack is `STACK_SIZE` bytes of mmapped memory whose
//! lowest page is made inaccessible (a guard: an overflow kills the process
//! instead of corrupting a neighbour). The closure is moved to the top of
//! that stack in a [`Start`] record, and the kernel starts the thread at
//! [`trampoline`] with `rdi` pointing at the record and `rsp` just below
//! it; the trampoline calls [`thread_main`], which runs the closure and
//! passes its result to `thread_exit`. `join` waits for the thread and
//! unmaps its stack (the thread no longer runs, so nothing uses it).
//!
//! Threads share everything else; programs share state through statics
//! (atomics), which is why closures must be `'static`.

use core::mem::{align_of, size_of};

use lab_core::syscall::{Errno, MapFlags, Prot, PAGE_SIZE};

use crate::sys;

pub use crate::sys::{getcpu, ncpus, pin, yield_now};

/// Stack of a spawned thread, guard page included.
pub const STACK_SIZE: u64 = 64 * 1024;

/// What the new thread finds at the top of its stack. `run` is first so
/// [`thread_main`] can read it without knowing `F`.
#[repr(C)]
struct Start<F> {
    run: unsafe fn(*mut u8) -> u64,
    f: F,
}

/// Runs the closure of the `Start<F>` at `p` (moving it out).
///
/// # Safety
/// `p` must point at a `Start<F>` that nobody else uses.
unsafe fn run<F: FnOnce() -> u64>(p: *mut u8) -> u64 {
    // SAFETY: the caller's; the record is read exactly once.
    let f = unsafe { core::ptr::read(&(*(p as *mut Start<F>)).f) };
    f()
}

/// Where the kernel starts a spawned thread: `rdi` = its `Start` record,
/// `rsp` 16-byte aligned.
#[unsafe(naked)]
unsafe extern "C" fn trampoline() -> ! {
    core::arch::naked_asm!(
        "xor ebp, ebp",
        "call {main}",
        "ud2",
        main = sym thread_main,
    );
}

extern "C" fn thread_main(p: *mut u8) -> ! {
    // SAFETY: `p` is the Start record spawn wrote; its first field is the
    // monomorphised `run` for the record's closure type.
    let value = unsafe {
        let run = *(p as *const unsafe fn(*mut u8) -> u64);
        run(p)
    };
    sys::thread_exit(value)
}

/// A running (or finished, not yet joined) thread.
#[derive(Debug)]
#[must_use = "a thread that is not joined keeps its stack mapped"]
pub struct JoinHandle {
    tid: u64,
    stack: u64,
}

impl JoinHandle {
    pub fn tid(&self) -> u64 {
        self.tid
    }

    /// Waits for the thread to end; returns its closure's result and unmaps
    /// its stack.
    pub fn join(self) -> Result<u64, Errno> {
        let value = sys::thread_join(self.tid)?;
        // SAFETY: the thread has exited; nothing else uses its stack.
        unsafe { sys::munmap(self.stack, STACK_SIZE)? };
        Ok(value)
    }
}

/// Starts a thread running `f`.
pub fn spawn<F: FnOnce() -> u64 + Send + 'static>(f: F) -> Result<JoinHandle, Errno> {
    const { assert!(size_of::<Start<F>>() <= 1024 && align_of::<Start<F>>() <= 16) };
    let stack = sys::mmap(0, STACK_SIZE, Prot::RW, MapFlags::NONE)?;
    // SAFETY: the lowest page of our fresh stack: nothing uses it.
    unsafe { sys::mprotect(stack, PAGE_SIZE, Prot::NONE)? };
    let top = stack + STACK_SIZE;
    let at = (top - size_of::<Start<F>>() as u64) & !15;
    let record = at as *mut Start<F>;
    // SAFETY: `at` is in our fresh read-write stack mapping, aligned to 16.
    unsafe { record.write(Start { run: run::<F>, f }) };
    // SAFETY: the trampoline never returns; the stack below `at` is the new
    // thread's.
    match unsafe { sys::thread_create(trampoline as *const () as u64, at, at) } {
        Ok(tid) => Ok(JoinHandle { tid, stack }),
        Err(e) => {
            // SAFETY: the thread never started: take the closure back, drop
            // it, and give the stack back.
            unsafe {
                drop(core::ptr::read(record));
                sys::munmap(stack, STACK_SIZE).ok();
            }
            Err(e)
        }
    }
}

/// Spawns `f(i)` pinned to CPU `i % ncpus` for `i in 0..n` (or unpinned if
/// `pinned` is false) into `handles[..n]`; panics if a spawn fails.
pub fn spawn_n<F>(n: usize, pinned: bool, handles: &mut [Option<JoinHandle>], f: F)
where
    F: Fn(usize) -> u64 + Copy + Send + 'static,
{
    let cpus = ncpus();
    for (i, slot) in handles[..n].iter_mut().enumerate() {
        let handle = spawn(move || {
            if pinned {
                pin(Some(i as u32 % cpus)).expect("pin");
            }
            f(i)
        })
        .expect("thread spawn");
        *slot = Some(handle);
    }
}

/// Joins `handles[..n]` and returns the sum of their results.
pub fn join_all(handles: &mut [Option<JoinHandle>]) -> u64 {
    handles
        .iter_mut()
        .filter_map(Option::take)
        .map(|h| h.join().expect("thread join"))
        .sum()
}
