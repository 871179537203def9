//! `harness explain`: one run of a variant (and of a second one, `--vs`)
//! and the shootdown IPIs it sent, by cause, in sentences a reviewer can
//! paste ("fixed sends 3.00 shootdown IPIs per loop, all from exit
//! teardown ..."). The causes are lab_core::cause's; the counters are the
//! kernel's `shoot.cause.<cause>.<kind>.{calls,noipi,ipis,spared}` (absent
//! = 0). A variant that takes a shortcut (the techniques published since
//! the seeds, dying-no-ipi) is also told by what it spared, per cause, and
//! by the counters of its mechanism (`latr.queued`, `lazy.skipped`, ...).
//! Runs go through [`crate::run::run_once`] like `harness run`.
//!
//! Under `--accel tcg-model` a second block follows, apart from the
//! measured sentences and marked MODELED (the memory-system model,
//! model/README.md): per variant and cost profile, the modeled cache-line
//! transfers, false sharing, TLB misses and refills per op and the
//! initiator's modeled wait per shootdown; then the hottest cache lines
//! (`model.<profile>.hot.*`) by physical address, named by the kernel
//! symbol that holds them ([`crate::plot::symbols`], from the ELF the run
//! booted). The lines are the model's, the same under every profile
//! (only costs differ), so they are listed once when they agree. Under
//! any other accelerator the output is the measured sentences alone.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::{Context, Result};
use chrono::Utc;
use lab_core::cause::{ShootCause, CAUSE_KINDS};
use lab_core::metrics::Event;

