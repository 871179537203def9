//! Sharding a matrix over machines, and merging the shards' results.
//!
//! A shard `K/N` (1-based K) runs the cells at positions i with
//! `i mod N == K - 1` of the matrix's cell list: deterministic, disjoint,
//! and together exactly the matrix. [`merge`] puts the shards' result
//! directories back together into one directory holding the same runs an
//! unsharded matrix would have written.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Context, Result};

use super::csv::write_rows_file;
use super::metadata::{self, read_metadata, write_metadata, Metadata};
use super::model::{Cell, ResultRow};
use super::store::{load_rows, run_files, Store, RUNS_DIR};

/// `K/N`: the K-th of N shards, 1 <= K <= N.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardSpec {
    pub k: usize,
    pub n: usize,
}

impl FromStr for ShardSpec {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let parse = || -> Option<ShardSpec> {
            let (k, n) = s.split_once('/')?;
            Some(ShardSpec {
                k: k.trim().parse().ok()?,
                n: n.trim().parse().ok()?,
            })
        };
        match parse() {
            Some(spec) if spec.k >= 1 && spec.k <= spec.n => Ok(spec),
            _ => bail!("bad shard '{s}': expected K/N with 1 <= K <= N, e.g. 2/4"),
        }
    }
}

impl fmt::Display for ShardSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.k, self.n)
    }
}

/// The cells of shard `k` of `n` (1-based `k`): cell i goes to shard
/// `i mod n + 1`, order kept. Panics unless 1 <= k <= n.
pub fn shard<T: Clone>(cells: &[T], k: usize, n: usize) -> Vec<T> {
    assert!(k >= 1 && k <= n, "shard {k}/{n} out of range");
    cells
        .iter()
        .enumerate()
        .filter(|(i, _)| i % n == k - 1)
        .map(|(_, c)| c.clone())
        .collect()
}

