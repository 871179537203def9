//! `harness explain`: one run of a variant (and of a second one, `--vs`)
//! and the shootdown IPIs it sent, by cause, in sentences a reviewer can
//! paste ("fixed sends 3.00 shootdown IPIs per loop, all from exit
//! teardown ..."). The causes are lab_core::cause's; the counters are the
//! kernel's `shoot.cause.<cause>.<kind>.{calls,noipi,ipis,spared}` (absent
//! = 0). A variant that takes a shortcut (the techniques published since
//! the seeds, dying-no-ipi) is also told by what it spared, per cause, and
//! by the counters of its mechanism (`latr.queued`, `lazy.skipped`, ...).
//! Runs go through [`crate::run::run_once`] like `harness run`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::{Context, Result};
use chrono::Utc;
use lab_core::cause::{ShootCause, CAUSE_KINDS};

use crate::outcome::Kind;
use crate::results::derive::RunFigures;
use crate::results::model::{Cell, RunRecord};
use crate::run::{run_once, spec_for, RunOptions};
use crate::workspace::Workspace;

/// The `explain` verb's options: a run's, and the variant to compare.
#[derive(Clone, Debug)]
pub struct ExplainOptions {
    pub run: RunOptions,
    pub vs: Option<String>,
}

/// One variant's run, reduced to what the explanation needs.
pub struct Explained {
    pub variant: String,
    pub ops: f64,
    /// (cause, kind) -> (calls, noipi, ipis, spared), totals over the run.
    pub counts: BTreeMap<(ShootCause, &'static str), [f64; 4]>,
    /// The shortcut counters the run reported non-zero, per op, in words.
    pub mechanisms: Vec<String>,
}

/// Where IPIs sent and IPIs spared stand in `Explained::counts`' values.
const IPIS: usize = 2;
const SPARED: usize = 3;

/// The counters of the shortcuts, and what each counts (per op). Only
/// non-zero ones are told, so `fixed` has none.
const MECHANISMS: [(&str, &str); 8] = [
    (
        "latr.queued",
        "invalidations queued for the targets' next tick (lazy-latr)",
    ),
    (
        "latr.settle_ipis",
        "cross-calls to settle a LATR quarantine early",
    ),
    (
        "lazy.skipped",
        "lazy CPUs left a note instead of an IPI (lazy-tlb)",
    ),
    (
        "lazy.catchup_flushes",
        "catch-up flushes of a lazy CPU on its return",
    ),
    (
        "pmap.enter.upgrades_noshoot",
        "copy-on-write upgrades shot down nowhere (no-flush-cow)",
    ),
    (
        "shoot.early_acks",
        "requests acknowledged before their invalidation (early-ack)",
    ),
    (
        "shoot.deferred",
        "invalidations deferred to the return to user mode (in-context-flush)",
    ),
    (
        "shoot.local_first",
        "local invalidations made before the IPIs went out (flush-first)",
    ),
];

impl Explained {
    /// From a run's figures; `None` if it has no operation count.
    pub fn from_figures(variant: &str, f: &RunFigures) -> Option<Explained> {
        let ops = f.ops().filter(|&o| o > 0.0)?;
        let mut counts = BTreeMap::new();
        for cause in ShootCause::ALL {
            for kind in CAUSE_KINDS {
                let get = |field: &str| {
                    f.total(&format!("shoot.cause.{}.{kind}.{field}", cause.name()))
                        .unwrap_or(0.0)
                };
                let v = [get("calls"), get("noipi"), get("ipis"), get("spared")];
                if v.iter().any(|&x| x != 0.0) {
                    counts.insert((cause, kind), v);
                }
            }
        }
        let mechanisms = MECHANISMS
            .iter()
            .filter_map(|(metric, words)| {
                let n = f.total(metric).filter(|&n| n > 0.0)?;
                Some(format!("{} {words}", num(n / ops)))
            })
            .collect();
        Some(Explained {
            variant: variant.to_string(),
            ops,
            counts,
            mechanisms,
        })
    }

    /// IPIs per op for `cause` (all kinds).
    fn ipis(&self, cause: ShootCause) -> f64 {
        self.per_op(cause, IPIS)
    }

