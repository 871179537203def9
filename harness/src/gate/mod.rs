//! CI regression gating: evaluate the rules of `variants/gates.toml`
//! against a result set (and a baseline result set), so that the gate is
//! green on a good tree, red on every regression it has a rule for, and
//! never green on missing data.
//!
//! Each rule is evaluated per selected group (a matrix cell without its
//! rep) and gives one [`GateLine`] per group, so a wildcard rule ("sent ==
//! received everywhere") reports every group it checked. Figures come
//! from the runs whose outcome is `ok` (`run.outcome` from every run; a
//! rule with `include_failed` also reads runs that ended `failed`).
//!
//! # What makes the gate fail, skip or pass
//!
//! - Completeness ([`complete`]): every cell the matrix file defines
//!   (variant x workload x params x cpus x rep) must be in the results,
//!   or one failing line names each missing cell. A cell the matrix
//!   expects to end other than `ok` (an `[[expect]]` entry) is present
//!   when it is there, whatever its outcome; a rule that reads only `ok`
//!   runs skips such a group with a note instead of calling it missing.
//! - A selection that matches nothing, or a group with no value for the
//!   figure, fails naming itself, unless the rule says `required = false`
//!   (a skip). A report with no passing rule line does not pass.
//! - A ratio of 0/0 is a skip with its reason; x/0 with x > 0 is +inf
//!   (passes a `min`, fails a `max`).
//!
//! # Statistics that fit the accelerator
//!
//! Figures have a class ([`FigureClass`], in `results::derive`): timing,
//! scheduling-dependent count, or exact count.
//! - Exact counts (and every figure under `tcg-icount`, whose virtual
//!   clock makes repetitions bit-for-bit identical) should repeat: the
//!   gate checks that the repetitions are identical (a difference fails as
//!   non-determinism) and then compares exactly: a baseline move beyond
//!   the rule's `tolerance` is a regression, no significance test needed.
//! - Scheduling-dependent counts gate only under `tcg-icount`, unless a
//!   same-run rule opts in with `any_accel = true` (its margin absorbs
//!   the scheduling noise); elsewhere they are skipped with a note.
//! - Timing figures under plain TCG or KVM: same-run rules skip them
//!   (unless `any_accel`); baseline rules compare them statistically, and
//!   only against a baseline made with the same QEMU, accelerator,
//!   toolchain and host CPU ([`provenance`]; under `tcg-icount` the host
//!   CPU does not matter, the rest does). A significance claim needs at least
//!   [`MIN_REPS_FOR_STATS`] repetitions on both sides; with fewer the
//!   line's verdict is "too few repetitions". With enough, a one-sided
//!   Welch t-test on the logarithms asks whether the figure moved in its
//!   bad direction by more than `tolerance`, and the p-values of all such
//!   comparisons together are corrected with **Holm's step-down method**
//!   at [`ALPHA`] (family-wise error rate: one false alarm per ~20 gate
//!   runs of an unchanged kernel at most, however many groups).
//!
//! Rule syntax: [`rules`]. The verb (files, scoping, exit status) is
//! `crate::verbs::gate`.

pub mod complete;
pub mod exact;
pub mod provenance;
pub mod report;
pub mod rules;
pub mod scope;

use std::collections::BTreeMap;

use crate::results::derive::{figure_info, Better, FigureClass};
use crate::results::matrix::MatrixSpec;
use crate::results::metadata::Metadata;
use crate::results::model::{Outcome, ResultRow};
use crate::results::stats::{self, holm, welch_greater_p};
use crate::results::summary::{fmt_num, summarize, GroupKey, GroupSummary};

pub use report::{GateLine, GateReport, Verdict};
pub use rules::{BaselineRule, BoundRule, RatioRule, Rules, Selection, Stat};

/// The accelerator whose virtual time repeats (QEMU `-icount`); tcg-model
/// runs on it and repeats too ([`crate::accel::is_repeatable`]).
pub const REPEATABLE_ACCEL: &str = "tcg-icount";

