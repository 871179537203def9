//! `coherence`: the stale-TLB oracle.
//!
//! Reader threads, pinned one per other CPU, keep accessing a page while
//! the writer (this program's first thread, pinned to CPU 0) changes its
//! mapping with a system call. The ABI promises (lab_core::syscall) that
//! when `mmap`/`munmap`/`mprotect` returns, the change is visible on every
//! CPU: every other CPU's stale translation has been shot down. The oracle
//! checks exactly that promise, and nothing stronger: an access is *stale*
//! only if it is ordered after the writer's call returned and still used
//! the old translation.
//!
//! "Ordered after" is made observable by an epoch, a shared atomic that the
//! writer stores (release) right after the call returns; a reader loads it
//! (acquire) right before each access. x86 keeps a thread's loads in order
//! (and acquire keeps the compiler from reordering), so an access preceded
//! by a load that saw the post-call epoch happened after the call returned.
//! The reader also loads the epoch after the access; equal before/after
//! loads count as "quiet" checks (no change in flight), reported as a
//! figure only.
//!
//! # Modes
//!
//! **remap** (in one process; the volume of checks). The page at address A
//! holds, in its first word, the *tag* of its generation g: `g` in the low
//! 32 bits and `g ^ TAG_MAGIC` in the high 32 (so no other value, e.g. zero
//! fill or the poison below, looks like a tag). Generation g is made by:
//! epoch = 2g-1 (odd: change in flight); `mmap(A, FIXED)` (replaces the
//! old frame by a fresh zero-fill mapping, atomically for the other
//! threads); the writer then touches one page of a new *decoy* mapping and
//! writes POISON in it; writes tag(g) in A; epoch = 2g. A reader that
//! loaded epoch e and then read x from A saw a stale frame if
//! - x is a tag of generation t < e / 2 (a frame whose replacement had
//!   returned before epoch e was published), or
//! - x is neither zero nor a tag (the old frame, freed and reused: the
//!   decoy takes it first when the allocator reuses the last freed frame,
//!   and fills it with POISON, so a stale translation cannot land on the
//!   new generation's frame and go unseen; any other reuse shows other
//!   bytes).
//!
//! Zero is never counted: it is the new frame before its tag is written.
//! The previous decoy is unmapped once the next one exists.
//!
//! **munmap** and **mprotect** (one child process per round; the kernel
//! kills a process on an access it cannot resolve, so in a correct kernel
//! every round *ends in that kill*, and that is the passing outcome). The
//! child maps A, starts the readers, waits until each has accessed A at
//! least WARM times (their TLBs hold A), then calls `munmap(A)` (readers
//! read A) or `mprotect(A, READ)` (readers write their own word of A) and
//! stores the epoch CHANGED. A reader that loaded CHANGED and then
//! completed its access saw a stale translation: it exits the child with
//! STALE_STATUS. In mprotect mode the writer also snapshots the readers'
//! words after the call and again after the grace period: a difference is
//! a write that landed after mprotect returned (stale too). If the child is
//! still alive after GRACE_NS, it exits with INCONCLUSIVE_STATUS (no reader
//! accessed A after the change: counted, neither pass nor stale). The
//! parent counts `Killed(page-fault)` as a pass.
//!
//! Figures: `coherence.remap.checks`, `.remap.quiet_checks`,
//! `.remap.stale`, `.remaps`, `coherence.<munmap|mprotect>.rounds`,
//! `.passed`, `.stale`, `.inconclusive`; `coherence.checks` (remap checks
//! plus decided rounds) and `coherence.stale` (all stale accesses, 0 in a
//! correct pmap), `coherence.elapsed_ns` (guest time of all modes), and the
//! canonical `workload.ops` (= checks) and `workload.elapsed_ns`. Any stale
//! access is also an `error` record.
//!
//! Volume: a remap-mode reader makes one check per loop of a few loads, so
//! the checks grow with the time the remaps take, not with their number;
//! under TCG on 4 CPUs the default 100 remaps take about a second and give
//! tens of millions of checks (the test asserts at least 1,000,000).
#![no_std]
#![no_main]

use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use lab_core::syscall::{MapFlags, Prot, PAGE_SIZE};
use ulib::process::{self, Fork};
use ulib::thread::{self, JoinHandle};
use ulib::time::{now_ns, sleep_ns};
use ulib::{mem, param, println, report, KillReason, WaitStatus};

ulib::main!(main);

