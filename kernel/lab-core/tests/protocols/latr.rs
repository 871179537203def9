//! LATR's rings and quarantine (lab_core::protocol::latr; the kernel's
//! glue and quarantine are kernel/src/mm/latr.rs, called from proc::vm's
//! unmap), on two CPUs.
//!
//! CPU 0 munmaps user pages lazily, from a syscall with interrupts on: for
//! each page it saves one record in its own ring naming CPU 1 (or, if its
//! ring is full, shoots CPU 1 down with an IPI and waits), invalidates its
//! own TLB, takes its marks, and keeps the page's frame in quarantine. It
//! reuses a frame (writes new contents into it) only as mm::latr's release
//! does: once the range is past its time bound or needed at once, and
//! then only after settling its marks (cross-calls to any CPU still
//! pending; the kernel's fallback and settle IPIs). The time bound is
//! not modeled: loom places the release anywhere relative to the other
//! CPU's tick, which is what the bound cannot promise on a host that
//! deschedules vCPUs.
//!
//! CPU 1 stays in user mode with every page cached, using them, taking
//! one timer tick (its sweep of CPU 0's ring; loom places it anywhere in
//! CPU 0's munmaps) and, between uses, IPIs and cross-calls (which sweep
//! too).
//!
//! Checked: LATR's contract. A stale entry may outlive munmap (a use of an
//! unmapped page through a cached entry is allowed), but a frame is never
//! reused while some CPU may still reach it through a cached translation:
//! a use, in user mode, of a cached page whose frame was reused is a stale
//! TLB entry, and the check panics.

use super::*;
use lab_core::protocol::latr::{Latr, Marks};

/// CPUs the model's rings have room for: two (three took loom minutes,
/// not seconds).
const CPUS: usize = 2;

/// Records a model ring holds: one, so that a second munmap before the
/// target's sweep finds it full and falls back to the IPI.
const RING: usize = 1;

/// Timer ticks a user CPU takes, between its first uses: a sweep that
/// applies a record writes, so an unbounded number would make every spin
/// loop progress to loom. Quarantines are settled by cross-calls when
/// released (after the munmaps, and at the teardown).
const TICKS: usize = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Mode {
    /// The frames wait in quarantine with the range (false: the mutant
    /// `mutant-latr-early-free`, mm::latr's hold giving them back at once
    /// and quarantining the addresses only).
    quarantine_frames: bool,
}

/// The kernel's LATR.
const KERNEL: Mode = Mode {
    quarantine_frames: true,
};

struct World {
    cpus: usize,
    mode: Mode,
    /// The rings (records of page numbers).
    latr: Latr<RING, CPUS>,
    /// Each CPU's TLB: bit p, page p cached (its translation to frame p).
    tlb: Vec<AtomicU64>,
    /// Bit p: frame p reused, written with new contents.
    reused: AtomicU64,
    /// Per CPU: pages an initiator's fallback IPI asks it to invalidate,
    /// cleared by its handler (the acknowledgement).
    shoot: Vec<AtomicU64>,
    /// Per CPU: cross-calls sent to it, and served by it.
    calls: Vec<AtomicU64>,
    served: Vec<AtomicU64>,
    done: AtomicUsize,
}

struct LatrCpu {
    id: u32,
    world: Arc<World>,
    irq: Cell<bool>,
    user: Cell<bool>,
    /// Cross-calls taken so far.
    calls_taken: Cell<u64>,
}

impl LatrCpu {
    fn invalidate(&self, pages: u64) {
        self.world.tlb[self.id as usize].fetch_and(!pages, Ordering::Relaxed);
    }

    /// A use of every cached page, if in user mode: none may reach a
    /// reused frame.
    fn check(&self, at: &str) {
        if !self.user.get() {
            return;
        }
        let w = &self.world;
        let stale =
            w.tlb[self.id as usize].load(Ordering::Relaxed) & w.reused.load(Ordering::Acquire);
        assert!(
            stale == 0,
            "stale TLB entry: cpu {} reaches reused frame(s) {stale:#b} through a translation \
             cached before their munmap ({at})",
            self.id
        );
    }

