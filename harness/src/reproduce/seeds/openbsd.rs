//! Seed 000, OpenBSD 2010: openbsd-2010's shootpage and shootrange IPIs
//! over fixed's, on each workload alone and on the mix that stands in for
//! the laptop's "ordinary use", the share of calls that sent no IPI, and
//! the factor swept over CPU counts.

use super::super::format::{percent, three_digits};
use super::super::rows::{not_measured, Kind, Row};
use super::super::template;
use super::super::{Measured, Reproduction, OBSD_BUILDKERNEL, OBSD_FORKEXIT};
use crate::results::derive::RunFigures;

/// The key of this seed's note.
pub const NOTE: &str = "000";

/// The pool fill of an uninitialised `pm_cpus` (OpenBSD's pool poison):
/// the 32-bit 0xdeadbeef repeated (lab_core::poison), so the u64 reads
/// 0xdeadbeef_deadbeef. Below 32 CPUs only the low word counts; above, CPU
/// n + 32 is marked exactly when CPU n is: 24 of CPUs 0-31, 48 of 0-63.
pub const POOL_FILL: u64 =
    (lab_core::poison::POISON as u64) << 32 | lab_core::poison::POISON as u64;

/// The two variants every row compares.
const OBSD: [&str; 2] = ["openbsd-2010", "fixed"];

/// The experiments of the mix.
const MIX: [&str; 2] = [OBSD_FORKEXIT, OBSD_BUILDKERNEL];

/// One CPU count of the OpenBSD factor's sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepPoint {
    pub cpus: u32,
    /// CPUs below `cpus` the 0xdeadbeef fill marks active.
    pub fill_cpus: u32,
    /// shootpage+shootrange IPIs over the mix, median over reps.
    pub obsd_ipis: Option<f64>,
    pub fixed_ipis: Option<f64>,
    /// Factor per rep (infinite when fixed sent none).
    pub factor: Measured,
}

/// The CPUs among `0..cpus` whose bit the pool fill sets.
pub fn fill_cpus(cpus: u32) -> u32 {
    let mask = if cpus >= 64 {
        u64::MAX
    } else {
        (1u64 << cpus) - 1
    };
    (POOL_FILL & mask).count_ones()
}

