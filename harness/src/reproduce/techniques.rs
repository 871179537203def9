//! The rows of `harness reproduce --techniques` (results/TECHNIQUES.md):
//! each technique published since the seeds beside `fixed`, on the lab's
//! own workloads, with the published figure where one exists.
//!
//! Every experiment runs under tcg-icount on 4 CPUs (Plan::techniques), so
//! counts and times are both repeatable; a time there is an instruction
//! cost (note "icount"), and the direction of an effect is what a row can
//! claim, never the size a real machine would see.

use super::modeled::{self, Modeled, Profile, Unit};
use super::rows::{
    fmt_num, fmt_ratio, not_measured, op_us_per_ipi_shootdown, wait_us_per_ipi_shootdown, Kind, Row,
};
use super::{
    Measured, Reproduction, TECH_BUILDKERNEL, TECH_BUILDKERNEL_MODEL, TECH_FORKEXIT,
    TECH_FORKEXIT_MODEL, TECH_SHOOTSTORM_MODEL,
};
use crate::results::derive::{RunFigures, SHOOT_KINDS};

/// Note keys.
const NOTE_AMIT: &str = "amit";
const NOTE_LAZY: &str = "lazy";
const NOTE_LATR: &str = "latr";
const NOTE_PCID: &str = "pcid";
const NOTE_AMIT_MODEL: &str = "amit-model";
const NOTE_LAZY_MODEL: &str = "lazy-model";
const NOTE_LATR_MODEL: &str = "latr-model";

/// The sources, as the rows name them.
const EARLY_ACK: &str = "Amit 2020: early acknowledgement";
const IN_CONTEXT: &str = "Amit 2020: in-context flushes";
const CONCURRENT: &str = "Amit 2020: concurrent flushing";
const CONSOLIDATION: &str = "Amit 2020: cacheline consolidation";
const LAZY: &str = "Linux lazy TLB";
const LATR: &str = "LATR (Kumar et al., ASPLOS 2018)";

/// `rows 1-2`: the measured rows of `sources`.
fn measured_rows(o: &Reproduction, sources: &[&str]) -> String {
    o.rows_where(|r| r.kind != Kind::Modeled && sources.contains(&r.seed.as_str()))
}

/// The CPUs every techniques experiment runs on.
const CPUS: u32 = 4;

/// Shootdown IPIs sent, all kinds.
fn shoot_ipis(r: &RunFigures) -> Option<f64> {
    r.sum_kinds("ipi.sent.", &SHOOT_KINDS)
}

/// `value` per context switch of run `r`.
fn per_switch(r: &RunFigures, value: Option<f64>) -> Option<f64> {
    let (value, switches) = (value?, r.total("sched.switches")?);
    (switches > 0.0).then(|| value / switches)
}

/// One comparison: `figure` of `variant` against `fixed` in experiment
/// `id`: "variant X vs fixed Y, ratio Z" with the per-rep ratio's spread.
struct Comparison<'a> {
    source: &'a str,
    published: &'a str,
    definition: String,
    id: &'a str,
    variant: &'a str,
    /// What it is compared with: `fixed`, or the protocol it changes.
    base: &'a str,
    figure: &'a dyn Fn(&RunFigures) -> Option<f64>,
    unit: &'a str,
    kind: Kind,
    note: &'static str,
    /// What the technique adds, beside what the row's figure says it
    /// saves.
    adds: Vec<Adds<'a>>,
    /// Its modeled twins (tcg-model), one row per profile each, after it.
    modeled: Vec<Modeled<'a>>,
}

/// What a technique costs, in the units of what it saves where it can be
/// counted: the same figure of the variant and of the base, so a reader
/// sees both sides of the trade in one cell.
enum Adds<'a> {
    /// `what` (its definition), per `figure`, for the variant and the base.
    Figure {
        what: &'a str,
        figure: &'a dyn Fn(&RunFigures) -> Option<f64>,
    },
    /// Nothing the lab can count, and why.
    Uncounted(&'a str),
}

impl Adds<'_> {
    /// "; adds <what> <variant's> (<base> <base's>)" for the lab cell.
    fn cell(&self, o: &Reproduction, c: &Comparison<'_>) -> String {
        match self {
            Adds::Uncounted(why) => format!("; adds {why}"),
            Adds::Figure { what, figure } => {
                let median = |v: &str| {
                    o.per_rep(|rep| figure(o.pool.get(c.id, v, CPUS, rep)?))
                        .and_then(|m| m.median())
                };
                match (median(c.variant), median(c.base)) {
                    (Some(with), Some(base)) => format!(
                        "; adds {what} {} ({} {})",
                        fmt_num(with),
                        c.base,
                        fmt_num(base)
                    ),
                    _ => format!("; adds {what} (not reported)"),
                }
            }
        }
    }
}

/// The measured row of `c` and, after it, its modeled rows.
fn rows_of(o: &Reproduction, c: Comparison<'_>) -> Vec<Row> {
    let modeled: Vec<Row> = c.modeled.iter().flat_map(|m| modeled::rows(o, m)).collect();
    std::iter::once(row(o, c)).chain(modeled).collect()
}

fn row(o: &Reproduction, c: Comparison<'_>) -> Row {
    let (lab, spread, measured) = if let Some(why) = o.why_not(&[c.id], &[c.variant, c.base]) {
        not_measured(why)
    } else {
        match measured(o, &c) {
            Some((lab, spread, m)) => {
                let adds: String = c.adds.iter().map(|a| a.cell(o, &c)).collect();
                (lab + &adds, spread, m)
            }
            None => not_measured("no ok runs reported the figure".into()),
        }
    };
    Row {
        seed: c.source.into(),
        published: c.published.into(),
        definition: c.definition,
        lab,
        spread,
        measured,
        accel: o.accel_of(c.id),
        kind: c.kind,
        profile: None,
        note: c.note,
    }
}

