//! The kernel's virtual memory layout (see linker.ld and boot/pvh.rs).
//!
//! | range                                   | what                         |
//! |-----------------------------------------|------------------------------|
//! | 0 .. 0x0000_8000_0000_0000              | user space (PML4 0..=255)    |
//! | 0xffff_8000_0000_0000 ..                | direct map of physical memory|
//! | 0xffff_ffff_8000_0000 ..                | kernel image (PML4 511)      |

use x86_64::{PhysAddr, VirtAddr};

/// Where the kernel image is linked; physical address 0 maps here.
pub const KERNEL_VMA: u64 = 0xffff_ffff_8000_0000;
/// Base of the direct map: physical address `p` is at `DIRECT_MAP_BASE + p`.
pub const DIRECT_MAP_BASE: u64 = 0xffff_8000_0000_0000;

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
