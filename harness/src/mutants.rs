//! The `mutants` verb: proves the stale-TLB oracles cover every shootdown
//! path by breaking each path on purpose and checking the oracles notice.
//!
//! A *mutant* (`variants/mutants/*.toml`) is a kernel built with one
//! `mutant-*` feature (or `lost-shootdown`): a small cfg block that removes
//! one shootdown, one target or one wait, the way a real bug would, on top
//! of a protocol base (its features may add `scoreboard` or `dfly-batch`).
//! Mutants are not variants a user measures, so they live in their own
//! folder and `harness list` shows them only with `--mutants`.
//!
//! ```toml
//! name = "mutant-range-no-ipi"       # must match the file name
//! description = "one line"
//! features = ["mutant-range-no-ipi"] # kernel Cargo features, checked
//! path = "shootrange: ..."           # the shootdown path it breaks
//! catch = ["range"]                  # oracle modes expected to catch it
//! ```
//!
//! The verb builds every mutant and the correct controls, boots each under
//! the oracles (`coherence` with mode=all, and `shoot-storm` for the kernel
//! pmap, with readers in interrupts-off sections: [`SHOOT_STORM_IRQOFF`])
//! on every CPU count and accelerator asked for (tcg-icount on 2 vCPUs is
//! skipped, see [`unusable`]), scheduled within a
//! host-core budget as a matrix is ([`crate::matrix::schedule`]) through
//! [`crate::run::run_into`], and prints (and writes as Markdown) a table.
//! A mutant is *caught* in a cell when an oracle reports a stale access
//! (or the run does not end ok); it is caught when some cell on the most
//! CPUs run (4 by default) caught it, under any accelerator, and
//! *survives* otherwise (cells with fewer CPUs are reported, as `missed`
//! when they did not catch it, but do not decide). A control fails when it shows a stale access, does not end
//! ok, or some oracle mode made no check or completed no round. A run that
//! ends `unsupported` (the CPU lacks what the kernel needs: `pcid` under
//! TCG) is neither: its cell says so, and a mutant no cell could run is
//! *unsupported here*, counted apart, never as caught. Exit 3 if any
//! mutant survives or any control fails.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Deserialize;

use crate::accel::Accel;
use crate::kernel_build::{self, KernelImage};
use crate::matrix::schedule::{cost, Budget};
use crate::qemu::Machine;
use crate::report::Report;
use crate::run::{run_into, RunFiles, RunSpec};
use crate::variants::{self, Provenance, Variant};
use crate::workspace::Workspace;

/// Exit status when a mutant survives or a control fails.
pub const EXIT_FAILED: i32 = 3;

/// The coherence modes `mode=all` runs.
pub use lab_core::workloads::COHERENCE_MODES;

/// The correct variants run as controls by default: the three shootdown
/// protocols, and each shortcut whose unsafe form is a mutant here (so
/// the table shows the safe form clean beside it).
pub const DEFAULT_CONTROLS: &[&str] = &[
    "fixed",
    "scoreboard",
    "dfly-batch",
    "early-ack",
    "in-context-flush",
    "no-flush-cow",
    "lazy-tlb",
    "lazy-latr",
];
/// shoot-storm's `irqoff` in the oracle runs: 512 interrupts-off passes over
/// the other CPUs' pages after each op. 32 and 128 missed `mutant-no-wait` on
/// 2 CPUs under TCG (the section is too short to overlap a remap); 512
/// caught it in every run, thousands of stale reads each.
pub const SHOOT_STORM_IRQOFF: u32 = 512;

/// One mutant file.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Mutant {
    pub name: String,
    pub description: String,
    pub features: Vec<String>,
    /// The shootdown path it breaks.
    pub path: String,
    /// The oracle modes expected to catch it (informational).
    #[serde(default)]
    pub catch: Vec<String>,
}

impl Mutant {
    /// The mutant as a variant, to build it.
    pub fn as_variant(&self) -> Variant {
        Variant {
            name: self.name.clone(),
            description: self.description.clone(),
            features: self.features.clone(),
            provenance: Provenance {
                system: "pmaplab".into(),
                file: "variants/mutants".into(),
                revision: "mutant".into(),
            },
            expect: format!("caught by {}", self.catch.join(", ")),
        }
    }
}

/// `variants/mutants/`.
pub fn mutants_dir(ws: &Workspace) -> PathBuf {
    ws.variants_dir().join("mutants")
}