/// The lab cell, spread cell and per-rep ratios of `c`'s figure; None if
/// no ok run reported it.
fn measured(o: &Reproduction, c: &Comparison<'_>) -> Option<(String, String, Option<Measured>)> {
    {
        let median = |v: &str| {
            o.per_rep(|rep| (c.figure)(o.pool.get(c.id, v, CPUS, rep)?))
                .and_then(|m| m.median())
        };
        let ratio = o.per_rep(|rep| {
            let base = (c.figure)(o.pool.get(c.id, c.base, CPUS, rep)?)?;
            let with = (c.figure)(o.pool.get(c.id, c.variant, CPUS, rep)?)?;
            (base != 0.0).then(|| with / base)
        });
        match (median(c.variant), median(c.base), ratio) {
            (Some(with), Some(base), Some(m)) => Some((
                format!(
                    "{} {}{} vs {} {}{}, ratio {}",
                    c.variant,
                    fmt_num(with),
                    c.unit,
                    c.base,
                    fmt_num(base),
                    c.unit,
                    fmt_ratio(m.median().unwrap_or(f64::NAN))
                ),
                format!("ratio {}", m.spread(fmt_ratio)),
                Some(m),
            )),
            (Some(with), Some(base), None) => Some((
                format!(
                    "{} {}{} vs {} {}{} (no ratio over 0)",
                    c.variant,
                    fmt_num(with),
                    c.unit,
                    c.base,
                    fmt_num(base),
                    c.unit
                ),
                "-".into(),
                None,
            )),
            _ => None,
        }
    }
}

