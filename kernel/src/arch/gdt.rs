//! Per-CPU GDT and TSS.
//!
//! Every CPU has its own GDT (the TSS descriptor's busy bit is per CPU) and
//! its own TSS, whose RSP0 is the kernel stack for traps from user mode and
//! whose IST slots give the double fault, NMI and machine check handlers
//! stacks of their own, so they run even when the kernel stack is broken.
//!
//! Selector layout, fixed by SYSCALL/SYSRET (IA32_STAR):
//!
//! | selector | descriptor          | why here                                |
//! |----------|---------------------|-----------------------------------------|
//! | 0x08     | kernel code, 64-bit | STAR[47:32]: SYSCALL CS                 |
//! | 0x10     | kernel data         | SYSCALL SS = STAR[47:32] + 8            |
//! | 0x18     | user code, 32-bit   | STAR[63:48] base (unused, never loaded) |
//! | 0x20     | user data (0x23)    | SYSRET SS = base + 8                    |
//! | 0x28     | user code (0x2b)    | SYSRET 64-bit CS = base + 16            |
//! | 0x30     | TSS (two slots)     |                                         |
//!
//! Locking: a CPU writes only its own slot of [`TABLES`]; the GDT part is
//! written once in [`init`], before `lgdt`, and never again.

use core::cell::UnsafeCell;
use x86_64::instructions::segmentation::{Segment, CS, DS, ES, SS};
use x86_64::instructions::tables::load_tss;
use x86_64::registers::model_specific::Star;
use x86_64::registers::segmentation::SegmentSelector;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable};
use x86_64::structures::tss::TaskStateSegment;
use x86_64::{PrivilegeLevel, VirtAddr};

use super::percpu;
use crate::stats::MAX_CPUS;

pub const KERNEL_CS: SegmentSelector = SegmentSelector::new(1, PrivilegeLevel::Ring0);
pub const KERNEL_SS: SegmentSelector = SegmentSelector::new(2, PrivilegeLevel::Ring0);
pub const USER_SS: SegmentSelector = SegmentSelector::new(4, PrivilegeLevel::Ring3);
pub const USER_CS: SegmentSelector = SegmentSelector::new(5, PrivilegeLevel::Ring3);
pub const TSS_SEL: SegmentSelector = SegmentSelector::new(6, PrivilegeLevel::Ring0);

/// TSS interrupt stack table slots (0-based, as `set_stack_index` takes them).
pub const IST_DOUBLE_FAULT: u16 = 0;
pub const IST_NMI: u16 = 1;
pub const IST_MACHINE_CHECK: u16 = 2;
const IST_COUNT: usize = 3;
const IST_STACK_SIZE: usize = 16 * 1024;

/// A 32-bit code segment, DPL 3, selector 3: SYSRET's base in STAR (a
/// placeholder; nothing runs 32-bit code).
const USER_CODE32: u64 = 0x00cf_fa00_0000_ffff;

struct CpuTables {
    gdt: GlobalDescriptorTable<8>,
    tss: TaskStateSegment,
}

#[repr(C, align(16))]
struct IstStack([u8; IST_STACK_SIZE]);

/// Per-CPU slots, each touched only by its CPU (see the module comment).
struct PerCpuSlots<T>([UnsafeCell<T>; MAX_CPUS]);
// SAFETY: slot `n` is only accessed by CPU `n`.
unsafe impl<T> Sync for PerCpuSlots<T> {}

static TABLES: PerCpuSlots<CpuTables> = PerCpuSlots(
    [const {
        UnsafeCell::new(CpuTables {
            gdt: GlobalDescriptorTable::empty(),
            tss: TaskStateSegment::new(),
        })
    }; MAX_CPUS],
);

static IST_STACKS: PerCpuSlots<[IstStack; IST_COUNT]> = PerCpuSlots(
    [const { UnsafeCell::new([const { IstStack([0; IST_STACK_SIZE]) }; IST_COUNT]) }; MAX_CPUS],
);

/// Builds this CPU's GDT and TSS and loads them (lgdt, segment registers,
/// ltr). Call once per CPU after `percpu::init`. Leaves FS and GS alone:
/// loading a selector into GS would clear the per-CPU GS base.
pub fn init() {
    let cpu = percpu::cpu_id() as usize;
    let tables = TABLES.0[cpu].get();
    // SAFETY: slot `cpu` belongs to this CPU and nothing references it yet
    // (init runs once per CPU); the IST stacks are this CPU's too.
    let gdt: &'static GlobalDescriptorTable<8> = unsafe {
        let stacks = &*IST_STACKS.0[cpu].get();
        let tss = &mut (*tables).tss;
        for (slot, stack) in stacks.iter().enumerate() {
            let top = VirtAddr::from_ptr(stack.0.as_ptr()) + IST_STACK_SIZE as u64;
            tss.interrupt_stack_table[slot] = top;
        }
        let gdt = &mut (*tables).gdt;
        gdt.append(Descriptor::kernel_code_segment());
        gdt.append(Descriptor::kernel_data_segment());
        gdt.append(Descriptor::UserSegment(USER_CODE32));
        gdt.append(Descriptor::user_data_segment());
        gdt.append(Descriptor::user_code_segment());
        // The TSS stays writable (RSP0 changes), so no `&'static` to it.
        gdt.append(Descriptor::tss_segment_unchecked(&raw const (*tables).tss));
        &*gdt
    };
    gdt.load();
    // SAFETY: the selectors index the GDT just loaded, in the layout above.
    unsafe {
        CS::set_reg(KERNEL_CS);
        SS::set_reg(KERNEL_SS);
        DS::set_reg(SegmentSelector::NULL);
        ES::set_reg(SegmentSelector::NULL);
        load_tss(TSS_SEL);
    }
    // STAR checks that the layout suits SYSCALL/SYSRET; writing it is
    // harmless while EFER.SCE is off (the syscall module turns it on).
    Star::write(USER_CS, USER_SS, KERNEL_CS, KERNEL_SS).expect("GDT layout unfit for SYSRET");
}

/// Sets the stack the CPU switches to on a trap from user mode (TSS.RSP0)
/// and that the syscall entry loads (per-CPU `kernel_stack_top`), for this
/// CPU. The scheduler calls it when it switches threads.
pub fn set_kernel_stack(top: VirtAddr) {
    let cpu = percpu::cpu_id() as usize;
    // SAFETY: this CPU's own TSS; the CPU reads RSP0 only on a ring change,
    // which cannot happen in the middle of this store.
    unsafe { (*TABLES.0[cpu].get()).tss.privilege_stack_table[0] = top };
    percpu::set_kernel_stack_top(top.as_u64());
}
