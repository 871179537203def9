//! `hvm_start_info`: what the PVH loader tells the kernel.
//!
//! Layout from Xen's `public/arch-x86/hvm/start_info.h` (version 1 adds the
//! memory map). All addresses in it are physical.

use crate::memlayout::phys_to_virt;

const MAGIC: u32 = 0x336e_c578;

#[repr(C)]
struct RawStartInfo {
    magic: u32,
    version: u32,
    flags: u32,
    nr_modules: u32,
    modlist_paddr: u64,
    cmdline_paddr: u64,
    rsdp_paddr: u64,
    memmap_paddr: u64,
    memmap_entries: u32,
    reserved: u32,
}

/// One entry of the PVH memory map (E820 types).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MemoryRegion {
    pub addr: u64,
    pub size: u64,
    pub kind: u32,
    reserved: u32,
}

impl MemoryRegion {
    /// E820 type 1: usable RAM.
    pub fn is_usable(&self) -> bool {
        self.kind == 1
    }
}

/// The parsed start info. Borrowed from loader memory that the kernel never
/// reuses below 1 MiB... or anywhere the frame allocator will not hand out
/// (see mm::frame, which reserves it).
pub struct StartInfo {
    pub cmdline: &'static str,
    pub rsdp_phys: Option<u64>,
    pub memory_map: &'static [MemoryRegion],
}

/// Why the start info could not be used.
#[derive(Debug)]
pub enum StartInfoError {
    BadMagic(u32),
    CmdlineNotUtf8,
}

impl core::fmt::Display for StartInfoError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StartInfoError::BadMagic(m) => {
                write!(f, "hvm_start_info magic is {m:#x}, expected {MAGIC:#x}")
            }
            StartInfoError::CmdlineNotUtf8 => f.write_str("kernel command line is not UTF-8"),
        }
    }
}

/// Reads the start info at physical address `phys`.
///
/// # Safety
/// `phys` must be the address the PVH loader passed in `ebx`, and the memory
/// it points to must stay untouched for the kernel's lifetime.
pub unsafe fn parse(phys: u64) -> Result<StartInfo, StartInfoError> {
    // SAFETY: the loader placed the structure at `phys`; the direct map
    // covers it.
    let raw = unsafe { &*phys_to_virt(phys).as_ptr::<RawStartInfo>() };
    if raw.magic != MAGIC {
        return Err(StartInfoError::BadMagic(raw.magic));
    }
    let cmdline = if raw.cmdline_paddr == 0 {
        ""
    } else {
        // SAFETY: a NUL-terminated string the loader wrote.
        let bytes = unsafe { c_string(raw.cmdline_paddr) };
        core::str::from_utf8(bytes).map_err(|_| StartInfoError::CmdlineNotUtf8)?
    };
    let memory_map = if raw.version >= 1 && raw.memmap_paddr != 0 {
        // SAFETY: `memmap_entries` entries at `memmap_paddr`, per the protocol.
        unsafe {
            core::slice::from_raw_parts(
                phys_to_virt(raw.memmap_paddr).as_ptr::<MemoryRegion>(),
                raw.memmap_entries as usize,
            )
        }
    } else {
        &[]
    };
    Ok(StartInfo {
        cmdline: cmdline.trim(),
        rsdp_phys: (raw.rsdp_paddr != 0).then_some(raw.rsdp_paddr),
        memory_map,
    })
}

/// The bytes of the NUL-terminated string at physical address `phys`.
unsafe fn c_string(phys: u64) -> &'static [u8] {
    let start = phys_to_virt(phys).as_ptr::<u8>();
    let mut len = 0;
    // SAFETY: caller guarantees a terminated string; 4 KiB bounds a corrupt one.
    while len < 4096 && unsafe { *start.add(len) } != 0 {
        len += 1;
    }
    unsafe { core::slice::from_raw_parts(start, len) }
}
