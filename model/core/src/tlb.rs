//! A per-CPU data TLB, and the stale-translation detector built on it.
//!
//! Each CPU has one set-associative array per page size (4 KiB and 2 MiB,
//! shapes from the profile), LRU within a set, indexed by the virtual page
//! number modulo the number of sets. Which size (and whether global) a
//! virtual address is mapped with comes from a [`Layout`], a list of
//! address ranges; the default is the pmaplab kernel's layout
//! (kernel/src/memlayout.rs), in which nothing is global (CR4.PGE is off).
//!
//! - A **miss** fills the entry (evicting the set's least recently used
//!   one); the caller charges a page walk. A miss on a page that an INVLPG
//!   or a flush removed from this CPU's TLB since its last fill is also a
//!   **refill**.
//! - A **hit** whose cached frame differs from the frame QEMU translated
//!   the access to means real hardware would still have used the *old*
//!   frame: the old entry is kept and the page becomes a **suspect** on
//!   this CPU. INVLPG of the page, a flush, or the entry's eviction clears
//!   it (the CPU dropped the old translation). When a shootdown returns
//!   (a `ShootEnd` mark on any CPU, [`Tlb::judge`]) every outstanding
//!   suspect becomes a **verdict**: from then on every access that still
//!   hits the old entry with a different frame counts as a stale load or
//!   store.
//! - INVLPG of `va` removes the 4 KiB entry of `va` and any 2 MiB entry
//!   covering it, global or not. A flush removes every entry, or every
//!   non-global one (a CR3 write).
//!
//! Assumptions: one unified data TLB per page size (no L1/L2 split, no
//! separate instruction TLB: instruction fetches are not modeled), no
//! PCIDs, no paging-structure caches (a walk costs a flat page_walk), and
//! an access spanning two pages looks up only its first page. The
//! verdict rule is deliberately coarse: a `ShootEnd` of *any* shootdown
//! judges every outstanding suspect, so a remap whose own shootdown is
//! still in flight can be judged early by a concurrent unrelated one.

use crate::profile::TlbShape;
use rustc_hash::{FxHashMap, FxHashSet};

/// A page size the TLB caches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PageSize {
    Size4K,
    Size2M,
}

impl PageSize {
    pub const fn shift(self) -> u32 {
        match self {
            PageSize::Size4K => 12,
            PageSize::Size2M => 21,
        }
    }
}

/// One range of the virtual address space and how it is mapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub start: u64,
    /// Exclusive.
    pub end: u64,
    pub size: PageSize,
    pub global: bool,
}

/// How each virtual address is mapped: the first [`Region`] containing it,
/// else 4 KiB pages, not global.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub regions: Vec<Region>,
}

impl Default for Layout {
    /// The pmaplab kernel's layout (kernel/src/memlayout.rs); no mapping is
    /// global since the kernel leaves CR4.PGE off.
    fn default() -> Layout {
        let r = |start, end, size| Region {
            start,
            end,
            size,
            global: false,
        };
        Layout {
            regions: vec![
                r(0, 0x0000_8000_0000_0000, PageSize::Size4K),
                r(
                    0xffff_8000_0000_0000,
                    0xffff_8000_0000_0000 + (4 << 30),
                    PageSize::Size2M,
                ),
                r(
                    0xffff_ff00_0000_0000,
                    0xffff_ff80_0000_0000,
                    PageSize::Size4K,
                ),
                r(0xffff_ffff_8000_0000, u64::MAX, PageSize::Size2M),
            ],
        }
    }
}

impl Layout {
    /// The page size of `va` and whether its mapping is global.
    pub fn page_of(&self, va: u64) -> (PageSize, bool) {
        self.regions
            .iter()
            .find(|r| r.start <= va && va < r.end)
            .map_or((PageSize::Size4K, false), |r| (r.size, r.global))
    }
}

/// A page as the TLB names it: virtual page number and size, packed (the
/// low bit is the size) so it hashes as one word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Page(u64);

impl Page {
    pub fn new(size: PageSize, va: u64) -> Page {
        Page(((va >> size.shift()) << 1) | (size == PageSize::Size2M) as u64)
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Entry {
    vpn: u64,
    frame: u64,
    /// LRU stamp; 0 = invalid.
    stamp: u64,
    global: bool,
}

/// One set-associative array.
struct Array {
    ways: usize,
    sets: u64,
    size: PageSize,
    entries: Vec<Entry>,
}

impl Array {
    fn new(entries: usize, ways: usize, size: PageSize) -> Array {
        Array {
            ways,
            sets: (entries / ways) as u64,
            size,
            entries: vec![Entry::default(); entries],
        }
    }

    fn set(&mut self, vpn: u64) -> &mut [Entry] {
        let s = (vpn % self.sets) as usize;
        &mut self.entries[s * self.ways..(s + 1) * self.ways]
    }
}

/// State of a suspect page on one CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Suspect {
    /// Hit with a changed frame; not judged yet.
    Outstanding,
    /// A shootdown returned while it was outstanding.
    Verdict,
}

/// What one lookup found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// A hit on a current entry.
    Hit,
    /// A hit on an entry whose frame differs from the access's frame.
    /// `new_suspect`: the page just became a suspect; `stale`: it is under
    /// a verdict (count a stale access).
    HitOld { new_suspect: bool, stale: bool },
    /// A miss (the entry is now filled); `refill`: a flush or INVLPG
    /// removed this page since its last fill.
    Miss { refill: bool },
}

/// One CPU's TLB.
pub struct Tlb {
    a4k: Array,
    a2m: Array,
    /// LRU clock.
    tick: u64,
    /// Pages removed by INVLPG or a flush and not filled since.
    removed: FxHashSet<Page>,
    suspects: FxHashMap<Page, Suspect>,
}

