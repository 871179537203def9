//! LATR, lazy translation coherence (feature `lazy-latr`; Kumar et al.,
//! "LATR: Lazy Translation Coherence", ASPLOS 2018; their Linux 4.10
//! patch, arch/x86/mm/tlb.c native_flush_tlb_others and
//! native_flush_saved_states).
//!
//! # The idea
//!
//! munmap need not interrupt the other CPUs: it invalidates its own TLB,
//! leaves a record of the range in each target CPU's queue, and returns.
//! Each CPU applies its queue at its next timer tick or context switch. Until
//! then a thread on that CPU may still reach the unmapped range through
//! its stale entry, so neither the range's frames nor its virtual
//! addresses may be reused before every target has applied the record:
//! munmap puts them in quarantine (proc::vm), and anything that needs them
//! sooner settles the quarantine with IPIs ([`settle`]). That is the
//! whole contract: a stale entry may outlive munmap by a tick, but can
//! only ever reach the frame it always reached, unchanged.
//!
//! Only a user pmap's munmap is lazy, and only when it frees no page
//! table (a freed table could be walked speculatively, as in
//! mm::shootdown::AckRule); everything else shoots down as `fixed` does.
//! A full queue falls back to the IPI for that target (LATR's ring has 256
//! records; [`QUEUE`] here).
//!
//! # State
//!
//! Per CPU: its queue (a spin lock taken with interrupts off, by
//! initiators and by the CPU itself), `pushed` (records ever queued to it)
//! and `APPLIED` (records it has applied: all of them up to that count).
//! Per initiating CPU: `MARKS[me][t]`, the highest position in CPU t's
//! queue its lazy shootdowns reached since the caller last took them:
//! the quarantine is settled once `APPLIED[t] >= MARKS[t]` for every t.

use core::sync::atomic::{AtomicU64, Ordering};

use lab_core::cpuset::CpuSet;
use x86_64::instructions::interrupts;

use super::shootdown::{invalidate_local, Request};
use crate::arch;
use crate::arch::chaos::{self, Point};
use crate::stats::{self, Event, MAX_CPUS};

/// Records a CPU's queue holds.
pub const QUEUE: usize = 64;

struct Queue {
    /// The requests, as mm::shootdown delivers them (a DragonFly list,
    /// whose addresses live in its initiator's buffer only until its wait,
    /// is kept as a full flush).
    reqs: [Request; QUEUE],
    len: usize,
    /// Records ever queued here.
    pushed: u64,
}

static QUEUES: [spin::Mutex<Queue>; MAX_CPUS] = [const {
    spin::Mutex::new(Queue {
        reqs: [Request::Tlb; QUEUE],
        len: 0,
        pushed: 0,
    })
}; MAX_CPUS];
static APPLIED: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static MARKS: [[AtomicU64; MAX_CPUS]; MAX_CPUS] =
    [const { [const { AtomicU64::new(0) }; MAX_CPUS] }; MAX_CPUS];

/// Where a munmap's records went: (CPU, position in its queue).
pub type Marks = alloc::vec::Vec<(u32, u64)>;

/// Queues `req` for each of `targets` (this CPU excluded); returns the
/// targets whose queue was full, which the caller shoots down at once.
pub fn queue(req: Request, targets: CpuSet) -> CpuSet {
    let me = arch::cpu_id() as usize;
    let req = match req {
        Request::List { .. } => Request::Tlb,
        req => req,
    };
    let mut full = CpuSet::EMPTY;
    for t in targets
        .intersect(arch::smp::online())
        .without(me as u32)
        .iter()
    {
        let pos = interrupts::without_interrupts(|| {
            let mut q = QUEUES[t as usize].lock();
            (q.len < QUEUE).then(|| {
                let n = q.len;
                q.reqs[n] = req;
                q.len += 1;
                q.pushed += 1;
                q.pushed
            })
        });
        match pos {
            Some(pos) => {
                MARKS[me][t as usize].fetch_max(pos, Ordering::Relaxed);
                stats::count(Event::LatrQueued);
                chaos::point(Point::LatrQueued);
            }
            None => full = full.with(t),
        }
    }
    full
}

/// Applies this CPU's queue: the timer tick, the context switch and the
/// cross-call run it, with interrupts off.
pub fn apply_here() {
    let me = arch::cpu_id() as usize;
    let mut q = QUEUES[me].lock();
    if q.len == 0 {
        return;
    }
    q.reqs[..q.len]
        .iter()
        .for_each(|&req| invalidate_local(req));
    stats::add(Event::LatrApplied, q.len as u64);
    q.len = 0;
    chaos::point(Point::LatrApplied);
    APPLIED[me].store(q.pushed, Ordering::Release);
}

/// Takes (and clears) this CPU's marks: where its lazy shootdowns since
/// the last call left records. Empty if none was lazy.
pub fn take_marks() -> Marks {
    let me = arch::cpu_id() as usize;
    (0..MAX_CPUS)
        .filter_map(|t| {
            let pos = MARKS[me][t].swap(0, Ordering::Relaxed);
            (pos != 0).then_some((t as u32, pos))
        })
        .collect()
}

/// True once every CPU named in `marks` has applied its record.
pub fn settled(marks: &Marks) -> bool {
    marks
        .iter()
        .all(|&(t, pos)| APPLIED[t as usize].load(Ordering::Acquire) >= pos)
}

/// Makes every CPU named in `marks` apply its queue now (a cross-call,
/// whose handler runs [`apply_here`]), for a quarantine whose frames or
/// addresses are needed before the next ticks. Interrupts on.
pub fn settle(marks: &Marks) {
    let me = arch::cpu_id();
    for &(t, pos) in marks {
        chaos::point(Point::LatrSettle);
        if APPLIED[t as usize].load(Ordering::Acquire) >= pos {
            continue;
        }
        if t == me {
            interrupts::without_interrupts(apply_here);
        } else if let Err(e) = arch::ipi::sync(t) {
            panic!("lazy-latr: settling a quarantine: {e}");
        }
        stats::count(Event::LatrSettleIpis);
        assert!(
            APPLIED[t as usize].load(Ordering::Acquire) >= pos,
            "lazy-latr: cpu {t} did not apply its queue on a cross-call"
        );
    }
}
