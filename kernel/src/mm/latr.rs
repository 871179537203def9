//! LATR, lazy translation coherence (feature `lazy-latr`; Kumar et al.,
//! "LATR: Lazy Translation Coherence", ASPLOS 2018; their Linux 4.10
//! patch, sslab-gatech/latr: arch/x86/mm/tlb.c `native_flush_save_state`,
//! `native_flush_saved_states`, `background_update_saved_states`, and
//! mm/mmap.c's lazy VMA and page lists). Without the feature every call
//! here does nothing, so proc:: carries calls, not cfg blocks.
//!
//! # The idea
//!
//! munmap need not interrupt the other CPUs: it invalidates its own TLB,
//! writes one record of the range (and the address space, and the CPUs
//! that must apply it) into its own ring, and returns. Every CPU sweeps
//! all rings at its timer tick and its context switch and applies the
//! records that name it ([`sweep_here`]). Until then a thread on that CPU
//! may still reach the unmapped range through its stale entry, so neither
//! the range's frames nor its addresses may be reused: munmap puts them
//! in [`Quarantine`], which gives them back after a time bound. That is the
//! whole contract: a stale entry may outlive munmap by a tick, but can
//! only ever reach the frame it always reached, unchanged.
//!
//! Only a user pmap's munmap is lazy, and only when it frees no page
//! table (a freed table could be walked speculatively, as in
//! mm::shootdown::AckRule); everything else shoots down as `fixed` does.
//! A full ring falls back to IPIs for that munmap's targets, as LATR's
//! `native_flush_tlb_others` does when `native_flush_save_state` finds no
//! free entry. The ring structure, its sweep and the check of a record are
//! lab_core::protocol::latr, model-checked on the host
//! (kernel/lab-core/tests/protocols/latr.rs).
//!
//! # Reclaiming by time, with the invariant checked
//!
//! LATR frees a lazily unmapped range's pages and VMA once they are older
//! than a bound (the patch: 2*HZ jiffies, checked by a background thread
//! each second) and IPIs any record still unapplied after two of that
//! thread's passes (`TLB_SHOOTDOWN_MAX`). The bound stands for "every CPU
//! has ticked since": LATR's CPUs sweep at every scheduler tick. Here the
//! bound is `BOUND_TICKS` of the kernel's scheduler ticks, looked at when
//! the process next maps or unmaps and at its teardown (the patch's
//! thread looks each second, whatever the process does); when it has
//! passed, the quarantine asks each record whether it is retired and
//! cross-calls any CPU still pending before the frames go back (counted
//! as `latr.fallback_ipis`): a vCPU the host has not run for a while
//! (plain TCG, more vCPUs than cores) misses its ticks, and a frame must
//! never be reused under a CPU that may still reach it. A quarantine
//! needed before its bound (a MAP_FIXED mapping over it, the address
//! space's teardown) is settled at once by cross-calls
//! (`latr.settle_ipis`). Both are IPIs the technique adds, counted apart
//! from the shootdown IPIs it saves.

use x86_64::structures::paging::PhysFrame;

use super::pmap::Pmap;
use super::shootdown::Request;
use lab_core::cpuset::CpuSet;

#[cfg(feature = "lazy-latr")]
use on::Held;

/// Leaves `req` (on `pm`) to `targets`' next sweep instead of IPIs, if
/// LATR may (the caller checked the cause and the AckRule); returns the
/// targets that still need the IPI: none, or all of them if this CPU's
/// ring was full. Without `lazy-latr`, all of them.
pub fn leave_for_sweep(req: Request, targets: CpuSet, pm: Option<&Pmap>) -> CpuSet {
    #[cfg(feature = "lazy-latr")]
    return on::leave_for_sweep(req, targets, pm);
    #[cfg(not(feature = "lazy-latr"))]
    {
        let _ = (req, pm);
        targets
    }
}

/// This CPU's sweep of every ring: the timer tick, the context switch and
/// the cross-call run it, with interrupts off.
pub fn sweep_here() {
    #[cfg(feature = "lazy-latr")]
    on::sweep_here();
}

/// Which quarantined ranges a release settles at once (by cross-calls)
/// rather than by their time bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Needed {
    /// None: only those past their bound go back.
    Nothing,
    /// Those overlapping `[start, end)` (a MAP_FIXED mapping over them).
    Range(u64, u64),
    /// All of them (the address space's teardown).
    All,
}

