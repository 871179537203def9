//! The `run` verb: boot one kernel once and say what happened.
//!
//! [`run_once`] is the library entry point other verbs (a matrix) call in a
//! loop: it takes an already built kernel and a resolved accelerator, boots
//! it, and keeps everything about the run in its own folder:
//!
//! ```text
//! runs/<UTC stamp>-<variant>-<workload>-<n>cpu/
//!     serial.log     COM1, as the guest wrote it (the report and console)
//!     qemu.stderr    QEMU's own messages
//!     command.txt    the QEMU command line, ready to paste into a shell
//!     outcome.txt    the decoded outcome and the wall time
//!     model.metrics  under tcg-model: the model plugin's figures
//! ```

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

use crate::accel::{Accel, AccelChoice};
use crate::accel_probe;
use crate::kernel_build::{self, KernelImage};
use crate::model;
use crate::outcome::{self, Outcome};
use crate::qemu::{self, Machine};
use crate::report::{self, Report};
use crate::variants;
use crate::workspace::Workspace;

/// One run, fully resolved.
#[derive(Clone, Debug)]
pub struct RunSpec {
    pub kernel: KernelImage,
    pub workload: String,
    /// `key=value` parameters for the workload, in order.
    pub params: Vec<(String, String)>,
    pub cpus: u32,
    pub mem_mib: u32,
    pub machine: Machine,
    pub accel: Accel,
    pub timeout: Duration,
    pub qemu: PathBuf,
    /// Parent of the per-run folder.
    pub runs_dir: PathBuf,
}

/// What a run produced.
#[derive(Clone, Debug)]
pub struct RunResult {
    pub outcome: Outcome,
    pub report: Report,
    /// QEMU's wall time, spawn to exit.
    pub wall: Duration,
    pub run_dir: PathBuf,
    pub serial_log: PathBuf,
    /// The kernel command line the run was given.
    pub kernel_cmdline: String,
    /// The QEMU command line, shell-quoted.
    pub command_line: String,
    pub qemu_stderr: String,
}

/// The kernel command line for `workload` with `params`. Keys and values
/// are checked here only for what would break the line into other tokens
/// (whitespace, a missing key); the kernel checks the names and values
/// against the workload and reports anything else.
pub fn kernel_cmdline(workload: &str, params: &[(String, String)]) -> Result<String> {
    let blank = |s: &str| s.chars().any(char::is_whitespace);
    if workload.is_empty() || blank(workload) || workload.contains('=') {
        bail!("workload name '{workload}' must be one word");
    }
    let mut line = format!("workload={workload}");
    for (key, value) in params {
        if key.is_empty() || blank(key) || key.contains('=') || blank(value) {
            bail!("parameter '{key}={value}' must be key=value without spaces");
        }
        if key == "workload" {
            bail!("give the workload with --workload, not as a parameter");
        }
        if key == "variant" {
            bail!("give the variant with --variant, not as a parameter");
        }
        write!(line, " {key}={value}").unwrap();
    }
    Ok(line)
}

/// Where one run's files go.
#[derive(Clone, Debug)]
pub struct RunFiles {
    /// COM1, as the guest wrote it.
    pub serial_log: PathBuf,
    /// QEMU's own messages.
    pub qemu_stderr: PathBuf,
    /// The QEMU command line, ready to paste into a shell.
    pub command: PathBuf,
    /// The decoded outcome and the wall time.
    pub outcome: PathBuf,
    /// Under tcg-model: the model plugin's figures (crate::model).
    pub model: PathBuf,
    /// The folder holding them (what [`RunResult::run_dir`] reports).
    pub dir: PathBuf,
}

impl RunFiles {
    /// `dir/serial.log`, `dir/qemu.stderr`, `dir/command.txt`,
    /// `dir/outcome.txt`: a run folder of its own.
    pub fn in_folder(dir: &Path) -> RunFiles {
        RunFiles {
            serial_log: dir.join("serial.log"),
            qemu_stderr: dir.join("qemu.stderr"),
            command: dir.join("command.txt"),
            outcome: dir.join("outcome.txt"),
            model: dir.join("model.metrics"),
            dir: dir.to_path_buf(),
        }
    }

    /// `dir/<id>.log`, `dir/<id>.qemu.stderr`, `dir/<id>.cmd`,
    /// `dir/<id>.outcome`, `dir/<id>.model`: many runs side by side (a matrix's `logs/`).
    pub fn named(dir: &Path, id: &str) -> RunFiles {
        RunFiles {
            serial_log: dir.join(format!("{id}.log")),
            qemu_stderr: dir.join(format!("{id}.qemu.stderr")),
            command: dir.join(format!("{id}.cmd")),
            outcome: dir.join(format!("{id}.outcome")),
            model: dir.join(format!("{id}.model")),
            dir: dir.to_path_buf(),
        }
    }
}

