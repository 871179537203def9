//! Physical frame allocator.
//!
//! Data structures. Every physical frame below the highest usable one has a
//! [`Page`] record (OpenBSD's `struct vm_page`) in one array, indexed by
//! frame number and allocated at boot from usable RAM. Free frames are on a
//! doubly linked free list threaded through their records (`next`/`prev`
//! frame numbers), so alloc and free are O(1) and a frame in the middle of
//! the list can be unlinked in O(1) (which [`alloc_contiguous`] needs). The
//! frames themselves are not written while free, so nothing a stale TLB or
//! paging-structure cache still points at is disturbed until reuse.
//!
//! What is managed: RAM the PVH memory map calls usable, at or above 1 MiB
//! (below it: the BIOS area and the AP start-up trampoline), below 4 GiB
//! (the boot direct map covers only the first 4 GiB, and every frame is
//! reached through it), minus the kernel image (1 MiB up to `__kernel_end`,
//! which includes the boot page tables and stack), the loader's start info,
//! memory map and command line, and the `Page` array itself.
//!
//! `Page::wire_count` belongs to the frame's owner, not to the allocator:
//! the pmap keeps in it the number of valid entries of a page-table page
//! (OpenBSD's ptp `wire_count`). It must be zero when a frame is freed.
//!
//! Locking: one spin lock over the free list and the count. Zeroing is done
//! outside it. Lock order: pmap lock, heap lock, then this one.

use core::sync::atomic::{AtomicU32, Ordering};

use lab_core::physmem::{self, Range, PAGE_SIZE};
use x86_64::structures::paging::PhysFrame;
use x86_64::PhysAddr;

use super::lock::SpinLock;
use crate::boot::start_info::StartInfo;
use crate::memlayout::{phys_to_virt, virt_to_phys, DIRECT_MAP_SIZE};

/// The per-frame record (`struct vm_page`).
pub struct Page {
    /// Free-list links (frame numbers, [`NIL`] for none); while the frame is
    /// allocated, `next` links private lists of its owner ([`PageList`]).
    next: AtomicU32,
    prev: AtomicU32,
    flags: AtomicU32,
    /// The owner's count: valid entries of a page-table page.
    pub wire_count: AtomicU32,
    /// References to a user page (proc::vm): the address spaces whose VM
    /// map holds it, so that copy-on-write knows whether a write fault may
    /// take the page over or must copy it. Set by its owner on allocation.
    pub refcount: AtomicU32,
}

const NIL: u32 = u32::MAX;
const PG_FREE: u32 = 1;

/// Zero the frame on allocation or not.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    Zeroed,
    Any,
}

/// Why the frame allocator could not be set up.
#[derive(Debug)]
pub enum FrameError {
    NoUsableMemory,
    TooManyRanges,
    NoRoomForPageArray(u64),
}

impl core::fmt::Display for FrameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FrameError::NoUsableMemory => {
                f.write_str("the memory map has no usable RAM between 1 MiB and 4 GiB")
            }
            FrameError::TooManyRanges => f.write_str("the memory map has too many usable ranges"),
            FrameError::NoRoomForPageArray(bytes) => {
                write!(f, "no usable range holds the {bytes}-byte page array")
            }
        }
    }
}

struct FreeList {
    head: u32,
    free: u64,
}

struct Frames {
    pages: &'static [Page],
    total: u64,
    list: SpinLock<FreeList>,
}

static FRAMES: spin::Once<Frames> = spin::Once::new();

fn frames() -> &'static Frames {
    FRAMES.get().expect("frame allocator used before mm::init")
}

fn pfn(frame: PhysFrame) -> u32 {
    (frame.start_address().as_u64() / PAGE_SIZE) as u32
}

fn frame_of(pfn: u32) -> PhysFrame {
    PhysFrame::containing_address(PhysAddr::new(u64::from(pfn) * PAGE_SIZE))
}

extern "C" {
    /// End of the kernel image (linker.ld), a kernel-image address.
    static __kernel_end: u8;
}

