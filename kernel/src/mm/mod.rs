//! Memory management: physical frames, the kernel heap, pools, the pmap and
//! TLB shootdowns.
//!
//! - [`frame`]: the physical frame allocator and per-frame records.
//! - [`heap`]: the kernel heap (`alloc`), on frames.
//! - [`pool`]: fixed-size item pools with OpenBSD's 0xdeadbeef poisoning.
//! - [`pmap`]: page tables per address space (OpenBSD 2010 amd64 pmap).
//! - [`shootdown`]: TLB shootdowns and the protocol that delivers them.
//! - [`latr`]: munmap's invalidations left in a ring for the other CPUs' next sweep, and
//!   the quarantine of what they may still reach (`lazy-latr`; calls do nothing without it).
//! - [`lazy_tlb`]: which CPUs keep a user pmap loaded while idle, and the
//!   generations they catch up with (`lazy-tlb`; does nothing when the
//!   feature is off).
//! - [`pcid`]: process-context identifiers, so a context switch keeps a pmap's
//!   TLB entries (`pcid`; does nothing when the feature is off).
//! - [`lock`]: the spin lock they share.

use core::sync::atomic::{AtomicU64, Ordering};

use lab_core::report::Scope;

use crate::boot::start_info::StartInfo;
use crate::report;

pub mod frame;
pub mod heap;
pub mod latr;
pub mod lazy_tlb;
pub mod lock;
pub mod pcid;
pub mod pmap;
pub mod pool;
pub mod shootdown;

/// Free frames when mm::init finished (the start of the run).
static FREE_AT_START: AtomicU64 = AtomicU64::new(0);

/// Sets up memory management on the boot CPU: frames from the loader's
/// memory map (`start_info_phys` is the start info's own address), the
/// heap, the kernel pmap and the shootdown handlers. Fails with a message
/// if the memory map leaves nothing usable.
pub fn init(info: &StartInfo, start_info_phys: u64) -> Result<(), frame::FrameError> {
    frame::init(info, start_info_phys)?;
    heap::init();
    pmap::init();
    shootdown::init();
    FREE_AT_START.store(frame::free_count(), Ordering::Relaxed);
    Ok(())
}

/// Sets up this CPU's part of memory management: under `pcid`, CR4.PCIDE
/// where the CPU offers it (mm::pcid; where it does not, the run ends
/// `unsupported` in workloads::run, never silently without). Every CPU,
/// with the boot tables loaded: the boot CPU from kmain, the others at
/// bring-up (kmain hands it to arch::smp::set_ap_init).
pub fn init_cpu() {
    if cfg!(feature = "pcid") {
        pcid::init_cpu();
    }
}

/// Writes the memory figures of the run: frames managed, free at start and
/// end, the heap's size, and the shootdown acknowledgement distributions.
pub fn report(cpus: u32) {
    report::metric("mem.frames.total", frame::total(), "count", Scope::Global);
    report::metric(
        "mem.frames.free_start",
        FREE_AT_START.load(Ordering::Relaxed),
        "count",
        Scope::Global,
    );
    report::metric(
        "mem.frames.free_end",
        frame::free_count(),
        "count",
        Scope::Global,
    );
    report::metric("mem.heap.bytes", heap::bytes(), "bytes", Scope::Global);
    report::metric("mem.heap.used", heap::used(), "bytes", Scope::Global);
    shootdown::report(cpus);
}
