//! `harness merge --out DIR SHARD_DIR...`: the shards of one matrix run
//! (`matrix --shard K/N`) back into one results directory. The checks
//! (complete shard set, one matrix, accelerator and QEMU, no duplicate
//! cell) are `results::merge`'s.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::results::{self, ResultRow};

pub fn merge(out: &Path, shards: &[PathBuf]) -> Result<i32> {
    let rows = results::merge(shards, out)?;
    let cells: BTreeSet<_> = rows.iter().map(ResultRow::cell).collect();
    println!(
        "merged {} shards: {} runs into {}",
        shards.len(),
        cells.len(),
        out.join(results::store::RESULTS_CSV).display()
    );
    Ok(0)
}
