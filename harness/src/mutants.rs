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
//! exhaustive = "test_name"           # optional: a host exhaustive check
//! ```
//!
//! `catch` is informational but for one entry: `pmap-selftest` adds a
//! run of that workload to each of the mutant's cells (its aimed checks,
//! e.g. a PCID load after a remap the CPU did not see), judged by its
//! failed checks. `exhaustive` names a model-checking test in
//! `kernel/lab-core` ([`crate::exhaustive`]) that passes when it finds the
//! mutant's violation; the verb runs it once per mutant, before the
//! boots, and the tables give its verdict and time in their own column.
//!
//! The verb builds every mutant and the correct controls, boots each under
//! the oracles (`coherence` with mode=all, and `shoot-storm` for the kernel
//! pmap, with readers in interrupts-off sections: [`SHOOT_STORM_IRQOFF`];
//! on fewer than 4 CPUs a second shoot-storm run with one CPU that only
//! reads, [`Oracle::ShootStormReader`]; under the icount accelerators coherence runs only the modes that decide
//! there, [`ICOUNT_COHERENCE_MODES`], see [`oracles`])
//! on every CPU count and accelerator asked for (tcg-icount on 2 vCPUs is
//! skipped, see [`unusable`]), scheduled within a
//! host-core budget as a matrix is ([`crate::matrix::schedule`]) through
//! [`crate::run::run_into`], and prints (and writes as Markdown) a table.
//!
//! There are two oracles. The *guest's*: the workloads' own checks, a read
//! through a stale translation (`coherence.<mode>.stale`, `kstorm.stale`).
//! The *model's* (`--accel tcg-model` only): the memory-system model's
//! per-CPU TLB keeps exactly what hardware may keep, and when a shootdown
//! returns, every CPU that still holds a translation to a frame the page
//! table no longer maps is a stale verdict (`model.<profile>.stale.verdicts`,
//! any profile). It sees what QEMU's own TLB hides from the guest (QEMU may
//! drop more than the guest invalidated, e.g. a whole MMU index on a
//! kernel-address INVLPG), so a kernel-pmap mutant the guest's readers
//! cannot see can still be caught; see [`model_verdicts`].
//!
//! A mutant is *caught* in a cell when either oracle reports a stale access
//! (or the run does not end ok); it is caught when some cell on the most
//! CPUs run (4 by default) caught it, under any accelerator, and
//! *survives* otherwise (cells with fewer CPUs are reported, as `missed`
//! when they did not catch it, but do not decide). The tables say which
//! oracle caught each mutant where, and how long its cells took. A control
//! fails when it shows a stale access or a model verdict, does not end
//! ok, or some oracle mode made no check or completed no round (or, under
//! tcg-model, the model gave no verdict count). A run that
//! ends `unsupported` (the CPU lacks what the kernel needs: `pcid` under
//! TCG) is neither: its cell says so, and a mutant no cell could run is
//! *unsupported here*, counted apart, never as caught. An exhaustive
//! check is a method of its own: it neither makes a mutant the oracles
//! missed caught nor one they caught missed, and the tables show both.
//! Exit 3 if any mutant survives, any control fails, or any exhaustive
//! check misses.

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
use crate::variants::{self, Provenance, Role, Variant};
use crate::workspace::Workspace;

/// Exit status when a mutant survives or a control fails.
pub const EXIT_FAILED: i32 = 3;

/// The coherence modes `mode=all` runs.
pub use lab_core::workloads::COHERENCE_MODES;

/// The correct variants run as controls when `--controls` names none:
/// every shootdown protocol and every technique (`role` in
/// variants/*.toml), the forms the mutants break made safe, so the table
/// shows each clean beside its mutants. Derived from the roles, so a new
/// protocol or technique is a control without another list to keep.
pub fn default_controls(all: &[Variant]) -> Vec<String> {
    all.iter()
        .filter(|v| matches!(v.role, Role::Protocol | Role::Technique))
        .map(|v| v.name.clone())
        .collect()
}
/// The coherence modes run under the icount accelerators (tcg-icount,
/// tcg-model) instead of `all`, each with the fewest CPUs it decides on.
/// There QEMU runs the vCPUs in turns on one host thread, and the munmap
/// and mprotect round modes (munmap, range, tlb, mprotect, mprotect-range)
/// end every round inconclusive: a reader whose access should fault gets
/// no turn before the round's grace period is over (8 of 8 rounds
/// inconclusive, 0 checks; `mode=all` takes over a minute). `remap` checks
/// continuously, not once per round, and decides (tcg-model, `fixed`: 256
/// checks on 2 CPUs, 1792 on 4). `fork-protect` decides on 4 CPUs (4 of 4
/// rounds, 44 s under tcg-model) but not on 2 (8 of 8 inconclusive).
/// `cow` decides on 4 CPUs too (4 of 4 rounds) but took 270 s for 4
/// rounds under tcg-model: too slow for a cell, left out.
pub const ICOUNT_COHERENCE_MODES: &[(&str, u32)] = &[("remap", 2), ("fork-protect", 4)];

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
    /// Always `mutant`: every file under variants/ says what it is for
    /// ([`Role`]), and only this folder's may say this.
    pub role: Role,
    pub description: String,
    pub features: Vec<String>,
    /// The shootdown path it breaks.
    pub path: String,
    /// The oracle modes expected to catch it (informational, but for
    /// `pmap-selftest`, which adds that workload's run: [`SELFTEST`]).
    #[serde(default)]
    pub catch: Vec<String>,
    /// A host exhaustive check that catches it: a test of lab-core's
    /// `protocols` target ([`crate::exhaustive`]).
    #[serde(default)]
    pub exhaustive: Option<String>,
}

/// The `catch` entry that adds a `pmap-selftest` run to a mutant's cells.
pub const SELFTEST: &str = "pmap-selftest";

impl Mutant {
    /// The mutant as a variant, to build it.
    /// Whether its cells run `pmap-selftest` beside the oracles.
    pub fn runs_selftest(&self) -> bool {
        self.catch.iter().any(|c| c == SELFTEST)
    }

