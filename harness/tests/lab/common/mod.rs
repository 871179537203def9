//! Shared by the tests that boot the real kernel: build it once per test
//! binary, and run at most two QEMUs at a time (the machines have two cores,
//! shared with other jobs).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use harness::accel::Accel;
use harness::kernel_build::{self, KernelImage};
use harness::qemu::{Machine, DEFAULT_QEMU};
use harness::report::Report;
use harness::run::{run_once, RunResult, RunSpec};
use harness::variants;
use harness::workspace::Workspace;
use lab_core::report::Scope;

/// The pmaplab checkout the tests run in.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The harness CLI, rooted at [`repo`], with stdin closed.
pub fn harness_cli() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_harness"));
    cmd.arg("--root").arg(repo()).stdin(Stdio::null());
    cmd
}

/// Runs the harness CLI with `args` and prints its exit status and output
/// (shown when the test fails).
pub fn run_cli(args: &[&str]) -> Output {
    let out = harness_cli().args(args).output().unwrap();
    eprintln!(
        "harness {}: {}\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn workspace() -> Workspace {
    Workspace::at(repo()).unwrap()
}

/// The `fixed` kernel, built on first use.
pub fn kernel() -> KernelImage {
    kernel_for("fixed")
}

/// The kernel of variant `name`, built once per test binary. Builds are
/// serialised (they share the kernel's target directory).
pub fn kernel_for(name: &str) -> KernelImage {
    static KERNELS: Mutex<Vec<KernelImage>> = Mutex::new(Vec::new());
    let mut built = KERNELS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(k) = built.iter().find(|k| k.variant == name) {
        return k.clone();
    }
    let ws = workspace();
    let variant = variants::load(&ws, name).unwrap();
    let image = kernel_build::build(&ws, &variant, kernel_build::Output::OnFailure).unwrap();
    built.push(image.clone());
    image
}

/// Boots variant `name`'s kernel with `workload` on `cpus` CPUs.
pub fn boot_variant(
    name: &str,
    workload: &str,
    cpus: u32,
    adjust: impl FnOnce(&mut RunSpec),
) -> Boot {
    let kernel = kernel_for(name);
    boot_with(workload, cpus, |spec| {
        spec.kernel = kernel;
        adjust(spec);
    })
}

/// A counting semaphore bounding concurrent QEMUs.
struct Slots {
    free: Mutex<u32>,
    cv: Condvar,
}

pub fn with_slot<T>(f: impl FnOnce() -> T) -> T {
    static SLOTS: Slots = Slots {
        free: Mutex::new(2),
        cv: Condvar::new(),
    };
    {
        let mut free = SLOTS.free.lock().unwrap();
        while *free == 0 {
            free = SLOTS.cv.wait(free).unwrap();
        }
        *free -= 1;
    }
    let out = f();
    *SLOTS.free.lock().unwrap() += 1;
    SLOTS.cv.notify_one();
    out
}

pub struct Boot {
    pub result: RunResult,
    _runs: tempfile::TempDir,
}

pub fn spec(workload: &str, cpus: u32, runs: &Path) -> RunSpec {
    RunSpec {
        kernel: kernel(),
        workload: workload.into(),
        params: vec![],
        cpus,
        mem_mib: 128,
        machine: Machine::Microvm,
        accel: Accel::Tcg,
        // Generous: other jobs share these two cores.
        timeout: Duration::from_secs(60),
        qemu: DEFAULT_QEMU.into(),
        runs_dir: runs.to_path_buf(),
    }
}

pub fn boot_with(workload: &str, cpus: u32, adjust: impl FnOnce(&mut RunSpec)) -> Boot {
    let runs = tempfile::tempdir().unwrap();
    let mut spec = spec(workload, cpus, runs.path());
    adjust(&mut spec);
    let result = with_slot(|| run_once(&spec).unwrap());
    Boot {
        result,
        _runs: runs,
    }
}

pub fn boot(workload: &str, cpus: u32) -> Boot {
    boot_with(workload, cpus, |_| {})
}

/// Every metric named `name` with its scope.
pub fn metrics(report: &Report, name: &str) -> Vec<(Scope, f64)> {
    report
        .metrics
        .iter()
        .filter(|m| m.name == name)
        .map(|m| (m.scope, m.value))
        .collect()
}

/// Asserts that, for every IPI kind, every (from, to) pair and the machine
/// totals, IPIs sent equal IPIs received, and returns the number of pairs
/// that carried traffic of `kind`.
pub fn assert_ipis_balanced(report: &Report) {
    for kind in ["shootpage", "shootrange", "shoottlb", "other"] {
        let sent = metrics(report, &format!("ipi.pair.sent.{kind}"));
        let received = metrics(report, &format!("ipi.pair.received.{kind}"));
        assert_eq!(sent.len(), received.len(), "{kind}: pair rows differ");
        for ((scope_s, s), (scope_r, r)) in sent.iter().zip(&received) {
            assert_eq!(scope_s, scope_r);
            assert_eq!(s, r, "{kind} {scope_s:?}: sent {s} received {r}");
        }
        let total = |name: String| {
            metrics(report, &name)
                .into_iter()
                .find(|(scope, _)| *scope == Scope::Global)
                .map(|(_, v)| v)
        };
        let (s, r) = (
            total(format!("ipi.sent.{kind}")),
            total(format!("ipi.received.{kind}")),
        );
        assert!(s.is_some(), "no ipi.sent.{kind} total");
        assert_eq!(s, r, "{kind} machine totals");
    }
}

/// TEST FIXTURE (made up): an ok run of `cell` that reported `metrics`,
/// for tests that draw charts from rows no guest produced.
pub fn fixture_run(
    cell: harness::results::Cell,
    wall: Duration,
    metrics: Vec<harness::results::Metric>,
) -> harness::results::RunRecord {
    harness::results::RunRecord {
        features: vec![cell.variant.clone()],
        cell,
        git_rev: "abc1234".into(),
        started: chrono::DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&chrono::Utc),
        outcome: harness::results::Outcome::Ok,
        wall,
        metrics,
    }
}
