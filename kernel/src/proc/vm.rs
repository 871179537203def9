//! A process's address space above the pmap: its VM map, page faults,
//! copy-on-write, mmap/munmap/mprotect, the kernel's access to user memory,
//! and the teardown at exit and exec.
//!
//! # Data structures
//!
//! A [`Vm`] is a pmap plus the VM map: `regions`, sorted and disjoint,
//! each a page-aligned range with a protection and a [`Kind`] (an ELF
//! segment, an anonymous mapping, the stack, the shared page), and `pages`,
//! the private frames of the address space by page address (UVM's anons,
//! flattened). The pmap is a cache of `pages`: a page is entered on a
//! fault (or eagerly at exec and fork) and can always be entered again from
//! `pages`; nothing the pmap holds is lost when it removes a mapping.
//!
//! A frame in `pages` may be shared with other address spaces after fork:
//! its owners are counted in its `frame::Page::refcount`. A shared frame is
//! only ever mapped read-only; a write fault copies it (copy-on-write) or,
//! if this address space has become its only owner, takes it over.
//!
//! The shared page (lab_core::syscall::SharedPage) is one page of the
//! kernel image, outside the frame allocator: the same physical page in
//! every process, entered read-only and unmanaged
//! (`pmap_enter_unmanaged`) when first touched, as FreeBSD's shared page.
//!
//! # Locking
//!
//! A process's `Vm` lives under its `vm` lock (process.rs), which every
//! function here needs (`&mut Vm`): faults, mmap & co., copyin/copyout. So
//! a fault concurrent with `mmap(FIXED)` waits for it and then resolves
//! against the new mapping. Lock order: vm, pmap, heap, frames.
//!
//! # Kernel access to user memory
//!
//! copyin/copyout never dereference user addresses: they resolve each page
//! as a fault would (so bad or forbidden ranges are `EFAULT`, and
//! copy-on-write and demand-zero happen as for the user), then copy through
//! the direct map while holding the vm lock, so no other thread can unmap
//! the page meanwhile. So the kernel runs with SMAP on and never needs a
//! fault handler for its own accesses to user space.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU64, Ordering};

use lab_core::limits::REGIONS_PER_PROC;
use lab_core::syscall::{
    user_range_ok, Errno, KillReason, MapFlags, Prot, SharedPage, IMAGE_BASE, MMAP_BASE, MMAP_END,
    PAGE_SIZE, USER_END,
};
use x86_64::structures::paging::PhysFrame;
use x86_64::{PhysAddr, VirtAddr};

use crate::arch::{smp, tsc};
use crate::memlayout::{phys_to_virt, virt_to_phys};
use crate::mm::frame::{self, Fill};
use crate::mm::heap;
use crate::mm::latr;
use crate::mm::pmap::{self, PmapHandle};
use crate::mm::shootdown::cause;
use crate::stats::{self, Event};
use lab_core::cause::ShootCause;

/// What backs a region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An ELF segment of the program (private copy, made at exec).
    Image,
    /// An anonymous mapping (mmap): demand-zero.
    Anon,
    /// The first thread's stack: demand-zero.
    Stack,
    /// The shared page: the one kernel page, read-only.
    Shared,
}

#[derive(Clone, Copy, Debug)]
pub struct Region {
    pub start: u64,
    pub end: u64,
    pub prot: Prot,
    pub kind: Kind,
}

/// The access a fault (or the kernel on the user's behalf) needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    Exec,
}

impl Region {
    /// Whether the region's protection allows `access` (on x86 any access
    /// right implies read).
    fn allows(&self, access: Access) -> bool {
        match access {
            Access::Read => self.prot.0 != 0,
            Access::Write => self.prot.contains(Prot::WRITE),
            Access::Exec => self.prot.contains(Prot::EXEC),
        }
    }

    fn overlaps(&self, s: u64, e: u64) -> bool {
        self.start < e && s < self.end
    }
}

