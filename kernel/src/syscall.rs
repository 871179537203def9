//! System calls: the `syscall` entry, and the dispatcher of
//! lab_core::syscall's calls (numbers, registers and errors are defined
//! there).
//!
//! # Entry
//!
//! `syscall` (IA32_LSTAR) arrives with interrupts off (IA32_FMASK clears IF,
//! DF, TF and AC), the user's rsp still loaded, rip in rcx and rflags in
//! r11. `syscall_entry` swaps in the kernel GS base, parks the user rsp in
//! the per-CPU scratch slot, loads the current thread's kernel stack top
//! from the per-CPU area (the scheduler keeps it equal to TSS.RSP0) and
//! builds the same [`TrapFrame`] a trap from user mode builds there (user
//! ss, rsp, rflags, cs, rip, then error, vector and the registers), so that
//! fork can copy it and a new thread can start from one. It returns through
//! `trap_return` (`iretq`), which avoids SYSRET's #GP on a non-canonical
//! return rip (user space ends below the canonical hole anyway).
//!
//! # Interrupts
//!
//! The entry runs with interrupts off only until the frame is built and
//! the kernel stack and GS base are the kernel's; [`rust_syscall`] then
//! enables them, as BSD's syscall() and trap() do for traps from user
//! mode, so the call runs interruptible: a shootdown IPI is served at the
//! next instruction boundary instead of when the call ends (before, a CPU
//! in a long syscall held up every shootdown that targeted it, and every
//! initiator queued behind that one on the global slot). Interrupts go off
//! again before the way back to user mode (proc::return_to_user and
//! `trap_return`, whose `swapgs`/`iretq` must not be interrupted). The
//! kernel is still not preempted: an interrupt taken in kernel mode
//! returns to the code it interrupted (see proc::sched, Preemption).
//!
//! # Arguments
//!
//! Every user pointer goes through the process's VM map (proc::vm: copyin,
//! copyout), which checks the range against user space and the regions'
//! protection and returns EFAULT instead of faulting; lengths are bounded
//! before anything is copied. A call that fails has no effect.

use alloc::string::String;
use alloc::vec;
use core::arch::global_asm;
use core::sync::atomic::{AtomicBool, Ordering};

use lab_core::cmdline::{ParamSpec, Params};
use lab_core::syscall::{
    decode_scope, encode_result, valid_report_msg, valid_report_name, valid_report_unit, Errno,
    Sys, WaitStatus, BUSY_MAX_US, REPORT_MSG_MAX, REPORT_NAME_MAX, REPORT_UNIT_MAX,
};
use x86_64::instructions::interrupts;
use x86_64::registers::control::{Cr4, Cr4Flags};
use x86_64::registers::model_specific::{Efer, EferFlags, LStar, SFMask};
use x86_64::registers::rflags::RFlags;
use x86_64::VirtAddr;

use crate::arch::gdt::{USER_CS, USER_SS};
use crate::arch::percpu::{GS_KERNEL_STACK, GS_USER_RSP};
use crate::arch::trap::TrapFrame;
use crate::arch::{cpu_id, smp, tsc};
use crate::proc::vm::{self, Vm};
use crate::proc::{exec, exit, fork, process, sched};
use crate::{console, report};

/// The `vector` field of a syscall's TrapFrame (no IDT vector uses it).
pub const SYSCALL_VECTOR: u64 = 0x100;

global_asm!(
    r#"
    .section .text.syscall_entry, "ax"
    .global syscall_entry
syscall_entry:
    swapgs
    mov gs:[{user_rsp}], rsp
    mov rsp, gs:[{kstack}]
    push {user_ss}
    push qword ptr gs:[{user_rsp}]
    push r11
    push {user_cs}
    push rcx
    push 0
    push {vector}
    push rax
    push rbx
    push rcx
    push rdx
    push rsi
    push rdi
    push rbp
    push r8
    push r9
    push r10
    push r11
    push r12
    push r13
    push r14
    push r15
    mov rdi, rsp
    call {dispatch}
    jmp trap_return
"#,
    user_rsp = const GS_USER_RSP,
    kstack = const GS_KERNEL_STACK,
    user_ss = const USER_SS.0 as u64,
    user_cs = const USER_CS.0 as u64,
    vector = const SYSCALL_VECTOR,
    dispatch = sym rust_syscall,
);

extern "C" {
    fn syscall_entry();
}

/// Set by `report_error`: the run's status is failed whatever the first
/// process's exit status.
pub static RUN_FAILED: AtomicBool = AtomicBool::new(false);

/// The command line and parameter declarations `getparam` answers from.
static PARAMS: spin::Once<(&'static str, &'static [ParamSpec])> = spin::Once::new();

/// Sets what `getparam` answers: the command line (already validated
/// against `spec`) and the workload's parameters.
pub fn set_params(cmdline: &'static str, spec: &'static [ParamSpec]) {
    PARAMS.call_once(|| (cmdline, spec));
}

