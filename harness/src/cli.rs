//! The command line: clap's derive definitions, resolved into the plain
//! option structs the verbs take (hyperfine's split), so nothing past this
//! module knows about clap's types.
//!
//! Exit statuses: 0 ok; 1 the harness failed (bad variant, build failed,
//! cannot write); 2 usage error (clap). `run`: 3-8 the run's outcome other
//! than ok (see `outcome::Kind::exit_code`). `compare`: 3 only with
//! `--fail-on-regression` and a regression past its threshold. `matrix`: 3
//! some run did not end as expected, 130 interrupted. `gate`: 3 it failed (a rule, a
//! missing cell, or no rule passed; `verbs::gate::EXIT_HELP`, shown by
//! `harness gate --help`).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::accel::AccelChoice;
use crate::compare::{CompareOptions, Format};
use crate::matrix::MatrixOptions;
use crate::mutants::MutantsOptions;
use crate::qemu::{Machine, DEFAULT_QEMU};
use crate::reproduce::ReproduceOptions;
use crate::results::ShardSpec;
use crate::run::RunOptions;
use crate::verbs::explain::ExplainOptions;
use crate::verbs::gate::GateOptions;

/// The most vCPUs a run may have: the kernel's CPU-set width.
const MAX_CPUS: i64 = lab_core::cpuset::MAX_CPUS as i64;

