//! Pools of fixed-size items, after OpenBSD's pool(9), with its poisoning.
//!
//! Data structures. A pool gets whole frames from the frame allocator
//! ("pool pages"), reached through the direct map. Each pool page starts
//! with a [`PageHeader`] (the next pool page and a bitmap of free items),
//! and holds up to 64 items after it. The pool keeps its pages on one list.
//! An item's free-list state lives in its page's bitmap, not in the item,
//! so the whole of a free item can hold the poison.
//!
//! Poisoning (OpenBSD's pool debugging, `POISON0` = 0xdeadbeef): every item
//! of a fresh pool page and every item returned by [`Pool::put`] is filled
//! with the pattern of `lab_core::poison`, and [`Pool::get`] checks the
//! pattern is intact before handing the item out (a write after free is
//! caught and panics). So an item comes out of `get` holding 0xdeadbeef in
//! every field, and a field its user forgets to initialise keeps it: the
//! seed-000 bug, `pm_cpus` never zeroed in pmap_create.
//!
//! A pool page whose items are all free goes back to the frame allocator
//! unless it is the pool's last page ([`Pool::prime`] gives a pool its first
//! page at boot, so runs can compare free frames at start and end).
//!
//! Locking: one spin lock per pool over its page list and bitmaps. Filling
//! and checking the poison are done outside it, on items the caller owns.

use core::marker::PhantomData;
use core::ptr::NonNull;

use lab_core::physmem::PAGE_SIZE;
use lab_core::poison;
use x86_64::structures::paging::PhysFrame;
use x86_64::{PhysAddr, VirtAddr};

use super::frame::{self, Fill};
use super::lock::SpinLock;
use crate::memlayout::{phys_to_virt, virt_to_phys};

/// The start of each pool page.
#[repr(C)]
struct PageHeader {
    /// Physical address of the next pool page, 0 at the end.
    next: u64,
    /// Bit i set: item i is free.
    free: u64,
}

/// Where items start in a pool page (one cache line for the header).
const ITEMS_OFFSET: usize = 64;

struct PoolState {
    /// Physical address of the first pool page, 0 for none.
    first: u64,
    pages: u64,
}

/// A pool of `T`-sized items.
pub struct Pool<T> {
    name: &'static str,
    state: SpinLock<PoolState>,
    _item: PhantomData<T>,
}

fn header(page: u64) -> *mut PageHeader {
    phys_to_virt(page).as_mut_ptr()
}

impl<T> Pool<T> {
    const ITEM_SIZE: usize = {
        let size = core::mem::size_of::<T>();
        let align = core::mem::align_of::<T>();
        assert!(align <= ITEMS_OFFSET, "pool item alignment above 64");
        let size = if size == 0 { 1 } else { size };
        size.div_ceil(align) * align
    };
    const PER_PAGE: usize = {
        let n = (PAGE_SIZE as usize - ITEMS_OFFSET) / Self::ITEM_SIZE;
        assert!(n > 0, "pool item larger than a page");
        if n > 64 {
            64
        } else {
            n
        }
    };
    const ALL_FREE: u64 = if Self::PER_PAGE == 64 {
        u64::MAX
    } else {
        (1u64 << Self::PER_PAGE) - 1
    };

    /// An empty pool; `name` appears in its diagnostics.
    pub const fn new(name: &'static str) -> Self {
        Pool {
            name,
            state: SpinLock::new(PoolState { first: 0, pages: 0 }),
            _item: PhantomData,
        }
    }

    fn item(page: u64, i: usize) -> *mut u8 {
        // SAFETY (of the arithmetic): i < PER_PAGE keeps it in the page.
        unsafe {
            phys_to_virt(page)
                .as_mut_ptr::<u8>()
                .add(ITEMS_OFFSET + i * Self::ITEM_SIZE)
        }
    }

    fn bytes<'a>(item: *mut u8) -> &'a mut [u8] {
        // SAFETY: callers pass an item they own (free and claimed, or being
        // returned); it spans ITEM_SIZE bytes inside its pool page.
        unsafe { core::slice::from_raw_parts_mut(item, Self::ITEM_SIZE) }
    }

