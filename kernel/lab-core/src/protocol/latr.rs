//! LATR's core: each CPU's ring of lazy invalidation records, which every
//! other CPU sweeps at its tick (Kumar et al., "LATR: Lazy Translation
//! Coherence", ASPLOS 2018; their Linux 4.10 patch, sslab-gatech/latr,
//! arch/x86/mm/tlb.c `native_flush_save_state` and
//! `native_flush_saved_states`). Why munmap may be lazy, and the contract
//! it keeps (a stale entry may outlive munmap, but only ever reaches the
//! frame it always reached, unchanged), is in kernel/src/mm/latr.rs, the
//! kernel's glue (requests, interrupts, statistics, cross-calls, the
//! quarantine and its time bound).
//!
//! # Pull, as LATR builds it
//!
//! An initiator writes one record into its *own* ring (the request and the
//! set of CPUs that must apply it) and goes on; it interrupts nobody and
//! takes no lock. Every CPU, at its tick and its context switch, reads
//! every other CPU's ring and applies the records that name it, clearing
//! its bit ([`Latr::sweep`]). So the initiator writes one line of its own,
//! and the cost moves to the readers: each sweep reads every live record of
//! every ring (counted as `scanned`), whether or not it names the reader.
//! (The lab's earlier design pushed a record into each target's queue
//! under the target's lock: the initiator wrote a line per target, a
//! reader read its own queue only.)
//!
//! # Shared state (per CPU's [`Ring`])
//!
//! - `slots[p % N]`: record `p` (positions count from 1): its words, its
//!   `pending` CPUs (those yet to apply it; 0 once all have, when the slot
//!   is free again) and `pos`, the position last written there, which
//!   tells a later reader of a mark whether the slot has been reused.
//!   Written by the owner (words, `pos`, then `pending`, release); `pending`
//!   cleared bit by bit by the readers (release, after their invalidation).
//! - `start`, `end`: records before `start` are retired, `end` records
//!   were ever saved. Written by the owner only; readers scan `[start,
//!   end)`. A full ring (N live records; LATR's holds 256) refuses a
//!   record, and the caller shoots its targets down with an IPI, as LATR's
//!   `native_flush_tlb_others` falls back.
//! - `taken`: the owner's last position handed out as a mark
//!   ([`Latr::take_marks`]); a munmap's marks are the positions its
//!   shootdowns saved.
//!
//! # Why a mark's answer is safe
//!
//! A reader invalidates, then clears its bit (release). [`Latr::retired`]
//! reads `pos` and then `pending` (acquire): `pending == 0` with the
//! record still in its slot means every target dropped what it named; a
//! slot holding a later record means this one was retired first (the
//! owner reuses a slot only after reading its `pending` 0, acquire, and
//! writes the new `pos` with release, so the chain of happens-before
//! reaches the checker). Anything else is answered "not yet", which only
//! makes a quarantine wait longer. A reader that sees its bit in
//! `pending` (acquire) reads the words the owner wrote before it; the
//! owner cannot reuse the slot while that bit is set.
//!
//! LATR itself frees a lazily unmapped range after a time bound, without
//! asking; the kernel does the same and, when the bound has passed,
//! checks with [`Latr::retired`] and cross-calls any CPU still pending
//! (LATR's background fallback IPI, `background_update_saved_states`), so
//! the exactness is a checked invariant rather than a hope.

use crate::cpuset::MAX_CPUS;

use super::sync::{AtomicU64, Ordering};
use super::{Cpu, Window};

/// Words of a record: what the kernel needs to apply it (kind, range,
/// address space).
pub const WORDS: usize = 4;

/// One record of a ring.
pub struct Slot {
    /// The position of the record last saved here (0: none yet).
    pos: AtomicU64,
    /// CPUs that have yet to apply it (bit t: CPU t); 0: retired, free.
    pending: AtomicU64,
    words: [AtomicU64; WORDS],
}

