//! Memory: mappings, page touching, and a heap that grows by mmap.

use lab_core::syscall::{Errno, MapFlags, Prot, PAGE_SIZE};

use crate::sys;

pub use crate::sys::{mmap, mprotect, munmap};

/// Maps `len` bytes of fresh read-write memory anywhere.
pub fn map_rw(len: u64) -> Result<u64, Errno> {
    sys::mmap(0, len, Prot::RW, MapFlags::NONE)
}

/// Writes one byte in every page of `[addr, addr+len)` (faulting each in)
/// with a value derived from `seed` and the page; returns how many pages.
///
/// # Safety
/// The range must be mapped writable and owned by the caller.
pub unsafe fn touch_pages(addr: u64, len: u64, seed: u8) -> u64 {
    let mut pages = 0;
    let mut at = addr;
    while at < addr + len {
        // SAFETY: the caller's.
        unsafe { core::ptr::write_volatile(at as *mut u8, seed.wrapping_add(pages as u8)) };
        pages += 1;
        at += PAGE_SIZE;
    }
    pages
}

/// Reads one byte in every page of `[addr, addr+len)` and returns their sum.
///
/// # Safety
/// The range must be mapped readable.
pub unsafe fn read_pages(addr: u64, len: u64) -> u64 {
    let mut sum = 0u64;
    let mut at = addr;
    while at < addr + len {
        // SAFETY: the caller's.
        sum += u64::from(unsafe { core::ptr::read_volatile(at as *const u8) });
        at += PAGE_SIZE;
    }
    sum
}

/// The most chunks a [`Heap`] keeps track of.
const MAX_CHUNKS: usize = 32;

/// A bump heap that grows like a `brk` heap, by mapping more memory: each
/// chunk is twice the previous one and is asked for right after it (a hint,
/// so the heap stays contiguous when the address space allows). Memory is
/// given back only all at once ([`Heap::release`]) or by exiting, as a
/// process's malloc heap is.
pub struct Heap {
    chunks: [(u64, u64); MAX_CHUNKS],
    count: usize,
    /// Next free byte in the last chunk, and its end.
    next: u64,
    end: u64,
    /// Size of the next chunk.
    grow: u64,
    /// Bytes mapped so far.
    pub mapped: u64,
}

impl Heap {
    /// An empty heap whose first chunk will be `initial` bytes.
    pub const fn new(initial: u64) -> Heap {
        Heap {
            chunks: [(0, 0); MAX_CHUNKS],
            count: 0,
            next: 0,
            end: 0,
            grow: initial,
            mapped: 0,
        }
    }

    /// How many times the heap has grown (chunks mapped).
    pub fn growths(&self) -> usize {
        self.count
    }

    /// `len` bytes of zeroed memory, 16-byte aligned, valid until
    /// [`Heap::release`] or exit.
    pub fn alloc(&mut self, len: u64) -> Result<&'static mut [u8], Errno> {
        let len = len.max(1).next_multiple_of(16);
        if self.next + len > self.end {
            if self.count == MAX_CHUNKS {
                return Err(Errno::ENOMEM);
            }
            while self.grow < len {
                self.grow *= 2;
            }
            let size = self.grow.next_multiple_of(PAGE_SIZE);
            let addr = sys::mmap(self.end, size, Prot::RW, MapFlags::NONE)?;
            self.chunks[self.count] = (addr, size);
            self.count += 1;
            self.mapped += size;
            self.grow = size * 2;
            if addr != self.end {
                self.next = addr;
            }
            self.end = addr + size;
        }
        let at = self.next;
        self.next += len;
        // SAFETY: [at, at+len) lies in a chunk this heap mapped read-write
        // and hands out once.
        Ok(unsafe { core::slice::from_raw_parts_mut(at as *mut u8, len as usize) })
    }

    /// Unmaps every chunk.
    ///
    /// # Safety
    /// No slice the heap handed out may be used afterwards.
    pub unsafe fn release(&mut self) -> Result<(), Errno> {
        for &(addr, size) in &self.chunks[..self.count] {
            // SAFETY: the caller's.
            unsafe { sys::munmap(addr, size)? };
        }
        self.count = 0;
        self.next = 0;
        self.end = 0;
        Ok(())
    }
}