    /// Field `field` of `counts` for `cause`, summed over kinds, per op.
    fn per_op(&self, cause: ShootCause, field: usize) -> f64 {
        CAUSE_KINDS
            .iter()
            .map(|k| self.get(cause, k)[field])
            .sum::<f64>()
            / self.ops
    }

    fn get(&self, cause: ShootCause, kind: &str) -> [f64; 4] {
        self.counts
            .iter()
            .find(|((c, k), _)| *c == cause && *k == kind)
            .map_or([0.0; 4], |(_, v)| *v)
    }

    /// IPIs per op a shortcut spared for `cause` (all kinds).
    fn spared(&self, cause: ShootCause) -> f64 {
        self.per_op(cause, SPARED)
    }

    fn total_ipis(&self) -> f64 {
        ShootCause::ALL.iter().map(|c| self.ipis(*c)).sum()
    }

    /// Causes with IPIs, most first.
    fn sending(&self) -> Vec<(ShootCause, f64)> {
        let mut v: Vec<(ShootCause, f64)> = ShootCause::ALL
            .iter()
            .map(|c| (*c, self.ipis(*c)))
            .filter(|(_, n)| *n > 0.0)
            .collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1));
        v
    }

    /// "3.00 shoottlb" / "2.00 shootpage and 1.00 shootrange" for `cause`.
    fn kinds_text(&self, cause: ShootCause) -> String {
        let parts: Vec<String> = CAUSE_KINDS
            .iter()
            .filter(|k| self.get(cause, k)[IPIS] > 0.0)
            .map(|k| format!("{} {k}", num(self.get(cause, k)[IPIS] / self.ops)))
            .collect();
        parts.join(" and ")
    }
}

/// What an operation of `workload` is called, for "per loop".
pub fn op_word(workload: &str) -> &'static str {
    match workload {
        "forkexit" => "loop",
        "buildkernel" => "job",
        "coherence" | "pmap-selftest" => "check",
        "ipi-pingpong" => "round trip",
        _ => "operation",
    }
}

fn num(v: f64) -> String {
    format!("{v:.2}")
}

/// Below this, two per-op figures are the same (they print alike).
const SAME: f64 = 0.005;

/// The sentences for one variant: how many IPIs per op and where from,
/// what its shortcut spared and by which mechanism.
fn summary_sentence(e: &Explained, op: &str) -> String {
    let mut out = sent_sentence(e, op);
    let spared: Vec<String> = ShootCause::ALL
        .iter()
        .map(|c| (*c, e.spared(*c)))
        .filter(|(_, n)| *n >= SAME)
        .map(|(c, n)| format!("{} from {}", num(n), c.words()))
        .collect();
    if !spared.is_empty() {
        let _ = write!(
            out,
            " Its shortcut spared {} more per {op} that its base pmap would send: {}.",
            num(ShootCause::ALL.iter().map(|c| e.spared(*c)).sum()),
            spared.join(", ")
        );
    }
    if !e.mechanisms.is_empty() {
        let _ = write!(out, " Per {op}: {}.", e.mechanisms.join("; "));
    }
    out
}

/// How many IPIs per op `e` sent and where from.
fn sent_sentence(e: &Explained, op: &str) -> String {
    let total = e.total_ipis();
    if total < SAME {
        return format!("{} sends no shootdown IPIs.", e.variant);
    }
    let sending = e.sending();
    let from = if sending.len() == 1 {
        let (c, _) = sending[0];
        format!("all from {} ({})", c.words(), e.kinds_text(c))
    } else {
        let parts: Vec<String> = sending
            .iter()
            .map(|(c, n)| format!("{} from {} ({})", num(*n), c.words(), e.kinds_text(*c)))
            .collect();
        parts.join(", ")
    };
    format!(
        "{} sends {} shootdown IPIs per {op}: {from}.",
        e.variant,
        num(total)
    )
}