const MAX_READERS: usize = 63;
const TAG_MAGIC: u32 = 0x5a17_c0de;
const POISON: u64 = 0xdead_beef_dead_beef;
/// Accesses each reader makes before a round's change.
const WARM: u64 = 1000;
/// How long a round's child waits for a reader to access A after the
/// change before giving up.
const GRACE_NS: u64 = 20_000_000;
/// How long it waits for the readers to warm up.
const WARM_TIMEOUT_NS: u64 = 2_000_000_000;
const STALE_STATUS: i32 = 3;
const INCONCLUSIVE_STATUS: i32 = 2;

const PHASE_MAPPED: u64 = 1;
const PHASE_CHANGED: u64 = 2;

static EPOCH: AtomicU64 = AtomicU64::new(0);
static TARGET: AtomicU64 = AtomicU64::new(0);
static STOP: AtomicBool = AtomicBool::new(false);
static READY: AtomicU64 = AtomicU64::new(0);
static STALE: AtomicU64 = AtomicU64::new(0);
static QUIET: AtomicU64 = AtomicU64::new(0);
/// The first stale remap read: epoch and value.
static FIRST_STALE: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];
/// Accesses per reader in a round.
static ACCESSES: [AtomicU64; MAX_READERS] = [const { AtomicU64::new(0) }; MAX_READERS];

const fn tag(g: u64) -> u64 {
    let g = g as u32;
    ((g ^ TAG_MAGIC) as u64) << 32 | g as u64
}

/// The generation of tag `x`, if it is one.
const fn tag_gen(x: u64) -> Option<u64> {
    let low = x as u32;
    if (x >> 32) as u32 == low ^ TAG_MAGIC {
        Some(low as u64)
    } else {
        None
    }
}

/// Whether value `x` read after loading epoch `e` is stale (remap mode).
const fn is_stale(e: u64, x: u64) -> bool {
    if x == 0 {
        return false;
    }
    match tag_gen(x) {
        Some(t) => t < e / 2,
        None => true,
    }
}

#[derive(Default)]
struct Rounds {
    rounds: u64,
    passed: u64,
    stale: u64,
    inconclusive: u64,
}

fn main() -> i32 {
    let mode = param::raw("mode");
    let mode = mode.as_str();
    let remaps = param::u64("remaps");
    let rounds = param::u64("rounds");
    let cpus = thread::ncpus();
    let readers = match param::u64("readers") {
        0 => (cpus as usize - 1).max(1),
        n => n as usize,
    }
    .min(MAX_READERS);
    println!(
        "coherence: mode={mode} remaps={remaps} rounds={rounds} readers={readers} cpus={cpus}"
    );
    thread::pin(Some(0)).expect("pin writer");

    let start = now_ns();
    let mut checks = 0;
    let mut stale = 0;
    if mode == "all" || mode == "remap" {
        let (c, s) = remap(readers, remaps);
        checks += c;
        stale += s;
    }
    for (name, write) in [("munmap", false), ("mprotect", true)] {
        if mode != "all" && mode != name {
            continue;
        }
        let r = round_trips(name, write, readers, rounds);
        checks += r.passed + r.stale;
        stale += r.stale;
    }
    report::metric("coherence.readers", readers as u64, "count");
    report::metric("coherence.checks", checks, "count");
    report::metric("coherence.stale", stale, "count");
    let elapsed = now_ns() - start;
    report::metric("coherence.elapsed_ns", elapsed, "ns");
    report::workload(checks, elapsed);
    println!("coherence: {checks} checks, {stale} stale");
    if stale > 0 {
        report::error(
            "coherence",
            format_args!("{stale} stale accesses after a mapping change returned"),
        );
        return 1;
    }
    0
}

/// The CPU of reader i: the CPUs other than the writer's, round robin.
fn reader_cpu(i: usize, cpus: u32) -> Option<u32> {
    (cpus > 1).then(|| 1 + i as u32 % (cpus - 1))
}

fn spawn_readers(readers: usize, handles: &mut [Option<JoinHandle>], body: fn(usize, u64) -> u64) {
    let cpus = thread::ncpus();
    for (i, slot) in handles[..readers].iter_mut().enumerate() {
        let a = TARGET.load(Ordering::Relaxed);
        let h = thread::spawn(move || {
            thread::pin(reader_cpu(i, cpus)).expect("pin reader");
            READY.fetch_add(1, Ordering::AcqRel);
            body(i, a)
        })
        .expect("spawn reader");
        *slot = Some(h);
    }
    while READY.load(Ordering::Acquire) < readers as u64 {
        thread::yield_now();
    }
}