/// One CPU's ring of `N` records.
pub struct Ring<const N: usize> {
    slots: [Slot; N],
    start: AtomicU64,
    end: AtomicU64,
    taken: AtomicU64,
}

#[cfg(not(loom))]
const fn new_slot() -> Slot {
    Slot {
        pos: AtomicU64::new(0),
        pending: AtomicU64::new(0),
        words: [const { AtomicU64::new(0) }; WORDS],
    }
}

#[cfg(loom)]
fn new_slot() -> Slot {
    Slot {
        pos: AtomicU64::new(0),
        pending: AtomicU64::new(0),
        words: core::array::from_fn(|_| AtomicU64::new(0)),
    }
}

/// The records of a munmap: positions `from + 1 ..= to` of CPU `owner`'s
/// ring (empty if `from == to`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Marks {
    pub owner: u32,
    pub from: u64,
    pub to: u64,
}

impl Marks {
    pub fn is_empty(&self) -> bool {
        self.from == self.to
    }

    /// How many records.
    pub fn len(&self) -> u64 {
        self.to - self.from
    }
}

/// What one sweep did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sweep {
    /// Records read (every live record of every other ring).
    pub scanned: u64,
    /// Of which named this CPU and were applied.
    pub applied: u64,
}

/// The rings of up to `CPUS` CPUs, `N` records each.
pub struct Latr<const N: usize, const CPUS: usize = MAX_CPUS> {
    rings: [Ring<N>; CPUS],
}

impl<const N: usize, const CPUS: usize> Default for Latr<N, CPUS> {
    fn default() -> Latr<N, CPUS> {
        Latr::new()
    }
}

impl<const N: usize, const CPUS: usize> Latr<N, CPUS> {
    /// Every ring empty.
    #[cfg(not(loom))]
    pub const fn new() -> Latr<N, CPUS> {
        Latr {
            rings: [const {
                Ring {
                    slots: [const { new_slot() }; N],
                    start: AtomicU64::new(0),
                    end: AtomicU64::new(0),
                    taken: AtomicU64::new(0),
                }
            }; CPUS],
        }
    }

    #[cfg(loom)]
    pub fn new() -> Latr<N, CPUS> {
        Latr {
            rings: core::array::from_fn(|_| Ring {
                slots: core::array::from_fn(|_| new_slot()),
                start: AtomicU64::new(0),
                end: AtomicU64::new(0),
                taken: AtomicU64::new(0),
            }),
        }
    }

    fn slot(&self, owner: u32, pos: u64) -> &Slot {
        &self.rings[owner as usize].slots[((pos - 1) % N as u64) as usize]
    }

    /// Moves `cpu`'s `start` past the records every target has applied.
    /// The owner only.
    fn reclaim(&self, me: u32) {
        let ring = &self.rings[me as usize];
        let end = ring.end.load(Ordering::Relaxed);
        let mut start = ring.start.load(Ordering::Relaxed);
        while start < end && self.slot(me, start + 1).pending.load(Ordering::Acquire) == 0 {
            start += 1;
        }
        ring.start.store(start, Ordering::Release);
    }

    /// Saves a record of `words` in `cpu`'s own ring for the CPUs in
    /// `targets` (a bit set, `cpu` not in it): its position, or None if
    /// the ring is full (the caller then shoots `targets` down with IPIs).
    pub fn save(&self, cpu: &impl Cpu, targets: u64, words: [u64; WORDS]) -> Option<u64> {
        let me = cpu.id();
        debug_assert!(targets & (1 << me) == 0, "a CPU saved a record for itself");
        let ring = &self.rings[me as usize];
        self.reclaim(me);
        let end = ring.end.load(Ordering::Relaxed);
        if end - ring.start.load(Ordering::Relaxed) == N as u64 {
            return None;
        }
        let pos = end + 1;
        let slot = self.slot(me, pos);
        for (w, v) in slot.words.iter().zip(words) {
            w.store(v, Ordering::Relaxed);
        }
        slot.pos.store(pos, Ordering::Release);
        slot.pending.store(targets, Ordering::Release);
        cpu.interruptible(Window::LatrQueued);
        ring.end.store(pos, Ordering::Release);
        Some(pos)
    }

