//! Processes in user mode (issue 5), checked on the real kernel: usertest's
//! in-guest checks, the fork-exit loop's accounting (frames and pm_cpus),
//! and seed 004's early pmap_remove returns. The workloads' own figures and
//! parameters are checked in workloads.rs.

use harness::outcome::Outcome;
use harness::report::Report;

use crate::common::*;

fn total(report: &Report, name: &str) -> f64 {
    report
        .metric(name)
        .unwrap_or_else(|| panic!("no machine-wide {name} in the report"))
}

fn with_params<'a>(
    pairs: &'a [(&'a str, &'a str)],
) -> impl FnOnce(&mut harness::run::RunSpec) + 'a {
    move |spec| {
        spec.params = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    }
}

/// The run ended ok, every IPI sent was received, and every frame taken
/// during the run was given back.
fn assert_clean_run(report: &Report, outcome: &Outcome, what: &str) {
    assert_eq!(*outcome, Outcome::Ok, "{what}: {outcome}");
    assert_ipis_balanced(report);
    assert_eq!(
        total(report, "mem.frames.free_end"),
        total(report, "mem.frames.free_start"),
        "{what}: frames leaked"
    );
}

/// usertest's checks (fork + COW isolation, exec with argv, wait status,
/// threads on every CPU, mmap/munmap/mprotect, kills, bad syscalls) all
/// pass on 1 and 4 CPUs.
#[test]
fn usertest_passes_on_1_and_4_cpus() {
    for cpus in [1, 4] {
        let b = boot("usertest", cpus);
        let r = &b.result.report;
        assert_clean_run(r, &b.result.outcome, &format!("usertest x{cpus}"));
        let checks: Vec<_> = r
            .metrics
            .iter()
            .filter(|m| m.unit == "bool" && m.name.starts_with("usertest."))
            .collect();
        assert!(checks.len() >= 12, "x{cpus}: only {} checks", checks.len());
        for m in &checks {
            assert_eq!(m.value, 1.0, "x{cpus}: {} failed", m.name);
        }
        assert_eq!(total(r, "usertest.failed"), 0.0, "x{cpus}");
        assert_eq!(total(r, "usertest.passed"), checks.len() as f64, "x{cpus}");
        // Its deliberate faults killed only the children that made them.
        assert!(total(r, "proc.kills") >= 10.0, "x{cpus}");
        assert_eq!(total(r, "pmap.destroy.cpus_nonzero"), 0.0, "x{cpus}");
    }
}

/// 3,000 fork-exit cycles on 4 CPUs give back every frame, and the fixed
/// pmap never destroys a pmap still marked active on a CPU. (The exact
/// counts below hold for any count; a longer soak is `harness run
/// --workload forkexit --cpus 4 --param loops=100000`.)
#[test]
fn forkexit_3000_on_4_cpus_is_clean() {
    let b = boot_with("forkexit", 4, |s| {
        with_params(&[("loops", "3000")])(s);
        s.timeout = std::time::Duration::from_secs(300);
    });
    let r = &b.result.report;
    assert_clean_run(r, &b.result.outcome, "forkexit x4");
    assert_eq!(total(r, "forkexit.loops"), 3_000.0);
    assert_eq!(total(r, "pmap.destroy.cpus_nonzero"), 0.0);
    // The instance process and its 3,000 children (and the first process).
    assert_eq!(total(r, "proc.forks"), 3_001.0);
    assert_eq!(total(r, "proc.exits"), 3_002.0);
    assert_eq!(total(r, "pmap.destroy.calls"), 3_002.0);
    let secs = total(r, "forkexit.elapsed_ns") / 1e9;
    eprintln!(
        "forkexit x4: {:.0} loops/s ({} loops in {secs:.3} s)",
        3_000.0 / secs,
        3_000
    );
}

/// Seed 004's situation: a child that touched the shared page keeps it
/// resident through pmap_remove_pages (it is unmanaged), so no pmap_remove
/// of its exit returns early; one that did not leaves nothing resident,
/// and they all do.
#[test]
fn shared_page_touch_decides_early_returns_at_exit() {
    let on = boot_with(
        "forkexit",
        1,
        with_params(&[("loops", "200"), ("touch", "on")]),
    );
    let off = boot_with(
        "forkexit",
        1,
        with_params(&[("loops", "200"), ("touch", "off")]),
    );
    for (b, what) in [(&on, "touch=on"), (&off, "touch=off")] {
        assert_clean_run(&b.result.report, &b.result.outcome, what);
    }
    let (on, off) = (&on.result.report, &off.result.report);
    assert!(total(on, "pmap.remove.exit_calls") >= 200.0);
    assert_eq!(total(on, "pmap.remove.exit_early"), 0.0, "touch=on");
    // Every child's removes end early: all but the instance's own exit.
    let calls = total(off, "pmap.remove.exit_calls");
    let early = total(off, "pmap.remove.exit_early");
    assert!(early >= calls * 0.9, "touch=off: {early} of {calls} early");
}

/// exec racing its process's exiting threads (exec-race: each child starts
/// threads that exit at once on other CPUs and execs meanwhile), 10,000
/// rounds on 4 CPUs: no pmap is freed while a CPU still has it loaded (the
/// old exec, which checked only `live`, panicked here with "pool pmappl:
/// free item ... was modified at offset 24": a late pmap_deactivate on a
/// freed pmap), and every frame comes back.
#[test]
fn exec_racing_exiting_threads_10000_on_4_cpus_is_clean() {
    let b = boot_with("exec-race", 4, |s| {
        with_params(&[("rounds", "10000")])(s);
        s.timeout = std::time::Duration::from_secs(300);
    });
    let r = &b.result.report;
    assert_clean_run(r, &b.result.outcome, "exec-race x4");
    assert_eq!(total(r, "exec-race.rounds"), 10_000.0);
    assert_eq!(total(r, "pmap.destroy.cpus_nonzero"), 0.0);
}
