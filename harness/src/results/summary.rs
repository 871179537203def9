//! Runs grouped over repetitions: a [`GroupKey`] is a cell without its rep,
//! and a [`GroupSummary`] holds that group's runs with medians and ranges
//! of any figure over the runs that completed (`ok`).

use std::collections::BTreeMap;
use std::fmt;

use super::derive::{runs, RunFigures};
use super::model::{Outcome, ResultRow};
use super::stats;

/// The display order of the variants named in DESIGN.md; other variants
/// follow in name order. Only charts and tables use it.
pub const VARIANT_ORDER: [&str; 11] = [
    "openbsd-2010",
    "uninit-bitmap",
    "fork-inherit",
    "fixed",
    "scoreboard",
    "scoreboard-padded",
    "dfly-batch",
    "shared-page-counted",
    "shared-page-opt",
    "dying-no-ipi",
    "lost-shootdown",
];

/// Sort key putting known variants first, in [`VARIANT_ORDER`].
pub fn variant_rank(variant: &str) -> (usize, String) {
    let rank = VARIANT_ORDER
        .iter()
        .position(|v| *v == variant)
        .unwrap_or(VARIANT_ORDER.len());
    (rank, variant.to_string())
}

/// A cell without its repetition number.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupKey {
    pub variant: String,
    pub workload: String,
    pub params: String,
    pub cpus: u32,
    pub accel: String,
    pub machine: String,
}

impl GroupKey {
    /// `variant/workload/cpus`, with `[params]` after the workload when it
    /// has parameters: the benchmark name exports use.
    pub fn bench_name(&self) -> String {
        if self.params.is_empty() {
            format!("{}/{}/{}", self.variant, self.workload, self.cpus)
        } else {
            format!(
                "{}/{}[{}]/{}",
                self.variant, self.workload, self.params, self.cpus
            )
        }
    }
}

impl fmt::Display for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "variant={} workload={} params=[{}] cpus={} accel={} machine={}",
            self.variant, self.workload, self.params, self.cpus, self.accel, self.machine
        )
    }
}

/// The runs of one group.
#[derive(Clone, Debug)]
pub struct GroupSummary {
    pub key: GroupKey,
    /// Every run, whatever its outcome, in rep order.
    pub runs: Vec<RunFigures>,
}

impl GroupSummary {
    /// The figure's value in every `ok` run that has it. `run.outcome` is
    /// taken from every run, so a bound on it sees the failures.
    pub fn values(&self, figure: &str) -> Vec<f64> {
        self.values_from(figure, false)
    }

    /// [`GroupSummary::values`], also taking runs whose outcome is
    /// `failed` when `include_failed` (the kernel finished its report but
    /// declared failure, e.g. the coherence oracle finding stale reads).
    pub fn values_from(&self, figure: &str, include_failed: bool) -> Vec<f64> {
        self.runs
            .iter()
            .filter(|r| {
                figure == "run.outcome"
                    || r.outcome.is_ok()
                    || (include_failed && r.outcome == Outcome::Failed)
            })
            .filter_map(|r| r.figure(figure))
            .filter(|v| v.is_finite())
            .collect()
    }

    pub fn median(&self, figure: &str) -> Option<f64> {
        stats::median(&self.values(figure))
    }

    pub fn range(&self, figure: &str) -> Option<(f64, f64)> {
        stats::range(&self.values(figure))
    }

    /// Number of runs per outcome (only outcomes that occurred).
    pub fn outcome_counts(&self) -> BTreeMap<Outcome, usize> {
        let mut counts = BTreeMap::new();
        for run in &self.runs {
            *counts.entry(run.outcome).or_default() += 1;
        }
        counts
    }