#[derive(Debug, Parser)]
#[command(
    name = "harness",
    version,
    about = "pmaplab: build pmap variants of the lab kernel, boot them in QEMU, read their reports"
)]
pub struct Cli {
    /// The pmaplab checkout (default: $PMAPLAB_ROOT, else the nearest one
    /// above the current directory).
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Read variants, matrix files and gate rules from DIR instead of
    /// <root>/variants (kernel features are still checked against the
    /// root's kernel/Cargo.toml).
    #[arg(long, global = true, value_name = "DIR")]
    pub variants: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build the kernel for a variant (cached per variant).
    Build {
        /// Variant name (a file in variants/).
        #[arg(long)]
        variant: String,
    },
    /// Boot one workload once and print its report and outcome.
    Run(RunArgs),
    /// Boot one workload once in a variant (and in another, --vs) and
    /// say, in sentences to paste, which pmap operations sent its
    /// shootdown IPIs (per operation, by cause) and where the two differ.
    Explain(ExplainArgs),
    /// List the variants (or, with --mutants, the oracle's mutants).
    List {
        /// List the mutants of variants/mutants/ instead.
        #[arg(long)]
        mutants: bool,
    },
    /// Build every mutant (variants/mutants/: a shootdown path broken on
    /// purpose) and the correct controls, run the stale-TLB oracles on
    /// each, print the table. Exit 3 if a mutant survives or a control
    /// shows a stale read or makes no checks.
    Mutants(MutantsArgs),
    /// Run a matrix (variants x workloads x CPU counts x reps) into a
    /// results directory. Exit 3 if any run did not end ok, 130 if
    /// interrupted.
    Matrix(MatrixArgs),
    /// Merge the results directories of shards (`matrix --shard K/N`).
    Merge {
        /// The merged results directory (must hold no runs yet).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The shards' results directories.
        #[arg(required = true, value_name = "SHARD_DIR")]
        shards: Vec<PathBuf>,
    },
    /// Draw the comparison charts (SVG, PNG, index.md/html) of a results
    /// directory.
    Plot {
        /// Results directory (default: runs/matrix-latest).
        #[arg(long = "in", value_name = "DIR")]
        input: Option<PathBuf>,
        /// Where the charts go (default: IN/charts).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Check a results directory against the gate rules (and a baseline):
    /// completeness, same-run rules, baseline rules.
    #[command(after_help = crate::verbs::gate::EXIT_HELP)]
    Gate(GateArgs),
    /// Make a results directory the committed baseline
    /// (results/baseline.csv and results/charts/).
    Baseline {
        /// Results directories, repeatable; their ok runs together become
        /// results/baseline.csv, charts come from the first (default:
        /// runs/matrix-latest).
        #[arg(long = "in", value_name = "DIR")]
        input: Vec<PathBuf>,
    },
    /// Reproduce the seeds' published figures beside the lab's: runs the
    /// experiments that exist in this tree, prints the table, writes
    /// results/REPRODUCE.md and results/charts/reproduce-ipi-factor.*.
    Reproduce(ReproduceArgs),
    /// What a change did: compare two results directories, or two git
    /// revisions (each built in a temporary worktree and run on the same
    /// matrix, interleaved), per cell and figure with the gate's
    /// statistics; a change counts when it reaches its figure's threshold
    /// (the gate's tolerance, else 1 %; --threshold). Writes
    /// OUT/compare.md and OUT/compare.csv. Exit 0 whatever changed, unless
    /// --fail-on-regression (then 3 on a regression past its threshold).
    Compare(CompareArgs),
    /// Export the key figures as Bencher (BMF) and github-action-benchmark
    /// JSON.
    Export {
        /// Results directory (default: runs/matrix-latest).
        #[arg(long = "in", value_name = "DIR")]
        input: Option<PathBuf>,
        /// Where the JSON files go (default: IN/export).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Before: a results directory or a git revision.
    #[arg(value_name = "A")]
    pub a: String,
    /// After: a results directory or a git revision.
    #[arg(value_name = "B")]
    pub b: String,
    /// The matrix revision sides run (default: variants/matrix-quick.toml).
    #[arg(long, value_name = "FILE")]
    pub matrix: Option<PathBuf>,
    /// Where compare.md and compare.csv (and revision sides' results) go
    /// (default: runs/compare-<UTC stamp>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Exit 3 when some figure got worse past its threshold.
    #[arg(long)]
    pub fail_on_regression: bool,
    /// One threshold for every figure, in percent of A: a significant
    /// change smaller than it is listed as "changed, below threshold".
    /// Default: per figure, the tolerance of the gate's [[baseline]] rule
    /// for it (variants/gates.toml), else 1 %.
    #[arg(long, value_name = "PCT", value_parser = percent)]
    pub threshold: Option<f64>,
    /// What to print on the terminal.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Host cores the revision sides' matrices keep busy (default: all).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub jobs: Option<u32>,
}

impl CompareArgs {
    pub fn into_options(self) -> CompareOptions {
        CompareOptions {
            a: self.a,
            b: self.b,
            matrix: self.matrix,
            out: self.out,
            fail_on_regression: self.fail_on_regression,
            format: self.format,
            jobs: self.jobs,
            threshold: self.threshold,
        }
    }
}

/// A non-negative, finite percentage.
fn percent(text: &str) -> Result<f64, String> {
    match text.trim_end_matches('%').parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("'{text}' is not a percentage >= 0")),
    }
}

#[derive(Debug, Args)]
pub struct MatrixArgs {
    /// The matrix file (default: variants/matrix.toml).
    #[arg(long, value_name = "FILE")]
    pub matrix: Option<PathBuf>,
    /// Host cores to keep busy (default: all). A run of V vCPUs takes V
    /// of them (1 under tcg-icount).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub jobs: Option<u32>,
    /// Repetitions per cell instead of the matrix file's.
    #[arg(long, value_name = "R", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub reps: Option<u32>,
    /// Run only shard K of N (cells i with i mod N = K-1).
    #[arg(long, value_name = "K/N")]
    pub shard: Option<ShardSpec>,
    /// Complete the runs in --out (default: runs/matrix-latest), skipping
    /// the cells already stored.
    #[arg(long)]
    pub resume: bool,
    /// Results directory (default: a new runs/matrix-<UTC stamp>, linked
    /// from runs/matrix-latest).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Accelerator instead of the matrix file's.
    #[arg(long, value_enum)]
    pub accel: Option<AccelChoice>,
    /// The QEMU binary.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_QEMU)]
    pub qemu: PathBuf,
}

impl MatrixArgs {
    pub fn into_options(self) -> MatrixOptions {
        MatrixOptions {
            matrix: self.matrix,
            jobs: self.jobs.map(|j| j as usize),
            reps: self.reps,
            shard: self.shard,
            resume: self.resume,
            out: self.out,
            accel: self.accel,
            qemu: self.qemu,
        }
    }
}

