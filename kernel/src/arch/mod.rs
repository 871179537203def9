// STUB until the smp branch lands: single CPU, no IPIs
//
// This file stands in for the arch layer (GDT/IDT, LAPIC, SMP bring-up,
// IPIs) that is built on the smp branch, with exactly the API the mm code
// uses, so that mm builds and runs on one CPU. It is replaced as a whole
// when the branches merge; nothing else lives in arch/ on this branch.

/// This CPU's number (0..cpu_count).
pub use percpu::cpu_id;

pub mod percpu {
    /// This CPU's number: always 0 on one CPU.
    pub fn cpu_id() -> u32 {
        0
    }
}

pub mod ipi {
    use crate::stats::IpiKind;
    use lab_core::cpuset::CpuSet;

    /// Sends one IPI of `kind` to CPU `to`. There is no other CPU to send to.
    #[allow(dead_code)] // part of the arch API; mm uses send_set
    pub fn send(kind: IpiKind, to: u32) {
        panic!(
            "arch stub: {} IPI to cpu {to} on a one-CPU kernel",
            kind.name()
        );
    }

    /// Sends one IPI of `kind` to each CPU of `targets` but this one. With
    /// one CPU the only legal target set is empty (or this CPU alone).
    pub fn send_set(kind: IpiKind, targets: CpuSet) {
        let others = targets.without(super::cpu_id());
        if !others.is_empty() {
            panic!(
                "arch stub: {} IPI to {others:?} on a one-CPU kernel",
                kind.name()
            );
        }
    }

    /// Registers the handler for IPIs of `kind`. No IDT yet, and no IPI can
    /// arrive on one CPU, so there is nothing to register.
    pub fn set_handler(kind: IpiKind, handler: fn()) {
        let _ = (kind, handler);
    }
}

pub mod smp {
    use lab_core::cpuset::CpuSet;

    /// How many CPUs are online.
    pub fn cpu_count() -> u32 {
        1
    }

    /// The online CPUs.
    pub fn online() -> CpuSet {
        CpuSet::single(0)
    }
}

pub mod tsc {
    /// The time stamp counter.
    pub fn now() -> u64 {
        // SAFETY: rdtsc has no preconditions in ring 0.
        unsafe { core::arch::x86_64::_rdtsc() }
    }

    /// TSC cycles to nanoseconds: uncalibrated here, assumes 1 GHz.
    pub fn cycles_to_ns(c: u64) -> u64 {
        c
    }
}
