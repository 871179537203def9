//! Traps: the IDT, the entry stubs and the Rust dispatcher.
//!
//! Every one of the 256 vectors has a 16-byte entry stub (`trap_stubs`,
//! below) that makes the stack uniform, pushing a zero error code where the
//! CPU pushes none, then the vector number, and jumps to `trap_common`.
//! That saves every general-purpose register, so the stack holds a
//! [`TrapFrame`] (xv6's layout: registers, vector, error code, then the
//! hardware frame), and calls [`rust_trap`] with a pointer to it.
//! `rust_trap` returns normally; `trap_return` restores the registers from
//! the (possibly modified) frame and `iretq`s. So the frame lives on the
//! kernel stack of whoever was interrupted, and a later scheduler may switch
//! kernel stacks inside `rust_trap` and return on another thread's frame;
//! a new thread can start by "returning" through `trap_return` on a frame
//! it built.
//!
//! GS: a trap from user mode (CS.RPL = 3) `swapgs`es on entry and exit, so
//! the dispatcher always runs with the kernel's per-CPU GS base.
//! Known gap for the syscall path: an NMI or #MC (IST, so any time) that
//! lands between SYSCALL and its `swapgs` sees a kernel CS with the user's
//! GS base. The kernel sends no NMIs; keep that window free of faults.
//!
//! Double fault, NMI and machine check run on TSS IST stacks (gdt.rs), so a
//! double fault caused by a broken kernel stack is still reported.
//!
//! Vectors (one table, so priorities are visible: the local APIC serves the
//! highest priority class, vector >> 4, first):
//!
//! | vector      | what                                              |
//! |-------------|---------------------------------------------------|
//! | 0x00-0x1f   | exceptions                                        |
//! | 0x20-0x2f   | the legacy 8259 PICs, remapped and masked         |
//! | 0x40        | local APIC timer                                  |
//! | 0xf0-0xf3   | IPIs: shootpage, shootrange, shoottlb, other      |
//! | 0xfe        | local APIC error                                  |
//! | 0xff        | local APIC spurious                               |

use core::arch::global_asm;

use lab_core::report::{self, ExitCode};
use x86_64::registers::control::Cr2;
use x86_64::structures::idt::InterruptDescriptorTable;
use x86_64::VirtAddr;

use super::{apic, gdt, ipi};
use crate::stats::IpiKind;
use crate::{console, qemu};

pub const PIC_BASE: u8 = 0x20;
pub const TIMER_VECTOR: u8 = 0x40;
pub const IPI_BASE: u8 = 0xf0;
pub const ERROR_VECTOR: u8 = 0xfe;
pub const SPURIOUS_VECTOR: u8 = 0xff;

/// The vector carrying IPIs of `kind`.
pub const fn ipi_vector(kind: IpiKind) -> u8 {
    IPI_BASE + kind as u8
}

/// The register state saved by `trap_common`, lowest address first.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    /// Pushed by the entry stub.
    pub vector: u64,
    /// Pushed by the CPU for some exceptions, else 0 by the stub.
    pub error: u64,
    /// The hardware interrupt frame.
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

impl TrapFrame {
    /// Whether the trap came from user mode.
    pub fn user_mode(&self) -> bool {
        self.cs & 3 == 3
    }
}

global_asm!(
    r#"
    .section .text.trap, "ax"
    .balign 16
    .global trap_stubs
trap_stubs:
    .set trap_vec, 0
    .rept 256
    .balign 16
    /* Vectors where the CPU pushes an error code: 8, 10-14, 17, 21, 29, 30 */
    .if (trap_vec == 8) || ((trap_vec >= 10) && (trap_vec <= 14)) || (trap_vec == 17) || (trap_vec == 21) || (trap_vec == 29) || (trap_vec == 30)
    .else
    pushq $0
    .endif
    pushq $trap_vec
    jmp trap_common
    .set trap_vec, trap_vec + 1
    .endr
    .balign 16
    .global trap_stubs_end
trap_stubs_end:

trap_common:
    /* 24(%rsp) is CS: vector at 0, error at 8, rip at 16 */
    testb $3, 24(%rsp)
    jz 1f
    swapgs
1:
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    /* 15 registers + vector + error + 5-word hardware frame = 176 bytes
       above a 16-byte aligned RSP: the call below is ABI-aligned. */
    movq %rsp, %rdi
    cld
    call rust_trap

    .global trap_return
trap_return:
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rbp
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
    testb $3, 24(%rsp)
    jz 2f
    swapgs
2:
    addq $16, %rsp
    iretq
"#,
    options(att_syntax)
);

