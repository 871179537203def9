//! Scoping the rules to the matrix that was run: which matrix that was
//! (`IN/metadata.json` names its file and hash), and which rules select
//! anything in it.
//!
//! `variants/gates.toml` is written for the full matrix; CI runs a quick
//! one. A rule that selects no group the matrix *set out to run* says
//! nothing about this run, so it is skipped with a note naming the matrix,
//! rather than failing for missing data. A rule that selects groups the
//! matrix did set out to run keeps its teeth: if those groups have no data
//! (a run was dropped, a figure is no longer reported), it fails as
//! before. Baseline groups outside the matrix are likewise left out of
//! the comparison.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::report::{GateLine, Verdict};
use super::rules::Rules;
use crate::results::matrix::MatrixSpec;
use crate::results::metadata::{sha256_hex, Metadata};
use crate::results::model::{Cell, ResultRow};
use crate::results::summary::GroupKey;
use crate::workspace::Workspace;

/// The matrix `input` was run from, with the accelerator it resolved to
/// (an `auto` matrix records its choice in metadata.json), and its file
/// name for messages. `given` (`--matrix`) wins over the recorded file;
/// the recorded file must still hash as it did when the matrix ran.
/// `None` when neither is known.
pub fn matrix_of(
    ws: &Workspace,
    input: &Path,
    meta: Option<&Metadata>,
    given: Option<&Path>,
) -> Result<Option<(MatrixSpec, String)>> {
    let path = match (given, meta) {
        (Some(path), _) => path.to_path_buf(),
        (None, Some(m)) if !m.matrix_path.is_empty() => {
            let recorded = PathBuf::from(&m.matrix_path);
            if recorded.is_file() {
                recorded
            } else {
                ws.root.join(recorded)
            }
        }
        _ => return Ok(None),
    };
    let text = fs::read(&path).with_context(|| {
        format!(
            "reading the matrix file {} to check the results",
            path.display()
        )
    })?;
    if given.is_none() {
        if let Some(m) = meta {
            if sha256_hex(&text) != m.matrix_sha256 {
                bail!(
                    "{} changed since {} was run from it; give the matrix with --matrix",
                    path.display(),
                    input.display()
                );
            }
        }
    }
    let mut spec = MatrixSpec::load(&path)?;
    if let Some(m) = meta.filter(|m| !m.accel.is_empty()) {
        spec.accel = m.accel.clone();
    }
    // `matrix --reps R` runs R repetitions of the file's cells.
    if let Some(m) = meta.filter(|m| m.reps > 0) {
        spec.reps = m.reps;
    }
    Ok(Some((spec, path.display().to_string())))
}

/// The group of a cell (the cell without its rep).
pub fn group_of(cell: &Cell) -> GroupKey {
    GroupKey {
        variant: cell.variant.clone(),
        workload: cell.workload.clone(),
        params: cell.params.clone(),
        cpus: cell.cpus,
        accel: cell.accel.clone(),
        machine: cell.machine.clone(),
    }
}

/// The rules that select at least one of `groups` (a ratio: both of its
/// variants), and a skip line for each rule that selects none (`matrix` names the matrix in the note).
pub fn scope(rules: &Rules, groups: &BTreeSet<GroupKey>, matrix: &str) -> (Rules, Vec<GateLine>) {
    let mut kept = Rules {
        baseline: rules.baseline.clone(),
        ..Rules::default()
    };
    let mut skipped = Vec::new();
    let skip = |kind: &'static str, rule: &str, selection: String, figure: &str| GateLine {
        kind,
        rule: rule.to_string(),
        selection,
        figure: figure.to_string(),
        value: "-".into(),
        reps: String::new(),
        baseline: String::new(),
        bound: "-".into(),
        verdict: Verdict::Skip,
        note: format!("outside the matrix: {matrix} runs no group it selects"),
    };
    for rule in &rules.bound {
        if groups.iter().any(|g| rule.select.matches(g, false)) {
            kept.bound.push(rule.clone());
        } else {
            skipped.push(skip(
                "bound",
                &rule.name,
                rule.select.describe(),
                &rule.figure,
            ));
        }
    }
    for rule in &rules.ratio {
        // A ratio needs both sides: the matrix must run each of them.
        let runs = |variant: &str| {
            groups
                .iter()
                .any(|g| g.variant == variant && rule.select.matches(g, true))
        };
        if runs(&rule.numerator) && runs(&rule.denominator) {
            kept.ratio.push(rule.clone());
        } else {
            let selection = format!(
                "{}:{} {}",
                rule.numerator,
                rule.denominator,
                rule.select.describe()
            );
            skipped.push(skip("ratio", &rule.name, selection, &rule.figure));
        }
    }
    (kept, skipped)
}

