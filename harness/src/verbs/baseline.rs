//! `harness baseline [--in DIR]...`: makes the ok runs of every `DIR` the
//! committed baseline, `results/baseline.csv`, with the metadata of every
//! input in `results/baseline.meta.json` (the gate's provenance checks
//! read it) and charts from the first `DIR` in `results/charts/` (old
//! charts removed first; reproduce's charts and mutants.md are kept). Runs
//! that did not end `ok` are listed and left out; a cell found twice (the
//! same input given twice, or two inputs that overlap) is refused.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::{input_dir, rows_of};
use crate::plot;
use crate::results::csv::{write_atomic, write_rows_file};
use crate::results::metadata::{read_metadata, Metadata, METADATA_JSON};
use crate::results::model::Cell;
use crate::results::ResultRow;
use crate::workspace::Workspace;

/// The baseline's metadata file beside `results/baseline.csv`.
pub const META_FILE: &str = "baseline.meta.json";
/// What older trees wrote: the first input's metadata only.
const LEGACY_META_FILE: &str = "baseline-metadata.json";

/// The metadata of the result sets a baseline was made from: for a
/// results directory its metadata.json; for a CSV `X.csv` the
/// `X.meta.json` beside it (or the legacy `baseline-metadata.json`).
/// Empty when there is none (provenance unknown).
pub fn read_meta(baseline: &Path) -> Result<Vec<Metadata>> {
    if baseline.is_dir() {
        return Ok(if baseline.join(METADATA_JSON).is_file() {
            vec![read_metadata(baseline)?]
        } else {
            Vec::new()
        });
    }
    let dir = baseline.parent().unwrap_or(Path::new("."));
    let stem = baseline
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let path = dir.join(format!("{stem}.meta.json"));
    if path.is_file() {
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        return serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()));
    }
    let legacy = dir.join(LEGACY_META_FILE);
    if legacy.is_file() {
        let text =
            fs::read_to_string(&legacy).with_context(|| format!("reading {}", legacy.display()))?;
        let one: Metadata =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", legacy.display()))?;
        return Ok(vec![one]);
    }
    Ok(Vec::new())
}

/// Fails naming the first cell that two inputs (or one input twice) hold.
pub fn check_no_duplicates(inputs: &[(PathBuf, Vec<ResultRow>)]) -> Result<()> {
    let mut owner: BTreeMap<Cell, &Path> = BTreeMap::new();
    for (input, rows) in inputs {
        let cells: BTreeSet<Cell> = rows.iter().map(ResultRow::cell).collect();
        for cell in cells {
            if let Some(first) = owner.insert(cell.clone(), input) {
                bail!(
                    "cell {cell} is in {} and in {}: a baseline holds each run once",
                    first.display(),
                    input.display()
                );
            }
        }
    }
    Ok(())
}

pub fn baseline(ws: &Workspace, inputs: &[PathBuf]) -> Result<i32> {
    let default_input = [input_dir(ws, None)];
    let inputs = if inputs.is_empty() {
        &default_input[..]
    } else {
        inputs
    };
    let mut read = Vec::new();
    let mut metas = Vec::new();
    for input in inputs {
        read.push((input.clone(), rows_of(input)?));
        if !input.join(METADATA_JSON).is_file() {
            bail!(
                "{} has no {METADATA_JSON}: a baseline must say what QEMU, accelerator and host made it",
                input.display()
            );
        }
        metas.push(read_metadata(input)?);
    }
    check_no_duplicates(&read)?;
    let mut rows: Vec<ResultRow> = read.iter().flat_map(|(_, r)| r.clone()).collect();
    // A run that did not end ok has no figures to compare against, so it is
    // left out, loudly. Some are expected: the lost-shootdown negative
    // control's coherence run fails by design (its stale reads are the point).
    let bad: BTreeSet<String> = rows
        .iter()
        .filter(|r| !r.outcome.is_ok())
        .map(|r| format!("{} ({})", r.cell(), r.outcome))
        .collect();
    if !bad.is_empty() {
        eprintln!(
            "baseline: leaving out {} runs that did not end ok:\n  {}",
            bad.len(),
            bad.iter().cloned().collect::<Vec<_>>().join("\n  ")
        );
        rows.retain(|r| r.outcome.is_ok());
    }
    let dir = ws.root.join("results");
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let csv = dir.join("baseline.csv");
    write_rows_file(&csv, &rows)?;
    write_atomic(&dir.join(META_FILE), |w| {
        serde_json::to_writer_pretty(&mut *w, &metas)?;
        w.write_all(b"\n")?;
        Ok(())
    })?;
    let legacy = dir.join(LEGACY_META_FILE);
    if legacy.is_file() {
        fs::remove_file(&legacy).with_context(|| format!("cannot remove {}", legacy.display()))?;
    }
    let charts = dir.join("charts");
    if charts.is_dir() {
        for entry in
            fs::read_dir(&charts).with_context(|| format!("listing {}", charts.display()))?
        {
            let path = entry?.path();
            // reproduce-* charts belong to `harness reproduce`, and
            // mutants.md to `harness mutants`, not to the baseline (the
            // index links mutants.md when it is there).
            let reproduce = path.file_name().is_some_and(|n| {
                let n = n.to_string_lossy();
                n.starts_with("reproduce-") || n == "mutants.md"
            });
            let generated = !reproduce
                && path
                    .extension()
                    .is_some_and(|e| ["png", "svg", "md", "html"].iter().any(|x| e == *x));
            if generated {
                fs::remove_file(&path)
                    .with_context(|| format!("cannot remove {}", path.display()))?;
            }
        }
    }
    // Charts come from the first input alone: mixing accelerators (the
    // default matrix under TCG, the CI matrix under icount) in one chart
    // would put incomparable timings side by side.
    let first: Vec<ResultRow> = read[0]
        .1
        .iter()
        .filter(|r| r.outcome.is_ok())
        .cloned()
        .collect();
    let files = plot::render_all(&first, &charts)?;
    let cells: BTreeSet<_> = rows.iter().map(ResultRow::cell).collect();
    println!(
        "baseline: {} runs from {} -> {} (+ {META_FILE}); {} chart files in {}",
        cells.len(),
        inputs
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" + "),
        csv.display(),
        files.len(),
        charts.display()
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::model::fixtures::{cell, run};

    #[test]
    fn the_same_input_twice_is_refused() {
        let rows = run(cell("fixed", "forkexit", 2, 1), 1.0, 1.0, 1.0).rows();
        let a = (PathBuf::from("/a"), rows.clone());
        let b = (PathBuf::from("/b"), rows);
        assert!(check_no_duplicates(std::slice::from_ref(&a)).is_ok());
        let err = check_no_duplicates(&[a.clone(), a.clone()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("is in /a and in /a"), "{err}");
        assert!(check_no_duplicates(&[a, b]).is_err());
    }

    #[test]
    fn metadata_is_found_beside_the_csv() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("baseline.csv");
        assert!(read_meta(&csv).unwrap().is_empty());
        let m = Metadata {
            accel: "tcg".into(),
            ..Metadata::default()
        };
        fs::write(
            dir.path().join(LEGACY_META_FILE),
            serde_json::to_string(&m).unwrap(),
        )
        .unwrap();
        assert_eq!(read_meta(&csv).unwrap(), vec![m.clone()]);
        let both = vec![
            m.clone(),
            Metadata {
                accel: "tcg-icount".into(),
                ..m
            },
        ];
        fs::write(
            dir.path().join(META_FILE),
            serde_json::to_string(&both).unwrap(),
        )
        .unwrap();
        assert_eq!(read_meta(&csv).unwrap(), both);
    }
}
