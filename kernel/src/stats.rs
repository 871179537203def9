//! Per-CPU event counters, reported at the end of every run.
//!
//! Each CPU owns one cache-line-aligned [`CpuStats`] and is the only writer
//! of it, so counting takes no lock and shares no cache line with another
//! CPU: counting does not disturb what it counts. Readers (the report at the
//! end of a run) may read any CPU's block. IPIs are counted twice, by the
//! sender per (kind, target) and by the receiver per (kind, source), so a run
//! can check that every IPI sent was received.

use core::sync::atomic::{AtomicU64, Ordering};
use lab_core::report::Scope;

use crate::report;

/// The most CPUs the kernel runs on (QEMU `-smp` above this is refused):
/// the width of a CPU set (`pm_cpus`, IPI target sets), one u64 word.
pub const MAX_CPUS: usize = lab_core::cpuset::MAX_CPUS;

/// What an IPI is for. Each kind has its own vector (see arch::ipi).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum IpiKind {
    /// Invalidate one page (pmap_tlb_shootpage).
    ShootPage,
    /// Invalidate a range of pages (pmap_tlb_shootrange).
    ShootRange,
    /// Flush the whole TLB (pmap_tlb_shoottlb).
    ShootTlb,
    /// Anything else: cross-calls, wake-ups, ping-pong.
    Other,
}

impl IpiKind {
    pub const COUNT: usize = 4;
    pub const ALL: [IpiKind; Self::COUNT] = [
        IpiKind::ShootPage,
        IpiKind::ShootRange,
        IpiKind::ShootTlb,
        IpiKind::Other,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            IpiKind::ShootPage => "shootpage",
            IpiKind::ShootRange => "shootrange",
            IpiKind::ShootTlb => "shoottlb",
            IpiKind::Other => "other",
        }
    }
}

/// Counted events other than IPIs: the one table of their names, units
/// and meanings is lab_core::metrics (the harness reads the same names).
/// Add an event there.
pub use lab_core::metrics::Event;

/// Buckets of the acknowledgement-wait histogram: bucket `b` counts waits
/// of `[2^b, 2^(b+1))` cycles (bucket 0 also holds waits of 0 cycles).
pub const ACK_BUCKETS: usize = 64;

/// One CPU's counters. Written only by that CPU.
#[repr(C, align(64))]
pub struct CpuStats {
    ipi_sent_to: [[AtomicU64; MAX_CPUS]; IpiKind::COUNT],
    ipi_received_from: [[AtomicU64; MAX_CPUS]; IpiKind::COUNT],
    events: [AtomicU64; Event::COUNT],
    /// log2 histogram of pmap_tlb_shootwait's wait, one entry per
    /// shootdown that sent IPIs (mm::shootdown).
    ack_wait_log2: [AtomicU64; ACK_BUCKETS],
}

impl CpuStats {
    const fn new() -> Self {
        CpuStats {
            ipi_sent_to: [const { [const { AtomicU64::new(0) }; MAX_CPUS] }; IpiKind::COUNT],
            ipi_received_from: [const { [const { AtomicU64::new(0) }; MAX_CPUS] }; IpiKind::COUNT],
            events: [const { AtomicU64::new(0) }; Event::COUNT],
            ack_wait_log2: [const { AtomicU64::new(0) }; ACK_BUCKETS],
        }
    }
}

static STATS: [CpuStats; MAX_CPUS] = [const { CpuStats::new() }; MAX_CPUS];

fn this_cpu() -> &'static CpuStats {
    &STATS[crate::cpu_id().unwrap_or(0) as usize]
}

/// Adds `n` to `event` on this CPU.
pub fn add(event: Event, n: u64) {
    this_cpu().events[event as usize].fetch_add(n, Ordering::Relaxed);
}

/// Counts one `event` on this CPU.
pub fn count(event: Event) {
    add(event, 1);
}

/// The log2 bucket of a wait of `cycles` (0 and 1 both go to bucket 0).
pub const fn log2_bucket(cycles: u64) -> usize {
    if cycles == 0 {
        0
    } else {
        63 - cycles.leading_zeros() as usize
    }
}

/// Records one acknowledgement wait of `cycles` on this CPU (the
/// `shoot.wait.ack.log2.<b>` histogram).
pub fn record_ack_wait(cycles: u64) {
    this_cpu().ack_wait_log2[log2_bucket(cycles)].fetch_add(1, Ordering::Relaxed);
}