/// Parses and checks one mutant file's text: the name is the file's stem,
/// every feature is one the kernel declares (`known`).
pub fn parse(file: &Path, text: &str, known: &BTreeSet<String>) -> Result<Mutant> {
    let m: Mutant = toml::from_str(text).with_context(|| format!("{}", file.display()))?;
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    anyhow::ensure!(
        m.name == stem,
        "{}: field `name`: '{}' differs from the file name '{stem}.toml'",
        file.display(),
        m.name
    );
    anyhow::ensure!(
        !m.features.is_empty(),
        "{}: field `features`: a mutant needs at least one feature",
        file.display()
    );
    for f in &m.features {
        anyhow::ensure!(
            known.contains(f),
            "{}: field `features`: unknown kernel feature '{f}'",
            file.display()
        );
    }
    for mode in &m.catch {
        anyhow::ensure!(
            COHERENCE_MODES.contains(&mode.as_str()) || mode == "shoot-storm",
            "{}: field `catch`: unknown oracle mode '{mode}'",
            file.display()
        );
    }
    Ok(m)
}

/// Every mutant in `variants/mutants/`, by file name.
pub fn load_all(ws: &Workspace) -> Result<Vec<Mutant>> {
    let dir = mutants_dir(ws);
    let known = variants::kernel_features(&ws.kernel_dir().join("Cargo.toml"))?;
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| {
            let text =
                fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?;
            parse(f, &text, &known)
        })
        .collect()
}

/// What `harness list --mutants` prints.
pub fn listing(all: &[Mutant]) -> String {
    let width = all.iter().map(|m| m.name.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (i, m) in all.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "{:<width$}  features: {}",
            m.name,
            m.features.join(" ")
        );
        let _ = writeln!(out, "    {}", m.description);
        let _ = writeln!(out, "    breaks: {}", m.path);
        if !m.catch.is_empty() {
            let _ = writeln!(out, "    caught by: {}", m.catch.join(", "));
        }
    }
    out
}

/// The `mutants` verb's options.
#[derive(Clone, Debug)]
pub struct MutantsOptions {
    /// Host cores to keep busy (default: all).
    pub jobs: Option<usize>,
    pub accels: Vec<Accel>,
    pub cpus: Vec<u32>,
    /// Only these mutants (default: all).
    pub only: Vec<String>,
    /// The correct variants to run as controls.
    pub controls: Vec<String>,
    /// Coherence rounds per round mode, if not the workload's default.
    pub rounds: Option<u32>,
    /// Results directory (default: runs/mutants-<UTC stamp>).
    pub out: Option<PathBuf>,
    pub qemu: PathBuf,
}

/// A kernel under test: a mutant, or a control.
#[derive(Clone, Debug)]
struct Target {
    name: String,
    path: String,
    mutant: bool,
    kernel: KernelImage,
}

/// One cell: a target on one accelerator and CPU count, both oracles.
#[derive(Clone, Debug, Default)]
pub struct Cell {
    pub target: String,
    pub path: String,
    pub mutant: bool,
    pub accel: String,
    pub cpus: u32,
    /// Modes (and `shoot-storm`) that reported a stale access.
    pub caught_by: Vec<String>,
    /// Runs that did not end ok: `workload: outcome`.
    pub failed_runs: Vec<String>,
    /// Modes with no check or no completed round (controls).
    pub empty_modes: Vec<String>,
    /// Workloads whose run ended `unsupported` (nothing was tested).
    pub unsupported: Vec<String>,
    pub stale: u64,
    pub checks: u64,
    pub wall: Duration,
}

impl Cell {
    pub fn caught(&self) -> bool {
        !self.caught_by.is_empty() || !self.failed_runs.is_empty()
    }

    /// Every run of the cell ended `unsupported`: it tested nothing.
    pub fn untested(&self) -> bool {
        !self.unsupported.is_empty() && self.checks == 0 && !self.caught()
    }

    /// A control cell that shows nothing wrong.
    pub fn clean(&self) -> bool {
        self.stale == 0
            && self.failed_runs.is_empty()
            && self.empty_modes.is_empty()
            && self.checks > 0
    }