/// Merges the result directories `inputs` (shards) into `out`: every run
/// is copied to `out/runs/`, `out/results.csv` is written, and
/// `out/metadata.json` records each shard's metadata (a shard without one
/// is allowed and noted). Fails, naming the cell and both sources, if a
/// cell appears in two inputs, and fails if the shards ran different
/// matrix files. Returns the merged rows.
pub fn merge(inputs: &[PathBuf], out: &Path) -> Result<Vec<ResultRow>> {
    if inputs.is_empty() {
        bail!("nothing to merge: no input directories given");
    }
    let mut owner: BTreeMap<Cell, &Path> = BTreeMap::new();
    let mut runs: BTreeMap<Cell, Vec<ResultRow>> = BTreeMap::new();
    let mut shards = Vec::new();
    for input in inputs {
        let rows =
            load_rows(input).with_context(|| format!("reading shard {}", input.display()))?;
        let mut here: BTreeMap<Cell, Vec<ResultRow>> = BTreeMap::new();
        for row in rows {
            here.entry(row.cell()).or_default().push(row);
        }
        for (cell, rows) in here {
            if let Some(first) = owner.insert(cell.clone(), input) {
                bail!(
                    "cell {cell} is in two shards: {} and {}",
                    first.display(),
                    input.display()
                );
            }
            runs.insert(cell, rows);
        }
        if input.join(metadata::METADATA_JSON).exists() {
            shards.push(read_metadata(input)?);
        }
    }
    let hashes: Vec<&Metadata> = shards
        .iter()
        .filter(|m| !m.matrix_sha256.is_empty())
        .collect();
    if let Some(other) = hashes
        .iter()
        .find(|m| m.matrix_sha256 != hashes[0].matrix_sha256)
    {
        bail!(
            "shards ran different matrices: {} (sha256 {}) and {} (sha256 {})",
            hashes[0].matrix_path,
            hashes[0].matrix_sha256,
            other.matrix_path,
            other.matrix_sha256
        );
    }

    let store = Store::open(out)?;
    if !run_files(out)?.is_empty() {
        bail!(
            "merge output {} already holds runs; merge into a fresh directory",
            out.display()
        );
    }
    for (cell, rows) in &runs {
        let path = out.join(RUNS_DIR).join(format!("{}.csv", cell.run_id()));
        write_rows_file(&path, rows)?;
    }
    store.finish()?;
    let mut merged = shards.first().cloned().unwrap_or_default();
    merged.shard = None;
    merged.shards = shards.clone();
    merged.started = shards
        .iter()
        .map(|m| m.started.clone())
        .min()
        .unwrap_or_default();
    merged.finished = shards
        .iter()
        .map(|m| m.finished.clone())
        .max()
        .unwrap_or_else(metadata::now);
    write_metadata(out, &merged)?;
    Ok(runs.into_values().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::matrix::MatrixSpec;
    use crate::results::model::fixtures;
    use std::collections::BTreeSet;

    fn cells() -> Vec<Cell> {
        MatrixSpec::parse(
            "variants=[\"a\",\"b\",\"c\"]\ncpus=[1,2]\nreps=2\naccel=\"tcg\"\n\
             [[workloads]]\nname=\"w\"\n[[workloads]]\nname=\"v\"\n",
        )
        .unwrap()
        .cells()
        .unwrap()
    }

    #[test]
    fn shards_partition_the_cells() {
        let all = cells();
        for n in 1..=5 {
            let mut union = Vec::new();
            for k in 1..=n {
                union.extend(shard(&all, k, n));
            }
            assert_eq!(union.len(), all.len(), "disjoint for n={n}");
            let a: BTreeSet<_> = union.into_iter().collect();
            let b: BTreeSet<_> = all.iter().cloned().collect();
            assert_eq!(a, b, "complete for n={n}");
        }
        assert_eq!(
            "2/4".parse::<ShardSpec>().unwrap(),
            ShardSpec { k: 2, n: 4 }
        );
        for bad in ["0/4", "5/4", "x", "1/"] {
            assert!(bad.parse::<ShardSpec>().is_err(), "{bad}");
        }
    }

    /// Stores a TEST FIXTURE run for each cell in a fresh store.
    fn run_cells(dir: &Path, cells: &[Cell]) {
        let store = Store::open(dir).unwrap();
        for (i, cell) in cells.iter().enumerate() {
            let run = fixtures::run(cell.clone(), 100.0 + i as f64, 10.0, 5.0);
            store.append_run(&run).unwrap();
        }
        let m = Metadata {
            matrix_sha256: "abc".into(),
            started: format!("2026-01-0{}T00:00:00Z", 1 + cells.len() % 3),
            ..Default::default()
        };
        write_metadata(dir, &m).unwrap();
    }

    #[test]
    fn merged_shards_equal_the_unsharded_cells() {
        let tmp = tempfile::tempdir().unwrap();
        let all = cells();
        let whole = tmp.path().join("whole");
        run_cells(&whole, &all);
        let shard_dirs: Vec<PathBuf> = (1..=3)
            .map(|k| {
                let dir = tmp.path().join(format!("shard{k}"));
                run_cells(&dir, &shard(&all, k, 3));
                dir
            })
            .collect();
        let out = tmp.path().join("merged");
        merge(&shard_dirs, &out).unwrap();
        let cells_of = |dir: &Path| -> BTreeSet<Cell> {
            load_rows(dir)
                .unwrap()
                .iter()
                .map(ResultRow::cell)
                .collect()
        };
        assert_eq!(cells_of(&out), cells_of(&whole));
        assert_eq!(cells_of(&out.join("results.csv")), cells_of(&whole));
        let meta = read_metadata(&out).unwrap();
        assert_eq!(meta.shards.len(), 3);

        // The same cell in two shards is an error naming it.
        let err = merge(
            &[shard_dirs[0].clone(), whole.clone()],
            &tmp.path().join("bad"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("is in two shards") && err.contains("variant=a"),
            "{err}"
        );
    }

    #[test]
    fn shards_of_different_matrices_do_not_merge() {
        let tmp = tempfile::tempdir().unwrap();
        let all = cells();
        let a = tmp.path().join("a");
        let b = tmp.path().join("b");
        run_cells(&a, &shard(&all, 1, 2));
        run_cells(&b, &shard(&all, 2, 2));
        let mut m = read_metadata(&b).unwrap();
        m.matrix_sha256 = "def".into();
        write_metadata(&b, &m).unwrap();
        let err = merge(&[a, b], &tmp.path().join("out"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("different matrices"), "{err}");
    }
}
