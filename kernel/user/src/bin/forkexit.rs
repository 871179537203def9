//! `forkexit`: the fork loop of FreeBSD D32569 (seed 004).
//!
//! Each of `instances` processes (forked from this one; instance i pinned
//! to CPU i mod ncpus when `pin=on`, and its children with it; by default
//! unpinned, so children run wherever the scheduler puts them) first maps
//! `entries` extra one-page regions and writes each (map entries backed by
//! resident pages, as the 60 of D32569's benchmark parent), then repeats:
//! write a word of its data; fork; the child writes its stack and that
//! data word, as a real child does before exiting (copy-on-write faults,
//! whose shootdowns go to the child's pm_cpus), reads the shared page when
//! `touch=on` (so the page's translation is live when the child's address
//! space is torn down) and exits 0; the parent waits for it. An instance
//! runs `loops` cycles, or for `duration_ms` when that is not 0.
//!
//! Figures: per instance `forkexit.instance.<i>.loops`, `.elapsed_ns` and
//! `.loops_per_s`; for the run `forkexit.loops` (sum over instances: each
//! instance hands its count back as its exit status, a non-negative i32),
//! `forkexit.elapsed_ns` (from the first instance's fork to the last one's
//! end), `forkexit.loops_per_s`, `forkexit.instances`, and the canonical
//! `workload.ops` (= loops) and `workload.elapsed_ns`. IPIs per loop by
//! kind are the kernel's `ipi.sent.<kind>` over `workload.ops` (the
//! harness derives `ipis_per_op.<kind>`).
//!
//! Accounting the kernel can check against: each loop is one fork, and
//! this program forks each instance once, so `proc.forks == loops +
//! instances`; every forked process and this one exit, so `proc.exits ==
//! loops + instances + 1`; `proc.execs == 1` (this program).
//! An instance that fails reports an `error` record (a panic does too, and
//! exits 101), so a failed status can never pass silently as a count.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU64, Ordering};

use lab_core::syscall::{Prot, PAGE_SIZE};
use ulib::process::{self, Fork};
use ulib::time::{now_ns, touch_shared_page};
use ulib::{mem, param, println, report, thread, WaitStatus};

ulib::main!(main);

/// Exit status of a child whose shared page did not read right.
const BAD_SHARED_PAGE: i32 = 3;

/// A word of the program's data, written by the parent before each fork
/// (so its page is resident and shared copy-on-write with the child) and
/// by the child after it.
static DATA: AtomicU64 = AtomicU64::new(0);

/// What the child does before exiting, besides the shared page: writes its
/// stack and the data word, each a copy-on-write fault on a page it shares
/// with its parent.
fn child_writes(seed: u64) {
    let mut stack = [0u64; 8];
    for (i, w) in stack.iter_mut().enumerate() {
        // SAFETY: a local array of this frame.
        unsafe { core::ptr::write_volatile(w, seed + i as u64) };
    }
    core::hint::black_box(&stack);
    DATA.store(seed, Ordering::Relaxed);
}

/// Maps `n` one-page regions, each its own map entry, and writes each so
/// it is resident. The kernel merges adjacent regions of one protection
/// (as FreeBSD's vm_map_simplify_entry does anonymous memory), while the
/// 60 entries of D32569's benchmark parent were backed by distinct VM
/// objects, which never merge: so every other entry is made read-only
/// after its write, and no two neighbours share a protection.
fn map_entries(n: u64) -> Result<(), lab_core::syscall::Errno> {
    for i in 0..n {
        let addr = mem::map_rw(PAGE_SIZE)?;
        // SAFETY: just mapped, read-write, ours.
        unsafe { mem::touch_pages(addr, PAGE_SIZE, i as u8) };
        if i % 2 == 1 {
            // SAFETY: our own page, written above and not used again.
            unsafe { mem::mprotect(addr, PAGE_SIZE, Prot::READ)? };
        }
    }
    Ok(())
}

