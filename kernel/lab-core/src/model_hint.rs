//! The model hint protocol: what a kernel booted under the `tcg-model`
//! accelerator tells the memory-system model (model/plugin) that the model
//! cannot see for itself.
//!
//! The model is a QEMU TCG plugin, and QEMU 7.2's plugin API (version 1)
//! reads neither registers nor guest memory: it sees each instruction's
//! bytes and each memory access's virtual and physical address, not the
//! value loaded or stored. So an INVLPG's operand, the target of an IPI
//! and the bounds of a measured interval never reach it. The kernel passes
//! them as *hints*: a short run of byte loads from one page of its image,
//! the doorbell (symbol [`DOORBELL_SYMBOL`], [`DOORBELL_SIZE`] bytes), where
//! the offset of each load carries the information. Loads were chosen over
//! stores so a hint changes no memory, and over port I/O because plugin
//! API v1 makes no callback for port I/O.
//!
//! A hint is an op load (offset = the [`Op`] code, 1..=15) followed by the
//! op's argument loads, 12 bits each (offset = the chunk's value). The
//! kernel issues a hint with interrupts off, so an interrupt handler's
//! hint never lands inside another. Hints are given only when the command
//! line says `model=on`; without it the kernel executes exactly what it
//! does under any other accelerator. The model leaves doorbell accesses out
//! of its caches and TLBs (their cost is a few loads per hint, and is not
//! charged to the modeled clocks either).
//!
//! The INVLPG hint comes right before the INVLPG instruction itself: the
//! model applies the operand when it sees that instruction execute on the
//! same CPU, so the invalidation is the guest's real one.

/// The kernel's doorbell page (a page-aligned static in its image).
pub const DOORBELL_SYMBOL: &str = "MODEL_DOORBELL";
/// The doorbell's size: 12 bits of offset per load.
pub const DOORBELL_SIZE: u64 = 4096;

/// Bits carried by one argument load.
const CHUNK_BITS: u32 = 12;
const CHUNK_MASK: u64 = (1 << CHUNK_BITS) - 1;

/// A hint's kind: the offset of its first load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum Op {
    /// The next INVLPG on this CPU invalidates this page (3 chunks: the
    /// 36-bit virtual page number of a canonical 48-bit address).
    Invlpg = 1,
    /// This CPU is about to write the APIC's ICR to interrupt this CPU
    /// (1 chunk: the target's index).
    IpiSend = 2,
    /// This CPU entered an IPI handler (no argument).
    IpiEnter = 3,
    /// An interval boundary (1 chunk: a [`Mark`]).
    Mark = 4,
    /// The shootdown about to be marked settled (`ShootEnd` or `Settled`)
    /// covered these pages (3 chunks of virtual page number, 1 of page
    /// count; count 0 = every page, a full flush). Given once per range,
    /// right before the mark.
    Covers = 5,
}

impl Op {
    fn from_offset(offset: u16) -> Option<Op> {
        Some(match offset {
            1 => Op::Invlpg,
            2 => Op::IpiSend,
            3 => Op::IpiEnter,
            4 => Op::Mark,
            5 => Op::Covers,
            _ => return None,
        })
    }

    /// How many argument loads follow the op load.
    fn args(self) -> usize {
        match self {
            Op::Invlpg => 3,
            Op::Covers => 4,
            Op::IpiSend | Op::Mark => 1,
            Op::IpiEnter => 0,
        }
    }
}

/// Interval boundaries the model times on its per-CPU clocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    /// The workload's measured part begins (CPU 0 gives it).
    WorkloadBegin,
    WorkloadEnd,
    /// A shootdown's initiator starts and stops waiting for its targets.
    WaitBegin,
    WaitEnd,
    /// A shootdown that sent IPIs starts (its targets chosen) and returns
    /// (every target acknowledged).
    ShootBegin,
    ShootEnd,
    /// A shootdown that needed no IPI returned, its local invalidation
    /// done: like ShootEnd, a point where the kernel holds that no CPU
    /// keeps a translation the change replaced (the model's stale-TLB
    /// oracle judges there).
    Settled,
    /// A numbered phase of a model self-test (0..=255): the model reports
    /// its counters per phase.
    PhaseBegin(u8),
    PhaseEnd(u8),
}

