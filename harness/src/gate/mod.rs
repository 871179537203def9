//! CI regression gating: evaluate the rules of `variants/gates.toml`
//! against a result set (and optionally a baseline result set).
//!
//! Each rule is evaluated per selected group (a matrix cell without its
//! rep) and gives one [`GateLine`] per group, so a wildcard rule ("sent ==
//! received everywhere") reports every group it checked. Figures come
//! from the runs whose outcome is `ok` (`run.outcome` from every run).
//! A selection that matches nothing, or a group with no value for the
//! figure, fails with a message naming the selection, unless the rule
//! says `required = false` (then it is a skip). Rule syntax and the
//! timing-figure policy: [`rules`].

pub mod report;
pub mod rules;
pub mod scope;

use std::collections::BTreeMap;

use crate::results::derive::{figure_info, Better};
use crate::results::model::ResultRow;
use crate::results::stats::{self, bootstrap_median_diff};
use crate::results::summary::{fmt_num, summarize, GroupKey, GroupSummary};

pub use report::{GateLine, GateReport, Verdict};
pub use rules::{BaselineRule, BoundRule, Method, RatioRule, Rules, Selection, Stat};

/// The accelerator whose virtual time repeats (QEMU `-icount`): the only
/// one under which timing figures are compared.
pub const REPEATABLE_ACCEL: &str = "tcg-icount";

/// Bootstrap resamples and confidence for [`Method::Bootstrap`].
const RESAMPLES: usize = 2000;
const CONFIDENCE: f64 = 0.95;

/// Evaluates every rule against `rows` (and `baseline` for baseline rules;
/// with none, those rules are skipped with a note). Pure: prints nothing.
pub fn evaluate(rules: &Rules, rows: &[ResultRow], baseline: Option<&[ResultRow]>) -> GateReport {
    let groups = summarize(rows);
    let base_groups = baseline.map(summarize);
    let mut lines = Vec::new();
    for rule in &rules.bound {
        bound(rule, &groups, &mut lines);
    }
    for rule in &rules.ratio {
        ratio(rule, &groups, &mut lines);
    }
    for rule in &rules.baseline {
        compare(rule, &groups, base_groups.as_deref(), &mut lines);
    }
    GateReport { lines }
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
            bound: self.bound.clone(),
            verdict,
            note,
        }
    }

    /// A line for missing data: a fail, or a skip when not required.
    fn missing(&self, selection: String, required: bool, why: String) -> GateLine {
        let verdict = if required {
            Verdict::Fail
        } else {
            Verdict::Skip
        };
        let note = if required {
            format!("missing data: {why}")
        } else {
            format!("missing data (not required): {why}")
        };
        self.emit(selection, "-".into(), verdict, note)
    }
}

/// Whether a figure may be compared for `key`; if not, the skip note.
fn timing_skip(figure: &str, group: &GroupSummary, any_accel: bool) -> Option<String> {
    let info = figure_info(figure, group.unit_of(figure));
    (info.timing && !any_accel && group.key.accel != REPEATABLE_ACCEL).then(|| {
        format!(
            "timing figure under accel {}: compared only under {REPEATABLE_ACCEL}",
            group.key.accel
        )
    })
}

/// Why a group has no value for a figure.
fn no_value_note(group: &GroupSummary, figure: &str) -> String {
    format!(
        "no ok run of {} reports '{figure}' (runs: {})",
        group_name(&group.key),
        group.outcome_text()
    )
}

fn bound(rule: &BoundRule, groups: &[GroupSummary], out: &mut Vec<GateLine>) {
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
        if let Some(note) = timing_skip(&rule.figure, g, rule.any_accel) {
            out.push(line.emit(name, "-".into(), Verdict::Skip, note));
            continue;
        }
        match rule
            .stat
            .of(&g.values_from(&rule.figure, rule.include_failed))
        {
            None => out.push(line.missing(name, rule.required, no_value_note(g, &rule.figure))),
            Some(v) => {
                let ok = within(v, rule.min, rule.max);
                let verdict = if ok { Verdict::Pass } else { Verdict::Fail };
                let note = if ok {
                    String::new()
                } else {
                    format!("{} is out of bounds", fmt_num(v))
                };
                out.push(line.emit(name, fmt_num(v), verdict, note));
            }
        }
    }
}

/// The group key with the variant blanked: what ratio rules pair on.
fn pairing_key(key: &GroupKey) -> GroupKey {
    GroupKey {
        variant: String::new(),
        ..key.clone()
    }
}

