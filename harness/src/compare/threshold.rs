//! How far a figure must move before `compare` reports it.
//!
//! Under `tcg-icount` every difference is exact, so "significant" alone
//! would report a busy-target rate that moved by 0.006 % as loudly as a
//! fork rate that fell 3 %. A reviewer needs the moves that matter: a
//! change counts when it is significant (exact or Welch + Holm, [`super::diff`])
//! and its size reaches the figure's threshold, which is, in order:
//!
//! 1. `--threshold PCT`, one threshold for every figure;
//! 2. the gate's own tolerance for that figure and cell: the smallest
//!    `tolerance` of the `[[baseline]]` rules in `variants/gates.toml`
//!    that select the cell and name the figure (the move at which
//!    `harness gate` would start to fail), taken in both directions;
//! 3. [`DEFAULT_PCT`] for a figure no baseline rule covers.
//!
//! Smaller significant changes are listed as "changed, below threshold".

use crate::gate::rules::{BaselineRule, Rules};
use crate::results::summary::{fmt_num, GroupKey};

/// The threshold of a figure no gate rule covers, in percent.
pub const DEFAULT_PCT: f64 = 1.0;

/// Where a figure's threshold came from.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// `--threshold`.
    Flag,
    /// The tolerance of the gate's `[[baseline]]` rule of this name.
    GateRule(String),
    /// [`DEFAULT_PCT`].
    Default,
}

/// One figure's threshold.
#[derive(Clone, Debug, PartialEq)]
pub struct Threshold {
    /// In percent of side A's value.
    pub pct: f64,
    pub source: Source,
}

impl Threshold {
    /// `5%`.
    pub fn text(&self) -> String {
        format!("{}%", fmt_num(self.pct))
    }

    /// `threshold 5% (gate rule 'operation rate vs baseline')`.
    pub fn describe(&self) -> String {
        let from = match &self.source {
            Source::Flag => "--threshold".to_string(),
            Source::GateRule(name) => format!("gate rule '{name}'"),
            Source::Default => "default".to_string(),
        };
        format!("threshold {} ({from})", self.text())
    }

    /// Whether a change of `change_pct` percent reaches the threshold.
    pub fn reached_by(&self, change_pct: f64) -> bool {
        change_pct.abs() >= self.pct
    }
}

/// The thresholds of every figure of a comparison.
#[derive(Clone, Debug, Default)]
pub struct Thresholds {
    /// `--threshold`, when given.
    flag: Option<f64>,
    baseline_rules: Vec<BaselineRule>,
}

impl Thresholds {
    /// Per figure from the gate's `[[baseline]]` rules, else [`DEFAULT_PCT`].
    pub fn from_gate(rules: &Rules) -> Self {
        Thresholds {
            flag: None,
            baseline_rules: rules.baseline.clone(),
        }
    }

    /// `pct` for every figure (`--threshold`).
    pub fn uniform(pct: f64) -> Self {
        Thresholds {
            flag: Some(pct),
            baseline_rules: Vec::new(),
        }
    }

    /// The threshold of `figure` in the cell `key`.
    pub fn of(&self, key: &GroupKey, figure: &str) -> Threshold {
        if let Some(pct) = self.flag {
            return Threshold {
                pct,
                source: Source::Flag,
            };
        }
        self.baseline_rules
            .iter()
            .filter(|r| r.figure == figure && r.select.matches(key, false))
            .min_by(|x, y| x.tolerance.total_cmp(&y.tolerance))
            .map_or(
                Threshold {
                    pct: DEFAULT_PCT,
                    source: Source::Default,
                },
                |r| Threshold {
                    pct: r.tolerance * 100.0,
                    source: Source::GateRule(r.name.clone()),
                },
            )
    }

    /// One sentence for the report's head: where the thresholds come from.
    pub fn summary(&self) -> String {
        match self.flag {
            Some(pct) => format!("threshold {}% for every figure (--threshold)", fmt_num(pct)),
            None if self.baseline_rules.is_empty() => format!(
                "threshold {}% for every figure (default; no gate [[baseline]] rules read)",
                fmt_num(DEFAULT_PCT)
            ),
            None => format!(
                "threshold per figure: the tolerance of the gate's [[baseline]] rule for the \
                 figure and cell (gates.toml), else {}%",
                fmt_num(DEFAULT_PCT)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(variant: &str, cpus: u32) -> GroupKey {
        GroupKey {
            variant: variant.into(),
            workload: "forkexit".into(),
            params: String::new(),
            cpus,
            accel: "tcg-icount".into(),
            machine: "microvm".into(),
        }
    }

    const RULES: &str = r#"
[[baseline]]
name = "rate"
figure = "ops_per_s"
tolerance = 0.05

[[baseline]]
name = "fixed's rate on 4 CPUs"
figure = "ops_per_s"
variant = "fixed"
cpus = 4
tolerance = 0.02
"#;

    #[test]
    fn the_gate_s_smallest_tolerance_for_the_cell_else_the_default() {
        let t = Thresholds::from_gate(&Rules::parse(RULES).unwrap());
        let rate2 = t.of(&key("fixed", 2), "ops_per_s");
        assert_eq!(rate2.source, Source::GateRule("rate".into()));
        assert!((rate2.pct - 5.0).abs() < 1e-9);
        let rate4 = t.of(&key("fixed", 4), "ops_per_s");
        assert!((rate4.pct - 2.0).abs() < 1e-9, "{rate4:?}");
        assert!((t.of(&key("pcid", 4), "ops_per_s").pct - 5.0).abs() < 1e-9);
        let other = t.of(&key("fixed", 2), "ipis_per_op.cause.exit");
        assert_eq!(other.source, Source::Default);
        assert_eq!(other.pct, DEFAULT_PCT);
        assert_eq!(rate2.describe(), "threshold 5% (gate rule 'rate')");
    }

    #[test]
    fn the_flag_overrides_every_figure() {
        let t = Thresholds::uniform(0.5);
        assert_eq!(t.of(&key("fixed", 2), "ops_per_s").source, Source::Flag);
        assert!(t.of(&key("fixed", 2), "ops_per_s").reached_by(-0.5));
        assert!(!t.of(&key("fixed", 2), "ops_per_s").reached_by(0.49));
    }

    #[test]
    fn the_committed_rules_give_the_rate_a_threshold() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../variants/gates.toml");
        let t = Thresholds::from_gate(&Rules::load(&path).unwrap());
        let rate = t.of(&key("fixed", 2), "ops_per_s");
        assert!(matches!(rate.source, Source::GateRule(_)), "{rate:?}");
    }
}