/// Repetitions a statistical (non-icount timing) comparison needs on each
/// side before it may claim anything.
pub const MIN_REPS_FOR_STATS: usize = 5;

/// Family-wise error rate of the statistical baseline comparisons (Holm).
pub const ALPHA: f64 = 0.05;

/// What the gate evaluates besides the rules and the results.
#[derive(Clone, Copy, Debug, Default)]
pub struct Inputs<'a> {
    /// The matrix the results were run from, accelerator resolved (from
    /// metadata.json): completeness and `[[expect]]` entries.
    pub matrix: Option<&'a MatrixSpec>,
    /// The results' metadata.
    pub meta: Option<&'a Metadata>,
    /// The baseline's rows; `None`: baseline rules are skipped (the verb
    /// refuses that for required rules unless told `--no-baseline`).
    pub baseline: Option<&'a [ResultRow]>,
    /// The metadata of each result set the baseline was made from.
    pub baseline_meta: &'a [Metadata],
}

impl<'a> Inputs<'a> {
    /// Only a baseline (tests).
    pub fn with_baseline(baseline: &'a [ResultRow]) -> Self {
        Inputs {
            baseline: Some(baseline),
            ..Inputs::default()
        }
    }
}

/// Evaluates every rule against `rows`. Pure: prints nothing.
pub fn evaluate(rules: &Rules, rows: &[ResultRow], inputs: &Inputs<'_>) -> GateReport {
    let groups = summarize(rows);
    let base_groups = inputs.baseline.map(summarize);
    let mut lines = Vec::new();
    if let Some(spec) = inputs.matrix {
        lines.extend(complete::lines(spec, rows));
    }
    let ctx = Ctx {
        matrix: inputs.matrix,
    };
    for rule in &rules.bound {
        bound(&ctx, rule, &groups, &mut lines);
    }
    for rule in &rules.ratio {
        ratio(&ctx, rule, &groups, &mut lines);
    }
    let mut pending = Vec::new();
    for rule in &rules.baseline {
        compare(
            &ctx,
            rule,
            &groups,
            base_groups.as_deref(),
            inputs,
            &mut lines,
            &mut pending,
        );
    }
    settle(&mut lines, &pending);
    GateReport { lines }
}

/// A statistical comparison waiting for the multiple-comparison
/// correction: its line, p-value and evidence.
struct Pending {
    line: usize,
    p: f64,
    evidence: String,
}

/// Applies Holm's correction over every statistical comparison.
fn settle(lines: &mut [GateLine], pending: &[Pending]) {
    let p: Vec<f64> = pending.iter().map(|q| q.p).collect();
    let reject = holm(&p, ALPHA);
    let m = pending.len();
    for (q, rejected) in pending.iter().zip(reject) {
        let line = &mut lines[q.line];
        if rejected {
            line.verdict = Verdict::Fail;
            line.note = format!(
                "regression: {}, p = {:.2e}, significant after Holm over {m} comparisons (alpha {ALPHA})",
                q.evidence, q.p
            );
        } else {
            line.verdict = Verdict::Pass;
            line.note = format!(
                "within noise: {}, p = {:.2e}, not significant after Holm over {m} comparisons",
                q.evidence, q.p
            );
        }
    }
}

struct Ctx<'a> {
    matrix: Option<&'a MatrixSpec>,
}

impl Ctx<'_> {
    /// When every run of `g` ended other than ok as the matrix expects:
    /// the note saying so.
    fn expected_not_ok(&self, g: &GroupSummary) -> Option<String> {
        let spec = self.matrix?;
        if g.runs.is_empty() || g.runs.iter().any(|r| r.outcome.is_ok()) {
            return None;
        }
        let mut why = None;
        for r in &g.runs {
            let (want, reason) = spec.expected(&r.cell);
            if want == Outcome::Ok || want != r.outcome {
                return None;
            }
            why = reason;
        }
        Some(format!(
            "every run ended {} as the matrix expects ({}); this rule reads ok runs only",
            g.runs[0].outcome,
            why.unwrap_or("")
        ))
    }
}

