//! Hints for the memory-system model (the `tcg-model` accelerator).
//!
//! The model is a QEMU TCG plugin that sees the guest's instructions and
//! memory accesses but not register values, so it cannot read an INVLPG's
//! operand or an IPI's target. Under `model=on` the kernel gives them as
//! byte loads from [`MODEL_DOORBELL`], encoded by `lab_core::model_hint`
//! (the protocol and its reasons are there). Without `model=on` every call
//! here returns after one relaxed load, and the kernel executes what it
//! executes under any other accelerator.

use core::sync::atomic::{AtomicBool, Ordering};

use lab_core::model_hint::{self, Hint, Mark, DOORBELL_SIZE};

use super::percpu::CacheLine;
use x86_64::instructions::{interrupts, tlb};
use x86_64::VirtAddr;

/// The doorbell page: never written; the model recognises loads from it
/// by address (the harness finds the symbol in the kernel ELF).
#[repr(C, align(4096))]
pub struct Doorbell([u8; DOORBELL_SIZE as usize]);

#[no_mangle]
#[used]
pub static MODEL_DOORBELL: Doorbell = Doorbell([0; DOORBELL_SIZE as usize]);

/// Whether the command line asked for hints (`model=on`). On a cache line
/// of its own: every hint reads it, and a line shared with data other
/// CPUs write would add transfers (false sharing) of the hints' own to
/// what the model measures.
static ON: CacheLine<AtomicBool> = CacheLine(AtomicBool::new(false));

/// Under `model=on`, each CPU's LAPIC timer interrupts this many times per
/// scheduler tick, and the extra interrupts only return.
///
/// Why: under `-icount` QEMU 7.2 runs the vCPUs in turns on one thread,
/// and a turn ends at the next timer deadline, a HLT or a PAUSE. At the
/// kernel's 100 Hz tick a busy vCPU's turn is up to 10 ms of virtual time,
/// 10 M instructions, and the model sees CPUs interleave only at that
/// grain (4-CPU coherence remap: 35 turns in a whole run). A deadline
/// every 100 us caps a turn at about 100 k instructions, for a handler of
/// a few dozen instructions per interrupt (below 0.1 % of the run). The
/// model reports the turns it saw (`model.turns`).
pub const TURN_TICKS: u32 = 100;

/// Turns hints on for the rest of the run when `cmdline` says `model=on`.
/// Called once on the boot CPU before any timer starts.
pub fn init(cmdline: &str) {
    ON.0.store(
        lab_core::cmdline::kernel_flag(cmdline, "model"),
        Ordering::Relaxed,
    );
}

/// Whether hints are on (`model=on`): for callers that must work out a
/// hint's arguments first.
pub fn enabled() -> bool {
    ON.0.load(Ordering::Relaxed)
}

/// Timer interrupts per scheduler tick: [`TURN_TICKS`] under `model=on`,
/// else 1.
pub fn turn_ticks() -> u32 {
    if enabled() {
        TURN_TICKS
    } else {
        1
    }
}

/// Gives `hint` to the model: its loads, with interrupts off so that an
/// interrupt handler's hint cannot land between them.
pub fn give(hint: Hint) {
    if !enabled() {
        return;
    }
    let (offsets, n) = model_hint::encode(hint);
    interrupts::without_interrupts(|| {
        for &offset in &offsets[..n] {
            // SAFETY: `offset` < DOORBELL_SIZE (model_hint::encode's
            // contract), so the load stays inside the static.
            unsafe {
                core::ptr::read_volatile(MODEL_DOORBELL.0.as_ptr().add(offset as usize));
            }
        }
    });
}

/// Marks an interval boundary on this CPU's modeled clock.
pub fn mark(mark: Mark) {
    give(Hint::Mark(mark));
}

/// INVLPG of the page holding `va`, its operand told to the model first.
/// Every INVLPG the kernel makes goes through here. Under `model=on` the
/// hint and the INVLPG run with interrupts off together: an interrupt
/// between them whose handler invalidates too would take the pending
/// operand, and this INVLPG would reach the model without one.
pub fn invlpg(va: VirtAddr) {
    if !enabled() {
        tlb::flush(va);
        return;
    }
    interrupts::without_interrupts(|| {
        give(Hint::Invlpg { va: va.as_u64() });
        tlb::flush(va);
    });
}
