//! The global-slot shootdown protocol's core, as OpenBSD amd64 does it
//! (`tlb_shoot_wait`, `tlb_shoot_addr1`, `tlb_shoot_addr2` in
//! sys/arch/amd64/amd64/pmap.c), with the target-side shortcuts of Amit,
//! Tai, Wei, "Don't shoot down TLB shootdowns!" (EuroSys 2020): early
//! acknowledgement and in-context (deferred) flushes.
//!
//! # Shared state
//!
//! One cache line ([`Slot`]): `wait`, the number of targets that have not
//! acknowledged the current request, doubles as the lock on the whole slot
//! (0 = free); `kind`, `addr1`, `addr2` describe the request and
//! `may_precede` its acknowledgement rule; `pending` is the set of targets
//! that have not yet taken it; `seq` counts requests.
//!
//! # Initiator
//!
//! 1. [`Slot::take`]: compare-and-swap `wait` from 0 to the number of
//!    targets; while it is not 0, spin, serving requests for this CPU.
//! 2. [`Slot::post`]: write the request, bump `seq`, then publish `pending`
//!    (release) and fence: the request must be globally visible before the
//!    IPI can arrive (an x2APIC ICR write is not serialising).
//! 3. The caller sends one IPI per target and invalidates locally.
//! 4. [`Slot::wait`]: spin until `wait` is 0, or `seq` has moved on (the
//!    slot was freed and taken again, so this request completed).
//!
//! # Target ([`Slot::serve`]: the IPI handler, and spin loops' polls)
//!
//! Claim the request by clearing this CPU's bit in `pending` (atomically;
//! if it was clear there is nothing to do), read it, carry it out, and
//! only then acknowledge with an atomic decrement of `wait` (OpenBSD's
//! `lock decq tlb_shoot_wait` after the invlpg). The slot cannot change
//! before every target has decremented.
//!
//! Under [`Policy::acks_first`] (a user request freeing no page table,
//! with `early-ack` or `in-context-flush`) the target copies the request
//! out, acknowledges, and then carries it out, or (`in-context-flush`, in
//! the kernel) defers it to its return to user mode.
//!
//! # Interrupts and polls
//!
//! A CPU spinning with interrupts off would never take the IPI of a
//! request that targets it, so every spin loop polls ([`Slot::poll`]);
//! `pending` makes serving happen exactly once per request, whichever of
//! the handler and the poll comes first. A poll serves with interrupts
//! off ([`PollIrqs::Off`]), as the handler does: what serving does after
//! the acknowledgement (a deferral's push to this CPU's list) is not safe
//! against the handler running in the middle of it, and the
//! acknowledgement lets the next request, and its IPI, come at once.

use crate::cpuset::CpuSet;

use super::sync::{fence, AtomicU64, Ordering};
use super::{const_unless_loom, Cpu, Window};

/// The slot: one line of globals.
#[repr(C, align(64))]
pub struct Slot {
    pub wait: AtomicU64,
    pub pending: AtomicU64,
    pub kind: AtomicU64,
    pub addr1: AtomicU64,
    pub addr2: AtomicU64,
    pub seq: AtomicU64,
    /// The request's acknowledgement rule: 1 if it may be acknowledged
    /// before it is carried out (a user request freeing no page table).
    pub may_precede: AtomicU64,
}

/// A request as the slot carries it (the kernel's `Request::encode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Words {
    pub kind: u64,
    pub addr1: u64,
    pub addr2: u64,
}

/// How a spin loop's poll serves: with interrupts off, or (the mutant
/// `mutant-poll-irq-on`, the code before the fix) as its caller had them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollIrqs {
    Off,
    AsCaller,
}

/// What a variant's targets do: the shortcuts, and the mutants of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// `early-ack`: acknowledge a may-precede request before invalidating.
    pub early_ack: bool,
    /// `in-context-flush`: acknowledge a may-precede request at once and,
    /// in the kernel, defer it to the return to user mode.
    pub in_context: bool,
    /// Mutant `mutant-defer-kernel-flush`: the shortcuts applied to every
    /// request, kernel ones included.
    pub ack_any: bool,
    /// Mutant `mutant-early-ack-before-copy`: the acknowledgement before
    /// the request is copied out of the slot, which it frees.
    pub ack_before_copy: bool,
    pub poll: PollIrqs,
}

impl Policy {
    /// OpenBSD's: carry out, then acknowledge; polls with interrupts off.
    pub const PLAIN: Policy = Policy {
        early_ack: false,
        in_context: false,
        ack_any: false,
        ack_before_copy: false,
        poll: PollIrqs::Off,
    };

    /// Whether a request with this rule is acknowledged before it is
    /// carried out.
    pub const fn acks_first(&self, may_precede: bool) -> bool {
        (may_precede || self.ack_any) && (self.early_ack || self.in_context)
    }
}

