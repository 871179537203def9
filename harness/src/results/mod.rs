//! Results: what a matrix run leaves behind, and everything computed from it.
//!
//! # Data model
//!
//! A *cell* ([`Cell`]) is one point of a matrix: (variant, workload, params,
//! cpus, accel, machine, rep). Running a cell once gives a *run*
//! ([`RunRecord`], handed over by the runner), which is stored as tidy rows
//! ([`ResultRow`]): one row per run x metric, with the run's cell repeated
//! on every row so any row can be read alone. Every run, whatever its
//! outcome, also gets a `run.outcome` row (value 1 when the outcome is `ok`,
//! else 0) and a `run.wall_s` row, so a failed run is never lost.
//!
//! # On disk ([`Store`])
//!
//! ```text
//! DIR/runs/<run_id>.csv   one file per run, written atomically: the truth
//! DIR/results.csv         all runs combined, rewritten by Store::finish
//! DIR/metadata.json       one per matrix (host, QEMU, toolchain, accel)
//! ```
//!
//! Every file is written to a temporary file in the same directory and then
//! renamed over its target, so a reader (or a `--resume` after a kill)
//! only ever sees whole files. `--resume` reads the cells of `runs/*.csv`;
//! `results.csv` is a convenience for people and other tools and is
//! regenerated from `runs/` (a bare `results.csv` with no `runs/`, e.g. a
//! committed baseline, is read as it is).
//!
//! # Metric convention (what the workloads and the kernel report)
//!
//! Every workload reports two Global metrics (derive also accepts the
//! names the user programs use today, e.g. `forkexit.loops` and
//! `forkexit.elapsed_ns`; see [`derive`]'s aliases):
//! - `workload.ops` (count): its unit of work: loops for forkexit, jobs for
//!   buildkernel, map-touch-unmap operations for mmap-storm, checks for
//!   coherence, round trips for ipi-pingpong;
//! - `workload.elapsed_ns` (ns): guest time the work took.
//!
//! The kernel's counters (kernel/src/stats.rs), `<kind>` one of
//! `shootpage|shootrange|shoottlb|other`:
//! - `ipi.sent.<kind>`, `ipi.received.<kind>`: Global and per Cpu;
//! - `ipi.pair.sent.<kind>`, `ipi.pair.received.<kind>`: per (from, to) Pair;
//! - `shoot.calls.<kind>`, `shoot.noipi.<kind>` (the calls that sent no IPI);
//! - `shoot.wait.slot`, `shoot.wait.ack` (cycles, summed);
//! - `pmap.remove.calls`, `pmap.remove.early`, `pmap.destroy.calls`,
//!   `pmap.destroy.cpus_nonzero`;
//! - the acknowledgement-wait distribution as a log2 histogram:
//!   `shoot.wait.ack.log2.<b>` (count, Global or Cpu) is the number of
//!   shootdowns whose wait for acknowledgements took `[2^b, 2^(b+1))` cycles
//!   (bucket 0 also holds waits of 0 cycles). A histogram, unlike
//!   quantiles, adds up across CPUs and repetitions, so the CDF chart and
//!   the `ack_wait_p50/p90/p99` figures are computed from the summed buckets.
//! - the coherence workload's `coherence.stale_reads` (or `coherence.stale`,
//!   figure `stale_reads`) (count): reads of the
//!   old frame after the shootdown for it returned. It reports the count
//!   whether or not it then ends the run with `status=failed`; figures
//!   normally come from `ok` runs only, and gate rules that must see the
//!   negative control's failed runs say `include_failed = true`.
//!
//! Where a Global row for a counter is missing, derived figures fall back
//! to the sum of its Cpu rows. The figures computed from them are listed in
//! [`derive`].

pub mod csv;
pub mod derive;
pub mod export;
pub mod matrix;
pub mod merge;
pub mod metadata;
pub mod model;
pub mod stats;
pub mod store;
pub mod summary;

pub use derive::RunFigures;
pub use matrix::MatrixSpec;
pub use merge::{merge, shard, ShardSpec};
pub use metadata::{read_metadata, write_metadata, Metadata};
pub use model::{Cell, Metric, Outcome, ResultRow, RunRecord};
pub use store::{load_rows, Store};
pub use summary::{GroupKey, GroupSummary};
