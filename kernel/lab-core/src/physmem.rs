//! Physical memory ranges: which frames the frame allocator may hand out.
//!
//! The loader's memory map lists usable RAM; the kernel must not hand out
//! the parts of it that are already in use (its own image, the loader's
//! start info, low memory) nor RAM it cannot reach through the direct map.
//! [`usable_frames`] turns the map into page-aligned free ranges; it is pure
//! so the exclusion rules are tested on the host.

/// Bytes per frame.
pub const PAGE_SIZE: u64 = 4096;

/// A half-open physical range `[start, end)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Range {
    pub start: u64,
    pub end: u64,
}

impl Range {
    pub const fn new(start: u64, end: u64) -> Range {
        Range { start, end }
    }

    pub const fn is_empty(&self) -> bool {
        self.start >= self.end
    }

    pub const fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    const fn overlaps(&self, other: &Range) -> bool {
        self.start < other.end && other.start < self.end
    }
}

/// More free ranges than the caller's buffer holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooManyRanges;

const fn align_down(x: u64) -> u64 {
    x & !(PAGE_SIZE - 1)
}

const fn align_up(x: u64) -> u64 {
    align_down(x.saturating_add(PAGE_SIZE - 1))
}

/// Writes into `out` the free, page-aligned ranges: each `usable` range
/// clipped to `[floor, ceiling)` and shrunk to whole pages, minus every
/// `reserved` range grown to whole pages. Returns how many ranges it wrote,
/// sorted by address and non-overlapping (if `usable` does not overlap
/// itself).
pub fn usable_frames(
    usable: impl IntoIterator<Item = Range>,
    reserved: &[Range],
    floor: u64,
    ceiling: u64,
    out: &mut [Range],
) -> Result<usize, TooManyRanges> {
    let mut n = 0;
    for r in usable {
        let r = Range::new(align_up(r.start.max(floor)), align_down(r.end.min(ceiling)));
        if r.is_empty() {
            continue;
        }
        *out.get_mut(n).ok_or(TooManyRanges)? = r;
        n += 1;
    }
    for res in reserved {
        let res = Range::new(align_down(res.start), align_up(res.end));
        if res.is_empty() {
            continue;
        }
        let mut i = 0;
        while i < n {
            let piece = out[i];
            if !piece.overlaps(&res) {
                i += 1;
                continue;
            }
            let left = Range::new(piece.start, res.start);
            let right = Range::new(res.end, piece.end);
            match (!left.is_empty(), !right.is_empty()) {
                (true, true) => {
                    out[i] = left;
                    *out.get_mut(n).ok_or(TooManyRanges)? = right;
                    n += 1;
                    i += 1;
                }
                (true, false) => {
                    out[i] = left;
                    i += 1;
                }
                (false, true) => {
                    out[i] = right;
                    i += 1;
                }
                (false, false) => {
                    // Swap in the last piece and look at it next.
                    out[i] = out[n - 1];
                    n -= 1;
                }
            }
        }
    }
    out[..n].sort_unstable_by_key(|r| r.start);
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    fn run(usable: &[Range], reserved: &[Range]) -> Vec<Range> {
        let mut out = [Range::default(); 16];
        let n = usable_frames(usable.iter().copied(), reserved, MIB, 4 * GIB, &mut out).unwrap();
        out[..n].to_vec()
    }

    #[test]
    fn low_memory_and_kernel_image_are_excluded() {
        // A QEMU-like map: 0..640K, 1M..256M.
        let usable = [Range::new(0, 0xa0000), Range::new(MIB, 256 * MIB)];
        let kernel = Range::new(MIB, MIB + 0x2345);
        assert_eq!(
            run(&usable, &[kernel]),
            vec![Range::new(MIB + 0x3000, 256 * MIB)]
        );
    }

    #[test]
    fn reserved_in_the_middle_splits_a_range() {
        let usable = [Range::new(MIB, 64 * MIB)];
        let reserved = [
            Range::new(8 * MIB + 10, 8 * MIB + 20),
            Range::new(MIB, 2 * MIB),
        ];
        assert_eq!(
            run(&usable, &reserved),
            vec![
                Range::new(2 * MIB, 8 * MIB),
                Range::new(8 * MIB + PAGE_SIZE, 64 * MIB)
            ]
        );
    }

    #[test]
    fn ram_above_the_ceiling_and_partial_pages_are_dropped() {
        let usable = [
            Range::new(MIB + 1, 2 * MIB - 1),
            Range::new(3 * GIB, 6 * GIB),
            Range::new(5 * GIB, 6 * GIB),
        ];
        assert_eq!(
            run(&usable, &[]),
            vec![
                Range::new(MIB + PAGE_SIZE, 2 * MIB - PAGE_SIZE),
                Range::new(3 * GIB, 4 * GIB)
            ]
        );
    }

    #[test]
    fn fully_reserved_range_disappears() {
        let usable = [Range::new(2 * MIB, 3 * MIB), Range::new(4 * MIB, 5 * MIB)];
        assert_eq!(
            run(&usable, &[Range::new(2 * MIB, 3 * MIB)]),
            vec![Range::new(4 * MIB, 5 * MIB)]
        );
    }

    #[test]
    fn too_many_ranges_is_an_error() {
        let usable = [Range::new(MIB, 64 * MIB)];
        let reserved = [Range::new(4 * MIB, 5 * MIB), Range::new(8 * MIB, 9 * MIB)];
        let mut out = [Range::default(); 2];
        assert_eq!(
            usable_frames(usable, &reserved, MIB, 4 * GIB, &mut out),
            Err(TooManyRanges)
        );
    }
}