/// Whether `b` may be joined to `a`, which it follows, as one region: what
/// BSD's map does after a change (FreeBSD sys/vm/vm_map.c,
/// vm_map_simplify_entry, whose vm_map_mergeable_neighbors asks for
/// adjacent entries with the same object at contiguous offsets, the same
/// flags, protection, maximum protection, inheritance, wiring and
/// credential). Here only adjacency, the protection and the kind can
/// differ: a region's pages live in the address space's one `pages` map
/// keyed by address, so two regions are always "one object at contiguous
/// offsets"; nothing is wired, every region is inherited by copy at fork,
/// and there is no maximum protection or credential. The kind must match
/// because it decides what a region allows (munmap refuses image and
/// shared-page regions) and how a fault fills it.
fn mergeable(a: &Region, b: &Region) -> bool {
    a.end == b.start && a.prot == b.prot && a.kind == b.kind
}

/// Why an address space is being taken down (which counters it feeds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Teardown {
    Exit,
    Exec,
}

pub struct Vm {
    pub pmap: PmapHandle,
    regions: Vec<Region>,
    pages: BTreeMap<u64, PhysFrame>,
    /// `lazy-latr` (mm::latr): ranges a munmap left to the other CPUs'
    /// next sweep, with their frames; neither is reused before its time
    /// bound (empty without the feature).
    quarantine: latr::Quarantine,
}

// ---- The shared page and the clock -----------------------------------------

#[repr(C, align(4096))]
struct SharedFrame(UnsafeCell<[u8; PAGE_SIZE as usize]>);
// SAFETY: written once by init_shared_page before any process exists,
// read-only afterwards.
unsafe impl Sync for SharedFrame {}

static SHARED_FRAME: SharedFrame = SharedFrame(UnsafeCell::new([0; PAGE_SIZE as usize]));
/// TSC value at the clock's zero.
static TSC_BASE: AtomicU64 = AtomicU64::new(0);

/// Fills the shared page (CPU count and the TSC clock parameters) and sets
/// the clock's zero. Once, before the first process.
pub fn init_shared_page() {
    let base = tsc::now();
    TSC_BASE.store(base, Ordering::Relaxed);
    let page = SharedPage::new(smp::online().len(), tsc::hz(), base);
    // SAFETY: no process exists yet, so nothing reads the page.
    unsafe { (SHARED_FRAME.0.get() as *mut SharedPage).write(page) };
}

fn shared_pa() -> PhysAddr {
    virt_to_phys(VirtAddr::from_ptr(SHARED_FRAME.0.get()))
}

/// Monotonic nanoseconds since the clock's zero (the `clock` call; the
/// shared page gives user programs the same clock).
pub fn clock_ns() -> u64 {
    tsc::cycles_to_ns(tsc::now().saturating_sub(TSC_BASE.load(Ordering::Relaxed)))
}

// ---- Frames ------------------------------------------------------------------

/// A new frame owned once (refcount 1).
fn new_page(fill: Fill) -> Option<PhysFrame> {
    let f = frame::alloc(fill)?;
    frame::page(f).refcount.store(1, Ordering::Relaxed);
    Some(f)
}

fn refs(f: PhysFrame) -> u32 {
    frame::page(f).refcount.load(Ordering::Acquire)
}

fn share(f: PhysFrame) {
    frame::page(f).refcount.fetch_add(1, Ordering::Relaxed);
}

/// Drops one owner of `f`; the last one frees it. Its mappings must be
/// gone from every TLB (the caller's pmap operation waited for that).
fn unref(f: PhysFrame) {
    if frame::page(f).refcount.fetch_sub(1, Ordering::AcqRel) == 1 {
        frame::free(f);
    }
}

fn bytes_of(f: PhysFrame) -> *mut u8 {
    phys_to_virt(f.start_address().as_u64()).as_mut_ptr()
}

