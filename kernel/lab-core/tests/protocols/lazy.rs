//! The lazy-TLB core (lab_core::protocol::lazy_tlb), Linux's handshake:
//! CPU 1 has pmap 1 loaded at generation 0, with page 0 and a
//! paging-structure cache entry for the table that maps it in its TLB.
//! It either is lazy from the start, or first runs the pmap (taking IPIs
//! as a CPU running it does: an INVLPG that claims no generation) and
//! then goes lazy; it idles with interrupts on, and returns to the pmap.
//! A shootdown IPI reaching it while lazy makes it load the kernel's
//! tables (Linux's flush_tlb_func: switch_mm_irqs_off to init_mm), and
//! its return is then a CR3 load. CPU 0 changes page 0 (and, if
//! `frees_tables`, frees that table), bumps the pmap's generation and
//! shoots the pmap down, skipping CPU 1 if the rule lets it.
//!
//! Checked: a lazy CPU never walks a freed table (its paging-structure
//! caches may, speculatively, at any moment the pmap is loaded), and on
//! its return it uses no stale entry.

use super::*;
use lab_core::protocol::lazy_tlb::{skip, LazyCpu, Return, SkipRule};
use lab_core::protocol::pcid::TlbGen;

const PAGE: u64 = 1 << 0;
/// The paging-structure cache entry of the table mapping page 0.
const TABLE: u64 = 1 << 1;
const PMAP: u64 = 1;

struct World {
    lazy: LazyCpu,
    gen: TlbGen,
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

/// CPU 1: its interrupt flag, the IPIs it has taken, and whether it has
/// switched to the kernel's tables.
struct Holder {
    world: Arc<World>,
    irq: Cell<bool>,
    taken: Cell<u64>,
    kernel_loaded: Cell<bool>,
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
        let w = &self.world;
        let sent = w.sent.load(Ordering::SeqCst);
        if sent == self.taken.get() || !self.irq.get() {
            return;
        }
        self.taken.set(sent);
        if w.lazy.held() == PMAP {
            // Lazy: load the kernel's tables, which flushes everything.
            w.lazy.drop_lazy();
            self.kernel_loaded.set(true);
            w.tlb.store(0, Ordering::Relaxed);
        } else if !self.kernel_loaded.get() {
            // Running the pmap: INVLPG of page 0, which drops its
            // paging-structure entries too; no generation claimed.
            w.tlb.fetch_and(!(PAGE | TABLE), Ordering::Relaxed);
        }
        w.served.store(sent, Ordering::SeqCst);
    }

    fn run(&self, start_lazy: bool) {
        let w = &self.world;
        self.irq.set(true);
        if !start_lazy {
            // Running the pmap for a moment, then off to the idle thread.
            self.take_pending();
            self.irq.set(false);
            w.lazy.enter(PMAP);
            self.irq.set(true);
        }
        // Idle, lazy, interrupts on.
        for _ in 0..2 {
            self.walk_check();
            self.take_pending();
        }
        // Back to a thread of the pmap (interrupts off while switching).
        self.irq.set(false);
        if self.kernel_loaded.get() {
            // A CR3 load of the pmap: flushes, then records the generation.
            self.kernel_loaded.set(false);
            w.tlb.store(0, Ordering::Relaxed);
            w.lazy.loaded(&w.gen);
        } else if w.lazy.leave(&w.gen) == Return::Flush {
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

fn explore(frees_tables: bool, start_lazy: bool, rule: SkipRule) -> Result<(), String> {
    model_check(move || {
        let world = Arc::new(World {
            lazy: LazyCpu::new(),
            gen: TlbGen::new(),
            sent: AtomicU64::new(0),
            served: AtomicU64::new(0),
            tlb: AtomicU64::new(PAGE | TABLE),
            settled: AtomicU64::new(0),
            done: AtomicUsize::new(0),
        });
        world.lazy.loaded(&world.gen);
        if start_lazy {
            world.lazy.enter(PMAP);
        }
        let holder = {
            let world = world.clone();
            loom::thread::spawn(move || {
                Holder {
                    world,
                    irq: Cell::new(false),
                    taken: Cell::new(0),
                    kernel_loaded: Cell::new(false),
                }
                .run(start_lazy)
            })
        };
        // The initiator: the change is made, the generation bumped, then
        // the shootdown (CPU 1 is in the pmap's CPU set throughout).
        world.gen.bump();
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
        for start_lazy in [true, false] {
            expect_clean(
                explore(frees_tables, start_lazy, SkipRule::UnlessTablesFreed),
                &format!(" (frees_tables {frees_tables}, start_lazy {start_lazy})"),
            );
        }
    }
}

#[test]
fn mutant_lazy_skip_freed_tables() {
    expect_caught(explore(true, true, SkipRule::Always));
}