/// Counts an IPI of `kind` sent from this CPU to `to`.
pub fn ipi_sent(kind: IpiKind, to: u32) {
    this_cpu().ipi_sent_to[kind as usize][to as usize].fetch_add(1, Ordering::Relaxed);
}

/// Counts `n` IPIs of `kind` received on this CPU from `from` (one
/// interrupt may serve several coalesced requests, see arch::ipi).
pub fn ipi_received_n(kind: IpiKind, from: u32, n: u64) {
    this_cpu().ipi_received_from[kind as usize][from as usize].fetch_add(n, Ordering::Relaxed);
}

/// The machine-wide total of `event` (sum over CPUs).
pub fn total(event: Event) -> u64 {
    STATS
        .iter()
        .map(|s| s.events[event as usize].load(Ordering::Relaxed))
        .sum()
}

/// Totals of IPIs of `kind` (sent, received) over all CPUs.
pub fn ipi_totals(kind: IpiKind) -> (u64, u64) {
    let k = kind as usize;
    let sent = STATS.iter().map(|s| sum_row(&s.ipi_sent_to[k])).sum();
    let received = STATS.iter().map(|s| sum_row(&s.ipi_received_from[k])).sum();
    (sent, received)
}

fn sum_row(row: &[AtomicU64; MAX_CPUS]) -> u64 {
    row.iter().map(|c| c.load(Ordering::Relaxed)).sum()
}

/// Metric names per IPI kind, indexed by `IpiKind as usize`: per-CPU and
/// machine totals, then the (from, to) matrix.
const SENT: [&str; IpiKind::COUNT] = [
    "ipi.sent.shootpage",
    "ipi.sent.shootrange",
    "ipi.sent.shoottlb",
    "ipi.sent.other",
];
const RECEIVED: [&str; IpiKind::COUNT] = [
    "ipi.received.shootpage",
    "ipi.received.shootrange",
    "ipi.received.shoottlb",
    "ipi.received.other",
];
const PAIR_SENT: [&str; IpiKind::COUNT] = [
    "ipi.pair.sent.shootpage",
    "ipi.pair.sent.shootrange",
    "ipi.pair.sent.shoottlb",
    "ipi.pair.sent.other",
];
const PAIR_RECEIVED: [&str; IpiKind::COUNT] = [
    "ipi.pair.received.shootpage",
    "ipi.pair.received.shootrange",
    "ipi.pair.received.shoottlb",
    "ipi.pair.received.other",
];

/// Writes every counter of CPUs `0..cpus` as metric lines: per CPU, machine
/// totals, and the (from, to) IPI matrix (pairs with any traffic only).
pub fn report_all(cpus: u32) {
    let cpus = (cpus as usize).min(MAX_CPUS);
    for kind in IpiKind::ALL {
        let k = kind as usize;
        for (cpu, stats) in STATS.iter().enumerate().take(cpus) {
            let scope = Scope::Cpu(cpu as u32);
            report::metric(SENT[k], sum_row(&stats.ipi_sent_to[k]), "count", scope);
            report::metric(
                RECEIVED[k],
                sum_row(&stats.ipi_received_from[k]),
                "count",
                scope,
            );
        }
        let (sent, received) = ipi_totals(kind);
        report::metric(SENT[k], sent, "count", Scope::Global);
        report::metric(RECEIVED[k], received, "count", Scope::Global);
        // The sender's count of (from -> to) against the receiver's.
        for (from, sender) in STATS.iter().enumerate().take(cpus) {
            for (to, receiver) in STATS.iter().enumerate().take(cpus) {
                let sent = sender.ipi_sent_to[k][to].load(Ordering::Relaxed);
                let received = receiver.ipi_received_from[k][from].load(Ordering::Relaxed);
                if sent == 0 && received == 0 {
                    continue;
                }
                let scope = Scope::Pair {
                    from: from as u32,
                    to: to as u32,
                };
                report::metric(PAIR_SENT[k], sent, "count", scope);
                report::metric(PAIR_RECEIVED[k], received, "count", scope);
            }
        }
    }
    for event in Event::ALL {
        for (cpu, stats) in STATS.iter().enumerate().take(cpus) {
            let value = stats.events[event as usize].load(Ordering::Relaxed);
            report::metric(event.name(), value, event.unit(), Scope::Cpu(cpu as u32));
        }
        report::metric(event.name(), total(event), event.unit(), Scope::Global);
    }
    // The ack-wait histogram, summed over CPUs; non-empty buckets only.
    for b in 0..ACK_BUCKETS {
        let n: u64 = STATS
            .iter()
            .take(cpus)
            .map(|s| s.ack_wait_log2[b].load(Ordering::Relaxed))
            .sum();
        if n != 0 {
            let name = alloc::format!("shoot.wait.ack.log2.{b}");
            report::metric(&name, n, "count", Scope::Global);
        }
    }
}

