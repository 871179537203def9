//! The consolidated mailboxes (lab_core::protocol::mailbox): two CPUs,
//! each sending its shootdowns to the other through mailbox (target,
//! itself) and the target's doorbell, waiting with interrupts on and
//! polling its own doorbell with them off, through the kernel's
//! `Generations` (lab_core::protocol::generations) as the kernel does; the
//! IPI handler serves the doorbell. Checked as the global slot's model: no
//! use of a settled page's entry in user mode; and, for a request whose
//! page tables are freed after the wait (the kernel's
//! AckRule::AfterInvalidate), no entry left in the target's TLB when the
//! wait returns, since a paging-structure walk may use it even in the
//! kernel.

use super::*;
use lab_core::protocol::generations::Generations;
use lab_core::protocol::mailbox::{serve_row, AckOrder, Doorbell, MailWork, Mailbox, POSTED};

struct World {
    order: AckOrder,
    /// Whether targets take each request's rule; false is the mutant
    /// `ignore-rule`: every request acknowledged before it is carried out,
    /// as the scoreboard does.
    honour_rule: bool,
    /// `[target][initiator]`.
    boxes: [[Mailbox; 2]; 2],
    /// Each target's queue head.
    bells: [Doorbell; 2],
    /// Each initiator's last generation and targets.
    gens: Generations<2>,
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
}

struct Invalidate<'a>(&'a Cpu2);

/// `kind` of a request whose page tables are freed after the wait.
const FREES_TABLES: u32 = 1;

impl MailWork for Invalidate<'_> {
    /// The page, and whether it may be acknowledged first.
    type Copy = (u64, bool);
    fn copy(&mut self, _initiator: u32, m: &Mailbox) -> (u64, bool) {
        let frees = m.kind.load(Ordering::Relaxed) == FREES_TABLES;
        (m.words[0].load(Ordering::Relaxed), !frees)
    }
    fn ack_first(&self, copy: &(u64, bool)) -> bool {
        copy.1 || !self.0.world.honour_rule
    }
    fn carry_out(&mut self, &(page, _): &(u64, bool)) {
        // Release: an initiator that sees the acknowledgement after this
        // sees the entry gone.
        self.0.world.tlb[self.0.id as usize].fetch_and(!(1 << page), Ordering::Release);
    }
}

impl Cpu2 {
    fn serve(&self) {
        let w = &self.world;
        let me = self.id as usize;
        serve_row(
            self,
            &w.bells[me],
            |i| &w.boxes[me][i as usize],
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

    fn shoot(&self, &(page, frees_tables): &(u64, bool)) {
        let w = &self.world;
        let me = self.id as usize;
        let t = 1 - me;
        let generation = w.gens.next(self.id, !POSTED);
        let m = &w.boxes[t][me];
        m.kind.store(
            if frees_tables { FREES_TABLES } else { 0 },
            Ordering::Relaxed,
        );
        m.words[0].store(page, Ordering::Relaxed);
        m.post(generation);
        w.bells[t].ring(self.id);
        w.gens.posted(self.id, CpuSet::single(t as u32));
        w.sent[t].fetch_add(1, Ordering::SeqCst);
        w.tlb[me].fetch_and(!(1 << page), Ordering::Relaxed);
        w.gens.wait(
            self,
            |t, generation| w.boxes[t as usize][me].acked(generation),
            || self.without_interrupts(|| self.serve()),
        );
        // The page tables go now: the target's walker must have nothing
        // left that leads into them.
        let left = w.tlb[t].load(Ordering::Acquire) & (1 << page);
        assert!(
            !frees_tables || left == 0,
            "stale TLB entry: cpu {t} still caches page {page} when cpu {me}'s wait returns and its tables are freed"
        );
        w.settled.fetch_or(1 << page, Ordering::Release);
    }

    fn run(&self, program: &[(u64, bool)]) {
        self.irq.set(true);
        for request in program {
            self.shoot(request);
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
        irqs_off(&self.irq, || self.take_pending(), f)
    }
    fn spin(&self) {
        loom::thread::yield_now();
        self.take_pending();
    }
}

fn explore(
    order: AckOrder,
    honour_rule: bool,
    programs: [&'static [(u64, bool)]; 2],
) -> Result<(), String> {
    model_check(move || {
        let world = Arc::new(World {
            order,
            honour_rule,
            boxes: [
                [Mailbox::new(), Mailbox::new()],
                [Mailbox::new(), Mailbox::new()],
            ],
            bells: [Doorbell::new(), Doorbell::new()],
            gens: Generations::new(),
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
/// the same mailbox; no page table freed (acknowledged early).
const BACK_TO_BACK: [&[(u64, bool)]; 2] = [&[(0, false)], &[(1, false), (2, false)]];

/// The same with page tables freed after pages 0 and 1 (invalidated
/// before the acknowledgement), page 2 early again.
const FREEING: [&[(u64, bool)]; 2] = [&[(0, true)], &[(1, true), (2, false)]];

#[test]
fn consolidated_mailboxes_are_clean() {
    expect_clean(explore(AckOrder::AfterCopy, true, BACK_TO_BACK), "");
}

#[test]
fn consolidated_mailboxes_freeing_tables_are_clean() {
    expect_clean(explore(AckOrder::AfterCopy, true, FREEING), "");
}

#[test]
fn mutant_consolidation_ack_before_copy() {
    expect_caught(explore(AckOrder::BeforeCopy, true, BACK_TO_BACK));
}

/// Acknowledging a request whose tables are freed before invalidating it
/// (the scoreboard's order for every request) is caught.
#[test]
fn mutant_consolidation_early_ack_freed_tables() {
    expect_caught(explore(AckOrder::AfterCopy, false, FREEING));
}