    /// mm::latr::sweep_here, interrupts off.
    fn sweep(&self) {
        self.world
            .latr
            .sweep(self, |words| self.invalidate(1 << words[0]));
    }

    /// The IPI handler, if an IPI or a cross-call is pending (interrupts
    /// off inside): a fallback shootdown's pages invalidated, then
    /// acknowledged; a cross-call's sweep (sched's cross_call hook).
    fn take_pending(&self) {
        let w = &self.world;
        let me = self.id as usize;
        let pages = w.shoot[me].load(Ordering::SeqCst);
        let calls = w.calls[me].load(Ordering::SeqCst);
        if pages == 0 && calls == self.calls_taken.get() {
            return;
        }
        let was_user = self.user.replace(false);
        let was_irq = self.irq.replace(false);
        if pages != 0 {
            self.invalidate(pages);
            w.shoot[me].fetch_and(!pages, Ordering::SeqCst);
        }
        if calls != self.calls_taken.get() {
            self.calls_taken.set(calls);
            self.sweep();
            w.served[me].store(calls, Ordering::SeqCst);
        }
        self.irq.set(was_irq);
        self.user.set(was_user);
        self.check("after an IPI");
    }

    /// The timer tick (sched::tick), if interrupts are on: a sweep.
    fn tick(&self) {
        if !self.irq.get() {
            return;
        }
        let was_user = self.user.replace(false);
        self.irq.set(false);
        self.sweep();
        self.irq.set(true);
        self.user.set(was_user);
        self.check("after a tick");
    }

    /// arch::ipi::sync: a cross-call to `t`, returning once it has run.
    fn cross_call(&self, t: u32) {
        let w = &self.world;
        let n = w.calls[t as usize].fetch_add(1, Ordering::SeqCst) + 1;
        while w.served[t as usize].load(Ordering::SeqCst) < n {
            self.spin();
        }
    }

    /// CPU 0's munmap of `page` (proc::vm's unmap: pmap_remove's shootdown
    /// through mm::shootdown's lazy branch, then the quarantine's hold):
    /// the marks of the page if its frame went into quarantine.
    fn munmap(&self, page: u64) -> Option<Marks> {
        let w = &self.world;
        let targets = CpuSet::first(w.cpus as u32).without(self.id);
        // mm::latr::leave_for_sweep: one record for every target, or, if
        // the ring is full, IPIs to all of them.
        let full = match w.latr.save(self, targets.bits(), [page, 0, 0, 0]) {
            Some(_) => CpuSet::EMPTY,
            None => targets,
        };
        for t in full.iter() {
            w.shoot[t as usize].fetch_or(1 << page, Ordering::SeqCst);
        }
        // The local invalidation, then pmap_tlb_shootwait.
        self.invalidate(1 << page);
        for t in full.iter() {
            while w.shoot[t as usize].load(Ordering::SeqCst) & (1 << page) != 0 {
                self.spin();
            }
        }
        let marks = w.latr.take_marks(self);
        if marks.is_empty() || !w.mode.quarantine_frames {
            // No record left (or the mutant): the frame goes back now.
            self.reuse(page);
            return None;
        }
        Some(marks)
    }

    /// Frame `page` allocated again and written.
    fn reuse(&self, page: u64) {
        self.world.reused.fetch_or(1 << page, Ordering::Release);
    }

    /// mm::latr's release: if `due` (the range past its time bound, or
    /// needed now), settles every quarantined page's marks (a cross-call to
    /// any CPU still pending, or this CPU's own sweep) and reuses its
    /// frame; else keeps it.
    fn release(&self, quarantine: &mut Vec<(u64, Marks)>, due: bool) {
        if !due {
            return;
        }
        let w = &self.world;
        for (page, marks) in quarantine.drain(..) {
            w.latr.settle(self, marks, |t| {
                if t == self.id {
                    self.without_interrupts(|| self.sweep());
                } else {
                    self.cross_call(t);
                }
            });
            assert!(
                w.latr.settled(marks),
                "a settled quarantine has a pending record"
            );
            self.reuse(page);
        }
    }