/// The pmap protection for a region's `prot`, without write access unless
/// `writable` (a frame shared copy-on-write is entered read-only).
fn pmap_prot(prot: Prot, writable: bool) -> pmap::Prot {
    let mut p = pmap::Prot::READ;
    if writable && prot.contains(Prot::WRITE) {
        p = p | pmap::Prot::WRITE;
    }
    if prot.contains(Prot::EXEC) {
        p = p | pmap::Prot::EXEC;
    }
    p
}

fn va(addr: u64) -> VirtAddr {
    VirtAddr::new(addr)
}

const fn page_of(addr: u64) -> u64 {
    addr & !(PAGE_SIZE - 1)
}

impl Vm {
    /// An empty address space (a fresh pmap).
    pub fn new() -> Result<Vm, Errno> {
        Ok(Vm {
            pmap: pmap::pmap_create().map_err(|_| Errno::ENOMEM)?,
            regions: Vec::new(),
            pages: BTreeMap::new(),
            quarantine: latr::Quarantine::new(),
        })
    }

    /// `lazy-latr`: `start` of a new mapping of `len` bytes moved past the
    /// quarantined ranges where there is room (LATR delays the reuse of
    /// unmapped addresses), else those ranges settled (mm::latr). `start`
    /// itself without the feature.
    fn avoid_quarantine(&mut self, mut start: u64, len: u64) -> u64 {
        for _ in 0..8 {
            let Some(end) = self.quarantine.clash(start, start + len) else {
                return start;
            };
            match self.find_free(end, len) {
                Some(next) => start = next,
                None => break,
            }
        }
        self.quarantine
            .release(latr::Needed::Range(start, start + len), unref);
        start
    }

    fn region_at(&self, addr: u64) -> Option<Region> {
        self.regions
            .iter()
            .find(|r| r.start <= addr && addr < r.end)
            .copied()
    }

    fn overlaps(&self, s: u64, e: u64, pred: impl Fn(&Region) -> bool) -> bool {
        self.regions.iter().any(|r| r.overlaps(s, e) && pred(r))
    }

    /// Adds a region where there is none (exec, mmap). ENOMEM if the
    /// map cannot grow.
    pub fn add_region(&mut self, r: Region) -> Result<(), Errno> {
        debug_assert!(!self.overlaps(r.start, r.end, |_| true));
        self.regions.try_reserve(1).map_err(|_| Errno::ENOMEM)?;
        let at = self.regions.partition_point(|x| x.start < r.start);
        self.regions.insert(at, r);
        Ok(())
    }

    /// The map as it would be after a change of `[s, e)`: regions clipped
    /// at `s` and `e`, each piece inside replaced by `inside(piece)` (None
    /// removes it), `new` put in the hole, and neighbours that
    /// [`mergeable`] allows joined. Nothing changes yet: the caller checks
    /// the result before it touches the pmap, so a refused call has no
    /// effect. ENOMEM only if the result would hold more than
    /// lab_core::limits::REGIONS_PER_PROC regions, which needs a split
    /// (or a new region) the merges do not pay for, or if the map grows
    /// and the heap is short; removing or changing whole regions never
    /// grows it.
    fn planned(
        &self,
        s: u64,
        e: u64,
        inside: impl Fn(Region) -> Option<Region>,
        new: Option<Region>,
    ) -> Result<Vec<Region>, Errno> {
        let mut out: Vec<Region> = Vec::new();
        // At most two pieces more than now (a region clipped at both ends)
        // and the new one, before merging.
        out.try_reserve_exact(self.regions.len() + 3)
            .map_err(|_| Errno::ENOMEM)?;
        let push = |out: &mut Vec<Region>, r: Region| match out.last_mut() {
            Some(last) if mergeable(last, &r) => last.end = r.end,
            _ => out.push(r),
        };
        let mut new = new;
        for &r in &self.regions {
            if r.start >= s {
                if let Some(n) = new.take() {
                    push(&mut out, n);
                }
            }
            if !r.overlaps(s, e) {
                push(&mut out, r);
                continue;
            }
            if r.start < s {
                push(&mut out, Region { end: s, ..r });
            }
            let piece = Region {
                start: r.start.max(s),
                end: r.end.min(e),
                ..r
            };
            if let Some(p) = inside(piece) {
                push(&mut out, p);
            }
            if let Some(n) = new.take() {
                push(&mut out, n);
            }
            if r.end > e {
                push(&mut out, Region { start: e, ..r });
            }
        }
        if let Some(n) = new {
            push(&mut out, n);
        }
        let grows = out.len() > self.regions.len();
        if out.len() > REGIONS_PER_PROC || (grows && !heap::room()) {
            return Err(Errno::ENOMEM);
        }
        Ok(out)
    }

