//! The gate's rules file (`variants/gates.toml`) and its selections.
//!
//! ```toml
//! [[bound]]                     # a figure of each selected group within bounds
//! name = "fixed: forkexit IPIs per loop are few"
//! variant = "fixed"             # selection: variant, workload, cpus, params,
//! workload = "forkexit"         #   accel, machine (string/number or a list;
//! cpus = [2, 4]                 #   omitted = any), exclude_variant (list)
//! figure = "ipis_per_op"        # a derived figure or a metric name
//! stat = "median"               # over reps: median (default), min or max
//! max = 0.5                     # and/or min
//! required = true               # default; false: no data is a skip, not a fail
//! any_accel = false             # default; true: gate a timing figure under any accel
//! include_failed = false        # default; true: also use runs whose outcome is
//!                               #   `failed` (complete report, declared failure)
//!
//! [[ratio]]                     # stat(numerator) / stat(denominator), paired by
//! name = "..."                  # (workload, params, cpus, accel, machine)
//! numerator = "openbsd-2010"
//! denominator = "fixed"
//! figure = "ipis_per_op"
//! min = 5.0
//!
//! [[baseline]]                  # each selected group now vs the same group in
//! name = "..."                  #   the baseline (--baseline)
//! figure = "ipis_per_op"
//! better = "lower"              # default: the figure's own direction
//! tolerance = 0.10              # relative move of the median that counts
//! any_accel = false             # true: compare a scheduling-dependent count
//!                               #   off icount too
//! ```
//!
//! `[[bound]]` and `[[ratio]]` are same-run rules (they read only the
//! results); `[[baseline]]` rules compare with the baseline. How each
//! figure class is compared under each accelerator (exact comparison and
//! a determinism check under `tcg-icount` and for exact counts, Welch +
//! Holm for timing elsewhere, at least 5 repetitions): the `gate` module.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::results::derive::{figure_info, Better};
use crate::results::summary::GroupKey;

/// A value or a list of values in a selection.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T: PartialEq> OneOrMany<T> {
    pub fn contains(&self, v: &T) -> bool {
        match self {
            OneOrMany::One(x) => x == v,
            OneOrMany::Many(xs) => xs.contains(v),
        }
    }
}

/// Which groups a rule looks at. Every field left out matches anything.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct Selection {
    pub variant: Option<OneOrMany<String>>,
    #[serde(default)]
    pub exclude_variant: Vec<String>,
    pub workload: Option<OneOrMany<String>>,
    pub params: Option<OneOrMany<String>>,
    pub cpus: Option<OneOrMany<u32>>,
    pub accel: Option<OneOrMany<String>>,
    pub machine: Option<OneOrMany<String>>,
}

impl Selection {
    /// Whether `key` is selected, ignoring the variant when `any_variant`
    /// (ratio rules name their variants separately).
    pub fn matches(&self, key: &GroupKey, any_variant: bool) -> bool {
        let ok = |sel: &Option<OneOrMany<String>>, v: &String| {
            sel.as_ref().is_none_or(|s| s.contains(v))
        };
        let variant_ok =
            ok(&self.variant, &key.variant) && !self.exclude_variant.contains(&key.variant);
        (any_variant || variant_ok)
            && ok(&self.workload, &key.workload)
            && ok(&self.params, &key.params)
            && self.cpus.as_ref().is_none_or(|s| s.contains(&key.cpus))
            && ok(&self.accel, &key.accel)
            && ok(&self.machine, &key.machine)
    }

    /// The selection as `key=value` text, for messages ("any" when empty).
    pub fn describe(&self) -> String {
        fn list<T: std::fmt::Display>(v: &OneOrMany<T>) -> String {
            match v {
                OneOrMany::One(x) => x.to_string(),
                OneOrMany::Many(xs) => xs
                    .iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join("|"),
            }
        }
        let mut parts = Vec::new();
        let mut add = |name: &str, v: Option<String>| {
            if let Some(v) = v {
                parts.push(format!("{name}={v}"));
            }
        };
        add("variant", self.variant.as_ref().map(list));
        if !self.exclude_variant.is_empty() {
            add("variant!", Some(self.exclude_variant.join("|")));
        }
        add("workload", self.workload.as_ref().map(list));
        add("params", self.params.as_ref().map(list));
        add("cpus", self.cpus.as_ref().map(list));
        add("accel", self.accel.as_ref().map(list));
        add("machine", self.machine.as_ref().map(list));
        if parts.is_empty() {
            "any".into()
        } else {
            parts.join(" ")
        }
    }
}