/// A process's munmapped ranges whose stale entries may live on in other
/// CPUs' TLBs, with their frames (empty, and every call a no-op, without
/// `lazy-latr`).
#[derive(Default)]
pub struct Quarantine {
    #[cfg(feature = "lazy-latr")]
    held: alloc::vec::Vec<Held>,
}

impl Quarantine {
    pub const fn new() -> Quarantine {
        Quarantine {
            #[cfg(feature = "lazy-latr")]
            held: alloc::vec::Vec::new(),
        }
    }

    /// After `[start, end)` was unmapped on this CPU: if its shootdowns
    /// left records rather than IPIs, the range and `frames` wait here;
    /// otherwise each frame goes to `free` now.
    pub fn hold(
        &mut self,
        start: u64,
        end: u64,
        frames: impl IntoIterator<Item = PhysFrame>,
        free: impl FnMut(PhysFrame),
    ) {
        #[cfg(feature = "lazy-latr")]
        on::hold(&mut self.held, start, end, frames, free);
        #[cfg(not(feature = "lazy-latr"))]
        {
            let _ = (start, end);
            frames.into_iter().for_each(free);
        }
    }

    /// Gives back (to `free`) the frames of every range past its time
    /// bound, and of those `needed` picks, after making sure no CPU can
    /// still reach them (cross-calls to any still pending).
    pub fn release(&mut self, needed: Needed, free: impl FnMut(PhysFrame)) {
        #[cfg(feature = "lazy-latr")]
        on::release(&mut self.held, needed, free);
        #[cfg(not(feature = "lazy-latr"))]
        let _ = (needed, free);
    }

    /// The end of a quarantined range that overlaps `[start, end)`, if
    /// any: a new mapping moves past it (LATR delays the reuse of unmapped
    /// addresses too).
    pub fn clash(&self, start: u64, end: u64) -> Option<u64> {
        #[cfg(feature = "lazy-latr")]
        return self
            .held
            .iter()
            .find(|h| h.start < end && start < h.end)
            .map(|h| h.end);
        #[cfg(not(feature = "lazy-latr"))]
        {
            let _ = (start, end);
            None
        }
    }
}

#[cfg(feature = "lazy-latr")]
mod on {
    use alloc::vec::Vec;
    use lab_core::cpuset::CpuSet;
    use lab_core::protocol::latr::{Latr, Marks, WORDS};
    use x86_64::registers::control::Cr3;
    use x86_64::structures::paging::PhysFrame;

    use super::Needed;
    use crate::arch::{self, apic, tsc};
    use crate::mm::pmap::Pmap;
    use crate::mm::shootdown::{invalidate_local, Request, ThisCpu};
    use crate::stats::{self, Event, MAX_CPUS};

    /// Records a CPU's ring holds (LATR's: 256, `LAZY_TLB_NUM_ENTRIES`; 64
    /// here, as many as the kernel has CPUs at most, to keep the rings'
    /// static memory at 64 x 64 records).
    pub(super) const RING: usize = 64;

    /// Scheduler ticks a quarantined range waits before its frames and
    /// addresses go back (LATR: two of its reclaim thread's passes).
    pub(super) const BOUND_TICKS: u64 = 2;

    static LATR: Latr<RING, MAX_CPUS> = Latr::new();

    /// A quarantined range: its frames, its records, when it was unmapped.
    pub(super) struct Held {
        pub(super) start: u64,
        pub(super) end: u64,
        frames: Vec<PhysFrame>,
        marks: Marks,
        since: u64,
    }

    /// A record's words: the request as the protocols publish it
    /// (Request::encode), and the address space it is for (its PML4's
    /// physical address, what CR3 holds while it is loaded). A DragonFly
    /// list, whose addresses live in its initiator's buffer only until its
    /// wait, is kept as a full flush.
    fn pack(req: Request, pm: Option<&Pmap>) -> [u64; WORDS] {
        let req = match req {
            Request::List { .. } => Request::Tlb,
            req => req,
        };
        let (kind, a1, a2) = req.encode();
        let space = pm.map_or(0, |pm| pm.pm_pml4.start_address().as_u64());
        [kind, a1, a2, space]
    }

    fn unpack(words: [u64; WORDS]) -> Request {
        Request::decode(words[0], words[1], words[2])
    }