/// `fixed/forkexit[touch=on]/4 @tcg/microvm`.
fn group_name(key: &GroupKey) -> String {
    format!("{} @{}/{}", key.bench_name(), key.accel, key.machine)
}

/// The text of a `min`/`max` pair: `>= 5`, `<= 0.5`, `in [1, 2]`.
fn bound_text(min: Option<f64>, max: Option<f64>) -> String {
    match (min, max) {
        (Some(lo), Some(hi)) => format!("in [{}, {}]", fmt_num(lo), fmt_num(hi)),
        (Some(lo), None) => format!(">= {}", fmt_num(lo)),
        (None, Some(hi)) => format!("<= {}", fmt_num(hi)),
        (None, None) => "-".into(),
    }
}

fn within(v: f64, min: Option<f64>, max: Option<f64>) -> bool {
    !v.is_nan() && min.is_none_or(|lo| v >= lo) && max.is_none_or(|hi| v <= hi)
}

/// `[1, 1.02, 0.98]`: the per-rep values of a line.
fn values_text(values: &[f64]) -> String {
    let v: Vec<String> = values.iter().map(|&x| fmt_num(x)).collect();
    format!("[{}]", v.join(", "))
}

/// Repetitions that should be identical but are not: the note saying so.
/// Identical means equal to 1 part in 10^9 (the same counters give the
/// same ratio; the slack only absorbs printing and summing order).
pub fn nondeterminism(values: &[f64]) -> Option<String> {
    let (lo, hi) = stats::range(values)?;
    let scale = lo.abs().max(hi.abs());
    (hi - lo > scale * 1e-9).then(|| {
        format!(
            "non-determinism: the repetitions differ ({}) where they should be identical",
            values_text(values)
        )
    })
}

/// How a figure of a group may be gated.
#[derive(Clone, Debug, PartialEq)]
enum Regime {
    /// Repetitions must be identical; compare exactly.
    Exact,
    /// Compare as measured (an `any_accel` opt-in of a same-run rule).
    AsMeasured,
    /// Not gated here, for this reason.
    Skip(String),
}

/// The regime of `figure` in group `g` for a same-run rule.
fn same_run_regime(figure: &str, g: &GroupSummary, any_accel: bool) -> Regime {
    let class = figure_info(figure, g.unit_of(figure))
        .class
        .on_cpus(g.key.cpus);
    let icount = crate::accel::is_repeatable(&g.key.accel);
    match class {
        // The run's own outcome differs across reps when a run fails;
        // "every run completes" says that better than non-determinism.
        _ if figure == "run.outcome" => Regime::AsMeasured,
        FigureClass::ExactCount => Regime::Exact,
        _ if icount => Regime::Exact,
        _ if any_accel => Regime::AsMeasured,
        FigureClass::Timing => Regime::Skip(format!(
            "timing figure under accel {}: gated only under {REPEATABLE_ACCEL} (any_accel opts in)",
            g.key.accel
        )),
        FigureClass::SchedCount => Regime::Skip(format!(
            "scheduling-dependent count under accel {} on {} CPUs: gated only under {REPEATABLE_ACCEL} (any_accel opts in)",
            g.key.accel, g.key.cpus
        )),
    }
}

/// Shared fields of a line being built.
struct Line<'a> {
    kind: &'static str,
    rule: &'a str,
    figure: String,
    bound: String,
}

