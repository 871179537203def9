//! The pmap: the machine-dependent layer of virtual memory, modelled on the
//! 2010 OpenBSD amd64 pmap (sys/arch/amd64/amd64/pmap.c rev 1.55, seed 000)
//! so that the seeds' bugs and fixes are the same few lines here.
//!
//! # Data structures
//!
//! A [`Pmap`] is one address space: its PML4 frame (`pm_pml4`, OpenBSD's
//! `pm_pdirpa`), `pm_cpus` (a bitmap of the CPUs on which it is loaded in
//! CR3, which decides who gets a shootdown IPI), `pm_stats`
//! (`resident_count`, `wired_count`), a reference count and a lock. Pmaps
//! come from a poisoned pool (mm::pool), so a field pmap_create does not set
//! holds 0xdeadbeef.
//!
//! Page tables are the hardware's 4-level tables, reached through the
//! direct map (every frame is below 4 GiB). Entries are read and written as
//! `AtomicU64` because the MMU sets accessed/dirty bits and walks them
//! concurrently; they are decoded with the x86_64 crate's `PageTableFlags`
//! and `PhysAddr`. A page-table page ("PTP") below the PML4 counts its valid
//! entries in its frame's `Page::wire_count` (OpenBSD's ptp `wire_count`,
//! less the +1 OpenBSD keeps for the PTP itself), and is freed when that
//! drops to zero.
//!
//! Layout: a user pmap's PML4 entries 0..256 are its own (user space);
//! 256..512 are copied from the kernel pmap at creation and never change
//! (the kernel's top-level entries are fixed at boot: direct map, kernel
//! virtual, kernel image). The boot identity map in the kernel PML4's entry
//! 0 is never copied. The kernel pmap ([`pmap_kernel`]) is the boot PML4;
//! the pmap layer manages only its kernel-virtual slot (memlayout), whose
//! PDPT is allocated at boot and never freed, so its PDs and PTs (allocated
//! and freed on demand) are shared by every address space.
//!
//! `resident_count` counts mapped pages plus the PTPs below the top level
//! (as both OpenBSD and FreeBSD do); the top level (the PML4, and the
//! kernel's fixed PDPT) is not counted, so an address space with nothing
//! mapped has resident_count 0 and pmap_remove can return at once (FreeBSD;
//! OpenBSD 2010 counted its PDP, seed 004's D32569 is about counting it).
//! Seed 004's variants change this: `count-top-level` counts a user pmap's
//! PML4 ([`TOP_LEVEL_PAGES`]), which alone nullifies the early return;
//! `unmap-shared-page` moves the early return's threshold to
//! [`TOP_LEVEL_PAGES`] ([`pmap_nothing_resident`]). The kernel pmap, made
//! at boot rather than by pmap_create, never counts its top level.
//! `wired_count` counts mappings entered wired (software bit 9, OpenBSD's
//! PG_W). Both are kept exact; the pmap-selftest workload checks them
//! against a walk of the tables (workloads::pmap_inspect, through the
//! read-only access at the end of this file).
//!
//! # Locking
//!
//! Each pmap's spin lock covers its page tables and `pm_stats`; operations
//! hold it throughout, including the shootdown and its wait (except
//! [`pmap_kenter_pa`], which as in OpenBSD does not hold it across the
//! shootdown). `pm_cpus` is
//! changed only with atomic bit operations by the CPU concerned
//! (pmap_activate/deactivate) and read without the lock. `refcount` is
//! atomic. Lock order: pmap, heap, frames. No pmap function may be called
//! from interrupt context.
//!
//! # Shootdown rules
//!
//! A changed or removed valid entry may still be cached in the TLB of every
//! CPU on which the pmap is loaded. After such a change, and before the
//! page (or a PTP freed by it) is reused, the operation calls
//! pmap_tlb_shootpage / shootrange / shoottlb and pmap_tlb_shootwait
//! (mm::shootdown); freed PTPs are kept on a list and freed only after the
//! wait (OpenBSD's `empty_ptps`). How a range operation shoots down is the
//! variant's (`shoot_changed`): OpenBSD 2010's (the whole range, whatever
//! it held; over 32 user pages a shoottlb of every CPU), FreeBSD's
//! (`freebsd-base`, the base of seed 004's variants: only if a valid entry
//! changed, then the pmap's whole TLB on `pm_cpus` only) or DragonFly's
//! (`dfly-batch`). A PTE change is a locked read-modify-write
//! and `pm_cpus` is read after it (both SeqCst), and pmap_activate sets the
//! CPU's bit before loading CR3: so either the initiator sees the bit, or
//! the activating CPU's first walk sees the new entry. Entries that were not
//! valid need no shootdown (x86 does not cache non-present entries).

use core::ops::BitOr;
use core::ptr::{addr_of_mut, NonNull};
use core::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, Ordering};

use lab_core::cpuset::CpuSet;
use lab_core::physmem::PAGE_SIZE;
use lab_core::protocol::pcid::TlbGen;
use lab_core::ptmath::{block_end, index};
use x86_64::registers::control::{Cr3, Cr3Flags};
use x86_64::registers::model_specific::{Efer, EferFlags};
use x86_64::structures::paging::{PageTableFlags, PhysFrame};
use x86_64::{PhysAddr, VirtAddr};

use super::frame::{self, Fill, PageList};
use super::lock::SpinLock;
use super::pool::Pool;
use super::shootdown::dfly_batch::PmapInval;
use super::shootdown::{pmap_tlb_shootpage, pmap_tlb_shootpmap, pmap_tlb_shootwait};
use crate::arch::chaos::{self, Point};
use crate::memlayout::{phys_to_virt, KVA_BASE, KVA_END, KVA_PML4_SLOT, USER_END};
use crate::stats::{self, Event};

/// Access a mapping allows (UVM's `vm_prot_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prot(u8);

impl Prot {
    pub const READ: Prot = Prot(1);
    pub const WRITE: Prot = Prot(2);
    pub const EXEC: Prot = Prot(4);
    pub const RW: Prot = Prot(3);

    pub const fn contains(self, other: Prot) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for Prot {
    type Output = Prot;
    fn bitor(self, other: Prot) -> Prot {
        Prot(self.0 | other.0)
    }
}

/// Why a pmap operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PmapError {
    /// No free frame for a page-table page or PML4.
    NoMemory,
}

