//! Boots the real kernel in QEMU under TCG and checks that the harness names
//! what happened. The kernel is built once per test binary; at most two
//! QEMUs run at a time (the machines have two cores, shared with others).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use harness::accel::{Accel, AccelChoice};
use harness::outcome::Outcome;
use harness::qemu::{Machine, DEFAULT_QEMU};
use lab_core::report::Status;

use crate::common::*;

fn serial_log(b: &Boot) -> String {
    assert!(b.result.serial_log.is_file(), "no serial log kept");
    std::fs::read_to_string(&b.result.serial_log).unwrap()
}

fn assert_hello_ok(b: &Boot) {
    let r = &b.result;
    assert_eq!(r.outcome, Outcome::Ok, "{}", r.outcome);
    let begin = r.report.begin.as_ref().unwrap();
    assert_eq!(begin.cmdline, "workload=hello variant=fixed");
    assert_eq!(begin.variant, "fixed");
    assert!(r.report.metric("mem.usable").unwrap() > 0.0);
    assert_eq!(r.report.end.unwrap().status, Status::Ok);
    assert!(r.run_dir.join("command.txt").is_file());
    assert!(r.run_dir.join("outcome.txt").is_file());
}

#[test]
fn hello_on_one_cpu() {
    let b = boot("hello", 1);
    assert_hello_ok(&b);
    assert_eq!(b.result.report.begin.as_ref().unwrap().cpus, 1);
}

#[test]
fn hello_on_four_cpus() {
    let b = boot("hello", 4);
    assert_hello_ok(&b);
    assert!(b.result.command_line.contains("-smp 4"));
    assert_eq!(b.result.report.begin.as_ref().unwrap().cpus, 4);
}

#[test]
fn hello_on_q35_and_under_icount() {
    assert_hello_ok(&boot_with("hello", 2, |s| s.machine = Machine::Q35));
    assert_hello_ok(&boot_with("hello", 1, |s| s.accel = Accel::TcgIcount));
}

#[test]
fn panic_is_named_with_its_message_and_the_log_is_kept() {
    let b = boot("panic", 1);
    match &b.result.outcome {
        Outcome::Panic(p) => {
            assert!(p.msg.contains("deliberate panic requested"), "{}", p.msg);
            assert!(p.at.contains("diagnostics.rs"), "{}", p.at);
        }
        other => panic!("expected panic, got {other}"),
    }
    assert!(serial_log(&b).contains("deliberate panic requested"));
}

#[test]
fn hang_times_out_and_the_log_is_kept() {
    let b = boot_with("hang", 1, |s| s.timeout = Duration::from_secs(3));
    assert!(
        matches!(b.result.outcome, Outcome::Timeout { .. }),
        "{}",
        b.result.outcome
    );
    assert!(b.result.wall >= Duration::from_secs(3));
    assert!(serial_log(&b).contains("cmdline=workload=hang"));
}

#[test]
fn unknown_workload_fails_naming_it() {
    let b = boot("bogus", 1);
    match &b.result.outcome {
        Outcome::Failed { errors } => {
            assert!(
                errors.iter().any(|e| e.msg.contains("'bogus'")),
                "{errors:?}"
            )
        }
        other => panic!("expected failed, got {other}"),
    }
    assert!(serial_log(&b).contains("unknown workload 'bogus'"));
}

#[test]
fn unknown_parameter_fails_naming_it() {
    let b = boot_with("hello", 1, |s| {
        s.params = vec![("frobs".into(), "3".into())];
    });
    let text = b.result.outcome.to_string();
    assert!(
        text.starts_with("failed") && text.contains("'frobs'"),
        "{text}"
    );
}

#[test]
fn triple_fault_is_a_reset() {
    let b = boot("triple-fault", 1);
    assert_eq!(
        b.result.outcome,
        Outcome::TripleFault,
        "{}",
        b.result.outcome
    );
    assert!(serial_log(&b).contains("cmdline=workload=triple-fault"));
}

#[test]
fn missing_qemu_is_a_qemu_error() {
    let b = boot_with("hello", 1, |s| {
        s.qemu = PathBuf::from("/nonexistent/qemu-system-x86_64")
    });
    match &b.result.outcome {
        Outcome::QemuError { reason, .. } => {
            assert!(
                reason.contains("/nonexistent/qemu-system-x86_64"),
                "{reason}"
            )
        }
        other => panic!("expected qemu-error, got {other}"),
    }
}

