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
mod tests {
    use super::*;
    use crate::results::metadata::Metadata;
    use crate::results::model::fixtures::{cell, matrix_rows, run};
    use crate::results::model::Outcome;

    /// The TEST FIXTURE rows moved to accel tcg-icount.
    fn icount(rows: &[ResultRow]) -> Vec<ResultRow> {
        rows.iter()
            .map(|r| ResultRow {
                accel: REPEATABLE_ACCEL.into(),
                ..r.clone()
            })
            .collect()
    }

    fn rules(text: &str) -> Rules {
        Rules::parse(text).unwrap()
    }

    #[test]
    fn bound_passes_and_fails_naming_the_rule() {
        // TEST FIXTURE: fixed sends 0.1 IPIs/op x cpus/2, openbsd-2010 2.0 x cpus/2.
        let rows = matrix_rows(3);
        let r = rules(
            "[[bound]]\nname='fixed forkexit ipis per loop'\nvariant='fixed'\nworkload='forkexit'\ncpus=4\nfigure='ipis_per_op'\nmax=0.5\nany_accel=true\n",
        );
        let report = evaluate(&r, &rows, &Inputs::default());
        assert!(report.passed(), "{}", report.table());
        assert_eq!(report.lines.len(), 1);
        assert_eq!(report.lines[0].value, "0.2");

        // openbsd-2010's figures under fixed's rule fail, naming the rule.
        let bad: Vec<ResultRow> = rows
            .iter()
            .filter(|r| r.variant == "openbsd-2010")
            .map(|r| ResultRow {
                variant: "fixed".into(),
                ..r.clone()
            })
            .collect();
        let report = evaluate(&r, &bad, &Inputs::default());
        assert!(!report.passed());
        let fail = report.failures().next().unwrap();
        assert_eq!(fail.rule, "fixed forkexit ipis per loop");
        assert_eq!(fail.value, "4");
        assert!(report.table().contains("FAIL") && report.table().contains("gate: FAILED"));
        assert!(report
            .markdown()
            .contains("❌ **FAIL** | bound | fixed forkexit ipis per loop"));
    }

    #[test]
    fn missing_data_fails_unless_optional() {
        let rows = matrix_rows(1);
        let r = rules(
            "[[bound]]\nname='scoreboard exists'\nvariant='scoreboard'\nfigure='ipis_per_op'\nmax=1\n\
             [[bound]]\nname='optional'\nvariant='dfly-batch'\nfigure='ipis_per_op'\nmax=1\nrequired=false\n\
             [[bound]]\nname='no such figure'\nvariant='fixed'\nworkload='forkexit'\ncpus=2\nfigure='coherence.nope'\nmax=0\nany_accel=true\n",
        );
        let report = evaluate(&r, &rows, &Inputs::default());
        let l = &report.lines;
        assert_eq!(l[0].verdict, Verdict::Fail);
        assert!(
            l[0].note.contains("no runs match variant=scoreboard"),
            "{}",
            l[0].note
        );
        assert_eq!(l[1].verdict, Verdict::Skip);
        assert_eq!(l[2].verdict, Verdict::Fail);
        assert!(
            l[2].note.contains("reports 'coherence.nope'"),
            "{}",
            l[2].note
        );
        assert!(!report.passed());
    }

    #[test]
    fn wildcard_bounds_check_every_group_and_failed_runs_show() {
        let mut rows = matrix_rows(2);
        let mut dead = run(cell("fixed", "forkexit", 2, 3), 1.0, 1.0, 1.0);
        dead.outcome = Outcome::Panic;
        dead.metrics.clear();
        rows.extend(dead.rows());
        let r = rules(
            "[[bound]]\nname='sent == received'\nfigure='ipi_unreceived'\nstat='max'\nmax=0\n\
             [[bound]]\nname='every run completes'\nfigure='run.outcome'\nstat='min'\nmin=1\n",
        );
        let report = evaluate(&r, &rows, &Inputs::default());
        assert_eq!(report.lines.len(), 16);
        let fails: Vec<_> = report.failures().collect();
        assert_eq!(fails.len(), 1);
        assert_eq!(fails[0].rule, "every run completes");
        assert!(fails[0].selection.starts_with("fixed/forkexit[touch=on]/2"));
    }