use crate::accel::Accel;
use crate::outcome::Kind;
use crate::plot::modeled::{hot_lines, profiles_of, HotLine, README};
use crate::results::derive::{RunFigures, MODEL_PREFIX};
use crate::results::model::{Cell, RunRecord};
use crate::run::{run_once, spec_for, RunOptions};
use crate::symbols::Symbolizer;
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
const MECHANISMS: [(Event, &str); 10] = [
    (
        Event::LatrDeferred,
        "invalidations left in a ring for the targets' next sweep (lazy-latr)",
    ),
    (
        Event::LatrSettleIpis,
        "cross-calls to settle a LATR quarantine needed early",
    ),
    (
        Event::LatrFallbackIpis,
        "fallback cross-calls to CPUs a LATR record still named at its time bound",
    ),
    (
        Event::LazySkipped,
        "lazy CPUs skipped, to catch up by the pmap's generation (lazy-tlb)",
    ),
    (
        Event::LazyCatchups,
        "catch-up flushes of a lazy CPU on its return",
    ),
    (
        Event::LazyLeftForKernel,
        "lazy CPUs an IPI sent to the kernel's tables (lazy-tlb)",
    ),
    (
        Event::PmapUpgradesNoShoot,
        "copy-on-write upgrades shot down nowhere (no-flush-cow)",
    ),
    (
        Event::ShootEarlyAcks,
        "requests acknowledged before their invalidation (early-ack)",
    ),
    (
        Event::ShootDeferred,
        "invalidations deferred to the return to user mode (in-context-flush)",
    ),
    (
        Event::ShootLocalFirst,
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
            .filter_map(|(event, words)| {
                let n = f.total(event.name()).filter(|&n| n > 0.0)?;
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

// ---- The memory-system model's figures (tcg-model) -----------------------

/// How many hot lines the modeled block lists per variant.
const HOT_LISTED: usize = 8;

/// One profile's modeled figures per op for one run (`None`: not reported).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PerOp {
    pub transfers: Option<f64>,
    pub false_sharing: Option<f64>,
    pub tlb_misses: Option<f64>,
    pub tlb_refills: Option<f64>,
    /// The initiator's modeled wait per shootdown, cycles.
    pub wait_per_shootdown: Option<f64>,
}

/// What the memory-system model says of one variant's run.
pub struct Modeled {
    pub variant: String,
    pub ops: f64,
    /// (profile, its figures per op), profiles sorted.
    pub per_op: Vec<(String, PerOp)>,
    /// (profile, its hot lines, hottest first).
    pub hot: Vec<(String, Vec<HotLine>)>,
    /// The kernel's symbols (the ELF the run booted), or why there are none.
    pub symbols: std::result::Result<Symbolizer, String>,
    /// The ELF's path, for the text.
    pub kernel: String,
}

impl Modeled {
    /// From a run's figures; `None` if the run has no `model.` figures or
    /// no operation count.
    pub fn from_figures(
        variant: &str,
        f: &RunFigures,
        symbols: std::result::Result<Symbolizer, String>,
        kernel: &str,
    ) -> Option<Modeled> {
        let ops = f.ops().filter(|&o| o > 0.0)?;
        let profiles = profiles_of(f);
        if profiles.is_empty() {
            return None;
        }
        let fig = |p: &str, what: &str| f.figure(&format!("{MODEL_PREFIX}{p}.{what}"));
        let per_op = profiles
            .iter()
            .map(|p| {
                (
                    p.clone(),
                    PerOp {
                        transfers: fig(p, "per_op.coh.misses"),
                        false_sharing: fig(p, "per_op.coh.false_sharing"),
                        tlb_misses: fig(p, "per_op.tlb.misses"),
                        tlb_refills: fig(p, "per_op.tlb.refills"),
                        wait_per_shootdown: fig(p, "wait_per_shootdown"),
                    },
                )
            })
            .collect();
        let hot = profiles
            .iter()
            .map(|p| (p.clone(), hot_lines(f, p)))
            .collect();
        Some(Modeled {
            variant: variant.to_string(),
            ops,
            per_op,
            hot,
            symbols,
            kernel: kernel.to_string(),
        })
    }

    fn per_op(&self, profile: &str) -> Option<&PerOp> {
        self.per_op
            .iter()
            .find(|(p, _)| p == profile)
            .map(|(_, f)| f)
    }
}

/// `12.25` or `-` for a missing figure.
fn opt_num(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), num)
}

/// `2140` cycles as `2.14k`; `-` when missing.
fn cycles(v: Option<f64>) -> String {
    match v {
        Some(c) if c.abs() >= 1000.0 => format!("{:.2}k", c / 1000.0),
        Some(c) => format!("{c:.0}"),
        None => "-".into(),
    }
}

/// One variant's modeled per-op sentence under `profile`.
fn modeled_sentence(m: &Modeled, profile: &str, op: &str) -> String {
    let Some(f) = m.per_op(profile) else {
        return format!("{}: no modeled figures under {profile}.", m.variant);
    };
    format!(
        "{}: {} cache-line transfers per {op} ({} of them false sharing), {} TLB misses per {op} \
         ({} refills of an entry an INVLPG or flush removed); the initiator waits {} cycles per \
         shootdown.",
        m.variant,
        opt_num(f.transfers),
        opt_num(f.false_sharing),
        opt_num(f.tlb_misses),
        opt_num(f.tlb_refills),
        cycles(f.wait_per_shootdown)
    )
}

/// How `b` differs from `a` under `profile`, in one sentence.
fn modeled_difference(a: &Modeled, b: &Modeled, profile: &str, op: &str) -> Option<String> {
    let (fa, fb) = (a.per_op(profile)?, b.per_op(profile)?);
    let diff = |x: Option<f64>, y: Option<f64>, what: &str, unit: &str| -> Option<String> {
        let (x, y) = (x?, y?);
        let d = y - x;
        if d.abs() < SAME {
            return Some(format!("the same {what}"));
        }
        let pct = if x != 0.0 {
            format!(" ({:+.0}%)", 100.0 * d / x)
        } else {
            String::new()
        };
        Some(format!(
            "{} {} {what}{unit}{pct}",
            num(d.abs()),
            if d < 0.0 { "fewer" } else { "more" }
        ))
    };
    let parts: Vec<String> = [
        diff(fa.transfers, fb.transfers, "cache-line transfers", ""),
        diff(
            fa.false_sharing,
            fb.false_sharing,
            "false-sharing transfers",
            "",
        ),
        diff(fa.tlb_misses, fb.tlb_misses, "TLB misses", ""),
    ]
    .into_iter()
    .flatten()
    .collect();
    if parts.is_empty() {
        return None;
    }
    let wait = match (fa.wait_per_shootdown, fb.wait_per_shootdown) {
        (Some(x), Some(y)) if x > 0.0 => format!(
            "; its initiator waits {} cycles per shootdown against {} ({:+.0}%)",
            cycles(Some(y)),
            cycles(Some(x)),
            100.0 * (y - x) / x
        ),
        _ => String::new(),
    };
    Some(format!(
        "{} against {}: {} per {op}{wait}.",
        b.variant,
        a.variant,
        parts.join(", ")
    ))
}

/// The hot-line table of one variant under one profile.
fn hot_table(m: &Modeled, lines: &[HotLine], out: &mut String) {
    let shown = lines.len().min(HOT_LISTED);
    let named = match &m.symbols {
        Ok(_) => format!("symbols from {}", m.kernel),
        Err(e) => format!("no symbols: {e}"),
    };
    writeln!(
        out,
        "  {} (the {} hottest of the {} lines the model lists; {named}):",
        m.variant,
        shown,
        lines.len()
    )
    .unwrap();
    if lines.is_empty() {
        writeln!(out, "    no line changed hands.").unwrap();
        return;
    }
    writeln!(
        out,
        "    {:>4}  {:>10}  {:>9}  {:>6}  {:>7}  symbol+offset",
        "rank", "paddr", "transfers", "false", "per op"
    )
    .unwrap();
    for h in lines.iter().take(HOT_LISTED) {
        let place = match &m.symbols {
            Ok(s) => s.place_line(h.paddr).label(),
            Err(_) => "-".into(),
        };
        writeln!(
            out,
            "    {:>4}  {:>#10x}  {:>9}  {:>6}  {:>7}  {place}",
            h.rank,
            h.paddr,
            h.transfers,
            h.false_sharing,
            num(h.transfers / m.ops)
        )
        .unwrap();
    }
}

/// The MODELED block: per-op figures per profile and variant, how the two
/// differ, and the hottest lines by symbol. Kept apart from the measured
/// sentences.
pub fn modeled_text(a: &Modeled, b: Option<&Modeled>, op: &str) -> String {
    let mut out = String::new();
    let all: Vec<&Modeled> = std::iter::once(a).chain(b).collect();
    let mut profiles: Vec<String> = all
        .iter()
        .flat_map(|m| m.per_op.iter().map(|(p, _)| p.clone()))
        .collect();
    profiles.sort();
    profiles.dedup();
    writeln!(
        out,
        "MODELED, not measured: the memory-system model (accel tcg-model, {README}) on the \
         guest's own accesses, with each cost profile's costs ({}). None of these figures is in \
         the sentences above.",
        profiles.join(", ")
    )
    .unwrap();
    for p in &profiles {
        writeln!(out, "Per {op}, modeled ({p}):").unwrap();
        for m in &all {
            writeln!(out, "  {}", modeled_sentence(m, p, op)).unwrap();
        }
        if let Some(b) = b {
            if let Some(s) = modeled_difference(a, b, p, op) {
                writeln!(out, "  {s}").unwrap();
            }
        }
    }
    // The lines are where the guest's accesses went, not what they cost:
    // the same under every profile unless the model says otherwise.
    let same = all.iter().all(|m| {
        let runs_lines: Vec<&Vec<HotLine>> = m.hot.iter().map(|(_, l)| l).collect();
        runs_lines.windows(2).all(|w| w[0] == w[1])
    });
    let hot_profiles: Vec<&String> = if same {
        profiles.iter().take(1).collect()
    } else {
        profiles.iter().collect()
    };
    for p in hot_profiles {
        if same && profiles.len() > 1 {
            writeln!(
                out,
                "Hottest cache lines, modeled ({p}; the very same lines and counts under {}: \
                 profiles differ in costs, not in lines):",
                profiles[1..].join(", ")
            )
            .unwrap();
        } else {
            writeln!(out, "Hottest cache lines, modeled ({p}):").unwrap();
        }
        for m in &all {
            let lines = m
                .hot
                .iter()
                .find(|(q, _)| q == p)
                .map_or(&[][..], |(_, l)| &l[..]);
            hot_table(m, lines, &mut out);
        }
    }
    out
}

/// Runs `variant` once with the options' workload, CPUs and parameters;
/// under tcg-model, also what the model says of it.
fn run_variant(
    ws: &Workspace,
    opts: &RunOptions,
    variant: &str,
) -> Result<(Explained, String, Option<Modeled>)> {
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
    let modeled = if accel == Accel::TcgModel {
        let symbols = Symbolizer::from_elf(&kernel.path).map_err(|e| format!("{e:#}"));
        Modeled::from_figures(
            variant,
            &figures,
            symbols,
            &kernel.path.display().to_string(),
        )
    } else {
        None
    };
    Ok((explained, header, modeled))
}

/// Runs the verb: prints the explanation. Exit status 0.
pub fn execute(ws: &Workspace, opts: &ExplainOptions) -> Result<i32> {
    let run = &opts.run;
    let (a, ha, ma) = run_variant(ws, run, &run.variant)?;
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
    if let Some((_, hb, _)) = &b {
        println!("  {hb}");
    }
    println!();
    print!(
        "{}",
        explain_text(&a, b.as_ref().map(|(e, _, _)| e), op_word(&run.workload))
    );
    // Under tcg-model only, and apart: what the model says.
    if let Some(ma) = &ma {
        let mb = b.as_ref().and_then(|(_, _, m)| m.as_ref());
        println!();
        print!("{}", modeled_text(ma, mb, op_word(&run.workload)));
    }
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

    /// TEST FIXTURE (made up): a tcg-model run of `variant`, 1200 ops,
    /// with `transfers` cache-line transfers and hot lines at `hot`, the
    /// same under both profiles but for the wait (costs differ).
    fn modeled_run(variant: &str, transfers: f64, hot: &[(u64, f64, f64)]) -> RunFigures {
        use crate::results::model::fixtures::{cell, run};
        use crate::results::model::Metric;
        use lab_core::report::Scope;
        let mut rec = run(cell(variant, "shoot-storm", 4, 1), 1200.0, 10.0, 0.0);
        for (i, p) in ["skylake-sp", "zen3"].iter().enumerate() {
            let mut add = |n: &str, v: f64| {
                rec.metrics.push(Metric::new(
                    &format!("model.{p}.{n}"),
                    v,
                    "count",
                    Scope::Global,
                ))
            };
            add("coh.misses", transfers);
            add("coh.false_sharing", transfers / 4.0);
            add("tlb.misses", 150.0);
            add("tlb.refills", 90.0);
            add("wait.cycles", 1204.0 * (2500.0 - 300.0 * i as f64));
            add("wait.count", 1204.0);
            for (r, &(paddr, t, f)) in hot.iter().enumerate() {
                add(&format!("hot.{r}.paddr"), paddr as f64);
                add(&format!("hot.{r}.transfers"), t);
                add(&format!("hot.{r}.false_sharing"), f);
            }
        }
        rec.metrics.push(Metric::new(
            "model.hint.errors",
            0.0,
            "count",
            Scope::Global,
        ));
        RunFigures::from_rows(&rec.rows()).unwrap()
    }

    #[test]
    fn the_modeled_block_names_lines_and_stays_apart() {
        use crate::symbols::{Segment, Symbol, KERNEL_VMA};
        // TEST FIXTURE (made up): one data segment at physical 2 MiB
        // holding a 512-byte BOARD; frames above it.
        let syms = || {
            Ok(Symbolizer::new(
                vec![Segment {
                    paddr: 0x20_0000,
                    memsz: 0x1000,
                    vaddr: KERNEL_VMA + 0x20_0000,
                }],
                vec![Symbol {
                    addr: KERNEL_VMA + 0x20_0000,
                    size: 0x200,
                    name: "_ZN6kernel2mm9shootdown10scoreboard5BOARD17h0123456789abcdefE".into(),
                }],
            ))
        };
        let a = Modeled::from_figures(
            "scoreboard",
            &modeled_run("scoreboard", 14_700.0, &[(0x20_0040, 4820.0, 4216.0)]),
            syms(),
            "k.elf",
        )
        .unwrap();
        let b = Modeled::from_figures(
            "scoreboard-padded",
            &modeled_run("scoreboard-padded", 17_400.0, &[(0x80_0000, 1811.0, 603.0)]),
            syms(),
            "k.elf",
        )
        .unwrap();
        assert_eq!(
            a.per_op.len(),
            2,
            "the plugin's own model.hint.* is no profile"
        );
        let text = modeled_text(&a, Some(&b), "operation");
        assert!(text.starts_with("MODELED, not measured"), "{text}");
        assert!(text.contains("model/README.md"), "{text}");
        assert!(
            text.contains("Per operation, modeled (skylake-sp):"),
            "{text}"
        );
        assert!(text.contains("Per operation, modeled (zen3):"), "{text}");
        assert!(
            text.contains(
                "scoreboard: 12.25 cache-line transfers per operation (3.06 of them false sharing)"
            ),
            "{text}"
        );
        assert!(text.contains("waits 2.50k cycles per shootdown"), "{text}");
        assert!(text.contains("waits 2.20k cycles per shootdown"), "{text}");
        assert!(
            text.contains("scoreboard-padded against scoreboard: 2.25 more cache-line transfers"),
            "{text}"
        );
        // Listed once: the lines agree under both profiles.
        assert_eq!(text.matches("Hottest cache lines").count(), 1, "{text}");
        assert!(
            text.contains("the very same lines and counts under zen3"),
            "{text}"
        );
        assert!(
            text.contains("kernel::mm::shootdown::scoreboard::BOARD+0x40"),
            "{text}"
        );
        assert!(
            text.contains("not in the kernel image (heap or frame)"),
            "{text}"
        );
        assert!(
            text.contains("4.02"),
            "transfers per op of the hottest: {text}"
        );
        // The measured sentences never carry a modeled word.
        let e = explained("scoreboard", 1200.0, &[]);
        assert!(!explain_text(&e, None, "operation").contains("model"));
    }

    #[test]
    fn says_what_a_shortcut_spared_and_how() {
        // TEST FIXTURE (made up): 10 jobs; lazy-latr's munmaps sent 20
        // IPIs and spared 50, the targets its records named.
        let mut e = explained(
            "lazy-latr",
            10.0,
            &[(ShootCause::Munmap, "shootpage", [30.0, 10.0, 20.0])],
        );
        e.counts
            .get_mut(&(ShootCause::Munmap, "shootpage"))
            .unwrap()[3] = 50.0;
        e.mechanisms.push(
            "5.00 invalidations left in a ring for the targets' next sweep (lazy-latr)".into(),
        );
        let text = explain_text(&e, None, "job");
        assert!(
            text.contains(
                "Its shortcut spared 5.00 more per job that its base pmap would send: 5.00 from"
            ),
            "{text}"
        );
        assert!(
            text.contains("Per job: 5.00 invalidations left in a ring"),
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
