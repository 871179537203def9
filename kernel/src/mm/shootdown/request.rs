//! What a shootdown asks a target to invalidate ([`Request`]), as it
//! travels through the protocols, and a request read out whole before it
//! is carried out ([`Invalidation`]).

use x86_64::VirtAddr;

use super::{dfly_batch, invalidate_local};
use crate::stats::{Event, IpiKind};

/// One invalidation request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    Page(VirtAddr),
    /// `[start, end)`.
    Range(VirtAddr, VirtAddr),
    Tlb,
    /// The first `n` VAs of the batch CPU `cpu` published for this round
    /// (`dfly_batch`); they stay put until that CPU's shootwait returns.
    /// Sent on the ShootRange vector and counted as a shootrange.
    List {
        cpu: u32,
        n: u32,
    },
}

impl Request {
    pub fn kind(self) -> IpiKind {
        match self {
            Request::Page(_) => IpiKind::ShootPage,
            Request::Range(..) | Request::List { .. } => IpiKind::ShootRange,
            Request::Tlb => IpiKind::ShootTlb,
        }
    }

    pub(super) fn events(self) -> (Event, Event) {
        match self.kind() {
            IpiKind::ShootPage => (Event::ShootPageCalls, Event::ShootPageNoIpi),
            IpiKind::ShootRange => (Event::ShootRangeCalls, Event::ShootRangeNoIpi),
            _ => (Event::ShootTlbCalls, Event::ShootTlbNoIpi),
        }
    }

    /// Whether it invalidates a kernel (upper-half) address.
    pub(super) fn has_kernel_address(self) -> bool {
        const KERNEL_HALF: u64 = 0xffff_8000_0000_0000;
        match self {
            Request::Page(va) => va.as_u64() >= KERNEL_HALF,
            Request::Range(_, end) => end.as_u64() > KERNEL_HALF,
            // A full flush flushes everything anyway; a List is DragonFly's
            // (user pmaps only).
            Request::Tlb | Request::List { .. } => false,
        }
    }

    /// The request as three words (kind, addr1, addr2), for protocols
    /// that publish it in shared memory.
    pub fn encode(self) -> (u64, u64, u64) {
        match self {
            Request::Page(va) => (0, va.as_u64(), 0),
            Request::Range(s, e) => (1, s.as_u64(), e.as_u64()),
            Request::Tlb => (2, 0, 0),
            Request::List { cpu, n } => (3, u64::from(cpu), u64::from(n)),
        }
    }

    /// The inverse of [`Request::encode`].
    pub fn decode(kind: u64, a1: u64, a2: u64) -> Request {
        match kind {
            0 => Request::Page(VirtAddr::new(a1)),
            1 => Request::Range(VirtAddr::new(a1), VirtAddr::new(a2)),
            3 => Request::List {
                cpu: a1 as u32,
                n: a2 as u32,
            },
            _ => Request::Tlb,
        }
    }
}

/// A request read out completely, so it can be carried out after the
/// initiator has been told it may reuse its buffers (the scoreboard
/// acknowledges before invalidating): a List's VAs are copied.
pub struct Invalidation {
    pub(super) req: Request,
    pub(super) vas: [u64; dfly_batch::MAXPIR],
}

impl Invalidation {
    /// Reads `req` and, for a List, the VAs it names.
    pub fn read(req: Request) -> Invalidation {
        let mut vas = [0; dfly_batch::MAXPIR];
        if let Request::List { cpu, n } = req {
            dfly_batch::read_published(cpu, &mut vas[..n as usize]);
        }
        Invalidation { req, vas }
    }

    /// Invalidates it in this CPU's TLB.
    pub fn invalidate(&self) {
        match self.req {
            Request::List { n, .. } => self.vas[..n as usize]
                .iter()
                .for_each(|&va| crate::arch::model_hint::invlpg(VirtAddr::new(va))),
            req => invalidate_local(req),
        }
    }
}