/// Remap mode; returns (checks, stale).
fn remap(readers: usize, remaps: u64) -> (u64, u64) {
    let a = mem::map_rw(PAGE_SIZE).expect("mmap target");
    // SAFETY: our fresh mapping; readers only read it.
    unsafe { write_volatile(a as *mut u64, tag(1)) };
    TARGET.store(a, Ordering::Relaxed);
    EPOCH.store(2, Ordering::Release);
    STOP.store(false, Ordering::Relaxed);
    READY.store(0, Ordering::Relaxed);

    let mut handles: [Option<JoinHandle>; MAX_READERS] = [const { None }; MAX_READERS];
    spawn_readers(readers, &mut handles, remap_reader);
    let start = now_ns();
    let mut prev_decoy = 0;
    for g in 2..remaps + 2 {
        EPOCH.store(2 * g - 1, Ordering::Release);
        let got = mem::mmap(a, PAGE_SIZE, Prot::RW, MapFlags::FIXED).expect("mmap FIXED");
        assert_eq!(got, a, "mmap FIXED moved the target");
        let decoy = mem::map_rw(PAGE_SIZE).expect("mmap decoy");
        // SAFETY: our fresh decoy mapping; A is ours and readers only read
        // it.
        unsafe {
            write_volatile(decoy as *mut u64, POISON);
            write_volatile(a as *mut u64, tag(g));
        }
        EPOCH.store(2 * g, Ordering::Release);
        if prev_decoy != 0 {
            // SAFETY: nobody uses an old decoy.
            unsafe { mem::munmap(prev_decoy, PAGE_SIZE) }.expect("munmap decoy");
        }
        prev_decoy = decoy;
    }
    let elapsed = now_ns() - start;
    STOP.store(true, Ordering::Relaxed);
    let checks = thread::join_all(&mut handles);
    // SAFETY: the readers are gone.
    unsafe {
        mem::munmap(prev_decoy, PAGE_SIZE).expect("munmap decoy");
        mem::munmap(a, PAGE_SIZE).expect("munmap target");
    }
    let stale = STALE.load(Ordering::Relaxed);
    report::metric("coherence.remaps", remaps, "count");
    report::metric("coherence.remap.elapsed_ns", elapsed, "ns");
    report::metric("coherence.remap.checks", checks, "count");
    report::metric(
        "coherence.remap.quiet_checks",
        QUIET.load(Ordering::Relaxed),
        "count",
    );
    report::metric("coherence.remap.stale", stale, "count");
    if stale > 0 {
        let (e, x) = (
            FIRST_STALE[0].load(Ordering::Relaxed),
            FIRST_STALE[1].load(Ordering::Relaxed),
        );
        report::error(
            "coherence",
            format_args!("remap: {stale} stale reads; first read {x:#x} after epoch {e} (generation {} current)", e / 2),
        );
    }
    (checks, stale)
}

/// A remap-mode reader: returns its checks.
fn remap_reader(_: usize, a: u64) -> u64 {
    let (mut checks, mut quiet) = (0u64, 0u64);
    while !STOP.load(Ordering::Relaxed) {
        for _ in 0..256 {
            let e1 = EPOCH.load(Ordering::Acquire);
            // SAFETY: A is always mapped while readers run (FIXED replaces
            // it atomically with respect to this thread).
            let x = unsafe { read_volatile(a as *const u64) };
            let e2 = EPOCH.load(Ordering::Acquire);
            checks += 1;
            quiet += u64::from(e1 == e2);
            if is_stale(e1, x) && STALE.fetch_add(1, Ordering::Relaxed) == 0 {
                FIRST_STALE[0].store(e1, Ordering::Relaxed);
                FIRST_STALE[1].store(x, Ordering::Relaxed);
            }
        }
    }
    QUIET.fetch_add(quiet, Ordering::Relaxed);
    checks
}