pub fn rows(o: &Reproduction) -> Vec<Row> {
    let wait = wait_us_per_ipi_shootdown;
    let fork = o.label(TECH_FORKEXIT);
    let build = o.label(TECH_BUILDKERNEL);
    // forkexit, not mmap-storm: under tcg-icount mmap-storm's threads
    // hardly overlap (3 IPI-sending shootdowns in 100 ops on 4 CPUs), while
    // every forkexit exit is an all-CPU shoottlb.
    let wait_def = |what: &str| {
        format!(
            "{fork} on {CPUS} CPUs: the initiator's mean wait per IPI-sending shootdown \
             ((shoot.wait.slot + shoot.wait.ack) / shootdowns with IPIs, us of virtual time), \
             {what} vs fixed, median of the per-rep ratio"
        )
    };
    let shootpage = |r: &RunFigures| r.total("shoot.calls.shootpage");
    let target_lines = |r: &RunFigures| r.total("shoot.target_lines");
    let flushing_loads = |r: &RunFigures| {
        let kept = r.total("pcid.kept_loads").unwrap_or(0.0);
        per_switch(r, Some(r.total("sched.cr3_loads")? - kept))
    };
    let ipis = shoot_ipis;
    let cr3 = |r: &RunFigures| per_switch(r, r.total("sched.cr3_loads"));
    let ipis_switch = |r: &RunFigures| per_switch(r, shoot_ipis(r));
    let ops = |r: &RunFigures| r.figure("ops_per_s");
    let per_job = |r: &RunFigures, value: Option<f64>| Some(value? / r.figure("ops")?);
    let latr_ipis = |r: &RunFigures| per_job(r, shoot_ipis(r));
    // What each technique adds, in the units of what its row saves.
    let total = |name: &'static str| move |r: &RunFigures| Some(r.total(name).unwrap_or(0.0));
    let deferred_applied = total("shoot.deferred_applied");
    let initiator_lines = total("shoot.initiator_lines");
    let spurious_faults = total("vm.faults_spurious");
    let catchups_switch =
        |r: &RunFigures| per_switch(r, Some(r.total("lazy.catchup_flushes").unwrap_or(0.0)));
    let evictions_switch =
        |r: &RunFigures| per_switch(r, Some(r.total("lazy.evictions").unwrap_or(0.0)));
    let latr_cross_calls = |r: &RunFigures| {
        let calls = r.total("latr.settle_ipis").unwrap_or(0.0)
            + r.total("latr.fallback_ipis").unwrap_or(0.0);
        per_job(r, Some(calls))
    };
    let latr_scanned = |r: &RunFigures| per_job(r, Some(r.total("latr.scanned").unwrap_or(0.0)));
    let latr_held = |r: &RunFigures| {
        per_job(
            r,
            Some(r.total("latr.held_page_us").unwrap_or(0.0) / 1000.0),
        )
    };
    let pcid_full =
        |r: &RunFigures| per_switch(r, Some(r.total("pcid.invalidations_full").unwrap_or(0.0)));
    // The modeled twins (tcg-model): figures on the model's clocks and
    // caches, one row per cost profile.
    let mfork = o.label(TECH_FORKEXIT_MODEL);
    let mstorm = o.label(TECH_SHOOTSTORM_MODEL);
    let mbuild = o.label(TECH_BUILDKERNEL_MODEL);
    let m_wait = |r: &RunFigures, p: &Profile| modeled::fig(r, &p.name, "wait_per_shootdown");
    let m_shoot = |r: &RunFigures, p: &Profile| modeled::fig(r, &p.name, "shoot_per_shootdown");
    let m_transfers =
        |r: &RunFigures, p: &Profile| modeled::per_shootdown(r, &p.name, "coh.misses");
    let m_refills =
        |r: &RunFigures, p: &Profile| per_switch(r, modeled::fig(r, &p.name, "tlb.refills"));
    let m_rate = |r: &RunFigures, p: &Profile| modeled::fig(r, &p.name, "ops_per_s");
    let m_wait_def = |what: &str| {
        format!(
            "{mfork} on {CPUS} CPUs, modeled ({{profile}}): the initiator's wait per shootdown \
             on its modeled clock (model.{{profile}}.wait_per_shootdown = wait.cycles / \
             wait.count; ns at the profile's clock), {what} vs fixed"
        )
    };
    let consolidation_extra = |o: &Reproduction, p: &Profile| -> Option<String> {
        let v = |variant: &str, f: &dyn Fn(&RunFigures) -> Option<f64>| {
            modeled::value(o, TECH_SHOOTSTORM_MODEL, variant, f)
        };
        let per_op = |r: &RunFigures| modeled::fig(r, &p.name, "per_op.coh.misses");
        let false_sh = |r: &RunFigures| modeled::per_shootdown(r, &p.name, "coh.false_sharing");
        let wait = |r: &RunFigures| modeled::fig(r, &p.name, "wait_per_shootdown");
        let pair = |f: &dyn Fn(&RunFigures) -> Option<f64>, show: &dyn Fn(f64) -> String| {
            Some(format!(
                "{} vs {}",
                show(v("cacheline-consolidation", f)?),
                show(v("scoreboard", f)?)
            ))
        };
        Some(format!(
            "per request {}; falsely shared {}; initiator wait {}",
            pair(&per_op, &|x| fmt_num(x))?,
            pair(&false_sh, &|x| fmt_num(x))?,
            pair(&wait, &|x| format!("{} ns", fmt_num(p.ns(x))))?,
        ))
    };
    let lazy_extra = |o: &Reproduction, p: &Profile| -> Option<String> {
        let misses = |r: &RunFigures| per_switch(r, modeled::fig(r, &p.name, "tlb.misses"));
        Some(format!(
            "all TLB misses per switch {} vs {}",
            fmt_num(modeled::value(o, TECH_FORKEXIT_MODEL, "lazy-tlb", misses)?),
            fmt_num(modeled::value(o, TECH_FORKEXIT_MODEL, "fixed", misses)?)
        ))
    };
    let latr_extra = |o: &Reproduction, p: &Profile| -> Option<String> {
        let wait =
            |r: &RunFigures| Some(modeled::fig(r, &p.name, "wait.cycles")? / r.figure("ops")?);
        let shootdowns =
            |r: &RunFigures| Some(modeled::fig(r, &p.name, "shoot.count")? / r.figure("ops")?);
        let v = |variant: &str, f: &dyn Fn(&RunFigures) -> Option<f64>| {
            modeled::value(o, TECH_BUILDKERNEL_MODEL, variant, f)
        };
        Some(format!(
            "initiators' wait per job {} vs {} ns; shootdowns with IPIs per job {} vs {}",
            fmt_num(p.ns(v("lazy-latr", &wait)?)),
            fmt_num(p.ns(v("fixed", &wait)?)),
            fmt_num(v("lazy-latr", &shootdowns)?),
            fmt_num(v("fixed", &shootdowns)?)
        ))
    };
    let list: Vec<Comparison<'_>> = vec![
        Comparison {
            source: EARLY_ACK,
            published: "no figure of its own: the paper's figures are not in the lab's sources; \
                        posted for Linux in RFC v2 11/12 (2019), which let the initiator go on \
                        once the IPI was delivered, and dropped in v1",
            definition: wait_def("early-ack"),
            id: TECH_FORKEXIT,
            variant: "early-ack",
            base: "fixed",
            figure: &wait,
            unit: " us",
            kind: Kind::Time,
            note: NOTE_AMIT,
            adds: vec![Adds::Uncounted(
                "no work the lab counts; the target acknowledges before it invalidates, a window \
                 AckRule keeps shut where page tables are freed or the kernel pmap is shot down",
            )],
            modeled: vec![Modeled {
                source: EARLY_ACK,
                published: "the same",
                definition: m_wait_def("early-ack"),
                id: TECH_FORKEXIT_MODEL,
                variant: "early-ack",
                base: Some("fixed"),
                cpus: CPUS,
                figure: &m_wait,
                unit: Unit::Cycles,
                extra: None,
                note: NOTE_AMIT_MODEL,
            }],
        },
        Comparison {
            source: IN_CONTEXT,
            published: "Linux RFC \"Defer TLB flushes with PTI\" (2019-08, Skylake): \
                        madvise(MADV_DONTNEED) of 1 page 2119 -> 1986 cycles (-6.7 %), of 10 \
                        pages 6791 -> 5417 (-20 %)",
            definition: wait_def("in-context-flush"),
            id: TECH_FORKEXIT,
            variant: "in-context-flush",
            base: "fixed",
            figure: &wait,
            unit: " us",
            kind: Kind::Time,
            note: NOTE_AMIT,
            adds: vec![Adds::Figure {
                what: "invalidations deferred to the return to user and done there \
                       (shoot.deferred_applied)",
                figure: &deferred_applied,
            }],
            modeled: vec![Modeled {
                source: IN_CONTEXT,
                published: "the same",
                definition: m_wait_def("in-context-flush"),
                id: TECH_FORKEXIT_MODEL,
                variant: "in-context-flush",
                base: Some("fixed"),
                cpus: CPUS,
                figure: &m_wait,
                unit: Unit::Cycles,
                extra: None,
                note: NOTE_AMIT_MODEL,
            }],
        },
        Comparison {
            source: CONCURRENT,
            published: "the paper's figure is not in the lab's sources; fixed (OpenBSD's order) \
                        already flushes concurrently, so the row measures its before, \
                        flush-first (Linux's flush_tlb_mm_range, FreeBSD before D25510)",
            definition: format!(
                "{fork} on {CPUS} CPUs: the initiator's whole cost per IPI-sending shootdown, \
                 its own invalidation included (shoot.op_cycles / shootdowns with IPIs, us of \
                 virtual time), flush-first vs fixed"
            ),
            id: TECH_FORKEXIT,
            variant: "flush-first",
            base: "fixed",
            figure: &op_us_per_ipi_shootdown,
            unit: " us",
            kind: Kind::Time,
            note: NOTE_AMIT,
            adds: vec![Adds::Uncounted(
                "it is the order concurrent flushing replaced: its own invalidation before the \
                 IPIs leave, inside the row's time",
            )],
            modeled: vec![Modeled {
                source: CONCURRENT,
                published: "the same",
                definition: format!(
                    "{mfork} on {CPUS} CPUs, modeled ({{profile}}): a shootdown from its start \
                     (before flush-first's own invalidation) to its last ack, on the \
                     initiator's modeled clock (model.{{profile}}.shoot_per_shootdown = \
                     shoot.cycles / shoot.count), flush-first vs fixed"
                ),
                id: TECH_FORKEXIT_MODEL,
                variant: "flush-first",
                base: Some("fixed"),
                cpus: CPUS,
                figure: &m_shoot,
                unit: Unit::Cycles,
                extra: None,
                note: NOTE_AMIT_MODEL,
            }],
        },
        Comparison {
            source: CONSOLIDATION,
            published: "the paper's figure is not in the lab's sources; Linux inlined the \
                        flush information into the per-target call-single-data (one line read \
                        where there were two or three)",
            definition: format!(
                "{fork} on {CPUS} CPUs: cache lines a target touches to take and acknowledge \
                 one request (shoot.target_lines, from the addresses the serve path uses), \
                 cacheline-consolidation vs the scoreboard it changes"
            ),
            id: TECH_FORKEXIT,
            variant: "cacheline-consolidation",
            base: "scoreboard",
            figure: &target_lines,
            unit: "",
            kind: Kind::Count,
            note: NOTE_AMIT,
            adds: vec![Adds::Figure {
                what: "lines the initiator writes per request (shoot.initiator_lines)",
                figure: &initiator_lines,
            }],
            modeled: vec![Modeled {
                source: CONSOLIDATION,
                published: "the same",
                definition: format!(
                    "{mstorm} on {CPUS} CPUs (concurrent kernel shootdowns from every CPU), \
                     modeled ({{profile}}): cache-line transfers per shootdown \
                     (model.{{profile}}.coh.misses / shoot.count), then per request \
                     (per_op.coh.misses), the falsely shared ones per shootdown \
                     (coh.false_sharing / shoot.count) and the initiator's wait \
                     (wait_per_shootdown), cacheline-consolidation vs scoreboard"
                ),
                id: TECH_SHOOTSTORM_MODEL,
                variant: "cacheline-consolidation",
                base: Some("scoreboard"),
                cpus: CPUS,
                figure: &m_transfers,
                unit: Unit::Plain(""),
                extra: Some(&consolidation_extra),
                note: NOTE_AMIT_MODEL,
            }],
        },
        Comparison {
            source: "Amit 2020: copy-on-write",
            published: "flushes on copy-on-write faults avoided (abstract; the figure is not in \
                        the lab's sources)",
            definition: format!(
                "{fork} on {CPUS} CPUs: shootpage calls (shoot.calls.shootpage), no-flush-cow \
                 vs fixed"
            ),
            id: TECH_FORKEXIT,
            variant: "no-flush-cow",
            base: "fixed",
            figure: &shootpage,
            unit: "",
            kind: Kind::Count,
            note: NOTE_AMIT,
            adds: vec![Adds::Figure {
                what: "write faults through a stale read-only entry (vm.faults_spurious)",
                figure: &spurious_faults,
            }],
            modeled: vec![],
        },
        Comparison {
            source: "Amit 2020: copy-on-write",
            published: "the same",
            definition: format!(
                "{build} on {CPUS} CPUs: shootdown IPIs sent (ipi.sent.shoot*), no-flush-cow \
                 vs fixed (single-threaded jobs, then a multi-threaded link step)"
            ),
            id: TECH_BUILDKERNEL,
            variant: "no-flush-cow",
            base: "fixed",
            figure: &ipis,
            unit: "",
            kind: Kind::Count,
            note: NOTE_AMIT,
            adds: vec![Adds::Figure {
                what: "write faults through a stale read-only entry (vm.faults_spurious)",
                figure: &spurious_faults,
            }],
            modeled: vec![],
        },
        Comparison {
            source: LAZY,
            published: "Rik van Riel's 2018 series: switch_mm_irqs_off 1.9 % of CPU in a 48-CPU \
                        netperf run, context-switch CPU time about halved in a netbench; no IPI \
                        counts",
            definition: format!(
                "{fork} on {CPUS} CPUs: CR3 loads per context switch (sched.cr3_loads / \
                 sched.switches), lazy-tlb vs fixed"
            ),
            id: TECH_FORKEXIT,
            variant: "lazy-tlb",
            base: "fixed",
            figure: &cr3,
            unit: "",
            kind: Kind::Count,
            note: NOTE_LAZY,
            adds: vec![Adds::Figure {
                what: "catch-up flushes per switch on the way back from lazy \
                       (lazy.catchup_flushes / sched.switches)",
                figure: &catchups_switch,
            }],
            modeled: vec![Modeled {
                source: LAZY,
                published: "the same",
                definition: format!(
                    "{mfork} on {CPUS} CPUs, modeled ({{profile}}): TLB refills per context \
                     switch (model.{{profile}}.tlb.refills / sched.switches: misses on a \
                     translation an INVLPG or a flush removed), lazy-tlb vs fixed"
                ),
                id: TECH_FORKEXIT_MODEL,
                variant: "lazy-tlb",
                base: Some("fixed"),
                cpus: CPUS,
                figure: &m_refills,
                unit: Unit::Plain(""),
                extra: Some(&lazy_extra),
                note: NOTE_LAZY_MODEL,
            }],
        },
        Comparison {
            source: LAZY,
            published: "the same",
            definition: format!(
                "{build} on {CPUS} CPUs: shootdown IPIs per context switch (ipi.sent.shoot* / \
                 sched.switches), lazy-tlb vs fixed"
            ),
            id: TECH_BUILDKERNEL,
            variant: "lazy-tlb",
            base: "fixed",
            figure: &ipis_switch,
            unit: "",
            kind: Kind::Count,
            note: NOTE_LAZY,
            adds: vec![Adds::Figure {
                what: "cross-calls per switch that make lazy CPUs drop a pmap being freed \
                       (lazy.evictions / sched.switches)",
                figure: &evictions_switch,
            }],
            modeled: vec![],
        },
        Comparison {
            source: LATR,
            published: "munmap latency -70.8 %, Apache +59.9 % over Linux (2-socket machine)",
            definition: format!(
                "{build} on {CPUS} CPUs: jobs per second of virtual time (ops_per_s), \
                 lazy-latr vs fixed"
            ),
            id: TECH_BUILDKERNEL,
            variant: "lazy-latr",
            base: "fixed",
            figure: &ops,
            unit: " ops/s",
            kind: Kind::Time,
            note: NOTE_LATR,
            adds: vec![
                Adds::Figure {
                    what: "ring records every sweep reads, per job (latr.scanned / ops)",
                    figure: &latr_scanned,
                },
                Adds::Figure {
                    what: "page-milliseconds its quarantine held, per job \
                           (latr.held_page_us / 1000 / ops)",
                    figure: &latr_held,
                },
            ],
            modeled: vec![Modeled {
                source: LATR,
                published: "the same",
                definition: format!(
                    "{mbuild} on {CPUS} CPUs, modeled ({{profile}}): jobs per second of the \
                     model's clocks (model.{{profile}}.ops_per_s), lazy-latr vs fixed"
                ),
                id: TECH_BUILDKERNEL_MODEL,
                variant: "lazy-latr",
                base: Some("fixed"),
                cpus: CPUS,
                figure: &m_rate,
                unit: Unit::Plain(" ops/s"),
                extra: Some(&latr_extra),
                note: NOTE_LATR_MODEL,
            }],
        },
        Comparison {
            source: LATR,
            published: "the same",
            definition: format!(
                "{build} on {CPUS} CPUs: shootdown IPIs per job (ipi.sent.shoot* / ops), \
                 lazy-latr vs fixed"
            ),
            id: TECH_BUILDKERNEL,
            variant: "lazy-latr",
            base: "fixed",
            figure: &latr_ipis,
            unit: "",
            kind: Kind::Count,
            note: NOTE_LATR,
            adds: vec![Adds::Figure {
                what: "cross-calls per job that settle a quarantine needed early or past its \
                       time bound ((latr.settle_ipis + latr.fallback_ipis) / ops)",
                figure: &latr_cross_calls,
            }],
            modeled: vec![],
        },
        Comparison {
            source: "PCID (Linux, FreeBSD)",
            published: "none quoted",
            definition: format!(
                "{build} on {CPUS} CPUs: CR3 loads that flushed the TLB per context switch \
                 ((sched.cr3_loads - pcid.kept_loads) / sched.switches), pcid vs fixed"
            ),
            id: TECH_BUILDKERNEL,
            variant: "pcid",
            base: "fixed",
            figure: &flushing_loads,
            unit: "",
            kind: Kind::Count,
            note: NOTE_PCID,
            adds: vec![Adds::Figure {
                what: "whole-PCID flushes per switch where an INVLPG would have done \
                       (pcid.invalidations_full / sched.switches)",
                figure: &pcid_full,
            }],
            modeled: vec![],
        },
    ];
    list.into_iter().flat_map(|c| rows_of(o, c)).collect()
}

