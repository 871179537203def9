//! The `reproduce` verb: measure, beside each figure the seeds published,
//! the lab's figure with the same definition, and say why they differ.
//!
//! Data structures:
//! - [`Experiment`]: one small matrix (variants x one workload with its
//!   parameters x CPU counts); each runs through the `matrix` verb into its
//!   own results directory `OUT/<id>/` (the generated matrix file beside
//!   it, `OUT/<id>.toml`), so the runs, logs and metadata are the same as
//!   any matrix's and `harness plot`/`gate` can read them.
//! - [`Plan`]: the experiments, the repetitions, and which CPU counts the
//!   OpenBSD factor is read at and swept over. [`Plan::full`] is what
//!   `harness reproduce` runs; tests build smaller plans.
//! - [`Row`] and [`Note`] ([`rows`]): the rows of the table, computed only
//!   from the stored runs ([`figures`]), each figure per repetition
//!   ([`Measured`]: median, min..max), one module per seed ([`seeds`]) or
//!   the techniques' ([`techniques`]); the notes' prose is in `prose/`,
//!   filled in by [`template`].
//!
//! What does not exist in the tree (a variant file, a kernel feature, a
//! workload the kernel does not know) is left out of its experiment and
//! recorded in [`Availability`]; the rows that needed it say "not
//! measured: ..." and the rest of the table is produced.
//!
//! Output: the table on stdout, `results/REPRODUCE.md` ([`table`]), and the
//! CPU sweep of the OpenBSD factor as `results/charts/reproduce-ipi-factor`
//! `.svg` and `.png` ([`chart`]).

pub mod chart;
pub mod check;
pub mod figures;
pub mod format;
pub mod measured;
pub mod modeled;
pub mod modeled_seeds;
pub mod rows;
pub mod seeds;
pub mod table;
pub mod techniques;
pub mod template;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::accel::AccelChoice;
use crate::kernel_build;
use crate::matrix::{self, probe, MatrixOptions};
use crate::results::derive::{self, RunFigures};
use crate::results::model::Outcome;
use crate::results::{read_metadata, Cell, Store};
use crate::variants;
use crate::workspace::Workspace;

pub use measured::Measured;
pub use rows::{Kind, Note, Row};
pub use seeds::SweepPoint;

/// Experiment ids (also their results directories).
pub const OBSD_FORKEXIT: &str = "openbsd-forkexit";
pub const OBSD_BUILDKERNEL: &str = "openbsd-buildkernel";
pub const D32569_TOUCH: &str = "d32569-touch";
pub const D32569_NOTOUCH: &str = "d32569-notouch";
pub const D32569_NCPU: &str = "d32569-ncpu";
/// The same three forkexit experiments under tcg-icount (the ids above
/// run under plain TCG, whatever `--accel` says).
pub const D32569_TOUCH_ICOUNT: &str = "d32569-touch-icount";
pub const D32569_NOTOUCH_ICOUNT: &str = "d32569-notouch-icount";
pub const D32569_NCPU_ICOUNT: &str = "d32569-ncpu-icount";
pub const D32569_BUILDKERNEL: &str = "d32569-buildkernel";
pub const DFLY_PINGPONG: &str = "dfly-pingpong";
pub const DFLY_SHOOTPAGE: &str = "dfly-shootpage";
pub const D25510_MMAP: &str = "d25510-mmap-storm";
pub const D25510_SHOOT: &str = "d25510-shoot-storm";
/// The techniques published since the seeds (`--techniques`), all under
/// tcg-icount on 4 CPUs (repeatable; 2 vCPUs under icount are one working
/// CPU and an IPI responder, README).
pub const TECH_FORKEXIT: &str = "techniques-forkexit";
pub const TECH_BUILDKERNEL: &str = "techniques-buildkernel";
/// The modeled twins (tcg-model, one repetition: the model's runs repeat
/// bit for bit): the techniques' forkexit and buildkernel, and
/// shoot-storm, where concurrent kernel shootdowns make the shootdown
/// structures' cache lines the bulk of the transfers.
pub const TECH_FORKEXIT_MODEL: &str = "techniques-forkexit-model";
pub const TECH_BUILDKERNEL_MODEL: &str = "techniques-buildkernel-model";
pub const TECH_SHOOTSTORM_MODEL: &str = "techniques-shoot-storm-model";
/// The seeds' modeled experiments (tcg-model, one repetition): D32569's
/// touch loop, DragonFly's IPI and shootpage, D25510's padding.
pub const D32569_TOUCH_MODEL: &str = "d32569-touch-model";
pub const DFLY_PINGPONG_MODEL: &str = "dfly-pingpong-model";
pub const DFLY_SHOOTPAGE_MODEL: &str = "dfly-shootpage-model";
pub const D25510_MODEL: &str = "d25510-shoot-storm-model";

