//! Per-CPU data, reached through the GS segment base.
//!
//! Each CPU owns one cache-line-aligned [`PerCpu`] in [`AREAS`] and points
//! its IA32_GS_BASE at it during bring-up ([`init`]), so `gs:[offset]`
//! reads this CPU's copy without knowing which CPU we are on. While the
//! kernel runs, GS_BASE is the per-CPU area and IA32_KERNEL_GS_BASE holds
//! the user's GS base (0); the syscall and user-trap entry paths `swapgs`
//! on the way in and out (see trap.rs), so the layout below is also read
//! from assembly: keep the offsets in sync with the `GS_*` constants.
//!
//! Fields are written only by their own CPU (except during [`init`], which
//! runs on that CPU too) and read by it; other CPUs may read `cpu` and
//! `apic_id`. No locks.

use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};
use x86_64::registers::model_specific::{GsBase, KernelGsBase};
use x86_64::VirtAddr;

use crate::stats::MAX_CPUS;

/// A value alone on its 64-byte cache line, for per-CPU arrays of small
/// atomics that each CPU writes: packed, they would share lines and every
/// write would move the line between CPUs (false sharing, which the
/// memory-system model counts and charges; hand-written, as crossbeam's
/// CachePadded pads x86-64 to 128 bytes).
#[repr(C, align(64))]
pub struct CacheLine<T>(pub T);

/// One CPU's area. `repr(C)`: assembly uses the `GS_*` offsets.
#[repr(C, align(64))]
pub struct PerCpu {
    /// Address of this structure (gs:0), for code that wants a pointer.
    self_ptr: AtomicPtr<PerCpu>,
    /// Dense kernel CPU index, 0 = boot CPU (gs:8).
    cpu: AtomicU32,
    /// Local APIC id (gs:12).
    apic_id: AtomicU32,
    /// Top of the kernel stack of the thread running here; the syscall entry
    /// switches to it (gs:16). Mirrors TSS.RSP0 (see gdt::set_kernel_stack).
    kernel_stack_top: AtomicU64,
    /// Scratch slot where the syscall entry parks the user RSP (gs:24).
    user_rsp: AtomicU64,
    /// The thread running on this CPU, for the scheduler (gs:32).
    current: AtomicPtr<()>,
}

/// gs-relative offsets of the fields above, for assembly.
pub const GS_CPU: usize = 8;
pub const GS_KERNEL_STACK: usize = 16;
pub const GS_USER_RSP: usize = 24;
pub const GS_CURRENT: usize = 32;

const _: () = {
    assert!(core::mem::offset_of!(PerCpu, cpu) == GS_CPU);
    assert!(core::mem::offset_of!(PerCpu, kernel_stack_top) == GS_KERNEL_STACK);
    assert!(core::mem::offset_of!(PerCpu, user_rsp) == GS_USER_RSP);
    assert!(core::mem::offset_of!(PerCpu, current) == GS_CURRENT);
};

impl PerCpu {
    const fn new() -> Self {
        PerCpu {
            self_ptr: AtomicPtr::new(ptr::null_mut()),
            cpu: AtomicU32::new(0),
            apic_id: AtomicU32::new(0),
            kernel_stack_top: AtomicU64::new(0),
            user_rsp: AtomicU64::new(0),
            current: AtomicPtr::new(ptr::null_mut()),
        }
    }
}

static AREAS: [PerCpu; MAX_CPUS] = [const { PerCpu::new() }; MAX_CPUS];

/// Set once the boot CPU's GS base points at its area; before that,
/// `gs:` reads would hit whatever GS base the loader left (0).
static READY: AtomicBool = AtomicBool::new(false);

/// Points this CPU's GS base at `AREAS[cpu]` and fills it in. Called once
/// per CPU, first thing on that CPU, before anything reads [`cpu_id`].
pub fn init(cpu: u32, apic_id: u32) {
    let area = &AREAS[cpu as usize];
    area.self_ptr
        .store(ptr::from_ref(area).cast_mut(), Ordering::Relaxed);
    area.cpu.store(cpu, Ordering::Relaxed);
    area.apic_id.store(apic_id, Ordering::Relaxed);
    GsBase::write(VirtAddr::from_ptr(area));
    // The user's GS base, swapped in by `swapgs` on the way to user mode.
    KernelGsBase::write(VirtAddr::zero());
    READY.store(true, Ordering::Release);
}

/// The index of the CPU we are running on (0 = boot CPU). Only valid after
/// [`init`] ran on this CPU; see [`try_cpu_id`] for code that may run
/// earlier (panic, counters).
#[inline]
pub fn cpu_id() -> u32 {
    let id: u32;
    // SAFETY: gs:8 is `PerCpu::cpu` of this CPU once `init` ran; a plain
    // load with no side effects.
    unsafe {
        core::arch::asm!("mov {0:e}, gs:[8]", out(reg) id, options(nostack, readonly, preserves_flags))
    };
    id
}

/// Like [`cpu_id`], but `None` before the boot CPU set up its per-CPU area.
#[inline]
pub fn try_cpu_id() -> Option<u32> {
    READY.load(Ordering::Acquire).then(cpu_id)
}

/// Records the kernel stack top the syscall entry will switch to.
pub fn set_kernel_stack_top(top: u64) {
    AREAS[cpu_id() as usize]
        .kernel_stack_top
        .store(top, Ordering::Relaxed);
}

/// Sets this CPU's `current` slot.
pub fn set_current(thread: *mut ()) {
    AREAS[cpu_id() as usize]
        .current
        .store(thread, Ordering::Relaxed);
}