/// `struct pmap_statistics`.
pub struct PmapStats {
    pub resident_count: AtomicU64,
    pub wired_count: AtomicU64,
}

/// `struct pmap`.
pub struct Pmap {
    lock: SpinLock<()>,
    /// The PML4 (OpenBSD's `pm_pdirpa`).
    pub pm_pml4: PhysFrame,
    /// CPUs on which this pmap is loaded (bit n: CPU n).
    pub pm_cpus: AtomicU64,
    pub pm_stats: PmapStats,
    refcount: AtomicU32,
    /// Set once by [`pmap_set_dying`] when the last thread of a
    /// single-threaded process starts tearing the address space down (exit
    /// or exec); never cleared. Counts the shootdown IPIs sent for a dying
    /// pmap, and under `dying-no-ipi` makes its invalidations local.
    pm_dying: AtomicBool,
    /// Under `pcid` (mm::pcid): an id no other pmap ever has (0 for the
    /// kernel pmap), and the generation every shootdown of it bumps, which
    /// a CPU coming back to it compares with the one its PCID's entries
    /// are current to.
    pub pm_id: u64,
    pub pm_tlb_gen: TlbGen,
}

impl Pmap {
    /// True for the kernel pmap.
    pub fn is_kernel(&self) -> bool {
        core::ptr::eq(self, pmap_kernel())
    }

    /// `pm_cpus` as a set.
    pub fn cpus(&self) -> CpuSet {
        CpuSet(self.pm_cpus.load(Ordering::SeqCst))
    }

    /// True if this CPU's CR3 holds this pmap (always for the kernel pmap,
    /// whose mappings are in every address space).
    pub fn is_loaded_here(&self) -> bool {
        self.is_kernel() || Cr3::read().0 == self.pm_pml4
    }

    pub fn resident_count(&self) -> u64 {
        self.pm_stats.resident_count.load(Ordering::Relaxed)
    }

    pub fn wired_count(&self) -> u64 {
        self.pm_stats.wired_count.load(Ordering::Relaxed)
    }

    /// See [`pmap_set_dying`].
    pub fn is_dying(&self) -> bool {
        self.pm_dying.load(Ordering::Relaxed)
    }
}

/// The top-level page-table pages a user pmap counts in resident_count:
/// none, as OpenBSD and FreeBSD before D32569, or its PML4 under
/// `count-top-level` (FreeBSD D32569, sys/amd64/amd64/pmap.c, the review's
/// first diff: "amd64 pmap: account for the top-level pages"; FreeBSD's
/// `1 + (pmap->pm_pmltopu != NULL ? 1 : 0)`, one here: no PTI user PML4).
#[cfg(not(feature = "count-top-level"))]
pub const TOP_LEVEL_PAGES: u64 = 0;
#[cfg(feature = "count-top-level")]
pub const TOP_LEVEL_PAGES: u64 = 1;

/// resident_count at which pmap_remove returns at once: nothing mapped
/// and no PTP. FreeBSD's check was `resident_count == 0`, which counting
/// the top level (`count-top-level`) makes unreachable while the pmap
/// lives; D32569 as landed ("Improve pmap_remove() check to allow the top
/// level page table pages be accounted", sys/amd64/amd64/pmap.c) compares
/// with the top-level count instead (`unmap-shared-page`).
#[cfg(not(feature = "unmap-shared-page"))]
const EMPTY_RESIDENT: u64 = 0;
#[cfg(feature = "unmap-shared-page")]
const EMPTY_RESIDENT: u64 = TOP_LEVEL_PAGES;

/// A counted reference to a user pmap: pmap_create returns the first,
/// pmap_reference makes more, and dropping one (or pmap_destroy) releases
/// it; the last release frees the pmap.
pub struct PmapHandle(NonNull<Pmap>);

// SAFETY: a Pmap is shared between CPUs by design; its mutable state is
// atomic or under its lock.
unsafe impl Send for PmapHandle {}
unsafe impl Sync for PmapHandle {}

impl core::ops::Deref for PmapHandle {
    type Target = Pmap;
    fn deref(&self) -> &Pmap {
        // SAFETY: the pmap lives while any handle to it does.
        unsafe { self.0.as_ref() }
    }
}

impl Drop for PmapHandle {
    fn drop(&mut self) {
        release(self.0);
    }
}

static PMAP_POOL: Pool<Pmap> = Pool::new("pmappl");
static KERNEL_PMAP: spin::Once<Pmap> = spin::Once::new();
/// EFER.NXE is on: the NX bit may be used (else it is a reserved bit).
static NX: AtomicBool = AtomicBool::new(false);

/// OpenBSD's PG_W: the mapping is wired (a software bit).
const PG_W: PageTableFlags = PageTableFlags::BIT_9;
/// The mapping is unmanaged (a software bit): its page is not the VM
/// system's, like FreeBSD's shared page (entered without a pv entry), so
/// [`pmap_remove_pages`] leaves it; only pmap_remove takes it out.
const PG_UNMANAGED: PageTableFlags = PageTableFlags::BIT_10;
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
/// Bits the MMU sets on its own: a change in them needs no shootdown.
const HW_SET: PageTableFlags = PageTableFlags::ACCESSED.union(PageTableFlags::DIRTY);

/// A page-table entry's value.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Pte(u64);

impl Pte {
    fn new(addr: PhysAddr, flags: PageTableFlags) -> Pte {
        Pte((addr.as_u64() & ADDR_MASK) | flags.bits())
    }
    fn flags(self) -> PageTableFlags {
        PageTableFlags::from_bits_truncate(self.0)
    }
    fn addr(self) -> PhysAddr {
        PhysAddr::new(self.0 & ADDR_MASK)
    }
    fn frame(self) -> PhysFrame {
        PhysFrame::containing_address(self.addr())
    }
    fn present(self) -> bool {
        self.flags().contains(PageTableFlags::PRESENT)
    }
    /// A table entry pointing further down (not a 2 MiB or 1 GiB page).
    fn is_table(self) -> bool {
        self.present() && !self.flags().contains(PageTableFlags::HUGE_PAGE)
    }
}

