//! The rows of `harness reproduce --techniques` (results/TECHNIQUES.md):
//! each technique published since the seeds beside `fixed`, on the lab's
//! own workloads, with the published figure where one exists.
//!
//! Every experiment runs under tcg-icount on 4 CPUs (Plan::techniques), so
//! counts and times are both repeatable; a time there is an instruction
//! cost (note "icount"), and the direction of an effect is what a row can
//! claim, never the size a real machine would see.

use super::figures::{op_us_per_ipi_shootdown, wait_us_per_ipi_shootdown};
use super::format::{three_decimals, three_digits};
use super::modeled::{self, Modeled, Profile, Unit};
use super::rows::{not_measured, Kind, Row};
use super::template;
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

/// The median over the repetitions of `figure` for `variant` in
/// experiment `id` (on [`CPUS`]).
fn median_over_reps(
    o: &Reproduction,
    id: &str,
    variant: &str,
    figure: &dyn Fn(&RunFigures) -> Option<f64>,
) -> Option<f64> {
    o.per_rep(|rep| figure(o.pool.get(id, variant, CPUS, rep)?))
        .and_then(|m| m.median())
}

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
                let median = |v: &str| median_over_reps(o, c.id, v, figure);
                match (median(c.variant), median(c.base)) {
                    (Some(with), Some(base)) => format!(
                        "; adds {what} {} ({} {})",
                        three_digits(with),
                        c.base,
                        three_digits(base)
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
        let median = |v: &str| median_over_reps(o, c.id, v, c.figure);
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
                    three_digits(with),
                    c.unit,
                    c.base,
                    three_digits(base),
                    c.unit,
                    three_decimals(m.median().unwrap_or(f64::NAN))
                ),
                format!("ratio {}", m.range_over_reps(three_decimals)),
                Some(m),
            )),
            (Some(with), Some(base), None) => Some((
                format!(
                    "{} {}{} vs {} {}{} (no ratio over 0)",
                    c.variant,
                    three_digits(with),
                    c.unit,
                    c.base,
                    three_digits(base),
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
            pair(&per_op, &|x| three_digits(x))?,
            pair(&false_sh, &|x| three_digits(x))?,
            pair(&wait, &|x| format!("{} ns", three_digits(p.ns(x))))?,
        ))
    };
    let lazy_extra = |o: &Reproduction, p: &Profile| -> Option<String> {
        let misses = |r: &RunFigures| per_switch(r, modeled::fig(r, &p.name, "tlb.misses"));
        Some(format!(
            "all TLB misses per switch {} vs {}",
            three_digits(modeled::value(o, TECH_FORKEXIT_MODEL, "lazy-tlb", misses)?),
            three_digits(modeled::value(o, TECH_FORKEXIT_MODEL, "fixed", misses)?)
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
            three_digits(p.ns(v("lazy-latr", &wait)?)),
            three_digits(p.ns(v("fixed", &wait)?)),
            three_digits(v("lazy-latr", &shootdowns)?),
            three_digits(v("fixed", &shootdowns)?)
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
            published:
                "the paper's figure is not in the lab's sources; Linux merged neither of the \
                        patent's two co-locations (flush_tlb_info stays apart from the \
                        call-single-data, is_lazy apart from the call queue), only the layout \
                        around them (flush_tlb_info off the stack, 5.3; cpu_tlbstate \
                        privatized, 5.13)",
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
            template::TECH_AMIT.fill(&[
                ("early_rows", measured_rows(o, &[EARLY_ACK, IN_CONTEXT])),
                ("concurrent_rows", measured_rows(o, &[CONCURRENT])),
                ("consolidation_rows", measured_rows(o, &[CONSOLIDATION])),
            ]),
        ),
        NOTE_LAZY => ("Linux lazy TLB", template::TECH_LAZY.fill(&[])),
        NOTE_LATR => ("LATR (Kumar et al., ASPLOS 2018)", note_latr(o)),
        NOTE_AMIT_MODEL => ("Amit 2020 on the model", note_amit_model(o)),
        NOTE_LAZY_MODEL => ("Linux lazy TLB on the model", note_lazy_model(o)),
        NOTE_LATR_MODEL => ("LATR on the model", note_latr_model(o)),
        _ => ("PCID", template::TECH_PCID.fill(&[])),
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
                        format!("{} ns", three_digits(p.ns(x)))
                    } else {
                        three_digits(x)
                    }
                },
            )
        };
        format!("{} vs {}", q(variant), q(base))
    })
}

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
            let q = |v: &str| modeled::quote(o, st, v, |r| g(r, p), three_digits);
            format!("{} vs {}", q("cacheline-consolidation"), q("scoreboard"))
        })
    };
    let fork_transfers = per_profile(o, |p| {
        let g = per_sd("coh.misses");
        modeled::quote(o, f, "fixed", |r| g(r, p), three_digits)
    });
    let lines = |metric: &str| {
        let q = |v: &str| modeled::quote(o, st, v, |r| r.total(metric), three_digits);
        format!("{} vs {}", q("cacheline-consolidation"), q("scoreboard"))
    };
    template::TECH_AMIT_MODEL.fill(&[
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
    ])
}

/// N5: what LATR's munmaps spared and still sent in buildkernel.
fn note_latr(o: &Reproduction) -> String {
    let munmap = |field: &'static str| {
        move |r: &RunFigures| -> Option<f64> {
            Some(
                SHOOT_KINDS
                    .iter()
                    .map(|k| {
                        r.total(&format!("shoot.cause.munmap.{k}.{field}"))
                            .unwrap_or(0.0)
                    })
                    .sum(),
            )
        }
    };
    let median = |variant: &str, f: &dyn Fn(&RunFigures) -> Option<f64>| {
        median_over_reps(o, TECH_BUILDKERNEL, variant, f)
            .map(three_digits)
            .unwrap_or_else(|| "(not measured)".into())
    };
    template::TECH_LATR.fill(&[
        ("spared", median("lazy-latr", &munmap("spared"))),
        ("sent", median("lazy-latr", &munmap("ipis"))),
        ("fixed_sent", median("fixed", &munmap("ipis"))),
    ])
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
    template::TECH_LAZY_MODEL.fill(&[
        ("dir", modeled::direction(ratio).into()),
        (
            "refills",
            per_profile(o, |p| {
                let q = |v: &str| modeled::quote(o, f, v, |r| refills(r, p), three_digits);
                format!("{} vs {}", q("lazy-tlb"), q("fixed"))
            }),
        ),
        ("agree", modeled::agrees_if_falls(ratio).into()),
    ])
}

fn note_latr_model(o: &Reproduction) -> String {
    let b = TECH_BUILDKERNEL_MODEL;
    let ratio = model_ratio(o, b, "lazy-latr", "fixed", "ops_per_s");
    let wait_per_job = per_profile(o, |p| {
        let w = |r: &RunFigures| Some(modeled::fig(r, &p.name, "wait.cycles")? / r.figure("ops")?);
        let q = |v: &str| modeled::quote(o, b, v, w, |x| format!("{} ns", three_digits(p.ns(x))));
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
    template::TECH_LATR_MODEL.fill(&[
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
    ])
}
