//! The lazy-TLB handshake (lab_core::protocol::lazy_tlb): CPU 1 holds
//! pmap 1 lazily, with page 0 and a paging-structure cache entry for the
//! table that maps it in its TLB, and idles with interrupts on until it
//! returns to the pmap; CPU 0 changes page 0 (and, if `frees_tables`,
//! frees that table) and shoots the pmap down, skipping CPU 1 if the rule
//! lets it. Checked: a lazy CPU never walks a freed table (its
//! paging-structure caches may, speculatively, at any moment the pmap is
//! loaded), and on its return it uses no stale entry.

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
