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
//!   frame (QEMU's own TLB dropped the entry and walked the new page
//!   table): the old entry is kept. Whether that is a bug depends on when:
//!   - while the change's shootdown is in flight it is allowed (every pmap
//!     has that window): the entry is a **suspect**;
//!   - once a shootdown covering the page has been marked settled (its
//!     initiator saw every acknowledgement, `ShootEnd`, or it needed no
//!     IPI, `Settled`), and that shootdown began after this CPU filled the
//!     entry, the kernel has promised the entry gone ([`Tlb::condemn`]).
//!     A hit on a condemned entry with a changed frame is a **stale
//!     access** (the first per entry also a **verdict**): real hardware
//!     would have read the old frame after the kernel said it could not.
//!
//!   The rule reads only the guest's own order of events: the fill, the
//!   shootdown's begin and settle marks and the accesses, as emulated.
//! - INVLPG of `va` removes the 4 KiB entry of `va` and any 2 MiB entry
//!   covering it, global or not. A flush removes every entry, or every
//!   non-global one (a CR3 write).
//!
//! Assumptions: one unified data TLB per page size (no L1/L2 split, no
//! separate instruction TLB: instruction fetches are not modeled), no
//! PCIDs, no paging-structure caches (a walk costs a flat page_walk), and
//! an access spanning two pages looks up only its first page. Pages are
//! named by virtual address only (no address-space tag, as without PCID
//! a CR3 load empties the TLB): a shootdown of one process's page also
//! condemns another process's entry for the same address on a CPU running
//! it, which can only matter if that process's own mapping there changes
//! meanwhile.

use crate::profile::TlbShape;
use rustc_hash::FxHashSet;

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
    /// The model's event sequence number when the entry was filled.
    filled: u64,
    /// A settled shootdown that began after the fill covered the page.
    condemned: bool,
    /// A hit found the frame changed while not condemned (counted once).
    suspected: bool,
    /// A hit found the frame changed while condemned (counted once).
    judged: bool,
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

/// What one lookup found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// A hit on a current entry.
    Hit,
    /// A hit on an entry whose frame differs from the access's frame.
    /// `new_suspect`: first such hit on an entry not condemned; `stale`:
    /// the entry is condemned (a stale access), `new_verdict`: the first
    /// stale access through this entry.
    HitOld {
        new_suspect: bool,
        stale: bool,
        new_verdict: bool,
    },
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
}

impl Tlb {
    pub fn new(shape: &TlbShape) -> Tlb {
        Tlb {
            a4k: Array::new(shape.entries_4k, shape.ways_4k, PageSize::Size4K),
            a2m: Array::new(shape.entries_2m, shape.ways_2m, PageSize::Size2M),
            tick: 0,
            removed: FxHashSet::default(),
        }
    }

    /// Looks up `va` (mapped with `size`, `global`) translated to `paddr`,
    /// filling on a miss; `seq` is the model's event sequence number now.
    pub fn access(
        &mut self,
        va: u64,
        paddr: u64,
        size: PageSize,
        global: bool,
        seq: u64,
    ) -> Lookup {
        self.tick += 1;
        let tick = self.tick;
        let shift = size.shift();
        let (vpn, frame) = (va >> shift, paddr >> shift);
        let page = Page::new(size, va);
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
            if e.condemned {
                let new_verdict = !e.judged;
                e.judged = true;
                return Lookup::HitOld {
                    new_suspect: false,
                    stale: true,
                    new_verdict,
                };
            }
            let new_suspect = !e.suspected;
            e.suspected = true;
            return Lookup::HitOld {
                new_suspect,
                stale: false,
                new_verdict: false,
            };
        }
        // Miss: the victim is an invalid way, else the least recently used.
        let victim = set
            .iter_mut()
            .min_by_key(|e| e.stamp)
            .expect("a set has at least one way");
        *victim = Entry {
            vpn,
            frame,
            stamp: tick,
            global,
            filled: seq,
            ..Entry::default()
        };
        Lookup::Miss {
            refill: self.removed.remove(&page),
        }
    }

    /// A shootdown that began at sequence number `began` and covered
    /// `pages` pages from `va` (0: every page) is settled: every entry of
    /// those pages filled before `began` must be gone, and is condemned if
    /// it is not.
    pub fn condemn(&mut self, va: u64, pages: u64, began: u64) {
        let mark = |e: &mut Entry| {
            if e.stamp != 0 && e.filled < began {
                e.condemned = true;
            }
        };
        if pages == 0 || pages > 512 {
            // A flush, or a range long enough that walking the arrays is
            // cheaper than looking each page up.
            let (start, end) = if pages == 0 {
                (0, u64::MAX)
            } else {
                (va, va.saturating_add(pages << 12))
            };
            for a in [&mut self.a4k, &mut self.a2m] {
                let shift = a.size.shift();
                for e in a.entries.iter_mut() {
                    let lo = e.vpn << shift;
                    let hi = lo.saturating_add(1 << shift);
                    if lo < end && start < hi {
                        mark(e);
                    }
                }
            }
            return;
        }
        for i in 0..pages {
            let page = va.wrapping_add(i << 12);
            for a in [&mut self.a4k, &mut self.a2m] {
                let vpn = page >> a.size.shift();
                if let Some(e) = a.set(vpn).iter_mut().find(|e| e.stamp != 0 && e.vpn == vpn) {
                    mark(e);
                }
            }
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
            self.removed.insert(Page::new(size, va));
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
                    self.removed.insert(Page::new(a.size, e.vpn << shift));
                }
            }
        }
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
            t.access(va, 0x40_0000, PageSize::Size2M, false, 0),
            Lookup::Miss { refill: false }
        );
        assert_eq!(
            t.access(va + 0x1234, 0x40_1234, PageSize::Size2M, false, 0),
            Lookup::Hit
        );
        t.invlpg(va + 0x5000);
        assert_eq!(t.occupancy(), 0);
        assert_eq!(
            t.access(va, 0x40_0000, PageSize::Size2M, false, 0),
            Lookup::Miss { refill: true }
        );
    }
}
