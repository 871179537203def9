//! The cacheline-consolidation shootdown protocol: FreeBSD D25510's
//! scoreboard (scoreboard.rs) with each request carried in the cache line
//! that carries its acknowledgement, and each target's requests found
//! through one queue-head line. Built with feature `cacheline-consolidation`
//! (which implies `scoreboard`).
//!
//! # Source
//!
//! Amit, Tai, Wei, "Don't shoot down TLB shootdowns!", EuroSys 2020,
//! cacheline consolidation, as its patent states it (US 11,341,051,
//! "Consolidating shared state for translation lookaside buffer
//! shootdowns", VMware, filed 2020, claims 1 and 2): put in one line (1)
//! the target's lazy-mode flag and the head of its call-function queue,
//! which the initiator reads and writes one after the other, and (2) the
//! flush description (`flush_tlb_info`) and the per-target call-function
//! data (`csd`) that queues it, which the target reads and completes.
//! Linux merged neither co-location: its `flush_tlb_info` is still a
//! separate per-CPU structure the `csd` points to, and `is_lazy` sits
//! alone in `cpu_tlbstate_shared`, its own line, apart from
//! `call_single_queue` (arch/x86/include/asm/tlbflush.h, kernel/smp.c
//! today). What Linux took of the series is the layout around them:
//! "x86/mm/tlb: Remove 'struct flush_tlb_info' from the stack" (5.3: one
//! cache-aligned per-CPU flush_tlb_info) and "x86/mm/tlb: Privatize
//! cpu_tlbstate" (5.13: `is_lazy`, read by initiators, split from the
//! state only its CPU writes), beside the concurrent local and remote
//! flush (flush-first's note in mod.rs). The inline form was the RFC
//! "x86/mm/tlb: Use async and inline messages for flushing" (2019).
//!
//! The lab's scoreboard has the same split as Linux: a target reads its
//! row word (t, i) and then initiator i's record on another line, the one
//! every other target of the request reads as well; and it finds its
//! requests by reading its row. Here (2) is the mailbox and (1) the
//! doorbell. The lazy half of (1) has nothing to join in this variant
//! (`lazy-tlb` is not combined with it; mm::lazy_tlb keeps its own
//! per-CPU state), so the doorbell's line holds the queue head alone.
//!
//! # Shared state
//!
//! - `MAILBOXES[t][i]`: one 64-byte, line-aligned mailbox per (target t,
//!   initiator i), holding both the acknowledgement word and the request:
//!   `ack` is `generation | POSTED` while a request waits and the bare
//!   generation once t acknowledged it (0 before the first); `kind` and
//!   `words` are the request (`Request::encode`'s kind and two addresses,
//!   or a List's VAs inline, up to [`INLINE_VAS`]; the top bit of `kind`
//!   set for an [`AckRule::AfterInvalidate`] request). Written by i only
//!   while no request of its own is posted in it (its previous shootdown
//!   was waited for), then `ack` by t only.
//! - `DOORBELLS[t]`: target t's queue head on a line of its own, a bit per
//!   initiator that posted to t since t last took them; set by initiators,
//!   taken (swapped to 0) by t.
//! - `GEN`: as in the scoreboard (lab_core::protocol::generations; a
//!   generation is 31 bits, never 0).
//!
//! The trade: per request, the target reads and writes one line, its
//! pair's mailbox, where the scoreboard's target touches two, its row word
//! and the initiator's record, both shared with other pairs on a dense
//! board; per scan it takes its doorbell, one line as the scoreboard's
//! dense row (up to 16 CPUs), where a mailbox row without a doorbell would
//! read one line per initiator; but every initiator writes that line, so
//! it moves between them and the target as the scoreboard's row does. The
//! initiator writes two lines per target, where the scoreboard writes its
//! record once plus the targets' words (one line on a dense board up to
//! 16 CPUs): an all-CPU shootdown costs it 2 (n - 1) lines instead of 2.
//! `shoot.target_lines`, `shoot.target_shared_lines`,
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
//!    to whoever sees the flag), then ring t's doorbell (release: the post
//!    is visible to whoever takes the bit); then a full fence before the
//!    IPIs (an x2APIC ICR write is not serialising).
//! 3. Send one IPI per target (`arch::ipi::send_set`).
//! 4. (mm::shootdown invalidates locally, then calls wait.)
//! 5. Spin until every mailbox (t, me) holds the bare generation, serving
//!    this CPU's own doorbell meanwhile, with interrupts as the caller had
//!    them.
//!
//! # Target ([`serve`], the handler of all three vectors, and poll)
//!
//! Take the doorbell's bits; for each, copy the request out of that
//! mailbox completely (acquire, after seeing the flag), then, by the
//! request's [`AckRule`] as every other protocol takes it: a MayPrecede
//! request (a user pmap's, freeing no page table) is acknowledged by
//! storing the bare generation (release: the copy comes first) and then
//! invalidated, the paper's early acknowledgement; an AfterInvalidate one
//! (the kernel pmap's, or one whose page tables are freed after the wait)
//! is invalidated first, since a paging-structure cache could still walk
//! into a freed table (the rule's comment in mod.rs). Repeat until the
//! doorbell is silent: a request posted while serving is served now and
//! its IPI (pending in the IRR) finds nothing later; with at most one IPI
//! pending per vector, this is what keeps shootdowns from being lost.
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
//! and serve their own doorbell while they spin, and an initiator
//! interrupted while posting is harmless (no target reads a mailbox before
//! its bit).

