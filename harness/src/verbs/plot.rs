//! `harness plot [--in DIR] [--out DIR]`: charts into `--out` (default
//! `IN/charts`).

use std::path::Path;

use anyhow::Result;

use super::{input_dir, rows_of};
use crate::plot;
use crate::workspace::Workspace;

pub fn plot(ws: &Workspace, input: Option<&Path>, out: Option<&Path>) -> Result<i32> {
    let input = input_dir(ws, input);
    let rows = rows_of(&input)?;
    let out = out.map_or_else(|| input.join("charts"), Path::to_path_buf);
    // The input folder's logs name each run's kernel (the model's hot
    // lines by symbol), wherever the charts are written.
    let opts = plot::PlotOptions {
        results_dir: Some(input.clone()),
        ..plot::PlotOptions::default()
    };
    let files = plot::render_all_with(&rows, &out, &opts)?;
    println!(
        "{} files in {}; open {}",
        files.len(),
        out.display(),
        out.join("index.html").display()
    );
    Ok(0)
}