/// The rows of `baseline` whose group is one of `groups`.
pub fn baseline_within(baseline: Vec<ResultRow>, groups: &BTreeSet<GroupKey>) -> Vec<ResultRow> {
    baseline
        .into_iter()
        .filter(|r| groups.contains(&group_of(&r.cell())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::evaluate;
    use crate::results::model::fixtures::matrix_rows;

    #[test]
    fn the_matrix_is_the_one_the_results_ran() {
        let dir = tempfile::tempdir().unwrap();
        let ws =
            Workspace::at(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")).unwrap();
        let file = dir.path().join("m.toml");
        let text =
            "variants=['fixed']\ncpus=[2]\nreps=3\naccel='auto'\n[[workloads]]\nname='forkexit'\n";
        fs::write(&file, text).unwrap();
        let meta = Metadata {
            matrix_path: file.display().to_string(),
            matrix_sha256: sha256_hex(text.as_bytes()),
            accel: "tcg".into(),
            reps: 1,
            ..Metadata::default()
        };
        // The accelerator auto chose and the --reps the run used.
        let (spec, _) = matrix_of(&ws, dir.path(), Some(&meta), None)
            .unwrap()
            .unwrap();
        assert_eq!((spec.accel.as_str(), spec.reps), ("tcg", 1));
        // A matrix file edited since the run is refused; none known: None.
        fs::write(&file, format!("{text}\n")).unwrap();
        let err = matrix_of(&ws, dir.path(), Some(&meta), None).unwrap_err();
        assert!(err.to_string().contains("changed since"), "{err}");
        assert!(matrix_of(&ws, dir.path(), None, None).unwrap().is_none());
    }

    #[test]
    fn rules_outside_the_matrix_are_skipped_and_the_rest_kept() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../variants/gates.toml");
        let rules = Rules::load(&path).unwrap();
        // TEST FIXTURE rows: openbsd-2010 and fixed x forkexit, ipi-pingpong.
        let rows = matrix_rows(2);
        let groups: BTreeSet<GroupKey> = rows.iter().map(|r| group_of(&r.cell())).collect();
        let (kept, skipped) = scope(&rules, &groups, "quick.toml");
        assert!(skipped.iter().any(|l| l.rule == "no stale TLB reads"));
        assert!(skipped.iter().all(|l| l.note.contains("quick.toml")));
        assert!(kept.ratio.iter().any(|r| r.numerator == "openbsd-2010"));
        assert!(!kept.ratio.iter().any(|r| r.numerator == "scoreboard"));
        // What is kept is evaluated as before: the fixture's IPI figures
        // pass, the counters it does not carry still fail as missing data.
        let report = evaluate(&kept, &rows, &crate::gate::Inputs::default());
        let verdict = |rule: &str| {
            let lines: Vec<_> = report.lines.iter().filter(|l| l.rule == rule).collect();
            assert!(!lines.is_empty(), "{rule}");
            lines.iter().map(|l| l.verdict).max().unwrap()
        };
        assert_eq!(
            verdict("openbsd-2010 sends far more shootpage+shootrange IPIs than fixed"),
            Verdict::Pass
        );
        assert_eq!(verdict("every IPI sent was received"), Verdict::Pass);
        assert_eq!(
            verdict("fixed: pmap_destroy never finds pm_cpus set"),
            Verdict::Fail
        );
        // A group the matrix set out to run but that has no data still fails.
        let partial: Vec<ResultRow> = rows.iter().filter(|r| r.cpus == 2).cloned().collect();
        let report = evaluate(&kept, &partial, &crate::gate::Inputs::with_baseline(&rows));
        assert!(!report.passed());
    }
}