/// The title and text of note `key`.
pub fn note(o: &Reproduction, key: &str) -> (&'static str, String) {
    match key {
        NOTE_AMIT => (
            "Amit, Tai, Wei, \"Don't shoot down TLB shootdowns!\", EuroSys 2020",
            modeled::fill(
            "The paper's own figures are not in the lab's sources (only its abstract and the \
             Linux patch threads are), so the published column quotes the Linux postings where \
             they give one. Early acknowledgement and in-context flushes take the target's \
             invalidation off the initiator's critical path. On the paper's machines that was \
             INVLPG or INVPCID at hundreds of cycles each, doubled by PTI, plus the refills; \
             under tcg-icount an INVLPG is one instruction with no TLB or pipeline cost, and \
             the initiator's wait is set by the round robin (which vCPU runs next, and for how \
             long), not by the few instructions a target saves. The acknowledging target also \
             first copies the request out of the global slot (it frees the slot for the next \
             initiator), which costs more instructions than the INVLPG it goes before. So the \
             lab's wait does not fall with either technique ({early_rows}), and the lab cannot \
             speak for the published saving; KVM on real hardware could, and the modeled rows \
             beside them give the direction on modeled caches and clocks. Concurrent flushing ({concurrent_rows}) \
             is the same story from the initiator's side: its own INVLPG or CR3 reload, done \
             before the IPIs (flush-first) or while they are in flight (fixed), is a few \
             instructions under icount, so the whole shootdown costs about the same either \
             way; the lab shows the order (shoot.local_first against shoot.local_overlapped), \
             not the published saving. Cacheline consolidation ({consolidation_rows}) is a layout: the lab \
             counts the lines a target touches per request from the addresses its serve path \
             uses (the scoreboard's row word and the initiator's record, 2; one mailbox per \
             pair, 1), but TCG has no cache model, so what a line transfer costs, the paper's \
             saving, shows in no time here. The copy-on-write \
             shortcut is a count: every write upgrade of a frame no longer shared is a \
             shootpage call fixed makes and no-flush-cow does not; it saves IPIs only where \
             the faulting process has threads on other CPUs (the coherence oracle's, in the \
             default matrix), not in buildkernel, whose upgrades are in single-threaded jobs \
             (its IPI count moves only with scheduling).",
            &[
                ("early_rows", measured_rows(o, &[EARLY_ACK, IN_CONTEXT])),
                ("concurrent_rows", measured_rows(o, &[CONCURRENT])),
                ("consolidation_rows", measured_rows(o, &[CONSOLIDATION])),
            ],
        ),
        ),
        NOTE_LAZY => (
            "Linux lazy TLB",
            "What lazy TLB saves is the CR3 reload (a full TLB flush) of an idle round trip: \
             CR3 loads per switch fall. IPIs move both ways. A lazy CPU stays in pm_cpus, so a \
             shootdown that frees page tables still reaches it (Linux since 4.19 skips lazy \
             CPUs only for the others), where fixed's idle CPU had left pm_cpus: forkexit and \
             the coherence oracle send a few more IPIs (default matrix). But a lazy CPU is \
             skipped by the shootdowns that free nothing, OpenBSD's all-CPU shoottlb included \
             when it holds that very pmap: buildkernel, where make's CPU idles lazily while its \
             jobs exit, sends fewer. Both are counts; no published IPI count to compare with."
                .into(),
        ),
        NOTE_LATR => (
            "LATR (Kumar et al., ASPLOS 2018)",
            "LATR's munmap returns without interrupting anyone: it writes one record of the \
             range into its own ring, and every CPU reads every ring at its next timer tick or \
             context switch and applies what names it (the lab builds LATR's pull: the \
             initiator writes one line, each sweep reads every live record). The frames and \
             addresses wait in quarantine for a time bound of two ticks (LATR's patch: 2 s, \
             reclaimed by a thread each second), after which any CPU still pending gets a \
             fallback cross-call; a mapping or a teardown that needs them sooner settles them \
             with cross-calls at once. Both kinds of cross-call are IPIs the technique adds: \
             the rows count them apart from the shootdown IPIs it saves, beside the records \
             its sweeps read and the memory its quarantine held. The paper's -70.8 % munmap \
             latency is the IPI round trip on a 2-socket machine, which the lab has no \
             equivalent of under tcg-icount (an IPI costs the instructions of its handler and \
             the round robin's turns); what the lab shows is the direction: the IPIs go, and \
             the rate moves by what they cost in instructions. The coherence oracle checks \
             LATR against its own promise (lazy=on): after munmap, only the old value until \
             the reader's CPU applies it; `mutant-latr-early-free`, which gives the frames back \
             at once, is caught by it."
                .into(),
        ),
        NOTE_AMIT_MODEL => ("Amit 2020 on the model", note_amit_model(o)),
        NOTE_LAZY_MODEL => ("Linux lazy TLB on the model", note_lazy_model(o)),
        NOTE_LATR_MODEL => ("LATR on the model", note_latr_model(o)),
        _ => (
            "PCID",
            "The pcid variant is built (kernel/src/mm/pcid.rs: six PCIDs per CPU, a \
             per-pmap generation that a shootdown bumps and a load compares, global kernel \
             mappings so that a kernel-address INVLPG reaches every PCID, as Linux), but it has never run on this workplace: \
             QEMU 7.2's TCG offers no PCID (`-cpu max,+pcid` warns \"TCG doesn't support \
             requested feature\") and this host's paravirtual KVM offers none either (\"host \
             doesn't support requested feature: CPUID.01H:ECX.pcid\"), so every run ends \
             `unsupported` and says so. Under TCG the question could not be asked anyway: it \
             flushes its whole software TLB on every CR3 write. On a host whose KVM offers PCID \
             the row fills in; pmap-selftest then checks that a load after a remap made while \
             the pmap was loaded nowhere sees the new frame, which mutant-pcid-stale (it keeps \
             the PCID's entries on every load) should fail: unverified until it runs. What PCID saves is the flush of \
             a context switch, not an IPI: fixed already sends none to a CPU that switched \
             away."
                .into(),
        ),
    }
}

