//! The global-slot shootdown protocol, as OpenBSD amd64 does it today.
//!
//! # Shared state
//!
//! One cache line of globals (OpenBSD's `tlb_shoot_wait`,
//! `tlb_shoot_addr1`, `tlb_shoot_addr2`): `wait`, the number of targets
//! that have not acknowledged the current request, doubles as the lock on
//! the whole slot (0 = free); `kind`, `addr1`, `addr2` describe the request;
//! `pending` is the set of targets that have not yet taken it; `seq` counts
//! requests.
//!
//! # Initiator ([`GlobalSlot::start`], [`GlobalSlot::wait`])
//!
//! 1. Take the slot: compare-and-swap `wait` from 0 to the number of
//!    targets; while it is not 0, spin (serving requests for this CPU) and
//!    count the cycles as `shoot.wait.slot`.
//! 2. Write the request, bump `seq`, then publish `pending` = targets
//!    (release), and fence: the request must be globally visible before the
//!    IPI can arrive (an x2APIC ICR write is not serialising).
//! 3. Send one IPI per target (`arch::ipi::send_set`, which counts them).
//! 4. (mm::shootdown invalidates locally, then calls wait.)
//! 5. Wait until `wait` is 0, or `seq` has moved on (the slot was freed and
//!    taken again, so our request completed). OpenBSD's shootwait spins
//!    until the counter is 0 whoever holds it; we stop at our own request.
//!
//! # Target ([`serve`], the handler of all three vectors)
//!
//! Claim the request by clearing our bit in `pending` (atomically; if it
//! was clear there is nothing for us), read the request, invalidate, and
//! only then acknowledge with an atomic decrement of `wait` (OpenBSD's
//! `lock decq tlb_shoot_wait` after the invlpg). The initiator cannot reuse
//! the slot, so the request cannot change, before every target has
//! decremented.
//!
//! Two variants acknowledge a request whose `rule` is
//! [`AckRule::MayPrecede`] (a user pmap's, freeing no page table) before
//! invalidating it; both copy the request out of the slot first, since the
//! acknowledgement frees the slot for the next initiator:
//! - `early-ack` (Amit, Tai, Wei, "Don't shoot down TLB shootdowns!",
//!   EuroSys 2020, early acknowledgement): acknowledge, then invalidate
//!   before returning to the interrupted code;
//! - `in-context-flush` (the same paper, in-context flushes): when the IPI
//!   interrupted kernel code (or the request is served by a kernel spin
//!   loop's poll), acknowledge and leave the invalidation to this CPU's
//!   next return to user mode (mm::shootdown::in_context). A request taken
//!   from user mode is invalidated at once, as the return is immediate.
//!
//! # No deadlock, no lost request
//!
//! A CPU spinning (for the slot, for its acknowledgements, or on an mm
//! lock) with interrupts off would never take the IPI of a request that
//! targets it, and the request's initiator would wait forever. So spinners
//! call [`GlobalSlot::poll`], which serves a request pending for this CPU
//! directly; `pending` makes serving happen exactly once per request
//! whichever of the IPI handler and the poll comes first. A late IPI finds
//! its bit clear (or serves the next request early, which is harmless).
//! The IPI is counted as received by the arch layer either way, so sent
//! still equals received.
//!
//! # Interrupts
//!
//! The initiator takes the slot and waits for acknowledgements with
//! interrupts as its caller had them, which is on for every pmap operation
//! of a syscall or fault: targets take the IPI wherever they are in the
//! kernel, outside the few interrupts-off sections (which poll while they
//! spin). [`serve`] may be interrupted by the handler on the same CPU: the
//! claim (clearing the bit in `pending`) is atomic, so exactly one of them
//! serves, and the slot cannot change before it acknowledges. An initiator
//! interrupted by another CPU's IPI has nothing to serve (the slot is its
//! own until every target acknowledged), so the handler returns at once;
//! two CPUs cannot be waiting on each other's requests.

use core::sync::atomic::{fence, AtomicU64, Ordering};

use lab_core::cpuset::CpuSet;

use super::{in_context, AckRule, Footprint, Invalidation, Lines, Protocol, Request};
use crate::arch;
use crate::stats::{self, Event, IpiKind, MAX_CPUS};

