//! The host's exhaustive checks of the shootdown protocols' cores: a
//! model-checking test in `kernel/lab-core` (`tests/protocols/`, built
//! with `--cfg loom`) that explores every interleaving of a small
//! configuration and *passes* when it finds the violation a mutant names.
//!
//! A mutant file's `exhaustive = "<test>"` names such a test; `harness
//! mutants` runs it once with [`command`] and records whether it passed
//! (caught), failed (missed: the checker found no violation, or the test
//! is not there to run) and how long it took, compilation included. The
//! loom build goes to its own target directory (`target/loom`), so it never
//! invalidates the host's ordinary build.

use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// The test target in lab-core that holds the exhaustive checks.
pub const TEST_TARGET: &str = "protocols";

/// What one exhaustive check found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// The test's name (the mutant file's `exhaustive`).
    pub test: String,
    /// The test passed: the checker found the mutant's violation.
    pub caught: bool,
    /// How the command ended, as a person reads it: `exit 0`, `exit 101`,
    /// `killed by signal 9`.
    pub status: String,
    /// The command line, to rerun it by hand.
    pub command: String,
    /// Wall time, the loom build included (the first check builds it).
    pub wall: Duration,
    /// The test binary ran no test of that name (cargo's "0 passed; 0
    /// failed" when `--exact` matched nothing): the test is not written yet.
    pub no_such_test: bool,
    /// It alone decides the mutant's verdict: the mutant file's `catch` is
    /// empty, because no oracle under QEMU can see its bug (e.g. a walk of
    /// a freed page table through a paging-structure cache, which TCG does
    /// not have).
    pub decides: bool,
}

impl Check {
    /// The table cell: `caught (12.3 s)`, `MISSED (exit 101, 40.0 s)`.
    pub fn cell(&self) -> String {
        let secs = self.wall.as_secs_f64();
        if self.caught {
            format!("caught ({secs:.1} s)")
        } else if self.no_such_test {
            format!("MISSED (no test `{}`, {secs:.1} s)", self.test)
        } else {
            format!("MISSED ({}, {secs:.1} s)", self.status)
        }
    }
}

impl fmt::Display for Check {
    /// One line for the console and the log: what ran and how it ended.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exhaustive check `{}`: {} ({}, {:.1} s): {}",
            self.test,
            if self.caught { "caught" } else { "MISSED" },
            self.status,
            self.wall.as_secs_f64(),
            self.command
        )?;
        if self.no_such_test {
            write!(f, " (the test binary has no test of that name)")?;
        }
        Ok(())
    }
}

/// The program, arguments and environment that run exhaustive test `test`:
/// `RUSTFLAGS="--cfg loom" cargo test --release -p lab-core --test protocols
/// --target-dir target/loom -- --exact <test>`, from the repository root.
pub fn command(test: &str) -> (Vec<String>, [(&'static str, &'static str); 1]) {
    let args = [
        "test",
        "--release",
        "-p",
        "lab-core",
        "--test",
        TEST_TARGET,
        "--target-dir",
        "target/loom",
        "--",
        "--exact",
        test,
    ];
    (
        args.iter().map(|s| s.to_string()).collect(),
        [("RUSTFLAGS", "--cfg loom")],
    )
}

/// The command as a shell line.
pub fn command_line(test: &str) -> String {
    let (args, env) = command(test);
    let env: Vec<String> = env.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{} cargo {}", env.join(" "), args.join(" "))
}

/// Whether cargo's test output says `--exact` matched no test: the
/// summary line counts nothing run, nothing failed, nothing ignored.
pub fn ran_no_test(output: &str) -> bool {
    output
        .lines()
        .any(|l| l.starts_with("test result:") && l.contains(" 0 passed; 0 failed; 0 ignored"))
}

/// Runs exhaustive test `test` in `root`, its output into `log`.
pub fn run(root: &Path, test: &str, log: &Path) -> Result<Check> {
    let (args, env) = command(test);
    let program = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let start = Instant::now();
    let mut cmd = duct::cmd(program, &args).dir(root);
    for (k, v) in env {
        cmd = cmd.env(k, v);
    }
    let out = cmd
        // A caller's encoded flags would override RUSTFLAGS and drop the
        // loom cfg.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .stdin_null()
        .stderr_to_stdout()
        .stdout_capture()
        .unchecked()
        .run()
        .with_context(|| format!("cannot start `{}` (is cargo on PATH?)", command_line(test)))?;
    let wall = start.elapsed();
    let text = String::from_utf8_lossy(&out.stdout);
    std::fs::write(log, text.as_bytes())
        .with_context(|| format!("cannot write {}", log.display()))?;
    // cargo's own complaint (no test target, a build error) says why the
    // command failed better than its exit code.
    let mut status = describe(&out.status);
    if let Some(error) = text.lines().find(|l| l.starts_with("error")) {
        status = format!("{status}: {error}");
    }
    // An `--exact` name that matches nothing exits 0 having run nothing:
    // that is no catch.
    let no_such_test = ran_no_test(&text);
    Ok(Check {
        test: test.to_string(),
        caught: out.status.success() && !no_such_test,
        status,
        command: command_line(test),
        wall,
        no_such_test,
        decides: false,
    })
}

/// An exit status as a person reads it.
fn describe(status: &std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        (None, None) => "ended without a status".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_is_the_loom_test_of_that_name() {
        assert_eq!(
            command_line("mutant_x"),
            "RUSTFLAGS=\"--cfg loom\" cargo test --release -p lab-core --test protocols \
             --target-dir target/loom -- --exact mutant_x"
        );
    }

    #[test]
    fn an_exact_name_that_matched_nothing_is_seen() {
        let none = "running 0 tests\n\ntest result: ok. 0 passed; 0 failed; 0 ignored; \
                    0 measured; 3 filtered out; finished in 0.00s\n";
        assert!(ran_no_test(none));
        let one = "running 1 test\ntest mutant_x ... ok\n\ntest result: ok. 1 passed; \
                   0 failed; 0 ignored; 0 measured; 2 filtered out\n";
        assert!(!ran_no_test(one));
    }

    #[test]
    fn cells_say_caught_or_why_missed() {
        let mut c = Check {
            test: "mutant_x".into(),
            caught: true,
            status: "exit 0".into(),
            command: command_line("mutant_x"),
            wall: Duration::from_millis(12_340),
            no_such_test: false,
            decides: false,
        };
        assert_eq!(c.cell(), "caught (12.3 s)");
        c.caught = false;
        c.status = "exit 101".into();
        assert_eq!(c.cell(), "MISSED (exit 101, 12.3 s)");
        assert!(c.to_string().contains("--exact mutant_x"), "{c}");
        c.no_such_test = true;
        c.status = "exit 0".into();
        assert_eq!(c.cell(), "MISSED (no test `mutant_x`, 12.3 s)");
    }
}
