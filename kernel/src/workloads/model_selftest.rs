//! `model-selftest`: accesses whose modeled costs are known in advance, so
//! the memory-system model (`tcg-model`) can be checked against them.
//!
//! Each check runs between `PhaseBegin(n)` and `PhaseEnd(n)` marks
//! (arch::model_hint), and the model reports its counters per phase
//! (`model.<profile>.phase.<n>.*`). The harness's tests hold the expected
//! answers (harness/tests/lab/model.rs). Phases, with interrupts off so that
//! no timer tick adds accesses:
//!
//! 1. ping-pong: CPUs 0 and 1 take turns writing one line, `rounds` writes
//!    each; every hand-over is one coherence miss (the waiting CPU's first
//!    read after the other's write), never false sharing: 2 x rounds - 1,
//!    and one more at each edge if the interleaving puts a read there.
//! 2. packed: CPUs 0 and 1 each increment their own counter, both counters
//!    in one line, `rounds` times at once: every miss is false sharing
//!    (how many there are depends on how often the round robin switches
//!    CPUs; at least one).
//! 3. padded: the same with each counter on its own line: no miss.
//! 4. TLB fill: CPU 0 flushes its TLB and reads `pages` kernel-virtual
//!    4 KiB pages once each: `pages` 4 KiB misses (and a few 2 MiB ones:
//!    the code, stack and statics this phase runs on).
//! 5. INVLPG refill: CPU 0 invalidates one of those pages and reads all of
//!    them again: one 4 KiB miss, and it refills what the INVLPG removed.
//!
//! Without `model=on` it runs the same accesses and reports only its own
//! counts, so it doubles as a plain smoke test. Needs 2 CPUs.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use lab_core::cmdline::{Kind, ParamSpec, Params};
use lab_core::model_hint::Mark;
use lab_core::physmem::PAGE_SIZE;
use lab_core::report::{Scope, Status};
use x86_64::instructions::interrupts;
use x86_64::structures::paging::PhysFrame;
use x86_64::{PhysAddr, VirtAddr};

use super::Workload;
use crate::arch::{model_hint, smp};
use crate::memlayout::KVA_BASE;
use crate::mm::frame::{self, Fill};
use crate::mm::pmap::{self, Prot};
use crate::mm::shootdown;
use crate::report;

/// Where phase 4 maps its pages: kernel virtual, clear of pmap-selftest's
/// and shoot-storm's addresses.
const TLB_BASE: u64 = KVA_BASE + 0xd000_0000;
/// Most pages phase 4 maps.
const MAX_PAGES: usize = 64;

pub static MODEL_SELFTEST: Workload = Workload {
    name: "model-selftest",
    help: "accesses with known coherence and TLB answers, to check the tcg-model model",
    params: &[
        ParamSpec {
            key: "rounds",
            kind: Kind::U64 {
                min: 1,
                max: 100_000,
            },
            default: "200",
            help: "writes per CPU in phase 1 (x 64 in phases 2 and 3)",
        },
        ParamSpec {
            key: "pages",
            kind: Kind::U64 {
                min: 1,
                max: MAX_PAGES as u64,
            },
            default: "32",
            help: "4 KiB pages phases 4 and 5 read",
        },
    ],
    run,
};

/// Phase 1's line: the value is the number of writes so far; CPU 0 writes
/// when it is even, CPU 1 when it is odd.
#[repr(C, align(64))]
struct Line(AtomicU64);
static TURN: Line = Line(AtomicU64::new(0));

/// Phase 2's counters: one line.
#[repr(C, align(64))]
struct Packed([AtomicU64; 2]);
static PACKED: Packed = Packed([AtomicU64::new(0), AtomicU64::new(0)]);

/// Phase 3's counters: a line each.
static PADDED: [Line; 2] = [Line(AtomicU64::new(0)), Line(AtomicU64::new(0))];

/// Phases 2 and 3 make `rounds` x SPAN increments per CPU: long enough
/// that the round robin switches CPUs inside them.
const SPAN: u64 = 64;

/// Both CPUs arrive here before a phase starts (outside the phase).
static ARRIVED: AtomicU32 = AtomicU32::new(0);

static ROUNDS: AtomicU64 = AtomicU64::new(0);

/// Waits until both CPUs called it `generation` times.
fn rendezvous(generation: u32) {
    ARRIVED.fetch_add(1, Ordering::AcqRel);
    while ARRIVED.load(Ordering::Acquire) < 2 * generation {
        core::hint::spin_loop();
    }
}

