//! 64 vCPUs, the most the kernel supports (a u64 CPU set): bring-up on
//! both machines (q35's through the ACPI MADT with the pmap self-test,
//! microvm's with the user-mode test and a shoot-storm), each test on
//! every CPU, and IPI accounting that balances. One boot per machine and
//! program is enough: every boot checks bring-up and balance, and each
//! program runs the same code on either machine. Under tcg-icount (one host thread for
//! all 64 vCPUs), so each boot takes one host core: 10-40 s each here.

use std::time::Duration;

use harness::accel::Accel;
use harness::outcome::Outcome;
use harness::qemu::Machine;
use lab_core::report::Scope;

use crate::common::*;

const CPUS: u32 = 64;

/// Boots `fixed` with `workload` on 64 vCPUs of `machine` and checks what
/// every scale run must show: ok, all 64 CPUs online, IPIs balanced, and
/// the guest's boot time reported.
fn boot_64(workload: &str, machine: Machine) -> Boot {
    let b = boot_with(workload, CPUS, |s| {
        s.machine = machine;
        s.accel = Accel::TcgIcount;
        s.timeout = Duration::from_secs(400);
    });
    let r = &b.result;
    let what = format!("{workload} on {machine:?} x{CPUS}");
    assert_eq!(r.outcome, Outcome::Ok, "{what}: {}", r.outcome);
    assert_eq!(r.report.begin.as_ref().unwrap().cpus, CPUS, "{what}");
    let online = metrics(&r.report, "cpu.online")
        .into_iter()
        .filter(|(scope, v)| matches!(scope, Scope::Cpu(c) if *c < CPUS) && *v == 1.0)
        .count();
    assert_eq!(online as u32, CPUS, "{what}: CPUs online");
    assert_ipis_balanced(&r.report);
    assert!(
        r.report.metric("boot.begin_ns").unwrap_or(0.0) > 0.0,
        "{what}: no boot.begin_ns"
    );
    eprintln!("{what}: wall {:.1} s", r.wall.as_secs_f64());
    b
}

#[test]
fn pmap_selftest_on_64_cpus_q35() {
    boot_64("pmap-selftest", Machine::Q35);
}

#[test]
fn usertest_on_64_cpus_microvm() {
    boot_64("usertest", Machine::Microvm);
}

/// Shootdowns reach the top CPUs: a storm on 64 CPUs sends IPIs to CPU 63
/// and from it, every one received.
#[test]
fn shoot_storm_reaches_cpu_63() {
    let b = boot_with("shoot-storm", CPUS, |s| {
        s.accel = Accel::TcgIcount;
        s.timeout = Duration::from_secs(400);
        s.params = vec![("ops".into(), "5".into())];
    });
    let r = &b.result;
    assert_eq!(r.outcome, Outcome::Ok, "{}", r.outcome);
    assert_ipis_balanced(&r.report);
    let to_63 = metrics(&r.report, "ipi.pair.received.shootpage")
        .into_iter()
        .filter(|(scope, v)| matches!(scope, Scope::Pair { to: 63, .. }) && *v > 0.0)
        .count();
    assert_eq!(to_63, 63, "shootpage IPIs to CPU 63 from every other CPU");
    eprintln!("shoot-storm x{CPUS}: wall {:.1} s", r.wall.as_secs_f64());
}
