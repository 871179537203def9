//! Shootdowns by cause (lab_core::cause) on the real kernel: in every
//! workload of the default matrix (plus pmap-selftest and shoot-storm), in
//! `fixed` and one variant of each family, the per-cause counters add up
//! exactly to the per-kind totals:
//! - sum over causes of `shoot.cause.<c>.<kind>.calls` == `shoot.calls.<kind>`
//! - ... `.noipi` == `shoot.noipi.<kind>`
//! - ... `.ipis` == `ipi.sent.<kind>` (only shootdowns send these kinds)
//! - sum over causes and kinds of `.ack_cycles` == `shoot.wait.ack`
//!
//! Absent cause metrics are 0. Small parameters, mostly 2 CPUs.

use std::thread;

use harness::outcome::Outcome;
use harness::report::Report;
use lab_core::cause::{ShootCause, CAUSE_KINDS};

use crate::common::*;

fn global0(r: &Report, name: &str) -> f64 {
    r.metric(name).unwrap_or(0.0)
}

fn cause_sum(r: &Report, kind: &str, field: &str) -> f64 {
    ShootCause::ALL
        .iter()
        .map(|c| global0(r, &format!("shoot.cause.{}.{kind}.{field}", c.name())))
        .sum()
}

/// Checks the identities on one run; returns the report.
fn check(variant: &str, workload: &str, cpus: u32, params: &[(&str, &str)]) -> Report {
    let b = boot_variant(variant, workload, cpus, |s| {
        s.params = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    });
    let what = format!("{variant} {workload} x{cpus}");
    let r = b.result.report;
    assert_eq!(
        b.result.outcome,
        Outcome::Ok,
        "{what}: {}",
        b.result.outcome
    );
    for kind in CAUSE_KINDS {
        for (field, total) in [
            ("calls", format!("shoot.calls.{kind}")),
            ("noipi", format!("shoot.noipi.{kind}")),
            ("ipis", format!("ipi.sent.{kind}")),
        ] {
            let want = r
                .metric(&total)
                .unwrap_or_else(|| panic!("{what}: no {total}"));
            assert_eq!(
                cause_sum(&r, kind, field),
                want,
                "{what}: {field} vs {total}"
            );
        }
    }
    let ack: f64 = CAUSE_KINDS
        .iter()
        .map(|k| cause_sum(&r, k, "ack_cycles"))
        .sum();
    assert_eq!(ack, global0(&r, "shoot.wait.ack"), "{what}: ack cycles");
    r
}

type Cell = (
    &'static str,
    &'static str,
    u32,
    &'static [(&'static str, &'static str)],
);

const FORKEXIT: &[(&str, &str)] = &[("loops", "40"), ("touch", "on")];
const BUILDKERNEL: &[(&str, &str)] = &[("jobs", "6"), ("link_regions", "4")];
const MMAP_STORM: &[(&str, &str)] = &[("ops", "20")];
const COHERENCE: &[(&str, &str)] = &[("remaps", "20"), ("rounds", "2")];

const CELLS: &[Cell] = &[
    ("fixed", "forkexit", 4, FORKEXIT),
    ("fixed", "buildkernel", 2, BUILDKERNEL),
    ("fixed", "mmap-storm", 2, MMAP_STORM),
    ("fixed", "coherence", 2, COHERENCE),
    ("fixed", "ipi-pingpong", 2, &[("rounds", "50")]),
    (
        "fixed",
        "busy-target",
        2,
        &[("busy_us", "200"), ("rounds", "5")],
    ),
    ("fixed", "fuzz", 2, &[("calls", "1000")]),
    ("fixed", "pmap-selftest", 2, &[("shoot_rounds", "20")]),
    ("fixed", "shoot-storm", 2, &[("ops", "50")]),
    ("openbsd-2010", "forkexit", 4, FORKEXIT),
    ("openbsd-2010", "mmap-storm", 2, MMAP_STORM),
    ("freebsd-before", "forkexit", 2, FORKEXIT),
    ("shared-page-opt", "forkexit", 4, FORKEXIT),
    ("shared-page-opt", "buildkernel", 2, BUILDKERNEL),
    ("dfly-batch", "mmap-storm", 2, MMAP_STORM),
    ("dfly-batch", "coherence", 2, COHERENCE),
    ("dfly-batch", "pmap-selftest", 2, &[("shoot_rounds", "20")]),
    ("scoreboard", "shoot-storm", 4, &[("ops", "50")]),
    ("scoreboard", "buildkernel", 2, BUILDKERNEL),
];

#[test]
fn per_cause_sums_equal_per_kind_totals() {
    // Build every kernel first (serialised), then boot two at a time.
    for (variant, ..) in CELLS {
        kernel_for(variant);
    }
    thread::scope(|s| {
        for &(variant, workload, cpus, params) in CELLS {
            s.spawn(move || check(variant, workload, cpus, params));
        }
    });
}

/// The causes name the mechanism: fixed's forkexit sends its shoottlb IPIs
/// from the exit teardown; the kernel workloads count under their own.
#[test]
fn causes_name_the_operations() {
    let r = check("fixed", "forkexit", 2, FORKEXIT);
    let tlb = global0(&r, "ipi.sent.shoottlb");
    assert!(tlb > 0.0, "fixed forkexit x2 sent no shoottlb");
    assert_eq!(global0(&r, "shoot.cause.exit.shoottlb.ipis"), tlb);
    assert!(global0(&r, "shoot.cause.fork_protect.shootrange.calls") > 0.0);
    assert!(global0(&r, "shoot.cause.cow.shootpage.calls") > 0.0);
    let r = check("fixed", "shoot-storm", 2, &[("ops", "20")]);
    assert!(global0(&r, "shoot.cause.kernel.shootpage.ipis") > 0.0);
}
