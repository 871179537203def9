//! The PCID generations (lab_core::protocol::pcid), as the kernel's
//! `pcid` variant uses them: user pmap A, whose pages CPU 0 changes and
//! shoots down, and pmap B, never changed, which CPU 1 switches to and
//! from. Both CPUs start in user mode running A with A's pages cached
//! under slot 0's PCID; CPU 0 runs its shootdowns from a syscall
//! (interrupts on) and stays on A; CPU 1 takes IPIs in user mode and in
//! the kernel, and switches to B and back to A as the scheduler does (the
//! new pmap's `pm_cpus` bit set, the switch, then the old bit cleared,
//! all with interrupts off).
//!
//! Two CPUs: a third one staying on A (served by IPIs) had not finished
//! exploring after two minutes, and CPU 0, running A through its own
//! shootdowns, already checks a CPU that stays. One initiator, which
//! waits for each shootdown: the race of two initiators' requests to one
//! target (where Linux's "already covered" rule acts) is left out.
//!
//! The TLB: per CPU, per slot (PCID), per page, the version of the page's
//! entry cached (None: not cached, filled on the next use from the page
//! tables). A shootdown changes its page (a new version), bumps A's
//! generation, reads `pm_cpus`, sends the IPIs, invalidates here and
//! waits; once it returns, its version is *settled*: a CPU running A in
//! user mode must not use an older entry of that page (checked at every
//! use: back in user mode, after each IPI taken there, at the end).
//!
//! Each case runs in the kernel's form (requests carry neither pmap nor
//! generation: nothing or a full flush of the PCID) and in Linux's
//! (requests carry both: a partial flush of the request's page when it
//! is the one generation outstanding).

use super::*;
use lab_core::protocol::pcid::{Flush, Keep, Pcids, Request, TlbGen, SLOTS};
use std::cell::RefCell;

/// Pages of pmap A the model changes.
const PAGES: usize = 2;
const CPUS: usize = 2;
const A: u64 = 1;
const B: u64 = 2;

struct Pmap {
    id: u64,
    gen: TlbGen,
    cpus: AtomicU64,
    /// Each page's page-table entry, as a version.
    pte: [AtomicU64; PAGES],
}

impl Pmap {
    fn new(id: u64) -> Pmap {
        Pmap {
            id,
            gen: TlbGen::new(),
            cpus: AtomicU64::new(0),
            pte: [AtomicU64::new(0), AtomicU64::new(0)],
        }
    }
}

/// What a CPU does besides serving IPIs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// Shoots down these pages of A, one after the other (running A).
    Shoot(&'static [usize]),
    /// Switches to B and back to A.
    Switch,
}

struct World {
    keep: Keep,
    /// Requests carry their pmap and generation (Linux's form).
    tagged: bool,
    cpus: usize,
    pcids: Pcids<CPUS>,
    a: Pmap,
    b: Pmap,
    /// The request in flight (one initiator, which waits for each).
    req_page: AtomicU64,
    req_gen: AtomicU64,
    /// IPIs sent to each CPU, and those it has served.
    sent: [AtomicU64; CPUS],
    served: [AtomicU64; CPUS],
    /// Per page, the version its last returned shootdown made.
    settled: [AtomicU64; PAGES],
    done: AtomicUsize,
}

struct PcidCpu {
    id: u32,
    world: Arc<World>,
    irq: Cell<bool>,
    user: Cell<bool>,
    /// The pmap loaded (its id).
    loaded: Cell<u64>,
    taken: Cell<u64>,
    tlb: RefCell<[[Option<u64>; PAGES]; SLOTS]>,
}

impl PcidCpu {
    fn pmap(&self) -> &Pmap {
        let w = &self.world;
        if self.loaded.get() == A {
            &w.a
        } else {
            &w.b
        }
    }

    fn slot(&self) -> usize {
        let slots = self.world.pcids.of(self.id);
        slots.loaded().expect("a user pmap is always loaded")
    }

