//! Chaos mode: seeded delays at annotated points of the shootdown
//! protocols, so the stale-TLB oracles (coherence, shoot-storm) see
//! interleavings that chance does not give them (issue 26).
//!
//! `chaos=<seed>` on the kernel command line turns it on (absent or 0:
//! off). At each [`point`] the CPU draws from its own stream of the seed
//! (`lab_core::chaos`, which holds the choice and its tests) and, one time
//! in eight, spins 1..=4096 times with PAUSE (up to 16 times that right
//! after a target's acknowledgement: [`ACK_WINDOW_STRETCH`]). Under
//! tcg-icount QEMU ends a
//! vCPU's turn at PAUSE, so a delay lets every other CPU run right there,
//! in the middle of the protocol step the point names; under MTTCG or KVM
//! it widens the window in time instead. With the same seed under
//! tcg-icount a run repeats bit for bit. `chaos.delays` counts the delays
//! taken (0 when off).
//!
//! Interrupts are left as the point's caller has them: a delay in a poll
//! loop that runs with interrupts on lets IPIs arrive in the middle of the
//! poll, which is one of the interleavings wanted.
//!
//! Off, a point costs one load of a read-mostly line and a branch.

use core::sync::atomic::{AtomicU64, Ordering};

use super::percpu::CacheLine;
use crate::stats::{self, Event, MAX_CPUS};

/// A place in a protocol where a delay widens a race window. Each names
/// the window; the points live where the comment says.
// Each variant compiles the points of its own protocol only: not every
// point is used in every build.
#[allow(dead_code)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Point {
    // ---- mm::shootdown::shoot (every protocol) ----
    /// Targets chosen, before this CPU's own invalidation and before the
    /// request is posted: others keep using the old entry meanwhile.
    ShootBeforeStart,
    /// Request posted, before this CPU invalidates its own TLB (the
    /// overlapped local flush): targets serve while the initiator lags.
    ShootBeforeLocal,

    // ---- the scoreboard's and the mailboxes' target (their cores' windows) ----
    /// A target saw a request posted (word 0 / mailbox POSTED), before it
    /// copies the request out: the initiator must not rewrite it.
    ServeSeen,
    /// The request copied, before the acknowledgement.
    ServeCopied,
    /// Acknowledged, before the invalidation: the initiator may already be
    /// returning (D25510's note 1 says the target cannot yet use the entry).
    ServeAcked,
    // ---- the initiator ----
    /// Request posted (word zeroed / mailbox written), before the IPIs
    /// go out: a target polling meanwhile may serve it without its IPI.
    StartPosted,
    /// A turn of the initiator's wait for acknowledgements (with the
    /// caller's interrupts, usually on: IPIs land mid-poll).
    WaitSpin,

    // ---- the global slot and the in-context deferral (lab_core::protocol's windows) ----
    /// Global slot: an initiator took the slot, before it writes the
    /// request into it.
    SlotTaken,
    /// Global slot: a target copied the request, before acknowledging.
    SlotServeCopied,
    /// Global slot: acknowledged, before invalidating or deferring.
    SlotServeAcked,
    /// In-context deferral: the deferred count read, before the new entry
    /// is stored.
    DeferPush,

    // ---- dfly_batch.rs ----
    /// The batch's VAs published, before the request naming them is sent:
    /// a target still serving the previous List reads the new VAs.
    BatchPublished,

    // ---- mm::latr ----
    /// A record queued for one target, before the next target's: a tick
    /// on the first applies it while the others still hold the entry.
    LatrQueued,
    /// A CPU's queue applied, before it says so (APPLIED): a settle that
    /// reads APPLIED early waits, one that does not frees too soon.
    LatrApplied,
    /// A quarantine's settle, before it checks a target's progress.
    LatrSettle,

    // ---- mm::lazy_tlb (reached through lab_core::protocol's windows) ----
    /// Lazy TLB: the note left for a lazy CPU, before its lazy state is
    /// read again.
    LazySkip,

    // ---- mm::pmap ----
    /// A page-table entry changed, before its shootdown starts: other CPUs
    /// may read through the old entry (allowed until the shootdown
    /// returns, the oracle's promise).
    PteChanged,

    // ---- proc::sched switch_pmap ----
    /// The new pmap's CPU bit set and CR3 loaded, before the old pmap's
    /// bit is cleared: a shootdown of the old pmap still targets this CPU.
    SwitchLoaded,

    // ---- the oracles' readers (workloads::shoot_storm) ----
    /// shoot-storm: one page checked, interrupts on, before the next: the
    /// other CPUs' ops and their IPIs land mid-pass, after this CPU cached
    /// their pages, and the rest of its pass reads through what the IPI's
    /// service left (a target that acknowledged and deferred is seen).
    OracleCheck,
}