extern "C" {
    static trap_stubs: u8;
    static trap_stubs_end: u8;
}

const STUB_SIZE: u64 = 16;

static IDT: spin::Once<InterruptDescriptorTable> = spin::Once::new();

/// The process layer's handler of exceptions taken in user mode (it
/// resolves page faults or kills the process), set once when processes
/// start; until then a user exception is fatal like a kernel one.
static USER_TRAP_HOOK: spin::Once<fn(&mut TrapFrame)> = spin::Once::new();
/// Called last for every trap from user mode, on the way back to it (the
/// scheduler preempts and ends killed threads there).
static USER_RETURN_HOOK: spin::Once<fn(&mut TrapFrame)> = spin::Once::new();

/// Installs the handler of user-mode exceptions (vectors 0-31 other than
/// NMI, double fault and machine check). Set once.
pub fn set_user_trap_hook(hook: fn(&mut TrapFrame)) {
    USER_TRAP_HOOK.call_once(|| hook);
}

/// Installs the function every trap from user mode calls just before it
/// returns there (called with interrupts off, returns with them off; it
/// may switch threads). Set once.
pub fn set_user_return_hook(hook: fn(&mut TrapFrame)) {
    USER_RETURN_HOOK.call_once(|| hook);
}

/// Builds the IDT (first call) and loads it on this CPU.
pub fn init() {
    IDT.call_once(build_idt).load();
}

fn build_idt() -> InterruptDescriptorTable {
    let (base, end) = (
        &raw const trap_stubs as u64,
        &raw const trap_stubs_end as u64,
    );
    assert_eq!(end - base, 256 * STUB_SIZE, "a trap stub outgrew 16 bytes");
    let stub = |v: u8| VirtAddr::new(base + v as u64 * STUB_SIZE);
    let mut idt = InterruptDescriptorTable::new();
    // SAFETY: each address is the entry stub for exactly that vector, which
    // handles the CPU's frame (with or without error code) for it.
    unsafe {
        for v in [0u8, 1, 2, 3, 4, 5, 6, 7, 9, 16, 19, 20, 28] {
            idt[v].set_handler_addr(stub(v));
        }
        idt.double_fault
            .set_handler_addr(stub(8))
            .set_stack_index(gdt::IST_DOUBLE_FAULT);
        idt.non_maskable_interrupt
            .set_handler_addr(stub(2))
            .set_stack_index(gdt::IST_NMI);
        idt.machine_check
            .set_handler_addr(stub(18))
            .set_stack_index(gdt::IST_MACHINE_CHECK);
        idt.invalid_tss.set_handler_addr(stub(10));
        idt.segment_not_present.set_handler_addr(stub(11));
        idt.stack_segment_fault.set_handler_addr(stub(12));
        idt.general_protection_fault.set_handler_addr(stub(13));
        idt.page_fault.set_handler_addr(stub(14));
        idt.alignment_check.set_handler_addr(stub(17));
        idt.cp_protection_exception.set_handler_addr(stub(21));
        idt.vmm_communication_exception.set_handler_addr(stub(29));
        idt.security_exception.set_handler_addr(stub(30));
        for v in 32..=255u8 {
            idt[v].set_handler_addr(stub(v));
        }
    }
    idt
}