/// `--accel` of the mutants verb (a comma-separated list of these).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum MutantAccel {
    /// Plain TCG (MTTCG): the guest's oracles.
    Tcg,
    /// TCG with -icount: the guest's oracles, coherence in the modes that
    /// decide there (remap; fork-protect on 4+ CPUs).
    TcgIcount,
    /// tcg-icount plus the memory-system model: the guest's oracles and the
    /// model's TLB, whose stale verdicts are a second oracle.
    TcgModel,
    /// tcg and tcg-icount (as before the model; add tcg-model to the list
    /// for it).
    Both,
}

impl MutantAccel {
    /// The accelerators this value stands for.
    pub fn accels(self) -> &'static [crate::accel::Accel] {
        use crate::accel::Accel;
        match self {
            MutantAccel::Tcg => &[Accel::Tcg],
            MutantAccel::TcgIcount => &[Accel::TcgIcount],
            MutantAccel::TcgModel => &[Accel::TcgModel],
            MutantAccel::Both => &[Accel::Tcg, Accel::TcgIcount],
        }
    }
}

#[derive(Debug, Args)]
pub struct MutantsArgs {
    /// Host cores to keep busy (default: all).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub jobs: Option<u32>,
    /// Accelerators, comma-separated (e.g. tcg,tcg-model): plain TCG,
    /// tcg-icount, tcg-model (adds the model's TLB as a second oracle), or
    /// both (tcg and tcg-icount).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [MutantAccel::Tcg])]
    pub accel: Vec<MutantAccel>,
    /// vCPU counts, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [2u32, 4], value_parser = clap::value_parser!(u32).range(2..=MAX_CPUS))]
    pub cpus: Vec<u32>,
    /// Only these mutants (comma-separated names; default: all).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// The correct variants run as controls (comma-separated; default:
    /// every variant whose role in variants/*.toml is protocol or
    /// technique).
    #[arg(long, value_delimiter = ',')]
    pub controls: Vec<String>,
    /// Coherence rounds per round mode (default: the workload's).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10000))]
    pub rounds: Option<u32>,
    /// The seed of each cell's chaos run (the kernel's `chaos=SEED`:
    /// seeded delays inside the shootdown protocols); 0: no chaos runs.
    #[arg(long, value_name = "SEED", default_value_t = crate::mutants::CHAOS_SEED)]
    pub chaos: u64,
    /// Run each mutant only under the oracles its file's `catch` names
    /// (and the controls under all of those): a quick check that each is
    /// caught where its file says, not the full mutation table.
    #[arg(long)]
    pub aimed: bool,
    /// Results directory (default: runs/mutants-<UTC stamp>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// The QEMU binary.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_QEMU)]
    pub qemu: PathBuf,
}

impl MutantsArgs {
    pub fn into_options(self) -> MutantsOptions {
        let mut accels = Vec::new();
        for a in self.accel.iter().flat_map(|a| a.accels()) {
            if !accels.contains(a) {
                accels.push(*a);
            }
        }
        MutantsOptions {
            jobs: self.jobs.map(|j| j as usize),
            accels,
            cpus: self.cpus,
            only: self.only,
            controls: self.controls,
            rounds: self.rounds,
            chaos: self.chaos,
            aimed: self.aimed,
            out: self.out,
            qemu: self.qemu,
        }
    }
}

