//! Exhaustive checks of the shootdown protocols' cores (lab_core::protocol)
//! with the model checker loom: every interleaving of the CPUs' shared
//! accesses, within a bound on pre-emptions, in small configurations.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test --release -p lab-core --test
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
    /// The generation of its last scoreboard request.
    generation: Cell<u32>,
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
        let was = self.irq.replace(false);
        let r = f();
        self.irq.set(was);
        if was {
            self.take_pending();
        }
        r
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
        generation: Cell::new(0),
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

/// DragonFly's batched invalidation (lab_core::protocol::batch, the
/// kernel's dfly_batch), over the global slot: a List shootdown publishes
/// its pages in the initiator's [`Published`] list, then posts `Words {
/// kind: LIST, addr1: cpu, addr2: n }` through the slot; a target's
/// `ModelWork::copy` reads the first n published pages (before it
/// acknowledges, so before the initiator can publish its next list) and
/// carries out each. The initiator's previous shootdown was always waited
/// for (every model shootdown waits), as the kernel's flush makes sure.
/// Checked as the global slot's model: every published page is settled
/// once the shootdown returns, and no CPU uses it cached in user mode.
mod batch {
    use super::*;
    use lab_core::protocol::batch::MAXPIR;

    /// A List shootdown: `pages` published, the request naming the first
    /// `n` (fewer than published: `mutant-dfly-truncate`).
    #[derive(Clone, Copy, Debug)]
    pub(super) struct List {
        pages: [u64; 2],
        n: u64,
    }

    /// pmap_inval_flush of a batch of two or more pages, from a syscall.
    pub(super) fn shoot(cpu: &ModelCpu, list: List) {
        let w = &cpu.world;
        assert!(
            w.scoreboard.is_none(),
            "the model's lists go through the global slot"
        );
        w.published.publish(cpu, &list.pages);
        let words = Words {
            kind: LIST,
            addr1: u64::from(cpu.id),
            addr2: list.n,
        };
        // What the batch recorded is what the shootdown must cover,
        // whatever the request names (the kernel's tell_model_settled).
        let settles = list.pages.iter().fold(0, |m, p| m | 1 << p);
        cpu.shoot_words(words, true, settles);
    }

    /// A target's copy of a List request: the first n pages its initiator
    /// published, as a mask.
    pub(super) fn read(world: &World, words: Words) -> u64 {
        let mut pages = [0; MAXPIR];
        let n = (words.addr2 as usize).min(MAXPIR);
        world.published.read(words.addr1 as u32, &mut pages[..n]);
        pages[..n].iter().fold(0, |m, p| m | 1 << p)
    }

    /// Two cases, each request naming `n` of its list's pages: CPU 0
    /// flushes lists [1, 2] and then [3, 4] back to back, republishing
    /// only after CPU 1 has read (and acknowledged) the first; and CPU 0
    /// flushes [1, 2] while CPU 1 shoots page 5, so CPU 1 may serve the
    /// list from its spin for the slot, and CPU 0 CPU 1's page from its
    /// wait. (The two in one run, three shootdowns, take over a minute.)
    fn explore(policy: Policy, n: u64) -> Result<(), String> {
        let list = |pages| Op::List(List { pages, n });
        let cases = [
            vec![vec![list([1, 2]), list([3, 4])], vec![]],
            vec![vec![list([1, 2])], vec![Op::Shoot(Shoot { page: 5 })]],
        ];
        cases
            .into_iter()
            .try_for_each(|programs| explore_ops(policy, None, programs))
    }

    #[test]
    fn dfly_batch_is_clean() {
        expect_clean(explore(Policy::PLAIN, 2), "");
    }

    /// The request names only the first published page: the second stays
    /// cached (on the target, and on the initiator, whose local
    /// invalidation reads the same request).
    #[test]
    fn mutant_dfly_truncate() {
        expect_caught(explore(Policy::PLAIN, 1));
    }
}

