//! The matrix pipeline end to end, on real QEMU runs of the real kernel:
//! `harness matrix` (whole, sharded, killed and resumed), `merge`, `gate`
//! and `plot`, each run as the harness binary a user runs.
//!
//! The matrix is tiny (fixed x ipi-pingpong on 2 CPUs and pmap-selftest on
//! 1 and 2 CPUs, 2 reps: 6 runs of ~0.2 s under TCG). The tests take a
//! lock so that only one matrix runs at a time on the 2-core machines.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use harness::results::csv::read_rows_file;
use harness::results::model::Cell;
use harness::results::{load_rows, MatrixSpec, ResultRow};

use crate::common::{harness_cli, repo, run_cli};

const TINY: &str = r#"
variants = ["fixed"]
cpus = [1, 2]
reps = 2
accel = "tcg"
timeout_s = 60

[[workloads]]
name = "ipi-pingpong"
cpus = [2]

[[workloads]]
name = "pmap-selftest"
"#;

/// One matrix at a time (poisoning ignored: a failed test must not fail
/// the others).
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A temporary directory holding the tiny matrix file.
struct Tiny {
    dir: tempfile::TempDir,
}

impl Tiny {
    fn new() -> Tiny {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("tiny.toml"), TINY).unwrap();
        Tiny { dir }
    }
    fn matrix(&self) -> PathBuf {
        self.dir.path().join("tiny.toml")
    }
    fn out(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn cells(&self) -> BTreeSet<Cell> {
        MatrixSpec::parse(TINY)
            .unwrap()
            .cells()
            .unwrap()
            .into_iter()
            .collect()
    }
}

fn cells_of(rows: &[ResultRow]) -> BTreeSet<Cell> {
    rows.iter().map(ResultRow::cell).collect()
}

/// The tiny matrix, run once unsharded, shared by the tests that only read
/// it.
fn whole() -> &'static (Tiny, PathBuf) {
    static WHOLE: OnceLock<(Tiny, PathBuf)> = OnceLock::new();
    WHOLE.get_or_init(|| {
        let _one = serial();
        let tiny = Tiny::new();
        let out = tiny.out("whole");
        let o = run_cli(&[
            "matrix",
            "--matrix",
            path(&tiny.matrix()),
            "--out",
            path(&out),
        ]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "every run of the tiny matrix ends ok"
        );
        (tiny, out)
    })
}

#[test]
fn a_matrix_run_stores_every_cell_with_logs_metadata_and_revision() {
    let (tiny, out) = whole();
    let rows = load_rows(out).unwrap();
    assert_eq!(cells_of(&rows), tiny.cells());
    assert!(rows.iter().all(|r| r.outcome.is_ok()));
    // The checkout's revision in every row ("unknown" only outside git).
    let in_git = repo().join(".git").exists();
    assert!(rows
        .iter()
        .all(|r| !r.git_rev.is_empty() && (r.git_rev != "unknown" || !in_git)));
    // results.csv holds the same rows as runs/.
    assert_eq!(read_rows_file(&out.join("results.csv")).unwrap(), rows);
    for cell in tiny.cells() {
        let log = out.join("logs").join(format!("{}.log", cell.run_id()));
        let serial = fs::read_to_string(&log).unwrap();
        assert!(serial.contains("@pl end status=ok"), "{}", log.display());
        assert!(out
            .join("logs")
            .join(format!("{}.qemu.stderr", cell.run_id()))
            .exists());
    }
    let meta: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("metadata.json")).unwrap()).unwrap();
    assert_eq!(meta["accel"], "tcg");
    assert!(meta["accel_reason"].as_str().unwrap().contains("tcg"));
    assert!(meta["qemu_version"].as_str().unwrap().starts_with("QEMU"));
    assert!(meta["host_cores"].as_u64().unwrap() >= 1);
    assert!(!meta["finished"].as_str().unwrap().is_empty());
}