/// Why `b` sends fewer (or no) IPIs of `kind` for `cause` than `a`, in
/// the counters' words.
fn kind_detail(a: &Explained, b: &Explained, cause: ShootCause, kind: &str, op: &str) -> String {
    let per = |e: &Explained, i: usize| e.get(cause, kind)[i] / e.ops;
    let side = |e: &Explained| {
        let (calls, noipi, ipis) = (per(e, 0), per(e, 1), per(e, 2));
        if calls == 0.0 {
            format!("{} makes no {kind} call for it", e.variant)
        } else if ipis == 0.0 {
            format!(
                "{} makes {} {kind} calls per {op}, none with a target CPU (all no-IPI)",
                e.variant,
                num(calls)
            )
        } else {
            format!(
                "{} makes {} {kind} calls per {op} ({} without a target), sending {} IPIs \
                 ({} target CPUs per call that sent)",
                e.variant,
                num(calls),
                num(noipi),
                num(ipis),
                num(ipis / (calls - noipi))
            )
        }
    };
    format!("{}; {}", side(a), side(b))
}

/// The explanation of `a` against `b` (or of `a` alone).
pub fn explain_text(a: &Explained, b: Option<&Explained>, op: &str) -> String {
    let mut out = String::new();
    writeln!(out, "{}", summary_sentence(a, op)).unwrap();
    let Some(b) = b else {
        return out;
    };
    writeln!(out, "{}", summary_sentence(b, op)).unwrap();
    let mut same = Vec::new();
    for cause in ShootCause::ALL {
        let (x, y) = (a.ipis(cause), b.ipis(cause));
        if (x - y).abs() < SAME {
            if x >= SAME {
                same.push(format!("{} ({} each)", cause.words(), num(x)));
            }
            continue;
        }
        let (more, less, m, l) = if x > y { (a, b, x, y) } else { (b, a, y, x) };
        let head = if l < SAME {
            format!(
                "- {}: {} sends {} IPIs per {op} ({}), {} none",
                cause.words(),
                more.variant,
                num(m),
                more.kinds_text(cause),
                less.variant
            )
        } else {
            format!(
                "- {}: {} sends {} IPIs per {op} ({}), {} {} ({})",
                cause.words(),
                more.variant,
                num(m),
                more.kinds_text(cause),
                less.variant,
                num(l),
                less.kinds_text(cause)
            )
        };
        writeln!(out, "{head}.").unwrap();
        for kind in CAUSE_KINDS {
            let (p, q) = (more.get(cause, kind)[IPIS], less.get(cause, kind)[IPIS]);
            if (p / more.ops - q / less.ops).abs() >= SAME {
                writeln!(
                    out,
                    "  {kind}: {}.",
                    kind_detail(more, less, cause, kind, op)
                )
                .unwrap();
            }
        }
    }
    if !same.is_empty() {
        writeln!(out, "The same in both: {}.", same.join(", ")).unwrap();
    }
    out
}

/// Runs `variant` once with the options' workload, CPUs and parameters.
fn run_variant(ws: &Workspace, opts: &RunOptions, variant: &str) -> Result<(Explained, String)> {
    let spec = spec_for(ws, opts, variant)?;
    let (kernel, accel) = (&spec.kernel, spec.accel);
    let result = run_once(&spec)?;
    let outcome = result.outcome.kind();
    if outcome != Kind::Ok {
        anyhow::bail!(
            "{variant} {}: the run ended {} (see {})",
            opts.workload,
            result.outcome,
            result.run_dir.display()
        );
    }
    let params: BTreeMap<String, String> = opts.params.iter().cloned().collect();
    let record = RunRecord {
        cell: Cell {
            variant: variant.to_string(),
            workload: opts.workload.clone(),
            params: Cell::params_text(&params),
            cpus: opts.cpus,
            accel: accel.as_str().to_string(),
            machine: opts.machine.as_str().to_string(),
            rep: 1,
        },
        features: kernel.features.clone(),
        git_rev: String::new(),
        started: Utc::now(),
        outcome,
        wall: result.wall,
        metrics: result.report.metrics.clone(),
    };
    let figures = RunFigures::from_rows(&record.rows()).context("the run reported nothing")?;
    let explained = Explained::from_figures(variant, &figures).with_context(|| {
        format!(
            "{variant} {}: the run reported no operation count",
            opts.workload
        )
    })?;
    let header = format!(
        "{variant}: {} {}s under {}, run folder {}",
        num(explained.ops).trim_end_matches(".00"),
        op_word(&opts.workload),
        accel.as_str(),
        result.run_dir.display()
    );
    Ok((explained, header))
}