    // ---- Faults ----------------------------------------------------------

    /// Makes the page of `addr` accessible for `access` in this address
    /// space, as its region allows: enters the shared page, a private
    /// frame already there, a copy of a shared frame (copy-on-write write
    /// fault), or a new zeroed frame (demand-zero). Returns the frame. Fails
    /// with the reason to kill the process: no region or a forbidden
    /// access (page fault), or no memory.
    pub fn resolve(&mut self, addr: u64, access: Access) -> Result<PhysFrame, KillReason> {
        let page = page_of(addr);
        let r = self.region_at(addr).ok_or(KillReason::PageFault)?;
        if !r.allows(access) {
            return Err(KillReason::PageFault);
        }
        // The only entry a fault replaces is a read-only one made writable
        // (a copy, or a frame no longer shared): copy-on-write.
        let _cause = cause::set(ShootCause::Cow);
        let oom = |_| KillReason::OutOfMemory;
        if r.kind == Kind::Shared {
            let pa = shared_pa();
            pmap::pmap_enter_unmanaged(&self.pmap, va(page), pa, pmap::Prot::READ).map_err(oom)?;
            return Ok(PhysFrame::containing_address(pa));
        }
        let enter = |f: PhysFrame, writable: bool| {
            pmap::pmap_enter(
                &self.pmap,
                va(page),
                f.start_address(),
                pmap_prot(r.prot, writable),
                false,
            )
        };
        match self.pages.get(&page).copied() {
            Some(old) if access == Access::Write && refs(old) > 1 => {
                let new = new_page(Fill::Any).ok_or(KillReason::OutOfMemory)?;
                // SAFETY: both frames are ours, reached through the direct
                // map; `new` is not mapped anywhere yet.
                unsafe {
                    core::ptr::copy_nonoverlapping(bytes_of(old), bytes_of(new), PAGE_SIZE as usize)
                };
                if let Err(e) = enter(new, true) {
                    unref(new);
                    return Err(oom(e));
                }
                self.pages.insert(page, new);
                // After pmap_enter's shootdown: no TLB maps `old` for us.
                unref(old);
                stats::count(Event::VmCowCopies);
                Ok(new)
            }
            Some(f) => {
                enter(f, refs(f) == 1).map_err(oom)?;
                Ok(f)
            }
            None => {
                if !heap::room() {
                    return Err(KillReason::OutOfMemory);
                }
                let new = new_page(Fill::Zeroed).ok_or(KillReason::OutOfMemory)?;
                if let Err(e) = enter(new, true) {
                    unref(new);
                    return Err(oom(e));
                }
                self.pages.insert(page, new);
                Ok(new)
            }
        }
    }

    // ---- Kernel access to user memory -----------------------------------

    /// Resolves every page of `[addr, addr + len)` for `access` and calls
    /// `f(kernel pointer, offset in the range, bytes)` for each piece.
    /// `EFAULT` if the range leaves user space or a page cannot be
    /// resolved; a zero-length range is never touched.
    fn user_pages(
        &mut self,
        addr: u64,
        len: u64,
        access: Access,
        mut f: impl FnMut(*mut u8, usize, usize),
    ) -> Result<(), Errno> {
        if len == 0 {
            return Ok(());
        }
        if !user_range_ok(addr, len) {
            return Err(Errno::EFAULT);
        }
        let mut done = 0;
        while done < len {
            let at = addr + done;
            let off = at % PAGE_SIZE;
            let n = (PAGE_SIZE - off).min(len - done);
            let frame = self.resolve(at, access).map_err(|_| Errno::EFAULT)?;
            // SAFETY: `off + n` stays inside the frame.
            let p = unsafe { bytes_of(frame).add(off as usize) };
            f(p, done as usize, n as usize);
            done += n;
        }
        Ok(())
    }