/// Entry `i` of the page-table page `table`.
fn entry(table: PhysFrame, i: usize) -> &'static AtomicU64 {
    let base = phys_to_virt(table.start_address().as_u64()).as_ptr::<AtomicU64>();
    assert!(i < 512);
    // SAFETY: page-table pages are frames reached through the direct map;
    // their 512 entries are only accessed atomically.
    unsafe { &*base.add(i) }
}

fn load(e: &AtomicU64) -> Pte {
    Pte(e.load(Ordering::SeqCst))
}

fn wire_count(table: PhysFrame) -> &'static AtomicU32 {
    &frame::page(table).wire_count
}

/// The page-table pages on the way to a VA: `tables[l]` is the level-`l`
/// table (4 = PML4 .. 1 = PT), `None` from the first missing one down.
struct Path {
    tables: [Option<PhysFrame>; 5],
}

impl Path {
    /// The lowest level that has a table.
    fn deepest(&self) -> u32 {
        (1..=4)
            .find(|&l| self.tables[l as usize].is_some())
            .unwrap()
    }
    fn table(&self, level: u32) -> PhysFrame {
        self.tables[level as usize].unwrap()
    }
}

/// Returns the tables on the way to `va` in `pm`, creating none.
fn walk(pm: &Pmap, va: u64) -> Path {
    let mut path = Path { tables: [None; 5] };
    path.tables[4] = Some(pm.pm_pml4);
    for level in (2..=4).rev() {
        let e = load(entry(path.table(level), index(va, level)));
        if !e.is_table() {
            break;
        }
        path.tables[level as usize - 1] = Some(e.frame());
    }
    path
}

fn table_flags(pm: &Pmap) -> PageTableFlags {
    let f = PageTableFlags::PRESENT | PageTableFlags::WRITABLE;
    if pm.is_kernel() {
        f
    } else {
        f | PageTableFlags::USER_ACCESSIBLE
    }
}

fn leaf_flags(pm: &Pmap, prot: Prot, wired: bool) -> PageTableFlags {
    let mut f = PageTableFlags::PRESENT;
    if prot.contains(Prot::WRITE) {
        f |= PageTableFlags::WRITABLE;
    }
    if !pm.is_kernel() {
        f |= PageTableFlags::USER_ACCESSIBLE;
    } else if super::pcid::kernel_global() {
        // `pcid`: Linux's rule, PCIDs only with global kernel entries, so
        // that an INVLPG of a kernel address reaches every PCID (mm::pcid).
        f |= PageTableFlags::GLOBAL;
    }
    if !prot.contains(Prot::EXEC) && NX.load(Ordering::Relaxed) {
        f |= PageTableFlags::NO_EXECUTE;
    }
    if wired {
        f |= PG_W;
    }
    f
}

/// Can the level-`level` PTP be freed when it empties? Not the PML4, nor
/// the kernel's fixed kernel-virtual PDPT (shared by every address space).
fn ptp_freeable(pm: &Pmap, level: u32) -> bool {
    level <= 2 || (level == 3 && !pm.is_kernel())
}

/// Returns the level-1 table for `va`, creating the missing PTPs (zeroed,
/// counted in their parent's wire_count and in resident_count). All frames
/// are allocated before any is linked, so a failure leaves `pm` unchanged.
fn walk_create(pm: &Pmap, va: u64) -> Result<PhysFrame, PmapError> {
    let path = walk(pm, va);
    let deepest = path.deepest();
    let mut fresh: [Option<PhysFrame>; 3] = [None; 3];
    for i in 0..(deepest - 1) as usize {
        match frame::alloc(Fill::Zeroed) {
            Some(f) => fresh[i] = Some(f),
            None => {
                fresh.iter().flatten().for_each(|&f| frame::free(f));
                return Err(PmapError::NoMemory);
            }
        }
    }
    let mut parent = path.table(deepest);
    for (i, level) in (1..deepest).rev().enumerate() {
        let child = fresh[i].unwrap();
        let e = entry(parent, index(va, level + 1));
        e.store(
            Pte::new(child.start_address(), table_flags(pm)).0,
            Ordering::SeqCst,
        );
        wire_count(parent).fetch_add(1, Ordering::Relaxed);
        pm.pm_stats.resident_count.fetch_add(1, Ordering::Relaxed);
        parent = child;
    }
    Ok(parent)
}

/// Clears the entry for `va` in the level-1 table `pt` if valid, keeping
/// the counts. Returns whether there was a mapping.
fn remove_pte(pm: &Pmap, pt: PhysFrame, va: u64) -> bool {
    let old = Pte(entry(pt, index(va, 1)).swap(0, Ordering::SeqCst));
    if !old.present() {
        return false;
    }
    wire_count(pt).fetch_sub(1, Ordering::Relaxed);
    pm.pm_stats.resident_count.fetch_sub(1, Ordering::Relaxed);
    if old.flags().contains(PG_W) {
        pm.pm_stats.wired_count.fetch_sub(1, Ordering::Relaxed);
    }
    true
}

/// Unlinks the PTPs on `path` (from the level-1 table up) that have no
/// valid entry left, onto `empty`; they may still be cached by other CPUs
/// until the caller's shootdown completes, so they are freed after it.
fn release_empty(pm: &Pmap, path: &Path, va: u64, empty: &mut PageList) {
    let mut level = 1;
    while ptp_freeable(pm, level) {
        let ptp = path.table(level);
        if wire_count(ptp).load(Ordering::Relaxed) != 0 {
            break;
        }
        let parent = path.table(level + 1);
        entry(parent, index(va, level + 1)).swap(0, Ordering::SeqCst);
        wire_count(parent).fetch_sub(1, Ordering::Relaxed);
        pm.pm_stats.resident_count.fetch_sub(1, Ordering::Relaxed);
        empty.push(ptp);
        level += 1;
    }
}

/// Panics unless `[sva, eva)` is page-aligned and inside the part of the
/// address space `pm` manages (user space, or kernel virtual for the kernel
/// pmap).
fn check_range(pm: &Pmap, sva: u64, eva: u64) {
    let (lo, hi) = if pm.is_kernel() {
        (KVA_BASE, KVA_END)
    } else {
        (0, USER_END)
    };
    assert!(
        sva <= eva && lo <= sva && eva <= hi && (sva | eva).is_multiple_of(PAGE_SIZE),
        "pmap: range {sva:#x}..{eva:#x} is not page-aligned inside {lo:#x}..{hi:#x}"
    );
}