/// Sets up the allocator from the loader's memory map. Called once, on the
/// boot CPU, before anything allocates.
pub fn init(info: &StartInfo, start_info_phys: u64) -> Result<(), FrameError> {
    // SAFETY: only the symbol's address is taken.
    let kernel_end = virt_to_phys(x86_64::VirtAddr::from_ptr(&raw const __kernel_end));
    let span = |ptr: *const u8, len: usize| {
        let start = virt_to_phys(x86_64::VirtAddr::from_ptr(ptr)).as_u64();
        Range::new(start, start + len as u64)
    };
    let reserved = [
        Range::new(0, 1 << 20),
        Range::new(1 << 20, kernel_end.as_u64()),
        Range::new(start_info_phys, start_info_phys + 64),
        span(
            info.memory_map.as_ptr().cast(),
            core::mem::size_of_val(info.memory_map),
        ),
        span(info.cmdline.as_ptr(), info.cmdline.len().max(1)),
    ];
    let usable = info
        .memory_map
        .iter()
        .filter(|r| r.is_usable())
        .map(|r| Range::new(r.addr, r.addr.saturating_add(r.size)));
    let mut ranges = [Range::default(); 64];
    let n = physmem::usable_frames(usable, &reserved, 0, DIRECT_MAP_SIZE, &mut ranges)
        .map_err(|_| FrameError::TooManyRanges)?;
    let ranges = &mut ranges[..n];
    let top = ranges.last().ok_or(FrameError::NoUsableMemory)?.end;

    // The Page array: one record per frame below `top`, from the first
    // range large enough.
    let npages = (top / PAGE_SIZE) as usize;
    let bytes = (npages * core::mem::size_of::<Page>()) as u64;
    let bytes = bytes.div_ceil(PAGE_SIZE) * PAGE_SIZE;
    let home = ranges
        .iter_mut()
        .find(|r| r.len() >= bytes)
        .ok_or(FrameError::NoRoomForPageArray(bytes))?;
    let array = phys_to_virt(home.start).as_mut_ptr::<Page>();
    home.start += bytes;
    for i in 0..npages {
        // SAFETY: `array` is the direct-map address of `bytes` bytes of
        // usable RAM now owned by the allocator, room for `npages` records.
        unsafe {
            array.add(i).write(Page {
                next: AtomicU32::new(NIL),
                prev: AtomicU32::new(NIL),
                flags: AtomicU32::new(0),
                wire_count: AtomicU32::new(0),
                refcount: AtomicU32::new(0),
            })
        };
    }
    // SAFETY: initialised just above, never freed.
    let pages = unsafe { core::slice::from_raw_parts(array, npages) };

    let mut list = FreeList { head: NIL, free: 0 };
    // Push from the top down so the lowest frames are handed out first.
    for r in ranges.iter().rev() {
        let mut a = r.end;
        while a > r.start {
            a -= PAGE_SIZE;
            push(pages, &mut list, (a / PAGE_SIZE) as u32);
        }
    }
    let total = list.free;
    FRAMES.call_once(|| Frames {
        pages,
        total,
        list: SpinLock::new(list),
    });
    Ok(())
}

fn push(pages: &[Page], list: &mut FreeList, n: u32) {
    let page = &pages[n as usize];
    page.flags.store(PG_FREE, Ordering::Relaxed);
    page.prev.store(NIL, Ordering::Relaxed);
    page.next.store(list.head, Ordering::Relaxed);
    if list.head != NIL {
        pages[list.head as usize].prev.store(n, Ordering::Relaxed);
    }
    list.head = n;
    list.free += 1;
}

fn unlink(pages: &[Page], list: &mut FreeList, n: u32) {
    let page = &pages[n as usize];
    let next = page.next.load(Ordering::Relaxed);
    let prev = page.prev.load(Ordering::Relaxed);
    if prev == NIL {
        list.head = next;
    } else {
        pages[prev as usize].next.store(next, Ordering::Relaxed);
    }
    if next != NIL {
        pages[next as usize].prev.store(prev, Ordering::Relaxed);
    }
    page.flags.store(0, Ordering::Relaxed);
    page.next.store(NIL, Ordering::Relaxed);
    page.prev.store(NIL, Ordering::Relaxed);
    list.free -= 1;
}

