//! No user program can crash, hang or starve the kernel: the `bombs`
//! workload's directed tests, one per limit (lab_core::limits) and per
//! finding, on 2 and 4 CPUs. Each run must end ok (the program checks the
//! kernel's answers and fails the run otherwise), with the expected error,
//! balanced IPIs, and every frame taken during the run given back.

use harness::report::Report;
use lab_core::limits;
use lab_core::syscall::Errno;

use crate::common::*;

fn total(report: &Report, name: &str) -> f64 {
    report
        .metric(name)
        .unwrap_or_else(|| panic!("no machine-wide {name} in the report"))
}

/// Runs `bombs mode=<mode>` (plus `extra` parameters) on 2 and 4 CPUs,
/// checks the run is clean and ended with `errno`, and hands each report
/// to `check`.
fn bomb(mode: &str, extra: &[(&str, &str)], errno: Errno, check: impl Fn(u32, &Report)) {
    for cpus in [2, 4] {
        let b = boot_with("bombs", cpus, |s| {
            s.params = [("mode", mode)]
                .iter()
                .chain(extra)
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        });
        let r = &b.result.report;
        let what = format!("bombs {mode} x{cpus}");
        assert_eq!(b.result.outcome, harness::outcome::Outcome::Ok, "{what}");
        assert_ipis_balanced(r);
        assert_eq!(
            total(r, "mem.frames.free_end"),
            total(r, "mem.frames.free_start"),
            "{what}: frames leaked"
        );
        assert_eq!(
            total(r, "bombs.errno"),
            errno.code() as f64,
            "{what}: wrong error"
        );
        assert_eq!(total(r, "limit.procs"), limits::PROCS as f64);
        check(cpus, r);
    }
}

/// A process makes threads that exit at once until thread_create says
/// EAGAIN at limit.threads_per_proc (dead unjoined threads count).
#[test]
fn thread_bomb_ends_in_eagain() {
    bomb("thread-bomb", &[], Errno::EAGAIN, |_, r| {
        assert_eq!(
            total(r, "bombs.count"),
            (limits::THREADS_PER_PROC - 1) as f64
        );
        assert_eq!(
            total(r, "limit.threads_per_proc"),
            limits::THREADS_PER_PROC as f64
        );
    });
}

/// Unreaped children until fork says EAGAIN (limit.procs, zombies count).
#[test]
fn fork_bomb_ends_in_eagain() {
    bomb("fork-bomb", &[], Errno::EAGAIN, |_, r| {
        let n = total(r, "bombs.count");
        assert!(n > 0.0 && n < limits::PROCS as f64, "{n} forks");
    });
}

/// FIXED one-page mappings until mmap says ENOMEM at
/// limit.regions_per_proc.
#[test]
fn region_bomb_ends_in_enomem() {
    bomb("region-bomb", &[], Errno::ENOMEM, |_, r| {
        let n = total(r, "bombs.count");
        assert!(
            n > (limits::REGIONS_PER_PROC - 16) as f64 && n < limits::REGIONS_PER_PROC as f64,
            "{n} regions"
        );
    });
}

/// A process touching more pages than there are frames is killed for
/// want of memory; the kernel and its other processes go on.
#[test]
fn frame_exhaustion_kills_only_the_hog() {
    bomb("frame-exhaust", &[], Errno::ENOMEM, |_, r| {
        assert!(total(r, "proc.kills") >= 1.0);
    });
}

/// The sequence that panicked the kernel ("memory allocation of 24608
/// bytes failed" in Vm::unmap): 30 levels of processes with 255 unjoined
/// dead threads each, then FIXED mappings at fresh addresses. Threads end
/// in EAGAIN at limit.threads, the mappings in ENOMEM, the run ok.
#[test]
fn heap_exhaustion_sequence_ends_in_errors_not_a_panic() {
    bomb(
        "heap-exhaust",
        &[("levels", "30")],
        Errno::ENOMEM,
        |_, r| {
            assert_eq!(total(r, "bombs.thread_errno"), Errno::EAGAIN.code() as f64);
            assert!(total(r, "bombs.threads") <= limits::THREADS as f64);
            assert!(total(r, "bombs.levels") < 30.0);
            assert!(total(r, "mem.heap.bytes") <= limits::HEAP_MAX_BYTES as f64);
        },
    );
}

/// waitpid with its status page unmapped while it sleeps fails with
/// EFAULT and leaves the child: a second waitpid reaps it (status 7).
#[test]
fn waitpid_efault_keeps_the_child() {
    bomb("waitpid-efault", &[], Errno::EFAULT, |_, r| {
        assert_eq!(total(r, "bombs.count"), 7.0);
    });
}

/// A thread that exits with -2 joins as -2 (not as ENOENT), and a join
/// with a bad value pointer fails with EFAULT without consuming it.
#[test]
fn join_of_a_negative_exit_value() {
    for cpus in [2, 4] {
        let b = boot_with("bombs", cpus, |s| {
            s.params = vec![("mode".into(), "join-neg".into())];
        });
        let r = &b.result.report;
        assert_eq!(b.result.outcome, harness::outcome::Outcome::Ok, "x{cpus}");
        assert_eq!(total(r, "bombs.count"), -2.0, "x{cpus}");
        assert_eq!(
            total(r, "mem.frames.free_end"),
            total(r, "mem.frames.free_start")
        );
    }
}

/// A short fuzz run (seeded random calls with hostile arguments from a
/// thread per CPU, in child processes) ends ok: no unexpected result, the
/// kernel alive, every frame back.
#[test]
fn fuzz_short_run_is_clean() {
    for (cpus, seed) in [(2, "1"), (4, "2")] {
        let b = boot_with("fuzz", cpus, |s| {
            s.params = [("seed", seed), ("calls", "8000"), ("batches", "2")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        });
        let r = &b.result.report;
        assert_eq!(b.result.outcome, harness::outcome::Outcome::Ok, "x{cpus}");
        assert_ipis_balanced(r);
        assert_eq!(
            total(r, "mem.frames.free_end"),
            total(r, "mem.frames.free_start"),
            "fuzz x{cpus}: frames leaked"
        );
        assert_eq!(total(r, "fuzz.batches"), 2.0);
        let ended = total(r, "fuzz.batches_done")
            + total(r, "fuzz.exits")
            + [
                "page_fault",
                "general_protection",
                "invalid_opcode",
                "other_exception",
                "out_of_memory",
            ]
            .iter()
            .map(|k| total(r, &format!("fuzz.kills.{k}")))
            .sum::<f64>();
        assert_eq!(ended, 2.0, "x{cpus}: every batch accounted for");
        assert!(r.errors.is_empty(), "x{cpus}: {:?}", r.errors);
    }
}