/// munmap or mprotect mode: `rounds` child processes.
fn round_trips(name: &str, write: bool, readers: usize, rounds: u64) -> Rounds {
    let mut r = Rounds::default();
    for round in 0..rounds {
        let pid = match process::fork() {
            Ok(Fork::Child) => process::exit(round_child(write, readers)),
            Ok(Fork::Parent(pid)) => pid,
            Err(e) => {
                report::error("coherence", format_args!("{name} round {round}: fork: {e}"));
                break;
            }
        };
        r.rounds += 1;
        match process::wait(pid) {
            Ok(WaitStatus::Killed(KillReason::PageFault)) => r.passed += 1,
            Ok(WaitStatus::Exited(STALE_STATUS)) => r.stale += 1,
            Ok(WaitStatus::Exited(INCONCLUSIVE_STATUS)) => r.inconclusive += 1,
            Ok(status) => report::error(
                "coherence",
                format_args!("{name} round {round}: child {status}"),
            ),
            Err(e) => report::error(
                "coherence",
                format_args!("{name} round {round}: waitpid: {e}"),
            ),
        }
    }
    report::metric_fmt(format_args!("coherence.{name}.rounds"), r.rounds, "count");
    report::metric_fmt(format_args!("coherence.{name}.passed"), r.passed, "count");
    report::metric_fmt(format_args!("coherence.{name}.stale"), r.stale, "count");
    report::metric_fmt(
        format_args!("coherence.{name}.inconclusive"),
        r.inconclusive,
        "count",
    );
    if r.stale > 0 {
        report::error(
            "coherence",
            format_args!(
                "{name}: {} of {} rounds saw a stale access",
                r.stale, r.rounds
            ),
        );
    }
    r
}

/// One round, in the child: returns its exit status unless a reader's
/// access kills it (the passing outcome).
fn round_child(write: bool, readers: usize) -> i32 {
    let a = mem::map_rw(PAGE_SIZE).expect("mmap target");
    // SAFETY: our fresh mapping.
    unsafe { write_volatile(a as *mut u64, tag(1)) };
    TARGET.store(a, Ordering::Relaxed);
    EPOCH.store(PHASE_MAPPED, Ordering::Release);
    READY.store(0, Ordering::Relaxed);
    for n in &ACCESSES[..readers] {
        n.store(0, Ordering::Relaxed);
    }
    let mut handles: [Option<JoinHandle>; MAX_READERS] = [const { None }; MAX_READERS];
    spawn_readers(
        readers,
        &mut handles,
        if write { round_writer } else { round_reader },
    );
    let deadline = now_ns() + WARM_TIMEOUT_NS;
    while ACCESSES[..readers]
        .iter()
        .any(|n| n.load(Ordering::Relaxed) < WARM)
    {
        if now_ns() > deadline {
            println!("coherence: readers did not warm up");
            return INCONCLUSIVE_STATUS;
        }
        thread::yield_now();
    }
    let mut before = [0u64; MAX_READERS];
    if write {
        // SAFETY: from here on, a correct kernel kills any write to A.
        unsafe { mem::mprotect(a, PAGE_SIZE, Prot::READ) }.expect("mprotect");
        EPOCH.store(PHASE_CHANGED, Ordering::Release);
        for (i, b) in before[..readers].iter_mut().enumerate() {
            // SAFETY: A is still mapped readable.
            *b = unsafe { read_volatile((a as *const u64).add(1 + i)) };
        }
    } else {
        // SAFETY: from here on, a correct kernel kills any access to A.
        unsafe { mem::munmap(a, PAGE_SIZE) }.expect("munmap");
        EPOCH.store(PHASE_CHANGED, Ordering::Release);
    }
    sleep_ns(GRACE_NS);
    if write {
        for (i, b) in before[..readers].iter().enumerate() {
            // SAFETY: as above.
            let now = unsafe { read_volatile((a as *const u64).add(1 + i)) };
            if now != *b {
                println!("coherence: reader {i}'s write landed after mprotect returned");
                return STALE_STATUS;
            }
        }
    }
    INCONCLUSIVE_STATUS
}

/// munmap-round reader: reads A until the process ends.
fn round_reader(i: usize, a: u64) -> u64 {
    loop {
        let e = EPOCH.load(Ordering::Acquire);
        // SAFETY: A is mapped until the writer's munmap; after that, a
        // correct kernel kills the process on this access.
        let x = unsafe { read_volatile(a as *const u64) };
        if e == PHASE_CHANGED {
            println!("coherence: reader {i} read {x:#x} after munmap returned");
            process::exit(STALE_STATUS);
        }
        ACCESSES[i].fetch_add(1, Ordering::Relaxed);
    }
}

/// mprotect-round reader: writes its word of A until the process ends.
fn round_writer(i: usize, a: u64) -> u64 {
    let mut seq = 0u64;
    loop {
        let e = EPOCH.load(Ordering::Acquire);
        seq += 1;
        // SAFETY: A is writable until the writer's mprotect; after that, a
        // correct kernel kills the process on this access. Word 1+i is this
        // reader's alone.
        unsafe { write_volatile((a as *mut u64).add(1 + i), seq) };
        if e == PHASE_CHANGED {
            println!("coherence: reader {i}'s write landed after mprotect returned");
            process::exit(STALE_STATUS);
        }
        ACCESSES[i].fetch_add(1, Ordering::Relaxed);
    }
}
