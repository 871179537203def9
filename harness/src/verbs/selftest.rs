//! `harness gate --self-test`: the gate's mutation proof. On real kernels
//! booted under tcg-icount, the gate must pass the unmodified tree and
//! exit 3, naming the rule that caught it, on each planted regression:
//!
//! 1. a variant named `fixed` built with `uninit-bitmap` (an IPI-count
//!    regression: pm_cpus keeps the pool's fill);
//! 2. a variant named `fixed` built with the test-only kernel feature
//!    `gate-selftest-slow-remove` (pmap_remove burns a fixed instruction
//!    count: a timing regression icount's clock shows exactly);
//! 3. one cell of the matrix missing from the results;
//! 4. each technique (a variant whose `role` is `technique`) built
//!    without its feature (so it is `fixed` under another name), on 4
//!    CPUs: a rule stating its mechanism must fail. Its mechanism rules
//!    are the rules file's rules about it alone on a workload
//!    ([`planted`]); a technique with none (pcid, whose runs end
//!    unsupported under TCG) is not planted, and the table says so.
//!
//! Every variant, matrix and rules file lives in a temporary directory
//! (the workspace's `--variants` override), so nothing in the tree
//! changes; kernels are cached per feature set, so the mutated `fixed`
//! never replaces the real one's image. The rules are the given rules file
//! without [`PENDING`]. Prints a table; exits 0 when every row came out as
//! expected, else [`EXIT_GATE_FAILED`]. `harness/tests/lab/gate.rs` runs it.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::gate::{check, GateOptions, EXIT_GATE_FAILED};
use crate::gate::{complete, Verdict};
use crate::matrix::{self, MatrixOptions};
use crate::variants::{self, Role};
use crate::workspace::Workspace;

/// 2 variants x forkexit on 2 CPUs x 2 reps: 4 runs of about a second.
pub const MATRIX: &str = r#"# The gate self-test's matrix (harness/src/verbs/selftest.rs).
variants = ["openbsd-2010", "fixed"]
cpus = [2]
reps = 2
accel = "tcg-icount"
timeout_s = 60

[[workloads]]
name = "forkexit"
params = { touch = "on", loops = "100" }
"#;

/// A technique the self-test plants: its variant and the rules that state
/// its mechanism, one of which must fail once it is built without its
/// feature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Planted {
    pub variant: String,
    /// Rules naming this variant alone (`variant = "..."`) on a workload.
    pub rules: Vec<String>,
    /// The workloads those rules are stated on.
    pub workloads: BTreeSet<String>,
}

/// The techniques of `techniques` (the variants whose role is
/// `technique`) that `rules` states a mechanism for, and the names of
/// those it states none for (not planted).
pub fn planted(techniques: &[String], rules: &toml::Table) -> (Vec<Planted>, Vec<String>) {
    let all: Vec<&toml::Table> = ["bound", "ratio", "baseline"]
        .iter()
        .filter_map(|kind| rules.get(*kind).and_then(|v| v.as_array()))
        .flatten()
        .filter_map(|r| r.as_table())
        .collect();
    let mut planted = Vec::new();
    let mut none = Vec::new();
    for v in techniques {
        let mut p = Planted {
            variant: v.clone(),
            rules: vec![],
            workloads: BTreeSet::new(),
        };
        for r in &all {
            let about = r.get("variant").and_then(|x| x.as_str()) == Some(v.as_str());
            let (Some(name), Some(workload)) = (
                r.get("name").and_then(|x| x.as_str()),
                r.get("workload").and_then(|x| x.as_str()),
            ) else {
                continue;
            };
            if about && !PENDING.contains(&name) {
                p.rules.push(name.to_string());
                p.workloads.insert(workload.to_string());
            }
        }
        if p.rules.is_empty() {
            none.push(v.clone());
        } else {
            planted.push(p);
        }
    }
    (planted, none)
}

