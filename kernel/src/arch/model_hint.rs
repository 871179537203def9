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
use x86_64::instructions::{interrupts, tlb};
use x86_64::VirtAddr;

/// The doorbell page: never written; the model recognises loads from it
/// by address (the harness finds the symbol in the kernel ELF).
#[repr(C, align(4096))]
pub struct Doorbell([u8; DOORBELL_SIZE as usize]);

#[no_mangle]
#[used]
pub static MODEL_DOORBELL: Doorbell = Doorbell([0; DOORBELL_SIZE as usize]);

/// Whether the command line asked for hints (`model=on`).
static ON: AtomicBool = AtomicBool::new(false);

/// Turns hints on for the rest of the run when `cmdline` says `model=on`
/// (set once at boot, before the workload).
pub fn init(cmdline: &str) {
    ON.store(
        lab_core::cmdline::kernel_flag(cmdline, "model"),
        Ordering::Relaxed,
    );
}

/// Gives `hint` to the model: its loads, with interrupts off so that an
/// interrupt handler's hint cannot land between them.
pub fn give(hint: Hint) {
    if !ON.load(Ordering::Relaxed) {
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
/// Every INVLPG the kernel makes goes through here.
pub fn invlpg(va: VirtAddr) {
    give(Hint::Invlpg { va: va.as_u64() });
    tlb::flush(va);
}
