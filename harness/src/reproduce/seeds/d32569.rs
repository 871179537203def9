//! Seed 004, FreeBSD D32569: the fork loop's rate with and without the
//! early return, on plain TCG and tcg-icount (with and without the shared
//! page touched, and NCPU instances), and the share of exit-time
//! pmap_remove calls that end early in buildkernel.

use super::super::format::{percent, three_decimals, three_digits};
use super::super::rows::{not_measured, Kind, Row};
use super::super::template;
use super::super::{
    Measured, Reproduction, D32569_BUILDKERNEL, D32569_NCPU, D32569_NCPU_ICOUNT, D32569_NOTOUCH,
    D32569_NOTOUCH_ICOUNT, D32569_TOUCH, D32569_TOUCH_ICOUNT,
};

/// The keys of this seed's notes.
pub const NOTE_RATE: &str = "004-rate";
pub const NOTE_EXIT: &str = "004-exit";

const SEED: &str = "004 FreeBSD D32569";

/// The rate experiments: (plain TCG id, tcg-icount id, what the child
/// does, the published figure).
pub const RATES: [(&str, &str, &str, &str); 3] = [
    (
        D32569_TOUCH,
        D32569_TOUCH_ICOUNT,
        "the child touches the shared page",
        "5750 Hz with the optimisation, 5430 Hz without (ratio 0.944)",
    ),
    (
        D32569_NOTOUCH,
        D32569_NOTOUCH_ICOUNT,
        "the child does not touch the shared page",
        "no significant difference",
    ),
    (
        D32569_NCPU,
        D32569_NCPU_ICOUNT,
        "the child touches the shared page, NCPU instances",
        "a smaller but still measurable effect (bottlenecked on pv list locks)",
    ),
];

/// Per rep: shared-page-counted's loops/s over shared-page-opt's.
fn ratio(o: &Reproduction, id: &str) -> Option<Measured> {
    let cpus = o.plan.experiment(id)?.cpus[0];
    o.per_rep(|rep| {
        let with = o
            .pool
            .get(id, "shared-page-opt", cpus, rep)?
            .figure("ops_per_s")?;
        let without = o
            .pool
            .get(id, "shared-page-counted", cpus, rep)?
            .figure("ops_per_s")?;
        Some(without / with)
    })
}

/// The touch loop's ratio without/with under tcg-icount, for the notes.
pub(in crate::reproduce) fn icount_ratio(o: &Reproduction) -> String {
    o.median_of(ratio(o, D32569_TOUCH_ICOUNT))
        .map(three_decimals)
        .unwrap_or_else(|| "not measured".into())
}

/// The row of rate experiment `id`.
pub fn rate_row(o: &Reproduction, id: &str, what: &str, published: &str) -> Row {
    let exp = o.plan.experiment(id).expect("caller checked");
    let cpus = exp.cpus[0];
    let hz = |variant: &str| o.run_median(id, variant, cpus, |r| r.figure("ops_per_s"));
    let why = o.why_not(&[id], &["shared-page-opt", "shared-page-counted"]);
    let med = |m: Option<Measured>| m.and_then(|m| m.median());
    let before_hz = med(hz("freebsd-before"))
        .map(|v| format!("{} Hz", three_digits(v)))
        .unwrap_or_else(|| "not measured".into());
    let (lab, spread, measured) = match (&why, ratio(o, id)) {
        (Some(why), _) => (
            format!("not measured: {why}; freebsd-before (before the diff): {before_hz}"),
            "-".into(),
            None,
        ),
        (None, None) => not_measured("no ok runs".into()),
        (None, Some(m)) => (
            format!(
                "{} vs {} Hz, ratio {} (freebsd-before {before_hz})",
                three_digits(med(hz("shared-page-opt")).unwrap_or(f64::NAN)),
                three_digits(med(hz("shared-page-counted")).unwrap_or(f64::NAN)),
                three_decimals(m.median().unwrap_or(f64::NAN))
            ),
            format!("ratio {}", m.range_over_reps(three_decimals)),
            Some(m),
        ),
    };
    let instances = exp
        .params
        .iter()
        .find(|(k, _)| k == "instances")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| "1".into());
    Row {
        seed: SEED.into(),
        published: published.into(),
        definition: format!(
            "forkexit ({what}: instances={instances}, {cpus} CPUs): loops/s (ops_per_s), \
             shared-page-opt (with) vs shared-page-counted (without), median over reps of the per-rep ratio without/with"
        ),
        lab,
        spread,
        measured,
        accel: o.accel_of(id),
        kind: Kind::Time,
        profile: None,
        note: NOTE_RATE,
    }
}