use core::sync::atomic::{fence, Ordering};

use lab_core::cpuset::CpuSet;
use lab_core::protocol::generations::Generations;
use lab_core::protocol::mailbox::{
    serve_row, AckOrder, Doorbell, MailWork, Mailbox, INLINE_WORDS, POSTED,
};
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

/// `kind` bit: the request is [`AckRule::AfterInvalidate`], so the target
/// invalidates before it acknowledges.
const KIND_INVALIDATE_FIRST: u32 = 1 << 31;

const _: () = assert!(
    core::mem::size_of::<Mailbox>() == 64,
    "a mailbox is one line"
);

/// `[target][initiator]`; all zero (no request yet), so it costs the image
/// nothing (256 KiB of .bss at 64 CPUs).
static MAILBOXES: [[Mailbox; MAX_CPUS]; MAX_CPUS] =
    [const { [const { Mailbox::new() }; MAX_CPUS] }; MAX_CPUS];

/// Each target's queue head: the initiators that posted to it since it
/// last looked (lab_core::protocol::mailbox::Doorbell).
static DOORBELLS: [Doorbell; MAX_CPUS] = [const { Doorbell::new() }; MAX_CPUS];

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
fn put(m: &Mailbox, req: Request, inv: &Invalidation, rule: AckRule) {
    let rule_bit = match rule {
        AckRule::AfterInvalidate => KIND_INVALIDATE_FIRST,
        AckRule::MayPrecede => 0,
    };
    match req {
        Request::List { n, .. } if n as usize <= INLINE_VAS => {
            m.kind
                .store(rule_bit | KIND_INLINE_LIST | (n << 8), Ordering::Relaxed);
            for (w, &va) in m.words.iter().zip(&inv.vas[..n as usize]) {
                w.store(va, Ordering::Relaxed);
            }
        }
        _ => {
            let (kind, a1, a2) = req.encode();
            m.kind.store(rule_bit | kind as u32, Ordering::Relaxed);
            m.words[0].store(a1, Ordering::Relaxed);
            m.words[1].store(a2, Ordering::Relaxed);
        }
    }
}

pub struct Consolidated;

/// A target's work: copy the request out of the mailbox, then invalidate.
struct Target;

impl MailWork for Target {
    /// The request, and whether it may be acknowledged first.
    type Copy = (Invalidation, bool);

