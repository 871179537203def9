//! The local APIC: interrupt acknowledgement, IPIs and the per-CPU timer.
//!
//! Two register interfaces reach the same registers: x2APIC, through MSRs
//! 0x800 + (offset >> 4), used whenever CPUID.1:ECX[21] offers it, and
//! xAPIC, through the 4 KiB MMIO page at IA32_APIC_BASE (0xfee00000 on
//! QEMU), reached through the direct map, which maps that top GiB uncached.
//! The mode is chosen once on the boot CPU ([`init_bsp`]); every CPU then
//! switches its own APIC into it ([`init`]).
//!
//! Hand-written rather than the `x2apic` crate: that crate covers only the
//! x2APIC and a fixed MMIO mapping, and we need both modes behind one
//! interface and the ICR encoding shared with host tests (lab_core::apic).
//!
//! The timer runs periodic at [`TIMER_HZ`] on every CPU; its count per
//! period is measured once against the TSC ([`calibrate_timer`]) on the boot
//! CPU and reused by the others (all local APIC timers share the bus clock).

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use lab_core::apic::{Icr, DELIVERY_PENDING};
use x86_64::instructions::interrupts;
use x86_64::registers::model_specific::Msr;

use super::percpu::CacheLine;
use super::{trap, tsc};
use crate::memlayout::phys_to_virt;
use crate::println;
use crate::stats::{self, Event, MAX_CPUS};

/// LAPIC timer interrupts per second on every CPU.
pub const TIMER_HZ: u64 = 100;

const IA32_APIC_BASE: u32 = 0x1b;
const APIC_BASE_ENABLE: u64 = 1 << 11;
const APIC_BASE_X2APIC: u64 = 1 << 10;

// Register offsets in the xAPIC page (x2APIC MSR = 0x800 + offset / 16).
const REG_ID: u32 = 0x20;
const REG_TPR: u32 = 0x80;
const REG_EOI: u32 = 0xb0;
const REG_SVR: u32 = 0xf0;
const REG_ESR: u32 = 0x280;
const REG_ICR_LOW: u32 = 0x300;
const REG_ICR_HIGH: u32 = 0x310;
const REG_LVT_TIMER: u32 = 0x320;
const REG_LVT_LINT0: u32 = 0x350;
const REG_LVT_LINT1: u32 = 0x360;
const REG_LVT_ERROR: u32 = 0x370;
const REG_TIMER_INIT: u32 = 0x380;
const REG_TIMER_CURRENT: u32 = 0x390;
const REG_TIMER_DIVIDE: u32 = 0x3e0;
const X2APIC_ICR_MSR: u32 = 0x830;

const SVR_ENABLE: u32 = 1 << 8;
const LVT_MASKED: u32 = 1 << 16;
const LVT_TIMER_PERIODIC: u32 = 1 << 17;
/// Timer divide configuration 0b0011: divide the bus clock by 16.
const TIMER_DIVIDE_16: u32 = 0b0011;

static X2APIC: AtomicBool = AtomicBool::new(false);
/// Direct-map address of the xAPIC page (xAPIC mode only).
static XAPIC_BASE: AtomicUsize = AtomicUsize::new(0);
/// Timer count per 1 / TIMER_HZ s at divide-by-16, from calibrate_timer.
static TIMER_PERIOD: AtomicU32 = AtomicU32::new(0);
/// Called on every timer tick after EOI (the scheduler's preemption hook).
static TICK_HOOK: spin::Once<fn()> = spin::Once::new();

/// Which register interface the APICs use.
pub fn mode_name() -> &'static str {
    if X2APIC.load(Ordering::Relaxed) {
        "x2apic"
    } else {
        "xapic"
    }
}

fn read(reg: u32) -> u32 {
    if X2APIC.load(Ordering::Relaxed) {
        // SAFETY: an x2APIC register MSR, enabled by init().
        unsafe { Msr::new(0x800 + (reg >> 4)).read() as u32 }
    } else {
        let addr = XAPIC_BASE.load(Ordering::Relaxed) + reg as usize;
        // SAFETY: a register in the xAPIC page, mapped uncached.
        unsafe { core::ptr::read_volatile(addr as *const u32) }
    }
}

