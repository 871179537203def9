//! `busy-target`: what a CPU busy in the kernel does to the shootdowns that
//! target it.
//!
//! Two threads of one process: B pinned to CPU 1, A (the main thread)
//! pinned to CPU 0. A removes all access to a page it has just read
//! (`mprotect` to none: a valid PTE removed, so a shootdown of the
//! process's pmap, which is loaded on CPU 1 too) `rounds` times per phase,
//! and after each reads the kernel's ack latency of that shootdown
//! (`ack_last`):
//! - phase `user`: B spins in user mode;
//! - phase `kernel`: B loops in the `busy(busy_us)` syscall, which spins in
//!   the kernel with interrupts on; each shootdown is made a quarter of
//!   `busy_us` into a busy call that began after the previous one.
//!
//! A kernel that serves shootdown IPIs only at the return to user mode
//! makes the kernel phase's ack wait about `3/4 busy_us`; one that takes
//! them in the kernel keeps it near the user phase's.
//!
//! Figures: `busytarget.ack_user_median` and `busytarget.ack_kernel_median`
//! (TSC cycles, medians over the rounds), `busytarget.ack_ratio_pct`
//! (kernel over user, percent; a gate bound of 200 says "within 2x"),
//! `busytarget.samples_user`, `busytarget.samples_kernel`, and the
//! canonical `workload.ops` (both phases' rounds) and `workload.elapsed_ns`.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU64, Ordering};

use ulib::sys;
use ulib::thread;
use ulib::time::now_ns;
use ulib::{param, println, report, Prot, PAGE_SIZE};

ulib::main!(main);

const MAX_ROUNDS: usize = 1000;
const PHASE_USER: u64 = 1;
const PHASE_KERNEL: u64 = 2;
const PHASE_DONE: u64 = 3;

/// The phase A asks B for, and the phase B last acknowledged being in.
static PHASE: AtomicU64 = AtomicU64::new(0);
static IN_PHASE: AtomicU64 = AtomicU64::new(0);
/// Busy calls B has begun.
static BUSY_CALLS: AtomicU64 = AtomicU64::new(0);

fn main() -> i32 {
    let busy_us = param::u64("busy_us");
    let rounds = (param::u64("rounds") as usize).min(MAX_ROUNDS);
    if thread::ncpus() < 2 {
        report::error("busytarget", format_args!("needs 2 CPUs"));
        return 1;
    }
    println!("busy-target: busy_us={busy_us} rounds={rounds}");
    sys::pin(Some(0)).expect("pin");
    let start = now_ns();
    let target = thread::spawn(move || {
        sys::pin(Some(1)).expect("pin");
        target_loop(busy_us)
    })
    .expect("spawn");

    let page = ulib::mem::map_rw(PAGE_SIZE).expect("mmap");
    let mut user = [0u64; MAX_ROUNDS];
    let mut kernel = [0u64; MAX_ROUNDS];
    let n_user = phase(PHASE_USER, page, busy_us, &mut user[..rounds]);
    let n_kernel = phase(PHASE_KERNEL, page, busy_us, &mut kernel[..rounds]);
    PHASE.store(PHASE_DONE, Ordering::Release);
    target.join().expect("join");
    let elapsed = now_ns() - start;

    let (Some(mu), Some(mk)) = (median(&mut user[..n_user]), median(&mut kernel[..n_kernel]))
    else {
        report::error(
            "busytarget",
            format_args!("no ack samples (user {n_user}, kernel {n_kernel})"),
        );
        return 1;
    };
    let ratio = mk * 100 / mu.max(1);
    report::metric("busytarget.ack_user_median", mu, "cycles");
    report::metric("busytarget.ack_kernel_median", mk, "cycles");
    report::metric("busytarget.ack_ratio_pct", ratio, "percent");
    report::metric("busytarget.samples_user", n_user as u64, "count");
    report::metric("busytarget.samples_kernel", n_kernel as u64, "count");
    report::metric("busytarget.busy_us", busy_us, "us");
    report::workload((n_user + n_kernel) as u64, elapsed);
    println!("busy-target: ack median user {mu} cycles, kernel {mk} cycles ({ratio} %)");
    0
}

/// Thread B: follows PHASE until it says done, counting its busy calls.
fn target_loop(busy_us: u64) -> u64 {
    loop {
        let phase = PHASE.load(Ordering::Acquire);
        IN_PHASE.store(phase, Ordering::Release);
        match phase {
            PHASE_KERNEL => {
                BUSY_CALLS.fetch_add(1, Ordering::AcqRel);
                sys::busy(busy_us).expect("busy");
            }
            PHASE_DONE => return 0,
            _ => core::hint::spin_loop(),
        }
    }
}

/// Asks B for `phase`, waits until B is in it, then shoots the page down
/// `out.len()` times; returns how many shootdowns sent IPIs (their ack
/// latencies are `out[..n]`). In the kernel phase each shootdown waits for
/// a busy call B has begun since the previous one, and a quarter of
/// `busy_us` into it, so that B is inside the syscall when it lands.
fn phase(phase: u64, page: u64, busy_us: u64, out: &mut [u64]) -> usize {
    PHASE.store(phase, Ordering::Release);
    while IN_PHASE.load(Ordering::Acquire) != phase {
        core::hint::spin_loop();
    }
    let mut seen = BUSY_CALLS.load(Ordering::Acquire);
    let mut n = 0;
    for _ in 0..out.len() {
        // Fault the page in readable (a new valid PTE: no shootdown).
        // SAFETY: our mapping, readable here.
        unsafe { core::ptr::read_volatile(page as *const u8) };
        if phase == PHASE_KERNEL {
            loop {
                let now = BUSY_CALLS.load(Ordering::Acquire);
                if now != seen {
                    seen = now;
                    break;
                }
                core::hint::spin_loop();
            }
            let until = now_ns() + busy_us * 1000 / 4;
            while now_ns() < until {
                core::hint::spin_loop();
            }
        }
        sys::ack_last();
        // Removing the access removes the valid PTE: one shootdown, of a
        // pmap loaded on B's CPU.
        // SAFETY: nothing touches the page until it is readable again.
        unsafe { sys::mprotect(page, PAGE_SIZE, Prot::NONE).expect("mprotect") };
        let ack = sys::ack_last();
        if ack != 0 {
            out[n] = ack;
            n += 1;
        }
        // SAFETY: as above.
        unsafe { sys::mprotect(page, PAGE_SIZE, Prot::READ).expect("mprotect") };
    }
    n
}

fn median(v: &mut [u64]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    Some(v[v.len() / 2])
}
