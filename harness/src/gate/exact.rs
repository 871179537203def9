//! Committed figures the tree reproduces (`harness gate --exact`, which
//! `./lab test` passes): under tcg-icount and tcg-model a run repeats bit
//! for bit, and since the kernel image no longer depends on where the
//! checkout is (harness/src/kernel_build.rs, kernel/Cargo.toml), in any
//! checkout of the same tree. So every figure the guest reported in such
//! a run must equal the committed baseline's for the same cell,
//! repetition, metric and scope.
//! A difference means the baseline was made from another tree: the line
//! names the first figures that moved and the command that re-makes it.
//!
//! The baseline rules' tolerances (`variants/gates.toml`) say whether a
//! change is a regression; this says whether the committed figures are
//! still the tree's own. Host-side figures (`run.*`: wall time) and runs
//! the baseline leaves out (those that did not end ok) are not compared;
//! a cell the baseline lacks altogether is a failing line too.
//!
//! The images are the tree's, but the figures are also QEMU's and the
//! toolchain's: a Debian point release of QEMU or another rustc may move
//! them with the tree unchanged. Where the baseline's metadata names
//! another QEMU or toolchain than the results' and figures differ, the
//! line is skipped, not failed, and says which build differs: the
//! comparison cannot tell the tree's changes from the build's, and the
//! baseline is to be re-made on this machine. With the same build, any
//! difference fails.

use std::collections::BTreeMap;

use super::report::{GateLine, Verdict};
use crate::accel::is_repeatable;
use crate::results::model::ResultRow;

/// The rule name its lines carry.
pub const RULE: &str = "repeatable figures are the committed baseline's, exactly";

/// The command that re-makes the baseline.
pub const REMAKE: &str = "./lab baseline";

/// How many differing figures a failing line names.
const SHOWN: usize = 5;

type Key = (
    String,
    String,
    u32,
    String,
    Option<u32>,
    Option<u32>,
    Option<u32>,
);

/// The figure's identity within its cell: (run cell, rep, metric, scope).
fn key(r: &ResultRow) -> Key {
    (
        format!(
            "{}/{}[{}]/{} @{}/{}",
            r.variant, r.workload, r.params, r.cpus, r.accel, r.machine
        ),
        r.metric.clone(),
        r.rep,
        r.unit.clone(),
        r.cpu,
        r.from,
        r.to,
    )
}

/// Whether `r` is a figure this rule compares: the guest's, from a
/// repeatable accelerator.
fn compared(r: &ResultRow) -> bool {
    is_repeatable(&r.accel) && !r.metric.starts_with("run.")
}

fn line(selection: String, value: String, verdict: Verdict, note: String) -> GateLine {
    GateLine {
        kind: "exact",
        rule: RULE.into(),
        selection,
        figure: "every guest figure".into(),
        value,
        reps: String::new(),
        baseline: String::new(),
        bound: "identical".into(),
        verdict,
        note,
    }
}