    fn verdict(&self) -> &'static str {
        if self.untested() {
            return "unsupported";
        }
        match (self.mutant, self.caught(), self.clean()) {
            (true, true, _) => "caught",
            (true, false, _) => "missed",
            (false, _, true) => "clean",
            (false, _, false) => "FAILED",
        }
    }

    fn by(&self) -> String {
        let mut by = self.caught_by.clone();
        by.extend(self.failed_runs.iter().cloned());
        by.extend(self.unsupported.iter().map(|w| format!("{w}: unsupported")));
        if !self.mutant {
            by.extend(self.empty_modes.iter().map(|m| format!("{m}: no checks")));
        }
        if by.is_empty() {
            "-".into()
        } else {
            by.join(", ")
        }
    }
}

/// What the verb found.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub cells: Vec<Cell>,
    /// Accelerator and CPU-count pairs not run, each with its reason.
    pub skipped: Vec<String>,
    pub wall: Duration,
    pub out: PathBuf,
}

impl Outcome {
    /// The CPU count that decides: the most run (4 by default).
    pub fn decisive_cpus(&self) -> u32 {
        self.cells.iter().map(|c| c.cpus).max().unwrap_or(0)
    }

    /// Whether mutant `name` is caught: in at least one cell on the
    /// decisive CPU count, under any accelerator. (Fewer CPUs give fewer
    /// readers and less overlap: those cells are reported, not required.)
    pub fn caught(&self, name: &str) -> bool {
        let cpus = self.decisive_cpus();
        self.cells
            .iter()
            .any(|c| c.mutant && c.target == name && c.cpus == cpus && c.caught())
    }

    /// Mutants not caught (see [`Outcome::caught`]), but for those no cell
    /// could run ([`Outcome::unsupported`]).
    pub fn survivors(&self) -> BTreeSet<String> {
        let unsupported = self.unsupported();
        self.cells
            .iter()
            .filter(|c| c.mutant && !self.caught(&c.target))
            .map(|c| c.target.clone())
            .filter(|t| !unsupported.contains(t))
            .collect()
    }

    /// Mutants every cell of which ended `unsupported`: untested here.
    pub fn unsupported(&self) -> BTreeSet<String> {
        let targets: BTreeSet<&String> = self
            .cells
            .iter()
            .filter(|c| c.mutant)
            .map(|c| &c.target)
            .collect();
        targets
            .into_iter()
            .filter(|t| {
                self.cells
                    .iter()
                    .filter(|c| &c.target == *t)
                    .all(Cell::untested)
            })
            .cloned()
            .collect()
    }

    /// Controls that failed in some cell (a cell that could not run is
    /// not a failure of the control).
    pub fn failed_controls(&self) -> BTreeSet<String> {
        self.cells
            .iter()
            .filter(|c| !c.mutant && !c.untested() && !c.clean())
            .map(|c| c.target.clone())
            .collect()
    }

    pub fn passed(&self) -> bool {
        self.survivors().is_empty() && self.failed_controls().is_empty()
    }
}