/// Visits each level-1 table under `[sva, eva)` with the part of the range
/// it maps, skipping unmapped blocks at whatever level they are missing.
fn for_each_pt(pm: &Pmap, sva: u64, eva: u64, mut f: impl FnMut(&Path, u64, u64)) {
    let mut va = sva;
    while va < eva {
        let path = walk(pm, va);
        let deepest = path.deepest();
        if deepest > 1 {
            // The level-`deepest` entry for va is empty: skip what it maps.
            va = block_end(va, deepest, eva);
            continue;
        }
        let end = block_end(va, 2, eva);
        f(&path, va, end);
        va = end;
    }
}

/// Sets up the kernel pmap on the boot CPU: the boot PML4 in CR3, and a
/// zeroed PDPT in its kernel-virtual slot. Also primes the pmap pool.
pub fn init() {
    NX.store(
        Efer::read().contains(EferFlags::NO_EXECUTE_ENABLE),
        Ordering::Relaxed,
    );
    let (pml4, _) = Cr3::read();
    let pdpt = frame::alloc(Fill::Zeroed).expect("no frame for the kernel-virtual PDPT");
    let slot = entry(pml4, KVA_PML4_SLOT);
    assert!(
        !load(slot).present(),
        "kernel-virtual PML4 slot already in use"
    );
    slot.store(
        Pte::new(
            pdpt.start_address(),
            PageTableFlags::PRESENT | PageTableFlags::WRITABLE,
        )
        .0,
        Ordering::SeqCst,
    );
    KERNEL_PMAP.call_once(|| Pmap {
        lock: SpinLock::new(()),
        pm_pml4: pml4,
        pm_cpus: AtomicU64::new(0),
        pm_stats: PmapStats {
            resident_count: AtomicU64::new(0),
            wired_count: AtomicU64::new(0),
        },
        refcount: AtomicU32::new(1),
        pm_dying: AtomicBool::new(false),
        pm_id: 0,
        pm_tlb_gen: TlbGen::new(),
    });
    PMAP_POOL.prime();
}

/// The kernel pmap: the boot page tables. Its mappings (kernel virtual
/// only) are visible in every pmap.
pub fn pmap_kernel() -> &'static Pmap {
    KERNEL_PMAP.get().expect("pmap used before mm::init")
}

/// Creates an empty user pmap with one reference: a zeroed PML4 whose
/// kernel half is the kernel pmap's, nothing resident, loaded nowhere.
pub fn pmap_create() -> Result<PmapHandle, PmapError> {
    let pml4 = frame::alloc(Fill::Zeroed).ok_or(PmapError::NoMemory)?;
    let kernel = pmap_kernel().pm_pml4;
    for i in 256..512 {
        entry(pml4, i).store(entry(kernel, i).load(Ordering::Relaxed), Ordering::Relaxed);
    }
    let Some(pm) = PMAP_POOL.get() else {
        frame::free(pml4);
        return Err(PmapError::NoMemory);
    };
    let p = pm.as_ptr();
    // SAFETY: a pool item of our own, holding the 0xdeadbeef fill; every
    // field is written through raw pointers before a reference is made.
    unsafe {
        addr_of_mut!((*p).lock).write(SpinLock::new(()));
        addr_of_mut!((*p).pm_pml4).write(pml4);
        // resident_count: the PML4 counts only under `count-top-level`
        // (see the header comment and TOP_LEVEL_PAGES).
        addr_of_mut!((*p).pm_stats).write(PmapStats {
            resident_count: AtomicU64::new(TOP_LEVEL_PAGES),
            wired_count: AtomicU64::new(0),
        });
        addr_of_mut!((*p).refcount).write(AtomicU32::new(1));
        addr_of_mut!((*p).pm_dying).write(AtomicBool::new(false));
        addr_of_mut!((*p).pm_id).write(super::pcid::new_id());
        addr_of_mut!((*p).pm_tlb_gen).write(TlbGen::new());
        // Seed 000 (OpenBSD pmap.c 1.55 -> 1.56): 1.55 never set pm_cpus,
        // leaving the pool's 0xdeadbeef fill in it, so shootdowns hit CPUs
        // that never ran this pmap. The `uninit-bitmap` variant is 1.55.
        #[cfg(not(feature = "uninit-bitmap"))]
        addr_of_mut!((*p).pm_cpus).write(AtomicU64::new(0));
    }
    Ok(PmapHandle(pm))
}

/// Adds a reference to `pm` (OpenBSD's pmap_reference).
pub fn pmap_reference(pm: &PmapHandle) -> PmapHandle {
    pm.refcount.fetch_add(1, Ordering::Relaxed);
    PmapHandle(pm.0)
}

/// Drops a reference to `pm`; the last one frees it (see [`release`]).
pub fn pmap_destroy(pm: PmapHandle) {
    drop(pm);
}

/// The body of pmap_destroy. At the last reference: counts the call and,
/// with the DIAGNOSTIC check of the seed-000 fix, a pmap still marked
/// active on some CPU; frees every user PTP and the PML4 (whatever is still
/// mapped: the leaf pages are not the pmap's), and returns the pmap to its
/// pool. The pmap must not be loaded in any CPU's CR3 by then.
fn release(ptr: NonNull<Pmap>) {
    // SAFETY: the caller's handle keeps it alive until here.
    let pm = unsafe { ptr.as_ref() };
    if pm.refcount.fetch_sub(1, Ordering::Release) != 1 {
        return;
    }
    fence(Ordering::Acquire);
    stats::count(Event::PmapDestroyCalls);
    // Seed 000's DIAGNOSTIC printf ("pmap_destroy: pmap %p cpus=0x%lx"),
    // counted rather than printed.
    if pm.pm_cpus.load(Ordering::SeqCst) != 0 {
        stats::count(Event::PmapDestroyCpusNonzero);
    }
    assert!(
        Cr3::read().0 != pm.pm_pml4,
        "pmap_destroy of the pmap loaded on this CPU"
    );
    for i in 0..256 {
        let e = load(entry(pm.pm_pml4, i));
        if e.is_table() {
            free_subtree(e.frame(), 3);
        }
    }
    wire_count(pm.pm_pml4).store(0, Ordering::Relaxed);
    frame::free(pm.pm_pml4);
    // SAFETY: last reference; nothing in a Pmap needs dropping but be
    // exact, then the memory goes back to the pool (and is poisoned).
    unsafe { core::ptr::drop_in_place(ptr.as_ptr()) };
    PMAP_POOL.put(ptr);
}

