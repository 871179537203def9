//! What changed between two result sets, per cell and figure, judged by the
//! gate's statistics (`crate::gate`): under `tcg-icount` (or for an exact
//! count) the repetitions must be identical and the sides compare
//! exactly; otherwise a two-sided Welch t-test on the logarithms (the
//! gate's [`regression_p`] asked both ways) with at least
//! [`MIN_REPS_FOR_STATS`] repetitions a side, Holm-corrected at [`ALPHA`]
//! over every statistical comparison of the report. A significant change
//! is reported as one only when it reaches the figure's threshold
//! ([`super::threshold`]); a smaller one is "changed, below threshold".

use std::collections::{BTreeMap, BTreeSet};

use crate::gate::{
    bad_move, nondeterminism, regression_p, ALPHA, MIN_REPS_FOR_STATS, REPEATABLE_ACCEL,
};
use crate::results::derive::{figure_info, Better, FigureClass, RunFigures};
use crate::results::model::ResultRow;
use crate::results::stats::{self, holm};
use crate::results::summary::{summarize, GroupKey, GroupSummary};

use super::threshold::{Threshold, Thresholds};

/// The figures every comparison reports (when a side has them).
pub const FIGURES: [&str; 4] = [
    "ipis_per_op",
    "page_range_ipis_per_op",
    "noipi_share",
    "ops_per_s",
];

/// Prefix of the per-cause IPI figures (`ipis_per_op.cause.<cause>`).
pub const CAUSE_PREFIX: &str = "ipis_per_op.cause.";

/// The verdict on one figure of one cell.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Compared exactly (identical repetitions) and equal.
    Same,
    /// A significant change (exact, or Welch + Holm) that reaches the
    /// figure's threshold (judging marks every significant change so, and
    /// `hold_to_threshold` then demotes the smaller ones).
    PastThreshold,
    /// A significant change smaller than the figure's threshold.
    BelowThreshold,
    /// A statistical comparison that is not significant after Holm.
    NotSignificant,
    /// Fewer than [`MIN_REPS_FOR_STATS`] repetitions on a side off icount.
    TooFew,
    /// Repetitions that should be identical are not.
    NonDeterministic,
    /// A side has no value (cell or figure absent).
    Missing,
}

impl Verdict {
    pub fn text(&self) -> &'static str {
        match self {
            Verdict::Same => "same",
            Verdict::PastThreshold => "past threshold",
            Verdict::BelowThreshold => "changed, below threshold",
            Verdict::NotSignificant => "not significant",
            Verdict::TooFew => "too few repetitions",
            Verdict::NonDeterministic => "non-deterministic",
            Verdict::Missing => "missing",
        }
    }
}

/// One figure of one cell on both sides.
#[derive(Clone, Debug)]
pub struct Line {
    pub key: GroupKey,
    pub figure: String,
    pub a: Option<f64>,
    pub b: Option<f64>,
    pub a_reps: usize,
    pub b_reps: usize,
    pub verdict: Verdict,
    /// How far the figure must move to count as changed.
    pub threshold: Threshold,
    /// A change past the threshold in the figure's bad direction.
    pub regression: bool,
    /// A change past the threshold in its good direction.
    pub improvement: bool,
    /// How it was judged (exact, p-value, why missing).
    pub note: String,
    /// For an IPI figure that changed: which causes moved, or "no cause data".
    pub causes: String,
}

impl Line {
    /// (B - A) / |A| in percent; `None` without both sides or from A = 0
    /// to B = 0.
    pub fn change_pct(&self) -> Option<f64> {
        let (a, b) = (self.a?, self.b?);
        if a == 0.0 {
            return if b == 0.0 {
                Some(0.0)
            } else {
                Some(f64::INFINITY * b.signum())
            };
        }
        Some((b - a) / a.abs() * 100.0)
    }

    /// `openbsd-2010/forkexit[touch=on]/4 @tcg-icount`.
    pub fn cell(&self) -> String {
        format!("{} @{}", self.key.bench_name(), self.key.accel)
    }
}

/// The whole comparison.
#[derive(Clone, Debug, Default)]
pub struct Comparison {
    pub lines: Vec<Line>,
    /// Where the thresholds came from ([`Thresholds::summary`]).
    pub thresholds: String,
}

impl Comparison {
    pub fn regressions(&self) -> usize {
        self.lines.iter().filter(|l| l.regression).count()
    }

    pub fn improvements(&self) -> usize {
        self.lines.iter().filter(|l| l.improvement).count()
    }

    /// Changes that reach their figure's threshold.
    pub fn past_threshold(&self) -> usize {
        self.count(Verdict::PastThreshold)
    }

