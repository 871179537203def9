//! The scoreboard shootdown protocol: parallel shootdowns as FreeBSD
//! D25510 does them (seed 003; kib, "amd64: allow parallel shootdown
//! IPIs", https://reviews.freebsd.org/D25510). Built with feature
//! `scoreboard`; `scoreboard-padded` adds the padding the review left
//! undone. The protocol itself, its steps and why they are safe, is
//! lab_core::protocol::scoreboard, which the host model-checks
//! (kernel/lab-core/tests/protocols/); this file gives it the kernel's
//! requests, IPIs, generations (`GEN`, lab_core::protocol::generations)
//! and row stride.
//!
//! There is no global lock: `shoot.wait.slot` stays 0, and every CPU can
//! have a shootdown in flight at once. Targets acknowledge before they
//! invalidate, whatever the request's [`AckRule`] (the review's note 1).

use lab_core::cpuset::CpuSet;
use lab_core::protocol::generations::Generations;
use lab_core::protocol::scoreboard::{AckOrder, Scoreboard as Board, Words, Work};

use super::{AckRule, Footprint, Invalidation, Lines, Protocol, Request, ThisCpu};
use crate::arch;
use crate::stats::{IpiKind, MAX_CPUS};

/// The records and the board, sized for every CPU the kernel can have.
static BOARD: Board<MAX_CPUS> = Board::new();

/// Generation words per 64-byte cache line.
const WORDS_PER_LINE: usize = 64 / core::mem::size_of::<u32>();

// A padded stride is at most MAX_CPUS words when MAX_CPUS is a whole
// number of lines, so MAX_CPUS padded rows fit the board's MAX_CPUS rows
// of MAX_CPUS words.
const _: () = assert!(
    MAX_CPUS.is_multiple_of(WORDS_PER_LINE),
    "padded rows would overrun the board"
);

/// Each CPU's last generation and targets (lab_core::protocol::generations).
static GEN: Generations<MAX_CPUS> = Generations::new();

/// When targets acknowledge: after copying the request out of the
/// initiator's record, unless this is the mutant.
const ACK_ORDER: AckOrder = if cfg!(feature = "mutant-scoreboard-ack-before-copy") {
    // Mutant `mutant-scoreboard-ack-before-copy`: acknowledged before the
    // record is read. The initiator, seeing its generation, may return,
    // fill its record with its next request and post it; the target then
    // invalidates the new request's pages (or a mix of both) instead of
    // the old one's, which stay in its TLB.
    AckOrder::BeforeCopy
} else {
    AckOrder::AfterCopy
};

/// The row stride for `ncpu` CPUs: FreeBSD's dense `mp_maxid + 1`, or a
/// whole cache line with `scoreboard-padded`.
const fn stride(ncpu: usize) -> usize {
    if cfg!(feature = "scoreboard-padded") {
        ncpu.div_ceil(WORDS_PER_LINE) * WORDS_PER_LINE
    } else {
        ncpu
    }
}

pub struct Scoreboard;

/// A target's work: read the request (a List's VAs too) out of the
/// initiator's record, then, after the acknowledgement, invalidate it.
struct Target;

impl Work for Target {
    type Copy = Invalidation;

    fn copy(&mut self, words: Words) -> Invalidation {
        Invalidation::read(Request::decode(words.kind, words.addr1, words.addr2))
    }

    fn carry_out(&mut self, inv: Invalidation) {
        inv.invalidate();
    }
}

/// The IPI handler of all three shootdown vectors (interrupts off): serves
/// every request posted in this CPU's row, until none is left.
fn serve() {
    BOARD.serve(&ThisCpu, ACK_ORDER, &mut Target);
}

impl Protocol for Scoreboard {
    fn init() {
        let ncpu = arch::smp::cpu_count() as usize;
        BOARD.init(ncpu, stride(ncpu));
        for kind in [IpiKind::ShootPage, IpiKind::ShootRange, IpiKind::ShootTlb] {
            arch::ipi::set_handler(kind, serve);
        }
    }

    // Acknowledges before invalidating whatever the rule (D25510's note 1).
    fn start(req: Request, targets: CpuSet, _rule: AckRule) -> u64 {
        let me = arch::cpu_id();
        let generation = GEN.next(me, u32::MAX);
        let (kind, addr1, addr2) = req.encode();
        BOARD.fill(me, Words { kind, addr1, addr2 }, generation);
        let sent_at = arch::tsc::now();
        BOARD.post(&ThisCpu, targets);
        GEN.posted(me, targets);
        arch::ipi::send_set(req.kind(), targets);
        sent_at
    }

    fn wait() {
        let me = arch::cpu_id();
        GEN.wait(
            &ThisCpu,
            |t, generation| BOARD.acked(t, me, generation),
            Self::poll,
        );
    }

    fn poll() {
        BOARD.poll(&ThisCpu, ACK_ORDER, &mut Target);
    }

    // Two lines for the target: its row word (t, i) and initiator i's
    // record, which every other target of the request reads too; dense
    // rows also share the word's line with other targets' rows.
    fn footprint(target: u32, initiator: u32, fp: &mut Footprint) {
        let r = BOARD.record(initiator);
        for lines in [&mut fp.request, &mut fp.post] {
            lines.touch(BOARD.word(target, initiator));
            lines.touch(&r.kind);
            lines.touch(&r.addr1);
            lines.touch(&r.addr2);
            lines.touch(&r.generation);
        }
    }

    fn scan_footprint(target: u32, ncpu: u32, lines: &mut Lines) {
        (0..ncpu).for_each(|i| lines.touch(BOARD.word(target, i)));
    }
}
