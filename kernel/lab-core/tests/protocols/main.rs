//! Exhaustive checks of the shootdown protocols' cores (lab_core::protocol)
//! with the model checker loom: every interleaving of the CPUs' shared
//! accesses, within a bound on pre-emptions, in small configurations.
//!
//! One file per protocol core's model (the global slot's, and what they
//! share, here). Run: `RUSTFLAGS="--cfg loom" cargo test --release -p lab-core --test
//! protocols --target-dir target/loom` (`./lab test` does). Without
//! `--cfg loom` this file is empty.
//!
//! # The model
//!
//! Each CPU is a loom thread running the core's own code with a
//! [`ModelCpu`]: its interrupt flag, whether it is in user mode, and a TLB
//! of a few pages (bit p of a mask; every CPU starts with every page
//! cached). A shootdown's initiator changes page p (nothing to model), runs
//! the core's take, post, IPIs (a pending flag per target), local
//! invalidation and wait, and then marks p *settled*: from then on no CPU
//! may use a cached entry of p. An IPI is taken at the first
//! [`Cpu::interruptible`] point (or spin-loop turn, or end of an
//! interrupts-off section) after it is sent, if interrupts are on: that
//! is where real hardware could take it, and since loom explores when the
//! sender's store happens, every delivery point is explored.
//!
//! Uses, checked at once: user pages are used in user mode only (this
//! kernel reaches user memory through the direct map), i.e. after the
//! return to user mode and after each IPI handler that interrupted user
//! mode; kernel pages (page [`KERNEL_PAGE`]) anywhere in kernel code. A
//! use of a cached settled page is a stale TLB entry: the check panics.
//!
//! Each CPU runs its shootdowns from a syscall (interrupts on), returns to
//! user mode (applying what it deferred, interrupts off), and then serves
//! IPIs from user mode until every CPU is done.
#![cfg(loom)]

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};

use lab_core::cpuset::CpuSet;
use lab_core::protocol::batch::Published;
use lab_core::protocol::deferral::Deferred;
use lab_core::protocol::global_slot::{Policy, PollIrqs, Slot, Words, Work};
use lab_core::protocol::{Cpu, Window};
use loom::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use loom::sync::Arc;

// One file per core's model beyond the global slot's (below).
mod batch;
mod latr;
mod lazy;
mod mailboxes;
mod pcid;
mod scoreboard;

/// The kernel page of the model; pages below it are user pages.
const KERNEL_PAGE: u64 = 7;
const KERNEL_MASK: u64 = 1 << KERNEL_PAGE;

/// One shootdown: of `page`, to every other CPU.
#[derive(Clone, Copy, Debug)]
struct Shoot {
    page: u64,
}

/// A step of a CPU's program: a shootdown of one page, or of a batch's
/// published list (mod batch).
#[derive(Clone, Copy, Debug)]
enum Op {
    Shoot(Shoot),
    List(batch::List),
}

/// The kernel's `Request::encode` kinds the model uses.
const PAGE: u64 = 0;
const LIST: u64 = 3;

/// CPUs the model's published lists have room for.
const LIST_CPUS: usize = 2;

struct World {
    cpus: usize,
    policy: Policy,
    slot: Slot,
    /// The scoreboard, when the CPUs run it instead of the global slot
    /// (mod scoreboard).
    scoreboard: Option<scoreboard::Model>,
    deferred: Vec<Deferred>,
    /// Each CPU's published batch (mod batch).
    published: Published<LIST_CPUS>,
    ipi: Vec<AtomicU64>,
    tlb: Vec<AtomicU64>,
    settled: AtomicU64,
    done: AtomicUsize,
}

struct ModelCpu {
    id: u32,
    world: Arc<World>,
    irq: Cell<bool>,
    user: Cell<bool>,
    /// The IPI handler running now interrupted user mode.
    interrupted_user: Cell<bool>,
    /// IPIs taken so far (of `World::ipi`, the IPIs sent here).
    ipis_taken: Cell<u64>,
}

