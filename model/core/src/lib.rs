//! pmaplab's memory-system model: what caches, TLBs and interrupts would
//! cost on a real machine, for guest code that runs under QEMU TCG, which
//! has none of them.
//!
//! The QEMU plugin (model/plugin) reports each vCPU's instructions, memory
//! accesses, TLB invalidations and the kernel's hints to a [`Model`], one
//! per cost [`Profile`]; the model answers with deterministic counters and
//! per-CPU modeled clocks ([`Model::metrics`]). Everything here is plain
//! Rust, unit-tested on the host.
//!
//! - [`profile`]: the cost profile (TOML): cycles per event, TLB shape.
//! - [`coherence`]: per-line MESI-style write-invalidate coherence.
//! - [`tlb`]: per-CPU set-associative TLBs and stale-translation verdicts.
//! - [`clock`]: per-CPU modeled clocks, causal jumps, skew.
//! - [`model`]: the per-event API tying them together, and its counters.
//! - [`report`]: metrics as lab_core report lines.
//!
//! Determinism: the model's state depends only on the order of the events
//! it is given (no time, no randomness), and its output is sorted, never
//! taken from a hash map's iteration order.

pub mod clock;
pub mod coherence;
pub mod model;
pub mod profile;
pub mod report;
pub mod tlb;

pub use model::Model;
pub use profile::{Profile, ProfileError};
pub use report::Metric;
