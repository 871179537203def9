//! pmaplab's guest kernel.
//!
//! Boot order: `boot::pvh` enters long mode and calls [`kmain`], which sets
//! up the console and the boot CPU (traps, APIC, per-CPU area, GDT), reads
//! the PVH start info, brings up every CPU (arch::start_cpus), writes the
//! report's `begin` line with the online CPU count, runs the workload named
//! on the command line with interrupts on, quiesces IPIs so the counters
//! add up, reports every counter and ends the report (which exits QEMU).
#![no_std]
#![no_main]

extern crate alloc;

mod arch;
mod boot;
mod console;
mod memlayout;
mod mm;
mod panic;
mod proc;
mod qemu;
mod report;
mod stats;
mod syscall;
mod workloads;

mod build_info {
    include!(concat!(env!("OUT_DIR"), "/build_info.rs"));
}

use lab_core::report::Status;

/// The CPU we are running on, or `None` before the boot CPU's per-CPU area
/// exists. Safe anywhere, including the panic path.
pub fn cpu_id() -> Option<u32> {
    arch::percpu::try_cpu_id()
}

/// Called by `boot::pvh` on the boot CPU, in long mode, on the boot stack.
#[no_mangle]
extern "C" fn kmain(start_info_phys: u32) -> ! {
    console::init();
    arch::init_bsp();
    // Memory management's per-CPU set-up (`pcid`'s CR4.PCIDE): here for
    // the boot CPU, at bring-up for the others.
    mm::init_cpu();
    arch::smp::set_ap_init(mm::init_cpu);
    // SAFETY: the loader's ebx, passed through untouched by pvh_start32.
    let info = match unsafe { boot::start_info::parse(start_info_phys.into()) } {
        Ok(info) => info,
        Err(err) => {
            report::begin(1, "");
            report::error("boot", format_args!("{err}"));
            report::end(Status::Failed);
        }
    };
    // Before any timer starts: `model=on` also sets the timer's rate.
    arch::model_hint::init(info.cmdline);
    arch::chaos::init(info.cmdline);
    let facts = arch::start_cpus(&info, start_info_phys.into());
    // `begin` carries the CPUs actually online (1 if bring-up failed early).
    let cpus = arch::smp::online().len();
    report::begin(cpus, info.cmdline);
    arch::report_boot(facts.as_ref().ok());
    if let Err(err) = facts {
        report::error("smp", format_args!("{err}"));
        report::end(Status::Failed);
    }
    if let Err(err) = mm::init(&info, start_info_phys.into()) {
        report::error("mm", format_args!("{err}"));
        report::end(Status::Failed);
    }
    x86_64::instructions::interrupts::enable();
    let mut status = workloads::run(&info);
    // No IPI may be in flight when the counters are read.
    if let Err(err) = arch::ipi::quiesce() {
        report::error("ipi", format_args!("quiesce: {err}"));
        status = Status::Failed;
    }
    x86_64::instructions::interrupts::disable();
    stats::report_all(arch::smp::cpu_count());
    mm::report(arch::smp::cpu_count());
    report::end(status)
}
