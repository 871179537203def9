//! fork: a copy of the calling process, copy-on-write, with one thread.

use alloc::sync::Arc;
use core::sync::atomic::Ordering;

use lab_core::limits;
use lab_core::syscall::Errno;

use super::process::{self, Process, MAX_PROCS, PROCS};
use super::sched;
use super::thread::{self, Thread};
use crate::arch::trap::TrapFrame;
use crate::mm::{heap, pmap};
use crate::stats::{self, Event};

/// `fork()`: copies the calling process's address space copy-on-write
/// (vm::Vm::fork_copy) and starts a child whose only thread resumes from a
/// copy of the caller's trap frame with `rax = 0`, pinned as the caller.
/// Returns the child's pid. A failure leaves nothing behind.
pub fn sys_fork(frame: &TrapFrame) -> Result<u64, Errno> {
    if process::count() >= MAX_PROCS || thread::count() >= limits::THREADS {
        return Err(Errno::EAGAIN);
    }
    // The child's records (process, thread, VM map, page records) come
    // from the heap, some infallibly: only with the kernel's reserve left.
    if !heap::room() {
        return Err(Errno::ENOMEM);
    }
    let me = sched::current();
    let parent = me.process();
    let child_vm = parent
        .vm
        .lock()
        .as_mut()
        .ok_or(Errno::EFAULT)?
        .fork_copy()?;
    let pid = process::alloc_id();
    let child = Arc::new(Process::new(
        pid,
        parent.pid,
        parent.name().as_str(),
        child_vm,
    ));
    let mut child_frame = *frame;
    child_frame.rax = 0;
    let Some(thread) = Thread::new_user(
        child.clone(),
        pid,
        &child_frame,
        me.pin.load(Ordering::Relaxed),
    ) else {
        if let Some(vm) = child.vm.lock().take() {
            vm.discard();
        }
        return Err(Errno::ENOMEM);
    };
    let thread = Arc::new(thread);
    cpu_fork(&child, parent);
    child.add_thread(thread.clone());
    PROCS.lock().insert(pid, child);
    stats::count(Event::ProcForks);
    sched::make_runnable_forked(thread);
    Ok(pid)
}

/// OpenBSD's cpu_fork, as far as the pmap is concerned: it calls
/// pmap_activate on the child while the parent (`curproc`) is the process
/// running here, so `is_current` is false and the fixed pmap sets no bit:
/// the child's pmap is marked in use only when a CPU switches to it.
///
/// This is the line seed 000's second bug lives on (OpenBSD
/// sys/arch/amd64/amd64/pmap.c rev 1.55 -> 1.56, pmap_activate): 1.55 set
/// this CPU's bit in the child's pm_cpus even when the child was not
/// curproc, so the child's pmap carried the parent's CPU (the
/// `fork-inherit` variant makes pmap_activate do that again).
fn cpu_fork(child: &Process, curproc: &Process) {
    let vm = child.vm.lock();
    let pm = &vm.as_ref().expect("child without an address space").pmap;
    pmap::pmap_activate(pm, core::ptr::eq(child, curproc));
}
