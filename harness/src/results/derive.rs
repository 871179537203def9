//! Figures derived from one run's rows.
//!
//! A *figure* is a number per run that charts, exports and gate rules
//! refer to by name. It is either a derived figure below, or the name of
//! any metric the run reported (its Global value, or the sum of its Cpu
//! values when the run has no Global row for it).
//!
//! | figure | definition | unit | class |
//! |---|---|---|---|
//! | `ops` | workload.ops (or an alias, below) | ops | exact |
//! | `ops_per_s` | workload.ops / (workload.elapsed_ns / 1e9) | ops/s | timing |
//! | `ipis_per_op` | sum of ipi.sent.{shootpage,shootrange,shoottlb} / workload.ops | IPIs/op | sched |
//! | `ipis_per_op.<kind>` | ipi.sent.<kind> / workload.ops (kind incl. `other`) | IPIs/op | sched |
//! | `ipis_per_op.cause.<cause>` | sum over kinds of shoot.cause.<cause>.<kind>.ipis / workload.ops | IPIs/op | sched |
//! | `spared_per_op.cause.<cause>` | sum over kinds of shoot.cause.<cause>.<kind>.spared / workload.ops: IPIs a shortcut took out | IPIs/op | sched |
//! | `page_range_ipis_per_op` | (ipi.sent.shootpage + ipi.sent.shootrange) / workload.ops | IPIs/op | sched |
//! | `shootdowns_per_op` | sum of shoot.calls.* / workload.ops | calls/op | sched |
//! | `noipi_share` | sum of shoot.noipi.* / sum of shoot.calls.* | ratio | sched |
//! | `ipi_unreceived` | \|sum of ipi.sent.* - sum of ipi.received.*\| over all kinds | IPIs | exact |
//! | `sent_eq_received` | 1 when every kind's sent equals its received, else 0 | bool | exact |
//! | `frames_unbalanced` | \|mem.frames.free_start - mem.frames.free_end\| | frames | exact |
//! | `remove_early_share` | pmap.remove.early / pmap.remove.calls | ratio | exact |
//! | `ack_wait_mean` | shoot.wait.ack / (shootdown calls that sent IPIs) | cycles | timing |
//! | `ack_wait_p50`, `_p90`, `_p99` | quantile of the shoot.wait.ack.log2 histogram (bucket's upper edge) | cycles | timing |
//! | `stale_reads` | coherence.stale_reads (or coherence.stale) | count | sched |
//! | `model.<p>.ops_per_s` | ops / (model.<p>.workload.ns / 1e9): the rate on profile p's modeled clocks | ops/s | timing |
//! | `model.<p>.per_op.<m>` | model.<p>.<m> / ops (e.g. `coh.misses`, `coh.false_sharing`, `tlb.misses`) | per op | sched |
//! | `model.<p>.wait_per_shootdown` | model.<p>.wait.cycles / model.<p>.wait.count: the initiator's modeled wait | cycles | timing |
//! | `model.<p>.shoot_per_shootdown` | model.<p>.shoot.cycles / model.<p>.shoot.count: a shootdown, start to acks | cycles | timing |
//! | `model.<p>.ipi_latency` | model.<p>.ipi.latency_cycles / model.<p>.ipi.entered: send to handler | cycles | timing |
//!
//! Every `model.` figure is *modeled* (the memory-system model under
//! `tcg-model`, model/README.md), never measured: computed from the
//! guest's own accesses with a cost profile's costs, and named apart.
//!
//! The class ([`FigureClass`], from [`figure_info`]) says how the gate may
//! compare a figure: *timing* depends on time (repeatable only under
//! tcg-icount); *sched*, a scheduling-dependent count, is exact on one CPU
//! or under tcg-icount and noisy elsewhere; *exact* counts repeat under
//! any accelerator. A raw metric's class comes from its name and unit.
//!
//! A figure is `None` when an input is missing or a denominator is 0.
//! The kernel leaves out cause metrics that are 0 (lab_core::cause), so
//! `ipis_per_op.cause.<cause>` takes an absent one as 0 when the run
//! reported any `shoot.cause.*` metric or sent no shootdown IPI at all,
//! and is `None` for a run recorded before causes were counted.
//!
//! Aliases: where a run lacks `workload.ops`, the first of
//! `<workload>.ops`, `.loops`, `.jobs.finished`, `.checks`, `.round_trips`
//! stands for it, and `<workload>.elapsed_ns` for `workload.elapsed_ns`:
//! the names the user programs report under (forkexit.loops,
//! buildkernel.jobs.finished, mmap-storm.ops, coherence.checks). The user
//! programs also report the canonical `workload.ops` and
//! `workload.elapsed_ns` (ulib's `report::workload`), which win; the
//! aliases keep results recorded before that readable. The
//! kernel's own workloads count in their own words: pmap-selftest's ops are
//! its `selftest.checks`, ipi-pingpong's are its round trips,
//! `pingpong.rounds` (per pair) x `pingpong.pairs`. Neither reports an
//! elapsed time, so they have no `ops_per_s`.

