//! The lazy-TLB core (Linux's lazy TLB, arch/x86/mm/tlb.c since 4.20; why
//! and how the kernel uses it is in kernel/src/mm/lazy_tlb.rs).
//!
//! A CPU that switches to a thread without user mappings keeps the user
//! pmap loaded and says so ([`LazyCpu::enter`], Linux's enter_lazy_tlb
//! setting `is_lazy`). A shootdown of that pmap may skip it ([`skip`],
//! Linux's should_flush_tlb), unless the operation frees page-table
//! pages, which the lazy CPU's paging-structure caches may still walk
//! speculatively (Intel SDM vol. 3, 4.10.3; Linux's `freed_tables`).
//!
//! # Generations, not notes
//!
//! A skipped CPU is told nothing. As in Linux, every shootdown of a user
//! pmap first bumps the pmap's generation ([`TlbGen`], Linux's
//! `mm->context.tlb_gen`, the same core the `pcid` variant uses), and
//! each CPU records the generation its TLB is current to for the pmap it
//! has loaded (Linux's `cpu_tlbstate.ctxs[asid].tlb_gen`; without PCIDs
//! there is one such context per CPU): read when the pmap is loaded
//! ([`LazyCpu::loaded`]) and advanced by the flushes that cover every
//! change up to a generation ([`LazyCpu::flushed_all`],
//! [`LazyCpu::flushed_next`]). On its return ([`LazyCpu::leave`]) a lazy
//! CPU compares the two and flushes only if it is behind, as
//! switch_mm_irqs_off does when `prev == next` and the CPU was lazy.
//!
//! # Why the skip is safe
//!
//! The initiator bumps the generation (SeqCst, then a fence), then reads
//! the target's lazy mark; the returning CPU clears its mark (SeqCst),
//! fences, then reads the generation. So one sees the other: either the
//! initiator sees the mark cleared and interrupts the CPU, or the CPU
//! sees the new generation and flushes. (Linux: the atomic increment in
//! inc_mm_tlb_gen against the smp_mb() in switch_mm_irqs_off.)
//!
//! # What claims a generation
//!
//! Linux's flush_tlb_func claims the pmap's latest generation after a
//! full flush, and after a partial one only if the request was made
//! exactly one generation past the CPU's and nothing is outstanding
//! beyond it. The kernel's IPI requests do not carry their generation
//! (kernel/src/mm/pcid.rs says why), so here a target's partial flush
//! claims nothing; only full flushes and the initiator's own invalidation
//! (which knows the generation it made) advance a CPU. A CPU that took a
//! partial IPI while running the pmap may therefore flush once more on
//! a lazy return than Linux would; never less.

use super::pcid::TlbGen;
use super::sync::{fence, AtomicU64, Ordering};
use super::{Cpu, Window};

/// One CPU's lazy-TLB state: the pmap it holds lazily (a token, 0 =
/// none) and the generation of its loaded user pmap its TLB is current
/// to. Written only by that CPU with interrupts off; the mark is read by
/// initiators.
pub struct LazyCpu {
    held: AtomicU64,
    gen: AtomicU64,
}

/// Which shootdowns may skip a lazy CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipRule {
    /// Linux's since 4.20: not those that free page-table pages.
    UnlessTablesFreed,
    /// Mutant `mutant-lazy-skip-freed-tables`: every one.
    Always,
}

/// What a lazy CPU returning to the pmap it kept must do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Return {
    /// Its TLB is current to the pmap's generation: nothing.
    Kept,
    /// A shootdown it did not take happened meanwhile: flush everything
    /// (the generation is already recorded, read before the flush).
    Flush,
}

impl LazyCpu {
    #[cfg(not(loom))]
    pub const fn new() -> LazyCpu {
        LazyCpu {
            held: AtomicU64::new(0),
            gen: AtomicU64::new(0),
        }
    }

    #[cfg(loom)]
    pub fn new() -> LazyCpu {
        LazyCpu {
            held: AtomicU64::new(0),
            gen: AtomicU64::new(0),
        }
    }

    /// The pmap this CPU holds lazily, or 0.
    pub fn held(&self) -> u64 {
        self.held.load(Ordering::SeqCst)
    }

    /// This CPU (interrupts off) has loaded a user pmap whose generation
    /// is `tlb_gen`, after setting its bit in the pmap's CPU set: its TLB
    /// holds nothing older than the generation read now. (A shootdown
    /// bumping it later reads the bit and interrupts this CPU, which is
    /// not lazy.)
    pub fn loaded(&self, tlb_gen: &TlbGen) {
        self.gen.store(tlb_gen.read(), Ordering::Relaxed);
    }

