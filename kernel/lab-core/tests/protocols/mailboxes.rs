//! The consolidated mailboxes (lab_core::protocol::mailbox): two CPUs,
//! each sending its shootdowns to the other through mailbox (target,
//! itself), waiting with interrupts on and polling its own row with them
//! off, through the kernel's `Generations` (lab_core::protocol::generations)
//! as the kernel does; the IPI handler serves the row. Checked as the
//! global slot's model: no use of a settled page's entry in user mode.

use super::*;
use lab_core::protocol::generations::Generations;
use lab_core::protocol::mailbox::{serve_row, AckOrder, MailWork, Mailbox, POSTED};

struct World {
    order: AckOrder,
    /// `[target][initiator]`.
    boxes: [[Mailbox; 2]; 2],
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
        let me = self.id as usize;
        let t = 1 - me;
        let generation = w.gens.next(self.id, !POSTED);
        let m = &w.boxes[t][me];
        m.kind.store(0, Ordering::Relaxed);
        m.words[0].store(page, Ordering::Relaxed);
        m.post(generation);
        w.gens.posted(self.id, CpuSet::single(t as u32));
        w.sent[t].fetch_add(1, Ordering::SeqCst);
        w.tlb[me].fetch_and(!(1 << page), Ordering::Relaxed);
        w.gens.wait(
            self,
            |t, generation| w.boxes[t as usize][me].acked(generation),
            || self.without_interrupts(|| self.serve()),
        );
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
        irqs_off(&self.irq, || self.take_pending(), f)
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