    /// Uses every page of A (filling what is not cached), if in user mode
    /// on A: panics on an entry older than its page's settled version.
    fn use_pages(&self, at: &str) {
        if !self.user.get() || self.loaded.get() != A {
            return;
        }
        let w = &self.world;
        let slot = self.slot();
        let mut tlb = self.tlb.borrow_mut();
        for (page, entry) in tlb[slot].iter_mut().enumerate() {
            let settled = w.settled[page].load(Ordering::Acquire);
            let version = *entry.get_or_insert_with(|| w.a.pte[page].load(Ordering::Acquire));
            assert!(
                version >= settled,
                "stale TLB entry: cpu {} uses page {page} at version {version} after the \
                 shootdown of version {settled} returned ({at})",
                self.id
            );
        }
    }

    /// Carries out a flush decision in the loaded PCID.
    fn apply(&self, flush: Option<Flush>, page: usize) {
        let slot = self.slot();
        let mut tlb = self.tlb.borrow_mut();
        match flush.expect("a user pmap is always loaded") {
            Flush::Nothing => {}
            Flush::Partial => tlb[slot][page] = None,
            Flush::Full => tlb[slot] = [None; PAGES],
        }
    }

    /// The request for A's `page` made at generation `made`, as this
    /// model's form carries it.
    fn request(&self, made: u64) -> Request {
        if self.world.tagged {
            Request {
                pmap: Some(A),
                made: Some(made),
                ranged: true,
            }
        } else {
            Request::UNTAGGED
        }
    }

    /// The IPI handler, if one is pending and interrupts are on: the
    /// invalidation by the loaded slot's generation, then the ack.
    fn take_pending(&self) {
        let w = &self.world;
        let sent = w.sent[self.id as usize].load(Ordering::SeqCst);
        if sent == self.taken.get() || !self.irq.get() {
            return;
        }
        self.taken.set(sent);
        let was_user = self.user.replace(false);
        self.irq.set(false);
        let page = w.req_page.load(Ordering::SeqCst) as usize;
        let made = w.req_gen.load(Ordering::SeqCst);
        let slots = w.pcids.of(self.id);
        self.apply(slots.invalidate(&self.pmap().gen, self.request(made)), page);
        w.served[self.id as usize].store(sent, Ordering::SeqCst);
        self.irq.set(true);
        self.user.set(was_user);
        self.use_pages("after an IPI");
    }

    /// A shootdown of A's `page` from a syscall, interrupts on.
    fn shoot(&self, page: usize) {
        let w = &self.world;
        let version = w.a.pte[page].fetch_add(1, Ordering::SeqCst) + 1;
        let made = w.a.gen.bump();
        let targets = w.a.cpus.load(Ordering::SeqCst) & !(1 << self.id);
        w.req_page.store(page as u64, Ordering::SeqCst);
        w.req_gen.store(made, Ordering::SeqCst);
        let mut waits = [0; CPUS];
        for t in (0..w.cpus).filter(|t| targets & (1 << t) != 0) {
            waits[t] = w.sent[t].fetch_add(1, Ordering::SeqCst) + 1;
        }
        // The local invalidation (mm::pcid::invalidate turns interrupts
        // off around the slot).
        self.without_interrupts(|| {
            let slots = w.pcids.of(self.id);
            self.apply(slots.invalidate(&w.a.gen, self.request(made)), page);
        });
        for (t, &n) in waits.iter().enumerate() {
            while w.served[t].load(Ordering::SeqCst) < n {
                self.spin();
            }
        }
        w.settled[page].store(version, Ordering::Release);
    }

    /// The scheduler's switch to `to`, interrupts off: the new bit, the
    /// core's switch (and the flush it asks for), then the old bit.
    fn switch(&self, to: &Pmap) {
        let w = &self.world;
        self.without_interrupts(|| {
            let from = self.pmap();
            to.cpus.fetch_or(1 << self.id, Ordering::SeqCst);
            let s = w.pcids.of(self.id).switch(to.id, &to.gen, w.keep);
            if s.flush {
                self.tlb.borrow_mut()[s.slot] = [None; PAGES];
            }
            self.loaded.set(to.id);
            from.cpus.fetch_and(!(1 << self.id), Ordering::SeqCst);
        });
    }

