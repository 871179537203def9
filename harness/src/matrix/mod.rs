//! The `matrix` verb: run every cell of a matrix file, in parallel within
//! the host's cores, into a results directory.
//!
//! In order:
//! 1. Read the matrix file ([`MatrixSpec`]) and apply `--reps`/`--accel`.
//! 2. Check, before any run, that everything it names exists: every
//!    `variants/<name>.toml` (and its kernel features), then build each
//!    variant once, then ask each variant's kernel which of the matrix's
//!    workloads it knows ([`probe`]). Anything missing is one error listing
//!    all of it.
//! 3. Resolve the accelerator (the cached `auto` probe), expand the cells,
//!    keep this shard's (`--shard K/N`), and drop those already stored
//!    (`--resume`).
//! 4. Run the cells in matrix order under a core budget ([`schedule`]),
//!    each run's rows stored atomically as it finishes ([`Store`]), its
//!    serial log and QEMU's stderr kept in `OUT/logs/<run_id>.*`.
//! 5. Write `OUT/results.csv` and `OUT/metadata.json`.
//!
//! ```text
//! OUT/runs/<run_id>.csv        one per finished run (the truth; see results::store)
//! OUT/results.csv              all runs, rewritten at the end
//! OUT/metadata.json            host, QEMU, rustc, accel and why, matrix file + hash, shard
//! OUT/logs/<run_id>.log        the guest's serial output
//! OUT/logs/<run_id>.qemu.stderr, .cmd (QEMU command line), .outcome (decoded)
//! ```
//!
//! A run that fails (panic, timeout, ...) is stored with its outcome and
//! the matrix goes on. Ctrl-C or SIGTERM stops starting runs and kills the
//! QEMUs in flight; their cells are not stored, so `--resume` runs them
//! again, and every run that finished is already on disk.
//!
//! Exit status: 0 every run ended `ok`; 3 at least one run ended otherwise
//! (the rows say which); 130 interrupted; 1 the harness failed (missing
//! variant or workload, build error, cannot write); 2 usage.

pub mod probe;
pub mod progress;
pub mod schedule;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use chrono::Utc;
use clap::ValueEnum;

use crate::accel::{Accel, AccelChoice};
use crate::accel_probe;
use crate::kernel_build::{self, KernelImage};
use crate::qemu::{self, Interrupted, Machine};
use crate::results::metadata::{read_metadata, write_metadata, Metadata, METADATA_JSON};
use crate::results::model::{Cell, Outcome, RunRecord};
use crate::results::{shard, MatrixSpec, ShardSpec, Store};
use crate::run::{self, RunFiles, RunSpec};
use crate::variants::{self, Variant};
use crate::workspace::Workspace;

use progress::Progress;
use schedule::Budget;

/// Exit status when some run did not end as expected: not `ok`, or `ok`
/// where the matrix file expects a negative control to fail.
pub const EXIT_RUN_FAILED: i32 = 3;
/// Exit status when the matrix was interrupted (Ctrl-C, SIGTERM).
pub const EXIT_INTERRUPTED: i32 = 130;
/// The name of the link to the newest default output directory.
pub const LATEST: &str = "matrix-latest";

/// The `matrix` verb's options, resolved from the command line.
#[derive(Clone, Debug)]
pub struct MatrixOptions {
    /// The matrix file (default `variants/matrix.toml`).
    pub matrix: Option<PathBuf>,
    /// Core budget instead of the host's cores.
    pub jobs: Option<usize>,
    /// Repetitions instead of the file's.
    pub reps: Option<u32>,
    pub shard: Option<ShardSpec>,
    pub resume: bool,
    /// Output directory (default `runs/matrix-<stamp>`, or with `--resume`
    /// the one `runs/matrix-latest` points at).
    pub out: Option<PathBuf>,
    /// Accelerator instead of the file's.
    pub accel: Option<AccelChoice>,
    pub qemu: PathBuf,
}

/// The default results directory of the verbs that read one: the newest
/// matrix output (`runs/matrix-latest`).
pub fn latest_dir(ws: &Workspace) -> PathBuf {
    ws.runs_dir().join(LATEST)
}

