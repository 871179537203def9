//! `fuzz`: seeded random system calls with hostile arguments, to show that
//! no call sequence crashes, hangs or corrupts the kernel.
//!
//! The run is `batches` child processes, one after the other; each starts
//! one thread per CPU (pinned), and each thread makes its share of `calls`
//! (or calls until `duration_ms` has passed, if not 0) drawn from a
//! SplitMix64 generator (lab_core) seeded from `seed`, the batch and the thread.
//! Arguments come from a hostile set: 0, 1, -1, `u64::MAX`, kernel and
//! non-canonical addresses, the end of user space, unmapped addresses, a
//! scratch page and a pointer straddling its end, the read-only shared page,
//! huge and odd lengths (at most 1 MiB for a memory call at a user
//! address, so a batch cannot unmap its own stacks), random words. The calls: every call but the ones
//! that write the run's report or console or spin (`write`, `report_*`,
//! `busy`), plus random numbers past the last call. `fork`, `exit`,
//! `thread_create` and `thread_exit` are rare; a forked grandchild exits at
//! once. Joins are never aimed at sibling threads (two threads joining
//! each other would hang the batch, not the kernel).
//!
//! A batch can end early: a fuzzed `exit`, or a kill (a thread started at a
//! hostile entry point faults). The parent counts how each batch ended.
//!
//! Figures: per batch `fuzz.b<i>.calls`, `.ok` and `.errno.<name>` (from
//! batches that ran to the end); for the run `fuzz.batches`,
//! `fuzz.batches_done`, `fuzz.exits` (batches ended by a fuzzed exit),
//! the canonical `workload.ops` (= batches) and `workload.elapsed_ns`,
//! `fuzz.kills.<reason>`, and `fuzz.unexpected`. Unexpected results (an
//! error code outside the ABI's, `ENOSYS` from a known call) are `error`
//! records, which fail the run.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU64, Ordering};

use lab_core::syscall::{
    decode_result, KillReason, Sys, MAX_ERRNO, MMAP_BASE, SHARED_PAGE_VA, USER_END,
};
use lab_core::workloads::SplitMix64;
use ulib::process::{self, Fork};
use ulib::{param, report, sys, thread, Errno, MapFlags, Prot, WaitStatus, PAGE_SIZE};

ulib::main!(main);

const MAX_THREADS: usize = 16;
/// Exit status of a batch that ran to its end (a fuzzed `exit` rarely
/// picks it).
const BATCH_DONE: i32 = 90;
/// Where the scratch page goes.
const SCRATCH_VA: u64 = MMAP_BASE + (1 << 41);

/// Results by errno code (0: success), counted by every thread of a batch.
static RESULTS: [AtomicU64; 64] = [const { AtomicU64::new(0) }; 64];
static CALLS: AtomicU64 = AtomicU64::new(0);
static UNEXPECTED: AtomicU64 = AtomicU64::new(0);
/// The scratch page (followed by an unmapped page).
static SCRATCH: AtomicU64 = AtomicU64::new(0);

fn main() -> i32 {
    let seed = param::u64("seed");
    let calls = param::u64("calls");
    let duration_ms = param::u64("duration_ms");
    let batches = param::u64("batches");
    let ncpus = (sys::ncpus() as usize).clamp(1, MAX_THREADS);
    let per_thread = calls.div_ceil(batches * ncpus as u64);
    let mut done = 0u64;
    let mut exits = 0u64;
    let mut kills = [0u64; 6];
    let mut failed = false;
    let t0 = ulib::time::now_ns();
    for b in 0..batches {
        let pid = match process::fork() {
            Ok(Fork::Child) => batch(b, seed, per_thread, duration_ms / batches, ncpus),
            Ok(Fork::Parent(pid)) => pid,
            Err(e) => {
                report::error("fuzz", format_args!("fork of batch {b}: {e}"));
                return 1;
            }
        };
        match process::wait(pid) {
            Ok(WaitStatus::Exited(BATCH_DONE)) => done += 1,
            Ok(WaitStatus::Exited(_)) => exits += 1,
            Ok(WaitStatus::Killed(r)) => kills[r as usize] += 1,
            Err(e) => {
                report::error("fuzz", format_args!("wait for batch {b}: {e}"));
                failed = true;
            }
        }
    }
    // The canonical figures: an operation is one batch of hostile calls
    // (calls are counted only by the batches that finish).
    report::workload(batches, ulib::time::now_ns() - t0);
    report::metric("fuzz.batches", batches, "count");
    report::metric("fuzz.batches_done", done, "count");
    report::metric("fuzz.exits", exits, "count");
    for r in [
        KillReason::PageFault,
        KillReason::GeneralProtection,
        KillReason::InvalidOpcode,
        KillReason::OtherException,
        KillReason::OutOfMemory,
    ] {
        report::metric_fmt(
            format_args!("fuzz.kills.{}", kill_name(r)),
            kills[r as usize],
            "count",
        );
    }
    i32::from(failed)
}

