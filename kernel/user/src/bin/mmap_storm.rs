//! `mmap-storm`: will-it-scale's mmap1 in threads mode, with touching.
//!
//! `threads` threads (one per CPU by default), thread i pinned to CPU
//! i mod ncpus when `pin=on`, each repeat: mmap `pages` pages, write one
//! byte in each, munmap. Every munmap of touched pages needs a shootdown on
//! every CPU the process runs on, so all CPUs initiate shootdowns at once:
//! where a global shootdown lock and a per-CPU scoreboard differ.
//!
//! Figures: per thread `mmap-storm.ops`, `.elapsed_ns` and `.ops_per_s`
//! (scope cpu=i when pinned and threads <= ncpus, else
//! `mmap-storm.thread.<i>.ops` and so on); for the run `mmap-storm.ops`,
//! `.elapsed_ns`, `.ops_per_s`, `.threads`, and the canonical
//! `workload.ops` (= ops) and `workload.elapsed_ns`. The shootdowns' wait
//! for acknowledgements (median, p99) is the kernel's
//! `shoot.ack.<kind>.{median,p99}`; the IPIs per op, the harness's
//! `ipis_per_op`.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU64, Ordering};

use lab_core::syscall::PAGE_SIZE;
use ulib::mem;
use ulib::thread::{self, JoinHandle};
use ulib::time::now_ns;
use ulib::{param, println, report};

ulib::main!(main);

const MAX_THREADS: usize = 64;
static ELAPSED: [AtomicU64; MAX_THREADS] = [const { AtomicU64::new(0) }; MAX_THREADS];

fn main() -> i32 {
    let cpus = thread::ncpus();
    let threads = match param::u64("threads") {
        0 => cpus as usize,
        n => n as usize,
    }
    .min(MAX_THREADS);
    let pages = param::u64("pages");
    let ops = param::u64("ops");
    let duration_ms = param::u64("duration_ms");
    let pin = param::flag("pin");
    println!(
        "mmap-storm: threads={threads} pages={pages} ops={ops} duration_ms={duration_ms} pin={pin}"
    );

    let start = now_ns();
    let mut handles: [Option<JoinHandle>; MAX_THREADS] = [const { None }; MAX_THREADS];
    thread::spawn_n(threads, pin, &mut handles, move |i| {
        storm(i, pages * PAGE_SIZE, ops, duration_ms)
    });
    let mut total = 0;
    let per_cpu = pin && threads <= cpus as usize;
    for (i, slot) in handles[..threads].iter_mut().enumerate() {
        let done = slot.take().unwrap().join().expect("join");
        let elapsed = ELAPSED[i].load(Ordering::Relaxed);
        total += done;
        let rate = report::rate_hz(done, elapsed);
        if per_cpu {
            report::metric_cpu("mmap-storm.ops", done, "count", i as u32);
            report::metric_cpu("mmap-storm.elapsed_ns", elapsed, "ns", i as u32);
            report::metric_cpu("mmap-storm.ops_per_s", rate, "hz", i as u32);
        } else {
            report::metric_fmt(format_args!("mmap-storm.thread.{i}.ops"), done, "count");
            report::metric_fmt(
                format_args!("mmap-storm.thread.{i}.elapsed_ns"),
                elapsed,
                "ns",
            );
            report::metric_fmt(format_args!("mmap-storm.thread.{i}.ops_per_s"), rate, "hz");
        }
    }
    let elapsed = now_ns() - start;
    report::metric("mmap-storm.threads", threads as u64, "count");
    report::metric("mmap-storm.ops", total, "count");
    report::metric("mmap-storm.elapsed_ns", elapsed, "ns");
    let rate = report::rate_hz(total, elapsed);
    report::metric("mmap-storm.ops_per_s", rate, "hz");
    report::workload(total, elapsed);
    println!(
        "mmap-storm: {total} ops in {} us ({rate} ops/s)",
        elapsed / 1000
    );
    0
}

/// Thread i's loop; returns the mmap+touch+munmap cycles done.
fn storm(i: usize, len: u64, ops: u64, duration_ms: u64) -> u64 {
    let start = now_ns();
    let deadline = start + duration_ms * 1_000_000;
    let mut done = 0;
    while if duration_ms == 0 {
        done < ops
    } else {
        now_ns() < deadline
    } {
        let addr = mem::map_rw(len).expect("mmap");
        // SAFETY: our fresh read-write mapping, unmapped right after.
        unsafe {
            mem::touch_pages(addr, len, done as u8);
            mem::munmap(addr, len).expect("munmap");
        }
        done += 1;
    }
    ELAPSED[i].store(now_ns() - start, Ordering::Relaxed);
    done
}