/// What a target does with a request it has claimed.
pub trait Work {
    /// The request read out completely (with what it names elsewhere, a
    /// List's addresses), so it can be carried out after the slot is free.
    type Copy;
    fn copy(&mut self, words: Words) -> Self::Copy;
    /// Carries the request out. `acked`: the acknowledgement went first
    /// ([`Policy::acks_first`]), so under `in-context-flush` a target in
    /// the kernel may leave it to its return to user mode.
    fn carry_out(&mut self, copy: Self::Copy, acked: bool);
}

impl Slot {
    const_unless_loom! {
        pub fn new() -> Slot {
            Slot {
                wait: AtomicU64::new(0),
                pending: AtomicU64::new(0),
                kind: AtomicU64::new(0),
                addr1: AtomicU64::new(0),
                addr2: AtomicU64::new(0),
                seq: AtomicU64::new(0),
                may_precede: AtomicU64::new(0),
            }
        }
    }

    fn words(&self) -> Words {
        Words {
            kind: self.kind.load(Ordering::Relaxed),
            addr1: self.addr1.load(Ordering::Relaxed),
            addr2: self.addr2.load(Ordering::Relaxed),
        }
    }

    /// Takes, carries out and acknowledges the current request if it is
    /// pending for `cpu`; false if there was none. The IPI handler calls it
    /// with interrupts off; spin loops through [`Slot::poll`].
    pub fn serve(&self, cpu: &impl Cpu, policy: &Policy, work: &mut impl Work) -> bool {
        let me = 1u64 << cpu.id();
        if self.pending.load(Ordering::Acquire) & me == 0 {
            return false;
        }
        if self.pending.fetch_and(!me, Ordering::AcqRel) & me == 0 {
            return false;
        }
        cpu.interruptible(Window::SlotServeClaimed);
        let may_precede = self.may_precede.load(Ordering::Relaxed) != 0;
        if !policy.acks_first(may_precede) {
            let copy = work.copy(self.words());
            work.carry_out(copy, false);
            cpu.interruptible(Window::SlotServeCopied);
            // The acknowledgement, after the invalidation.
            self.wait.fetch_sub(1, Ordering::Release);
            return true;
        }
        if policy.ack_before_copy {
            // Mutant `mutant-early-ack-before-copy`: the slot is freed
            // while the request is still to be read from it; the next
            // initiator may overwrite it first.
            self.wait.fetch_sub(1, Ordering::Release);
            cpu.interruptible(Window::SlotServeAcked);
            let copy = work.copy(self.words());
            work.carry_out(copy, true);
            return true;
        }
        // Copied out before the acknowledgement frees the slot.
        let copy = work.copy(self.words());
        cpu.interruptible(Window::SlotServeCopied);
        self.wait.fetch_sub(1, Ordering::Release);
        cpu.interruptible(Window::SlotServeAcked);
        work.carry_out(copy, true);
        true
    }

    /// Serves a request pending for `cpu` from a spin loop, with interrupts
    /// off unless the policy is the mutant's (see the module comment).
    pub fn poll(&self, cpu: &impl Cpu, policy: &Policy, work: &mut impl Work) {
        match policy.poll {
            PollIrqs::Off => cpu.without_interrupts(|| self.serve(cpu, policy, work)),
            PollIrqs::AsCaller => self.serve(cpu, policy, work),
        };
    }

    /// Takes the slot for a request to `targets` targets, serving this
    /// CPU's requests while another initiator holds it.
    pub fn take(&self, cpu: &impl Cpu, targets: u64, policy: &Policy, work: &mut impl Work) {
        while self
            .wait
            .compare_exchange(0, targets, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            while self.wait.load(Ordering::Relaxed) != 0 {
                self.poll(cpu, policy, work);
                cpu.spin();
            }
        }
        cpu.interruptible(Window::SlotStartTaken);
    }

    /// Publishes the request (the slot taken): returns its sequence number
    /// for [`Slot::wait`]. The caller sends the IPIs after.
    pub fn post(&self, words: Words, targets: CpuSet, may_precede: bool) -> u64 {
        self.kind.store(words.kind, Ordering::Relaxed);
        self.addr1.store(words.addr1, Ordering::Relaxed);
        self.addr2.store(words.addr2, Ordering::Relaxed);
        self.may_precede
            .store(u64::from(may_precede), Ordering::Relaxed);
        let seq = self.seq.load(Ordering::Relaxed) + 1;
        self.seq.store(seq, Ordering::Relaxed);
        self.pending.store(targets.0, Ordering::Release);
        fence(Ordering::SeqCst);
        seq
    }

    /// Spins until request `seq` is acknowledged by every target, serving
    /// this CPU's requests meanwhile.
    pub fn wait(&self, cpu: &impl Cpu, seq: u64, policy: &Policy, work: &mut impl Work) {
        while self.wait.load(Ordering::Acquire) != 0 && self.seq.load(Ordering::Relaxed) == seq {
            self.poll(cpu, policy, work);
            cpu.spin();
        }
    }
}

impl Default for Slot {
    fn default() -> Slot {
        Slot::new()
    }
}