#[test]
fn the_gate_passes_on_the_tree_and_fails_naming_a_broken_rule() {
    let (tiny, out) = whole();
    let _one = serial();
    // The shipped rules, scoped to the tiny matrix, against itself as the
    // baseline.
    let o = run_cli(&["gate", "--in", path(out), "--baseline", path(out)]);
    assert_eq!(o.status.code(), Some(0));
    assert!(text(&o).contains("gate: PASSED"));
    assert!(text(&o).contains("every IPI sent was received"));
    assert!(text(&o).contains("every cell of the matrix is present"));

    // Required baseline rules and no baseline: an error, not a skip,
    // unless asked for with --no-baseline.
    let o = run_cli(&["gate", "--in", path(out)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--no-baseline"));
    let o = run_cli(&["gate", "--in", path(out), "--no-baseline"]);
    assert_eq!(o.status.code(), Some(0));

    // A rule the real figures break: ping-pong sends thousands of IPIs.
    let rules = tiny.out("strict.toml");
    fs::write(
        &rules,
        "[[bound]]\nname = \"ping-pong sends at most 10 IPIs\"\nworkload = \"ipi-pingpong\"\n\
         figure = \"ipi.sent.other\"\nstat = \"max\"\nmax = 10\nany_accel = true\n",
    )
    .unwrap();
    let o = run_cli(&["gate", "--in", path(out), "--rules", path(&rules)]);
    assert_eq!(o.status.code(), Some(3), "a failed rule exits 3");
    let table = text(&o);
    let line = table
        .lines()
        .find(|l| l.contains("ping-pong sends at most 10 IPIs"))
        .unwrap();
    assert!(
        line.starts_with("FAIL") && line.contains("out of bounds"),
        "{line}"
    );
    assert!(table.contains("gate: FAILED"));
}

#[test]
fn merged_shards_hold_the_unsharded_cells() {
    let (tiny, out) = whole();
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let shards: Vec<PathBuf> = (1..=2).map(|k| dir.path().join(format!("s{k}"))).collect();
    for (k, shard) in shards.iter().enumerate() {
        let o = run_cli(&[
            "matrix",
            "--matrix",
            path(&tiny.matrix()),
            "--shard",
            &format!("{}/2", k + 1),
            "--out",
            path(shard),
        ]);
        assert_eq!(o.status.code(), Some(0));
    }
    let a = cells_of(&load_rows(&shards[0]).unwrap());
    let b = cells_of(&load_rows(&shards[1]).unwrap());
    assert!(a.is_disjoint(&b) && !a.is_empty() && !b.is_empty());
    let merged = dir.path().join("merged");
    let o = run_cli(&[
        "merge",
        "--out",
        path(&merged),
        path(&shards[0]),
        path(&shards[1]),
    ]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        cells_of(&load_rows(&merged).unwrap()),
        cells_of(&load_rows(out).unwrap())
    );
    assert_eq!(cells_of(&load_rows(&merged).unwrap()), tiny.cells());
}

/// Run files present in `out` (whole files only; temporaries start with '.').
fn stored(out: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(out.join("runs")) else {
        return Vec::new();
    };
    entries
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            !name.starts_with('.') && name.ends_with(".csv")
        })
        .collect()
}