    /// Significant changes smaller than their figure's threshold.
    pub fn below_threshold(&self) -> usize {
        self.count(Verdict::BelowThreshold)
    }

    fn count(&self, verdict: Verdict) -> usize {
        self.lines.iter().filter(|l| l.verdict == verdict).count()
    }
}

/// The value of figure `name` in `run`. `ipis_per_op.cause.<cause>` falls
/// back to the raw counters (sum over kinds of
/// `shoot.cause.<cause>.<kind>.ipis` / ops) where derive does not know it.
fn figure_of(run: &RunFigures, name: &str) -> Option<f64> {
    if let Some(v) = run.figure(name) {
        return Some(v);
    }
    let cause = name.strip_prefix(CAUSE_PREFIX)?;
    let prefix = format!("shoot.cause.{cause}.");
    let ipis: Vec<f64> = run
        .totals
        .iter()
        .filter(|(m, _)| m.starts_with(&prefix) && m.ends_with(".ipis"))
        .map(|(_, v)| *v)
        .collect();
    let ops = run.ops()?;
    (!ipis.is_empty() && ops != 0.0).then(|| ipis.iter().sum::<f64>() / ops)
}

/// The causes a group's runs report counters for (`shoot.cause.<cause>.*`).
fn causes_of(g: &GroupSummary) -> BTreeSet<String> {
    g.runs
        .iter()
        .flat_map(|r| r.totals.keys())
        .filter_map(|m| m.strip_prefix("shoot.cause."))
        .filter_map(|rest| rest.split('.').next())
        .map(str::to_string)
        .collect()
}

fn values(g: &GroupSummary, figure: &str) -> Vec<f64> {
    g.runs
        .iter()
        .filter(|r| r.outcome.is_ok())
        .filter_map(|r| figure_of(r, figure))
        .filter(|v| v.is_finite())
        .collect()
}

/// A statistical comparison waiting for Holm.
struct Pending {
    line: usize,
    p: f64,
}

/// Compares every cell (group) and figure of `a` with `b`, each figure
/// against its threshold in `thresholds`. Pure.
pub fn compare(a: &[ResultRow], b: &[ResultRow], thresholds: &Thresholds) -> Comparison {
    let (ga, gb) = (summarize(a), summarize(b));
    let by_key = |gs: &[GroupSummary]| -> BTreeMap<GroupKey, GroupSummary> {
        gs.iter().map(|g| (g.key.clone(), g.clone())).collect()
    };
    let (ma, mb) = (by_key(&ga), by_key(&gb));
    // Display order: A's, then cells only B has.
    let mut keys: Vec<GroupKey> = ga.iter().map(|g| g.key.clone()).collect();
    keys.extend(
        gb.iter()
            .filter(|g| !ma.contains_key(&g.key))
            .map(|g| g.key.clone()),
    );
    let mut lines = Vec::new();
    let mut pending = Vec::new();
    for key in keys {
        let (sa, sb) = (ma.get(&key), mb.get(&key));
        let mut causes = BTreeSet::new();
        for g in [sa, sb].into_iter().flatten() {
            causes.extend(causes_of(g));
        }
        let figures = FIGURES
            .iter()
            .map(|f| f.to_string())
            .chain(causes.iter().map(|c| format!("{CAUSE_PREFIX}{c}")));
        for figure in figures {
            let threshold = thresholds.of(&key, &figure);
            let judged = judge(&key, &figure, sa, sb, threshold, &mut pending, lines.len());
            if let Some(line) = judged {
                lines.push(line);
            }
        }
    }
    settle(&mut lines, &pending);
    for line in &mut lines {
        hold_to_threshold(line);
    }
    // Causes are named once Holm has settled the statistical lines.
    let mut start = 0;
    while start < lines.len() {
        let end = lines[start..]
            .iter()
            .position(|l| l.key != lines[start].key)
            .map_or(lines.len(), |n| start + n);
        let has_causes = lines[start..end]
            .iter()
            .any(|l| l.figure.starts_with(CAUSE_PREFIX));
        explain_causes(&mut lines[start..end], has_causes);
        start = end;
    }
    Comparison {
        lines,
        thresholds: thresholds.summary(),
    }
}

