//! `coherence`: the stale-TLB oracle.
//!
//! Reader threads, pinned one per other CPU, keep accessing a mapping
//! while the writer (this program's first thread, pinned to CPU 0) changes
//! it with a system call (or a fault, or fork). The ABI promises
//! (lab_core::syscall) that when `mmap`/`munmap`/`mprotect`/`fork` returns,
//! or a faulting write resumes, the change is visible on every CPU: every
//! other CPU's stale translation has been shot down. The oracle checks
//! exactly that promise, and nothing stronger: an access is *stale* only
//! if it is ordered after the change returned and still used the old
//! translation.
//!
//! "Ordered after" is made observable by an epoch, a shared atomic that the
//! writer stores (release) right after the change returns; a reader loads
//! it (acquire) right before each access. x86 keeps a thread's loads in
//! order (and acquire keeps the compiler from reordering), so an access
//! preceded by a load that saw the post-change epoch happened after the
//! change returned.
//!
//! # The translation is in the reader's TLB
//!
//! A mode only tests a shootdown if the reader CPUs hold the old
//! translation when the change is made. Every mode makes sure of it the
//! same way: after the *last* change before the one under test (the mmap
//! that created the mapping, or fork's write-protect in `cow`), the writer
//! waits until every reader has accessed every page of the mapping at
//! least WARM times (per-reader counters the readers bump after their
//! accesses), and only then makes the change under test. Nothing else
//! changes the mapping in between, and a reader runs pinned on its CPU in
//! a tight loop, so its TLB (QEMU's softmmu TLB under TCG) holds the
//! translation it has just used. The volume of checks adds the cases
//! where the reader was interrupted in between.
//!
//! # Modes (`mode=`; `all`, the default, runs each in turn)
//!
//! **remap** (in one process; the volume of checks). The page at address A
//! holds, in its first word, the *tag* of its generation g: `g` in the low
//! 32 bits and `g ^ TAG_MAGIC` in the high 32 (so no other value, e.g. zero
//! fill or the poison below, looks like a tag). Generation g is made by:
//! epoch = 2g-1 (odd: change in flight); `mmap(A, FIXED)` (replaces the
//! old frame by a fresh zero-fill mapping: a one-page pmap_remove, a
//! shootpage); epoch = 2g as soon as it returns (the old frame must be
//! unreachable now); the writer then touches one page of a new *decoy*
//! mapping and writes POISON in it; writes tag(g) in A. A reader that
//! loaded epoch e and then read x from A saw a stale frame if x is a tag
//! of generation t < e / 2, or neither zero nor a tag (the old frame,
//! freed and reused: the decoy takes it first, and fills it with POISON).
//!
//! **crossfire** (in one process): remap's check with every CPU both
//! writer and reader. One thread per CPU owns CROSS_PAGES pages and
//! replaces them in turn, generation by generation, as remap's writer
//! does (epoch, mmap FIXED, epoch, decoy, tag), and between two
//! replacements reads every other thread's pages with remap's check. So
//! shootdowns arrive while their targets are in the kernel making their
//! own: the global slot's spin loops serve them (and `in-context-flush`
//! defers them there), and a target's next return to user mode reads the
//! pages they covered. Remap's writer is the only initiator, and its
//! readers are in user mode when its IPIs arrive.
//!
//! **Round modes** (one child process per round; the readers' TLBs are
//! warmed as above, then one change is made and the epoch set to CHANGED):
//! - `munmap`: munmap of one page (pmap_remove's one-page shortcut,
//!   shootpage); readers read.
//! - `range`: munmap of RANGE_PAGES (8) pages (shootrange; a 8-address
//!   list under `dfly-batch`); readers read.
//! - `tlb`: munmap of TLB_PAGES (40) pages, over OpenBSD's 32-page
//!   threshold (shoottlb to every CPU; DragonFly's full flush beyond
//!   MAXPIR 16).
//! - `mprotect`, `mprotect-range`: mprotect(READ) of one page (a
//!   shootrange of one page) or of RANGE_PAGES pages; readers write
//!   their own word of each page.
//! - `cow`: the round child forks a grandchild that only sleeps, which
//!   shares A copy-on-write (fork write-protects A in the round child);
//!   after the readers are warm again (reading A, read-only now), the
//!   writer writes A: a copy-on-write fault, whose pmap_enter replaces
//!   the old frame by the copy with a shootpage. Readers must then read
//!   the new tag. The grandchild being alive after the write proves the
//!   fault copied (else the round is inconclusive).
//! - `fork-protect`: readers write their own word of A while the writer
//!   forks: fork write-protects A in the round child (pmap_protect of the
//!   parent, with a shootdown) while the readers run on other CPUs. The
//!   grandchild snapshots the readers' words in the shared frame, sleeps
//!   GRACE_NS and compares: a word that moved is a write that landed in
//!   the shared frame after fork returned (in a correct kernel it
//!   faults and goes to the round child's own copy).
//!
//! In the multi-page munmap and mprotect modes (range, tlb,
//! mprotect-range) the writer, once the readers are warm, *arms* the round
//! and waits until every reader has seen it: from then on the readers
//! leave page 0 alone (the address a truncated batch keeps; a reader that
//! still cycled through it would fault there mid-change, before it could
//! see CHANGED, and hide the truncation; see `arm`).
//! In the munmap and mprotect modes a reader that loaded CHANGED starts
//! again from the last page (the one a truncated batch would miss) and
//! any access it completes is stale; the kernel kills a process on an
//! access it cannot resolve, so in a correct kernel those rounds *end in
//! that kill*, the passing outcome. A round child still alive after
//! GRACE_NS exits INCONCLUSIVE (no reader accessed after the change).
//! `cow` and `fork-protect` rounds pass when the readers made accesses
//! after the change and none was stale.
//!
//! **chase=on** (remap mode): each reader, between bursts of ordinary
//! checks, *chases* the writer: it makes a system call that takes the
//! process's VM lock, which the writer's mmap(FIXED) holds across its
//! pmap_remove and the shootdown, so the reader's CPU waits in the kernel
//! until the change is done and continues the instant it returns; then it
//! reads A as soon as the writer has stored the new epoch. Today's readers
//! read whenever they happen to run; a chasing reader's checks land right
//! after the shootdown returned, where a target that acknowledged and had
//! not yet invalidated (or invalidated later, at some return) still holds
//! the old entry. Meant for chaos runs (`chaos=<seed>`), whose delays
//! inside the protocol make that window wide.
//!
//! **lazy=on** (for a LATR kernel, `lazy-latr`): munmap may return
//! before the other CPUs invalidate, which apply it at their next tick or
//! context switch; what LATR promises instead is that until then a stale
//! entry reaches only the old frame, unchanged (neither it nor the address
//! is reused). So in the munmap modes (munmap, range, tlb) a read after the
//! change that returns the page's old tag is allowed (counted,
//! `coherence.lazy_reads`), any other value is stale, and the round must
//! still end in the reader's fault; right after the munmap the writer maps
//! and fills a decoy elsewhere, which would take a frame given back too
//! early and show it to such a reader. Off (the default), that old tag is
//! stale like any other access.
//!
//! Not observable from user space, so no mode: the teardown at exit and
//! exec (the pmap is torn down only once every other thread is off every
//! CPU, and leaving a CPU reloads CR3, which flushes its TLB), and the
//! kernel pmap (shoot-storm's oracle covers it).
//!
//! # Figures
//!
//! Per mode: `coherence.<mode>.checks` (remap: reader checks; round
//! modes: decided rounds), `.rounds` (remaps, or round children),
//! `.inconclusive`, `.stale`; round modes also `.passed`; remap also
//! `.quiet_checks`, `.elapsed_ns` and `coherence.remaps`. Totals over the
//! modes run: `coherence.checks`, `coherence.rounds`,
//! `coherence.inconclusive`, `coherence.stale` (0 in a correct pmap),
//! `coherence.modes`, `coherence.elapsed_ns`, and the canonical
//! `workload.ops` (= checks) and `workload.elapsed_ns`. Any stale access
//! is also an `error` record and the program exits 1.
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
/// A multi-page munmap/mprotect round is about to change the mapping: the
/// readers stop accessing page 0 (see `round_reader`).
const PHASE_ARMED: u64 = 3;

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

