//! The lazy-TLB handshake's core (Linux's lazy TLB, arch/x86/mm/tlb.c;
//! why and how the kernel uses it is in kernel/src/mm/lazy_tlb.rs).
//!
//! A CPU that switches to a thread without user mappings keeps the user
//! pmap loaded and says so ([`LazyCpu::enter`]); a shootdown of that pmap
//! may then skip it, leaving a note to flush ([`skip`]), unless the
//! operation frees page-table pages, which the lazy CPU's paging-structure
//! caches may still walk speculatively (Intel SDM vol. 3, 4.10.3). The CPU
//! clears its lazy mark before it takes the note ([`LazyCpu::leave`]).
//!
//! The skip and the return race; both sides store, then load, all SeqCst,
//! so at least one sees the other: either the initiator sees the CPU gone
//! and interrupts it after all, or the CPU sees the note and flushes.

use super::sync::{AtomicBool, AtomicU64, Ordering};
use super::{Cpu, Window};

/// One CPU's lazy state: the pmap it holds lazily (a token, 0 = none),
/// written only by that CPU with interrupts off, and the note initiators
/// leave it.
pub struct LazyCpu {
    held: AtomicU64,
    need_flush: AtomicBool,
}

/// Which shootdowns may skip a lazy CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipRule {
    /// Linux's since 4.19: not those that free page-table pages.
    UnlessTablesFreed,
    /// Mutant `mutant-lazy-skip-freed-tables`: every one.
    Always,
}

impl LazyCpu {
    #[cfg(not(loom))]
    pub const fn new() -> LazyCpu {
        LazyCpu {
            held: AtomicU64::new(0),
            need_flush: AtomicBool::new(false),
        }
    }

    #[cfg(loom)]
    pub fn new() -> LazyCpu {
        LazyCpu {
            held: AtomicU64::new(0),
            need_flush: AtomicBool::new(false),
        }
    }

    /// The pmap this CPU holds lazily, or 0.
    pub fn held(&self) -> u64 {
        self.held.load(Ordering::SeqCst)
    }

    /// This CPU (interrupts off) switches to a thread without user
    /// mappings and keeps `pm` loaded.
    pub fn enter(&self, pm: u64) {
        self.held.store(pm, Ordering::SeqCst);
    }

    /// This CPU (interrupts off) leaves lazy mode: true if a shootdown
    /// skipped it meanwhile, so what it kept must be flushed before use.
    pub fn leave(&self) -> bool {
        self.held.store(0, Ordering::SeqCst);
        self.need_flush.swap(false, Ordering::SeqCst)
    }
}

impl Default for LazyCpu {
    fn default() -> LazyCpu {
        LazyCpu::new()
    }
}

/// Whether a shootdown of `pm` from `cpu` may skip the CPU whose lazy
/// state is `target` (and then leaves it the note). `frees_tables`: the
/// operation frees page-table pages after its shootdown.
pub fn skip(cpu: &impl Cpu, target: &LazyCpu, pm: u64, frees_tables: bool, rule: SkipRule) -> bool {
    if frees_tables && rule == SkipRule::UnlessTablesFreed {
        return false;
    }
    if target.held() != pm {
        return false;
    }
    target.need_flush.store(true, Ordering::SeqCst);
    cpu.interruptible(Window::LazySkip);
    target.held() == pm
}
