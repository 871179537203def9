//! Completeness: every cell the matrix file defines (variant x workload x
//! params x cpus x rep, under the accelerator and machine it ran with)
//! must be in the results. A gate that passes on half a matrix would say
//! nothing about the other half, so each missing cell is a failing line
//! naming it. A cell is present whatever its outcome: an expected failure
//! (a matrix `[[expect]]` entry) is present. Every present cell must also
//! have ended as the matrix expects (`ok`, or the `[[expect]]`ed outcome):
//! a run that did not is a failing line naming the cell and both outcomes
//! (the same test `harness matrix` exits 3 on, which CI's shard jobs let
//! through for the gate to report).

use std::collections::BTreeSet;

use super::report::{GateLine, Verdict};
use crate::results::matrix::MatrixSpec;
use crate::results::model::{Cell, ResultRow};

/// The rule name completeness lines carry.
pub const RULE: &str = "every cell of the matrix is present";
/// The rule name outcome lines carry.
pub const OUTCOME_RULE: &str = "every run ended as the matrix expects";

/// The cells of `expected` that `rows` lack, in matrix order.
pub fn missing_cells(expected: &[Cell], rows: &[ResultRow]) -> Vec<Cell> {
    let present: BTreeSet<Cell> = rows.iter().map(ResultRow::cell).collect();
    expected
        .iter()
        .filter(|c| !present.contains(*c))
        .cloned()
        .collect()
}

fn line(selection: String, value: String, verdict: Verdict, note: String) -> GateLine {
    GateLine {
        kind: "complete",
        rule: RULE.into(),
        selection,
        figure: "cells".into(),
        value,
        reps: String::new(),
        baseline: String::new(),
        bound: "all".into(),
        verdict,
        note,
    }
}

/// One passing line when every cell of `spec` (accelerator resolved) is
/// in `rows`, else one failing line per missing cell. A matrix that
/// cannot be expanded is a failing line too.
pub fn lines(spec: &MatrixSpec, rows: &[ResultRow]) -> Vec<GateLine> {
    let expected = match spec.cells() {
        Ok(cells) => cells,
        Err(e) => {
            return vec![line(
                "matrix".into(),
                "-".into(),
                Verdict::Fail,
                format!("cannot expand the matrix: {e:#}"),
            )]
        }
    };
    let missing = missing_cells(&expected, rows);
    let mut out = Vec::new();
    if missing.is_empty() {
        out.push(line(
            format!("{} cells", expected.len()),
            format!("{0} of {0}", expected.len()),
            Verdict::Pass,
            String::new(),
        ));
    }
    let n = missing.len();
    out.extend(missing.into_iter().map(|c| {
        line(
            c.to_string(),
            "absent".into(),
            Verdict::Fail,
            format!(
                "missing cell ({n} of {} missing): no run of it in the results",
                expected.len()
            ),
        )
    }));
    out.extend(outcome_lines(spec, &expected, rows));
    out
}

/// One passing line when every present cell of the matrix ended as it
/// expects, else one failing line per cell that did not.
fn outcome_lines(spec: &MatrixSpec, expected: &[Cell], rows: &[ResultRow]) -> Vec<GateLine> {
    let wanted: BTreeSet<&Cell> = expected.iter().collect();
    let mut seen = BTreeSet::new();
    let mut bad = Vec::new();
    for row in rows {
        let cell = row.cell();
        if !wanted.contains(&cell) || !seen.insert(cell.clone()) {
            continue;
        }
        let (want, why) = spec.expected(&cell);
        if row.outcome != want {
            let because = why.map(|w| format!(" ({w})")).unwrap_or_default();
            bad.push((cell, row.outcome, want, because));
        }
    }
    let mk = |selection: String, value: String, verdict, note| GateLine {
        rule: OUTCOME_RULE.into(),
        figure: "outcome".into(),
        bound: "as expected".into(),
        ..line(selection, value, verdict, note)
    };
    if bad.is_empty() {
        return vec![mk(
            format!("{} runs", seen.len()),
            "all as expected".into(),
            Verdict::Pass,
            String::new(),
        )];
    }
    bad.into_iter()
        .map(|(cell, got, want, because)| {
            mk(
                cell.to_string(),
                got.to_string(),
                Verdict::Fail,
                format!("ended {got}, the matrix expects {want}{because}: see the run's log"),
            )
        })
        .collect()
}

