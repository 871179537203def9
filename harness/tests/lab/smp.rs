//! SMP bring-up, IPI accounting and the kernel exception report, checked on
//! the real kernel under multi-threaded TCG (issue 3).

use harness::outcome::Outcome;
use harness::qemu::Machine;
use lab_core::report::Scope;

use crate::common::*;

/// Every CPU QEMU was given comes online and says so, on both machines.
#[test]
fn every_cpu_comes_online() {
    for machine in [Machine::Microvm, Machine::Q35] {
        for cpus in [1, 2, 3, 4, 8] {
            let b = boot_with("hello", cpus, |s| s.machine = machine);
            let r = &b.result;
            assert_eq!(r.outcome, Outcome::Ok, "{machine:?} x{cpus}: {}", r.outcome);
            assert_eq!(r.report.begin.as_ref().unwrap().cpus, cpus, "{machine:?}");
            let mut online: Vec<u32> = metrics(&r.report, "cpu.online")
                .into_iter()
                .map(|(scope, value)| match scope {
                    Scope::Cpu(cpu) if value == 1.0 => cpu,
                    other => panic!("cpu.online {other:?} = {value}"),
                })
                .collect();
            online.sort();
            assert_eq!(online, (0..cpus).collect::<Vec<_>>(), "{machine:?} x{cpus}");
        }
    }
}

/// ipi-pingpong measures every ordered pair, and every IPI sent, of every
/// kind and between every pair, was received.
#[test]
fn pingpong_ipis_sent_equal_received() {
    for cpus in [2, 4] {
        let b = boot_with("ipi-pingpong", cpus, |s| {
            s.params = vec![
                ("pairs".into(), "all".into()),
                ("rounds".into(), "200".into()),
            ];
        });
        let r = &b.result;
        assert_eq!(r.outcome, Outcome::Ok, "x{cpus}: {}", r.outcome);
        assert_ipis_balanced(&r.report);
        let pairs = metrics(&r.report, "pingpong.rtt.median")
            .into_iter()
            .filter(|(scope, v)| matches!(scope, Scope::Pair { .. }) && *v > 0.0)
            .count();
        assert_eq!(
            pairs as u32,
            cpus * (cpus - 1),
            "a median for every ordered pair"
        );
        let sent = r.report.metric("ipi.sent.other").unwrap();
        assert!(
            sent >= f64::from(cpus * (cpus - 1) * 200),
            "{sent} IPIs for the round trips"
        );
    }
}

/// ipi-pingpong on one CPU is refused with a reason, not a hang.
#[test]
fn pingpong_needs_two_cpus() {
    let b = boot("ipi-pingpong", 1);
    match &b.result.outcome {
        Outcome::Failed { errors } => {
            assert!(
                errors.iter().any(|e| e.msg.contains("at least 2 CPUs")),
                "{errors:?}"
            )
        }
        other => panic!("expected failed, got {other}"),
    }
}

/// A kernel-mode exception is reported with its vector, RIP and CR2, and the
/// harness names the outcome.
#[test]
fn kernel_page_fault_is_reported_with_vector_and_rip() {
    let b = boot_with("fault", 2, |s| {
        s.params = vec![("kind".into(), "pagefault".into())]
    });
    match &b.result.outcome {
        Outcome::Panic(p) => {
            assert!(p.msg.contains("exception 14 (#PF)"), "{}", p.msg);
            assert!(p.msg.contains("rip=0xffffffff8"), "{}", p.msg);
            assert!(p.msg.contains("cr2=0x700000000000"), "{}", p.msg);
        }
        other => panic!("expected a panic outcome, got {other}"),
    }
}
