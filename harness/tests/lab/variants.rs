//! The pmap variants (issue 6), each booted for real: every variant file
//! builds and passes pmap-selftest; on forkexit with 4 CPUs the counters
//! move the way each variant's mechanism predicts (directions, not magic
//! numbers); and the coherence oracle finds no stale access in any variant
//! but the lost-shootdown negative control, where it must find some.
//!
//! Boots are short (forkexit loops=300, coherence remaps=50 rounds=2) and
//! run two at a time (common::with_slot); kernels are built once each.

use std::collections::BTreeMap;

use harness::kernel_build;
use harness::outcome::{Kind, Outcome};
use harness::report::Report;
use harness::variants;

use crate::common::*;

fn total(report: &Report, name: &str) -> f64 {
    report
        .metric(name)
        .unwrap_or_else(|| panic!("no machine-wide {name} in the report"))
}

/// Every variant file in variants/.
fn all_variants() -> Vec<String> {
    variants::load_all(&workspace())
        .unwrap()
        .into_iter()
        .map(|v| v.name)
        .collect()
}

/// Boots `workload` on `cpus` CPUs in `variant` with `params`.
fn run(variant: &str, workload: &str, cpus: u32, params: &[(&str, &str)]) -> (Outcome, Report) {
    let b = boot_variant(variant, workload, cpus, |spec| {
        spec.params = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    });
    (b.result.outcome, b.result.report)
}

/// One boot: variant, workload, CPUs, parameters.
type Job<'a> = (&'a str, &'a str, u32, Vec<(&'a str, &'a str)>);