/// Per profile: `f`'s text, joined: "skylake-sp: ...; zen3: ...".
fn per_profile(o: &Reproduction, f: impl Fn(&Profile) -> String) -> String {
    o.profiles
        .iter()
        .map(|p| format!("{}: {}", p.name, f(p)))
        .collect::<Vec<_>>()
        .join("; ")
}

/// `variant`'s modeled `what` over `base`'s in experiment `id`, under the
/// first profile (the profiles agree in direction; the rows give both).
fn model_ratio(o: &Reproduction, id: &str, variant: &str, base: &str, what: &str) -> Option<f64> {
    let p = o.profiles.first()?;
    let f = |r: &RunFigures| modeled::fig(r, &p.name, what);
    Some(modeled::value(o, id, variant, f)? / modeled::value(o, id, base, f)?)
}

/// "a / b" of two variants' modeled `what` per profile, in ns or plain.
fn model_pair(
    o: &Reproduction,
    id: &str,
    variant: &str,
    base: &str,
    what: &str,
    ns: bool,
) -> String {
    per_profile(o, |p| {
        let q = |v: &str| {
            modeled::quote(
                o,
                id,
                v,
                |r| modeled::fig(r, &p.name, what),
                |x| {
                    if ns {
                        format!("{} ns", fmt_num(p.ns(x)))
                    } else {
                        fmt_num(x)
                    }
                },
            )
        };
        format!("{} vs {}", q(variant), q(base))
    })
}

