//! Which CPUs to start, from the ACPI MADT's processor entries.
//!
//! The kernel numbers CPUs densely: the boot CPU is 0 and the other usable
//! local APICs follow in MADT order. An entry is usable when its `enabled`
//! flag (bit 0) is set; `online capable` (bit 1) entries are hot-plug slots
//! that are not started. A duplicate APIC id (an xAPIC and an x2APIC entry
//! for the same CPU) is counted once.

/// MADT local APIC flag: the processor is enabled.
pub const MADT_ENABLED: u32 = 1 << 0;

/// Why the MADT's CPU list cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuListError {
    /// More usable CPUs than the kernel supports.
    TooMany { found: usize, max: usize },
    /// The boot CPU's APIC id is not among the usable entries.
    BspMissing { bsp_apic_id: u32 },
}

impl core::fmt::Display for CpuListError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            CpuListError::TooMany { found, max } => write!(
                f,
                "the MADT lists {found} usable CPUs, the kernel supports at most {max}"
            ),
            CpuListError::BspMissing { bsp_apic_id } => write!(
                f,
                "the boot CPU (APIC id {bsp_apic_id}) is not an enabled MADT entry"
            ),
        }
    }
}

/// Fills `out` with the APIC ids of the CPUs to run on, boot CPU first, from
/// `(apic_id, flags)` MADT entries; returns how many. `out.len()` is the
/// most CPUs the kernel supports.
pub fn cpu_list(
    entries: impl Iterator<Item = (u32, u32)>,
    bsp_apic_id: u32,
    out: &mut [u32],
) -> Result<usize, CpuListError> {
    let max = out.len();
    if max == 0 {
        return Err(CpuListError::TooMany { found: 1, max });
    }
    out[0] = bsp_apic_id;
    let mut n = 1;
    let mut found = 1;
    let mut bsp_seen = false;
    for (apic_id, flags) in entries {
        if flags & MADT_ENABLED == 0 {
            continue;
        }
        if apic_id == bsp_apic_id {
            bsp_seen = true;
            continue;
        }
        if out[..n.min(max)].contains(&apic_id) {
            continue;
        }
        found += 1;
        if n < max {
            out[n] = apic_id;
            n += 1;
        }
    }
    if !bsp_seen {
        return Err(CpuListError::BspMissing { bsp_apic_id });
    }
    if found > max {
        return Err(CpuListError::TooMany { found, max });
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_cpu_first_disabled_and_duplicates_skipped() {
        let entries = [(0, 1), (1, 1), (2, 0), (3, 2), (4, 1), (1, 1)];
        let mut out = [0; 16];
        let n = cpu_list(entries.into_iter(), 1, &mut out).unwrap();
        assert_eq!(&out[..n], &[1, 0, 4]);
    }

    #[test]
    fn too_many_and_missing_bsp() {
        let mut out = [0; 2];
        let many = [(0, 1), (1, 1), (2, 1)];
        assert_eq!(
            cpu_list(many.into_iter(), 0, &mut out),
            Err(CpuListError::TooMany { found: 3, max: 2 })
        );
        assert_eq!(
            cpu_list([(5, 1)].into_iter(), 0, &mut out),
            Err(CpuListError::BspMissing { bsp_apic_id: 0 })
        );
    }
}
