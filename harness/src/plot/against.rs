//! The index page's first tables: each variant against [`REFERENCE`] in
//! the same cell, and whether the difference may be called better or
//! worse.
//!
//! A ratio is called better or worse only where the gate's statistics
//! would call the difference significant (harness/src/gate/mod.rs, whose
//! functions this reuses rather than copies):
//! - exactly, when the figure repeats bit for bit (every figure under
//!   `tcg-icount` and `tcg-model`, and counts the workload fixes under any
//!   accelerator) and the repetitions on both sides did: then any move
//!   beyond [`SAME_WITHIN`] is real;
//! - elsewhere by a one-sided Welch test on the logarithms of a move
//!   beyond [`SAME_WITHIN`] each way ([`gate::regression_p`]), the
//!   p-values of every such test on the page corrected together with
//!   Holm's method at [`gate::ALPHA`]; and only with at least
//!   [`gate::MIN_REPS_FOR_STATS`] repetitions a side, as the gate asks.
//!
//! Everything else is shown plain, with the range of its per-repetition
//! ratios: two repetitions of a rate under plain TCG on a shared host
//! cannot tell a 4 % difference from the host's scheduling.

use super::roles::display_order;
use crate::accel;
use crate::gate;
use crate::results::derive::{figure_info, Better, FigureClass};
use crate::results::stats::{holm, range};
use crate::results::summary::{fmt_num, GroupKey, GroupSummary};

/// The variant every other is set against.
pub const REFERENCE: &str = "fixed";

/// A ratio closer to 1 than this is the same, however exact: the move a
/// difference must exceed to be called better or worse.
pub const SAME_WITHIN: f64 = 0.02;

/// How a ratio against the reference reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    /// Significantly better (by the module's rules).
    Better,
    /// Significantly worse.
    Worse,
    /// Within [`SAME_WITHIN`], exactly.
    Same,
    /// Not shown to differ: too few repetitions, or not significant.
    Unsettled,
    /// No ratio.
    Unknown,
}

impl Tone {
    /// The CSS class of the cell: colour only for a significant move.
    pub fn class(self) -> &'static str {
        match self {
            Tone::Better => "better",
            Tone::Worse => "worse",
            Tone::Same => "same",
            Tone::Unsettled | Tone::Unknown => "",
        }
    }

    /// The word after a significant ratio.
    pub fn word(self) -> Option<&'static str> {
        match self {
            Tone::Better => Some("better"),
            Tone::Worse => Some("worse"),
            _ => None,
        }
    }
}

/// One figure of a variant against the reference.
#[derive(Clone, Debug, PartialEq)]
pub struct Compared {
    /// `0.96x`, `both 0`, `inf`, `-`.
    pub ratio: String,
    /// `0.91-1.01x`: the lowest and highest ratio of a repetition of the
    /// variant to one of the reference; empty when they are one value.
    pub ratio_range: String,
    pub tone: Tone,
    /// Why the tone: the regime and, for a test, its p-value.
    pub evidence: String,
}

impl Compared {
    /// The ratio and, when it is not settled, the range of its
    /// per-repetition ratios.
    pub fn text(&self) -> String {
        match (self.tone.word(), self.ratio_range.is_empty()) {
            (Some(word), _) => format!("{} ({word})", self.ratio),
            (None, false) => format!("{} ({})", self.ratio, self.ratio_range),
            (None, true) => self.ratio.clone(),
        }
    }
}

/// One table: a workload under one accelerator and machine.
pub struct Overview {
    /// `forkexit [touch=on, loops=300]`.
    pub workload: String,
    pub accel: String,
    pub machine: String,
    /// (variant, cpus, IPIs/op against the reference, rate against it).
    pub rows: Vec<(String, u32, Compared, Compared)>,
}

/// What an accelerator's figures can speak for, said above its tables.
pub fn accel_note(accel: &str) -> &'static str {
    match accel {
        "tcg" => {
            "plain TCG: counts the workload fixes are exact; IPI counts on 2+ CPUs depend on \
             which vCPU runs what, and rates on how the host schedules QEMU's threads: noisy \
             on a shared host, no hardware speed"
        }
        "tcg-icount" => {
            "tcg-icount: every figure exact and repeatable; rates are an instruction-count cost \
             model with the vCPUs run one at a time, not a machine's speed"
        }
        "tcg-model" => {
            "tcg-model: tcg-icount's exact figures; the memory-system costs beside them are \
             modeled, not measured"
        }
        "kvm" => "kvm: real hardware, the reference for rates; counts depend on scheduling as on a real machine",
        _ => "an accelerator the lab does not describe",
    }
}

