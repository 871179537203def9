//! Pool poisoning, as OpenBSD's pool(9) does it: items that are free (fresh
//! or returned) are filled with a known pattern, so a field the user forgets
//! to initialise reads as the pattern (the seed-000 bug: `pm_cpus` left at
//! 0xdeadbeef), and a write to a free item is caught when the item is next
//! handed out.
//!
//! The pattern is the 32-bit word [`POISON`] repeated in little-endian byte
//! order from the item's first byte, so a 64-bit field at a 4-byte-aligned
//! offset reads `0xdeadbeef_deadbeef`.

/// The fill word (OpenBSD's `POISON0`).
pub const POISON: u32 = 0xdead_beef;

/// The fill byte at offset `i` from the start of an item.
pub const fn byte_at(i: usize) -> u8 {
    POISON.to_le_bytes()[i % 4]
}

/// Fills `item` with the poison pattern.
pub fn fill(item: &mut [u8]) {
    for (i, b) in item.iter_mut().enumerate() {
        *b = byte_at(i);
    }
}

/// Checks that `item` still holds the poison pattern; on a mismatch returns
/// the offset of the first modified byte.
pub fn check(item: &[u8]) -> Result<(), usize> {
    match item.iter().enumerate().find(|&(i, &b)| b != byte_at(i)) {
        Some((i, _)) => Err(i),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forgotten_u64_field_reads_deadbeef() {
        let mut item = [0u8; 32];
        fill(&mut item);
        let field = u64::from_le_bytes(item[8..16].try_into().unwrap());
        assert_eq!(field, 0xdead_beef_dead_beef);
        let word = u32::from_le_bytes(item[4..8].try_into().unwrap());
        assert_eq!(word, POISON);
    }

    /// What seed 000's bug does to a CPU set (README, "Scaling to 64
    /// vCPUs"): a `pm_cpus` left with the fill names 24 of CPUs 0-31, and
    /// the word repeats, so CPU n+32 exactly when CPU n: 48 of 64.
    #[test]
    fn a_poisoned_cpu_set_names_48_of_64_cpus() {
        use crate::cpuset::CpuSet;
        let mut item = [0u8; 8];
        fill(&mut item);
        let pm_cpus = CpuSet(u64::from_le_bytes(item));
        assert_eq!(pm_cpus.intersect(CpuSet::first(32)).len(), 24);
        for n in 0..32 {
            assert_eq!(pm_cpus.contains(n + 32), pm_cpus.contains(n), "CPU {n}");
        }
        assert_eq!(pm_cpus.len(), 48);
    }

    #[test]
    fn check_finds_the_first_modified_byte() {
        let mut item = [0u8; 24];
        fill(&mut item);
        assert_eq!(check(&item), Ok(()));
        item[13] = 0;
        item[20] = 0;
        assert_eq!(check(&item), Err(13));
        assert_eq!(check(&[0u8; 4]), Err(0));
    }

    #[test]
    fn odd_sizes_are_filled_to_the_end() {
        let mut item = [0u8; 7];
        fill(&mut item);
        assert_eq!(item, [0xef, 0xbe, 0xad, 0xde, 0xef, 0xbe, 0xad]);
        assert_eq!(check(&item), Ok(()));
    }
}
