//! Cache coherence per physical 64-byte line: a MESI-style write-invalidate
//! protocol between per-CPU caches, reduced to what costs a line transfer.
//!
//! For each line ever touched the model keeps the set of CPUs holding a
//! valid copy, whether the last writer holds it Modified, who the last
//! writer is, that writer's clock at its latest write, and the 64-bit mask
//! of the bytes it wrote during its ownership (which starts at its first
//! store after another CPU's, and survives readers downgrading the line to
//! Shared). Rules, for an access by CPU `c`:
//!
//! - A **load** of a line held Modified by `w != c` is a coherence miss: the
//!   line moves from `w`'s cache; both keep a Shared copy.
//! - A **store** to a line `c` holds no valid copy of, while another CPU
//!   `w` is its last writer, is a coherence miss (the line, dirty or
//!   forwarded, moves from `w`'s cache). Every store invalidates every
//!   other valid copy; `c` becomes the owner, holding it Modified.
//! - A miss is a **false-sharing** miss when the bytes `c` accesses do not
//!   overlap the bytes `w` wrote during its ownership.
//! - Any other access costs nothing here. In particular the first-ever
//!   touch of a line (cold) is counted but not charged, and a load of a
//!   clean line `c` has no copy of is free.
//!
//! Assumptions: caches are infinite (no capacity or conflict misses, no
//! write-backs); memory latency is not modeled, only cache-to-cache
//! transfers; a line is identified by its physical address alone (the
//! guest's caching attributes are ignored); an access is atomic (no
//! transient states, no queuing at the line, no contention cost beyond the
//! transfer itself). At most 64 CPUs (the valid set is a `u64`).
//!
//! The caller splits accesses that straddle two lines (see
//! [`line_masks`]) and turns a [`Miss`] into a clock charge; this module
//! keeps no clocks of its own except the writer's clock it is handed.

use rustc_hash::FxHashMap;

/// Bytes per cache line.
pub const LINE: u64 = 64;

/// No writer yet.
const NO_WRITER: u8 = u8::MAX;

/// The state of one line.
#[derive(Clone, Copy, Debug)]
struct Line {
    /// Bit `i`: CPU `i` holds a valid copy.
    valid: u64,
    /// Bytes written by the current owner during its ownership.
    written: u64,
    /// The owner's clock after its latest store.
    writer_clock: u64,
    /// Coherence misses on this line (transfers), and the false-sharing
    /// ones among them.
    transfers: u32,
    false_sharing: u32,
    /// The last writer (the owner), or [`NO_WRITER`].
    writer: u8,
    /// The owner holds the line Modified (no reader has shared it since).
    modified: bool,
}

/// A coherence miss: where the line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Miss {
    /// The CPU whose cache supplied the line (the last writer).
    pub from: usize,
    /// Its clock after its latest store to the line.
    pub writer_clock: u64,
    /// The accessed bytes do not overlap the bytes it wrote.
    pub false_sharing: bool,
}

/// What one access of one line did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AccessEffect {
    /// The first-ever touch of the line.
    pub cold: bool,
    pub miss: Option<Miss>,
    /// Other CPUs' copies a store invalidated.
    pub invalidations: u32,
}

/// One hot line for the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HotLine {
    pub paddr: u64,
    pub transfers: u64,
    pub false_sharing: u64,
}

/// All lines' states.
#[derive(Default)]
pub struct Coherence {
    lines: FxHashMap<u64, Line>,
}

/// The (line address, byte mask) pairs an access of `size` bytes at
/// physical `paddr` touches: one, or two when it straddles a line boundary
/// (an access is at most 64 bytes wide on x86; anything longer is clipped
/// to the two lines). The second line is assumed physically contiguous
/// with the first (true within a page; across a page boundary the next
/// page's frame is unknown to the model).
pub fn line_masks(paddr: u64, size: u64) -> ([(u64, u64); 2], usize) {
    let size = size.clamp(1, LINE);
    let line = paddr & !(LINE - 1);
    let off = paddr - line;
    let first = size.min(LINE - off);
    let mut out = [(line, span_mask(off, first)), (0, 0)];
    if first < size {
        out[1] = (line + LINE, span_mask(0, size - first));
        (out, 2)
    } else {
        (out, 1)
    }
}

/// The mask of bytes `off..off + len` of a line (`len` >= 1).
fn span_mask(off: u64, len: u64) -> u64 {
    let bits = if len >= 64 {
        u64::MAX
    } else {
        (1u64 << len) - 1
    };
    bits << off
}

impl Coherence {
    pub fn new() -> Coherence {
        Coherence::default()
    }

