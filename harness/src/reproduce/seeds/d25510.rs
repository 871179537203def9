//! Seed 003, FreeBSD D25510: the scoreboard against the global slot under
//! concurrent shootdowns from every CPU (mmap-storm, shoot-storm), in
//! throughput and in the initiator's wait.

use std::collections::BTreeSet;

use super::super::figures::wait_us_per_ipi_shootdown;
use super::super::format::{three_decimals, three_digits};
use super::super::rows::{not_measured, Kind, Row};
use super::super::template;
use super::super::{Reproduction, D25510_MMAP, D25510_SHOOT};

/// The key of this seed's note.
pub const NOTE: &str = "003";

/// The seed's experiments.
pub const EXPERIMENTS: [&str; 2] = [D25510_MMAP, D25510_SHOOT];

/// The row of experiment `id` on `cpus` CPUs.
pub fn row(o: &Reproduction, id: &str, cpus: u32) -> Row {
    let exp = o.plan.experiment(id).expect("caller checked");
    let wait_us = wait_us_per_ipi_shootdown;
    let summary = |variant: &str| -> String {
        if let Some(why) = o.why_not(&[id], &[variant]) {
            return format!("{variant}: not measured ({why})");
        }
        let ops = o
            .run_median(id, variant, cpus, |r| r.figure("ops_per_s"))
            .and_then(|m| m.median());
        let wait = o
            .run_median(id, variant, cpus, wait_us)
            .and_then(|m| m.median());
        match (ops, wait) {
            (Some(ops), wait) => format!(
                "{variant} {} ops/s, wait {}",
                three_digits(ops),
                wait.map(|w| format!("{} us", three_digits(w)))
                    .unwrap_or_else(|| "-".into())
            ),
            _ => format!("{variant}: no ok runs"),
        }
    };
    let ratio = o.per_rep(|rep| {
        let base = o.pool.get(id, "fixed", cpus, rep)?.figure("ops_per_s")?;
        let sb = o
            .pool
            .get(id, "scoreboard", cpus, rep)?
            .figure("ops_per_s")?;
        Some(sb / base)
    });
    let (lab, spread, measured) = match (o.why_not(&[id], &["fixed", "scoreboard"]), ratio) {
        (Some(why), _) => (
            format!("{}; scoreboard not measured: {why}", summary("fixed")),
            "-".into(),
            None,
        ),
        (None, None) => not_measured("no ok runs".into()),
        (None, Some(m)) => (
            format!(
                "{}; {}; throughput ratio {}",
                summary("fixed"),
                summary("scoreboard"),
                three_decimals(m.median().unwrap_or(f64::NAN))
            ),
            format!("ratio {}", m.range_over_reps(three_decimals)),
            Some(m),
        ),
    };
    Row {
        seed: "003 FreeBSD D25510".into(),
        published: "none: the review gives no figure".into(),
        definition: format!(
            "{} on {cpus} CPUs: ops/s (ops_per_s) and mean wait per IPI-sending shootdown \
             ((shoot.wait.slot + shoot.wait.ack) / shootdowns with IPIs, TSC cycles / tsc.hz); \
             scoreboard vs fixed (global slot), median over reps of the per-rep throughput ratio scoreboard/fixed",
            exp.label()
        ),
        lab,
        spread,
        measured,
        accel: o.accel_of(id),
        kind: Kind::Time,
        profile: None,
        note: NOTE,
    }
}

/// The seed's note: what TCG's vCPUs make of concurrent shootdowns.
pub fn note(o: &Reproduction) -> String {
    let over: BTreeSet<u32> = EXPERIMENTS
        .iter()
        .filter_map(|id| o.plan.experiment(id))
        .flat_map(|e| e.cpus.iter().copied())
        .filter(|&c| c > 2)
        .collect();
    let over = over
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(" and ");
    template::SEED_003.fill(&[("over", over)])
}
