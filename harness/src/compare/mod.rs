//! The `compare` verb: what a change did. Two sides, A (before) and B
//! (after), each a results directory (what `harness matrix` wrote) or a git
//! revision; per cell and figure: A, B, the change in percent, its
//! threshold, whether it is significant by the gate's statistics ([`diff`])
//! and reaches that threshold ([`threshold`]: the gate's tolerance for the
//! figure, else 1 %, or `--threshold`), and for IPI changes the causes that
//! moved. Significant changes below their threshold are listed apart, as
//! "changed, below threshold".
//!
//! A revision is checked out into a temporary worktree (`git worktree add
//! --detach`; the user's checkout is untouched and the worktree removed
//! afterwards), and the same matrix file is run on both sides by this
//! harness with `--root` at the worktree, so each side's kernel is built
//! from its own tree's sources and variants. The runs are interleaved one
//! repetition at a time (A rep 1, B rep 1, A rep 2, ...: `matrix --reps K
//! --resume`), so host noise falls on both sides alike. Both sides at the
//! same commit share one worktree.
//!
//! ```text
//! OUT/compare.md    Markdown for a PR comment
//! OUT/compare.csv   one row per cell and figure
//! OUT/A/, OUT/B/    the results directories of revision sides
//! ```
//!
//! Exit status: 0 whatever the result; with `--fail-on-regression`, 3 when
//! some figure got worse past its threshold; 1 the harness failed.

pub mod diff;
pub mod render;
pub mod threshold;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::gate::rules::Rules;
use crate::results::csv::write_atomic;
use crate::results::MatrixSpec;
use crate::verbs::rows_of;
use crate::workspace::Workspace;

pub use diff::{compare, Comparison};
pub use render::Format;
pub use threshold::Thresholds;

/// Exit status of `--fail-on-regression` when something got worse.
pub const EXIT_REGRESSION: i32 = 3;

/// The matrix revision sides run by default.
pub const DEFAULT_MATRIX: &str = "matrix-quick.toml";

/// The `compare` verb's options, resolved from the command line.
#[derive(Clone, Debug)]
pub struct CompareOptions {
    pub a: String,
    pub b: String,
    /// For revision sides (default `variants/matrix-quick.toml`).
    pub matrix: Option<PathBuf>,
    /// Default `runs/compare-<stamp>`.
    pub out: Option<PathBuf>,
    pub fail_on_regression: bool,
    pub format: Format,
    /// Core budget for revision sides' matrices.
    pub jobs: Option<u32>,
    /// One threshold in percent for every figure, instead of the gate's
    /// tolerances and the default ([`threshold`]).
    pub threshold: Option<f64>,
}

/// The thresholds: `--threshold`, else the gate's `[[baseline]]` rules in
/// `variants/gates.toml` (the default alone when the file is absent).
fn thresholds(ws: &Workspace, opts: &CompareOptions) -> Result<Thresholds> {
    if let Some(pct) = opts.threshold {
        return Ok(Thresholds::uniform(pct));
    }
    let rules = ws.variants_dir().join("gates.toml");
    if !rules.is_file() {
        return Ok(Thresholds::default());
    }
    Ok(Thresholds::from_gate(&Rules::load(&rules)?))
}

/// A side: a results directory, or a commit to run.
#[derive(Clone, Debug, PartialEq)]
enum Side {
    Dir(PathBuf),
    Rev { given: String, commit: String },
}

impl Side {
    fn label(&self) -> String {
        match self {
            Side::Dir(d) => d.display().to_string(),
            Side::Rev { given, commit } => format!("{given} ({})", &commit[..12.min(commit.len())]),
        }
    }
}