fn write(reg: u32, value: u32) {
    if X2APIC.load(Ordering::Relaxed) {
        // SAFETY: as in read().
        unsafe { Msr::new(0x800 + (reg >> 4)).write(value as u64) }
    } else {
        let addr = XAPIC_BASE.load(Ordering::Relaxed) + reg as usize;
        // SAFETY: as in read().
        unsafe { core::ptr::write_volatile(addr as *mut u32, value) }
    }
}

/// Chooses x2APIC or xAPIC for every CPU, then initialises the boot CPU's
/// APIC. Call once on the boot CPU, before [`id`] or [`send`].
pub fn init_bsp() {
    let x2 = core::arch::x86_64::__cpuid(1).ecx & (1 << 21) != 0;
    X2APIC.store(x2, Ordering::Relaxed);
    // SAFETY: IA32_APIC_BASE exists on every CPU with a local APIC.
    let base = unsafe { Msr::new(IA32_APIC_BASE).read() } & 0x000f_ffff_ffff_f000;
    XAPIC_BASE.store(phys_to_virt(base).as_u64() as usize, Ordering::Relaxed);
    disable_8259();
    init();
}

/// Enables this CPU's local APIC in the chosen mode, with every local
/// interrupt masked except errors, and the timer stopped.
pub fn init() {
    let mut msr = Msr::new(IA32_APIC_BASE);
    // SAFETY: enabling the APIC (and x2APIC mode when offered) is the
    // architected sequence; xAPIC -> x2APIC is a legal transition.
    unsafe {
        let mut value = msr.read() | APIC_BASE_ENABLE;
        if X2APIC.load(Ordering::Relaxed) {
            value |= APIC_BASE_X2APIC;
        }
        msr.write(value);
    }
    write(REG_SVR, SVR_ENABLE | trap::SPURIOUS_VECTOR as u32);
    write(REG_TPR, 0);
    write(REG_LVT_LINT0, LVT_MASKED);
    write(REG_LVT_LINT1, LVT_MASKED);
    write(REG_LVT_TIMER, LVT_MASKED | trap::TIMER_VECTOR as u32);
    write(REG_LVT_ERROR, trap::ERROR_VECTOR as u32);
    // ESR is read-after-write: clear it with two writes.
    write(REG_ESR, 0);
    write(REG_ESR, 0);
    eoi();
}

/// Remaps the legacy 8259 PICs to vectors 0x20-0x2f (off the exception
/// vectors, should one still fire) and masks every line: interrupts come
/// from the local APICs only.
fn disable_8259() {
    use x86_64::instructions::port::Port;
    let (mut cmd1, mut data1) = (Port::<u8>::new(0x20), Port::<u8>::new(0x21));
    let (mut cmd2, mut data2) = (Port::<u8>::new(0xa0), Port::<u8>::new(0xa1));
    // SAFETY: the standard ICW1-4 sequence on the PC's PIC ports; on a
    // machine without PICs (microvm) the writes go nowhere.
    unsafe {
        cmd1.write(0x11);
        cmd2.write(0x11);
        data1.write(trap::PIC_BASE);
        data2.write(trap::PIC_BASE + 8);
        data1.write(4);
        data2.write(2);
        data1.write(1);
        data2.write(1);
        data1.write(0xff);
        data2.write(0xff);
    }
}

/// This CPU's APIC id.
pub fn id() -> u32 {
    if X2APIC.load(Ordering::Relaxed) {
        read(REG_ID)
    } else {
        read(REG_ID) >> 24
    }
}

/// Signals end of interrupt for the one in service on this CPU.
pub fn eoi() {
    write(REG_EOI, 0);
}

