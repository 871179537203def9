//! The `syscall` instruction and one typed wrapper per call.
//!
//! The register convention, numbers and errors are `lab_core::syscall`'s;
//! the wrappers here only move arguments into registers and decode `rax`.
//! [`raw`] is public so tests can pass deliberately bad arguments.

use core::arch::asm;

use lab_core::report::Scope;
use lab_core::syscall::{self as abi, decode_result, Errno, MapFlags, Prot, Sys, WaitFlags};

/// Executes `syscall` with number `n` and six arguments; returns `rax`
/// undecoded.
///
/// # Safety
/// The kernel may write through any pointer argument; the caller must make
/// sure that memory is the call's to write (or pass bad pointers on
/// purpose, which the kernel rejects with `EFAULT`).
#[inline(always)]
pub unsafe fn raw(n: u64, a: [u64; 6]) -> u64 {
    let ret: u64;
    // SAFETY: the caller's; `syscall` clobbers rcx and r11 only and does not
    // touch the user stack.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") n => ret,
            in("rdi") a[0],
            in("rsi") a[1],
            in("rdx") a[2],
            in("r10") a[3],
            in("r8") a[4],
            in("r9") a[5],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// [`raw`] for call `sys`, decoded.
///
/// # Safety
/// As for [`raw`].
#[inline(always)]
unsafe fn call(sys: Sys, a: [u64; 6]) -> Result<u64, Errno> {
    // SAFETY: the caller's.
    decode_result(unsafe { raw(sys as u64, a) })
}

fn args0() -> [u64; 6] {
    [0; 6]
}

/// Ends the process with `status` (every thread).
pub fn exit(status: i32) -> ! {
    // SAFETY: no pointers.
    unsafe { raw(Sys::Exit as u64, [status as u32 as u64, 0, 0, 0, 0, 0]) };
    unreachable!("exit returned")
}

/// `fork`: `Ok(0)` in the child, the child's pid in the parent.
pub fn fork() -> Result<u64, Errno> {
    // SAFETY: no pointers.
    unsafe { call(Sys::Fork, args0()) }
}

/// `exec` with a packed argv ([`abi::pack_argv`]); returns only on error.
pub fn exec_packed(name: &str, packed: &[u8]) -> Errno {
    let a = [
        name.as_ptr() as u64,
        name.len() as u64,
        packed.as_ptr() as u64,
        packed.len() as u64,
        0,
        0,
    ];
    // SAFETY: the kernel only reads the two buffers.
    match unsafe { call(Sys::Exec, a) } {
        Ok(_) => Errno::EINVAL, // exec never returns success
        Err(e) => e,
    }
}

/// `waitpid(pid or -1, flags)`: the reaped child and how it ended; with
/// `NOHANG`, `Ok(None)` if none has ended.
pub fn waitpid(pid: i64, flags: WaitFlags) -> Result<Option<(u64, abi::WaitStatus)>, Errno> {
    let mut status = 0u64;
    let a = [pid as u64, &mut status as *mut u64 as u64, flags.0, 0, 0, 0];
    // SAFETY: the kernel writes one u64 to `status`.
    let pid = unsafe { call(Sys::Waitpid, a) }?;
    if pid == 0 {
        return Ok(None);
    }
    let status = abi::WaitStatus::decode(status).ok_or(Errno::EINVAL)?;
    Ok(Some((pid, status)))
}

pub fn getpid() -> u64 {
    // SAFETY: no pointers.
    unsafe { call(Sys::Getpid, args0()) }.unwrap_or(0)
}

pub fn gettid() -> u64 {
    // SAFETY: no pointers.
    unsafe { call(Sys::Gettid, args0()) }.unwrap_or(0)
}

/// Spins in the kernel for `us` microseconds, interrupts on (a probe).
pub fn busy(us: u64) -> Result<(), Errno> {
    // SAFETY: no pointers.
    unsafe { call(Sys::Busy, [us, 0, 0, 0, 0, 0]) }.map(drop)
}

/// The ack latency (TSC cycles) of this CPU's last shootdown wait, 0 if
/// none since the previous call.
pub fn ack_last() -> u64 {
    // SAFETY: no pointers.
    unsafe { call(Sys::AckLast, args0()) }.unwrap_or(0)
}

/// Gives up the CPU to another runnable thread, if any.
pub fn yield_now() {
    // SAFETY: no pointers.
    unsafe { call(Sys::Yield, args0()) }.ok();
}

/// `write(fd, bytes)`: bytes written.
pub fn write(fd: u64, bytes: &[u8]) -> Result<u64, Errno> {
    let a = [fd, bytes.as_ptr() as u64, bytes.len() as u64, 0, 0, 0];
    // SAFETY: the kernel only reads the buffer.
    unsafe { call(Sys::Write, a) }
}

/// Monotonic nanoseconds since boot, by system call (see also
/// [`crate::time::now_ns`]).
pub fn clock() -> u64 {
    // SAFETY: no pointers.
    unsafe { call(Sys::Clock, args0()) }.unwrap_or(0)
}

/// `mmap(addr, len, prot, flags)`: the address of the new mapping.
pub fn mmap(addr: u64, len: u64, prot: Prot, flags: MapFlags) -> Result<u64, Errno> {
    // SAFETY: mapping memory writes nothing the program owns, except with
    // FIXED, whose caller has decided to replace what is at `addr`.
    unsafe { call(Sys::Mmap, [addr, len, prot.0, flags.0, 0, 0]) }
}

/// `munmap(addr, len)`.
///
/// # Safety
/// Nothing may use the range afterwards (an access kills the process).
pub unsafe fn munmap(addr: u64, len: u64) -> Result<(), Errno> {
    // SAFETY: the caller's.
    unsafe { call(Sys::Munmap, [addr, len, 0, 0, 0, 0]) }.map(drop)
}

/// `mprotect(addr, len, prot)`.
///
/// # Safety
/// Nothing may access the range against its new protection.
pub unsafe fn mprotect(addr: u64, len: u64, prot: Prot) -> Result<(), Errno> {
    // SAFETY: the caller's.
    unsafe { call(Sys::Mprotect, [addr, len, prot.0, 0, 0, 0]) }.map(drop)
}

/// `thread_create(entry, arg, stack_top)`: the new thread's id.
///
/// # Safety
/// `entry` must be code that never returns and `stack_top` the top of
/// memory the new thread may use as its stack.
pub unsafe fn thread_create(entry: u64, arg: u64, stack_top: u64) -> Result<u64, Errno> {
    // SAFETY: the caller's.
    unsafe { call(Sys::ThreadCreate, [entry, arg, stack_top, 0, 0, 0]) }
}

/// Ends the calling thread with `value` (what `thread_join` returns).
pub fn thread_exit(value: u64) -> ! {
    // SAFETY: no pointers.
    unsafe { raw(Sys::ThreadExit as u64, [value, 0, 0, 0, 0, 0]) };
    unreachable!("thread_exit returned")
}

/// Waits for thread `tid` and returns its exit value (any `u64`: the
/// kernel stores it apart from the call's result).
pub fn thread_join(tid: u64) -> Result<u64, Errno> {
    let mut value = 0u64;
    // SAFETY: the kernel writes one u64 to `value`.
    unsafe {
        call(
            Sys::ThreadJoin,
            [tid, &mut value as *mut u64 as u64, 0, 0, 0, 0],
        )
    }?;
    Ok(value)
}

/// The CPU the caller was running on.
pub fn getcpu() -> u32 {
    // SAFETY: no pointers.
    unsafe { call(Sys::Getcpu, args0()) }.unwrap_or(0) as u32
}

/// Pins the calling thread to `cpu` (running there on return), or unpins
/// it with `None`.
pub fn pin(cpu: Option<u32>) -> Result<(), Errno> {
    let arg = cpu.map_or(-1i64, i64::from) as u64;
    // SAFETY: no pointers.
    unsafe { call(Sys::Pin, [arg, 0, 0, 0, 0, 0]) }.map(drop)
}

/// The number of online CPUs.
pub fn ncpus() -> u32 {
    // SAFETY: no pointers.
    unsafe { call(Sys::Ncpus, args0()) }.unwrap_or(1).max(1) as u32
}

/// Writes a `metric` record to the run's report.
pub fn report_metric(name: &str, value: i64, unit: &str, scope: Scope) -> Result<(), Errno> {
    let scope = abi::encode_scope(scope).ok_or(Errno::EINVAL)?;
    let a = [
        name.as_ptr() as u64,
        name.len() as u64,
        value as u64,
        unit.as_ptr() as u64,
        unit.len() as u64,
        scope,
    ];
    // SAFETY: the kernel only reads the two strings.
    unsafe { call(Sys::ReportMetric, a) }.map(drop)
}

/// Writes an `error` record and marks the run failed.
pub fn report_error(kind: &str, msg: &str) -> Result<(), Errno> {
    let a = [
        kind.as_ptr() as u64,
        kind.len() as u64,
        msg.as_ptr() as u64,
        msg.len() as u64,
        0,
        0,
    ];
    // SAFETY: the kernel only reads the two strings.
    unsafe { call(Sys::ReportError, a) }.map(drop)
}

/// Copies workload parameter `key`'s value into `buf`; returns its full
/// length (which may exceed `buf.len()`).
pub fn getparam(key: &str, buf: &mut [u8]) -> Result<usize, Errno> {
    let a = [
        key.as_ptr() as u64,
        key.len() as u64,
        buf.as_mut_ptr() as u64,
        buf.len() as u64,
        0,
        0,
    ];
    // SAFETY: the kernel writes at most buf.len() bytes into buf.
    unsafe { call(Sys::Getparam, a) }.map(|n| n as usize)
}
