//! What a shootdown costs the initiator, as the kernel measures it: the
//! outstanding shootdown's start, its wait, the acknowledgement latency
//! samples and their report (the module doc of mm::shootdown,
//! "Measurements", says what each metric is).

use core::sync::atomic::{AtomicU64, Ordering};

use lab_core::cause::ShootCause;
use lab_core::report::Scope;
use lab_core::sample::Reservoir;
use lab_core::summary::summarize;

use crate::arch;
use crate::report;
use crate::stats::{self, CauseField, Event, IpiKind, MAX_CPUS};

/// Per CPU: the kind of the shootdown awaiting pmap_tlb_shootwait (+1; 0
/// for none) in the low byte, its cause (`ShootCause as u8`) in the next,
/// and when its request went out. Written only by that CPU.
static OUTSTANDING: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static SENT_AT: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// Per CPU: when its outstanding shootdown began (before any local
/// invalidation `flush-first` does ahead of the IPIs), for
/// `shoot.op_cycles`. Written only by that CPU.
static SHOOT_BEGAN: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// Per CPU: the latency of its last waited-for shootdown, until
/// [`take_last_ack`] (the `ack_last` syscall) takes it. Written only by
/// that CPU.
static LAST_ACK: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// Samples kept per CPU and kind.
const SAMPLES: usize = 1024;
const SHOOT_KINDS: [IpiKind; 3] = [IpiKind::ShootPage, IpiKind::ShootRange, IpiKind::ShootTlb];
/// Ack latency samples, per CPU and kind; locked only by the owner CPU and
/// by the report at the end of the run.
static ACK_SAMPLES: [[spin::Mutex<Reservoir<SAMPLES>>; 3]; MAX_CPUS] =
    [const { [const { spin::Mutex::new(Reservoir::new(0x5eed)) }; 3] }; MAX_CPUS];

/// Whether this CPU has a shootdown awaiting pmap_tlb_shootwait.
pub(super) fn outstanding() -> bool {
    OUTSTANDING[arch::cpu_id() as usize].load(Ordering::Relaxed) != 0
}

/// Records this CPU's shootdown of `kind` for `why` as outstanding: it
/// began at `began` (before any local invalidation ahead of the IPIs) and
/// its request went out at `sent_at`.
pub(super) fn started(kind: IpiKind, why: ShootCause, began: u64, sent_at: u64) {
    let me = arch::cpu_id() as usize;
    SENT_AT[me].store(sent_at, Ordering::Relaxed);
    SHOOT_BEGAN[me].store(began, Ordering::Relaxed);
    OUTSTANDING[me].store(kind as u64 + 1 + ((why as u64) << 8), Ordering::Relaxed);
}

/// Records the end of this CPU's outstanding shootdown, whose wait ran
/// from `t0` to `t1`: the wait and whole-operation cycles, the histogram,
/// the cause's ack cycles and the latency sample since the request went
/// out; then nothing is outstanding.
pub(super) fn waited(t0: u64, t1: u64) {
    let me = arch::cpu_id() as usize;
    let outstanding = OUTSTANDING[me].load(Ordering::Relaxed);
    stats::add(Event::AckWaitCycles, t1 - t0);
    stats::add(
        Event::ShootOpCycles,
        t1.saturating_sub(SHOOT_BEGAN[me].load(Ordering::Relaxed)),
    );
    stats::record_ack_wait(t1 - t0);
    let k = (outstanding & 0xff) as usize - 1;
    let why = ShootCause::from_index((outstanding >> 8) as usize);
    stats::cause_add(why, SHOOT_KINDS[k], CauseField::AckCycles, t1 - t0);
    let latency = t1.saturating_sub(SENT_AT[me].load(Ordering::Relaxed));
    ACK_SAMPLES[me][k].lock().record(latency);
    LAST_ACK[me].store(latency, Ordering::Relaxed);
    OUTSTANDING[me].store(0, Ordering::Relaxed);
}

/// The ack latency of this CPU's last waited-for shootdown (cycles), 0 if
/// none since the previous call, which this call clears.
pub fn take_last_ack() -> u64 {
    LAST_ACK[arch::cpu_id() as usize].swap(0, Ordering::Relaxed)
}

/// Writes the acknowledgement latency distributions, the shootdowns by
/// cause and the protocol's cache-line footprint as metrics.
pub fn report(cpus: u32) {
    use alloc::format;
    use alloc::vec::Vec;
    stats::report_causes(cpus);
    super::footprint::report(cpus);
    for (k, kind) in SHOOT_KINDS.iter().enumerate() {
        let mut samples = Vec::new();
        let (mut seen, mut max) = (0, 0);
        for per_cpu in ACK_SAMPLES.iter().take(cpus as usize) {
            let r = per_cpu[k].lock();
            samples.extend_from_slice(r.samples());
            seen += r.seen();
            max = max.max(r.max());
        }
        let name = |what: &str| format!("shoot.ack.{}.{what}", kind.name());
        report::metric(&name("count"), seen, "count", Scope::Global);
        if let Some(sum) = summarize(&mut samples) {
            report::metric(&name("median"), sum.median, "cycles", Scope::Global);
            report::metric(&name("p99"), sum.p99, "cycles", Scope::Global);
            // The reservoir keeps a sample; the true maximum is kept apart.
            report::metric(&name("max"), max, "cycles", Scope::Global);
            report::metric(
                &name("median_ns"),
                arch::tsc::cycles_to_ns(sum.median),
                "ns",
                Scope::Global,
            );
        }
    }
}