fn git(repo: &Path, args: &[&str]) -> Result<String> {
    let out = duct::cmd("git", args)
        .dir(repo)
        .stdin_null()
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run()
        .with_context(|| format!("cannot run git {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "git {} in {} failed: {}",
            args.join(" "),
            repo.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A results directory when `text` names one, else a git revision of the
/// workspace.
fn side(ws: &Workspace, text: &str) -> Result<Side> {
    let p = Path::new(text);
    if p.is_dir() {
        if !p.join("results.csv").is_file() && !p.join("runs").is_dir() {
            bail!(
                "{} is a directory but holds no results (results.csv or runs/)",
                p.display()
            );
        }
        return Ok(Side::Dir(p.to_path_buf()));
    }
    let commit = git(
        &ws.root,
        &["rev-parse", "--verify", &format!("{text}^{{commit}}")],
    )
    .with_context(|| format!("'{text}' is neither a results directory nor a git revision"))?;
    Ok(Side::Rev {
        given: text.to_string(),
        commit,
    })
}

/// Temporary worktrees of the user's repository, removed on drop.
struct Worktrees {
    repo: PathBuf,
    _dir: tempfile::TempDir,
    paths: Vec<PathBuf>,
}

impl Worktrees {
    fn add(&mut self, commit: &str) -> Result<PathBuf> {
        let path = self._dir.path().join(format!("wt{}", self.paths.len()));
        git(
            &self.repo,
            &[
                "worktree",
                "add",
                "--detach",
                path.to_str().unwrap_or(""),
                commit,
            ],
        )?;
        self.paths.push(path.clone());
        Ok(path)
    }
}

impl Drop for Worktrees {
    fn drop(&mut self) {
        for p in &self.paths {
            if let Err(e) = git(
                &self.repo,
                &["worktree", "remove", "--force", p.to_str().unwrap_or("")],
            ) {
                eprintln!("harness: warning: {e:#}");
            }
        }
        git(&self.repo, &["worktree", "prune"]).ok();
    }
}

/// Runs `matrix` on the revision sides, interleaved one repetition at a
/// time, into `out/A` and `out/B`; returns each side's results directory.
fn run_revisions(
    ws: &Workspace,
    opts: &CompareOptions,
    sides: [&Side; 2],
    out: &Path,
) -> Result<[PathBuf; 2]> {
    let matrix = opts
        .matrix
        .clone()
        .unwrap_or_else(|| ws.variants_dir().join(DEFAULT_MATRIX));
    let matrix = std::fs::canonicalize(&matrix)
        .with_context(|| format!("matrix file {}", matrix.display()))?;
    let reps = MatrixSpec::load(&matrix)?.reps.max(1);
    let mut trees = Worktrees {
        repo: ws.root.clone(),
        _dir: tempfile::Builder::new()
            .prefix("pmaplab-compare-")
            .tempdir()
            .context("cannot create a temporary directory for the worktrees")?,
        paths: Vec::new(),
    };
    // (root, results dir) per side; None for a directory side.
    let mut plan: Vec<Option<(PathBuf, PathBuf)>> = Vec::new();
    let mut made: Vec<(String, PathBuf)> = Vec::new();
    for (name, s) in ["A", "B"].iter().zip(sides) {
        plan.push(match s {
            Side::Dir(_) => None,
            Side::Rev { commit, .. } => {
                let root = match made.iter().find(|(c, _)| c == commit) {
                    Some((_, r)) => r.clone(),
                    None => {
                        let r = trees.add(commit)?;
                        made.push((commit.clone(), r.clone()));
                        r
                    }
                };
                Some((root, out.join(name)))
            }
        });
    }
    let exe = std::env::current_exe().context("cannot find the harness binary")?;
    for rep in 1..=reps {
        for (name, p) in ["A", "B"].iter().zip(&plan) {
            let Some((root, dir)) = p else { continue };
            eprintln!("harness compare: side {name}, repetition {rep} of {reps}");
            let mut args: Vec<std::ffi::OsString> = vec![
                "--root".into(),
                root.into(),
                "matrix".into(),
                "--matrix".into(),
                matrix.clone().into(),
                "--out".into(),
                dir.into(),
                "--reps".into(),
                rep.to_string().into(),
                "--resume".into(),
            ];
            if let Some(j) = opts.jobs {
                args.push("--jobs".into());
                args.push(j.to_string().into());
            }
            let status = duct::cmd(&exe, args)
                .stdin_null()
                .stdout_to_stderr()
                .unchecked()
                .run()
                .with_context(|| format!("cannot run the matrix of side {name}"))?
                .status;
            // 0: every run ok; 3: some run did not end as expected (kept
            // in the results, and compared like any other).
            match status.code() {
                Some(0) | Some(crate::matrix::EXIT_RUN_FAILED) => {}
                _ => bail!(
                    "the matrix of side {name} ({}) failed: {status}",
                    root.display()
                ),
            }
        }
    }
    drop(trees);
    let dir = |i: usize| match (&plan[i], sides[i]) {
        (Some((_, d)), _) => d.clone(),
        (None, Side::Dir(d)) => d.clone(),
        (None, Side::Rev { .. }) => unreachable!("a revision side has a plan"),
    };
    Ok([dir(0), dir(1)])
}

/// The verb: returns the exit status.
pub fn execute(ws: &Workspace, opts: &CompareOptions) -> Result<i32> {
    let (a, b) = (side(ws, &opts.a)?, side(ws, &opts.b)?);
    let thresholds = thresholds(ws, opts)?;
    let out = opts.out.clone().unwrap_or_else(|| {
        ws.runs_dir().join(format!(
            "compare-{}",
            crate::run::utc_stamp(std::time::SystemTime::now())
        ))
    });
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let [da, db] = if matches!(a, Side::Rev { .. }) || matches!(b, Side::Rev { .. }) {
        run_revisions(ws, opts, [&a, &b], &out)?
    } else {
        [
            match &a {
                Side::Dir(d) => d.clone(),
                _ => unreachable!(),
            },
            match &b {
                Side::Dir(d) => d.clone(),
                _ => unreachable!(),
            },
        ]
    };
    let rows_a = rows_of(&da).context("side A")?;
    let rows_b = rows_of(&db).context("side B")?;
    let c = compare(&rows_a, &rows_b, &thresholds);
    let (la, lb) = (a.label(), b.label());
    let md = render::markdown(&c, &la, &lb);
    let md_path = out.join("compare.md");
    let csv_path = out.join("compare.csv");
    write_atomic(&md_path, |w| Ok(w.write_all(md.as_bytes())?))?;
    write_atomic(&csv_path, |w| render::csv(&c, w))?;
    match opts.format {
        Format::Table => print!("{}", render::table(&c, &la, &lb)),
        Format::Md => print!("{md}"),
        Format::Csv => render::csv(&c, &mut std::io::stdout())?,
    }
    eprintln!(
        "harness compare: wrote {} and {}",
        md_path.display(),
        csv_path.display()
    );
    Ok(if opts.fail_on_regression && c.regressions() > 0 {
        EXIT_REGRESSION
    } else {
        0
    })
}