    /// Takes a frame for a new pool page, poisons all its items and links
    /// it first. `None` if memory is exhausted.
    fn grow(state: &mut PoolState) -> Option<u64> {
        let page = frame::alloc(Fill::Any)?.start_address().as_u64();
        for i in 0..Self::PER_PAGE {
            poison::fill(Self::bytes(Self::item(page, i)));
        }
        // SAFETY: the frame is ours; the header is at its start.
        unsafe {
            header(page).write(PageHeader {
                next: state.first,
                free: Self::ALL_FREE,
            })
        };
        state.first = page;
        state.pages += 1;
        Some(page)
    }

    /// Gives the pool its first page now, so later use does not take frames.
    pub fn prime(&self) {
        let mut state = self.state.lock();
        if state.first == 0 {
            Self::grow(&mut state).expect("no frame to prime a pool");
        }
    }

    /// Takes an item. Its memory holds the poison pattern: the caller must
    /// write every field before making a reference to it (a field whose bit
    /// patterns are not all valid, e.g. a bool, must be written first).
    /// `None` if memory is exhausted. Panics if a free item was written to.
    pub fn get(&self) -> Option<NonNull<T>> {
        let item = {
            let mut state = self.state.lock();
            let mut page = state.first;
            // SAFETY: pool pages stay allocated while on the list.
            while page != 0 && unsafe { (*header(page)).free } == 0 {
                page = unsafe { (*header(page)).next };
            }
            if page == 0 {
                page = Self::grow(&mut state)?;
            }
            // SAFETY: as above; the lock makes the bitmap ours.
            let h = unsafe { &mut *header(page) };
            let i = h.free.trailing_zeros() as usize;
            h.free &= !(1u64 << i);
            Self::item(page, i)
        };
        if let Err(offset) = poison::check(Self::bytes(item)) {
            panic!(
                "pool {}: free item {item:p} was modified at offset {offset}",
                self.name
            );
        }
        NonNull::new(item.cast())
    }

    /// Returns `item` (from this pool's `get`) to the pool and poisons it.
    /// The caller must have dropped whatever needs dropping in it and must
    /// not use it again.
    pub fn put(&self, item: NonNull<T>) {
        let item = item.as_ptr().cast::<u8>();
        poison::fill(Self::bytes(item));
        let page = virt_to_phys(VirtAddr::from_ptr(item))
            .align_down(PAGE_SIZE)
            .as_u64();
        let i =
            (item as usize - phys_to_virt(page).as_u64() as usize - ITEMS_OFFSET) / Self::ITEM_SIZE;
        let mut state = self.state.lock();
        // SAFETY: the page is a pool page of ours (it held `item`).
        let h = unsafe { &mut *header(page) };
        assert!(
            h.free & (1u64 << i) == 0,
            "pool {}: item {item:p} freed twice",
            self.name
        );
        h.free |= 1u64 << i;
        if h.free == Self::ALL_FREE && state.pages > 1 {
            // Unlink the empty page and give it back.
            let mut link: *mut u64 = &mut state.first;
            // SAFETY: walking our own list under the lock.
            unsafe {
                while *link != page {
                    link = &mut (*header(*link)).next;
                }
                *link = (*header(page)).next;
            }
            state.pages -= 1;
            frame::free(PhysFrame::containing_address(PhysAddr::new(page)));
        }
    }

    /// Gives every pool page whose items are all free back to the frame
    /// allocator, the last one included.
    pub fn drain(&self) {
        let mut state = self.state.lock();
        let state = &mut *state;
        let mut link: *mut u64 = &mut state.first;
        let mut freed = 0;
        // SAFETY: walking and unlinking our own list under the lock.
        unsafe {
            while *link != 0 {
                let page = *link;
                if (*header(page)).free == Self::ALL_FREE {
                    *link = (*header(page)).next;
                    freed += 1;
                    frame::free(PhysFrame::containing_address(PhysAddr::new(page)));
                } else {
                    link = &mut (*header(page)).next;
                }
            }
        }
        state.pages -= freed;
    }

    /// Pool pages held now.
    pub fn pages(&self) -> u64 {
        self.state.lock().pages
    }
}
