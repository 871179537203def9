//! The gate's mutation proof, as a user runs it: `harness gate
//! --self-test` boots real kernels under tcg-icount (the unmodified tree,
//! a `fixed` built with `uninit-bitmap`, a `fixed` built with the
//! test-only `gate-selftest-slow-remove`) from a temporary variants
//! directory, removes one cell from a copy of the results, and checks
//! that the gate passes the tree and exits 3 on each mutation naming the
//! rule that caught it (harness/src/verbs/selftest.rs). Nothing in the
//! tree changes. About a minute; the table is printed
//! (`cargo test -p harness --test lab gate:: -- --nocapture`).

use std::process::Stdio;

use crate::common::harness_cli;

#[test]
fn the_gate_catches_every_planted_regression() {
    let out = harness_cli()
        .args(["gate", "--self-test"])
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    println!("{table}");
    assert_eq!(out.status.code(), Some(0), "the self-test passes");
    for (mutation, rule) in [
        ("unmodified tree", "(nothing)"),
        (
            "fixed built with uninit-bitmap",
            "IPIs per operation vs baseline",
        ),
        (
            "fixed built with gate-selftest-slow-remove",
            "operation rate vs baseline",
        ),
        ("one cell missing", "every cell of the matrix is present"),
    ] {
        let row = table
            .lines()
            .find(|l| l.starts_with(mutation))
            .unwrap_or_else(|| panic!("no row for '{mutation}'"));
        assert!(row.contains(rule) && row.contains("as expected"), "{row}");
    }
    assert!(!table.contains("WRONG"));
}