/// The figures a row compares, and whether higher is better.
const FIGURES: [&str; 2] = ["ipis_per_op", "ops_per_s"];

/// A figure compared before the page-wide Holm correction.
struct Pending {
    compared: Compared,
    /// One-sided p-values of "better by more than SAME_WITHIN" and
    /// "worse by more than it", when tested.
    p: Option<(f64, f64)>,
    /// Which way a significant move goes: +1 the ratio is above 1.
    above: bool,
    better: Better,
}

/// `v / r` shown with two decimals (four significant digits past 100).
fn fmt_ratio(ratio: f64) -> String {
    if ratio.is_finite() && ratio.abs() < 100.0 {
        format!("{ratio:.2}x")
    } else {
        format!("{}x", fmt_num(ratio))
    }
}

/// The tone of a move that is real (exact or significant).
fn settled(above: bool, better: Better) -> Tone {
    match (above, better) {
        (true, Better::Higher) | (false, Better::Lower) => Tone::Better,
        (false, Better::Higher) | (true, Better::Lower) => Tone::Worse,
        (_, Better::Neither) => Tone::Unsettled,
    }
}

/// `figure` of `g` against the reference group `r`.
fn compare(g: &GroupSummary, r: &GroupSummary, figure: &str) -> Pending {
    let info = figure_info(figure, g.unit_of(figure));
    let (v, rv) = (g.values(figure), r.values(figure));
    let (vm, rm) = (
        crate::results::stats::median(&v),
        crate::results::stats::median(&rv),
    );
    let none = |ratio: &str| Pending {
        compared: Compared {
            ratio: ratio.into(),
            ratio_range: String::new(),
            tone: Tone::Unknown,
            evidence: String::new(),
        },
        p: None,
        above: false,
        better: info.better,
    };
    let (Some(vm), Some(rm)) = (vm, rm) else {
        return none("-");
    };
    if vm == 0.0 && rm == 0.0 {
        // Nothing to set against (a workload without shootdowns).
        return none("both 0");
    }
    let ratio = if rm == 0.0 { f64::INFINITY } else { vm / rm };
    let ratio_range = match (range(&v), range(&rv)) {
        // One run a side (the oracles' workloads run once): no spread to
        // show, and nothing to claim.
        _ if v.len() == 1 && rv.len() == 1 => "1 run each".to_string(),
        (Some((vlo, vhi)), Some((rlo, rhi))) if rlo > 0.0 => {
            let (lo, hi) = (vlo / rhi, vhi / rlo);
            if fmt_ratio(lo) == fmt_ratio(hi) {
                String::new()
            } else {
                format!("{}-{}", fmt_ratio(lo).trim_end_matches('x'), fmt_ratio(hi))
            }
        }
        _ => String::new(),
    };
    let above = ratio > 1.0;
    let mut pending = Pending {
        compared: Compared {
            ratio: fmt_ratio(ratio),
            ratio_range,
            tone: Tone::Unsettled,
            evidence: String::new(),
        },
        p: None,
        above,
        better: info.better,
    };
    let outside = (ratio - 1.0).abs() > SAME_WITHIN;
    let class = info.class.on_cpus(g.key.cpus);
    let repeatable = accel::is_repeatable(&g.key.accel) && accel::is_repeatable(&r.key.accel);
    let c = &mut pending.compared;
    if repeatable || class == FigureClass::ExactCount {
        let regime = if repeatable {
            format!(
                "exact: under {}, repetitions repeat bit for bit",
                g.key.accel
            )
        } else {
            "exact: a count the workload fixes".to_string()
        };
        if let Some(note) = gate::nondeterminism(&v).or_else(|| gate::nondeterminism(&rv)) {
            c.evidence = format!("not compared: {note}");
        } else {
            c.tone = if outside {
                settled(above, info.better)
            } else {
                Tone::Same
            };
            c.ratio_range.clear();
            c.evidence = regime;
        }
        return pending;
    }
    if v.len() < gate::MIN_REPS_FOR_STATS || rv.len() < gate::MIN_REPS_FOR_STATS {
        c.evidence = format!(
            "{} and {} repetitions: too few for a significance claim under {} (the gate asks >= {} a side)",
            v.len(),
            rv.len(),
            g.key.accel,
            gate::MIN_REPS_FOR_STATS
        );
        return pending;
    }
    let flipped = match info.better {
        Better::Higher => Better::Lower,
        _ => Better::Higher,
    };
    // regression_p(old, new, ..) is the p-value of "new is worse than old
    // by more than the tolerance"; with the sense flipped, of "better".
    let worse = gate::regression_p(&rv, &v, SAME_WITHIN, info.better);
    let better = gate::regression_p(&rv, &v, SAME_WITHIN, flipped);
    if let (Some(better), Some(worse)) = (better, worse) {
        pending.p = Some((better, worse));
    } else {
        c.evidence = "no test possible".into();
    }
    pending
}