/// One line, or `None` when neither side has the figure.
fn judge(
    key: &GroupKey,
    figure: &str,
    sa: Option<&GroupSummary>,
    sb: Option<&GroupSummary>,
    threshold: Threshold,
    pending: &mut Vec<Pending>,
    index: usize,
) -> Option<Line> {
    let va = sa.map(|g| values(g, figure)).unwrap_or_default();
    let vb = sb.map(|g| values(g, figure)).unwrap_or_default();
    if va.is_empty() && vb.is_empty() {
        return None;
    }
    let unit = sa.or(sb).and_then(|g| g.unit_of(figure));
    let info = figure_info(figure, unit);
    let better = if figure.starts_with(CAUSE_PREFIX) {
        Better::Lower
    } else {
        info.better
    };
    let mut line = Line {
        key: key.clone(),
        figure: figure.to_string(),
        a: stats::median(&va),
        b: stats::median(&vb),
        a_reps: va.len(),
        b_reps: vb.len(),
        verdict: Verdict::Missing,
        threshold,
        regression: false,
        improvement: false,
        note: String::new(),
        causes: String::new(),
    };
    let (Some(a), Some(b)) = (line.a, line.b) else {
        line.note = format!("no value in {}", if va.is_empty() { "A" } else { "B" });
        return Some(line);
    };
    let class = info.class.on_cpus(key.cpus);
    let both_icount = sa.zip(sb).is_some_and(|(x, y)| {
        crate::accel::is_repeatable(&x.key.accel) && crate::accel::is_repeatable(&y.key.accel)
    });
    let moved = bad_move(a, b, better);
    if class == FigureClass::ExactCount || both_icount {
        let regime = if both_icount {
            format!("exact: both under {REPEATABLE_ACCEL}")
        } else {
            "exact count".to_string()
        };
        if let Some(n) = nondeterminism(&va)
            .map(|n| format!("A: {n}"))
            .or_else(|| nondeterminism(&vb).map(|n| format!("B: {n}")))
        {
            line.verdict = Verdict::NonDeterministic;
            line.note = n;
        } else if nondeterminism(&[a, b]).is_some() {
            line.verdict = Verdict::PastThreshold;
            line.note = format!("{regime}, repetitions identical");
            line.regression = better != Better::Neither && moved > 0.0;
            line.improvement = better != Better::Neither && moved < 0.0;
        } else {
            line.verdict = Verdict::Same;
            line.note = regime;
        }
        return Some(line);
    }
    if va.len() < MIN_REPS_FOR_STATS || vb.len() < MIN_REPS_FOR_STATS {
        line.verdict = Verdict::TooFew;
        line.note = format!(
            "{} in A, {} in B; under {} a significance claim needs >= {MIN_REPS_FOR_STATS} a side",
            va.len(),
            vb.len(),
            key.accel
        );
        return Some(line);
    }
    // Two-sided: the gate's one-sided test asked in both directions.
    let flip = match better {
        Better::Higher => Better::Lower,
        _ => Better::Higher,
    };
    let p = match (
        regression_p(&va, &vb, 0.0, better),
        regression_p(&va, &vb, 0.0, flip),
    ) {
        (Some(x), Some(y)) => (2.0 * x.min(y)).min(1.0),
        _ => {
            line.verdict = Verdict::TooFew;
            line.note = "no test possible".into();
            return Some(line);
        }
    };
    line.verdict = Verdict::NotSignificant;
    line.note = format!("Welch, p = {p:.2e}");
    pending.push(Pending { line: index, p });
    Some(line)
}

/// Holm over every statistical comparison.
fn settle(lines: &mut [Line], pending: &[Pending]) {
    let p: Vec<f64> = pending.iter().map(|q| q.p).collect();
    let m = pending.len();
    for (q, reject) in pending.iter().zip(holm(&p, ALPHA)) {
        let line = &mut lines[q.line];
        if reject {
            let better = figure_info(&line.figure, None).better;
            let moved = bad_move(line.a.unwrap_or(0.0), line.b.unwrap_or(0.0), better);
            line.verdict = Verdict::PastThreshold;
            line.regression = better != Better::Neither && moved > 0.0;
            line.improvement = better != Better::Neither && moved < 0.0;
        }
        line.note = format!(
            "{}, {} after Holm over {m} (alpha {ALPHA})",
            line.note,
            if reject {
                "significant"
            } else {
                "not significant"
            }
        );
    }
}

/// Demotes a significant change smaller than its threshold to
/// [`Verdict::BelowThreshold`], neither worse nor better, and says which
/// threshold judged it.
fn hold_to_threshold(line: &mut Line) {
    if line.verdict != Verdict::PastThreshold {
        return;
    }
    let reached = line
        .change_pct()
        .is_some_and(|p| line.threshold.reached_by(p));
    if !reached {
        line.verdict = Verdict::BelowThreshold;
        line.regression = false;
        line.improvement = false;
    }
    line.note = format!("{}; {}", line.note, line.threshold.describe());
}