/// Per-run timeout of the seeds' modeled experiments, seconds: the
/// plugin makes a run 1.5-2.5x slower than tcg-icount, more on a loaded
/// host, and the fork loop is long.
pub const MODEL_TIMEOUT_S: u64 = 600;

/// The variants of seed 004 (D32569), all on the FreeBSD base: as landed,
/// its nullified state (the review's "optimisation disabled"), and the
/// tree before it.
pub const D32569_VARIANTS: [&str; 3] = ["shared-page-opt", "shared-page-counted", "freebsd-before"];

/// Map entries of the forkexit parent in seed 004's experiments: the
/// reviewer's benchmark parent had 60, almost all backed by VM objects.
pub const D32569_ENTRIES: &str = "60";

/// One small matrix: `variants` x `workload[params]` x `cpus`.
#[derive(Clone, Debug, PartialEq)]
pub struct Experiment {
    pub id: String,
    pub variants: Vec<String>,
    pub workload: String,
    pub params: Vec<(String, String)>,
    pub cpus: Vec<u32>,
    /// Per-run timeout, seconds.
    pub timeout_s: u64,
    /// The accelerator this experiment always runs under; None: `--accel`.
    pub accel: Option<AccelChoice>,
    /// Repetitions of this experiment whatever the plan's; None: the plan's.
    pub reps: Option<u32>,
}

impl Experiment {
    pub fn new(id: &str, variants: &[&str], workload: &str, params: &[(&str, &str)]) -> Self {
        Experiment {
            id: id.into(),
            variants: variants.iter().map(|v| v.to_string()).collect(),
            workload: workload.into(),
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            cpus: vec![],
            timeout_s: 180,
            accel: None,
            reps: None,
        }
    }

    /// Under tcg-model (the memory-system model, both cost profiles) with
    /// one repetition: its runs repeat bit for bit, so a second would
    /// only double the wall time.
    pub fn modeled(mut self) -> Self {
        self.accel = Some(AccelChoice::TcgModel);
        self.reps = Some(1);
        self
    }

    /// A per-run timeout of `s` seconds (default 180).
    pub fn timeout(mut self, s: u64) -> Self {
        self.timeout_s = s;
        self
    }

    /// Always run under `accel`, whatever `--accel` says.
    pub fn accel(mut self, accel: AccelChoice) -> Self {
        self.accel = Some(accel);
        self
    }

    pub fn cpus(mut self, cpus: &[u32]) -> Self {
        self.cpus = cpus.to_vec();
        self
    }

    /// This experiment under plain TCG, and its twin `icount_id` under
    /// tcg-icount, whatever `--accel` says.
    pub fn under_tcg_and_icount(self, icount_id: &str) -> [Self; 2] {
        let icount = Experiment {
            id: icount_id.into(),
            ..self.clone()
        };
        [
            self.accel(AccelChoice::Tcg),
            icount.accel(AccelChoice::TcgIcount),
        ]
    }

    /// `forkexit[loops=100;touch=on]`.
    pub fn label(&self) -> String {
        let params = Cell::params_text(&self.params.iter().cloned().collect());
        if params.is_empty() {
            self.workload.clone()
        } else {
            format!("{}[{params}]", self.workload)
        }
    }