/// Exit status of a round whose readers made post-change accesses and
/// none was stale (`cow`, `fork-protect`).
const PASS_STATUS: i32 = 4;
/// How long a `cow` grandchild keeps the old frame shared.
const COW_HOLD_NS: u64 = 1_000_000_000;
/// Pages of the `range` and `mprotect-range` modes (2..=16: a shootrange,
/// or a DragonFly address list).
const RANGE_PAGES: u64 = 8;
/// Pages of the `tlb` mode: over OpenBSD's 32-page shoottlb threshold.
const TLB_PAGES: u64 = 40;
/// `EXPECT` value: any access after the change is allowed (fork-protect).
const ANY: u64 = u64::MAX;

/// Pages of the current round's mapping.
static PAGES: AtomicU64 = AtomicU64::new(1);
/// The current round's readers write (their own word of each page).
static WRITE: AtomicBool = AtomicBool::new(false);
/// What a post-change access must find: 0 = no access may complete, ANY =
/// any (checked elsewhere), else the value a read must return.
static EXPECT: AtomicU64 = AtomicU64::new(0);
/// Accesses completed after the change that were not stale.
static POST: AtomicU64 = AtomicU64::new(0);
/// Readers that saw PHASE_ARMED (and so no longer access page 0).
static ARMED: AtomicU64 = AtomicU64::new(0);
/// `lazy=on`: munmap is LATR's (see the module comment).
static LAZY: AtomicBool = AtomicBool::new(false);
/// `lazy=on`: reads of the old tag after a munmap returned.
static LAZY_READS: AtomicU64 = AtomicU64::new(0);