impl Mark {
    fn code(self) -> u16 {
        match self {
            Mark::WorkloadBegin => 1,
            Mark::WorkloadEnd => 2,
            Mark::WaitBegin => 3,
            Mark::WaitEnd => 4,
            Mark::ShootBegin => 5,
            Mark::ShootEnd => 6,
            Mark::Settled => 7,
            Mark::PhaseBegin(n) => 0x100 | n as u16,
            Mark::PhaseEnd(n) => 0x200 | n as u16,
        }
    }

    fn from_code(code: u16) -> Option<Mark> {
        Some(match code {
            1 => Mark::WorkloadBegin,
            2 => Mark::WorkloadEnd,
            3 => Mark::WaitBegin,
            4 => Mark::WaitEnd,
            5 => Mark::ShootBegin,
            6 => Mark::ShootEnd,
            7 => Mark::Settled,
            0x100..=0x1ff => Mark::PhaseBegin(code as u8),
            0x200..=0x2ff => Mark::PhaseEnd(code as u8),
            _ => return None,
        })
    }
}

/// One hint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hint {
    Invlpg {
        va: u64,
    },
    /// `pages` pages from `va` (0: every page; at most [`MAX_COVER_PAGES`]).
    Covers {
        va: u64,
        pages: u16,
    },
    IpiSend {
        target: u16,
    },
    IpiEnter,
    Mark(Mark),
}

/// The most loads one hint takes.
pub const MAX_LOADS: usize = 5;

/// The most pages one `Covers` hint names; a longer range is given as
/// every page (0).
pub const MAX_COVER_PAGES: u64 = CHUNK_MASK;

/// The three 12-bit chunks of `va`'s 36-bit virtual page number.
fn vpn_chunks(va: u64) -> [u64; 3] {
    let vpn = (va >> 12) & ((1 << 36) - 1);
    [
        vpn & CHUNK_MASK,
        (vpn >> CHUNK_BITS) & CHUNK_MASK,
        (vpn >> (2 * CHUNK_BITS)) & CHUNK_MASK,
    ]
}

/// The canonical address of the page whose vpn chunks are `a`, `b`, `c`.
fn vpn_address(a: u64, b: u64, c: u64) -> u64 {
    let vpn = a | (b << CHUNK_BITS) | (c << (2 * CHUNK_BITS));
    // Sign-extend bit 47: the address is canonical.
    (((vpn << 12) << 16) as i64 >> 16) as u64
}

/// The doorbell offsets to load, in order, to give `hint`: `(offsets, n)`.
pub fn encode(hint: Hint) -> ([u16; MAX_LOADS], usize) {
    let mut out = [0u16; MAX_LOADS];
    let (op, args): (Op, [u64; 4]) = match hint {
        Hint::Invlpg { va } => {
            let [a, b, c] = vpn_chunks(va);
            (Op::Invlpg, [a, b, c, 0])
        }
        Hint::Covers { va, pages } => {
            let [a, b, c] = vpn_chunks(va);
            (Op::Covers, [a, b, c, pages as u64 & CHUNK_MASK])
        }
        Hint::IpiSend { target } => (Op::IpiSend, [target as u64 & CHUNK_MASK, 0, 0, 0]),
        Hint::IpiEnter => (Op::IpiEnter, [0; 4]),
        Hint::Mark(mark) => (Op::Mark, [mark.code() as u64, 0, 0, 0]),
    };
    out[0] = op as u16;
    for (slot, arg) in out[1..].iter_mut().zip(args).take(op.args()) {
        *slot = arg as u16;
    }
    (out, 1 + op.args())
}

/// Reassembles hints from one CPU's doorbell loads (one decoder per CPU).
#[derive(Clone, Debug, Default)]
pub struct Decoder {
    op: Option<Op>,
    args: [u64; 4],
    have: usize,
}

/// A doorbell load the decoder could not place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// An op load with no such op (or an offset beyond 12 bits).
    BadOp(u16),
    /// A mark argument that names no mark.
    BadMark(u16),
}

impl Decoder {
    pub const fn new() -> Self {
        Decoder {
            op: None,
            args: [0; 4],
            have: 0,
        }
    }