    pub fn as_variant(&self) -> Variant {
        Variant {
            name: self.name.clone(),
            role: Role::Mutant,
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
        m.role == Role::Mutant,
        "{}: field `role`: a file in variants/mutants/ is a mutant (role = \"mutant\"), not {:?}",
        file.display(),
        m.role
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
    if let Some(test) = &m.exhaustive {
        // One test name, as `--exact` takes it: a Rust path, no spaces.
        anyhow::ensure!(
            !test.is_empty()
                && test
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{}: field `exhaustive`: '{test}' is not a test name (letters, digits, `_`, `::`)",
            file.display()
        );
    }
    anyhow::ensure!(
        !m.catch.is_empty() || m.exhaustive.is_some(),
        "{}: field `catch` is empty and no `exhaustive` check is named: nothing could catch it",
        file.display()
    );
    for mode in &m.catch {
        anyhow::ensure!(
            COHERENCE_MODES.contains(&mode.as_str()) || mode == "shoot-storm" || mode == SELFTEST,
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
        if let Some(test) = &m.exhaustive {
            let _ = writeln!(out, "    exhaustive check: {test}");
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
    /// The seed of the chaos runs ([`chaos_oracles`]); 0: none.
    pub chaos: u64,
    /// Each mutant only under the oracles its file's `catch` names, the
    /// controls under all those the mutants run ([`aimed`]): a quick check
    /// that each is caught where its file says, not the mutation table.
    pub aimed: bool,
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
    /// Its cells run `pmap-selftest` too ([`Mutant::runs_selftest`]).
    selftest: bool,
    /// With `--aimed`, the oracles it runs under ([`aimed`]); else None,
    /// every one.
    aim: Option<Vec<String>>,
    kernel: KernelImage,
}

/// One oracle run of a cell: a workload and its mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Oracle {
    /// `coherence` with `mode=` this (`all`: every mode in turn).
    Coherence(&'static str),
    /// `shoot-storm`, mode=mixed (the kernel pmap).
    ShootStorm,
    /// `shoot-storm` with one CPU that only reads, interrupts on (run on
    /// fewer than 4 CPUs, where [`Oracle::ShootStorm`] has no such CPU;
    /// see [`run_one`]).
    ShootStormReader,
    /// `pmap-selftest`: the pmap's aimed checks, for a mutant that lists
    /// it in `catch` ([`SELFTEST`]).
    Selftest,
    /// `coherence` mode=all in chaos mode ([`chaos_oracles`]).
    CoherenceChaos,
    /// [`Oracle::ShootStorm`] in chaos mode ([`chaos_oracles`]).
    ShootStormChaos,
}

impl Oracle {
    pub fn workload(self) -> &'static str {
        match self {
            Oracle::Coherence(_) | Oracle::CoherenceChaos => "coherence",
            Oracle::ShootStorm | Oracle::ShootStormReader | Oracle::ShootStormChaos => {
                "shoot-storm"
            }
            Oracle::Selftest => SELFTEST,
        }
    }

    /// The coherence modes the run reports on (none for shoot-storm).
    pub fn modes(self) -> &'static [&'static str] {
        match self {
            Oracle::Coherence("all") | Oracle::CoherenceChaos => COHERENCE_MODES,
            Oracle::Coherence(mode) => COHERENCE_MODES
                .iter()
                .position(|m| *m == mode)
                .map_or(&[], |i| &COHERENCE_MODES[i..=i]),
            Oracle::ShootStorm
            | Oracle::ShootStormReader
            | Oracle::ShootStormChaos
            | Oracle::Selftest => &[],
        }
    }

    /// How the tables and logs name it: `coherence` (mode=all),
    /// `coherence/remap`, `shoot-storm`, `shoot-storm/reader`,
    /// `coherence+chaos`, `shoot-storm+chaos`, `pmap-selftest`.
    pub fn label(self) -> String {
        match self {
            Oracle::Coherence("all") => "coherence".into(),
            Oracle::Coherence(mode) => format!("coherence/{mode}"),
            Oracle::ShootStorm => "shoot-storm".into(),
            Oracle::ShootStormReader => "shoot-storm/reader".into(),
            Oracle::Selftest => SELFTEST.into(),
            Oracle::CoherenceChaos => "coherence+chaos".into(),
            Oracle::ShootStormChaos => "shoot-storm+chaos".into(),
        }
    }

    /// A run in chaos mode (`chaos=SEED`).
    pub fn chaos(self) -> bool {
        matches!(self, Oracle::CoherenceChaos | Oracle::ShootStormChaos)
    }
}

/// The oracle runs of a cell under `accel` on `cpus` vCPUs: coherence with
/// mode=all and shoot-storm; under the icount accelerators coherence in
/// those [`ICOUNT_COHERENCE_MODES`] that decide on `cpus`, one run each.
/// On fewer than 4 CPUs under plain TCG (or KVM) a second shoot-storm run
/// whose second CPU only reads ([`Oracle::ShootStormReader`]): there every
/// CPU of the first run makes ops, and each op's own kernel INVLPG flushes
/// its CPU's whole kernel TLB under TCG (QEMU's merged large-page region),
/// so an invalidation a target acknowledged and put off
/// (`mutant-defer-kernel-flush`) is flushed before that CPU reads again
/// (0 stale reads on 2 CPUs); a CPU with no ops keeps the old entry. Under
/// the icount accelerators the model's TLB sees it without that run.
pub fn oracles(accel: Accel, cpus: u32) -> Vec<Oracle> {
    let mut v: Vec<Oracle> = if accel.is_icount() {
        ICOUNT_COHERENCE_MODES
            .iter()
            .filter(|(_, min)| cpus >= *min)
            .map(|(m, _)| Oracle::Coherence(m))
            .collect()
    } else {
        vec![Oracle::Coherence("all")]
    };
    v.push(Oracle::ShootStorm);
    if cpus < STORM_READER_CPUS && !accel.is_icount() {
        v.push(Oracle::ShootStormReader);
    }
    v
}

/// `oracles` narrowed to those `aim` names (a mutant file's `catch`):
/// coherence with mode=all becomes one run per named mode, shoot-storm
/// (with its reader run) stays if `shoot-storm` is named. None: all of
/// them. `pmap-selftest` is a run of its own ([`Target`]'s `selftest`).
pub fn aimed(oracles: Vec<Oracle>, aim: Option<&[String]>) -> Vec<Oracle> {
    let Some(aim) = aim else {
        return oracles;
    };
    let named = |what: &str| aim.iter().any(|a| a == what);
    oracles
        .into_iter()
        .flat_map(|o| match o {
            Oracle::Coherence("all") => COHERENCE_MODES
                .iter()
                .filter(|m| named(m))
                .map(|m| Oracle::Coherence(m))
                .collect(),
            Oracle::Coherence(mode) => {
                if named(mode) {
                    vec![o]
                } else {
                    vec![]
                }
            }
            Oracle::ShootStorm | Oracle::ShootStormReader => {
                if named("shoot-storm") {
                    vec![o]
                } else {
                    vec![]
                }
            }
            other => vec![other],
        })
        .collect()
}

/// The chaos runs of a cell under `accel` (with `--chaos SEED`, on by
/// default with [`CHAOS_SEED`]): the kernel's chaos mode delays at the
/// protocols' annotated points (kernel/src/arch/chaos.rs), for races
/// whose window is a few instructions with interrupts off, which chance
/// alone does not open (`mutant-consolidation-ack-before-copy`: 0 stale
/// reads and 0 model verdicts in every plain run, 2 and 4 CPUs, tcg and
/// tcg-model). Under plain TCG (and KVM) coherence with mode=all: user
/// pages, whose INVLPG QEMU carries out exactly; a kernel page left stale
/// is hidden there by the target's next INVLPG of any kernel page, which
/// flushes all its kernel entries. It caught that mutant in about half the
/// runs (4 CPUs, seed 1: remap 67184 and 38273 stale reads, fork-protect 2,
/// one miss; seeds 2 and 3 missed, 4 caught; 2 CPUs: 1 of 2), more remaps
/// did not help (400: seeds 2 and 3 missed again); once mode=all ran the
/// crossfire mode too, its one run caught it on 2 and 4 CPUs (crossfire
/// 10 and 9 stale reads, remap 30762 on 2), though not reliably (the
/// committed table: crossfire 2 on 4 CPUs, missed on 2; its relative
/// mutant-early-ack-before-copy missed on 2 CPUs too). Since the kernel's
/// delays right after an acknowledgement may last 16 times longer
/// (kernel/src/arch/chaos.rs, `ACK_WINDOW_STRETCH`), long enough for the
/// initiator to return to user mode and post its next request on 2 CPUs,
/// this run's remap mode catches the three ack-before-copy mutants there
/// most of the time (`harness mutants --only` the three, three runs on a
/// loaded 2-core host: on 2 CPUs consolidation and scoreboard caught 3 of
/// 3, remap 28270 to 321261 stale reads, early-ack 2 of 3, 185848 and
/// 467046; on 4 CPUs all caught, crossfire+chaos 47 to 100150).
/// Under the icount
/// accelerators shoot-storm: a delay's PAUSE ends the vCPU's turn, so the
/// others run right inside the window, and the model's TLB judges kernel
/// pages exactly: tcg-model caught it in every run (71 and 96 verdicts on
/// 2 CPUs, 214 and 296 on 4; the control 0).
pub fn chaos_oracles(accel: Accel) -> Vec<Oracle> {
    if accel.is_icount() {
        vec![Oracle::ShootStormChaos]
    } else {
        vec![Oracle::CoherenceChaos]
    }
}

/// Crossfire's replacements per page and thread in the coherence runs.
pub const CROSS_REMAPS: u32 = 40;

/// The default seed of the chaos runs (`--chaos`).
pub const CHAOS_SEED: u64 = 1;

/// From this many CPUs on, the shoot-storm oracle run has a CPU that only
/// reads (`readers=1`) and still CPUs that make ops and read with
/// interrupts off; below it, the reader is a run of its own.
pub const STORM_READER_CPUS: u32 = 4;

/// How long one oracle run may take under `accel` before it is killed (a
/// timeout is a run that did not end ok). Measured on a 2-core host with
/// `fixed` under tcg-model, boot included: coherence remap 6 s (2 CPUs)
/// and 14 s (4), fork-protect about 60 s (4 CPUs, 8 rounds), shoot-storm
/// 5 s and 9 s; tcg-model runs 1.5-2.5x slower than tcg-icount. The
/// margin is for a loaded host and a slower kernel.
pub fn timeout(accel: Accel) -> Duration {
    Duration::from_secs(match accel {
        Accel::Tcg | Accel::Kvm => 120,
        Accel::TcgIcount => 180,
        Accel::TcgModel => 360,
    })
}

/// The model's stale verdicts in `report`, per profile
/// (`model.<profile>.stale.verdicts`, machine-wide), sorted by profile; empty
/// when the run had no model (any accelerator but tcg-model) or the model's
/// figures are missing.
pub fn model_verdicts(report: &Report) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = report
        .metrics
        .iter()
        .filter(|m| m.scope == lab_core::report::Scope::Global)
        .filter_map(|m| {
            let profile = m
                .name
                .strip_prefix(crate::model::PREFIX)?
                .strip_suffix(".stale.verdicts")?;
            (!profile.is_empty() && !profile.contains('.'))
                .then(|| (profile.to_string(), m.value as u64))
        })
        .collect();
    v.sort();
    v.dedup_by(|a, b| a.0 == b.0);
    v
}

/// A model catch as the tables say it: `model TLB (N verdicts, workload)`,
/// N the most any profile gave; when the profiles disagree, each is named.
fn model_catch(oracle: Oracle, verdicts: &[(String, u64)]) -> Option<String> {
    let most = verdicts.iter().map(|(_, n)| *n).max().unwrap_or(0);
    if most == 0 {
        return None;
    }
    let agree = verdicts.iter().all(|(_, n)| *n == most);
    let each = if agree {
        String::new()
    } else {
        let per: Vec<String> = verdicts.iter().map(|(p, n)| format!("{p} {n}")).collect();
        format!(": {}", per.join(", "))
    };
    Some(format!(
        "model TLB ({most} verdict{}{each}, {})",
        if most == 1 { "" } else { "s" },
        oracle.label()
    ))
}

/// One cell: a target on one accelerator and CPU count, both oracles.
#[derive(Clone, Debug, Default)]
pub struct Cell {
    pub target: String,
    pub path: String,
    pub mutant: bool,
    pub accel: String,
    pub cpus: u32,
    /// The guest's oracle: modes (and `shoot-storm`) that reported a stale
    /// access, with the count: `remap (256)`.
    pub caught_by: Vec<String>,
    /// The model's oracle (tcg-model): runs with a stale verdict, as
    /// `model TLB (69 verdicts, shoot-storm)`.
    pub model_caught_by: Vec<String>,
    /// Stale verdicts over the cell's runs (the most of any profile, per
    /// run, summed).
    pub verdicts: u64,
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
        !self.caught_by.is_empty()
            || !self.model_caught_by.is_empty()
            || !self.failed_runs.is_empty()
    }

    /// Which methods caught it (or, for a control, showed it wrong):
    /// `guest`, `model`, `run not ok`.
    pub fn methods(&self) -> Vec<&'static str> {
        let mut m = Vec::new();
        if !self.caught_by.is_empty() {
            m.push("guest");
        }
        if !self.model_caught_by.is_empty() {
            m.push("model");
        }
        if !self.failed_runs.is_empty() {
            m.push("run not ok");
        }
        m
    }