/// One line per repeatable cell of `rows`: passing when each of its
/// figures equals the baseline's, else failing and naming the first that
/// differ (or that one side lacks). `build_differs(accel)` says what of
/// the build (QEMU, toolchain) differs between the baseline's runs under
/// `accel` and the results' (provenance::build_differs; empty when
/// nothing does or the metadata is missing): a cell that differs then is
/// skipped with that reason.
pub fn lines(
    rows: &[ResultRow],
    baseline: &[ResultRow],
    build_differs: impl Fn(&str) -> Vec<String>,
) -> Vec<GateLine> {
    let base: BTreeMap<Key, f64> = baseline
        .iter()
        .filter(|r| compared(r))
        .map(|r| (key(r), r.value))
        .collect();
    let base_cells: std::collections::BTreeSet<&str> = base.keys().map(|k| k.0.as_str()).collect();
    // Per cell: figures compared, what differed, and the accelerator.
    let mut cells: BTreeMap<String, (usize, Vec<String>, String)> = BTreeMap::new();
    let mut seen: std::collections::BTreeSet<Key> = Default::default();
    for r in rows.iter().filter(|r| compared(r)) {
        let k = key(r);
        // The baseline keeps only runs that ended ok.
        if !r.outcome.is_ok() && !base_cells.contains(k.0.as_str()) {
            continue;
        }
        let cell = cells
            .entry(k.0.clone())
            .or_insert_with(|| (0, Vec::new(), r.accel.clone()));
        cell.0 += 1;
        let scope = match (r.cpu, r.from, r.to) {
            (Some(c), _, _) => format!(" cpu {c}"),
            (_, Some(f), Some(t)) => format!(" {f}->{t}"),
            _ => String::new(),
        };
        match base.get(&k) {
            Some(&old) if old.to_bits() == r.value.to_bits() => {}
            Some(&old) => cell.1.push(format!(
                "{}{scope} rep {}: {old} -> {}",
                r.metric, r.rep, r.value
            )),
            None => cell.1.push(format!(
                "{}{scope} rep {}: not in the baseline ({})",
                r.metric, r.rep, r.value
            )),
        }
        seen.insert(k);
    }
    // Figures the baseline has for a cell and repetition the results ran,
    // and they lack (a baseline may hold more repetitions than a run).
    let ran: std::collections::BTreeSet<(&str, u32)> =
        seen.iter().map(|k| (k.0.as_str(), k.2)).collect();
    for (k, old) in &base {
        if !ran.contains(&(k.0.as_str(), k.2)) {
            continue;
        }
        if let Some(cell) = cells.get_mut(&k.0) {
            if !seen.contains(k) {
                cell.1.push(format!("{} rep {}: {old} -> absent", k.1, k.2));
            }
        }
    }
    cells
        .into_iter()
        .map(|(cell, (n, differ, accel))| {
            if differ.is_empty() {
                return line(cell, format!("{n} of {n}"), Verdict::Pass, String::new());
            }
            let shown: Vec<&str> = differ.iter().take(SHOWN).map(String::as_str).collect();
            let shown = format!(
                "{}{}",
                shown.join("; "),
                if differ.len() > SHOWN { "; ..." } else { "" }
            );
            let value = format!("{} of {n} differ", differ.len());
            let build = build_differs(&accel);
            if build.is_empty() {
                line(
                    cell,
                    value,
                    Verdict::Fail,
                    format!("the committed baseline is not this tree's: {shown}; re-make it with {REMAKE}"),
                )
            } else {
                line(
                    cell,
                    value,
                    Verdict::Skip,
                    format!(
                        "cannot tell the tree's changes from the build's ({}): {shown}; \
                         re-make the baseline on this machine with {REMAKE}",
                        build.join("; ")
                    ),
                )
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::model::Outcome;

    fn row(accel: &str, metric: &str, rep: u32, value: f64, outcome: Outcome) -> ResultRow {
        ResultRow {
            run_id: "r".into(),
            time: String::new(),
            git_rev: String::new(),
            variant: "fixed".into(),
            features: String::new(),
            workload: "forkexit".into(),
            params: "loops=100".into(),
            cpus: 2,
            accel: accel.into(),
            machine: "microvm".into(),
            rep,
            outcome,
            metric: metric.into(),
            value,
            unit: "count".into(),
            cpu: None,
            from: None,
            to: None,
        }
    }

    fn same_build(_accel: &str) -> Vec<String> {
        Vec::new()
    }

    #[test]
    fn equal_figures_pass_and_a_moved_one_is_named_with_the_remake() {
        let ok = Outcome::Ok;
        let base = vec![
            row("tcg-icount", "ipi.sent.shootpage", 1, 40.0, ok),
            row("tcg-icount", "run.wall_s", 1, 2.0, ok),
        ];
        // Host wall time may differ; the guest's figures may not.
        let same = vec![
            row("tcg-icount", "ipi.sent.shootpage", 1, 40.0, ok),
            row("tcg-icount", "run.wall_s", 1, 3.5, ok),
        ];
        let l = lines(&same, &base, same_build);
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].verdict, Verdict::Pass, "{:?}", l[0]);
        let moved = vec![row("tcg-icount", "ipi.sent.shootpage", 1, 41.0, ok)];
        let l = lines(&moved, &base, same_build);
        assert_eq!(l[0].verdict, Verdict::Fail);
        assert!(
            l[0].note.contains("ipi.sent.shootpage rep 1: 40 -> 41"),
            "{}",
            l[0].note
        );
        assert!(l[0].note.contains(REMAKE));
        // A new figure, and one the results lack, fail too.
        let new = vec![
            row("tcg-icount", "ipi.sent.shootpage", 1, 40.0, ok),
            row("tcg-icount", "shoot.new_counter", 1, 1.0, ok),
        ];
        assert!(lines(&new, &base, same_build)[0]
            .note
            .contains("not in the baseline"));
        let lacking = vec![row("tcg-icount", "other", 1, 1.0, ok)];
        assert!(lines(&lacking, &base, same_build)[0]
            .note
            .contains("40 -> absent"));
    }

    #[test]
    fn plain_tcg_and_runs_the_baseline_leaves_out_are_not_compared() {
        let base = vec![row("tcg", "ipi.sent.shootpage", 1, 40.0, Outcome::Ok)];
        assert!(lines(
            &[row("tcg", "ipi.sent.shootpage", 1, 55.0, Outcome::Ok)],
            &base,
            same_build
        )
        .is_empty());
        // An expected failure: the baseline has no run of its cell.
        let failed = [row("tcg-model", "coherence.stale", 1, 9.0, Outcome::Failed)];
        assert!(lines(&failed, &[], same_build).is_empty());
    }

    #[test]
    fn another_qemu_skips_a_moved_cell_and_names_the_build() {
        let ok = Outcome::Ok;
        let base = vec![row("tcg-icount", "ipi.sent.shootpage", 1, 40.0, ok)];
        let other_qemu = |accel: &str| {
            assert_eq!(accel, "tcg-icount");
            vec!["QEMU: baseline 'QEMU 7.2.22', results 'QEMU 7.2.23'".to_string()]
        };
        let moved = vec![row("tcg-icount", "ipi.sent.shootpage", 1, 41.0, ok)];
        let l = lines(&moved, &base, other_qemu);
        assert_eq!(l[0].verdict, Verdict::Skip);
        assert!(l[0].note.contains("7.2.23"), "{}", l[0].note);
        assert!(l[0].note.contains("40 -> 41"), "{}", l[0].note);
        // Equal figures still pass under another build.
        let same = vec![row("tcg-icount", "ipi.sent.shootpage", 1, 40.0, ok)];
        assert_eq!(lines(&same, &base, other_qemu)[0].verdict, Verdict::Pass);
    }
}
