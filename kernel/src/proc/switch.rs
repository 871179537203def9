//! The context switch, and where a new thread starts.
//!
//! A thread that is not running is described by one word, its saved kernel
//! stack pointer (`Thread::ctx`). [`swtch`] pushes the callee-saved
//! registers (the System V ABI's rbx, rbp, r12-r15: everything else the
//! caller already saved, as for any call) on the current kernel stack,
//! stores rsp through `save`, loads `load` into rsp and pops the other
//! thread's registers, so the `ret` returns into whatever call of `swtch`
//! that thread made (xv6's swtch.S). Interrupts stay as they are (off:
//! the scheduler calls it with its lock held, see sched.rs).
//!
//! A new thread's kernel stack is built by [`prepare_stack`] to look like
//! one that called `swtch`: six zero registers, then the return address
//! `proc_thread_start`, then its user [`TrapFrame`] at the very top.
//! `proc_thread_start` finishes the switch (sched::thread_start_tail) and
//! "returns" to user mode through `trap_return`, the common exit of traps.

use core::arch::global_asm;

use crate::arch::trap::TrapFrame;

global_asm!(
    r#"
    .section .text.proc_switch, "ax"
    .global proc_swtch
proc_swtch:
    push rbp
    push rbx
    push r12
    push r13
    push r14
    push r15
    mov [rdi], rsp
    mov rsp, rsi
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    pop rbp
    ret

    .global proc_thread_start
proc_thread_start:
    /* rsp is the TrapFrame, 16-byte aligned: the call is ABI-aligned. */
    call {tail}
    jmp trap_return
"#,
    tail = sym super::sched::thread_start_tail,
);

extern "C" {
    fn proc_swtch(save: *mut u64, load: u64);
    fn proc_thread_start();
}

/// Saves the current kernel context at `*save` and resumes the one saved
/// in `load`; returns when some CPU switches back to the saved context.
///
/// # Safety
/// `save` must be the current thread's context slot and `load` a context
/// saved by `swtch` or built by [`prepare_stack`], on a live stack that no
/// CPU is running on.
pub unsafe fn swtch(save: *mut u64, load: u64) {
    // SAFETY: the caller's.
    unsafe { proc_swtch(save, load) }
}

/// Writes `frame` at the top of the kernel stack whose (16-byte aligned)
/// top is `top`, and below it a context that [`swtch`] resumes in
/// `proc_thread_start`; returns that context.
///
/// # Safety
/// `[top - 256, top)` must be an unused part of a kernel stack the caller
/// owns.
pub unsafe fn prepare_stack(top: u64, frame: &TrapFrame) -> u64 {
    assert!(top.is_multiple_of(16));
    let frame_at = top - core::mem::size_of::<TrapFrame>() as u64;
    let ctx = frame_at - 8 * 7;
    // SAFETY: the caller's; all slots are 8-aligned inside the range.
    unsafe {
        (frame_at as *mut TrapFrame).write(*frame);
        ((frame_at - 8) as *mut u64).write(proc_thread_start as *const () as u64);
        for i in 0..6 {
            ((ctx + 8 * i) as *mut u64).write(0);
        }
    }
    ctx
}

const _: () = assert!(core::mem::size_of::<TrapFrame>().is_multiple_of(16));
