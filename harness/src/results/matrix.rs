//! The matrix file (`variants/matrix.toml`): which variants, workloads
//! (each with its parameters), CPU counts and repetitions to run, under
//! which accelerator and machine.
//!
//! ```toml
//! variants = ["openbsd-2010", "fixed"]
//! cpus = [2, 4]
//! reps = 3
//! accel = "tcg"          # or "tcg-icount", "kvm", "auto"
//! machine = "microvm"    # default
//! timeout_s = 120        # per run; default 120
//!
//! [[workloads]]
//! name = "forkexit"
//! params = { touch = "on" }   # optional; values may be strings, numbers, booleans
//!
//! [[workloads]]
//! name = "ipi-pingpong"
//! cpus = [2, 4]               # optional; replaces the matrix's `cpus` for
//!                             # this workload (ping-pong needs two CPUs)
//! reps = 1                    # optional; at most this many of the matrix's
//!                             # repetitions (an oracle's verdict)
//! ```
//!
//! [`MatrixSpec::cells`] expands it in a fixed order: rep, then workload
//! (file order), then CPU count (file order), then variant (file order).
//! Rep-major order means a matrix stopped halfway still covers every
//! (variant, workload, cpus) once, and makes shards (cell i to shard
//! i mod n) mix cheap and expensive cells.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use super::model::{Cell, Outcome};

fn default_machine() -> String {
    "microvm".into()
}
fn default_timeout() -> u64 {
    120
}

/// A parsed matrix file.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatrixSpec {
    pub variants: Vec<String>,
    pub workloads: Vec<WorkloadSpec>,
    pub cpus: Vec<u32>,
    pub reps: u32,
    pub accel: String,
    #[serde(default = "default_machine")]
    pub machine: String,
    /// Per-run timeout, seconds.
    #[serde(default = "default_timeout")]
    pub timeout_s: u64,
    /// Cells that are meant to end other than `ok` (negative controls).
    #[serde(default)]
    pub expect: Vec<Expectation>,
}

/// An `[[expect]]` entry: the runs of `variant` x `workload` (on `cpus`,
/// default every count) must end with `outcome`. A negative control that
/// ends `ok` is then the failure: the bug it plants went unnoticed.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    pub variant: String,
    pub workload: String,
    #[serde(default)]
    pub cpus: Option<Vec<u32>>,
    pub outcome: Outcome,
    /// Why this outcome is the right one (shown in the matrix summary).
    pub why: String,
}

/// One workload entry with its parameters.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSpec {
    pub name: String,
    #[serde(default)]
    pub params: BTreeMap<String, toml::Value>,
    /// CPU counts for this workload instead of the matrix's `cpus`.
    #[serde(default)]
    pub cpus: Option<Vec<u32>>,
    /// Only these of the matrix's variants run this workload (default:
    /// all of them).
    #[serde(default)]
    pub variants: Option<Vec<String>>,
    /// At most this many of the matrix's repetitions (default: all): for
    /// an oracle whose verdict is the point, not a figure to spread.
    #[serde(default)]
    pub reps: Option<u32>,
}

impl MatrixSpec {
    /// The outcome `cell` should end with: `ok` unless an `[[expect]]`
    /// entry says otherwise (the first that matches).
    pub fn expected(&self, cell: &Cell) -> (Outcome, Option<&str>) {
        self.expect
            .iter()
            .find(|e| {
                e.variant == cell.variant
                    && e.workload == cell.workload
                    && e.cpus.as_ref().is_none_or(|c| c.contains(&cell.cpus))
            })
            .map_or((Outcome::Ok, None), |e| (e.outcome, Some(e.why.as_str())))
    }
}

impl WorkloadSpec {
    /// Parameters as strings (`on`, `4`, `true`), sorted by key.
    pub fn params_text(&self) -> Result<BTreeMap<String, String>> {
        self.params
            .iter()
            .map(|(k, v)| {
                let text = match v {
                    toml::Value::String(s) => s.clone(),
                    toml::Value::Integer(i) => i.to_string(),
                    toml::Value::Float(f) => f.to_string(),
                    toml::Value::Boolean(b) => b.to_string(),
                    other => bail!(
                        "workload '{}' parameter '{k}': {} values are not allowed (use a string, number or boolean)",
                        self.name,
                        other.type_str()
                    ),
                };
                if text.contains([' ', ';', '=']) || text.is_empty() {
                    bail!(
                        "workload '{}' parameter '{k}' = '{text}': values must be non-empty with no spaces, ';' or '='",
                        self.name
                    );
                }
                Ok((k.clone(), text))
            })
            .collect()
    }
}