impl Line<'_> {
    fn emit(&self, selection: String, value: String, verdict: Verdict, note: String) -> GateLine {
        GateLine {
            kind: self.kind,
            rule: self.rule.to_string(),
            selection,
            figure: self.figure.clone(),
            value,
            reps: String::new(),
            baseline: String::new(),
            bound: self.bound.clone(),
            verdict,
            note,
        }
    }

    /// A line for missing data: a fail, or a skip when not required.
    fn missing(&self, selection: String, required: bool, why: String) -> GateLine {
        let (verdict, note) = if required {
            (Verdict::Fail, format!("missing data: {why}"))
        } else {
            (Verdict::Skip, format!("missing data (not required): {why}"))
        };
        self.emit(selection, "-".into(), verdict, note)
    }
}

/// Why a group has no value for a figure.
fn no_value_note(group: &GroupSummary, figure: &str) -> String {
    format!(
        "no ok run of {} reports '{figure}' (runs: {})",
        group_name(&group.key),
        group.outcome_text()
    )
}

/// The values of `figure` a rule reads from `g`, after the regime's
/// checks: `Err(line)` when the group gives a line of its own instead
/// (skip, expected failure, non-determinism, missing data).
#[allow(clippy::too_many_arguments)]
fn rule_values(
    ctx: &Ctx<'_>,
    line: &Line<'_>,
    g: &GroupSummary,
    name: &str,
    figure: &str,
    any_accel: bool,
    include_failed: bool,
    required: bool,
) -> Result<Vec<f64>, Box<GateLine>> {
    let regime = same_run_regime(figure, g, any_accel);
    if let Regime::Skip(note) = regime {
        return Err(Box::new(line.emit(
            name.into(),
            "-".into(),
            Verdict::Skip,
            note,
        )));
    }
    let values = g.values_from(figure, include_failed);
    if values.is_empty() {
        if let Some(note) = ctx.expected_not_ok(g) {
            return Err(Box::new(line.emit(
                name.into(),
                "-".into(),
                Verdict::Skip,
                note,
            )));
        }
        return Err(Box::new(line.missing(
            name.into(),
            required,
            no_value_note(g, figure),
        )));
    }
    if regime == Regime::Exact {
        if let Some(note) = nondeterminism(&values) {
            let mut l = line.emit(name.into(), "-".into(), Verdict::Fail, note);
            l.reps = values_text(&values);
            return Err(Box::new(l));
        }
    }
    Ok(values)
}

fn bound(ctx: &Ctx<'_>, rule: &BoundRule, groups: &[GroupSummary], out: &mut Vec<GateLine>) {
    let line = Line {
        kind: "bound",
        rule: &rule.name,
        figure: format!("{} {}", rule.stat.name(), rule.figure),
        bound: bound_text(rule.min, rule.max),
    };
    let selected: Vec<&GroupSummary> = groups
        .iter()
        .filter(|g| rule.select.matches(&g.key, false))
        .collect();
    if selected.is_empty() {
        out.push(line.missing(
            rule.select.describe(),
            rule.required,
            format!("no runs match {}", rule.select.describe()),
        ));
    }
    for g in selected {
        let name = group_name(&g.key);
        let values = match rule_values(
            ctx,
            &line,
            g,
            &name,
            &rule.figure,
            rule.any_accel,
            rule.include_failed,
            rule.required,
        ) {
            Ok(v) => v,
            Err(l) => {
                out.push(*l);
                continue;
            }
        };
        let v = rule.stat.of(&values).expect("values are not empty");
        let ok = within(v, rule.min, rule.max);
        let (verdict, note) = if ok {
            (Verdict::Pass, String::new())
        } else {
            (Verdict::Fail, format!("{} is out of bounds", fmt_num(v)))
        };
        let mut l = line.emit(name, fmt_num(v), verdict, note);
        l.reps = values_text(&values);
        out.push(l);
    }
}

/// The group key with the variant blanked: what ratio rules pair on.
fn pairing_key(key: &GroupKey) -> GroupKey {
    GroupKey {
        variant: String::new(),
        ..key.clone()
    }
}

