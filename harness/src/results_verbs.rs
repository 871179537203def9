//! The verbs that read a results directory (what `harness matrix` wrote):
//! `merge`, `plot`, `gate`, `baseline` and `export`. Each is a thin layer
//! over the library pieces it names; the options come resolved from
//! [`crate::cli`]. `--in` defaults to `runs/matrix-latest`, the newest
//! matrix output.
//!
//! Exit statuses: 0 done (gate: every rule passed); 3 the gate found a
//! failing rule; 1 the harness failed (unreadable input, cannot write).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::gate::{self, scope, Rules};
use crate::results::csv::write_rows_file;
use crate::results::export;
use crate::results::metadata::{read_metadata, sha256_hex, METADATA_JSON};
use crate::results::summary::GroupKey;
use crate::results::{self, load_rows, MatrixSpec, ResultRow};
use crate::workspace::Workspace;
use crate::{matrix, plot};

/// Exit status of `gate` when a rule failed.
pub const EXIT_GATE_FAILED: i32 = 3;

/// `--in`, or the newest matrix output.
pub fn input_dir(ws: &Workspace, given: Option<&Path>) -> PathBuf {
    given.map_or_else(|| matrix::latest_dir(ws), Path::to_path_buf)
}

/// Reads the rows of `dir`, failing if there are none.
fn rows_of(dir: &Path) -> Result<Vec<ResultRow>> {
    let rows = load_rows(dir).with_context(|| format!("reading results {}", dir.display()))?;
    if rows.is_empty() {
        bail!("no results in {}", dir.display());
    }
    Ok(rows)
}

/// `harness merge --out DIR SHARD_DIR...`.
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

/// `harness plot [--in DIR] [--out DIR]`: charts into `--out` (default
/// `IN/charts`).
pub fn plot(ws: &Workspace, input: Option<&Path>, out: Option<&Path>) -> Result<i32> {
    let input = input_dir(ws, input);
    let rows = rows_of(&input)?;
    let out = out.map_or_else(|| input.join("charts"), Path::to_path_buf);
    let files = plot::render_all(&rows, &out)?;
    println!(
        "{} files in {}; open {}",
        files.len(),
        out.display(),
        out.join("index.html").display()
    );
    Ok(0)
}

/// The `gate` verb's options.
#[derive(Clone, Debug)]
pub struct GateOptions {
    pub rules: PathBuf,
    pub baseline: Option<PathBuf>,
    pub input: Option<PathBuf>,
    /// The matrix to scope the rules to (default: the one the results'
    /// metadata.json names).
    pub matrix: Option<PathBuf>,
    /// Evaluate every rule, whatever the matrix.
    pub all_rules: bool,
}

/// The groups of the matrix that produced `input`, and its name, for
/// [`gate::scope`]; `None` when there is nothing to scope by.
fn matrix_groups(
    ws: &Workspace,
    input: &Path,
    opts: &GateOptions,
) -> Result<Option<(BTreeSet<GroupKey>, String)>> {
    if opts.all_rules {
        return Ok(None);
    }
    let meta = input
        .join(METADATA_JSON)
        .is_file()
        .then(|| read_metadata(input))
        .transpose()?;
    let path = match (&opts.matrix, &meta) {
        (Some(path), _) => path.clone(),
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
            "reading the matrix file {} to scope the rules",
            path.display()
        )
    })?;
    if opts.matrix.is_none() {
        if let Some(m) = &meta {
            if sha256_hex(&text) != m.matrix_sha256 {
                bail!(
                    "{} changed since {} was run from it; give the matrix with --matrix, or --all-rules",
                    path.display(),
                    input.display()
                );
            }
        }
    }
    let mut spec = MatrixSpec::load(&path)?;
    if let Some(m) = meta.as_ref().filter(|m| !m.accel.is_empty()) {
        spec.accel = m.accel.clone();
    }
    let groups = spec.cells()?.iter().map(scope::group_of).collect();
    Ok(Some((groups, path.display().to_string())))
}

/// `harness gate`: prints the verdicts, appends them as Markdown to
/// `$GITHUB_STEP_SUMMARY` when set, returns [`EXIT_GATE_FAILED`] if a
/// rule failed.
pub fn gate(ws: &Workspace, opts: &GateOptions) -> Result<i32> {
    let rules = Rules::load(&opts.rules)?;
    let input = input_dir(ws, opts.input.as_deref());
    let rows = rows_of(&input)?;
    let mut baseline = match &opts.baseline {
        Some(path) => {
            Some(load_rows(path).with_context(|| format!("reading baseline {}", path.display()))?)
        }
        None => None,
    };
    let (rules, mut lines) = match matrix_groups(ws, &input, opts)? {
        Some((groups, name)) => {
            baseline = baseline.map(|b| scope::baseline_within(b, &groups));
            let (kept, skipped) = scope::scope(&rules, &groups, &name);
            if !skipped.is_empty() {
                eprintln!(
                    "harness: gate: {} of the rules select nothing {name} runs: skipped (--all-rules to evaluate them)",
                    skipped.len()
                );
            }
            (kept, skipped)
        }
        None => (rules, Vec::new()),
    };
    let mut report = gate::evaluate(&rules, &rows, baseline.as_deref());
    report.lines.append(&mut lines);
    report.print_table();
    if report.write_step_summary()? {
        eprintln!("harness: gate: verdicts appended to $GITHUB_STEP_SUMMARY");
    }
    Ok(if report.passed() { 0 } else { EXIT_GATE_FAILED })
}

/// `harness baseline [--in DIR]...`: makes the ok runs of every `DIR` the
/// committed baseline, `results/baseline.csv`, with the first `DIR`'s
/// `results/baseline-metadata.json` and charts in `results/charts/` (old
/// charts removed first). Runs that did not end `ok` are listed and left
/// out.
pub fn baseline(ws: &Workspace, inputs: &[PathBuf]) -> Result<i32> {
    let default_input = [input_dir(ws, None)];
    let inputs = if inputs.is_empty() {
        &default_input[..]
    } else {
        inputs
    };
    let mut rows = Vec::new();
    for input in inputs {
        rows.extend(rows_of(input)?);
    }
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
    let input = &inputs[0];
    let dir = ws.root.join("results");
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let csv = dir.join("baseline.csv");
    write_rows_file(&csv, &rows)?;
    let meta_src = input.join(METADATA_JSON);
    if meta_src.is_file() {
        let meta_dst = dir.join("baseline-metadata.json");
        fs::copy(&meta_src, &meta_dst).with_context(|| {
            format!(
                "cannot copy {} to {}",
                meta_src.display(),
                meta_dst.display()
            )
        })?;
    }
    let charts = dir.join("charts");
    if charts.is_dir() {
        for entry in
            fs::read_dir(&charts).with_context(|| format!("listing {}", charts.display()))?
        {
            let path = entry?.path();
            // reproduce-* charts belong to `harness reproduce`, not to
            // the baseline.
            let reproduce = path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("reproduce-"));
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
    let first: Vec<ResultRow> = rows_of(input)?
        .into_iter()
        .filter(|r| r.outcome.is_ok())
        .collect();
    let files = plot::render_all(&first, &charts)?;
    let cells: BTreeSet<_> = rows.iter().map(ResultRow::cell).collect();
    println!(
        "baseline: {} runs from {} -> {}; {} chart files in {}",
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

/// `harness export [--in DIR] [--out DIR]`: Bencher BMF and
/// github-action-benchmark JSON into `--out` (default `IN/export`).
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