/// Frees the level-`level` PTP `table` and every PTP below it.
fn free_subtree(table: PhysFrame, level: u32) {
    if level > 1 {
        for i in 0..512 {
            let e = load(entry(table, i));
            if e.is_table() {
                free_subtree(e.frame(), level - 1);
            }
        }
    }
    wire_count(table).store(0, Ordering::Relaxed);
    frame::free(table);
}

/// Maps the page at `va` to the frame at `pa` with `prot` in `pm`,
/// replacing any mapping there (with a shootdown if the old entry was
/// valid and differs); `wired` marks it wired. Allocates the PTPs it needs;
/// fails only for lack of memory, leaving `pm` unchanged.
pub fn pmap_enter(
    pm: &Pmap,
    va: VirtAddr,
    pa: PhysAddr,
    prot: Prot,
    wired: bool,
) -> Result<(), PmapError> {
    enter(pm, va, pa, leaf_flags(pm, prot, wired))
}

/// pmap_enter of an unmanaged page (FreeBSD's shared page): the same,
/// unwired, but [`pmap_remove_pages`] will not remove it.
pub fn pmap_enter_unmanaged(
    pm: &Pmap,
    va: VirtAddr,
    pa: PhysAddr,
    prot: Prot,
) -> Result<(), PmapError> {
    enter(pm, va, pa, leaf_flags(pm, prot, false) | PG_UNMANAGED)
}

fn enter(pm: &Pmap, va: VirtAddr, pa: PhysAddr, flags: PageTableFlags) -> Result<(), PmapError> {
    let wired = flags.contains(PG_W);
    let va = va.as_u64();
    check_range(pm, va, va + PAGE_SIZE);
    assert!(
        pa.is_aligned(PAGE_SIZE),
        "pmap_enter: pa {pa:#x} not aligned"
    );
    let _guard = pm.lock.lock();
    let pt = walk_create(pm, va)?;
    let new = Pte::new(pa, flags);
    let old = Pte(entry(pt, index(va, 1)).swap(new.0, Ordering::SeqCst));
    let stats = &pm.pm_stats;
    if wired {
        stats.wired_count.fetch_add(1, Ordering::Relaxed);
    }
    if !old.present() {
        wire_count(pt).fetch_add(1, Ordering::Relaxed);
        stats.resident_count.fetch_add(1, Ordering::Relaxed);
        return Ok(());
    }
    if old.flags().contains(PG_W) {
        stats.wired_count.fetch_sub(1, Ordering::Relaxed);
    }
    let old_sw = Pte(old.0 & !HW_SET.bits());
    if old_sw == new {
        return Ok(());
    }
    let upgrade = is_write_upgrade(old_sw, new);
    if upgrade {
        stats::count(Event::PmapUpgrades);
    }
    // Mutant `mutant-cow-no-shoot`: a replacement by another frame (the
    // copy-on-write fault's) is taken for a fresh entry and not shot down.
    let skip = cfg!(feature = "mutant-cow-no-shoot") && old.addr() != new.addr();
    // `no-flush-cow` (Amit, Tai, Wei, "Don't shoot down TLB
    // shootdowns!", EuroSys 2020, copy-on-write): a write upgrade of the
    // same frame is shot down nowhere. Another CPU's stale entry is the
    // read-only one: reads through it see the same frame, and a write
    // through it faults, and a page fault invalidates the faulting
    // address's entries before the handler runs (Intel SDM vol. 3,
    // 4.10.4.1), which then finds the entry already writable. This CPU's
    // own entry goes with the fault that brought us here.
    // Mutant `mutant-cow-skip-copy`: the shortcut taken on "the old entry
    // was read-only" alone, so the copy of a still-shared frame (a new
    // frame) is not shot down either: other CPUs read the old frame
    // through their read-only entries while this thread writes the new.
    let skip = skip
        || (cfg!(feature = "no-flush-cow") && upgrade)
        || (cfg!(feature = "mutant-cow-skip-copy")
            && !old.flags().contains(PageTableFlags::WRITABLE)
            && new.flags().contains(PageTableFlags::WRITABLE));
    if skip {
        if upgrade {
            stats::count(Event::PmapUpgradesNoShoot);
        }
        super::shootdown::spare_shootpage(pm);
        // The memory-system model holds the change settled here, as if
        // shot down: a CPU left with another frame's entry is stale.
        super::shootdown::model_settled(super::shootdown::Request::Page(VirtAddr::new(va)));
        return Ok(());
    }
    chaos::point(Point::PteChanged);
    pmap_tlb_shootpage(pm, VirtAddr::new(va));
    pmap_tlb_shootwait();
    Ok(())
}

/// True if `new` maps the frame `old` maps, with the same flags plus
/// write access: a permission upgrade, which no stale entry can misuse.
fn is_write_upgrade(old: Pte, new: Pte) -> bool {
    old.addr() == new.addr()
        && !old.flags().contains(PageTableFlags::WRITABLE)
        && new.flags() == old.flags() | PageTableFlags::WRITABLE
}

/// Whether `pm`'s page tables already let user mode write (`write`) or
/// read the page at `va`. A user fault there was taken through an entry
/// the TLB still held from before a change that only added rights (a
/// stale read-only entry after a write upgrade no CPU was shot down for),
/// or lost a race with another thread resolving the same page; either way
/// the fault discarded the entry (Intel SDM vol. 3, 4.10.4.1) and the
/// retried access walks the tables (proc::fault counts these).
pub fn pmap_allows(pm: &Pmap, va: VirtAddr, write: bool) -> bool {
    let va = va.as_u64();
    let _guard = pm.lock.lock();
    let path = walk(pm, va);
    let Some(pt) = path.tables[1] else {
        return false;
    };
    let e = load(entry(pt, index(va, 1)));
    e.present()
        && e.flags().contains(PageTableFlags::USER_ACCESSIBLE)
        && (!write || e.flags().contains(PageTableFlags::WRITABLE))
}

