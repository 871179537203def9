//! The PCID generations' core (feature `pcid`): which PCID a CPU runs a
//! user pmap under, whether loading it keeps what that PCID cached, and
//! what an invalidation reaching the CPU leaves to do. Built after Linux's
//! arch/x86/mm/tlb.c (per-mm `context.tlb_gen`, per-CPU
//! `cpu_tlbstate.ctxs[]`, `choose_new_asid`, `switch_mm_irqs_off`,
//! `flush_tlb_func`); the kernel's glue (CR4.PCIDE, the CR3 and INVLPG
//! writes, counters) is kernel/src/mm/pcid.rs.
//!
//! # Shared state
//!
//! - [`TlbGen`], one per user pmap (Linux's `tlb_gen`): bumped by every
//!   shootdown of the pmap after its page-table change and before it reads
//!   the pmap's CPU set ([`TlbGen::bump`]).
//! - [`Slots`], one per CPU (Linux's `ctxs[]` and `next_asid`): which pmap
//!   each PCID tags, the pmap's generation its entries are current to,
//!   the slot given out next and the slot loaded now. Written only by that
//!   CPU with interrupts off (a switch, an IPI handler, the initiator's own
//!   invalidation), so relaxed accesses suffice; they are atomics only to
//!   live in a shared static.
//!
//! # Switching to a pmap ([`Slots::switch`])
//!
//! The caller has set its bit in the pmap's CPU set (SeqCst) and only
//! then reads the generation, a shootdown bumps the generation and only
//! then reads the set, each side with a SeqCst fence between its store
//! and its load (on x86 the locked RMWs already are full barriers, as
//! Linux relies on; the fences say it, and are what the model checker
//! honours, since it treats SeqCst accesses as acquire/release). So one
//! of the two sees the other: the initiator sends this CPU the IPI, or
//! this CPU sees the new generation and flushes.
//!
//! A slot holding the pmap at the generation read is kept; an older one
//! is flushed; a pmap no slot holds gets the next slot, round robin,
//! flushed. The slot then records the generation read.
//!
//! # An invalidation reaching the CPU ([`Slots::invalidate`])
//!
//! Linux's rules, in order, for the pmap loaded here:
//! - a request of another pmap (a CPU that switched away after the
//!   initiator read the set) needs nothing: that pmap's slot is behind
//!   its bumped generation and flushes when loaded again;
//! - a request whose generation the slot already covers, or a slot
//!   current to the pmap's generation, needs nothing (a switch or an
//!   earlier flush read a generation at least as new, then flushed);
//! - a ranged request made exactly one generation past the slot's, which
//!   is also the pmap's latest, needs only its own pages flushed: every
//!   change before it is covered, and no other is outstanding;
//! - anything else (older changes unflushed, several outstanding, or a
//!   request that does not say which generation it was made for) flushes
//!   the whole PCID.
//!
//! After a flush the slot records the pmap's generation read *before* the
//! flush, so it never claims a change the flush could not have covered.
//! This is what the kernel before this core lacked: its handler never
//! advanced a slot, so a pmap shot down while loaded was flushed again on
//! its next load.
//!
//! The partial flush needs the request's generation (Linux's
//! `new_tlb_gen`). The kernel's requests do not carry it (mm::shootdown's
//! `Request` is posted as three words by every protocol, the scoreboard's
//! and the mailboxes' included), nor does the kernel know there which
//! pmap a request is for: it passes [`Request::UNTAGGED`], which leaves
//! nothing or a full flush of the PCID when behind. The model checks both
//! forms (kernel/lab-core/tests/protocols/pcid.rs).

use crate::cpuset::MAX_CPUS;

use super::const_unless_loom;
use super::sync::{fence, AtomicU64, AtomicUsize, Ordering};

/// PCIDs per CPU for user pmaps (Linux's TLB_NR_DYN_ASIDS is 6).
pub const SLOTS: usize = 6;

/// A user pmap's generation: how many shootdowns it has had.
pub struct TlbGen(AtomicU64);

impl TlbGen {
    const_unless_loom! {
        pub fn new() -> TlbGen {
            TlbGen(AtomicU64::new(0))
        }
    }

    /// A shootdown's mark, after its page-table change and before it
    /// reads the pmap's CPU set: returns the generation it made. The fence
    /// orders the bump before that read (module doc).
    pub fn bump(&self) -> u64 {
        let made = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        fence(Ordering::SeqCst);
        made
    }

