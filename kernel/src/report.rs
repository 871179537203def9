//! The kernel's side of the report protocol (defined in `lab_core::report`).
//!
//! `begin` once, any number of `metric`s and `error`s, then [`end`], which
//! also ends the run by exiting QEMU. The metric count in the `end` line is
//! kept here.

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};
use lab_core::report::{self, ExitCode, Scope, Status};

use crate::{build_info, console, qemu};

static METRICS_WRITTEN: AtomicU64 = AtomicU64::new(0);

/// Writes the `begin` line, on a line of its own: firmware may have left
/// a partial line on COM1 (SeaBIOS on q35 ends with "Booting from ROM..").
/// The variant is the name the harness gives on the command line
/// (`variant=`, lab_core::cmdline); without one, "fixed" for a build with
/// no features (a plain `cargo build` is the fixed pmap), else "custom".
pub fn begin(cpus: u32, cmdline: &str) {
    let variant = lab_core::cmdline::kernel_name(cmdline, "variant").unwrap_or(
        if build_info::FEATURES.is_empty() {
            "fixed"
        } else {
            "custom"
        },
    );
    console::with(|w| {
        w.write_char('\n')?;
        report::write_begin(w, variant, build_info::FEATURES, cpus, cmdline)
    })
    .ok();
}

/// Writes one metric line.
pub fn metric(name: &str, value: impl fmt::Display, unit: &str, scope: Scope) {
    console::with(|w| report::write_metric(w, name, value, unit, scope)).ok();
    METRICS_WRITTEN.fetch_add(1, Ordering::Relaxed);
}

/// Writes an `error` line (the run goes on; its status is the caller's).
pub fn error(kind: &str, msg: fmt::Arguments<'_>) {
    console::with(|w| report::write_error(w, kind, msg)).ok();
}

/// Writes the `end` line and exits QEMU with the matching code.
pub fn end(status: Status) -> ! {
    let metrics = METRICS_WRITTEN.load(Ordering::Relaxed);
    console::with(|w| report::write_end(w, status, metrics)).ok();
    qemu::exit(match status {
        Status::Ok => ExitCode::Ok,
        Status::Failed => ExitCode::Failed,
    })
}
