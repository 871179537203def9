//! ulib: the user library of pmaplab's programs.
//!
//! Thin, typed wrappers over the system calls defined in
//! `lab_core::syscall` (the ABI: numbers, registers, errors, layout), and
//! the little runtime a no_std program needs:
//! - [`sys`]: the `syscall` instruction and one wrapper per call;
//! - [`rt`]: `_start` (reads argc/argv from the initial stack), [`main!`],
//!   [`args`], the panic handler (prints, reports an error, exits 101);
//! - [`io`]: `print!`/`println!` to the console, one `write` per line;
//! - [`process`]: fork, exec, waitpid, spawn (fork + exec), exit;
//! - [`mem`]: mmap/munmap/mprotect, page touching, a growable heap;
//! - [`thread`]: threads with mmapped stacks, join, pinning helpers;
//! - [`param`]: the workload's parameters (`getparam`);
//! - [`report`]: metric and error records in the run's report;
//! - [`time`]: the monotonic clock (shared page TSC, else `clock`).
//!
//! Programs are single binaries in `src/bin/`, `#![no_std] #![no_main]`,
//! ending with `ulib::main!(main)` for a `fn main() -> i32`.
#![no_std]

pub mod io;
pub mod mem;
pub mod param;
pub mod process;
pub mod report;
pub mod rt;
pub mod sys;
pub mod thread;
pub mod time;

pub use lab_core::syscall::{Errno, KillReason, MapFlags, Prot, WaitStatus, PAGE_SIZE};
pub use rt::{arg, argc, args, program_name};