#[derive(Debug, Args)]
pub struct ReproduceArgs {
    /// Accelerator (tcg-icount: repeatable virtual time, about 2x slower).
    #[arg(long, value_enum, default_value_t = AccelChoice::Tcg)]
    pub accel: AccelChoice,
    /// Repetitions of every cell.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub reps: u32,
    /// Results directory (default: a new runs/reproduce-<UTC stamp>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Complete the runs already in --out and render from them.
    #[arg(long, requires = "out")]
    pub resume: bool,
    /// Host cores to keep busy (default: all).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub jobs: Option<u32>,
    /// The Markdown table (default: results/REPRODUCE.md).
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// Where the sweep chart goes (default: results/charts).
    #[arg(long, value_name = "DIR")]
    pub charts: Option<PathBuf>,
    /// Sweep the OpenBSD factor up to N CPUs (1-8, then 16, 32, 64 up to
    /// N; above 8 the runs take minutes each).
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=MAX_CPUS))]
    pub sweep_to: u32,
    /// The QEMU binary.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_QEMU)]
    pub qemu: PathBuf,
    /// The techniques published since the seeds, each beside fixed, under
    /// tcg-icount on 4 CPUs, into results/TECHNIQUES.md (and
    /// results/charts/reproduce-techniques.*), instead of the seeds' table.
    #[arg(long)]
    pub techniques: bool,
    /// Write nothing: run only the repeatable experiments (tcg-icount,
    /// tcg-model; once each, as they repeat bit for bit) and check that
    /// every repeatable row of the committed table FILE shows what this
    /// tree produces. Exit 3, naming each row that differs and the
    /// command that re-makes the table, if one does not.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["markdown", "charts", "resume"])]
    pub check: Option<PathBuf>,
}

impl ReproduceArgs {
    pub fn into_options(self) -> ReproduceOptions {
        ReproduceOptions {
            accel: self.accel,
            reps: self.reps,
            out: self.out,
            resume: self.resume,
            jobs: self.jobs.map(|j| j as usize),
            qemu: self.qemu,
            markdown: self.markdown,
            charts: self.charts,
            sweep_to: self.sweep_to,
            techniques: self.techniques,
            check: self.check,
        }
    }
}

#[derive(Debug, Args)]
pub struct GateArgs {
    /// The rules file (default: variants/gates.toml).
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// Results to compare against (a CSV or a results directory), e.g.
    /// results/baseline.csv.
    #[arg(long, value_name = "CSV|DIR")]
    pub baseline: Option<PathBuf>,
    /// Check without a baseline on purpose: `[[baseline]]` rules are skipped
    /// (without it, required baseline rules and no --baseline is an error).
    #[arg(long, conflicts_with = "baseline")]
    pub no_baseline: bool,
    /// Results directory (default: runs/matrix-latest).
    #[arg(long = "in", value_name = "DIR")]
    pub input: Option<PathBuf>,
    /// The matrix the results were run from: every cell must be present,
    /// and rules selecting nothing it runs are skipped (default: the
    /// matrix file named in IN/metadata.json).
    #[arg(long, value_name = "FILE")]
    pub matrix: Option<PathBuf>,
    /// Evaluate every rule, even those selecting nothing the matrix runs.
    #[arg(long)]
    pub all_rules: bool,
    /// Also require every guest figure of a tcg-icount or tcg-model run to
    /// equal the baseline's exactly (such runs repeat bit for bit): fails
    /// naming the figures that moved when the baseline is not this tree's.
    #[arg(long, requires = "baseline")]
    pub exact: bool,
    /// Prove the gate instead: boot the unmodified tree and three planted
    /// regressions (in a temporary variants directory) and check that it
    /// passes the first and catches each of the others by name.
    #[arg(long, conflicts_with_all = ["baseline", "no_baseline", "input", "matrix", "all_rules", "exact"])]
    pub self_test: bool,
    /// The QEMU binary (for --self-test).
    #[arg(long, value_name = "PATH", default_value = DEFAULT_QEMU)]
    pub qemu: PathBuf,
}

