//! Modeled rows: figures of the memory-system model (`tcg-model`,
//! model/README.md) beside the measured ones, one row per cost profile.
//!
//! A modeled figure is computed from a tcg-model run's `model.<profile>.*`
//! metrics (results::derive's `model.` figures) and is never a measurement:
//! its row's accel cell says `tcg-model (<profile>): modeled`
//! ([`super::Kind::Modeled`]), and its lab cell reads "—" when the run
//! carries no figures of that profile. The profiles are the cost files in
//! model/profiles/ (the ones the plugin loads); their clock (`ghz`) turns
//! cycles into ns, and which of their costs are labelled assumptions
//! (a source beginning `assumption:`) lets a note say where the model
//! cannot speak.
//!
//! Note text is written as templates with `{name}` holes that the rows'
//! figures fill ([`fill`]), so the prose reads as prose.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};

use super::format::{three_decimals, three_digits};
use super::rows::{Kind, Row};
use super::Measured;
use super::Reproduction;
use crate::results::derive::RunFigures;

/// One cost profile, as far as the table needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    /// The file stem, and the `<profile>` of `model.<profile>.*`.
    pub name: String,
    /// Nominal clock: ns = cycles / ghz.
    pub ghz: f64,
    /// cost name -> (cycles, labelled an assumption).
    pub costs: BTreeMap<String, (f64, bool)>,
}

impl Profile {
    /// Reads `ghz` and the `[costs.*]` of one profile file.
    pub fn load(path: &Path) -> Result<Profile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let doc: toml::Table =
            toml::from_str(&text).with_context(|| format!("{} is not TOML", path.display()))?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let ghz = doc
            .get("ghz")
            .and_then(|v| v.as_float().or_else(|| v.as_integer().map(|i| i as f64)))
            .with_context(|| format!("{} has no ghz", path.display()))?;
        let mut costs = BTreeMap::new();
        if let Some(table) = doc.get("costs").and_then(|c| c.as_table()) {
            for (cost, v) in table {
                let cycles = v.get("cycles").and_then(|c| c.as_integer()).unwrap_or(0) as f64;
                let assumed = v
                    .get("source")
                    .and_then(|s| s.as_str())
                    .is_some_and(|s| s.trim_start().starts_with("assumption"));
                costs.insert(cost.clone(), (cycles, assumed));
            }
        }
        Ok(Profile { name, ghz, costs })
    }

    /// The cycles of `cost` (0 if the profile lacks it).
    pub fn cycles(&self, cost: &str) -> f64 {
        self.costs.get(cost).map(|c| c.0).unwrap_or(0.0)
    }

    /// Whether the profile labels `cost` an assumption.
    pub fn assumed(&self, cost: &str) -> bool {
        self.costs.get(cost).is_some_and(|c| c.1)
    }

    pub fn ns(&self, cycles: f64) -> f64 {
        cycles / self.ghz
    }
}

/// The profiles in `dir` (model/profiles), sorted by name; none when the
/// directory is missing (no modeled rows then).
pub fn profiles(dir: &Path) -> Result<Vec<Profile>> {
    if !dir.is_dir() {
        return Ok(vec![]);
    }
    crate::model::profiles(dir)?
        .iter()
        .map(|p| Profile::load(p))
        .collect()
}

/// `model.<profile>.<what>` of run `r` (a metric or a derived figure).
pub fn fig(r: &RunFigures, profile: &str, what: &str) -> Option<f64> {
    r.figure(&format!("model.{profile}.{what}"))
}

/// `model.<profile>.<metric>` per modeled shootdown (shoot.count: the
/// shootdowns that sent IPIs, start to last ack).
pub fn per_shootdown(r: &RunFigures, profile: &str, metric: &str) -> Option<f64> {
    let n = fig(r, profile, "shoot.count")?;
    (n > 0.0).then(|| fig(r, profile, metric).map(|v| v / n))?
}

/// How a modeled figure is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Modeled cycles, written with their ns at the profile's clock.
    Cycles,
    /// A plain number (transfers, refills) with this suffix.
    Plain(&'static str),
}

impl Unit {
    pub fn show(self, v: f64, p: &Profile) -> String {
        match self {
            Unit::Cycles => format!("{} cycles ({} ns)", three_digits(v), three_digits(p.ns(v))),
            Unit::Plain(suffix) => format!("{}{suffix}", three_digits(v)),
        }
    }
}

/// One modeled comparison: `figure` of `variant` against `base` in the
/// tcg-model experiment `id`, one row per profile. Without a base the row
/// gives the variant's figure alone.
pub struct Modeled<'a> {
    pub source: &'a str,
    pub published: &'a str,
    /// The definition; `{profile}` is replaced by each profile's name.
    pub definition: String,
    pub id: &'a str,
    pub variant: &'a str,
    pub base: Option<&'a str>,
    pub cpus: u32,
    /// The figure of one run under one profile.
    pub figure: FigureFn<'a>,
    pub unit: Unit,
    /// More of the same runs, after the comparison: `(all transfers ...)`.
    pub extra: Option<ExtraFn<'a>>,
    pub note: &'static str,
}