/// The lazy-TLB handshake (lab_core::protocol::lazy_tlb): CPU 1 holds
/// pmap 1 lazily, with page 0 and a paging-structure cache entry for the
/// table that maps it in its TLB, and idles with interrupts on until it
/// returns to the pmap; CPU 0 changes page 0 (and, if `frees_tables`,
/// frees that table) and shoots the pmap down, skipping CPU 1 if the rule
/// lets it. Checked: a lazy CPU never walks a freed table (its
/// paging-structure caches may, speculatively, at any moment the pmap is
/// loaded), and on its return it uses no stale entry.
mod lazy {
    use super::*;
    use lab_core::protocol::lazy_tlb::{skip, LazyCpu, SkipRule};

    const PAGE: u64 = 1 << 0;
    /// The paging-structure cache entry of the table mapping page 0.
    const TABLE: u64 = 1 << 1;
    const PMAP: u64 = 1;

    struct World {
        lazy: LazyCpu,
        /// IPIs sent to CPU 1, and those it has served.
        sent: AtomicU64,
        served: AtomicU64,
        tlb: AtomicU64,
        settled: AtomicU64,
        done: AtomicUsize,
    }

    struct Initiator;

    impl Cpu for Initiator {
        fn id(&self) -> u32 {
            0
        }
        fn interruptible(&self, _at: Window) {}
        fn without_interrupts<R>(&self, f: impl FnOnce() -> R) -> R {
            f()
        }
        fn spin(&self) {
            loom::thread::yield_now();
        }
    }

    /// CPU 1: its interrupt flag, and whether it has the pmap loaded.
    struct Holder {
        world: Arc<World>,
        irq: Cell<bool>,
        taken: Cell<u64>,
    }

    impl Holder {
        fn walk_check(&self) {
            let walked = self.world.tlb.load(Ordering::Relaxed)
                & self.world.settled.load(Ordering::Acquire)
                & TABLE;
            assert!(
                walked == 0,
                "stale TLB entry: a lazy CPU's paging-structure cache still points at a freed page table"
            );
        }

        fn take_pending(&self) {
            let sent = self.world.sent.load(Ordering::SeqCst);
            if sent == self.taken.get() || !self.irq.get() {
                return;
            }
            self.taken.set(sent);
            // INVLPG of page 0 drops its paging-structure entries too.
            self.world.tlb.fetch_and(!(PAGE | TABLE), Ordering::Relaxed);
            self.world.served.store(sent, Ordering::SeqCst);
        }

        fn run(&self) {
            let w = &self.world;
            self.irq.set(true);
            // Idle, lazy, interrupts on.
            for _ in 0..2 {
                self.walk_check();
                self.take_pending();
            }
            // Back to a thread of the pmap (interrupts off while switching).
            self.irq.set(false);
            if w.lazy.leave() {
                w.tlb.store(0, Ordering::Relaxed);
            }
            self.irq.set(true);
            self.walk_check();
            let stale = w.tlb.load(Ordering::Relaxed) & w.settled.load(Ordering::Acquire);
            assert!(
                stale == 0,
                "stale TLB entry: cpu 1 uses {stale:#b} after its return to the pmap"
            );
            while w.done.load(Ordering::SeqCst) == 0 {
                self.take_pending();
                loom::thread::yield_now();
            }
        }
    }

    fn explore(frees_tables: bool, rule: SkipRule) -> Result<(), String> {
        model_check(move || {
            let world = Arc::new(World {
                lazy: LazyCpu::new(),
                sent: AtomicU64::new(0),
                served: AtomicU64::new(0),
                tlb: AtomicU64::new(PAGE | TABLE),
                settled: AtomicU64::new(0),
                done: AtomicUsize::new(0),
            });
            world.lazy.enter(PMAP);
            let holder = {
                let world = world.clone();
                loom::thread::spawn(move || {
                    Holder {
                        world,
                        irq: Cell::new(false),
                        taken: Cell::new(0),
                    }
                    .run()
                })
            };
            // The initiator: the change is made, then the shootdown.
            if !skip(&Initiator, &world.lazy, PMAP, frees_tables, rule) {
                let n = world.sent.fetch_add(1, Ordering::SeqCst) + 1;
                while world.served.load(Ordering::SeqCst) < n {
                    Initiator.spin();
                }
            }
            let freed = if frees_tables { PAGE | TABLE } else { PAGE };
            world.settled.fetch_or(freed, Ordering::Release);
            world.done.store(1, Ordering::SeqCst);
            holder.join().unwrap();
        })
    }

