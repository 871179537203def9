//! pmaplab's guest kernel.
//!
//! Boot order: `boot::pvh` enters long mode and calls [`kmain`], which sets
//! up the console, reads the PVH start info, writes the report's `begin`
//! line, runs the workload named on the command line and ends the report
//! (which exits QEMU).
#![no_std]
#![no_main]

extern crate alloc;

mod arch;
mod boot;
mod console;
mod memlayout;
mod mm;
mod panic;
mod qemu;
mod report;
mod stats;
mod workloads;

mod build_info {
    include!(concat!(env!("OUT_DIR"), "/build_info.rs"));
}

use lab_core::report::Status;

/// The CPU we are running on, once per-CPU data exists.
pub fn cpu_id() -> Option<u32> {
    Some(0)
}

/// Called by `boot::pvh` on the boot CPU, in long mode, on the boot stack.
#[no_mangle]
extern "C" fn kmain(start_info_phys: u32) -> ! {
    console::init();
    // SAFETY: the loader's ebx, passed through untouched by pvh_start32.
    let info = match unsafe { boot::start_info::parse(start_info_phys.into()) } {
        Ok(info) => info,
        Err(err) => {
            report::begin(1, "");
            report::error("boot", format_args!("{err}"));
            report::end(Status::Failed);
        }
    };
    report::begin(1, info.cmdline);
    if let Err(err) = mm::init(&info, start_info_phys.into()) {
        report::error("mm", format_args!("{err}"));
        report::end(Status::Failed);
    }
    let status = workloads::run(&info);
    stats::report_all(1);
    mm::report(1);
    report::end(status)
}