/// The statistic over repetitions a rule compares.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stat {
    #[default]
    Median,
    Min,
    Max,
}

impl Stat {
    pub fn of(self, values: &[f64]) -> Option<f64> {
        match self {
            Stat::Median => crate::results::stats::median(values),
            Stat::Min => crate::results::stats::range(values).map(|r| r.0),
            Stat::Max => crate::results::stats::range(values).map(|r| r.1),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Stat::Median => "median",
            Stat::Min => "min",
            Stat::Max => "max",
        }
    }
}

fn yes() -> bool {
    true
}

/// A bound on one figure of each selected group.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct BoundRule {
    pub name: String,
    pub figure: String,
    #[serde(flatten)]
    pub select: Selection,
    #[serde(default)]
    pub stat: Stat,
    pub min: Option<f64>,
    pub max: Option<f64>,
    #[serde(default = "yes")]
    pub required: bool,
    #[serde(default)]
    pub any_accel: bool,
    #[serde(default)]
    pub include_failed: bool,
}

/// A bound on the ratio of one figure between two variants.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct RatioRule {
    pub name: String,
    pub figure: String,
    pub numerator: String,
    pub denominator: String,
    #[serde(flatten)]
    pub select: Selection,
    #[serde(default)]
    pub stat: Stat,
    pub min: Option<f64>,
    pub max: Option<f64>,
    #[serde(default = "yes")]
    pub required: bool,
    #[serde(default)]
    pub any_accel: bool,
    #[serde(default)]
    pub include_failed: bool,
}

/// Which direction is better, as written in the rules file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BetterSpec {
    Lower,
    Higher,
}

/// A comparison of one figure with a baseline result set.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct BaselineRule {
    pub name: String,
    pub figure: String,
    #[serde(flatten)]
    pub select: Selection,
    pub better: Option<BetterSpec>,
    /// Relative move of the median, in the bad direction, that counts as
    /// a regression (0.1 = 10 %).
    pub tolerance: f64,
    #[serde(default = "yes")]
    pub required: bool,
    #[serde(default)]
    pub any_accel: bool,
}

impl BaselineRule {
    /// The better direction: the rule's, else the figure's own.
    pub fn better(&self) -> Better {
        match self.better {
            Some(BetterSpec::Lower) => Better::Lower,
            Some(BetterSpec::Higher) => Better::Higher,
            None => figure_info(&self.figure, None).better,
        }
    }
}

/// A parsed rules file.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    #[serde(default)]
    pub bound: Vec<BoundRule>,
    #[serde(default)]
    pub ratio: Vec<RatioRule>,
    #[serde(default)]
    pub baseline: Vec<BaselineRule>,
}

const SELECT_KEYS: [&str; 7] = [
    "variant",
    "exclude_variant",
    "workload",
    "params",
    "cpus",
    "accel",
    "machine",
];

/// The keys each rule kind has besides the selection keys.
const BOUND_KEYS: [&str; 8] = [
    "name",
    "figure",
    "stat",
    "min",
    "max",
    "required",
    "any_accel",
    "include_failed",
];
const RATIO_KEYS: [&str; 10] = [
    "name",
    "figure",
    "numerator",
    "denominator",
    "stat",
    "min",
    "max",
    "required",
    "any_accel",
    "include_failed",
];
const BASELINE_KEYS: [&str; 6] = [
    "name",
    "figure",
    "better",
    "tolerance",
    "required",
    "any_accel",
];

impl Rules {
    /// Reads and checks a rules file; errors name the file and the rule.
    pub fn load(path: &Path) -> Result<Rules> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading gate rules {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in gate rules {}", path.display()))
    }

