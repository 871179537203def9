//! The verbs that are a thin layer over library pieces, one module each;
//! their options come resolved from [`crate::cli`].
//!
//! - Over a results directory (what `harness matrix` wrote; `--in`
//!   defaults to `runs/matrix-latest`, the newest matrix output): [`merge`],
//!   [`plot`], [`gate`], [`baseline`], [`export`].
//! - Booting kernels of their own: [`explain`] (one run of a variant, or
//!   two with `--vs`, told by cause) and [`selftest`] (`gate --self-test`,
//!   the gate's mutation proof: a small matrix per planted regression).
//!
//! Verbs with machinery of their own live in their own modules, not here:
//! `build` ([`crate::kernel_build`]), `run` ([`crate::run`]), `matrix`
//! ([`crate::matrix`]), `mutants` ([`crate::mutants`]), `reproduce`
//! ([`crate::reproduce`]) and `compare` ([`crate::compare`]).
//!
//! Exit statuses: 0 done (gate: passed); 3 the gate failed; 1 the harness
//! failed (unreadable input, cannot write, refused input).

pub mod baseline;
pub mod explain;
pub mod export;
pub mod gate;
pub mod merge;
pub mod plot;
pub mod selftest;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::matrix;
use crate::results::{load_rows, ResultRow};
use crate::workspace::Workspace;

/// `--in`, or the newest matrix output.
pub fn input_dir(ws: &Workspace, given: Option<&Path>) -> PathBuf {
    given.map_or_else(|| matrix::latest_dir(ws), Path::to_path_buf)
}

/// Reads the rows of `dir`, failing if there are none.
pub fn rows_of(dir: &Path) -> Result<Vec<ResultRow>> {
    let rows = load_rows(dir).with_context(|| format!("reading results {}", dir.display()))?;
    if rows.is_empty() {
        bail!("no results in {}", dir.display());
    }
    Ok(rows)
}
