//! The gate's unit tests: every rule kind, every regime of statistics and
//! the report, on fixture rows.

use super::*;
use crate::results::metadata::Metadata;
use crate::results::model::fixtures::{cell, matrix_rows, run};
use crate::results::model::Outcome;

/// The TEST FIXTURE rows moved to accel tcg-icount.
fn icount(rows: &[ResultRow]) -> Vec<ResultRow> {
    rows.iter()
        .map(|r| ResultRow {
            accel: REPEATABLE_ACCEL.into(),
            ..r.clone()
        })
        .collect()
}

fn rules(text: &str) -> Rules {
    Rules::parse(text).unwrap()
}

#[test]
fn bound_passes_and_fails_naming_the_rule() {
    // TEST FIXTURE: fixed sends 0.1 IPIs/op x cpus/2, openbsd-2010 2.0 x cpus/2.
    let rows = matrix_rows(3);
    let r = rules(
        "[[bound]]\nname='fixed forkexit ipis per loop'\nvariant='fixed'\nworkload='forkexit'\ncpus=4\nfigure='ipis_per_op'\nmax=0.5\nany_accel=true\n",
    );
    let report = evaluate(&r, &rows, &Inputs::default());
    assert!(report.passed(), "{}", report.table());
    assert_eq!(report.lines.len(), 1);
    assert_eq!(report.lines[0].value, "0.2");

    // openbsd-2010's figures under fixed's rule fail, naming the rule.
    let bad: Vec<ResultRow> = rows
        .iter()
        .filter(|r| r.variant == "openbsd-2010")
        .map(|r| ResultRow {
            variant: "fixed".into(),
            ..r.clone()
        })
        .collect();
    let report = evaluate(&r, &bad, &Inputs::default());
    assert!(!report.passed());
    let fail = report.failures().next().unwrap();
    assert_eq!(fail.rule, "fixed forkexit ipis per loop");
    assert_eq!(fail.value, "4");
    assert!(report.table().contains("FAIL") && report.table().contains("gate: FAILED"));
    assert!(report
        .markdown()
        .contains("❌ **FAIL** | bound | fixed forkexit ipis per loop"));
}

#[test]
fn missing_data_fails_unless_optional() {
    let rows = matrix_rows(1);
    let r = rules(
        "[[bound]]\nname='scoreboard exists'\nvariant='scoreboard'\nfigure='ipis_per_op'\nmax=1\n\
         [[bound]]\nname='optional'\nvariant='dfly-batch'\nfigure='ipis_per_op'\nmax=1\nrequired=false\n\
         [[bound]]\nname='no such figure'\nvariant='fixed'\nworkload='forkexit'\ncpus=2\nfigure='coherence.nope'\nmax=0\nany_accel=true\n",
    );
    let report = evaluate(&r, &rows, &Inputs::default());
    let l = &report.lines;
    assert_eq!(l[0].verdict, Verdict::Fail);
    assert!(
        l[0].note.contains("no runs match variant=scoreboard"),
        "{}",
        l[0].note
    );
    assert_eq!(l[1].verdict, Verdict::Skip);
    assert_eq!(l[2].verdict, Verdict::Fail);
    assert!(
        l[2].note.contains("reports 'coherence.nope'"),
        "{}",
        l[2].note
    );
    assert!(!report.passed());
}

#[test]
fn wildcard_bounds_check_every_group_and_failed_runs_show() {
    let mut rows = matrix_rows(2);
    let mut dead = run(cell("fixed", "forkexit", 2, 3), 1.0, 1.0, 1.0);
    dead.outcome = Outcome::Panic;
    dead.metrics.clear();
    rows.extend(dead.rows());
    let r = rules(
        "[[bound]]\nname='sent == received'\nfigure='ipi_unreceived'\nstat='max'\nmax=0\n\
         [[bound]]\nname='every run completes'\nfigure='run.outcome'\nstat='min'\nmin=1\n",
    );
    let report = evaluate(&r, &rows, &Inputs::default());
    assert_eq!(report.lines.len(), 16);
    let fails: Vec<_> = report.failures().collect();
    assert_eq!(fails.len(), 1);
    assert_eq!(fails[0].rule, "every run completes");
    assert!(fails[0].selection.starts_with("fixed/forkexit[touch=on]/2"));
}