/// `n / d` as the gate reads it: `None` for 0/0 (undefined: a skip),
/// +-inf for x/0 with x != 0.
pub fn gate_ratio(n: f64, d: f64) -> Option<f64> {
    if d == 0.0 {
        if n == 0.0 {
            None
        } else {
            Some(f64::INFINITY * n.signum())
        }
    } else {
        Some(n / d)
    }
}

fn ratio(ctx: &Ctx<'_>, rule: &RatioRule, groups: &[GroupSummary], out: &mut Vec<GateLine>) {
    let line = Line {
        kind: "ratio",
        rule: &rule.name,
        figure: format!(
            "{} {}: {} / {}",
            rule.stat.name(),
            rule.figure,
            rule.numerator,
            rule.denominator
        ),
        bound: bound_text(rule.min, rule.max),
    };
    // (numerator group, denominator group) per pairing key.
    let mut pairs: BTreeMap<GroupKey, (Option<&GroupSummary>, Option<&GroupSummary>)> =
        BTreeMap::new();
    for g in groups.iter().filter(|g| rule.select.matches(&g.key, true)) {
        let slot = pairs.entry(pairing_key(&g.key)).or_default();
        if g.key.variant == rule.numerator {
            slot.0 = Some(g);
        } else if g.key.variant == rule.denominator {
            slot.1 = Some(g);
        }
    }
    pairs.retain(|_, (n, d)| n.is_some() || d.is_some());
    if pairs.is_empty() {
        out.push(line.missing(
            rule.select.describe(),
            rule.required,
            format!(
                "no runs of {} or {} match {}",
                rule.numerator,
                rule.denominator,
                rule.select.describe()
            ),
        ));
    }
    for (key, (num, den)) in pairs {
        // `openbsd-2010:fixed/forkexit[touch=on]/4 @tcg/microvm`.
        let name = group_name(&GroupKey {
            variant: format!("{}:{}", rule.numerator, rule.denominator),
            ..key.clone()
        });
        let (num, den) = match (num, den) {
            (Some(n), Some(d)) => (n, d),
            (n, _) => {
                let absent = if n.is_none() {
                    &rule.numerator
                } else {
                    &rule.denominator
                };
                out.push(line.missing(
                    name,
                    rule.required,
                    format!("no runs of variant {absent} for this selection"),
                ));
                continue;
            }
        };
        let mut sides = Vec::new();
        for g in [num, den] {
            match rule_values(
                ctx,
                &line,
                g,
                &name,
                &rule.figure,
                rule.any_accel,
                rule.include_failed,
                rule.required,
            ) {
                Ok(v) => sides.push(v),
                Err(l) => {
                    out.push(*l);
                    break;
                }
            }
        }
        let [nv, dv] = &sides[..] else {
            continue;
        };
        let (n, d) = (
            rule.stat.of(nv).expect("not empty"),
            rule.stat.of(dv).expect("not empty"),
        );
        let shown = |r: &str| format!("{r} ({} / {})", fmt_num(n), fmt_num(d));
        let mut l = match gate_ratio(n, d) {
            None => line.emit(
                name,
                shown("0/0"),
                Verdict::Skip,
                format!(
                    "both {} and {} are 0: the ratio is undefined",
                    rule.numerator, rule.denominator
                ),
            ),
            Some(r) if within(r, rule.min, rule.max) => {
                line.emit(name, shown(&fmt_num(r)), Verdict::Pass, String::new())
            }
            Some(r) => line.emit(
                name,
                shown(&fmt_num(r)),
                Verdict::Fail,
                format!("ratio {} is out of bounds", fmt_num(r)),
            ),
        };
        l.reps = format!("{} / {}", values_text(nv), values_text(dv));
        out.push(l);
    }
}

/// The relative move of `new` from `old` in the bad direction (positive
/// = worse); an infinite move from an old value of 0.
pub fn bad_move(old: f64, new: f64, better: Better) -> f64 {
    let worse_by = match better {
        Better::Higher => old - new,
        _ => new - old,
    };
    if old == 0.0 {
        if worse_by > 0.0 {
            f64::INFINITY
        } else if worse_by < 0.0 {
            f64::NEG_INFINITY
        } else {
            0.0
        }
    } else {
        worse_by / old.abs()
    }
}