/// Fills `causes` of the IPI lines of one cell: the causes whose
/// `ipis_per_op.cause.*` figure moved, largest move first.
fn explain_causes(cell: &mut [Line], has_causes: bool) {
    let moved: Vec<(String, f64)> = {
        let mut m: Vec<(String, f64)> = cell
            .iter()
            .filter_map(|l| {
                let cause = l.figure.strip_prefix(CAUSE_PREFIX)?;
                let delta = l.b.unwrap_or(0.0) - l.a.unwrap_or(0.0);
                (l.verdict == Verdict::PastThreshold
                    || (l.verdict != Verdict::Same && delta != 0.0))
                    .then(|| (cause.to_string(), delta))
            })
            .collect();
        m.sort_by(|x, y| y.1.abs().total_cmp(&x.1.abs()));
        m
    };
    for l in cell.iter_mut() {
        let ipi = l.figure == "ipis_per_op" || l.figure == "page_range_ipis_per_op";
        if !ipi || l.verdict != Verdict::PastThreshold {
            continue;
        }
        l.causes = if !has_causes {
            "no cause data".into()
        } else if moved.is_empty() {
            "no cause moved".into()
        } else {
            moved
                .iter()
                .map(|(c, d)| {
                    format!(
                        "{c} {}{}",
                        if *d >= 0.0 { "+" } else { "" },
                        crate::results::summary::fmt_num(*d)
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::model::fixtures::{cell, run};

    fn rows(ipis: &[f64], accel: &str) -> Vec<ResultRow> {
        ipis.iter()
            .enumerate()
            .flat_map(|(i, &x)| {
                let mut c = cell("fixed", "forkexit", 2, i as u32 + 1);
                c.accel = accel.into();
                run(c, 100.0, 10.0, x).rows()
            })
            .collect()
    }

    #[test]
    fn icount_compares_exactly() {
        let a = rows(&[10.0, 10.0], REPEATABLE_ACCEL);
        let same = compare(&a, &a, &Thresholds::default());
        assert_eq!(same.past_threshold(), 0, "{same:?}");
        let b = rows(&[30.0, 30.0], REPEATABLE_ACCEL);
        let c = compare(&a, &b, &Thresholds::default());
        let ipi = c.lines.iter().find(|l| l.figure == "ipis_per_op").unwrap();
        assert_eq!(ipi.verdict, Verdict::PastThreshold);
        assert!(ipi.regression);
        assert_eq!(ipi.causes, "no cause data");
        assert!((ipi.change_pct().unwrap() - 200.0).abs() < 1e-9);
    }

    #[test]
    fn plain_tcg_needs_five_reps() {
        let a = rows(&[10.0, 11.0], "tcg");
        let b = rows(&[30.0, 31.0], "tcg");
        let c = compare(&a, &b, &Thresholds::default());
        let ipi = c.lines.iter().find(|l| l.figure == "ipis_per_op").unwrap();
        assert_eq!(ipi.verdict, Verdict::TooFew);
        let a = rows(&[10.0, 11.0, 10.5, 10.2, 10.8], "tcg");
        let b = rows(&[30.0, 31.0, 30.5, 30.2, 30.8], "tcg");
        let c = compare(&a, &b, &Thresholds::default());
        let ipi = c.lines.iter().find(|l| l.figure == "ipis_per_op").unwrap();
        assert_eq!(ipi.verdict, Verdict::PastThreshold, "{ipi:?}");
        let same = compare(&a, &a, &Thresholds::default());
        assert_eq!(same.past_threshold(), 0);
    }

    #[test]
    fn an_exact_change_counts_only_past_its_threshold() {
        let a = rows(&[10.0, 10.0], REPEATABLE_ACCEL);
        let tiny = rows(&[10.0006, 10.0006], REPEATABLE_ACCEL);
        let c = compare(&a, &tiny, &Thresholds::default());
        let ipi = c.lines.iter().find(|l| l.figure == "ipis_per_op").unwrap();
        assert_eq!(ipi.verdict, Verdict::BelowThreshold, "{ipi:?}");
        assert!(!ipi.regression && !ipi.improvement);
        assert!(ipi.note.contains("threshold 1% (default)"), "{}", ipi.note);
        // The IPI figures all moved by about 0.006 %: none past 1 %.
        assert_eq!(c.past_threshold(), 0, "{c:?}");
        assert!(c.below_threshold() >= 1);
        let three = rows(&[10.3, 10.3], REPEATABLE_ACCEL);
        let c = compare(&a, &three, &Thresholds::default());
        let ipi = c.lines.iter().find(|l| l.figure == "ipis_per_op").unwrap();
        assert_eq!(ipi.verdict, Verdict::PastThreshold);
        assert!(ipi.regression);
        // A threshold above the move demotes it.
        let c = compare(&a, &three, &Thresholds::uniform(5.0));
        assert_eq!(c.past_threshold(), 0);
        assert_eq!(c.regressions(), 0);
    }
}