/// Starts the matrix in the background and kills it with `signal` once
/// `after` more runs than `before` are stored.
fn start_and_kill(tiny: &Tiny, out: &Path, resume: bool, after: usize, signal: i32) -> Output {
    let before = stored(out).len();
    let mut cmd = harness_cli();
    cmd.args(["matrix", "--matrix", path(&tiny.matrix())])
        .args(["--out", path(out), "--jobs", "1", "--accel", "tcg-icount"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if resume {
        cmd.arg("--resume");
    }
    let child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while stored(out).len() < before + after {
        assert!(Instant::now() < deadline, "no run finished in time");
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
    let out = child.wait_with_output().unwrap();
    eprintln!(
        "killed with {signal}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn a_killed_matrix_keeps_whole_runs_and_resume_completes_it() {
    let _one = serial();
    let tiny = Tiny::new();
    let out = tiny.out("killed");
    let total = tiny.cells().len();

    // SIGKILL after the first run: no handler runs, yet every stored file
    // is whole (written to a temporary and renamed).
    let o = start_and_kill(&tiny, &out, false, 1, libc::SIGKILL);
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&o.status),
        Some(libc::SIGKILL)
    );
    let first = stored(&out);
    assert!(!first.is_empty() && first.len() < total, "{first:?}");
    for file in &first {
        let rows = read_rows_file(file).unwrap();
        assert!(
            rows.iter().any(|r| r.metric == "run.outcome"),
            "{}",
            file.display()
        );
    }

    // SIGTERM during a resume: the handler stops the run in flight (not
    // stored) and exits 130; what finished stays.
    let o = start_and_kill(&tiny, &out, true, 1, libc::SIGTERM);
    assert_eq!(o.status.code(), Some(130));
    assert!(String::from_utf8_lossy(&o.stdout).contains("--resume"));
    let second = stored(&out).len();
    assert!(
        second > first.len() && second < total,
        "{second} of {total}"
    );

    // Resume to the end: every cell exactly once.
    let o = run_cli(&[
        "matrix",
        "--matrix",
        path(&tiny.matrix()),
        "--out",
        path(&out),
        "--jobs",
        "1",
        "--accel",
        "tcg-icount",
        "--resume",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let rows = read_rows_file(&out.join("results.csv")).unwrap();
    let runs: Vec<String> = rows
        .iter()
        .filter(|r| r.metric == "run.outcome")
        .map(|r| r.run_id.clone())
        .collect();
    let unique: BTreeSet<&String> = runs.iter().collect();
    assert_eq!(runs.len(), total, "one run per cell");
    assert_eq!(unique.len(), total, "no duplicate cell");

    // Without --resume the stored runs are not overwritten.
    let o = run_cli(&[
        "matrix",
        "--matrix",
        path(&tiny.matrix()),
        "--out",
        path(&out),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--resume"));
}

#[test]
fn plot_draws_every_chart_the_real_figures_support() {
    let (_, out) = whole();
    let _one = serial();
    let o = run_cli(&["plot", "--in", path(out)]);
    assert_eq!(o.status.code(), Some(0));
    let charts = out.join("charts");
    let rows = load_rows(out).unwrap();
    let has = |metric_prefix: &str| rows.iter().any(|r| r.metric.starts_with(metric_prefix));
    let mut expected = vec![
        // pmap-selftest sends shootdowns on 2 CPUs.
        "ipis-per-op-pmap-selftest",
        // ipi-pingpong reports its IPIs per (from, to) pair.
        "heatmap-fixed-ipi-pingpong-c2",
    ];
    // The rate and wait-CDF charts need figures the kernel's own workloads
    // do not report yet (an elapsed time, the ack-wait histogram); they must
    // appear as soon as the kernel reports them.
    if has("workload.elapsed_ns") || has("pmap-selftest.elapsed_ns") {
        expected.push("rate-pmap-selftest");
    }
    if has("shoot.wait.ack.log2.") {
        expected.push("ack-wait-cdf-pmap-selftest");
    }
    for stem in expected {
        let png = charts.join(format!("{stem}.png"));
        let svg = charts.join(format!("{stem}.svg"));
        assert!(
            fs::metadata(&svg).unwrap().len() > 3_000,
            "{}",
            svg.display()
        );
        assert!(
            fs::metadata(&png).unwrap().len() > 10_000,
            "{}",
            png.display()
        );
        let mut reader = png::Decoder::new(fs::File::open(&png).unwrap())
            .read_info()
            .unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert!(info.width >= 600 && info.height >= 400, "{}", png.display());
    }
    let index = fs::read_to_string(charts.join("index.md")).unwrap();
    assert!(index.contains("ipis-per-op-pmap-selftest.png"));
    assert!(index.contains("| fixed | pmap-selftest | 2 |"), "{index}");
}

/// The negative control's expected failure is not a matrix failure, and an
/// expectation that does not hold is: lost-shootdown's coherence run on 2
/// CPUs must end failed (the oracle catches its stale reads), and a fixed
/// run expected to fail that ends ok makes the matrix exit 3.
#[test]
fn expected_outcomes_decide_the_exit_status() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let matrix = |expect_variant: &str| {
        format!(
            r#"
variants = ["lost-shootdown", "fixed"]
cpus = [2]
reps = 1
accel = "tcg"
# munmap mode alone: its rounds catch lost-shootdown on 2 CPUs in every
# run (results/charts/mutants.md), at a fifth of mode=all's time.
[[workloads]]
name = "coherence"
params = {{ mode = "munmap", rounds = "4" }}
[[expect]]
variant = "{expect_variant}"
workload = "coherence"
outcome = "failed"
why = "test"
"#
        )
    };
    for (variant, status) in [("lost-shootdown", 0), ("fixed", 3)] {
        let file = dir.path().join(format!("expect-{variant}.toml"));
        fs::write(&file, matrix(variant)).unwrap();
        let out_dir = dir.path().join(format!("out-{variant}"));
        let out = run_cli(&["matrix", "--matrix", path(&file), "--out", path(&out_dir)]);
        assert_eq!(out.status.code(), Some(status), "{variant}: {}", text(&out));
        if status == 0 {
            assert!(text(&out).contains("failed as expected"), "{}", text(&out));
        } else {
            assert!(text(&out).contains("ok, expected failed"), "{}", text(&out));
        }
    }
}