/// A failing line for results whose matrix is unknown (no metadata.json
/// and no --matrix): completeness cannot be checked.
pub fn unknown(why: &str) -> GateLine {
    line(
        "matrix".into(),
        "-".into(),
        Verdict::Fail,
        format!("completeness unknown: {why}; give --matrix FILE"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::model::fixtures::{cell, run};
    use crate::results::model::Outcome;

    fn spec() -> MatrixSpec {
        let mut s = MatrixSpec::parse(
            "variants=[\"fixed\",\"lost-shootdown\"]\ncpus=[2]\nreps=2\naccel=\"tcg\"\n\
             [[workloads]]\nname=\"coherence\"\n\
             [[expect]]\nvariant=\"lost-shootdown\"\nworkload=\"coherence\"\noutcome=\"failed\"\nwhy=\"caught\"\n",
        )
        .unwrap();
        s.accel = "tcg".into();
        s
    }

    fn rows_of(cells: &[Cell]) -> Vec<ResultRow> {
        cells
            .iter()
            .flat_map(|c| {
                let mut r = run(c.clone(), 10.0, 1.0, 1.0);
                if c.variant == "lost-shootdown" {
                    r.outcome = Outcome::Failed;
                }
                r.rows()
            })
            .collect()
    }

    #[test]
    fn every_cell_present_passes_and_expected_failures_count() {
        let all = spec().cells().unwrap();
        assert_eq!(all.len(), 4);
        let l = lines(&spec(), &rows_of(&all));
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].verdict, Verdict::Pass);
        assert_eq!(l[0].value, "4 of 4");
        assert_eq!(
            (l[1].rule.as_str(), l[1].verdict),
            (OUTCOME_RULE, Verdict::Pass)
        );
    }

    #[test]
    fn runs_that_end_otherwise_than_expected_are_named() {
        let all = spec().cells().unwrap();
        let rows: Vec<ResultRow> = all
            .iter()
            .flat_map(|c| {
                // TEST FIXTURE: fixed panics in rep 2; the negative control
                // ends ok (its oracle missed) in rep 1.
                let mut r = run(c.clone(), 10.0, 1.0, 1.0);
                r.outcome = match (c.variant.as_str(), c.rep) {
                    ("fixed", 2) => Outcome::Panic,
                    ("lost-shootdown", 1) => Outcome::Ok,
                    ("lost-shootdown", _) => Outcome::Failed,
                    _ => Outcome::Ok,
                };
                r.rows()
            })
            .collect();
        let l: Vec<GateLine> = lines(&spec(), &rows)
            .into_iter()
            .filter(|l| l.rule == OUTCOME_RULE)
            .collect();
        assert_eq!(l.len(), 2);
        assert!(l.iter().all(|l| l.verdict == Verdict::Fail));
        let notes: Vec<&str> = l.iter().map(|l| l.note.as_str()).collect();
        assert!(
            notes
                .iter()
                .any(|n| n.contains("ended panic, the matrix expects ok")),
            "{notes:?}"
        );
        assert!(
            notes
                .iter()
                .any(|n| n.contains("ended ok, the matrix expects failed (caught)")),
            "{notes:?}"
        );
    }

    #[test]
    fn each_missing_cell_is_named() {
        let all = spec().cells().unwrap();
        let some: Vec<Cell> = all.iter().filter(|c| c.rep == 1).cloned().collect();
        let l: Vec<GateLine> = lines(&spec(), &rows_of(&some))
            .into_iter()
            .filter(|l| l.rule == RULE)
            .collect();
        assert_eq!(l.len(), 2);
        assert!(l.iter().all(|l| l.verdict == Verdict::Fail));
        assert!(l[0].selection.contains("rep=2"), "{}", l[0].selection);
        assert!(l[0].note.contains("2 of 4 missing"), "{}", l[0].note);
        assert_eq!(
            missing_cells(&all, &rows_of(&some)),
            vec![all[2].clone(), all[3].clone()]
        );
        // A cell of another accelerator is not the matrix's cell.
        let mut other = cell("fixed", "coherence", 2, 1);
        other.accel = "kvm".into();
        assert_eq!(missing_cells(&all[..1], &rows_of(&[other])).len(), 1);
    }
}
