//! The global-slot shootdown protocol, as OpenBSD amd64 does it today,
//! with the early acknowledgement and in-context flushes of Amit, Tai, Wei
//! (EuroSys 2020). The protocol itself, its steps and why they are safe,
//! is lab_core::protocol::global_slot, which the host model-checks
//! (kernel/lab-core/tests/protocols/); this file gives it the kernel's
//! requests, IPIs, counters and deferral.
//!
//! The variants' rules ([`POLICY`]):
//! - `early-ack`: a request whose rule is [`AckRule::MayPrecede`] (a user
//!   pmap's, freeing no page table) is acknowledged before it is
//!   invalidated, after it is copied out of the slot;
//! - `in-context-flush`: such a request, taken in the kernel (by the IPI
//!   handler or a spin loop's poll), is acknowledged and left to this CPU's
//!   next return to user mode (mm::shootdown::in_context). Taken from user
//!   mode it is invalidated at once, as the return is immediate.
//!
//! Every spin loop serves requests for this CPU with interrupts off, as the
//! handler does. Before that was so, a poll with interrupts on could be
//! interrupted inside its deferral by the IPI of the next request (the
//! acknowledgement had freed the slot), and the two pushes to this CPU's
//! deferral list lost one entry: the stale-TLB hole that
//! `mutant-poll-irq-on` keeps and the exhaustive check finds.

use core::sync::atomic::{AtomicU64, Ordering};

use lab_core::cpuset::CpuSet;
use lab_core::protocol::global_slot::{Policy, PollIrqs, Slot, Words, Work};

use super::{in_context, AckRule, Footprint, Invalidation, Lines, Protocol, Request, ThisCpu};
use crate::arch;
use crate::stats::{self, Event, IpiKind, MAX_CPUS};

static SLOT: Slot = Slot::new();

/// Per CPU: `seq` of its last request.
static MY_SEQ: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// This build's target rules: the shortcuts, and the mutants of them.
const POLICY: Policy = Policy {
    early_ack: cfg!(feature = "early-ack"),
    in_context: cfg!(feature = "in-context-flush"),
    // Mutant `mutant-defer-kernel-flush`: in-context-flush's deferral
    // applied to every request taken in the kernel, kernel-pmap ones
    // included: a kernel thread (which never returns to user mode) keeps
    // using the old kernel entry after the initiator was told it was gone.
    ack_any: cfg!(feature = "mutant-defer-kernel-flush"),
    // Mutant `mutant-early-ack-before-copy`: early-ack acknowledging before
    // the request is copied out of the slot, which the acknowledgement
    // frees: the next initiator may overwrite it first.
    ack_before_copy: cfg!(feature = "mutant-early-ack-before-copy"),
    // Mutant `mutant-poll-irq-on`: spin loops serve with their caller's
    // interrupts, as this file did before the exhaustive check found the
    // hole (module comment).
    poll: if cfg!(feature = "mutant-poll-irq-on") {
        PollIrqs::AsCaller
    } else {
        PollIrqs::Off
    },
};

pub struct GlobalSlot;

/// What a target does with a request: invalidate it, or defer it.
struct Target;

impl Work for Target {
    type Copy = Invalidation;

    fn copy(&mut self, words: Words) -> Invalidation {
        Invalidation::read(Request::decode(words.kind, words.addr1, words.addr2))
    }

    fn carry_out(&mut self, inv: Invalidation, acked: bool) {
        if !acked {
            inv.invalidate();
        } else if POLICY.in_context && !arch::ipi::interrupted_user_mode() {
            in_context::defer(&inv);
        } else {
            stats::count(Event::ShootEarlyAcks);
            inv.invalidate();
        }
    }
}

/// The IPI handler of all three shootdown vectors (interrupts off).
fn serve() {
    SLOT.serve(&ThisCpu, &POLICY, &mut Target);
}

impl Protocol for GlobalSlot {
    fn init() {
        for kind in [IpiKind::ShootPage, IpiKind::ShootRange, IpiKind::ShootTlb] {
            arch::ipi::set_handler(kind, serve);
        }
    }

    fn start(req: Request, targets: CpuSet, rule: AckRule) -> u64 {
        let t0 = arch::tsc::now();
        SLOT.take(&ThisCpu, u64::from(targets.len()), &POLICY, &mut Target);
        let sent_at = arch::tsc::now();
        stats::add(Event::SlotWaitCycles, sent_at - t0);
        let (kind, addr1, addr2) = req.encode();
        let words = Words { kind, addr1, addr2 };
        let seq = SLOT.post(words, targets, rule == AckRule::MayPrecede);
        MY_SEQ[arch::cpu_id() as usize].store(seq, Ordering::Relaxed);
        arch::ipi::send_set(req.kind(), targets);
        sent_at
    }

    fn wait() {
        let seq = MY_SEQ[arch::cpu_id() as usize].load(Ordering::Relaxed);
        SLOT.wait(&ThisCpu, seq, &POLICY, &mut Target);
    }

    fn poll() {
        SLOT.poll(&ThisCpu, &POLICY, &mut Target);
    }

    // One line, the same for every target and initiator: serve claims in
    // `pending`, reads the request and acknowledges in `wait`; start takes
    // `wait` and writes the rest.
    fn footprint(_target: u32, _initiator: u32, fp: &mut Footprint) {
        let s = &SLOT;
        for f in [
            &s.pending,
            &s.kind,
            &s.addr1,
            &s.addr2,
            &s.may_precede,
            &s.wait,
        ] {
            fp.request.touch(f);
        }
        for f in [
            &s.wait,
            &s.kind,
            &s.addr1,
            &s.addr2,
            &s.may_precede,
            &s.seq,
            &s.pending,
        ] {
            fp.post.touch(f);
        }
    }

    fn scan_footprint(_target: u32, _ncpu: u32, lines: &mut Lines) {
        lines.touch(&SLOT.pending);
    }
}
