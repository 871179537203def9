//! The harness's integration tests, in one test binary: cargo runs test
//! binaries one after another, so a file of its own whose last test is a
//! long one (a 10,000-round stress boot, the gate's self-test) left the
//! second core idle until it ended. In one binary the test threads take
//! the next test from any file. Most of these boot the real kernel in
//! QEMU; `common` bounds how many QEMUs run at once, across all of them.
//!
//! One file per subject; run one with `cargo test -p harness --test lab
//! <file>::` (e.g. `gate::`).

mod common;

mod boot;
mod causes;
mod charts;
mod compare;
mod gate;
mod image;
mod matrix;
mod model;
mod model_charts;
mod mutants;
mod pmap;
mod proc;
mod reproduce;
mod robust;
mod scale;
mod shootdown;
mod smp;
mod variants;
mod workloads;