/// Installs the Ctrl-C/SIGTERM handler: the first signal asks every run to
/// stop (see [`qemu::request_stop`]); a second one exits at once. Installs
/// it once per process: `reproduce` runs several matrices in a row, and
/// `ctrlc` refuses a second handler.
fn install_stop_handler() -> Result<()> {
    static INSTALLED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    if INSTALLED.get().is_some() {
        return Ok(());
    }
    INSTALLED.get_or_init(|| ());
    ctrlc::set_handler(|| {
        if qemu::stop_requested() {
            eprintln!("harness: interrupted again: exiting now");
            std::process::exit(EXIT_INTERRUPTED);
        }
        eprintln!("harness: interrupted: stopping the runs in flight; finished runs are kept (--resume goes on)");
        qemu::request_stop();
    })
    .context("cannot install the Ctrl-C/SIGTERM handler")
}

/// Runs the `matrix` verb. Returns the exit status (module doc).
pub fn execute(ws: &Workspace, opts: &MatrixOptions) -> Result<i32> {
    let matrix_path = opts
        .matrix
        .clone()
        .unwrap_or_else(|| ws.variants_dir().join("matrix.toml"));
    let mut spec = MatrixSpec::load(&matrix_path)?;
    if let Some(reps) = opts.reps {
        if reps == 0 {
            bail!("--reps must be at least 1");
        }
        spec.reps = reps;
    }
    let choice = match opts.accel {
        Some(choice) => choice,
        None => AccelChoice::from_str(&spec.accel, true).map_err(|_| {
            anyhow::anyhow!(
                "in matrix file {}: accel '{}' is none of auto, kvm, tcg, tcg-icount",
                matrix_path.display(),
                spec.accel
            )
        })?,
    };
    let machine = Machine::from_str(&spec.machine, true).map_err(|_| {
        anyhow::anyhow!(
            "in matrix file {}: machine '{}' is none of microvm, q35",
            matrix_path.display(),
            spec.machine
        )
    })?;

    let kernels = build_and_check(ws, &spec, &matrix_path, &opts.qemu)?;

    let probe_kernel = &kernels[&spec.variants[0]];
    let (accel, accel_reason) = accel_probe::resolve_explained(
        choice,
        &opts.qemu,
        &probe_kernel.path,
        &ws.cache_dir().join("accel-probe.toml"),
    )?;
    let accel_reason = match opts.accel {
        Some(_) => format!("{accel_reason} (--accel)"),
        None if choice != AccelChoice::Auto => {
            format!("{accel_reason} (matrix file {})", matrix_path.display())
        }
        None => accel_reason,
    };
    spec.accel = accel.as_str().to_string();
    let all_cells = spec.cells()?;
    let cells = match opts.shard {
        Some(s) => shard(&all_cells, s.k, s.n),
        None => all_cells,
    };

    let out = output_dir(ws, opts)?;
    let store = Store::open(&out)?;
    let mut meta = prepare_metadata(opts, &out, &store, &matrix_path, accel, &accel_reason)?;
    meta.accel_requested = match opts.accel {
        Some(c) => format!(
            "{} (--accel)",
            c.to_possible_value()
                .map_or("?".into(), |v| v.get_name().to_string())
        ),
        None => MatrixSpec::load(&matrix_path)?.accel,
    };
    if choice == AccelChoice::Auto {
        meta.accel_probe =
            accel_probe::cached_probe(&opts.qemu, &ws.cache_dir().join("accel-probe.toml"));
    }
    meta.machine = spec.machine.clone();
    meta.reps = spec.reps;
    meta.git_rev = ws.git_rev();
    write_metadata(&out, &meta)?;
    let done = store.completed_cells()?;
    let todo: Vec<Cell> = cells
        .iter()
        .filter(|c| !done.contains_key(*c))
        .cloned()
        .collect();
    let logs = out.join("logs");
    fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;

    let budget = Budget::new(
        opts.jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
    );
    eprintln!(
        "harness: matrix {}: {} cells{}{}, {} to run, accel {} ({}), core budget {}; output {}",
        matrix_path.display(),
        cells.len(),
        opts.shard
            .map(|s| format!(" (shard {s})"))
            .unwrap_or_default(),
        if done.is_empty() {
            String::new()
        } else {
            format!(", {} already done", cells.len() - todo.len())
        },
        todo.len(),
        accel.as_str(),
        accel_reason,
        budget.total(),
        out.display()
    );
    install_stop_handler()?;
    let started = Instant::now();
    let ctx = RunContext {
        kernels: &kernels,
        machine,
        accel,
        timeout: Duration::from_secs(spec.timeout_s),
        qemu: &opts.qemu,
        git_rev: ws.git_rev(),
        store: &store,
        logs: &logs,
        out: &out,
    };
    let tally = run_cells(&ctx, &todo, &budget);
    let interrupted = qemu::stop_requested();

    store.finish()?;
    meta.finish();
    write_metadata(&out, &meta)?;
    let tally = tally?;
    let stored = store.completed_cells()?;
    let ok = stored.values().filter(|o| o.is_ok()).count();
    // A run counts against the matrix when it ends other than expected:
    // not ok, or, for a negative control, ok.
    // A run the accelerator cannot give (`unsupported`: e.g. `pcid` under
    // TCG) says so in its outcome and counts neither way.
    let (as_expected, unexpected): (Vec<_>, Vec<_>) = stored
        .iter()
        .filter(|(cell, outcome)| **outcome != Outcome::Ok || spec.expected(cell).0 != Outcome::Ok)
        .filter(|(_, outcome)| **outcome != Outcome::Unsupported)
        .partition(|(cell, outcome)| spec.expected(cell).0 == **outcome);
    let unsupported = stored
        .values()
        .filter(|o| **o == Outcome::Unsupported)
        .count();
    println!(
        "matrix: {} run(s) this time in {:.1} s; {} of {} cells stored, {} ok{}{}",
        tally.ran,
        started.elapsed().as_secs_f64(),
        stored.len(),
        cells.len(),
        ok,
        if as_expected.is_empty() {
            String::new()
        } else {
            format!(", {} not ok as expected", as_expected.len())
        },
        if unexpected.is_empty() {
            String::new()
        } else {
            format!(", {} not as expected", unexpected.len())
        },
    );
    if unsupported > 0 {
        println!(
            "  {unsupported} run(s) unsupported by this CPU or accelerator (their logs say what is \
             missing)"
        );
    }
    for (cell, outcome) in &as_expected {
        let why = spec.expected(cell).1.unwrap_or_default();
        println!("  {outcome} as expected ({why}): {cell}");
    }
    for (cell, outcome) in &unexpected {
        println!(
            "  {outcome}, expected {}: {cell} (log {})",
            spec.expected(cell).0,
            logs.join(format!("{}.log", cell.run_id())).display()
        );
    }
    println!("results: {}", out.join("results.csv").display());
    if interrupted {
        let left = cells.iter().filter(|c| !stored.contains_key(*c)).count();
        println!(
            "interrupted: {left} cells not run; resume with: harness matrix --matrix {} --out {} --resume",
            matrix_path.display(),
            out.display()
        );
        return Ok(EXIT_INTERRUPTED);
    }
    Ok(if unexpected.is_empty() {
        0
    } else {
        EXIT_RUN_FAILED
    })
}