    #[test]
    fn failed_runs_count_only_when_a_rule_asks() {
        // TEST FIXTURE: a coherence run that found stale reads and said so
        // with status=failed.
        let mut rec = run(cell("lost-shootdown", "coherence", 2, 1), 100.0, 1.0, 1.0);
        rec.outcome = Outcome::Failed;
        for m in &mut rec.metrics {
            if m.name == "coherence.stale_reads" {
                m.value = 3.0;
            }
        }
        let rows = rec.rows();
        let text = "[[bound]]\nname='caught'\nvariant='lost-shootdown'\nfigure='coherence.stale_reads'\nmin=1\nany_accel=true\n";
        let strict = evaluate(&rules(text), &rows, &Inputs::default());
        assert_eq!(strict.lines[0].verdict, Verdict::Fail);
        assert!(
            strict.lines[0].note.contains("runs: 1 failed"),
            "{}",
            strict.lines[0].note
        );
        let lenient = evaluate(
            &rules(&format!("{text}include_failed=true\n")),
            &rows,
            &Inputs::default(),
        );
        assert_eq!(lenient.lines[0].verdict, Verdict::Pass);
    }

    #[test]
    fn ratio_rules_pair_variants_and_skip_timing_off_icount() {
        let rows = matrix_rows(3);
        let r = rules(
            "[[ratio]]\nname='bug costs IPIs'\nnumerator='openbsd-2010'\ndenominator='fixed'\nworkload='forkexit'\nfigure='ipis_per_op'\nmin=5\nany_accel=true\n\
             [[ratio]]\nname='fixed is not slower'\nnumerator='fixed'\ndenominator='openbsd-2010'\nworkload='forkexit'\ncpus=4\nfigure='ops_per_s'\nmin=0.9\n\
             [[ratio]]\nname='scoreboard'\nnumerator='scoreboard'\ndenominator='fixed'\nfigure='ops_per_s'\nmin=0.8\n",
        );
        let report = evaluate(&r, &rows, &Inputs::default());
        let l = &report.lines;
        assert_eq!((l[0].verdict, l[1].verdict), (Verdict::Pass, Verdict::Pass));
        assert!(l[0].value.starts_with("20 "), "{}", l[0].value);
        assert_eq!(l[2].verdict, Verdict::Skip, "{:?}", l[2]);
        assert!(l[2].note.contains("tcg-icount"));
        assert!(
            l[3..].iter().all(|l| l.verdict == Verdict::Fail),
            "{}",
            report.table()
        );
        assert!(
            l[3].note.contains("no runs of variant scoreboard"),
            "{}",
            l[3].note
        );

        // Under tcg-icount the timing ratio is compared, and its reps must
        // be identical: the fixture's jitter is non-determinism there.
        let report = evaluate(&r, &icount(&rows), &Inputs::default());
        assert_eq!(report.lines[2].verdict, Verdict::Fail, "{}", report.table());
        assert!(report.lines[2].note.starts_with("non-determinism"));
        let one_rep: Vec<ResultRow> = icount(&rows).into_iter().filter(|r| r.rep == 1).collect();
        let report = evaluate(&r, &one_rep, &Inputs::default());
        assert_eq!(report.lines[2].verdict, Verdict::Pass, "{}", report.table());
    }

    /// Scales the shootpage IPI counts of `variant` by `factor`.
    fn scale_ipis(rows: &[ResultRow], variant: &str, factor: f64) -> Vec<ResultRow> {
        rows.iter()
            .map(|r| {
                let mut r = r.clone();
                if r.variant == variant && r.metric.starts_with("ipi.") {
                    r.value *= factor;
                }
                r
            })
            .collect()
    }