impl Tlb {
    pub fn new(shape: &TlbShape) -> Tlb {
        Tlb {
            a4k: Array::new(shape.entries_4k, shape.ways_4k, PageSize::Size4K),
            a2m: Array::new(shape.entries_2m, shape.ways_2m, PageSize::Size2M),
            tick: 0,
            removed: FxHashSet::default(),
            suspects: FxHashMap::default(),
        }
    }

    /// Looks up `va` (mapped with `size`, `global`) translated to `paddr`,
    /// filling on a miss.
    pub fn access(&mut self, va: u64, paddr: u64, size: PageSize, global: bool) -> Lookup {
        self.tick += 1;
        let tick = self.tick;
        let shift = size.shift();
        let (vpn, frame) = (va >> shift, paddr >> shift);
        let page = Page::new(size, va);
        // Field by field, so the set and the suspect map borrow apart.
        let array = match size {
            PageSize::Size4K => &mut self.a4k,
            PageSize::Size2M => &mut self.a2m,
        };
        let set = array.set(vpn);
        if let Some(e) = set.iter_mut().find(|e| e.stamp != 0 && e.vpn == vpn) {
            e.stamp = tick;
            if e.frame == frame {
                return Lookup::Hit;
            }
            return match self.suspects.get(&page) {
                None => {
                    self.suspects.insert(page, Suspect::Outstanding);
                    Lookup::HitOld {
                        new_suspect: true,
                        stale: false,
                    }
                }
                Some(s) => Lookup::HitOld {
                    new_suspect: false,
                    stale: *s == Suspect::Verdict,
                },
            };
        }
        // Miss: the victim is an invalid way, else the least recently used.
        let victim = set
            .iter_mut()
            .min_by_key(|e| e.stamp)
            .expect("a set has at least one way");
        let evicted = (victim.stamp != 0).then_some(victim.vpn);
        *victim = Entry {
            vpn,
            frame,
            stamp: tick,
            global,
        };
        if let Some(old) = evicted {
            // The evicted translation is gone: so is any suspicion on it.
            self.suspects.remove(&Page::new(size, old << shift));
        }
        Lookup::Miss {
            refill: self.removed.remove(&page),
        }
    }

    /// Removes `page`'s entry from `size`'s array (INVLPG).
    fn remove(&mut self, size: PageSize, va: u64) {
        let vpn = va >> size.shift();
        let array = match size {
            PageSize::Size4K => &mut self.a4k,
            PageSize::Size2M => &mut self.a2m,
        };
        let set = array.set(vpn);
        if let Some(e) = set.iter_mut().find(|e| e.stamp != 0 && e.vpn == vpn) {
            e.stamp = 0;
            let page = Page::new(size, va);
            self.suspects.remove(&page);
            self.removed.insert(page);
        }
    }

    /// INVLPG `va`: its 4 KiB entry and any 2 MiB entry covering it.
    pub fn invlpg(&mut self, va: u64) {
        self.remove(PageSize::Size4K, va);
        self.remove(PageSize::Size2M, va);
    }

    /// Removes every entry, or every non-global one unless `global_too`.
    pub fn flush(&mut self, global_too: bool) {
        for a in [&mut self.a4k, &mut self.a2m] {
            let shift = a.size.shift();
            for e in a.entries.iter_mut() {
                if e.stamp != 0 && (global_too || !e.global) {
                    e.stamp = 0;
                    let page = Page::new(a.size, e.vpn << shift);
                    self.suspects.remove(&page);
                    self.removed.insert(page);
                }
            }
        }
    }

    /// A shootdown returned: every outstanding suspect becomes a verdict.
    /// Returns how many did.
    pub fn judge(&mut self) -> u64 {
        let mut n = 0;
        for s in self.suspects.values_mut() {
            if *s == Suspect::Outstanding {
                *s = Suspect::Verdict;
                n += 1;
            }
        }
        n
    }

    /// Valid entries (both sizes).
    pub fn occupancy(&self) -> usize {
        self.a4k
            .entries
            .iter()
            .chain(&self.a2m.entries)
            .filter(|e| e.stamp != 0)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> TlbShape {
        TlbShape {
            entries_4k: 8,
            ways_4k: 2,
            entries_2m: 4,
            ways_2m: 4,
            source: "test".into(),
        }
    }

    #[test]
    fn default_layout() {
        let l = Layout::default();
        assert_eq!(l.page_of(0x40_0000), (PageSize::Size4K, false));
        assert_eq!(l.page_of(0xffff_8000_0020_0000), (PageSize::Size2M, false));
        assert_eq!(l.page_of(0xffff_ff00_0000_1000), (PageSize::Size4K, false));
        assert_eq!(l.page_of(0xffff_ffff_8010_0000), (PageSize::Size2M, false));
    }

    #[test]
    fn lru_and_invlpg_of_2m() {
        let mut t = Tlb::new(&shape());
        // 2 MiB pages: invlpg of any address inside removes the entry.
        let va = 0xffff_8000_0040_0000;
        assert_eq!(
            t.access(va, 0x40_0000, PageSize::Size2M, false),
            Lookup::Miss { refill: false }
        );
        assert_eq!(
            t.access(va + 0x1234, 0x40_1234, PageSize::Size2M, false),
            Lookup::Hit
        );
        t.invlpg(va + 0x5000);
        assert_eq!(t.occupancy(), 0);
        assert_eq!(
            t.access(va, 0x40_0000, PageSize::Size2M, false),
            Lookup::Miss { refill: true }
        );
    }
}
