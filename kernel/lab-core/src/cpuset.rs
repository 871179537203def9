//! A set of CPUs as a `u64` bitmap: the type of the pmap's `pm_cpus` and of
//! IPI target sets. Bit `n` is CPU `n`; at most [`MAX_CPUS`] CPUs.

/// The most CPUs the kernel supports (the width of `pm_cpus`).
pub const MAX_CPUS: usize = 64;

#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CpuSet(pub u64);

impl CpuSet {
    pub const EMPTY: CpuSet = CpuSet(0);

    /// CPUs `0..n`.
    pub const fn first(n: u32) -> CpuSet {
        if n as usize >= MAX_CPUS {
            CpuSet(u64::MAX)
        } else {
            CpuSet((1u64 << n) - 1)
        }
    }

    pub const fn single(cpu: u32) -> CpuSet {
        CpuSet(1u64 << cpu)
    }

    pub const fn contains(self, cpu: u32) -> bool {
        (cpu as usize) < MAX_CPUS && self.0 & (1u64 << cpu) != 0
    }

    pub const fn with(self, cpu: u32) -> CpuSet {
        CpuSet(self.0 | (1u64 << cpu))
    }

    pub const fn without(self, cpu: u32) -> CpuSet {
        CpuSet(self.0 & !(1u64 << cpu))
    }

    pub const fn intersect(self, other: CpuSet) -> CpuSet {
        CpuSet(self.0 & other.0)
    }

    /// The bitmap itself (bit n: CPU n).
    pub const fn bits(self) -> u64 {
        self.0
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub const fn len(self) -> u32 {
        self.0.count_ones()
    }

    /// The CPUs in the set, lowest first.
    pub fn iter(self) -> impl Iterator<Item = u32> {
        let mut bits = self.0;
        core::iter::from_fn(move || {
            if bits == 0 {
                return None;
            }
            let cpu = bits.trailing_zeros();
            bits &= bits - 1;
            Some(cpu)
        })
    }
}

impl core::fmt::Debug for CpuSet {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "CpuSet({:#x})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_operations() {
        let s = CpuSet::first(4).without(2);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![0, 1, 3]);
        assert_eq!(s.len(), 3);
        assert!(s.contains(3) && !s.contains(2) && !s.contains(200));
        assert_eq!(CpuSet::first(64), CpuSet(u64::MAX));
        assert_eq!(
            CpuSet(0xdead_beef)
                .intersect(CpuSet::first(8))
                .iter()
                .collect::<Vec<_>>(),
            vec![0, 1, 2, 3, 5, 6, 7]
        );
    }
}