    /// The pmap's generation now.
    pub fn read(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

impl Default for TlbGen {
    fn default() -> TlbGen {
        TlbGen::new()
    }
}

/// Whether a switch may keep what a PCID cached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// Only a slot holding the pmap at its current generation (Linux).
    IfCurrent,
    /// Mutant `mutant-pcid-stale`: every load keeps the PCID's entries,
    /// even those a shootdown the CPU missed marked stale.
    Always,
}

/// What a switch decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Switch {
    /// The slot the pmap runs under (the kernel's PCID is slot + 1).
    pub slot: usize,
    /// Load with the PCID's entries dropped (CR3 bit 63 clear).
    pub flush: bool,
}

/// An invalidation as the core needs to see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// The pmap it is for (its id), if the request says.
    pub pmap: Option<u64>,
    /// The generation its shootdown made (Linux's `new_tlb_gen`), if the
    /// request carries it.
    pub made: Option<u64>,
    /// It names pages (a partial flush could do), not everything.
    pub ranged: bool,
}

impl Request {
    /// The kernel's: no pmap, no generation (module doc).
    pub const UNTAGGED: Request = Request {
        pmap: None,
        made: None,
        ranged: true,
    };
}

/// What an invalidation leaves this CPU to do in the loaded PCID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flush {
    /// Nothing: the PCID is already current to the request.
    Nothing,
    /// The request's own pages.
    Partial,
    /// The whole PCID.
    Full,
}

/// One CPU's PCID slots (module doc).
pub struct Slots {
    /// The pmap id each slot's PCID tags (0: none; ids are never 0).
    owner: [AtomicU64; SLOTS],
    /// The owner's generation the slot's entries are current to.
    gen: [AtomicU64; SLOTS],
    /// The slot given out next when none holds the pmap.
    next: AtomicUsize,
    /// The slot loaded now, plus one (0: the kernel pmap, PCID 0).
    loaded: AtomicUsize,
}

impl Slots {
    const_unless_loom! {
        pub fn new() -> Slots {
            #[cfg(not(loom))]
            let slots = Slots {
                owner: [const { AtomicU64::new(0) }; SLOTS],
                gen: [const { AtomicU64::new(0) }; SLOTS],
                next: AtomicUsize::new(0),
                loaded: AtomicUsize::new(0),
            };
            #[cfg(loom)]
            let slots = Slots {
                owner: core::array::from_fn(|_| AtomicU64::new(0)),
                gen: core::array::from_fn(|_| AtomicU64::new(0)),
                next: AtomicUsize::new(0),
                loaded: AtomicUsize::new(0),
            };
            slots
        }
    }

    /// This CPU (interrupts off) switches to user pmap `id`, whose
    /// generation is `tlb_gen`, after setting its bit in the pmap's CPU
    /// set (SeqCst). The caller loads the slot's PCID, flushing it if
    /// told to.
    pub fn switch(&self, id: u64, tlb_gen: &TlbGen, keep: Keep) -> Switch {
        // After the CPU-set bit (module doc).
        fence(Ordering::SeqCst);
        let now = tlb_gen.read();
        let held = (0..SLOTS).find(|&s| self.owner[s].load(Ordering::Relaxed) == id);
        let (slot, current) = match held {
            Some(s) => (s, self.gen[s].load(Ordering::Relaxed) == now),
            None => {
                let s = self.next.load(Ordering::Relaxed);
                self.next.store((s + 1) % SLOTS, Ordering::Relaxed);
                self.owner[s].store(id, Ordering::Relaxed);
                (s, false)
            }
        };
        self.gen[slot].store(now, Ordering::Relaxed);
        self.loaded.store(slot + 1, Ordering::Relaxed);
        Switch {
            slot,
            flush: !current && keep == Keep::IfCurrent,
        }
    }

    /// This CPU (interrupts off) switches to the kernel pmap (PCID 0).
    pub fn switch_kernel(&self) {
        self.loaded.store(0, Ordering::Relaxed);
    }

    /// The slot loaded now (None: the kernel pmap's PCID 0).
    pub fn loaded(&self) -> Option<usize> {
        self.loaded.load(Ordering::Relaxed).checked_sub(1)
    }

