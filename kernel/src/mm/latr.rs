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
//! The queues, `APPLIED` and the marks, and the steps on them (push,
//! apply, take the marks, settled), are lab_core::protocol::latr, which the
//! host model-checks (kernel/lab-core/tests/protocols/latr.rs). Per CPU:
//! its queue (a spin lock taken with interrupts off, by initiators and by
//! the CPU itself), `pushed` (records ever queued to it) and `APPLIED`
//! (records it has applied: all of them up to that count). Per initiating
//! CPU: `MARKS[me][t]`, the highest position in CPU t's queue its lazy
//! shootdowns reached since the caller last took them: the quarantine is
//! settled once `APPLIED[t] >= MARKS[t]` for every t. This file gives the
//! core the kernel's requests, lock, interrupts, statistics and
//! cross-calls.

use lab_core::cpuset::CpuSet;
use lab_core::protocol::latr::{Latr, Lock, Queue};

use super::shootdown::{invalidate_local, Request, ThisCpu};
use crate::arch;
use crate::stats::{self, Event, MAX_CPUS};

/// Records a CPU's queue holds.
pub const QUEUE: usize = 64;

/// A CPU's queue of requests, as mm::shootdown delivers them (a DragonFly
/// list, whose addresses live in its initiator's buffer only until its
/// wait, is kept as a full flush), under a spin lock.
struct Locked(spin::Mutex<Queue<Request, QUEUE>>);

impl Lock for Locked {
    type Data = Queue<Request, QUEUE>;

    fn with<U>(&self, f: impl FnOnce(&mut Queue<Request, QUEUE>) -> U) -> U {
        f(&mut self.0.lock())
    }
}

static LATR: Latr<Locked, MAX_CPUS> =
    Latr::new([const { Locked(spin::Mutex::new(Queue::new(Request::Tlb))) }; MAX_CPUS]);

/// Where a munmap's records went: (CPU, position in its queue).
pub type Marks = alloc::vec::Vec<(u32, u64)>;

/// Queues `req` for each of `targets` (this CPU excluded); returns the
/// targets whose queue was full, which the caller shoots down at once.
pub fn queue(req: Request, targets: CpuSet) -> CpuSet {
    let me = arch::cpu_id();
    let req = match req {
        Request::List { .. } => Request::Tlb,
        req => req,
    };
    let mut full = CpuSet::EMPTY;
    for t in targets.intersect(arch::smp::online()).without(me).iter() {
        match LATR.queue(&ThisCpu, t, req) {
            Some(_) => stats::count(Event::LatrQueued),
            None => full = full.with(t),
        }
    }
    full
}

/// Applies this CPU's queue: the timer tick, the context switch and the
/// cross-call run it, with interrupts off.
pub fn apply_here() {
    let n = LATR.apply(&ThisCpu, invalidate_local);
    if n != 0 {
        stats::add(Event::LatrApplied, n as u64);
    }
}

/// Takes (and clears) this CPU's marks: where its lazy shootdowns since
/// the last call left records. Empty if none was lazy.
pub fn take_marks() -> Marks {
    LATR.take_marks(arch::cpu_id()).collect()
}

/// True once every CPU named in `marks` has applied its record.
pub fn settled(marks: &Marks) -> bool {
    LATR.settled(marks.iter().copied())
}

/// Makes every CPU named in `marks` apply its queue now (a cross-call,
/// whose handler runs [`apply_here`]), for a quarantine whose frames or
/// addresses are needed before the next ticks. Interrupts on.
pub fn settle(marks: &Marks) {
    let me = arch::cpu_id();
    LATR.settle(&ThisCpu, marks.iter().copied(), |t| {
        if t == me {
            x86_64::instructions::interrupts::without_interrupts(apply_here);
        } else if let Err(e) = arch::ipi::sync(t) {
            panic!("lazy-latr: settling a quarantine: {e}");
        }
        stats::count(Event::LatrSettleIpis);
    });
}
