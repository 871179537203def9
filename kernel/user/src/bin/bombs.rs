//! `bombs`: directed tests of the kernel's resource limits and of the
//! calls that must fail without effect ("no user program can crash, hang
//! or starve the kernel"). One `mode` per run:
//!
//! - `thread-bomb`: threads that exit at once, never joined, until
//!   `thread_create` fails: EAGAIN at lab_core::limits::THREADS_PER_PROC
//!   (the main thread counts); then each is joined with its value.
//! - `fork-bomb`: children that exit at once, not reaped, until `fork`
//!   fails: EAGAIN at limits::PROCS (zombies count); then all are reaped.
//! - `region-bomb`: one-page FIXED mappings at fresh addresses until
//!   `mmap` fails: ENOMEM at limits::REGIONS_PER_PROC; then unmapped.
//! - `frame-exhaust`: a child touches pages of a huge mapping until the
//!   frames run out: it is killed (out of memory), the kernel lives on.
//! - `heap-exhaust`: the sequence that panicked the kernel: a chain of
//!   `levels` processes, each making 255 threads that exit at once and are
//!   never joined, then, where the chain stops, FIXED one-page mappings at
//!   fresh addresses: threads end in EAGAIN (limits::THREADS) and the
//!   mappings in ENOMEM.
//! - `waitpid-efault`: waitpid sleeps on a child with its status page,
//!   another thread unmaps the page, the child exits: waitpid fails with
//!   EFAULT and a second waitpid reaps the child (status 7).
//! - `join-neg`: a thread exits with -2; thread_join with a bad value
//!   pointer fails with EFAULT, then joins and yields -2.
//!
//! Figures: `bombs.count` (how many succeeded before the limit),
//! `bombs.errno` (the error that ended it, its code), and per mode the
//! values below. A wrong result is an `error` record and exit status 1.
#![no_std]
#![no_main]
// A failed check carries its message on the stack, as in usertest.
#![allow(clippy::result_large_err)]

use lab_core::report::Scope;
use lab_core::syscall::{decode_result, Sys, MMAP_BASE};
use ulib::process::{self, Fork};
use ulib::{param, report, sys, thread, Errno, KillReason, MapFlags, Prot, WaitStatus, PAGE_SIZE};

ulib::main!(main);

/// Where the FIXED mappings go: far above anything else in the mmap area.
const FIXED_BASE: u64 = MMAP_BASE + (1 << 40);

fn main() -> i32 {
    let mode = param::raw("mode");
    let result = match mode.as_str() {
        "thread-bomb" => thread_bomb(),
        "fork-bomb" => fork_bomb(),
        "region-bomb" => region_bomb(),
        "frame-exhaust" => frame_exhaust(),
        "heap-exhaust" => heap_exhaust(),
        "waitpid-efault" => waitpid_efault(),
        "join-neg" => join_neg(),
        other => Err(format(format_args!("unknown mode {other}"))),
    };
    match result {
        Ok(()) => 0,
        Err(msg) => {
            report::error("bombs", format_args!("{}: {}", mode.as_str(), msg.as_str()));
            1
        }
    }
}

/// A short message, on the stack.
struct Msg {
    buf: [u8; 200],
    len: usize,
}

impl Msg {
    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("?")
    }
}

impl core::fmt::Write for Msg {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

fn format(args: core::fmt::Arguments<'_>) -> Msg {
    let mut m = Msg {
        buf: [0; 200],
        len: 0,
    };
    let _ = core::fmt::write(&mut m, args);
    m
}

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)*) => {
        if !$cond {
            return Err(format(format_args!($($fmt)*)));
        }
    };
}

type Outcome = Result<(), Msg>;

fn metric(name: &str, value: i64) {
    let _ = sys::report_metric(name, value, "count", Scope::Global);
}

