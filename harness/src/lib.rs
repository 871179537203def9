//! pmaplab's host harness as a library: the pieces the `harness` verbs are
//! built from, kept out of `main.rs` so they are unit-tested on their own.
//!
//! - [`results`]: the tidy result rows, their on-disk store, metadata,
//!   derived figures, shard merging, exports and the matrix file.
//! - [`plot`]: comparison charts (SVG and PNG) and their index page.
//! - [`gate`]: CI regression gating against rules in `variants/gates.toml`.

pub mod gate;
pub mod plot;
pub mod results;
