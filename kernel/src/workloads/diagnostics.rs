//! Workloads that exist for the harness rather than for pmap figures: they
//! fail on purpose, so the harness's outcome decoding is tested against the
//! real kernel, or they give it a fixed amount of compute to time.
//!
//! - `panic`: panics (outcome `panic`).
//! - `hang`: never ends (outcome `timeout`).
//! - `triple-fault`: loads an empty IDT and raises an exception, so the CPU
//!   triple-faults and QEMU (under `-no-reboot`) exits 0 (outcome
//!   `triple-fault`).
//! - `spin`: a fixed compute loop; the harness's `--accel auto` probe times
//!   it under KVM and TCG to see which is faster on this host.

use lab_core::cmdline::{Kind, ParamSpec};
use lab_core::report::{Scope, Status};
use x86_64::structures::DescriptorTablePointer;
use x86_64::VirtAddr;

use super::Workload;
use crate::report;

pub static PANIC: Workload = Workload {
    name: "panic",
    help: "panic on purpose (tests the harness's panic outcome)",
    params: &[ParamSpec {
        key: "msg",
        kind: Kind::Choice(&["deliberate", "other"]),
        default: "deliberate",
        help: "message word",
    }],
    run: |params, _| {
        panic!(
            "{} panic requested by the command line",
            params.choice("msg")
        )
    },
};

pub static HANG: Workload = Workload {
    name: "hang",
    help: "spin forever (tests the harness's timeout outcome)",
    params: &[],
    run: |_, _| loop {
        core::hint::spin_loop();
    },
};

pub static TRIPLE_FAULT: Workload = Workload {
    name: "triple-fault",
    help: "triple-fault the CPU (tests the harness's reset outcome)",
    params: &[],
    run: |_, _| {
        x86_64::instructions::interrupts::disable();
        // An IDT with limit 0 has no valid gate: the #UD from ud2 cannot be
        // delivered (#GP), nor can that (#DF), so the CPU shuts down, which
        // QEMU turns into a reset and, under -no-reboot, an exit with 0.
        let empty = DescriptorTablePointer {
            limit: 0,
            base: VirtAddr::zero(),
        };
        // SAFETY: deliberately breaks exception delivery; nothing runs after
        // the ud2 below, which never returns.
        unsafe {
            x86_64::instructions::tables::lidt(&empty);
            core::arch::asm!("ud2", options(noreturn));
        }
    },
};

pub static SPIN: Workload = Workload {
    name: "spin",
    help: "a fixed compute loop of `iters` rounds (the harness's accelerator probe)",
    params: &[ParamSpec {
        key: "iters",
        kind: Kind::U64 {
            min: 0,
            max: 1 << 40,
        },
        default: "10000000",
        help: "rounds of an xorshift step",
    }],
    run: |params, _| {
        let iters = params.u64("iters");
        let start = rdtsc();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..iters {
            // xorshift64: cheap, serial (each step needs the last), and
            // black_box keeps the loop from being folded away.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x = core::hint::black_box(x);
        }
        report::metric("spin.iters", iters, "count", Scope::Global);
        report::metric("spin.checksum", x & 0xffff, "count", Scope::Global);
        let cycles = rdtsc().wrapping_sub(start);
        report::metric("spin.cycles", cycles, "cycles", Scope::Global);
        Status::Ok
    },
};

/// The time-stamp counter (kept local: arch's TSC module is another
/// helper's, and this workload needs only a raw reading).
fn rdtsc() -> u64 {
    // SAFETY: rdtsc reads a counter; it has no memory effects, and every
    // x86-64 CPU has it.
    unsafe { core::arch::x86_64::_rdtsc() }
}