fn main() -> i32 {
    let instances = param::u64("instances");
    let loops = param::u64("loops");
    let duration_ms = param::u64("duration_ms");
    let touch = param::flag("touch");
    let pin = param::flag("pin");
    let entries = param::u64("entries");
    let cpus = thread::ncpus();
    println!(
        "forkexit: instances={instances} loops={loops} duration_ms={duration_ms} touch={touch} pin={pin} entries={entries} cpus={cpus}"
    );

    let start = now_ns();
    let mut pids = [0u64; 64];
    for (i, slot) in pids[..instances as usize].iter_mut().enumerate() {
        match process::fork() {
            Ok(Fork::Child) => {
                if pin {
                    thread::pin(Some(i as u32 % cpus)).expect("pin");
                }
                if let Err(e) = map_entries(entries) {
                    report::error("forkexit", format_args!("instance {i}: mmap: {e}"));
                    process::exit(-1);
                }
                process::exit(instance(i, loops, duration_ms, touch));
            }
            Ok(Fork::Parent(pid)) => *slot = pid,
            Err(e) => {
                report::error("forkexit", format_args!("fork of instance {i}: {e}"));
                return 1;
            }
        }
    }
    let mut total = 0u64;
    let mut failed = false;
    for (i, pid) in pids[..instances as usize].iter().enumerate() {
        match process::wait(*pid) {
            Ok(WaitStatus::Exited(n)) if n >= 0 => total += n as u64,
            Ok(status) => {
                report::error("forkexit", format_args!("instance {i} {status}"));
                failed = true;
            }
            Err(e) => {
                report::error("forkexit", format_args!("waitpid(instance {i}): {e}"));
                failed = true;
            }
        }
    }
    let elapsed = now_ns() - start;
    let rate = report::rate_hz(total, elapsed);
    report::metric("forkexit.instances", instances, "count");
    report::metric("forkexit.loops", total, "count");
    report::metric("forkexit.elapsed_ns", elapsed, "ns");
    report::metric("forkexit.loops_per_s", rate, "hz");
    report::workload(total, elapsed);
    println!(
        "forkexit: {total} loops in {} us ({rate} loops/s)",
        elapsed / 1000
    );
    i32::from(failed)
}

/// One instance's loop; returns the cycles done (the instance's exit
/// status), or -1 after reporting an error.
fn instance(i: usize, loops: u64, duration_ms: u64, touch: bool) -> i32 {
    let start = now_ns();
    let deadline = start + duration_ms * 1_000_000;
    let mut done = 0u64;
    loop {
        if duration_ms == 0 && done == loops {
            break;
        }
        if duration_ms != 0 && now_ns() >= deadline {
            break;
        }
        DATA.store(done, Ordering::Relaxed);
        let pid = match process::fork() {
            Ok(Fork::Child) => {
                child_writes(done + 1);
                let ok = !touch || touch_shared_page();
                process::exit(if ok { 0 } else { BAD_SHARED_PAGE });
            }
            Ok(Fork::Parent(pid)) => pid,
            Err(e) => {
                report::error("forkexit", format_args!("instance {i}: fork: {e}"));
                return -1;
            }
        };
        match process::wait(pid) {
            Ok(WaitStatus::Exited(0)) => {}
            Ok(status) => {
                report::error("forkexit", format_args!("instance {i}: child {status}"));
                return -1;
            }
            Err(e) => {
                report::error("forkexit", format_args!("instance {i}: waitpid: {e}"));
                return -1;
            }
        }
        done += 1;
    }
    let elapsed = now_ns() - start;
    report::metric_fmt(format_args!("forkexit.instance.{i}.loops"), done, "count");
    report::metric_fmt(
        format_args!("forkexit.instance.{i}.elapsed_ns"),
        elapsed,
        "ns",
    );
    report::metric_fmt(
        format_args!("forkexit.instance.{i}.loops_per_s"),
        report::rate_hz(done, elapsed),
        "hz",
    );
    i32::try_from(done).unwrap_or(i32::MAX)
}