fn kill_name(r: KillReason) -> &'static str {
    match r {
        KillReason::PageFault => "page_fault",
        KillReason::GeneralProtection => "general_protection",
        KillReason::InvalidOpcode => "invalid_opcode",
        KillReason::OtherException => "other_exception",
        KillReason::OutOfMemory => "out_of_memory",
    }
}

/// A batch: the child process's life.
fn batch(b: u64, seed: u64, per_thread: u64, duration_ms: u64, ncpus: usize) -> ! {
    // Far above the thread stacks, so a huge munmap or mprotect from the
    // scratch page up cannot take them.
    let Ok(scratch) = sys::mmap(SCRATCH_VA, 2 * PAGE_SIZE, Prot::RW, MapFlags::FIXED) else {
        process::exit(0)
    };
    // SAFETY: the second page of our own fresh mapping, unused.
    unsafe { sys::munmap(scratch + PAGE_SIZE, PAGE_SIZE) }.ok();
    SCRATCH.store(scratch, Ordering::Relaxed);
    let until = match duration_ms {
        0 => u64::MAX,
        ms => sys::clock() + ms * 1_000_000,
    };
    let mut handles: [Option<thread::JoinHandle>; MAX_THREADS] = Default::default();
    for (i, slot) in handles[..ncpus].iter_mut().enumerate() {
        let s = seed ^ (b << 32) ^ ((i as u64 + 1) << 48) ^ 0x9e37_79b9_7f4a_7c15;
        *slot = thread::spawn(move || {
            sys::pin(Some(i as u32)).ok();
            fuzz(s, per_thread, until);
            0
        })
        .ok();
    }
    for h in handles.iter_mut().filter_map(Option::take) {
        // A fuzzed thread_exit ends a thread early; that is fine.
        h.join().ok();
    }
    let calls = CALLS.load(Ordering::Relaxed);
    report::metric_fmt(format_args!("fuzz.b{b}.calls"), calls, "count");
    report::metric_fmt(
        format_args!("fuzz.b{b}.ok"),
        RESULTS[0].load(Ordering::Relaxed),
        "count",
    );
    for e in Errno::ALL {
        let n = RESULTS[e.code() as usize].load(Ordering::Relaxed);
        if n > 0 {
            let mut name = [0u8; 16];
            let lower = lowercase(e.name(), &mut name);
            report::metric_fmt(format_args!("fuzz.b{b}.errno.{lower}"), n, "count");
        }
    }
    report::metric_fmt(
        format_args!("fuzz.b{b}.unexpected"),
        UNEXPECTED.load(Ordering::Relaxed),
        "count",
    );
    process::exit(BATCH_DONE)
}

fn lowercase<'a>(s: &str, buf: &'a mut [u8; 16]) -> &'a str {
    let n = s.len().min(16);
    for (d, c) in buf.iter_mut().zip(s.bytes()) {
        *d = c.to_ascii_lowercase();
    }
    core::str::from_utf8(&buf[..n]).unwrap_or("?")
}

/// The lab's one generator (lab_core's SplitMix64), with the fuzzer's
/// argument shapes on top. (A bare xorshift seeded with `seed | 1` made
/// seeds 2 and 3 one stream.)
struct Rng(SplitMix64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick(&mut self, set: &[u64]) -> u64 {
        set[self.below(set.len() as u64) as usize]
    }

    /// A hostile pointer.
    fn ptr(&mut self) -> u64 {
        let s = SCRATCH.load(Ordering::Relaxed);
        let set = [
            0,
            1,
            u64::MAX,
            0xffff_8000_0000_0000,
            0xffff_ffff_8000_0000,
            0x0000_8000_0000_0000,
            0x0000_8000_0000_0000 - 8,
            USER_END - 4,
            MMAP_BASE + (1 << 39),
            SHARED_PAGE_VA,
            s,
            s + PAGE_SIZE - 4,
            s + PAGE_SIZE,
            self.next(),
        ];
        self.pick(&set)
    }

    /// A hostile length.
    fn len(&mut self) -> u64 {
        let set = [
            0,
            1,
            8,
            PAGE_SIZE - 1,
            PAGE_SIZE,
            PAGE_SIZE + 1,
            1 << 20,
            1 << 40,
            u64::MAX,
            u64::MAX - PAGE_SIZE + 1,
            self.below(1 << 16),
            self.next(),
        ];
        self.pick(&set)
    }

    /// A hostile integer.
    fn int(&mut self) -> u64 {
        let set = [
            0,
            1,
            2,
            u64::MAX,
            u64::MAX - 1,
            63,
            64,
            self.below(8),
            self.next(),
        ];
        self.pick(&set)
    }
}