    /// The matrix file for the `variants` of this experiment that exist.
    fn matrix_toml(&self, variants: &[String], reps: u32, accel: &str) -> String {
        let quote = |v: &[String]| {
            v.iter()
                .map(|s| format!("\"{s}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let cpus: Vec<String> = self.cpus.iter().map(|c| c.to_string()).collect();
        let params: Vec<String> = self
            .params
            .iter()
            .map(|(k, v)| format!("{k} = \"{v}\""))
            .collect();
        format!(
            "# Generated by `harness reproduce` (experiment {id}); see harness/src/reproduce.\n\
             variants = [{variants}]\ncpus = [{cpus}]\nreps = {reps}\naccel = \"{accel}\"\n\
             machine = \"microvm\"\ntimeout_s = {timeout}\n\n[[workloads]]\nname = \"{workload}\"\n\
             params = {{ {params} }}\n",
            id = self.id,
            variants = quote(variants),
            cpus = cpus.join(", "),
            timeout = self.timeout_s,
            workload = self.workload,
            params = params.join(", "),
        )
    }
}

/// Which table a plan makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    /// The seeds' published figures (results/REPRODUCE.md).
    Seeds,
    /// The techniques published since (results/TECHNIQUES.md).
    Techniques,
}

/// What `harness reproduce` runs.
#[derive(Clone, Debug)]
pub struct Plan {
    pub table: Table,
    pub experiments: Vec<Experiment>,
    pub reps: u32,
    /// The CPU count the OpenBSD factor is reported at (the laptop's 4).
    pub factor_cpus: u32,
    /// CPU counts of the factor's sweep (and its chart).
    pub sweep_cpus: Vec<u32>,
}

/// CPU counts of the factor's sweep up to `to`: every count to 8 (the
/// fill's pattern repeats each byte), then powers of two, and `to`.
pub fn sweep_cpus(to: u32) -> Vec<u32> {
    let mut cpus: Vec<u32> = (1..=to.min(8)).collect();
    cpus.extend((4..=6).map(|p| 1 << p).filter(|&c| c < to));
    if to > 8 {
        cpus.push(to);
    }
    cpus
}

impl Plan {
    /// Every seed's experiments, sized to finish in about 10 minutes on a
    /// 2-core machine under TCG with 3 repetitions.
    /// The OpenBSD factor is swept over 1..=8 CPUs, then the powers of two
    /// up to `sweep_to` (and `sweep_to` itself): 16, 32, 64.
    pub fn full(reps: u32, sweep_to: u32) -> Plan {
        let sweep = sweep_cpus(sweep_to);
        let obsd = ["openbsd-2010", "fixed"];
        let d32569 = D32569_VARIANTS;
        let d25510 = ["fixed", "scoreboard"];
        Plan {
            table: Table::Seeds,
            experiments: vec![
                // Seed 000: "ordinary use" = fork/exit churn plus a build.
                Experiment::new(OBSD_FORKEXIT, &obsd, "forkexit", &[("loops", "100")]).cpus(&sweep),
                Experiment::new(OBSD_BUILDKERNEL, &obsd, "buildkernel", &[("jobs", "8")])
                    .cpus(&sweep),
                // Seed 004: one instance on 2 CPUs (idle second CPU, as on
                // the reviewer's machine), NCPU instances, and a build;
                // the parent with the reviewer's 60 map entries. The rate
                // experiments run under both TCG and tcg-icount: plain
                // TCG's ratio moves with the host's load, icount's does
                // not: each rate experiment has its `-icount` twin.
            ]
            .into_iter()
            .chain(
                [
                    (D32569_TOUCH, D32569_TOUCH_ICOUNT, "2000", "on", None),
                    (D32569_NOTOUCH, D32569_NOTOUCH_ICOUNT, "2000", "off", None),
                    (D32569_NCPU, D32569_NCPU_ICOUNT, "1000", "on", Some("2")),
                ]
                .into_iter()
                .flat_map(|(id, icount_id, loops, touch, instances)| {
                    let mut params = vec![("loops", loops), ("touch", touch)];
                    params.extend(instances.map(|n| ("instances", n)));
                    params.push(("entries", D32569_ENTRIES));
                    Experiment::new(id, &d32569, "forkexit", &params)
                        .cpus(&[2])
                        .under_tcg_and_icount(icount_id)
                }),
            )
            .chain([
                Experiment::new(
                    D32569_BUILDKERNEL,
                    &d32569,
                    "buildkernel",
                    &[("jobs", "16")],
                )
                .cpus(&[4]),
                // Seed 004's touch loop on the model's clocks (the rate
                // the review measured in Hz): a quarter of the loops, the
                // same loop (a rate per loop; the model's cells are slow).
                Experiment::new(
                    D32569_TOUCH_MODEL,
                    &d32569,
                    "forkexit",
                    &[
                        ("loops", "500"),
                        ("touch", "on"),
                        ("entries", D32569_ENTRIES),
                    ],
                )
                .cpus(&[2])
                .modeled()
                .timeout(MODEL_TIMEOUT_S),
                // Seed 001: the IPI floor and a real shootpage, measured
                // and modeled.
                Experiment::new(DFLY_PINGPONG, &["fixed"], "ipi-pingpong", &[]).cpus(&[2]),
                Experiment::new(DFLY_SHOOTPAGE, &["fixed"], "pmap-selftest", &[]).cpus(&[2]),
                Experiment::new(DFLY_PINGPONG_MODEL, &["fixed"], "ipi-pingpong", &[])
                    .cpus(&[2])
                    .modeled()
                    .timeout(MODEL_TIMEOUT_S),
                Experiment::new(DFLY_SHOOTPAGE_MODEL, &["fixed"], "pmap-selftest", &[])
                    .cpus(&[2])
                    .modeled()
                    .timeout(MODEL_TIMEOUT_S),
                // Seed 003: concurrent shootdowns from every CPU.
                Experiment::new(D25510_MMAP, &d25510, "mmap-storm", &[("ops", "100")])
                    .cpus(&[2, 4, 8]),
                Experiment::new(D25510_SHOOT, &d25510, "shoot-storm", &[("ops", "300")])
                    .cpus(&[2, 4, 8]),
                // ... and the padding D25510 left undone, on the model's
                // cache lines.
                Experiment::new(
                    D25510_MODEL,
                    &["fixed", "scoreboard", "scoreboard-padded"],
                    "shoot-storm",
                    &[("ops", "300")],
                )
                .cpus(&[4])
                .modeled()
                .timeout(MODEL_TIMEOUT_S),
            ])
            .collect(),
            reps,
            factor_cpus: 4,
            sweep_cpus: sweep,
        }
    }

    /// The techniques published since the seeds, each beside `fixed`, all
    /// under tcg-icount on 4 CPUs: counts and instruction-cost times both
    /// repeatable. A variant whose runs end `unsupported` on this CPU or
    /// accelerator (pcid, without PCID) is still run, and its row says why
    /// it is not measured. No mmap-storm: under tcg-icount its threads
    /// hardly overlap (3 IPI-sending shootdowns in 100 ops on 4 CPUs), so
    /// it has no shootdown for a technique to save.
    pub fn techniques(reps: u32) -> Plan {
        let icount = AccelChoice::TcgIcount;
        Plan {
            table: Table::Techniques,
            experiments: vec![
                Experiment::new(
                    TECH_FORKEXIT,
                    &[
                        "fixed",
                        "early-ack",
                        "in-context-flush",
                        "no-flush-cow",
                        "lazy-tlb",
                        "flush-first",
                        "scoreboard",
                        "cacheline-consolidation",
                    ],
                    "forkexit",
                    &[("loops", "300"), ("touch", "on")],
                )
                .cpus(&[4])
                .accel(icount),
                Experiment::new(
                    TECH_BUILDKERNEL,
                    &["fixed", "no-flush-cow", "lazy-tlb", "lazy-latr", "pcid"],
                    "buildkernel",
                    &[("jobs", "8")],
                )
                .cpus(&[4])
                .accel(icount),
                // The modeled twins: what a technique saves in cache-line
                // transfers, TLB refills and modeled cycles.
                Experiment::new(
                    TECH_FORKEXIT_MODEL,
                    &[
                        "fixed",
                        "early-ack",
                        "in-context-flush",
                        "flush-first",
                        "lazy-tlb",
                    ],
                    "forkexit",
                    &[("loops", "300"), ("touch", "on")],
                )
                .cpus(&[4])
                .modeled(),
                Experiment::new(
                    TECH_SHOOTSTORM_MODEL,
                    &["scoreboard", "cacheline-consolidation"],
                    "shoot-storm",
                    &[("ops", "300")],
                )
                .cpus(&[4])
                .modeled(),
                Experiment::new(
                    TECH_BUILDKERNEL_MODEL,
                    &["fixed", "lazy-latr"],
                    "buildkernel",
                    &[("jobs", "8")],
                )
                .cpus(&[4])
                .modeled(),
            ],
            reps,
            factor_cpus: 4,
            sweep_cpus: vec![],
        }
    }

    /// The experiment `id`, if the plan has it.
    pub fn experiment(&self, id: &str) -> Option<&Experiment> {
        self.experiments.iter().find(|e| e.id == id)
    }
}

/// The `reproduce` verb's options.
#[derive(Clone, Debug)]
pub struct ReproduceOptions {
    pub accel: AccelChoice,
    pub reps: u32,
    /// Results directory (default `runs/reproduce-<stamp>`).
    pub out: Option<PathBuf>,
    /// Complete the runs already in `out` (and render from them).
    pub resume: bool,
    pub jobs: Option<usize>,
    pub qemu: PathBuf,
    /// The Markdown table (default `results/REPRODUCE.md`).
    pub markdown: Option<PathBuf>,
    /// Where the sweep chart goes (default `results/charts`).
    pub charts: Option<PathBuf>,
    /// The OpenBSD factor's sweep goes up to this many CPUs (default 8).
    pub sweep_to: u32,
    /// Run the techniques' table (results/TECHNIQUES.md) instead of the
    /// seeds'.
    pub techniques: bool,
    /// Check this committed table's repeatable rows instead of writing one
    /// (check.rs).
    pub check: Option<PathBuf>,
}

/// What the tree lacks for each experiment.
#[derive(Clone, Debug, Default)]
pub struct Availability {
    /// (experiment, variant) -> why it was left out.
    pub variants: BTreeMap<(String, String), String>,
    /// experiment -> why it was not run at all.
    pub experiments: BTreeMap<String, String>,
}

impl Availability {
    /// Why `variant` of experiment `id` was not measured, if it was not.
    pub fn why_not(&self, id: &str, variant: &str) -> Option<String> {
        if let Some(why) = self.experiments.get(id) {
            return Some(why.clone());
        }
        self.variants
            .get(&(id.to_string(), variant.to_string()))
            .cloned()
    }
}

/// The stored runs of every experiment, `ok` runs only.
#[derive(Clone, Debug, Default)]
pub struct Pool {
    pub runs: BTreeMap<String, Vec<RunFigures>>,
}

impl Pool {
    /// The run of `variant` in experiment `id` on `cpus` CPUs, repetition
    /// `rep`.
    pub fn get(&self, id: &str, variant: &str, cpus: u32, rep: u32) -> Option<&RunFigures> {
        self.runs
            .get(id)?
            .iter()
            .find(|r| r.cell.variant == variant && r.cell.cpus == cpus && r.cell.rep == rep)
    }

    /// The repetitions stored for experiment `id`.
    pub fn reps(&self, id: &str) -> BTreeSet<u32> {
        self.runs
            .get(id)
            .map(|runs| runs.iter().map(|r| r.cell.rep).collect())
            .unwrap_or_default()
    }
}

/// Everything the table is made from.
#[derive(Clone, Debug)]
pub struct Reproduction {
    pub plan: Plan,
    pub pool: Pool,
    pub availability: Availability,
    /// The accelerator of the experiments that follow `--accel` (from the
    /// matrices' metadata).
    pub accel: String,
    /// Experiment id -> the accelerator its runs were measured under.
    pub accels: BTreeMap<String, String>,
    /// The QEMU and the toolchain the runs were built and run with (the
    /// first experiment's metadata): repeatable rows are exact for them.
    pub build: check::Build,
    pub out: PathBuf,
    /// The model's cost profiles (model/profiles/): one modeled row per
    /// profile per modeled comparison.
    pub profiles: Vec<modeled::Profile>,
    pub rows: Vec<Row>,
    /// Why the figures differ: each note once, rows point at it.
    pub notes: Vec<Note>,
    pub sweep: Vec<SweepPoint>,
}

/// Runs the `reproduce` verb: measure, print, write the Markdown and the
/// chart. Returns the exit status (0; 1 is an `Err`).
pub fn execute(ws: &Workspace, opts: &ReproduceOptions) -> Result<i32> {
    let (plan, default_md) = if opts.techniques {
        (Plan::techniques(opts.reps), "TECHNIQUES.md")
    } else {
        (Plan::full(opts.reps, opts.sweep_to), "REPRODUCE.md")
    };
    if let Some(committed) = &opts.check {
        // Repetitions of a repeatable experiment are identical: one is
        // the figure.
        let plan = Plan { reps: 1, ..plan };
        let outcome = run_plan(ws, &plan, opts)?;
        let check::Checked {
            differences,
            other_build,
        } = check::check(committed, &outcome)?;
        if differences.is_empty() {
            println!(
                "reproduce --check: every repeatable row of {} is what this tree produces",
                committed.display()
            );
            return Ok(0);
        }
        for d in &differences {
            eprintln!("reproduce --check: {d}");
        }
        // Figures are exact for one tree, QEMU and toolchain: under
        // another build a difference cannot be laid at the tree's door.
        if let Some(other) = other_build {
            eprintln!(
                "reproduce --check: cannot tell the tree's changes from the build's: {} was \
                 made with {other}, these runs with {}; re-make it on this machine \
                 (not counted as a failure)",
                committed.display(),
                outcome.build
            );
            return Ok(0);
        }
        return Ok(3);
    }
    let outcome = run_plan(ws, &plan, opts)?;
    let markdown = opts
        .markdown
        .clone()
        .unwrap_or_else(|| ws.root.join("results").join(default_md));
    let charts = opts
        .charts
        .clone()
        .unwrap_or_else(|| ws.root.join("results").join("charts"));
    let written = if opts.techniques {
        chart::render_techniques(&outcome, &charts)?
    } else {
        chart::render_sweep(&outcome, &charts)?
    };
    let chart_rel = written
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "png"))
        .map(|p| relative_to(p, markdown.parent().unwrap_or(Path::new("."))));
    // The techniques' experiments are all tcg-icount, whatever --accel.
    let command = if opts.techniques {
        format!("harness reproduce --techniques --reps {}", opts.reps)
    } else {
        format!(
            "harness reproduce --accel {} --reps {}",
            opts.accel.to_possible_value_name(),
            opts.reps
        )
    };
    let md = table::markdown(&outcome, &command, chart_rel.as_deref());
    if let Some(dir) = markdown.parent() {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    fs::write(&markdown, &md).with_context(|| format!("cannot write {}", markdown.display()))?;
    println!("{}", table::text(&outcome));
    println!("written: {}", markdown.display());
    for p in written {
        println!("chart: {}", p.display());
    }
    Ok(0)
}

/// `path` relative to `base` when it lies under it, else as it is.
fn relative_to(path: &Path, base: &Path) -> String {
    let path = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let base = fs::canonicalize(base).unwrap_or_else(|_| base.to_path_buf());
    path.strip_prefix(&base)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| path.display().to_string())
}

