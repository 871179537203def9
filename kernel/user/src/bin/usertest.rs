//! `usertest`: issue 5's in-guest tests of processes in user mode.
//!
//! Each check runs in turn, prints `usertest: NAME ok` or `... FAILED:
//! why`, and reports `usertest.NAME` = 1 (pass) or 0 (fail) with unit
//! `bool`; a failure is also an `error` record. At the end:
//! `usertest.passed`, `usertest.failed`; the exit status is 0 only if every
//! check passed.
//!
//! Checks that must end in the kernel killing a process (an access after
//! munmap, against mprotect, to a kernel address, ...) run the access in a
//! forked child and expect `waitpid` to report `Killed(reason)`. The exec
//! check re-execs this program with `argv[1] == "child-argv"`.
#![no_std]
#![no_main]
// No allocator: a failed check's message travels back on the stack.
#![allow(clippy::result_large_err)]

use core::fmt::{self, Write};
use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{AtomicU64, Ordering};

use lab_core::cpuset::CpuSet;
use lab_core::report::Scope;
use lab_core::syscall::{
    encode_scope, Errno, KillReason, MapFlags, Prot, Sys, WaitFlags, WaitStatus, PAGE_SIZE,
    SHARED_PAGE_MAGIC, SHARED_PAGE_VA, USER_END,
};
use ulib::process::{self, Fork};
use ulib::rt::LineBuf;
use ulib::thread::{self, JoinHandle};
use ulib::time::{now_ns, shared_page, sleep_ns};
use ulib::{arg, argc, mem, println, report, sys};

ulib::main!(main);

type Msg = LineBuf<200>;
type Outcome = Result<(), Msg>;
type Check = fn() -> Outcome;

fn msg(args: fmt::Arguments<'_>) -> Msg {
    let mut m = Msg::new();
    let _ = m.write_fmt(args);
    m
}

/// Fails the check with a formatted message unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)*) => {
        if !$cond {
            return Err(msg(format_args!($($fmt)*)));
        }
    };
}

/// `Ok(v)` of a call, or fails the check naming the call and its error.
macro_rules! ok {
    ($call:expr) => {
        match $call {
            Ok(v) => v,
            Err(e) => return Err(msg(format_args!("{} failed: {:?}", stringify!($call), e))),
        }
    };
}

/// Fails unless `result` is `Err(want)`.
fn expect_err<T: fmt::Debug>(what: &str, result: Result<T, Errno>, want: Errno) -> Outcome {
    match result {
        Err(e) if e == want => Ok(()),
        other => Err(msg(format_args!("{what}: got {other:?}, expected {want}"))),
    }
}

/// Runs `f(arg)` in a forked child (which then exits 0) and checks that
/// the child ends as `want`.
fn in_child(what: &str, f: fn(u64), arg: u64, want: WaitStatus) -> Outcome {
    match ok!(process::fork()) {
        Fork::Child => {
            f(arg);
            process::exit(0)
        }
        Fork::Parent(pid) => {
            let status = ok!(process::wait(pid));
            ensure!(status == want, "{what}: child {status}, expected {want}");
            Ok(())
        }
    }
}

fn killed(what: &str, f: fn(u64), arg: u64, reason: KillReason) -> Outcome {
    in_child(what, f, arg, WaitStatus::Killed(reason))
}

fn read_at(addr: u64) {
    // SAFETY: deliberately not: the test expects the kernel to kill us.
    unsafe { read_volatile(addr as *const u64) };
}

fn write_at(addr: u64) {
    // SAFETY: as read_at.
    unsafe { write_volatile(addr as *mut u64, 0x5555) };
}

fn call_at(addr: u64) {
    // SAFETY: `addr` holds a `ret` instruction (or the kernel kills us).
    let f: extern "C" fn() = unsafe { core::mem::transmute(addr as usize) };
    f();
}