/// Boots `spec` once in a new folder under `spec.runs_dir` (layout in the
/// module doc). An `Err` is the harness failing (cannot create the run
/// folder) or [`crate::qemu::Interrupted`]; everything that goes wrong
/// with QEMU or the guest is in the returned [`RunResult::outcome`].
pub fn run_once(spec: &RunSpec) -> Result<RunResult> {
    let run_dir = create_run_dir(
        &spec.runs_dir,
        &format!(
            "{}-{}-{}-{}cpu",
            utc_stamp(SystemTime::now()),
            spec.kernel.variant,
            spec.workload,
            spec.cpus
        ),
    )?;
    run_into(spec, &RunFiles::in_folder(&run_dir))
}

/// Boots `spec` once, writing its files where `files` says (their folder
/// must exist; `spec.runs_dir` is not used). Errors as [`run_once`].
pub fn run_into(spec: &RunSpec, files: &RunFiles) -> Result<RunResult> {
    let mut kernel_cmdline = kernel_cmdline(&spec.workload, &spec.params)?;
    // The variant's name for the kernel's begin line (not built in:
    // harness/src/kernel_build.rs).
    write!(kernel_cmdline, " variant={}", spec.kernel.variant).unwrap();
    // tcg-model: the kernel gives the model its hints (lab_core::model_hint).
    let plugin = if spec.accel == Accel::TcgModel {
        kernel_cmdline.push_str(" model=on");
        match fs::remove_file(&files.model) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| format!("cannot remove {}", files.model.display()))
            }
        }
        Some(
            model::plugin_for(&spec.kernel.path, &files.model).with_context(|| {
                format!(
                    "cannot set up tcg-model for variant '{}'",
                    spec.kernel.variant
                )
            })?,
        )
    } else {
        None
    };
    let cfg = qemu::Config {
        qemu: spec.qemu.clone(),
        machine: spec.machine,
        accel: spec.accel,
        cpus: spec.cpus,
        mem_mib: spec.mem_mib,
        kernel: spec.kernel.path.clone(),
        append: kernel_cmdline.clone(),
        serial_log: files.serial_log.clone(),
        plugin,
    };
    let command_line = qemu::shell_command(&cfg);
    let write = |path: &Path, text: &str| {
        fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
    };
    write(&files.command, &format!("{command_line}\n"))?;
    let boot = qemu::boot(&cfg, spec.timeout, &files.qemu_stderr)?;
    let log = match fs::read(&cfg.serial_log) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            return Err(e).with_context(|| format!("cannot read {}", cfg.serial_log.display()))
        }
    };
    let mut report = report::parse(&log);
    let mut outcome = outcome::decide(&boot, &report);
    // The model's figures join the guest's report under `model.`; a run
    // the guest finished whose model output is missing or broken says so
    // (the guest's own figures stay in the report either way).
    if cfg.plugin.is_some() {
        match model::read_metrics(&files.model) {
            Ok(Some(metrics)) => report.metrics.extend(metrics),
            Ok(None) if !outcome.is_ok() => {}
            Ok(None) => {
                outcome = Outcome::QemuError {
                    reason: format!(
                        "the model plugin wrote no figures ({} missing)",
                        files.model.display()
                    ),
                    status: None,
                    stderr: boot.stderr.clone(),
                }
            }
            Err(e) => {
                outcome = Outcome::QemuError {
                    reason: format!("the model plugin's figures: {e:#}"),
                    status: None,
                    stderr: boot.stderr.clone(),
                }
            }
        }
    }
    write(
        &files.outcome,
        &format!("{outcome}\nwall: {:.3} s\n", boot.wall.as_secs_f64()),
    )?;
    Ok(RunResult {
        outcome,
        report,
        wall: boot.wall,
        run_dir: files.dir.clone(),
        serial_log: cfg.serial_log,
        kernel_cmdline,
        command_line,
        qemu_stderr: boot.stderr,
    })
}

/// The `run` verb's options, resolved from the command line.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub variant: String,
    pub workload: String,
    pub params: Vec<(String, String)>,
    pub cpus: u32,
    pub mem_mib: u32,
    pub machine: Machine,
    pub accel: AccelChoice,
    pub timeout: Duration,
    pub qemu: PathBuf,
    /// Default: `<root>/runs`.
    pub runs_dir: Option<PathBuf>,
}