    /// This CPU (interrupts off) switches to a thread without user
    /// mappings and keeps `pm` loaded.
    pub fn enter(&self, pm: u64) {
        self.held.store(pm, Ordering::SeqCst);
    }

    /// This CPU (interrupts off) stops holding its pmap lazily without
    /// returning to it (it loads other tables, which flush).
    pub fn drop_lazy(&self) {
        self.held.store(0, Ordering::SeqCst);
    }

    /// This CPU (interrupts off) returns to the pmap it kept, whose
    /// generation is `tlb_gen`: clears its mark, then reads the
    /// generation (module doc), and says whether to flush.
    pub fn leave(&self, tlb_gen: &TlbGen) -> Return {
        self.held.store(0, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        let now = tlb_gen.read();
        if self.gen.load(Ordering::Relaxed) == now {
            return Return::Kept;
        }
        self.gen.store(now, Ordering::Relaxed);
        Return::Flush
    }

    /// This CPU (interrupts off) is about to flush its whole TLB with the
    /// pmap of generation `tlb_gen` loaded: after the flush it is current
    /// to the generation read now.
    pub fn flushed_all(&self, tlb_gen: &TlbGen) {
        self.gen.store(tlb_gen.read(), Ordering::Relaxed);
    }

    /// This CPU (interrupts off) has invalidated what its own shootdown,
    /// which made generation `made`, changed: that brings it to `made`
    /// only if it was current to the generation before (Linux's rule 1 in
    /// flush_tlb_func); otherwise some older change may still be cached,
    /// and the CPU stays where it was.
    pub fn flushed_next(&self, made: u64) {
        if self.gen.load(Ordering::Relaxed) + 1 == made {
            self.gen.store(made, Ordering::Relaxed);
        }
    }
}

impl Default for LazyCpu {
    fn default() -> LazyCpu {
        LazyCpu::new()
    }
}

/// Whether a shootdown of `pm` from `cpu`, which has bumped `pm`'s
/// generation already, may skip the CPU whose lazy state is `target`.
/// `frees_tables`: the operation frees page-table pages after its
/// shootdown.
pub fn skip(cpu: &impl Cpu, target: &LazyCpu, pm: u64, frees_tables: bool, rule: SkipRule) -> bool {
    if frees_tables && rule == SkipRule::UnlessTablesFreed {
        return false;
    }
    cpu.interruptible(Window::LazySkip);
    target.held() == pm
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    struct Me;
    impl Cpu for Me {
        fn id(&self) -> u32 {
            0
        }
        fn interruptible(&self, _at: Window) {}
        fn without_interrupts<R>(&self, f: impl FnOnce() -> R) -> R {
            f()
        }
        fn spin(&self) {}
    }

    #[test]
    fn a_return_flushes_only_when_behind() {
        let (cpu, gen) = (LazyCpu::new(), TlbGen::new());
        cpu.loaded(&gen);
        cpu.enter(7);
        assert_eq!(cpu.leave(&gen), Return::Kept);
        cpu.enter(7);
        assert!(skip(&Me, &cpu, 7, false, SkipRule::UnlessTablesFreed));
        gen.bump();
        assert_eq!(cpu.leave(&gen), Return::Flush);
        // The flush caught it up: the next return keeps.
        cpu.enter(7);
        assert_eq!(cpu.leave(&gen), Return::Kept);
    }

    #[test]
    fn own_invalidations_claim_only_the_next_generation() {
        let (cpu, gen) = (LazyCpu::new(), TlbGen::new());
        cpu.loaded(&gen);
        let made = gen.bump();
        cpu.flushed_next(made);
        cpu.enter(7);
        assert_eq!(cpu.leave(&gen), Return::Kept);
        // Two changes, the first taken by a partial IPI (no claim): the
        // second's own invalidation does not claim past the first.
        gen.bump();
        let second = gen.bump();
        cpu.flushed_next(second);
        cpu.enter(7);
        assert_eq!(cpu.leave(&gen), Return::Flush);
    }

    #[test]
    fn freed_tables_are_never_skipped_but_by_the_mutant() {
        let cpu = LazyCpu::new();
        cpu.enter(7);
        assert!(!skip(&Me, &cpu, 7, true, SkipRule::UnlessTablesFreed));
        assert!(skip(&Me, &cpu, 7, true, SkipRule::Always));
        assert!(!skip(&Me, &cpu, 8, false, SkipRule::UnlessTablesFreed));
    }
}