/// Runs every experiment of `plan` that the tree can run (each as a
/// matrix), reads the stored runs back and computes the rows. A run that
/// did not end `ok` is left out of the figures (its log stays in
/// `OUT/<id>/logs/`).
pub fn run_plan(ws: &Workspace, plan: &Plan, opts: &ReproduceOptions) -> Result<Reproduction> {
    let out = match &opts.out {
        Some(out) => out.clone(),
        None => ws.runs_dir().join(format!(
            "reproduce-{}",
            crate::run::utc_stamp(std::time::SystemTime::now())
        )),
    };
    fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut availability = check_availability(ws, plan, &opts.qemu)?;
    if opts.check.is_some() {
        for exp in plan
            .experiments
            .iter()
            .filter(|e| !check::repeatable(e.accel))
        {
            availability
                .experiments
                .entry(exp.id.clone())
                .or_insert_with(|| {
                    "not repeatable (plain TCG), so not checked against the committed table".into()
                });
        }
    }
    let mut accel = None;
    let mut accels = BTreeMap::new();
    let mut build: Option<check::Build> = None;
    let mut pool = Pool::default();
    for exp in &plan.experiments {
        if let Some(why) = availability.experiments.get(&exp.id) {
            eprintln!("harness: reproduce: skipping {}: {why}", exp.id);
            continue;
        }
        let variants: Vec<String> = exp
            .variants
            .iter()
            .filter(|v| availability.why_not(&exp.id, v).is_none())
            .cloned()
            .collect();
        let matrix_file = out.join(format!("{}.toml", exp.id));
        let choice = exp.accel.unwrap_or(opts.accel);
        let text = exp.matrix_toml(&variants, exp.reps.unwrap_or(plan.reps), accel_name(choice));
        fs::write(&matrix_file, text)
            .with_context(|| format!("cannot write {}", matrix_file.display()))?;
        let dir = out.join(&exp.id);
        let already =
            dir.join("runs").is_dir() && !crate::results::store::run_files(&dir)?.is_empty();
        let mopts = MatrixOptions {
            matrix: Some(matrix_file),
            jobs: opts.jobs,
            reps: None,
            shard: None,
            resume: opts.resume && already,
            out: Some(dir.clone()),
            accel: Some(choice),
            qemu: opts.qemu.clone(),
        };
        eprintln!(
            "harness: reproduce: experiment {} ({})",
            exp.id,
            exp.label()
        );
        let status = matrix::execute(ws, &mopts)
            .with_context(|| format!("reproduce experiment {}", exp.id))?;
        if status == matrix::EXIT_INTERRUPTED {
            anyhow::bail!(
                "interrupted; finish with: harness reproduce --out {} --resume",
                out.display()
            );
        }
        let meta = read_metadata(&dir).ok();
        if build.is_none() {
            build = meta.as_ref().map(check::Build::of);
        }
        let measured_under = meta
            .map(|m| m.accel)
            .unwrap_or_else(|| accel_name(choice).to_string());
        if accel.is_none() && exp.accel.is_none() {
            accel = Some(measured_under.clone());
        }
        accels.insert(exp.id.clone(), measured_under.clone());
        let rows = Store::open(&dir)?.rows()?;
        let all = derive::runs(&rows);
        // A variant whose every run was unsupported here (`pcid` under
        // TCG) is not measured, and its rows say why.
        for v in &exp.variants {
            let mine: Vec<&RunFigures> = all.iter().filter(|r| &r.cell.variant == v).collect();
            if !mine.is_empty() && mine.iter().all(|r| r.outcome == Outcome::Unsupported) {
                availability.variants.insert(
                    (exp.id.clone(), v.clone()),
                    format!(
                        "every run of {v} ended unsupported under {measured_under}: its CPU \
                         lacks what the variant needs (the runs' logs in {} say what)",
                        dir.display()
                    ),
                );
            }
        }
        let runs: Vec<RunFigures> = all.into_iter().filter(|r| r.outcome.is_ok()).collect();
        pool.runs.insert(exp.id.clone(), runs);
    }
    let accel = accel.unwrap_or_else(|| accel_name(opts.accel).to_string());
    let build = build.unwrap_or_else(check::Build::unknown);
    let mut outcome = Reproduction {
        plan: plan.clone(),
        pool,
        availability,
        accel,
        accels,
        build,
        out,
        profiles: modeled::profiles(&ws.root.join("model").join("profiles"))?,
        rows: vec![],
        notes: vec![],
        sweep: vec![],
    };
    outcome.rows = seeds::all(&outcome);
    outcome.notes = seeds::notes(&outcome);
    outcome.sweep = seeds::sweep(&outcome);
    Ok(outcome)
}