/// Runs the verb: prints the table, writes `OUT/mutants.md`, returns the
/// exit status (0, or [`EXIT_FAILED`]).
pub fn execute(ws: &Workspace, opts: &MutantsOptions) -> Result<i32> {
    let outcome = run(ws, opts)?;
    let command = command_line(opts);
    print!("{}", text_table(&outcome));
    let md = markdown(&outcome, &command);
    let file = outcome.out.join("mutants.md");
    fs::write(&file, md).with_context(|| format!("cannot write {}", file.display()))?;
    println!("written: {}", file.display());
    let survivors = outcome.survivors();
    let failed = outcome.failed_controls();
    let untestable = outcome.unsupported();
    if !untestable.is_empty() {
        println!(
            "mutants not testable on this CPU or accelerator (every run unsupported): {}",
            untestable.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    if !survivors.is_empty() {
        println!(
            "mutants survived: {}",
            survivors.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    if !failed.is_empty() {
        println!(
            "controls failed: {}",
            failed.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    Ok(if outcome.passed() { 0 } else { EXIT_FAILED })
}

fn command_line(opts: &MutantsOptions) -> String {
    let mut c = String::from("harness mutants");
    let accels: Vec<&str> = opts.accels.iter().map(|a| a.as_str()).collect();
    let _ = write!(c, " --accel {}", accels.join(","));
    let cpus: Vec<String> = opts.cpus.iter().map(u32::to_string).collect();
    let _ = write!(c, " --cpus {}", cpus.join(","));
    if let Some(j) = opts.jobs {
        let _ = write!(c, " --jobs {j}");
    }
    if !opts.only.is_empty() {
        let _ = write!(c, " --only {}", opts.only.join(","));
    }
    c
}

/// Builds, runs and decides every cell (without printing the table).
pub fn run(ws: &Workspace, opts: &MutantsOptions) -> Result<Outcome> {
    let start = Instant::now();
    let out = match &opts.out {
        Some(out) => out.clone(),
        None => ws.runs_dir().join(format!(
            "mutants-{}",
            crate::run::utc_stamp(std::time::SystemTime::now())
        )),
    };
    let logs = out.join("logs");
    fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;

    let mut mutants = load_all(ws)?;
    if !opts.only.is_empty() {
        for name in &opts.only {
            anyhow::ensure!(
                mutants.iter().any(|m| &m.name == name),
                "no mutant named '{name}' in {}",
                mutants_dir(ws).display()
            );
        }
        mutants.retain(|m| opts.only.contains(&m.name));
    }
    let mut targets = Vec::new();
    for m in &mutants {
        eprintln!("harness: mutants: building {}", m.name);
        let kernel = kernel_build::build(ws, &m.as_variant(), kernel_build::Output::OnFailure)?;
        targets.push(Target {
            name: m.name.clone(),
            path: m.path.clone(),
            mutant: true,
            kernel,
        });
    }
    for name in &opts.controls {
        let v = variants::load(ws, name)?;
        eprintln!("harness: mutants: building control {name}");
        let kernel = kernel_build::build(ws, &v, kernel_build::Output::OnFailure)?;
        targets.push(Target {
            name: name.clone(),
            path: "(control: correct)".into(),
            mutant: false,
            kernel,
        });
    }

    let mut jobs = Vec::new();
    let mut skipped = Vec::new();
    for &accel in &opts.accels {
        for &cpus in &opts.cpus {
            if let Some(why) = unusable(accel, cpus) {
                eprintln!(
                    "harness: mutants: {} on {cpus} CPUs skipped: {why}",
                    accel.as_str()
                );
                skipped.push(format!("{} on {cpus} CPUs: {why}", accel.as_str()));
            }
        }
    }
    for t in &targets {
        for &accel in &opts.accels {
            for &cpus in opts.cpus.iter().filter(|&&c| unusable(accel, c).is_none()) {
                for workload in ["coherence", "shoot-storm"] {
                    jobs.push((t, accel, cpus, workload));
                }
            }
        }
    }
    let budget = Budget::new(
        opts.jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
    );
    let total = jobs.len();
    let results: Vec<Result<(Report, bool, String, Duration)>> = std::thread::scope(|s| {
        let mut handles = Vec::new();
        for (i, &(t, accel, cpus, workload)) in jobs.iter().enumerate() {
            let c = cost(cpus, accel, budget.total());
            if !budget.acquire(c) {
                break;
            }
            let (budget, logs, opts) = (&budget, &logs, opts);
            handles.push(s.spawn(move || {
                let r = run_one(t, accel, cpus, workload, logs, opts);
                budget.release(c);
                if let Ok((_, ok, outcome, wall)) = &r {
                    eprintln!(
                        "[{:>3}/{total}] {:<24} {workload:<11} {cpus} cpu {:<10} {outcome:<10} {:.1} s{}",
                        i + 1,
                        t.name,
                        accel.as_str(),
                        wall.as_secs_f64(),
                        if *ok { "" } else { " (not ok)" }
                    );
                }
                r
            }));
        }
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    anyhow::ensure!(
        results.len() == jobs.len(),
        "interrupted after {} of {} runs",
        results.len(),
        jobs.len()
    );

    let mut cells: Vec<Cell> = Vec::new();
    for ((t, accel, cpus, workload), r) in jobs.iter().zip(results) {
        let (report, ok, outcome, wall) = r?;
        let idx = match cells
            .iter()
            .position(|c| c.target == t.name && c.accel == accel.as_str() && c.cpus == *cpus)
        {
            Some(i) => i,
            None => {
                cells.push(Cell {
                    target: t.name.clone(),
                    path: t.path.clone(),
                    mutant: t.mutant,
                    accel: accel.as_str().into(),
                    cpus: *cpus,
                    ..Cell::default()
                });
                cells.len() - 1
            }
        };
        judge(&mut cells[idx], workload, &report, ok, &outcome, wall);
    }
    Ok(Outcome {
        cells,
        skipped,
        wall: start.elapsed(),
        out,
    })
}

/// Why the oracles cannot decide anything under `accel` on `cpus` vCPUs,
/// if they cannot.
///
/// tcg-icount on 2 vCPUs: QEMU 7.2 runs icount vCPUs in turns on one host
/// thread, and in this guest the second vCPU stops being given turns while
/// the first is busy (it was seen frozen, with `info registers`, at the
/// instruction after a PAUSE in the IPI handler and at an interrupt stub's
/// first instruction, executing no translation block for seconds), so every
/// coherence round ends inconclusive: the reader never runs after the
/// change. On 4 vCPUs the turns go round and the runs decide.
fn unusable(accel: Accel, cpus: u32) -> Option<&'static str> {
    (accel == Accel::TcgIcount && cpus == 2).then_some(
        "QEMU's round-robin icount scheduler starves the second of two vCPUs here \
         (every coherence round inconclusive); use 4 CPUs",
    )
}

/// Boots `t` once under `workload`: its report, whether it ended ok, the
/// outcome's name and the wall time.
fn run_one(
    t: &Target,
    accel: Accel,
    cpus: u32,
    workload: &str,
    logs: &Path,
    opts: &MutantsOptions,
) -> Result<(Report, bool, String, Duration)> {
    let mut params = Vec::new();
    match workload {
        "coherence" => {
            params.push(("mode".to_string(), "all".to_string()));
            // A LATR kernel's munmap is lazy by design: the oracle allows
            // the old value until the reader's CPU applies it, and only
            // that (coherence.rs, lazy=on).
            if t.kernel.features.iter().any(|f| f == "lazy-latr") {
                params.push(("lazy".to_string(), "on".to_string()));
            }
            if let Some(r) = opts.rounds {
                params.push(("rounds".to_string(), r.to_string()));
            }
        }
        _ => {
            // Mixed ops. (mode=page was tried: it caught
            // mutant-kernel-no-shoot on 2 CPUs, 547 stale reads, but not on
            // 4, 0 of 6000 checks, while mixed caught it on 4 CPUs in every
            // run so far; why page mode misses on 4 CPUs is not understood.)
            params.push(("mode".to_string(), "mixed".to_string()));
            params.push(("ops".to_string(), "500".to_string()));
            // Readers with interrupts off: where a missing wait for
            // acknowledgements shows under either protocol (shoot_storm.rs
            // explains why).
            params.push(("irqoff".to_string(), SHOOT_STORM_IRQOFF.to_string()));
            // On 4 CPUs and more, one CPU only reads, interrupts on: the
            // one whose TLB no op of its own flushes, so an invalidation a
            // target acknowledged and put off (mutant-defer-kernel-flush)
            // shows there. (The mystery above is probably the same
            // flushing: under TCG each op's INVLPG of a kernel page flushes
            // the whole software TLB of the CPU that made it, since QEMU
            // tracks the direct map's large pages as one region.) On 2
            // CPUs a reader would leave one CPU to make ops and none to
            // hold a translation with interrupts off.
            if cpus >= 4 {
                params.push(("readers".to_string(), "1".to_string()));
            }
        }
    }
    let spec = RunSpec {
        kernel: t.kernel.clone(),
        workload: workload.to_string(),
        params,
        cpus,
        mem_mib: 256,
        machine: Machine::Microvm,
        accel,
        timeout: Duration::from_secs(120),
        qemu: opts.qemu.clone(),
        runs_dir: logs.to_path_buf(),
    };
    let id = format!("{}-{}-{}-{}cpu", t.name, workload, accel.as_str(), cpus);
    let r =
        run_into(&spec, &RunFiles::named(logs, &id)).with_context(|| format!("mutants: {id}"))?;
    Ok((
        r.report,
        r.outcome.is_ok(),
        r.outcome.name().to_string(),
        r.wall,
    ))
}

/// Adds what one run of `workload` showed to `cell`.
fn judge(
    cell: &mut Cell,
    workload: &str,
    report: &Report,
    ok: bool,
    outcome: &str,
    wall: Duration,
) {
    let m = |name: &str| report.metric(name).unwrap_or(0.0) as u64;
    cell.wall += wall;
    if outcome == crate::outcome::Kind::Unsupported.as_str() {
        cell.unsupported.push(workload.to_string());
        return;
    }
    let run_stale = if workload == "coherence" {
        m("coherence.stale")
    } else {
        m("kstorm.stale")
    };
    if workload == "coherence" {
        for mode in COHERENCE_MODES {
            let stale = m(&format!("coherence.{mode}.stale"));
            if stale > 0 {
                cell.caught_by.push(format!("{mode} ({stale})"));
            }
            if m(&format!("coherence.{mode}.checks")) == 0
                || m(&format!("coherence.{mode}.rounds")) == 0
            {
                cell.empty_modes.push((*mode).to_string());
            }
        }
        cell.stale += m("coherence.stale");
        cell.checks += m("coherence.checks");
    } else {
        let stale = m("kstorm.stale");
        if stale > 0 {
            cell.caught_by.push(format!("shoot-storm ({stale})"));
        }
        if m("kstorm.checks") == 0 {
            cell.empty_modes.push("shoot-storm".into());
        }
        cell.stale += stale;
        cell.checks += m("kstorm.checks");
    }
    // A run that fails only because the oracle found stale reads is the
    // oracle working; any other failure (panic, timeout) is listed.
    let stale_fail = outcome == "failed" && run_stale > 0;
    if !ok && !stale_fail {
        cell.failed_runs.push(format!("{workload}: {outcome}"));
    }
}

/// The table as plain text.
pub fn text_table(o: &Outcome) -> String {
    let rows = rows(o);
    let mut widths = [0usize; 8];
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    for (i, r) in rows.iter().enumerate() {
        let line: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
        if i == 0 {
            let _ = writeln!(out, "{}", "-".repeat(widths.iter().sum::<usize>() + 14));
        }
    }
    let _ = writeln!(out, "wall: {:.0} s", o.wall.as_secs_f64());
    out
}

/// The table as Markdown, with the command that made it.
pub fn markdown(o: &Outcome, command: &str) -> String {
    let rows = rows(o);
    let mut out = String::from("# Mutation score of the stale-TLB oracles\n\n");
    let mutants: BTreeSet<&str> = o
        .cells
        .iter()
        .filter(|c| c.mutant)
        .map(|c| c.target.as_str())
        .collect();
    let survivors = o.survivors();
    let unsupported = o.unsupported();
    let _ = writeln!(
        out,
        "`{command}`: {} of {} mutants caught (on {} CPUs, under at least one accelerator){}; controls {}; wall {:.0} s.\n",
        mutants.len() - survivors.len() - unsupported.len(),
        mutants.len() - unsupported.len(),
        o.decisive_cpus(),
        if unsupported.is_empty() {
            String::new()
        } else {
            format!(
                "; not testable on this CPU or accelerator: {}",
                unsupported.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        },
        if o.failed_controls().is_empty() {
            "clean".to_string()
        } else {
            format!(
                "FAILED ({})",
                o.failed_controls()
                    .into_iter()
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
        o.wall.as_secs_f64()
    );
    out.push_str("| mutant | path | verdict | caught in |\n|---|---|---|---|\n");
    for m in &mutants {
        let cell = o.cells.iter().find(|c| c.target == *m);
        let path = cell.map_or("", |c| c.path.as_str());
        let r#in: Vec<String> = o
            .cells
            .iter()
            .filter(|c| c.target == *m && c.caught())
            .map(|c| format!("{} cpu {}", c.cpus, c.accel))
            .collect();
        let _ = writeln!(
            out,
            "| {m} | {} | {} | {} |",
            path.replace('|', "\\|"),
            if o.caught(m) {
                "caught"
            } else if unsupported.contains(*m) {
                "unsupported here"
            } else {
                "SURVIVED"
            },
            if r#in.is_empty() {
                "-".to_string()
            } else {
                r#in.join(", ")
            }
        );
    }
    for why in &o.skipped {
        let _ = writeln!(out, "\nNot run: {why}.");
    }
    out.push_str("\nEvery cell (a mutant *missed* in a cell is caught if some cell on the most CPUs caught it):\n\n");
    for (i, r) in rows.iter().enumerate() {
        let cells: Vec<String> = r.iter().map(|c| c.replace('|', "\\|")).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
        if i == 0 {
            let _ = writeln!(out, "|{}", "---|".repeat(r.len()));
        }
    }
    out
}

fn rows(o: &Outcome) -> Vec<[String; 8]> {
    let mut rows = vec![[
        "kernel", "path", "cpus", "accel", "verdict", "by", "stale", "time",
    ]
    .map(String::from)];
    for c in &o.cells {
        rows.push([
            c.target.clone(),
            c.path.clone(),
            c.cpus.to_string(),
            c.accel.clone(),
            c.verdict().to_string(),
            c.by(),
            c.stale.to_string(),
            format!("{:.1} s", c.wall.as_secs_f64()),
        ]);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> BTreeSet<String> {
        ["lost-shootdown".to_string(), "scoreboard".to_string()].into()
    }

    const GOOD: &str = r#"
name = "lost-shootdown"
description = "d"
features = ["lost-shootdown"]
path = "one-page pmap_remove"
catch = ["munmap", "remap"]
"#;

    #[test]
    fn parses_and_checks() {
        let f = Path::new("variants/mutants/lost-shootdown.toml");
        let m = parse(f, GOOD, &known()).unwrap();
        assert_eq!(m.features, vec!["lost-shootdown"]);
        let e = parse(
            f,
            &GOOD.replace("\"lost-shootdown\"]", "\"nope\"]"),
            &known(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("nope") && e.contains("features"), "{e}");
        let e = parse(f, &GOOD.replace("\"remap\"", "\"bogus\""), &known())
            .unwrap_err()
            .to_string();
        assert!(e.contains("bogus"), "{e}");
        let other = Path::new("variants/mutants/other.toml");
        assert!(parse(other, GOOD, &known()).is_err());
    }

    #[test]
    fn the_repository_mutants_are_valid() {
        let ws = Workspace::at(Path::new(env!("CARGO_MANIFEST_DIR")).join("..")).unwrap();
        let all = load_all(&ws).unwrap();
        assert!(all.iter().any(|m| m.name == "lost-shootdown"));
        assert!(all.len() >= 8);
    }

    #[test]
    fn verdicts() {
        let mut c = Cell {
            mutant: true,
            ..Cell::default()
        };
        assert_eq!(c.verdict(), "missed");
        c.caught_by.push("range (3)".into());
        assert_eq!(c.verdict(), "caught");
        let mut k = Cell {
            checks: 5,
            ..Cell::default()
        };
        assert_eq!(k.verdict(), "clean");
        k.empty_modes.push("cow".into());
        assert_eq!(k.verdict(), "FAILED");
        let o = Outcome {
            cells: vec![c, k],
            ..Outcome::default()
        };
        assert!(o.survivors().is_empty());
        assert_eq!(o.failed_controls().len(), 1);
        assert!(markdown(&o, "harness mutants").contains("| kernel | path |"));
    }

    #[test]
    fn an_unsupported_run_is_neither_caught_nor_survived() {
        // A mutant whose every run ended `unsupported` (its kernel needs
        // PCID, TCG has none): not caught, not a survivor, said apart.
        let mut m = Cell {
            target: "mutant-pcid-stale".into(),
            mutant: true,
            cpus: 4,
            ..Cell::default()
        };
        let report = Report::default();
        judge(
            &mut m,
            "coherence",
            &report,
            false,
            "unsupported",
            Duration::ZERO,
        );
        judge(
            &mut m,
            "shoot-storm",
            &report,
            false,
            "unsupported",
            Duration::ZERO,
        );
        assert!(!m.caught(), "an unsupported run is no catch");
        assert_eq!(m.verdict(), "unsupported");
        // A control that could not run did not fail.
        let mut k = Cell {
            target: "pcid".into(),
            cpus: 4,
            ..Cell::default()
        };
        judge(
            &mut k,
            "coherence",
            &report,
            false,
            "unsupported",
            Duration::ZERO,
        );
        let o = Outcome {
            cells: vec![m, k],
            ..Outcome::default()
        };
        assert!(o.survivors().is_empty());
        assert!(o.failed_controls().is_empty());
        assert_eq!(o.unsupported().len(), 1);
        let md = markdown(&o, "harness mutants");
        assert!(md.contains("0 of 0 mutants caught"), "{md}");
        assert!(
            md.contains("not testable on this CPU or accelerator: mutant-pcid-stale"),
            "{md}"
        );
        assert!(md.contains("| unsupported here |"), "{md}");
    }
}
