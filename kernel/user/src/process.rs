//! Processes: fork, exec, wait, spawn (fork + exec), exit.

use lab_core::syscall::{pack_argv, Errno, WaitFlags, WaitStatus, ARGV_MAX_BYTES};

use crate::{println, sys};

pub use crate::sys::{exit, getpid, gettid};

/// Exit status of a spawned child whose exec failed (as a shell's 127).
pub const EXEC_FAILED_STATUS: i32 = 127;

/// Which side of a fork we are on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fork {
    /// The parent; the child's pid.
    Parent(u64),
    Child,
}

/// Copies the calling process (copy-on-write; only this thread).
pub fn fork() -> Result<Fork, Errno> {
    Ok(match sys::fork()? {
        0 => Fork::Child,
        pid => Fork::Parent(pid),
    })
}

/// Replaces this process's program with the embedded program `name`, with
/// `argv` (argv[0] included). Returns only on failure, with the error.
pub fn exec(name: &str, argv: &[&str]) -> Errno {
    let mut packed = [0u8; ARGV_MAX_BYTES];
    match pack_argv(argv, &mut packed) {
        Ok(len) => sys::exec_packed(name, &packed[..len]),
        Err(e) => e,
    }
}

/// Forks a child that execs `name` with `argv`; returns its pid. If the
/// exec fails, the child prints why and exits with [`EXEC_FAILED_STATUS`].
pub fn spawn(name: &str, argv: &[&str]) -> Result<u64, Errno> {
    match fork()? {
        Fork::Parent(pid) => Ok(pid),
        Fork::Child => {
            let err = exec(name, argv);
            println!("spawn: exec {name} failed: {err}");
            sys::exit(EXEC_FAILED_STATUS)
        }
    }
}

/// Waits for child `pid` to end and returns how it ended.
pub fn wait(pid: u64) -> Result<WaitStatus, Errno> {
    match sys::waitpid(pid as i64, WaitFlags::NONE)? {
        Some((_, status)) => Ok(status),
        None => Err(Errno::EINVAL),
    }
}

/// Waits for any child to end: its pid and how it ended.
pub fn wait_any() -> Result<(u64, WaitStatus), Errno> {
    sys::waitpid(-1, WaitFlags::NONE)?.ok_or(Errno::EINVAL)
}

/// Like [`wait_any`] but returns `Ok(None)` at once if no child has ended.
pub fn try_wait_any() -> Result<Option<(u64, WaitStatus)>, Errno> {
    sys::waitpid(-1, WaitFlags::NOHANG)
}