#[test]
fn failed_runs_count_only_when_a_rule_asks() {
    // TEST FIXTURE: a coherence run that found stale reads and said so
    // with status=failed.
    let mut rec = run(cell("lost-shootdown", "coherence", 2, 1), 100.0, 1.0, 1.0);
    rec.outcome = Outcome::Failed;
    for m in &mut rec.metrics {
        if m.name == "coherence.stale_reads" {
            m.value = 3.0;
        }
    }
    let rows = rec.rows();
    let text = "[[bound]]\nname='caught'\nvariant='lost-shootdown'\nfigure='coherence.stale_reads'\nmin=1\nany_accel=true\n";
    let strict = evaluate(&rules(text), &rows, &Inputs::default());
    assert_eq!(strict.lines[0].verdict, Verdict::Fail);
    assert!(
        strict.lines[0].note.contains("runs: 1 failed"),
        "{}",
        strict.lines[0].note
    );
    let lenient = evaluate(
        &rules(&format!("{text}include_failed=true\n")),
        &rows,
        &Inputs::default(),
    );
    assert_eq!(lenient.lines[0].verdict, Verdict::Pass);
}

#[test]
fn ratio_rules_pair_variants_and_skip_timing_off_icount() {
    let rows = matrix_rows(3);
    let r = rules(
        "[[ratio]]\nname='bug costs IPIs'\nnumerator='openbsd-2010'\ndenominator='fixed'\nworkload='forkexit'\nfigure='ipis_per_op'\nmin=5\nany_accel=true\n\
         [[ratio]]\nname='fixed is not slower'\nnumerator='fixed'\ndenominator='openbsd-2010'\nworkload='forkexit'\ncpus=4\nfigure='ops_per_s'\nmin=0.9\n\
         [[ratio]]\nname='scoreboard'\nnumerator='scoreboard'\ndenominator='fixed'\nfigure='ops_per_s'\nmin=0.8\n",
    );
    let report = evaluate(&r, &rows, &Inputs::default());
    let l = &report.lines;
    assert_eq!((l[0].verdict, l[1].verdict), (Verdict::Pass, Verdict::Pass));
    assert!(l[0].value.starts_with("20 "), "{}", l[0].value);
    assert_eq!(l[2].verdict, Verdict::Skip, "{:?}", l[2]);
    assert!(l[2].note.contains("tcg-icount"));
    assert!(
        l[3..].iter().all(|l| l.verdict == Verdict::Fail),
        "{}",
        report.table()
    );
    assert!(
        l[3].note.contains("no runs of variant scoreboard"),
        "{}",
        l[3].note
    );

    // Under tcg-icount the timing ratio is compared, and its reps must
    // be identical: the fixture's jitter is non-determinism there.
    let report = evaluate(&r, &icount(&rows), &Inputs::default());
    assert_eq!(report.lines[2].verdict, Verdict::Fail, "{}", report.table());
    assert!(report.lines[2].note.starts_with("non-determinism"));
    let one_rep: Vec<ResultRow> = icount(&rows).into_iter().filter(|r| r.rep == 1).collect();
    let report = evaluate(&r, &one_rep, &Inputs::default());
    assert_eq!(report.lines[2].verdict, Verdict::Pass, "{}", report.table());
}

/// Scales the shootpage IPI counts of `variant` by `factor`.
fn scale_ipis(rows: &[ResultRow], variant: &str, factor: f64) -> Vec<ResultRow> {
    rows.iter()
        .map(|r| {
            let mut r = r.clone();
            if r.variant == variant && r.metric.starts_with("ipi.") {
                r.value *= factor;
            }
            r
        })
        .collect()
}

