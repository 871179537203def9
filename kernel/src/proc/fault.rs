//! Exceptions taken in user mode: page faults are resolved against the
//! process's VM map (demand-zero, copy-on-write, the shared page, rights
//! an mprotect added); anything else, or a fault that cannot be resolved,
//! kills the process (only it), with a console line naming it, the fault,
//! the address and rip. Installed as arch::trap's user trap hook.

use lab_core::syscall::{KillReason, USER_END};
use x86_64::instructions::interrupts;
use x86_64::registers::control::Cr2;

use super::vm::Access;
use super::{exit, process, sched};
use crate::arch::trap::{exception_name, TrapFrame};
use crate::println;
use crate::stats::{self, Event};

/// #PF error code bits (Intel SDM vol. 3, 4.7).
const PF_PRESENT: u64 = 1 << 0;
const PF_WRITE: u64 = 1 << 1;
const PF_RSVD: u64 = 1 << 3;
const PF_INSTR: u64 = 1 << 4;

/// The user trap hook: returns if the fault was resolved (the instruction
/// is retried), else kills the process. Called with interrupts off; reads
/// CR2 first, then enables them (BSD trap(): a trap from user mode runs
/// interruptible, so shootdown IPIs reach a CPU resolving a fault), and
/// returns with them on (arch::trap disables them on the way back).
pub fn user_trap(frame: &mut TrapFrame) {
    let vector = frame.vector as u8;
    let cr2 = Cr2::read_raw();
    interrupts::enable();
    let mut addr = None;
    let reason = match vector {
        14 => {
            addr = Some(cr2);
            match resolve_page_fault(cr2, frame.error) {
                Ok(()) => {
                    stats::count(Event::VmFaults);
                    return;
                }
                Err(reason) => reason,
            }
        }
        13 => KillReason::GeneralProtection,
        6 => KillReason::InvalidOpcode,
        _ => KillReason::OtherException,
    };
    kill(frame, reason, addr)
}

fn resolve_page_fault(addr: u64, error: u64) -> Result<(), KillReason> {
    if error & PF_RSVD != 0 || addr >= USER_END {
        return Err(KillReason::PageFault);
    }
    let access = if error & PF_INSTR != 0 {
        Access::Exec
    } else if error & PF_WRITE != 0 {
        Access::Write
    } else {
        Access::Read
    };
    let p = process::current();
    let mut vm = p.vm.lock();
    let vm = vm.as_mut().ok_or(KillReason::PageFault)?;
    // A fault the page tables already allow needs only its retry: the
    // fault discarded the TLB entry it came through (Intel SDM vol. 3,
    // 4.10.4.1). Counted, as the price of a shootdown skipped for a change
    // that only added rights (no-flush-cow: a stale read-only entry's
    // write lands here) and of two threads faulting on one page. A
    // not-present fault is never one (x86 caches no not-present entry);
    // an instruction fetch is left to resolve, which checks the region.
    if access != Access::Exec && error & PF_PRESENT != 0 {
        let write = access == Access::Write;
        if crate::mm::pmap::pmap_allows(&vm.pmap, x86_64::VirtAddr::new(addr), write) {
            stats::count(Event::VmFaultsSpurious);
            return Ok(());
        }
    }
    vm.resolve(addr, access).map(drop)
}

/// Kills the current process for `reason`, after printing what happened.
fn kill(frame: &TrapFrame, reason: KillReason, addr: Option<u64>) -> ! {
    let p = process::current();
    let t = sched::current();
    stats::count(Event::ProcKills);
    println!(
        "proc: pid {} ({}) tid {} killed ({}): {} error {:#x} at address {}, rip {:#x}, cpu {}",
        p.pid,
        p.name().as_str(),
        t.tid,
        reason.name(),
        exception_name(frame.vector as u8),
        frame.error,
        FmtAddr(addr),
        frame.rip,
        crate::arch::cpu_id(),
    );
    exit::exit_process(lab_core::syscall::WaitStatus::Killed(reason))
}

struct FmtAddr(Option<u64>);

impl core::fmt::Display for FmtAddr {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(a) => write!(f, "{a:#x}"),
            None => f.write_str("-"),
        }
    }
}
