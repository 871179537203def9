//! The scoreboard shootdown protocol: parallel shootdowns as FreeBSD
//! D25510 does them (seed 003; kib, "amd64: allow parallel shootdown
//! IPIs", https://reviews.freebsd.org/D25510, landed in
//! sys/x86/x86/mp_x86.c smp_targeted_tlb_shootdown and invlop_handler).
//! Built with feature `scoreboard`; `scoreboard-padded` adds the padding
//! the review left undone.
//!
//! # Shared state
//!
//! - `RECORDS[cpu]`: CPU `cpu`'s own shootdown record (FreeBSD's
//!   `pc_smp_tlb_op`, `_addr1`, `_addr2`, `_gen` in its pcpu): the request
//!   it is shooting down and that request's generation. Written only by
//!   its CPU, and only while no word of its column is 0 (so no target is
//!   reading it).
//! - `BOARD`: the scoreboard, one u32 generation word per (target,
//!   initiator), word (t, i) at `t * STRIDE + i`, all initialised to 1.
//!   Word (t, i) is set to 0 only by initiator i (to post a request to t)
//!   and set back to a generation only by target t (to acknowledge it).
//!   Target t's row is the words it scans. FreeBSD's stride is
//!   `mp_maxid + 1`, the CPUs there are, so several rows share a cache
//!   line (every row of a 4-CPU machine is in one 64-byte line, and each
//!   acknowledgement pulls the line from the initiator spinning on it);
//!   `scoreboard-padded` rounds the stride up to a whole cache line (review
//!   note 3: "Scoreboard lines owned by given target CPU can be padded to
//!   the cache line, to reduce ping-pong. This is not done in the
//!   prototype.").
//! - `GEN` (mm::shootdown's `Generations`): per initiator, its last
//!   generation (never 0: incremented, skipping 0) and the targets it
//!   still waits for.
//!
//! There is no global lock: `shoot.wait.slot` stays 0, and every CPU can
//! have a shootdown in flight at once.
//!
//! # Initiator ([`Scoreboard::start`], [`Scoreboard::wait`])
//!
//! 1. Take the next generation; fill the own record with the request and
//!    the generation.
//! 2. For each target t, store 0 in word (t, me) (release: the record is
//!    visible to whoever sees the 0), then a full fence before the IPIs
//!    (an x2APIC ICR write is not serialising).
//! 3. Send one IPI per target (`arch::ipi::send_set`).
//! 4. (mm::shootdown invalidates locally, then calls wait.)
//! 5. Spin until every word (t, me) holds the generation, serving this
//!    CPU's own row meanwhile. Interrupts are left as the caller had them
//!    (the review: the initiator does not disable interrupts, so other
//!    IPIs still get in).
//!
//! # Target ([`serve`], the handler of all three vectors, and poll)
//!
//! Scan the own row for words that are 0. For each, read initiator i's
//! record (acquire, after seeing the 0), copy it out completely (a List's
//! VAs included, see mm::shootdown::Invalidation), write the generation
//! into the word, and only then invalidate. Acknowledging before
//! invalidating is the review's note 1: the target cannot return to the
//! code it interrupted (here: any code that could use the stale entry)
//! before the handler finishes. Repeat the scan until it finds no 0: a
//! request posted while serving is served now, and its IPI (pending in the
//! IRR) finds nothing later, which is harmless; with one IPI pending per
//! vector at most, this is what keeps shootdowns from being lost.
//!
//! Serving runs with interrupts off (as FreeBSD's handler does): if poll
//! were interrupted between reading a record and writing the generation,
//! the handler would serve the same word, the initiator could move on and
//! rewrite its record, and the interrupted poll would then write an old
//! generation into a word that waits for the new one.
//!
//! # No deadlock
//!
//! As for the global slot: a CPU spinning with interrupts off (on an mm
//! lock, or waiting for its own acknowledgements) calls
//! [`Scoreboard::poll`], which serves its row. Two initiators targeting
//! each other both serve while they wait.
//!
//! # Interrupts
//!
//! The initiator publishes, sends and waits with interrupts as its caller
//! had them (on, from syscalls and faults), as the review's initiator does:
//! two CPUs shooting each other each take the other's IPI while they spin,
//! besides polling. Only serving needs them off (above): the handler runs
//! so, and poll disables them around its scan. An initiator interrupted
//! between filling its record and zeroing its words is harmless (no target
//! reads the record before its word is 0), and its own row is served by
//! the handler meanwhile.