/// A modeled figure of one run under one profile.
pub type FigureFn<'a> = &'a dyn Fn(&RunFigures, &Profile) -> Option<f64>;
/// More words on the same runs under one profile.
pub type ExtraFn<'a> = &'a dyn Fn(&Reproduction, &Profile) -> Option<String>;

/// The spread cell of a modeled figure: the model repeats bit for bit.
fn spread_cell(o: &Reproduction, id: &str) -> String {
    let reps = o
        .plan
        .experiment(id)
        .and_then(|e| e.reps)
        .unwrap_or(o.plan.reps);
    if reps <= 1 {
        "one run; repetitions are bit-identical".into()
    } else {
        format!("{reps} runs, bit-identical")
    }
}

/// The median over the experiment's reps of `f` on `variant`'s runs.
fn modeled_median(
    o: &Reproduction,
    id: &str,
    variant: &str,
    cpus: u32,
    f: impl Fn(&RunFigures) -> Option<f64>,
) -> Option<f64> {
    o.per_rep(|rep| f(o.pool.get(id, variant, cpus, rep)?))
        .and_then(|m| m.median())
}

/// The rows of `m`, one per profile of `o`.
pub fn rows(o: &Reproduction, m: &Modeled<'_>) -> Vec<Row> {
    o.profiles.iter().map(|p| row(o, m, p)).collect()
}

/// The row of `m` under profile `p`.
pub fn row(o: &Reproduction, m: &Modeled<'_>, p: &Profile) -> Row {
    let variants: Vec<&str> = std::iter::once(m.variant).chain(m.base).collect();
    let value = |v: &str| modeled_median(o, m.id, v, m.cpus, |r| (m.figure)(r, p));
    let (lab, spread, measured) = if let Some(why) = o.why_not(&[m.id], &variants) {
        (format!("— (not run: {why})"), "-".to_string(), None)
    } else {
        match (value(m.variant), m.base.map(|b| (b, value(b)))) {
            (Some(with), None) => (
                format!("{} {}", m.variant, m.unit.show(with, p)),
                spread_cell(o, m.id),
                Some(Measured {
                    per_rep: vec![with],
                }),
            ),
            (Some(with), Some((base, Some(b)))) if b != 0.0 => (
                format!(
                    "{} {} vs {base} {}, ratio {}",
                    m.variant,
                    m.unit.show(with, p),
                    m.unit.show(b, p),
                    three_decimals(with / b)
                ),
                spread_cell(o, m.id),
                Some(Measured {
                    per_rep: vec![with / b],
                }),
            ),
            (Some(with), Some((base, Some(b)))) => (
                format!(
                    "{} {} vs {base} {} (no ratio over 0)",
                    m.variant,
                    m.unit.show(with, p),
                    m.unit.show(b, p)
                ),
                spread_cell(o, m.id),
                None,
            ),
            _ => (
                format!("— (the runs carry no model.{} figures)", p.name),
                "-".into(),
                None,
            ),
        }
    };
    let lab = match (&measured, m.extra.and_then(|f| f(o, p))) {
        (Some(_), Some(extra)) => format!("{lab} ({extra})"),
        _ => lab,
    };
    Row {
        seed: m.source.into(),
        published: m.published.into(),
        definition: m.definition.replace("{profile}", &p.name),
        lab,
        spread,
        measured,
        accel: "tcg-model".into(),
        kind: Kind::Modeled,
        profile: Some(p.name.clone()),
        note: m.note,
    }
}

/// The median of `f` over `variant`'s runs in `id`, written by `show`, or
/// "?" (for note templates).
pub fn quote(
    o: &Reproduction,
    id: &str,
    variant: &str,
    f: impl Fn(&RunFigures) -> Option<f64>,
    show: impl Fn(f64) -> String,
) -> String {
    let cpus = o
        .plan
        .experiment(id)
        .and_then(|e| e.cpus.first().copied())
        .unwrap_or(4);
    modeled_median(o, id, variant, cpus, f)
        .map(show)
        .unwrap_or_else(|| "?".into())
}

/// The median of `f` over `variant`'s runs in `id`.
pub fn value(
    o: &Reproduction,
    id: &str,
    variant: &str,
    f: impl Fn(&RunFigures) -> Option<f64>,
) -> Option<f64> {
    let cpus = o.plan.experiment(id)?.cpus.first().copied()?;
    modeled_median(o, id, variant, cpus, f)
}

/// "falls" / "rises" / "stays" for a ratio (the 0.5 % either side is
/// "stays": the model's clocks count whole cycles).
pub fn direction(ratio: Option<f64>) -> &'static str {
    match ratio {
        Some(r) if r < 0.995 => "falls",
        Some(r) if r > 1.005 => "rises",
        Some(_) => "stays the same",
        None => "is not known (no modeled figure)",
    }
}