    pub(super) fn leave_for_sweep(req: Request, targets: CpuSet, pm: Option<&Pmap>) -> CpuSet {
        let me = arch::cpu_id();
        let targets = targets.intersect(arch::smp::online()).without(me);
        if targets.is_empty() {
            return targets;
        }
        match LATR.save(&ThisCpu, targets.bits(), pack(req, pm)) {
            Some(_) => {
                stats::count(Event::LatrQueued);
                stats::add(Event::LatrDeferred, targets.len() as u64);
                CpuSet::EMPTY
            }
            None => {
                stats::count(Event::LatrRingFull);
                targets
            }
        }
    }

    pub(super) fn sweep_here() {
        let loaded = Cr3::read().0.start_address().as_u64();
        let mut skipped = 0;
        let done = LATR.sweep(&ThisCpu, |words| {
            // Linux's flush_tlb_func: a record for an address space not
            // loaded here needs nothing, as loading another CR3 (no PCID
            // on `fixed`) dropped its entries.
            if words[3] == loaded {
                invalidate_local(unpack(words));
            } else {
                skipped += 1;
            }
        });
        stats::count(Event::LatrSweeps);
        stats::add(Event::LatrScanned, done.scanned);
        if done.applied != 0 {
            stats::add(Event::LatrApplied, done.applied);
            stats::add(Event::LatrAppliedNotLoaded, skipped);
        }
    }

    pub(super) fn hold(
        held: &mut Vec<Held>,
        start: u64,
        end: u64,
        frames: impl IntoIterator<Item = PhysFrame>,
        free: impl FnMut(PhysFrame),
    ) {
        let marks = LATR.take_marks(&ThisCpu);
        if marks.is_empty() {
            frames.into_iter().for_each(free);
            return;
        }
        // Mutant `mutant-latr-early-free`: the range is kept out of reuse
        // but the frames go back at once, so a frame is reused while
        // another CPU still reads it through its stale entry.
        let frames: Vec<PhysFrame> = if cfg!(feature = "mutant-latr-early-free") {
            frames.into_iter().for_each(free);
            Vec::new()
        } else {
            frames.into_iter().collect()
        };
        stats::count(Event::LatrQuarantines);
        stats::add(Event::LatrQuarantinedPages, frames.len() as u64);
        held.push(Held {
            start,
            end,
            frames,
            marks,
            since: tsc::now(),
        });
    }

    /// TSC cycles of [`BOUND_TICKS`] scheduler ticks.
    fn bound() -> u64 {
        BOUND_TICKS * tsc::hz() / apic::TIMER_HZ
    }

    pub(super) fn release(held: &mut Vec<Held>, needed: Needed, mut free: impl FnMut(PhysFrame)) {
        if held.is_empty() {
            return;
        }
        let now = tsc::now();
        let bound = bound();
        held.retain_mut(|h| {
            let aged = now.saturating_sub(h.since) >= bound;
            let needed_now = match needed {
                Needed::Nothing => false,
                Needed::Range(s, e) => h.start < e && s < h.end,
                Needed::All => true,
            };
            if !aged && !needed_now {
                return true;
            }
            let calls = settle(h.marks);
            stats::add(
                if aged {
                    Event::LatrFallbackIpis
                } else {
                    Event::LatrSettleIpis
                },
                calls,
            );
            let pages = h.frames.len() as u64;
            stats::add(Event::LatrReleasedPages, pages);
            stats::add(
                Event::LatrHeldPageUs,
                pages * tsc::cycles_to_ns(now.saturating_sub(h.since)) / 1000,
            );
            if !aged {
                stats::add(Event::LatrReleasedEarlyPages, pages);
            }
            h.frames.drain(..).for_each(&mut free);
            false
        });
    }

    /// Makes every CPU still pending on `marks` sweep now: a cross-call
    /// (whose handler sweeps), or this CPU's own sweep. How many
    /// cross-calls it sent. Interrupts on.
    fn settle(marks: Marks) -> u64 {
        let me = arch::cpu_id();
        let mut sent = 0;
        LATR.settle(&ThisCpu, marks, |t| {
            if t == me {
                x86_64::instructions::interrupts::without_interrupts(sweep_here);
            } else if let Err(e) = arch::ipi::sync(t) {
                panic!("lazy-latr: settling a quarantine: {e}");
            } else {
                sent += 1;
            }
        });
        sent
    }
}