const TEXT_AMIT_MODEL: &str = "The same techniques on the memory-system model \
(tcg-model, one run; repetitions are bit-identical), whose clocks charge what tcg-icount \
does not: cache-line transfers at measured core-to-core latencies, TLB misses and page \
walks, and an IPI's delivery, the target's interrupt entry and exit, its EOI and each \
INVLPG at costs model/profiles labels assumptions. Early acknowledgement: the initiator's \
modeled wait {early_dir} ({early}), which {early_agree} the paper's direction: the target \
acknowledges before its INVLPG, so the wait no longer holds the target's invalidation (an \
assumed 200 cycles per page) and the handler's work after it; the size of the saving is the \
size of those assumed costs. In-context flushes: the wait {ctx_dir} ({ctx}), which \
{ctx_agree} the paper's direction. A request taken in the kernel is acknowledged \
at once and its invalidation deferred to the return to user mode (batched: modeled full \
flushes {ctx_flushes}), yet the model charges the variant more falsely shared transfers \
({ctx_fs}). The deferral keeps each CPU's list (lab_core::protocol::deferral::Deferred: \
16 addresses, a count and a flag, 144 bytes) in an array without padding to lines, so \
neighbouring CPUs' lists share a line that each target writes in the handler, and targets \
taking the same request bounce it; the lab has not traced \
which of the added transfers fall inside the initiator's wait, so the row reports what \
the lab's layout costs, not what the technique must cost (the paper's Linux kept such \
state per CPU on lines of its own). Concurrent flushing: a shootdown from start to last ack \
{ff_dir} with flush-first ({ff}), {ff_agree} the paper: flush-first's initiator spends its \
own invalidation before the IPIs leave, so every target starts that much later; that \
invalidation is an assumed INVLPG or CR3-write cost, so again the direction stands and the \
size is the assumption's. Cacheline consolidation, on shoot-storm (in forkexit the \
transfers are the fork and exec copying pages, {fork_transfers} per shootdown): all \
transfers per shootdown {cc_dir} ({cc}), the falsely shared ones {cc_fs_dir} ({cc_fs}), and \
the initiator's wait {cc_wait_dir} ({cc_wait}). The kernel's footprint says why \
(consolidated vs scoreboard): a target touches {tl} lines per request \
(shoot.target_lines), scans {sl} (target_scan_lines), and an initiator posts to {il} \
(initiator_lines) for an all-CPU request. So consolidation does what the paper says on the \
target's side (one line per request, the pair's alone: half the false sharing) and pays \
where the paper's Linux paid too, one line per target for the initiator and one per \
initiator in every target's scan, which on these all-CPU storms is more transfers in all; \
on 4 CPUs the two about cancel in the wait. The transfer counts follow from the guest's \
accesses and their costs are measured core-to-core latencies, so these rows are the ones \
the model speaks for best; the paper's gain grows with the targets a request reaches, \
and 4 CPUs is the smallest case.";