/// The baseline group to compare `new` with: the same group, else the
/// same cell under another accelerator (provenance decides what that may
/// be compared on).
fn baseline_for<'b>(new: &GroupKey, baseline: &'b [GroupSummary]) -> Option<&'b GroupSummary> {
    baseline.iter().find(|b| b.key == *new).or_else(|| {
        baseline.iter().find(|b| {
            GroupKey {
                accel: new.accel.clone(),
                ..b.key.clone()
            } == *new
        })
    })
}

/// The p-value of "`new` is worse than `old` by more than `tolerance`"
/// (one-sided Welch on logarithms when every value is positive, else on
/// the values with the margin taken from the old median).
pub fn regression_p(old: &[f64], new: &[f64], tolerance: f64, better: Better) -> Option<f64> {
    let positive = old.iter().chain(new).all(|&v| v > 0.0);
    if positive {
        let sign = if better == Better::Higher { -1.0 } else { 1.0 };
        let logs = |v: &[f64]| v.iter().map(|x| sign * x.ln()).collect::<Vec<_>>();
        let margin = if better == Better::Higher {
            -(1.0 - tolerance).max(f64::MIN_POSITIVE).ln()
        } else {
            (1.0 + tolerance).ln()
        };
        welch_greater_p(&logs(old), &logs(new), margin)
    } else {
        let sign = if better == Better::Higher { -1.0 } else { 1.0 };
        let flip = |v: &[f64]| v.iter().map(|x| sign * x).collect::<Vec<_>>();
        let margin = tolerance * stats::median(old)?.abs();
        welch_greater_p(&flip(old), &flip(new), margin)
    }
}

