//! The model's validation answers: event sequences whose counters and
//! clocks are known in advance. Costs come from tests/fixture.toml:
//! instruction 1, c2c same socket 50, cross socket 200, page walk 30,
//! invlpg 100, full flush 300, IPI delivery 1000, entry+exit 400, EOI 40;
//! 4 KiB TLB 4 sets x 2 ways, 2 MiB TLB 1 set x 4 ways; 2 CPUs per socket.

use lab_core::model_hint::Mark;
use lab_model::tlb::{Layout, PageSize, Region};
use lab_model::{Metric, Model, Profile};

fn profile() -> Profile {
    Profile::load(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixture.toml")).unwrap()
}

/// The fixture with free page walks, so clocks move only by what a test
/// is about.
fn profile_no_walk() -> Profile {
    let mut p = profile();
    p.costs.page_walk.cycles = 0;
    p
}

fn get(ms: &[Metric], name: &str, cpu: Option<usize>) -> u64 {
    ms.iter()
        .find(|m| m.name == name && m.cpu == cpu)
        .unwrap_or_else(|| panic!("no metric {name} {cpu:?}"))
        .value
}

/// Machine total of a counter.
fn total(m: &Model, name: &str) -> u64 {
    get(&m.metrics(), name, None)
}

fn on(m: &Model, name: &str, cpu: usize) -> u64 {
    get(&m.metrics(), name, Some(cpu))
}

/// A user page (4 KiB in the default layout): virtual page `i`.
fn uva(i: u64) -> u64 {
    0x40_0000 + i * 4096
}

const N: u64 = 10;

/// Two CPUs (same socket) alternately store 8 bytes to one line, N times
/// each: the first store is cold, each of the other 2N-1 is a coherence
/// miss (the line is Modified in the other cache) invalidating 1 copy.
/// Same bytes, so no false sharing. CPU 0 misses N-1 times, CPU 1 N.
#[test]
fn ping_pong_line() {
    let mut m = Model::new(profile_no_walk(), 2);
    for _ in 0..N {
        m.access(0, uva(0), 0x1000, 8, true);
        m.access(1, uva(0), 0x1000, 8, true);
    }
    let ms = m.metrics();
    assert_eq!(get(&ms, "coh.misses", None), 2 * N - 1);
    assert_eq!(get(&ms, "coh.misses", Some(0)), N - 1);
    assert_eq!(get(&ms, "coh.misses", Some(1)), N);
    assert_eq!(get(&ms, "coh.false_sharing", None), 0);
    assert_eq!(get(&ms, "coh.invalidations", None), 2 * N - 1);
    assert_eq!(get(&ms, "coh.cold", None), 1);
    // Each miss costs a same-socket transfer (CPUs 0 and 1: socket 0).
    assert_eq!(get(&ms, "coh.cycles", None), (2 * N - 1) * 50);
    assert_eq!(get(&ms, "hot.0.paddr", None), 0x1000);
    assert_eq!(get(&ms, "hot.0.transfers", None), 2 * N - 1);
    assert_eq!(get(&ms, "hot.0.false_sharing", None), 0);
    assert!(ms.iter().all(|m| !m.name.starts_with("hot.1.")));
}

/// Packed per-CPU counters: CPU 0 writes bytes 0..8, CPU 1 bytes 8..16 of
/// one line: as many misses as ping-pong, every one false sharing.
/// Padded (one line each): no misses at all.
#[test]
fn packed_versus_padded_counters() {
    let mut m = Model::new(profile(), 2);
    for _ in 0..N {
        m.access(0, uva(0), 0x1000, 8, true);
        m.access(1, uva(0) + 8, 0x1008, 8, true);
    }
    assert_eq!(total(&m, "coh.misses"), 2 * N - 1);
    assert_eq!(total(&m, "coh.false_sharing"), 2 * N - 1);
    assert_eq!(total(&m, "hot.0.false_sharing"), 2 * N - 1);

    let mut m = Model::new(profile(), 2);
    for _ in 0..N {
        m.access(0, uva(0), 0x1000, 8, true);
        m.access(1, uva(0) + 64, 0x1040, 8, true);
    }
    assert_eq!(total(&m, "coh.misses"), 0);
    assert_eq!(total(&m, "coh.false_sharing"), 0);
    assert_eq!(total(&m, "coh.cold"), 2);
}

/// A load of a line another CPU wrote, bytes overlapping: a true-sharing
/// miss; the line is then Shared, so re-reads are free.
#[test]
fn read_after_write_is_one_miss() {
    let mut m = Model::new(profile(), 2);
    m.access(0, uva(0), 0x1000, 4, true);
    m.access(1, uva(0), 0x1000, 8, false);
    m.access(1, uva(0), 0x1000, 8, false);
    m.access(0, uva(0), 0x1000, 8, false);
    assert_eq!(total(&m, "coh.misses"), 1);
    assert_eq!(total(&m, "coh.false_sharing"), 0);
    assert_eq!(total(&m, "coh.invalidations"), 0);
}

/// An access straddling two lines touches (here: colds) both.
#[test]
fn straddling_access_touches_two_lines() {
    let mut m = Model::new(profile(), 1);
    m.access(0, uva(0) + 0x3c, 0x103c, 8, true);
    assert_eq!(total(&m, "coh.cold"), 2);
    assert_eq!(total(&m, "coh.lines"), 2);
}

/// P = 6 pages (capacity 8: 2 per set, at most 2 in each of 4 sets) after
/// a flush: P misses; again: none. Flushed and touched again: P misses,
/// all refills.
#[test]
fn tlb_fill_after_flush() {
    let mut m = Model::new(profile(), 1);
    m.flush(0, false);
    let touch = |m: &mut Model| {
        for i in 0..6 {
            m.access(0, uva(i), 0x10_0000 + i * 4096, 8, false);
        }
    };
    touch(&mut m);
    assert_eq!(total(&m, "tlb.misses"), 6);
    assert_eq!(total(&m, "tlb.refills"), 0);
    touch(&mut m);
    assert_eq!(total(&m, "tlb.misses"), 6);
    m.flush(0, false);
    touch(&mut m);
    assert_eq!(total(&m, "tlb.misses"), 12);
    assert_eq!(total(&m, "tlb.refills"), 6);
    assert_eq!(total(&m, "tlb.flushes"), 2);
    // 2 flushes, 12 walks, 18 x 0 instructions.
    assert_eq!(m.clock(0), 2 * 300 + 12 * 30);
}

/// INVLPG of one page, then touching it: 1 miss, 1 refill; other pages
/// still hit. INVLPG of a page not cached makes no refill later.
#[test]
fn invlpg_then_touch_is_a_refill() {
    let mut m = Model::new(profile(), 1);
    m.access(0, uva(0), 0x10_0000, 8, false);
    m.access(0, uva(1), 0x10_1000, 8, false);
    m.invlpg(0, uva(0) + 0x123);
    m.invlpg(0, uva(7));
    let before = total(&m, "tlb.misses");
    m.access(0, uva(0), 0x10_0000, 8, false);
    m.access(0, uva(1), 0x10_1000, 8, false);
    m.access(0, uva(7), 0x10_7000, 8, false);
    assert_eq!(total(&m, "tlb.misses") - before, 2);
    assert_eq!(total(&m, "tlb.refills"), 1);
    assert_eq!(total(&m, "tlb.invlpg"), 2);
}

/// A global entry survives a CR3 write (flush(false)), not a CR4 write.
#[test]
fn global_entries() {
    let mut layout = Layout::default();
    layout.regions.insert(
        0,
        Region {
            start: 0xffff_ffff_8000_0000,
            end: u64::MAX,
            size: PageSize::Size2M,
            global: true,
        },
    );
    let mut m = Model::with_layout(profile(), 1, layout);
    let kva = 0xffff_ffff_8020_0000;
    let touch = |m: &mut Model| {
        m.access(0, kva, 0x20_0000, 8, false);
        m.access(0, uva(0), 0x10_0000, 8, false);
    };
    touch(&mut m);
    assert_eq!(total(&m, "tlb.misses"), 2);
    m.flush(0, false);
    touch(&mut m);
    assert_eq!(total(&m, "tlb.misses"), 3, "the global entry must survive");
    m.flush(0, true);
    touch(&mut m);
    assert_eq!(total(&m, "tlb.misses"), 5);
}

/// Capacity: 3 pages mapping to one set of 2 ways. LRU picks the victim.
#[test]
fn tlb_capacity_evicts_lru() {
    let mut m = Model::new(profile(), 1);
    // Virtual pages 0, 4, 8 are all in set 0 of 4.
    let page = |i| uva(0) + i * 4 * 4096;
    let touch = |m: &mut Model, i: u64| {
        m.access(0, page(i), 0x10_0000 + i * 4096, 8, false);
        total(m, "tlb.misses")
    };
    assert_eq!(touch(&mut m, 0), 1);
    assert_eq!(touch(&mut m, 1), 2);
    assert_eq!(touch(&mut m, 0), 2); // hit, now most recent
    assert_eq!(touch(&mut m, 2), 3); // evicts page 1 (LRU)
    assert_eq!(touch(&mut m, 0), 3);
    assert_eq!(touch(&mut m, 2), 3);
    assert_eq!(touch(&mut m, 1), 4); // page 1 was evicted
    assert_eq!(total(&m, "tlb.refills"), 0, "eviction is no refill");
}

/// CPU 1 caches page 0 -> frame A; the page is remapped to B and CPU 0's
/// shootdown of it begins and settles while CPU 1 still has A: from then
/// on each hit on A is a stale access (the first one a verdict). Before
/// the settle a changed frame is only a suspect (the shootdown's window).
#[test]
fn stale_translation_verdict() {
    let mut m = Model::new(profile(), 2);
    let (a, b) = (0x10_0000, 0x20_0000);
    m.access(1, uva(0), a, 8, false);
    m.mark(0, Mark::ShootBegin);
    m.access(1, uva(0), b, 8, false);
    assert_eq!(on(&m, "stale.suspects", 1), 1);
    // Hits through the old entry before the settle are not stale.
    m.access(1, uva(0), b, 8, true);
    assert_eq!(total(&m, "stale.stores"), 0);
    // A settle of another page condemns nothing.
    m.covers(0, uva(1), 1);
    m.mark(0, Mark::ShootEnd);
    m.access(1, uva(0), b, 8, false);
    assert_eq!(total(&m, "stale.verdicts"), 0);
    // The covering one does.
    m.mark(0, Mark::ShootBegin);
    m.covers(0, uva(0), 1);
    m.mark(0, Mark::ShootEnd);
    assert_eq!(
        total(&m, "stale.verdicts"),
        0,
        "judged on access, not at the settle"
    );
    m.access(1, uva(0), b, 8, false);
    m.access(1, uva(0), b, 4, true);
    m.access(1, uva(0), b, 4, true);
    assert_eq!(on(&m, "stale.verdicts", 1), 1);
    assert_eq!(on(&m, "stale.loads", 1), 1);
    assert_eq!(on(&m, "stale.stores", 1), 2);
    m.invlpg(1, uva(0));
    m.access(1, uva(0), b, 8, false);
    assert_eq!(total(&m, "stale.loads"), 1);
    assert_eq!(on(&m, "tlb.refills", 1), 1);
    assert_eq!(total(&m, "stale.suspects"), 1);
}

/// What a settle does not condemn: an entry filled after the shootdown
/// began (it may hold the new mapping), an entry invalidated before the
/// settle, and an entry that a range or a full-flush request covers is
/// condemned like a page's. `Settled` (no IPI) condemns what is there now.
#[test]
fn what_a_settle_condemns() {
    let mut m = Model::new(profile(), 2);
    // Filled after the begin: not condemned.
    m.mark(0, Mark::ShootBegin);
    m.access(1, uva(0), 0x10_0000, 8, false);
    m.covers(0, uva(0), 1);
    m.mark(0, Mark::ShootEnd);
    m.access(1, uva(0), 0x20_0000, 8, false);
    assert_eq!(total(&m, "stale.verdicts"), 0);
    assert_eq!(total(&m, "stale.suspects"), 1);
    // Invalidated before the settle: gone, nothing stale.
    m.access(1, uva(2), 0x30_0000, 8, false);
    m.mark(0, Mark::ShootBegin);
    m.invlpg(1, uva(2));
    m.covers(0, uva(2), 1);
    m.mark(0, Mark::ShootEnd);
    m.access(1, uva(2), 0x40_0000, 8, false);
    assert_eq!(total(&m, "stale.verdicts"), 0);
    // A range covering it, settled without IPI.
    m.access(1, uva(5), 0x50_0000, 8, false);
    m.covers(0, uva(4), 3);
    m.mark(0, Mark::Settled);
    m.access(1, uva(5), 0x60_0000, 8, false);
    assert_eq!(total(&m, "stale.verdicts"), 1);
    // A full-flush request (0 pages) covers everything.
    m.access(1, uva(9), 0x70_0000, 8, false);
    m.covers(0, 0, 0);
    m.mark(0, Mark::Settled);
    m.access(1, uva(9), 0x80_0000, 8, true);
    assert_eq!(total(&m, "stale.verdicts"), 2);
    assert_eq!(total(&m, "stale.stores"), 1);
}

/// CPU 1 (clock 10) reads a line CPU 0 wrote at clock 1000: CPU 1's clock
/// becomes 1000 + 50 (same socket), a causal jump of 990. CPU 2 (socket 1)
/// then reads another line CPU 0 wrote: 1000 + 200. A reader already past
/// the write pays only the transfer.
#[test]
fn causal_clock() {
    let mut m = Model::new(profile_no_walk(), 4);
    m.insns(0, 1000, false);
    m.access(0, uva(0), 0x1000, 8, true);
    m.access(0, uva(0) + 64, 0x1040, 8, true);
    m.access(0, uva(0) + 128, 0x1080, 8, true);
    assert_eq!(m.clock(0), 1000);
    m.insns(1, 10, false);
    m.access(1, uva(0), 0x1000, 8, false);
    assert_eq!(m.clock(1), 1000 + 50);
    assert_eq!(on(&m, "causal.jumps", 1), 1);
    assert_eq!(on(&m, "causal.jump_cycles", 1), 990);
    m.access(2, uva(0) + 64, 0x1040, 8, false);
    assert_eq!(m.clock(2), 1000 + 200);
    m.insns(3, 5000, false);
    m.access(3, uva(0) + 128, 0x1080, 8, false);
    assert_eq!(m.clock(3), 5000 + 200);
    assert_eq!(total(&m, "causal.jumps"), 2);
    // The writer's clock did not move.
    assert_eq!(m.clock(0), 1000);
    // Skew is sampled after each jump: at CPU 2's the clocks are 1000,
    // 1050, 1200 (CPU 3 has not executed yet, so it is left out): 200.
    assert_eq!(total(&m, "skew.max_cycles"), 200);
}

/// IPIs: handler start = max(own clock, send + delivery); latency = handler
/// start - send; entry+exit and EOI charged after.
#[test]
fn ipi_latency_and_clock() {
    let mut m = Model::new(profile(), 3);
    m.insns(0, 100, false);
    m.insns(1, 10, false);
    m.ipi_send(0, 1);
    m.ipi_enter(1);
    assert_eq!(m.clock(1), 100 + 1000 + 400 + 40);
    assert_eq!(on(&m, "ipi.latency_cycles", 1), 1000);
    assert_eq!(on(&m, "causal.jump_cycles", 1), 1100 - 10);
    // The target is far ahead: it enters on its own clock.
    m.insns(1, 10_000, false);
    m.ipi_send(0, 1);
    let t = m.clock(1);
    m.ipi_enter(1);
    assert_eq!(m.clock(1), t + 440);
    assert_eq!(on(&m, "ipi.latency_cycles", 1), 1000 + (t - 100));
    assert_eq!(on(&m, "ipi.entered", 1), 2);
    assert_eq!(on(&m, "ipi.sent", 0), 2);
    // Nothing pending: unmatched, handler cost only.
    let t = m.clock(2);
    m.ipi_enter(2);
    assert_eq!(m.clock(2), t + 440);
    assert_eq!(total(&m, "ipi.unmatched"), 1);
    // A target beyond the machine.
    m.ipi_send(0, 7);
    assert_eq!(total(&m, "ipi.bad_target"), 1);
    assert_eq!(total(&m, "ipi.sent"), 3);
    // Two IPIs queued before the handler runs: it starts after the first
    // and serves both (coalesced), so the next handler is unmatched.
    m.insns(0, 5_000, false);
    let s1 = m.clock(0);
    m.ipi_send(0, 2);
    m.insns(0, 1_000, false);
    m.ipi_send(0, 2);
    m.ipi_enter(2);
    assert_eq!(m.clock(2), s1 + 1000 + 440);
    assert_eq!(total(&m, "ipi.coalesced"), 1);
    m.ipi_enter(2);
    assert_eq!(total(&m, "ipi.unmatched"), 2);
}

/// Spin blocks are counted, not charged.
#[test]
fn spinning_is_free() {
    let mut m = Model::new(profile(), 1);
    m.insns(0, 7, false);
    m.insns(0, 1000, true);
    assert_eq!(m.clock(0), 7);
    assert_eq!(total(&m, "insns"), 7);
    assert_eq!(total(&m, "insns.spin"), 1000);
}

/// Wait/shoot intervals, the workload span, phases and unpaired marks.
#[test]
fn marks() {
    let mut m = Model::new(profile_no_walk(), 2);
    m.insns(0, 100, false);
    m.mark(0, Mark::WorkloadBegin);
    m.mark(0, Mark::WaitBegin);
    m.insns(0, 20, false);
    m.mark(0, Mark::WaitEnd);
    m.mark(0, Mark::ShootBegin);
    m.mark(0, Mark::ShootBegin); // nested: ignored, unpaired
    m.insns(0, 30, false);
    m.mark(0, Mark::ShootEnd);
    m.mark(1, Mark::WaitEnd); // never began: unpaired
    m.insns(1, 500, false);
    m.mark(0, Mark::WorkloadEnd);
    let ms = m.metrics();
    assert_eq!(get(&ms, "wait.cycles", Some(0)), 20);
    assert_eq!(get(&ms, "wait.count", None), 1);
    assert_eq!(get(&ms, "shoot.cycles", Some(0)), 30);
    assert_eq!(get(&ms, "shoot.count", None), 1);
    assert_eq!(get(&ms, "marks.unpaired", None), 2);
    // CPU 0: 100 -> 150. Machine: max clock (CPU 1: 500) - 100.
    assert_eq!(get(&ms, "workload.cycles", Some(0)), 50);
    assert_eq!(get(&ms, "workload.cycles", None), 400);
    assert_eq!(get(&ms, "workload.ns", None), 200); // 400 cycles / 2 GHz
    assert_eq!(get(&ms, "workload.spans", None), 1);

    // A phase open on CPU 0 only: CPU 0's miss and invalidation count in
    // it, CPU 1's do not.
    let mut m = Model::new(profile_no_walk(), 2);
    m.access(0, uva(0), 0x1000, 8, true);
    m.mark(0, Mark::PhaseBegin(3));
    m.access(1, uva(0), 0x1000, 8, true); // miss + invalidation on CPU 1
    m.access(0, uva(0), 0x1000, 8, true); // miss + invalidation on CPU 0
    m.mark(0, Mark::PhaseEnd(3));
    m.access(1, uva(0), 0x1000, 8, true);
    let ms = m.metrics();
    assert_eq!(get(&ms, "coh.misses", None), 3);
    assert_eq!(get(&ms, "phase.3.coh.misses", None), 1);
    assert_eq!(get(&ms, "phase.3.coh.invalidations", None), 1);
    // CPU 0 went from 0 to max(0, CPU 1's write at 50) + 50 = 100.
    assert_eq!(get(&ms, "phase.3.cycles", None), 100);
    assert_eq!(get(&ms, "phase.3.tlb.misses", None), 0);
}

/// A fixed pseudo-random event mix over 4 CPUs, replayed: identical
/// metrics, sorted by (name, scope), every name valid.
#[test]
fn deterministic() {
    fn run() -> Vec<Metric> {
        let mut m = Model::new(profile(), 4);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let r = x >> 33;
            let cpu = (r % 4) as usize;
            match (r >> 2) % 16 {
                0 => m.insns(cpu, r % 50, r & 64 != 0),
                1 => m.invlpg(cpu, uva((r >> 8) % 32)),
                2 => m.flush(cpu, r & 128 != 0),
                3 => m.ipi_send(cpu, ((r >> 8) % 4) as usize),
                4 => m.ipi_enter(cpu),
                5 => {
                    m.covers(cpu, uva((r >> 8) % 32), 1 + (r >> 16) % 4);
                    m.mark(cpu, Mark::Settled);
                }
                _ => {
                    let page = (r >> 8) % 32;
                    let frame = page + ((r >> 20) % 2) * 64;
                    let off = (r >> 13) % 4096;
                    m.access(
                        cpu,
                        uva(page) + off,
                        frame * 4096 + off,
                        1 << ((r >> 6) % 4),
                        r & 32 != 0,
                    );
                }
            }
        }
        m.metrics()
    }
    let a = run();
    assert_eq!(a, run());
    assert!(get(&a, "coh.misses", None) > 0);
    assert!(get(&a, "stale.verdicts", None) > 0);
    assert!(get(&a, "hot.15.transfers", None) > 0);
    let keys: Vec<_> = a
        .iter()
        .map(|m| (m.name.clone(), m.cpu.map_or(0, |c| c + 1)))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(keys, sorted, "sorted, no duplicates");
    let mut text = String::new();
    lab_model::report::write_all(&mut text, "model.test-box.", &a).unwrap();
    for line in text.lines() {
        assert!(
            matches!(lab_core::report::parse_line(line), Ok(Some(_))),
            "{line}"
        );
    }
}