const TEXT_LAZY_MODEL: &str = "On the model, TLB refills per context switch \
(misses on translations an INVLPG or a flush removed) {dir} with lazy TLB ({refills}), \
which {agree} what the 2018 series saves: fixed reloads CR3 on an idle round trip and so \
flushes the TLB, and the process that comes back refills what it had; a lazy CPU keeps \
the old CR3 and its entries. The refill count is the model's TLB (the profiles' published \
second-level sizes) replaying the guest's own accesses, so it is a count the model speaks \
for; what a refill costs (a page walk of 56 or 48 cycles) is an assumption, so the CPU \
time the series reports is not claimed here.";

const TEXT_LATR_MODEL: &str = "LATR does what the paper says to the \
shootdowns: the initiators' modeled wait per job falls from fixed's to a small fraction \
({wait}). But buildkernel's rate on the model's clocks {dir} ({rate}), which {agree} the \
paper's Apache +59.9 %. The wait was a small part of a job; what the model charges \
lazy-latr is cache-line transfers, {coh} (model.<p>.coh.misses per job), whose cycles are \
about the rate's whole loss. They are spread over many lines (no single queue word is \
hot), so the likeliest source is the quarantine itself: frames and addresses held until \
every CPU applied the invalidation are not reused at once, and a job's new pages come from \
lines other CPUs wrote last, where fixed reuses what was freed on the same CPU; that is \
the lab's reading of the counts, not a measured cause. The paper's -70.8 % munmap latency \
would need the munmap's own span, which the kernel does not mark for the model. The \
transfers and their costs are what the model speaks for best; the paper's machine had \
caches large enough, and a workload (Apache) whose frees were rare enough, that the \
quarantine cost little there.";