impl GateArgs {
    /// `default_rules` is the workspace's variants/gates.toml.
    pub fn into_options(self, default_rules: PathBuf) -> GateOptions {
        GateOptions {
            rules: self.rules.unwrap_or(default_rules),
            baseline: self.baseline,
            no_baseline: self.no_baseline,
            input: self.input,
            matrix: self.matrix,
            all_rules: self.all_rules,
            exact: self.exact,
        }
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Variant name (a file in variants/).
    #[arg(long, default_value = "fixed")]
    pub variant: String,
    /// The workload to run in the guest (hello, spin, panic, hang, ...).
    #[arg(long)]
    pub workload: String,
    /// Number of vCPUs.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=MAX_CPUS))]
    pub cpus: u32,
    /// A workload parameter, KEY=VALUE (repeatable).
    #[arg(long = "param", value_name = "KEY=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,
    /// Accelerator: auto probes KVM against TCG once per host.
    #[arg(long, value_enum, default_value_t = AccelChoice::Auto)]
    pub accel: AccelChoice,
    /// QEMU machine model.
    #[arg(long, value_enum, default_value_t = Machine::Microvm)]
    pub machine: Machine,
    /// Kill QEMU after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60.0, value_parser = parse_secs)]
    pub timeout: f64,
    /// The QEMU binary.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_QEMU)]
    pub qemu: PathBuf,
    /// Guest memory in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 256, value_parser = clap::value_parser!(u32).range(32..=65536))]
    pub mem: u32,
    /// Where per-run folders go (default: <root>/runs).
    #[arg(long, value_name = "DIR")]
    pub runs_dir: Option<PathBuf>,
}

impl RunArgs {
    /// The plain options the `run` verb takes.
    pub fn into_options(self) -> RunOptions {
        RunOptions {
            variant: self.variant,
            workload: self.workload,
            params: self.params,
            cpus: self.cpus,
            mem_mib: self.mem,
            machine: self.machine,
            accel: self.accel,
            timeout: Duration::from_secs_f64(self.timeout),
            qemu: self.qemu,
            runs_dir: self.runs_dir,
        }
    }
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// A second variant to compare with (same workload, CPUs, params).
    #[arg(long, value_name = "VARIANT")]
    pub vs: Option<String>,
}

impl ExplainArgs {
    /// The plain options the `explain` verb takes.
    pub fn into_options(self) -> ExplainOptions {
        ExplainOptions {
            run: self.run.into_options(),
            vs: self.vs,
        }
    }
}

fn parse_param(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("'{text}' is not KEY=VALUE")),
    }
}

fn parse_secs(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s > 0.0 && s <= 86_400.0 => Ok(s),
        _ => Err(format!("'{text}' is not a number of seconds in (0, 86400]")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_run() {
        let cli = Cli::try_parse_from([
            "harness",
            "run",
            "--workload",
            "spin",
            "--cpus",
            "4",
            "--param",
            "iters=5",
            "--accel",
            "tcg-icount",
            "--machine",
            "q35",
            "--timeout",
            "2.5",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        let o = args.into_options();
        assert_eq!(o.variant, "fixed");
        assert_eq!(o.cpus, 4);
        assert_eq!(o.params, vec![("iters".into(), "5".into())]);
        assert_eq!(o.accel, AccelChoice::TcgIcount);
        assert_eq!(o.machine, Machine::Q35);
        assert_eq!(o.timeout, Duration::from_millis(2500));
    }

    #[test]
    fn takes_up_to_64_cpus() {
        let cli = Cli::try_parse_from(["harness", "run", "--workload", "x", "--cpus", "64"]);
        let Command::Run(args) = cli.unwrap().command else {
            panic!("not run")
        };
        assert_eq!(args.cpus, 64);
        let cli = Cli::try_parse_from(["harness", "reproduce", "--sweep-to", "64"]).unwrap();
        let Command::Reproduce(args) = cli.command else {
            panic!("not reproduce")
        };
        assert_eq!(args.into_options().sweep_to, 64);
    }

    #[test]
    fn rejects_bad_usage() {
        for argv in [
            &["harness", "run"][..],
            &["harness", "run", "--workload", "x", "--cpus", "0"],
            &["harness", "run", "--workload", "x", "--param", "novalue"],
            &["harness", "run", "--workload", "x", "--accel", "fast"],
            &["harness", "run", "--workload", "x", "--timeout", "-1"],
            &["harness", "run", "--workload", "x", "--cpus", "65"],
            &["harness", "reproduce", "--sweep-to", "65"],
        ] {
            let e = Cli::try_parse_from(argv).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{argv:?}");
        }
    }
}
