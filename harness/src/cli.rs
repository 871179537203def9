//! The command line: clap's derive definitions, resolved into the plain
//! option structs the verbs take (hyperfine's split), so nothing past this
//! module knows about clap's types.
//!
//! Exit statuses: 0 ok; 1 the harness failed (bad variant, build failed,
//! cannot write); 2 usage error (clap); 3-8 a run's outcome other than ok
//! (see `outcome::Outcome::exit_code`).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::accel::AccelChoice;
use crate::qemu::{Machine, DEFAULT_QEMU};
use crate::run::RunOptions;

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
    /// List the variants.
    List,
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
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
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
    fn rejects_bad_usage() {
        for argv in [
            &["harness", "run"][..],
            &["harness", "run", "--workload", "x", "--cpus", "0"],
            &["harness", "run", "--workload", "x", "--param", "novalue"],
            &["harness", "run", "--workload", "x", "--accel", "fast"],
            &["harness", "run", "--workload", "x", "--timeout", "-1"],
        ] {
            let e = Cli::try_parse_from(argv).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{argv:?}");
        }
    }
}
