//! Seed 001, DragonFly 2004: the synchronous IPI's round trip and a real
//! shootpage's wait for its acknowledgement, each followed by its modeled
//! rows.

use super::super::format::three_digits;
use super::super::rows::{not_measured, Kind, Row};
use super::super::template;
use super::super::{Reproduction, DFLY_PINGPONG, DFLY_SHOOTPAGE};

/// The key of this seed's note.
pub const NOTE: &str = "001";

/// Whether the plan has any of this seed's experiments.
pub fn planned(o: &Reproduction) -> bool {
    o.has(DFLY_PINGPONG) || o.has(DFLY_SHOOTPAGE)
}

/// The seed's rows, measured and modeled.
pub fn rows(o: &Reproduction) -> Vec<Row> {
    let mut rows = Vec::new();
    for (id, metric, what, published) in [
        (
            DFLY_PINGPONG,
            "pingpong.rtt.median_ns",
            "ipi-pingpong on 2 CPUs: median round trip of an IPI and its reply (pingpong.rtt.median_ns)",
            "synchronous IPI, call to completion: 4-5 us (2-CPU P3 1.1 GHz; includes a dummy syscall)",
        ),
        (
            DFLY_SHOOTPAGE,
            "shoot.ack.shootpage.median_ns",
            "pmap-selftest on 2 CPUs, fixed: median wait from sending shootpage IPIs to every ack (shoot.ack.shootpage.median_ns)",
            "the same 4-5 us: a synchronous shootdown waits for the target's acknowledgement",
        ),
    ] {
        if !o.has(id) {
            continue;
        }
        let cpus = o.plan.experiment(id).map(|e| e.cpus[0]).unwrap_or(2);
        let us = o.run_median(id, "fixed", cpus, |r| r.total(metric).map(|ns| ns / 1000.0));
        let (lab, spread, measured) = match (o.why_not(&[id], &["fixed"]), us) {
            (Some(why), _) => not_measured(why),
            (None, None) => not_measured(format!("the runs reported no {metric}")),
            (None, Some(m)) => (
                format!("{} us", three_digits(m.median().unwrap_or(f64::NAN))),
                m.range_over_reps(|v| format!("{} us", three_digits(v))),
                Some(m),
            ),
        };
        let modeled = super::super::modeled_seeds::dfly(o, id == DFLY_SHOOTPAGE);
        rows.push(Row {
            seed: "001 DragonFly 2004".into(),
            published: published.into(),
            definition: what.into(),
            lab,
            spread,
            measured,
            accel: o.accel_of(id),
            kind: Kind::Time,
            profile: None,
            note: NOTE,
        });
        rows.extend(modeled);
    }
    rows
}

/// The seed's note: what an IPI's time is under TCG.
pub fn note() -> String {
    template::SEED_001.fill(&[])
}