    fn copy(&mut self, initiator: u32, m: &Mailbox) -> (Invalidation, bool) {
        let word = m.kind.load(Ordering::Relaxed);
        let ack_first = word & KIND_INVALIDATE_FIRST == 0;
        let kind = word & !KIND_INVALIDATE_FIRST;
        if kind & 0xff == KIND_INLINE_LIST {
            let n = (kind >> 8) & 0xff;
            let mut vas = [0; MAXPIR];
            for (va, w) in vas.iter_mut().zip(&m.words[..n as usize]) {
                *va = w.load(Ordering::Relaxed);
            }
            let req = Request::List { cpu: initiator, n };
            return (Invalidation { req, vas }, ack_first);
        }
        let req = Request::decode(
            u64::from(kind),
            m.words[0].load(Ordering::Relaxed),
            m.words[1].load(Ordering::Relaxed),
        );
        (Invalidation::read(req), ack_first)
    }

    fn ack_first(&self, copy: &(Invalidation, bool)) -> bool {
        // Mutant `mutant-consolidation-early-ack-freed-tables`: every
        // request acknowledged first, as the scoreboard does, those whose
        // page tables the initiator frees after the wait included; a
        // paging-structure cache may then walk a freed table before the
        // invalidation. No oracle under QEMU sees it (TCG caches no
        // paging-structure entries); the exhaustive check does.
        copy.1 || cfg!(feature = "mutant-consolidation-early-ack-freed-tables")
    }

    fn carry_out(&mut self, copy: &(Invalidation, bool)) {
        copy.0.invalidate();
    }
}

/// Serves every request rung on this CPU's doorbell, until it rings no
/// more (lab_core::protocol::mailbox::serve_row). Interrupts must be off.
fn serve() {
    let me = arch::cpu_id();
    serve_row(
        &ThisCpu,
        &DOORBELLS[me as usize],
        |i| mailbox(me, i),
        ACK_ORDER,
        &mut Target,
    );
}

impl Protocol for Consolidated {
    fn init() {
        for kind in [IpiKind::ShootPage, IpiKind::ShootRange, IpiKind::ShootTlb] {
            arch::ipi::set_handler(kind, serve);
        }
    }

    // The rule travels in the mailbox: the target acknowledges before
    // invalidating only a MayPrecede request (the paper's early
    // acknowledgement, which it limits to requests that free no page
    // table), unlike the scoreboard, which always does (D25510's note 1).
    fn start(req: Request, targets: CpuSet, rule: AckRule) -> u64 {
        let me = arch::cpu_id();
        let generation = GEN.next(me, !POSTED);
        // A List's VAs, read once from this CPU's published array.
        let inv = Invalidation::read(req);
        let sent_at = arch::tsc::now();
        // Two lines written per target, its mailbox and its doorbell: the
        // price of the target's single line per request and single line
        // per scan.
        for t in targets.iter() {
            let m = mailbox(t, me);
            put(m, req, &inv, rule);
            m.post(generation);
            DOORBELLS[t as usize].ring(me);
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

    // One line for the target to take and acknowledge the request, its
    // pair's own: serve reads `ack`, `kind` and the two address words of
    // mailbox (t, i) and writes `ack`. The doorbell is the scan's (below),
    // taken once for however many requests rang. Start writes the mailbox's
    // fields and rings the doorbell: two lines per target.
    fn footprint(target: u32, initiator: u32, fp: &mut Footprint) {
        let m = mailbox(target, initiator);
        for lines in [&mut fp.request, &mut fp.post] {
            lines.touch(&m.ack);
            lines.touch(&m.kind);
            lines.touch(&m.words[0]);
            lines.touch(&m.words[1]);
        }
        fp.post.touch(&DOORBELLS[target as usize].rung);
    }

    // The doorbell only: a target reads no mailbox nobody rang for. Unlike
    // the lines of a mailbox row, every initiator writes this one.
    fn scan_footprint(target: u32, _ncpu: u32, lines: &mut Lines) {
        lines.touch(&DOORBELLS[target as usize].rung);
    }
}