    #[test]
    fn zero_over_zero_is_a_skip_and_x_over_zero_is_infinite() {
        assert_eq!(gate_ratio(0.0, 0.0), None);
        assert_eq!(gate_ratio(3.0, 0.0), Some(f64::INFINITY));
        assert_eq!(gate_ratio(3.0, 2.0), Some(1.5));
        // TEST FIXTURE: no IPIs on either side.
        let rows = scale_ipis(
            &scale_ipis(&matrix_rows(1), "fixed", 0.0),
            "openbsd-2010",
            0.0,
        );
        let r = rules(
            "[[ratio]]\nname='r'\nnumerator='openbsd-2010'\ndenominator='fixed'\nworkload='forkexit'\ncpus=2\nfigure='ipis_per_op'\nmax=1\nany_accel=true\n",
        );
        let report = evaluate(&r, &rows, &Inputs::default());
        assert_eq!(report.lines[0].verdict, Verdict::Skip, "{}", report.table());
        assert!(report.lines[0].note.contains("undefined"));
        assert!(!report.passed(), "an all-skip report is not a pass");
        assert!(report.headline().contains("no rule passed"));
        // Only the denominator is 0: +inf passes a min and fails a max.
        let rows = scale_ipis(&matrix_rows(1), "fixed", 0.0);
        let report = evaluate(&r, &rows, &Inputs::default());
        assert_eq!(report.lines[0].verdict, Verdict::Fail);
        assert!(
            report.lines[0].value.starts_with("inf"),
            "{}",
            report.lines[0].value
        );
        let min = rules(
            "[[ratio]]\nname='r'\nnumerator='openbsd-2010'\ndenominator='fixed'\nworkload='forkexit'\ncpus=2\nfigure='ipis_per_op'\nmin=5\nany_accel=true\n",
        );
        assert!(evaluate(&min, &rows, &Inputs::default()).passed());
    }

    #[test]
    fn scheduling_dependent_counts_gate_under_icount_or_by_opt_in() {
        let rows = matrix_rows(2);
        let text = "[[bound]]\nname='few'\nvariant='fixed'\nworkload='forkexit'\ncpus=2\nfigure='ipis_per_op'\nmax=0.5\n";
        let report = evaluate(&rules(text), &rows, &Inputs::default());
        assert_eq!(report.lines[0].verdict, Verdict::Skip);
        assert!(report.lines[0].note.contains("scheduling-dependent"));
        let opted = evaluate(
            &rules(&format!("{text}any_accel=true\n")),
            &rows,
            &Inputs::default(),
        );
        assert!(opted.passed(), "{}", opted.table());
        let under_icount = evaluate(&rules(text), &icount(&rows), &Inputs::default());
        assert!(under_icount.passed(), "{}", under_icount.table());
    }

    #[test]
    fn nondeterminism_is_named() {
        assert_eq!(nondeterminism(&[1.0, 1.0, 1.0]), None);
        assert_eq!(nondeterminism(&[0.0, 0.0]), None);
        assert_eq!(nondeterminism(&[5.0]), None);
        let note = nondeterminism(&[1.0, 1.5]).unwrap();
        assert!(note.contains("[1, 1.5]"), "{note}");
    }

    #[test]
    fn expected_failures_are_present_not_missing() {
        // TEST FIXTURE: a lost-shootdown coherence run that ended failed as
        // its matrix expects.
        let spec = MatrixSpec::parse(
            "variants=['lost-shootdown']\ncpus=[2]\nreps=1\naccel='tcg'\n[[workloads]]\nname='coherence'\n\
             [[expect]]\nvariant='lost-shootdown'\nworkload='coherence'\noutcome='failed'\nwhy='caught'\n",
        )
        .unwrap();
        let mut rec = run(cell("lost-shootdown", "coherence", 2, 1), 10.0, 1.0, 4.0);
        rec.outcome = Outcome::Failed;
        let rows = rec.rows();
        let r = rules(
            "[[bound]]\nname='received'\nfigure='ipi_unreceived'\nstat='max'\nmax=0\ninclude_failed=true\n\
             [[bound]]\nname='ok only'\nfigure='pmap.destroy.cpus_nonzero'\nmax=0\n",
        );
        let inputs = Inputs {
            matrix: Some(&spec),
            ..Inputs::default()
        };
        let report = evaluate(&r, &rows, &inputs);
        let t = report.table();
        assert_eq!(report.lines[0].kind, "complete");
        assert_eq!(report.lines[1].verdict, Verdict::Pass, "{t}");
        assert_eq!(report.lines[0].verdict, Verdict::Pass, "{t}");
        assert_eq!(report.lines[2].verdict, Verdict::Pass, "{t}");
        assert_eq!(report.lines[3].verdict, Verdict::Skip, "{t}");
        assert!(
            report.lines[3].note.contains("as the matrix expects"),
            "{t}"
        );
        assert!(report.passed());
    }

