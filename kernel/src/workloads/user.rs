//! The workloads that are user programs (lab_core::workloads::USER_WORKLOADS):
//! each validates the command line against its program's parameters, starts
//! processes, runs the program as the first process with `argv =
//! [program]` (its parameters are read with `getparam`), and waits for it.
//! The run is ok only if the program exited 0 and nothing called
//! `report_error`; a first process that was killed, or exited non-zero, is
//! an `error` record naming how.
//!
//! Figures a program cannot see are reported here, from the kernel's
//! counters, once it has ended: for buildkernel,
//! `buildkernel.exit_early_share`, the share of `pmap_remove` calls at exit
//! that returned early (`pmap.remove.exit_early / exit_calls`; FreeBSD
//! D32569 measured 15-20 % during a buildkernel; here the share of jobs
//! that never read the shared page decides it, see
//! `lab_core::workloads::job_reads_clock`).

use lab_core::cmdline::Params;
use lab_core::report::{Fixed, Scope, Status};
use lab_core::syscall::WaitStatus;
use lab_core::workloads::{
    UserWorkload, BOMBS, BUILDKERNEL, BUSY_TARGET, COHERENCE, EXEC_RACE, FORKEXIT, FUZZ,
    MMAP_STORM, USERTEST,
};

use super::Workload;
use crate::boot::start_info::StartInfo;
use crate::stats::{self, Event};
use crate::{proc, report, syscall};

/// A kernel workload entry for the user workload `$w`.
macro_rules! user_workload {
    ($id:ident, $w:expr) => {
        pub static $id: Workload = Workload {
            name: $w.name,
            help: $w.help,
            params: $w.params,
            run: |params, info| run(&$w, params, info),
        };
    };
}

user_workload!(FORKEXIT_W, FORKEXIT);
user_workload!(BUILDKERNEL_W, BUILDKERNEL);
user_workload!(MMAP_STORM_W, MMAP_STORM);
user_workload!(COHERENCE_W, COHERENCE);
user_workload!(USERTEST_W, USERTEST);
user_workload!(BOMBS_W, BOMBS);
user_workload!(FUZZ_W, FUZZ);
user_workload!(BUSY_TARGET_W, BUSY_TARGET);
user_workload!(EXEC_RACE_W, EXEC_RACE);

fn run(w: &UserWorkload, _params: &Params<'_>, info: &StartInfo) -> Status {
    syscall::set_params(info.cmdline, w.params);
    proc::start();
    let first = match proc::run_first(w.program, &[w.program]) {
        Ok(p) => p,
        Err(e) => {
            report::error(
                "proc",
                format_args!("cannot start program {}: {e}", w.program),
            );
            return Status::Failed;
        }
    };
    let status = proc::wait_first(&first);
    if w.name == BUILDKERNEL.name {
        let calls = stats::total(Event::PmapRemoveExitCalls);
        let early = stats::total(Event::PmapRemoveExitEarly);
        report::metric(
            "buildkernel.exit_early_share",
            Fixed::ratio(early, calls),
            "ratio",
            Scope::Global,
        );
    }
    let failed = syscall::RUN_FAILED.load(core::sync::atomic::Ordering::Acquire);
    match status {
        WaitStatus::Exited(0) if !failed => Status::Ok,
        WaitStatus::Exited(0) => Status::Failed,
        other => {
            report::error(
                "proc",
                format_args!("first process (pid {}, {}) {other}", first.pid, w.program),
            );
            Status::Failed
        }
    }
}
