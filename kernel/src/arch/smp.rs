//! Bringing up the application processors (APs), and what runs on them.
//!
//! CPU numbering is dense: the boot CPU (BSP) is 0, the others follow the
//! MADT's order (acpi.rs, lab_core::smpcfg). [`start_aps`] wakes them one
//! at a time with INIT, SIPI, SIPI (Intel SDM vol. 3, 9.4.4): the SIPI
//! starts the AP in real mode at a page below 1 MiB, where the trampoline
//! below has been copied. The trampoline goes to protected mode, then long
//! mode on the boot page tables (`boot_pml4`, whose PML4[0] identity map
//! keeps the trampoline's own addresses valid across the switch), jumps to
//! the kernel's higher half on the AP's own stack and calls [`ap_entry`].
//! That sets up the per-CPU area, GDT/TSS, IDT and local APIC, marks the
//! CPU online and idles.
//!
//! Idle CPUs sleep in `sti; hlt` and wake for interrupts (timer, IPIs). A
//! CPU can be handed a function to run outside interrupt context with
//! [`run_on`] (one job at a time per CPU), which workloads use to start
//! measurements on other CPUs.
//!
//! Shared state: `CPU_COUNT` and `APIC_IDS` are written by the BSP before
//! the APs start and read-only after; `ONLINE` gains one bit per AP (set by
//! the AP); the trampoline's parameter block is written by the BSP between
//! AP starts only.

use core::arch::global_asm;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use lab_core::apic::Icr;
use lab_core::cpuset::CpuSet;
use x86_64::instructions::interrupts;
use x86_64::registers::model_specific::{Efer, EferFlags};

use super::percpu::CacheLine;
use super::{apic, gdt, ipi, percpu, trap, tsc};
use crate::boot::start_info::StartInfo;
use crate::memlayout::{phys_to_virt, virt_to_phys};
use crate::println;
use crate::stats::{IpiKind, MAX_CPUS};

/// Kernel stack size of each AP.
const AP_STACK_SIZE: usize = 64 * 1024;
/// The wait between INIT and the first SIPI. The SDM's 10 ms is for old
/// processors; Linux waits none on family 6 and later
/// (arch/x86/kernel/smpboot.c, smp_quirk_init_udelay), and QEMU needs none.
/// 10 ms per AP cost about 10 s of host time per AP under tcg-icount (the
/// spin reads the TSC, an I/O instruction there), minutes at 64 CPUs.
const INIT_DELAY_NS: u64 = 10_000;
/// How long to wait for an AP to come online.
const AP_TIMEOUT_NS: u64 = 2_000_000_000;

static CPU_COUNT: AtomicU32 = AtomicU32::new(1);
static APIC_IDS: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(0) }; MAX_CPUS];
static ONLINE: AtomicU64 = AtomicU64::new(1);

#[repr(C, align(16))]
struct Stack([u8; AP_STACK_SIZE]);
/// AP stacks; slot 0 unused (the BSP runs on the boot stack).
static mut AP_STACKS: [Stack; MAX_CPUS] = [const { Stack([0; AP_STACK_SIZE]) }; MAX_CPUS];

/// The CPUs the kernel uses (online or being started).
pub fn cpu_count() -> u32 {
    CPU_COUNT.load(Ordering::Relaxed)
}

/// The CPUs that have come online.
pub fn online() -> CpuSet {
    CpuSet(ONLINE.load(Ordering::Acquire))
}

/// The local APIC id of CPU `cpu`.
pub fn apic_id_of(cpu: u32) -> u32 {
    APIC_IDS[cpu as usize].load(Ordering::Relaxed)
}

/// Records the CPU list (APIC ids, boot CPU first). BSP, before start_aps.
pub fn set_cpus(apic_ids: &[u32]) {
    for (cpu, &id) in apic_ids.iter().enumerate() {
        APIC_IDS[cpu].store(id, Ordering::Relaxed);
    }
    CPU_COUNT.store(apic_ids.len() as u32, Ordering::Relaxed);
}

// ---- The trampoline -----------------------------------------------------