#[test]
fn zero_over_zero_is_a_skip_and_x_over_zero_is_infinite() {
    assert_eq!(gate_ratio(0.0, 0.0), None);
    assert_eq!(gate_ratio(3.0, 0.0), Some(f64::INFINITY));
    assert_eq!(gate_ratio(3.0, 2.0), Some(1.5));
    // TEST FIXTURE: no IPIs on either side.
    let rows = scale_ipis(
        &scale_ipis(&matrix_rows(1), "fixed", 0.0),
        "openbsd-2010",
        0.0,
    );
    let r = rules(
        "[[ratio]]\nname='r'\nnumerator='openbsd-2010'\ndenominator='fixed'\nworkload='forkexit'\ncpus=2\nfigure='ipis_per_op'\nmax=1\nany_accel=true\n",
    );
    let report = evaluate(&r, &rows, &Inputs::default());
    assert_eq!(report.lines[0].verdict, Verdict::Skip, "{}", report.table());
    assert!(report.lines[0].note.contains("undefined"));
    assert!(!report.passed(), "an all-skip report is not a pass");
    assert!(report.headline().contains("no rule passed"));
    // Only the denominator is 0: +inf passes a min and fails a max.
    let rows = scale_ipis(&matrix_rows(1), "fixed", 0.0);
    let report = evaluate(&r, &rows, &Inputs::default());
    assert_eq!(report.lines[0].verdict, Verdict::Fail);
    assert!(
        report.lines[0].value.starts_with("inf"),
        "{}",
        report.lines[0].value
    );
    let min = rules(
        "[[ratio]]\nname='r'\nnumerator='openbsd-2010'\ndenominator='fixed'\nworkload='forkexit'\ncpus=2\nfigure='ipis_per_op'\nmin=5\nany_accel=true\n",
    );
    assert!(evaluate(&min, &rows, &Inputs::default()).passed());
}

#[test]
fn scheduling_dependent_counts_gate_under_icount_or_by_opt_in() {
    let rows = matrix_rows(2);
    let text = "[[bound]]\nname='few'\nvariant='fixed'\nworkload='forkexit'\ncpus=2\nfigure='ipis_per_op'\nmax=0.5\n";
    let report = evaluate(&rules(text), &rows, &Inputs::default());
    assert_eq!(report.lines[0].verdict, Verdict::Skip);
    assert!(report.lines[0].note.contains("scheduling-dependent"));
    let opted = evaluate(
        &rules(&format!("{text}any_accel=true\n")),
        &rows,
        &Inputs::default(),
    );
    assert!(opted.passed(), "{}", opted.table());
    let under_icount = evaluate(&rules(text), &icount(&rows), &Inputs::default());
    assert!(under_icount.passed(), "{}", under_icount.table());
}

#[test]
fn nondeterminism_is_named() {
    assert_eq!(nondeterminism(&[1.0, 1.0, 1.0]), None);
    assert_eq!(nondeterminism(&[0.0, 0.0]), None);
    assert_eq!(nondeterminism(&[5.0]), None);
    let note = nondeterminism(&[1.0, 1.5]).unwrap();
    assert!(note.contains("[1, 1.5]"), "{note}");
}

#[test]
fn expected_failures_are_present_not_missing() {
    // TEST FIXTURE: a lost-shootdown coherence run that ended failed as
    // its matrix expects.
    let spec = MatrixSpec::parse(
        "variants=['lost-shootdown']\ncpus=[2]\nreps=1\naccel='tcg'\n[[workloads]]\nname='coherence'\n\
         [[expect]]\nvariant='lost-shootdown'\nworkload='coherence'\noutcome='failed'\nwhy='caught'\n",
    )
    .unwrap();
    let mut rec = run(cell("lost-shootdown", "coherence", 2, 1), 10.0, 1.0, 4.0);
    rec.outcome = Outcome::Failed;
    let rows = rec.rows();
    let r = rules(
        "[[bound]]\nname='received'\nfigure='ipi_unreceived'\nstat='max'\nmax=0\ninclude_failed=true\n\
         [[bound]]\nname='ok only'\nfigure='pmap.destroy.cpus_nonzero'\nmax=0\n",
    );
    let inputs = Inputs {
        matrix: Some(&spec),
        ..Inputs::default()
    };
    let report = evaluate(&r, &rows, &inputs);
    let t = report.table();
    assert_eq!(report.lines[0].kind, "complete");
    assert_eq!(report.lines[1].verdict, Verdict::Pass, "{t}");
    assert_eq!(report.lines[0].verdict, Verdict::Pass, "{t}");
    assert_eq!(report.lines[2].verdict, Verdict::Pass, "{t}");
    assert_eq!(report.lines[3].verdict, Verdict::Skip, "{t}");
    assert!(
        report.lines[3].note.contains("as the matrix expects"),
        "{t}"
    );
    assert!(report.passed());
}