    /// Every run of the cell ended `unsupported`: it tested nothing.
    pub fn untested(&self) -> bool {
        !self.unsupported.is_empty() && self.checks == 0 && !self.caught()
    }

    /// A control cell that shows nothing wrong.
    pub fn clean(&self) -> bool {
        self.stale == 0
            && self.verdicts == 0
            && self.model_caught_by.is_empty()
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
        by.extend(self.model_caught_by.iter().cloned());
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

/// What the verb found: every cell it ran, every exhaustive check, the
/// pairs it skipped. (How one boot ended is [`crate::outcome::Outcome`].)
#[derive(Clone, Debug, Default)]
pub struct Findings {
    pub cells: Vec<Cell>,
    /// Each exhaustive check run, by mutant name.
    pub exhaustive: Vec<(String, crate::exhaustive::Check)>,
    /// Accelerator and CPU-count pairs not run, each with its reason.
    pub skipped: Vec<String>,
    pub wall: Duration,
    pub out: PathBuf,
}

impl Findings {
    /// The CPU count that decides: the most run (4 by default).
    pub fn decisive_cpus(&self) -> u32 {
        self.cells.iter().map(|c| c.cpus).max().unwrap_or(0)
    }

    /// Whether mutant `name` is caught: in at least one cell on the
    /// decisive CPU count, under any accelerator. (Fewer CPUs give fewer
    /// readers and less overlap: those cells are reported, not required.)
    /// A mutant with no oracle mode in `catch` (out of every oracle's
    /// sight under QEMU) is judged by its exhaustive check alone.
    pub fn caught(&self, name: &str) -> bool {
        let cpus = self.decisive_cpus();
        self.exhaustive_check(name)
            .is_some_and(|c| c.decides && c.caught)
            || self
                .cells
                .iter()
                .any(|c| c.mutant && c.target == name && c.cpus == cpus && c.caught())
    }

    /// Whether `method` ([`Cell::methods`]: `guest`, `model`) caught
    /// mutant `name` in some cell on the decisive CPU count.
    pub fn caught_with(&self, name: &str, method: &str) -> bool {
        let cpus = self.decisive_cpus();
        self.cells.iter().any(|c| {
            c.mutant && c.target == name && c.cpus == cpus && c.methods().contains(&method)
        })
    }

    /// The mutants run, by name.
    pub fn mutants(&self) -> BTreeSet<&str> {
        self.cells
            .iter()
            .filter(|c| c.mutant)
            .map(|c| c.target.as_str())
            .collect()
    }

    /// Mutants not caught (see [`Findings::caught`]), but for those no cell
    /// could run ([`Findings::unsupported`]).
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

    /// Mutant `name`'s exhaustive check, if its file names one.
    pub fn exhaustive_check(&self, name: &str) -> Option<&crate::exhaustive::Check> {
        self.exhaustive
            .iter()
            .find(|(m, _)| m == name)
            .map(|(_, c)| c)
    }

    /// Mutants whose exhaustive check did not catch them.
    pub fn exhaustive_missed(&self) -> BTreeSet<String> {
        self.exhaustive
            .iter()
            .filter(|(_, c)| !c.caught)
            .map(|(m, _)| m.clone())
            .collect()
    }

    /// The exhaustive column's cell for `name`: its check's verdict and
    /// time, `-` for a mutant that names none (or a control).
    fn exhaustive_cell(&self, name: &str) -> String {
        self.exhaustive_check(name)
            .map_or_else(|| "-".to_string(), crate::exhaustive::Check::cell)
    }

    pub fn passed(&self) -> bool {
        self.survivors().is_empty()
            && self.failed_controls().is_empty()
            && self.exhaustive_missed().is_empty()
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
    for (name, check) in &outcome.exhaustive {
        if !check.caught {
            println!("exhaustive check missed {name}: {check}");
        }
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
    if opts.chaos != CHAOS_SEED {
        let _ = write!(c, " --chaos {}", opts.chaos);
    }
    c
}

/// Builds, runs and decides every cell (without printing the table).
pub fn run(ws: &Workspace, opts: &MutantsOptions) -> Result<Findings> {
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
            selftest: m.runs_selftest(),
            aim: opts.aimed.then(|| m.catch.clone()),
            kernel,
        });
    }
    // Under --aimed the controls run every oracle some mutant is aimed
    // at, so that each catch is set beside a clean run of the same oracle.
    let mut aimed_at: Vec<String> = mutants.iter().flat_map(|m| m.catch.clone()).collect();
    aimed_at.sort();
    aimed_at.dedup();
    let controls = if opts.controls.is_empty() {
        default_controls(&variants::load_all(ws)?)
    } else {
        opts.controls.clone()
    };
    for name in &controls {
        let v = variants::load(ws, name)?;
        eprintln!("harness: mutants: building control {name}");
        let kernel = kernel_build::build(ws, &v, kernel_build::Output::OnFailure)?;
        targets.push(Target {
            name: name.clone(),
            path: "(control: correct)".into(),
            mutant: false,
            selftest: false,
            aim: opts.aimed.then(|| aimed_at.clone()),
            kernel,
        });
    }

    // The exhaustive checks first, one at a time: they build and run on
    // the host, and would take cores from the boots' budget.
    let mut exhaustive = Vec::new();
    for m in mutants.iter().filter(|m| m.exhaustive.is_some()) {
        let test = m.exhaustive.as_deref().unwrap_or_default();
        eprintln!(
            "harness: mutants: exhaustive check of {}: {}",
            m.name,
            crate::exhaustive::command_line(test)
        );
        let log = logs.join(format!("{}-exhaustive.log", m.name));
        let mut check = crate::exhaustive::run(&ws.root, test, &log)
            .with_context(|| format!("mutants: {}: exhaustive check", m.name))?;
        check.decides = m.catch.is_empty();
        eprintln!(
            "harness: mutants: {}: {check} (log: {})",
            m.name,
            log.display()
        );
        exhaustive.push((m.name.clone(), check));
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
                for oracle in aimed(oracles(accel, cpus), t.aim.as_deref()) {
                    jobs.push((t, accel, cpus, oracle));
                }
                if opts.chaos != 0 {
                    for oracle in chaos_oracles(accel) {
                        jobs.push((t, accel, cpus, oracle));
                    }
                }
                if t.selftest {
                    jobs.push((t, accel, cpus, Oracle::Selftest));
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
        for (i, &(t, accel, cpus, oracle)) in jobs.iter().enumerate() {
            let c = cost(cpus, accel, budget.total());
            if !budget.acquire(c) {
                break;
            }
            let (budget, logs, opts) = (&budget, &logs, opts);
            handles.push(s.spawn(move || {
                let r = run_one(t, accel, cpus, oracle, logs, opts);
                budget.release(c);
                if let Ok((report, ok, outcome, wall)) = &r {
                    let verdicts = model_verdicts(report);
                    eprintln!(
                        "[{:>3}/{total}] {:<26} {:<22} {cpus} cpu {:<10} {outcome:<10} {:.1} s{}{}",
                        i + 1,
                        t.name,
                        oracle.label(),
                        accel.as_str(),
                        wall.as_secs_f64(),
                        if *ok { "" } else { " (not ok)" },
                        match verdicts.iter().map(|(_, n)| *n).max() {
                            Some(n) => format!(" model verdicts {n}"),
                            None => String::new(),
                        }
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
    for ((t, accel, cpus, oracle), r) in jobs.iter().zip(results) {
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
        judge(&mut cells[idx], *oracle, &report, ok, &outcome, wall);
    }
    Ok(Findings {
        cells,
        exhaustive,
        skipped,
        wall: start.elapsed(),
        out,
    })
}

/// Why the oracles cannot decide anything under `accel` on `cpus` vCPUs,
/// if they cannot.
///
/// tcg-icount on 2 vCPUs: the one coherence mode that decides under icount
/// there (remap; fork-protect needs 4 CPUs) did not catch the negative
/// control lost-shootdown (the tcg-model rows on 2 CPUs, same modes), so
/// such runs would test little. The 2-vCPU starvation that once froze the
/// second vCPU after a PAUSE in the IPI handler is fixed in the kernel
/// (arch/ipi.rs); tcg-model on 2 CPUs still runs, for the model's TLB.
fn unusable(accel: Accel, cpus: u32) -> Option<&'static str> {
    (accel == Accel::TcgIcount && cpus == 2).then_some(
        "under icount on 2 CPUs the one coherence mode that decides (remap) did not catch \
         lost-shootdown (tcg-model's 2-CPU rows); use 4 CPUs, or tcg-model for its TLB",
    )
}

/// Boots `t` once under `oracle`: its report, whether it ended ok, the
/// outcome's name and the wall time.
fn run_one(
    t: &Target,
    accel: Accel,
    cpus: u32,
    oracle: Oracle,
    logs: &Path,
    opts: &MutantsOptions,
) -> Result<(Report, bool, String, Duration)> {
    let mut params = Vec::new();
    if oracle.chaos() {
        params.push(("chaos".to_string(), opts.chaos.to_string()));
    }
    let oracle_runs = match oracle {
        Oracle::CoherenceChaos => Oracle::Coherence("all"),
        Oracle::ShootStormChaos => Oracle::ShootStorm,
        other => other,
    };
    match oracle_runs {
        Oracle::Coherence(mode) => {
            params.push(("mode".to_string(), mode.to_string()));
            // A LATR kernel's munmap is lazy by design: the oracle allows
            // the old value until the reader's CPU applies it, and only
            // that (coherence.rs, lazy=on).
            if t.kernel.features.iter().any(|f| f == "lazy-latr") {
                params.push(("lazy".to_string(), "on".to_string()));
            }
            if let Some(r) = opts.rounds {
                params.push(("rounds".to_string(), r.to_string()));
            }
            // Crossfire as the committed mutation table ran it: 40
            // replacements per page and thread (the workload's default
            // is 10, for the matrices' and the tests' time).
            params.push(("cross_remaps".to_string(), CROSS_REMAPS.to_string()));
        }
        Oracle::ShootStorm => {
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
            if cpus >= STORM_READER_CPUS {
                params.push(("readers".to_string(), "1".to_string()));
            }
        }
        Oracle::ShootStormReader => {
            // The reader of the 4-CPU run, on 2 CPUs: CPU 0 makes the ops,
            // CPU 1 only reads, interrupts on, and nothing but the
            // shootdowns it serves flushes its TLB ([`oracles`]). No
            // irqoff passes: the one CPU that would make them reads a page
            // that never changes.
            params.push(("mode".to_string(), "mixed".to_string()));
            params.push(("ops".to_string(), "500".to_string()));
            params.push(("readers".to_string(), "1".to_string()));
        }
        // Its defaults: the aimed checks need no parameter.
        Oracle::Selftest => {}
        Oracle::CoherenceChaos | Oracle::ShootStormChaos => {
            unreachable!("a chaos run is its plain oracle's run with chaos=SEED")
        }
    }
    let spec = RunSpec {
        kernel: t.kernel.clone(),
        workload: oracle.workload().to_string(),
        params,
        cpus,
        mem_mib: 256,
        machine: Machine::Microvm,
        accel,
        timeout: timeout(accel),
        qemu: opts.qemu.clone(),
        runs_dir: logs.to_path_buf(),
    };
    let id = format!(
        "{}-{}-{}-{}cpu",
        t.name,
        oracle.label().replace('/', "-"),
        accel.as_str(),
        cpus
    );
    let r =
        run_into(&spec, &RunFiles::named(logs, &id)).with_context(|| format!("mutants: {id}"))?;
    Ok((
        r.report,
        r.outcome.is_ok(),
        r.outcome.name().to_string(),
        r.wall,
    ))
}

/// Adds what one run of `oracle` showed to `cell`: the guest's stale
/// accesses and, under tcg-model, the model's stale verdicts.
fn judge(
    cell: &mut Cell,
    oracle: Oracle,
    report: &Report,
    ok: bool,
    outcome: &str,
    wall: Duration,
) {
    let m = |name: &str| report.metric(name).unwrap_or(0.0) as u64;
    let workload = oracle.label();
    cell.wall += wall;
    if outcome == crate::outcome::Kind::Unsupported.as_str() {
        cell.unsupported.push(workload);
        return;
    }
    // What makes the run fail when the oracle works: its stale reads, or
    // pmap-selftest's failed checks.
    let run_caught = match oracle {
        Oracle::ShootStorm | Oracle::ShootStormReader | Oracle::ShootStormChaos => {
            m("kstorm.stale")
        }
        Oracle::Selftest => m("selftest.failures"),
        Oracle::Coherence(_) | Oracle::CoherenceChaos => m("coherence.stale"),
    };
    let verdicts = model_verdicts(report);
    if let Some(catch) = model_catch(oracle, &verdicts) {
        cell.model_caught_by.push(catch);
    }
    cell.verdicts += verdicts.iter().map(|(_, n)| *n).max().unwrap_or(0);
    // Under tcg-model a run that ended ok but carries no verdict count
    // was not judged by the model (a plugin without the TLB oracle).
    if cell.accel == Accel::TcgModel.as_str() && ok && verdicts.is_empty() {
        cell.empty_modes.push(format!("{workload}: model TLB"));
    }
    if oracle == Oracle::Selftest {
        let failures = m("selftest.failures");
        if failures > 0 {
            cell.caught_by.push(format!(
                "{SELFTEST} ({failures} failed check{})",
                if failures == 1 { "" } else { "s" }
            ));
        }
        if m("selftest.checks") == 0 {
            cell.empty_modes.push(SELFTEST.into());
        }
        cell.checks += m("selftest.checks");
    } else if let Oracle::Coherence(_) | Oracle::CoherenceChaos = oracle {
        // A chaos run's catch says so: `fork-protect+chaos (2)`.
        let chaos = if oracle.chaos() { "+chaos" } else { "" };
        for mode in oracle.modes() {
            let stale = m(&format!("coherence.{mode}.stale"));
            if stale > 0 {
                cell.caught_by.push(format!("{mode}{chaos} ({stale})"));
            }
            if m(&format!("coherence.{mode}.checks")) == 0
                || m(&format!("coherence.{mode}.rounds")) == 0
            {
                cell.empty_modes.push(format!("{mode}{chaos}"));
            }
        }
        cell.stale += m("coherence.stale");
        cell.checks += m("coherence.checks");
    } else {
        let stale = m("kstorm.stale");
        if stale > 0 {
            cell.caught_by.push(format!("{} ({stale})", oracle.label()));
        }
        if m("kstorm.checks") == 0 {
            cell.empty_modes.push(oracle.label());
        }
        cell.stale += stale;
        cell.checks += m("kstorm.checks");
    }
    // A run that fails only because the oracle found stale reads is the
    // oracle working; any other failure (panic, timeout) is listed.
    let stale_fail = outcome == "failed" && run_caught > 0;
    if !ok && !stale_fail {
        cell.failed_runs.push(format!("{workload}: {outcome}"));
    }
}

/// Pads `rows` into aligned plain-text columns, a rule under the first.
fn aligned<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for r in rows {
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
            let _ = writeln!(
                out,
                "{}",
                "-".repeat(widths.iter().sum::<usize>() + 2 * (N - 1))
            );
        }
    }
    out
}

/// `rows` as a Markdown table.
fn markdown_table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut out = String::new();
    for (i, r) in rows.iter().enumerate() {
        let cells: Vec<String> = r.iter().map(|c| c.replace('|', "\\|")).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
        if i == 0 {
            let _ = writeln!(out, "|{}", "---|".repeat(N));
        }
    }
    out
}

/// The table as plain text: every cell, then one line per kernel (which
/// oracle caught it where, and how long its cells took).
pub fn text_table(o: &Findings) -> String {
    let mut out = aligned(&rows(o));
    out.push('\n');
    out.push_str(&aligned(&summary_rows(o)));
    for why in &o.skipped {
        let _ = writeln!(out, "not run: {why}");
    }
    for (_, check) in &o.exhaustive {
        let _ = writeln!(out, "{check}");
    }
    let _ = writeln!(out, "wall: {:.0} s", o.wall.as_secs_f64());
    out
}

/// The table as Markdown, with the command that made it.
pub fn markdown(o: &Findings, command: &str) -> String {
    let mut out = String::from("# Mutation score of the stale-TLB oracles\n\n");
    let mutants = o.mutants();
    let survivors = o.survivors();
    let unsupported = o.unsupported();
    let caught: Vec<&str> = mutants.iter().copied().filter(|m| o.caught(m)).collect();
    let by = |method: &str| caught.iter().filter(|m| o.caught_with(m, method)).count();
    let model_only: Vec<&str> = caught
        .iter()
        .copied()
        .filter(|m| o.caught_with(m, "model") && !o.caught_with(m, "guest"))
        .collect();
    let model_run = o.cells.iter().any(|c| c.accel == Accel::TcgModel.as_str());
    let _ = writeln!(
        out,
        "`{command}`: {} of {} mutants caught (on {} CPUs, under at least one accelerator{}){}{}; controls {}; wall {:.0} s.\n",
        mutants.len() - survivors.len() - unsupported.len(),
        mutants.len() - unsupported.len(),
        o.decisive_cpus(),
        if model_run {
            format!(
                "; by the guest's oracles: {}, by the model's TLB: {}{}",
                by("guest"),
                by("model"),
                if model_only.is_empty() {
                    String::new()
                } else {
                    format!(", by the model only: {}", model_only.join(", "))
                }
            )
        } else {
            String::new()
        },
        if unsupported.is_empty() {
            String::new()
        } else {
            format!(
                "; not testable on this CPU or accelerator: {}",
                unsupported.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        },
        exhaustive_summary(o),
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
    out.push_str(
        "Per kernel: where the guest's oracles saw stale reads (their count), where the \
         model's TLB gave stale verdicts (the most of any profile, summed over runs), what \
         the host's exhaustive check named in the mutant's file found and how long it took \
         (its build included), runs that did not end ok, and the wall time of its cells \
         (QEMU's, summed).\n\n",
    );
    for (name, check) in &o.exhaustive {
        let _ = writeln!(
            out,
            "Exhaustive check of {name}: `{}`: {}.\n",
            check.command,
            if check.caught {
                format!("passed ({})", check.status)
            } else if check.no_such_test {
                format!("MISSED, no test `{}` ran ({})", check.test, check.status)
            } else {
                format!("MISSED ({})", check.status)
            }
        );
    }
    out.push_str(&markdown_table(&summary_rows(o)));
    for why in &o.skipped {
        let _ = writeln!(out, "\nNot run: {why}.");
    }
    out.push_str("\nEvery cell (a mutant *missed* in a cell is caught if some cell on the most CPUs caught it):\n\n");
    out.push_str(&markdown_table(&rows(o)));
    out
}

/// The headline's clause on the exhaustive checks: `; exhaustive checks: 1
/// of 2 caught (missed: mutant-x)`, empty when none ran.
fn exhaustive_summary(o: &Findings) -> String {
    if o.exhaustive.is_empty() {
        return String::new();
    }
    let missed = o.exhaustive_missed();
    format!(
        "; exhaustive checks on the host: {} of {} caught{}",
        o.exhaustive.len() - missed.len(),
        o.exhaustive.len(),
        if missed.is_empty() {
            String::new()
        } else {
            format!(
                " (MISSED: {})",
                missed.into_iter().collect::<Vec<_>>().join(", ")
            )
        }
    )
}

/// `, chaos only` when every catch in `catches` came from a chaos run
/// (its label carries `+chaos`), so the summary says which method it was.
fn chaos_only(catches: &[String]) -> &'static str {
    if !catches.is_empty() && catches.iter().all(|c| c.contains("+chaos")) {
        ", chaos only"
    } else {
        ""
    }
}

/// Where the cells of `target` that `f` picks are, by accelerator:
/// `tcg: 2 cpu, 4 cpu; tcg-model: 4 cpu (69)`; `f` gives each picked cell's
/// note (empty for none).
fn cells_where(o: &Findings, target: &str, f: impl Fn(&Cell) -> Option<String>) -> String {
    let mut accels: Vec<&str> = Vec::new();
    for c in o.cells.iter().filter(|c| c.target == target) {
        if !accels.contains(&c.accel.as_str()) {
            accels.push(&c.accel);
        }
    }
    let mut parts = Vec::new();
    for accel in accels {
        let picked: Vec<String> = o
            .cells
            .iter()
            .filter(|c| c.target == target && c.accel == accel)
            .filter_map(|c| {
                f(c).map(|note| {
                    if note.is_empty() {
                        format!("{} cpu", c.cpus)
                    } else {
                        format!("{} cpu ({note})", c.cpus)
                    }
                })
            })
            .collect();
        if !picked.is_empty() {
            parts.push(format!("{accel}: {}", picked.join(", ")));
        }
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join("; ")
    }
}

/// One line per kernel, mutants first: its verdict, where each method
/// caught it, its cells' wall time.
fn summary_rows(o: &Findings) -> Vec<[String; 8]> {
    let mut rows = vec![[
        "kernel",
        "path",
        "verdict",
        "guest oracle (stale)",
        "model TLB (verdicts)",
        "exhaustive",
        "runs not ok",
        "time",
    ]
    .map(String::from)];
    let unsupported = o.unsupported();
    let failed = o.failed_controls();
    let mut targets: Vec<&Cell> = Vec::new();
    for c in &o.cells {
        if !targets.iter().any(|t| t.target == c.target) {
            targets.push(c);
        }
    }
    targets.sort_by_key(|c| !c.mutant);
    let model_run = o.cells.iter().any(|c| c.accel == Accel::TcgModel.as_str());
    for t in targets {
        let name = t.target.as_str();
        let verdict = if unsupported.contains(name) {
            "unsupported here"
        } else if t.mutant {
            if o.caught(name) {
                "caught"
            } else {
                "SURVIVED"
            }
        } else if failed.contains(name) {
            "FAILED"
        } else {
            "clean"
        };
        // The stale reads, or what caught it when that read nothing stale
        // (pmap-selftest's failed checks).
        let guest = cells_where(o, name, |c| {
            (!c.caught_by.is_empty()).then(|| {
                let what = if c.stale > 0 {
                    c.stale.to_string()
                } else {
                    c.caught_by.join(", ")
                };
                format!("{what}{}", chaos_only(&c.caught_by))
            })
        });
        let model = if !model_run {
            "not run".to_string()
        } else {
            cells_where(o, name, |c| {
                (!c.model_caught_by.is_empty())
                    .then(|| format!("{}{}", c.verdicts, chaos_only(&c.model_caught_by)))
            })
        };
        let not_ok = cells_where(o, name, |c| {
            (!c.failed_runs.is_empty()).then(|| c.failed_runs.join(", "))
        });
        let mut time: Vec<(String, Duration)> = Vec::new();
        for c in o.cells.iter().filter(|c| c.target == name) {
            match time.iter_mut().find(|(a, _)| *a == c.accel) {
                Some((_, d)) => *d += c.wall,
                None => time.push((c.accel.clone(), c.wall)),
            }
        }
        let time = if time.len() == 1 {
            format!("{:.0} s", time[0].1.as_secs_f64())
        } else {
            time.iter()
                .map(|(a, d)| format!("{a} {:.0} s", d.as_secs_f64()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        rows.push([
            name.to_string(),
            t.path.clone(),
            verdict.to_string(),
            guest,
            model,
            o.exhaustive_cell(name),
            not_ok,
            time,
        ]);
    }
    rows
}

/// Every cell.
/// The exhaustive column repeats the mutant's one host check on each of
/// its rows (it has no CPU count or accelerator).
fn rows(o: &Findings) -> Vec<[String; 10]> {
    let mut rows = vec![[
        "kernel",
        "path",
        "cpus",
        "accel",
        "verdict",
        "by",
        "stale",
        "model",
        "exhaustive",
        "time",
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
            if c.accel == Accel::TcgModel.as_str() {
                c.verdicts.to_string()
            } else {
                "-".into()
            },
            o.exhaustive_cell(&c.target),
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
role = "mutant"
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
        let e = parse(f, &GOOD.replace("\"mutant\"", "\"control\""), &known())
            .unwrap_err()
            .to_string();
        assert!(e.contains("`role`") && e.contains("Control"), "{e}");
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
        let o = Findings {
            cells: vec![c, k],
            ..Findings::default()
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
            Oracle::Coherence("all"),
            &report,
            false,
            "unsupported",
            Duration::ZERO,
        );
        judge(
            &mut m,
            Oracle::ShootStorm,
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
            Oracle::Coherence("all"),
            &report,
            false,
            "unsupported",
            Duration::ZERO,
        );
        let o = Findings {
            cells: vec![m, k],
            ..Findings::default()
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

    /// A report with `metrics` (machine-wide unless named `@cpuN`).
    fn report(metrics: &[(&str, f64)]) -> Report {
        use lab_core::report::Scope;
        let mut r = Report::default();
        for (name, value) in metrics {
            let (name, scope) = match name.split_once('@') {
                Some((n, cpu)) => (
                    n,
                    Scope::Cpu(cpu.trim_start_matches("cpu").parse().unwrap()),
                ),
                None => (*name, Scope::Global),
            };
            r.metrics
                .push(crate::report::Metric::new(name, *value, "count", scope));
        }
        r
    }

    /// What a tcg-model shoot-storm run of a kernel that reads nothing
    /// stale writes, with these verdicts per profile.
    fn storm(verdicts: &[(&str, f64)]) -> Report {
        let mut m: Vec<(String, f64)> = vec![
            ("kstorm.checks".into(), 2_556_674.0),
            ("kstorm.stale".into(), 0.0),
        ];
        for (p, n) in verdicts {
            m.push((format!("model.{p}.stale.verdicts"), *n));
            // Per-CPU and per-phase rows are not the machine-wide count.
            m.push((format!("model.{p}.stale.verdicts@cpu1"), 1000.0));
            m.push((format!("model.{p}.phase.1.stale.verdicts"), 1000.0));
            m.push((format!("model.{p}.stale.suspects"), 1000.0));
        }
        let m: Vec<(&str, f64)> = m.iter().map(|(n, v)| (n.as_str(), *v)).collect();
        report(&m)
    }

    fn model_cell(target: &str, mutant: bool, cpus: u32) -> Cell {
        Cell {
            target: target.into(),
            path: "p".into(),
            mutant,
            accel: Accel::TcgModel.as_str().into(),
            cpus,
            ..Cell::default()
        }
    }

    #[test]
    fn reads_the_models_machine_wide_verdicts_per_profile() {
        let r = storm(&[("zen3", 11.0), ("skylake-sp", 69.0)]);
        assert_eq!(
            model_verdicts(&r),
            vec![("skylake-sp".to_string(), 69), ("zen3".to_string(), 11)]
        );
        assert!(model_verdicts(&report(&[("kstorm.stale", 3.0)])).is_empty());
        // A catch names the most any profile gave, and each when they
        // disagree; none when every profile says 0.
        let v = model_verdicts(&r);
        assert_eq!(
            model_catch(Oracle::ShootStorm, &v).unwrap(),
            "model TLB (69 verdicts: skylake-sp 69, zen3 11, shoot-storm)"
        );
        let same = [("skylake-sp".to_string(), 1), ("zen3".to_string(), 1)];
        assert_eq!(
            model_catch(Oracle::Coherence("remap"), &same).unwrap(),
            "model TLB (1 verdict, coherence/remap)"
        );
        let one = [("skylake-sp".to_string(), 0), ("zen3".to_string(), 2)];
        assert!(
            model_catch(Oracle::ShootStorm, &one).is_some(),
            "any profile"
        );
        let none = [("skylake-sp".to_string(), 0), ("zen3".to_string(), 0)];
        assert!(model_catch(Oracle::ShootStorm, &none).is_none());
    }

    #[test]
    fn the_model_catches_what_the_guest_cannot_see() {
        // mutant-dfly-truncate under tcg-model: the guest's readers read
        // nothing stale (QEMU flushed more than the guest asked), the
        // model's TLB gives verdicts.
        let mut c = model_cell("mutant-dfly-truncate", true, 4);
        let r = storm(&[("skylake-sp", 69.0), ("zen3", 69.0)]);
        judge(
            &mut c,
            Oracle::ShootStorm,
            &r,
            true,
            "ok",
            Duration::from_secs(9),
        );
        assert!(c.caught_by.is_empty(), "the guest saw nothing");
        assert_eq!(
            c.model_caught_by,
            vec!["model TLB (69 verdicts, shoot-storm)"]
        );
        assert_eq!(c.verdicts, 69);
        assert!(c.caught());
        assert_eq!(c.verdict(), "caught");
        assert_eq!(c.methods(), vec!["model"]);
        assert!(c.by().contains("model TLB (69 verdicts"), "{}", c.by());
        // Without verdicts the same run misses.
        let mut m = model_cell("mutant-dfly-truncate", true, 4);
        let r = storm(&[("skylake-sp", 0.0), ("zen3", 0.0)]);
        judge(&mut m, Oracle::ShootStorm, &r, true, "ok", Duration::ZERO);
        assert!(!m.caught());
        assert_eq!(m.verdict(), "missed");
    }

    #[test]
    fn a_control_with_a_model_verdict_fails() {
        let mut k = model_cell("dfly-batch", false, 4);
        judge(
            &mut k,
            Oracle::ShootStorm,
            &storm(&[("skylake-sp", 0.0), ("zen3", 3.0)]),
            true,
            "ok",
            Duration::ZERO,
        );
        assert_eq!(k.stale, 0, "no stale read");
        assert!(!k.clean());
        assert_eq!(k.verdict(), "FAILED");
        assert!(k.by().contains("zen3 3"), "{}", k.by());
        let o = Findings {
            cells: vec![k],
            ..Findings::default()
        };
        assert!(o.failed_controls().contains("dfly-batch"));
        assert!(!o.passed());
        // The same control with no verdict is clean.
        let mut k = model_cell("dfly-batch", false, 4);
        let r = storm(&[("skylake-sp", 0.0), ("zen3", 0.0)]);
        judge(&mut k, Oracle::ShootStorm, &r, true, "ok", Duration::ZERO);
        assert_eq!(k.verdict(), "clean");
    }

    #[test]
    fn a_model_run_without_verdicts_is_not_clean_but_other_accels_need_none() {
        // Under tcg-model a run that ended ok with no verdict count was
        // not judged by the model: a control is not clean then.
        let mut k = model_cell("fixed", false, 4);
        let r = storm(&[]);
        judge(&mut k, Oracle::ShootStorm, &r, true, "ok", Duration::ZERO);
        assert!(!k.clean(), "{:?}", k);
        assert!(k.by().contains("model TLB"), "{}", k.by());
        // Under tcg there is no model: the guest's checks suffice.
        let mut k = Cell {
            accel: Accel::Tcg.as_str().into(),
            ..model_cell("fixed", false, 4)
        };
        judge(&mut k, Oracle::ShootStorm, &r, true, "ok", Duration::ZERO);
        assert_eq!(k.verdict(), "clean");
        assert_eq!(k.verdicts, 0);
    }

    #[test]
    fn a_coherence_run_of_one_mode_is_judged_on_that_mode_only() {
        // mode=remap reports remap alone: the round modes it did not run
        // are no empty modes; the model's verdicts count there too.
        let r = report(&[
            ("coherence.remap.checks", 256.0),
            ("coherence.remap.rounds", 40.0),
            ("coherence.remap.stale", 0.0),
            ("coherence.checks", 256.0),
            ("coherence.stale", 0.0),
            ("model.skylake-sp.stale.verdicts", 0.0),
            ("model.zen3.stale.verdicts", 0.0),
        ]);
        let mut k = model_cell("fixed", false, 2);
        judge(
            &mut k,
            Oracle::Coherence("remap"),
            &r,
            true,
            "ok",
            Duration::ZERO,
        );
        assert!(k.empty_modes.is_empty(), "{:?}", k.empty_modes);
        assert_eq!(k.verdict(), "clean");
        // Under mode=all the same report lacks every round mode.
        let mut all = Cell {
            accel: Accel::Tcg.as_str().into(),
            ..model_cell("fixed", false, 2)
        };
        judge(
            &mut all,
            Oracle::Coherence("all"),
            &r,
            true,
            "ok",
            Duration::ZERO,
        );
        assert_eq!(all.empty_modes.len(), COHERENCE_MODES.len() - 1);
        // A guest catch in remap, with a model verdict beside it.
        let r = report(&[
            ("coherence.remap.checks", 256.0),
            ("coherence.remap.rounds", 40.0),
            ("coherence.remap.stale", 256.0),
            ("coherence.checks", 256.0),
            ("coherence.stale", 256.0),
            ("model.skylake-sp.stale.verdicts", 5.0),
            ("model.zen3.stale.verdicts", 5.0),
        ]);
        let mut m = model_cell("lost-shootdown", true, 4);
        // The guest's oracle fails the run: that is the oracle working.
        judge(
            &mut m,
            Oracle::Coherence("remap"),
            &r,
            false,
            "failed",
            Duration::ZERO,
        );
        assert_eq!(m.caught_by, vec!["remap (256)"]);
        assert!(m.failed_runs.is_empty());
        assert_eq!(m.methods(), vec!["guest", "model"]);
    }

    #[test]
    fn aimed_runs_only_the_named_oracles() {
        let aim = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // Coherence with mode=all becomes the named modes, in mode order;
        // shoot-storm and its reader go unless named.
        assert_eq!(
            aimed(oracles(Accel::Tcg, 2), Some(&aim(&["range", "cow"]))),
            vec![Oracle::Coherence("range"), Oracle::Coherence("cow")]
        );
        assert_eq!(
            aimed(oracles(Accel::Tcg, 2), Some(&aim(&["shoot-storm"]))),
            vec![Oracle::ShootStorm, Oracle::ShootStormReader]
        );
        // Under icount only the modes that decide there can run.
        assert_eq!(
            aimed(
                oracles(Accel::TcgIcount, 4),
                Some(&aim(&["fork-protect", "range"]))
            ),
            vec![Oracle::Coherence("fork-protect")]
        );
        // pmap-selftest names no oracle of this list; None keeps them all.
        assert!(aimed(oracles(Accel::Tcg, 4), Some(&aim(&["pmap-selftest"]))).is_empty());
        assert_eq!(aimed(oracles(Accel::Tcg, 4), None), oracles(Accel::Tcg, 4));
    }

    #[test]
    fn oracles_per_accelerator() {
        // On 2 CPUs plain TCG adds the storm whose second CPU only reads
        // (mutant-defer-kernel-flush); on 4 the storm has that reader.
        assert_eq!(
            oracles(Accel::Tcg, 2),
            vec![
                Oracle::Coherence("all"),
                Oracle::ShootStorm,
                Oracle::ShootStormReader
            ]
        );
        assert_eq!(
            oracles(Accel::Tcg, 4),
            vec![Oracle::Coherence("all"), Oracle::ShootStorm]
        );
        assert_eq!(Oracle::ShootStormReader.workload(), "shoot-storm");
        assert_eq!(Oracle::ShootStormReader.label(), "shoot-storm/reader");
        // One chaos run per cell: coherence's user pages under plain TCG,
        // shoot-storm under icount (the model's TLB).
        assert_eq!(chaos_oracles(Accel::Tcg), vec![Oracle::CoherenceChaos]);
        assert_eq!(
            chaos_oracles(Accel::TcgModel),
            vec![Oracle::ShootStormChaos]
        );
        assert!(Oracle::CoherenceChaos.chaos() && !Oracle::Coherence("all").chaos());
        assert_eq!(Oracle::CoherenceChaos.modes(), COHERENCE_MODES);
        assert_eq!(Oracle::ShootStormChaos.label(), "shoot-storm+chaos");
        for accel in [Accel::TcgIcount, Accel::TcgModel] {
            assert_eq!(
                oracles(accel, 2),
                vec![Oracle::Coherence("remap"), Oracle::ShootStorm],
                "fork-protect is inconclusive on 2 icount vCPUs"
            );
            assert_eq!(
                oracles(accel, 4),
                vec![
                    Oracle::Coherence("remap"),
                    Oracle::Coherence("fork-protect"),
                    Oracle::ShootStorm
                ]
            );
        }
        for (mode, _) in ICOUNT_COHERENCE_MODES {
            assert!(COHERENCE_MODES.contains(mode), "{mode}");
        }
        assert_eq!(Oracle::Coherence("remap").modes(), &["remap"]);
        assert_eq!(Oracle::Coherence("all").modes(), COHERENCE_MODES);
        assert!(Oracle::ShootStorm.modes().is_empty());
        assert_eq!(Oracle::Coherence("remap").label(), "coherence/remap");
        assert!(timeout(Accel::TcgModel) > timeout(Accel::TcgIcount));
        assert!(timeout(Accel::TcgIcount) > timeout(Accel::Tcg));
    }

    #[test]
    fn accel_takes_a_list() {
        use crate::cli::{Cli, Command};
        use clap::Parser;
        let accels = |argv: &[&str]| {
            let cli = Cli::try_parse_from(argv).unwrap();
            let Command::Mutants(args) = cli.command else {
                panic!("not mutants")
            };
            args.into_options().accels
        };
        assert_eq!(accels(&["harness", "mutants"]), vec![Accel::Tcg]);
        assert_eq!(
            accels(&["harness", "mutants", "--accel", "tcg-model"]),
            vec![Accel::TcgModel]
        );
        assert_eq!(
            accels(&["harness", "mutants", "--accel", "tcg,tcg-model"]),
            vec![Accel::Tcg, Accel::TcgModel]
        );
        assert_eq!(
            accels(&["harness", "mutants", "--accel", "both,tcg-model,tcg"]),
            vec![Accel::Tcg, Accel::TcgIcount, Accel::TcgModel]
        );
        assert!(Cli::try_parse_from(["harness", "mutants", "--accel", "kvm"]).is_err());
    }

    #[test]
    fn the_tables_say_which_method_caught_each_mutant() {
        let secs = Duration::from_secs;
        let mut dfly_tcg = Cell {
            accel: "tcg".into(),
            wall: secs(30),
            ..model_cell("mutant-dfly-truncate", true, 4)
        };
        dfly_tcg.caught_by.push("range (8)".into());
        dfly_tcg.stale = 8;
        let mut dfly_model = model_cell("mutant-dfly-truncate", true, 4);
        judge(
            &mut dfly_model,
            Oracle::ShootStorm,
            &storm(&[("skylake-sp", 69.0), ("zen3", 69.0)]),
            true,
            "ok",
            secs(100),
        );
        let mut kns = model_cell("mutant-kernel-no-shoot", true, 4);
        judge(
            &mut kns,
            Oracle::ShootStorm,
            &storm(&[("skylake-sp", 11.0), ("zen3", 11.0)]),
            true,
            "ok",
            secs(50),
        );
        let mut kns2 = model_cell("mutant-kernel-no-shoot", true, 2);
        judge(
            &mut kns2,
            Oracle::ShootStorm,
            &storm(&[("skylake-sp", 0.0), ("zen3", 0.0)]),
            false,
            "timeout",
            secs(600),
        );
        let mut control = model_cell("dfly-batch", false, 4);
        judge(
            &mut control,
            Oracle::ShootStorm,
            &storm(&[("skylake-sp", 0.0), ("zen3", 0.0)]),
            true,
            "ok",
            secs(40),
        );
        let o = Findings {
            cells: vec![dfly_tcg, dfly_model, kns, kns2, control],
            ..Findings::default()
        };
        assert!(o.passed());
        assert!(o.caught_with("mutant-kernel-no-shoot", "model"));
        assert!(!o.caught_with("mutant-kernel-no-shoot", "guest"));
        let md = markdown(&o, "harness mutants --accel tcg,tcg-model");
        assert!(
            md.contains("2 of 2 mutants caught (on 4 CPUs, under at least one accelerator; by the guest's oracles: 1, by the model's TLB: 2, by the model only: mutant-kernel-no-shoot); controls clean"),
            "{md}"
        );
        assert!(
            md.contains("| mutant-dfly-truncate | p | caught | tcg: 4 cpu (8) | tcg-model: 4 cpu (69) | - | - | tcg 30 s, tcg-model 100 s |"),
            "{md}"
        );
        assert!(
            md.contains("| mutant-kernel-no-shoot | p | caught | - | tcg-model: 4 cpu (11) | - | tcg-model: 2 cpu (shoot-storm: timeout) | 650 s |"),
            "{md}"
        );
        assert!(
            md.contains("| dfly-batch | p | clean | - | - | - | - | 40 s |"),
            "{md}"
        );
        let text = text_table(&o);
        assert!(text.contains("model TLB (verdicts)"), "{text}");
        assert!(
            text.contains("model TLB (69 verdicts, shoot-storm)"),
            "{text}"
        );
        // Without a tcg-model cell the model column says it did not run.
        let o = Findings {
            cells: vec![o.cells[0].clone()],
            ..Findings::default()
        };
        let md = markdown(&o, "harness mutants");
        assert!(md.contains("| tcg: 4 cpu (8) | not run |"), "{md}");
        assert!(!md.contains("by the model"), "{md}");
    }

    #[test]
    fn parses_the_exhaustive_key_and_the_selftest_catch() {
        let f = Path::new("variants/mutants/lost-shootdown.toml");
        let m = parse(f, GOOD, &known()).unwrap();
        assert_eq!(m.exhaustive, None, "optional");
        assert!(!m.runs_selftest());
        let text = format!(
            "{}exhaustive = \"mutant_lost_shootdown\"\n",
            GOOD.replace("\"remap\"]", "\"pmap-selftest\"]")
        );
        let m = parse(f, &text, &known()).unwrap();
        assert_eq!(m.exhaustive.as_deref(), Some("mutant_lost_shootdown"));
        assert!(m.runs_selftest());
        assert!(listing(&[m]).contains("exhaustive check: mutant_lost_shootdown"));
        // A name `--exact` cannot take is refused, saying which field.
        let e = parse(f, &format!("{GOOD}exhaustive = \"two words\"\n"), &known())
            .unwrap_err()
            .to_string();
        assert!(e.contains("exhaustive") && e.contains("two words"), "{e}");
        assert!(parse(f, &format!("{GOOD}exhaustive = \"\"\n"), &known()).is_err());
    }

    #[test]
    fn the_repository_mutants_use_the_new_keys() {
        let ws = Workspace::at(Path::new(env!("CARGO_MANIFEST_DIR")).join("..")).unwrap();
        let all = load_all(&ws).unwrap();
        let by = |name: &str| all.iter().find(|m| m.name == name).unwrap().clone();
        assert!(by("mutant-pcid-stale").runs_selftest());
        assert_eq!(
            by("mutant-poll-irq-on").exhaustive.as_deref(),
            Some("mutant_poll_irq_on")
        );
        assert_eq!(
            by("mutant-consolidation-ack-before-copy")
                .exhaustive
                .as_deref(),
            Some("mailboxes::mutant_consolidation_ack_before_copy")
        );
        // Out of every oracle's sight: its exhaustive check decides.
        assert!(by("mutant-lazy-skip-freed-tables").catch.is_empty());
    }

    #[test]
    fn a_failed_selftest_check_is_a_catch_not_a_failed_run() {
        let r = report(&[("selftest.checks", 412.0), ("selftest.failures", 1.0)]);
        let mut c = Cell {
            target: "mutant-pcid-stale".into(),
            mutant: true,
            cpus: 4,
            accel: "kvm".into(),
            ..Cell::default()
        };
        judge(
            &mut c,
            Oracle::Selftest,
            &r,
            false,
            "failed",
            Duration::ZERO,
        );
        assert_eq!(c.caught_by, vec!["pmap-selftest (1 failed check)"]);
        assert!(c.failed_runs.is_empty(), "{:?}", c.failed_runs);
        assert_eq!(c.stale, 0, "a failed check is no stale read");
        assert_eq!(c.verdict(), "caught");
        // The summary names the catch when no read was stale.
        let o = Findings {
            cells: vec![c],
            ..Findings::default()
        };
        assert!(
            markdown(&o, "harness mutants")
                .contains("| kvm: 4 cpu (pmap-selftest (1 failed check)) |"),
            "{}",
            markdown(&o, "harness mutants")
        );
        // A selftest that ran no check tested nothing.
        let mut k = Cell {
            checks: 0,
            ..Cell::default()
        };
        judge(
            &mut k,
            Oracle::Selftest,
            &report(&[]),
            true,
            "ok",
            Duration::ZERO,
        );
        assert_eq!(k.empty_modes, vec!["pmap-selftest"]);
        assert!(!k.clean());
    }

    #[test]
    fn a_chaos_run_says_so_in_its_catch() {
        let r = report(&[
            ("coherence.fork-protect.stale", 2.0),
            ("coherence.fork-protect.checks", 900.0),
            ("coherence.fork-protect.rounds", 8.0),
            ("coherence.stale", 2.0),
            ("coherence.checks", 900.0),
        ]);
        let mut c = Cell {
            mutant: true,
            accel: "tcg".into(),
            ..Cell::default()
        };
        judge(
            &mut c,
            Oracle::CoherenceChaos,
            &r,
            false,
            "failed",
            Duration::ZERO,
        );
        assert_eq!(c.caught_by, vec!["fork-protect+chaos (2)"]);
        assert!(c.failed_runs.is_empty());
        // The summary says the catch was chaos's alone; a plain catch
        // beside it drops the note.
        c.cpus = 4;
        let md = |c: &Cell| {
            markdown(
                &Findings {
                    cells: vec![c.clone()],
                    ..Findings::default()
                },
                "harness mutants",
            )
        };
        assert!(
            md(&c).contains("| tcg: 4 cpu (2, chaos only) |"),
            "{}",
            md(&c)
        );
        c.caught_by.push("remap (5)".into());
        assert!(md(&c).contains("| tcg: 4 cpu (2) |"), "{}", md(&c));
        // Its other modes made no checks in this report: named as chaos's.
        assert!(
            c.empty_modes.contains(&"remap+chaos".to_string()),
            "{:?}",
            c.empty_modes
        );
    }

    /// An exhaustive check as `run` records it.
    fn check(test: &str, caught: bool) -> crate::exhaustive::Check {
        crate::exhaustive::Check {
            test: test.into(),
            caught,
            status: if caught { "exit 0" } else { "exit 101" }.into(),
            command: crate::exhaustive::command_line(test),
            wall: Duration::from_millis(8_500),
            no_such_test: false,
            decides: false,
        }
    }

    #[test]
    fn a_mutant_out_of_the_oracles_sight_is_judged_by_its_exhaustive_check() {
        let missed = Cell {
            target: "mutant-a".into(),
            path: "p".into(),
            mutant: true,
            ..Cell::default()
        };
        let mut decides = check("mutant_a", true);
        decides.decides = true;
        let o = |c: crate::exhaustive::Check| Findings {
            cells: vec![Cell {
                cpus: 4,
                ..missed.clone()
            }],
            exhaustive: vec![("mutant-a".into(), c)],
            skipped: Vec::new(),
            wall: Duration::ZERO,
            out: PathBuf::new(),
        };
        assert!(o(decides.clone()).caught("mutant-a"));
        assert!(o(decides).passed());
        // Where oracles are expected to see it, the check alone is not
        // enough.
        assert!(!o(check("mutant_a", true)).caught("mutant-a"));
        let mut missed_check = check("mutant_a", false);
        missed_check.decides = true;
        assert!(!o(missed_check).passed());
    }

    #[test]
    fn both_tables_have_an_exhaustive_column() {
        let caught_cell = |name: &str| Cell {
            target: name.into(),
            path: "p".into(),
            mutant: true,
            accel: "tcg".into(),
            cpus: 4,
            caught_by: vec!["remap (3)".into()],
            stale: 3,
            checks: 10,
            ..Cell::default()
        };
        let o = Findings {
            cells: vec![caught_cell("mutant-a"), caught_cell("mutant-b")],
            exhaustive: vec![("mutant-a".into(), check("mutant_a", true))],
            ..Findings::default()
        };
        assert!(o.passed());
        let md = markdown(&o, "harness mutants");
        assert!(
            md.contains("| kernel | path | verdict | guest oracle (stale) | model TLB (verdicts) | exhaustive | runs not ok | time |"),
            "{md}"
        );
        assert!(
            md.contains(
                "| mutant-a | p | caught | tcg: 4 cpu (3) | not run | caught (8.5 s) | - |"
            ),
            "{md}"
        );
        // A mutant whose file names no check has none.
        assert!(
            md.contains("| mutant-b | p | caught | tcg: 4 cpu (3) | not run | - | - |"),
            "{md}"
        );
        // The per-cell table, too.
        assert!(
            md.contains("| kernel | path | cpus | accel | verdict | by | stale | model | exhaustive | time |"),
            "{md}"
        );
        assert!(
            md.contains("| mutant-a | p | 4 | tcg | caught | remap (3) | 3 | - | caught (8.5 s) |"),
            "{md}"
        );
        assert!(
            md.contains("exhaustive checks on the host: 1 of 1 caught"),
            "{md}"
        );
        assert!(md.contains("--exact mutant_a`: passed (exit 0)"), "{md}");
        assert!(text_table(&o).contains("caught (8.5 s)"));

        // A check that misses fails the verb, the oracles' catch aside,
        // and the tables say how it ended.
        let o = Findings {
            exhaustive: vec![("mutant-a".into(), check("mutant_a", false))],
            ..o
        };
        assert!(o.survivors().is_empty());
        assert_eq!(
            o.exhaustive_missed().into_iter().collect::<Vec<_>>(),
            ["mutant-a"]
        );
        assert!(!o.passed());
        let md = markdown(&o, "harness mutants");
        assert!(md.contains("| MISSED (exit 101, 8.5 s) |"), "{md}");
        assert!(
            md.contains("1 caught (MISSED: mutant-a)")
                || md.contains("0 of 1 caught (MISSED: mutant-a)"),
            "{md}"
        );
        assert!(md.contains("--exact mutant_a`: MISSED (exit 101)"), "{md}");
    }
}