global_asm!(
    r#"
    .section .rodata.ap_trampoline, "a"
    .balign 16
    .global ap_trampoline_start
ap_trampoline_start:
    .code16
    cli
    cld
    movw %cs, %ax
    movw %ax, %ds
    movb $1, (tramp_alive - ap_trampoline_start)
    lgdtl (tramp_gdt_ptr - ap_trampoline_start)
    movl %cr0, %eax
    orl $1, %eax
    movl %eax, %cr0
    ljmpl $0x08, $({base} + tramp32 - ap_trampoline_start)

    .code32
tramp32:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movl %cr4, %eax
    orl $0x20, %eax                 /* CR4.PAE */
    movl %eax, %cr4
    movl ({base} + tramp_cr3 - ap_trampoline_start), %eax
    movl %eax, %cr3
    movl $0xc0000080, %ecx          /* EFER: LME, NXE as on the BSP */
    rdmsr
    orl ({base} + tramp_efer - ap_trampoline_start), %eax
    wrmsr
    movl %cr0, %eax
    orl $0x80010001, %eax           /* PG | WP | PE */
    movl %eax, %cr0
    ljmpl $0x18, $({base} + tramp64 - ap_trampoline_start)

    .code64
tramp64:
    xorl %eax, %eax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw %ax, %fs
    movw %ax, %gs
    movq ({base} + tramp_stack - ap_trampoline_start), %rsp
    movl ({base} + tramp_cpu - ap_trampoline_start), %edi
    movq ({base} + tramp_entry - ap_trampoline_start), %rax
    xorl %ebp, %ebp
    pushq $0                        /* no return address: ABI alignment */
    jmpq *%rax

    .balign 8
tramp_gdt:
    .quad 0
    .quad 0x00cf9a000000ffff        /* 0x08: 32-bit code */
    .quad 0x00cf92000000ffff        /* 0x10: data */
    .quad 0x00af9a000000ffff        /* 0x18: 64-bit code */
tramp_gdt_ptr:
    .word tramp_gdt_ptr - tramp_gdt - 1
    .long {base} + tramp_gdt - ap_trampoline_start

    /* Parameters, written by the BSP into the copy (TrampolineParams). */
    .balign 8
    .global ap_trampoline_params
ap_trampoline_params:
tramp_cr3:   .quad 0
tramp_efer:  .quad 0
tramp_stack: .quad 0
tramp_entry: .quad 0
tramp_cpu:   .quad 0
tramp_alive: .quad 0
    .global ap_trampoline_end
ap_trampoline_end:
    .text
"#,
    base = const TRAMPOLINE_PHYS,
    options(att_syntax)
);

/// Where the trampoline runs: a page below 1 MiB (the SIPI vector is its
/// page number). Checked against the memory map in [`start_aps`].
const TRAMPOLINE_PHYS: u64 = 0x8000;

/// Layout of the trampoline's parameter block.
#[repr(C)]
struct TrampolineParams {
    cr3: u64,
    efer: u64,
    stack: u64,
    entry: u64,
    cpu: u64,
    alive: u64,
}

extern "C" {
    static ap_trampoline_start: u8;
    static ap_trampoline_params: u8;
    static ap_trampoline_end: u8;
}

/// The physical address of the boot page tables (linked at their physical
/// address in .boot, so the symbol's value is the address itself; an
/// absolute 32-bit relocation, since the kernel image is out of rel32 reach).
fn boot_pml4_phys() -> u64 {
    let addr: u64;
    // SAFETY: only loads a link-time constant.
    unsafe {
        core::arch::asm!("mov {0:e}, offset boot_pml4", out(reg) addr, options(nomem, nostack))
    };
    addr
}

/// Why the APs could not all be started.
#[derive(Debug)]
pub enum SmpError {
    /// The trampoline page is not free RAM (or overlaps the start info).
    TrampolinePage { phys: u64 },
    /// An AP did not come online in time.
    Timeout { cpu: u32, apic_id: u32, alive: bool },
}

impl core::fmt::Display for SmpError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SmpError::TrampolinePage { phys } => write!(
                f,
                "AP trampoline page {phys:#x} is not usable RAM free of the start info"
            ),
            SmpError::Timeout {
                cpu,
                apic_id,
                alive,
            } => write!(
                f,
                "cpu {cpu} (APIC id {apic_id}) did not come online within {} ms ({})",
                AP_TIMEOUT_NS / 1_000_000,
                if *alive {
                    "it ran the trampoline"
                } else {
                    "it never reached the trampoline"
                }
            ),
        }
    }
}