fn zero(frame: PhysFrame) {
    // SAFETY: the caller owns `frame`; the direct map covers it.
    unsafe {
        core::ptr::write_bytes(
            phys_to_virt(frame.start_address().as_u64()).as_mut_ptr::<u8>(),
            0,
            PAGE_SIZE as usize,
        )
    };
}

/// Allocates one frame, zeroed if `fill` says so; `None` when memory is
/// exhausted. The frame's `wire_count` is 0.
pub fn alloc(fill: Fill) -> Option<PhysFrame> {
    let f = frames();
    let n = {
        let mut list = f.list.lock();
        let n = list.head;
        if n == NIL {
            return None;
        }
        unlink(f.pages, &mut list, n);
        n
    };
    let frame = frame_of(n);
    if fill == Fill::Zeroed {
        zero(frame);
    }
    Some(frame)
}

/// Allocates `count` physically contiguous frames (not zeroed) and returns
/// the first; `None` if no such run is free. O(frames): for rare, large
/// allocations such as growing the kernel heap. Takes the highest run, to
/// keep low memory for everything else.
pub fn alloc_contiguous(count: usize) -> Option<PhysFrame> {
    let f = frames();
    let mut list = f.list.lock();
    let mut run = 0;
    for n in (0..f.pages.len()).rev() {
        if f.pages[n].flags.load(Ordering::Relaxed) & PG_FREE == 0 {
            run = 0;
            continue;
        }
        run += 1;
        if run == count {
            for m in n..n + count {
                unlink(f.pages, &mut list, m as u32);
            }
            return Some(frame_of(n as u32));
        }
    }
    None
}

/// Returns `frame` to the free list. It must have come from this allocator,
/// be unused (no mapping, no TLB entry left that a CPU may still use), and
/// its `wire_count` must be 0.
pub fn free(frame: PhysFrame) {
    let f = frames();
    let n = pfn(frame);
    let page = f
        .pages
        .get(n as usize)
        .unwrap_or_else(|| panic!("frame {:#x} is not managed", frame.start_address()));
    assert_eq!(
        page.wire_count.load(Ordering::Relaxed),
        0,
        "frame {:#x} freed with a non-zero wire_count",
        frame.start_address()
    );
    let mut list = f.list.lock();
    assert!(
        page.flags.load(Ordering::Relaxed) & PG_FREE == 0,
        "frame {:#x} freed twice",
        frame.start_address()
    );
    push(f.pages, &mut list, n);
}

/// The record of an allocated frame.
pub fn page(frame: PhysFrame) -> &'static Page {
    &frames().pages[pfn(frame) as usize]
}

/// Free frames now.
pub fn free_count() -> u64 {
    frames().list.lock().free
}

/// Frames the allocator manages (free at boot, before anything allocated).
pub fn total() -> u64 {
    frames().total
}

/// A private list of allocated frames, linked through their records (as
/// OpenBSD's pmap collects `empty_ptps` on a TAILQ through `vm_page`):
/// pages to free later, without writing to the pages themselves.
pub struct PageList {
    head: u32,
}

impl PageList {
    pub const fn new() -> Self {
        PageList { head: NIL }
    }

    /// Adds `frame`, which the caller owns and has not freed.
    pub fn push(&mut self, frame: PhysFrame) {
        let n = pfn(frame);
        page(frame).next.store(self.head, Ordering::Relaxed);
        self.head = n;
    }

    /// True if nothing is on the list.
    pub fn is_empty(&self) -> bool {
        self.head == NIL
    }

    /// Frees every frame on the list.
    pub fn free_all(&mut self) {
        while self.head != NIL {
            let frame = frame_of(self.head);
            self.head = page(frame).next.swap(NIL, Ordering::Relaxed);
            free(frame);
        }
    }
}

impl Drop for PageList {
    fn drop(&mut self) {
        assert!(self.head == NIL, "PageList dropped with frames on it");
    }
}