/// Runs every job two at a time (the slots bound QEMU; kernels are built
/// first, one after another).
fn run_all(jobs: &[Job<'_>]) -> Vec<(Outcome, Report)> {
    for (v, ..) in jobs {
        kernel_for(v);
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .iter()
            .map(|(v, w, c, p)| s.spawn(move || run(v, w, *c, p)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Every variant file builds, boots and passes pmap-selftest (whose checks
/// follow each variant's own semantics) on 1 and 4 CPUs.
#[test]
fn every_variant_passes_pmap_selftest_on_1_and_4_cpus() {
    let names = all_variants();
    assert!(names.len() >= 8, "variants: {names:?}");
    let jobs: Vec<_> = names
        .iter()
        .flat_map(|v| [1, 4].map(|c| (v.as_str(), "pmap-selftest", c, vec![])))
        .collect();
    for ((v, _, cpus, _), (outcome, report)) in jobs.iter().zip(run_all(&jobs)) {
        // These tests run under TCG, which offers no PCID: `pcid` must say
        // so (pcid_says_it_is_unsupported_under_tcg), no other may.
        if *v == "pcid" && outcome.kind() == Kind::Unsupported {
            continue;
        }
        assert_eq!(outcome, Outcome::Ok, "{v} x{cpus}: {outcome}");
        assert_eq!(total(&report, "selftest.failures"), 0.0, "{v} x{cpus}");
        assert_ipis_balanced(&report);
    }
}

/// forkexit's figures for one run.
struct Fork {
    /// Share of shootpage + shootrange calls that sent no IPI.
    noipi_share: f64,
    cpus_nonzero: f64,
    exit_early: f64,
    exit_calls: f64,
    /// Shootdown IPIs sent while a pmap was torn down (exit, exec).
    dying_ipis: f64,
    /// shootpage + shootrange IPIs per loop.
    page_range_ipis: f64,
    /// Shootdown IPIs of every kind per loop.
    shoot_ipis: f64,
}

fn fork_figures(what: &str, loops: f64, outcome: Outcome, r: &Report) -> Fork {
    assert_eq!(outcome, Outcome::Ok, "{what}: {outcome}");
    assert_ipis_balanced(r);
    assert_eq!(total(r, "forkexit.loops"), loops, "{what}");
    let calls = total(r, "shoot.calls.shootpage") + total(r, "shoot.calls.shootrange");
    let noipi = total(r, "shoot.noipi.shootpage") + total(r, "shoot.noipi.shootrange");
    assert!(calls > 0.0, "{what}: no shootpage/shootrange calls");
    Fork {
        noipi_share: noipi / calls,
        cpus_nonzero: total(r, "pmap.destroy.cpus_nonzero"),
        exit_early: total(r, "pmap.remove.exit_early"),
        exit_calls: total(r, "pmap.remove.exit_calls"),
        dying_ipis: total(r, "shoot.dying.ipis"),
        page_range_ipis: (total(r, "ipi.sent.shootpage") + total(r, "ipi.sent.shootrange"))
            / total(r, "workload.ops"),
        shoot_ipis: ["shootpage", "shootrange", "shoottlb"]
            .iter()
            .map(|k| total(r, &format!("ipi.sent.{k}")))
            .sum::<f64>()
            / total(r, "workload.ops"),
    }
}

/// On forkexit with 4 CPUs each variant's counters differ from fixed the
/// way its mechanism predicts. pin=off (parent and children move between
/// CPUs) for everything but the share of shootdowns without IPI in seed
/// 000's variants: a CPU clears its poisoned pm_cpus bit when it switches
/// away from the pmap, so with pin=off the long-lived parent's pmap loses
/// its false bits and its calls (about half) stop sending IPIs, which puts
/// the share near 0.5 by construction; with pin=on (long-running processes
/// staying put, as on the seed's laptop) the false bits stay.
///
/// Seed 004's variants are on the FreeBSD base (`freebsd-before` is
/// D32569's before): no shootdown IPI at all from a single-threaded fork
/// loop, where `fixed` (OpenBSD 2010) shoottlbs every CPU at each exit.
#[test]
fn forkexit_counters_follow_each_mechanism() {
    let job = |v, pin, touch| {
        let params = vec![("loops", "300"), ("pin", pin), ("touch", touch)];
        (v, "forkexit", 4, params)
    };
    let on = |v| job(v, "off", "on");
    let off = |v| job(v, "off", "off");
    let pinned = |v| job(v, "on", "on");
    let jobs = vec![
        pinned("openbsd-2010"),
        pinned("uninit-bitmap"),
        pinned("fixed"),
        on("openbsd-2010"),
        on("uninit-bitmap"),
        on("fork-inherit"),
        on("fixed"),
        off("fixed"),
        on("freebsd-before"),
        off("freebsd-before"),
        on("shared-page-counted"),
        off("shared-page-counted"),
        on("shared-page-opt"),
        off("shared-page-opt"),
        on("dying-no-ipi"),
    ];
    // Keyed by variant and "on"/"off" (touch, with pin=off) or "pinned".
    let mut f: BTreeMap<(&str, &str), Fork> = BTreeMap::new();
    for ((v, _, _, p), (outcome, report)) in jobs.iter().zip(run_all(&jobs)) {
        let key = if p[1].1 == "on" { "pinned" } else { p[2].1 };
        let what = format!("{v} {key}");
        f.insert((v, key), fork_figures(&what, 300.0, outcome, &report));
    }
    let g = |v, t| &f[&(v, t)];

    // Seed 000: the buggy bitmaps send IPIs on most calls, the fix on
    // almost none; pmap_destroy finds pm_cpus set only in the bugs.
    for v in ["openbsd-2010", "uninit-bitmap"] {
        let share = g(v, "pinned").noipi_share;
        assert!(share < 0.5, "{v} pinned: {share}");
        let (bug, fix) = (g(v, "on").noipi_share, g("fixed", "on").noipi_share);
        assert!(bug < fix, "{v}: {bug} vs fixed {fix}");
    }
    let share = g("fixed", "pinned").noipi_share;
    assert!(share > 0.9, "fixed pinned: {share}");
    for v in [
        "fixed",
        "freebsd-before",
        "shared-page-counted",
        "shared-page-opt",
        "dying-no-ipi",
    ] {
        assert!(
            g(v, "on").noipi_share > 0.9,
            "{v}: {}",
            g(v, "on").noipi_share
        );
        assert_eq!(g(v, "on").cpus_nonzero, 0.0, "{v}");
    }
    for v in ["openbsd-2010", "uninit-bitmap", "fork-inherit"] {
        assert!(g(v, "on").cpus_nonzero > 0.0, "{v}");
    }
    // fork-inherit: children run unpinned and write copy-on-write pages,
    // so the parent's CPU, left in the child's pm_cpus, gets shootpage
    // and shootrange IPIs that fixed never sends.
    let (bug, fix) = (g("fork-inherit", "on"), g("fixed", "on"));
    assert!(
        bug.page_range_ipis > 0.0,
        "fork-inherit: no page/range IPIs"
    );
    assert!(
        bug.page_range_ipis >= 2.0 * fix.page_range_ipis,
        "fork-inherit {} vs fixed {} page/range IPIs per loop",
        bug.page_range_ipis,
        fix.page_range_ipis
    );

    // Seed 004, before: early returns at exit only when the child did not
    // touch the shared page (pmap_remove_pages leaves it).
    for v in ["fixed", "freebsd-before"] {
        assert_eq!(g(v, "on").exit_early, 0.0, "{v}");
        assert!(g(v, "off").exit_early > 0.5 * g(v, "off").exit_calls, "{v}");
    }
    // The first diff nullifies the early return.
    assert_eq!(g("shared-page-counted", "off").exit_early, 0.0);
    // As landed: the shared page goes first, so early returns come back,
    // touch=on included.
    for t in ["on", "off"] {
        let s = g("shared-page-opt", t);
        assert!(
            s.exit_early > g("freebsd-before", "on").exit_early,
            "touch={t}"
        );
        assert_eq!(s.exit_early, s.exit_calls, "touch={t}");
    }
    // Teardown IPIs: OpenBSD 2010's per-region removes of ranges over 32
    // pages shoottlb every CPU at each exit when the shared page is left
    // mapped; FreeBSD's invalidate only the pmap's CPUs, none for an
    // exiting single-threaded process: the FreeBSD base sends no
    // shootdown IPI at all here, so the dying-pmap idea has nothing left
    // to save over shared-page-opt.
    assert!(g("fixed", "on").dying_ipis > 0.0);
    for (v, t) in [
        ("freebsd-before", "on"),
        ("freebsd-before", "off"),
        ("shared-page-counted", "on"),
        ("shared-page-counted", "off"),
        ("shared-page-opt", "on"),
        ("shared-page-opt", "off"),
        ("dying-no-ipi", "on"),
    ] {
        assert_eq!(g(v, t).shoot_ipis, 0.0, "{v} touch={t}");
        assert_eq!(g(v, t).dying_ipis, 0.0, "{v} touch={t}");
    }
}

/// The dying-pmap idea on OpenBSD 2010's invalidations (fixed +
/// `dying-no-ipi`, a build made here rather than a variant file): on the
/// FreeBSD base the teardown of a single-threaded process sends no IPI,
/// so the `dying-no-ipi` variant cannot send fewer than shared-page-opt
/// (both send none); on fixed, the idea removes the shoottlb IPIs that the
/// per-region removes send to every CPU at each exit when the child
/// touched the shared page.
#[test]
fn dying_no_ipi_alone_removes_the_exit_ipis_of_fixed() {
    let ws = workspace();
    let mut alone = variants::load(&ws, "fixed").unwrap();
    alone.name = "test-fixed-dying-no-ipi".into();
    alone.features = vec!["dying-no-ipi".into()];
    let image = kernel_build::build(&ws, &alone, kernel_build::Output::OnFailure).unwrap();
    let fixed = kernel_for("fixed");
    // 100 loops: each exit sends its shoottlb IPIs, so a few loops show
    // the difference as well as many.
    let params = [("loops", "100"), ("pin", "off"), ("touch", "on")];
    let figures = [("fixed", fixed), ("fixed+dying-no-ipi", image)].map(|(what, kernel)| {
        let b = boot_with("forkexit", 4, |spec| {
            spec.kernel = kernel;
            spec.params = params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        });
        fork_figures(what, 100.0, b.result.outcome, &b.result.report)
    });
    let [fixed, alone] = figures;
    assert!(fixed.dying_ipis > 0.0);
    assert_eq!(alone.dying_ipis, 0.0);
    // The idea changes which CPUs are interrupted, not what is removed.
    assert_eq!(alone.exit_early, fixed.exit_early);
}

/// The coherence oracle finds no stale access in any variant but
/// lost-shootdown, and finds some there (the run then ends failed).
#[test]
fn coherence_catches_only_the_lost_shootdown() {
    // One round per mode: every variant goes through every mode's path;
    // the default matrix runs the oracle in full on each (gate rules).
    let params = vec![("remaps", "20"), ("rounds", "1")];
    let names = all_variants();
    // LATR's munmap is lazy by design: its oracle runs say so (lazy=on
    // allows the old value until the reader's CPU applies the munmap).
    let jobs: Vec<_> = names
        .iter()
        .map(|v| {
            let mut p = params.clone();
            if v == "lazy-latr" {
                p.push(("lazy", "on"));
            }
            (v.as_str(), "coherence", 4, p)
        })
        .collect();
    for ((v, ..), (outcome, report)) in jobs.iter().zip(run_all(&jobs)) {
        // No PCID under TCG (pcid_says_it_is_unsupported_under_tcg).
        if *v == "pcid" && outcome.kind() == Kind::Unsupported {
            continue;
        }
        let stale = total(&report, "coherence.stale");
        assert!(total(&report, "coherence.checks") > 0.0, "{v}: no checks");
        assert_ipis_balanced(&report);
        if *v == "lost-shootdown" {
            assert!(stale > 0.0, "lost-shootdown: the oracle saw nothing");
            assert!(matches!(outcome, Outcome::Failed { .. }), "{outcome}");
        } else {
            assert_eq!(stale, 0.0, "{v}: stale accesses");
            assert_eq!(outcome, Outcome::Ok, "{v}: {outcome}");
        }
    }
    assert!(names.iter().any(|v| v == "lost-shootdown"));
}

/// LATR keeps the promise it makes instead of munmap's (coherence
/// lazy=on: after munmap returns, only the old value, and only until the
/// reader's CPU applies the record), and every record it queued is applied
/// by the end of the run. (That it breaks the strict promise is not
/// asserted: whether a reader reads before its next tick is timing.)
#[test]
fn latr_keeps_its_own_promise() {
    let lazy = vec![("mode", "munmap"), ("rounds", "16"), ("lazy", "on")];
    let jobs: Vec<Job<'_>> = vec![
        ("lazy-latr", "mmap-storm", 4, vec![]),
        ("lazy-latr", "coherence", 4, lazy),
    ];
    let results = run_all(&jobs);
    let (outcome, storm) = &results[0];
    assert_eq!(*outcome, Outcome::Ok);
    assert!(total(storm, "latr.queued") > 0.0, "no munmap was lazy");
    // Each target a record named is one IPI a munmap did not send, and the
    // cause counters say so (what `harness explain` and the cause chart
    // report).
    let spared: f64 = ["shootpage", "shootrange", "shoottlb"]
        .iter()
        // Absent cause metrics are 0 (the kernel leaves them out).
        .map(|k| {
            storm
                .metric(&format!("shoot.cause.munmap.{k}.spared"))
                .unwrap_or(0.0)
        })
        .sum();
    assert_eq!(
        spared,
        total(storm, "latr.deferred"),
        "spared IPIs vs the targets the records named"
    );
    assert_eq!(
        total(storm, "latr.deferred"),
        total(storm, "latr.applied"),
        "every record applied by every target it named by the end of the run"
    );
    let (outcome, oracle) = &results[1];
    assert_eq!(*outcome, Outcome::Ok, "lazy=on: {outcome}");
    assert_eq!(total(oracle, "coherence.stale"), 0.0);
    assert!(total(oracle, "coherence.munmap.passed") > 0.0);
}

/// forkexit (touch=on, 300 loops) of each of `names` on 4 CPUs, each ended
/// ok with every IPI received: the reports by variant.
fn forkexit_on_4(names: &[&'static str]) -> BTreeMap<&'static str, Report> {
    let jobs: Vec<Job<'_>> = names
        .iter()
        .map(|v| (*v, "forkexit", 4, vec![("touch", "on"), ("loops", "300")]))
        .collect();
    names
        .iter()
        .zip(run_all(&jobs))
        .map(|(name, (outcome, report))| {
            assert_eq!(outcome, Outcome::Ok, "{name}: {outcome:?}");
            assert_ipis_balanced(&report);
            (*name, report)
        })
        .collect()
}

/// The techniques published since the seeds (issue 21) on forkexit with 4
/// CPUs beside `fixed`: each moves the counter of its own mechanism, and
/// only that one (directions, not figures).
#[test]
fn techniques_move_their_own_counters() {
    let names = [
        "fixed",
        "early-ack",
        "in-context-flush",
        "no-flush-cow",
        "lazy-tlb",
        "flush-first",
    ];
    let by = forkexit_on_4(&names);
    let get = |v: &str, m: &str| total(&by[v], m);
    // fixed takes none of the shortcuts.
    for m in [
        "shoot.early_acks",
        "shoot.deferred",
        "pmap.enter.upgrades_noshoot",
        "lazy.enters",
        "shoot.local_first",
    ] {
        assert_eq!(get("fixed", m), 0.0, "fixed: {m}");
    }
    // flush-first: the same shootdowns, each local invalidation moved
    // before the IPIs (fixed makes them while the IPIs are in flight).
    let overlapped = get("fixed", "shoot.local_overlapped");
    assert!(overlapped > 0.0, "fixed invalidates locally too");
    assert_eq!(get("flush-first", "shoot.local_overlapped"), 0.0);
    assert!(get("flush-first", "shoot.local_first") > 0.0);
    assert!(
        get("fixed", "pmap.enter.upgrades") > 0.0,
        "forkexit's parent upgrades"
    );
    // early-ack: acknowledgements before invalidation, at most one per
    // shootdown IPI received.
    let received: f64 = ["shootpage", "shootrange", "shoottlb"]
        .iter()
        .map(|k| get("early-ack", &format!("ipi.received.{k}")))
        .sum();
    let early = get("early-ack", "shoot.early_acks");
    assert!(
        early > 0.0 && early <= received,
        "early acks {early} of {received}"
    );
    // in-context-flush: deferred in the kernel, applied on the way out.
    assert!(get("in-context-flush", "shoot.deferred") > 0.0);
    assert!(get("in-context-flush", "shoot.deferred_applied") > 0.0);
    // no-flush-cow: every upgrade skipped, so fewer shootpage calls.
    let upgrades = get("no-flush-cow", "pmap.enter.upgrades");
    assert!(upgrades > 0.0);
    assert_eq!(get("no-flush-cow", "pmap.enter.upgrades_noshoot"), upgrades);
    assert!(get("no-flush-cow", "shoot.calls.shootpage") < get("fixed", "shoot.calls.shootpage"));
    // lazy-tlb: idle CPUs keep the pmap, so fewer CR3 loads per switch.
    assert!(get("lazy-tlb", "lazy.enters") > 0.0);
    let loads_per_switch = |v: &str| get(v, "sched.cr3_loads") / get(v, "sched.switches").max(1.0);
    assert!(
        loads_per_switch("lazy-tlb") < loads_per_switch("fixed"),
        "lazy-tlb {} CR3 loads per switch, fixed {}",
        loads_per_switch("lazy-tlb"),
        loads_per_switch("fixed")
    );
}

/// Cacheline consolidation (Amit 2020) against the scoreboard it is built
/// on, on forkexit with 4 CPUs: the same shootdowns, all delivered, and
/// each taken and acknowledged by its target in one cache line of its own
/// where the scoreboard's target touches two (its row word and the
/// initiator's record), and found through one doorbell line; the initiator
/// pays two lines per target (mailbox and doorbell). The line counts are
/// the kernel's, from the addresses its serve and start paths use.
#[test]
fn cacheline_consolidation_takes_one_line_per_request() {
    let by = forkexit_on_4(&["scoreboard", "cacheline-consolidation"]);
    let get = |v: &str, m: &str| total(&by[v], m);
    for (name, report) in &by {
        assert!(
            total(report, "ipi.sent.shoottlb") > 0.0,
            "{name}: no exit shoottlb"
        );
    }
    let (sb, ccl) = ("scoreboard", "cacheline-consolidation");
    assert_eq!(get(ccl, "shoot.target_lines"), 1.0);
    assert_eq!(get(sb, "shoot.target_lines"), 2.0);
    assert!(get(ccl, "shoot.target_lines") < get(sb, "shoot.target_lines"));
    // Its line is the pair's alone; the scoreboard's row line and record
    // are shared with other pairs.
    assert_eq!(get(ccl, "shoot.target_shared_lines"), 0.0);
    assert!(get(sb, "shoot.target_shared_lines") > 0.0);
    // The scan: the doorbell alone, where a row of mailboxes would be one
    // line per CPU.
    assert_eq!(get(ccl, "shoot.target_scan_lines"), 1.0);
    // The trade: two lines per target (6 on 4 CPUs) for the initiator,
    // where the scoreboard writes its record and one row line per target.
    assert_eq!(get(ccl, "shoot.initiator_lines"), 6.0);
    assert!(get(ccl, "shoot.initiator_lines") > get(sb, "shoot.initiator_lines"));
    assert_eq!(get(ccl, "shoot.wait.slot"), 0.0);
}

/// `pcid` needs a CPU with PCID, and QEMU's TCG offers none: the run must
/// end `unsupported`, naming what is missing, before the workload runs,
/// never as `fixed` under another name.
#[test]
fn pcid_says_it_is_unsupported_under_tcg() {
    let results = run_all(&[("pcid", "forkexit", 2, vec![("loops", "10")])]);
    let (outcome, report) = &results[0];
    assert_eq!(outcome.kind(), Kind::Unsupported, "{outcome}");
    assert!(outcome.to_string().contains("PCID"), "{outcome}");
    assert_eq!(total(report, "proc.forks"), 0.0, "the workload ran");
    assert_eq!(total(report, "pcid.kept_loads"), 0.0);
}
