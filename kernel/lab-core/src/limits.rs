//! The kernel's resource limits: what one user program (or all of them
//! together) may hold, so that none can exhaust the kernel. Each limit is
//! reported at the start of a run as a `limit.*` metric (the name next to
//! each constant) and exceeding one fails the call that would exceed it,
//! with the errno given here, instead of panicking or starving the kernel.
//!
//! What a process holds in the kernel, and what bounds it:
//!
//! | held | bound |
//! |---|---|
//! | its `Process` record, page-table pages | [`PROCS`] (`fork`: `EAGAIN`) |
//! | a thread record, live or dead and not yet joined | [`THREADS_PER_PROC`], [`THREADS`] (`thread_create`, `fork`: `EAGAIN`) |
//! | a kernel stack ([`KSTACK_BYTES`], frames) | only while the thread is live: freed as it dies, not when joined |
//! | VM map regions | [`REGIONS_PER_PROC`] (`mmap`, `munmap`, `mprotect`: `ENOMEM`) |
//! | page records (one per resident page) | the frames themselves (a fault with none left kills the process) |
//!
//! The kernel heap never returns memory to the frame allocator, so it is
//! bounded instead: it grows to at most [`HEAP_MAX_BYTES`], and a call
//! that would allocate while less than [`HEAP_RESERVE_BYTES`] is left
//! below that cap fails with `ENOMEM` (a fault kills the process), so the
//! kernel's own allocations always find room.

/// Processes at once, zombies included (`limit.procs`); `fork` beyond
/// fails with `EAGAIN`.
pub const PROCS: usize = 512;
/// Threads of one process not yet joined, dead or alive
/// (`limit.threads_per_proc`); `thread_create` beyond fails with `EAGAIN`.
pub const THREADS_PER_PROC: usize = 256;
/// Thread records in the whole system (`limit.threads`); `thread_create`
/// and `fork` beyond fail with `EAGAIN`.
pub const THREADS: usize = 2048;
/// VM map regions of one process (`limit.regions_per_proc`); a call that
/// would leave more (a split or a new region the merges of neighbours of
/// one protection do not pay for) fails with `ENOMEM`.
pub const REGIONS_PER_PROC: usize = 256;
/// A thread's kernel stack, held only while it lives
/// (`limit.kstack_bytes`).
pub const KSTACK_BYTES: usize = 32 * 1024;
/// Most bytes of frames the kernel heap may hold (`limit.heap_bytes`).
pub const HEAP_MAX_BYTES: u64 = 32 << 20;
/// Heap room kept for the kernel's own infallible allocations: a call
/// that would allocate with less than this left under the cap fails with
/// `ENOMEM` (`limit.heap_reserve_bytes`).
pub const HEAP_RESERVE_BYTES: u64 = 2 << 20;

const _: () = assert!(THREADS >= THREADS_PER_PROC && PROCS <= THREADS);
const _: () = assert!(HEAP_RESERVE_BYTES < HEAP_MAX_BYTES);