impl Reproduction {
    /// The label of experiment `id` (its workload, parameters and CPUs),
    /// or the id itself if the plan has no such experiment.
    pub fn label(&self, id: &str) -> String {
        self.plan
            .experiment(id)
            .map(|e| e.label())
            .unwrap_or_else(|| id.into())
    }

    /// Every accelerator the experiments ran under, joined: `tcg-icount`.
    pub fn accel_of_all(&self) -> String {
        let set: BTreeSet<&str> = self.accels.values().map(|a| a.as_str()).collect();
        set.into_iter().collect::<Vec<_>>().join(" and ")
    }

    /// The accelerators of the measured experiments (not tcg-model's).
    pub fn accel_measured(&self) -> String {
        let set: BTreeSet<&str> = self
            .accels
            .values()
            .map(|a| a.as_str())
            .filter(|a| *a != accel_name(AccelChoice::TcgModel))
            .collect();
        set.into_iter().collect::<Vec<_>>().join(" and ")
    }

    /// Whether any experiment of the plan runs under tcg-model.
    pub fn has_modeled(&self) -> bool {
        self.plan
            .experiments
            .iter()
            .any(|e| e.accel == Some(AccelChoice::TcgModel))
    }
}

pub(crate) fn accel_name(choice: AccelChoice) -> &'static str {
    match choice {
        AccelChoice::Auto => "auto",
        AccelChoice::Kvm => "kvm",
        AccelChoice::Tcg => "tcg",
        AccelChoice::TcgIcount => "tcg-icount",
        AccelChoice::TcgModel => "tcg-model",
    }
}

