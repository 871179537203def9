//! `harness gate`: checks a results directory against the rules of
//! `variants/gates.toml` (and a baseline), prints the verdicts, appends
//! them as Markdown to `$GITHUB_STEP_SUMMARY` when set.
//!
//! The policy (which matrix the results came from, which rules apply to
//! it, completeness, provenance, statistics) lives in [`crate::gate`];
//! this module reads the files and decides the exit status:
//! [`EXIT_PASSED`], [`EXIT_GATE_FAILED`], or 1 for a harness error (an
//! unreadable input, a matrix file changed since the run, or required
//! baseline rules without `--baseline`).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use super::{baseline, input_dir, rows_of};
use crate::gate::{self, complete, exact, provenance, scope, GateReport, Inputs, Rules};
use crate::results::load_rows;
use crate::results::metadata::{read_metadata, METADATA_JSON};
use crate::workspace::Workspace;

/// Exit status when every rule held (and at least one passed).
pub const EXIT_PASSED: i32 = 0;
/// Exit status when a rule failed, a cell is missing, or nothing passed.
pub const EXIT_GATE_FAILED: i32 = 3;

/// The `gate` verb's options.
#[derive(Clone, Debug)]
pub struct GateOptions {
    pub rules: PathBuf,
    pub baseline: Option<PathBuf>,
    /// Evaluate without a baseline on purpose: baseline rules are skipped.
    pub no_baseline: bool,
    pub input: Option<PathBuf>,
    /// The matrix the results were run from (default: the one the
    /// results' metadata.json names).
    pub matrix: Option<PathBuf>,
    /// Evaluate every rule, even those that select nothing the matrix runs.
    pub all_rules: bool,
    /// Also require every figure of a repeatable run (tcg-icount,
    /// tcg-model) to equal the baseline's ([`gate::exact`]).
    pub exact: bool,
}

/// `harness gate`: [`check`], then the table on stdout, the Markdown in
/// `$GITHUB_STEP_SUMMARY`, and the exit status.
pub fn gate(ws: &Workspace, opts: &GateOptions) -> Result<i32> {
    let report = check(ws, opts)?;
    report.print_table();
    let refused = report
        .lines
        .iter()
        .filter(|l| l.note.starts_with("refused:"))
        .count();
    if refused > 0 {
        eprintln!(
            "harness: gate: {refused} baseline comparisons refused (the baseline's provenance differs or is unknown; see their notes): remake the baseline with ./lab baseline"
        );
    }
    if report.write_step_summary()? {
        eprintln!("harness: gate: verdicts appended to $GITHUB_STEP_SUMMARY");
    }
    Ok(if report.passed() {
        EXIT_PASSED
    } else {
        EXIT_GATE_FAILED
    })
}

/// Reads the files `opts` names and evaluates the gate: the report,
/// printed nowhere (what it says on stderr: the provenance of both sides
/// and the rules scoped out).
pub fn check(ws: &Workspace, opts: &GateOptions) -> Result<GateReport> {
    let rules = Rules::load(&opts.rules)?;
    let input = input_dir(ws, opts.input.as_deref());
    let rows = rows_of(&input)?;
    let meta = input
        .join(METADATA_JSON)
        .is_file()
        .then(|| read_metadata(&input))
        .transpose()?;
    let matrix = scope::matrix_of(ws, &input, meta.as_ref(), opts.matrix.as_deref())?;
    let (rules, mut scoped_out) = match (&matrix, opts.all_rules) {
        (Some((spec, name)), false) => {
            let groups = spec.cells()?.iter().map(scope::group_of).collect();
            let (kept, skipped) = scope::scope(&rules, &groups, name);
            if !skipped.is_empty() {
                eprintln!(
                    "harness: gate: {} of the rules select nothing {name} runs: skipped (--all-rules to evaluate them)",
                    skipped.len()
                );
            }
            (kept, skipped)
        }
        _ => (rules, Vec::new()),
    };
    let (base_rows, base_meta) = match (&opts.baseline, opts.no_baseline) {
        (Some(_), true) => bail!("--baseline and --no-baseline contradict each other"),
        (Some(path), false) => {
            let rows =
                load_rows(path).with_context(|| format!("reading baseline {}", path.display()))?;
            (Some(rows), baseline::read_meta(path)?)
        }
        (None, false) if rules.baseline.iter().any(|r| r.required) => bail!(
            "{} has required [[baseline]] rules ({}) and no --baseline was given: \
             give --baseline results/baseline.csv, or --no-baseline to check the same-run rules only",
            opts.rules.display(),
            rules
                .baseline
                .iter()
                .filter(|r| r.required)
                .map(|r| format!("'{}'", r.name))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        (None, _) => (None, Vec::new()),
    };
    if let Some(m) = &meta {
        eprintln!("harness: gate: results: {}", provenance::describe(m));
    }
    for m in &base_meta {
        eprintln!("harness: gate: baseline: {}", provenance::describe(m));
    }
    if base_rows.is_some() && base_meta.is_empty() {
        eprintln!("harness: gate: the baseline has no metadata: its timing figures will be refused (remake it with ./lab baseline)");
    }
    let inputs = Inputs {
        matrix: matrix.as_ref().map(|(spec, _)| spec),
        meta: meta.as_ref(),
        baseline: base_rows.as_deref(),
        baseline_meta: &base_meta,
    };
    let mut report = gate::evaluate(&rules, &rows, &inputs);
    if opts.exact {
        let Some(base) = base_rows.as_deref() else {
            bail!("--exact compares with a baseline: give --baseline");
        };
        let build_differs = |accel: &str| match (provenance::meta_for(&base_meta, accel), &meta) {
            (Some(base), Some(now)) => provenance::build_differs(base, now),
            _ => Vec::new(),
        };
        report
            .lines
            .extend(exact::lines(&rows, base, build_differs));
    }
    if matrix.is_none() {
        report.lines.insert(
            0,
            complete::unknown(&format!(
                "{} has no {METADATA_JSON} naming its matrix",
                input.display()
            )),
        );
    }
    report.lines.append(&mut scoped_out);
    Ok(report)
}

/// The text of `harness gate --help`'s exit statuses.
pub const EXIT_HELP: &str = "Exit status: 0 passed (no line failed and at least one rule line passed); \
3 failed (a rule failed, a matrix cell is missing, completeness is unknown, or every line was skipped); \
1 harness error (unreadable results or rules, a matrix file changed since the run, \
required [[baseline]] rules without --baseline); 2 usage error.";