/// Step 2 of the module doc: loads and builds every variant, probes the
/// workloads, and fails listing everything the matrix names that does not
/// exist. Returns the kernels by variant.
fn build_and_check(
    ws: &Workspace,
    spec: &MatrixSpec,
    matrix_path: &Path,
    qemu: &Path,
) -> Result<BTreeMap<String, KernelImage>> {
    let missing_variants: Vec<&String> = spec
        .variants
        .iter()
        .filter(|v| !ws.variants_dir().join(format!("{v}.toml")).is_file())
        .collect();
    // A variant file that exists but is wrong (unknown feature, bad field)
    // is its own error, naming the file and field.
    let present: Vec<Variant> = spec
        .variants
        .iter()
        .filter(|v| !missing_variants.contains(v))
        .map(|v| variants::load(ws, v))
        .collect::<Result<_, _>>()?;
    let mut kernels = BTreeMap::new();
    for variant in &present {
        eprintln!("harness: building variant {}", variant.name);
        let image = kernel_build::build(ws, variant, kernel_build::Output::OnFailure)?;
        kernels.insert(variant.name.clone(), image);
    }
    let workloads: Vec<String> = spec
        .workloads
        .iter()
        .map(|w| w.name.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    // workload -> the variants whose kernel lacks it.
    let mut missing_workloads: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, kernel) in &kernels {
        for (workload, known) in probe::known_workloads(ws, kernel, &workloads, qemu)? {
            if !known {
                missing_workloads
                    .entry(workload)
                    .or_default()
                    .push(name.clone());
            }
        }
    }
    if missing_variants.is_empty() && missing_workloads.is_empty() {
        return Ok(kernels);
    }
    let mut msg = format!(
        "matrix file {} names what this tree does not have yet:",
        matrix_path.display()
    );
    if !missing_variants.is_empty() {
        let known = variants::load_all(ws)
            .map(|all| {
                all.into_iter()
                    .map(|v| v.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_else(|_| "unreadable".into());
        msg += &format!(
            "\n  variants with no file in {}: {} (there are: {known})",
            ws.variants_dir().display(),
            missing_variants
                .iter()
                .map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if !missing_workloads.is_empty() {
        let list: Vec<String> = missing_workloads
            .iter()
            .map(|(w, vs)| {
                if vs.len() == kernels.len() {
                    w.clone()
                } else {
                    format!("{w} (in variants {})", vs.join(", "))
                }
            })
            .collect();
        msg += &format!(
            "\n  workloads the kernel does not know: {}",
            list.join(", ")
        );
    }
    if kernels.is_empty() {
        msg += "\n  (workloads not checked: no variant of the matrix could be built)";
    }
    msg +=
        "\n  check variants/*.toml and the kernel's workload table (kernel/src/workloads/mod.rs)";
    bail!(msg)
}

/// The output directory: `--out`, else for `--resume` the directory
/// `runs/matrix-latest` points at, else a new `runs/matrix-<stamp>` (and
/// `runs/matrix-latest` is pointed at it).
fn output_dir(ws: &Workspace, opts: &MatrixOptions) -> Result<PathBuf> {
    if let Some(out) = &opts.out {
        return Ok(out.clone());
    }
    let latest = latest_dir(ws);
    if opts.resume {
        return fs::canonicalize(&latest).with_context(|| {
            format!(
                "--resume without --out resumes {}, which does not exist",
                latest.display()
            )
        });
    }
    let stamp = run::utc_stamp(std::time::SystemTime::now());
    let out = ws.runs_dir().join(format!("matrix-{stamp}"));
    fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    // Point the link at the new directory: make a new link, rename it over
    // the old one (atomic, so a reader never finds no link).
    let tmp = ws
        .runs_dir()
        .join(format!(".{LATEST}.{}", std::process::id()));
    fs::remove_file(&tmp).ok();
    std::os::unix::fs::symlink(format!("matrix-{stamp}"), &tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    fs::rename(&tmp, &latest).with_context(|| format!("cannot replace {}", latest.display()))?;
    Ok(out)
}

/// The metadata for this run of the matrix: fresh, or for `--resume` the
/// stored one, checked to be the same matrix, accelerator and shard.
fn prepare_metadata(
    opts: &MatrixOptions,
    out: &Path,
    store: &Store,
    matrix_path: &Path,
    accel: Accel,
    accel_reason: &str,
) -> Result<Metadata> {
    let mut fresh = Metadata::collect(matrix_path, accel.as_str(), accel_reason)?;
    fresh.shard = opts.shard.map(|s| s.to_string());
    let stored_runs = crate::results::store::run_files(store.dir())?.len();
    if !opts.resume {
        if stored_runs > 0 {
            bail!(
                "{} already holds {stored_runs} runs: add --resume to complete it, or give another --out",
                out.display()
            );
        }
        return Ok(fresh);
    }
    if !out.join(METADATA_JSON).exists() {
        return Ok(fresh);
    }
    let old = read_metadata(out)?;
    let differs = |what: &str, was: &str, now: &str| {
        anyhow::anyhow!(
            "cannot resume {}: it ran {what} {was}, this is {now}",
            out.display()
        )
    };
    if old.matrix_sha256 != fresh.matrix_sha256 {
        return Err(differs(
            "matrix file",
            &format!("{} (sha256 {})", old.matrix_path, old.matrix_sha256),
            &format!("{} (sha256 {})", fresh.matrix_path, fresh.matrix_sha256),
        ));
    }
    if old.accel != fresh.accel {
        return Err(differs("accel", &old.accel, &fresh.accel));
    }
    if old.shard != fresh.shard {
        let show = |s: &Option<String>| s.clone().unwrap_or_else(|| "no shard".into());
        return Err(differs("shard", &show(&old.shard), &show(&fresh.shard)));
    }
    Ok(Metadata {
        started: old.started,
        ..fresh
    })
}

/// What every run of a matrix shares.
struct RunContext<'a> {
    kernels: &'a BTreeMap<String, KernelImage>,
    machine: Machine,
    accel: Accel,
    timeout: Duration,
    qemu: &'a Path,
    git_rev: String,
    store: &'a Store,
    logs: &'a Path,
    out: &'a Path,
}

/// Counts of this invocation's runs.
#[derive(Debug, Default)]
struct Tally {
    ran: usize,
}

/// Runs `cells` in order under `budget`, one thread per run in flight.
/// Stops starting runs on a stop request or a harness error (returned).
fn run_cells(ctx: &RunContext<'_>, cells: &[Cell], budget: &Budget) -> Result<Tally> {
    let progress = Progress::new(cells.len());
    let tally = Mutex::new(Tally::default());
    let failure: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for cell in cells {
            let cost = schedule::cost(cell.cpus, ctx.accel, budget.total());
            if !budget.acquire(cost) {
                break;
            }
            if failure.lock().unwrap().is_some() {
                budget.release(cost);
                break;
            }
            let (progress, tally, failure) = (&progress, &tally, &failure);
            scope.spawn(move || {
                let what = describe(cell);
                progress.started(&what);
                match run_cell(ctx, cell) {
                    Ok(Some((outcome, wall))) => {
                        tally.lock().unwrap().ran += 1;
                        let log = ctx.logs.join(format!("{}.log", cell.run_id()));
                        let log = log.strip_prefix(ctx.out).unwrap_or(&log);
                        progress.finished(
                            &what,
                            outcome.as_str(),
                            wall,
                            &log.display().to_string(),
                        );
                    }
                    Ok(None) => progress.println(&format!("interrupted: {what} (not stored)")),
                    Err(e) => {
                        progress.println(&format!("harness error in {what}: {e:#}"));
                        failure.lock().unwrap().get_or_insert(e);
                    }
                }
                budget.release(cost);
            });
        }
    });
    progress.finish();
    if let Some(e) = failure.into_inner().unwrap() {
        return Err(e);
    }
    Ok(tally.into_inner().unwrap())
}

/// `fixed ipi-pingpong[n=3] 4cpu rep 2`.
fn describe(cell: &Cell) -> String {
    let params = if cell.params.is_empty() {
        String::new()
    } else {
        format!("[{}]", cell.params)
    };
    format!(
        "{} {}{params} {}cpu rep {}",
        cell.variant, cell.workload, cell.cpus, cell.rep
    )
}

/// Runs one cell and stores it. `Ok(None)` when it was interrupted (not
/// stored); `Err` when the harness failed.
fn run_cell(ctx: &RunContext<'_>, cell: &Cell) -> Result<Option<(Outcome, Duration)>> {
    let kernel = ctx.kernels[&cell.variant].clone();
    let params = cell
        .params
        .split(';')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    let spec = RunSpec {
        kernel,
        workload: cell.workload.clone(),
        params,
        cpus: cell.cpus,
        mem_mib: 256,
        machine: ctx.machine,
        accel: ctx.accel,
        timeout: ctx.timeout,
        qemu: ctx.qemu.to_path_buf(),
        runs_dir: ctx.logs.to_path_buf(),
    };
    let started = Utc::now();
    let result = match run::run_into(&spec, &RunFiles::named(ctx.logs, &cell.run_id())) {
        Ok(result) => result,
        Err(e) if e.is::<Interrupted>() => return Ok(None),
        Err(e) => return Err(e.context(format!("running {cell}"))),
    };
    let outcome = result.outcome.kind();
    let record = RunRecord {
        cell: cell.clone(),
        features: spec.kernel.features.clone(),
        git_rev: ctx.git_rev.clone(),
        started,
        outcome,
        wall: result.wall,
        metrics: result.report.metrics.clone(),
    };
    ctx.store.append_run(&record)?;
    Ok(Some((outcome, result.wall)))
}