trait ChoiceName {
    fn to_possible_value_name(&self) -> &'static str;
}

impl ChoiceName for AccelChoice {
    fn to_possible_value_name(&self) -> &'static str {
        accel_name(*self)
    }
}

/// Which variants and workloads of `plan` this tree has: a variant needs
/// its file (with features the kernel knows); a workload must be known to
/// the kernels of the variants that exist (asked of the kernel, see
/// [`probe`]).
fn check_availability(ws: &Workspace, plan: &Plan, qemu: &Path) -> Result<Availability> {
    let mut avail = Availability::default();
    let mut kernels = BTreeMap::new();
    let mut broken: BTreeMap<String, String> = BTreeMap::new();
    let wanted: BTreeSet<&String> = plan.experiments.iter().flat_map(|e| &e.variants).collect();
    for name in wanted {
        let file = ws.variants_dir().join(format!("{name}.toml"));
        if !file.is_file() {
            broken.insert(
                name.clone(),
                format!("variant {name} not built in this tree (no variants/{name}.toml)"),
            );
            continue;
        }
        let variant = match variants::load(ws, name) {
            Ok(v) => v,
            Err(e) => {
                broken.insert(
                    name.clone(),
                    format!("variant {name} not built in this tree ({e})"),
                );
                continue;
            }
        };
        eprintln!("harness: reproduce: building variant {name}");
        let image = kernel_build::build(ws, &variant, kernel_build::Output::OnFailure)?;
        kernels.insert(name.clone(), image);
    }
    for exp in &plan.experiments {
        for v in &exp.variants {
            if let Some(why) = broken.get(v) {
                avail
                    .variants
                    .insert((exp.id.clone(), v.clone()), why.clone());
            }
        }
        let present: Vec<&String> = exp
            .variants
            .iter()
            .filter(|v| kernels.contains_key(*v))
            .collect();
        if present.is_empty() {
            // Every variant is missing: say why the first one is.
            let why = exp
                .variants
                .iter()
                .find_map(|v| broken.get(v).cloned())
                .unwrap_or_else(|| "no variant of the experiment".into());
            avail.experiments.insert(exp.id.clone(), why);
            continue;
        }
        for v in present {
            let known =
                probe::known_workloads(ws, &kernels[v], std::slice::from_ref(&exp.workload), qemu)?;
            if known.get(&exp.workload) != Some(&true) {
                avail.variants.insert(
                    (exp.id.clone(), v.clone()),
                    format!("workload {} not in this tree's kernel", exp.workload),
                );
            }
        }
        if exp
            .variants
            .iter()
            .all(|v| avail.variants.contains_key(&(exp.id.clone(), v.clone())))
        {
            let why = avail.variants[&(exp.id.clone(), exp.variants[0].clone())].clone();
            avail.experiments.insert(exp.id.clone(), why);
        }
    }
    Ok(avail)
}

