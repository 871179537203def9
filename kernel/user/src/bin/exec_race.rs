//! `exec-race`: exec while sibling threads are still exiting, and pmaps
//! reused from the pool under that churn.
//!
//! Each of `rounds` rounds forks a child that starts `threads` threads
//! (pinned round robin over the CPUs, so they run and exit in parallel with
//! it), each of which calls thread_exit at once; the child's main thread
//! retries exec (EINVAL while a sibling is live) until it replaces the
//! program with `exec-race done`, which exits 0. The parent reaps it and
//! checks the status. A kernel whose exec tore the old address space down
//! while an exiting sibling still had it in CR3 (and in the scheduler's
//! LOADED slot) deactivated a freed, possibly reused pmap afterwards; the
//! pool's poison check then panics ("free item ... was modified").
//!
//! Figures: `exec-race.rounds` (rounds whose child exited 0).
#![no_std]
#![no_main]

use ulib::process::{self, Fork};
use ulib::{arg, param, report, sys, Errno, WaitStatus};

ulib::main!(main);

const MAX_THREADS: u64 = 16;

fn main() -> i32 {
    if arg(1) == Some("done") {
        return 0;
    }
    let rounds = param::u64("rounds");
    let threads = param::u64("threads").min(MAX_THREADS);
    let cpus = u64::from(sys::ncpus());
    let mut ok = 0;
    for round in 0..rounds {
        match process::fork().expect("fork") {
            Fork::Child => child(threads, cpus, round),
            Fork::Parent(pid) => match process::wait(pid).expect("wait") {
                WaitStatus::Exited(0) => ok += 1,
                other => {
                    report::error("exec-race", format_args!("round {round}: child {other}"));
                    return 1;
                }
            },
        }
    }
    report::metric("exec-race.rounds", ok, "count");
    0
}

/// The child: threads that exit at once, and an exec racing their exits.
fn child(threads: u64, cpus: u64, round: u64) -> ! {
    for i in 0..threads {
        let cpu = ((round + i + 1) % cpus) as u32;
        // Never joined: exit and exec take them down.
        let handle = ulib::thread::spawn(move || {
            sys::pin(Some(cpu)).ok();
            sys::thread_exit(0)
        })
        .expect("spawn");
        core::mem::forget(handle);
    }
    loop {
        match process::exec("exec-race", &["exec-race", "done"]) {
            Errno::EINVAL => sys::yield_now(),
            e => {
                report::error("exec-race", format_args!("exec: {e}"));
                sys::exit(127);
            }
        }
    }
}