/// The calls made often, and the rare ones (1 call in 4000).
const COMMON: &[Sys] = &[
    Sys::Waitpid,
    Sys::Getpid,
    Sys::Yield,
    Sys::Clock,
    Sys::Mmap,
    Sys::Munmap,
    Sys::Mprotect,
    Sys::ThreadJoin,
    Sys::Getcpu,
    Sys::Pin,
    Sys::Ncpus,
    Sys::Getparam,
    Sys::Gettid,
    Sys::AckLast,
    Sys::Exec,
];
const RARE: &[Sys] = &[Sys::Fork, Sys::ThreadCreate, Sys::ThreadExit, Sys::Exit];

fn fuzz(seed: u64, calls: u64, until: u64) {
    let mut rng = Rng(SplitMix64::new(seed));
    for i in 0..calls {
        if i % 64 == 0 && sys::clock() >= until {
            return;
        }
        let r = rng.below(4000);
        let (number, known) = if r < 80 {
            (100 + rng.below(1 << 20), None)
        } else if r == 80 {
            let s = RARE[rng.below(RARE.len() as u64) as usize];
            (s as u64, Some(s))
        } else {
            let s = COMMON[rng.below(COMMON.len() as u64) as usize];
            (s as u64, Some(s))
        };
        let mut a = [0u64; 6];
        match known {
            Some(Sys::Mmap) => {
                a = [rng.ptr(), rng.len(), rng.int() & 7, rng.int(), 0, 0];
                if rng.below(2) == 0 {
                    a[3] &= 1; // a valid flags word half the time
                }
            }
            Some(Sys::Munmap | Sys::Mprotect) => {
                a = [rng.ptr(), rng.len(), rng.int(), 0, 0, 0];
            }
            // Never a sibling: small tids are left out.
            Some(Sys::ThreadJoin) => a = [rng.pick(&[0, u64::MAX, 1 << 40]), rng.ptr(), 0, 0, 0, 0],
            Some(Sys::Waitpid) => a = [rng.pick(&[0, u64::MAX, 1, 1 << 40]), rng.ptr(), 1, 0, 0, 0],
            Some(Sys::Pin) => a = [rng.int(), 0, 0, 0, 0, 0],
            Some(Sys::Exit) => a = [rng.int(), 0, 0, 0, 0, 0],
            _ => {
                for (k, v) in a.iter_mut().enumerate() {
                    *v = match k % 3 {
                        0 => rng.ptr(),
                        1 => rng.len(),
                        _ => rng.int(),
                    };
                }
            }
        }
        // A memory call at a user address with a huge length would replace
        // or unmap this batch's own thread stacks (the kernel doing as told,
        // the program destroying itself: seen as corrupted locals). Huge
        // lengths still go with 0, kernel and non-canonical addresses.
        if matches!(known, Some(Sys::Mmap | Sys::Munmap | Sys::Mprotect))
            && (PAGE_SIZE..USER_END).contains(&a[0])
        {
            a[1] = a[1].min(1 << 20);
        }
        if known == Some(Sys::Waitpid) && rng.below(2) == 0 {
            a[0] = u64::MAX; // -1: any child, NOHANG
        }
        // SAFETY: hostile arguments are the point; the kernel checks them.
        // The calls that could change this program's own memory (munmap,
        // mprotect, FIXED mmap) only get addresses outside its image,
        // stacks and heap, or the scratch page.
        let rax = unsafe { sys::raw(number, a) };
        if known == Some(Sys::Fork) && rax == 0 {
            process::exit(0); // the grandchild
        }
        CALLS.fetch_add(1, Ordering::Relaxed);
        let signed = rax as i64;
        if (-MAX_ERRNO..=-1).contains(&signed) {
            let code = -signed;
            let unexpected = match Errno::from_code(code) {
                None => true,
                Some(Errno::ENOSYS) => known.is_some(),
                Some(_) => false,
            };
            if unexpected {
                UNEXPECTED.fetch_add(1, Ordering::Relaxed);
                report::error(
                    "fuzz",
                    format_args!("call {number} {a:x?} returned error code {code}"),
                );
            } else {
                RESULTS[code as usize].fetch_add(1, Ordering::Relaxed);
            }
        } else {
            if known.is_none() {
                UNEXPECTED.fetch_add(1, Ordering::Relaxed);
                report::error(
                    "fuzz",
                    format_args!("unknown call {number} returned {rax:#x}"),
                );
            }
            RESULTS[0].fetch_add(1, Ordering::Relaxed);
        }
        let _ = decode_result(rax);
    }
}
