//! The cacheline-consolidation shootdown protocol: FreeBSD D25510's
//! scoreboard (scoreboard.rs) with each request carried in the cache line
//! that carries its acknowledgement. Built with feature
//! `cacheline-consolidation` (which implies `scoreboard`).
//!
//! # Source
//!
//! Amit, Tai, Wei, "Don't shoot down TLB shootdowns!", EuroSys 2020,
//! cacheline consolidation: a responding CPU should find everything it
//! needs to serve a shootdown in the line it has to read anyway. In Linux
//! the flush description (`flush_tlb_info`) lived apart from the per-target
//! call-single-data that carries the request and its completion flag, so
//! a target touched two or three lines; the authors' series inlined it
//! into the message ("x86/mm/tlb: Use async and inline messages for
//! flushing", RFC v2, 2019). The scoreboard has the same split: a target
//! reads its row word (t, i) (0 = posted, a generation = acknowledged)
//! and then initiator i's record on another line, the one every other
//! target of the request reads as well.
//!
//! # Shared state
//!
//! - `MAILBOXES[t][i]`: one 64-byte, line-aligned mailbox per (target t,
//!   initiator i), holding both the acknowledgement word and the request:
//!   `ack` is `generation | POSTED` while a request waits and the bare
//!   generation once t acknowledged it (0 before the first); `kind` and
//!   `words` are the request (`Request::encode`'s kind and two addresses,
//!   or a List's VAs inline, up to [`INLINE_VAS`]). Written by i only while
//!   no request of its own is posted in it (its previous shootdown was
//!   waited for), then `ack` by t only. Target t's row `MAILBOXES[t]` is the
//!   mailboxes it scans.
//! - `GEN`: as in the scoreboard (lab_core::protocol::generations; a
//!   generation is 31 bits, never 0).
//!
//! The trade (the paper's): the target reads and writes one line per
//! request instead of two, and that line is its pair's alone; the
//! initiator writes one line per target where the scoreboard writes its
//! record once plus the targets' words (one line on a dense board of up
//! to 16 CPUs), so an all-CPU shootdown costs the initiator n - 1 lines
//! instead of 2. A target's scan reads the `ack` word of every initiator's
//! mailbox, one line each where the dense scoreboard's row is one line;
//! the lines of initiators that posted nothing since the last scan stay
//! valid in the target's cache (nobody wrote them), so they cost hits,
//! not transfers. `shoot.target_lines`, `shoot.target_shared_lines`,
//! `shoot.target_scan_lines` and `shoot.initiator_lines` report all four
//! from the addresses ([`Consolidated::footprint`]).
//!
//! A List request (dfly-batch's VAs, only if that feature is combined
//! with this one) of at most [`INLINE_VAS`] VAs travels inline; a longer
//! one is posted as (cpu, n) and the target reads the VAs from the
//! initiator's published array (mm::shootdown::Invalidation), as the
//! scoreboard does for every List.
//!
//! # Initiator ([`Consolidated::start`], [`Consolidated::wait`])
//!
//! 1. Take the next generation.
//! 2. For each target t: write the request into mailbox (t, me), then
//!    `generation | POSTED` into its `ack` (release: the request is visible
//!    to whoever sees the flag); then a full fence before the IPIs (an
//!    x2APIC ICR write is not serialising).
//! 3. Send one IPI per target (`arch::ipi::send_set`).
//! 4. (mm::shootdown invalidates locally, then calls wait.)
//! 5. Spin until every mailbox (t, me) holds the bare generation, serving
//!    this CPU's own row meanwhile, with interrupts as the caller had them.
//!
//! # Target ([`serve`], the handler of all three vectors, and poll)
//!
//! As the scoreboard's: scan the own row for posted mailboxes; for each,
//! copy the request out of the mailbox completely (acquire, after seeing
//! the flag), acknowledge by storing the bare generation (release: the
//! copy comes first), and only then invalidate (D25510's note 1: the
//! target cannot return to the code it interrupted before the handler
//! finishes). Repeat the scan until it finds nothing posted: a request
//! posted while serving is served now and its IPI (pending in the IRR)
//! finds nothing later; with at most one IPI pending per vector, this is
//! what keeps shootdowns from being lost.
//!
//! Serving runs with interrupts off, for the scoreboard's reason: a poll
//! interrupted between copying a request and acknowledging it would let
//! the handler serve the same mailbox, the initiator move on and post its
//! next request there, and the poll then store the old generation over
//! the new `POSTED` flag: the new request would be neither served nor
//! acknowledged.
//!
//! # No deadlock, interrupts
//!
//! As for the scoreboard: spinners with interrupts off call
//! [`Consolidated::poll`], initiators wait with their caller's interrupts
//! and serve their own row while they spin, and an initiator interrupted
//! while posting is harmless (no target reads a mailbox before its flag).

use core::sync::atomic::{fence, AtomicUsize, Ordering};

use lab_core::cpuset::CpuSet;
use lab_core::protocol::generations::Generations;
use lab_core::protocol::mailbox::{serve_row, AckOrder, MailWork, Mailbox, INLINE_WORDS, POSTED};
use x86_64::instructions::interrupts;

use super::dfly_batch::MAXPIR;
use super::{AckRule, Footprint, Invalidation, Lines, Protocol, Request, ThisCpu};
use crate::arch;
use crate::arch::chaos::{self, Point};
use crate::stats::{IpiKind, MAX_CPUS};

/// A List's VAs that fit a mailbox beside its `ack` and `kind` words.
pub const INLINE_VAS: usize = INLINE_WORDS;

/// `kind` of a List carried inline: this, plus its length << 8.
const KIND_INLINE_LIST: u32 = 4;