    /// Parses and checks rules TOML text.
    pub fn parse(text: &str) -> Result<Rules> {
        // Serde's flatten cannot deny unknown fields, so typos ("varient")
        // are caught here, on the raw table, before they silently widen a
        // selection.
        let raw: toml::Table = toml::from_str(text)?;
        for (kind, own) in [
            ("bound", &BOUND_KEYS[..]),
            ("ratio", &RATIO_KEYS[..]),
            ("baseline", &BASELINE_KEYS[..]),
        ] {
            let Some(list) = raw.get(kind).and_then(|v| v.as_array()) else {
                continue;
            };
            for (i, rule) in list.iter().enumerate() {
                let Some(table) = rule.as_table() else {
                    continue;
                };
                for key in table.keys() {
                    if !own.contains(&key.as_str()) && !SELECT_KEYS.contains(&key.as_str()) {
                        let name = table.get("name").and_then(|n| n.as_str()).unwrap_or("?");
                        bail!("[[{kind}]] #{} ('{name}'): unknown key '{key}'", i + 1);
                    }
                }
            }
        }
        let rules: Rules = toml::from_str(text)?;
        rules.check()?;
        Ok(rules)
    }

    fn check(&self) -> Result<()> {
        for r in &self.bound {
            if r.min.is_none() && r.max.is_none() {
                bail!("[[bound]] '{}' has neither min nor max", r.name);
            }
        }
        for r in &self.ratio {
            if r.min.is_none() && r.max.is_none() {
                bail!("[[ratio]] '{}' has neither min nor max", r.name);
            }
            if r.select.variant.is_some() || !r.select.exclude_variant.is_empty() {
                bail!(
                    "[[ratio]] '{}': name the variants with numerator/denominator, not variant",
                    r.name
                );
            }
        }
        for r in &self.baseline {
            if r.better() == Better::Neither {
                bail!(
                    "[[baseline]] '{}': figure '{}' has no better direction; add better = \"lower\" or \"higher\"",
                    r.name,
                    r.figure
                );
            }
            if r.tolerance.is_nan() || r.tolerance < 0.0 {
                bail!("[[baseline]] '{}': tolerance must be >= 0", r.name);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_rules_parse() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../variants/gates.toml");
        let rules = Rules::load(&path).unwrap();
        assert!(!rules.bound.is_empty() && !rules.ratio.is_empty() && !rules.baseline.is_empty());
    }

    #[test]
    fn typos_and_empty_bounds_are_refused() {
        let err = |t: &str| format!("{:#}", Rules::parse(t).unwrap_err());
        assert!(
            err("[[bound]]\nname='x'\nfigure='f'\nvarient='fixed'\nmax=1\n")
                .contains("unknown key 'varient'")
        );
        assert!(err("[[bound]]\nname='x'\nfigure='f'\n").contains("neither min nor max"));
        assert!(
            err("[[baseline]]\nname='x'\nfigure='workload.ops'\ntolerance=0.1\n")
                .contains("better")
        );
        assert!(err("[[bogus]]\n").contains("bogus"));
    }

    #[test]
    fn selections_match_lists_and_exclusions() {
        let rules = Rules::parse(
            "[[bound]]\nname='x'\nfigure='f'\nmax=1\ncpus=[2,4]\nexclude_variant=['lost-shootdown']\nworkload='coherence'\n",
        )
        .unwrap();
        let sel = &rules.bound[0].select;
        let key = |variant: &str, cpus| GroupKey {
            variant: variant.into(),
            workload: "coherence".into(),
            params: String::new(),
            cpus,
            accel: "tcg".into(),
            machine: "microvm".into(),
        };
        assert!(sel.matches(&key("fixed", 4), false));
        assert!(!sel.matches(&key("fixed", 1), false));
        assert!(!sel.matches(&key("lost-shootdown", 4), false));
        assert_eq!(
            sel.describe(),
            "variant!=lost-shootdown workload=coherence cpus=2|4"
        );
    }
}