/// How a round mode changes the mapping.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Change {
    Unmap,
    Protect,
    Cow,
    ForkProtect,
}

/// A round mode: its name, its change, the pages it maps.
struct RoundMode {
    name: &'static str,
    change: Change,
    pages: u64,
}

const ROUND_MODES: [RoundMode; 7] = [
    RoundMode {
        name: "munmap",
        change: Change::Unmap,
        pages: 1,
    },
    RoundMode {
        name: "range",
        change: Change::Unmap,
        pages: RANGE_PAGES,
    },
    RoundMode {
        name: "tlb",
        change: Change::Unmap,
        pages: TLB_PAGES,
    },
    RoundMode {
        name: "mprotect",
        change: Change::Protect,
        pages: 1,
    },
    RoundMode {
        name: "mprotect-range",
        change: Change::Protect,
        pages: RANGE_PAGES,
    },
    RoundMode {
        name: "cow",
        change: Change::Cow,
        pages: 1,
    },
    RoundMode {
        name: "fork-protect",
        change: Change::ForkProtect,
        pages: 1,
    },
];

/// What one mode found.
#[derive(Default)]
struct Tally {
    checks: u64,
    rounds: u64,
    passed: u64,
    stale: u64,
    inconclusive: u64,
}

impl Tally {
    fn add(&mut self, o: &Tally) {
        self.checks += o.checks;
        self.rounds += o.rounds;
        self.passed += o.passed;
        self.stale += o.stale;
        self.inconclusive += o.inconclusive;
    }

    /// Reports the tally as `coherence.<mode>.*` (or the totals for
    /// `coherence.*` when `mode` is empty).
    fn report(&self, mode: &str) {
        let dot = if mode.is_empty() { "" } else { "." };
        for (what, v) in [
            ("checks", self.checks),
            ("rounds", self.rounds),
            ("inconclusive", self.inconclusive),
            ("stale", self.stale),
        ] {
            report::metric_fmt(format_args!("coherence.{mode}{dot}{what}"), v, "count");
        }
    }
}

fn main() -> i32 {
    let mode = param::raw("mode");
    let mode = mode.as_str();
    let remaps = param::u64("remaps");
    let cross_remaps = param::u64("cross_remaps");
    let rounds = param::u64("rounds");
    LAZY.store(param::flag("lazy"), Ordering::Relaxed);
    let cpus = thread::ncpus();
    let readers = match param::u64("readers") {
        0 => (cpus as usize - 1).max(1),
        n => n as usize,
    }
    .min(MAX_READERS);
    println!(
        "coherence: mode={mode} remaps={remaps} cross_remaps={cross_remaps} rounds={rounds} readers={readers} cpus={cpus}"
    );
    thread::pin(Some(0)).expect("pin writer");

    let start = now_ns();
    let mut total = Tally::default();
    let mut modes = 0;
    if mode == "all" || mode == "remap" {
        let t = remap(readers, remaps);
        t.report("remap");
        total.add(&t);
        modes += 1;
    }
    if mode == "all" || mode == "crossfire" {
        let t = crossfire(readers, cross_remaps);
        t.report("crossfire");
        total.add(&t);
        modes += 1;
    }
    for m in &ROUND_MODES {
        if mode != "all" && mode != m.name {
            continue;
        }
        let t0 = now_ns();
        let t = round_trips(m, readers, rounds);
        t.report(m.name);
        report::metric_fmt(
            format_args!("coherence.{}.elapsed_ns", m.name),
            now_ns() - t0,
            "ns",
        );
        report::metric_fmt(
            format_args!("coherence.{}.passed", m.name),
            t.passed,
            "count",
        );
        total.add(&t);
        modes += 1;
    }
    report::metric("coherence.readers", readers as u64, "count");
    if LAZY.load(Ordering::Relaxed) {
        report::metric(
            "coherence.lazy_reads",
            LAZY_READS.load(Ordering::Relaxed),
            "count",
        );
    }
    report::metric("coherence.modes", modes, "count");
    total.report("");
    let elapsed = now_ns() - start;
    report::metric("coherence.elapsed_ns", elapsed, "ns");
    report::workload(total.checks, elapsed);
    println!(
        "coherence: {} checks, {} rounds, {} inconclusive, {} stale",
        total.checks, total.rounds, total.inconclusive, total.stale
    );
    if total.stale > 0 {
        report::error(
            "coherence",
            format_args!(
                "{} stale accesses after a mapping change returned",
                total.stale
            ),
        );
        return 1;
    }
    0
}

/// One turn of a wait loop: PAUSE, then give the CPU to another thread.
///
/// Spin hints: the readers and the writer's wait loops execute PAUSE now
/// and then. On hardware it is the spin-wait hint (tens of cycles, about
/// 140 on recent Intel cores). Under `tcg-icount` it is what lets the other vCPUs run: QEMU's
/// round-robin vCPU thread ends a vCPU's turn at PAUSE, and without it a
/// vCPU spinning in user mode held the thread while the others stopped
/// where they were (2 vCPUs: the reader's CPU never ran after its
/// wake-up IPI; 4 vCPUs: three CPUs frozen in the kernel during
/// fork-protect), and the run timed out.
fn wait_a_moment() {
    core::hint::spin_loop();
    thread::yield_now();
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
        wait_a_moment();
    }
}

