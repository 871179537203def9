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

/// Checks that `shards` (the metadata of each input, in input order) are
/// one complete shard set of one matrix run: each says `K/N` with the same
/// N, the Ks are exactly 1..=N once each, and they agree on the matrix
/// file's hash, the accelerator and QEMU's version.
pub fn check_shard_set(inputs: &[PathBuf], shards: &[Metadata]) -> Result<()> {
    let mut specs = Vec::new();
    for (input, m) in inputs.iter().zip(shards) {
        let Some(text) = &m.shard else {
            bail!(
                "{} is not a shard (its metadata.json has no shard K/N): merge takes the outputs of `matrix --shard K/N`",
                input.display()
            );
        };
        specs.push((input, text.parse::<ShardSpec>()?));
    }
    let n = specs[0].1.n;
    if let Some((input, s)) = specs.iter().find(|(_, s)| s.n != n) {
        bail!(
            "shard counts differ: {} is shard {} but {} is of {n}",
            input.display(),
            s,
            specs[0].0.display()
        );
    }
    let mut seen = vec![None; n];
    for (input, s) in &specs {
        if let Some(first) = seen[s.k - 1].replace(*input) {
            bail!(
                "shard {s} is given twice: {} and {}",
                first.display(),
                input.display()
            );
        }
    }
    let missing: Vec<String> = (1..=n)
        .filter(|k| seen[k - 1].is_none())
        .map(|k| format!("{k}/{n}"))
        .collect();
    if !missing.is_empty() {
        bail!(
            "incomplete shard set: missing shard {} (a merged matrix must hold every cell)",
            missing.join(", ")
        );
    }
    for (what, get) in [
        (
            "matrix files (sha256)",
            (|m: &Metadata| m.matrix_sha256.clone()) as fn(&Metadata) -> String,
        ),
        ("accelerators", |m: &Metadata| m.accel.clone()),
        ("QEMU versions", |m: &Metadata| m.qemu_version.clone()),
    ] {
        let first = get(&shards[0]);
        if let Some((input, m)) = inputs.iter().zip(shards).find(|(_, m)| get(m) != first) {
            bail!(
                "shards ran different {what}: {} has '{first}', {} has '{}'",
                inputs[0].display(),
                input.display(),
                get(m)
            );
        }
    }
    Ok(())
}

/// Merges the result directories `inputs` (shards) into `out`: every run
/// is copied to `out/runs/`, `out/results.csv` is written, and
/// `out/metadata.json` records each shard's metadata. Fails unless the
/// inputs are one complete shard set of one matrix, accelerator and QEMU
/// ([`check_shard_set`]; every input needs its metadata.json), and fails,
/// naming the cell and both sources, if a cell appears in two inputs.
/// Returns the merged rows.
pub fn merge(inputs: &[PathBuf], out: &Path) -> Result<Vec<ResultRow>> {
    if inputs.is_empty() {
        bail!("nothing to merge: no input directories given");
    }
    let mut shards = Vec::new();
    for input in inputs {
        if !input.join(metadata::METADATA_JSON).exists() {
            bail!(
                "{} has no metadata.json: cannot tell which shard of which matrix it is",
                input.display()
            );
        }
        shards.push(read_metadata(input)?);
    }
    check_shard_set(inputs, &shards)?;
    let mut owner: BTreeMap<Cell, &Path> = BTreeMap::new();
    let mut runs: BTreeMap<Cell, Vec<ResultRow>> = BTreeMap::new();
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

    /// Stores a TEST FIXTURE run for each cell in a fresh store, as shard
    /// `shard` of the fixture matrix.
    fn run_cells(dir: &Path, cells: &[Cell], shard: &str) {
        let store = Store::open(dir).unwrap();
        for (i, cell) in cells.iter().enumerate() {
            let run = fixtures::run(cell.clone(), 100.0 + i as f64, 10.0, 5.0);
            store.append_run(&run).unwrap();
        }
        let m = Metadata {
            matrix_sha256: "abc".into(),
            accel: "tcg".into(),
            qemu_version: "QEMU 7.2".into(),
            shard: Some(shard.into()),
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
        run_cells(&whole, &all, "1/1");
        let shard_dirs: Vec<PathBuf> = (1..=3)
            .map(|k| {
                let dir = tmp.path().join(format!("shard{k}"));
                run_cells(&dir, &shard(&all, k, 3), &format!("{k}/3"));
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
        let dup = tmp.path().join("dup");
        run_cells(&dup, &shard(&all, 1, 3), "3/3");
        let err = merge(
            &[shard_dirs[0].clone(), shard_dirs[1].clone(), dup],
            &tmp.path().join("bad"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("is in two shards") && err.contains("variant=a"),
            "{err}"
        );
        // Three of four shards, or one given twice: refused.
        let err = format!(
            "{:#}",
            merge(&shard_dirs[..2], &tmp.path().join("bad2")).unwrap_err()
        );
        assert!(err.contains("missing shard 3/3"), "{err}");
        let err = format!(
            "{:#}",
            merge(
                &[
                    shard_dirs[0].clone(),
                    shard_dirs[0].clone(),
                    shard_dirs[1].clone()
                ],
                &tmp.path().join("bad3")
            )
            .unwrap_err()
        );
        assert!(err.contains("shard 1/3 is given twice"), "{err}");
    }

    /// Both halves of the cells, as shards 1/2 and 2/2 in `tmp`/a and b.
    fn two_shards(tmp: &Path) -> (PathBuf, PathBuf) {
        let all = cells();
        let (a, b) = (tmp.join("a"), tmp.join("b"));
        run_cells(&a, &shard(&all, 1, 2), "1/2");
        run_cells(&b, &shard(&all, 2, 2), "2/2");
        (a, b)
    }

    #[test]
    fn shards_of_different_qemu_or_accel_do_not_merge() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = two_shards(tmp.path());
        let mut m = read_metadata(&b).unwrap();
        m.qemu_version = "QEMU 8.0".into();
        write_metadata(&b, &m).unwrap();
        let err = format!(
            "{:#}",
            merge(&[a.clone(), b.clone()], &tmp.path().join("o1")).unwrap_err()
        );
        assert!(err.contains("different QEMU versions"), "{err}");
        m.qemu_version = "QEMU 7.2".into();
        m.accel = "kvm".into();
        write_metadata(&b, &m).unwrap();
        let err = format!("{:#}", merge(&[a, b], &tmp.path().join("o2")).unwrap_err());
        assert!(err.contains("different accelerators"), "{err}");
    }

    #[test]
    fn shards_of_different_matrices_do_not_merge() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = two_shards(tmp.path());
        let mut m = read_metadata(&b).unwrap();
        m.matrix_sha256 = "def".into();
        write_metadata(&b, &m).unwrap();
        let err = merge(&[a, b], &tmp.path().join("out"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("different matrix files"), "{err}");
    }
}