use std::collections::BTreeMap;

use lab_core::cause::ShootCause;
use lab_core::metrics::Event;
use lab_core::report::Scope;

use super::model::{Cell, Outcome, ResultRow};

/// IPI kinds that are TLB shootdowns.
pub const SHOOT_KINDS: [&str; 3] = ["shootpage", "shootrange", "shoottlb"];
/// The shootdowns that name what they invalidate (seed 000's figure: the
/// ones a wrong `pm_cpus` sends to CPUs that never ran the pmap, where
/// OpenBSD 2010's shoottlb goes to every CPU anyway).
pub const PAGE_RANGE_KINDS: [&str; 2] = ["shootpage", "shootrange"];
/// Every IPI kind the kernel counts.
pub const IPI_KINDS: [&str; 4] = ["shootpage", "shootrange", "shoottlb", "other"];
/// Prefix of the per-cause IPI figures (`ipis_per_op.cause.<cause>`).
pub const CAUSE_FIGURE_PREFIX: &str = "ipis_per_op.cause.";
/// Prefix of the per-cause figures of IPIs a shortcut spared
/// (`spared_per_op.cause.<cause>`).
pub const SPARED_FIGURE_PREFIX: &str = "spared_per_op.cause.";
/// Prefix of everything the memory-system model reports (`tcg-model`):
/// its metrics are `model.<profile>.<name>`, its derived figures too.
pub const MODEL_PREFIX: &str = "model.";
/// `model.<profile>.per_op.<metric>`: a model metric per workload op.
pub const MODEL_PER_OP: &str = "per_op.";

/// Prefix of the acknowledgement-wait histogram buckets.
pub const ACK_HIST_PREFIX: &str = "shoot.wait.ack.log2.";

/// Which way a figure is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Better {
    Lower,
    Higher,
    /// Neither (a count to bound, not to optimise).
    Neither,
}

/// How far a figure can be trusted to repeat, which decides how the gate
/// may compare it (harness/src/gate/mod.rs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FigureClass {
    /// Depends on time (rates, waits): repeatable only under a repeatable
    /// clock (accel `tcg-icount`); elsewhere a statistical comparison.
    Timing,
    /// A count that depends on scheduling when a run has more than one
    /// CPU (which CPU a child lands on decides whom a shootdown
    /// interrupts; how often the oracle's readers race the writer):
    /// IPIs, shootdown calls and no-IPI shares, stale reads. On one CPU,
    /// or under `tcg-icount` (one deterministic round robin), it is exact.
    SchedCount,
    /// A count the workload fixes whatever the scheduling: calls, early
    /// returns, operations, outcomes, and invariants (sent == received).
    ExactCount,
}

impl FigureClass {
    /// The class of the figure in a run of `cpus` CPUs: a scheduling-
    /// dependent count is exact on one CPU.
    pub fn on_cpus(self, cpus: u32) -> FigureClass {
        match self {
            FigureClass::SchedCount if cpus <= 1 => FigureClass::ExactCount,
            c => c,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            FigureClass::Timing => "timing",
            FigureClass::SchedCount => "scheduling-dependent count",
            FigureClass::ExactCount => "exact count",
        }
    }
}

/// What is known about a figure by name.
#[derive(Clone, Debug, PartialEq)]
pub struct FigureInfo {
    pub unit: String,
    pub better: Better,
    /// Timing, scheduling-dependent count or exact count.
    pub class: FigureClass,
}

impl FigureInfo {
    /// Depends on time, so it is only comparable across runs under a
    /// repeatable clock (accel `tcg-icount`) or statistically.
    pub fn timing(&self) -> bool {
        self.class == FigureClass::Timing
    }
}