const _: () = assert!(
    core::mem::size_of::<Mailbox>() == 64,
    "a mailbox is one line"
);

/// `[target][initiator]`; all zero (no request yet), so it costs the image
/// nothing (256 KiB of .bss at 64 CPUs).
static MAILBOXES: [[Mailbox; MAX_CPUS]; MAX_CPUS] =
    [const { [const { Mailbox::new() }; MAX_CPUS] }; MAX_CPUS];

/// CPUs there are: the mailboxes a row scan reads.
static NCPU: AtomicUsize = AtomicUsize::new(1);

/// Each CPU's last generation and targets (lab_core::protocol::generations).
static GEN: Generations<MAX_CPUS> = Generations::new();

/// When targets acknowledge: after copying the request out, unless this
/// is the mutant.
const ACK_ORDER: AckOrder = if cfg!(feature = "mutant-consolidation-ack-before-copy") {
    // Mutant `mutant-consolidation-ack-before-copy`: acknowledged before
    // the request is copied out. The initiator, seeing the
    // acknowledgement, may return and post its next request into this
    // same mailbox; the copy then reads the new request's words (or a mix
    // of both), and the old request's pages are never invalidated here.
    AckOrder::BeforeCopy
} else {
    AckOrder::AfterCopy
};

/// Mailbox (target, initiator).
fn mailbox(target: u32, initiator: u32) -> &'static Mailbox {
    &MAILBOXES[target as usize][initiator as usize]
}

/// Writes `req` (with `inv`, its copy, for a List's VAs) into mailbox `m`;
/// the caller posts it afterwards.
fn put(m: &Mailbox, req: Request, inv: &Invalidation) {
    match req {
        Request::List { n, .. } if n as usize <= INLINE_VAS => {
            m.kind.store(KIND_INLINE_LIST | (n << 8), Ordering::Relaxed);
            for (w, &va) in m.words.iter().zip(&inv.vas[..n as usize]) {
                w.store(va, Ordering::Relaxed);
            }
        }
        _ => {
            let (kind, a1, a2) = req.encode();
            m.kind.store(kind as u32, Ordering::Relaxed);
            m.words[0].store(a1, Ordering::Relaxed);
            m.words[1].store(a2, Ordering::Relaxed);
        }
    }
}

pub struct Consolidated;

/// A target's work: copy the request out of the mailbox, then invalidate.
struct Target;

impl MailWork for Target {
    type Copy = Invalidation;

    fn copy(&mut self, initiator: u32, m: &Mailbox) -> Invalidation {
        let kind = m.kind.load(Ordering::Relaxed);
        if kind & 0xff == KIND_INLINE_LIST {
            let n = kind >> 8;
            let mut vas = [0; MAXPIR];
            for (va, w) in vas.iter_mut().zip(&m.words[..n as usize]) {
                *va = w.load(Ordering::Relaxed);
            }
            let req = Request::List { cpu: initiator, n };
            return Invalidation { req, vas };
        }
        let req = Request::decode(
            u64::from(kind),
            m.words[0].load(Ordering::Relaxed),
            m.words[1].load(Ordering::Relaxed),
        );
        Invalidation::read(req)
    }

    fn carry_out(&mut self, inv: Invalidation) {
        inv.invalidate();
    }
}

/// Serves every request posted in this CPU's row, until none is left
/// (lab_core::protocol::mailbox::serve_row). Interrupts must be off.
fn serve() {
    let me = arch::cpu_id();
    let ncpu = NCPU.load(Ordering::Relaxed) as u32;
    serve_row(&ThisCpu, |i| mailbox(me, i), ncpu, ACK_ORDER, &mut Target);
}

impl Protocol for Consolidated {
    fn init() {
        NCPU.store(arch::smp::cpu_count() as usize, Ordering::Relaxed);
        for kind in [IpiKind::ShootPage, IpiKind::ShootRange, IpiKind::ShootTlb] {
            arch::ipi::set_handler(kind, serve);
        }
    }

    // Acknowledges before invalidating whatever the rule, as the
    // scoreboard does (D25510's note 1).
    fn start(req: Request, targets: CpuSet, _rule: AckRule) -> u64 {
        let me = arch::cpu_id();
        let generation = GEN.next(me, !POSTED);
        // A List's VAs, read once from this CPU's published array.
        let inv = Invalidation::read(req);
        let sent_at = arch::tsc::now();
        // One line written per target: the paper's price for the target's
        // single line.
        for t in targets.iter() {
            let m = mailbox(t, me);
            put(m, req, &inv);
            m.post(generation);
        }
        fence(Ordering::SeqCst);
        GEN.posted(me, targets);
        chaos::point(Point::StartPosted);
        arch::ipi::send_set(req.kind(), targets);
        sent_at
    }

    fn wait() {
        let me = arch::cpu_id();
        GEN.wait(
            &ThisCpu,
            |t, generation| mailbox(t, me).acked(generation),
            Self::poll,
        );
    }

    fn poll() {
        interrupts::without_interrupts(serve);
    }

    // One line for the target, its pair's own: serve reads `ack`, `kind`
    // and the two address words of mailbox (t, i) and writes `ack`; start
    // writes the same fields.
    fn footprint(target: u32, initiator: u32, fp: &mut Footprint) {
        let m = mailbox(target, initiator);
        for lines in [&mut fp.request, &mut fp.post] {
            lines.touch(&m.ack);
            lines.touch(&m.kind);
            lines.touch(&m.words[0]);
            lines.touch(&m.words[1]);
        }
    }

    fn scan_footprint(target: u32, ncpu: u32, lines: &mut Lines) {
        (0..ncpu).for_each(|i| lines.touch(&mailbox(target, i).ack));
    }
}
