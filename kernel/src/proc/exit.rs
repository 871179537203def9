//! Ending threads and processes: exit, thread_exit, kills, and the
//! teardown of a process's address space by its last thread.
//!
//! A process ends when its last live thread ends. `exit` (and a kill) first
//! records the status and marks the process `exiting`, waking its sleeping
//! threads and interrupting the CPUs that run its others, which then end at
//! their next return to user mode (proc::return_to_user). The last thread
//! to end waits until the others have switched away for the last time (so
//! their CPUs have deactivated the pmap, and `pm_cpus` holds only this
//! CPU), then takes the address space down as FreeBSD's vmspace_exit does
//! (vm::Vm::teardown: pmap_remove_pages, one pmap_remove per region, the
//! frames), switches this CPU to the kernel's tables, drops the pmap's
//! last reference (pmap_destroy, whose DIAGNOSTIC check of seed 000 counts
//! a non-zero `pm_cpus`), and becomes a zombie for its parent to reap.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use lab_core::syscall::WaitStatus;

use super::process::{self, Process, FIRST_PID, PROCS};
use super::sched;
use super::thread::{Thread, DEAD};
use super::vm::Teardown;
use crate::stats::{self, Event};

/// The other threads of `p` than the caller.
fn others(p: &Process) -> Vec<Arc<Thread>> {
    let me = sched::current();
    p.threads
        .lock()
        .iter()
        .filter(|t| !core::ptr::eq(&***t, me))
        .cloned()
        .collect()
}

/// Ends the calling process with `status` (every thread): `exit`, and the
/// kernel's kill of a process whose fault it cannot resolve.
pub fn exit_process(status: WaitStatus) -> ! {
    {
        let p = process::current().clone();
        p.set_status(status);
        p.exiting.store(true, Ordering::SeqCst);
        for t in others(&p) {
            sched::interrupt(&t);
        }
    }
    exit_thread(0)
}

/// Ends the calling thread with `value` (what thread_join returns); the
/// last thread of a process ends the process (status 0 unless set).
pub fn exit_thread(value: u64) -> ! {
    let t = sched::current();
    t.exit_value.store(value, Ordering::Release);
    {
        let p = t.process().clone();
        if p.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            exit_last(&p);
        }
    }
    sched::exit_current()
}

/// Waits until every other thread of `p` has switched away for the last
/// time (so no CPU runs them, and their CPUs have deactivated the pmap and
/// loaded other tables). For the last live thread (`live` is 1: the others
/// have begun to exit), before it takes the address space down: exit and
/// exec.
pub fn wait_others_dead(p: &Process) {
    let others = others(p);
    sched::sleep_until(sched::last_thread_chan(p), || {
        others.iter().all(|t| t.state() == DEAD)
    });
}

/// The end of a process, run by its last thread.
fn exit_last(p: &Arc<Process>) {
    p.set_status(WaitStatus::Exited(0));
    p.exiting.store(true, Ordering::SeqCst);
    wait_others_dead(p);

    // vmspace_exit.
    let vm = p.vm.lock().take();
    if let Some(vm) = vm {
        let pm = vm.teardown(Teardown::Exit);
        p.pmap_ptr.store(core::ptr::null_mut(), Ordering::Release);
        sched::load_pmap(core::ptr::null());
        crate::mm::lazy_tlb::evict(&pm);
        // The last reference: pmap_destroy.
        drop(pm);
    }
    stats::count(Event::ProcExits);
    // Unjoined threads go with the process (this thread's own reference
    // is the scheduler's from here on).
    p.threads.lock().clear();

    let (parent, kick_kernel) = {
        let mut table = PROCS.lock();
        let first = FIRST_PID.load(Ordering::Relaxed);
        let orphans: Vec<u64> = table
            .values()
            .filter(|c| c.ppid.load(Ordering::Relaxed) == p.pid)
            .map(|c| c.pid)
            .collect();
        for pid in orphans {
            let c = &table[&pid];
            c.ppid.store(0, Ordering::Relaxed);
            if c.zombie.load(Ordering::Acquire) {
                table.remove(&pid);
            }
        }
        p.zombie.store(true, Ordering::Release);
        match p.ppid.load(Ordering::Relaxed) {
            0 if p.pid == first => (None, true),
            0 => {
                table.remove(&p.pid);
                (None, false)
            }
            ppid => {
                let parent = table.get(&ppid).cloned();
                if let Some(parent) = &parent {
                    parent.child_gen.fetch_add(1, Ordering::AcqRel);
                }
                (parent, false)
            }
        }
    };
    if let Some(parent) = parent {
        sched::wakeup(process::chan(&parent));
    }
    if kick_kernel {
        sched::kick_cpu(0);
    }
}
