//! The scoreboard shootdown protocol's core: parallel shootdowns as
//! FreeBSD D25510 does them (seed 003; kib, "amd64: allow parallel
//! shootdown IPIs", https://reviews.freebsd.org/D25510, landed in
//! sys/x86/x86/mp_x86.c smp_targeted_tlb_shootdown and invlop_handler).
//! The kernel's glue (requests, IPIs, generations, the padded stride of
//! `scoreboard-padded`) is kernel/src/mm/shootdown/scoreboard.rs.
//!
//! # Shared state ([`Scoreboard`])
//!
//! - `records[cpu]` ([`Record`]): CPU `cpu`'s own shootdown record
//!   (FreeBSD's `pc_smp_tlb_op`, `_addr1`, `_addr2`, `_gen` in its pcpu):
//!   the request it is shooting down and that request's generation.
//!   Written only by its CPU, and only while no word of its column is 0
//!   (so no target is reading it).
//! - the board: the scoreboard, one u32 generation word per (target,
//!   initiator), word (t, i) at `t * stride + i`, all initialised to 1.
//!   Word (t, i) is set to 0 only by initiator i (to post a request to t)
//!   and set back to a generation only by target t (to acknowledge it).
//!   Target t's row is the words it scans. FreeBSD's stride is
//!   `mp_maxid + 1`, the CPUs there are, so several rows share a cache
//!   line (every row of a 4-CPU machine is in one 64-byte line, and each
//!   acknowledgement pulls the line from the initiator spinning on it);
//!   `scoreboard-padded` rounds the stride up to a whole cache line (review
//!   note 3: "Scoreboard lines owned by given target CPU can be padded to
//!   the cache line, to reduce ping-pong. This is not done in the
//!   prototype."). The stride and the number of CPUs are set once at boot
//!   ([`Scoreboard::init`]).
//! - ([`super::generations`]'s `Generations`): per initiator, its last
//!   generation (never 0: incremented, skipping 0) and the targets it
//!   still waits for. This core takes the generation as an argument.
//!
//! There is no global lock: every CPU can have a shootdown in flight at
//! once.
//!
//! # Initiator ([`Scoreboard::fill`], [`Scoreboard::post`], [`Scoreboard::acked`])
//!
//! 1. Take the next generation; fill the own record with the request and
//!    the generation ([`Scoreboard::fill`]).
//! 2. For each target t, store 0 in word (t, me) (release: the record is
//!    visible to whoever sees the 0), then a full fence before the IPIs
//!    (an x2APIC ICR write is not serialising) ([`Scoreboard::post`]).
//! 3. The caller sends one IPI per target.
//! 4. (The caller invalidates locally, then waits.)
//! 5. Spin until every word (t, me) holds the generation
//!    ([`Scoreboard::acked`]), serving this CPU's own row meanwhile
//!    ([`Scoreboard::poll`]). Interrupts are left as the caller had them
//!    (the review: the initiator does not disable interrupts, so other
//!    IPIs still get in). The loop is [`super::generations`]'s
//!    `Generations::wait`, shared with the consolidated mailboxes.
//!
//! # Target ([`Scoreboard::serve`]: the handler of all three vectors, and poll)
//!
//! Scan the own row for words that are 0. For each, read initiator i's
//! record (acquire, after seeing the 0), copy it out completely (a List's
//! VAs included, see the kernel's mm::shootdown::Invalidation), write the
//! generation into the word, and only then invalidate. Acknowledging
//! before invalidating is the review's note 1: the target cannot return
//! to the code it interrupted (here: any code that could use the stale
//! entry) before the handler finishes. Repeat the scan until it finds no
//! 0: a request posted while serving is served now, and its IPI (pending
//! in the IRR) finds nothing later, which is harmless; with one IPI
//! pending per vector at most, this is what keeps shootdowns from being
//! lost.
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

use crate::cpuset::{CpuSet, MAX_CPUS};

