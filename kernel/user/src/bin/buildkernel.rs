//! `buildkernel`: a `make -jN` driver over a seeded, deterministic source
//! tree (`lab_core::workloads::source_size`).
//!
//! Compile phase: keeps at most `j` `cc` jobs running (fork + exec, see
//! `cc.rs`), one per source, `jobs` in all, reaping each as it ends. A job
//! that does not exit 0 is reported and counted as failed.
//!
//! Link phase: one thread per CPU, each pinned to its CPU, maps, touches,
//! checksums and unmaps `link_regions` regions concurrently, so unmaps
//! shoot down TLBs on every CPU of one multi-threaded address space.
//!
//! A seeded `clock_pct` percent of the jobs read the clock (`cc ... clock`,
//! see `lab_core::workloads::job_reads_clock`): they touch the shared page,
//! the others do not, which decides the share of exit `pmap_remove` calls
//! that return early (the kernel reports it as
//! `buildkernel.exit_early_share`, see kernel/src/workloads/user.rs).
//!
//! Figures: `buildkernel.jobs.started`, `.jobs.finished` (exited 0),
//! `.jobs.failed`, `.jobs.clock` (jobs that read the clock),
//! `.source_bytes`, `.compile_ns`, `.link_ns`, `.link.regions`,
//! `.elapsed_ns` (guest time of the whole build), `.jobs_per_s` (finished
//! jobs over the whole build's time), and the canonical `workload.ops` (=
//! jobs finished) and `workload.elapsed_ns`.
//!
//! Accounting the kernel can check against: each job is one fork and one
//! exec (`process::spawn`), and this program was exec'd once, so
//! `proc.forks == jobs.started` and `proc.execs == jobs.started + 1`.
#![no_std]
#![no_main]

use core::fmt::Write;

use lab_core::workloads::{job_reads_clock, source_size};
use ulib::mem;
use ulib::process;
use ulib::rt::LineBuf;
use ulib::thread::{self, JoinHandle};
use ulib::time::now_ns;
use ulib::{param, println, report, WaitStatus};

ulib::main!(main);

/// Size of a link-step region: 32 pages, plus up to 3 x 16 more.
const LINK_REGION: u64 = 128 * 1024;

fn main() -> i32 {
    let jobs = param::u64("jobs");
    let cpus = thread::ncpus();
    let j = match param::u64("j") {
        0 => u64::from(cpus),
        j => j,
    };
    let seed = param::u64("seed");
    let link_regions = param::u64("link_regions");
    let clock_pct = param::u64("clock_pct");
    println!(
        "buildkernel: jobs={jobs} j={j} seed={seed} link_regions={link_regions} clock_pct={clock_pct} cpus={cpus}"
    );

    let start = now_ns();
    let (mut started, mut finished, mut failed, mut running) = (0u64, 0u64, 0u64, 0u64);
    let (mut source_bytes, mut clock_jobs) = (0u64, 0u64);
    // Set when a spawn fails: start no more jobs, reap the running ones.
    let mut gave_up = false;
    while (started < jobs && !gave_up) || running > 0 {
        if started < jobs && !gave_up && running < j {
            let size = source_size(seed, started);
            source_bytes += size;
            let mut name = LineBuf::<32>::new();
            let _ = write!(name, "src/f{started:05}.c");
            let mut bytes = LineBuf::<24>::new();
            let _ = write!(bytes, "{size}");
            let mut job_seed = LineBuf::<24>::new();
            let _ = write!(job_seed, "{}", seed ^ started);
            let clock = job_reads_clock(seed, started, clock_pct);
            let timing = if clock { "clock" } else { "noclock" };
            match process::spawn(
                "cc",
                &[
                    "cc",
                    name.as_str(),
                    bytes.as_str(),
                    job_seed.as_str(),
                    timing,
                ],
            ) {
                Ok(_) => {
                    started += 1;
                    running += 1;
                    clock_jobs += u64::from(clock);
                }
                Err(e) => {
                    report::error("buildkernel", format_args!("spawn cc #{started}: {e}"));
                    gave_up = true;
                }
            }
            continue;
        }
        match process::wait_any() {
            Ok((_, WaitStatus::Exited(0))) => finished += 1,
            Ok((pid, status)) => {
                report::error("buildkernel", format_args!("cc job pid {pid} {status}"));
                failed += 1;
            }
            Err(e) => {
                report::error(
                    "buildkernel",
                    format_args!("waitpid: {e} with {running} running"),
                );
                return 1;
            }
        }
        running -= 1;
    }
    let compiled = now_ns();

    let mut handles: [Option<JoinHandle>; 64] = [const { None }; 64];
    let threads = (cpus as usize).min(handles.len());
    thread::spawn_n(threads, true, &mut handles, move |i| link(i, link_regions));
    let regions = thread::join_all(&mut handles);
    let end = now_ns();

    report::metric("buildkernel.jobs.started", started, "count");
    report::metric("buildkernel.jobs.finished", finished, "count");
    report::metric("buildkernel.jobs.failed", failed, "count");
    report::metric("buildkernel.jobs.clock", clock_jobs, "count");
    report::metric("buildkernel.source_bytes", source_bytes, "bytes");
    report::metric("buildkernel.compile_ns", compiled - start, "ns");
    report::metric("buildkernel.link_ns", end - compiled, "ns");
    report::metric("buildkernel.link.regions", regions, "count");
    report::metric("buildkernel.elapsed_ns", end - start, "ns");
    report::metric(
        "buildkernel.jobs_per_s",
        report::rate_hz(finished, end - start),
        "hz",
    );
    report::workload(finished, end - start);
    println!(
        "buildkernel: {finished}/{started} jobs in {} us (link {} us)",
        (compiled - start) / 1000,
        (end - compiled) / 1000
    );
    i32::from(failed > 0 || finished != jobs)
}

/// One link thread: maps, touches, checksums and unmaps `regions` regions.
fn link(i: usize, regions: u64) -> u64 {
    let mut sum = 0u64;
    for r in 0..regions {
        let len = LINK_REGION + (r + i as u64) % 4 * 16 * 4096;
        let addr = mem::map_rw(len).expect("link: mmap");
        // SAFETY: our fresh read-write mapping, unmapped only below.
        unsafe {
            mem::touch_pages(addr, len, r as u8);
            sum = sum.wrapping_add(mem::read_pages(addr, len));
            mem::munmap(addr, len).expect("link: munmap");
        }
    }
    core::hint::black_box(sum);
    regions
}