/// Phases 1-3 on one CPU (`me` is 0 or 1).
fn pair_phases(me: u64) {
    let rounds = ROUNDS.load(Ordering::Relaxed);
    // Each CPU zeroes its own counters, so the only bytes of a phase 2 or
    // 3 line the other CPU ever wrote are its own counter's.
    PACKED.0[me as usize].store(0, Ordering::Relaxed);
    PADDED[me as usize].0.store(0, Ordering::Relaxed);
    interrupts::without_interrupts(|| {
        rendezvous(1);
        model_hint::mark(Mark::PhaseBegin(1));
        for i in 0..rounds {
            let mine = 2 * i + me;
            while TURN.0.load(Ordering::Acquire) != mine {
                core::hint::spin_loop();
            }
            TURN.0.store(mine + 1, Ordering::Release);
        }
        model_hint::mark(Mark::PhaseEnd(1));
        rendezvous(2);
        model_hint::mark(Mark::PhaseBegin(2));
        let packed = &PACKED.0[me as usize];
        for _ in 0..rounds * SPAN {
            packed.store(packed.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        }
        model_hint::mark(Mark::PhaseEnd(2));
        rendezvous(3);
        model_hint::mark(Mark::PhaseBegin(3));
        let padded = &PADDED[me as usize].0;
        for _ in 0..rounds * SPAN {
            padded.store(padded.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        }
        model_hint::mark(Mark::PhaseEnd(3));
        rendezvous(4);
    });
}

fn read_pages(pages: usize) -> u64 {
    (0..pages)
        .map(|i| {
            let va = (TLB_BASE + i as u64 * PAGE_SIZE) as *const u64;
            // SAFETY: mapped by `run` for the whole of phases 4 and 5.
            unsafe { va.read_volatile() }
        })
        .fold(0, u64::wrapping_add)
}

fn run(params: &Params<'_>, _: &crate::boot::start_info::StartInfo) -> Status {
    if smp::online().len() < 2 {
        report::error("model-selftest", format_args!("needs 2 CPUs or more"));
        return Status::Failed;
    }
    let rounds = params.u64("rounds");
    let pages = params.u64("pages") as usize;
    ROUNDS.store(rounds, Ordering::Relaxed);
    TURN.0.store(0, Ordering::Relaxed);
    ARRIVED.store(0, Ordering::Relaxed);

    smp::post(1, pair_phases, 1);
    pair_phases(0);
    smp::wait(1);

    let mut frames = [0u64; MAX_PAGES];
    for (i, slot) in frames[..pages].iter_mut().enumerate() {
        let Some(f) = frame::alloc(Fill::Zeroed) else {
            report::error("model-selftest", format_args!("out of frames"));
            return Status::Failed;
        };
        *slot = f.start_address().as_u64();
        let va = VirtAddr::new(TLB_BASE + i as u64 * PAGE_SIZE);
        if let Err(e) = pmap::pmap_kenter_pa(va, f.start_address(), Prot::READ) {
            report::error("model-selftest", format_args!("pmap_kenter_pa: {e:?}"));
            return Status::Failed;
        }
    }
    let sum = interrupts::without_interrupts(|| {
        model_hint::mark(Mark::PhaseBegin(4));
        shootdown::flush_all();
        let a = read_pages(pages);
        model_hint::mark(Mark::PhaseEnd(4));
        model_hint::mark(Mark::PhaseBegin(5));
        model_hint::invlpg(VirtAddr::new(TLB_BASE));
        let b = read_pages(pages);
        model_hint::mark(Mark::PhaseEnd(5));
        a.wrapping_add(b)
    });
    pmap::pmap_remove(
        pmap::pmap_kernel(),
        VirtAddr::new(TLB_BASE),
        VirtAddr::new(TLB_BASE + pages as u64 * PAGE_SIZE),
    );
    for &pa in &frames[..pages] {
        frame::free(PhysFrame::containing_address(PhysAddr::new(pa)));
    }

    let turn = TURN.0.load(Ordering::Relaxed);
    let packed: u64 = PACKED.0.iter().map(|c| c.load(Ordering::Relaxed)).sum();
    let padded: u64 = PADDED.iter().map(|c| c.0.load(Ordering::Relaxed)).sum();
    report::metric("modeltest.pingpong_writes", turn, "count", Scope::Global);
    report::metric("modeltest.packed_writes", packed, "count", Scope::Global);
    report::metric("modeltest.padded_writes", padded, "count", Scope::Global);
    report::metric("modeltest.pages", pages as u64, "count", Scope::Global);
    // Zeroed frames: the reads must have seen zeros.
    report::metric("modeltest.page_sum", sum, "count", Scope::Global);
    report::metric("workload.ops", turn, "count", Scope::Global);
    let expected = 2 * rounds;
    let increments = expected * SPAN;
    if turn != expected || packed != increments || padded != increments || sum != 0 {
        report::error(
            "model-selftest",
            format_args!(
                "counts wrong: ping-pong {turn} (expected {expected}), packed {packed}, \
                 padded {padded} (expected {increments} each), page sum {sum} (expected 0)"
            ),
        );
        return Status::Failed;
    }
    Status::Ok
}
