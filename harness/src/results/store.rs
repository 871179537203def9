//! The results directory of one matrix run (layout in the parent module's
//! doc): one CSV per run under `runs/`, a combined `results.csv`, and
//! `metadata.json`.
//!
//! Concurrency: a [`Store`] holds no state but its paths, and each run goes
//! to its own file, so runner threads may call [`Store::append_run`] at the
//! same time through a shared reference. Two runs of the same cell are
//! refused (the second would silently replace the first).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::csv::{read_rows_file, write_rows_file};
use super::model::{Cell, Outcome, ResultRow, RunRecord};

/// Name of the combined CSV in a results directory.
pub const RESULTS_CSV: &str = "results.csv";
/// Name of the per-run directory in a results directory.
pub const RUNS_DIR: &str = "runs";

/// A results directory.
#[derive(Clone, Debug)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the results directory `dir`.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Store> {
        let dir = dir.into();
        let runs = dir.join(RUNS_DIR);
        fs::create_dir_all(&runs)
            .with_context(|| format!("creating results directory {}", runs.display()))?;
        Ok(Store { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file a run of `cell` is stored in.
    pub fn run_path(&self, cell: &Cell) -> PathBuf {
        self.dir
            .join(RUNS_DIR)
            .join(format!("{}.csv", cell.run_id()))
    }

    /// Stores a finished run as `runs/<run_id>.csv`, atomically. Fails if
    /// the cell already has a run here (a resumed matrix skips those cells;
    /// see [`Store::remove_run`] to redo one). Returns the file written.
    pub fn append_run(&self, run: &RunRecord) -> Result<PathBuf> {
        let path = self.run_path(&run.cell);
        if path.exists() {
            bail!(
                "cell {} already has a run in {} ({}); resume the matrix or use a fresh output directory",
                run.cell,
                self.dir.display(),
                path.display()
            );
        }
        write_rows_file(&path, &run.rows())
            .with_context(|| format!("storing the run of {}", run.cell))?;
        Ok(path)
    }

    /// Deletes the stored run of `cell`, if any (to run it again).
    pub fn remove_run(&self, cell: &Cell) -> Result<()> {
        let path = self.run_path(cell);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("removing {}", path.display()))
            }
            _ => Ok(()),
        }
    }

    /// The cells that have a stored run, each with its outcome: what a
    /// `--resume` skips (or, for failed outcomes, may choose to redo).
    pub fn completed_cells(&self) -> Result<BTreeMap<Cell, Outcome>> {
        Ok(self
            .rows()?
            .into_iter()
            .map(|r| (r.cell(), r.outcome))
            .collect())
    }

    /// All stored rows, run files in name order.
    pub fn rows(&self) -> Result<Vec<ResultRow>> {
        load_rows(&self.dir)
    }

    /// Rewrites `results.csv` from the run files, atomically. Call at the
    /// end of a matrix (and after a resume). Returns its path.
    pub fn finish(&self) -> Result<PathBuf> {
        let path = self.dir.join(RESULTS_CSV);
        write_rows_file(&path, &self.rows()?)?;
        Ok(path)
    }
}

/// The run files of a results directory, sorted by name; temporary files
/// of interrupted writes (`.tmp-*`) are skipped.
pub fn run_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let runs = dir.join(RUNS_DIR);
    let mut files = Vec::new();
    for entry in fs::read_dir(&runs).with_context(|| format!("listing {}", runs.display()))? {
        let path = entry
            .with_context(|| format!("listing {}", runs.display()))?
            .path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if !name.starts_with('.') && name.ends_with(".csv") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Reads the result rows at `path`: a CSV file as it is; a results
/// directory from its `runs/` when it has one, else from its `results.csv`
/// (a directory with neither holds no rows). A cell found in two run files
/// is an error naming both.
pub fn load_rows(path: &Path) -> Result<Vec<ResultRow>> {
    if path.is_file() {
        return read_rows_file(path);
    }
    if !path.exists() {
        bail!("results {} do not exist", path.display());
    }
    if path.join(RUNS_DIR).is_dir() {
        let mut rows = Vec::new();
        let mut seen: BTreeMap<Cell, PathBuf> = BTreeMap::new();
        for file in run_files(path)? {
            let run_rows = read_rows_file(&file)?;
            let cells: BTreeSet<Cell> = run_rows.iter().map(ResultRow::cell).collect();
            for cell in cells {
                if let Some(first) = seen.insert(cell.clone(), file.clone()) {
                    bail!(
                        "cell {cell} has two runs: {} and {}",
                        first.display(),
                        file.display()
                    );
                }
            }
            rows.extend(run_rows);
        }
        return Ok(rows);
    }
    let combined = path.join(RESULTS_CSV);
    if combined.is_file() {
        return read_rows_file(&combined);
    }
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::model::fixtures::{cell, run};

    #[test]
    fn resume_sees_exactly_the_stored_cells() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(store.completed_cells().unwrap().is_empty());
        let a = run(cell("fixed", "forkexit", 2, 1), 10.0, 5.0, 1.0);
        let mut b = run(cell("fixed", "forkexit", 4, 1), 10.0, 5.0, 1.0);
        b.outcome = Outcome::Panic;
        b.metrics.clear();
        store.append_run(&a).unwrap();
        store.append_run(&b).unwrap();
        // A write that was cut short leaves only a temporary file.
        fs::write(dir.path().join("runs/.tmp-abc"), "run_id,ti").unwrap();
        let done = store.completed_cells().unwrap();
        assert_eq!(done.len(), 2);
        assert_eq!(done[&a.cell], Outcome::Ok);
        assert_eq!(done[&b.cell], Outcome::Panic);

        // A second run of a cell is refused, naming the cell.
        let err = store.append_run(&a).unwrap_err().to_string();
        assert!(
            err.contains("cpus=2") && err.contains("already has a run"),
            "{err}"
        );
        store.remove_run(&a.cell).unwrap();
        store.append_run(&a).unwrap();

        // results.csv is regenerated from the runs and reads back the same.
        let combined = store.finish().unwrap();
        assert_eq!(
            load_rows(&combined).unwrap(),
            load_rows(dir.path()).unwrap()
        );
    }

    #[test]
    fn a_bare_results_csv_is_read_as_is() {
        let dir = tempfile::tempdir().unwrap();
        let rows = run(cell("fixed", "forkexit", 2, 1), 10.0, 5.0, 1.0).rows();
        write_rows_file(&dir.path().join(RESULTS_CSV), &rows).unwrap();
        assert_eq!(load_rows(dir.path()).unwrap(), rows);
        assert!(load_rows(&dir.path().join("nope")).is_err());
    }
}