const CHECKS: &[(&str, Check)] = &[
    ("basics", basics),
    ("shared-page", shared_page_check),
    ("fork-cow", fork_cow),
    ("exec-argv", exec_argv),
    ("exec-errors", exec_errors),
    ("wait-status", wait_status),
    ("threads", threads_every_cpu),
    ("mmap", mmap_semantics),
    ("munmap-kills", munmap_kills),
    ("mprotect", mprotect_semantics),
    ("regions", region_merging),
    ("kernel-access", kernel_access),
    ("bad-syscalls", bad_syscalls),
];

/// Set before the exec check; a fresh image must see it 0.
static MARK: AtomicU64 = AtomicU64::new(0);
const ARGV_CHILD_STATUS: i32 = 42;

fn main() -> i32 {
    if arg(1) == Some("child-argv") {
        return argv_child();
    }
    println!(
        "usertest: {} checks, pid {}, {} cpus",
        CHECKS.len(),
        sys::getpid(),
        sys::ncpus()
    );
    let (mut passed, mut failed) = (0u64, 0u64);
    for (name, check) in CHECKS {
        let result = check();
        let mut metric = LineBuf::<64>::new();
        let _ = write!(metric, "usertest.{name}");
        report::metric(metric.as_str(), u64::from(result.is_ok()), "bool");
        match result {
            Ok(()) => {
                println!("usertest: {name} ok");
                passed += 1;
            }
            Err(why) => {
                report::error("usertest", format_args!("{name}: {}", why.as_str()));
                failed += 1;
            }
        }
    }
    report::metric("usertest.passed", passed, "count");
    report::metric("usertest.failed", failed, "count");
    println!("usertest: {passed} passed, {failed} failed");
    i32::from(failed > 0)
}

fn basics() -> Outcome {
    let pid = sys::getpid();
    ensure!(pid > 0, "getpid = 0");
    ensure!(
        sys::gettid() == pid,
        "main thread tid {} != pid {pid}",
        sys::gettid()
    );
    let cpus = sys::ncpus();
    ensure!((1..=64).contains(&cpus), "ncpus = {cpus}");
    ensure!(
        sys::getcpu() < cpus,
        "getcpu {} >= ncpus {cpus}",
        sys::getcpu()
    );
    let (c1, t1) = (sys::clock(), now_ns());
    sys::yield_now();
    let (c2, t2) = (sys::clock(), now_ns());
    ensure!(c1 > 0 && c2 >= c1, "clock not monotonic: {c1} then {c2}");
    ensure!(t2 >= t1, "shared-page clock not monotonic: {t1} then {t2}");
    ensure!(
        argc() >= 1 && arg(0) == Some("usertest"),
        "argv[0] = {:?}",
        arg(0)
    );
    ok!(sys::write(1, b""));
    Ok(())
}

fn shared_page_check() -> Outcome {
    let page = shared_page();
    ensure!(page.magic == SHARED_PAGE_MAGIC, "magic {:#x}", page.magic);
    ensure!(
        page.ncpus == sys::ncpus(),
        "ncpus {} != {}",
        page.ncpus,
        sys::ncpus()
    );
    // Read-only for user mode.
    killed(
        "write to the shared page",
        write_at,
        SHARED_PAGE_VA,
        KillReason::PageFault,
    )
}

static COW_DATA: AtomicU64 = AtomicU64::new(0);