#[allow(clippy::too_many_arguments)]
fn compare(
    ctx: &Ctx<'_>,
    rule: &BaselineRule,
    groups: &[GroupSummary],
    baseline: Option<&[GroupSummary]>,
    inputs: &Inputs<'_>,
    out: &mut Vec<GateLine>,
    pending: &mut Vec<Pending>,
) {
    let better = rule.better();
    let line = Line {
        kind: "baseline",
        rule: &rule.name,
        figure: format!("median {}", rule.figure),
        bound: format!(
            "{} by <= {}%",
            if better == Better::Higher {
                "falls"
            } else {
                "rises"
            },
            fmt_num(rule.tolerance * 100.0)
        ),
    };
    let Some(baseline) = baseline else {
        out.push(line.emit(
            rule.select.describe(),
            "-".into(),
            Verdict::Skip,
            "no baseline given (--no-baseline)".into(),
        ));
        return;
    };
    let selected: Vec<&GroupSummary> = groups
        .iter()
        .filter(|g| rule.select.matches(&g.key, false))
        .collect();
    if selected.is_empty() {
        out.push(line.missing(
            rule.select.describe(),
            rule.required,
            format!("no results match {}", rule.select.describe()),
        ));
    }
    for new in selected {
        let name = group_name(&new.key);
        if let Some(note) = ctx.expected_not_ok(new) {
            out.push(line.emit(name, "-".into(), Verdict::Skip, note));
            continue;
        }
        let Some(old) = baseline_for(&new.key, baseline) else {
            out.push(line.missing(
                name,
                rule.required,
                "not in the baseline: remake it with ./lab baseline".into(),
            ));
            continue;
        };
        let class = figure_info(&rule.figure, new.unit_of(&rule.figure))
            .class
            .on_cpus(new.key.cpus);
        let both_icount = crate::accel::is_repeatable(&new.key.accel)
            && crate::accel::is_repeatable(&old.key.accel);
        let (old_v, new_v) = (old.values(&rule.figure), new.values(&rule.figure));
        let (Some(old_med), Some(new_med)) = (stats::median(&old_v), stats::median(&new_v)) else {
            let (which, side) = if old_v.is_empty() {
                (old, "baseline")
            } else {
                (new, "results")
            };
            out.push(line.missing(
                name,
                rule.required,
                format!("{side}: {}", no_value_note(which, &rule.figure)),
            ));
            continue;
        };
        let base_meta = provenance::meta_for(inputs.baseline_meta, &old.key.accel);
        if class == FigureClass::Timing {
            if let Some(why) =
                provenance::timing_refusal(base_meta, inputs.meta, &old.key, &new.key)
            {
                let note = format!(
                    "refused: {why}; timing is comparable only on the same QEMU, accelerator, toolchain (and, off icount, host CPU): remake the baseline here with ./lab baseline"
                );
                let verdict = if rule.required {
                    Verdict::Fail
                } else {
                    Verdict::Skip
                };
                out.push(line.emit(name, "-".into(), verdict, note));
                continue;
            }
        }
        if class == FigureClass::SchedCount && !both_icount && !rule.any_accel {
            out.push(line.emit(
                name,
                "-".into(),
                Verdict::Skip,
                format!(
                    "scheduling-dependent count on {} CPUs (results {}, baseline {}): compared only when both ran under {REPEATABLE_ACCEL}",
                    new.key.cpus, new.key.accel, old.key.accel
                ),
            ));
            continue;
        }
        let change = if old_med == 0.0 {
            if new_med == 0.0 {
                "0".to_string()
            } else {
                "inf".to_string()
            }
        } else {
            fmt_num((new_med - old_med) / old_med.abs() * 100.0)
        };
        let value = format!(
            "{} -> {} ({}{change}%)",
            fmt_num(old_med),
            fmt_num(new_med),
            if new_med >= old_med { "+" } else { "" },
        );
        let mut l = line.emit(name, value, Verdict::Pass, String::new());
        l.reps = values_text(&new_v);
        l.baseline = values_text(&old_v);
        let moved = bad_move(old_med, new_med, better);
        let exact = class == FigureClass::ExactCount || both_icount;
        if exact {
            let regime = if both_icount {
                format!("both under {REPEATABLE_ACCEL}")
            } else {
                "exact count".to_string()
            };
            if let Some(note) = nondeterminism(&new_v) {
                l.verdict = Verdict::Fail;
                l.note = format!("results: {note} ({regime})");
            } else if let Some(note) = nondeterminism(&old_v) {
                l.verdict = Verdict::Fail;
                l.note = format!("baseline: {note} ({regime}); remake it with ./lab baseline");
            } else if moved > rule.tolerance {
                l.verdict = Verdict::Fail;
                l.note = format!(
                    "regression: compared exactly ({regime}, repetitions identical): moved {}% the wrong way",
                    fmt_num(moved * 100.0)
                );
            } else {
                l.note = format!("compared exactly ({regime})");
            }
            out.push(l);
            continue;
        }
        if new_v.len() < MIN_REPS_FOR_STATS || old_v.len() < MIN_REPS_FOR_STATS {
            l.verdict = Verdict::TooFew;
            l.note = format!(
                "too few repetitions: {} here, {} in the baseline; a significance claim under {} needs >= {MIN_REPS_FOR_STATS} on each side",
                new_v.len(),
                old_v.len(),
                new.key.accel
            );
            out.push(l);
            continue;
        }
        match regression_p(&old_v, &new_v, rule.tolerance, better) {
            Some(p) => {
                pending.push(Pending {
                    line: out.len(),
                    p,
                    evidence: format!(
                        "Welch t-test of a move beyond {}%",
                        fmt_num(rule.tolerance * 100.0)
                    ),
                });
                out.push(l);
            }
            None => {
                l.verdict = Verdict::TooFew;
                l.note = "no test possible".into();
                out.push(l);
            }
        }
    }
}

#[cfg(test)]
mod tests;