/// Facts about `name`: fixed for derived figures; for a raw metric, from
/// its name and `unit` (time units mean timing; IPI, shootdown and
/// coherence counters depend on scheduling; other counts are exact).
///
/// | class | figures |
/// |---|---|
/// | timing | `ops_per_s`, `ack_wait_*`, `shoot.wait.*`, metrics in ns/us/ms/s/cycles/hz |
/// | scheduling-dependent count | `ipis_per_op[.kind]`, `shootdowns_per_op`, `noipi_share`, `stale_reads`, `kstorm.checks`, `kstorm.stale`, `ipi.*`, `shoot.*`, `coherence.*`, `sched.*` (switches, CR3 loads), `lazy.*`, `pmap.enter.*` (which writes find a frame no longer shared) |
/// | exact count | `ops`, `run.outcome`, `ipi_unreceived`, `sent_eq_received`, `remove_early_share`, `latr_unapplied`, `shoot.*_lines` (the protocol's cache-line footprint), `pmap.*` and other counts |
pub fn figure_info(name: &str, raw_unit: Option<&str>) -> FigureInfo {
    use FigureClass::{ExactCount, SchedCount, Timing};
    let info = |unit: &str, better, class| FigureInfo {
        unit: unit.to_string(),
        better,
        class,
    };
    match name {
        "ops_per_s" => info("ops/s", Better::Higher, Timing),
        "ipis_per_op" | "page_range_ipis_per_op" => info("IPIs/op", Better::Lower, SchedCount),
        n if n.starts_with("ipis_per_op.") => info("IPIs/op", Better::Lower, SchedCount),
        n if n.starts_with(SPARED_FIGURE_PREFIX) => info("IPIs/op", Better::Neither, SchedCount),
        "shootdowns_per_op" => info("calls/op", Better::Lower, SchedCount),
        "noipi_share" => info("ratio", Better::Higher, SchedCount),
        // A ratio of two acknowledgement waits (busy-target): timing.
        "busytarget.ack_ratio_pct" => info("%", Better::Lower, Timing),
        // An invariant: 0 whatever the scheduling.
        "ipi_unreceived" => info("IPIs", Better::Lower, ExactCount),
        "sent_eq_received" => info("bool", Better::Higher, ExactCount),
        "remove_early_share" => info("ratio", Better::Higher, ExactCount),
        // LATR's records queued against applied at the end: every lazy
        // munmap's quarantine is settled by the exit of its process.
        "latr_unapplied" => info("records", Better::Lower, ExactCount),
        // The frame allocator's count at the end against the start: exact.
        "frames_unbalanced" => info("frames", Better::Lower, ExactCount),
        "ack_wait_mean" | "ack_wait_p50" | "ack_wait_p90" | "ack_wait_p99" => {
            info("cycles", Better::Lower, Timing)
        }
        "run.outcome" => info("bool", Better::Higher, ExactCount),
        "ops" => info("ops", Better::Higher, ExactCount),
        "stale_reads" => info("count", Better::Lower, SchedCount),
        // shoot-storm's oracle: the window reads are try-locked, so how
        // many are made depends on the interleaving; the interrupts-off
        // passes (`kstorm.irqoff_checks`) and `kstorm.ops` are fixed by
        // the parameters.
        "kstorm.checks" | "kstorm.stale" => info("count", Better::Neither, SchedCount),
        // The model's figures: deterministic under tcg-model, but they
        // follow the guest's interleaving as its own counts do.
        n if n.starts_with(MODEL_PREFIX) => {
            let unit = raw_unit.unwrap_or("");
            if n.ends_with(".ops_per_s") {
                info("ops/s", Better::Higher, Timing)
            } else if n.ends_with("_per_shootdown") || n.ends_with(".ipi_latency") {
                info("cycles", Better::Lower, Timing)
            } else if n.contains(".per_op.") {
                info("per op", Better::Lower, SchedCount)
            } else if matches!(unit, "cycles" | "ns") {
                info(unit, Better::Neither, Timing)
            } else {
                info(unit, Better::Neither, SchedCount)
            }
        }
        // The protocol's cache-line footprint (mm::shootdown::report):
        // computed from the layout, the same in every run of a kernel.
        n if n.starts_with("shoot.") && n.ends_with("_lines") => {
            info("lines", Better::Neither, ExactCount)
        }
        _ => {
            let unit = raw_unit.unwrap_or("");
            let class = if matches!(unit, "ns" | "us" | "ms" | "s" | "cycles" | "hz")
                || name.starts_with("shoot.wait.")
            {
                Timing
            } else if [
                "ipi.",
                "shoot.",
                "coherence.",
                "sched.",
                "lazy.",
                "latr.",
                "pmap.enter.",
            ]
            .iter()
            .any(|p| name.starts_with(p))
            {
                SchedCount
            } else {
                ExactCount
            };
            info(unit, Better::Neither, class)
        }
    }
}