/// The dispatcher, called by `trap_common` with interrupts off (every
/// gate is an interrupt gate). Interrupts stay off in the handlers of
/// interrupts; the user trap hook (exceptions from user mode) enables them
/// once it has read what the exception left (CR2), as BSD trap() does.
/// The return hook and `trap_return` run with them off.
#[no_mangle]
extern "C" fn rust_trap(frame: &mut TrapFrame) {
    let vector = frame.vector as u8;
    match vector {
        0..=31 if frame.user_mode() && !matches!(vector, 2 | 8 | 18) => {
            match USER_TRAP_HOOK.get() {
                Some(hook) => hook(frame),
                None => fatal(frame),
            }
        }
        0..=31 => fatal(frame),
        TIMER_VECTOR => apic::timer_interrupt(),
        v if (IPI_BASE..IPI_BASE + IpiKind::COUNT as u8).contains(&v) => {
            ipi::handle(IpiKind::ALL[(v - IPI_BASE) as usize], frame.user_mode())
        }
        // Spurious interrupts are not in service: no EOI.
        SPURIOUS_VECTOR => {}
        ERROR_VECTOR => apic::error_interrupt(),
        // The 8259s are masked; what still arrives here is their spurious
        // IRQ 7 / 15, which must not be acknowledged either.
        v if (PIC_BASE..PIC_BASE + 16).contains(&v) => {}
        _ => fatal(frame),
    }
    if frame.user_mode() {
        // The user trap hook ran with interrupts on; the way out runs
        // with them off.
        x86_64::instructions::interrupts::disable();
        if let Some(hook) = USER_RETURN_HOOK.get() {
            hook(frame);
        }
    }
}

/// Exception names by vector (Intel SDM vol. 3, table 6-1).
pub fn exception_name(vector: u8) -> &'static str {
    match vector {
        0 => "#DE",
        1 => "#DB",
        2 => "NMI",
        3 => "#BP",
        4 => "#OF",
        5 => "#BR",
        6 => "#UD",
        7 => "#NM",
        8 => "#DF",
        9 => "coprocessor-segment-overrun",
        10 => "#TS",
        11 => "#NP",
        12 => "#SS",
        13 => "#GP",
        14 => "#PF",
        16 => "#MF",
        17 => "#AC",
        18 => "#MC",
        19 => "#XM",
        20 => "#VE",
        21 => "#CP",
        28 => "#HV",
        29 => "#VC",
        30 => "#SX",
        15 | 22..=27 | 31 => "reserved",
        _ => "interrupt",
    }
}

/// A trap nobody handles: write a `panic` record naming the CPU, vector,
/// error code, RIP and CR2, and end the run with the panic exit code.
fn fatal(frame: &TrapFrame) -> ! {
    let vector = frame.vector as u8;
    let cr2 = Cr2::read_raw();
    let cpu = crate::cpu_id();
    console::with_forced(|w| {
        // Free-form detail for the log, then the record.
        writeln!(
            w,
            "trap: vector {vector} on cpu {} from {} mode: rsp={:#x} rflags={:#x} rax={:#x} rbx={:#x} rcx={:#x} rdx={:#x} rsi={:#x} rdi={:#x} rbp={:#x}",
            cpu.map_or(-1, |c| c as i64),
            if frame.user_mode() { "user" } else { "kernel" },
            frame.rsp, frame.rflags, frame.rax, frame.rbx, frame.rcx, frame.rdx,
            frame.rsi, frame.rdi, frame.rbp,
        )?;
        report::write_panic(
            w,
            cpu,
            format_args!("-"),
            format_args!(
                "{} {vector} ({}) error={:#x} rip={:#x} cr2={cr2:#x} cpu={} mode={}",
                if vector < 32 { "exception" } else { "unexpected interrupt" },
                exception_name(vector),
                frame.error,
                frame.rip,
                cpu.map_or(-1, |c| c as i64),
                if frame.user_mode() { "user" } else { "kernel" },
            ),
        )
    })
    .ok();
    qemu::exit(ExitCode::Panic)
}
