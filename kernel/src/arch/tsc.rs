//! The time-stamp counter: the kernel's clock for every measurement.
//!
//! [`calibrate`] runs once on the boot CPU and finds the TSC frequency from,
//! in order of preference:
//! 1. CPUID leaf 0x15 (crystal clock ratio), when it gives all three values;
//! 2. CPUID leaf 0x40000010 (hypervisor timing leaf, TSC kHz in EAX);
//! 3. the 8254 PIT, channel 0 counting at 1.193182 MHz, read with latch
//!    commands (channel 2's gate needs port 0x61, which microvm lacks);
//! 4. the ACPI PM timer (3.579545 MHz) at the port the FADT names.
//!
//! The PIT and PM timer are counted over [`CALIBRATION_NS`] of their own
//! time while the TSC runs. All CPUs read the same TSC rate (invariant TSC;
//! under TCG the host's), so one frequency serves every CPU.

use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::instructions::port::Port;

/// How long the PIT / PM-timer calibration runs.
const CALIBRATION_NS: u64 = 50_000_000;
const PIT_HZ: u64 = 1_193_182;
const PM_TIMER_HZ: u64 = 3_579_545;

static HZ: AtomicU64 = AtomicU64::new(0);

/// How the frequency was found (reported on the console).
#[derive(Clone, Copy, Debug)]
pub enum Method {
    Cpuid15,
    Cpuid40000010,
    Pit,
    PmTimer {
        #[allow(dead_code)] // printed with {:?}
        port: u16,
    },
}

/// An ACPI PM timer: its I/O port and whether it counts 32 bits (else 24).
#[derive(Clone, Copy, Debug)]
pub struct PmTimer {
    pub port: u16,
    pub bits32: bool,
}

/// No reference timer was found to calibrate against.
#[derive(Debug)]
pub struct NoReference;

impl core::fmt::Display for NoReference {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("no reference timer for the TSC: no CPUID 0x15/0x40000010 frequency, no PIT, no ACPI PM timer")
    }
}

/// The TSC now.
#[inline]
pub fn now() -> u64 {
    // SAFETY: RDTSC is available on every x86-64 CPU and CR4.TSD is clear.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// TSC ticks per second (0 before [`calibrate`]).
pub fn hz() -> u64 {
    HZ.load(Ordering::Relaxed)
}

/// `cycles` TSC ticks in nanoseconds.
pub fn cycles_to_ns(cycles: u64) -> u64 {
    let hz = hz().max(1);
    (cycles as u128 * 1_000_000_000 / hz as u128) as u64
}

/// Spins for at least `ns` nanoseconds (after calibrate).
pub fn delay_ns(ns: u64) {
    let cycles = (ns as u128 * hz() as u128 / 1_000_000_000) as u64;
    let start = now();
    while now().wrapping_sub(start) < cycles {
        core::hint::spin_loop();
    }
}

/// Finds the TSC frequency (see the module comment). Boot CPU, once.
pub fn calibrate(pm_timer: Option<PmTimer>) -> Result<(u64, Method), NoReference> {
    let found = from_cpuid()
        .or_else(|| from_pit().map(|hz| (hz, Method::Pit)))
        .or_else(|| pm_timer.map(|t| (from_pm_timer(t), Method::PmTimer { port: t.port })))
        .filter(|&(hz, _)| hz > 0)
        .ok_or(NoReference)?;
    HZ.store(found.0, Ordering::Relaxed);
    Ok(found)
}

fn from_cpuid() -> Option<(u64, Method)> {
    use core::arch::x86_64::__cpuid;
    let max = __cpuid(0).eax;
    if max >= 0x15 {
        let leaf = __cpuid(0x15);
        let (denominator, numerator, crystal) = (leaf.eax, leaf.ebx, leaf.ecx);
        if denominator != 0 && numerator != 0 && crystal != 0 {
            let hz = crystal as u64 * numerator as u64 / denominator as u64;
            return Some((hz, Method::Cpuid15));
        }
    }
    let hypervisor = __cpuid(1).ecx & (1 << 31) != 0;
    if hypervisor && __cpuid(0x4000_0000).eax >= 0x4000_0010 {
        let khz = __cpuid(0x4000_0010).eax;
        if khz != 0 {
            return Some((khz as u64 * 1000, Method::Cpuid40000010));
        }
    }
    None
}

/// Latches and reads PIT channel 0's count.
fn pit_read() -> u16 {
    let mut command = Port::<u8>::new(0x43);
    let mut channel0 = Port::<u8>::new(0x40);
    // SAFETY: PIT ports; latching does not disturb the count.
    unsafe {
        command.write(0x00);
        let low = channel0.read();
        let high = channel0.read();
        u16::from_le_bytes([low, high])
    }
}

/// Counts PIT channel 0 (mode 2, period 65536) for CALIBRATION_NS.
fn from_pit() -> Option<u64> {
    // SAFETY: channel 0, lobyte/hibyte, mode 2 (rate generator), reload
    // 0 = 65536. IRQ 0 is masked at the 8259 (apic::init_bsp).
    unsafe {
        Port::<u8>::new(0x43).write(0x34);
        Port::<u8>::new(0x40).write(0);
        Port::<u8>::new(0x40).write(0);
    }
    // A floating bus reads 0xffff forever: no PIT.
    let first = pit_read();
    let mut moved = false;
    for _ in 0..10_000 {
        if pit_read() != first {
            moved = true;
            break;
        }
    }
    if !moved {
        return None;
    }
    let target = PIT_HZ * CALIBRATION_NS / 1_000_000_000;
    let mut last = pit_read();
    let start = now();
    let mut elapsed = 0u64;
    while elapsed < target {
        let count = pit_read();
        elapsed += last.wrapping_sub(count) as u64;
        last = count;
    }
    let cycles = now() - start;
    // Leave channel 0 in one-shot mode so it stops interrupting QEMU.
    // SAFETY: as above; mode 0 with a count of 1.
    unsafe {
        Port::<u8>::new(0x43).write(0x30);
        Port::<u8>::new(0x40).write(1);
        Port::<u8>::new(0x40).write(0);
    }
    Some(cycles * PIT_HZ / elapsed)
}

fn from_pm_timer(timer: PmTimer) -> u64 {
    let mut port = Port::<u32>::new(timer.port);
    let mask: u32 = if timer.bits32 { u32::MAX } else { 0x00ff_ffff };
    let target = PM_TIMER_HZ * CALIBRATION_NS / 1_000_000_000;
    // SAFETY: the PM timer port from the FADT; reading it has no effect.
    let mut last = unsafe { port.read() } & mask;
    let start = now();
    let mut elapsed = 0u64;
    while elapsed < target {
        // SAFETY: as above.
        let count = unsafe { port.read() } & mask;
        elapsed += (count.wrapping_sub(last) & mask) as u64;
        last = count;
    }
    (now() - start) * PM_TIMER_HZ / elapsed
}