#[repr(C, align(64))]
struct Slot {
    wait: AtomicU64,
    pending: AtomicU64,
    kind: AtomicU64,
    addr1: AtomicU64,
    addr2: AtomicU64,
    seq: AtomicU64,
    /// The request's [`AckRule`]: 1 for `MayPrecede`.
    may_precede: AtomicU64,
}

static SLOT: Slot = Slot {
    wait: AtomicU64::new(0),
    pending: AtomicU64::new(0),
    kind: AtomicU64::new(0),
    addr1: AtomicU64::new(0),
    addr2: AtomicU64::new(0),
    seq: AtomicU64::new(0),
    may_precede: AtomicU64::new(0),
};

/// Per CPU: `seq` of its last request.
static MY_SEQ: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

pub struct GlobalSlot;

/// Takes, carries out and acknowledges the current request if it is
/// pending for this CPU. The IPI handler of all three shootdown vectors.
fn serve() {
    let me = 1u64 << arch::cpu_id();
    if SLOT.pending.load(Ordering::Relaxed) & me == 0 {
        return;
    }
    if SLOT.pending.fetch_and(!me, Ordering::AcqRel) & me == 0 {
        return;
    }
    let req = Request::decode(
        SLOT.kind.load(Ordering::Relaxed),
        SLOT.addr1.load(Ordering::Relaxed),
        SLOT.addr2.load(Ordering::Relaxed),
    );
    let may_precede = SLOT.may_precede.load(Ordering::Relaxed) != 0;
    // Mutant `mutant-defer-kernel-flush`: in-context-flush's deferral
    // applied to every request taken in the kernel, kernel-pmap ones
    // included: a kernel thread (which never returns to user mode) keeps
    // using the old kernel entry after the initiator was told it was gone.
    let may_defer = may_precede || cfg!(feature = "mutant-defer-kernel-flush");
    if !(may_defer && (cfg!(feature = "early-ack") || cfg!(feature = "in-context-flush"))) {
        super::invalidate_local(req);
        // The acknowledgement, after the invalidation.
        SLOT.wait.fetch_sub(1, Ordering::Release);
        return;
    }
    // Copied out before the acknowledgement frees the slot.
    let inv = Invalidation::read(req);
    SLOT.wait.fetch_sub(1, Ordering::Release);
    if cfg!(feature = "in-context-flush") && !arch::ipi::interrupted_user_mode() {
        in_context::defer(&inv);
    } else {
        stats::count(Event::ShootEarlyAcks);
        inv.invalidate();
    }
}

impl Protocol for GlobalSlot {
    fn init() {
        for kind in [IpiKind::ShootPage, IpiKind::ShootRange, IpiKind::ShootTlb] {
            arch::ipi::set_handler(kind, serve);
        }
    }

    fn start(req: Request, targets: CpuSet, rule: AckRule) -> u64 {
        let n = u64::from(targets.len());
        let t0 = arch::tsc::now();
        while SLOT
            .wait
            .compare_exchange_weak(0, n, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            while SLOT.wait.load(Ordering::Relaxed) != 0 {
                serve();
                core::hint::spin_loop();
            }
        }
        let sent_at = arch::tsc::now();
        stats::add(Event::SlotWaitCycles, sent_at - t0);
        let (kind, a1, a2) = req.encode();
        SLOT.kind.store(kind, Ordering::Relaxed);
        SLOT.addr1.store(a1, Ordering::Relaxed);
        SLOT.addr2.store(a2, Ordering::Relaxed);
        let may_precede = u64::from(rule == AckRule::MayPrecede);
        SLOT.may_precede.store(may_precede, Ordering::Relaxed);
        let seq = SLOT.seq.load(Ordering::Relaxed) + 1;
        SLOT.seq.store(seq, Ordering::Relaxed);
        MY_SEQ[arch::cpu_id() as usize].store(seq, Ordering::Relaxed);
        SLOT.pending.store(targets.0, Ordering::Release);
        fence(Ordering::SeqCst);
        arch::ipi::send_set(req.kind(), targets);
        sent_at
    }

    fn wait() {
        let seq = MY_SEQ[arch::cpu_id() as usize].load(Ordering::Relaxed);
        while SLOT.wait.load(Ordering::Acquire) != 0 && SLOT.seq.load(Ordering::Relaxed) == seq {
            serve();
            core::hint::spin_loop();
        }
    }

    fn poll() {
        serve();
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
