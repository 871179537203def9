//! LATR's core: the per-CPU queues of lazy invalidations, and the marks
//! that say when a munmap's quarantine is settled (Kumar et al., "LATR:
//! Lazy Translation Coherence", ASPLOS 2018; their Linux 4.10 patch,
//! arch/x86/mm/tlb.c native_flush_tlb_others and
//! native_flush_saved_states). Why munmap may be lazy, and the contract
//! it keeps (a stale entry may outlive munmap, but only ever reaches the
//! frame it always reached, unchanged), is in kernel/src/mm/latr.rs, the
//! kernel's glue (requests, interrupts, statistics, cross-calls); the
//! quarantine that holds the frames is proc::vm's.
//!
//! # Shared state ([`Latr`])
//!
//! - `queues[t]` ([`Queue`], under its [`Lock`], taken with interrupts
//!   off): the records initiators left CPU t, not yet applied, and
//!   `pushed`, the records ever queued to it. Pushed by initiators
//!   ([`Latr::queue`]), applied and emptied by t itself ([`Latr::apply`])
//!   at its tick, its context switch, or a cross-call.
//! - `applied[t]`: `pushed` as t's last apply left it: every record up to
//!   that position has been applied. Written by t only (release, after
//!   its invalidations), read by whoever waits for it.
//! - `marks[i][t]`: the highest position in t's queue that initiator i's
//!   lazy shootdowns reached since i last took them ([`Latr::take_marks`]).
//!   A munmap takes its marks at its end: its quarantine is settled once
//!   `applied[t] >= marks[t]` for every t ([`Latr::settled`]), or made so
//!   by cross-calls ([`Latr::settle`]).
//!
//! A queue is bounded (LATR's ring has 256 records; the kernel's, 64): a
//! push to a full queue fails, and the caller shoots that target down with
//! an IPI as if LATR were off.
//!
//! # Why the quarantine is safe
//!
//! t's apply invalidates every queued record and only then publishes
//! `pushed` (release); an initiator that reads `applied[t] >= pos`
//! (acquire) therefore knows t dropped every entry the records up to `pos`
//! named, and t cannot use them afterwards. Positions only grow, and a
//! record is pushed before its mark is raised, so a mark is always at or
//! below the `pushed` of a queue that holds (or held) its record.
//!
//! The lock is the kernel's `spin::Mutex` (kernel/src/mm/latr.rs), or
//! loom's `Mutex` under the model checker ([`Lock`] abstracts the two), so
//! the model checks this code's pushes, applies and marks themselves.

use crate::cpuset::MAX_CPUS;

use super::sync::{AtomicU64, Ordering};
use super::{Cpu, Window};

/// One CPU's queue: up to `N` records of type `R`, oldest first.
pub struct Queue<R, const N: usize> {
    records: [R; N],
    len: usize,
    /// Records ever queued here.
    pushed: u64,
}

impl<R: Copy, const N: usize> Queue<R, N> {
    /// Empty (`empty` fills the unused slots).
    pub const fn new(empty: R) -> Queue<R, N> {
        Queue {
            records: [empty; N],
            len: 0,
            pushed: 0,
        }
    }

    /// Appends `record`: its position (`pushed` after it, from 1), or
    /// None if the queue is full.
    fn push(&mut self, record: R) -> Option<u64> {
        if self.len == N {
            return None;
        }
        self.records[self.len] = record;
        self.len += 1;
        self.pushed += 1;
        Some(self.pushed)
    }
}

/// The lock around one CPU's queue: the kernel's spin lock, loom's mutex
/// under the model checker.
pub trait Lock {
    /// What it guards (a [`Queue`]).
    type Data;
    /// Runs `f` on the data, holding the lock.
    fn with<U>(&self, f: impl FnOnce(&mut Self::Data) -> U) -> U;
}

#[cfg(loom)]
impl<T> Lock for loom::sync::Mutex<T> {
    type Data = T;
    fn with<U>(&self, f: impl FnOnce(&mut T) -> U) -> U {
        f(&mut self.lock().unwrap())
    }
}