/// Maps the kernel-virtual page at `va` to the frame at `pa` with `prot`
/// (unwired, unmanaged), replacing any mapping there, with a shootdown to
/// every other CPU if a valid entry was replaced (OpenBSD's
/// pmap_kenter_pa: "This shouldn't happen" there, but it is how the
/// shoot-storm workload remaps). The caller owns `va`: nobody else enters
/// or removes it meanwhile. Fails only for lack of memory for a PTP.
///
/// Locking: unlike pmap_enter, the kernel pmap's lock is held only while
/// the tables are walked (and PTPs created) and the entry swapped, not
/// across the shootdown: OpenBSD's pmap_kenter_pa and FreeBSD's
/// pmap_qenter take no pmap lock at all (their kernel PTPs are never
/// freed), so kernel remaps on different CPUs shoot down concurrently and
/// the shootdown protocol, not the pmap lock, is what serialises them.
/// No PTP is freed here, so none waits for the shootdown.
pub fn pmap_kenter_pa(va: VirtAddr, pa: PhysAddr, prot: Prot) -> Result<(), PmapError> {
    let pm = pmap_kernel();
    let va = va.as_u64();
    check_range(pm, va, va + PAGE_SIZE);
    assert!(
        pa.is_aligned(PAGE_SIZE),
        "pmap_kenter_pa: pa {pa:#x} not aligned"
    );
    let old = {
        let _guard = pm.lock.lock();
        let pt = walk_create(pm, va)?;
        let new = Pte::new(pa, leaf_flags(pm, prot, false));
        let old = Pte(entry(pt, index(va, 1)).swap(new.0, Ordering::SeqCst));
        if !old.present() {
            wire_count(pt).fetch_add(1, Ordering::Relaxed);
            pm.pm_stats.resident_count.fetch_add(1, Ordering::Relaxed);
        } else if old.flags().contains(PG_W) {
            pm.pm_stats.wired_count.fetch_sub(1, Ordering::Relaxed);
        }
        old
    };
    let new = Pte::new(pa, leaf_flags(pm, prot, false));
    // Mutant `mutant-kernel-no-shoot`: a kernel remap is not shot down.
    let shoot = !cfg!(feature = "mutant-kernel-no-shoot");
    if old.present() && Pte(old.0 & !HW_SET.bits()) != new {
        if shoot {
            chaos::point(Point::PteChanged);
            pmap_tlb_shootpage(pm, VirtAddr::new(va));
            pmap_tlb_shootwait();
        } else {
            // The model holds the remap settled on return (see pmap_enter).
            super::shootdown::model_settled(super::shootdown::Request::Page(VirtAddr::new(va)));
        }
    }
    Ok(())
}

/// Removes the mappings in `[sva, eva)` from `pm`, frees the PTPs that
/// empty, and shoots the range down ([`shoot_changed`]: as OpenBSD 2010,
/// one page only if it was mapped, a range always, a user range over 32
/// pages with shoottlb; under `freebsd-base` as FreeBSD, only if a valid
/// entry went, on the pmap's CPUs).
/// Counts the call, and returns early (counted) if nothing is resident
/// ([`pmap_nothing_resident`]), as FreeBSD's pmap_remove does.
pub fn pmap_remove(pm: &Pmap, sva: VirtAddr, eva: VirtAddr) {
    stats::count(Event::PmapRemoveCalls);
    #[cfg(feature = "gate-selftest-slow-remove")]
    gate_selftest_slow_remove();
    let (sva, eva) = (sva.as_u64(), eva.as_u64());
    check_range(pm, sva, eva);
    // FreeBSD amd64 pmap_remove: "Perform an unsynchronized read. This is,
    // however, safe." Nothing resident means no mapping and no PTP.
    if pmap_nothing_resident(pm) {
        stats::count(Event::PmapRemoveEarly);
        return;
    }
    let _guard = pm.lock.lock();
    let mut empty = PageList::new();
    let mut changed = PmapInval::new();
    if sva + PAGE_SIZE == eva {
        // OpenBSD: "removing one page? take shortcut function."
        let path = walk(pm, sva);
        if path.deepest() == 1 && remove_pte(pm, path.table(1), sva) {
            release_empty(pm, &path, sva, &mut empty);
            changed.add(sva);
        }
    } else {
        for_each_pt(pm, sva, eva, |path, start, end| {
            let pt = path.table(1);
            for va in (start..end).step_by(PAGE_SIZE as usize) {
                if remove_pte(pm, pt, va) {
                    changed.add(va);
                }
            }
            release_empty(pm, path, start, &mut empty);
        });
    }
    let _frees = super::shootdown::tables_freed(!empty.is_empty());
    chaos::point(Point::PteChanged);
    shoot_changed(pm, sva, eva, true, &mut changed);
    empty.free_all();
}

/// TEST ONLY (feature `gate-selftest-slow-remove`, in no variant of the
/// tree): a busy loop of a fixed instruction count, so that the gate's
/// self-test (`harness gate --self-test`, harness/src/verbs/selftest.rs)
/// can plant a timing regression in pmap_remove that tcg-icount's virtual
/// clock shows exactly.
#[cfg(feature = "gate-selftest-slow-remove")]
fn gate_selftest_slow_remove() {
    const ITERS: u64 = 10_000;
    for i in 0..ITERS {
        core::hint::black_box(i);
    }
}