/// Runs the verb: prints the explanation. Exit status 0.
pub fn execute(ws: &Workspace, opts: &ExplainOptions) -> Result<i32> {
    let run = &opts.run;
    let (a, ha) = run_variant(ws, run, &run.variant)?;
    let b = match &opts.vs {
        Some(w) => Some(run_variant(ws, run, w)?),
        None => None,
    };
    let params: Vec<String> = run.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!(
        "{} [{}] on {} CPU{}:",
        run.workload,
        if params.is_empty() {
            "defaults".to_string()
        } else {
            params.join(" ")
        },
        run.cpus,
        if run.cpus == 1 { "" } else { "s" }
    );
    println!("  {ha}");
    if let Some((_, hb)) = &b {
        println!("  {hb}");
    }
    println!();
    print!(
        "{}",
        explain_text(&a, b.as_ref().map(|(e, _)| e), op_word(&run.workload))
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn explained(
        variant: &str,
        ops: f64,
        counts: &[(ShootCause, &'static str, [f64; 3])],
    ) -> Explained {
        Explained {
            variant: variant.into(),
            ops,
            counts: counts
                .iter()
                .map(|(c, k, [calls, noipi, ipis])| ((*c, *k), [*calls, *noipi, *ipis, 0.0]))
                .collect(),
            mechanisms: Vec::new(),
        }
    }

    #[test]
    fn says_what_a_shortcut_spared_and_how() {
        // TEST FIXTURE (made up): 10 jobs; lazy-latr's munmaps sent 20
        // IPIs and spared 50, with 50 records queued.
        let mut e = explained(
            "lazy-latr",
            10.0,
            &[(ShootCause::Munmap, "shootpage", [30.0, 10.0, 20.0])],
        );
        e.counts
            .get_mut(&(ShootCause::Munmap, "shootpage"))
            .unwrap()[3] = 50.0;
        e.mechanisms
            .push("5.00 invalidations queued for the targets' next tick (lazy-latr)".into());
        let text = explain_text(&e, None, "job");
        assert!(
            text.contains(
                "Its shortcut spared 5.00 more per job that its base pmap would send: 5.00 from"
            ),
            "{text}"
        );
        assert!(
            text.contains("Per job: 5.00 invalidations queued"),
            "{text}"
        );
        // Nothing spared, nothing said.
        let plain = explained(
            "fixed",
            10.0,
            &[(ShootCause::Munmap, "shootpage", [30.0, 10.0, 20.0])],
        );
        assert!(!explain_text(&plain, None, "job").contains("spared"));
    }

    #[test]
    fn says_where_the_ipis_come_from_and_what_the_other_does() {
        // TEST FIXTURE (made up): 100 loops; fixed's exit teardown sends
        // 3 shoottlb IPIs per loop, shared-page-opt's sends none.
        let a = explained(
            "fixed",
            100.0,
            &[
                (ShootCause::Exit, "shoottlb", [200.0, 0.0, 300.0]),
                (ShootCause::Cow, "shootpage", [200.0, 200.0, 0.0]),
            ],
        );
        let b = explained(
            "shared-page-opt",
            100.0,
            &[(ShootCause::Exit, "shoottlb", [100.0, 100.0, 0.0])],
        );
        let text = explain_text(&a, Some(&b), "loop");
        assert!(
            text.contains(
                "fixed sends 3.00 shootdown IPIs per loop: all from exit teardown (3.00 shoottlb)."
            ),
            "{text}"
        );
        assert!(
            text.contains("shared-page-opt sends no shootdown IPIs."),
            "{text}"
        );
        assert!(text.contains("shared-page-opt none"), "{text}");
        assert!(
            text.contains(
                "shared-page-opt makes 1.00 shoottlb calls per loop, none with a target CPU"
            ),
            "{text}"
        );
        let alone = explain_text(&a, None, "loop");
        assert_eq!(alone.lines().count(), 1);
    }
}
