//! The oracles' mutation score, a fast subset (`harness mutants --aimed`;
//! the full verb runs every oracle on every mutant): seven mutants on 2
//! CPUs under TCG, each run only under the oracles its file's `catch`
//! names, are caught there (the one-page remove, a range, the
//! copy-on-write replacement and DragonFly's truncated address list by
//! their coherence modes; the initiator that does not wait for
//! acknowledgements by shoot-storm's readers with interrupts off), and the
//! correct `fixed` kernel, run under every one of those oracles, is clean
//! with checks and completed rounds in each. Then the unsafe form of
//! in-context flushes (a kernel request deferred) on 2 and 4 CPUs, where
//! shoot-storm's CPU that only reads sees it (on 2 CPUs in a run of its
//! own, shoot-storm/reader), beside the safe form, clean.

use std::path::Path;

use harness::accel::Accel;
use harness::mutants::{self, MutantsOptions};

use harness::qemu::DEFAULT_QEMU;
use harness::workspace::Workspace;

/// Runs `harness mutants` on each of `cpus` CPUs under TCG for `only` and
/// `controls` (4 rounds per coherence mode); returns the outcome and its
/// table (for assertion messages).
fn run_mutants(cpus: &[u32], only: &[&str], controls: &[&str]) -> (mutants::Findings, String) {
    let ws = Workspace::at(Path::new(env!("CARGO_MANIFEST_DIR")).join("..")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let opts = MutantsOptions {
        jobs: Some(2),
        accels: vec![Accel::Tcg],
        cpus: cpus.to_vec(),
        only: only.iter().map(|s| s.to_string()).collect(),
        controls: controls.iter().map(|s| s.to_string()).collect(),
        rounds: Some(4),
        // The plain oracles only: the chaos runs are tested apart.
        chaos: 0,
        // Each mutant under the oracles its file names, the controls under
        // all of those: what these tests assert, in half the boots.
        aimed: true,
        out: Some(tmp.path().to_path_buf()),
        qemu: DEFAULT_QEMU.into(),
    };
    let outcome = mutants::run(&ws, &opts).unwrap();
    let table = mutants::text_table(&outcome);
    (outcome, table)
}

/// The cell of `name` in `outcome` (its first, by CPU count).
fn cell<'a>(outcome: &'a mutants::Findings, table: &str, name: &str) -> &'a mutants::Cell {
    outcome
        .cells
        .iter()
        .find(|c| c.target == name)
        .unwrap_or_else(|| panic!("no cell for {name}\n{table}"))
}

/// The cell of `name` on `cpus` CPUs.
fn cell_on<'a>(
    outcome: &'a mutants::Findings,
    table: &str,
    name: &str,
    cpus: u32,
) -> &'a mutants::Cell {
    outcome
        .cells
        .iter()
        .find(|c| c.target == name && c.cpus == cpus)
        .unwrap_or_else(|| panic!("no cell for {name} on {cpus} CPUs\n{table}"))
}

#[test]
fn oracles_catch_mutants_and_pass_the_fixed_kernel() {
    let (outcome, table) = run_mutants(
        &[2],
        &[
            "lost-shootdown",
            "mutant-range-no-ipi",
            "mutant-cow-no-shoot",
            "mutant-dfly-truncate",
            "mutant-no-wait",
            "mutant-cow-skip-copy",
            "mutant-latr-early-free",
        ],
        &["fixed"],
    );
    let cell = |name: &str| cell(&outcome, &table, name);
    for (name, mode) in [
        ("lost-shootdown", "munmap"),
        ("mutant-range-no-ipi", "range"),
        ("mutant-cow-no-shoot", "cow"),
        ("mutant-dfly-truncate", "range"),
        ("mutant-no-wait", "shoot-storm"),
        ("mutant-cow-skip-copy", "cow"),
    ] {
        let c = cell(name);
        assert!(
            c.caught_by.iter().any(|b| b.starts_with(mode)),
            "{name} not caught by {mode}\n{table}"
        );
    }
    // LATR without its quarantine (coherence runs it with lazy=on): a
    // frame reused while reachable shows in a munmap mode's rounds.
    let latr = cell("mutant-latr-early-free");
    assert!(
        latr.caught_by
            .iter()
            .any(|b| ["munmap", "range", "tlb"].iter().any(|m| b.starts_with(m))),
        "mutant-latr-early-free not caught by a munmap mode\n{table}"
    );
    let fixed = cell("fixed");
    assert!(fixed.clean(), "fixed is not clean\n{table}");
    assert!(fixed.empty_modes.is_empty(), "{table}");
    assert_eq!(fixed.stale, 0, "{table}");
    assert!(outcome.passed(), "{table}");
}

#[test]
fn deferring_a_kernel_flush_is_caught_and_in_context_flush_is_clean() {
    let (outcome, table) = run_mutants(
        &[2, 4],
        &["mutant-defer-kernel-flush"],
        &["in-context-flush"],
    );
    for (cpus, oracle) in [(2, "shoot-storm/reader"), (4, "shoot-storm")] {
        let mutant = cell_on(&outcome, &table, "mutant-defer-kernel-flush", cpus);
        assert!(
            mutant
                .caught_by
                .iter()
                .any(|b| b.starts_with(&format!("{oracle} ("))),
            "the deferred kernel flush was not caught by {oracle} on {cpus} CPUs\n{table}"
        );
        let control = cell_on(&outcome, &table, "in-context-flush", cpus);
        assert!(control.clean(), "in-context-flush is not clean\n{table}");
        assert!(control.empty_modes.is_empty(), "{table}");
    }
    assert!(outcome.passed(), "{table}");
}