/// Shoots down what a range operation of `pm` over `[sva, eva)` changed
/// (`changed`: the VAs whose entries it changed), and waits. `shortcut`:
/// pmap_remove, whose one-page case shoots only a page that was mapped.
/// One function, two bodies: the variant is which one is compiled.
///
/// OpenBSD 2010 (pmap.c 1.55/1.56 pmap_do_remove, pmap_write_protect): a
/// range is shot down whole, whatever it held; a user range over 32 pages
/// with pmap_tlb_shoottlb (every online CPU).
#[cfg(not(any(feature = "dfly-batch", feature = "freebsd-base")))]
fn shoot_changed(pm: &Pmap, sva: u64, eva: u64, shortcut: bool, changed: &mut PmapInval) {
    use super::shootdown::{pmap_tlb_shootrange, pmap_tlb_shoottlb_all_cpus};
    use lab_core::shoot::range_shoots_all;
    if shortcut && sva + PAGE_SIZE == eva {
        if changed.count() != 0 {
            // Negative control `lost-shootdown` (no system's code: a bug
            // made on purpose): removing one page of a user pmap
            // invalidates only this CPU's TLB and sends no IPI, so other
            // CPUs running the process's threads keep the old translation
            // (the frame is freed after this returns). munmap and
            // mmap(FIXED) of one page come here: the coherence oracle's
            // remap and munmap modes must catch it.
            #[cfg(feature = "lost-shootdown")]
            if !pm.is_kernel() {
                super::shootdown::pmap_tlb_shootpage_lost(pm, VirtAddr::new(sva));
            } else {
                pmap_tlb_shootpage(pm, VirtAddr::new(sva));
            }
            #[cfg(not(feature = "lost-shootdown"))]
            pmap_tlb_shootpage(pm, VirtAddr::new(sva));
        }
    } else if range_shoots_all(sva, eva, pm.is_kernel()) {
        pmap_tlb_shoottlb_all_cpus(pm);
    } else {
        pmap_tlb_shootrange(pm, VirtAddr::new(sva), VirtAddr::new(eva));
    }
    pmap_tlb_shootwait();
}

/// FreeBSD (`freebsd-base`, the base of seed 004's variants;
/// sys/amd64/amd64/pmap.c pmap_remove, pmap_remove_page, pmap_protect):
/// nothing unless a valid entry changed ("anyvalid", "anychanged"); then
/// pmap_remove's one-page shortcut invalidates that page, and any other
/// user range the pmap's whole TLB (pmap_invalidate_all), both on the CPUs
/// in `pm_cpus` only: an exiting single-threaded process interrupts no one.
/// Kernel ranges (global entries in FreeBSD) are invalidated as a range.
#[cfg(feature = "freebsd-base")]
fn shoot_changed(pm: &Pmap, sva: u64, eva: u64, shortcut: bool, changed: &mut PmapInval) {
    use super::shootdown::pmap_tlb_shootrange;
    if changed.count() == 0 {
        return;
    }
    if shortcut && sva + PAGE_SIZE == eva {
        pmap_tlb_shootpage(pm, VirtAddr::new(sva));
    } else if pm.is_kernel() {
        pmap_tlb_shootrange(pm, VirtAddr::new(sva), VirtAddr::new(eva));
    } else {
        pmap_tlb_shootpmap(pm);
    }
    pmap_tlb_shootwait();
}

#[cfg(all(feature = "freebsd-base", feature = "dfly-batch"))]
compile_error!("freebsd-base and dfly-batch are two shoot_changed bodies: pick one");

/// DragonFly (`dfly-batch`; seed 001's pmap_inval_flush, seed 002's
/// single-threaded shortcut): only the VAs that changed, in one IPI round
/// to the pmap's CPUs, none if nothing changed or no other CPU can cache
/// the pmap (mm::shootdown::dfly_batch).
#[cfg(all(feature = "dfly-batch", not(feature = "freebsd-base")))]
fn shoot_changed(pm: &Pmap, _sva: u64, _eva: u64, _shortcut: bool, changed: &mut PmapInval) {
    changed.flush(pm);
}

/// True if pmap_remove on `pm` would return at once: resident_count at
/// [`EMPTY_RESIDENT`] (an unsynchronized read, as FreeBSD's), or 0 for the
/// kernel pmap, which counts no top level in any variant. With
/// `count-top-level` alone this never holds for a live user pmap.
pub fn pmap_nothing_resident(pm: &Pmap) -> bool {
    let empty = if pm.is_kernel() { 0 } else { EMPTY_RESIDENT };
    pm.resident_count() == empty
}

/// Marks `pm` as dying: the last thread of its process (single-threaded
/// from here on) is tearing it down for exit or exec, with `pm` loaded on
/// this CPU; no thread of it will run user code again. Shootdowns of a
/// dying pmap are counted apart (`shoot.dying.ipis`) and, under
/// `dying-no-ipi`, sent to no other CPU (mm::shootdown).
pub fn pmap_set_dying(pm: &Pmap) {
    assert!(!pm.is_kernel(), "pmap_set_dying of the kernel pmap");
    pm.pm_dying.store(true, Ordering::Relaxed);
}

/// Removes every managed mapping of the user pmap `pm` (all but those of
/// [`pmap_enter_unmanaged`]) and frees the PTPs that empty, with one
/// invalidation of the whole pmap at the end on the CPUs in `pm_cpus`
/// (FreeBSD's amd64 pmap_remove_pages, which vmspace_exit and
/// exec_new_vmspace call on an address space that is going away, before
/// the per-entry pmap_remove calls). The leaf pages are the caller's to
/// free, after this returns. Counts the call.
pub fn pmap_remove_pages(pm: &Pmap) {
    assert!(!pm.is_kernel(), "pmap_remove_pages of the kernel pmap");
    stats::count(Event::PmapRemovePagesCalls);
    let _guard = pm.lock.lock();
    let mut empty = PageList::new();
    let mut changed = 0u64;
    for i in 0..256 {
        let e = entry(pm.pm_pml4, i);
        let pte = load(e);
        if pte.is_table() && remove_managed(pm, pte.frame(), 3, &mut empty, &mut changed) {
            e.swap(0, Ordering::SeqCst);
            wire_count(pm.pm_pml4).fetch_sub(1, Ordering::Relaxed);
            pm.pm_stats.resident_count.fetch_sub(1, Ordering::Relaxed);
            empty.push(pte.frame());
        }
    }
    if changed > 0 {
        let _frees = super::shootdown::tables_freed(!empty.is_empty());
        pmap_tlb_shootpmap(pm);
        pmap_tlb_shootwait();
    }
    empty.free_all();
}