/// The queues, applied positions and marks of up to `CPUS` CPUs, each
/// queue guarded by an `L`.
pub struct Latr<L, const CPUS: usize = MAX_CPUS> {
    queues: [L; CPUS],
    applied: [AtomicU64; CPUS],
    /// `[initiator][target]`.
    marks: [[AtomicU64; CPUS]; CPUS],
}

impl<L, const CPUS: usize> Latr<L, CPUS> {
    /// `queues` (empty), nothing applied, no mark.
    #[cfg(not(loom))]
    pub const fn new(queues: [L; CPUS]) -> Latr<L, CPUS> {
        Latr {
            queues,
            applied: [const { AtomicU64::new(0) }; CPUS],
            marks: [const { [const { AtomicU64::new(0) }; CPUS] }; CPUS],
        }
    }

    #[cfg(loom)]
    pub fn new(queues: [L; CPUS]) -> Latr<L, CPUS> {
        Latr {
            queues,
            applied: core::array::from_fn(|_| AtomicU64::new(0)),
            marks: core::array::from_fn(|_| core::array::from_fn(|_| AtomicU64::new(0))),
        }
    }

    /// Takes (and clears) `me`'s marks: (target, position) for each CPU
    /// its lazy shootdowns left records since the last call. Lazy: the
    /// caller collects it.
    pub fn take_marks(&self, me: u32) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.marks[me as usize]
            .iter()
            .enumerate()
            .filter_map(|(t, mark)| {
                let pos = mark.swap(0, Ordering::Relaxed);
                (pos != 0).then_some((t as u32, pos))
            })
    }

    /// Whether `target` has applied its queue up to position `pos`.
    pub fn applied(&self, target: u32, pos: u64) -> bool {
        self.applied[target as usize].load(Ordering::Acquire) >= pos
    }

    /// True once every CPU named in `marks` has applied its record.
    pub fn settled(&self, marks: impl IntoIterator<Item = (u32, u64)>) -> bool {
        marks.into_iter().all(|(t, pos)| self.applied(t, pos))
    }

    /// Makes every CPU named in `marks` that has not yet applied its
    /// record apply its queue now: `cross_call(t)` returns once t has run
    /// [`Latr::apply`] (the kernel's cross-call, or, for this CPU, the
    /// apply itself with interrupts off). For a quarantine whose frames or
    /// addresses are needed before the next ticks; interrupts on.
    pub fn settle(
        &self,
        cpu: &impl Cpu,
        marks: impl IntoIterator<Item = (u32, u64)>,
        mut cross_call: impl FnMut(u32),
    ) {
        for (t, pos) in marks {
            cpu.interruptible(Window::LatrSettle);
            if self.applied(t, pos) {
                continue;
            }
            cross_call(t);
            assert!(
                self.applied(t, pos),
                "lazy-latr: cpu {t} did not apply its queue on a cross-call"
            );
        }
    }
}

impl<L, R, const N: usize, const CPUS: usize> Latr<L, CPUS>
where
    L: Lock<Data = Queue<R, N>>,
    R: Copy,
{
    /// Queues `record` for `target` (not `cpu`) and raises `cpu`'s mark
    /// of it: the record's position, or None if the queue was full (the
    /// caller then shoots `target` down with an IPI).
    pub fn queue(&self, cpu: &impl Cpu, target: u32, record: R) -> Option<u64> {
        let me = cpu.id() as usize;
        let t = target as usize;
        let pos = cpu.without_interrupts(|| self.queues[t].with(|q| q.push(record)))?;
        self.marks[me][t].fetch_max(pos, Ordering::Relaxed);
        cpu.interruptible(Window::LatrQueued);
        Some(pos)
    }

    /// Applies `cpu`'s queue, `apply(record)` for each record, oldest
    /// first, then says so (`applied`, release); returns how many it
    /// applied. With interrupts off: the tick, the context switch and the
    /// cross-call run it.
    pub fn apply(&self, cpu: &impl Cpu, mut apply: impl FnMut(R)) -> usize {
        let me = cpu.id() as usize;
        self.queues[me].with(|q| {
            let n = q.len;
            if n == 0 {
                return 0;
            }
            q.records[..n].iter().for_each(|&r| apply(r));
            q.len = 0;
            cpu.interruptible(Window::LatrApplied);
            self.applied[me].store(q.pushed, Ordering::Release);
            n
        })
    }
}