impl ModelCpu {
    fn tlb(&self) -> &AtomicU64 {
        &self.world.tlb[self.id as usize]
    }

    fn invalidate(&self, page: u64) {
        self.invalidate_mask(1 << page);
    }

    fn invalidate_mask(&self, pages: u64) {
        self.tlb().fetch_and(!pages, Ordering::Relaxed);
    }

    /// One IPI to each of `targets` (counted where each is taken).
    fn send_ipis(&self, targets: CpuSet) {
        for t in targets.iter() {
            self.world.ipi[t as usize].fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Panics if this CPU, where it is, uses a cached entry of a settled
    /// page.
    fn check(&self, at: &str) {
        let stale = self.tlb().load(Ordering::Relaxed) & self.world.settled.load(Ordering::Acquire);
        let used = if self.user.get() {
            stale
        } else {
            stale & KERNEL_MASK
        };
        assert!(
            used == 0,
            "stale TLB entry: cpu {} uses page(s) {used:#b} after their shootdown returned ({at})",
            self.id
        );
    }

    /// The IPI handler, if an IPI is pending (interrupts off inside).
    fn take_pending(&self) {
        // A count of IPIs sent, which only senders write: a handler that
        // cleared a flag would be a write on every turn of a spin loop,
        // progress to loom forever.
        let sent = self.world.ipi[self.id as usize].load(Ordering::SeqCst);
        if sent == self.ipis_taken.get() {
            return;
        }
        self.ipis_taken.set(sent);
        let was_user = self.user.replace(false);
        let was_irq = self.irq.replace(false);
        self.interrupted_user.set(was_user);
        match &self.world.scoreboard {
            Some(board) => board.serve(self),
            None => {
                self.world
                    .slot
                    .serve(self, &self.world.policy, &mut ModelWork { cpu: self });
            }
        }
        self.irq.set(was_irq);
        self.user.set(was_user);
        self.check(if was_user {
            "back in user mode after an IPI"
        } else {
            "back in the kernel after an IPI"
        });
    }

    /// One shootdown from a syscall, interrupts on.
    fn shoot(&self, s: Shoot) {
        if let Some(board) = &self.world.scoreboard {
            return board.shoot(self, s);
        }
        let words = Words {
            kind: PAGE,
            addr1: s.page,
            addr2: 0,
        };
        self.shoot_words(words, s.page != KERNEL_PAGE, 1 << s.page);
    }

    /// A shootdown of `words` through the global slot: take, post, IPIs,
    /// the local invalidation (of what the request names, as the kernel's
    /// invalidate_local reads it), wait; then the pages of `settles` are
    /// settled.
    fn shoot_words(&self, words: Words, may_precede: bool, settles: u64) {
        let w = &self.world;
        let targets = CpuSet::first(w.cpus as u32).without(self.id);
        let mut work = ModelWork { cpu: self };
        w.slot
            .take(self, u64::from(targets.len()), &w.policy, &mut work);
        let seq = w.slot.post(words, targets, may_precede);
        self.send_ipis(targets);
        let local = work.copy(words);
        self.invalidate_mask(local);
        w.slot.wait(self, seq, &w.policy, &mut work);
        w.settled.fetch_or(settles, Ordering::Release);
    }

    /// proc::return_to_user: deferred invalidations applied with
    /// interrupts off, then user mode.
    fn return_to_user(&self) {
        self.irq.set(false);
        self.world.deferred[self.id as usize].take(
            |page| self.invalidate(page),
            || self.tlb().store(0, Ordering::Relaxed),
        );
        self.user.set(true);
        self.check("returned to user mode");
        self.irq.set(true);
    }

    fn run(&self, program: &[Op]) {
        self.irq.set(true);
        for &op in program {
            match op {
                Op::Shoot(s) => self.shoot(s),
                Op::List(list) => batch::shoot(self, list),
            }
        }
        self.return_to_user();
        let w = &self.world;
        w.done.fetch_add(1, Ordering::SeqCst);
        while w.done.load(Ordering::SeqCst) < w.cpus {
            self.take_pending();
            loom::thread::yield_now();
        }
        self.take_pending();
        self.check("at the end");
    }
}

/// `Cpu::without_interrupts` of every model CPU: runs `f` with its flag
/// `irq` clear, restores the flag, and if that turns interrupts back on
/// takes the IPIs that arrived meanwhile (`take_pending`), as the
/// hardware takes a pending interrupt once it is enabled again.
fn irqs_off<R>(irq: &Cell<bool>, take_pending: impl Fn(), f: impl FnOnce() -> R) -> R {
    let was = irq.replace(false);
    let r = f();
    irq.set(was);
    if was {
        take_pending();
    }
    r
}

impl Cpu for ModelCpu {
    fn id(&self) -> u32 {
        self.id
    }

    fn interruptible(&self, _at: Window) {
        self.check("kernel code");
        if self.irq.get() {
            self.take_pending();
        }
    }

    fn without_interrupts<R>(&self, f: impl FnOnce() -> R) -> R {
        irqs_off(&self.irq, || self.take_pending(), f)
    }

    fn spin(&self) {
        loom::thread::yield_now();
        if self.irq.get() {
            self.take_pending();
        }
    }
}

/// The target's work: invalidate, or (acknowledged first, under
/// in-context-flush, in the kernel) defer to the return to user mode.
struct ModelWork<'a> {
    cpu: &'a ModelCpu,
}

impl Work for ModelWork<'_> {
    /// The pages the request names, as a mask (a List's read out of its
    /// initiator's published batch).
    type Copy = u64;