/// Reports how many succeeded and the error that stopped them, and checks
/// it is one of `want`.
fn limit_hit(count: u64, err: Option<Errno>, want: &[Errno]) -> Outcome {
    metric("bombs.count", count as i64);
    metric("bombs.errno", err.map_or(0, |e| e.code()));
    match err {
        Some(e) if want.contains(&e) => Ok(()),
        other => Err(format(format_args!(
            "stopped after {count} with {other:?}, expected one of {want:?}"
        ))),
    }
}

/// A thread entry that exits at once with its argument (`rdi`), touching
/// no memory: many such threads can share one stack.
#[unsafe(naked)]
unsafe extern "C" fn exit_at_once() -> ! {
    core::arch::naked_asm!(
        "mov eax, {n}",
        "syscall",
        "ud2",
        n = const Sys::ThreadExit as u64,
    );
}

/// Starts a thread that exits at once with `value`.
fn start_exiting(value: u64, stack_top: u64) -> Result<u64, Errno> {
    // SAFETY: the entry never returns and never touches its stack.
    unsafe { sys::thread_create(exit_at_once as *const () as u64, value, stack_top) }
}

/// A page whose top serves as the (never used) stack of exiting threads.
fn dummy_stack() -> Result<u64, Msg> {
    let page = sys::mmap(0, PAGE_SIZE, Prot::RW, MapFlags::NONE)
        .map_err(|e| format(format_args!("mmap: {e}")))?;
    Ok(page + PAGE_SIZE)
}

fn thread_bomb() -> Outcome {
    let top = dummy_stack()?;
    let mut tids = [0u64; 512];
    let mut n = 0;
    let err = loop {
        if n == tids.len() {
            break None;
        }
        match start_exiting(n as u64 + 1, top) {
            Ok(tid) => {
                tids[n] = tid;
                n += 1;
            }
            Err(e) => break Some(e),
        }
    };
    limit_hit(n as u64, err, &[Errno::EAGAIN])?;
    ensure!(
        n + 1 == lab_core::limits::THREADS_PER_PROC,
        "{n} threads made, expected the limit less the main thread"
    );
    for (i, &tid) in tids[..n].iter().enumerate() {
        let v = sys::thread_join(tid).map_err(|e| format(format_args!("join {tid}: {e}")))?;
        ensure!(v == i as u64 + 1, "thread {tid} joined with {v}");
    }
    // Joined records are gone: threads can be made again.
    let tid = start_exiting(99, top).map_err(|e| format(format_args!("after joins: {e}")))?;
    ensure!(sys::thread_join(tid) == Ok(99), "join after the bomb");
    Ok(())
}

fn fork_bomb() -> Outcome {
    let mut n = 0u64;
    let err = loop {
        match process::fork() {
            Ok(Fork::Child) => process::exit(0),
            Ok(Fork::Parent(_)) => n += 1,
            Err(e) => break Some(e),
        }
    };
    limit_hit(n, err, &[Errno::EAGAIN])?;
    let mut reaped = 0;
    while let Ok((_, status)) = process::wait_any() {
        ensure!(status == WaitStatus::Exited(0), "child {status}");
        reaped += 1;
    }
    ensure!(reaped == n, "reaped {reaped} of {n}");
    // Reaped processes are gone: fork works again.
    match process::fork().map_err(|e| format(format_args!("fork after: {e}")))? {
        Fork::Child => process::exit(0),
        Fork::Parent(pid) => {
            ensure!(
                process::wait(pid) == Ok(WaitStatus::Exited(0)),
                "wait after"
            );
        }
    }
    Ok(())
}

/// Maps one page at each of `FIXED_BASE + 2 i pages` until mmap fails;
/// returns how many and the error.
fn map_fixed_pages() -> (u64, Option<Errno>) {
    let mut n = 0u64;
    loop {
        let at = FIXED_BASE + 2 * n * PAGE_SIZE;
        match sys::mmap(at, PAGE_SIZE, Prot::RW, MapFlags::FIXED) {
            Ok(_) => n += 1,
            Err(e) => return (n, Some(e)),
        }
        if n > 1_000_000 {
            return (n, None);
        }
    }
}