/// Each variant against [`REFERENCE`] in the same workload, params, CPU
/// count, accelerator and machine, one table per workload and
/// accelerator; workloads without the reference, and rows with neither
/// ratio defined, are left out.
pub fn overview(groups: &[GroupSummary]) -> Vec<Overview> {
    let reference = |k: &GroupKey| {
        groups.iter().find(|g| {
            g.key
                == GroupKey {
                    variant: REFERENCE.into(),
                    ..k.clone()
                }
        })
    };
    let mut blocks: Vec<(Overview, Vec<[Pending; 2]>)> = Vec::new();
    for g in groups.iter().filter(|g| g.key.variant != REFERENCE) {
        let Some(r) = reference(&g.key) else { continue };
        let [ipi, rate] = FIGURES.map(|f| compare(g, r, f));
        if ipi.compared.tone == Tone::Unknown && rate.compared.tone == Tone::Unknown {
            continue;
        }
        let workload = workload_name(&g.key);
        let at = blocks.iter().position(|(b, _)| {
            (&b.workload, &b.accel, &b.machine) == (&workload, &g.key.accel, &g.key.machine)
        });
        let at = at.unwrap_or_else(|| {
            blocks.push((
                Overview {
                    workload,
                    accel: g.key.accel.clone(),
                    machine: g.key.machine.clone(),
                    rows: Vec::new(),
                },
                Vec::new(),
            ));
            blocks.len() - 1
        });
        let (block, pending) = &mut blocks[at];
        block.rows.push((
            g.key.variant.clone(),
            g.key.cpus,
            ipi.compared.clone(),
            rate.compared.clone(),
        ));
        pending.push([ipi, rate]);
    }
    // Holm over every test on the page: each tested figure gave two
    // one-sided p-values, and all of them are one family.
    let all_p: Vec<f64> = blocks
        .iter()
        .flat_map(|(_, p)| p.iter().flatten())
        .filter_map(|p| p.p)
        .flat_map(|(b, w)| [b, w])
        .collect();
    let reject = holm(&all_p, gate::ALPHA);
    let mut next = 0;
    for (block, pending) in &mut blocks {
        for (row, figures) in block.rows.iter_mut().zip(pending.iter()) {
            for (cell, p) in [&mut row.2, &mut row.3].into_iter().zip(figures) {
                let Some((pb, pw)) = p.p else { continue };
                let (rb, rw) = (reject[next], reject[next + 1]);
                next += 2;
                let p_of_move = if p.above == (p.better == Better::Higher) {
                    pb
                } else {
                    pw
                };
                cell.evidence = format!(
                    "Welch on logs of a move beyond {}% (p = {:.3}), Holm over {} tests at alpha {}: {}",
                    fmt_num(SAME_WITHIN * 100.0),
                    p_of_move,
                    all_p.len(),
                    gate::ALPHA,
                    if rb || rw { "significant" } else { "not significant" }
                );
                if rb || rw {
                    cell.tone = settled(p.above, p.better);
                }
            }
        }
    }
    blocks
        .into_iter()
        .map(|(mut b, _)| {
            // The charts' order: by CPU count, then by role.
            b.rows
                .sort_by_key(|(variant, cpus, ..)| (*cpus, display_order(variant)));
            b
        })
        .collect()
}