/// Whether a ratio agrees with a source that says the figure falls.
pub fn agrees_if_falls(ratio: Option<f64>) -> &'static str {
    match ratio {
        Some(r) if r < 0.995 => "agrees with",
        Some(_) => "disagrees with",
        None => "cannot be compared with",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reproduce::{Experiment, Plan, Pool, Table};
    use crate::results::model::{Cell, Outcome};

    fn profile() -> Profile {
        Profile {
            name: "skylake-sp".into(),
            ghz: 2.5,
            costs: [("ipi_delivery".to_string(), (1000.0, true))].into(),
        }
    }

    fn run(variant: &str, totals: &[(&str, f64)]) -> RunFigures {
        RunFigures {
            cell: Cell {
                variant: variant.into(),
                workload: "forkexit".into(),
                params: String::new(),
                cpus: 4,
                accel: "tcg-model".into(),
                machine: "microvm".into(),
                rep: 1,
            },
            outcome: Outcome::Ok,
            git_rev: String::new(),
            totals: totals.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            units: Default::default(),
            pairs: Default::default(),
            ack_hist: Default::default(),
        }
    }

    fn reproduction(runs: Vec<RunFigures>) -> Reproduction {
        let exp = Experiment::new("x-model", &["fixed", "early-ack"], "forkexit", &[])
            .cpus(&[4])
            .modeled();
        Reproduction {
            plan: Plan {
                table: Table::Techniques,
                experiments: vec![exp],
                reps: 2,
                factor_cpus: 4,
                sweep_cpus: vec![],
            },
            pool: Pool {
                runs: [("x-model".to_string(), runs)].into(),
            },
            availability: Default::default(),
            accel: "tcg-icount".into(),
            accels: Default::default(),
            build: crate::reproduce::check::Build::unknown(),
            out: "runs/x".into(),
            profiles: vec![profile()],
            rows: vec![],
            notes: vec![],
            sweep: vec![],
        }
    }

    fn wait(r: &RunFigures, p: &Profile) -> Option<f64> {
        fig(r, &p.name, "wait_per_shootdown")
    }

    fn comparison<'a>(f: &'a dyn Fn(&RunFigures, &Profile) -> Option<f64>) -> Modeled<'a> {
        Modeled {
            source: "Amit 2020: early acknowledgement",
            published: "the same",
            definition: "wait per shootdown on {profile}".into(),
            id: "x-model",
            variant: "early-ack",
            base: Some("fixed"),
            cpus: 4,
            figure: f,
            unit: Unit::Cycles,
            extra: None,
            note: "amit-model",
        }
    }

    #[test]
    fn a_modeled_row_is_labelled_modeled_and_reads_a_dash_without_model_metrics() {
        // Runs of a plain tcg-icount kind: no model.* metrics at all.
        let o = reproduction(vec![
            run("fixed", &[("shoot.wait.ack", 10.0)]),
            run("early-ack", &[("shoot.wait.ack", 9.0)]),
        ]);
        let rows = rows(&o, &comparison(&wait));
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!(r.accel_cell(), "tcg-model (skylake-sp): modeled");
        assert_eq!(r.kind, Kind::Modeled);
        assert!(r.measured.is_none());
        assert!(r.lab.starts_with('—'), "{}", r.lab);
        assert!(r.lab.contains("model.skylake-sp"), "{}", r.lab);
        assert_eq!(r.definition, "wait per shootdown on skylake-sp");
    }

    #[test]
    fn a_modeled_row_compares_the_profiles_figures_in_cycles_and_ns() {
        let m = |w: f64| {
            vec![
                ("model.skylake-sp.wait.cycles", w * 10.0),
                ("model.skylake-sp.wait.count", 10.0),
            ]
        };
        let o = reproduction(vec![run("fixed", &m(2500.0)), run("early-ack", &m(1250.0))]);
        let r = &rows(&o, &comparison(&wait))[0];
        assert_eq!(r.accel_cell(), "tcg-model (skylake-sp): modeled");
        assert_eq!(
            r.lab,
            "early-ack 1250 cycles (500 ns) vs fixed 2500 cycles (1000 ns), ratio 0.500"
        );
        assert_eq!(r.spread, "one run; repetitions are bit-identical");
        assert_eq!(r.measured.as_ref().unwrap().per_rep, [0.5]);
    }

    #[test]
    fn directions_and_agreement() {
        assert_eq!(direction(Some(0.9)), "falls");
        assert_eq!(direction(Some(1.0)), "stays the same");
        assert_eq!(agrees_if_falls(Some(1.1)), "disagrees with");
    }

    #[test]
    fn profiles_read_their_clock_and_assumptions() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/profiles");
        let ps = profiles(&dir).unwrap();
        let sky = ps.iter().find(|p| p.name == "skylake-sp").unwrap();
        assert_eq!(sky.ghz, 2.5);
        assert!(sky.assumed("ipi_delivery"));
        assert!(!sky.assumed("c2c_same_socket"));
    }
}
