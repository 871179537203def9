//! The workloads a run can be asked for (`workload=NAME` on the command line).
//!
//! Each workload declares its parameters, so the command line is checked
//! before anything runs, and reports its own figures as metric lines.

use lab_core::cmdline::{self, CmdlineError, ParamSpec, Params};
use lab_core::model_hint::Mark;
use lab_core::report::Status;

use crate::boot::start_info::StartInfo;
use crate::{println, report};

mod diagnostics;
mod fault;
mod hello;
mod ipi_pingpong;
mod model_selftest;
mod pmap_inspect;
mod pmap_selftest;
mod programs;
mod shoot_storm;
mod user;

/// One entry of the workload table.
pub struct Workload {
    pub name: &'static str,
    pub help: &'static str,
    pub params: &'static [ParamSpec],
    pub run: fn(&Params<'_>, &StartInfo) -> Status,
}

/// Every workload the kernel knows, by name.
pub static WORKLOADS: &[&Workload] = &[
    &hello::HELLO,
    &programs::PROGRAMS_CHECK,
    &diagnostics::PANIC,
    &diagnostics::HANG,
    &diagnostics::TRIPLE_FAULT,
    &diagnostics::SPIN,
    &fault::FAULT,
    &ipi_pingpong::IPI_PINGPONG,
    &model_selftest::MODEL_SELFTEST,
    &pmap_selftest::PMAP_SELFTEST,
    &user::FORKEXIT_W,
    &user::BUILDKERNEL_W,
    &user::MMAP_STORM_W,
    &user::COHERENCE_W,
    &user::USERTEST_W,
    &user::BOMBS_W,
    &user::FUZZ_W,
    &user::BUSY_TARGET_W,
    &user::EXEC_RACE_W,
    &shoot_storm::SHOOT_STORM,
];

/// Runs the workload the command line names. A bad command line is reported
/// as an `error` record naming what is wrong, and fails the run.
pub fn run(info: &StartInfo) -> Status {
    let line = info.cmdline;
    let checked = cmdline::workload(line).and_then(|name| {
        let workload = WORKLOADS
            .iter()
            .find(|w| w.name == name)
            .ok_or(CmdlineError::UnknownWorkload(name))?;
        Ok((workload, Params::parse(line, workload.params)?))
    });
    match checked {
        // `pcid` on a CPU without PCID (QEMU's TCG offers none): the
        // variant cannot be what it says, so the run says so and stops.
        Ok(_) if cfg!(feature = "pcid") && !crate::mm::pcid::enabled() => {
            report::error(
                "unsupported",
                format_args!(
                    "variant needs PCID and this CPU offers none (CPUID.01H:ECX bit 17 clear; \
                     QEMU's TCG never offers it: use KVM on a host CPU with PCID)"
                ),
            );
            Status::Failed
        }
        Ok((workload, params)) => {
            // Under `model=on` the model times the workload on its clocks
            // from here to its return (set-up of its first process
            // included; the workload's own elapsed_ns is guest time).
            crate::arch::model_hint::mark(Mark::WorkloadBegin);
            let status = (workload.run)(&params, info);
            crate::arch::model_hint::mark(Mark::WorkloadEnd);
            status
        }
        Err(err) => {
            report::error("cmdline", format_args!("{err}"));
            if matches!(
                err,
                CmdlineError::UnknownWorkload(_) | CmdlineError::MissingWorkload
            ) {
                // Free-form help on the console, for the person reading the log.
                println!("known workloads:");
                for w in WORKLOADS {
                    println!("  {:<16} {}", w.name, w.help);
                }
            }
            Status::Failed
        }
    }
}
