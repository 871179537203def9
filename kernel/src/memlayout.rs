//! The kernel's virtual memory layout (see linker.ld and boot/pvh.rs).
//!
//! | range                                   | what                                  |
//! |-----------------------------------------|---------------------------------------|
//! | 0 .. 0x0000_7fff_ffff_f000              | user space (PML4 0..=255)             |
//! | 0xffff_8000_0000_0000 .. +4 GiB         | direct map of physical memory (256)   |
//! | 0xffff_ff00_0000_0000 .. +512 GiB       | kernel virtual, 4 KiB pages (PML4 510)|
//! | 0xffff_ffff_8000_0000 ..                | kernel image (PML4 511)               |
//!
//! The boot page tables map only the first 4 GiB of physical memory in the
//! direct map, so the frame allocator hands out RAM below 4 GiB only (see
//! mm::frame). Kernel virtual is the one part of the kernel half whose
//! mappings change at run time: its page-directory-pointer page is
//! allocated once at boot (mm::pmap), every user pmap copies the PML4 entry
//! pointing at it, so a mapping made there is seen in every address space,
//! and changing it needs a shootdown on every CPU.

use x86_64::{PhysAddr, VirtAddr};

/// Where the kernel image is linked; physical address 0 maps here.
pub const KERNEL_VMA: u64 = 0xffff_ffff_8000_0000;
/// Base of the direct map: physical address `p` is at `DIRECT_MAP_BASE + p`.
pub const DIRECT_MAP_BASE: u64 = 0xffff_8000_0000_0000;

/// How much physical memory the direct map covers (the boot page tables).
pub const DIRECT_MAP_SIZE: u64 = 4 << 30;

/// User space ends here: the canonical lower half less its last page, as
/// Linux's TASK_SIZE_MAX, so that the exclusive end of any user range is a
/// canonical address (a `VirtAddr`) and no user code runs in the page
/// where SYSRET would return to a non-canonical RIP.
pub const USER_END: u64 = 0x0000_7fff_ffff_f000;

/// The PML4 slot of the kernel virtual region, and its bounds.
pub const KVA_PML4_SLOT: usize = 510;
pub const KVA_BASE: u64 = 0xffff_ff00_0000_0000;
pub const KVA_END: u64 = 0xffff_ff80_0000_0000;

/// The direct-map address of physical address `phys`.
pub fn phys_to_virt(phys: u64) -> VirtAddr {
    VirtAddr::new(DIRECT_MAP_BASE + phys)
}

/// The physical address behind a kernel-image or direct-map address.
pub fn virt_to_phys(virt: VirtAddr) -> PhysAddr {
    let v = virt.as_u64();
    if v >= KERNEL_VMA {
        PhysAddr::new(v - KERNEL_VMA)
    } else {
        assert!(
            v >= DIRECT_MAP_BASE,
            "{v:#x} is neither kernel image nor direct map"
        );
        PhysAddr::new(v - DIRECT_MAP_BASE)
    }
}
