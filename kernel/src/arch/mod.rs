//! Machine-dependent code: CPUs, interrupts, IPIs and time on x86-64.
//!
//! - [`percpu`]: per-CPU area through GS base; [`cpu_id`].
//! - [`gdt`]: per-CPU GDT and TSS (IST stacks, RSP0, SYSCALL layout).
//! - [`trap`]: IDT, entry stubs, the trap frame and dispatcher.
//! - [`apic`]: local APIC (x2APIC or xAPIC), EOI, ICR, timer.
//! - [`acpi`]: CPU discovery (MADT) and the PM timer (FADT).
//! - [`tsc`]: the TSC and its calibration.
//! - [`smp`]: AP start-up, the online set, idle loop, cross-CPU jobs.
//! - [`ipi`]: sending, receiving and counting IPIs.
//! - [`model_hint`]: hints for the memory-system model (`tcg-model`), and
//!   the one INVLPG every invalidation goes through.
//! - [`chaos`]: chaos mode's seeded delays at the protocols' points
//!   (`chaos=<seed>`).
//!
//! Bring-up order on the boot CPU: [`init_bsp`] (traps, APIC, per-CPU,
//! GDT) as early as possible, then [`start_cpus`] (ACPI, TSC, LAPIC timer,
//! APs), before the report's `begin` line so that it carries the real CPU
//! count.

pub mod acpi;
pub mod apic;
pub mod chaos;
pub mod gdt;
pub mod ipi;
pub mod model_hint;
pub mod percpu;
pub mod smp;
pub mod trap;
pub mod tsc;

pub use percpu::cpu_id;

use lab_core::report::Scope;

use crate::boot::start_info::StartInfo;
use crate::{println, report};

/// Sets up the boot CPU as CPU 0: IDT first (so faults are reported), its
/// local APIC, per-CPU area and GDT/TSS. Interrupts stay off.
pub fn init_bsp() {
    trap::init();
    apic::init_bsp();
    percpu::init(0, apic::id());
    gdt::init();
}

/// What went wrong while bringing up the CPUs; the run fails.
#[derive(Debug)]
pub enum BootError {
    Acpi(acpi::AcpiError),
    Tsc(tsc::NoReference),
    Smp(smp::SmpError),
}

impl core::fmt::Display for BootError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BootError::Acpi(e) => write!(f, "{e}"),
            BootError::Tsc(e) => write!(f, "{e}"),
            BootError::Smp(e) => write!(f, "{e}"),
        }
    }
}

/// Facts found during bring-up, reported once the report has begun.
pub struct BootFacts {
    pub tsc_hz: u64,
    pub timer_period: u32,
}

/// Finds the CPUs (ACPI MADT), calibrates the TSC and the LAPIC timer,
/// starts the timer here and starts every AP. Boot CPU, interrupts off.
/// Without ACPI tables the machine runs on the boot CPU alone.
pub fn start_cpus(info: &StartInfo, start_info_phys: u64) -> Result<BootFacts, BootError> {
    let bsp_apic_id = apic::id();
    let pm_timer = match acpi::discover(info.rsdp_phys, bsp_apic_id) {
        Ok(platform) => {
            println!(
                "acpi: RSDP from {}, {} CPU(s) in the MADT, PM timer {:?}",
                platform.rsdp_source, platform.cpus, platform.pm_timer
            );
            smp::set_cpus(&platform.apic_ids[..platform.cpus]);
            platform.pm_timer
        }
        Err(err @ (acpi::AcpiError::NoAcpi(_) | acpi::AcpiError::NoMadt(_))) => {
            println!("acpi: {err}; running on the boot CPU only");
            smp::set_cpus(&[bsp_apic_id]);
            None
        }
        Err(err) => {
            smp::set_cpus(&[bsp_apic_id]);
            return Err(BootError::Acpi(err));
        }
    };
    let (tsc_hz, method) = tsc::calibrate(pm_timer).map_err(BootError::Tsc)?;
    println!("tsc: {tsc_hz} Hz, calibrated by {method:?}");
    let timer_period = apic::calibrate_timer();
    println!(
        "apic: {} mode, timer {timer_period} counts per {} ms",
        apic::mode_name(),
        1000 / apic::TIMER_HZ
    );
    apic::start_timer();
    smp::start_aps(info, start_info_phys).map_err(BootError::Smp)?;
    println!("smp: {} CPU(s) online", smp::online().len());
    Ok(BootFacts {
        tsc_hz,
        timer_period,
    })
}

/// Reports the bring-up: TSC frequency, and per online CPU `cpu.online`
/// and its APIC id. After `report::begin`.
pub fn report_boot(facts: Option<&BootFacts>) {
    if let Some(facts) = facts {
        report::metric("tsc.hz", facts.tsc_hz, "hz", Scope::Global);
        // Guest time from reset (TSC 0) to the `begin` line, firmware and
        // AP start-up included: under tcg-icount an instruction-count
        // figure, repeatable, which the harness charts per CPU count.
        let begin_ns = (tsc::now() as u128 * 1_000_000_000 / facts.tsc_hz.max(1) as u128) as u64;
        report::metric("boot.begin_ns", begin_ns, "ns", Scope::Global);
        report::metric(
            "apic.timer.period",
            facts.timer_period,
            "count",
            Scope::Global,
        );
    }
    for cpu in smp::online().iter() {
        report::metric("cpu.online", 1, "count", Scope::Cpu(cpu));
        report::metric("cpu.apic_id", smp::apic_id_of(cpu), "id", Scope::Cpu(cpu));
    }
    report::metric("cpu.count", smp::online().len(), "count", Scope::Global);
}
