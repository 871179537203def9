//! What the ACPI tables say about the machine: the CPUs (MADT local APIC
//! entries) and the ACPI PM timer (FADT), read with the `acpi` crate.
//!
//! Used without its `alloc` feature: tables are reached through the direct
//! map (no mapping is ever created or torn down), and the MADT's entries are
//! walked one by one instead of building the crate's `PlatformInfo`.
//! The RSDP comes from `hvm_start_info`; if the loader gave none, the BIOS
//! areas (EBDA, 0xe0000-0xfffff) are searched for "RSD PTR ".

use acpi::address::AddressSpace;
use acpi::fadt::Fadt;
use acpi::madt::{Madt, MadtEntry};
use acpi::{AcpiHandler, AcpiTables, PhysicalMapping};
use core::ptr::NonNull;
use lab_core::smpcfg::{self, CpuListError};

use super::tsc::PmTimer;
use crate::memlayout::phys_to_virt;
use crate::stats::MAX_CPUS;

/// The direct map covers the first 4 GiB (boot/pvh.rs).
const DIRECT_MAP_LIMIT: usize = 1 << 32;

/// Maps ACPI tables through the direct map.
#[derive(Clone, Copy)]
struct DirectMap;

impl AcpiHandler for DirectMap {
    unsafe fn map_physical_region<T>(&self, phys: usize, size: usize) -> PhysicalMapping<Self, T> {
        assert!(
            phys + size <= DIRECT_MAP_LIMIT,
            "ACPI table at {phys:#x} is beyond the direct map"
        );
        let virt = NonNull::new(phys_to_virt(phys as u64).as_mut_ptr::<T>()).unwrap();
        // SAFETY: the direct map covers [phys, phys + size) (checked above).
        unsafe { PhysicalMapping::new(phys, virt, size, size, *self) }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}

/// The machine as ACPI describes it.
pub struct Platform {
    /// APIC ids of the CPUs to start, boot CPU first.
    pub apic_ids: [u32; MAX_CPUS],
    pub cpus: usize,
    pub pm_timer: Option<PmTimer>,
    /// Where the RSDP came from, for the console.
    pub rsdp_source: &'static str,
}

/// Why the tables could not be used.
#[derive(Debug)]
pub enum AcpiError {
    /// No RSDP, or the tables are malformed: run on the boot CPU alone.
    NoAcpi(acpi::AcpiError),
    /// No MADT: same.
    NoMadt(acpi::AcpiError),
    /// The MADT's CPU list is unusable (too many CPUs, ...).
    Cpus(CpuListError),
}

impl core::fmt::Display for AcpiError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            AcpiError::NoAcpi(e) => write!(f, "no usable ACPI tables ({e:?})"),
            AcpiError::NoMadt(e) => write!(f, "no MADT ({e:?})"),
            AcpiError::Cpus(e) => write!(f, "{e}"),
        }
    }
}

/// Reads the MADT and FADT. `rsdp_phys` from hvm_start_info.
pub fn discover(rsdp_phys: Option<u64>, bsp_apic_id: u32) -> Result<Platform, AcpiError> {
    // SAFETY: the RSDP address comes from the PVH loader, or the search
    // covers the BIOS areas, which exist on every PC-compatible QEMU
    // machine; all of it lies in the direct map.
    let (tables, rsdp_source) = unsafe {
        match rsdp_phys {
            Some(phys) => (
                AcpiTables::from_rsdp(DirectMap, phys as usize),
                "start_info",
            ),
            None => (AcpiTables::search_for_rsdp_bios(DirectMap), "bios-scan"),
        }
    };
    let tables = tables.map_err(AcpiError::NoAcpi)?;
    let madt = tables.find_table::<Madt>().map_err(AcpiError::NoMadt)?;
    let entries = madt.get().entries().filter_map(|entry| match entry {
        MadtEntry::LocalApic(e) => Some((e.apic_id as u32, { e.flags })),
        MadtEntry::LocalX2Apic(e) => Some(({ e.x2apic_id }, { e.flags })),
        _ => None,
    });
    let mut apic_ids = [0; MAX_CPUS];
    let cpus = smpcfg::cpu_list(entries, bsp_apic_id, &mut apic_ids).map_err(AcpiError::Cpus)?;
    Ok(Platform {
        apic_ids,
        cpus,
        pm_timer: pm_timer(&tables),
        rsdp_source,
    })
}

/// The PM timer's port, if the FADT names one in I/O space (hardware-reduced
/// ACPI, as on microvm, has none).
fn pm_timer(tables: &AcpiTables<DirectMap>) -> Option<PmTimer> {
    let fadt = tables.find_table::<Fadt>().ok()?;
    let block = fadt.pm_timer_block().ok()??;
    if block.address_space != AddressSpace::SystemIo || block.address == 0 {
        return None;
    }
    Some(PmTimer {
        port: block.address as u16,
        bits32: { fadt.flags }.pm_timer_is_32_bit(),
    })
}
