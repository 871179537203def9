//! Processes: the process table, pids, parents and children, zombies,
//! waitpid, and the thread calls (thread_create, thread_join).
//!
//! # Data structures
//!
//! [`PROCS`] maps pid to process, for every process not yet reaped. A
//! [`Process`] has its address space (`vm`, a [`Vm`] under its own lock,
//! `None` once torn down), the pointer to its pmap the scheduler loads
//! (`pmap_ptr`, null once torn down), its threads (every thread not yet
//! joined, dead or alive), the number of live threads, and its parent's
//! pid (`ppid`, 0 for the kernel). Process and thread ids come from one
//! counter; a process's first thread has `tid == pid`.
//!
//! A process ends when its last live thread ends ([`super::exit`]): it
//! takes the address space down, becomes a zombie holding its
//! [`WaitStatus`], and stays in [`PROCS`] until its parent reaps it with
//! waitpid. Children of an exiting process go to the kernel (ppid 0); the
//! kernel reaps its zombies at once, except the run's first process, which
//! the workload reaps (proc::run_program).
//!
//! # Locking
//!
//! `PROCS` covers the table and every `ppid` and `zombie` change. Waiting
//! uses the scheduler's sleep/wakeup with the waiting process's address as
//! the channel and `child_gen` (bumped under `PROCS` by a child that
//! becomes a zombie, before the wakeup) as the condition. Lock order:
//! `PROCS`, a process's `threads`, its `vm`, then the scheduler's lock.

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};

use lab_core::limits;
use lab_core::syscall::{user_range_ok, Errno, WaitStatus, PROGRAM_NAME_MAX};

use super::sched;
use super::thread::{self, Thread};
use super::vm::Vm;
use crate::mm::lock::SpinLock;
use crate::mm::pmap::Pmap;

/// Most processes at once, zombies included (`fork` fails with EAGAIN
/// beyond).
pub const MAX_PROCS: usize = limits::PROCS;
/// Most threads per process not yet joined, dead or alive.
pub const MAX_THREADS: usize = limits::THREADS_PER_PROC;

/// A program name, kept inline for fault reports.
#[derive(Clone, Copy)]
pub struct Name {
    buf: [u8; PROGRAM_NAME_MAX],
    len: usize,
}

impl Name {
    pub fn new(s: &str) -> Name {
        let mut n = Name {
            buf: [0; PROGRAM_NAME_MAX],
            len: 0,
        };
        let mut end = s.len().min(PROGRAM_NAME_MAX);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        n.buf[..end].copy_from_slice(&s.as_bytes()[..end]);
        n.len = end;
        n
    }

    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("?")
    }
}

const NO_STATUS: u64 = u64::MAX;

pub struct Process {
    pub pid: u64,
    name: SpinLock<Name>,
    /// The parent's pid (0: the kernel). Changed under PROCS.
    pub ppid: AtomicU64,
    /// The address space; `None` once torn down.
    pub vm: SpinLock<Option<Vm>>,
    /// The pmap of `vm`, for the scheduler's switches (null once gone).
    pub pmap_ptr: AtomicPtr<Pmap>,
    /// Every thread not yet joined.
    pub threads: SpinLock<Vec<Arc<Thread>>>,
    /// Threads that have not begun to exit.
    pub live: AtomicU32,
    /// Set by exit or a kill: every thread ends at its next return to user.
    pub exiting: AtomicBool,
    /// The encoded WaitStatus, set once.
    status: AtomicU64,
    /// Torn down and waiting to be reaped. Set under PROCS.
    pub zombie: AtomicBool,
    /// Bumped (under PROCS) when a child becomes a zombie.
    pub child_gen: AtomicU64,
}

impl Process {
    pub fn new(pid: u64, ppid: u64, name: &str, vm: Vm) -> Process {
        let pmap: *const Pmap = &*vm.pmap;
        Process {
            pid,
            name: SpinLock::new(Name::new(name)),
            ppid: AtomicU64::new(ppid),
            vm: SpinLock::new(Some(vm)),
            pmap_ptr: AtomicPtr::new(pmap.cast_mut()),
            threads: SpinLock::new(Vec::new()),
            live: AtomicU32::new(0),
            exiting: AtomicBool::new(false),
            status: AtomicU64::new(NO_STATUS),
            zombie: AtomicBool::new(false),
            child_gen: AtomicU64::new(0),
        }
    }

    pub fn name(&self) -> Name {
        *self.name.lock()
    }

    pub fn set_name(&self, name: &str) {
        *self.name.lock() = Name::new(name);
    }