/// Sends the interrupt command `icr` (to `icr.dest`).
///
/// xAPIC: waits until the previous command left (delivery status idle),
/// then writes ICR_HIGH and ICR_LOW with interrupts off, so an interrupt
/// handler that sends cannot slip its own ICR_HIGH between the two.
/// x2APIC: one MSR write; WRMSR to the ICR is not serialising, so an
/// `mfence` first makes the caller's earlier stores (the IPI mailbox)
/// visible before the IPI can arrive.
pub fn send(icr: Icr) {
    if X2APIC.load(Ordering::Relaxed) {
        core::sync::atomic::fence(Ordering::SeqCst);
        // SAFETY: the x2APIC ICR; `icr` is a well-formed command.
        unsafe { Msr::new(X2APIC_ICR_MSR).write(icr.x2apic()) };
        return;
    }
    let (high, low) = icr.xapic().expect("APIC id above 255 in xAPIC mode");
    interrupts::without_interrupts(|| {
        while read(REG_ICR_LOW) & DELIVERY_PENDING != 0 {
            core::hint::spin_loop();
        }
        write(REG_ICR_HIGH, high);
        write(REG_ICR_LOW, low);
    });
}

/// Measures the timer count for one period of 1 / [`TIMER_HZ`] s against
/// the TSC. Boot CPU, after tsc::calibrate, interrupts off.
pub fn calibrate_timer() -> u32 {
    write(REG_TIMER_DIVIDE, TIMER_DIVIDE_16);
    write(REG_LVT_TIMER, LVT_MASKED | trap::TIMER_VECTOR as u32);
    write(REG_TIMER_INIT, u32::MAX);
    tsc::delay_ns(1_000_000_000 / TIMER_HZ);
    let elapsed = u32::MAX - read(REG_TIMER_CURRENT);
    write(REG_TIMER_INIT, 0);
    TIMER_PERIOD.store(elapsed.max(1), Ordering::Relaxed);
    elapsed
}

/// Starts this CPU's timer, periodic at TIMER_HZ (after calibrate_timer);
/// [`super::model_hint::TURN_TICKS`] times faster under `model=on`, every
/// other interrupt a turn boundary only (see [`timer_interrupt`]).
pub fn start_timer() {
    write(REG_TIMER_DIVIDE, TIMER_DIVIDE_16);
    write(
        REG_LVT_TIMER,
        LVT_TIMER_PERIODIC | trap::TIMER_VECTOR as u32,
    );
    let period = TIMER_PERIOD.load(Ordering::Relaxed);
    write(
        REG_TIMER_INIT,
        (period / super::model_hint::turn_ticks()).max(1),
    );
}

/// Per CPU: timer interrupts since the last scheduler tick (`model=on`).
static TURN_COUNT: [CacheLine<AtomicU32>; MAX_CPUS] =
    [const { CacheLine(AtomicU32::new(0)) }; MAX_CPUS];

/// Installs the function every timer tick calls on its CPU, in interrupt
/// context after EOI (so it may switch threads). Set once.
pub fn set_tick_hook(hook: fn()) {
    TICK_HOOK.call_once(|| hook);
}

/// The timer vector's handler: count the tick, EOI, then the tick hook.
/// Under `model=on` only every TURN_TICKS-th interrupt is a tick; the
/// others only end the vCPU's icount turn (model_hint::TURN_TICKS).
pub(super) fn timer_interrupt() {
    let every = super::model_hint::turn_ticks();
    if every > 1 {
        let n = &TURN_COUNT[super::cpu_id() as usize].0;
        if n.fetch_add(1, Ordering::Relaxed) + 1 < every {
            eoi();
            return;
        }
        n.store(0, Ordering::Relaxed);
    }
    stats::count(Event::TimerTicks);
    eoi();
    if let Some(hook) = TICK_HOOK.get() {
        hook();
    }
}

/// The error vector's handler: log the error status, EOI.
pub(super) fn error_interrupt() {
    write(REG_ESR, 0);
    let esr = read(REG_ESR);
    println!(
        "apic: error interrupt on cpu {}, ESR={esr:#x}",
        super::cpu_id()
    );
    eoi();
}