/// The techniques' matrix: `fixed` and every planted technique on
/// forkexit on 4 CPUs (on 2 under tcg-icount one vCPU does nearly all the
/// work, README), and each technique on the other workloads its rules are
/// stated on (buildkernel for lazy-tlb and lazy-latr); one repetition
/// (icount repeats bit for bit).
pub fn techniques_matrix(planted: &[Planted]) -> String {
    let quote = |names: &[&str]| {
        names
            .iter()
            .map(|n| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut variants = vec!["fixed"];
    variants.extend(planted.iter().map(|p| p.variant.as_str()));
    let mut s = format!(
        "# The gate self-test's techniques matrix (harness/src/verbs/selftest.rs).\n\
         variants = [{}]\ncpus = [4]\nreps = 1\naccel = \"tcg-icount\"\ntimeout_s = 60\n\n\
         [[workloads]]\nname = \"forkexit\"\nparams = {{ touch = \"on\", loops = \"100\" }}\n",
        quote(&variants)
    );
    let others: BTreeSet<&str> = planted
        .iter()
        .flat_map(|p| p.workloads.iter().map(String::as_str))
        .filter(|w| *w != "forkexit")
        .collect();
    for w in others {
        let on: Vec<&str> = planted
            .iter()
            .filter(|p| p.workloads.contains(w))
            .map(|p| p.variant.as_str())
            .collect();
        s += &format!(
            "\n[[workloads]]\nname = \"{w}\"\nvariants = [{}]\n",
            quote(&on)
        );
    }
    s
}

/// Rules left out of the self-test: their bounds fail on the unmodified
/// tree until the lead sets their figures after the forkexit and
/// exit-shootdown kernel changes land (OpenBSD's fixed pmap sends an
/// all-CPU shoottlb at exit by design).
pub const PENDING: [&str; 1] = ["fixed: forkexit sends few IPIs per loop"];

/// One row of the self-test's table.
#[derive(Clone, Debug)]
pub struct Row {
    pub mutation: String,
    /// The rules one of which must fail (none: nothing may fail).
    pub expected: Vec<String>,
    pub exit: i32,
    /// The rules that failed, in report order.
    pub failed: Vec<String>,
}

impl Row {
    /// The gate did what it should: 0 on the tree, 3 naming one of the
    /// expected rules on a mutation.
    pub fn as_expected(&self) -> bool {
        if self.expected.is_empty() {
            self.exit == 0 && self.failed.is_empty()
        } else {
            self.exit == EXIT_GATE_FAILED && self.expected.iter().any(|r| self.failed.contains(r))
        }
    }
}

/// A variants directory under `root`: the tree's variant files, `matrix`
/// as its matrix, `rules` without [`PENDING`], and each variant named in
/// `features` rewritten to build with the features given there.
fn variants_dir(
    ws: &Workspace,
    root: &Path,
    name: &str,
    rules: &Path,
    matrix: &str,
    features: &[(&str, &[&str])],
) -> Result<PathBuf> {
    let dir = root.join(name);
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tree = ws.variants_dir();
    for entry in fs::read_dir(&tree).with_context(|| format!("listing {}", tree.display()))? {
        let path = entry?.path();
        let file = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        if file.ends_with(".toml") && !file.starts_with("matrix") && file != "gates.toml" {
            fs::copy(&path, dir.join(&file))
                .with_context(|| format!("copying {}", path.display()))?;
        }
    }
    fs::write(dir.join("matrix.toml"), matrix)?;
    let text = fs::read_to_string(rules).with_context(|| format!("reading {}", rules.display()))?;
    let mut table: toml::Table =
        toml::from_str(&text).with_context(|| format!("parsing {}", rules.display()))?;
    for kind in ["bound", "ratio", "baseline"] {
        if let Some(list) = table.get_mut(kind).and_then(|v| v.as_array_mut()) {
            list.retain(|r| {
                !r.get("name")
                    .and_then(|n| n.as_str())
                    .is_some_and(|n| PENDING.contains(&n))
            });
        }
    }
    fs::write(dir.join("gates.toml"), toml::to_string(&table)?)?;
    for (variant, with) in features {
        let file = format!("{variant}.toml");
        let text = fs::read_to_string(tree.join(&file))
            .with_context(|| format!("reading {}", tree.join(&file).display()))?;
        let list: Vec<String> = with.iter().map(|f| format!("\"{f}\"")).collect();
        let lines: Vec<String> = text
            .lines()
            .map(|l| {
                if l.starts_with("features") {
                    format!("features = [{}]", list.join(", "))
                } else {
                    l.to_string()
                }
            })
            .collect();
        fs::write(dir.join(&file), lines.join("\n") + "\n")?;
    }
    Ok(dir)
}

/// Runs the self-test matrix with the variants in `variants` into `out`.
fn run_matrix(ws: &Workspace, variants: &Path, out: &Path, qemu: &Path) -> Result<()> {
    let ws = ws.clone().with_variants_dir(Some(variants.to_path_buf()));
    let opts = MatrixOptions {
        matrix: Some(variants.join("matrix.toml")),
        jobs: None,
        reps: None,
        shard: None,
        resume: false,
        out: Some(out.to_path_buf()),
        accel: None,
        qemu: qemu.to_path_buf(),
    };
    let code = matrix::execute(&ws, &opts)?;
    if code != 0 {
        bail!(
            "the self-test matrix in {} exited {code}: see its logs",
            out.display()
        );
    }
    Ok(())
}

/// Gates `results` against `baseline` with the rules in `variants`.
fn gate_row(
    ws: &Workspace,
    variants: &Path,
    results: &Path,
    baseline: &Path,
    mutation: &str,
    expected: &[&str],
) -> Result<Row> {
    let ws = ws.clone().with_variants_dir(Some(variants.to_path_buf()));
    let report = check(
        &ws,
        &GateOptions {
            rules: variants.join("gates.toml"),
            baseline: Some(baseline.to_path_buf()),
            no_baseline: false,
            input: Some(results.to_path_buf()),
            matrix: None,
            all_rules: false,
            exact: false,
        },
    )?;
    let mut failed: Vec<String> = Vec::new();
    for l in report.lines.iter().filter(|l| l.verdict == Verdict::Fail) {
        if !failed.contains(&l.rule) {
            failed.push(l.rule.clone());
        }
    }
    Ok(Row {
        mutation: mutation.into(),
        expected: expected.iter().map(|r| r.to_string()).collect(),
        exit: if report.passed() { 0 } else { EXIT_GATE_FAILED },
        failed,
    })
}

/// Runs the mutation proof; returns its rows.
pub fn rows(ws: &Workspace, rules: &Path, qemu: &Path) -> Result<Vec<Row>> {
    let tmp = tempfile::tempdir().context("cannot create a temporary directory")?;
    let t = tmp.path();
    let tree = variants_dir(ws, t, "tree", rules, MATRIX, &[])?;
    // The tree's run is the baseline and the results at once: under
    // tcg-icount a second run repeats it bit for bit (the gate's own icount
    // rule checks the matrix's two repetitions), so it would gate the same
    // figures again, 4 boots later.
    let base = t.join("base");
    run_matrix(ws, &tree, &base, qemu)?;
    let good = base.clone();
    let mut rows = vec![gate_row(ws, &tree, &good, &base, "unmodified tree", &[])?];

    let ipis = variants_dir(
        ws,
        t,
        "ipis",
        rules,
        MATRIX,
        &[("fixed", &["uninit-bitmap"])],
    )?;
    let m1 = t.join("m1");
    run_matrix(ws, &ipis, &m1, qemu)?;
    rows.push(gate_row(
        ws,
        &ipis,
        &m1,
        &base,
        "fixed built with uninit-bitmap",
        &["IPIs per operation vs baseline"],
    )?);

    let slow = variants_dir(
        ws,
        t,
        "slow",
        rules,
        MATRIX,
        &[("fixed", &["gate-selftest-slow-remove"])],
    )?;
    let m2 = t.join("m2");
    run_matrix(ws, &slow, &m2, qemu)?;
    rows.push(gate_row(
        ws,
        &slow,
        &m2,
        &base,
        "fixed built with gate-selftest-slow-remove",
        &["operation rate vs baseline"],
    )?);

    // One cell gone: the good results without one run's file.
    let m3 = t.join("m3");
    fs::create_dir_all(m3.join("runs"))?;
    fs::copy(good.join("metadata.json"), m3.join("metadata.json"))?;
    let mut runs: Vec<PathBuf> = fs::read_dir(good.join("runs"))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    runs.sort();
    for run in runs.iter().skip(1) {
        fs::copy(
            run,
            m3.join("runs").join(run.file_name().unwrap_or_default()),
        )?;
    }
    rows.push(gate_row(
        ws,
        &tree,
        &m3,
        &base,
        "one cell missing",
        &[complete::RULE],
    )?);

    // The techniques: the tree passes, and each built without its
    // feature fails a rule of its mechanism (one matrix run makes them all).
    let table: toml::Table = toml::from_str(
        &fs::read_to_string(rules).with_context(|| format!("reading {}", rules.display()))?,
    )
    .with_context(|| format!("parsing {}", rules.display()))?;
    let all = variants::load_all(ws)?;
    let (planted, unplanted) = planted(&variants::with_role(&all, Role::Technique), &table);
    let matrix = techniques_matrix(&planted);
    let techniques = variants_dir(ws, t, "techniques", rules, &matrix, &[])?;
    let t_good = t.join("t-good");
    run_matrix(ws, &techniques, &t_good, qemu)?;
    rows.push(gate_row(
        ws,
        &techniques,
        &t_good,
        &t_good,
        "techniques: unmodified tree",
        &[],
    )?);
    let without: Vec<(&str, &[&str])> = planted
        .iter()
        .map(|p| (p.variant.as_str(), &[][..]))
        .collect();
    let stripped = variants_dir(ws, t, "stripped", rules, &matrix, &without)?;
    let t_bad = t.join("t-bad");
    run_matrix(ws, &stripped, &t_bad, qemu)?;
    for p in &planted {
        let mut row = gate_row(
            ws,
            &stripped,
            &t_bad,
            &t_good,
            &format!("{} built without its feature", p.variant),
            &p.rules.iter().map(String::as_str).collect::<Vec<_>>(),
        )?;
        // The others fail too (same run): this row is about its own.
        row.failed
            .retain(|r| p.rules.contains(r) || !planted.iter().any(|o| o.rules.contains(r)));
        rows.push(row);
    }
    for v in unplanted {
        println!("gate self-test: technique {v} not planted: no rule of {} states its mechanism on a workload", rules.display());
    }
    Ok(rows)
}

/// The rows as a text table.
pub fn table(rows: &[Row]) -> String {
    let mut out = format!(
        "{:<43} {:<38} {:<5} {:<12} rules that failed\n",
        "mutation", "must fail", "exit", "verdict"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<43} {:<38} {:<5} {:<12} {}\n",
            r.mutation,
            if r.expected.is_empty() {
                "(nothing)".to_string()
            } else {
                r.expected.join(" or ")
            },
            r.exit,
            if r.as_expected() {
                "as expected"
            } else {
                "WRONG"
            },
            if r.failed.is_empty() {
                "-".to_string()
            } else {
                r.failed.join("; ")
            }
        ));
    }
    out
}