    /// Records how the process ends, unless already recorded (the first
    /// exit or kill wins). Returns whether this call recorded it.
    pub fn set_status(&self, status: WaitStatus) -> bool {
        self.status
            .compare_exchange(
                NO_STATUS,
                status.encode(),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    pub fn status(&self) -> Option<WaitStatus> {
        match self.status.load(Ordering::Acquire) {
            NO_STATUS => None,
            raw => WaitStatus::decode(raw),
        }
    }

    /// Adds a new thread (not yet runnable) to the process.
    pub fn add_thread(&self, t: Arc<Thread>) {
        self.live.fetch_add(1, Ordering::AcqRel);
        self.threads.lock().push(t);
    }
}

/// The process table.
pub static PROCS: SpinLock<BTreeMap<u64, Arc<Process>>> = SpinLock::new(BTreeMap::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
/// The pid of the run's first process (reaped by the kernel's workload,
/// not automatically).
pub static FIRST_PID: AtomicU64 = AtomicU64::new(0);

/// A fresh process or thread id.
pub fn alloc_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// The process of the calling thread.
pub fn current() -> &'static Arc<Process> {
    sched::current().process()
}

/// The sleep channel of process `p` (its waitpid).
pub fn chan(p: &Process) -> usize {
    p as *const Process as usize
}

/// `waitpid(pid, status, flags)`: reaps a zombie child (`pid`, or any if
/// -1), storing its encoded status; sleeps until one is a zombie unless
/// NOHANG. The status is stored before the child is removed, under the
/// table lock, so a call that fails with EFAULT (even if the status page
/// was unmapped while it slept) leaves the child waitable.
pub fn sys_waitpid(pid: i64, status_ptr: u64, flags: u64) -> Result<u64, Errno> {
    let nohang = match flags {
        0 => false,
        1 => true,
        _ => return Err(Errno::EINVAL),
    };
    let me = current();
    if status_ptr != 0 {
        let mut vm = me.vm.lock();
        vm.as_mut()
            .ok_or(Errno::EFAULT)?
            .check_writable(status_ptr, 8)?;
    }
    if pid == 0 || pid < -1 {
        return Err(Errno::ECHILD);
    }
    loop {
        let gen = {
            let mut table = PROCS.lock();
            let mut any = false;
            let mut found = None;
            for (&cpid, c) in table.iter() {
                if c.ppid.load(Ordering::Relaxed) != me.pid || (pid != -1 && cpid != pid as u64) {
                    continue;
                }
                any = true;
                if c.zombie.load(Ordering::Acquire) {
                    found = Some(cpid);
                    break;
                }
            }
            if !any {
                return Err(Errno::ECHILD);
            }
            if let Some(cpid) = found {
                // Store the status before reaping, still under PROCS (lock
                // order PROCS, vm), so a status page unmapped while we
                // slept fails the call without losing the child.
                let status = table[&cpid].status().unwrap_or(WaitStatus::Exited(0));
                if status_ptr != 0 {
                    let mut vm = me.vm.lock();
                    vm.as_mut()
                        .ok_or(Errno::EFAULT)?
                        .copyout(status_ptr, &status.encode().to_le_bytes())?;
                }
                let child = table.remove(&cpid);
                drop(table);
                drop(child);
                return Ok(cpid);
            }
            if nohang {
                return Ok(0);
            }
            me.child_gen.load(Ordering::Acquire)
        };
        sched::sleep_until(chan(me), || {
            me.child_gen.load(Ordering::Acquire) != gen || me.exiting.load(Ordering::Acquire)
        });
        if me.exiting.load(Ordering::Acquire) {
            return Err(Errno::ECHILD);
        }
    }
}

/// `thread_create(entry, arg, stack_top)`.
pub fn sys_thread_create(entry: u64, arg: u64, stack_top: u64) -> Result<u64, Errno> {
    if !stack_top.is_multiple_of(16)
        || stack_top < 16
        || !user_range_ok(stack_top - 16, 16)
        || !user_range_ok(entry, 1)
    {
        return Err(Errno::EINVAL);
    }
    let p = current();
    if p.exiting.load(Ordering::Acquire)
        || p.threads.lock().len() >= MAX_THREADS
        || thread::count() >= limits::THREADS
    {
        return Err(Errno::EAGAIN);
    }
    if !crate::mm::heap::room() {
        return Err(Errno::ENOMEM);
    }
    let mut threads = p.threads.lock();
    threads.try_reserve(1).map_err(|_| Errno::ENOMEM)?;
    let tid = alloc_id();
    let frame = thread::user_frame(entry, stack_top, arg);
    let t = Thread::new_user(p.clone(), tid, &frame, -1).ok_or(Errno::ENOMEM)?;
    let t = Arc::new(t);
    p.live.fetch_add(1, Ordering::AcqRel);
    threads.push(t.clone());
    drop(threads);
    sched::make_runnable(t);
    Ok(tid)
}

/// `thread_join(tid, value_ptr)`: waits for thread `tid` of this process
/// to end and stores its exit value at `value_ptr` (if not null); it can
/// be joined once. The value is stored before the thread is removed, so a
/// bad pointer (EFAULT) leaves it joinable.
pub fn sys_thread_join(tid: u64, value_ptr: u64) -> Result<u64, Errno> {
    let me = sched::current();
    if tid == me.tid {
        return Err(Errno::EDEADLK);
    }
    let p = current();
    let t = p
        .threads
        .lock()
        .iter()
        .find(|t| t.tid == tid)
        .cloned()
        .ok_or(Errno::ESRCH)?;
    if t.joined.swap(true, Ordering::AcqRel) {
        return Err(Errno::ESRCH);
    }
    let chan = Arc::as_ptr(&t) as usize;
    sched::sleep_until(chan, || {
        t.dead.load(Ordering::Acquire) || p.exiting.load(Ordering::Acquire)
    });
    if !t.dead.load(Ordering::Acquire) {
        t.joined.store(false, Ordering::Release);
        return Err(Errno::ESRCH);
    }
    if value_ptr != 0 {
        let value = t.exit_value.load(Ordering::Acquire);
        let stored = match p.vm.lock().as_mut() {
            Some(vm) => vm.copyout(value_ptr, &value.to_le_bytes()),
            None => Err(Errno::EFAULT),
        };
        if let Err(e) = stored {
            t.joined.store(false, Ordering::Release);
            return Err(e);
        }
    }
    p.threads.lock().retain(|x| !Arc::ptr_eq(x, &t));
    Ok(0)
}

/// Processes in the table.
pub fn count() -> usize {
    PROCS.lock().len()
}
