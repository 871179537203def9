//! What the pmap-selftest asks of a pmap besides its interface: the
//! translation of an address, the mapping there with its protection, and
//! a walk of the whole page-table tree counting what is in it, to check
//! `pm_stats` and every PTP's valid-entry count. Only the self-test uses
//! these; they read the tables through the pmap's read-only access
//! (mm::pmap's `read_entry`, under the pmap lock) and change nothing.

use lab_core::ptmath::{index, span};
use x86_64::structures::paging::{PageTableFlags, PhysFrame};
use x86_64::{PhysAddr, VirtAddr};

use crate::memlayout::KVA_PML4_SLOT;
use crate::mm::pmap::{ptp_count, read_entry, with_tables_locked, Pmap};

/// The physical address `va` translates to in `pm`, if mapped (2 MiB and
/// 1 GiB pages included, so it also answers for the kernel's direct map).
pub fn pmap_extract(pm: &Pmap, va: VirtAddr) -> Option<PhysAddr> {
    let va = va.as_u64();
    with_tables_locked(pm, || {
        let mut table = pm.pm_pml4;
        for level in (1..=4).rev() {
            let e = read_entry(table, index(va, level));
            if !e.present() {
                return None;
            }
            if level == 1 || (level <= 3 && !e.is_table()) {
                let base = e.addr().as_u64() & !(span(level) - 1);
                return Some(PhysAddr::new(base + (va & (span(level) - 1))));
            }
            table = e.frame();
        }
        None
    })
}

/// A 4 KiB mapping as [`pmap_query`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub pa: PhysAddr,
    pub writable: bool,
    pub executable: bool,
    pub wired: bool,
}

/// The 4 KiB mapping of `va` in `pm`, with its protection, if any.
pub fn pmap_query(pm: &Pmap, va: VirtAddr) -> Option<Mapping> {
    let va = va.as_u64();
    with_tables_locked(pm, || {
        let mut table = pm.pm_pml4;
        for level in (2..=4).rev() {
            let e = read_entry(table, index(va, level));
            if !e.is_table() {
                return None;
            }
            table = e.frame();
        }
        let e = read_entry(table, index(va, 1));
        e.present().then(|| Mapping {
            pa: e.addr(),
            writable: e.flags().contains(PageTableFlags::WRITABLE),
            executable: !e.flags().contains(PageTableFlags::NO_EXECUTE),
            wired: e.wired(),
        })
    })
}

/// What a walk of a pmap's page tables finds in the part it manages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalkCounts {
    /// Valid 4 KiB mappings.
    pub pages: u64,
    /// ... of which wired.
    pub wired: u64,
    /// PTPs that count in resident_count.
    pub ptps: u64,
    /// PTPs whose wire_count differs from their valid entries.
    pub bad_wire_counts: u64,
}

/// Walks `pm`'s tables (user half, or the kernel's kernel-virtual slot)
/// and counts what is there, to check `pm_stats` and the PTP counts.
pub fn pmap_walk_counts(pm: &Pmap) -> WalkCounts {
    with_tables_locked(pm, || {
        let mut c = WalkCounts::default();
        if pm.is_kernel() {
            let pdpt = read_entry(pm.pm_pml4, KVA_PML4_SLOT).frame();
            count_subtree(pdpt, 3, &mut c);
            c.ptps -= 1; // the fixed PDPT is not counted
        } else {
            for i in 0..256 {
                let e = read_entry(pm.pm_pml4, i);
                if e.is_table() {
                    count_subtree(e.frame(), 3, &mut c);
                }
            }
        }
        c
    })
}

fn count_subtree(table: PhysFrame, level: u32, c: &mut WalkCounts) {
    c.ptps += 1;
    let mut valid = 0;
    for i in 0..512 {
        let e = read_entry(table, i);
        if !e.present() {
            continue;
        }
        valid += 1;
        if level == 1 {
            c.pages += 1;
            c.wired += u64::from(e.wired());
        } else if e.is_table() {
            count_subtree(e.frame(), level - 1, c);
        }
    }
    if ptp_count(table) != valid {
        c.bad_wire_counts += 1;
    }
}