    /// Takes the doorbell load at `offset`; returns the hint it completes.
    pub fn feed(&mut self, offset: u16) -> Result<Option<Hint>, DecodeError> {
        let Some(op) = self.op else {
            let op = Op::from_offset(offset).ok_or(DecodeError::BadOp(offset))?;
            self.op = Some(op);
            self.have = 0;
            return Ok(self.finish());
        };
        if op == Op::Mark && Mark::from_code(offset).is_none() {
            self.op = None;
            return Err(DecodeError::BadMark(offset));
        }
        self.args[self.have] = offset as u64 & CHUNK_MASK;
        self.have += 1;
        Ok(self.finish())
    }

    /// The completed hint, if the current op has all its arguments.
    fn finish(&mut self) -> Option<Hint> {
        let op = self.op?;
        if self.have < op.args() {
            return None;
        }
        self.op = None;
        let [a, b, c, d] = self.args;
        Some(match op {
            Op::Invlpg => Hint::Invlpg {
                va: vpn_address(a, b, c),
            },
            Op::Covers => Hint::Covers {
                va: vpn_address(a, b, c),
                pages: d as u16,
            },
            Op::IpiSend => Hint::IpiSend { target: a as u16 },
            Op::IpiEnter => Hint::IpiEnter,
            // `feed` refused an unknown mark code before it got here.
            Op::Mark => Hint::Mark(Mark::from_code(a as u16)?),
        })
    }

    /// Whether the decoder is between hints.
    pub fn idle(&self) -> bool {
        self.op.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(hint: Hint) -> Hint {
        let (loads, n) = encode(hint);
        let mut d = Decoder::new();
        let mut got = None;
        for (i, &off) in loads[..n].iter().enumerate() {
            assert!((off as u64) < DOORBELL_SIZE);
            let r = d.feed(off).unwrap();
            if i + 1 < n {
                assert_eq!(r, None, "hint complete early");
            } else {
                got = r;
            }
        }
        assert!(d.idle());
        got.expect("hint incomplete")
    }

    #[test]
    fn every_hint_round_trips() {
        for va in [
            0x1000u64,
            0x0000_7fff_ffff_e000,
            0xffff_8000_0020_0000,
            0xffff_ff00_0000_3000,
            0xffff_ffff_8010_0000,
        ] {
            assert_eq!(round_trip(Hint::Invlpg { va }), Hint::Invlpg { va });
        }
        for (va, pages) in [(0x7000u64, 1u16), (0xffff_ff00_c000_0000, 4095), (0, 0)] {
            assert_eq!(
                round_trip(Hint::Covers { va, pages }),
                Hint::Covers { va, pages }
            );
        }
        assert_eq!(
            round_trip(Hint::IpiSend { target: 63 }),
            Hint::IpiSend { target: 63 }
        );
        assert_eq!(round_trip(Hint::IpiEnter), Hint::IpiEnter);
        for mark in [
            Mark::WorkloadBegin,
            Mark::WorkloadEnd,
            Mark::WaitBegin,
            Mark::WaitEnd,
            Mark::ShootBegin,
            Mark::ShootEnd,
            Mark::Settled,
            Mark::PhaseBegin(0),
            Mark::PhaseEnd(255),
        ] {
            assert_eq!(round_trip(Hint::Mark(mark)), Hint::Mark(mark));
        }
    }

    #[test]
    fn invlpg_drops_the_page_offset() {
        assert_eq!(
            round_trip(Hint::Invlpg { va: 0x1234_5678 }),
            Hint::Invlpg { va: 0x1234_5000 }
        );
    }

    #[test]
    fn garbage_is_an_error_and_resynchronises() {
        let mut d = Decoder::new();
        assert_eq!(d.feed(0), Err(DecodeError::BadOp(0)));
        assert_eq!(d.feed(4000), Err(DecodeError::BadOp(4000)));
        assert!(d.idle());
        // An unknown mark ends the hint.
        assert_eq!(d.feed(Op::Mark as u16), Ok(None));
        assert_eq!(d.feed(0xfff), Err(DecodeError::BadMark(0xfff)));
        assert!(d.idle());
        assert_eq!(round_trip(Hint::IpiEnter), Hint::IpiEnter);
    }
}