fn fork_cow() -> Outcome {
    let page = ok!(mem::map_rw(PAGE_SIZE));
    let mut on_stack = 1u64;
    COW_DATA.store(1, Ordering::Relaxed);
    // SAFETY: our mapping.
    unsafe { write_volatile(page as *mut u64, 1) };
    let stack_addr = &mut on_stack as *mut u64 as u64;
    let values = || {
        // SAFETY: the three words are ours in either process.
        unsafe {
            [
                COW_DATA.load(Ordering::Relaxed),
                read_volatile(stack_addr as *const u64),
                read_volatile(page as *const u64),
            ]
        }
    };
    let set = |v: u64| {
        COW_DATA.store(v, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe {
            write_volatile(stack_addr as *mut u64, v);
            write_volatile(page as *mut u64, v);
        }
    };
    match ok!(process::fork()) {
        Fork::Child => {
            // Let the parent write first (if it runs), then check we do
            // not see its writes, and that ours stick.
            sleep_ns(2_000_000);
            let before = values();
            set(2);
            let after = values();
            process::exit(if before == [1; 3] && after == [2; 3] {
                0
            } else {
                1
            })
        }
        Fork::Parent(pid) => {
            set(3);
            let status = ok!(process::wait(pid));
            ensure!(
                status == WaitStatus::Exited(0),
                "child saw the parent's writes or lost its own: {status}"
            );
            ensure!(
                values() == [3; 3],
                "parent sees {:?} after the child wrote 2",
                values()
            );
        }
    }
    // SAFETY: no longer used.
    ok!(unsafe { mem::munmap(page, PAGE_SIZE) });
    Ok(())
}

fn argv_child() -> i32 {
    let ok = argc() == 4
        && arg(0) == Some("usertest")
        && arg(1) == Some("child-argv")
        && arg(2) == Some("hello world")
        && arg(3) == Some("")
        && MARK.load(Ordering::Relaxed) == 0;
    if ok {
        ARGV_CHILD_STATUS
    } else {
        println!(
            "usertest child-argv: argc {} argv {:?} {:?} {:?}",
            argc(),
            arg(0),
            arg(1),
            arg(2)
        );
        1
    }
}

fn exec_argv() -> Outcome {
    MARK.store(7, Ordering::Relaxed);
    let pid = ok!(process::spawn(
        "usertest",
        &["usertest", "child-argv", "hello world", ""]
    ));
    let status = ok!(process::wait(pid));
    ensure!(
        status == WaitStatus::Exited(ARGV_CHILD_STATUS),
        "re-exec'd child {status}"
    );
    Ok(())
}

fn exec_errors() -> Outcome {
    // Failing execs return to the caller, which keeps running.
    let e = process::exec("no-such-program", &["no-such-program"]);
    ensure!(e == Errno::ENOENT, "exec of a missing program: {e}");
    let e = sys::exec_packed("usertest", b"not-nul-terminated");
    ensure!(e == Errno::EINVAL, "exec with a malformed argv: {e}");
    // SAFETY: kernel pointers on purpose; the kernel must only read them.
    let r = unsafe { sys::raw(Sys::Exec as u64, [0xffff_8000_0000_0000, 8, 0, 0, 0, 0]) };
    expect_err(
        "exec with a kernel name pointer",
        lab_core::syscall::decode_result(r),
        Errno::EFAULT,
    )
}

fn exit_with(status: u64) {
    process::exit(status as i64 as i32)
}

fn wait_status() -> Outcome {
    in_child("exit(7)", exit_with, 7, WaitStatus::Exited(7))?;
    in_child("exit(-3)", exit_with, -3i64 as u64, WaitStatus::Exited(-3))?;
    in_child("return from a child", |_| {}, 0, WaitStatus::Exited(0))?;
    let pid = match ok!(process::fork()) {
        Fork::Child => {
            sleep_ns(5_000_000);
            process::exit(9)
        }
        Fork::Parent(pid) => pid,
    };
    // Usually still running: NOHANG must not block either way.
    let early = ok!(sys::waitpid(pid as i64, WaitFlags::NOHANG));
    let status = match early {
        Some((p, status)) => {
            ensure!(p == pid, "NOHANG reaped {p}, expected {pid}");
            status
        }
        None => ok!(process::wait(pid)),
    };
    ensure!(
        status == WaitStatus::Exited(9),
        "child {status}, expected exit 9"
    );
    expect_err(
        "waitpid of a reaped child",
        sys::waitpid(pid as i64, WaitFlags::NONE),
        Errno::ECHILD,
    )?;
    expect_err(
        "waitpid(-1) with no children",
        sys::waitpid(-1, WaitFlags::NONE),
        Errno::ECHILD,
    )?;
    expect_err(
        "waitpid of pid 1 (not a child)",
        sys::waitpid(1, WaitFlags::NONE),
        Errno::ECHILD,
    )?;
    expect_err(
        "waitpid with bad flags",
        sys::waitpid(-1, WaitFlags(4)),
        Errno::EINVAL,
    )
}

static THREAD_SEEN: AtomicU64 = AtomicU64::new(0);

fn threads_every_cpu() -> Outcome {
    let cpus = sys::ncpus() as usize;
    let pid = sys::getpid();
    THREAD_SEEN.store(0, Ordering::Relaxed);
    let mut handles: [Option<JoinHandle>; 64] = [const { None }; 64];
    for (i, slot) in handles[..cpus].iter_mut().enumerate() {
        *slot = Some(ok!(thread::spawn(move || {
            if sys::pin(Some(i as u32)).is_err() {
                return 1000;
            }
            let mut wrong = 0;
            for _ in 0..10 {
                wrong += u64::from(sys::getcpu() != i as u32);
                sys::yield_now();
            }
            if sys::getpid() != pid || sys::gettid() == pid {
                wrong += 100;
            }
            THREAD_SEEN.fetch_or(1 << i, Ordering::Relaxed);
            wrong
        })));
    }
    let tids: [u64; 64] = core::array::from_fn(|i| handles[i].as_ref().map_or(0, |h| h.tid()));
    let mut wrong = 0;
    for slot in handles[..cpus].iter_mut() {
        wrong += ok!(slot.take().unwrap().join());
    }
    ensure!(
        wrong == 0,
        "threads ran off their pinned CPU or saw wrong ids (score {wrong})"
    );
    let seen = THREAD_SEEN.load(Ordering::Relaxed);
    ensure!(
        seen == CpuSet::first(cpus as u32).0,
        "threads seen {seen:#x}"
    );
    expect_err(
        "join of a joined thread",
        sys::thread_join(tids[0]),
        Errno::ESRCH,
    )?;
    expect_err(
        "join of oneself",
        sys::thread_join(sys::gettid()),
        Errno::EDEADLK,
    )?;
    ok!(sys::pin(None));
    Ok(())
}

fn word(addr: u64, page: u64) -> u64 {
    // SAFETY: callers pass mapped readable pages.
    unsafe { read_volatile((addr + page * PAGE_SIZE) as *const u64) }
}

fn set_word(addr: u64, page: u64, v: u64) {
    // SAFETY: callers pass mapped writable pages.
    unsafe { write_volatile((addr + page * PAGE_SIZE) as *mut u64, v) }
}

fn mmap_semantics() -> Outcome {
    let a = ok!(mem::map_rw(4 * PAGE_SIZE));
    ensure!(
        a % PAGE_SIZE == 0 && a + 4 * PAGE_SIZE <= USER_END,
        "mmap returned {a:#x}"
    );
    for p in 0..4 {
        ensure!(word(a, p) == 0, "page {p} not zero-filled");
        // SAFETY: our mapping.
        let last = unsafe { read_volatile((a + (p + 1) * PAGE_SIZE - 8) as *const u64) };
        ensure!(last == 0, "end of page {p} not zero-filled");
        set_word(a, p, 100 + p);
    }
    // FIXED replaces page 2 with fresh zero-fill and leaves the others.
    let got = ok!(mem::mmap(
        a + 2 * PAGE_SIZE,
        PAGE_SIZE,
        Prot::RW,
        MapFlags::FIXED
    ));
    ensure!(got == a + 2 * PAGE_SIZE, "mmap FIXED placed at {got:#x}");
    ensure!(word(a, 2) == 0, "FIXED replacement not zero-filled");
    ensure!(
        word(a, 1) == 101 && word(a, 3) == 103,
        "FIXED disturbed its neighbours"
    );
    // A hint is not an order, but the result must be a fresh, usable range.
    let b = ok!(mem::mmap(a, PAGE_SIZE, Prot::RW, MapFlags::NONE));
    ensure!(b != a, "a hint over a mapped range replaced it");
    set_word(b, 0, 5);
    // Bad arguments.
    expect_err(
        "mmap len 0",
        mem::mmap(0, 0, Prot::RW, MapFlags::NONE),
        Errno::EINVAL,
    )?;
    expect_err(
        "mmap bad prot",
        mem::mmap(0, PAGE_SIZE, Prot(8), MapFlags::NONE),
        Errno::EINVAL,
    )?;
    expect_err(
        "mmap bad flags",
        mem::mmap(0, PAGE_SIZE, Prot::RW, MapFlags(2)),
        Errno::EINVAL,
    )?;
    expect_err(
        "mmap FIXED unaligned",
        mem::mmap(a + 8, PAGE_SIZE, Prot::RW, MapFlags::FIXED),
        Errno::EINVAL,
    )?;
    expect_err(
        "mmap FIXED in the kernel",
        mem::mmap(0xffff_8000_0000_0000, PAGE_SIZE, Prot::RW, MapFlags::FIXED),
        Errno::EINVAL,
    )?;
    expect_err(
        "mmap FIXED over the shared page",
        mem::mmap(SHARED_PAGE_VA, PAGE_SIZE, Prot::RW, MapFlags::FIXED),
        Errno::EINVAL,
    )?;
    expect_err(
        "mmap len past user space",
        mem::mmap(0, u64::MAX - 4095, Prot::RW, MapFlags::NONE),
        Errno::EINVAL,
    )
    .or_else(|_| {
        expect_err(
            "mmap huge",
            mem::mmap(0, u64::MAX - 4095, Prot::RW, MapFlags::NONE),
            Errno::ENOMEM,
        )
    })?;
    // SAFETY: bad arguments: the kernel must reject them without unmapping.
    unsafe {
        expect_err(
            "munmap unaligned",
            mem::munmap(a + 1, PAGE_SIZE),
            Errno::EINVAL,
        )?;
        expect_err("munmap len 0", mem::munmap(a, 0), Errno::EINVAL)?;
        expect_err(
            "munmap of the kernel",
            mem::munmap(0xffff_8000_0000_0000, PAGE_SIZE),
            Errno::EINVAL,
        )?;
    }
    ensure!(word(a, 0) == 100, "a rejected munmap changed the mapping");
    // SAFETY: not used afterwards.
    unsafe {
        ok!(mem::munmap(a, 4 * PAGE_SIZE));
        ok!(mem::munmap(b, PAGE_SIZE));
    }
    Ok(())
}

fn munmap_kills() -> Outcome {
    let a = ok!(mem::map_rw(3 * PAGE_SIZE));
    for p in 0..3 {
        set_word(a, p, 7);
    }
    // SAFETY: the middle page is not used by this process afterwards.
    ok!(unsafe { mem::munmap(a + PAGE_SIZE, PAGE_SIZE) });
    killed(
        "read after munmap",
        read_at,
        a + PAGE_SIZE,
        KillReason::PageFault,
    )?;
    killed(
        "write after munmap",
        write_at,
        a + PAGE_SIZE,
        KillReason::PageFault,
    )?;
    ensure!(
        word(a, 0) == 7 && word(a, 2) == 7,
        "munmap of the middle page disturbed its neighbours"
    );
    // Unmapping a range with a hole in it is fine.
    // SAFETY: not used afterwards.
    ok!(unsafe { mem::munmap(a, 3 * PAGE_SIZE) });
    killed(
        "read after the second munmap",
        read_at,
        a,
        KillReason::PageFault,
    )
}

fn mprotect_semantics() -> Outcome {
    let a = ok!(mem::map_rw(2 * PAGE_SIZE));
    set_word(a, 0, 11);
    // SAFETY: we only read page 0 while it is read-only.
    ok!(unsafe { mem::mprotect(a, PAGE_SIZE, Prot::READ) });
    ensure!(word(a, 0) == 11, "read-only page lost its contents");
    in_child(
        "read of a read-only page",
        read_at,
        a,
        WaitStatus::Exited(0),
    )?;
    killed(
        "write to a read-only page",
        write_at,
        a,
        KillReason::PageFault,
    )?;
    // Page 1 is untouched by the mprotect of page 0.
    in_child(
        "write next to a read-only page",
        write_at,
        a + PAGE_SIZE,
        WaitStatus::Exited(0),
    )?;
    // SAFETY: as above, nothing touches page 0 while it is inaccessible.
    ok!(unsafe { mem::mprotect(a, PAGE_SIZE, Prot::NONE) });
    killed(
        "read of a PROT_NONE page",
        read_at,
        a,
        KillReason::PageFault,
    )?;
    // SAFETY: read-write again.
    ok!(unsafe { mem::mprotect(a, PAGE_SIZE, Prot::RW) });
    set_word(a, 0, 12);
    ensure!(word(a, 0) == 12, "write after mprotect RW lost");
    // Execute permission: a `ret` runs only from an EXEC page.
    // SAFETY: our page; a single `ret` (0xc3).
    unsafe { write_volatile(a as *mut u8, 0xc3) };
    killed(
        "call into a non-exec page",
        call_at,
        a,
        KillReason::PageFault,
    )?;
    // SAFETY: page 0 becomes read+exec and is only called.
    ok!(unsafe { mem::mprotect(a, PAGE_SIZE, Prot::READ.union(Prot::EXEC)) });
    in_child("call into an exec page", call_at, a, WaitStatus::Exited(0))?;
    // Bad arguments.
    // SAFETY: rejected calls change nothing.
    unsafe {
        expect_err(
            "mprotect unaligned",
            mem::mprotect(a + 4, PAGE_SIZE, Prot::READ),
            Errno::EINVAL,
        )?;
        expect_err(
            "mprotect bad prot",
            mem::mprotect(a, PAGE_SIZE, Prot(8)),
            Errno::EINVAL,
        )?;
        ok!(mem::munmap(a, 2 * PAGE_SIZE));
        expect_err(
            "mprotect of an unmapped range",
            mem::mprotect(a, PAGE_SIZE, Prot::READ),
            Errno::ENOMEM,
        )
    }
}

/// Region bookkeeping seen from user space: an mprotect that changes
/// nothing splits nothing, and pages whose protection is changed and
/// changed back join their region again (as BSD's vm_map_simplify_entry).
/// Each call below would otherwise leave the map one or two regions
/// larger; more of them than limits::REGIONS_PER_PROC (256) would end in
/// ENOMEM.
fn region_merging() -> Outcome {
    const CALLS: u64 = 300;
    let a = ok!(mem::map_rw((CALLS + 2) * PAGE_SIZE));
    set_word(a, 1, 77);
    set_word(a, CALLS, 78);
    for i in 1..=CALLS {
        // SAFETY: our own mapping; the protection ends as it began.
        unsafe {
            if let Err(e) = mem::mprotect(a + i * PAGE_SIZE, PAGE_SIZE, Prot::RW) {
                return Err(msg(format_args!("mprotect {i} changing nothing: {e}")));
            }
            if let Err(e) = mem::mprotect(a + i * PAGE_SIZE, PAGE_SIZE, Prot::READ) {
                return Err(msg(format_args!("mprotect {i} to read-only: {e}")));
            }
            if let Err(e) = mem::mprotect(a + i * PAGE_SIZE, PAGE_SIZE, Prot::RW) {
                return Err(msg(format_args!("mprotect {i} back: {e}")));
            }
        }
    }
    ensure!(
        word(a, 1) == 77 && word(a, CALLS) == 78,
        "mprotect round trips changed the contents"
    );
    // Still writable everywhere, the joined pages included.
    set_word(a, 1, 79);
    ensure!(word(a, 1) == 79, "write after the round trips lost");
    // SAFETY: ours, no longer used.
    ok!(unsafe { mem::munmap(a, (CALLS + 2) * PAGE_SIZE) });
    Ok(())
}

fn kernel_access() -> Outcome {
    killed(
        "read of the direct map",
        read_at,
        0xffff_8000_0000_0000,
        KillReason::PageFault,
    )?;
    killed(
        "read of the kernel image",
        read_at,
        0xffff_ffff_8010_0000,
        KillReason::PageFault,
    )?;
    killed(
        "write to the kernel image",
        write_at,
        0xffff_ffff_8010_0000,
        KillReason::PageFault,
    )?;
    killed("read of page 0", read_at, 0, KillReason::PageFault)?;
    killed(
        "read of a non-canonical address",
        read_at,
        0x8000_0000_0000_0000,
        KillReason::GeneralProtection,
    )
}

fn bad_syscalls() -> Outcome {
    let call = |n: u64, a: [u64; 6]| {
        // SAFETY: every pointer passed below is deliberately invalid or
        // points at memory the kernel may only read.
        lab_core::syscall::decode_result(unsafe { sys::raw(n, a) })
    };
    let kernel = 0xffff_8000_0000_0000u64;
    let text = b"x";
    let t = text.as_ptr() as u64;
    expect_err("unknown call 999", call(999, [0; 6]), Errno::ENOSYS)?;
    expect_err(
        "unknown call u64::MAX",
        call(u64::MAX, [0; 6]),
        Errno::ENOSYS,
    )?;
    expect_err(
        "write from a kernel pointer",
        call(Sys::Write as u64, [1, kernel, 8, 0, 0, 0]),
        Errno::EFAULT,
    )?;
    expect_err(
        "write from null",
        call(Sys::Write as u64, [1, 0, 8, 0, 0, 0]),
        Errno::EFAULT,
    )?;
    expect_err(
        "write running past user space",
        call(Sys::Write as u64, [1, t, u64::MAX - t, 0, 0, 0]),
        Errno::EFAULT,
    )?;
    expect_err("write to fd 5", sys::write(5, text), Errno::EBADF)?;
    expect_err(
        "getparam of an undeclared key",
        sys::getparam("nope", &mut [0; 8]),
        Errno::ENOENT,
    )?;
    expect_err(
        "getparam with a kernel key",
        call(Sys::Getparam as u64, [kernel, 4, 0, 0, 0, 0]),
        Errno::EFAULT,
    )?;
    expect_err(
        "report_metric with a bad name",
        sys::report_metric("Bad Name", 1, "count", Scope::Global),
        Errno::EINVAL,
    )?;
    expect_err(
        "report_metric with a bad unit",
        sys::report_metric("usertest.x", 1, "a b", Scope::Global),
        Errno::EINVAL,
    )?;
    let name = "usertest.x";
    let unit = "count";
    expect_err(
        "report_metric with a bad scope",
        call(
            Sys::ReportMetric as u64,
            [
                name.as_ptr() as u64,
                name.len() as u64,
                1,
                unit.as_ptr() as u64,
                unit.len() as u64,
                3 << 62,
            ],
        ),
        Errno::EINVAL,
    )?;
    expect_err(
        "report_error with a kernel message",
        call(Sys::ReportError as u64, [t, 1, kernel, 8, 0, 0]),
        Errno::EFAULT,
    )?;
    let cpus = sys::ncpus();
    expect_err("pin to CPU ncpus", sys::pin(Some(cpus)), Errno::EINVAL)?;
    expect_err(
        "pin to -2",
        call(Sys::Pin as u64, [-2i64 as u64, 0, 0, 0, 0, 0]),
        Errno::EINVAL,
    )?;
    expect_err("thread_join of tid 0", sys::thread_join(0), Errno::ESRCH)?;
    let stack = ok!(mem::map_rw(PAGE_SIZE));
    // SAFETY: both calls must be rejected before a thread starts.
    unsafe {
        expect_err(
            "thread_create with an unaligned stack",
            sys::thread_create(t, 0, stack + 8),
            Errno::EINVAL,
        )?;
        expect_err(
            "thread_create at a kernel entry",
            sys::thread_create(kernel, 0, stack + PAGE_SIZE),
            Errno::EINVAL,
        )?;
        ok!(mem::munmap(stack, PAGE_SIZE));
    }
    // waitpid's status pointer is checked before the child is reaped.
    let pid = match ok!(process::fork()) {
        Fork::Child => process::exit(0),
        Fork::Parent(pid) => pid,
    };
    expect_err(
        "waitpid into a kernel pointer",
        call(Sys::Waitpid as u64, [pid, kernel, 0, 0, 0, 0]),
        Errno::EFAULT,
    )?;
    let status = ok!(process::wait(pid));
    ensure!(
        status == WaitStatus::Exited(0),
        "child after a failed waitpid: {status}"
    );
    ensure!(encode_scope(Scope::Cpu(0)).is_some(), "scope encoding");
    Ok(())
}