    /// TEST FIXTURE rows under icount (one rep per cell, so identical).
    fn icount_rows(reps: u32) -> Vec<ResultRow> {
        let rows = icount(&matrix_rows(reps));
        // Make every rep a copy of rep 1 (icount repeats bit for bit).
        rows.iter()
            .filter(|r| r.rep == 1)
            .flat_map(|r| {
                (1..=reps).map(move |rep| ResultRow {
                    rep,
                    run_id: format!("{}-{rep}", r.run_id),
                    ..r.clone()
                })
            })
            .collect()
    }

    #[test]
    fn icount_baselines_compare_exactly() {
        let base = icount_rows(2);
        let r = rules(
            "[[baseline]]\nname='ipis vs baseline'\nfigure='ipis_per_op'\ntolerance=0.1\n\
             [[baseline]]\nname='rate vs baseline'\nfigure='ops_per_s'\ntolerance=0.05\n",
        );
        let meta = Metadata {
            accel: REPEATABLE_ACCEL.into(),
            qemu_version: "QEMU 7.2".into(),
            ..Metadata::default()
        };
        let metas = [meta.clone()];
        let inputs = Inputs {
            meta: Some(&meta),
            baseline: Some(&base),
            baseline_meta: &metas,
            matrix: None,
        };
        let report = evaluate(&r, &base, &inputs);
        assert!(report.passed(), "{}", report.table());
        assert_eq!(report.counts().0, 16);
        // fixed sends 3x the IPIs: its groups regress, exactly.
        let worse = scale_ipis(&base, "fixed", 3.0);
        let report = evaluate(&r, &worse, &inputs);
        let fails: Vec<_> = report.failures().collect();
        assert_eq!(fails.len(), 4, "{}", report.table());
        assert!(fails.iter().all(|f| f.selection.starts_with("fixed/")));
        assert!(fails[0].note.starts_with("regression: compared exactly"));
        assert_eq!(fails[0].baseline, "[0.1, 0.1]");
        // 5 % more is within the 10 % tolerance; improvements never fail.
        assert!(evaluate(&r, &scale_ipis(&base, "fixed", 1.05), &inputs).passed());
        assert!(evaluate(&r, &scale_ipis(&base, "fixed", 0.2), &inputs).passed());
        // Reps that differ under icount: non-determinism.
        let mut jitter = base.clone();
        for row in &mut jitter {
            if row.rep == 2 && row.variant == "fixed" && row.metric == "ipi.sent.shootpage" {
                row.value += 1.0;
            }
        }
        let report = evaluate(&r, &jitter, &inputs);
        assert!(report
            .failures()
            .any(|f| f.note.contains("non-determinism")));
        // A group not in the baseline fails; no baseline at all: skipped.
        let partial: Vec<ResultRow> = base.iter().filter(|r| r.cpus == 2).cloned().collect();
        let report = evaluate(
            &r,
            &base,
            &Inputs {
                baseline: Some(&partial),
                ..inputs
            },
        );
        assert_eq!(report.failures().count(), 8, "{}", report.table());
        assert!(report
            .failures()
            .all(|f| f.note.contains("not in the baseline")));
        let report = evaluate(&r, &base, &Inputs::default());
        assert_eq!(report.lines[0].verdict, Verdict::Skip);
        // Another QEMU: the timing rule is refused, the count rule holds.
        let newer = Metadata {
            qemu_version: "QEMU 8.0".into(),
            ..meta.clone()
        };
        let report = evaluate(
            &r,
            &base,
            &Inputs {
                meta: Some(&newer),
                ..inputs
            },
        );
        let t = report.table();
        assert_eq!(report.failures().count(), 8, "{t}");
        assert!(report.failures().all(|f| f.rule == "rate vs baseline"
            && f.note
                .contains("refused: QEMU: baseline 'QEMU 7.2', results 'QEMU 8.0'")
            && f.note.contains("./lab baseline")));
    }