/// Remap mode.
fn remap(readers: usize, remaps: u64) -> Tally {
    let a = mem::map_rw(PAGE_SIZE).expect("mmap target");
    // SAFETY: our fresh mapping; readers only read it.
    unsafe { write_volatile(a as *mut u64, tag(1)) };
    TARGET.store(a, Ordering::Relaxed);
    EPOCH.store(2, Ordering::Release);
    STOP.store(false, Ordering::Relaxed);
    READY.store(0, Ordering::Relaxed);

    let mut handles: [Option<JoinHandle>; MAX_READERS] = [const { None }; MAX_READERS];
    let reader = if param::flag("chase") {
        chase_reader
    } else {
        remap_reader
    };
    spawn_readers(readers, &mut handles, reader);
    let start = now_ns();
    let mut prev_decoy = 0;
    for g in 2..remaps + 2 {
        EPOCH.store(2 * g - 1, Ordering::Release);
        let got = mem::mmap(a, PAGE_SIZE, Prot::RW, MapFlags::FIXED).expect("mmap FIXED");
        assert_eq!(got, a, "mmap FIXED moved the target");
        // The old frame is gone from here on: a read of it (tag g-1, or
        // the poison) after this store is stale. Stored at once, so that
        // a shootdown that returns before its targets have invalidated
        // (`mutant-no-wait`) leaves the widest window to see.
        EPOCH.store(2 * g, Ordering::Release);
        let decoy = mem::map_rw(PAGE_SIZE).expect("mmap decoy");
        // SAFETY: our fresh decoy mapping; A is ours and readers only read
        // it.
        unsafe {
            write_volatile(decoy as *mut u64, POISON);
            write_volatile(a as *mut u64, tag(g));
        }
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
    report::metric(
        "coherence.remap.quiet_checks",
        QUIET.load(Ordering::Relaxed),
        "count",
    );
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
    Tally {
        checks,
        rounds: remaps,
        passed: remaps,
        stale,
        inconclusive: 0,
    }
}

/// A remap-mode reader: returns its checks.
fn remap_reader(_: usize, a: u64) -> u64 {
    let (mut checks, mut quiet) = (0u64, 0u64);
    while !STOP.load(Ordering::Relaxed) {
        // Once per batch: see `wait_a_moment`.
        core::hint::spin_loop();
        for _ in 0..256 {
            let e1 = EPOCH.load(Ordering::Acquire);
            // SAFETY: A is always mapped while readers run (FIXED replaces
            // it atomically with respect to this thread).
            let x = unsafe { read_volatile(a as *const u64) };
            let e2 = EPOCH.load(Ordering::Acquire);
            checks += 1;
            quiet += u64::from(e1 == e2);
            check_remap(e1, x);
        }
    }
    QUIET.fetch_add(quiet, Ordering::Relaxed);
    checks
}

/// One remap-mode check: epoch `e` loaded (acquire) before reading `x`
/// from A.
fn check_remap(e: u64, x: u64) {
    if is_stale(e, x) && STALE.fetch_add(1, Ordering::Relaxed) == 0 {
        FIRST_STALE[0].store(e, Ordering::Relaxed);
        FIRST_STALE[1].store(x, Ordering::Relaxed);
    }
}

/// Pages each crossfire thread owns and replaces in turn: two, so that two
/// shootdowns from one thread in a row name different pages.
const CROSS_PAGES: usize = 2;
/// Crossfire: each thread's pages and their epochs (remap's, per page).
static CROSS_ADDR: [[AtomicU64; CROSS_PAGES]; MAX_READERS + 1] =
    [const { [const { AtomicU64::new(0) }; CROSS_PAGES] }; MAX_READERS + 1];
static CROSS_EPOCH: [[AtomicU64; CROSS_PAGES]; MAX_READERS + 1] =
    [const { [const { AtomicU64::new(0) }; CROSS_PAGES] }; MAX_READERS + 1];
/// Crossfire threads that have made all their replacements.
static CROSS_DONE: AtomicU64 = AtomicU64::new(0);
/// Crossfire threads (this one included).
static CROSS_THREADS: AtomicU64 = AtomicU64::new(0);
/// Replacements per page and thread.
static CROSS_REMAPS: AtomicU64 = AtomicU64::new(0);

/// Crossfire mode: `readers` threads on the other CPUs and this one.
fn crossfire(readers: usize, remaps: u64) -> Tally {
    let threads = readers + 1;
    for i in 0..threads {
        for p in 0..CROSS_PAGES {
            let a = mem::map_rw(PAGE_SIZE).expect("mmap crossfire page");
            // SAFETY: our fresh mapping.
            unsafe { write_volatile(a as *mut u64, tag(1)) };
            CROSS_ADDR[i][p].store(a, Ordering::Relaxed);
            CROSS_EPOCH[i][p].store(2, Ordering::Release);
        }
    }
    CROSS_DONE.store(0, Ordering::Relaxed);
    CROSS_THREADS.store(threads as u64, Ordering::Relaxed);
    CROSS_REMAPS.store(remaps, Ordering::Relaxed);
    STALE.store(0, Ordering::Relaxed);
    READY.store(0, Ordering::Relaxed);
    let mut handles: [Option<JoinHandle>; MAX_READERS] = [const { None }; MAX_READERS];
    spawn_readers(readers, &mut handles, |i, _| crossfire_thread(i + 1));
    let start = now_ns();
    let mine = crossfire_thread(0);
    let checks = mine + thread::join_all(&mut handles);
    let elapsed = now_ns() - start;
    for i in 0..threads {
        for p in 0..CROSS_PAGES {
            // SAFETY: every thread is gone.
            unsafe { mem::munmap(CROSS_ADDR[i][p].load(Ordering::Relaxed), PAGE_SIZE) }
                .expect("munmap crossfire page");
        }
    }
    let stale = STALE.load(Ordering::Relaxed);
    report::metric("coherence.crossfire.elapsed_ns", elapsed, "ns");
    if stale > 0 {
        let (e, x) = (
            FIRST_STALE[0].load(Ordering::Relaxed),
            FIRST_STALE[1].load(Ordering::Relaxed),
        );
        report::error(
            "coherence",
            format_args!("crossfire: {stale} stale reads; first read {x:#x} after epoch {e}"),
        );
    }
    Tally {
        checks,
        rounds: remaps * (threads * CROSS_PAGES) as u64,
        passed: remaps * (threads * CROSS_PAGES) as u64,
        stale,
        inconclusive: 0,
    }
}

/// Crossfire thread `me`: replaces its pages, reads the others' between
/// two replacements, and goes on reading until every thread is done (so
/// that the last replacements still meet readers). Returns its checks.
fn crossfire_thread(me: usize) -> u64 {
    let threads = CROSS_THREADS.load(Ordering::Relaxed) as usize;
    let remaps = CROSS_REMAPS.load(Ordering::Relaxed);
    let read_others = || {
        let mut checks = 0;
        for i in (0..threads).filter(|&i| i != me) {
            for p in 0..CROSS_PAGES {
                let a = CROSS_ADDR[i][p].load(Ordering::Relaxed);
                let e = CROSS_EPOCH[i][p].load(Ordering::Acquire);
                // SAFETY: crossfire pages stay mapped while threads run
                // (FIXED replaces them atomically for a reader).
                check_remap(e, unsafe { read_volatile(a as *const u64) });
                checks += 1;
            }
        }
        checks
    };
    let mut checks = 0;
    let mut prev_decoy = 0;
    for g in 2..remaps + 2 {
        for p in 0..CROSS_PAGES {
            // The old decoy goes first, so that this thread's shootdowns
            // alternate between a decoy (which nobody reads) and a page
            // the others read: a target that loses the later of two
            // requests that meet in it loses a page that is read.
            if prev_decoy != 0 {
                // SAFETY: nobody uses an old decoy.
                unsafe { mem::munmap(prev_decoy, PAGE_SIZE) }.expect("munmap decoy");
            }
            let a = CROSS_ADDR[me][p].load(Ordering::Relaxed);
            CROSS_EPOCH[me][p].store(2 * g - 1, Ordering::Release);
            let got = mem::mmap(a, PAGE_SIZE, Prot::RW, MapFlags::FIXED).expect("mmap FIXED");
            assert_eq!(got, a, "mmap FIXED moved a crossfire page");
            CROSS_EPOCH[me][p].store(2 * g, Ordering::Release);
            // The decoy takes the frame just freed (see remap).
            let decoy = mem::map_rw(PAGE_SIZE).expect("mmap decoy");
            // SAFETY: our fresh decoy and our own page (others only read).
            unsafe {
                write_volatile(decoy as *mut u64, POISON);
                write_volatile(a as *mut u64, tag(g));
            }
            prev_decoy = decoy;
            checks += read_others();
        }
    }
    CROSS_DONE.fetch_add(1, Ordering::AcqRel);
    while CROSS_DONE.load(Ordering::Acquire) < threads as u64 {
        checks += read_others();
        wait_a_moment();
    }
    if prev_decoy != 0 {
        // SAFETY: nobody uses an old decoy.
        unsafe { mem::munmap(prev_decoy, PAGE_SIZE) }.expect("munmap decoy");
    }
    checks
}

/// Ordinary checks a chasing reader makes between two chases: enough to
/// bring A's translation back into its TLB (the chase's system call does
/// not flush it, so it is the one a missed invalidation leaves).
const CHASE_WARM: u64 = 16;

/// A remap-mode reader under `chase=on` (see the module comment): returns
/// its checks.
fn chase_reader(_: usize, a: u64) -> u64 {
    // The chase's system call: mprotect(RW) of the reader's own RW page
    // changes nothing, but takes the process's VM lock first.
    let own = mem::map_rw(PAGE_SIZE).expect("mmap chase page");
    let (mut checks, mut quiet) = (0u64, 0u64);
    while !STOP.load(Ordering::Relaxed) {
        for _ in 0..CHASE_WARM {
            let e = EPOCH.load(Ordering::Acquire);
            // SAFETY: A stays mapped while readers run (see remap_reader).
            check_remap(e, unsafe { read_volatile(a as *const u64) });
            checks += 1;
        }
        // SAFETY: our own page; RW already.
        unsafe { mem::mprotect(own, PAGE_SIZE, Prot::RW) }.expect("mprotect chase page");
        // Waited behind a change (odd epoch)? The writer stores the even
        // epoch a few instructions after its mmap returns: wait for it,
        // then read at once.
        let mut e = EPOCH.load(Ordering::Acquire);
        while e % 2 == 1 && !STOP.load(Ordering::Relaxed) {
            core::hint::spin_loop();
            e = EPOCH.load(Ordering::Acquire);
        }
        // SAFETY: as above.
        let x = unsafe { read_volatile(a as *const u64) };
        quiet += u64::from(EPOCH.load(Ordering::Acquire) == e);
        check_remap(e, x);
        checks += 1;
        // Once per chase: see `wait_a_moment`.
        core::hint::spin_loop();
    }
    QUIET.fetch_add(quiet, Ordering::Relaxed);
    // SAFETY: nobody else uses our page.
    unsafe { mem::munmap(own, PAGE_SIZE) }.expect("munmap chase page");
    checks
}

/// A round mode: `rounds` child processes, one change each.
fn round_trips(m: &RoundMode, readers: usize, rounds: u64) -> Tally {
    let mut t = Tally::default();
    for round in 0..rounds {
        let pid = match process::fork() {
            Ok(Fork::Child) => process::exit(round_child(m, readers)),
            Ok(Fork::Parent(pid)) => pid,
            Err(e) => {
                report::error(
                    "coherence",
                    format_args!("{} round {round}: fork: {e}", m.name),
                );
                break;
            }
        };
        t.rounds += 1;
        match process::wait(pid) {
            Ok(WaitStatus::Killed(KillReason::PageFault)) | Ok(WaitStatus::Exited(PASS_STATUS)) => {
                t.passed += 1
            }
            Ok(WaitStatus::Exited(STALE_STATUS)) => t.stale += 1,
            Ok(WaitStatus::Exited(INCONCLUSIVE_STATUS)) => t.inconclusive += 1,
            Ok(status) => report::error(
                "coherence",
                format_args!("{} round {round}: child {status}", m.name),
            ),
            Err(e) => report::error(
                "coherence",
                format_args!("{} round {round}: waitpid: {e}", m.name),
            ),
        }
    }
    t.checks = t.passed + t.stale;
    if t.stale > 0 {
        report::error(
            "coherence",
            format_args!(
                "{}: {} of {} rounds saw a stale access",
                m.name, t.stale, t.rounds
            ),
        );
    }
    t
}

/// Waits until every reader has made WARM more accesses than `base` (its
/// count when the wait began): then every reader CPU has used the current
/// translation of every page since the last change. False on a timeout.
fn warm(readers: usize) -> bool {
    let mut base = [0u64; MAX_READERS];
    for (b, n) in base[..readers].iter_mut().zip(&ACCESSES) {
        *b = n.load(Ordering::Relaxed);
    }
    let deadline = now_ns() + WARM_TIMEOUT_NS;
    while ACCESSES[..readers]
        .iter()
        .zip(&base)
        .any(|(n, b)| n.load(Ordering::Relaxed) < b + WARM)
    {
        if now_ns() > deadline {
            println!("coherence: readers did not warm up");
            return false;
        }
        wait_a_moment();
    }
    true
}

/// Sets PHASE_ARMED and waits until every reader has seen it: from then on
/// they access pages 1..n only (still warm: they used them a moment ago).
///
/// Why: a shootdown that invalidates only some pages of a range (a
/// truncated DragonFly list keeps its first address, page 0) must leave the
/// readers using the others after the change returned. If a reader still
/// cycled through page 0, it would fault there *while the change is in
/// flight* (the IPI invalidated page 0), before it could see CHANGED, and
/// the kernel's kill would end the round as a pass: a truncated list was
/// indistinguishable from a correct one (`mutant-dfly-truncate` survived
/// every run). False on a timeout.
fn arm(readers: usize) -> bool {
    EPOCH.store(PHASE_ARMED, Ordering::Release);
    let deadline = now_ns() + WARM_TIMEOUT_NS;
    while ARMED.load(Ordering::Acquire) < readers as u64 {
        if now_ns() > deadline {
            println!("coherence: readers did not see the armed phase");
            return false;
        }
        wait_a_moment();
    }
    true
}

/// The word reader `i` writes in page `p` of the mapping at `a`.
fn word(a: u64, p: u64, i: usize) -> *mut u64 {
    // Word 0 holds the tag; word 1 + i is reader i's.
    ((a + p * PAGE_SIZE) as *mut u64).wrapping_add(1 + i)
}

/// One round, in the child: returns its exit status unless a reader's
/// access kills it (the passing outcome of the munmap and mprotect modes).
fn round_child(m: &RoundMode, readers: usize) -> i32 {
    let n = m.pages;
    let len = n * PAGE_SIZE;
    let a = mem::map_rw(len).expect("mmap target");
    for p in 0..n {
        // SAFETY: our fresh mapping.
        unsafe { write_volatile((a + p * PAGE_SIZE) as *mut u64, tag(1)) };
    }
    TARGET.store(a, Ordering::Relaxed);
    PAGES.store(n, Ordering::Relaxed);
    let write = matches!(m.change, Change::Protect | Change::ForkProtect);
    WRITE.store(write, Ordering::Relaxed);
    EXPECT.store(
        match m.change {
            Change::Unmap | Change::Protect => 0,
            Change::Cow => tag(2),
            Change::ForkProtect => ANY,
        },
        Ordering::Relaxed,
    );
    EPOCH.store(PHASE_MAPPED, Ordering::Release);
    READY.store(0, Ordering::Relaxed);
    POST.store(0, Ordering::Relaxed);
    ARMED.store(0, Ordering::Relaxed);
    for c in &ACCESSES[..readers] {
        c.store(0, Ordering::Relaxed);
    }
    let mut handles: [Option<JoinHandle>; MAX_READERS] = [const { None }; MAX_READERS];
    spawn_readers(readers, &mut handles, round_reader);
    if !warm(readers) {
        return INCONCLUSIVE_STATUS;
    }
    if n > 1 && matches!(m.change, Change::Unmap | Change::Protect) && !arm(readers) {
        return INCONCLUSIVE_STATUS;
    }
    match m.change {
        Change::Unmap => {
            // SAFETY: from here on, a correct kernel kills any access to A.
            unsafe { mem::munmap(a, len) }.expect("munmap");
            EPOCH.store(PHASE_CHANGED, Ordering::Release);
            if LAZY.load(Ordering::Relaxed) {
                decoy(a + len, n);
            }
            sleep_ns(GRACE_NS);
            INCONCLUSIVE_STATUS
        }
        Change::Protect => {
            // SAFETY: from here on, a correct kernel kills any write to A.
            unsafe { mem::mprotect(a, len, Prot::READ) }.expect("mprotect");
            EPOCH.store(PHASE_CHANGED, Ordering::Release);
            let mut before = [0u64; MAX_READERS];
            for (i, b) in before[..readers].iter_mut().enumerate() {
                // SAFETY: A is still mapped readable.
                *b = unsafe { read_volatile(word(a, 0, i)) };
            }
            sleep_ns(GRACE_NS);
            for (i, b) in before[..readers].iter().enumerate() {
                // SAFETY: as above.
                if unsafe { read_volatile(word(a, 0, i)) } != *b {
                    println!("coherence: reader {i}'s write landed after mprotect returned");
                    return STALE_STATUS;
                }
            }
            INCONCLUSIVE_STATUS
        }
        Change::Cow => cow_change(a, readers),
        Change::ForkProtect => fork_protect_change(a, readers),
    }
}

/// `lazy=on`: maps `pages` pages near (not over) the range just unmapped
/// and writes POISON in each, so that a frame the kernel gave back before
/// the other CPUs applied the munmap is taken and changed while a reader
/// may still reach it (the mapping is left to the round child's exit).
fn decoy(hint: u64, pages: u64) {
    let len = pages * PAGE_SIZE;
    let d = mem::mmap(hint + 64 * PAGE_SIZE, len, Prot::RW, MapFlags::NONE).expect("mmap decoy");
    for p in 0..pages {
        // SAFETY: our fresh mapping, nobody else's.
        unsafe { write_volatile((d + p * PAGE_SIZE) as *mut u64, POISON) };
    }
}

/// `cow`: fork (A becomes shared copy-on-write and read-only here), warm
/// the readers on the read-only entry, then write A: the copy-on-write
/// fault replaces A's frame with a copy, and the readers must see the
/// copy's new tag.
fn cow_change(a: u64, readers: usize) -> i32 {
    // The grandchild keeps the old frame shared while the writer writes,
    // so the write copies. It outlives the round (an orphan is reaped by
    // the kernel), so that warming up can take as long as it takes.
    match process::fork() {
        Ok(Fork::Child) => {
            sleep_ns(COW_HOLD_NS);
            process::exit(0)
        }
        Ok(Fork::Parent(_)) => {}
        Err(_) => return INCONCLUSIVE_STATUS,
    }
    let warmed = warm(readers);
    if warmed {
        // SAFETY: our mapping; the readers only read it.
        unsafe { write_volatile(a as *mut u64, tag(2)) };
        EPOCH.store(PHASE_CHANGED, Ordering::Release);
    }
    // The grandchild still alive: the write above copied.
    let early = process::try_wait_any();
    let copied = matches!(early, Ok(None));
    if !copied {
        println!("coherence: cow: grandchild {early:?}");
    }
    sleep_ns(GRACE_NS);
    let post = POST.load(Ordering::Relaxed);
    if warmed && copied && post > 0 {
        PASS_STATUS
    } else {
        println!("coherence: cow round inconclusive (warm {warmed}, copied {copied}, {post} accesses after the write)");
        INCONCLUSIVE_STATUS
    }
}

/// `fork-protect`: fork while the readers write A; the grandchild checks
/// that no write lands in the shared frame after fork returned.
fn fork_protect_change(a: u64, readers: usize) -> i32 {
    let child = match process::fork() {
        Ok(Fork::Child) => {
            let mut before = [0u64; MAX_READERS];
            for (i, b) in before[..readers].iter_mut().enumerate() {
                // SAFETY: A is mapped (shared, read-only) here.
                *b = unsafe { read_volatile(word(a, 0, i)) };
            }
            sleep_ns(GRACE_NS);
            for (i, b) in before[..readers].iter().enumerate() {
                // SAFETY: as above.
                if unsafe { read_volatile(word(a, 0, i)) } != *b {
                    println!("coherence: reader {i}'s write landed in the frame fork shared");
                    process::exit(STALE_STATUS);
                }
            }
            process::exit(PASS_STATUS)
        }
        Ok(Fork::Parent(pid)) => pid,
        Err(_) => return INCONCLUSIVE_STATUS,
    };
    EPOCH.store(PHASE_CHANGED, Ordering::Release);
    let status = process::wait(child);
    let post = POST.load(Ordering::Relaxed);
    match status {
        Ok(WaitStatus::Exited(STALE_STATUS)) => STALE_STATUS,
        Ok(WaitStatus::Exited(PASS_STATUS)) if post > 0 => PASS_STATUS,
        _ => {
            println!(
                "coherence: fork-protect round inconclusive ({status:?}, {post} writes after fork)"
            );
            INCONCLUSIVE_STATUS
        }
    }
}

/// A round reader: accesses every page of the mapping, last page first,
/// until the process ends. Once it has seen the CHANGED epoch it starts
/// again from the last page (the one a truncated address list misses) and
/// checks each access it completes against `EXPECT`.
fn round_reader(i: usize, a: u64) -> u64 {
    let n = PAGES.load(Ordering::Relaxed);
    let write = WRITE.load(Ordering::Relaxed);
    let expect = EXPECT.load(Ordering::Relaxed);
    let lazy = LAZY.load(Ordering::Relaxed);
    let mut p = n - 1;
    let mut seen_change = false;
    let mut armed = false;
    let mut seq = 0u64;
    loop {
        let e = EPOCH.load(Ordering::Acquire);
        let changed = e == PHASE_CHANGED;
        if (e == PHASE_ARMED || changed) && !armed && n > 1 {
            // Page 0 is left alone from here on (see `arm`); the last
            // access to it completed before this acknowledgement.
            armed = true;
            ARMED.fetch_add(1, Ordering::Release);
        }
        if changed && !seen_change {
            seen_change = true;
            p = n - 1;
        }
        if armed && !seen_change && p == 0 {
            p = n - 1;
        }
        let page = a + p * PAGE_SIZE;
        let mut x = 0;
        // SAFETY: A is mapped until the writer's change; after that, a
        // correct kernel kills the process on a forbidden access. Word
        // 1+i of each page is this reader's alone.
        unsafe {
            if write {
                seq += 1;
                write_volatile(word(a, p, i), seq);
            } else {
                x = read_volatile(page as *const u64);
            }
        }
        // LATR (lazy=on): the old frame, unchanged, until this CPU applies
        // the munmap at its next tick.
        let lazy_read = changed && expect == 0 && !write && lazy && x == tag(1);
        if lazy_read {
            LAZY_READS.fetch_add(1, Ordering::Relaxed);
        } else if changed {
            if expect == 0 {
                println!(
                    "coherence: reader {i}'s access to page {p} of {n} completed after the change returned"
                );
                process::exit(STALE_STATUS);
            }
            if expect != ANY && x != expect {
                println!(
                    "coherence: reader {i} read {x:#x} from page {p} after the change returned"
                );
                process::exit(STALE_STATUS);
            }
            POST.fetch_add(1, Ordering::Relaxed);
        }
        if ACCESSES[i].fetch_add(1, Ordering::Relaxed) % 64 == 63 {
            // See `wait_a_moment`.
            core::hint::spin_loop();
        }
        p = if p == 0 { n - 1 } else { p - 1 };
    }
}