    #[test]
    fn lazy_tlb_is_clean() {
        for frees_tables in [false, true] {
            expect_clean(
                explore(frees_tables, SkipRule::UnlessTablesFreed),
                &format!(" (frees_tables {frees_tables})"),
            );
        }
    }

    #[test]
    fn mutant_lazy_skip_freed_tables() {
        expect_caught(explore(true, SkipRule::Always));
    }
}

/// The consolidated mailboxes (lab_core::protocol::mailbox): two CPUs,
/// each sending its shootdowns to the other through mailbox (target,
/// itself), waiting with interrupts on and polling its own row with them
/// off, as the kernel does; the IPI handler serves the row. Checked as the
/// global slot's model: no use of a settled page's entry in user mode.
mod mailboxes {
    use super::*;
    use lab_core::protocol::mailbox::{serve_row, AckOrder, MailWork, Mailbox};

    struct World {
        order: AckOrder,
        /// `[target][initiator]`.
        boxes: [[Mailbox; 2]; 2],
        sent: [AtomicU64; 2],
        tlb: [AtomicU64; 2],
        settled: AtomicU64,
        done: AtomicUsize,
    }

    struct Cpu2 {
        id: u32,
        world: Arc<World>,
        irq: Cell<bool>,
        user: Cell<bool>,
        taken: Cell<u64>,
        generation: Cell<u32>,
    }