    /// CPU `cpu` accesses the bytes `mask` of the line at `line`.
    /// `settle` is called once with the miss, if any, and returns `cpu`'s
    /// clock after the access (after any transfer charge): a store records
    /// it as the writer's clock.
    pub fn access(
        &mut self,
        cpu: usize,
        line: u64,
        mask: u64,
        store: bool,
        settle: impl FnOnce(Option<Miss>) -> u64,
    ) -> AccessEffect {
        debug_assert!(cpu < 64);
        let me = 1u64 << cpu;
        let mut out = AccessEffect::default();
        let l = self.lines.entry(line).or_insert_with(|| {
            out.cold = true;
            Line {
                valid: 0,
                written: 0,
                writer_clock: 0,
                transfers: 0,
                false_sharing: 0,
                writer: NO_WRITER,
                modified: false,
            }
        });
        let other_writer =
            (l.writer != NO_WRITER && l.writer as usize != cpu).then_some(l.writer as usize);
        let missed = match other_writer {
            Some(_) if store => l.valid & me == 0,
            Some(_) => l.modified,
            None => false,
        };
        if missed {
            let from = other_writer.unwrap_or_default();
            let false_sharing = l.written & mask == 0;
            l.transfers = l.transfers.saturating_add(1);
            l.false_sharing = l.false_sharing.saturating_add(false_sharing as u32);
            out.miss = Some(Miss {
                from,
                writer_clock: l.writer_clock,
                false_sharing,
            });
        }
        let clock = settle(out.miss);
        if store {
            out.invalidations = (l.valid & !me).count_ones();
            if l.writer as usize != cpu {
                // A new ownership: forget the previous owner's bytes.
                l.written = 0;
                l.writer = cpu as u8;
            }
            l.written |= mask;
            l.valid = me;
            l.modified = true;
            l.writer_clock = clock;
        } else {
            l.valid |= me;
            if other_writer.is_some() {
                l.modified = false;
            }
        }
        out
    }

    /// The `n` lines with the most transfers (ties: lower address first),
    /// leaving out lines with none.
    pub fn hottest(&self, n: usize) -> Vec<HotLine> {
        let mut hot: Vec<HotLine> = self
            .lines
            .iter()
            .filter(|(_, l)| l.transfers > 0)
            .map(|(&paddr, l)| HotLine {
                paddr,
                transfers: l.transfers as u64,
                false_sharing: l.false_sharing as u64,
            })
            .collect();
        // A total order, so the HashMap's iteration order cannot leak out.
        hot.sort_unstable_by(|a, b| b.transfers.cmp(&a.transfers).then(a.paddr.cmp(&b.paddr)));
        hot.truncate(n);
        hot
    }

    /// How many lines have been touched.
    pub fn lines(&self) -> usize {
        self.lines.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(c: &mut Coherence, cpu: usize, paddr: u64, size: u64, store: bool) -> AccessEffect {
        let (lines, n) = line_masks(paddr, size);
        assert_eq!(n, 1);
        c.access(cpu, lines[0].0, lines[0].1, store, |_| 0)
    }

    #[test]
    fn masks_and_straddling() {
        assert_eq!(line_masks(0x1000, 8), ([(0x1000, 0xff), (0, 0)], 1));
        assert_eq!(line_masks(0x1008, 8).0[0], (0x1000, 0xff00));
        assert_eq!(line_masks(0x1000, 64).0[0], (0x1000, u64::MAX));
        let (l, n) = line_masks(0x103c, 8);
        assert_eq!(n, 2);
        assert_eq!(l[0], (0x1000, 0xf << 60));
        assert_eq!(l[1], (0x1040, 0xf));
    }

    #[test]
    fn cold_then_reads_are_free() {
        let mut c = Coherence::new();
        assert!(at(&mut c, 0, 0x40, 8, false).cold);
        let o = at(&mut c, 1, 0x40, 8, false);
        assert_eq!(o, AccessEffect::default());
        // A store to a line only read so far: invalidates, no miss.
        let o = at(&mut c, 1, 0x40, 8, true);
        assert_eq!(o.miss, None);
        assert_eq!(o.invalidations, 1);
    }

    #[test]
    fn read_after_write_and_sharing() {
        let mut c = Coherence::new();
        at(&mut c, 0, 0x80, 8, true);
        let o = at(&mut c, 1, 0x80, 8, false);
        assert_eq!(o.miss.map(|m| (m.from, m.false_sharing)), Some((0, false)));
        // Now Shared: a second reader and re-reads are free.
        assert_eq!(at(&mut c, 2, 0x80, 8, false).miss, None);
        assert_eq!(at(&mut c, 1, 0x80, 8, false).miss, None);
        // The owner's store upgrades, invalidating the two readers.
        let o = at(&mut c, 0, 0x80, 8, true);
        assert_eq!((o.miss, o.invalidations), (None, 2));
        // A read of other bytes than the owner wrote: false sharing.
        let o = at(&mut c, 1, 0x90, 8, false);
        assert!(o.miss.unwrap().false_sharing);
        assert_eq!(
            c.hottest(16),
            vec![HotLine {
                paddr: 0x80,
                transfers: 2,
                false_sharing: 1
            }]
        );
    }
}