/// `forkexit [touch=on]`.
pub fn workload_name(key: &GroupKey) -> String {
    if key.params.is_empty() {
        key.workload.clone()
    } else {
        format!("{} [{}]", key.workload, key.params.replace(';', ", "))
    }
}

/// What the tables say, above them.
pub const INTRO: &str = "Each variant against `fixed` (the OpenBSD fix) in the same cell: \
     the ratio of the medians, variant / fixed; IPIs per operation: below 1 is better; \
     operation rate: above 1 is better. A ratio is called better or worse (and coloured) \
     only where the gate's statistics call the move beyond 2 % significant: exactly, for a \
     figure that repeats bit for bit (tcg-icount, tcg-model, and counts the workload fixes), \
     else by a one-sided Welch test with Holm's correction over the page at alpha 0.05, \
     which needs at least 5 repetitions a side. Any other ratio is plain, with the range \
     of its per-repetition ratios in brackets.";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::model::fixtures::{cell, run};
    use crate::results::summary::summarize;

    /// TEST FIXTURE groups (made up): `fixed` and `lazy-tlb` on forkexit
    /// under `accel`, `reps` repetitions each, lazy-tlb's rate 1.07x and
    /// its IPIs 0.5x, each repetition jittered by `jitter` of the rate.
    fn groups(accel: &str, reps: u32, jitter: f64) -> Vec<GroupSummary> {
        let mut rows = Vec::new();
        for rep in 1..=reps {
            let wobble = 1.0 + jitter * if rep % 2 == 0 { 1.0 } else { -1.0 };
            for (variant, rate, ipis) in [("fixed", 1000.0, 100.0), ("lazy-tlb", 1070.0, 50.0)] {
                let mut c = cell(variant, "forkexit", 2, rep);
                c.accel = accel.into();
                let elapsed_ms = 1000.0 / (rate * wobble) * 1000.0;
                rows.extend(run(c, 1000.0, elapsed_ms, ipis).rows());
            }
        }
        summarize(&rows)
    }

    fn lazy_row(blocks: &[Overview]) -> (Compared, Compared) {
        let (_, _, ipi, rate) = blocks[0]
            .rows
            .iter()
            .find(|r| r.0 == "lazy-tlb")
            .unwrap()
            .clone();
        (ipi, rate)
    }

    #[test]
    fn two_noisy_repetitions_are_shown_plain_with_their_range() {
        let blocks = overview(&groups("tcg", 2, 0.03));
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].accel, "tcg");
        let (ipi, rate) = lazy_row(&blocks);
        assert_eq!(rate.tone, Tone::Unsettled, "{rate:?}");
        assert_eq!(rate.ratio, "1.07x");
        assert!(rate.ratio_range.contains('-'), "{rate:?}");
        assert!(rate.evidence.contains("too few"), "{rate:?}");
        // IPIs/op on 2 CPUs depend on scheduling under plain TCG: not
        // exact either.
        assert_eq!(ipi.tone, Tone::Unsettled, "{ipi:?}");
    }

    #[test]
    fn icount_figures_are_exact() {
        let blocks = overview(&groups("tcg-icount", 2, 0.0));
        let (ipi, rate) = lazy_row(&blocks);
        assert_eq!(ipi.tone, Tone::Better);
        assert_eq!(rate.tone, Tone::Better);
        assert!(rate.evidence.starts_with("exact"), "{rate:?}");
        // Repetitions that differ under icount are not compared.
        let blocks = overview(&groups("tcg-icount", 2, 0.03));
        let (_, rate) = lazy_row(&blocks);
        assert_eq!(rate.tone, Tone::Unsettled);
        assert!(rate.evidence.contains("non-determinism"), "{rate:?}");
    }

    #[test]
    fn enough_repetitions_are_tested_and_corrected() {
        // 1 % jitter around a 7 % move, six a side: significant.
        let blocks = overview(&groups("tcg", 6, 0.01));
        let (_, rate) = lazy_row(&blocks);
        assert_eq!(rate.tone, Tone::Better, "{rate:?}");
        assert!(rate.evidence.contains("Holm"), "{rate:?}");
        // 10 % jitter: not.
        let blocks = overview(&groups("tcg", 6, 0.10));
        let (_, rate) = lazy_row(&blocks);
        assert_eq!(rate.tone, Tone::Unsettled, "{rate:?}");
        assert!(rate.evidence.contains("not significant"), "{rate:?}");
    }
}