    /// `3 ok` or `2 ok, 1 timeout`.
    pub fn outcome_text(&self) -> String {
        self.outcome_counts()
            .iter()
            .map(|(o, n)| format!("{n} {o}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The unit of a raw metric figure, as reported.
    pub fn unit_of(&self, metric: &str) -> Option<&str> {
        self.runs
            .iter()
            .find_map(|r| r.units.get(metric).map(String::as_str))
    }
}

/// Groups the rows' runs over repetitions. Groups come in display order:
/// workload, params, cpus, variant (see [`VARIANT_ORDER`]), accel, machine.
pub fn summarize(rows: &[ResultRow]) -> Vec<GroupSummary> {
    let mut groups: BTreeMap<GroupKey, Vec<RunFigures>> = BTreeMap::new();
    for run in runs(rows) {
        let c = &run.cell;
        let key = GroupKey {
            variant: c.variant.clone(),
            workload: c.workload.clone(),
            params: c.params.clone(),
            cpus: c.cpus,
            accel: c.accel.clone(),
            machine: c.machine.clone(),
        };
        groups.entry(key).or_default().push(run);
    }
    let mut out: Vec<GroupSummary> = groups
        .into_iter()
        .map(|(key, mut runs)| {
            runs.sort_by_key(|r| r.cell.rep);
            GroupSummary { key, runs }
        })
        .collect();
    out.sort_by(|a, b| {
        let ka = &a.key;
        let kb = &b.key;
        (
            &ka.workload,
            &ka.params,
            ka.cpus,
            variant_rank(&ka.variant),
            &ka.accel,
            &ka.machine,
        )
            .cmp(&(
                &kb.workload,
                &kb.params,
                kb.cpus,
                variant_rank(&kb.variant),
                &kb.accel,
                &kb.machine,
            ))
    });
    out
}

/// A figure for people: `inf`, integers above 1000 without decimals,
/// else four significant digits (trailing zeros dropped).
pub fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return if v.is_nan() {
            "nan".into()
        } else if v > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    if v == 0.0 {
        return "0".into();
    }
    if v.abs() >= 1000.0 {
        return format!("{v:.0}");
    }
    let decimals = (3 - v.abs().log10().floor() as i32).max(0) as usize;
    let text = format!("{v:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::model::fixtures::{cell, matrix_rows, run};

    #[test]
    fn groups_over_reps_and_keeps_failures_visible() {
        let mut rows = matrix_rows(3);
        let mut failed = run(cell("fixed", "forkexit", 4, 4), 1.0, 1.0, 1.0);
        failed.outcome = Outcome::Timeout;
        failed.metrics.clear();
        rows.extend(failed.rows());
        let groups = summarize(&rows);
        assert_eq!(groups.len(), 8);
        // openbsd-2010 sorts before fixed, whatever the names' order.
        assert_eq!(groups[0].key.variant, "openbsd-2010");
        assert_eq!(
            groups[0].key.bench_name(),
            "openbsd-2010/forkexit[touch=on]/2"
        );
        let g = groups
            .iter()
            .find(|g| g.key.variant == "fixed" && g.key.workload == "forkexit" && g.key.cpus == 4)
            .unwrap();
        assert_eq!(g.runs.len(), 4);
        assert_eq!(g.outcome_text(), "3 ok, 1 timeout");
        assert_eq!(g.values("ipis_per_op").len(), 3);
        assert_eq!(g.values("run.outcome"), vec![1.0, 1.0, 1.0, 0.0]);
        assert!((g.median("ipis_per_op").unwrap() - 0.2).abs() < 1e-12);
        let (lo, hi) = g.range("ops_per_s").unwrap();
        assert!(lo < hi);
    }

    #[test]
    fn numbers_for_people() {
        assert_eq!(fmt_num(12345.6), "12346");
        assert_eq!(fmt_num(0.05), "0.05");
        assert_eq!(fmt_num(1.23456), "1.235");
        assert_eq!(fmt_num(0.000123456), "0.0001235");
        assert_eq!(fmt_num(20.0), "20");
        assert_eq!(fmt_num(f64::INFINITY), "inf");
        assert_eq!(fmt_num(0.0), "0");
    }
}
