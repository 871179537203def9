//! Local APIC interrupt command register (ICR) encoding, for both register
//! interfaces: xAPIC (two 32-bit MMIO writes, destination in bits 56..63)
//! and x2APIC (one 64-bit MSR write, 32-bit destination).
//!
//! Only what the kernel sends is modelled: physical destination mode, no
//! shorthand (one IPI per target, as the shootdown protocols count them),
//! fixed, INIT and start-up delivery.

/// ICR delivery mode (bits 8..10).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Delivery {
    Fixed = 0b000,
    Nmi = 0b100,
    Init = 0b101,
    Startup = 0b110,
}

/// ICR delivery-status bit (xAPIC only): set while the IPI is still being
/// sent; the sender waits for it to clear before writing the ICR again.
pub const DELIVERY_PENDING: u32 = 1 << 12;

/// One interrupt command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Icr {
    /// Vector for fixed IPIs; the start-up page (address >> 12) for SIPI.
    pub vector: u8,
    pub delivery: Delivery,
    /// Level: assert (1) or de-assert (0). Only INIT de-assert uses 0.
    pub assert: bool,
    /// Trigger mode: level (true) or edge (false).
    pub level_triggered: bool,
    /// Destination APIC id (physical mode).
    pub dest: u32,
}

impl Icr {
    /// A fixed, edge-triggered IPI with `vector` to APIC `dest`.
    pub const fn fixed(vector: u8, dest: u32) -> Icr {
        Icr {
            vector,
            delivery: Delivery::Fixed,
            assert: true,
            level_triggered: false,
            dest,
        }
    }

    /// INIT (assert), the first step of waking an application processor.
    pub const fn init(dest: u32) -> Icr {
        Icr {
            vector: 0,
            delivery: Delivery::Init,
            assert: true,
            level_triggered: true,
            dest,
        }
    }

    /// Start-up IPI: the AP begins in real mode at `page << 12`, with
    /// `page` below 0x100 (so the code lies below 1 MiB).
    pub const fn startup(dest: u32, page: u8) -> Icr {
        Icr {
            vector: page,
            delivery: Delivery::Startup,
            assert: true,
            level_triggered: false,
            dest,
        }
    }

    /// The low 32 bits (vector, delivery, level, trigger).
    pub const fn low(&self) -> u32 {
        self.vector as u32
            | (self.delivery as u32) << 8
            | (self.assert as u32) << 14
            | (self.level_triggered as u32) << 15
    }

    /// The xAPIC register pair `(ICR_HIGH, ICR_LOW)`, written in that order
    /// (the write to ICR_LOW sends). `None` if `dest` does not fit the
    /// xAPIC's 8-bit destination field.
    pub const fn xapic(&self) -> Option<(u32, u32)> {
        if self.dest > 0xff {
            return None;
        }
        Some((self.dest << 24, self.low()))
    }

    /// The x2APIC ICR MSR value (destination in the high half).
    pub const fn x2apic(&self) -> u64 {
        (self.dest as u64) << 32 | self.low() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_ipi() {
        let icr = Icr::fixed(0xf3, 2);
        // vector 0xf3, fixed, assert, edge
        assert_eq!(icr.xapic(), Some((0x0200_0000, 0x0000_40f3)));
        assert_eq!(icr.x2apic(), 0x0000_0002_0000_40f3);
        assert_eq!(Icr::fixed(0x40, 300).xapic(), None);
        assert_eq!(Icr::fixed(0x40, 300).x2apic(), 300u64 << 32 | 0x4040);
    }

    #[test]
    fn init_and_startup() {
        // The Intel SDM's MP start-up example writes 0xc4500 / 0xc46vv, i.e.
        // these with the all-excluding-self shorthand (bits 18-19) added.
        assert_eq!(Icr::init(1).xapic(), Some((0x0100_0000, 0x0000_c500)));
        assert_eq!(
            Icr::startup(1, 0x08).xapic(),
            Some((0x0100_0000, 0x0000_4608))
        );
    }
}
