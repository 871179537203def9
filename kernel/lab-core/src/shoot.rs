//! The pure rules of TLB shootdowns: who must be interrupted, and how a
//! range is invalidated.
//!
//! These are the decisions the seeds are about (seed 000: a pmap's
//! `pm_cpus` decides who gets an IPI, so a bitmap left at the pool's
//! 0xdeadbeef fill interrupts CPUs that never ran the process), kept apart
//! from the hardware so they are tested on the host.

use crate::cpuset::CpuSet;
use crate::physmem::PAGE_SIZE;

/// The CPUs a shootdown must interrupt: every online CPU other than the
/// caller (`me`) on which the pmap may be cached, that is all of them for
/// the kernel pmap (its mappings are in every address space) and those in
/// `pm_cpus` for a user pmap. Bits of `pm_cpus` for CPUs that are not
/// online are ignored (OpenBSD skips CPUs without CPUF_RUNNING).
pub fn shoot_targets(is_kernel_pmap: bool, pm_cpus: CpuSet, online: CpuSet, me: u32) -> CpuSet {
    let cached = if is_kernel_pmap {
        online
    } else {
        pm_cpus.intersect(online)
    };
    cached.without(me)
}

/// Above this many pages a range invalidation becomes a full TLB flush
/// (Linux's `tlb_single_page_flush_ceiling` is 33 pages; OpenBSD 2010's
/// pmap_remove and pmap_write_protect switch to pmap_tlb_shoottlb above 32).
pub const RANGE_CEILING_PAGES: u64 = 32;

/// How a CPU invalidates the range `[sva, eva)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flush {
    /// `count` single-page invalidations (invlpg) from `first` up.
    Pages { first: u64, count: u64 },
    /// One full flush (CR3 reload): cheaper than that many invlpgs.
    All,
}

impl Flush {
    /// The page addresses to invalidate (none for [`Flush::All`]).
    pub fn pages(self) -> impl Iterator<Item = u64> {
        let (first, count) = match self {
            Flush::Pages { first, count } => (first, count),
            Flush::All => (0, 0),
        };
        (0..count).map(move |i| first + i * PAGE_SIZE)
    }
}

/// Plans the invalidation of `[sva, eva)`: the pages it touches (`sva`
/// rounded down, `eva` rounded up), or a full flush if there are more than
/// [`RANGE_CEILING_PAGES`]. An empty or inverted range invalidates nothing.
pub fn plan_range(sva: u64, eva: u64) -> Flush {
    let first = sva & !(PAGE_SIZE - 1);
    if eva <= first {
        return Flush::Pages { first, count: 0 };
    }
    let count = (eva - first).div_ceil(PAGE_SIZE);
    if count > RANGE_CEILING_PAGES {
        Flush::All
    } else {
        Flush::Pages { first, count }
    }
}

/// OpenBSD 2010's choice in pmap_remove and pmap_write_protect: a user pmap
/// range of more than 32 pages is shot down with pmap_tlb_shoottlb (every
/// online CPU, whatever `pm_cpus` says), anything else with shootrange.
pub fn range_shoots_all(sva: u64, eva: u64, is_kernel_pmap: bool) -> bool {
    !is_kernel_pmap && eva.saturating_sub(sva) > RANGE_CEILING_PAGES * PAGE_SIZE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_pmap_targets_its_cpus_but_not_me() {
        let online = CpuSet::first(4);
        let cpus = CpuSet::single(0).with(2);
        assert_eq!(shoot_targets(false, cpus, online, 0), CpuSet::single(2));
        assert_eq!(shoot_targets(false, cpus, online, 1), cpus);
        assert_eq!(
            shoot_targets(false, CpuSet::single(3), online, 3),
            CpuSet::EMPTY
        );
        assert_eq!(
            shoot_targets(false, CpuSet::EMPTY, online, 0),
            CpuSet::EMPTY
        );
    }

    #[test]
    fn kernel_pmap_targets_every_other_online_cpu() {
        let online = CpuSet::first(4);
        assert_eq!(
            shoot_targets(true, CpuSet::EMPTY, online, 1),
            CpuSet::single(0).with(2).with(3)
        );
        assert_eq!(
            shoot_targets(true, CpuSet::EMPTY, CpuSet::single(0), 0),
            CpuSet::EMPTY
        );
    }

    #[test]
    fn deadbeef_pm_cpus_interrupts_cpus_that_never_ran_it() {
        // Seed 000: pm_cpus left at the pool fill. 0xdeadbeef has bits
        // 0, 1, 2, 3, 5, 6, 7, ... set; on a 4-CPU machine every other CPU
        // is a target although the pmap never ran anywhere.
        let poisoned = CpuSet(0xdead_beef_dead_beef);
        let online = CpuSet::first(4);
        assert_eq!(
            shoot_targets(false, poisoned, online, 0),
            CpuSet::single(1).with(2).with(3)
        );
        // Offline CPUs in the fill are skipped.
        assert_eq!(
            shoot_targets(false, poisoned, CpuSet::first(2), 0),
            CpuSet::single(1)
        );
    }

    #[test]
    fn range_plans() {
        assert_eq!(
            plan_range(0x1000, 0x2000),
            Flush::Pages {
                first: 0x1000,
                count: 1
            }
        );
        assert_eq!(
            plan_range(0x1fff, 0x2001),
            Flush::Pages {
                first: 0x1000,
                count: 2
            }
        );
        assert_eq!(
            plan_range(0x5000, 0x5000),
            Flush::Pages {
                first: 0x5000,
                count: 0
            }
        );
        assert_eq!(
            plan_range(0x5000, 0x4000),
            Flush::Pages {
                first: 0x5000,
                count: 0
            }
        );
        assert_eq!(
            plan_range(0, 32 * PAGE_SIZE),
            Flush::Pages {
                first: 0,
                count: 32
            }
        );
        assert_eq!(plan_range(0, 33 * PAGE_SIZE), Flush::All);
        assert_eq!(
            plan_range(0x3000, 0x6000).pages().collect::<Vec<_>>(),
            vec![0x3000, 0x4000, 0x5000]
        );
        assert_eq!(Flush::All.pages().count(), 0);
    }

    #[test]
    fn shootall_only_for_big_user_ranges() {
        assert!(!range_shoots_all(0, 32 * PAGE_SIZE, false));
        assert!(range_shoots_all(0, 33 * PAGE_SIZE, false));
        assert!(!range_shoots_all(0, 1 << 30, true));
        assert!(!range_shoots_all(5, 1, false));
    }
}
