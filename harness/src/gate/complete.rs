//! Completeness: every cell the matrix file defines (variant x workload x
//! params x cpus x rep, under the accelerator and machine it ran with)
//! must be in the results. A gate that passes on half a matrix would say
//! nothing about the other half, so each missing cell is a failing line
//! naming it. A cell is present whatever its outcome: an expected failure
//! (a matrix `[[expect]]` entry) is present, and an unexpected one is
//! the business of the outcome rules ("every run completes").

use std::collections::BTreeSet;

use super::report::{GateLine, Verdict};
use crate::results::matrix::MatrixSpec;
use crate::results::model::{Cell, ResultRow};

/// The rule name completeness lines carry.
pub const RULE: &str = "every cell of the matrix is present";

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
    if missing.is_empty() {
        return vec![line(
            format!("{} cells", expected.len()),
            format!("{0} of {0}", expected.len()),
            Verdict::Pass,
            String::new(),
        )];
    }
    let n = missing.len();
    missing
        .into_iter()
        .map(|c| {
            line(
                c.to_string(),
                "absent".into(),
                Verdict::Fail,
                format!(
                    "missing cell ({n} of {} missing): no run of it in the results",
                    expected.len()
                ),
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
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].verdict, Verdict::Pass);
        assert_eq!(l[0].value, "4 of 4");
    }

    #[test]
    fn each_missing_cell_is_named() {
        let all = spec().cells().unwrap();
        let some: Vec<Cell> = all.iter().filter(|c| c.rep == 1).cloned().collect();
        let l = lines(&spec(), &rows_of(&some));
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