fn note_amit_model(o: &Reproduction) -> String {
    let f = TECH_FORKEXIT_MODEL;
    let st = TECH_SHOOTSTORM_MODEL;
    let wait = "wait_per_shootdown";
    let falls = |r: Option<f64>| modeled::agrees_if_falls(r).to_string();
    let r_early = model_ratio(o, f, "early-ack", "fixed", wait);
    let r_ctx = model_ratio(o, f, "in-context-flush", "fixed", wait);
    let r_ff = model_ratio(o, f, "fixed", "flush-first", "shoot_per_shootdown");
    let per_sd = |what: &'static str| {
        move |r: &RunFigures, p: &Profile| modeled::per_shootdown(r, &p.name, what)
    };
    let sd_ratio = |what: &'static str| -> Option<f64> {
        let p = o.profiles.first()?;
        let g = per_sd(what);
        let v = |v: &str| modeled::value(o, st, v, |r| g(r, p));
        Some(v("cacheline-consolidation")? / v("scoreboard")?)
    };
    let sd_pair = |what: &'static str| {
        per_profile(o, |p| {
            let g = per_sd(what);
            let q = |v: &str| modeled::quote(o, st, v, |r| g(r, p), fmt_num);
            format!("{} vs {}", q("cacheline-consolidation"), q("scoreboard"))
        })
    };
    let fork_transfers = per_profile(o, |p| {
        let g = per_sd("coh.misses");
        modeled::quote(o, f, "fixed", |r| g(r, p), fmt_num)
    });
    let lines = |metric: &str| {
        let q = |v: &str| modeled::quote(o, st, v, |r| r.total(metric), fmt_num);
        format!("{} vs {}", q("cacheline-consolidation"), q("scoreboard"))
    };
    modeled::fill(
        TEXT_AMIT_MODEL,
        &[
            ("early_dir", modeled::direction(r_early).into()),
            ("early", model_pair(o, f, "early-ack", "fixed", wait, true)),
            ("early_agree", falls(r_early)),
            ("ctx_dir", modeled::direction(r_ctx).into()),
            (
                "ctx",
                model_pair(o, f, "in-context-flush", "fixed", wait, true),
            ),
            ("ctx_agree", falls(r_ctx)),
            (
                "ff_dir",
                match r_ff {
                    Some(r) if r < 0.995 => "is longer",
                    Some(r) if r > 1.005 => "is shorter",
                    Some(_) => "is no different",
                    None => "is not known",
                }
                .into(),
            ),
            (
                "ff",
                model_pair(o, f, "flush-first", "fixed", "shoot_per_shootdown", true),
            ),
            (
                "ff_agree",
                match r_ff {
                    Some(r) if r < 0.995 => "as",
                    _ => "against",
                }
                .into(),
            ),
            ("fork_transfers", fork_transfers),
            ("cc_fs", sd_pair("coh.false_sharing")),
            (
                "ctx_flushes",
                model_pair(o, f, "in-context-flush", "fixed", "tlb.flushes", false),
            ),
            (
                "ctx_fs",
                model_pair(
                    o,
                    f,
                    "in-context-flush",
                    "fixed",
                    "coh.false_sharing",
                    false,
                ),
            ),
            ("cc_dir", modeled::direction(sd_ratio("coh.misses")).into()),
            ("cc", sd_pair("coh.misses")),
            (
                "cc_fs_dir",
                modeled::direction(sd_ratio("coh.false_sharing")).into(),
            ),
            (
                "cc_wait_dir",
                modeled::direction(model_ratio(
                    o,
                    st,
                    "cacheline-consolidation",
                    "scoreboard",
                    wait,
                ))
                .into(),
            ),
            (
                "cc_wait",
                model_pair(o, st, "cacheline-consolidation", "scoreboard", wait, true),
            ),
            ("tl", lines("shoot.target_lines")),
            ("sl", lines("shoot.target_scan_lines")),
            ("il", lines("shoot.initiator_lines")),
        ],
    )
}

fn note_lazy_model(o: &Reproduction) -> String {
    let f = TECH_FORKEXIT_MODEL;
    let refills =
        |r: &RunFigures, p: &Profile| per_switch(r, modeled::fig(r, &p.name, "tlb.refills"));
    let ratio = o.profiles.first().and_then(|p| {
        Some(
            modeled::value(o, f, "lazy-tlb", |r| refills(r, p))?
                / modeled::value(o, f, "fixed", |r| refills(r, p))?,
        )
    });
    modeled::fill(
        TEXT_LAZY_MODEL,
        &[
            ("dir", modeled::direction(ratio).into()),
            (
                "refills",
                per_profile(o, |p| {
                    let q = |v: &str| modeled::quote(o, f, v, |r| refills(r, p), fmt_num);
                    format!("{} vs {}", q("lazy-tlb"), q("fixed"))
                }),
            ),
            ("agree", modeled::agrees_if_falls(ratio).into()),
        ],
    )
}

fn note_latr_model(o: &Reproduction) -> String {
    let b = TECH_BUILDKERNEL_MODEL;
    let ratio = model_ratio(o, b, "lazy-latr", "fixed", "ops_per_s");
    let wait_per_job = per_profile(o, |p| {
        let w = |r: &RunFigures| Some(modeled::fig(r, &p.name, "wait.cycles")? / r.figure("ops")?);
        let q = |v: &str| modeled::quote(o, b, v, w, |x| format!("{} ns", fmt_num(p.ns(x))));
        let rate = |v: &str| {
            modeled::value(o, b, v, |r| {
                modeled::fig(r, &p.name, "workload.ns")
                    .zip(r.figure("ops"))
                    .map(|(ns, ops)| ns / ops)
            })
        };
        let share = match (rate("fixed"), modeled::value(o, b, "fixed", w)) {
            (Some(job), Some(wait)) if job > 0.0 => {
                format!(", {:.2} % of fixed's job", 100.0 * p.ns(wait) / job)
            }
            _ => String::new(),
        };
        format!("{} vs {} per job{share}", q("lazy-latr"), q("fixed"))
    });
    modeled::fill(
        TEXT_LATR_MODEL,
        &[
            (
                "dir",
                match ratio {
                    Some(r) if r > 1.005 => "rises",
                    Some(r) if r < 0.995 => "falls",
                    Some(_) => "stays the same",
                    None => "is not known",
                }
                .into(),
            ),
            (
                "rate",
                model_pair(o, b, "lazy-latr", "fixed", "ops_per_s", false),
            ),
            (
                "agree",
                match ratio {
                    Some(r) if r > 1.005 => "agrees with",
                    Some(_) => "does not show",
                    None => "cannot be compared with",
                }
                .into(),
            ),
            ("wait", wait_per_job),
            (
                "coh",
                model_pair(o, b, "lazy-latr", "fixed", "per_op.coh.misses", false),
            ),
        ],
    )
}