/// `0,1,2,3,5,6,7`-style list of the CPUs the fill marks.
fn fill_list(cpus: u32) -> String {
    (0..cpus.min(64))
        .filter(|c| POOL_FILL >> c & 1 == 1)
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// shootpage + shootrange IPIs sent.
fn page_range_ipis(r: &RunFigures) -> f64 {
    r.total("ipi.sent.shootpage").unwrap_or(0.0) + r.total("ipi.sent.shootrange").unwrap_or(0.0)
}

/// (calls, calls that sent no IPI) of shootpage + shootrange.
fn page_range_calls(r: &RunFigures) -> (f64, f64) {
    let get = |m: &str| r.total(m).unwrap_or(0.0);
    (
        get("shoot.calls.shootpage") + get("shoot.calls.shootrange"),
        get("shoot.noipi.shootpage") + get("shoot.noipi.shootrange"),
    )
}

/// openbsd-2010 / fixed from two IPI counts; infinite when fixed sent
/// none, None when neither did.
fn factor_of(obsd: f64, fixed: f64) -> Option<f64> {
    if fixed == 0.0 {
        (obsd > 0.0).then_some(f64::INFINITY)
    } else {
        Some(obsd / fixed)
    }
}

impl Reproduction {
    /// Sum of `f` over the mix's runs of `variant` on `cpus`, rep `rep`;
    /// None unless every experiment of the mix has that run.
    fn mix_sum(
        &self,
        variant: &str,
        cpus: u32,
        rep: u32,
        f: impl Fn(&RunFigures) -> f64,
    ) -> Option<f64> {
        let ids: Vec<&str> = MIX.into_iter().filter(|id| self.has(id)).collect();
        if ids.is_empty() {
            return None;
        }
        ids.iter()
            .map(|id| self.pool.get(id, variant, cpus, rep).map(&f))
            .sum()
    }

    /// openbsd-2010's over fixed's shootpage+shootrange IPIs on `cpus`.
    fn factor(&self, cpus: u32) -> Option<Measured> {
        self.per_rep(|rep| {
            let obsd = self.mix_sum("openbsd-2010", cpus, rep, page_range_ipis)?;
            let fixed = self.mix_sum("fixed", cpus, rep, page_range_ipis)?;
            Some(if fixed == 0.0 {
                if obsd == 0.0 {
                    return None;
                }
                f64::INFINITY
            } else {
                obsd / fixed
            })
        })
    }

    fn mix_ipis(&self, variant: &str, cpus: u32) -> Option<f64> {
        self.per_rep(|rep| self.mix_sum(variant, cpus, rep, page_range_ipis))?
            .median()
    }

    fn noipi_share(&self, variant: &str, cpus: u32) -> Option<Measured> {
        self.per_rep(|rep| {
            let calls = self.mix_sum(variant, cpus, rep, |r| page_range_calls(r).0)?;
            let noipi = self.mix_sum(variant, cpus, rep, |r| page_range_calls(r).1)?;
            (calls > 0.0).then(|| noipi / calls)
        })
    }

    /// The mix's label: `forkexit[loops=100] + buildkernel[jobs=8]`.
    pub(in crate::reproduce) fn mix_label(&self) -> String {
        MIX.iter()
            .filter_map(|id| self.plan.experiment(id))
            .map(|e| e.label())
            .collect::<Vec<_>>()
            .join(" + ")
    }
}

/// Whether the plan has any of this seed's experiments.
pub fn planned(o: &Reproduction) -> bool {
    MIX.iter().any(|id| o.has(id))
}

/// The lab and spread cells of a factor: "all eliminated" where fixed
/// sent no IPI, said as counts, not as a number.
fn factor_cells(
    m: Measured,
    obsd: Option<Measured>,
    fixed: Option<Measured>,
    suffix: &str,
) -> (String, String, Option<Measured>) {
    let o_med = obsd.as_ref().and_then(|m| m.median()).unwrap_or(f64::NAN);
    let f_med = fixed.as_ref().and_then(|m| m.median()).unwrap_or(f64::NAN);
    let zero_reps = m.per_rep.iter().filter(|v| v.is_infinite()).count();
    let n = m.per_rep.len();
    let med = m.median().unwrap_or(f64::NAN);
    let lab = if med.is_infinite() {
        format!("{} vs 0 IPIs: all eliminated{suffix}", three_digits(o_med))
    } else {
        format!(
            "{} ({} vs {} IPIs){suffix}",
            three_digits(med),
            three_digits(o_med),
            three_digits(f_med)
        )
    };
    let spread = if zero_reps == n {
        format!(
            "fixed sent 0 in {n} of {n} reps; openbsd-2010 {}",
            obsd.map(|m| m.range_over_reps(three_digits))
                .unwrap_or_else(|| "-".into())
        )
    } else if zero_reps > 0 {
        format!(
            "{} (fixed sent 0 in {zero_reps} reps)",
            m.range_over_reps(three_digits)
        )
    } else {
        m.range_over_reps(three_digits)
    };
    (lab, spread, Some(m))
}

/// The seed's rows: each workload alone, the mix, the no-IPI share.
pub fn rows(o: &Reproduction) -> Vec<Row> {
    let cpus = o.plan.factor_cpus;
    let mix = o.mix_label();
    let row = |published: &str, definition: String, cells: (String, String, Option<Measured>)| {
        let (lab, spread, measured) = cells;
        Row {
            seed: "000 OpenBSD 2010".into(),
            published: published.into(),
            definition,
            lab,
            spread,
            measured,
            accel: o.accel_of(OBSD_FORKEXIT),
            kind: Kind::Count,
            profile: None,
            note: NOTE,
        }
    };
    let mut rows = Vec::new();
    // Each workload alone: the lead figures.
    for id in MIX {
        let Some(exp) = o.plan.experiment(id) else {
            continue;
        };
        let ipis = |v: &str| o.run_median(id, v, cpus, |r| Some(page_range_ipis(r)));
        let factor = o.per_rep(|rep| {
            factor_of(
                page_range_ipis(o.pool.get(id, "openbsd-2010", cpus, rep)?),
                page_range_ipis(o.pool.get(id, "fixed", cpus, rep)?),
            )
        });
        let cells = match (o.why_not(&[id], &OBSD), factor) {
            (Some(why), _) => not_measured(why),
            (None, None) => not_measured("no ok runs, or no IPIs either way".into()),
            (None, Some(m)) => factor_cells(m, ipis("openbsd-2010"), ipis("fixed"), ""),
        };
        rows.push(row(
            "no figure per workload (the 21 below is over ordinary use)",
            format!(
                "ipi.sent.shootpage + ipi.sent.shootrange in {} alone, openbsd-2010 / fixed, {cpus} CPUs",
                exp.label()
            ),
            cells,
        ));
    }
    // The mix: the published factor's counterpart, set by the mix.
    let why = o.why_not(&MIX, &OBSD);
    let mix_ipis = |v: &str| o.per_rep(|rep| o.mix_sum(v, cpus, rep, page_range_ipis));
    let cells = match (&why, o.factor(cpus)) {
        (Some(why), _) => not_measured(why.clone()),
        (None, None) => not_measured("no ok runs".into()),
        (None, Some(m)) => factor_cells(
            m,
            mix_ipis("openbsd-2010"),
            mix_ipis("fixed"),
            ": a figure set by the mix",
        ),
    };
    rows.push(row(
        "shootpage+shootrange IPIs fall by a factor of 21 (4-CPU laptop, ordinary use)",
        format!(
            "the same sum over the mix {mix} (the lab's stand-in for ordinary use), openbsd-2010 / fixed, {cpus} CPUs"
        ),
        cells,
    ));
    let cells = match (&why, o.noipi_share("fixed", cpus)) {
        (Some(why), _) => not_measured(why.clone()),
        (None, None) => not_measured("no shootpage/shootrange calls".into()),
        (None, Some(m)) => (
            percent(m.median().unwrap_or(f64::NAN)),
            m.range_over_reps(percent),
            Some(m),
        ),
    };
    rows.push(row(
        "the IPI eliminated on over 7/8 (87.5 %) of shootpage/shootrange calls",
        format!(
            "(shoot.noipi.shootpage + shoot.noipi.shootrange) / (shoot.calls.shootpage + shoot.calls.shootrange) in fixed, over the same mix, {cpus} CPUs"
        ),
        cells,
    ));
    rows
}

/// The seed's note: why the lab's factor is not the laptop's 21.
pub fn note(o: &Reproduction) -> String {
    let cpus = o.plan.factor_cpus;
    let obsd_share = o
        .noipi_share("openbsd-2010", cpus)
        .and_then(|m| m.median())
        .map(percent)
        .unwrap_or_else(|| "not measured".into());
    let fixed_bk = o
        .run_median(OBSD_BUILDKERNEL, "fixed", cpus, |r| {
            Some(page_range_ipis(r))
        })
        .map(|m| m.range_over_reps(three_digits))
        .unwrap_or_else(|| "not measured".into());
    template::SEED_000.fill(&[
        ("list", fill_list(cpus)),
        ("cpus", cpus.to_string()),
        ("k", fill_cpus(cpus).to_string()),
        ("obsd_share", obsd_share),
        ("fixed_bk", fixed_bk),
    ])
}

/// The sweep of the factor over the plan's CPU counts.
pub fn sweep(o: &Reproduction) -> Vec<SweepPoint> {
    if !planned(o) {
        return vec![];
    }
    o.plan
        .sweep_cpus
        .iter()
        .map(|&cpus| SweepPoint {
            cpus,
            fill_cpus: fill_cpus(cpus),
            obsd_ipis: o.mix_ipis("openbsd-2010", cpus),
            fixed_ipis: o.mix_ipis("fixed", cpus),
            factor: o.factor(cpus).unwrap_or(Measured { per_rep: vec![] }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fill_marks_cpus_0_to_3_and_5_to_7() {
        assert_eq!(fill_list(8), "0,1,2,3,5,6,7");
        assert_eq!(
            (1..=8).map(fill_cpus).collect::<Vec<_>>(),
            [1, 2, 3, 4, 4, 5, 6, 7]
        );
    }

    #[test]
    fn above_32_cpus_the_fill_repeats() {
        assert_eq!(POOL_FILL, 0xdead_beef_dead_beef);
        assert_eq!(fill_cpus(32), 24);
        assert_eq!(fill_cpus(40), 24 + 7);
        assert_eq!(fill_cpus(64), 48);
        assert!(fill_list(40).ends_with(",31,32,33,34,35,37,38,39"));
    }

    #[test]
    fn a_factor_over_zero_reads_all_eliminated() {
        let m = |v: Vec<f64>| Measured { per_rep: v };
        let (lab, spread, _) = factor_cells(
            m(vec![f64::INFINITY; 3]),
            Some(m(vec![1800.0, 1824.0, 1830.0])),
            Some(m(vec![0.0; 3])),
            "",
        );
        assert_eq!(lab, "1824 vs 0 IPIs: all eliminated");
        assert_eq!(
            spread,
            "fixed sent 0 in 3 of 3 reps; openbsd-2010 1800..1830 over 3 reps"
        );
        let (lab, spread, _) = factor_cells(
            m(vec![3.0, 3.0, 3.0]),
            Some(m(vec![270.0; 3])),
            Some(m(vec![90.0; 3])),
            ": a figure set by the mix",
        );
        assert_eq!(lab, "3.00 (270 vs 90.0 IPIs): a figure set by the mix");
        assert_eq!(
            spread,
            "3.00 in each of 3 reps: one sample, repeated exactly"
        );
        assert_eq!(factor_of(0.0, 0.0), None);
        assert_eq!(factor_of(5.0, 0.0), Some(f64::INFINITY));
    }
}
