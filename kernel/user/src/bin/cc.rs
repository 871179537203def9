//! `cc SOURCE BYTES SEED [clock|noclock]`: one compile job of `buildkernel`.
//!
//! Behaves, as far as the memory system is concerned, like a compiler
//! process: it grows a heap by mmap (the "source" and the "AST" live
//! there), maps and unmaps scratch buffers (an "optimiser" pass per 64 KiB
//! of source), touches every page it maps and computes a checksum over all
//! of it, then exits 0 without freeing the heap (exit tears the address
//! space down, where the pmap's exit path is measured). Sizes scale with
//! BYTES, so the job list's sizes give varied job lengths.
//!
//! With `clock` it times its passes (like `-ftime-report`) by reading the
//! clock, which reads the shared page: its exit then finds the shared page
//! resident (`lab_core::workloads::job_reads_clock` says why that
//! matters). With `noclock` (the default) it never touches the shared page.
#![no_std]
#![no_main]

use lab_core::workloads::{SplitMix64, SOURCE_MAX_BYTES};
use ulib::mem::{self, Heap};
use ulib::time::now_ns;
use ulib::{arg, println, report};

ulib::main!(main);

/// Scratch buffer of each pass.
const SCRATCH: u64 = 64 * 1024;

fn main() -> i32 {
    let (Some(name), Some(bytes), Some(seed)) = (arg(1), arg(2), arg(3)) else {
        report::error(
            "cc",
            format_args!("usage: cc SOURCE BYTES SEED [clock|noclock]"),
        );
        return 2;
    };
    let clock = match arg(4) {
        None | Some("noclock") => false,
        Some("clock") => true,
        Some(other) => {
            report::error(
                "cc",
                format_args!("{name}: timing '{other}' is not clock or noclock"),
            );
            return 2;
        }
    };
    // The pass timer: reads the shared page only when `clock`.
    let time = || if clock { now_ns() } else { 0 };
    let started = time();
    let (Ok(bytes), Ok(seed)) = (bytes.parse::<u64>(), seed.parse::<u64>()) else {
        report::error("cc", format_args!("{name}: bad BYTES or SEED"));
        return 2;
    };
    if bytes == 0 || bytes > 4 * SOURCE_MAX_BYTES {
        report::error("cc", format_args!("{name}: size {bytes} out of range"));
        return 2;
    }
    let mut rng = SplitMix64::new(seed);
    let mut heap = Heap::new(16 * 1024);

    // "Read" the source into the heap.
    let source = heap.alloc(bytes).expect("heap: source");
    for chunk in source.chunks_mut(8) {
        let word = rng.next_u64().to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
    // "Parse": an AST half the size, each node derived from a source window.
    let ast = heap.alloc(bytes / 2).expect("heap: ast");
    let mut sum = 0u64;
    for (i, node) in ast.iter_mut().enumerate() {
        let b = source[(i * 2) % source.len()];
        sum = sum.rotate_left(5) ^ u64::from(b);
        *node = sum as u8;
    }
    // "Optimise": one scratch mapping per 64 KiB of source, touched,
    // computed over, and unmapped.
    let passes = bytes.div_ceil(SCRATCH);
    for pass in 0..passes {
        let len = SCRATCH + (rng.below(4) * 16 * 1024);
        let scratch = mem::map_rw(len).expect("mmap scratch");
        // SAFETY: our fresh read-write mapping.
        let buf = unsafe { core::slice::from_raw_parts_mut(scratch as *mut u8, len as usize) };
        for (i, b) in buf.iter_mut().enumerate().step_by(64) {
            *b = ast[(i + pass as usize) % ast.len().max(1)].wrapping_add(i as u8);
        }
        sum = buf
            .iter()
            .step_by(64)
            .fold(sum, |s, b| s.rotate_left(3) ^ u64::from(*b));
        // SAFETY: `buf` is not used after this.
        unsafe { mem::munmap(scratch, len) }.expect("munmap scratch");
    }
    // "Emit": an object a quarter of the source, left in the heap.
    let object = heap.alloc(bytes / 4).expect("heap: object");
    for (i, b) in object.iter_mut().enumerate() {
        *b = (sum >> (i % 8 * 8)) as u8;
    }
    let elapsed = time() - started;
    if sum == 0 {
        // Not impossible, just astronomically unlikely: say so rather than
        // let the compiler drop the work.
        println!("cc {name}: checksum 0");
    }
    core::hint::black_box(elapsed);
    0
}