    fn copy(&mut self, words: Words) -> u64 {
        match words.kind {
            LIST => batch::read(&self.cpu.world, words),
            _ => 1 << words.addr1,
        }
    }

    fn carry_out(&mut self, pages: u64, acked: bool) {
        let cpu = self.cpu;
        let defer = acked && cpu.world.policy.in_context && !cpu.interrupted_user.get();
        for page in (0..64).filter(|p| pages & (1 << p) != 0) {
            if defer {
                cpu.world.deferred[cpu.id as usize].push(cpu, page);
            } else {
                cpu.invalidate(page);
            }
        }
    }
}

/// Explores every interleaving of `programs` (one per CPU) under
/// `policy`: Ok if none uses a stale entry, else the first violation.
fn explore(policy: Policy, programs: &[&[Shoot]]) -> Result<(), String> {
    explore_with(policy, None, programs)
}

/// [`explore`], with the CPUs running the scoreboard in `scoreboard`'s
/// mode instead of the global slot if it is given.
fn explore_with(
    policy: Policy,
    scoreboard: Option<scoreboard::Mode>,
    programs: &[&[Shoot]],
) -> Result<(), String> {
    let programs = programs
        .iter()
        .map(|p| p.iter().map(|&s| Op::Shoot(s)).collect())
        .collect();
    explore_ops(policy, scoreboard, programs)
}

/// [`explore_with`], of programs that may hold List shootdowns.
fn explore_ops(
    policy: Policy,
    scoreboard: Option<scoreboard::Mode>,
    programs: Vec<Vec<Op>>,
) -> Result<(), String> {
    model_check(move || {
        let cpus = programs.len();
        let world = Arc::new(World {
            cpus,
            policy,
            slot: Slot::new(),
            scoreboard: scoreboard.map(|mode| scoreboard::Model::new(cpus, mode)),
            deferred: (0..cpus).map(|_| Deferred::new()).collect(),
            published: Published::new(),
            ipi: (0..cpus).map(|_| AtomicU64::new(0)).collect(),
            tlb: (0..cpus).map(|_| AtomicU64::new(u64::MAX)).collect(),
            settled: AtomicU64::new(0),
            done: AtomicUsize::new(0),
        });
        let handles: Vec<_> = programs
            .iter()
            .enumerate()
            .skip(1)
            .map(|(id, program)| {
                let world = world.clone();
                let program = program.clone();
                loom::thread::spawn(move || cpu(id, world).run(&program))
            })
            .collect();
        cpu(0, world).run(&programs[0]);
        handles.into_iter().for_each(|h| h.join().unwrap());
    })
}

