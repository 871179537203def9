//! The oracles' mutation score, a fast subset (`harness mutants` runs them
//! all): five mutants on 2 CPUs under TCG are caught by the oracle aimed at
//! their path (the one-page remove, a range, the copy-on-write replacement
//! and DragonFly's truncated address list by their coherence modes; the
//! initiator that does not wait for acknowledgements by shoot-storm's
//! readers with interrupts off), and the correct `fixed` kernel is clean
//! with checks and completed rounds in every mode. Boots the real kernels:
//! about 40 s.

use std::path::Path;

use harness::accel::Accel;
use harness::mutants::{self, MutantsOptions};
use harness::qemu::DEFAULT_QEMU;
use harness::workspace::Workspace;

#[test]
fn oracles_catch_mutants_and_pass_the_fixed_kernel() {
    let ws = Workspace::at(Path::new(env!("CARGO_MANIFEST_DIR")).join("..")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let opts = MutantsOptions {
        jobs: Some(2),
        accels: vec![Accel::Tcg],
        cpus: vec![2],
        only: vec![
            "lost-shootdown".into(),
            "mutant-range-no-ipi".into(),
            "mutant-cow-no-shoot".into(),
            "mutant-dfly-truncate".into(),
            "mutant-no-wait".into(),
        ],
        controls: vec!["fixed".into()],
        rounds: Some(4),
        out: Some(tmp.path().to_path_buf()),
        qemu: DEFAULT_QEMU.into(),
    };
    let outcome = mutants::run(&ws, &opts).unwrap();
    let table = mutants::text_table(&outcome);
    let cell = |name: &str| {
        outcome
            .cells
            .iter()
            .find(|c| c.target == name)
            .unwrap_or_else(|| panic!("no cell for {name}\n{table}"))
    };
    for (name, mode) in [
        ("lost-shootdown", "munmap"),
        ("mutant-range-no-ipi", "range"),
        ("mutant-cow-no-shoot", "cow"),
        ("mutant-dfly-truncate", "range"),
        ("mutant-no-wait", "shoot-storm"),
    ] {
        let c = cell(name);
        assert!(
            c.caught_by.iter().any(|b| b.starts_with(mode)),
            "{name} not caught by {mode}\n{table}"
        );
    }
    let fixed = cell("fixed");
    assert!(fixed.clean(), "fixed is not clean\n{table}");
    assert!(fixed.empty_modes.is_empty(), "{table}");
    assert_eq!(fixed.stale, 0, "{table}");
    assert!(outcome.passed(), "{table}");
}
