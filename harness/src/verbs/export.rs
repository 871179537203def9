//! `harness export [--in DIR] [--out DIR]`: Bencher BMF and
//! github-action-benchmark JSON into `--out` (default `IN/export`).

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};

use super::{input_dir, rows_of};
use crate::results::export;
use crate::workspace::Workspace;

pub fn export(ws: &Workspace, input: Option<&Path>, out: Option<&Path>) -> Result<i32> {
    let input = input_dir(ws, input);
    let rows = rows_of(&input)?;
    let out = out.map_or_else(|| input.join("export"), Path::to_path_buf);
    fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    for file in export::write_all(&rows, &out)? {
        println!("{}", file.display());
    }
    Ok(0)
}