#[test]
fn bad_qemu_option_is_a_qemu_error_with_stderr() {
    // More vCPUs than any QEMU machine supports: QEMU refuses to start.
    let b = boot_with("hello", 1, |s| s.cpus = 100_000);
    match &b.result.outcome {
        Outcome::QemuError { status, stderr, .. } => {
            assert_eq!(*status, Some(1));
            assert!(!stderr.trim().is_empty());
        }
        other => panic!("expected qemu-error, got {other}"),
    }
}

#[test]
fn accel_auto_probes_once_and_caches() {
    kernel();
    let cache = tempfile::tempdir().unwrap();
    let file = cache.path().join("accel-probe.toml");
    let first = with_slot(|| {
        harness::accel_probe::resolve(
            AccelChoice::Auto,
            Path::new(DEFAULT_QEMU),
            &kernel().path,
            &file,
        )
    })
    .unwrap();
    if harness::accel_probe::kvm_opens() {
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains("tcg_ms"), "{text}");
        // A cached answer is returned without booting: a missing kernel
        // would make a probe fail.
        let again = harness::accel_probe::resolve(
            AccelChoice::Auto,
            Path::new(DEFAULT_QEMU),
            Path::new("/nonexistent"),
            &file,
        )
        .unwrap();
        assert_eq!(again, first);
    } else {
        assert_eq!(first, Accel::Tcg);
    }
}

/// The binary, as a user runs it: the report table, the outcome, the exit
/// status (0 only for ok, distinct otherwise, 2 for usage).
#[test]
fn the_run_verb_prints_the_report_and_sets_the_exit_status() {
    kernel();
    let runs = tempfile::tempdir().unwrap();
    let harness = |args: &[&str]| {
        with_slot(|| {
            Command::new(env!("CARGO_BIN_EXE_harness"))
                .args(args)
                .arg("--runs-dir")
                .arg(runs.path())
                .output()
                .unwrap()
        })
    };
    let out = harness(&[
        "run",
        "--variant",
        "fixed",
        "--workload",
        "hello",
        "--accel",
        "tcg",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("mem.usable"), "{stdout}");
    assert!(stdout.contains("outcome: ok"), "{stdout}");

    let out = harness(&["run", "--workload", "bogus", "--accel", "tcg"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stdout).contains("unknown workload 'bogus'"));

    let out = harness(&["run", "--workload", "hello", "--cpus", "0"]);
    assert_eq!(out.status.code(), Some(2));

    let out = harness(&["run", "--variant", "no-such", "--workload", "hello"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no variant named 'no-such'"));
}

/// The pids of the processes whose command line mentions `needle`.
fn processes_naming(needle: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(needle))
                .unwrap_or(false)
        })
        .collect()
}

/// A harness killed outright (SIGKILL: no handler runs) leaves no QEMU
/// behind: QEMU is started with PR_SET_PDEATHSIG.
#[test]
fn a_killed_harness_leaves_no_qemu() {
    kernel();
    let runs = tempfile::tempdir().unwrap();
    let needle = runs.path().to_str().unwrap().to_string();
    with_slot(|| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_harness"))
            .args([
                "run",
                "--workload",
                "hang",
                "--accel",
                "tcg",
                "--timeout",
                "120",
            ])
            .arg("--runs-dir")
            .arg(runs.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let me = child.id();
        let qemu_of =
            |pids: Vec<u32>| -> Vec<u32> { pids.into_iter().filter(|&p| p != me).collect() };
        let start = std::time::Instant::now();
        let mut qemu = Vec::new();
        while qemu.is_empty() && start.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(50));
            qemu = qemu_of(processes_naming(&needle));
        }
        assert!(!qemu.is_empty(), "QEMU never started under {needle}");
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let start = std::time::Instant::now();
        let mut left = qemu_of(processes_naming(&needle));
        while !left.is_empty() && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(50));
            left = qemu_of(processes_naming(&needle));
        }
        assert!(left.is_empty(), "QEMU outlived the harness: pids {left:?}");
    });
}