/// Clears the managed leaves below the level-`level` PTP `table`, unlinks
/// (onto `empty`) the PTPs below it that empty, counts what changed, and
/// returns whether `table` itself is now empty.
fn remove_managed(
    pm: &Pmap,
    table: PhysFrame,
    level: u32,
    empty: &mut PageList,
    changed: &mut u64,
) -> bool {
    for i in 0..512 {
        let e = entry(table, i);
        let pte = load(e);
        if !pte.present() {
            continue;
        }
        if level == 1 {
            if pte.flags().contains(PG_UNMANAGED) {
                continue;
            }
            let old = Pte(e.swap(0, Ordering::SeqCst));
            if old.flags().contains(PG_W) {
                pm.pm_stats.wired_count.fetch_sub(1, Ordering::Relaxed);
            }
        } else if !pte.is_table() || !remove_managed(pm, pte.frame(), level - 1, empty, changed) {
            continue;
        } else {
            e.swap(0, Ordering::SeqCst);
            empty.push(pte.frame());
        }
        wire_count(table).fetch_sub(1, Ordering::Relaxed);
        pm.pm_stats.resident_count.fetch_sub(1, Ordering::Relaxed);
        *changed += 1;
    }
    wire_count(table).load(Ordering::Relaxed) == 0
}

/// Lowers the protection of the mappings in `[sva, eva)` of `pm` to
/// `prot`, as OpenBSD's amd64 pmap_protect: a `prot` with write access
/// changes nothing; one with neither read nor execute removes the range;
/// otherwise write access is taken away (and execute, if not in `prot`),
/// with a shootdown of the range (shoottlb for a user range over 32 pages).
pub fn pmap_protect(pm: &Pmap, sva: VirtAddr, eva: VirtAddr, prot: Prot) {
    if prot.contains(Prot::WRITE) {
        return;
    }
    if !prot.contains(Prot::READ) && !prot.contains(Prot::EXEC) {
        pmap_remove(pm, sva, eva);
        return;
    }
    let (sva, eva) = (sva.as_u64(), eva.as_u64());
    check_range(pm, sva, eva);
    let clear = PageTableFlags::WRITABLE.bits();
    let set = if !prot.contains(Prot::EXEC) && NX.load(Ordering::Relaxed) {
        PageTableFlags::NO_EXECUTE.bits()
    } else {
        0
    };
    let _guard = pm.lock.lock();
    let mut changed = PmapInval::new();
    for_each_pt(pm, sva, eva, |path, start, end| {
        let pt = path.table(1);
        for va in (start..end).step_by(PAGE_SIZE as usize) {
            let e = entry(pt, index(va, 1));
            if load(e).present() {
                let before = e.fetch_and(!clear, Ordering::SeqCst);
                e.fetch_or(set, Ordering::SeqCst);
                if before & clear != 0 || before & set != set {
                    changed.add(va);
                }
            }
        }
    });
    chaos::point(Point::PteChanged);
    shoot_changed(pm, sva, eva, false, &mut changed);
}

/// Makes `pm` this CPU's address space if `is_current` (the caller's
/// process is the one running here: OpenBSD's `p == curproc`): marks it in
/// use by this CPU in `pm_cpus`, then loads its PML4 into CR3. When the
/// process is not the current one (cpu_fork activating the child) nothing
/// happens; the context switch that runs it activates it then.
///
/// The bit is set before CR3 is loaded (OpenBSD 1.56 loads first) so no
/// TLB fill from the new tables can precede the bit that makes this CPU a
/// shootdown target.
pub fn pmap_activate(pm: &Pmap, is_current: bool) {
    let me = crate::arch::cpu_id();
    // Seed 000 (OpenBSD pmap.c 1.55 -> 1.56): 1.55 set this bit outside the
    // `if (p == curproc)`, so cpu_fork marked the parent's CPU in the
    // child's pmap. The `fork-inherit` variant is 1.55.
    let marks_this_cpu = is_current || cfg!(feature = "fork-inherit");
    if marks_this_cpu {
        pm.pm_cpus.fetch_or(1u64 << me, Ordering::SeqCst);
    }
    if is_current {
        // `pcid`: under the CPU's PCID for this pmap, flushed only if a
        // shootdown marked it stale (mm::pcid).
        if super::pcid::load(pm) {
            return;
        }
        // SAFETY: the PML4 maps the kernel half like every other pmap.
        unsafe { Cr3::write(pm.pm_pml4, Cr3Flags::empty()) };
    }
}

/// Marks `pm` no longer in use by this CPU. The caller has loaded another
/// pmap's tables first (the context switch, in FreeBSD pmap_activate_sw's
/// order), so no TLB entry of `pm` is used once the bit is clear.
pub fn pmap_deactivate(pm: &Pmap) {
    let me = crate::arch::cpu_id();
    pm.pm_cpus.fetch_and(!(1u64 << me), Ordering::SeqCst);
}

// ---- Read-only access for the pmap-selftest (workloads::pmap_inspect) ----

/// A page-table entry as read by [`read_entry`], decoded.
#[derive(Clone, Copy)]
pub(crate) struct EntryView(Pte);

impl EntryView {
    pub(crate) fn present(self) -> bool {
        self.0.present()
    }
    /// A table entry pointing further down (not a 2 MiB or 1 GiB page).
    pub(crate) fn is_table(self) -> bool {
        self.0.is_table()
    }
    pub(crate) fn frame(self) -> PhysFrame {
        self.0.frame()
    }
    pub(crate) fn addr(self) -> PhysAddr {
        self.0.addr()
    }
    pub(crate) fn flags(self) -> PageTableFlags {
        self.0.flags()
    }
    /// Entered wired (OpenBSD's PG_W).
    pub(crate) fn wired(self) -> bool {
        self.0.flags().contains(PG_W)
    }
}

/// Runs `f` with `pm`'s lock held, so its tables do not change under a
/// reader of [`read_entry`].
pub(crate) fn with_tables_locked<R>(pm: &Pmap, f: impl FnOnce() -> R) -> R {
    let _guard = pm.lock.lock();
    f()
}

/// Entry `i` of the page-table page `table`.
pub(crate) fn read_entry(table: PhysFrame, i: usize) -> EntryView {
    EntryView(load(entry(table, i)))
}

/// The valid-entry count the pmap keeps for the PTP `table` (its frame's
/// wire_count).
pub(crate) fn ptp_count(table: PhysFrame) -> u32 {
    wire_count(table).load(Ordering::Relaxed)
}