    struct Invalidate<'a>(&'a Cpu2);

    impl MailWork for Invalidate<'_> {
        type Copy = u64;
        fn copy(&mut self, _initiator: u32, m: &Mailbox) -> u64 {
            m.words[0].load(Ordering::Relaxed)
        }
        fn carry_out(&mut self, page: u64) {
            self.0.world.tlb[self.0.id as usize].fetch_and(!(1 << page), Ordering::Relaxed);
        }
    }

    impl Cpu2 {
        fn serve(&self) {
            let w = &self.world;
            let me = self.id as usize;
            serve_row(
                self,
                |i| &w.boxes[me][i as usize],
                2,
                w.order,
                &mut Invalidate(self),
            );
        }

        fn check(&self, at: &str) {
            let w = &self.world;
            let stale =
                w.tlb[self.id as usize].load(Ordering::Relaxed) & w.settled.load(Ordering::Acquire);
            assert!(
                !self.user.get() || stale == 0,
                "stale TLB entry: cpu {} uses page(s) {stale:#b} after their shootdown returned ({at})",
                self.id
            );
        }

        fn take_pending(&self) {
            let sent = self.world.sent[self.id as usize].load(Ordering::SeqCst);
            if sent == self.taken.get() || !self.irq.get() {
                return;
            }
            self.taken.set(sent);
            let was_user = self.user.replace(false);
            self.irq.set(false);
            self.serve();
            self.irq.set(true);
            self.user.set(was_user);
            self.check("after an IPI");
        }

        fn shoot(&self, page: u64) {
            let w = &self.world;
            let t = 1 - self.id as usize;
            let generation = self.generation.get() + 1;
            self.generation.set(generation);
            let m = &w.boxes[t][self.id as usize];
            m.kind.store(0, Ordering::Relaxed);
            m.words[0].store(page, Ordering::Relaxed);
            m.post(generation);
            w.sent[t].fetch_add(1, Ordering::SeqCst);
            w.tlb[self.id as usize].fetch_and(!(1 << page), Ordering::Relaxed);
            while !m.acked(generation) {
                self.without_interrupts(|| self.serve());
                self.spin();
            }
            w.settled.fetch_or(1 << page, Ordering::Release);
        }

        fn run(&self, program: &[u64]) {
            self.irq.set(true);
            for &page in program {
                self.shoot(page);
            }
            self.user.set(true);
            self.check("returned to user mode");
            let w = &self.world;
            w.done.fetch_add(1, Ordering::SeqCst);
            while w.done.load(Ordering::SeqCst) < 2 {
                self.take_pending();
                loom::thread::yield_now();
            }
            self.take_pending();
        }
    }

    impl Cpu for Cpu2 {
        fn id(&self) -> u32 {
            self.id
        }
        fn interruptible(&self, _at: Window) {
            if self.irq.get() {
                self.take_pending();
            }
        }
        fn without_interrupts<R>(&self, f: impl FnOnce() -> R) -> R {
            let was = self.irq.replace(false);
            let r = f();
            self.irq.set(was);
            if was {
                self.take_pending();
            }
            r
        }
        fn spin(&self) {
            loom::thread::yield_now();
            self.take_pending();
        }
    }

    fn explore(order: AckOrder, programs: [&'static [u64]; 2]) -> Result<(), String> {
        model_check(move || {
            let world = Arc::new(World {
                order,
                boxes: [
                    [Mailbox::new(), Mailbox::new()],
                    [Mailbox::new(), Mailbox::new()],
                ],
                sent: [AtomicU64::new(0), AtomicU64::new(0)],
                tlb: [AtomicU64::new(u64::MAX), AtomicU64::new(u64::MAX)],
                settled: AtomicU64::new(0),
                done: AtomicUsize::new(0),
            });
            let cpu = |id: u32, world: Arc<World>| Cpu2 {
                id,
                world,
                irq: Cell::new(false),
                user: Cell::new(false),
                taken: Cell::new(0),
                generation: Cell::new(0),
            };
            let other = {
                let world = world.clone();
                loom::thread::spawn(move || cpu(1, world).run(programs[1]))
            };
            cpu(0, world).run(programs[0]);
            other.join().unwrap();
        })
    }

    /// Page 0 from CPU 0; pages 1 and 2 from CPU 1, back to back through
    /// the same mailbox.
    const BACK_TO_BACK: [&[u64]; 2] = [&[0], &[1, 2]];

    #[test]
    fn consolidated_mailboxes_are_clean() {
        expect_clean(explore(AckOrder::AfterCopy, BACK_TO_BACK), "");
    }

    #[test]
    fn mutant_consolidation_ack_before_copy() {
        expect_caught(explore(AckOrder::BeforeCopy, BACK_TO_BACK));
    }
}

/// FreeBSD's scoreboard (lab_core::protocol::scoreboard), run by the
/// model CPUs of the global slot's checks: two CPUs, each shooting its
/// pages down on the other (the crossfire), from a syscall with
/// interrupts on; the IPI handler serves the CPU's row, and an initiator
/// waits for its generations as the kernel's `Generations::wait` does,
/// serving its own row with interrupts off between turns. Checked as
/// there: no use of a settled page's cached entry in user mode. Only user
/// pages: the scoreboard acknowledges every request before it invalidates
/// (D25510's note 1), kernel ones included, which the model's check of
/// kernel pages in kernel code would take for a use.
mod scoreboard {
    use super::*;
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
            Model { board, mode }
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
            // Generations::next: never 0, which would read as posted.
            let generation = cpu.generation.get().wrapping_add(1).max(1);
            cpu.generation.set(generation);
            let words = Words {
                kind: 0,
                addr1: s.page,
                addr2: 0,
            };
            self.board.fill(me, words, generation);
            self.board.post(cpu, targets);
            cpu.send_ipis(targets);
            cpu.invalidate(s.page);
            if self.mode.waits {
                // Generations::wait: each target in turn.
                for t in targets.iter() {
                    while !self.board.acked(t, me, generation) {
                        self.board.poll(cpu, self.mode.order, &mut Invalidate(cpu));
                        cpu.spin();
                    }
                }
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
}