fn region_bomb() -> Outcome {
    let (n, err) = map_fixed_pages();
    limit_hit(n, err, &[Errno::ENOMEM])?;
    at_the_region_limit(n)?;
    // SAFETY: our own mappings, unused.
    unsafe {
        for i in 2..n {
            sys::munmap(FIXED_BASE + 2 * i * PAGE_SIZE, PAGE_SIZE)
                .map_err(|e| format(format_args!("munmap {i}: {e}")))?;
        }
    }
    // Below the limit again.
    let m = sys::mmap(0, PAGE_SIZE, Prot::RW, MapFlags::NONE)
        .map_err(|e| format(format_args!("mmap after: {e}")))?;
    // SAFETY: just mapped, unused.
    unsafe { sys::munmap(m, PAGE_SIZE).map_err(|e| format(format_args!("munmap after: {e}")))? };
    Ok(())
}

/// With the map full (`n` one-page regions, one page apart, from
/// FIXED_BASE): the syscall ABI's promise (lab_core::syscall, Mmap, Munmap,
/// Mprotect) that only a call needing more regions than the limit fails,
/// and that regions of one protection next to each other are one (the
/// kernel merges them, as BSD's vm_map_simplify_entry). Leaves regions 0
/// and 1 unmapped, the others as they were.
fn at_the_region_limit(n: u64) -> Outcome {
    ensure!(n >= 2, "only {n} regions");
    let page = |i: u64| FIXED_BASE + i * PAGE_SIZE;
    fn call<T>(what: &str, r: Result<T, Errno>) -> Outcome {
        r.map(|_| ())
            .map_err(|e| format(format_args!("at the limit, {what}: {e}")))
    }
    fn refused<T: core::fmt::Debug>(what: &str, r: Result<T, Errno>) -> Outcome {
        ensure!(
            matches!(r, Err(Errno::ENOMEM)),
            "at the limit, {what}: {r:?}, expected ENOMEM"
        );
        Ok(())
    }
    // A new region does not fit.
    let big = FIXED_BASE - 16 * PAGE_SIZE;
    refused(
        "a new region",
        sys::mmap(big, PAGE_SIZE, Prot::RW, MapFlags::FIXED),
    )?;
    // SAFETY (every call below): our own mappings, whose contents only
    // this function reads.
    unsafe {
        // Whole regions: removed, replaced or changed without a split.
        call("munmap of a whole region", sys::munmap(page(0), PAGE_SIZE))?;
        call(
            "mmap into its place",
            sys::mmap(page(0), PAGE_SIZE, Prot::RW, MapFlags::FIXED),
        )?;
        call(
            "mmap(FIXED) over a whole region",
            sys::mmap(page(0), PAGE_SIZE, Prot::RW, MapFlags::FIXED),
        )?;
        call(
            "mprotect changing nothing",
            sys::mprotect(page(0), PAGE_SIZE, Prot::RW),
        )?;
        call(
            "mprotect of a whole region",
            sys::mprotect(page(0), PAGE_SIZE, Prot::READ),
        )?;
        call("mprotect back", sys::mprotect(page(0), PAGE_SIZE, Prot::RW))?;
        // A page filling the hole between regions 0 and 1 joins both: one
        // region fewer, so one new region fits, and a second does not.
        call(
            "mmap joining two regions",
            sys::mmap(page(1), PAGE_SIZE, Prot::RW, MapFlags::FIXED),
        )?;
        call(
            "a new region after the join",
            sys::mmap(big, PAGE_SIZE, Prot::RW, MapFlags::FIXED),
        )?;
        refused(
            "a second new region",
            sys::mmap(big - 2 * PAGE_SIZE, PAGE_SIZE, Prot::RW, MapFlags::FIXED),
        )?;
        // Splits of the joined three pages need regions the map has not.
        core::ptr::write_volatile(page(1) as *mut u64, 0x5eed);
        refused("munmap of a middle page", sys::munmap(page(1), PAGE_SIZE))?;
        refused(
            "mprotect of a middle page",
            sys::mprotect(page(1), PAGE_SIZE, Prot::READ),
        )?;
        refused(
            "mprotect of a first page",
            sys::mprotect(page(0), PAGE_SIZE, Prot::READ),
        )?;
        ensure!(
            core::ptr::read_volatile(page(1) as *const u64) == 0x5eed,
            "a refused call changed the page"
        );
        // An mprotect of part of them that changes nothing splits nothing.
        call(
            "mprotect of a middle page changing nothing",
            sys::mprotect(page(1), PAGE_SIZE, Prot::RW),
        )?;
        call(
            "mprotect of all three",
            sys::mprotect(page(0), 3 * PAGE_SIZE, Prot::READ),
        )?;
        call(
            "mprotect of all three back",
            sys::mprotect(page(0), 3 * PAGE_SIZE, Prot::RW),
        )?;
        call("munmap of all three", sys::munmap(page(0), 3 * PAGE_SIZE))?;
        call("munmap of the new region", sys::munmap(big, PAGE_SIZE))?;
    }
    Ok(())
}