    #[test]
    fn off_icount_timing_needs_five_reps_and_holm() {
        // TEST FIXTURE: loop rates under plain TCG.
        let mk = |rates: &[f64]| -> Vec<ResultRow> {
            rates
                .iter()
                .enumerate()
                .flat_map(|(i, &rate)| {
                    run(
                        cell("fixed", "forkexit", 2, i as u32 + 1),
                        1000.0,
                        1000.0 * 1000.0 / rate,
                        1.0,
                    )
                    .rows()
                })
                .collect()
        };
        let meta = Metadata {
            accel: "tcg".into(),
            ..Metadata::default()
        };
        let metas = [meta.clone()];
        let r = rules("[[baseline]]\nname='rate'\nfigure='ops_per_s'\ntolerance=0.05\n");
        let check = |base: &[ResultRow], new: &[ResultRow]| {
            evaluate(
                &r,
                new,
                &Inputs {
                    meta: Some(&meta),
                    baseline: Some(base),
                    baseline_meta: &metas,
                    matrix: None,
                },
            )
        };
        let base3 = mk(&[1000.0, 1010.0, 990.0]);
        let slow3 = mk(&[600.0, 610.0, 605.0]);
        let report = check(&base3, &slow3);
        assert_eq!(
            report.lines[0].verdict,
            Verdict::TooFew,
            "{}",
            report.table()
        );
        assert!(report.lines[0].note.contains("too few repetitions"));
        assert!(!report.passed());
        let base5 = mk(&[1000.0, 1010.0, 990.0, 1005.0, 995.0]);
        let slow5 = mk(&[600.0, 610.0, 605.0, 598.0, 603.0]);
        let report = check(&base5, &slow5);
        assert_eq!(report.lines[0].verdict, Verdict::Fail, "{}", report.table());
        assert!(
            report.lines[0].note.contains("Holm over 1"),
            "{}",
            report.lines[0].note
        );
        // Noise: a 3 % wobble is no regression at 5 % tolerance.
        let wobble = mk(&[975.0, 985.0, 965.0, 980.0, 970.0]);
        let report = check(&base5, &wobble);
        assert!(report.passed(), "{}", report.table());
        assert!(report.lines[0].note.starts_with("within noise"));
    }

    /// The shipped rules on a small TEST FIXTURE matrix (openbsd-2010 and
    /// fixed only): variants and workloads that are absent are reported by
    /// name, optional ones are skipped, and nothing passes silently.
    #[test]
    fn shipped_rules_report_missing_data_by_name() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../variants/gates.toml");
        let rules = Rules::load(&path).unwrap();
        let report = evaluate(&rules, &icount_rows(2), &Inputs::default());
        println!("{}", report.table());
        let find = |rule: &str| {
            report
                .lines
                .iter()
                .find(|l| l.rule.starts_with(rule))
                .unwrap()
        };
        assert_eq!(find("openbsd-2010 sends far more").verdict, Verdict::Pass);
        // The fixture's fixed sends 0.1-0.2 shootpage IPIs per loop: one
        // for every few COW faults, which the fix's mechanism rules out.
        assert_eq!(
            find("fixed: a single-threaded pmap's shootpage/shootrange").verdict,
            Verdict::Fail
        );
        let coherence = find("no stale TLB reads");
        assert_eq!(coherence.verdict, Verdict::Fail);
        assert!(
            coherence.note.contains("no runs match")
                && coherence.note.contains("workload=coherence")
        );
        let uninit = find("uninit-bitmap alone");
        assert_eq!(uninit.verdict, Verdict::Fail);
        assert!(uninit.note.contains("uninit-bitmap"), "{}", uninit.note);
        assert_eq!(find("operation rate vs baseline").verdict, Verdict::Skip);
        assert!(!report.passed());
    }

    #[test]
    fn step_summary_is_appended_when_set() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("summary.md");
        std::fs::write(&path, "before\n").unwrap();
        let report = evaluate(
            &rules("[[bound]]\nname='x'\nfigure='ipis_per_op'\nmax=100\nany_accel=true\n"),
            &matrix_rows(1),
            &Inputs::default(),
        );
        report.append_markdown_to(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("before\n### pmaplab gate: PASSED"),
            "{text}"
        );
    }
}
