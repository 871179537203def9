//! `fault`: takes a kernel-mode exception on purpose, so the exception
//! report (arch::trap: a `panic` record with vector, error code, RIP, CR2
//! and CPU, exit code Panic) is tested against the real kernel.

use lab_core::cmdline::{Kind, ParamSpec};

use super::Workload;
use crate::println;

/// A canonical lower-half address that nothing maps: PML4 slot 224 (the
/// boot tables map only slot 0, the identity-mapped first 4 GiB).
const UNMAPPED: u64 = 0x0000_7000_0000_0000;
/// A non-canonical address: any access raises #GP, not #PF.
const NON_CANONICAL: u64 = 0x8000_0000_0000_0000;

pub static FAULT: Workload = Workload {
    name: "fault",
    help: "take a kernel-mode exception on purpose (tests the exception report)",
    params: &[ParamSpec {
        key: "kind",
        kind: Kind::Choice(&["pagefault", "gp", "ud", "divide", "doublefault"]),
        default: "pagefault",
        help: "pagefault: read an unmapped address (#PF); gp: non-canonical read (#GP); \
               ud: ud2 (#UD); divide: divide by zero (#DE); doublefault: push onto an \
               unmapped stack, so the #PF cannot be delivered (#DF, on its IST stack)",
    }],
    run: |params, _| {
        let kind = params.choice("kind");
        println!("fault: taking a {kind} on purpose");
        // SAFETY (all arms): each arm faults deliberately; the trap
        // handler reports it and exits QEMU, so nothing runs after it.
        unsafe {
            match kind {
                "pagefault" => {
                    core::ptr::read_volatile(UNMAPPED as *const u64);
                }
                "gp" => {
                    core::ptr::read_volatile(NON_CANONICAL as *const u64);
                }
                "ud" => core::arch::asm!("ud2"),
                "divide" => core::arch::asm!(
                    "div {zero}",
                    zero = in(reg) 0u64,
                    inout("rax") 1u64 => _,
                    inout("rdx") 0u64 => _,
                ),
                _ => core::arch::asm!(
                    "mov rsp, {stack}",
                    "push rax",
                    stack = in(reg) UNMAPPED + 0x1000,
                    options(noreturn)
                ),
            }
        }
        unreachable!("fault kind={kind} did not fault")
    },
};