use super::sync::{fence, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use super::{const_unless_loom, Cpu, Window};

pub use super::global_slot::Words;
pub use super::AckOrder;

/// A CPU's shootdown record, on its own cache line.
#[repr(C, align(64))]
pub struct Record {
    pub kind: AtomicU64,
    pub addr1: AtomicU64,
    pub addr2: AtomicU64,
    pub generation: AtomicU32,
}

/// The board's words, cache-line aligned: room for `CPUS` rows of `CPUS`
/// words, read as one array with word (t, i) at `t * stride + i`.
#[repr(C, align(64))]
struct Board<const CPUS: usize>([[AtomicU32; CPUS]; CPUS]);

/// The records and the board of up to `CPUS` CPUs (the kernel's statics
/// are [`MAX_CPUS`]; the model checker's a few).
#[repr(C)]
pub struct Scoreboard<const CPUS: usize = MAX_CPUS> {
    records: [Record; CPUS],
    board: Board<CPUS>,
    /// Words from one target's row to the next (set once by init).
    stride: AtomicUsize,
    /// CPUs there are (FreeBSD's mp_maxid + 1): the words a row scan reads.
    ncpu: AtomicUsize,
}

/// What a target does with a request it found posted.
pub trait Work {
    /// The request read out completely (with what it names elsewhere, a
    /// List's addresses), so it can be carried out after the
    /// acknowledgement has let the initiator go on.
    type Copy;
    fn copy(&mut self, words: Words) -> Self::Copy;
    /// Carries the request out (after the acknowledgement).
    fn carry_out(&mut self, copy: Self::Copy);
}

impl Record {
    const_unless_loom! {
        fn new() -> Record {
            Record {
                kind: AtomicU64::new(0),
                addr1: AtomicU64::new(0),
                addr2: AtomicU64::new(0),
                generation: AtomicU32::new(0),
            }
        }
    }

    /// The request, as the initiator filled it (relaxed: the acquire of
    /// the word that was seen 0 orders these loads).
    #[inline]
    fn words(&self) -> Words {
        Words {
            kind: self.kind.load(Ordering::Relaxed),
            addr1: self.addr1.load(Ordering::Relaxed),
            addr2: self.addr2.load(Ordering::Relaxed),
        }
    }
}

impl<const CPUS: usize> Scoreboard<CPUS> {
    /// No request posted: every word 1 (not 0, which reads as posted), a
    /// dense stride, one CPU until [`Scoreboard::init`].
    #[cfg(not(loom))]
    pub const fn new() -> Scoreboard<CPUS> {
        Scoreboard {
            records: [const { Record::new() }; CPUS],
            board: Board([const { [const { AtomicU32::new(1) }; CPUS] }; CPUS]),
            stride: AtomicUsize::new(CPUS),
            ncpu: AtomicUsize::new(1),
        }
    }

    #[cfg(loom)]
    pub fn new() -> Scoreboard<CPUS> {
        Scoreboard {
            records: core::array::from_fn(|_| Record::new()),
            board: Board(core::array::from_fn(|_| {
                core::array::from_fn(|_| AtomicU32::new(1))
            })),
            stride: AtomicUsize::new(CPUS),
            ncpu: AtomicUsize::new(1),
        }
    }

    /// Sets the number of CPUs and the row stride, once, before any
    /// request: `stride` at least `ncpu`, and `ncpu * stride` words at
    /// most `CPUS * CPUS`.
    pub fn init(&self, ncpu: usize, stride: usize) {
        self.ncpu.store(ncpu, Ordering::Relaxed);
        self.stride.store(stride, Ordering::Relaxed);
    }

    /// Word (target, initiator).
    pub fn word(&self, target: u32, initiator: u32) -> &AtomicU32 {
        let stride = self.stride.load(Ordering::Relaxed);
        &self.board.0.as_flattened()[target as usize * stride + initiator as usize]
    }

    /// CPU `cpu`'s record.
    pub fn record(&self, cpu: u32) -> &Record {
        &self.records[cpu as usize]
    }

    /// Serves every request posted in `cpu`'s row, until none is left,
    /// acknowledging in `order` ([`AckOrder::AfterCopy`] but in the
    /// mutant). Interrupts must be off (see the module comment): the IPI
    /// handler calls it so, spin loops through [`Scoreboard::poll`].
    pub fn serve(&self, cpu: &impl Cpu, order: AckOrder, work: &mut impl Work) {
        let me = cpu.id();
        let ncpu = self.ncpu.load(Ordering::Relaxed) as u32;
        loop {
            let mut served = false;
            for initiator in 0..ncpu {
                let w = self.word(me, initiator);
                if w.load(Ordering::Acquire) != 0 {
                    continue;
                }
                cpu.interruptible(Window::ScoreboardSeen);
                let r = &self.records[initiator as usize];
                if order == AckOrder::BeforeCopy {
                    // The mutant: the record is read after the word lets
                    // its initiator rewrite it.
                    w.store(r.generation.load(Ordering::Relaxed), Ordering::Release);
                    cpu.interruptible(Window::ScoreboardAcked);
                    let copy = work.copy(r.words());
                    work.carry_out(copy);
                    served = true;
                    continue;
                }
                let words = r.words();
                let generation = r.generation.load(Ordering::Relaxed);
                let copy = work.copy(words);
                cpu.interruptible(Window::ScoreboardCopied);
                // The acknowledgement, before the invalidation (review note
                // 1); release: our reads of the record come first.
                w.store(generation, Ordering::Release);
                cpu.interruptible(Window::ScoreboardAcked);
                work.carry_out(copy);
                served = true;
            }
            if !served {
                return;
            }
        }
    }

    /// Serves `cpu`'s row from a spin loop, with interrupts off (the
    /// handler could otherwise serve a word between this scan's read of
    /// the record and its acknowledgement; module comment).
    pub fn poll(&self, cpu: &impl Cpu, order: AckOrder, work: &mut impl Work) {
        cpu.without_interrupts(|| self.serve(cpu, order, work));
    }

    /// Fills `initiator`'s record with its next request and `generation`
    /// (never 0). Its previous request must have been waited for: a target
    /// may be reading the record while any word of its column is 0.
    pub fn fill(&self, initiator: u32, words: Words, generation: u32) {
        let r = &self.records[initiator as usize];
        r.kind.store(words.kind, Ordering::Relaxed);
        r.addr1.store(words.addr1, Ordering::Relaxed);
        r.addr2.store(words.addr2, Ordering::Relaxed);
        r.generation.store(generation, Ordering::Relaxed);
    }

    /// Posts `cpu`'s filled record to `targets`: zeroes their words of its
    /// column, then fences; the caller sends the IPIs after.
    pub fn post(&self, cpu: &impl Cpu, targets: CpuSet) {
        let me = cpu.id();
        for t in targets.iter() {
            // Release: whoever sees the 0 sees the record filled before.
            self.word(t, me).store(0, Ordering::Release);
        }
        // The words must be globally visible before any IPI can arrive (an
        // x2APIC ICR write is not serialising).
        fence(Ordering::SeqCst);
        cpu.interruptible(Window::ScoreboardPosted);
    }

    /// Whether `target` has acknowledged `initiator`'s request
    /// `generation` (the initiator's wait condition).
    pub fn acked(&self, target: u32, initiator: u32, generation: u32) -> bool {
        self.word(target, initiator).load(Ordering::Acquire) == generation
    }
}

impl<const CPUS: usize> Default for Scoreboard<CPUS> {
    fn default() -> Scoreboard<CPUS> {
        Scoreboard::new()
    }
}