#[cfg(test)]
mod tests {
    use super::sweep_cpus;

    #[test]
    fn the_sweep_goes_by_powers_of_two_above_8() {
        assert_eq!(sweep_cpus(8), (1..=8).collect::<Vec<_>>());
        assert_eq!(sweep_cpus(3), [1, 2, 3]);
        assert_eq!(sweep_cpus(64), [1, 2, 3, 4, 5, 6, 7, 8, 16, 32, 64]);
        assert_eq!(sweep_cpus(20), [1, 2, 3, 4, 5, 6, 7, 8, 16, 20]);
    }

    /// The rows of the first table that starts with `header` in `text`.
    fn table<'a>(text: &'a str, header: &str) -> Vec<&'a str> {
        text.lines()
            .skip_while(|l| !l.starts_with(header))
            .take_while(|l| l.starts_with('|'))
            .collect()
    }

    /// The README quotes the seeds' table; it must be the committed one
    /// (results/REPRODUCE.md), not an older run's, so a re-made table
    /// that leaves the README behind fails here.
    #[test]
    fn the_readme_quotes_the_committed_table() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        let read = |f: &str| std::fs::read_to_string(format!("{root}/{f}")).unwrap();
        let (readme, committed) = (read("README.md"), read("results/REPRODUCE.md"));
        let header = "| # | seed | published figure |";
        let quoted = table(&readme, header);
        assert!(quoted.len() > 2, "no seeds' table in the README");
        assert_eq!(quoted, table(&committed, header));
    }
}