impl MatrixSpec {
    /// Reads and checks a matrix file. Errors name the file and the field.
    pub fn load(path: &Path) -> Result<MatrixSpec> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading matrix file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in matrix file {}", path.display()))
    }

    /// Parses and checks matrix TOML text.
    pub fn parse(text: &str) -> Result<MatrixSpec> {
        let spec: MatrixSpec = toml::from_str(text)?;
        spec.check()?;
        Ok(spec)
    }

    fn check(&self) -> Result<()> {
        if self.variants.is_empty() {
            bail!("'variants' is empty");
        }
        if self.workloads.is_empty() {
            bail!("'workloads' is empty");
        }
        let bad_cpus = |cpus: &[u32]| {
            cpus.is_empty()
                || cpus
                    .iter()
                    .any(|&c| c == 0 || c as usize > lab_core::cpuset::MAX_CPUS)
        };
        if bad_cpus(&self.cpus) {
            bail!(
                "'cpus' must list CPU counts from 1 to 64, got {:?}",
                self.cpus
            );
        }
        for w in &self.workloads {
            if let Some(cpus) = w.cpus.as_deref().filter(|c| bad_cpus(c)) {
                bail!(
                    "workload '{}': 'cpus' must list CPU counts from 1 to 64, got {cpus:?}",
                    w.name
                );
            }
        }
        if self.reps == 0 {
            bail!("'reps' must be at least 1");
        }
        if let Some(w) = self.workloads.iter().find(|w| w.reps == Some(0)) {
            bail!("workload '{}': 'reps' must be at least 1", w.name);
        }
        let mut seen = std::collections::BTreeSet::new();
        for w in &self.workloads {
            let params = Cell::params_text(&w.params_text()?);
            if !seen.insert((w.name.clone(), params.clone())) {
                bail!(
                    "workload '{}' with params [{params}] is listed twice",
                    w.name
                );
            }
        }
        for w in &self.workloads {
            if let Some(v) = w
                .variants
                .iter()
                .flatten()
                .find(|v| !self.variants.contains(v))
            {
                bail!(
                    "workload '{}': variant '{v}' is not in the matrix's 'variants'",
                    w.name
                );
            }
        }
        for (what, list) in [("variants", &self.variants)] {
            if let Some(dup) = list
                .iter()
                .enumerate()
                .find(|(i, v)| list[..*i].contains(v))
            {
                bail!("'{what}' lists '{}' twice", dup.1);
            }
        }
        Ok(())
    }

    /// Every cell of the matrix, in the order documented in the module doc.
    pub fn cells(&self) -> Result<Vec<Cell>> {
        type Entry<'a> = (String, String, &'a [u32], &'a [String], u32);
        let workloads: Vec<Entry> = self
            .workloads
            .iter()
            .map(|w| {
                let cpus = w.cpus.as_deref().unwrap_or(&self.cpus);
                let variants = w.variants.as_deref().unwrap_or(&self.variants);
                let params = Cell::params_text(&w.params_text()?);
                Ok((
                    w.name.clone(),
                    params,
                    cpus,
                    variants,
                    w.reps.unwrap_or(u32::MAX),
                ))
            })
            .collect::<Result<_>>()?;
        let mut cells = Vec::new();
        for rep in 1..=self.reps {
            for (workload, params, cpu_list, variants, reps) in &workloads {
                if rep > *reps {
                    continue;
                }
                for &cpus in *cpu_list {
                    for variant in self.variants.iter().filter(|v| variants.contains(v)) {
                        cells.push(Cell {
                            variant: variant.clone(),
                            workload: workload.clone(),
                            params: params.clone(),
                            cpus,
                            accel: self.accel.clone(),
                            machine: self.machine.clone(),
                            rep,
                        });
                    }
                }
            }
        }
        Ok(cells)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

    #[test]
    fn a_workload_can_cap_its_repetitions() {
        let spec = MatrixSpec::parse(
            "variants = [\"a\"]\ncpus = [2]\nreps = 3\naccel = \"tcg\"\n\
             [[workloads]]\nname = \"forkexit\"\n\
             [[workloads]]\nname = \"coherence\"\nreps = 1\n",
        )
        .unwrap();
        let cells = spec.cells().unwrap();
        let count = |w: &str| cells.iter().filter(|c| c.workload == w).count();
        assert_eq!((count("forkexit"), count("coherence")), (3, 1));
        let zero = MatrixSpec::parse(
            "variants = [\"a\"]\ncpus = [2]\nreps = 3\naccel = \"tcg\"\n\
             [[workloads]]\nname = \"coherence\"\nreps = 0\n",
        );
        assert!(zero.unwrap_err().to_string().contains("'reps'"));
    }

    #[test]
    fn a_workload_can_run_on_some_variants_only() {
        let spec = MatrixSpec::parse(
            r#"
            variants = ["a", "b", "c"]
            cpus = [1, 64]
            reps = 1
            accel = "tcg-icount"
            [[workloads]]
            name = "forkexit"
            variants = ["c", "a"]
            [[workloads]]
            name = "shoot-storm"
            "#,
        )
        .unwrap();
        let cells = spec.cells().unwrap();
        let forkexit: Vec<(&str, u32)> = cells
            .iter()
            .filter(|c| c.workload == "forkexit")
            .map(|c| (c.variant.as_str(), c.cpus))
            .collect();
        // In the matrix's variant order.
        assert_eq!(forkexit, [("a", 1), ("c", 1), ("a", 64), ("c", 64)]);
        assert_eq!(cells.len(), 4 + 6);
        let bad = MatrixSpec::parse(
            r#"
            variants = ["a"]
            cpus = [65]
            reps = 1
            accel = "tcg"
            [[workloads]]
            name = "forkexit"
            "#,
        );
        assert!(bad.is_err(), "65 CPUs accepted");
        let bad = MatrixSpec::parse(
            r#"
            variants = ["a"]
            cpus = [2]
            reps = 1
            accel = "tcg"
            [[workloads]]
            name = "forkexit"
            variants = ["z"]
            "#,
        );
        assert!(bad.unwrap_err().to_string().contains("'z'"));
    }

    #[test]
    fn expands_in_rep_major_order() {
        let spec = MatrixSpec::parse(
            r#"
            variants = ["a", "b"]
            cpus = [1, 4]
            reps = 2
            accel = "tcg"
            [[workloads]]
            name = "forkexit"
            params = { touch = "on", n = 3 }
            [[workloads]]
            name = "ipi-pingpong"
            "#,
        )
        .unwrap();
        let cells = spec.cells().unwrap();
        assert_eq!(cells.len(), 2 * 2 * 2 * 2);
        assert_eq!(cells[0].params, "n=3;touch=on");
        assert_eq!(cells[0].machine, "microvm");
        assert_eq!(
            cells[..3]
                .iter()
                .map(|c| (c.variant.as_str(), c.cpus, c.rep))
                .collect::<Vec<_>>(),
            [("a", 1, 1), ("b", 1, 1), ("a", 4, 1)]
        );
        assert!(cells[..8].iter().all(|c| c.rep == 1));
        assert_eq!(spec.timeout_s, 120);
    }

    #[test]
    fn bad_matrices_say_what_is_wrong() {
        let base = "variants = [\"a\"]\ncpus = [1]\nreps = 1\naccel = \"tcg\"\n";
        let err = |text: &str| format!("{:#}", MatrixSpec::parse(text).unwrap_err());
        assert!(err(base).contains("workloads"));
        assert!(err(&format!(
            "{base}[[workloads]]\nname = \"x\"\nparams = {{ a = \"b c\" }}\n"
        ))
        .contains("parameter 'a'"));
        assert!(err(&format!("{base}bogus = 1\n[[workloads]]\nname = \"x\"\n")).contains("bogus"));
        assert!(
            err(&format!("{base}[[workloads]]\nname = \"x\"\n").replace("[1]", "[0]"))
                .contains("cpus")
        );
        assert!(err(&format!(
            "{base}[[workloads]]\nname = \"x\"\n[[workloads]]\nname = \"x\"\n"
        ))
        .contains("twice"));
    }

    #[test]
    fn shipped_matrices_parse() {
        let full = MatrixSpec::load(&Path::new(REPO).join("variants/matrix.toml")).unwrap();
        assert_eq!(full.variants.len(), 19);
        // ipi-pingpong, busy-target and shoot-storm run on 2 and 4 CPUs
        // only.
        // Two reps of forkexit, buildkernel, mmap-storm, busy-target (19
        // variants) on 2, 4 CPUs and ipi-pingpong (fixed) on 2, 4; one of
        // the oracles: coherence (14, and lazy-latr's lazy=on cells) and
        // shoot-storm (8 variants) on 2, 4, fuzz (19) on 4.
        assert_eq!(
            full.cells().unwrap().len(),
            (19 * 4 * 2 + 2) * 2 + 15 * 2 + 8 * 2 + 19
        );
        // The negative control is expected to be caught on 2 and 4 CPUs.
        let expected_failures = full
            .cells()
            .unwrap()
            .iter()
            .filter(|c| full.expected(c).0 == Outcome::Failed)
            .count();
        // lost-shootdown: coherence (one rep) and busy-target (two) on 2
        // and 4 CPUs.
        assert_eq!(expected_failures, 2 + 2 * 2);
        let quick = MatrixSpec::load(&Path::new(REPO).join("variants/matrix-quick.toml")).unwrap();
        // 5 variants x (forkexit and ipi-pingpong on 2 and 4 CPUs, busy-target
        // on 2) x 2 reps, and fixed's two chaos cells (coherence on 4 CPUs,
        // shoot-storm on 2) x 2 reps.
        assert_eq!(quick.cells().unwrap().len(), 5 * (2 * 2 + 1) * 2 + 2 * 2);
        let scale = MatrixSpec::load(&Path::new(REPO).join("variants/matrix-scale.toml")).unwrap();
        // forkexit on 2 variants, the storms on 3, hello on 1, over 7 CPU
        // counts to 64.
        assert_eq!(scale.cells().unwrap().len(), (2 + 3 + 3 + 1) * 7);
        assert_eq!(scale.cpus.last(), Some(&64));
    }
}
