//! The rows of `harness reproduce --techniques` (results/TECHNIQUES.md):
//! each technique published since the seeds beside `fixed`, on the lab's
//! own workloads, with the published figure where one exists.
//!
//! Every experiment runs under tcg-icount on 4 CPUs (Plan::techniques), so
//! counts and times are both repeatable; a time there is an instruction
//! cost (note "icount"), and the direction of an effect is what a row can
//! claim, never the size a real machine would see.

use super::rows::{
    fmt_num, fmt_ratio, not_measured, op_us_per_ipi_shootdown, wait_us_per_ipi_shootdown, Kind, Row,
};
use super::{Reproduction, TECH_BUILDKERNEL, TECH_FORKEXIT};
use crate::results::derive::{RunFigures, SHOOT_KINDS};

/// Note keys.
const NOTE_AMIT: &str = "amit";
const NOTE_LAZY: &str = "lazy";
const NOTE_LATR: &str = "latr";
const NOTE_PCID: &str = "pcid";

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
}

fn row(o: &Reproduction, c: Comparison<'_>) -> Row {
    let (lab, spread, measured) = if let Some(why) = o.why_not(&[c.id], &[c.variant, c.base]) {
        not_measured(why)
    } else {
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
            (Some(with), Some(base), Some(m)) => (
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
            ),
            (Some(with), Some(base), None) => (
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
            ),
            _ => not_measured("no ok runs reported the figure".into()),
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
        note: c.note,
    }
}

/// The experiment's label, for a definition.
fn label(o: &Reproduction, id: &str) -> String {
    o.plan
        .experiment(id)
        .map(|e| e.label())
        .unwrap_or_else(|| id.into())
}

pub fn rows(o: &Reproduction) -> Vec<Row> {
    let wait = wait_us_per_ipi_shootdown;
    let fork = label(o, TECH_FORKEXIT);
    let build = label(o, TECH_BUILDKERNEL);
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
    let latr_ipis = |r: &RunFigures| {
        let settle = r.total("latr.settle_ipis").unwrap_or(0.0);
        Some((shoot_ipis(r)? + settle) / r.figure("ops")?)
    };
    let list: Vec<Comparison<'_>> = vec![
        Comparison {
            source: "Amit 2020: early acknowledgement",
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
        },
        Comparison {
            source: "Amit 2020: in-context flushes",
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
        },
        Comparison {
            source: "Amit 2020: concurrent flushing",
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
        },
        Comparison {
            source: "Amit 2020: cacheline consolidation",
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
        },
        Comparison {
            source: "Linux lazy TLB",
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
        },
        Comparison {
            source: "Linux lazy TLB",
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
        },
        Comparison {
            source: "LATR (Kumar et al., ASPLOS 2018)",
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
        },
        Comparison {
            source: "LATR (Kumar et al., ASPLOS 2018)",
            published: "the same",
            definition: format!(
                "{build} on {CPUS} CPUs: IPIs per job, the shootdowns' and the cross-calls \
                 that settle a quarantine early ((ipi.sent.shoot* + latr.settle_ipis) / ops), \
                 lazy-latr vs fixed"
            ),
            id: TECH_BUILDKERNEL,
            variant: "lazy-latr",
            base: "fixed",
            figure: &latr_ipis,
            unit: "",
            kind: Kind::Count,
            note: NOTE_LATR,
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
        },
    ];
    list.into_iter().map(|c| row(o, c)).collect()
}

/// The title and text of note `key`.
pub fn note(_o: &Reproduction, key: &str) -> (&'static str, String) {
    match key {
        NOTE_AMIT => (
            "Amit, Tai, Wei, \"Don't shoot down TLB shootdowns!\", EuroSys 2020",
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
             lab's wait does not fall with either technique (rows 1-2), and the lab cannot \
             speak for the published saving; KVM on real hardware could. Concurrent flushing (row 3) \
             is the same story from the initiator's side: its own INVLPG or CR3 reload, done \
             before the IPIs (flush-first) or while they are in flight (fixed), is a few \
             instructions under icount, so the whole shootdown costs about the same either \
             way; the lab shows the order (shoot.local_first against shoot.local_overlapped), \
             not the published saving. Cacheline consolidation (row 4) is a layout: the lab \
             counts the lines a target touches per request from the addresses its serve path \
             uses (the scoreboard's row word and the initiator's record, 2; one mailbox per \
             pair, 1), but TCG has no cache model, so what a line transfer costs, the paper's \
             saving, shows in no time here. The copy-on-write \
             shortcut is a count: every write upgrade of a frame no longer shared is a \
             shootpage call fixed makes and no-flush-cow does not; it saves IPIs only where \
             the faulting process has threads on other CPUs (the coherence oracle's, in the \
             default matrix), not in buildkernel, whose upgrades are in single-threaded jobs \
             (its IPI count moves only with scheduling)."
                .into(),
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
            "LATR's munmap returns without interrupting anyone: the invalidation waits in each \
             target's queue for its next timer tick or context switch, and the frames and \
             addresses wait in quarantine until then (a mapping that needs them sooner settles \
             them with a cross-call, counted here with the shootdown IPIs). The paper's -70.8 % \
             munmap latency is the IPI round trip on a 2-socket machine, which the lab has no \
             equivalent of under tcg-icount (an IPI costs the instructions of its handler and \
             the round robin's turns); what the lab shows is the direction: the IPIs go, and \
             the rate moves by what they cost in instructions. The coherence oracle checks \
             LATR against its own promise (lazy=on): after munmap, only the old value until \
             the reader's CPU applies it; `mutant-latr-early-free`, which gives the frames back \
             at once, is caught by it."
                .into(),
        ),
        _ => (
            "PCID",
            "The pcid variant is built (kernel/src/mm/pcid.rs: six PCIDs per CPU, a \
             per-pmap generation that a shootdown bumps and a load compares, kernel-address \
             invalidations flushing every PCID), but it has never run on this workplace: \
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