fn frame_exhaust() -> Outcome {
    match process::fork().map_err(|e| format(format_args!("fork: {e}")))? {
        Fork::Child => {
            let len = 4u64 << 30; // more than the guest's memory
            let Ok(at) = sys::mmap(0, len, Prot::RW, MapFlags::NONE) else {
                process::exit(2)
            };
            let mut a = at;
            while a < at + len {
                // SAFETY: our own mapping; the kernel kills us when the
                // frames run out.
                unsafe { core::ptr::write_volatile(a as *mut u8, 1) };
                a += PAGE_SIZE;
            }
            process::exit(3)
        }
        Fork::Parent(pid) => {
            let status = process::wait(pid).map_err(|e| format(format_args!("wait: {e}")))?;
            metric("bombs.count", 1);
            metric(
                "bombs.errno",
                if status == WaitStatus::Killed(KillReason::OutOfMemory) {
                    Errno::ENOMEM.code()
                } else {
                    0
                },
            );
            ensure!(
                status == WaitStatus::Killed(KillReason::OutOfMemory),
                "child {status}, expected a kill for want of memory"
            );
        }
    }
    // The kernel still works: a page can be had again.
    let m = ulib::mem::map_rw(PAGE_SIZE).map_err(|e| format(format_args!("mmap after: {e}")))?;
    // SAFETY: just mapped.
    unsafe { ulib::mem::touch_pages(m, PAGE_SIZE, 1) };
    Ok(())
}