/// One run, reduced to what figures are computed from.
#[derive(Clone, Debug, PartialEq)]
pub struct RunFigures {
    pub cell: Cell,
    pub outcome: Outcome,
    pub git_rev: String,
    /// Global value of each metric (or the sum of its Cpu rows).
    pub totals: BTreeMap<String, f64>,
    /// Unit of each metric.
    pub units: BTreeMap<String, String>,
    /// IPIs sent per (from, to), summed over kinds (ipi.pair.sent.*).
    pub pairs: BTreeMap<(u32, u32), f64>,
    /// Acknowledgement-wait histogram: bucket b -> count.
    pub ack_hist: BTreeMap<u32, f64>,
}

impl RunFigures {
    /// Reduces the rows of one run (all with the same cell).
    pub fn from_rows<'a>(rows: impl IntoIterator<Item = &'a ResultRow>) -> Option<RunFigures> {
        let mut rows = rows.into_iter().peekable();
        let first = rows.peek()?;
        let mut run = RunFigures {
            cell: first.cell(),
            outcome: first.outcome,
            git_rev: first.git_rev.clone(),
            totals: BTreeMap::new(),
            units: BTreeMap::new(),
            pairs: BTreeMap::new(),
            ack_hist: BTreeMap::new(),
        };
        let mut global = BTreeMap::new();
        let mut per_cpu: BTreeMap<String, f64> = BTreeMap::new();
        for row in rows {
            run.units.insert(row.metric.clone(), row.unit.clone());
            match row.scope() {
                Scope::Global => {
                    global.insert(row.metric.clone(), row.value);
                }
                Scope::Cpu(_) => *per_cpu.entry(row.metric.clone()).or_default() += row.value,
                Scope::Pair { from, to } => {
                    if row.metric.starts_with("ipi.pair.sent.") {
                        *run.pairs.entry((from, to)).or_default() += row.value;
                    }
                }
            }
        }
        run.totals = per_cpu;
        run.totals.extend(global);
        for (name, value) in &run.totals {
            if let Some(b) = name.strip_prefix(ACK_HIST_PREFIX) {
                if let Ok(b) = b.parse() {
                    run.ack_hist.insert(b, *value);
                }
            }
        }
        Some(run)
    }

    /// The metric's total, if the run reported it.
    pub fn total(&self, metric: &str) -> Option<f64> {
        self.totals.get(metric).copied()
    }

    /// Sum of `<prefix><kind>` over `kinds`; `None` if none was reported.
    /// The sum of `prefix` + each of `kinds` present, `None` if none is.
    pub fn sum_kinds(&self, prefix: &str, kinds: &[&str]) -> Option<f64> {
        let values: Vec<f64> = kinds
            .iter()
            .filter_map(|k| self.total(&format!("{prefix}{k}")))
            .collect();
        (!values.is_empty()).then(|| values.iter().sum())
    }

    /// The named figure (see the module doc), or `None`.
    pub fn figure(&self, name: &str) -> Option<f64> {
        let ratio = |num: Option<f64>, den: Option<f64>| match (num, den) {
            (Some(n), Some(d)) if d != 0.0 => Some(n / d),
            _ => None,
        };
        let ops = || self.ops();
        match name {
            "ops" => self.ops(),
            "ops_per_s" => ratio(ops(), self.elapsed_ns().map(|ns| ns / 1e9)),
            "stale_reads" => self
                .total("coherence.stale_reads")
                .or_else(|| self.total("coherence.stale")),
            "ipis_per_op" => ratio(self.sum_kinds("ipi.sent.", &SHOOT_KINDS), ops()),
            "page_range_ipis_per_op" => {
                ratio(self.sum_kinds("ipi.sent.", &PAGE_RANGE_KINDS), ops())
            }
            "shootdowns_per_op" => ratio(self.sum_kinds("shoot.calls.", &SHOOT_KINDS), ops()),
            "noipi_share" => ratio(
                self.sum_kinds("shoot.noipi.", &SHOOT_KINDS),
                self.sum_kinds("shoot.calls.", &SHOOT_KINDS),
            ),
            "ipi_unreceived" => Some(
                (self.sum_kinds("ipi.sent.", &IPI_KINDS)?
                    - self.sum_kinds("ipi.received.", &IPI_KINDS)?)
                .abs(),
            ),
            "sent_eq_received" => {
                self.sum_kinds("ipi.sent.", &IPI_KINDS)?;
                let all_equal = IPI_KINDS.iter().all(|k| {
                    self.total(&format!("ipi.sent.{k}")).unwrap_or(0.0)
                        == self.total(&format!("ipi.received.{k}")).unwrap_or(0.0)
                });
                Some(if all_equal { 1.0 } else { 0.0 })
            }
            "latr_unapplied" => {
                // Every target a record named (latr.deferred) applied it.
                Some(
                    (self.total(Event::LatrDeferred.name())?
                        - self.total(Event::LatrApplied.name())?)
                    .abs(),
                )
            }
            "frames_unbalanced" => Some(
                (self.total("mem.frames.free_start")? - self.total("mem.frames.free_end")?).abs(),
            ),
            "remove_early_share" => ratio(
                self.total(Event::PmapRemoveEarly.name()),
                self.total(Event::PmapRemoveCalls.name()),
            ),
            "ack_wait_mean" => {
                let calls = self.sum_kinds("shoot.calls.", &SHOOT_KINDS)?;
                let noipi = self.sum_kinds("shoot.noipi.", &SHOOT_KINDS).unwrap_or(0.0);
                ratio(self.total(Event::AckWaitCycles.name()), Some(calls - noipi))
            }
            "ack_wait_p50" => self.ack_quantile(0.50),
            "ack_wait_p90" => self.ack_quantile(0.90),
            "ack_wait_p99" => self.ack_quantile(0.99),
            n if n.starts_with(CAUSE_FIGURE_PREFIX) => {
                let cause = ShootCause::from_name(&n[CAUSE_FIGURE_PREFIX.len()..])?;
                ratio(self.cause_ipis(cause), ops())
            }
            n if n.starts_with(SPARED_FIGURE_PREFIX) => {
                let cause = ShootCause::from_name(&n[SPARED_FIGURE_PREFIX.len()..])?;
                ratio(self.cause_field(cause, "spared"), ops())
            }
            n if n.starts_with(MODEL_PREFIX) => self.modeled(n),
            n => match n.strip_prefix("ipis_per_op.") {
                Some(kind) => ratio(self.total(&format!("ipi.sent.{kind}")), ops()),
                None => self.total(n),
            },
        }
    }

    /// A modeled figure (`model.<profile>.<what>`, see the module doc):
    /// derived from the model's metrics and the guest's op count, else the
    /// model's metric of that name.
    fn modeled(&self, name: &str) -> Option<f64> {
        let ratio = |num: Option<f64>, den: Option<f64>| match (num, den) {
            (Some(n), Some(d)) if d != 0.0 => Some(n / d),
            _ => None,
        };
        let rest = &name[MODEL_PREFIX.len()..];
        let (profile, what) = rest.split_once('.')?;
        let metric = |m: &str| self.total(&format!("{MODEL_PREFIX}{profile}.{m}"));
        if let Some(m) = what.strip_prefix(MODEL_PER_OP) {
            return ratio(metric(m), self.ops());
        }
        match what {
            "ops_per_s" => ratio(self.ops(), metric("workload.ns").map(|ns| ns / 1e9)),
            "wait_per_shootdown" => ratio(metric("wait.cycles"), metric("wait.count")),
            "shoot_per_shootdown" => ratio(metric("shoot.cycles"), metric("shoot.count")),
            "ipi_latency" => ratio(metric("ipi.latency_cycles"), metric("ipi.entered")),
            _ => self.total(name),
        }
    }

    /// Shootdown IPIs sent for `cause`, over kinds (absent metrics are 0);
    /// `None` if the run predates the cause counters (see the module doc).
    pub fn cause_ipis(&self, cause: ShootCause) -> Option<f64> {
        self.cause_field(cause, "ipis")
    }

    /// `shoot.cause.<cause>.<kind>.<field>` summed over kinds (absent
    /// metrics are 0); `None` if the run predates the cause counters.
    pub fn cause_field(&self, cause: ShootCause, field: &str) -> Option<f64> {
        let counted = self.totals.keys().any(|k| k.starts_with("shoot.cause."))
            || self.sum_kinds("ipi.sent.", &SHOOT_KINDS) == Some(0.0);
        counted.then(|| {
            SHOOT_KINDS
                .iter()
                .filter_map(|k| self.total(&format!("shoot.cause.{}.{k}.{field}", cause.name())))
                .sum()
        })
    }

    /// The workload's operation count: `workload.ops`, or the first alias
    /// the run reported (see the module doc).
    pub fn ops(&self) -> Option<f64> {
        let w = &self.cell.workload;
        self.total("workload.ops")
            .or_else(|| {
                ["ops", "loops", "jobs.finished", "checks", "round_trips"]
                    .iter()
                    .find_map(|suffix| self.total(&format!("{w}.{suffix}")))
            })
            .or_else(|| match w.as_str() {
                "pmap-selftest" => self.total("selftest.checks"),
                "ipi-pingpong" => {
                    Some(self.total("pingpong.rounds")? * self.total("pingpong.pairs")?)
                }
                _ => None,
            })
    }

    /// The workload's elapsed guest time: `workload.elapsed_ns`, or
    /// `<workload>.elapsed_ns`.
    pub fn elapsed_ns(&self) -> Option<f64> {
        self.total("workload.elapsed_ns")
            .or_else(|| self.total(&format!("{}.elapsed_ns", self.cell.workload)))
    }

    /// The upper edge (cycles) of the histogram bucket holding quantile q.
    fn ack_quantile(&self, q: f64) -> Option<f64> {
        hist_quantile(&self.ack_hist, q)
    }
}