/// Enables `syscall` on this CPU (EFER.SCE, LSTAR, FMASK; STAR is set by
/// gdt::init) and SMEP/SMAP when CPUID.(7,0):EBX offers them (bits 7, 20);
/// returns (SMEP, SMAP) as enabled.
pub fn init_cpu() -> (bool, bool) {
    LStar::write(VirtAddr::new(syscall_entry as *const () as u64));
    SFMask::write(
        RFlags::INTERRUPT_FLAG
            | RFlags::DIRECTION_FLAG
            | RFlags::TRAP_FLAG
            | RFlags::ALIGNMENT_CHECK,
    );
    // SAFETY: the entry point and masks are set above; the GDT layout was
    // checked against SYSCALL/SYSRET by gdt::init.
    unsafe { Efer::update(|f| f.insert(EferFlags::SYSTEM_CALL_EXTENSIONS)) };
    // CPUID leaf 7 reads zeros on a CPU without it, which enables nothing.
    let ebx = core::arch::x86_64::__cpuid_count(7, 0).ebx;
    let mut flags = Cr4Flags::empty();
    if ebx & (1 << 7) != 0 {
        flags |= Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION;
    }
    if ebx & (1 << 20) != 0 {
        // The kernel never touches user memory through user addresses
        // (proc::vm copies through the direct map), so no stac/clac.
        flags |= Cr4Flags::SUPERVISOR_MODE_ACCESS_PREVENTION;
    }
    // SAFETY: SMEP/SMAP only forbid supervisor use of user pages, which
    // the kernel does not make.
    unsafe { Cr4::update(|f| f.insert(flags)) };
    (
        flags.contains(Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION),
        flags.contains(Cr4Flags::SUPERVISOR_MODE_ACCESS_PREVENTION),
    )
}

/// Called by `syscall_entry` with the frame it built, interrupts off;
/// runs the call with interrupts on and returns with them off.
extern "C" fn rust_syscall(frame: &mut TrapFrame) {
    interrupts::enable();
    let a = [
        frame.rdi, frame.rsi, frame.rdx, frame.r10, frame.r8, frame.r9,
    ];
    let result = match Sys::from_number(frame.rax) {
        Some(sys) => dispatch(sys, a, frame),
        None => Err(Errno::ENOSYS),
    };
    frame.rax = encode_result(result);
    crate::proc::return_to_user();
}

fn dispatch(sys: Sys, a: [u64; 6], frame: &mut TrapFrame) -> Result<u64, Errno> {
    match sys {
        Sys::Exit => exit::exit_process(WaitStatus::Exited(a[0] as u32 as i32)),
        Sys::Fork => fork::sys_fork(frame),
        Sys::Exec => exec::sys_exec(frame, a[0], a[1], a[2], a[3]),
        Sys::Waitpid => process::sys_waitpid(a[0] as i64, a[1], a[2]),
        Sys::Getpid => Ok(process::current().pid),
        Sys::Yield => {
            sched::yield_now();
            Ok(0)
        }
        Sys::Write => sys_write(a[0], a[1], a[2]),
        Sys::Clock => Ok(vm::clock_ns()),
        Sys::Mmap => with_vm(|vm| vm.mmap(a[0], a[1], a[2], a[3])),
        Sys::Munmap => with_vm(|vm| vm.munmap(a[0], a[1]).map(|()| 0)),
        Sys::Mprotect => with_vm(|vm| vm.mprotect(a[0], a[1], a[2]).map(|()| 0)),
        Sys::ThreadCreate => process::sys_thread_create(a[0], a[1], a[2]),
        Sys::ThreadExit => exit::exit_thread(a[0]),
        Sys::ThreadJoin => process::sys_thread_join(a[0], a[1]),
        Sys::Getcpu => Ok(u64::from(cpu_id())),
        Sys::Pin => sys_pin(a[0] as i64),
        Sys::Ncpus => Ok(u64::from(smp::online().len())),
        Sys::ReportMetric => sys_report_metric(a),
        Sys::ReportError => sys_report_error(a),
        Sys::Getparam => sys_getparam(a),
        Sys::Gettid => Ok(sched::current().tid),
        Sys::Busy => sys_busy(a[0]),
        Sys::AckLast => Ok(crate::mm::shootdown::take_last_ack()),
    }
}

/// Runs `f` on the calling process's VM map, under its lock.
fn with_vm<T>(f: impl FnOnce(&mut Vm) -> Result<T, Errno>) -> Result<T, Errno> {
    let p = process::current();
    let mut vm = p.vm.lock();
    f(vm.as_mut().ok_or(Errno::EFAULT)?)
}

fn copyin(addr: u64, buf: &mut [u8]) -> Result<(), Errno> {
    with_vm(|vm| vm.copyin(addr, buf))
}

