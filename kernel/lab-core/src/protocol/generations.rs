//! The initiators' side of the generation protocols: FreeBSD D25510's
//! scoreboard ([`super::scoreboard`]) and its consolidated form
//! ([`super::mailbox`]). As D25510's smp_targeted_tlb_shootdown: take the
//! CPU's next generation (`pc_smp_tlb_gen`, never 0), post the request,
//! remember its targets, and spin until each target has written the
//! generation back (pmap_tlb_shootwait's loop), serving the own requests
//! meanwhile. Where the words live, and how a target acknowledges, is the
//! other core's; this one only counts and waits, so the kernel's two
//! protocols and their loom models share one wait loop
//! (kernel/src/mm/shootdown's scoreboard.rs and consolidated.rs,
//! tests/protocols/scoreboard.rs and mailboxes.rs).
//!
//! Per CPU: the generation of its last request (never 0, the value a word
//! holds before any acknowledgement and the scoreboard's "posted") and
//! the targets it waits for. Written only by that CPU, so relaxed.

use crate::cpuset::{CpuSet, MAX_CPUS};

use super::sync::{AtomicU32, AtomicU64, Ordering};
use super::Cpu;

/// The last generation and targets of each of up to `CPUS` initiators.
pub struct Generations<const CPUS: usize = MAX_CPUS> {
    last: [AtomicU32; CPUS],
    targets: [AtomicU64; CPUS],
}

impl<const CPUS: usize> Generations<CPUS> {
    /// No request yet: generation 0, no target.
    #[cfg(not(loom))]
    pub const fn new() -> Generations<CPUS> {
        Generations {
            last: [const { AtomicU32::new(0) }; CPUS],
            targets: [const { AtomicU64::new(0) }; CPUS],
        }
    }

    #[cfg(loom)]
    pub fn new() -> Generations<CPUS> {
        Generations {
            last: core::array::from_fn(|_| AtomicU32::new(0)),
            targets: core::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Takes CPU `me`'s next generation, within `mask` (the mailboxes keep
    /// their top bit for POSTED) and never 0.
    pub fn next(&self, me: u32, mask: u32) -> u32 {
        let mut generation = self.last[me as usize]
            .load(Ordering::Relaxed)
            .wrapping_add(1)
            & mask;
        if generation == 0 {
            generation = 1;
        }
        self.last[me as usize].store(generation, Ordering::Relaxed);
        generation
    }

    /// Records the targets CPU `me`'s request went to.
    pub fn posted(&self, me: u32, targets: CpuSet) {
        self.targets[me as usize].store(targets.0, Ordering::Relaxed);
    }

    /// Spins until `acked(target, generation)` holds for every target of
    /// `cpu`'s last request, each target in turn, calling `poll` (which
    /// serves `cpu`'s own requests, with interrupts off) and then
    /// [`Cpu::spin`] (PAUSE and the kernel's `WaitSpin` chaos point; a
    /// yield, and any pending IPI, under the model checker) between
    /// turns. Interrupts stay as the caller had them.
    pub fn wait(&self, cpu: &impl Cpu, acked: impl Fn(u32, u32) -> bool, mut poll: impl FnMut()) {
        let me = cpu.id() as usize;
        let generation = self.last[me].load(Ordering::Relaxed);
        let targets = CpuSet(self.targets[me].load(Ordering::Relaxed));
        for t in targets.iter() {
            while !acked(t, generation) {
                poll();
                cpu.spin();
            }
        }
    }
}

impl<const CPUS: usize> Default for Generations<CPUS> {
    fn default() -> Generations<CPUS> {
        Generations::new()
    }
}
