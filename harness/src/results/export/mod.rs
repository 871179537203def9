//! Exports of the key figures to the JSON formats benchmark-tracking
//! services read, one type per format behind [`Exporter`] (as hyperfine
//! does): Bencher Metric Format ([`bencher`]) and github-action-benchmark's
//! custom formats ([`github`]).
//!
//! Each benchmark is one group (cell without rep), named
//! `variant/workload/cpus` (`variant/workload[params]/cpus` when the
//! workload has parameters, and `@accel/machine` appended when the results
//! mix accelerators or machines, so names stay unique). Values are medians
//! over the repetitions that completed; ranges are their min and max.

pub mod bencher;
pub mod github;

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::csv::write_atomic;
use super::derive::{figure_info, Better};
use super::model::ResultRow;
use super::summary::{summarize, GroupSummary};

/// The figures exported, when a group has them.
pub const EXPORT_FIGURES: [&str; 6] = [
    "ops_per_s",
    "ipis_per_op",
    "noipi_share",
    "shootdowns_per_op",
    "remove_early_share",
    "ack_wait_mean",
];

/// One export format.
pub trait Exporter {
    /// The file written in the export directory.
    fn file_name(&self) -> &'static str;
    /// The file's content for these groups.
    fn render(&self, benches: &[Bench]) -> Result<String>;
}

/// Every format.
pub fn exporters() -> Vec<Box<dyn Exporter>> {
    vec![
        Box::new(bencher::Bencher),
        Box::new(github::GithubBenchmark {
            better: Better::Lower,
        }),
        Box::new(github::GithubBenchmark {
            better: Better::Higher,
        }),
    ]
}

/// One figure of one benchmark, summarised over repetitions.
#[derive(Clone, Debug, PartialEq)]
pub struct Measure {
    pub figure: &'static str,
    pub unit: String,
    pub better: Better,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub reps: usize,
}

/// One benchmark: a group's name and its measures.
#[derive(Clone, Debug, PartialEq)]
pub struct Bench {
    pub name: String,
    pub accel: String,
    pub machine: String,
    pub outcomes: String,
    pub measures: Vec<Measure>,
}

/// The benchmarks of `groups`, in their order.
pub fn benches(groups: &[GroupSummary]) -> Vec<Bench> {
    let first = groups.first().map(|g| (&g.key.accel, &g.key.machine));
    let mixed = groups
        .iter()
        .any(|g| Some((&g.key.accel, &g.key.machine)) != first);
    groups
        .iter()
        .map(|g| {
            let mut name = g.key.bench_name();
            if mixed {
                name = format!("{name}@{}/{}", g.key.accel, g.key.machine);
            }
            let measures = EXPORT_FIGURES
                .iter()
                .filter_map(|&figure| {
                    let values = g.values(figure);
                    let (min, max) = super::stats::range(&values)?;
                    let info = figure_info(figure, None);
                    Some(Measure {
                        figure,
                        unit: info.unit,
                        better: info.better,
                        median: super::stats::median(&values)?,
                        min,
                        max,
                        reps: values.len(),
                    })
                })
                .collect();
            Bench {
                name,
                accel: g.key.accel.clone(),
                machine: g.key.machine.clone(),
                outcomes: g.outcome_text(),
                measures,
            }
        })
        .collect()
}

/// Writes every format for `rows` into `out_dir` (atomically, creating
/// it) and returns the files written.
pub fn write_all(rows: &[ResultRow], out_dir: &Path) -> Result<Vec<PathBuf>> {
    let benches = benches(&summarize(rows));
    let mut written = Vec::new();
    for exporter in exporters() {
        let path = out_dir.join(exporter.file_name());
        let text = exporter.render(&benches)?;
        write_atomic(&path, |w| Ok(w.write_all(text.as_bytes())?))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::model::fixtures::matrix_rows;

    #[test]
    fn writes_every_format() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_all(&matrix_rows(3), dir.path()).unwrap();
        assert_eq!(files.len(), 3);
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            serde_json::from_str::<serde_json::Value>(&text).unwrap();
        }
    }

    #[test]
    fn mixed_accels_keep_names_unique() {
        let mut rows = matrix_rows(1);
        let mut more = rows.clone();
        for r in &mut more {
            r.accel = "tcg-icount".into();
        }
        rows.extend(more);
        let b = benches(&summarize(&rows));
        let names: std::collections::BTreeSet<_> = b.iter().map(|b| &b.name).collect();
        assert_eq!(names.len(), b.len());
        assert!(b[0].name.ends_with("@tcg/microvm") || b[0].name.ends_with("@tcg-icount/microvm"));
    }
}
