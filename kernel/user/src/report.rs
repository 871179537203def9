//! Figures and failures in the run's report (`lab_core::report` records,
//! written by the kernel on the program's behalf).

use core::fmt::{self, Write};

use lab_core::report::Scope;
use lab_core::syscall::REPORT_MSG_MAX;

use crate::rt::LineBuf;
use crate::{println, sys};

/// Reports a machine-wide metric. Panics if the kernel rejects it (a bad
/// name or unit is a bug in the program).
pub fn metric(name: &str, value: u64, unit: &str) {
    metric_scoped(name, value, unit, Scope::Global);
}

/// Reports a metric for one CPU.
pub fn metric_cpu(name: &str, value: u64, unit: &str, cpu: u32) {
    metric_scoped(name, value, unit, Scope::Cpu(cpu));
}

pub fn metric_scoped(name: &str, value: u64, unit: &str, scope: Scope) {
    let value = i64::try_from(value).unwrap_or(i64::MAX);
    if let Err(e) = sys::report_metric(name, value, unit, scope) {
        panic!("report_metric({name}, {unit}): {e}");
    }
}

/// Reports a failure (an `error` record of `kind`; the run is marked
/// failed) and prints it.
pub fn error(kind: &str, args: fmt::Arguments<'_>) {
    let mut msg = LineBuf::<REPORT_MSG_MAX>::new();
    let _ = msg.write_fmt(args);
    println!("{}: error: {}", crate::program_name(), msg.as_str());
    if let Err(e) = sys::report_error(kind, msg.as_str()) {
        println!("report_error({kind}): {e}");
    }
}

/// Reports a machine-wide metric whose name is formatted, e.g.
/// `metric_fmt(format_args!("forkexit.instance.{i}.loops"), n, "count")`.
pub fn metric_fmt(name: fmt::Arguments<'_>, value: u64, unit: &str) {
    let mut buf = LineBuf::<{ lab_core::syscall::REPORT_NAME_MAX }>::new();
    let _ = buf.write_fmt(name);
    metric(buf.as_str(), value, unit);
}

/// Reports the run's figures in the harness's canonical names: the
/// workload's units of work done (`workload.ops`: forkexit loops,
/// buildkernel jobs, mmap-storm map-touch-unmap cycles, coherence checks)
/// and the guest time they took (`workload.elapsed_ns`). The harness
/// derives `ops_per_s` and the IPIs per op from these two.
pub fn workload(ops: u64, elapsed_ns: u64) {
    metric("workload.ops", ops, "count");
    metric("workload.elapsed_ns", elapsed_ns, "ns");
}

/// `ops` per second of `elapsed_ns` (0 when no time passed), in integer
/// arithmetic: user programs print and report rates without floating point.
pub fn rate_hz(ops: u64, elapsed_ns: u64) -> u64 {
    if elapsed_ns == 0 {
        0
    } else {
        (u128::from(ops) * 1_000_000_000 / u128::from(elapsed_ns)) as u64
    }
}
