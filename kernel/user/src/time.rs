//! Time: the monotonic clock, read from the shared page's TSC parameters
//! when the kernel calibrated them (no system call), else with `clock`.

use lab_core::syscall::{SharedPage, SHARED_PAGE_MAGIC, SHARED_PAGE_VA};

use crate::sys;

/// The shared page, mapped read-only at `SHARED_PAGE_VA` in every process.
pub fn shared_page() -> &'static SharedPage {
    // SAFETY: the kernel maps the page at exec into every process and never
    // changes it after boot; it is a valid `SharedPage`.
    unsafe { &*(SHARED_PAGE_VA as *const SharedPage) }
}

/// Reads the shared page's magic (an access that faults the page's
/// translation in); true if it holds the expected value.
pub fn touch_shared_page() -> bool {
    // SAFETY: as in shared_page; volatile so the access really happens.
    let magic = unsafe { core::ptr::read_volatile(SHARED_PAGE_VA as *const u64) };
    magic == SHARED_PAGE_MAGIC
}

fn rdtsc() -> u64 {
    // SAFETY: rdtsc is allowed in user mode (CR4.TSD clear) and has no
    // side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Monotonic nanoseconds since boot.
pub fn now_ns() -> u64 {
    shared_page().tsc_to_ns(rdtsc()).unwrap_or_else(sys::clock)
}

/// Spins (yielding) for about `ns` nanoseconds.
pub fn sleep_ns(ns: u64) {
    let until = now_ns() + ns;
    while now_ns() < until {
        sys::yield_now();
    }
}