/// Whether [TRAMPOLINE_PHYS, +4 KiB) is usable RAM that holds none of the
/// loader's data we still read (start info, command line, memory map).
fn trampoline_page_ok(info: &StartInfo, start_info_phys: u64) -> bool {
    let page = TRAMPOLINE_PHYS..TRAMPOLINE_PHYS + 4096;
    let usable = info
        .memory_map
        .iter()
        .any(|r| r.is_usable() && r.addr <= page.start && r.addr + r.size >= page.end);
    let phys_of = |p: *const u8| virt_to_phys(x86_64::VirtAddr::from_ptr(p)).as_u64();
    let loader_data = [
        (start_info_phys, 64),
        (
            phys_of(info.cmdline.as_ptr()),
            info.cmdline.len() as u64 + 1,
        ),
        (
            phys_of(info.memory_map.as_ptr().cast()),
            core::mem::size_of_val(info.memory_map) as u64,
        ),
    ];
    let overlaps = loader_data
        .iter()
        .any(|&(start, len)| start < page.end && start + len > page.start);
    // An empty memory map (old PVH loader) tells nothing: trust the PC
    // convention that 0x500-0x9fbff is free.
    (usable || info.memory_map.is_empty()) && !overlaps
}

/// Starts CPUs 1..cpu_count() and waits for each to come online. BSP, with
/// its own APIC, the TSC and the LAPIC timer period set up.
pub fn start_aps(info: &StartInfo, start_info_phys: u64) -> Result<(), SmpError> {
    if cpu_count() <= 1 {
        return Ok(());
    }
    if !trampoline_page_ok(info, start_info_phys) {
        return Err(SmpError::TrampolinePage {
            phys: TRAMPOLINE_PHYS,
        });
    }
    // Linker-provided symbols bounding the trampoline's bytes.
    let (start, params_at, end) = (
        &raw const ap_trampoline_start,
        &raw const ap_trampoline_params,
        &raw const ap_trampoline_end,
    );
    let len = end as usize - start as usize;
    let copy = phys_to_virt(TRAMPOLINE_PHYS).as_mut_ptr::<u8>();
    // SAFETY: the page was checked free above; nothing else uses it.
    unsafe { core::ptr::copy_nonoverlapping(start, copy, len) };
    // SAFETY: the parameter block's offset within the copy, 8-aligned.
    let params = unsafe {
        &mut *copy
            .add(params_at as usize - start as usize)
            .cast::<TrampolineParams>()
    };
    let efer = Efer::read() & (EferFlags::LONG_MODE_ENABLE | EferFlags::NO_EXECUTE_ENABLE);

    for cpu in 1..cpu_count() {
        let apic_id = apic_id_of(cpu);
        // SAFETY: each AP gets its own stack slot; only its address is taken.
        let stack_top = unsafe {
            (&raw mut AP_STACKS[cpu as usize])
                .cast::<u8>()
                .add(AP_STACK_SIZE)
        };
        // SAFETY: volatile writes into the copied page, which the AP reads
        // only after the SIPI below.
        unsafe {
            let p: *mut TrampolineParams = params;
            (&raw mut (*p).cr3).write_volatile(boot_pml4_phys());
            (&raw mut (*p).efer).write_volatile(efer.bits());
            (&raw mut (*p).stack).write_volatile(stack_top as u64);
            (&raw mut (*p).entry)
                .write_volatile(ap_entry as extern "C" fn(u32) -> ! as usize as u64);
            (&raw mut (*p).cpu).write_volatile(cpu as u64);
            (&raw mut (*p).alive).write_volatile(0);
        }
        let alive = || {
            // SAFETY: the AP writes the byte; we only read it.
            unsafe { (&raw const params.alive).read_volatile() != 0 }
        };
        let page = (TRAMPOLINE_PHYS >> 12) as u8;
        apic::send(Icr::init(apic_id));
        tsc::delay_ns(INIT_DELAY_NS);
        apic::send(Icr::startup(apic_id, page));
        tsc::delay_ns(200_000);
        if !alive() {
            apic::send(Icr::startup(apic_id, page));
        }
        let started = tsc::now();
        let limit = AP_TIMEOUT_NS * tsc::hz() / 1_000_000_000;
        while !online().contains(cpu) {
            if tsc::now() - started > limit {
                return Err(SmpError::Timeout {
                    cpu,
                    apic_id,
                    alive: alive(),
                });
            }
            core::hint::spin_loop();
        }
    }
    Ok(())
}

/// What every AP runs at bring-up before it goes idle (a `fn()` as usize,
/// 0 for none): set by the boot path, so that arch calls nothing above it.
static AP_INIT: AtomicUsize = AtomicUsize::new(0);

/// Sets what every AP runs at bring-up, after its own CPU set-up and
/// before it goes idle (interrupts off, the boot tables loaded). Before
/// the APs are started.
pub fn set_ap_init(init: fn()) {
    AP_INIT.store(init as usize, Ordering::Release);
}