fn copyout(addr: u64, data: &[u8]) -> Result<(), Errno> {
    with_vm(|vm| vm.copyout(addr, data))
}

/// Copies in a string of `len` bytes (at most `max`, else `too_long`).
fn copyin_str(addr: u64, len: u64, buf: &mut [u8], too_long: Errno) -> Result<&[u8], Errno> {
    if len > buf.len() as u64 {
        return Err(too_long);
    }
    let buf = &mut buf[..len as usize];
    copyin(addr, buf)?;
    Ok(buf)
}

/// Most bytes one `write` call writes (it returns the count written).
const WRITE_MAX: u64 = 4096;

fn sys_write(fd: u64, buf: u64, len: u64) -> Result<u64, Errno> {
    if fd != 1 && fd != 2 {
        return Err(Errno::EBADF);
    }
    if !lab_core::syscall::user_range_ok(buf, len) {
        return Err(Errno::EFAULT);
    }
    let n = len.min(WRITE_MAX);
    let mut bytes = vec![0u8; n as usize];
    copyin(buf, &mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
    console::with(|w| w.write_str(&text)).ok();
    Ok(n)
}

fn sys_pin(cpu: i64) -> Result<u64, Errno> {
    let t = sched::current();
    if cpu == -1 {
        t.pin.store(-1, Ordering::Relaxed);
        return Ok(0);
    }
    if !(0..64).contains(&cpu) || !smp::online().contains(cpu as u32) {
        return Err(Errno::EINVAL);
    }
    t.pin.store(cpu, Ordering::Relaxed);
    while i64::from(cpu_id()) != cpu {
        sched::yield_now();
    }
    Ok(0)
}

/// `busy(us)`: spins for `us` microseconds of TSC time with interrupts on
/// (they are on for every syscall), taking no lock: a CPU busy in the
/// kernel, for the busy-target workload.
fn sys_busy(us: u64) -> Result<u64, Errno> {
    if us > BUSY_MAX_US {
        return Err(Errno::EINVAL);
    }
    debug_assert!(interrupts::are_enabled());
    let cycles = us.saturating_mul(tsc::hz()) / 1_000_000;
    let start = tsc::now();
    while tsc::now().wrapping_sub(start) < cycles {
        core::hint::spin_loop();
    }
    Ok(0)
}

fn sys_report_metric(a: [u64; 6]) -> Result<u64, Errno> {
    let mut name = [0u8; REPORT_NAME_MAX];
    let mut unit = [0u8; REPORT_UNIT_MAX];
    let name = copyin_str(a[0], a[1], &mut name, Errno::EINVAL)?;
    let unit = copyin_str(a[3], a[4], &mut unit, Errno::EINVAL)?;
    if !valid_report_name(name) || !valid_report_unit(unit) {
        return Err(Errno::EINVAL);
    }
    let scope = decode_scope(a[5]).ok_or(Errno::EINVAL)?;
    // Valid names and units are ASCII.
    let name = core::str::from_utf8(name).map_err(|_| Errno::EINVAL)?;
    let unit = core::str::from_utf8(unit).map_err(|_| Errno::EINVAL)?;
    report::metric(name, a[2] as i64, unit, scope);
    Ok(0)
}

fn sys_report_error(a: [u64; 6]) -> Result<u64, Errno> {
    let mut kind = [0u8; REPORT_NAME_MAX];
    let mut msg = [0u8; REPORT_MSG_MAX];
    let kind = copyin_str(a[0], a[1], &mut kind, Errno::EINVAL)?;
    let msg = copyin_str(a[2], a[3], &mut msg, Errno::EINVAL)?;
    if !valid_report_name(kind) || !valid_report_msg(msg) {
        return Err(Errno::EINVAL);
    }
    let kind = core::str::from_utf8(kind).map_err(|_| Errno::EINVAL)?;
    let msg = core::str::from_utf8(msg).map_err(|_| Errno::EINVAL)?;
    report::error(kind, format_args!("{msg}"));
    RUN_FAILED.store(true, Ordering::Release);
    Ok(0)
}

fn sys_getparam(a: [u64; 6]) -> Result<u64, Errno> {
    let mut key = [0u8; REPORT_NAME_MAX];
    let key = copyin_str(a[0], a[1], &mut key, Errno::EINVAL)?;
    let key = core::str::from_utf8(key).map_err(|_| Errno::ENOENT)?;
    let &(line, spec) = PARAMS.get().ok_or(Errno::ENOENT)?;
    if !spec.iter().any(|p| p.key == key) {
        return Err(Errno::ENOENT);
    }
    let params = Params::parse(line, spec).map_err(|_| Errno::EINVAL)?;
    let value = params.raw(key).as_bytes();
    let n = value.len().min(a[3] as usize);
    copyout(a[2], &value[..n])?;
    Ok(value.len() as u64)
}
