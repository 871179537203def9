//! FreeBSD's scoreboard (lab_core::protocol::scoreboard), run by the
//! model CPUs of the global slot's checks: two CPUs, each shooting its
//! pages down on the other (the crossfire), from a syscall with
//! interrupts on; the IPI handler serves the CPU's row, and an initiator
//! takes and waits for its generations through the kernel's own
//! `Generations` (lab_core::protocol::generations), serving its own row
//! with interrupts off between turns. Checked as
//! there: no use of a settled page's cached entry in user mode. Only user
//! pages: the scoreboard acknowledges every request before it invalidates
//! (D25510's note 1), kernel ones included, which the model's check of
//! kernel pages in kernel code would take for a use.

use super::*;
use lab_core::protocol::generations::Generations;
use lab_core::protocol::scoreboard::{AckOrder, Scoreboard, Words, Work};

/// CPUs the model's board has room for.
const CPUS: usize = 2;

/// How the initiators and the targets behave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Mode {
    /// The initiator waits until every target wrote its generation
    /// (false: `mutant-no-wait-scoreboard`, whose pmap_tlb_shootwait
    /// returns at once, so a page is settled once its IPIs are sent).
    waits: bool,
    /// When a target acknowledges.
    order: AckOrder,
}

/// The kernel's scoreboard.
const KERNEL: Mode = Mode {
    waits: true,
    order: AckOrder::AfterCopy,
};

pub(super) struct Model {
    board: Scoreboard<CPUS>,
    /// Each initiator's last generation and targets.
    gens: Generations<CPUS>,
    mode: Mode,
}

/// A target's work: the page out of the record, then invalidated.
struct Invalidate<'a>(&'a ModelCpu);

impl Work for Invalidate<'_> {
    type Copy = u64;
    fn copy(&mut self, words: Words) -> u64 {
        words.addr1
    }
    fn carry_out(&mut self, page: u64) {
        self.0.invalidate(page);
    }
}

impl Model {
    pub(super) fn new(cpus: usize, mode: Mode) -> Model {
        assert!(cpus <= CPUS, "the model's board has room for {CPUS} CPUs");
        let board = Scoreboard::new();
        // FreeBSD's dense stride (the padded one changes the layout,
        // not the steps).
        board.init(cpus, cpus);
        Model {
            board,
            gens: Generations::new(),
            mode,
        }
    }

    /// The IPI handler (interrupts off).
    pub(super) fn serve(&self, cpu: &ModelCpu) {
        self.board.serve(cpu, self.mode.order, &mut Invalidate(cpu));
    }

    /// One shootdown from a syscall, interrupts on: mm::shootdown's
    /// shoot (start, local invalidation) and pmap_tlb_shootwait.
    pub(super) fn shoot(&self, cpu: &ModelCpu, s: Shoot) {
        let w = &cpu.world;
        let me = cpu.id;
        let targets = CpuSet::first(w.cpus as u32).without(me);
        // Never 0, which would read as posted.
        let generation = self.gens.next(me, u32::MAX);
        let words = Words {
            kind: 0,
            addr1: s.page,
            addr2: 0,
        };
        self.board.fill(me, words, generation);
        self.board.post(cpu, targets);
        self.gens.posted(me, targets);
        cpu.send_ipis(targets);
        cpu.invalidate(s.page);
        if self.mode.waits {
            self.gens.wait(
                cpu,
                |t, generation| self.board.acked(t, me, generation),
                || self.board.poll(cpu, self.mode.order, &mut Invalidate(cpu)),
            );
        }
        w.settled.fetch_or(1 << s.page, Ordering::Release);
    }
}

fn explore(mode: Mode, programs: &[&[Shoot]]) -> Result<(), String> {
    explore_with(Policy::PLAIN, Some(mode), programs)
}

/// One request, then two crossing, then three: CPU 1's second request
/// refills its record and zeroes its word of CPU 0's row again while
/// CPU 0 may still be serving the first, or waiting for its own.
const PROGRAMS: [[&[Shoot]; 2]; 3] = [
    [&[Shoot { page: 0 }], &[]],
    [&[Shoot { page: 0 }], &[Shoot { page: 1 }]],
    BACK_TO_BACK,
];

#[test]
fn scoreboard_is_clean() {
    for programs in PROGRAMS {
        expect_clean(explore(KERNEL, &programs), &format!(" ({programs:?})"));
    }
}

/// The initiator does not wait: a target that has not yet taken the
/// IPI returns to user mode with the page it was asked to drop.
#[test]
fn mutant_no_wait_scoreboard() {
    let no_wait = Mode {
        waits: false,
        ..KERNEL
    };
    expect_caught(explore(
        no_wait,
        &[&[Shoot { page: 0 }], &[Shoot { page: 1 }]],
    ));
}

/// The target acknowledges before it reads the record: CPU 1 goes on
/// to its second request and refills the record first, and CPU 0
/// invalidates page 2 twice and page 1 never.
#[test]
fn mutant_scoreboard_ack_before_copy() {
    let ack_first = Mode {
        order: AckOrder::BeforeCopy,
        ..KERNEL
    };
    expect_caught(explore(ack_first, &BACK_TO_BACK));
}