    /// CPU 0: munmaps `pages`, reuses their frames as the quarantine lets
    /// it, tears the address space down (every frame reused), then
    /// returns to user mode.
    fn initiate(&self, pages: &[u64]) {
        let w = &self.world;
        self.irq.set(true);
        let mut quarantine = Vec::new();
        for &page in pages {
            self.release(&mut quarantine, false);
            if let Some(marks) = self.munmap(page) {
                quarantine.push((page, marks));
            }
        }
        self.release(&mut quarantine, true);
        assert!(
            quarantine.is_empty(),
            "a teardown left frames in quarantine"
        );
        self.user.set(true);
        self.check("returned to user mode");
        w.done.fetch_add(1, Ordering::SeqCst);
        self.idle();
    }

    /// The other CPUs: in user mode from the start, every page cached,
    /// taking [`TICKS`] ticks between uses, then until every CPU is done.
    fn run_user(&self) {
        self.irq.set(true);
        self.user.set(true);
        self.world.done.fetch_add(1, Ordering::SeqCst);
        for _ in 0..TICKS {
            self.check("user mode");
            self.take_pending();
            self.tick();
        }
        self.idle();
    }

    /// User mode until every CPU is done: uses and IPIs (no writes but
    /// those of an IPI taken, so that loom sees a spin loop).
    fn idle(&self) {
        let w = &self.world;
        while w.done.load(Ordering::SeqCst) < w.cpus {
            self.check("user mode");
            self.take_pending();
            loom::thread::yield_now();
        }
        self.take_pending();
        self.check("at the end");
    }
}

impl Cpu for LatrCpu {
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
        if self.irq.get() {
            self.take_pending();
        }
    }
}

/// Explores `cpus` CPUs, CPU 0 munmapping `pages` in `mode`.
fn explore(mode: Mode, cpus: usize, pages: &'static [u64]) -> Result<(), String> {
    assert!(cpus <= CPUS, "the model's rings have room for {CPUS} CPUs");
    model_check(move || {
        let world = Arc::new(World {
            cpus,
            mode,
            latr: Latr::new(),
            tlb: (0..cpus).map(|_| AtomicU64::new(u64::MAX)).collect(),
            reused: AtomicU64::new(0),
            shoot: (0..cpus).map(|_| AtomicU64::new(0)).collect(),
            calls: (0..cpus).map(|_| AtomicU64::new(0)).collect(),
            served: (0..cpus).map(|_| AtomicU64::new(0)).collect(),
            done: AtomicUsize::new(0),
        });
        let cpu = |id: usize, world: Arc<World>| LatrCpu {
            id: id as u32,
            world,
            irq: Cell::new(false),
            user: Cell::new(false),
            calls_taken: Cell::new(0),
        };
        let users: Vec<_> = (1..cpus)
            .map(|id| {
                let world = world.clone();
                loom::thread::spawn(move || cpu(id, world).run_user())
            })
            .collect();
        cpu(0, world).initiate(pages);
        users.into_iter().for_each(|h| h.join().unwrap());
    })
}

/// One page, its frame reused after its marks are settled, by the other
/// CPU's tick or by a cross-call; two pages back to back, the second
/// finding the one-record ring full unless a sweep came between (the IPI
/// fallback).
#[test]
fn latr_quarantine_is_clean() {
    let cases: [(Mode, usize, &'static [u64]); 2] = [(KERNEL, 2, &[0]), (KERNEL, 2, &[0, 1])];
    for (mode, cpus, pages) in cases {
        expect_clean(
            explore(mode, cpus, pages),
            &format!(" ({mode:?}, {cpus} CPUs, pages {pages:?})"),
        );
    }
}

/// The frame goes back at munmap, its range alone in quarantine: the other
/// CPU, before its tick, reads the frame's new contents through its
/// cached entry.
#[test]
fn mutant_latr_early_free() {
    let early_free = Mode {
        quarantine_frames: false,
    };
    expect_caught(explore(early_free, 2, &[0]));
}