fn ratio(rule: &RatioRule, groups: &[GroupSummary], out: &mut Vec<GateLine>) {
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
        if let Some(note) = timing_skip(&rule.figure, num, rule.any_accel) {
            out.push(line.emit(name, "-".into(), Verdict::Skip, note));
            continue;
        }
        let (Some(n), Some(d)) = (
            rule.stat.of(&num.values(&rule.figure)),
            rule.stat.of(&den.values(&rule.figure)),
        ) else {
            let which = if rule.stat.of(&num.values(&rule.figure)).is_none() {
                num
            } else {
                den
            };
            out.push(line.missing(name, rule.required, no_value_note(which, &rule.figure)));
            continue;
        };
        let r = if d == 0.0 {
            if n == 0.0 {
                f64::NAN
            } else {
                f64::INFINITY * n.signum()
            }
        } else {
            n / d
        };
        let value = format!("{} ({} / {})", fmt_num(r), fmt_num(n), fmt_num(d));
        if within(r, rule.min, rule.max) {
            out.push(line.emit(name, value, Verdict::Pass, String::new()));
        } else {
            let note = if r.is_nan() {
                "both variants are 0: the ratio is undefined".to_string()
            } else {
                format!("ratio {} is out of bounds", fmt_num(r))
            };
            out.push(line.emit(name, value, Verdict::Fail, note));
        }
    }
}

/// The relative move of `new` from `old` in the bad direction (positive
/// = worse); an infinite move from an old value of 0.
fn bad_move(old: f64, new: f64, better: Better) -> f64 {
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

/// A stable seed per (rule, group), so a re-run gives the same interval.
fn seed_for(rule: &str, group: &str) -> u64 {
    format!("{rule}\u{0}{group}")
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        })
}

