//! The consolidated mailbox's core: cacheline consolidation (Amit, Tai,
//! Wei, EuroSys 2020; VMware's patent US 11,341,051, "Consolidating shared
//! state for TLB shootdowns") on FreeBSD D25510's scoreboard. Why, and what
//! it costs, is in kernel/src/mm/shootdown/consolidated.rs.
//!
//! Two co-locations, the patent's two:
//! - One [`Mailbox`] per (target, initiator) carries the request beside its
//!   acknowledgement word (the patent's flush info inside the call-function
//!   data): `ack` is `generation | POSTED` while a request waits and the
//!   bare generation once the target acknowledged it; `kind` and `words`
//!   are the request. The initiator writes the request only while none of
//!   its own is posted there (its previous shootdown was waited for), then
//!   posts it ([`Mailbox::post`]).
//! - One [`Doorbell`] per target is its queue head (Linux's
//!   call_single_queue): the set of initiators whose mailbox holds a
//!   request not yet taken. An initiator rings it after posting
//!   ([`Doorbell::ring`]); the target takes the whole set at once and
//!   serves only those mailboxes ([`serve_row`]), so it finds its requests
//!   in one line instead of reading every initiator's mailbox. The patent
//!   puts the target's lazy-mode flag in the same line, since the initiator
//!   reads that flag just before it writes the head.
//!
//! When a target acknowledges is the request's ([`MailWork::ack_first`]):
//! after copying it out and before carrying it out where the request allows
//! it (the kernel's AckRule::MayPrecede), else after carrying it out.

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

/// One target's queue head: bit i set = initiator i rang since the target
/// last took the set. On a line of its own (the patent's lazy flag would
/// share it; see the module header).
#[repr(C, align(64))]
pub struct Doorbell {
    pub rung: AtomicU64,
}

pub use super::AckOrder;

/// What a target does with a posted request.
pub trait MailWork {
    /// The request read out completely.
    type Copy;
    /// Reads the request out of `mailbox`, posted by `initiator`.
    fn copy(&mut self, initiator: u32, mailbox: &Mailbox) -> Self::Copy;
    /// Whether the request may be acknowledged before it is carried out
    /// (the kernel's AckRule::MayPrecede); if not, it is carried out first.
    fn ack_first(&self, copy: &Self::Copy) -> bool;
    /// Carries it out.
    fn carry_out(&mut self, copy: &Self::Copy);
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

impl Doorbell {
    #[cfg(not(loom))]
    pub const fn new() -> Doorbell {
        Doorbell {
            rung: AtomicU64::new(0),
        }
    }

    #[cfg(loom)]
    pub fn new() -> Doorbell {
        Doorbell {
            rung: AtomicU64::new(0),
        }
    }

    /// Tells the target that `initiator` posted into its mailbox (release:
    /// the post is visible to whoever takes the bit).
    pub fn ring(&self, initiator: u32) {
        self.rung.fetch_or(1 << initiator, Ordering::Release);
    }

    /// Takes every initiator that rang (acquire: their posts are visible).
    fn take(&self) -> u64 {
        self.rung.swap(0, Ordering::Acquire)
    }
}

impl Default for Doorbell {
    fn default() -> Doorbell {
        Doorbell::new()
    }
}

/// Serves every request rung on `cpu`'s `doorbell` (`row(i)`: the mailbox
/// of initiator i) until it rings no more. Interrupts off: a poll
/// interrupted between copying a request and acknowledging it would let
/// the handler serve the same mailbox, the initiator post its next request
/// there, and the poll then store the old generation over the new flag.
/// A request posted while serving rings again and is served by the next
/// turn of the loop; its IPI, pending, finds the doorbell silent later.
pub fn serve_row<'a, W: MailWork>(
    cpu: &impl Cpu,
    doorbell: &Doorbell,
    row: impl Fn(u32) -> &'a Mailbox,
    order: AckOrder,
    work: &mut W,
) {
    loop {
        let mut rung = doorbell.take();
        if rung == 0 {
            return;
        }
        while rung != 0 {
            let initiator = rung.trailing_zeros();
            rung &= rung - 1;
            let m = row(initiator);
            let ack = m.ack.load(Ordering::Acquire);
            // Rung after posting, so posted; the check keeps a stray bit
            // from acknowledging a generation twice.
            if ack & POSTED == 0 {
                continue;
            }
            cpu.interruptible(Window::MailboxSeen);
            let acknowledge = || m.ack.store(ack & !POSTED, Ordering::Release);
            match order {
                AckOrder::AfterCopy => {
                    let copy = work.copy(initiator, m);
                    cpu.interruptible(Window::MailboxCopied);
                    if work.ack_first(&copy) {
                        // Release: the copy comes first.
                        acknowledge();
                        cpu.interruptible(Window::MailboxAcked);
                        work.carry_out(&copy);
                    } else {
                        work.carry_out(&copy);
                        acknowledge();
                        cpu.interruptible(Window::MailboxAcked);
                    }
                }
                AckOrder::BeforeCopy => {
                    acknowledge();
                    cpu.interruptible(Window::MailboxAcked);
                    let copy = work.copy(initiator, m);
                    work.carry_out(&copy);
                }
            }
        }
    }
}
