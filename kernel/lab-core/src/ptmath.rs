//! Page-table index math for x86-64 4-level paging, as pure functions.
//!
//! Level 4 is the PML4, level 1 the page table whose entries map 4 KiB
//! pages. An entry at level `l` covers [`span`]`(l)` bytes of virtual
//! address space.

/// Entries per page-table page.
pub const ENTRIES: u64 = 512;

/// Bytes of virtual address space one entry at `level` (1..=4) maps.
pub const fn span(level: u32) -> u64 {
    1u64 << (12 + 9 * (level - 1))
}

/// The index of `va` in its page-table page at `level` (1..=4).
pub const fn index(va: u64, level: u32) -> usize {
    ((va >> (12 + 9 * (level - 1))) & (ENTRIES - 1)) as usize
}

/// The end of the block that the level-`level` entry holding `va` maps,
/// capped at `limit`: where a walk of `[va, limit)` moves next when that
/// entry is empty. Never wraps past the top of the address space.
pub const fn block_end(va: u64, level: u32, limit: u64) -> u64 {
    let size = span(level);
    let end = match (va & !(size - 1)).checked_add(size) {
        Some(end) => end,
        None => u64::MAX,
    };
    if end < limit {
        end
    } else {
        limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_and_indices() {
        assert_eq!(span(1), 4096);
        assert_eq!(span(2), 2 << 20);
        assert_eq!(span(3), 1 << 30);
        assert_eq!(span(4), 512 << 30);
        let va = 0xffff_ff00_0040_3000u64;
        assert_eq!(index(va, 4), 510);
        assert_eq!(index(va, 3), 0);
        assert_eq!(index(va, 2), 2);
        assert_eq!(index(va, 1), 3);
        assert_eq!(index(0xffff_8000_0000_0000, 4), 256);
    }

    #[test]
    fn block_ends() {
        assert_eq!(block_end(0x1000, 1, u64::MAX), 0x2000);
        assert_eq!(block_end(0x20_1000, 2, u64::MAX), 0x40_0000);
        assert_eq!(block_end(0x20_1000, 2, 0x30_0000), 0x30_0000);
        assert_eq!(block_end(0xffff_ffff_ffff_f000, 1, u64::MAX), u64::MAX);
        assert_eq!(block_end(0xffff_ff80_0000_0000, 4, u64::MAX), u64::MAX);
    }
}