fn compare(
    rule: &BaselineRule,
    groups: &[GroupSummary],
    baseline: Option<&[GroupSummary]>,
    out: &mut Vec<GateLine>,
) {
    let better = rule.better();
    let method = match rule.method {
        Method::Range => "ranges disjoint",
        Method::Bootstrap => "95% bootstrap CI excludes 0",
    };
    let line = Line {
        kind: "baseline",
        rule: &rule.name,
        figure: format!("median {}", rule.figure),
        bound: format!(
            "{} by <= {}% ({method})",
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
            "no baseline given".into(),
        ));
        return;
    };
    let selected: Vec<&GroupSummary> = baseline
        .iter()
        .filter(|g| rule.select.matches(&g.key, false))
        .collect();
    if selected.is_empty() {
        out.push(line.missing(
            rule.select.describe(),
            rule.required,
            format!(
                "the baseline has no runs matching {}",
                rule.select.describe()
            ),
        ));
    }
    for old in selected {
        let name = group_name(&old.key);
        let Some(new) = groups.iter().find(|g| g.key == old.key) else {
            out.push(line.missing(
                name,
                rule.required,
                "in the baseline but not in the results".into(),
            ));
            continue;
        };
        if let Some(note) = timing_skip(&rule.figure, new, rule.any_accel) {
            out.push(line.emit(name, "-".into(), Verdict::Skip, note));
            continue;
        }
        let (old_v, new_v) = (old.values(&rule.figure), new.values(&rule.figure));
        let (Some(old_med), Some(new_med), Some(old_r), Some(new_r)) = (
            stats::median(&old_v),
            stats::median(&new_v),
            stats::range(&old_v),
            stats::range(&new_v),
        ) else {
            let which = if old_v.is_empty() { old } else { new };
            let side = if old_v.is_empty() {
                "baseline"
            } else {
                "results"
            };
            out.push(line.missing(
                name,
                rule.required,
                format!("{side}: {}", no_value_note(which, &rule.figure)),
            ));
            continue;
        };
        let moved = bad_move(old_med, new_med, better);
        let (significant, evidence) = match rule.method {
            Method::Range => {
                let disjoint = match better {
                    Better::Higher => new_r.1 < old_r.0,
                    _ => new_r.0 > old_r.1,
                };
                let text = format!(
                    "ranges [{}, {}] -> [{}, {}]",
                    fmt_num(old_r.0),
                    fmt_num(old_r.1),
                    fmt_num(new_r.0),
                    fmt_num(new_r.1)
                );
                (disjoint, text)
            }
            Method::Bootstrap => {
                let seed = seed_for(&rule.name, &name);
                match bootstrap_median_diff(&old_v, &new_v, RESAMPLES, CONFIDENCE, seed) {
                    Some((lo, hi)) => {
                        let excludes = match better {
                            Better::Higher => hi < 0.0,
                            _ => lo > 0.0,
                        };
                        (
                            excludes,
                            format!("CI of change [{}, {}]", fmt_num(lo), fmt_num(hi)),
                        )
                    }
                    None => (false, "no bootstrap interval".into()),
                }
            }
        };
        let regressed = significant && moved > rule.tolerance;
        let value = format!(
            "{} -> {} ({}{}%)",
            fmt_num(old_med),
            fmt_num(new_med),
            if new_med >= old_med { "+" } else { "" },
            if old_med == 0.0 {
                if new_med == 0.0 {
                    "0".into()
                } else {
                    "inf".to_string()
                }
            } else {
                fmt_num((new_med - old_med) / old_med.abs() * 100.0)
            }
        );
        let note = if regressed {
            format!("regression: {evidence}")
        } else if moved > rule.tolerance {
            format!("within noise: {evidence}")
        } else {
            evidence
        };
        let verdict = if regressed {
            Verdict::Fail
        } else {
            Verdict::Pass
        };
        out.push(line.emit(name, value, verdict, note));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::model::fixtures::{cell, matrix_rows, run};
    use crate::results::model::Outcome;

    fn rules(text: &str) -> Rules {
        Rules::parse(text).unwrap()
    }

    #[test]
    fn bound_passes_and_fails_naming_the_rule() {
        // TEST FIXTURE: fixed sends 0.1 IPIs/op x cpus/2, openbsd-2010 2.0 x cpus/2.
        let rows = matrix_rows(3);
        let r = rules(
            "[[bound]]\nname='fixed forkexit ipis per loop'\nvariant='fixed'\nworkload='forkexit'\ncpus=4\nfigure='ipis_per_op'\nmax=0.5\n",
        );
        let report = evaluate(&r, &rows, None);
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
        let report = evaluate(&r, &bad, None);
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
             [[bound]]\nname='no such figure'\nvariant='fixed'\nworkload='forkexit'\ncpus=2\nfigure='coherence.nope'\nmax=0\n",
        );
        let report = evaluate(&r, &rows, None);
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
        let report = evaluate(&r, &rows, None);
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
        let text = "[[bound]]\nname='caught'\nvariant='lost-shootdown'\nfigure='coherence.stale_reads'\nmin=1\n";
        let strict = evaluate(&rules(text), &rows, None);
        assert_eq!(strict.lines[0].verdict, Verdict::Fail);
        assert!(
            strict.lines[0].note.contains("runs: 1 failed"),
            "{}",
            strict.lines[0].note
        );
        let lenient = evaluate(&rules(&format!("{text}include_failed=true\n")), &rows, None);
        assert_eq!(lenient.lines[0].verdict, Verdict::Pass);
    }

    #[test]
    fn ratio_rules_pair_variants_and_skip_timing_off_icount() {
        let rows = matrix_rows(3);
        let r = rules(
            "[[ratio]]\nname='bug costs IPIs'\nnumerator='openbsd-2010'\ndenominator='fixed'\nworkload='forkexit'\nfigure='ipis_per_op'\nmin=5\n\
             [[ratio]]\nname='fixed is not slower'\nnumerator='fixed'\ndenominator='openbsd-2010'\nworkload='forkexit'\ncpus=4\nfigure='ops_per_s'\nmin=0.9\n\
             [[ratio]]\nname='scoreboard'\nnumerator='scoreboard'\ndenominator='fixed'\nfigure='ops_per_s'\nmin=0.8\n",
        );
        let report = evaluate(&r, &rows, None);
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

        // Under tcg-icount the timing ratio is compared.
        let icount: Vec<ResultRow> = rows
            .iter()
            .map(|r| ResultRow {
                accel: REPEATABLE_ACCEL.into(),
                ..r.clone()
            })
            .collect();
        let report = evaluate(&r, &icount, None);
        assert_eq!(report.lines[2].verdict, Verdict::Pass, "{}", report.table());
    }

    /// Scales `figure`'s inputs in the TEST FIXTURE rows: multiplies the
    /// shootpage IPI counts by `ipi_factor` in the selected rows.
    fn scale_ipis(rows: &[ResultRow], variant: &str, ipi_factor: f64) -> Vec<ResultRow> {
        rows.iter()
            .map(|r| {
                let mut r = r.clone();
                if r.variant == variant && r.metric.starts_with("ipi.") {
                    r.value *= ipi_factor;
                }
                r
            })
            .collect()
    }

    #[test]
    fn baseline_counts_only_changes_beyond_noise_and_tolerance() {
        let base = matrix_rows(3);
        let r = rules(
            "[[baseline]]\nname='ipis vs baseline'\nfigure='ipis_per_op'\ntolerance=0.1\nmethod='range'\n",
        );
        // Same data: all pass.
        let report = evaluate(&r, &base, Some(&base));
        assert!(report.passed(), "{}", report.table());
        assert_eq!(report.lines.len(), 8);
        // fixed sends 3x the IPIs: its groups regress (the fixture's reps
        // have identical IPI counts, so the ranges are disjoint).
        let worse = scale_ipis(&base, "fixed", 3.0);
        let report = evaluate(&r, &worse, Some(&base));
        let fails: Vec<_> = report.failures().collect();
        assert_eq!(fails.len(), 4);
        assert!(fails.iter().all(|f| f.selection.starts_with("fixed/")));
        assert!(fails[0].note.starts_with("regression: ranges"));
        // 5 % more is within the 10 % tolerance.
        let report = evaluate(&r, &scale_ipis(&base, "fixed", 1.05), Some(&base));
        assert!(report.passed(), "{}", report.table());
        // An improvement is never a regression.
        let report = evaluate(&r, &scale_ipis(&base, "fixed", 0.2), Some(&base));
        assert!(report.passed());
        // A baseline group missing from the results fails.
        let partial: Vec<ResultRow> = base.iter().filter(|r| r.cpus == 2).cloned().collect();
        let report = evaluate(&r, &partial, Some(&base));
        assert_eq!(report.failures().count(), 4);
        assert!(report
            .failures()
            .all(|f| f.note.contains("not in the results")));
        // No baseline at all: skipped.
        let report = evaluate(&r, &base, None);
        assert_eq!(report.lines[0].verdict, Verdict::Skip);
    }

    #[test]
    fn overlapping_ranges_are_noise() {
        // TEST FIXTURE: loop rates whose reps overlap although the median
        // moved 30 %: not a regression under the range method.
        let mk = |rates: &[f64]| -> Vec<ResultRow> {
            rates
                .iter()
                .enumerate()
                .flat_map(|(i, &rate)| {
                    let mut c = cell("fixed", "forkexit", 2, i as u32 + 1);
                    c.accel = REPEATABLE_ACCEL.into();
                    run(c, 1000.0, 1000.0 * 1000.0 / rate, 1.0).rows()
                })
                .collect()
        };
        let base = mk(&[1000.0, 1010.0, 700.0]);
        let new = mk(&[690.0, 705.0, 1005.0]);
        let range = rules("[[baseline]]\nname='rate'\nfigure='ops_per_s'\ntolerance=0.05\n");
        let report = evaluate(&range, &new, Some(&base));
        assert!(report.passed(), "{}", report.table());
        assert!(report.lines[0].note.starts_with("within noise"));
        // Clearly slower on every rep: regression under both methods.
        let slow = mk(&[600.0, 610.0, 605.0]);
        assert!(!evaluate(&range, &slow, Some(&base)).passed());
        let boot = rules(
            "[[baseline]]\nname='rate'\nfigure='ops_per_s'\ntolerance=0.05\nmethod='bootstrap'\n",
        );
        let a = evaluate(&boot, &slow, Some(&base));
        let b = evaluate(&boot, &slow, Some(&base));
        assert_eq!(a, b, "bootstrap verdicts are deterministic");
        assert!(!a.passed(), "{}", a.table());
        assert!(evaluate(&boot, &base, Some(&base)).passed());
    }

    /// The shipped rules on a small TEST FIXTURE matrix (openbsd-2010 and
    /// fixed only): variants and workloads that are absent are reported by
    /// name, optional ones are skipped, and nothing passes silently.
    #[test]
    fn shipped_rules_report_missing_data_by_name() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../variants/gates.toml");
        let rules = Rules::load(&path).unwrap();
        let report = evaluate(&rules, &matrix_rows(2), None);
        println!("{}", report.table());
        let find = |rule: &str| {
            report
                .lines
                .iter()
                .find(|l| l.rule.starts_with(rule))
                .unwrap()
        };
        assert_eq!(find("openbsd-2010 sends far more").verdict, Verdict::Pass);
        assert_eq!(find("fixed: forkexit sends few").verdict, Verdict::Pass);
        let coherence = find("no stale TLB reads");
        assert_eq!(coherence.verdict, Verdict::Fail);
        assert!(
            coherence.note.contains("no runs match")
                && coherence.note.contains("workload=coherence")
        );
        assert_eq!(find("uninit-bitmap alone").verdict, Verdict::Skip);
        assert_eq!(find("operation rate vs baseline").verdict, Verdict::Skip);
        assert!(!report.passed());
    }

    #[test]
    fn step_summary_is_appended_when_set() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("summary.md");
        std::fs::write(&path, "before\n").unwrap();
        let report = evaluate(
            &rules("[[bound]]\nname='x'\nfigure='ipis_per_op'\nmax=100\n"),
            &matrix_rows(1),
            None,
        );
        report.append_markdown_to(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("before\n### pmaplab gate: PASSED"),
            "{text}"
        );
    }
}