    /// Copies `buf.len()` bytes from user address `addr` into `buf`.
    pub fn copyin(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), Errno> {
        self.user_pages(addr, buf.len() as u64, Access::Read, |p, off, n| {
            // SAFETY: `p` points at `n` readable bytes of a resolved page.
            unsafe { core::ptr::copy_nonoverlapping(p, buf[off..].as_mut_ptr(), n) }
        })
    }

    /// Copies `data` to user address `addr`.
    pub fn copyout(&mut self, addr: u64, data: &[u8]) -> Result<(), Errno> {
        self.user_pages(addr, data.len() as u64, Access::Write, |p, off, n| {
            // SAFETY: `p` points at `n` bytes of a private writable page.
            unsafe { core::ptr::copy_nonoverlapping(data[off..].as_ptr(), p, n) }
        })
    }

    /// Checks that `[addr, addr + len)` may be written (resolving it), so a
    /// later copyout cannot fail: for calls that must fail without effect.
    pub fn check_writable(&mut self, addr: u64, len: u64) -> Result<(), Errno> {
        self.user_pages(addr, len, Access::Write, |_, _, _| {})
    }

    /// Writes `bytes` at `addr` of an address space being built (exec):
    /// each page touched gets a zeroed private frame (if it has none), is
    /// filled through the direct map and entered with its region's
    /// protection. The region must exist.
    pub fn load_bytes(&mut self, addr: u64, bytes: &[u8]) -> Result<(), Errno> {
        let _cause = cause::set(ShootCause::Exec);
        let end = addr + bytes.len() as u64;
        let mut page = page_of(addr);
        while page < end {
            let r = self.region_at(page).ok_or(Errno::EINVAL)?;
            let f = match self.pages.get(&page) {
                Some(&f) => f,
                None => {
                    if !heap::room() {
                        return Err(Errno::ENOMEM);
                    }
                    let f = new_page(Fill::Zeroed).ok_or(Errno::ENOMEM)?;
                    self.pages.insert(page, f);
                    f
                }
            };
            let from = addr.max(page);
            let to = end.min(page + PAGE_SIZE);
            let src = &bytes[(from - addr) as usize..(to - addr) as usize];
            // SAFETY: a private frame of this unloaded address space.
            unsafe {
                let dst = bytes_of(f).add((from - page) as usize);
                core::ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len());
            }
            pmap::pmap_enter(
                &self.pmap,
                va(page),
                f.start_address(),
                pmap_prot(r.prot, true),
                false,
            )
            .map_err(|_| Errno::ENOMEM)?;
            page += PAGE_SIZE;
        }
        Ok(())
    }

    // ---- mmap, munmap, mprotect ------------------------------------------

    /// The `mmap` call (see lab_core::syscall::Sys::Mmap). A FIXED mapping
    /// replaces what was there in the same step, under the vm lock.
    pub fn mmap(&mut self, addr: u64, len: u64, prot: u64, flags: u64) -> Result<u64, Errno> {
        let prot = Prot::from_bits(prot).ok_or(Errno::EINVAL)?;
        let flags = MapFlags::from_bits(flags).ok_or(Errno::EINVAL)?;
        let len = whole_pages(len)?;
        if len > USER_END {
            return Err(Errno::EINVAL);
        }
        let start = if flags.contains(MapFlags::FIXED) {
            if !addr.is_multiple_of(PAGE_SIZE) || addr < IMAGE_BASE || !user_range_ok(addr, len) {
                return Err(Errno::EINVAL);
            }
            if self.overlaps(addr, addr + len, |r| r.kind != Kind::Anon) {
                return Err(Errno::EINVAL);
            }
            // What it replaces goes, the new region joins its neighbours
            // where it can: nothing changes unless the result fits.
            let plan = self.planned(addr, addr + len, |_| None, Some(anon(addr, len, prot)))?;
            self.quarantine
                .release(latr::Needed::Range(addr, addr + len), unref);
            let _cause = cause::set(ShootCause::MmapReplace);
            self.unmap(addr, addr + len, plan);
            addr
        } else {
            let start = self.find_free(addr, len).ok_or(Errno::ENOMEM)?;
            let start = self.avoid_quarantine(start, len);
            self.regions =
                self.planned(start, start + len, |_| None, Some(anon(start, len, prot)))?;
            start
        };
        Ok(start)
    }

    /// A free range of `len` bytes in the mmap area: `hint` if it is one,
    /// else the lowest (first fit).
    fn find_free(&self, hint: u64, len: u64) -> Option<u64> {
        let fits = |s: u64| {
            s.is_multiple_of(PAGE_SIZE)
                && s >= MMAP_BASE
                && s.checked_add(len).is_some_and(|e| e <= MMAP_END)
                && !self.overlaps(s, s + len, |_| true)
        };
        if hint != 0 && fits(hint) {
            return Some(hint);
        }
        let mut s = MMAP_BASE;
        for r in &self.regions {
            if r.end <= s {
                continue;
            }
            if r.start >= s + len {
                break;
            }
            s = r.end;
        }
        (s + len <= MMAP_END).then_some(s)
    }

    /// The `munmap` call: ranges in the image or the shared page are refused.
    pub fn munmap(&mut self, addr: u64, len: u64) -> Result<(), Errno> {
        if !addr.is_multiple_of(PAGE_SIZE) {
            return Err(Errno::EINVAL);
        }
        let len = whole_pages(len)?;
        if !user_range_ok(addr, len) {
            return Err(Errno::EINVAL);
        }
        if self.overlaps(addr, addr + len, |r| {
            matches!(r.kind, Kind::Image | Kind::Shared)
        }) {
            return Err(Errno::EINVAL);
        }
        // Only a region cut in two by a hole in its middle grows the map:
        // removing whole regions always fits.
        let plan = self.planned(addr, addr + len, |_| None, None)?;
        self.quarantine.release(latr::Needed::Nothing, unref);
        let _cause = cause::set(ShootCause::Munmap);
        self.unmap(addr, addr + len, plan);
        Ok(())
    }

    /// Removes everything in `[s, e)`: removes the pages of each region
    /// piece in it from the pmap (one pmap_remove per piece, as UVM's
    /// unmap does per map entry; it shoots down and waits), makes `plan`
    /// ([`Self::planned`] for the call) the map, then drops the frames.
    /// Nothing here allocates but the page records' split.
    fn unmap(&mut self, s: u64, e: u64, plan: Vec<Region>) {
        for r in self.regions.iter().filter(|r| r.overlaps(s, e)) {
            pmap::pmap_remove(&self.pmap, va(r.start.max(s)), va(r.end.min(e)));
        }
        self.regions = plan;
        let mut inside = self.pages.split_off(&s);
        let mut after = inside.split_off(&e);
        self.pages.append(&mut after);
        // `lazy-latr`: if the removes left records instead of IPIs, other
        // CPUs may still reach these frames until their next sweep; they
        // and the range wait in quarantine (mm::latr). Else freed now.
        self.quarantine.hold(s, e, inside.into_values(), unref);
    }

    /// The `mprotect` call. Rights taken away are taken from the pmap at
    /// once (pmap_protect, or pmap_remove for no access); rights added are
    /// entered by the next fault.
    pub fn mprotect(&mut self, addr: u64, len: u64, prot: u64) -> Result<(), Errno> {
        let prot = Prot::from_bits(prot).ok_or(Errno::EINVAL)?;
        if !addr.is_multiple_of(PAGE_SIZE) {
            return Err(Errno::EINVAL);
        }
        let len = whole_pages(len)?;
        if !user_range_ok(addr, len) {
            return Err(Errno::ENOMEM);
        }
        let (s, e) = (addr, addr + len);
        // Wholly mapped?
        let mut at = s;
        for r in &self.regions {
            if r.end <= at {
                continue;
            }
            if r.start > at {
                break;
            }
            at = r.end;
            if at >= e {
                break;
            }
        }
        if at < e {
            return Err(Errno::ENOMEM);
        }
        if self.overlaps(s, e, |r| r.kind == Kind::Shared) {
            return Err(Errno::EINVAL);
        }
        // Only the pieces whose protection changes are split off, and they
        // join neighbours of the same protection: an mprotect that changes
        // nothing leaves the map as it is, and one that undoes an earlier
        // one gives back its regions.
        let plan = self.planned(s, e, |r| Some(Region { prot, ..r }), None)?;
        let mut changed: Vec<(u64, u64, Prot)> = Vec::new();
        let pieces = self
            .regions
            .iter()
            .filter(|r| r.overlaps(s, e) && r.prot != prot)
            .count();
        changed
            .try_reserve_exact(pieces)
            .map_err(|_| Errno::ENOMEM)?;
        changed.extend(
            self.regions
                .iter()
                .filter(|r| r.overlaps(s, e) && r.prot != prot)
                .map(|r| (r.start.max(s), r.end.min(e), r.prot)),
        );
        self.regions = plan;
        let _cause = cause::set(ShootCause::Mprotect);
        for (ms, me, old) in changed {
            let lost_write = old.contains(Prot::WRITE) && !prot.contains(Prot::WRITE);
            let lost_exec = old.contains(Prot::EXEC) && !prot.contains(Prot::EXEC);
            if prot.0 == 0 || (lost_exec && prot.contains(Prot::WRITE)) {
                // No access left (or only NX to add, which OpenBSD's
                // pmap_protect skips for a writable protection): remove;
                // the next allowed access enters the page again.
                pmap::pmap_remove(&self.pmap, va(ms), va(me));
            } else if lost_write || lost_exec {
                pmap::pmap_protect(&self.pmap, va(ms), va(me), pmap_prot(prot, false));
            }
        }
        Ok(())
    }

    // ---- fork and teardown -----------------------------------------------

    /// The child's address space at fork: the same regions, every private
    /// frame shared copy-on-write (one more owner, entered read-only in the
    /// child's pmap), and the parent's writable pages write-protected: one
    /// pmap_protect per writable region over the span of its resident
    /// pages (a main source of shootdowns, on the CPUs running the parent).
    pub fn fork_copy(&mut self) -> Result<Vm, Errno> {
        let _cause = cause::set(ShootCause::ForkProtect);
        let mut child = Vm::new()?;
        if child.regions.try_reserve_exact(self.regions.len()).is_err() {
            child.discard();
            return Err(Errno::ENOMEM);
        }
        child.regions.extend_from_slice(&self.regions);
        for r in &self.regions {
            for (&page, &f) in self.pages.range(r.start..r.end) {
                share(f);
                child.pages.insert(page, f);
                if r.prot.0 == 0 {
                    continue;
                }
                let entered = pmap::pmap_enter(
                    &child.pmap,
                    va(page),
                    f.start_address(),
                    pmap_prot(r.prot, false),
                    false,
                );
                if entered.is_err() {
                    child.discard();
                    return Err(Errno::ENOMEM);
                }
            }
        }
        // Mutant `mutant-fork-no-shoot` (mm::shootdown): the write-protect
        // below is invalidated on this CPU only.
        #[cfg(feature = "mutant-fork-no-shoot")]
        crate::mm::shootdown::FORK_LOCAL_ONLY[crate::arch::cpu_id() as usize]
            .store(true, Ordering::Relaxed);
        for r in &self.regions {
            if !r.prot.contains(Prot::WRITE) {
                continue;
            }
            let mut resident = self.pages.range(r.start..r.end);
            if let Some((&first, _)) = resident.next() {
                let last = resident.next_back().map_or(first, |(&p, _)| p);
                pmap::pmap_protect(
                    &self.pmap,
                    va(first),
                    va(last + PAGE_SIZE),
                    pmap_prot(r.prot, false),
                );
            }
        }
        #[cfg(feature = "mutant-fork-no-shoot")]
        crate::mm::shootdown::FORK_LOCAL_ONLY[crate::arch::cpu_id() as usize]
            .store(false, Ordering::Relaxed);
        Ok(child)
    }

    /// Frees an address space that never ran (a failed exec or fork): its
    /// frames, then its pmap (not loaded anywhere).
    pub fn discard(self) {
        let Vm { pmap, pages, .. } = self;
        drop(pmap);
        for (_, f) in pages {
            unref(f);
        }
    }

    /// Takes the address space down in FreeBSD's order (vmspace_exit,
    /// exec_new_vmspace; seed 004, D32569): marks the pmap dying (only the
    /// calling thread is left), under `unmap-shared-page` removes the
    /// shared page, then pmap_remove_pages (every managed page, one
    /// invalidation of the pmap at the end), then one pmap_remove per
    /// region (each returns at once if nothing is resident, counted as an
    /// early return), then the frames are dropped. Returns the
    /// pmap, which the caller unloads from this CPU and then drops (the
    /// last reference: pmap_destroy). Called by the last thread with the
    /// pmap loaded on this CPU only.
    pub fn teardown(mut self, why: Teardown) -> PmapHandle {
        // `lazy-latr`: the frames go back now, so every record must be
        // applied first.
        self.quarantine.release(latr::Needed::All, unref);
        let Vm {
            pmap,
            regions,
            pages,
            ..
        } = self;
        let _cause = cause::set(match why {
            Teardown::Exit => ShootCause::Exit,
            Teardown::Exec => ShootCause::Exec,
        });
        pmap::pmap_set_dying(&pmap);
        // FreeBSD D32569 as landed (seed 004; sys/kern/kern_exec.c
        // exec_free_abi_mappings, called from exec_new_vmspace and exit1):
        // "Remove shared page(s) from vm_map manually before destroying
        // the vmspace, on exec and exit", with pmap_remove as markj asked.
        // pmap_remove_pages leaves the unmanaged shared page, so without
        // this a process that touched it keeps resident_count above the
        // top level and every per-region pmap_remove below does a full
        // walk (and, over 32 pages, a shoottlb to every CPU). Not counted
        // as a per-region exit/exec call.
        #[cfg(feature = "unmap-shared-page")]
        for r in regions.iter().filter(|r| r.kind == Kind::Shared) {
            let _cause = cause::set(ShootCause::SharedPage);
            pmap::pmap_remove(&pmap, va(r.start), va(r.end));
        }
        pmap::pmap_remove_pages(&pmap);
        let (calls, early) = match why {
            Teardown::Exit => (Event::PmapRemoveExitCalls, Event::PmapRemoveExitEarly),
            Teardown::Exec => (Event::PmapRemoveExecCalls, Event::PmapRemoveExecEarly),
        };
        for r in &regions {
            stats::count(calls);
            if pmap::pmap_nothing_resident(&pmap) {
                stats::count(early);
            }
            pmap::pmap_remove(&pmap, va(r.start), va(r.end));
        }
        for (_, f) in pages {
            unref(f);
        }
        pmap
    }
}

/// A new anonymous region, as mmap makes.
fn anon(start: u64, len: u64, prot: Prot) -> Region {
    Region {
        start,
        end: start + len,
        prot,
        kind: Kind::Anon,
    }
}

/// `len` rounded up to whole pages, for mmap, munmap and mprotect: EINVAL
/// for a zero length or one that overflows when rounded.
fn whole_pages(len: u64) -> Result<u64, Errno> {
    if len == 0 {
        return Err(Errno::EINVAL);
    }
    len.checked_next_multiple_of(PAGE_SIZE).ok_or(Errno::EINVAL)
}
