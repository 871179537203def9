//! pmaplab's host harness: builds kernel variants, boots them in QEMU and
//! says what happened.
//!
//! One module per concern, one per verb (in the manner of hyperfine):
//! - [`workspace`]: where the repository, its caches and its runs live.
//! - [`variants`]: `variants/*.toml`, checked against the kernel's features.
//! - [`kernel_build`]: the `build` verb; one kernel ELF per variant.
//! - [`qemu`]: the only module that builds a QEMU command line or starts QEMU.
//! - [`accel`]: the accelerators, what the user asks for and what a boot uses.
//! - [`accel_probe`]: the probe behind `--accel auto` (boots QEMU, so above
//!   [`qemu`] and [`outcome`]).
//! - [`model`]: the memory-system model (`--accel tcg-model`): its plugin,
//!   the kernel's doorbell, the plugin's figures.
//! - [`symbols`]: the kernel ELF's symbols, and which one holds a guest
//!   physical address (the model's hot lines, the doorbell).
//! - [`report`]: reads a run's serial log with the report protocol
//!   (`lab_core::report`).
//! - [`outcome`]: QEMU's exit plus the report, decoded into what happened.
//! - [`run`]: the `run` verb, and [`run::run_into`] for verbs that run many.
//! - [`matrix`]: the `matrix` verb: every cell of a matrix file, in
//!   parallel within a core budget, into a results directory.
//! - [`mutants`]: the `mutants` verb: every shootdown path broken on
//!   purpose, and whether the stale-TLB oracles catch it.
//! - [`exhaustive`]: the host's exhaustive (loom) checks a mutant names,
//!   run by `mutants`.
//! - [`verbs`]: the thin verbs, one module each: `merge`, `plot`, `gate`,
//!   `baseline`, `export` over a results directory; `explain` and
//!   `gate --self-test`, which boot their own runs.
//! - [`compare`]: the `compare` verb: what a change did, two results
//!   directories or two git revisions, each figure against its threshold.
//! - [`reproduce`]: the `reproduce` verb: the seeds' published figures
//!   beside the lab's, from small matrices, as a table and a chart.
//! - [`cli`]: the command line, resolved into the plain structs above.
//! - [`results`]: the tidy result rows, their on-disk store, metadata,
//!   derived figures, shard merging, exports and the matrix file.
//! - [`plot`]: comparison charts (SVG and PNG) and their index page.
//! - [`gate`]: CI regression gating against rules in `variants/gates.toml`.

pub mod accel;
pub mod accel_probe;
pub mod cli;
pub mod compare;
pub mod exhaustive;
pub mod gate;
pub mod kernel_build;
pub mod matrix;
pub mod model;
pub mod mutants;
pub mod outcome;
pub mod plot;
pub mod qemu;
pub mod report;
pub mod reproduce;
pub mod results;
pub mod run;
pub mod symbols;
pub mod variants;
pub mod verbs;
pub mod workspace;