/// TEST FIXTURE rows under icount (one rep per cell, so identical).
fn icount_rows(reps: u32) -> Vec<ResultRow> {
    let rows = icount(&matrix_rows(reps));
    // Make every rep a copy of rep 1 (icount repeats bit for bit).
    rows.iter()
        .filter(|r| r.rep == 1)
        .flat_map(|r| {
            (1..=reps).map(move |rep| ResultRow {
                rep,
                run_id: format!("{}-{rep}", r.run_id),
                ..r.clone()
            })
        })
        .collect()
}

#[test]
fn icount_baselines_compare_exactly() {
    let base = icount_rows(2);
    let r = rules(
        "[[baseline]]\nname='ipis vs baseline'\nfigure='ipis_per_op'\ntolerance=0.1\n\
         [[baseline]]\nname='rate vs baseline'\nfigure='ops_per_s'\ntolerance=0.05\n",
    );
    let meta = Metadata {
        accel: REPEATABLE_ACCEL.into(),
        qemu_version: "QEMU 7.2".into(),
        ..Metadata::default()
    };
    let metas = [meta.clone()];
    let inputs = Inputs {
        meta: Some(&meta),
        baseline: Some(&base),
        baseline_meta: &metas,
        matrix: None,
    };
    let report = evaluate(&r, &base, &inputs);
    assert!(report.passed(), "{}", report.table());
    assert_eq!(report.counts().0, 16);
    // fixed sends 3x the IPIs: its groups regress, exactly.
    let worse = scale_ipis(&base, "fixed", 3.0);
    let report = evaluate(&r, &worse, &inputs);
    let fails: Vec<_> = report.failures().collect();
    assert_eq!(fails.len(), 4, "{}", report.table());
    assert!(fails.iter().all(|f| f.selection.starts_with("fixed/")));
    assert!(fails[0].note.starts_with("regression: compared exactly"));
    assert_eq!(fails[0].baseline, "[0.1, 0.1]");
    // 5 % more is within the 10 % tolerance; improvements never fail.
    assert!(evaluate(&r, &scale_ipis(&base, "fixed", 1.05), &inputs).passed());
    assert!(evaluate(&r, &scale_ipis(&base, "fixed", 0.2), &inputs).passed());
    // Reps that differ under icount: non-determinism.
    let mut jitter = base.clone();
    for row in &mut jitter {
        if row.rep == 2 && row.variant == "fixed" && row.metric == "ipi.sent.shootpage" {
            row.value += 1.0;
        }
    }
    let report = evaluate(&r, &jitter, &inputs);
    assert!(report
        .failures()
        .any(|f| f.note.contains("non-determinism")));
    // A group not in the baseline fails; no baseline at all: skipped.
    let partial: Vec<ResultRow> = base.iter().filter(|r| r.cpus == 2).cloned().collect();
    let report = evaluate(
        &r,
        &base,
        &Inputs {
            baseline: Some(&partial),
            ..inputs
        },
    );
    assert_eq!(report.failures().count(), 8, "{}", report.table());
    assert!(report
        .failures()
        .all(|f| f.note.contains("not in the baseline")));
    let report = evaluate(&r, &base, &Inputs::default());
    assert_eq!(report.lines[0].verdict, Verdict::Skip);
    // Another QEMU: the timing rule is refused, the count rule holds.
    let newer = Metadata {
        qemu_version: "QEMU 8.0".into(),
        ..meta.clone()
    };
    let report = evaluate(
        &r,
        &base,
        &Inputs {
            meta: Some(&newer),
            ..inputs
        },
    );
    let t = report.table();
    assert_eq!(report.failures().count(), 8, "{t}");
    assert!(report.failures().all(|f| f.rule == "rate vs baseline"
        && f.note
            .contains("refused: QEMU: baseline 'QEMU 7.2', results 'QEMU 8.0'")
        && f.note.contains("./lab baseline")));
}