/// Where an AP enters Rust, on its own stack, interrupts off.
extern "C" fn ap_entry(cpu: u32) -> ! {
    percpu::init(cpu, apic_id_of(cpu));
    gdt::init();
    trap::init();
    apic::init();
    // The layers above's own per-CPU set-up (mm::init_cpu), with the boot
    // tables still loaded.
    let init = AP_INIT.load(Ordering::Acquire);
    if init != 0 {
        // SAFETY: set_ap_init stores only `fn()` values.
        let init: fn() = unsafe { core::mem::transmute::<usize, fn()>(init) };
        init();
    }
    let apic_id = apic::id();
    assert_eq!(
        apic_id,
        apic_id_of(cpu),
        "cpu {cpu}: APIC id differs from the MADT's"
    );
    apic::start_timer();
    ONLINE.fetch_or(1 << cpu, Ordering::AcqRel);
    println!("smp: cpu {cpu} online (APIC id {apic_id})");
    idle()
}

// ---- Idle loop and cross-CPU jobs ---------------------------------------

/// A job for one CPU: a function and its argument; `JOB_FN` 0 = none.
static JOB_FN: [AtomicUsize; MAX_CPUS] = [const { AtomicUsize::new(0) }; MAX_CPUS];
static JOB_ARG: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// Who posted the job, woken by an Other IPI when it is done.
static JOB_OWNER: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(0) }; MAX_CPUS];

/// Per CPU: halted in [`idle`] (set before its `sti; hlt`, cleared once
/// the loop runs again), so an interrupt taken meanwhile interrupted this
/// loop. For the IPI handler's yield (ipi.rs).
static IN_AP_IDLE: [CacheLine<AtomicBool>; MAX_CPUS] =
    [const { CacheLine(AtomicBool::new(false)) }; MAX_CPUS];

/// True if this CPU's interrupted context is the HLT of [`idle`] (or the
/// few instructions after it). Interrupt context.
pub fn interrupted_ap_idle() -> bool {
    IN_AP_IDLE[percpu::cpu_id() as usize]
        .0
        .load(Ordering::Relaxed)
}

/// The idle loop of an AP: run a job if there is one, else sleep until an
/// interrupt. `sti; hlt` back to back, so a wake-up IPI that arrives after
/// the job check is not lost (STI's interrupt shadow covers HLT).
pub fn idle() -> ! {
    let me = percpu::cpu_id() as usize;
    loop {
        interrupts::disable();
        let job = JOB_FN[me].load(Ordering::Acquire);
        if job == 0 {
            IN_AP_IDLE[me].0.store(true, Ordering::Relaxed);
            interrupts::enable_and_hlt();
            IN_AP_IDLE[me].0.store(false, Ordering::Relaxed);
            continue;
        }
        interrupts::enable();
        // SAFETY: run_on stores only `fn(u64)` values.
        let f: fn(u64) = unsafe { core::mem::transmute::<usize, fn(u64)>(job) };
        f(JOB_ARG[me].load(Ordering::Relaxed));
        JOB_FN[me].store(0, Ordering::Release);
        ipi::send(IpiKind::Other, JOB_OWNER[me].load(Ordering::Relaxed));
    }
}

/// Runs `f(arg)` on CPU `cpu` (an idle AP, not this CPU) outside interrupt
/// context, and waits until it returned: [`post`] then [`wait`]. The
/// caller's interrupts must be on.
pub fn run_on(cpu: u32, f: fn(u64), arg: u64) {
    post(cpu, f, arg);
    wait(cpu);
}

/// Hands `f(arg)` to CPU `cpu` (an idle AP, not this CPU) and returns at
/// once; [`wait`] for it before posting another. Panics if `cpu` already
/// has a job.
pub fn post(cpu: u32, f: fn(u64), arg: u64) {
    let slot = &JOB_FN[cpu as usize];
    JOB_ARG[cpu as usize].store(arg, Ordering::Relaxed);
    JOB_OWNER[cpu as usize].store(percpu::cpu_id(), Ordering::Relaxed);
    let previous = slot.swap(f as usize, Ordering::AcqRel);
    assert_eq!(previous, 0, "smp::post: cpu {cpu} is busy");
    ipi::send(IpiKind::Other, cpu);
}

/// Waits until CPU `cpu` finished the job [`post`]ed to it. Interrupts on.
///
/// The caller sleeps in `hlt` meanwhile (the AP wakes it with an Other IPI
/// when done) rather than spinning: under TCG a spinning vCPU takes a host
/// core from the CPUs being measured, and answers its own IPIs late.
pub fn wait(cpu: u32) {
    let slot = &JOB_FN[cpu as usize];
    loop {
        interrupts::disable();
        if slot.load(Ordering::Acquire) == 0 {
            interrupts::enable();
            return;
        }
        interrupts::enable_and_hlt();
    }
}