/// The run `opts` describe, for `variant`: its kernel built, the
/// accelerator resolved (`auto` probes once per host).
pub fn spec_for(ws: &Workspace, opts: &RunOptions, variant: &str) -> Result<RunSpec> {
    let variant = variants::load(ws, variant)?;
    let kernel = kernel_build::build(ws, &variant, kernel_build::Output::OnFailure)?;
    let accel = accel_probe::resolve(
        opts.accel,
        &opts.qemu,
        &kernel.path,
        &ws.cache_dir().join("accel-probe.toml"),
    )?;
    Ok(RunSpec {
        kernel,
        workload: opts.workload.clone(),
        params: opts.params.clone(),
        cpus: opts.cpus,
        mem_mib: opts.mem_mib,
        machine: opts.machine,
        accel,
        timeout: opts.timeout,
        qemu: opts.qemu.clone(),
        runs_dir: opts.runs_dir.clone().unwrap_or_else(|| ws.runs_dir()),
    })
}

/// Runs the `run` verb: build the variant, resolve the accelerator, boot
/// once, print the report and the outcome. Returns the process exit status
/// (0 only for ok).
pub fn execute(ws: &Workspace, opts: &RunOptions) -> Result<i32> {
    let spec = spec_for(ws, opts, &opts.variant)?;
    let result = run_once(&spec)?;
    print!("{}", summary(&spec, &result));
    Ok(result.outcome.exit_code())
}

/// What `harness run` prints: the run, the report as a table, the outcome.
pub fn summary(spec: &RunSpec, result: &RunResult) -> String {
    let mut out = String::new();
    writeln!(
        out,
        "run: variant {} workload {} on {} {} cpu{} ({}, {} MiB)",
        spec.kernel.variant,
        spec.workload,
        spec.machine.as_str(),
        spec.cpus,
        if spec.cpus == 1 { "" } else { "s" },
        spec.accel.as_str(),
        spec.mem_mib
    )
    .unwrap();
    report::write_table(&result.report, &mut out).unwrap();
    writeln!(out, "outcome: {}", result.outcome).unwrap();
    writeln!(
        out,
        "wall: {:.3} s (QEMU start to exit)",
        result.wall.as_secs_f64()
    )
    .unwrap();
    writeln!(out, "run folder: {}", display_path(&result.run_dir)).unwrap();
    out
}

/// `path` relative to the current directory when it is under it.
fn display_path(path: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| path.to_path_buf())
        .display()
        .to_string()
}

/// Creates `parent/name`, or `parent/name-2`, `-3`... if taken (two runs in
/// the same second).
fn create_run_dir(parent: &Path, name: &str) -> Result<PathBuf> {
    fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    for n in 1.. {
        let dir = if n == 1 {
            parent.join(name)
        } else {
            parent.join(format!("{name}-{n}"))
        };
        match fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot create {}", dir.display())),
        }
    }
    unreachable!()
}

/// `t` as `YYYYmmdd-HHMMSS` in UTC. Hand-written (Howard Hinnant's
/// days-to-civil) rather than pulling in a date crate for one format.
pub fn utc_stamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps() {
        assert_eq!(utc_stamp(UNIX_EPOCH), "19700101-000000");
        let t = UNIX_EPOCH + Duration::from_secs(1_763_779_620); // 2025-11-22 02:47:00
        assert_eq!(utc_stamp(t), "20251122-024700");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400 + 86_399); // 2000-02-29 23:59:59
        assert_eq!(utc_stamp(leap), "20000229-235959");
    }

    #[test]
    fn cmdlines() {
        let p = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert_eq!(
            kernel_cmdline("spin", &[p("iters", "5")]).unwrap(),
            "workload=spin iters=5"
        );
        assert!(kernel_cmdline("a b", &[]).is_err());
        assert!(kernel_cmdline("hello", &[p("x", "1 2")]).is_err());
        assert!(kernel_cmdline("hello", &[p("", "1")]).is_err());
        assert!(kernel_cmdline("hello", &[p("workload", "x")]).is_err());
        assert!(kernel_cmdline("hello", &[p("variant", "x")]).is_err());
    }

    #[test]
    fn run_dirs_are_unique() {
        let tmp = tempfile::tempdir().unwrap();
        let a = create_run_dir(tmp.path(), "x").unwrap();
        let b = create_run_dir(tmp.path(), "x").unwrap();
        assert_ne!(a, b);
        assert!(b.ends_with("x-2"));
    }
}