use core::sync::atomic::{fence, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use lab_core::cpuset::CpuSet;
use x86_64::instructions::interrupts;

use super::{AckRule, Footprint, Generations, Invalidation, Lines, Protocol, Request};
use crate::arch;
use crate::arch::chaos::{self, Point};
use crate::stats::{IpiKind, MAX_CPUS};

/// A CPU's shootdown record, on its own cache line.
#[repr(C, align(64))]
struct Record {
    kind: AtomicU64,
    addr1: AtomicU64,
    addr2: AtomicU64,
    generation: AtomicU32,
}

static RECORDS: [Record; MAX_CPUS] = [const {
    Record {
        kind: AtomicU64::new(0),
        addr1: AtomicU64::new(0),
        addr2: AtomicU64::new(0),
        generation: AtomicU32::new(0),
    }
}; MAX_CPUS];

/// Generation words per 64-byte cache line.
const WORDS_PER_LINE: usize = 64 / core::mem::size_of::<u32>();

/// The scoreboard, cache-line aligned; `MAX_CPUS` rows of at most
/// `MAX_CPUS` (a whole line, padded) words.
#[repr(C, align(64))]
struct Board([AtomicU32; MAX_CPUS * MAX_CPUS]);

// A padded stride is at most MAX_CPUS words when MAX_CPUS is a whole
// number of lines, so MAX_CPUS padded rows fit the board.
const _: () = assert!(
    MAX_CPUS.is_multiple_of(WORDS_PER_LINE),
    "padded rows would overrun the board"
);

static BOARD: Board = Board([const { AtomicU32::new(1) }; MAX_CPUS * MAX_CPUS]);

/// Words from one target's row to the next (set once by init).
static STRIDE: AtomicUsize = AtomicUsize::new(MAX_CPUS);
/// CPUs there are (FreeBSD's mp_maxid + 1): the words a row scan reads.
static NCPU: AtomicUsize = AtomicUsize::new(1);

static GEN: Generations = Generations::new();

/// The row stride for `ncpu` CPUs: FreeBSD's dense `mp_maxid + 1`, or a
/// whole cache line with `scoreboard-padded`.
const fn stride(ncpu: usize) -> usize {
    if cfg!(feature = "scoreboard-padded") {
        ncpu.div_ceil(WORDS_PER_LINE) * WORDS_PER_LINE
    } else {
        ncpu
    }
}

/// Word (target, initiator).
fn word(target: u32, initiator: u32) -> &'static AtomicU32 {
    &BOARD.0[target as usize * STRIDE.load(Ordering::Relaxed) + initiator as usize]
}

pub struct Scoreboard;

/// Serves every request posted in this CPU's row, until none is left.
/// Interrupts must be off (see the module comment).
fn serve() {
    let me = arch::cpu_id();
    let ncpu = NCPU.load(Ordering::Relaxed) as u32;
    loop {
        let mut served = false;
        for initiator in 0..ncpu {
            let w = word(me, initiator);
            if w.load(Ordering::Acquire) != 0 {
                continue;
            }
            chaos::point(Point::ServeSeen);
            let r = &RECORDS[initiator as usize];
            let req = Request::decode(
                r.kind.load(Ordering::Relaxed),
                r.addr1.load(Ordering::Relaxed),
                r.addr2.load(Ordering::Relaxed),
            );
            let generation = r.generation.load(Ordering::Relaxed);
            let work = Invalidation::read(req);
            chaos::point(Point::ServeCopied);
            // The acknowledgement, before the invalidation (review note 1);
            // release: our reads of the record come first.
            w.store(generation, Ordering::Release);
            chaos::point(Point::ServeAcked);
            work.invalidate();
            served = true;
        }
        if !served {
            return;
        }
    }
}

impl Protocol for Scoreboard {
    fn init() {
        let ncpu = arch::smp::cpu_count() as usize;
        NCPU.store(ncpu, Ordering::Relaxed);
        STRIDE.store(stride(ncpu), Ordering::Relaxed);
        for kind in [IpiKind::ShootPage, IpiKind::ShootRange, IpiKind::ShootTlb] {
            arch::ipi::set_handler(kind, serve);
        }
    }

    // Acknowledges before invalidating whatever the rule (D25510's note 1).
    fn start(req: Request, targets: CpuSet, _rule: AckRule) -> u64 {
        let me = arch::cpu_id();
        let generation = GEN.next(me, u32::MAX);
        let r = &RECORDS[me as usize];
        let (kind, a1, a2) = req.encode();
        r.kind.store(kind, Ordering::Relaxed);
        r.addr1.store(a1, Ordering::Relaxed);
        r.addr2.store(a2, Ordering::Relaxed);
        r.generation.store(generation, Ordering::Relaxed);
        let sent_at = arch::tsc::now();
        for t in targets.iter() {
            word(t, me).store(0, Ordering::Release);
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
            me,
            |t, generation| word(t, me).load(Ordering::Acquire) == generation,
            Self::poll,
        );
    }

    fn poll() {
        interrupts::without_interrupts(serve);
    }

    // Two lines for the target: its row word (t, i) and initiator i's
    // record, which every other target of the request reads too; dense
    // rows also share the word's line with other targets' rows.
    fn footprint(target: u32, initiator: u32, fp: &mut Footprint) {
        let r = &RECORDS[initiator as usize];
        for lines in [&mut fp.request, &mut fp.post] {
            lines.touch(word(target, initiator));
            lines.touch(&r.kind);
            lines.touch(&r.addr1);
            lines.touch(&r.addr2);
            lines.touch(&r.generation);
        }
    }

    fn scan_footprint(target: u32, ncpu: u32, lines: &mut Lines) {
        (0..ncpu).for_each(|i| lines.touch(word(target, i)));
    }
}