/// Runs `run` under loom, every interleaving up to 3 pre-emptions: Ok, or
/// the message of the first panic (a stale use, or loom's own).
fn model_check(run: impl Fn() + Sync + Send + 'static) -> Result<(), String> {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.max_branches = 100_000;
    catch_unwind(AssertUnwindSafe(|| builder.check(run))).map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic without a message".into())
    })
}

/// A correct protocol's verdict: no stale use (`what` names the case).
fn expect_clean(verdict: Result<(), String>, what: &str) {
    if let Err(e) = verdict {
        panic!("a correct protocol used a stale entry{what}: {e}");
    }
}

/// A mutant's verdict: a stale use found.
fn expect_caught(verdict: Result<(), String>) {
    assert!(
        verdict
            .as_ref()
            .is_err_and(|e| e.contains("stale TLB entry")),
        "the mutant was not caught: {verdict:?}"
    );
}

fn cpu(id: usize, world: Arc<World>) -> ModelCpu {
    ModelCpu {
        id: id as u32,
        world,
        irq: Cell::new(false),
        user: Cell::new(false),
        interrupted_user: Cell::new(false),
        ipis_taken: Cell::new(0),
    }
}

const EARLY_ACK: Policy = Policy {
    early_ack: true,
    ..Policy::PLAIN
};
const IN_CONTEXT: Policy = Policy {
    in_context: true,
    ..Policy::PLAIN
};

/// Page 0 from CPU 0; pages 1 and 2 from CPU 1, back to back: CPU 0 takes
/// CPU 1's first request while it spins for the slot, and the second may
/// come while it is still serving the first.
const BACK_TO_BACK: [&[Shoot]; 2] = [
    &[Shoot { page: 0 }],
    &[Shoot { page: 1 }, Shoot { page: 2 }],
];

fn clean(policy: Policy, programs: &[&[Shoot]]) {
    expect_clean(explore(policy, programs), "");
}

fn caught(policy: Policy, programs: &[&[Shoot]]) {
    expect_caught(explore(policy, programs));
}

#[test]
fn global_slot_is_clean() {
    clean(Policy::PLAIN, &BACK_TO_BACK);
}

#[test]
fn early_ack_is_clean() {
    clean(EARLY_ACK, &BACK_TO_BACK);
}

#[test]
fn in_context_flush_is_clean() {
    clean(IN_CONTEXT, &BACK_TO_BACK);
}

#[test]
fn in_context_flush_keeps_kernel_requests_synchronous() {
    clean(
        IN_CONTEXT,
        &[
            &[Shoot { page: 0 }],
            &[Shoot { page: KERNEL_PAGE }, Shoot { page: 2 }],
        ],
    );
}

/// The hole: a spin loop's poll served with interrupts on; the handler's
/// deferral lands inside the poll's, and one entry is lost.
#[test]
fn mutant_poll_irq_on() {
    caught(
        Policy {
            poll: PollIrqs::AsCaller,
            ..IN_CONTEXT
        },
        &BACK_TO_BACK,
    );
}

#[test]
fn mutant_early_ack_before_copy() {
    caught(
        Policy {
            ack_before_copy: true,
            ..EARLY_ACK
        },
        &BACK_TO_BACK,
    );
}

#[test]
fn mutant_defer_kernel_flush() {
    caught(
        Policy {
            ack_any: true,
            ..IN_CONTEXT
        },
        &[&[Shoot { page: 0 }], &[Shoot { page: KERNEL_PAGE }]],
    );
}