/// The fork loop's note.
pub fn rate_note(o: &Reproduction) -> String {
    // The figures the note quotes come from the touch experiment,
    // preferably its tcg-icount twin (repeatable).
    let id = [D32569_TOUCH_ICOUNT, D32569_TOUCH]
        .into_iter()
        .find(|id| o.has(id))
        .unwrap_or(D32569_TOUCH);
    let cpus = o.plan.experiment(id).map(|e| e.cpus[0]).unwrap_or(2);
    let q = |m: Option<Measured>| {
        o.median_of(m)
            .map(three_digits)
            .unwrap_or_else(|| "?".into())
    };
    let removes_per_exit = q(o.run_median(id, "freebsd-before", cpus, |r| {
        Some(r.total("pmap.remove.exit_calls")? / r.figure("ops")?)
    }));
    let ipis = |v: &str| q(o.run_median(id, v, cpus, |r| r.figure("ipis_per_op")));
    let ratio_of = |id: &str| {
        o.median_of(ratio(o, id))
            .map(three_decimals)
            .unwrap_or_else(|| "not measured".into())
    };
    let notouch_hz = |v: &str| {
        let id = D32569_NOTOUCH_ICOUNT;
        let cpus = o.plan.experiment(id).map(|e| e.cpus[0]).unwrap_or(2);
        q(o.run_median(id, v, cpus, |r| r.figure("ops_per_s")))
    };
    let tcg_spread = ratio(o, D32569_TOUCH)
        .map(|m| m.range_over_reps(three_decimals))
        .unwrap_or_else(|| "-".into());
    template::SEED_004_RATE.fill(&[
        ("accel", o.accel_of(id)),
        ("counted_ipis", ipis("shared-page-counted")),
        ("opt_ipis", ipis("shared-page-opt")),
        ("removes_per_exit", removes_per_exit),
        ("icount", ratio_of(D32569_TOUCH_ICOUNT)),
        ("tcg", ratio_of(D32569_TOUCH)),
        ("tcg_spread", tcg_spread),
        ("notouch", ratio_of(D32569_NOTOUCH_ICOUNT)),
        ("before_notouch_hz", notouch_hz("freebsd-before")),
        ("opt_notouch_hz", notouch_hz("shared-page-opt")),
        ("ncpu", ratio_of(D32569_NCPU_ICOUNT)),
    ])
}

/// Per rep: the share of `variant`'s exit-time pmap_remove calls that
/// ended early, in buildkernel.
fn exit_early_share(o: &Reproduction, variant: &str) -> Option<Measured> {
    let id = D32569_BUILDKERNEL;
    let cpus = o.plan.experiment(id)?.cpus[0];
    o.run_median(id, variant, cpus, |r| {
        let calls = r.total("pmap.remove.exit_calls")?;
        (calls > 0.0).then(|| r.total("pmap.remove.exit_early").unwrap_or(0.0) / calls)
    })
}

/// The early returns' row (the plan has [`D32569_BUILDKERNEL`]).
pub fn exit_row(o: &Reproduction) -> Row {
    let id = D32569_BUILDKERNEL;
    let exp = o.plan.experiment(id).expect("caller checked");
    let cpus = exp.cpus[0];
    let why = o.why_not(&[id], &["freebsd-before"]);
    let (lab, spread, measured) = match (&why, exit_early_share(o, "freebsd-before")) {
        (Some(why), _) => not_measured(why.clone()),
        (None, None) => not_measured("no exit-time pmap_remove calls".into()),
        (None, Some(m)) => (
            format!(
                "{} (freebsd-before)",
                percent(m.median().unwrap_or(f64::NAN))
            ),
            m.range_over_reps(percent),
            Some(m),
        ),
    };
    Row {
        seed: SEED.into(),
        published: "15-20 % of pmap_remove calls at exit end early during buildkernel".into(),
        definition: format!(
            "pmap.remove.exit_early / pmap.remove.exit_calls, {} on {cpus} CPUs, freebsd-before \
             (the tree the reviewer traced, before the diff)",
            exp.label()
        ),
        lab,
        spread,
        measured,
        accel: o.accel_of(id),
        kind: Kind::Count,
        profile: None,
        note: NOTE_EXIT,
    }
}

/// The early returns' note.
pub fn exit_note(o: &Reproduction) -> String {
    let id = D32569_BUILDKERNEL;
    let cpus = o.plan.experiment(id).map(|e| e.cpus[0]).unwrap_or(4);
    let others: Vec<String> = ["shared-page-opt", "shared-page-counted"]
        .iter()
        .map(|v| match o.why_not(&[id], &[v]) {
            Some(why) => format!("{v}: not measured ({why})"),
            None => format!(
                "{v}: {}",
                exit_early_share(o, v)
                    .and_then(|m| m.median())
                    .map(percent)
                    .unwrap_or_else(|| "no ok runs".into())
            ),
        })
        .collect();
    let per_exit = o
        .run_median(id, "freebsd-before", cpus, |r| {
            Some(r.total("pmap.remove.exit_calls")? / r.total("pmap.remove_pages.calls")?)
        })
        .and_then(|m| m.median())
        .map(three_digits)
        .unwrap_or_else(|| "?".into());
    template::SEED_004_EXIT.fill(&[("other_states", others.join("; ")), ("per_exit", per_exit)])
}