// ---- Shootdowns by cause (lab_core::cause) ------------------------------

use lab_core::cause::{ShootCause, CAUSE_FIELDS};

/// What is counted per (cause, shootdown kind); the metric is
/// `shoot.cause.<cause>.<kind>.<field>` with field `CAUSE_FIELDS[f]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum CauseField {
    /// Shootdown calls (as `shoot.calls.<kind>`).
    Calls,
    /// ... that had no target and sent no IPI (as `shoot.noipi.<kind>`).
    NoIpi,
    /// IPIs they sent (as `ipi.sent.<kind>`).
    Ipis,
    /// TSC cycles pmap_tlb_shootwait waited for their acknowledgements
    /// (summed over kinds and causes: `shoot.wait.ack`).
    AckCycles,
    /// IPIs a shortcut spared (lab_core::cause::CAUSE_FIELDS): what the
    /// variant's base would have sent beyond `Ipis`.
    Spared,
}

const SHOOT_KIND_COUNT: usize = 3;

/// One CPU's counters by cause. Written only by that CPU.
#[repr(C, align(64))]
struct CauseStats {
    by: [[[AtomicU64; CAUSE_FIELDS.len()]; SHOOT_KIND_COUNT]; ShootCause::COUNT],
}

static CAUSE_STATS: [CauseStats; MAX_CPUS] = [const {
    CauseStats {
        by: [const { [const { [const { AtomicU64::new(0) }; CAUSE_FIELDS.len()] }; SHOOT_KIND_COUNT] };
            ShootCause::COUNT],
    }
}; MAX_CPUS];

/// Adds `n` to `field` of (`cause`, `kind`) on this CPU; `kind` is a
/// shootdown kind (`Other` is ignored).
pub fn cause_add(cause: ShootCause, kind: IpiKind, field: CauseField, n: u64) {
    if kind == IpiKind::Other {
        return;
    }
    let s = &CAUSE_STATS[crate::cpu_id().unwrap_or(0) as usize];
    s.by[cause as usize][kind as usize][field as usize].fetch_add(n, Ordering::Relaxed);
}

/// Writes `shoot.cause.<cause>.<kind>.<field>` (scope all, summed over
/// CPUs `0..cpus`) for every (cause, kind) with a non-zero field; absent
/// means 0. Summed over causes they equal `shoot.calls.<kind>`,
/// `shoot.noipi.<kind>` and `ipi.sent.<kind>`; `ack_cycles` summed over
/// causes and kinds equals `shoot.wait.ack`.
pub fn report_causes(cpus: u32) {
    let cpus = (cpus as usize).min(MAX_CPUS);
    for cause in ShootCause::ALL {
        for kind in &IpiKind::ALL[..SHOOT_KIND_COUNT] {
            let sums: [u64; CAUSE_FIELDS.len()] = core::array::from_fn(|f| {
                CAUSE_STATS
                    .iter()
                    .take(cpus)
                    .map(|s| s.by[cause as usize][*kind as usize][f].load(Ordering::Relaxed))
                    .sum()
            });
            if sums.iter().all(|&v| v == 0) {
                continue;
            }
            for (f, field) in CAUSE_FIELDS.iter().enumerate() {
                if sums[f] == 0 {
                    continue;
                }
                let name = alloc::format!("shoot.cause.{}.{}.{field}", cause.name(), kind.name());
                let unit = if f == CauseField::AckCycles as usize {
                    "cycles"
                } else {
                    "count"
                };
                report::metric(&name, sums[f], unit, Scope::Global);
            }
        }
    }
}
