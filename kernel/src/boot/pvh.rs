//! PVH entry: from the loader's 32-bit protected mode to Rust in long mode.
//!
//! The PVH boot protocol (Xen's `XEN_ELFNOTE_PHYS32_ENTRY`, also spoken by
//! QEMU's `-kernel`, Firecracker and Cloud Hypervisor) loads this ELF at its
//! physical addresses and jumps to the address in the note with paging off,
//! flat 32-bit segments, interrupts off and `ebx` holding the physical
//! address of `hvm_start_info`.
//!
//! `pvh_start32` then switches to long mode on boot page tables that are
//! built by the assembler, not by code:
//! - PML4[0]   identity-maps the first 4 GiB (only needed across the switch
//!   and by the AP trampoline; user address spaces do not copy it),
//! - PML4[256] maps the same 4 GiB at `DIRECT_MAP_BASE` (the direct map),
//! - PML4[511] maps the first 2 GiB at `KERNEL_VMA`, where the kernel is
//!   linked.
//!
//! All use 2 MiB pages; the top 1 GiB (the MMIO hole with the local APIC) is
//! uncached. It then jumps to the higher half, zeroes .bss, switches to the
//! boot CPU's stack and calls `kmain(start_info_phys)`.

use core::arch::global_asm;

/// Size of the boot CPU's kernel stack.
pub const BOOT_STACK_SIZE: usize = 64 * 1024;

global_asm!(
    r#"
    /* The ELF note that makes this a PVH kernel: type 18 is
       XEN_ELFNOTE_PHYS32_ENTRY, its payload the 32-bit entry address. */
    .section .note.Xen, "a", @note
    .balign 4
    .long 4
    .long 4
    .long 18
    .asciz "Xen"
    .long pvh_start32
    .balign 4

    .section .boot.text, "ax"
    .code32
    .global pvh_start32
pvh_start32:
    cli
    cld
    mov esi, ebx                    /* keep hvm_start_info for kmain */

    mov eax, cr4
    or eax, 0x20                    /* CR4.PAE */
    mov cr4, eax
    mov eax, offset boot_pml4
    mov cr3, eax

    /* EFER.LME, and EFER.NXE when the CPU has NX (CPUID 0x80000001 EDX.20) */
    mov eax, 0x80000001
    cpuid
    xor edi, edi
    test edx, 0x100000
    jz 1f
    mov edi, 0x800
1:
    mov ecx, 0xC0000080
    rdmsr
    or eax, 0x100
    or eax, edi
    wrmsr

    mov eax, cr0
    or eax, 0x80010001              /* CR0.PG | CR0.WP | CR0.PE */
    mov cr0, eax

    lgdt [boot_gdt_ptr]
    ljmp 0x08, offset pvh_start64

    .code64
pvh_start64:
    xor eax, eax
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov fs, ax
    mov gs, ax
    movabs rax, offset kernel_entry_high
    jmp rax

    .section .boot.data, "aw"
    .balign 4096
    .global boot_pml4
boot_pml4:
    .quad boot_pdpt_low + 0x3
    .fill 255, 8, 0
    .quad boot_pdpt_low + 0x3
    .fill 254, 8, 0
    .quad boot_pdpt_high + 0x3
boot_pdpt_low:
    .quad boot_pd + 0x0000 + 0x3
    .quad boot_pd + 0x1000 + 0x3
    .quad boot_pd + 0x2000 + 0x3
    .quad boot_pd + 0x3000 + 0x3
    .fill 508, 8, 0
boot_pdpt_high:
    .fill 510, 8, 0
    .quad boot_pd + 0x0000 + 0x3
    .quad boot_pd + 0x1000 + 0x3
boot_pd:
    /* 2 MiB pages: present, writable, PS; the 4th GiB also PCD|PWT */
    .set boot_pd_i, 0
    .rept 1536
    .quad (boot_pd_i << 21) + 0x83
    .set boot_pd_i, boot_pd_i + 1
    .endr
    .rept 512
    .quad (boot_pd_i << 21) + 0x9b
    .set boot_pd_i, boot_pd_i + 1
    .endr
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff        /* 0x08: 64-bit kernel code */
    .quad 0x00cf92000000ffff        /* 0x10: kernel data */
boot_gdt_ptr:
    .word boot_gdt_ptr - boot_gdt - 1
    .long boot_gdt

    .section .text.kernel_entry_high, "ax"
    .code64
kernel_entry_high:
    movabs rdi, offset __bss_start
    movabs rcx, offset __bss_end
    sub rcx, rdi
    xor eax, eax
    rep stosb
    movabs rsp, offset boot_stack_top
    xor ebp, ebp
    mov edi, esi
    call kmain
2:
    hlt
    jmp 2b

    .section .bss.boot_stack, "aw", @nobits
    .balign 16
boot_stack:
    .skip {stack_size}
    .global boot_stack_top
boot_stack_top:
"#,
    stack_size = const BOOT_STACK_SIZE,
);
