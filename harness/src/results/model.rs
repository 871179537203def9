//! The result types: a matrix cell, a run as the runner hands it over, and
//! the tidy CSV row it becomes.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use lab_core::report::Scope;
use serde::{Deserialize, Serialize};

/// How a run ended, as stored: the kind of [`crate::outcome::Outcome`]
/// (one enum for the run and its rows; the run's details, such as a
/// panic's message, stay in its log).
pub use crate::outcome::Kind as Outcome;

/// One point of a matrix. Two runs of the same cell are duplicates.
/// `params` is canonical: `k=v;k=v` sorted by key (see [`Cell::params_text`]).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Cell {
    pub variant: String,
    pub workload: String,
    pub params: String,
    pub cpus: u32,
    pub accel: String,
    pub machine: String,
    pub rep: u32,
}

impl Cell {
    /// Canonical parameter text: `k=v` pairs sorted by key, joined by `;`
    /// (empty for none). The map's order is already sorted.
    pub fn params_text(params: &BTreeMap<String, String>) -> String {
        params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(";")
    }

    /// The parameters as the kernel command line wants them
    /// (`k=v k=v`), for the runner.
    pub fn params_cmdline(&self) -> String {
        self.params.replace(';', " ")
    }

    /// A run id unique to this cell: readable, safe as a file name, and
    /// ended by a hash of the full cell so that two cells whose readable
    /// parts sanitise alike still differ. The runner names the serial log
    /// after it (`logs/<run_id>.log`).
    pub fn run_id(&self) -> String {
        let readable = format!(
            "{}.{}.c{}.{}.{}.r{}",
            self.variant, self.workload, self.cpus, self.accel, self.machine, self.rep
        );
        let safe: String = readable
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!("{safe}-{:08x}", fnv1a32(self.to_string().as_bytes()))
    }
}

/// FNV-1a, 32 bits: a stable hash for run ids (std's hasher is not stable
/// across releases, and a cryptographic hash is more than this needs).
fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ b as u32).wrapping_mul(0x0100_0193)
    })
}

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "variant={} workload={} params=[{}] cpus={} accel={} machine={} rep={}",
            self.variant, self.workload, self.params, self.cpus, self.accel, self.machine, self.rep
        )
    }
}

/// One metric as parsed from the report: the report reader's own type.
pub use crate::report::Metric;

/// A finished run, as the runner hands it to [`super::Store::append_run`].
#[derive(Clone, Debug, PartialEq)]
pub struct RunRecord {
    pub cell: Cell,
    /// The variant's Cargo features.
    pub features: Vec<String>,
    /// `git rev-parse --short HEAD` of the tree the kernel was built from
    /// (with `-dirty` when it had changes).
    pub git_rev: String,
    /// When the run started.
    pub started: DateTime<Utc>,
    pub outcome: Outcome,
    /// Host wall time of the whole run (QEMU start to exit).
    pub wall: Duration,
    /// The metrics the report carried (possibly partial for a failed run).
    pub metrics: Vec<Metric>,
}

impl RunRecord {
    /// The run's rows: `run.outcome` and `run.wall_s` first, then one row
    /// per metric in report order.
    pub fn rows(&self) -> Vec<ResultRow> {
        let c = &self.cell;
        let base = ResultRow {
            run_id: c.run_id(),
            time: self.started.to_rfc3339_opts(SecondsFormat::Secs, true),
            git_rev: self.git_rev.clone(),
            variant: c.variant.clone(),
            features: self.features.join(","),
            workload: c.workload.clone(),
            params: c.params.clone(),
            cpus: c.cpus,
            accel: c.accel.clone(),
            machine: c.machine.clone(),
            rep: c.rep,
            outcome: self.outcome,
            metric: String::new(),
            value: 0.0,
            unit: String::new(),
            cpu: None,
            from: None,
            to: None,
        };
        let own = [
            Metric::new(
                "run.outcome",
                if self.outcome.is_ok() { 1.0 } else { 0.0 },
                "bool",
                Scope::Global,
            ),
            Metric::new("run.wall_s", self.wall.as_secs_f64(), "s", Scope::Global),
        ];
        own.iter()
            .chain(&self.metrics)
            .map(|m| {
                let (cpu, from, to) = match m.scope {
                    Scope::Global => (None, None, None),
                    Scope::Cpu(cpu) => (Some(cpu), None, None),
                    Scope::Pair { from, to } => (None, Some(from), Some(to)),
                };
                ResultRow {
                    metric: m.name.clone(),
                    value: m.value,
                    unit: m.unit.clone(),
                    cpu,
                    from,
                    to,
                    ..base.clone()
                }
            })
            .collect()
    }
}