/// `harness gate --self-test`.
pub fn self_test(ws: &Workspace, rules: &Path, qemu: &Path) -> Result<i32> {
    let rows = rows(ws, rules, qemu)?;
    print!("{}", table(&rows));
    let ok = rows.iter().all(Row::as_expected);
    println!(
        "gate self-test: {}",
        if ok {
            "PASSED (the gate caught every mutation and passed the tree)"
        } else {
            "FAILED"
        }
    );
    Ok(if ok { 0 } else { EXIT_GATE_FAILED })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The techniques' rules decide what is planted and where: a rule
    /// about one technique on a workload is its mechanism's, a rule with
    /// no workload or about several variants is not, a pending rule is
    /// left out, and a technique with no rule is not planted.
    #[test]
    fn planted_techniques_come_from_their_rules() {
        let rules: toml::Table = toml::from_str(
            r#"
[[bound]]
name = "a: mechanism (forkexit)"
variant = "a"
workload = "forkexit"
[[bound]]
name = "a: another (forkexit)"
variant = "a"
workload = "forkexit"
[[bound]]
name = "b: mechanism (buildkernel)"
variant = "b"
workload = "buildkernel"
[[bound]]
name = "b: at the end of any run"
variant = "b"
[[bound]]
name = "a and b"
variant = ["a", "b"]
workload = "forkexit"
[[bound]]
name = "fixed: forkexit sends few IPIs per loop"
variant = "c"
workload = "forkexit"
"#,
        )
        .unwrap();
        let names = ["a", "b", "c"].map(String::from);
        let (planted, none) = planted(&names, &rules);
        assert_eq!(none, ["c"], "a pending rule plants nothing");
        assert_eq!(
            planted[0].rules,
            ["a: mechanism (forkexit)", "a: another (forkexit)"]
        );
        assert_eq!(planted[1].rules, ["b: mechanism (buildkernel)"]);
        let matrix = techniques_matrix(&planted);
        let spec = crate::results::matrix::MatrixSpec::parse(&matrix).unwrap();
        let cells = spec.cells().unwrap();
        let on = |w: &str| {
            let mut v: Vec<&str> = cells
                .iter()
                .filter(|c| c.workload == w)
                .map(|c| c.variant.as_str())
                .collect();
            v.sort();
            v
        };
        assert_eq!(on("forkexit"), ["a", "b", "fixed"]);
        assert_eq!(on("buildkernel"), ["b"]);
    }

    #[test]
    fn rows_judge_exit_and_rule() {
        let row = |expected: Option<&str>, exit, failed: &[&str]| Row {
            mutation: "m".into(),
            expected: expected.into_iter().map(String::from).collect(),
            exit,
            failed: failed.iter().map(|s| s.to_string()).collect(),
        };
        assert!(row(None, 0, &[]).as_expected());
        assert!(!row(None, 3, &["x"]).as_expected());
        assert!(row(Some("x"), 3, &["y", "x"]).as_expected());
        assert!(
            !row(Some("x"), 3, &["y"]).as_expected(),
            "caught by the wrong rule"
        );
        assert!(!row(Some("x"), 0, &[]).as_expected());
        let either = Row {
            expected: vec!["x".into(), "z".into()],
            ..row(None, 3, &["y", "z"])
        };
        assert!(either.as_expected(), "one of its rules failed");
        assert!(table(&[row(Some("x"), 3, &["x"])]).contains("as expected"));
    }
}
