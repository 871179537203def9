//! The kernel heap: `alloc` (Box, Vec, ...) for the whole kernel.
//!
//! The allocator is talc (a well-kept no_std allocator crate) behind an mm
//! spin lock, as the `#[global_allocator]`. Its memory comes from the frame
//! allocator as contiguous runs of frames, used through the direct map:
//! [`INITIAL_BYTES`] at boot, and further runs of at least [`GROW_BYTES`]
//! whenever talc runs out (talc's `Source::acquire` hook; talc keeps the
//! runs as separate heaps, so they need not be adjacent). The heap never
//! gives memory back to the frame allocator, so it is bounded instead: it
//! grows to at most lab_core::limits::HEAP_MAX_BYTES.
//!
//! An allocation that cannot be satisfied even after growing ends in the
//! default `no_std` allocation error handler, which panics naming the size
//! ("memory allocation of N bytes failed"); a custom handler needs the
//! unstable `alloc_error_handler`. So work done for a user program either
//! allocates fallibly (`try_reserve`) or first asks [`room`], which keeps
//! lab_core::limits::HEAP_RESERVE_BYTES free for the kernel's infallible
//! allocations (growing the heap now if it must), and fails with ENOMEM
//! otherwise. The bytes in use are counted by a thin wrapper around talc.
//!
//! Locking: the heap lock is taken inside pmap locks and before the frame
//! lock (growth allocates frames while holding it).

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicU64, Ordering};

use lab_core::limits::{HEAP_MAX_BYTES, HEAP_RESERVE_BYTES};
use lab_core::physmem::PAGE_SIZE;
use talc::base::binning::Binning;
use talc::base::Talc;
use talc::source::Source;

use super::frame;
use super::lock::ServeShootdowns;
use crate::memlayout::phys_to_virt;

/// Heap claimed at boot.
pub const INITIAL_BYTES: u64 = 8 << 20;
/// Least the heap grows by when it runs out.
pub const GROW_BYTES: u64 = 4 << 20;

/// Bytes of frames the heap holds.
static HEAP_BYTES: AtomicU64 = AtomicU64::new(0);
/// Bytes allocated and not yet freed.
static USED: AtomicU64 = AtomicU64::new(0);

/// talc's memory source: contiguous runs of frames.
#[derive(Debug)]
pub struct FrameSource;

/// Claims a run of at least `bytes` for talc. Err if no such run is free.
/// Err too if it would take the heap over HEAP_MAX_BYTES.
fn claim_frames<B: Binning>(talc: &mut Talc<FrameSource, B>, bytes: u64) -> Result<(), ()> {
    let frames = bytes.div_ceil(PAGE_SIZE);
    if HEAP_BYTES.load(Ordering::Relaxed) + frames * PAGE_SIZE > HEAP_MAX_BYTES {
        return Err(());
    }
    let first = frame::alloc_contiguous(frames as usize).ok_or(())?;
    let base = phys_to_virt(first.start_address().as_u64()).as_mut_ptr::<u8>();
    let len = frames * PAGE_SIZE;
    // SAFETY: the frames are ours from now on and mapped by the direct map.
    unsafe { talc.claim(base, len as usize) }.ok_or(())?;
    HEAP_BYTES.fetch_add(len, Ordering::Relaxed);
    Ok(())
}

// SAFETY: acquire only touches the frame allocator, never the heap.
unsafe impl Source for FrameSource {
    fn acquire<B: Binning>(talc: &mut Talc<Self, B>, layout: Layout) -> Result<(), ()> {
        // Room for the request at any alignment, plus talc's tags.
        let need = (layout.size() + layout.align()) as u64 + 4 * PAGE_SIZE;
        claim_frames(talc, need.max(GROW_BYTES))
    }
}

static HEAP: talc::TalcLock<spin::mutex::SpinMutex<(), ServeShootdowns>, FrameSource> =
    talc::TalcLock::new(FrameSource);

/// talc, counting the bytes in use.
struct Counted;

// SAFETY: every call is forwarded to talc unchanged; only counts are added.
unsafe impl GlobalAlloc for Counted {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, forwarded.
        let p = unsafe { HEAP.alloc(layout) };
        if !p.is_null() {
            USED.fetch_add(layout.size() as u64, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, forwarded.
        let p = unsafe { HEAP.alloc_zeroed(layout) };
        if !p.is_null() {
            USED.fetch_add(layout.size() as u64, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, forwarded.
        unsafe { HEAP.dealloc(ptr, layout) };
        USED.fetch_sub(layout.size() as u64, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract, forwarded.
        let p = unsafe { HEAP.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            USED.fetch_add(new_size as u64, Ordering::Relaxed);
            USED.fetch_sub(layout.size() as u64, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counted = Counted;

/// Gives the heap its first [`INITIAL_BYTES`]. Called once by mm::init after
/// the frame allocator is up (allocation before it would find no frames).
pub fn init() {
    claim_frames(&mut HEAP.lock(), INITIAL_BYTES)
        .unwrap_or_else(|()| panic!("no {INITIAL_BYTES}-byte run of frames for the kernel heap"));
}

/// Bytes of frames the heap holds now.
pub fn bytes() -> u64 {
    HEAP_BYTES.load(Ordering::Relaxed)
}

/// Bytes allocated from the heap and not yet freed.
pub fn used() -> u64 {
    USED.load(Ordering::Relaxed)
}

/// Whether work for a user program may allocate: at least
/// HEAP_RESERVE_BYTES stay free in the heap, growing it now (within
/// HEAP_MAX_BYTES) if needed. Callers fail with ENOMEM when it is false.
pub fn room() -> bool {
    if used() + HEAP_RESERVE_BYTES <= bytes() {
        return true;
    }
    let mut talc = HEAP.lock();
    // Another CPU may have grown it meanwhile.
    used() + HEAP_RESERVE_BYTES <= bytes()
        || (claim_frames(&mut talc, GROW_BYTES).is_ok() && used() + HEAP_RESERVE_BYTES <= bytes())
}