    /// An invalidation `req` reaching this CPU (interrupts off: its IPI
    /// handler, or the initiator's own) while a user pmap is loaded here,
    /// `tlb_gen` that pmap's generation: what to flush in the loaded PCID
    /// (module doc). None with the kernel pmap loaded: the caller does
    /// the plain invalidation. The slot records what the flush covers.
    pub fn invalidate(&self, tlb_gen: &TlbGen, req: Request) -> Option<Flush> {
        let slot = self.loaded()?;
        if req
            .pmap
            .is_some_and(|id| id != self.owner[slot].load(Ordering::Relaxed))
        {
            return Some(Flush::Nothing);
        }
        let local = self.gen[slot].load(Ordering::Relaxed);
        if req.made.is_some_and(|made| made <= local) {
            return Some(Flush::Nothing);
        }
        let now = tlb_gen.read();
        if local == now {
            return Some(Flush::Nothing);
        }
        let next = local + 1;
        let flush = if req.ranged && req.made == Some(next) && next == now {
            Flush::Partial
        } else {
            Flush::Full
        };
        self.gen[slot].store(now, Ordering::Relaxed);
        Some(flush)
    }
}

impl Default for Slots {
    fn default() -> Slots {
        Slots::new()
    }
}

/// Every CPU's slots, for up to `CPUS` CPUs (the kernel's static is
/// [`MAX_CPUS`]; the model checker's a few).
pub struct Pcids<const CPUS: usize = MAX_CPUS> {
    cpus: [Slots; CPUS],
}

impl<const CPUS: usize> Pcids<CPUS> {
    const_unless_loom! {
        pub fn new() -> Pcids<CPUS> {
            #[cfg(not(loom))]
            let pcids = Pcids {
                cpus: [const { Slots::new() }; CPUS],
            };
            #[cfg(loom)]
            let pcids = Pcids {
                cpus: core::array::from_fn(|_| Slots::new()),
            };
            pcids
        }
    }

    /// CPU `cpu`'s slots.
    pub fn of(&self, cpu: u32) -> &Slots {
        &self.cpus[cpu as usize]
    }
}

impl<const CPUS: usize> Default for Pcids<CPUS> {
    fn default() -> Pcids<CPUS> {
        Pcids::new()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    const PM: u64 = 1;
    const OTHER: u64 = 2;

    /// The case: shot down while loaded, then away and back.
    #[test]
    fn shot_down_while_loaded_keeps_on_return() {
        let (slots, gen, other) = (Slots::new(), TlbGen::new(), TlbGen::new());
        assert!(slots.switch(PM, &gen, Keep::IfCurrent).flush);
        gen.bump();
        assert_eq!(slots.invalidate(&gen, Request::UNTAGGED), Some(Flush::Full));
        slots.switch(OTHER, &other, Keep::IfCurrent);
        let back = slots.switch(PM, &gen, Keep::IfCurrent);
        assert_eq!(
            back,
            Switch {
                slot: 0,
                flush: false
            }
        );
    }

    #[test]
    fn linux_rules() {
        let (slots, gen) = (Slots::new(), TlbGen::new());
        slots.switch(PM, &gen, Keep::IfCurrent);
        let tagged = |made| Request {
            pmap: Some(PM),
            made: Some(made),
            ranged: true,
        };
        // One outstanding, the latest: its pages only.
        let g1 = gen.bump();
        assert_eq!(slots.invalidate(&gen, tagged(g1)), Some(Flush::Partial));
        // Covered already: nothing.
        assert_eq!(slots.invalidate(&gen, tagged(g1)), Some(Flush::Nothing));
        // Two outstanding: the first flushes everything, the second is
        // then covered.
        let (g2, g3) = (gen.bump(), gen.bump());
        assert_eq!(slots.invalidate(&gen, tagged(g2)), Some(Flush::Full));
        assert_eq!(slots.invalidate(&gen, tagged(g3)), Some(Flush::Nothing));
        // Another pmap's request: nothing here.
        let other = Request {
            pmap: Some(OTHER),
            ..tagged(gen.bump())
        };
        assert_eq!(slots.invalidate(&gen, other), Some(Flush::Nothing));
        // A switch after a missed shootdown flushes; the mutant keeps.
        slots.switch(OTHER, &TlbGen::new(), Keep::IfCurrent);
        gen.bump();
        assert!(slots.switch(PM, &gen, Keep::IfCurrent).flush);
        slots.switch_kernel();
        assert_eq!(slots.invalidate(&gen, tagged(9)), None);
        gen.bump();
        assert!(!slots.switch(PM, &gen, Keep::Always).flush);
    }

    #[test]
    fn slots_round_robin() {
        let slots = Slots::new();
        let gens: [TlbGen; SLOTS + 1] = core::array::from_fn(|_| TlbGen::new());
        for (id, g) in gens.iter().enumerate() {
            let s = slots.switch(id as u64 + 1, g, Keep::IfCurrent);
            assert_eq!(
                s,
                Switch {
                    slot: id % SLOTS,
                    flush: true
                }
            );
        }
    }
}
