//! The consolidated mailbox's core: cacheline consolidation (Amit, Tai,
//! Wei, EuroSys 2020) on FreeBSD D25510's scoreboard, each request carried
//! in the cache line that carries its acknowledgement. Why, and what it
//! costs, is in kernel/src/mm/shootdown/consolidated.rs.
//!
//! One [`Mailbox`] per (target, initiator): `ack` is `generation | POSTED`
//! while a request waits and the bare generation once the target
//! acknowledged it; `kind` and `words` are the request. The initiator
//! writes the request only while none of its own is posted there (its
//! previous shootdown was waited for), then posts it ([`Mailbox::post`]);
//! the target scans its row, copies each posted request out, acknowledges
//! and then carries it out ([`serve_row`]), with interrupts off.

use super::sync::{AtomicU32, AtomicU64, Ordering};
use super::{Cpu, Window};

/// Request words that fit a mailbox beside its `ack` and `kind`.
pub const INLINE_WORDS: usize = 7;

/// The `ack` bit that says a request is posted (the rest is its
/// generation).
pub const POSTED: u32 = 1 << 31;

/// One (target, initiator) pair's request and acknowledgement, in one
/// cache line.
#[repr(C, align(64))]
pub struct Mailbox {
    pub ack: AtomicU32,
    pub kind: AtomicU32,
    pub words: [AtomicU64; INLINE_WORDS],
}

pub use super::AckOrder;

/// What a target does with a posted request.
pub trait MailWork {
    /// The request read out completely.
    type Copy;
    /// Reads the request out of `mailbox`, posted by `initiator`.
    fn copy(&mut self, initiator: u32, mailbox: &Mailbox) -> Self::Copy;
    /// Carries it out (after the acknowledgement).
    fn carry_out(&mut self, copy: Self::Copy);
}

impl Mailbox {
    #[cfg(not(loom))]
    pub const fn new() -> Mailbox {
        Mailbox {
            ack: AtomicU32::new(0),
            kind: AtomicU32::new(0),
            words: [const { AtomicU64::new(0) }; INLINE_WORDS],
        }
    }

    #[cfg(loom)]
    pub fn new() -> Mailbox {
        Mailbox {
            ack: AtomicU32::new(0),
            kind: AtomicU32::new(0),
            words: core::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Posts the request the caller has written into `kind` and `words`
    /// (release: the request is visible to whoever sees the flag).
    pub fn post(&self, generation: u32) {
        self.ack.store(generation | POSTED, Ordering::Release);
    }

    /// Whether the target has acknowledged request `generation`.
    pub fn acked(&self, generation: u32) -> bool {
        self.ack.load(Ordering::Acquire) == generation
    }
}

impl Default for Mailbox {
    fn default() -> Mailbox {
        Mailbox::new()
    }
}

/// Serves every request posted in `cpu`'s row (`row(i)`: the mailbox of
/// initiator i, for i below `ncpu`) until none is left. Interrupts off: a
/// poll interrupted between copying a request and acknowledging it would
/// let the handler serve the same mailbox, the initiator post its next
/// request there, and the poll then store the old generation over the new
/// flag.
pub fn serve_row<'a>(
    cpu: &impl Cpu,
    row: impl Fn(u32) -> &'a Mailbox,
    ncpu: u32,
    order: AckOrder,
    work: &mut impl MailWork,
) {
    loop {
        let mut served = false;
        for initiator in 0..ncpu {
            let m = row(initiator);
            let ack = m.ack.load(Ordering::Acquire);
            if ack & POSTED == 0 {
                continue;
            }
            cpu.interruptible(Window::MailboxSeen);
            let copy = match order {
                AckOrder::AfterCopy => {
                    let copy = work.copy(initiator, m);
                    cpu.interruptible(Window::MailboxCopied);
                    // Release: the copy comes first.
                    m.ack.store(ack & !POSTED, Ordering::Release);
                    copy
                }
                AckOrder::BeforeCopy => {
                    m.ack.store(ack & !POSTED, Ordering::Release);
                    cpu.interruptible(Window::MailboxAcked);
                    work.copy(initiator, m)
                }
            };
            cpu.interruptible(Window::MailboxAcked);
            work.carry_out(copy);
            served = true;
        }
        if !served {
            return;
        }
    }
}