    /// `cpu`'s sweep (its tick, its context switch, a cross-call; LATR's
    /// `native_flush_saved_states`): every other ring's live records read,
    /// `apply(words)` for each that names `cpu`, then its bit cleared.
    /// With interrupts off.
    pub fn sweep(&self, cpu: &impl Cpu, mut apply: impl FnMut([u64; WORDS])) -> Sweep {
        let me = cpu.id();
        let bit = 1u64 << me;
        let mut done = Sweep::default();
        for owner in (0..CPUS as u32).filter(|&o| o != me) {
            let ring = &self.rings[owner as usize];
            let end = ring.end.load(Ordering::Acquire);
            let start = ring
                .start
                .load(Ordering::Acquire)
                .max(end.saturating_sub(N as u64));
            for pos in start + 1..=end {
                let slot = self.slot(owner, pos);
                done.scanned += 1;
                if slot.pending.load(Ordering::Acquire) & bit == 0 {
                    continue;
                }
                apply(core::array::from_fn(|i| {
                    slot.words[i].load(Ordering::Relaxed)
                }));
                cpu.interruptible(Window::LatrApplied);
                slot.pending.fetch_and(!bit, Ordering::Release);
                done.applied += 1;
            }
        }
        done
    }

    /// Takes `cpu`'s marks: the records it saved since the last call.
    pub fn take_marks(&self, cpu: &impl Cpu) -> Marks {
        let me = cpu.id();
        let ring = &self.rings[me as usize];
        let to = ring.end.load(Ordering::Relaxed);
        let from = ring.taken.swap(to, Ordering::Relaxed);
        Marks {
            owner: me,
            from,
            to,
        }
    }

    /// The CPUs that have yet to apply record `pos` of `owner`'s ring
    /// (empty once it is retired; possibly more than its own while the
    /// slot is being reused, which only makes the caller wait).
    pub fn pending(&self, owner: u32, pos: u64) -> u64 {
        let slot = self.slot(owner, pos);
        if slot.pos.load(Ordering::Acquire) != pos {
            return 0; // reused: retired before
        }
        slot.pending.load(Ordering::Acquire)
    }

    /// Whether every target of record `pos` of `owner`'s ring applied it.
    pub fn retired(&self, owner: u32, pos: u64) -> bool {
        self.pending(owner, pos) == 0
    }

    /// True once every record of `marks` is retired.
    pub fn settled(&self, marks: Marks) -> bool {
        (marks.from + 1..=marks.to).all(|p| self.retired(marks.owner, p))
    }

    /// Makes every CPU still pending on a record of `marks` sweep now:
    /// `cross_call(t)` returns once t has swept (the kernel's cross-call
    /// or, for this CPU, the sweep itself with interrupts off; the caller
    /// counts them). For a quarantine whose frames or addresses are
    /// needed now, or whose time bound has passed while a record is still
    /// pending (LATR's fallback IPI). Interrupts on.
    pub fn settle(&self, cpu: &impl Cpu, marks: Marks, mut cross_call: impl FnMut(u32)) {
        for pos in marks.from + 1..=marks.to {
            loop {
                cpu.interruptible(Window::LatrSettle);
                let pending = self.pending(marks.owner, pos);
                if pending == 0 {
                    break;
                }
                let t = pending.trailing_zeros();
                cross_call(t);
                assert!(
                    self.pending(marks.owner, pos) & (1 << t) == 0,
                    "lazy-latr: cpu {t} did not apply record {pos} of cpu {} on a cross-call",
                    marks.owner
                );
            }
        }
    }
}