/// Exit statuses of a chain level: 0 ok, else the failing check.
fn heap_exhaust() -> Outcome {
    let levels = param::u64("levels");
    let top = dummy_stack()?;
    let mut level = 0;
    let mut threads = 0u64;
    let thread_err = loop {
        let mut err = None;
        for _ in 0..255 {
            match start_exiting(0, top) {
                Ok(_) => threads += 1,
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
        }
        if err.is_some() || level + 1 >= levels {
            break err;
        }
        match process::fork() {
            Ok(Fork::Child) => level += 1,
            Ok(Fork::Parent(pid)) => {
                // Pass the deepest level's verdict up the chain.
                let status = process::wait(pid);
                match status {
                    Ok(WaitStatus::Exited(0)) if level == 0 => return Ok(()),
                    Ok(WaitStatus::Exited(s)) if level > 0 => process::exit(s),
                    other => {
                        if level > 0 {
                            process::exit(90)
                        }
                        return Err(format(format_args!("chain child {other:?}")));
                    }
                }
            }
            Err(e) => break Some(e),
        }
    };
    // The end of the chain: mappings at fresh addresses.
    let (regions, map_err) = map_fixed_pages();
    metric("bombs.levels", level as i64 + 1);
    metric("bombs.threads", threads as i64);
    metric("bombs.thread_errno", thread_err.map_or(0, |e| e.code()));
    metric("bombs.regions", regions as i64);
    let verdict = limit_hit(regions, map_err, &[Errno::ENOMEM, Errno::EAGAIN]).and_then(|()| {
        ensure!(
            matches!(thread_err, None | Some(Errno::EAGAIN) | Some(Errno::ENOMEM)),
            "threads ended with {thread_err:?}"
        );
        Ok(())
    });
    if level == 0 {
        return verdict;
    }
    match verdict {
        Ok(()) => process::exit(0),
        Err(msg) => {
            report::error("bombs", format_args!("heap-exhaust: {}", msg.as_str()));
            process::exit(1)
        }
    }
}

/// Raw waitpid with a status pointer of our choice.
fn waitpid_raw(pid: u64, status: u64) -> Result<u64, Errno> {
    // SAFETY: the kernel checks `status`.
    decode_result(unsafe { sys::raw(Sys::Waitpid as u64, [pid, status, 0, 0, 0, 0]) })
}

fn sleep_ms(ms: u64) {
    let until = sys::clock() + ms * 1_000_000;
    while sys::clock() < until {
        sys::yield_now();
    }
}

fn waitpid_efault() -> Outcome {
    let page = ulib::mem::map_rw(PAGE_SIZE).map_err(|e| format(format_args!("mmap: {e}")))?;
    // SAFETY: just mapped.
    unsafe { ulib::mem::touch_pages(page, PAGE_SIZE, 1) };
    let child = match process::fork().map_err(|e| format(format_args!("fork: {e}")))? {
        Fork::Child => {
            sleep_ms(200);
            process::exit(7)
        }
        Fork::Parent(pid) => pid,
    };
    let waiter = thread::spawn(move || decode_result_raw(waitpid_raw(child, page)))
        .map_err(|e| format(format_args!("spawn: {e}")))?;
    sleep_ms(20);
    // SAFETY: only the waiter's waitpid refers to it, and must fail.
    unsafe { sys::munmap(page, PAGE_SIZE) }.map_err(|e| format(format_args!("munmap: {e}")))?;
    let first = decode_result(
        waiter
            .join()
            .map_err(|e| format(format_args!("join: {e}")))?,
    );
    metric("bombs.errno", first.err().map_or(0, |e| e.code()));
    ensure!(first == Err(Errno::EFAULT), "first waitpid gave {first:?}");
    let second = process::wait(child);
    metric(
        "bombs.count",
        match second {
            Ok(WaitStatus::Exited(s)) => s as i64,
            _ => -1,
        },
    );
    ensure!(
        second == Ok(WaitStatus::Exited(7)),
        "second waitpid gave {second:?}"
    );
    Ok(())
}

/// A call's result as the raw `rax` value (for a thread's exit value).
fn decode_result_raw(r: Result<u64, Errno>) -> u64 {
    lab_core::syscall::encode_result(r)
}

fn join_neg() -> Outcome {
    let t = thread::spawn(|| (-2i64) as u64).map_err(|e| format(format_args!("spawn: {e}")))?;
    let tid = t.tid();
    // Wait until it has ended, then try a bad value pointer first.
    sleep_ms(10);
    // SAFETY: the kernel checks the pointer (0x10 is never mapped).
    let bad = decode_result(unsafe { sys::raw(Sys::ThreadJoin as u64, [tid, 0x10, 0, 0, 0, 0]) });
    ensure!(
        bad == Err(Errno::EFAULT),
        "join with a bad pointer: {bad:?}"
    );
    let value = t.join().map_err(|e| format(format_args!("join: {e}")))?;
    metric("bombs.count", value as i64);
    metric("bombs.errno", 0);
    ensure!(value as i64 == -2, "joined value {}", value as i64);
    Ok(())
}