/// How many times longer a delay with interrupts on may last: it ends at
/// the first IPI, which is what it waits for.
const IRQ_WINDOW_STRETCH: u32 = 4;

/// How many times longer a delay may last at a point right after a
/// target's acknowledgement (ServeAcked, SlotServeAcked), interrupts off.
/// The acknowledgement lets the initiator go on: on 2 CPUs the window that
/// matters there is the initiator's whole way back to user mode and into
/// its next shootdown to this CPU (a system call, the faults on the pages
/// it touches, its next post), which the ordinary delay seldom covers. A
/// target that reads the request after acknowledging it
/// (mutant-early-ack-before-copy, mutant-consolidation-ack-before-copy,
/// mutant-scoreboard-ack-before-copy) then carries out the next request
/// instead, and coherence's remap readers see the page it lost (without
/// the stretch the committed mutation table missed the first two on 2
/// CPUs; with it remap caught them in most runs there). Only
/// the protocols that acknowledge before invalidating reach these points
/// (`fixed`'s global slot does not), and the draw is unchanged: a delay
/// taken elsewhere lasts as before.
const ACK_WINDOW_STRETCH: u32 = 16;

/// The stretch of a delay at `p`.
const fn stretch(p: Point) -> u32 {
    match p {
        Point::ServeAcked | Point::SlotServeAcked => ACK_WINDOW_STRETCH,
        _ => 1,
    }
}

/// The seed, [`lab_core::chaos::OFF`] when off; written once at boot. On
/// a line of its own: every point reads it, and nothing written often may
/// share its line.
static SEED: CacheLine<AtomicU64> = CacheLine(AtomicU64::new(lab_core::chaos::OFF));

/// Per CPU, the decisions it drew so far (the `n` of its stream). Each on
/// its own line, written only by its CPU (an interrupt handler on the same
/// CPU takes the next `n` with the same atomic add).
static DRAWS: [CacheLine<AtomicU64>; MAX_CPUS] = [const { CacheLine(AtomicU64::new(0)) }; MAX_CPUS];

/// Turns chaos on for the rest of the run when `cmdline` has `chaos=<seed>`
/// with a seed other than 0. Called once on the boot CPU before the other
/// CPUs start.
pub fn init(cmdline: &str) {
    let seed = lab_core::cmdline::kernel_u64(cmdline, "chaos");
    SEED.0.store(seed, Ordering::Relaxed);
    if seed != lab_core::chaos::OFF {
        crate::println!("chaos: on, seed {seed}");
    }
}

/// A chaos point: with chaos on, maybe spin here for a while (see the
/// module comment); off, return at once.
#[inline(always)]
pub fn point(p: Point) {
    if SEED.0.load(Ordering::Relaxed) != lab_core::chaos::OFF {
        delay_at(p);
    }
}

/// The decision at `_p`: the point names the window for the reader of the
/// call site; it is not mixed into the draw, which depends on (seed, CPU,
/// how many draws this CPU made) only.
#[cold]
#[inline(never)]
fn delay_at(p: Point) {
    let Some(cpu) = super::percpu::try_cpu_id() else {
        return;
    };
    let n = DRAWS[cpu as usize].0.fetch_add(1, Ordering::Relaxed);
    let seed = SEED.0.load(Ordering::Relaxed);
    let Some(spins) = lab_core::chaos::decide(seed, cpu, n) else {
        return;
    };
    let spins = spins * stretch(p);
    stats::count(Event::ChaosDelays);
    if !x86_64::instructions::interrupts::are_enabled() {
        for _ in 0..spins {
            core::hint::spin_loop();
        }
        return;
    }
    // Interrupts on (a poll in a spin loop, a reader): wait longer, but
    // only until this CPU takes an IPI, so that one lands right here, in
    // the middle of the step the point names.
    stats::count(Event::ChaosIrqWindows);
    let before = super::ipi::taken_here();
    for _ in 0..spins * IRQ_WINDOW_STRETCH {
        if super::ipi::taken_here() != before {
            break;
        }
        core::hint::spin_loop();
    }
}
