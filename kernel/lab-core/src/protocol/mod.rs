//! The cores of the shootdown protocols: the shared-memory steps that
//! initiators and targets take, written once and used twice.
//!
//! The kernel runs them on real CPUs (kernel/src/mm/shootdown), where the
//! hardware takes an interrupt at any instruction boundary with interrupts
//! enabled. The host checks them exhaustively (tests/protocols/, built
//! with `--cfg loom`): the model checker `loom` runs each CPU as a thread,
//! explores every interleaving of their shared accesses, and a CPU's IPI
//! handler pre-empts the CPU's own code at every [`Cpu::interruptible`]
//! point that the core reaches with interrupts enabled.
//!
//! So a core marks, with [`Cpu::interruptible`], every point between two
//! of its shared accesses that may run with interrupts on (a spin loop's
//! poll with the caller's interrupts, an initiator's loops), and enters
//! interrupts-off sections only through [`Cpu::without_interrupts`]. On
//! the kernel the mark costs nothing, or a seeded delay in chaos mode.
//!
//! - [`global_slot`]: OpenBSD's one request slot, with the early
//!   acknowledgement and in-context deferral of Amit et al. (EuroSys 2020).
//! - [`deferral`]: the per-CPU list of invalidations deferred to the next
//!   return to user mode (`in-context-flush`).
//! - [`mailbox`]: the consolidated mailboxes (`cacheline-consolidation`):
//!   a request and its acknowledgement in one line per (target, initiator).
//! - [`lazy_tlb`]: Linux's lazy-TLB handshake between a shootdown that
//!   skips a lazy CPU and that CPU's return (`lazy-tlb`).
//! - [`scoreboard`]: FreeBSD's per-CPU records and generation scoreboard
//!   (D25510, `scoreboard` and `scoreboard-padded`).
//! - [`generations`]: the initiators' side of the scoreboard and the
//!   mailboxes: each CPU's last generation and targets, and its wait.
//! - [`batch`]: DragonFly's batched invalidation (`dfly-batch`): each
//!   CPU's published list of the VAs its List request names.
//! - [`latr`]: LATR's per-CPU queues of lazy invalidations and the marks
//!   that settle a munmap's quarantine (`lazy-latr`).
//! - [`pcid`]: Linux's PCID generations (`pcid`): per-CPU slots, the
//!   switch's flush-or-keep and what an invalidation leaves to flush.

pub mod batch;
pub mod deferral;
pub mod generations;
pub mod global_slot;
pub mod latr;
pub mod lazy_tlb;
pub mod mailbox;
pub mod pcid;
pub mod scoreboard;

/// The atomics a core uses: `core`'s in the kernel, loom's under the
/// model checker (whose atomics record every access to explore its
/// orderings).
pub(crate) mod sync {
    #[cfg(loom)]
    pub(crate) use loom::sync::atomic::{
        fence, AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering,
    };

    #[cfg(not(loom))]
    pub(crate) use core::sync::atomic::{
        fence, AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering,
    };
}

/// A constructor that is `const` for the kernel's statics and plain under
/// loom (whose atomics cannot be built in a constant).
macro_rules! const_unless_loom {
    ($(#[$meta:meta])* $vis:vis fn $name:ident() -> $ret:ty $body:block) => {
        #[cfg(not(loom))]
        $(#[$meta])*
        $vis const fn $name() -> $ret $body
        #[cfg(loom)]
        $(#[$meta])*
        $vis fn $name() -> $ret $body
    };
}
pub(crate) use const_unless_loom;

/// The named points of the cores at which an interrupt may pre-empt a
/// CPU's own code (and chaos mode may delay it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// A target has claimed a request, before reading it.
    SlotServeClaimed,
    /// A target has copied the request out, before acknowledging it (or,
    /// acknowledging after, before carrying it out).
    SlotServeCopied,
    /// A target has acknowledged, before carrying the request out.
    SlotServeAcked,
    /// An initiator holds the slot, before publishing the request.
    SlotStartTaken,
    /// A deferral has read the list's length, before storing the entry.
    DeferPush,
    /// A lazy CPU's note left, before its lazy state is read again.
    LazySkip,
    /// A target saw a mailbox posted, before it copies the request out.
    MailboxSeen,
    /// A target copied a mailbox's request, before acknowledging it.
    MailboxCopied,
    /// A target acknowledged a mailbox's request, before carrying it out.
    MailboxAcked,
    /// A target saw its scoreboard word 0, before it reads the initiator's
    /// record.
    ScoreboardSeen,
    /// A target copied the record, before it writes the generation into
    /// its word.
    ScoreboardCopied,
    /// A target wrote the generation, before carrying the request out.
    ScoreboardAcked,
    /// An initiator zeroed its targets' words, before sending the IPIs.
    ScoreboardPosted,
    /// An initiator published its batch's VAs, before the List request
    /// naming them is posted.
    BatchPublished,
    /// LATR: a record queued and marked for one target, before the next
    /// target's.
    LatrQueued,
    /// LATR: a CPU's queue applied, before it says so (`applied`).
    LatrApplied,
    /// LATR: a quarantine's settle, before it reads a target's progress.
    LatrSettle,
}

/// When a target acknowledges a request relative to copying it out of the
/// memory the initiator posted it in (the scoreboard's record, a
/// consolidated mailbox). Acknowledging lets the initiator go on and post
/// its next request there, so the copy must come first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckOrder {
    /// Copy, acknowledge, carry out (D25510's order, note 1).
    AfterCopy,
    /// The mutants `mutant-scoreboard-ack-before-copy` and
    /// `mutant-consolidation-ack-before-copy`: acknowledge, then copy,
    /// which may read the initiator's next request instead.
    BeforeCopy,
}

/// The CPU a core runs on: the kernel's (arch) or the model checker's.
pub trait Cpu {
    /// This CPU's number.
    fn id(&self) -> u32;

    /// A point of this CPU's own code, between two shared accesses, where
    /// an enabled interrupt may be taken. The hardware needs no help; the
    /// model checker delivers a pending IPI here if interrupts are on.
    fn interruptible(&self, at: Window);

    /// Runs `f` with this CPU's interrupts off, restoring them after.
    fn without_interrupts<R>(&self, f: impl FnOnce() -> R) -> R;

    /// One turn of a spin loop (PAUSE; a yield under the model checker).
    /// Interrupts stay as they are: a spin loop with interrupts on takes
    /// pending IPIs between turns.
    fn spin(&self);
}