#[test]
fn off_icount_timing_needs_five_reps_and_holm() {
    // TEST FIXTURE: loop rates under plain TCG.
    let mk = |rates: &[f64]| -> Vec<ResultRow> {
        rates
            .iter()
            .enumerate()
            .flat_map(|(i, &rate)| {
                run(
                    cell("fixed", "forkexit", 2, i as u32 + 1),
                    1000.0,
                    1000.0 * 1000.0 / rate,
                    1.0,
                )
                .rows()
            })
            .collect()
    };
    let meta = Metadata {
        accel: "tcg".into(),
        ..Metadata::default()
    };
    let metas = [meta.clone()];
    let r = rules("[[baseline]]\nname='rate'\nfigure='ops_per_s'\ntolerance=0.05\n");
    let check = |base: &[ResultRow], new: &[ResultRow]| {
        evaluate(
            &r,
            new,
            &Inputs {
                meta: Some(&meta),
                baseline: Some(base),
                baseline_meta: &metas,
                matrix: None,
            },
        )
    };
    let base3 = mk(&[1000.0, 1010.0, 990.0]);
    let slow3 = mk(&[600.0, 610.0, 605.0]);
    let report = check(&base3, &slow3);
    assert_eq!(
        report.lines[0].verdict,
        Verdict::TooFew,
        "{}",
        report.table()
    );
    assert!(report.lines[0].note.contains("too few repetitions"));
    assert!(!report.passed());
    let base5 = mk(&[1000.0, 1010.0, 990.0, 1005.0, 995.0]);
    let slow5 = mk(&[600.0, 610.0, 605.0, 598.0, 603.0]);
    let report = check(&base5, &slow5);
    assert_eq!(report.lines[0].verdict, Verdict::Fail, "{}", report.table());
    assert!(
        report.lines[0].note.contains("Holm over 1"),
        "{}",
        report.lines[0].note
    );
    // Noise: a 3 % wobble is no regression at 5 % tolerance.
    let wobble = mk(&[975.0, 985.0, 965.0, 980.0, 970.0]);
    let report = check(&base5, &wobble);
    assert!(report.passed(), "{}", report.table());
    assert!(report.lines[0].note.starts_with("within noise"));
}

/// The shipped rules on a small TEST FIXTURE matrix (openbsd-2010 and
/// fixed only): variants and workloads that are absent are reported by
/// name, optional ones are skipped, and nothing passes silently.
#[test]
fn shipped_rules_report_missing_data_by_name() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../variants/gates.toml");
    let rules = Rules::load(&path).unwrap();
    let report = evaluate(&rules, &icount_rows(2), &Inputs::default());
    println!("{}", report.table());
    let find = |rule: &str| {
        report
            .lines
            .iter()
            .find(|l| l.rule.starts_with(rule))
            .unwrap()
    };
    assert_eq!(find("openbsd-2010 sends far more").verdict, Verdict::Pass);
    // The fixture's fixed sends 0.1-0.2 shootpage IPIs per loop: one
    // for every few COW faults, which the fix's mechanism rules out.
    assert_eq!(
        find("fixed: a single-threaded pmap's shootpage/shootrange").verdict,
        Verdict::Fail
    );
    let coherence = find("no stale TLB reads");
    assert_eq!(coherence.verdict, Verdict::Fail);
    assert!(
        coherence.note.contains("no runs match") && coherence.note.contains("workload=coherence")
    );
    let uninit = find("uninit-bitmap alone");
    assert_eq!(uninit.verdict, Verdict::Fail);
    assert!(uninit.note.contains("uninit-bitmap"), "{}", uninit.note);
    assert_eq!(find("operation rate vs baseline").verdict, Verdict::Skip);
    assert!(!report.passed());
}

#[test]
fn step_summary_is_appended_when_set() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("summary.md");
    std::fs::write(&path, "before\n").unwrap();
    let report = evaluate(
        &rules("[[bound]]\nname='x'\nfigure='ipis_per_op'\nmax=100\nany_accel=true\n"),
        &matrix_rows(1),
        &Inputs::default(),
    );
    report.append_markdown_to(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with("before\n### pmaplab gate: PASSED"),
        "{text}"
    );
}