/// The upper edge `2^(b+1)` of the first bucket of the log2 histogram
/// `hist` at which the cumulative share reaches `q`; `None` if empty.
pub fn hist_quantile(hist: &BTreeMap<u32, f64>, q: f64) -> Option<f64> {
    let total: f64 = hist.values().sum();
    if total <= 0.0 {
        return None;
    }
    let mut seen = 0.0;
    for (&b, &n) in hist {
        seen += n;
        if seen / total >= q {
            return Some(2f64.powi(b as i32 + 1));
        }
    }
    hist.keys().last().map(|&b| 2f64.powi(b as i32 + 1))
}

/// Groups rows by cell and reduces each run, in cell order.
pub fn runs(rows: &[ResultRow]) -> Vec<RunFigures> {
    let mut by_cell: BTreeMap<Cell, Vec<&ResultRow>> = BTreeMap::new();
    for row in rows {
        by_cell.entry(row.cell()).or_default().push(row);
    }
    by_cell
        .into_values()
        .filter_map(RunFigures::from_rows)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::model::fixtures::{cell, run};
    use crate::results::model::Metric;

    #[test]
    fn derived_figures_follow_their_definitions() {
        // TEST FIXTURE: 1000 ops in 500 ms, 40 shootpage IPIs.
        let mut rec = run(cell("fixed", "forkexit", 4, 1), 1000.0, 500.0, 40.0);
        rec.metrics.push(Metric::new(
            "ipi.sent.shoottlb",
            10.0,
            "count",
            Scope::Global,
        ));
        rec.metrics.push(Metric::new(
            "ipi.received.shoottlb",
            9.0,
            "count",
            Scope::Global,
        ));
        rec.metrics.push(Metric::new(
            "pmap.remove.calls",
            200.0,
            "count",
            Scope::Cpu(0),
        ));
        rec.metrics.push(Metric::new(
            "pmap.remove.calls",
            100.0,
            "count",
            Scope::Cpu(1),
        ));
        rec.metrics.push(Metric::new(
            "pmap.remove.early",
            60.0,
            "count",
            Scope::Global,
        ));
        let rows = rec.rows();
        let f = RunFigures::from_rows(&rows).unwrap();
        assert_eq!(f.figure("ops_per_s"), Some(2000.0));
        assert_eq!(f.figure("ipis_per_op"), Some(0.05));
        assert_eq!(f.figure("ipis_per_op.shootpage"), Some(0.04));
        assert_eq!(f.figure("ipis_per_op.other"), None);
        // 40 shootpage and 0 shootrange; the 10 shoottlb are left out.
        assert_eq!(f.figure("page_range_ipis_per_op"), Some(0.04));
        let mut rec = rec.clone();
        rec.metrics
            .iter_mut()
            .filter(|m| m.name == "ipi.sent.shootrange" && m.scope == Scope::Global)
            .for_each(|m| m.value = 60.0);
        let with_range = RunFigures::from_rows(&rec.rows()).unwrap();
        assert_eq!(with_range.figure("page_range_ipis_per_op"), Some(0.1));
        // 2000 calls, 1960 without IPI.
        assert_eq!(f.figure("noipi_share"), Some(0.98));
        assert_eq!(f.figure("sent_eq_received"), Some(0.0));
        assert_eq!(f.figure("ipi_unreceived"), Some(1.0));
        // Cpu rows add up when there is no Global row.
        assert_eq!(f.figure("remove_early_share"), Some(0.2));
        // Global wins over the sum of Cpu rows (40 vs 4 x 10).
        assert_eq!(f.total("ipi.sent.shootpage"), Some(40.0));
        assert_eq!(f.figure("ack_wait_mean"), Some(40.0 * 3000.0 / 40.0));
        assert_eq!(f.figure("workload.ops"), Some(1000.0));
        assert_eq!(f.figure("no.such.metric"), None);
        assert_eq!(f.pairs.len(), 12);
        assert!(f.figure("ack_wait_p50").unwrap() >= 2f64.powi(11));
        // Frames: none reported, no figure; 3 fewer free at the end: 3.
        assert_eq!(f.figure("frames_unbalanced"), None);
        let mut leaky = rec.clone();
        for (name, v) in [
            ("mem.frames.free_start", 100.0),
            ("mem.frames.free_end", 97.0),
        ] {
            leaky
                .metrics
                .push(Metric::new(name, v, "count", Scope::Global));
        }
        let leaky = RunFigures::from_rows(&leaky.rows()).unwrap();
        assert_eq!(leaky.figure("frames_unbalanced"), Some(3.0));
    }

    #[test]
    fn user_program_names_stand_in_for_the_convention() {
        // TEST FIXTURE: forkexit as the user program reports it.
        let mut rec = run(cell("fixed", "forkexit", 2, 1), 0.0, 0.0, 50.0);
        rec.metrics.retain(|m| !m.name.starts_with("workload."));
        rec.metrics
            .push(Metric::new("forkexit.loops", 500.0, "count", Scope::Global));
        rec.metrics
            .push(Metric::new("forkexit.elapsed_ns", 2e9, "ns", Scope::Global));
        rec.metrics
            .push(Metric::new("coherence.stale", 2.0, "count", Scope::Global));
        rec.metrics.retain(|m| m.name != "coherence.stale_reads");
        let f = RunFigures::from_rows(&rec.rows()).unwrap();
        assert_eq!(f.figure("ops"), Some(500.0));
        assert_eq!(f.figure("ops_per_s"), Some(250.0));
        assert_eq!(f.figure("ipis_per_op"), Some(0.1));
        assert_eq!(f.figure("stale_reads"), Some(2.0));
    }

    #[test]
    fn kernel_workloads_count_in_their_own_words() {
        // TEST FIXTURE: the names pmap-selftest and ipi-pingpong report.
        let own = |workload: &str, metrics: &[(&str, f64)]| {
            let mut rec = run(cell("fixed", workload, 4, 1), 0.0, 0.0, 60.0);
            rec.metrics.retain(|m| !m.name.starts_with("workload."));
            for &(name, value) in metrics {
                rec.metrics
                    .push(Metric::new(name, value, "count", Scope::Global));
            }
            RunFigures::from_rows(&rec.rows()).unwrap()
        };
        let selftest = own("pmap-selftest", &[("selftest.checks", 120.0)]);
        assert_eq!(selftest.figure("ops"), Some(120.0));
        assert_eq!(selftest.figure("ipis_per_op"), Some(0.5));
        assert_eq!(selftest.figure("ops_per_s"), None, "no elapsed time");
        let pingpong = own(
            "ipi-pingpong",
            &[("pingpong.rounds", 1000.0), ("pingpong.pairs", 3.0)],
        );
        assert_eq!(pingpong.figure("ops"), Some(3000.0));
    }

    #[test]
    fn ipis_by_cause_take_absent_as_zero() {
        // TEST FIXTURE: 1000 ops, 40 shootpage IPIs, 30 of them from exit;
        // 20 munmap IPIs spared by a shortcut.
        let mut rec = run(cell("fixed", "forkexit", 4, 1), 1000.0, 500.0, 40.0);
        let old = RunFigures::from_rows(&rec.rows()).unwrap();
        assert_eq!(old.figure("ipis_per_op.cause.exit"), None, "before causes");
        for (name, v) in [
            ("shoot.cause.exit.shootpage.ipis", 30.0),
            ("shoot.cause.cow.shootpage.ipis", 10.0),
            ("shoot.cause.exit.shoottlb.ipis", 5.0),
            ("shoot.cause.munmap.shootrange.spared", 20.0),
        ] {
            rec.metrics
                .push(Metric::new(name, v, "count", Scope::Global));
        }
        let f = RunFigures::from_rows(&rec.rows()).unwrap();
        assert_eq!(f.figure("ipis_per_op.cause.exit"), Some(0.035));
        assert_eq!(f.figure("ipis_per_op.cause.cow"), Some(0.01));
        assert_eq!(f.figure("ipis_per_op.cause.munmap"), Some(0.0));
        assert_eq!(f.figure("ipis_per_op.cause.nonsense"), None);
        assert_eq!(f.figure("spared_per_op.cause.munmap"), Some(0.02));
        assert_eq!(f.figure("spared_per_op.cause.exit"), Some(0.0));
        assert_eq!(
            figure_info("ipis_per_op.cause.exit", None).class,
            FigureClass::SchedCount
        );
    }

    #[test]
    fn zero_denominators_give_no_figure() {
        let rows = run(cell("fixed", "forkexit", 1, 1), 0.0, 0.0, 0.0).rows();
        let f = RunFigures::from_rows(&rows).unwrap();
        assert_eq!(f.figure("ops_per_s"), None);
        assert_eq!(f.figure("ipis_per_op"), None);
        assert_eq!(f.figure("page_range_ipis_per_op"), None);
        assert_eq!(f.figure("sent_eq_received"), Some(1.0));
    }

    #[test]
    fn histogram_quantiles() {
        let hist: BTreeMap<u32, f64> = [(3, 50.0), (5, 40.0), (9, 10.0)].into();
        assert_eq!(hist_quantile(&hist, 0.5), Some(16.0));
        assert_eq!(hist_quantile(&hist, 0.9), Some(64.0));
        assert_eq!(hist_quantile(&hist, 0.99), Some(1024.0));
        assert_eq!(hist_quantile(&BTreeMap::new(), 0.5), None);
    }

    #[test]
    fn timing_is_known_by_name_or_unit() {
        assert!(figure_info("ops_per_s", None).timing());
        assert!(!figure_info("ipis_per_op", None).timing());
        assert!(figure_info("workload.elapsed_ns", Some("ns")).timing());
        assert!(!figure_info("coherence.stale_reads", Some("count")).timing());
        let class = |n: &str, u| figure_info(n, u).class;
        assert_eq!(class("ipis_per_op", None), FigureClass::SchedCount);
        assert_eq!(
            class("ipis_per_op", None).on_cpus(1),
            FigureClass::ExactCount
        );
        assert_eq!(
            class("ipi.sent.shootpage", Some("count")),
            FigureClass::SchedCount
        );
        assert_eq!(
            class("pmap.remove.calls", Some("count")),
            FigureClass::ExactCount
        );
        assert_eq!(class("ipi_unreceived", None), FigureClass::ExactCount);
        // A protocol's cache-line footprint is its layout's.
        assert_eq!(
            class("shoot.target_lines", Some("lines")),
            FigureClass::ExactCount
        );
        // Which CPU idles, and which write finds a frame no longer
        // shared, depend on the interleaving.
        for n in [
            "lazy.enters",
            "sched.cr3_loads",
            "pmap.enter.upgrades_noshoot",
        ] {
            assert_eq!(class(n, Some("count")), FigureClass::SchedCount, "{n}");
        }
    }
}