/// One tidy row: one run x one metric. Column order is the CSV's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResultRow {
    pub run_id: String,
    /// RFC 3339, UTC, when the run started.
    pub time: String,
    pub git_rev: String,
    pub variant: String,
    /// Cargo features, `,`-separated.
    pub features: String,
    pub workload: String,
    /// `k=v;k=v`, sorted by key.
    pub params: String,
    pub cpus: u32,
    pub accel: String,
    pub machine: String,
    pub rep: u32,
    pub outcome: Outcome,
    pub metric: String,
    pub value: f64,
    pub unit: String,
    /// The CPU for a per-CPU metric, else empty.
    pub cpu: Option<u32>,
    /// The (from, to) pair for a per-pair metric, else empty.
    pub from: Option<u32>,
    pub to: Option<u32>,
}

impl ResultRow {
    /// The cell this row belongs to.
    pub fn cell(&self) -> Cell {
        Cell {
            variant: self.variant.clone(),
            workload: self.workload.clone(),
            params: self.params.clone(),
            cpus: self.cpus,
            accel: self.accel.clone(),
            machine: self.machine.clone(),
            rep: self.rep,
        }
    }

    /// The row's scope, rebuilt from its `cpu`/`from`/`to` columns.
    pub fn scope(&self) -> Scope {
        match (self.cpu, self.from, self.to) {
            (Some(cpu), _, _) => Scope::Cpu(cpu),
            (None, Some(from), Some(to)) => Scope::Pair { from, to },
            _ => Scope::Global,
        }
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! TEST FIXTURES: small hand-made runs for unit tests. Never written
    //! into results/; no figure here was measured.
    use super::*;

    pub fn cell(variant: &str, workload: &str, cpus: u32, rep: u32) -> Cell {
        Cell {
            variant: variant.into(),
            workload: workload.into(),
            params: if workload == "forkexit" {
                "touch=on".into()
            } else {
                String::new()
            },
            cpus,
            accel: "tcg".into(),
            machine: "microvm".into(),
            rep,
        }
    }

    /// A run of `cell` whose figures are made from `ops`, `elapsed_ms` and
    /// `ipis` (shootpage IPIs sent and received, spread over the CPU pairs).
    pub fn run(cell: Cell, ops: f64, elapsed_ms: f64, ipis: f64) -> RunRecord {
        let cpus = cell.cpus;
        let mut metrics = vec![
            Metric::new("workload.ops", ops, "count", Scope::Global),
            Metric::new("workload.elapsed_ns", elapsed_ms * 1e6, "ns", Scope::Global),
            Metric::new("ipi.sent.shootpage", ipis, "count", Scope::Global),
            Metric::new("ipi.received.shootpage", ipis, "count", Scope::Global),
            Metric::new("ipi.sent.shootrange", 0.0, "count", Scope::Global),
            Metric::new("ipi.received.shootrange", 0.0, "count", Scope::Global),
            Metric::new("shoot.calls.shootpage", ops * 2.0, "count", Scope::Global),
            Metric::new(
                "shoot.noipi.shootpage",
                (ops * 2.0 - ipis).max(0.0),
                "count",
                Scope::Global,
            ),
            Metric::new("shoot.wait.ack", ipis * 3000.0, "cycles", Scope::Global),
            Metric::new("coherence.stale_reads", 0.0, "count", Scope::Global),
        ];
        for cpu in 0..cpus {
            metrics.push(Metric::new(
                "ipi.sent.shootpage",
                ipis / cpus as f64,
                "count",
                Scope::Cpu(cpu),
            ));
        }
        let pairs = (cpus * cpus.saturating_sub(1)).max(1) as f64;
        for from in 0..cpus {
            for to in 0..cpus {
                if from != to {
                    metrics.push(Metric::new(
                        "ipi.pair.sent.shootpage",
                        (ipis / pairs).round() + from as f64,
                        "count",
                        Scope::Pair { from, to },
                    ));
                }
            }
        }
        // A wait histogram centred near 2^(10 + cpus/2) cycles, later
        // for the buggy variant.
        let late = u32::from(cell.variant == "openbsd-2010");
        for b in 6..16u32 {
            let centre = 10 + cpus / 2 + late;
            let n = 64u32.saturating_sub(8 * b.abs_diff(centre)) as f64;
            metrics.push(Metric::new(
                &format!("shoot.wait.ack.log2.{b}"),
                n,
                "count",
                Scope::Global,
            ));
        }
        RunRecord {
            cell,
            features: vec!["pmap-fixed".into()],
            git_rev: "abc1234".into(),
            started: DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
                .unwrap()
                .with_timezone(&Utc),
            outcome: Outcome::Ok,
            wall: Duration::from_millis(1500),
            metrics,
        }
    }

    /// A small matrix: two variants x forkexit, ipi-pingpong x 2, 4 CPUs x
    /// `reps` reps, openbsd-2010 sending 20x the IPIs.
    pub fn matrix_rows(reps: u32) -> Vec<ResultRow> {
        let mut rows = Vec::new();
        for rep in 1..=reps {
            for workload in ["forkexit", "ipi-pingpong"] {
                for cpus in [2, 4] {
                    for (variant, ipis_per_op, rate) in
                        [("openbsd-2010", 2.0, 900.0), ("fixed", 0.1, 1000.0)]
                    {
                        let ops = 1000.0;
                        let jitter = rep as f64 * 7.0;
                        let elapsed_ms = ops / (rate * cpus as f64 / 2.0 + jitter) * 1000.0;
                        let run = run(
                            cell(variant, workload, cpus, rep),
                            ops,
                            elapsed_ms,
                            ops * ipis_per_op * cpus as f64 / 2.0,
                        );
                        rows.extend(run.rows());
                    }
                }
            }
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn every_run_gets_an_outcome_row_even_when_it_failed() {
        let mut run = run(cell("fixed", "forkexit", 2, 1), 10.0, 5.0, 1.0);
        run.outcome = Outcome::Timeout;
        run.metrics.clear();
        let rows = run.rows();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].metric, "run.outcome");
        assert_eq!(rows[0].value, 0.0);
        assert_eq!(rows[0].outcome, Outcome::Timeout);
        assert_eq!(rows[1].metric, "run.wall_s");
        assert_eq!(rows[1].value, 1.5);
        assert_eq!(rows[0].time, "2026-01-02T03:04:05Z");
    }

    #[test]
    fn rows_keep_their_scope() {
        let rows = run(cell("fixed", "forkexit", 2, 1), 10.0, 5.0, 4.0).rows();
        let pair = rows
            .iter()
            .find(|r| r.metric == "ipi.pair.sent.shootpage")
            .unwrap();
        assert_eq!(pair.scope(), Scope::Pair { from: 0, to: 1 });
        let cpu = rows
            .iter()
            .find(|r| r.metric == "ipi.sent.shootpage" && r.cpu.is_some())
            .unwrap();
        assert_eq!(cpu.scope(), Scope::Cpu(0));
        assert_eq!(rows[0].cell(), cell("fixed", "forkexit", 2, 1));
    }

    #[test]
    fn run_ids_are_file_safe_and_distinct() {
        let a = cell("fixed", "forkexit", 2, 1);
        let mut b = a.clone();
        b.params = "touch=off".into();
        assert_ne!(a.run_id(), b.run_id());
        assert!(a.run_id().starts_with("fixed.forkexit.c2.tcg.microvm.r1-"));
        let mut odd = a.clone();
        odd.variant = "a/b c".into();
        assert!(!odd.run_id().contains(['/', ' ']));
    }

    #[test]
    fn outcomes_parse_back() {
        for o in Outcome::ALL {
            assert_eq!(o.as_str().parse::<Outcome>().unwrap(), o);
        }
        assert!("bogus".parse::<Outcome>().is_err());
    }
}