    /// Back to user mode: a use.
    fn return_to_user(&self) {
        self.user.set(true);
        self.use_pages("returned to user mode");
        self.take_pending();
    }

    fn run(&self, role: Role) {
        let w = &self.world;
        self.irq.set(true);
        self.user.set(true);
        match role {
            Role::Shoot(pages) => {
                self.user.set(false);
                pages.iter().for_each(|&p| self.shoot(p));
                self.return_to_user();
            }
            Role::Switch => {
                self.take_pending();
                self.user.set(false);
                self.switch(&w.b);
                self.return_to_user();
                self.user.set(false);
                self.switch(&w.a);
                self.return_to_user();
            }
        }
        w.done.fetch_add(1, Ordering::SeqCst);
        while w.done.load(Ordering::SeqCst) < w.cpus {
            self.take_pending();
            loom::thread::yield_now();
        }
        self.take_pending();
        self.use_pages("at the end");
    }
}

impl Cpu for PcidCpu {
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

/// Explores `roles` (one per CPU, CPU 0 the only initiator) under `keep`,
/// in the kernel's form or (`tagged`) Linux's.
fn explore(keep: Keep, tagged: bool, roles: &'static [Role]) -> Result<(), String> {
    model_check(move || {
        let world = Arc::new(World {
            keep,
            tagged,
            cpus: roles.len(),
            pcids: Pcids::new(),
            a: Pmap::new(A),
            b: Pmap::new(B),
            req_page: AtomicU64::new(0),
            req_gen: AtomicU64::new(0),
            sent: core::array::from_fn(|_| AtomicU64::new(0)),
            served: core::array::from_fn(|_| AtomicU64::new(0)),
            settled: core::array::from_fn(|_| AtomicU64::new(0)),
            done: AtomicUsize::new(0),
        });
        // Every CPU runs A, its pages cached at version 0 under slot 0.
        let cpus: Vec<PcidCpu> = (0..roles.len() as u32)
            .map(|id| {
                world.a.cpus.fetch_or(1 << id, Ordering::SeqCst);
                let s = world.pcids.of(id).switch(A, &world.a.gen, keep);
                let mut tlb = [[None; PAGES]; SLOTS];
                tlb[s.slot] = [Some(0); PAGES];
                PcidCpu {
                    id,
                    world: world.clone(),
                    irq: Cell::new(false),
                    user: Cell::new(false),
                    loaded: Cell::new(A),
                    taken: Cell::new(0),
                    tlb: RefCell::new(tlb),
                }
            })
            .collect();
        let mut cpus = cpus.into_iter().zip(roles.iter().copied());
        let (first, first_role) = cpus.next().unwrap();
        let handles: Vec<_> = cpus
            .map(|(cpu, role)| loom::thread::spawn(move || cpu.run(role)))
            .collect();
        first.run(first_role);
        handles.into_iter().for_each(|h| h.join().unwrap());
    })
}

/// CPU 1 switches away from A and back while CPU 0 shoots a page of it.
const AWAY_AND_BACK: &[Role] = &[Role::Shoot(&[0]), Role::Switch];
/// Two shootdowns in a row, which CPU 1 may serve while loaded, before
/// or after it switches away and back.
const TWO_IN_A_ROW: &[Role] = &[Role::Shoot(&[0, 1]), Role::Switch];

#[test]
fn pcid_generations_are_clean() {
    for roles in [AWAY_AND_BACK, TWO_IN_A_ROW] {
        for tagged in [false, true] {
            expect_clean(
                explore(Keep::IfCurrent, tagged, roles),
                &format!(" ({roles:?}, tagged {tagged})"),
            );
        }
    }
}

/// `mutant-pcid-stale`: every load keeps the PCID's entries, so CPU 1,
/// out of `pm_cpus` when CPU 0 read it, comes back to A and uses page 0's
/// old entry.
#[test]
fn mutant_pcid_stale() {
    expect_caught(explore(Keep::Always, false, AWAY_AND_BACK));
}
