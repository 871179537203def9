//! Process-context identifiers (feature `pcid`): a context switch that
//! keeps the TLB, and a shootdown that leaves a CPU not running the pmap a
//! stale mark instead of an IPI. Linux's scheme (arch/x86/mm/tlb.c:
//! per-CPU dynamic ASIDs, `cpu_tlbstate.ctxs[]`, the mm's `tlb_gen`);
//! FreeBSD's amd64 pmap does the same with `pm_pcids[cpu]` and a
//! per-pmap generation (pmap_activate_sw_pcid_pti and friends).
//!
//! # The CPU's side (Intel SDM vol. 3, 4.10.1 and 4.10.4.1)
//!
//! With CR4.PCIDE set, CR3 bits 11:0 name the PCID the TLB tags new
//! entries with, and a MOV to CR3 with bit 63 set keeps the entries of
//! every PCID; with bit 63 clear it drops the non-global entries (and the
//! paging-structure caches) of the PCID it loads, and only those. INVLPG
//! drops the address in the *current* PCID only (and global entries).
//! Toggling CR4.PGE drops everything, every PCID.
//!
//! # Which PCID a pmap runs under
//!
//! Per CPU, [`SLOTS`] slots (Linux's TLB_NR_DYN_ASIDS is 6), each holding
//! the id of the user pmap whose entries its PCID (slot + 1) tags and the
//! pmap's generation those entries are current to. The kernel pmap runs
//! under PCID 0. Switching to a user pmap ([`load`]): a slot holding it
//! with its current generation is loaded with bit 63 set (no flush);
//! otherwise the slot (found, or the least recently given one) is loaded
//! with bit 63 clear, which drops whatever its PCID cached. Pmap ids are
//! never reused (a counter), so a slot cannot mistake a new pmap at an old
//! one's address for it.
//!
//! # Shootdowns
//!
//! A shootdown of a user pmap bumps its generation before it reads
//! `pm_cpus` ([`note_shootdown`], in mm::shootdown's target computation),
//! and a CPU switching to it sets its `pm_cpus` bit before it reads the
//! generation: both SeqCst, so either the initiator sees the bit and sends
//! the IPI, or the CPU sees the new generation and flushes. A CPU that ran
//! the pmap and switched away is out of `pm_cpus` (fixed's rule), gets no
//! IPI, and keeps the old entries under the pmap's PCID: the generation is
//! the stale mark that makes it flush them when it comes back. The IPI
//! handler invalidates in the current PCID and never advances a slot's
//! generation (it cannot tell which generation its request covers), so a
//! pmap that was shot down while loaded is flushed once on its next load.
//!
//! Kernel addresses are cached under whichever PCID was current (the boot
//! code makes no mapping global), so an INVLPG of one would miss the other
//! PCIDs: under `pcid` every kernel-address invalidation and every full
//! flush toggles CR4.PGE (mm::shootdown::invalidate_local). Linux avoids
//! that cost with global kernel pages; so could this kernel, later.
//!
//! # Where it cannot run
//!
//! QEMU's TCG (7.2 here) offers no PCID (`-cpu ...,+pcid` is filtered out
//! with "TCG doesn't support requested feature"), and this workplace's KVM
//! runs no user mode. On a CPU without PCID the kernel does not fall back:
//! the run ends with an `unsupported` error (workloads::run), which the
//! harness reports as the run's outcome.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use x86_64::instructions::tlb::Pcid;
use x86_64::registers::control::{Cr3, Cr4, Cr4Flags};

use super::pmap::Pmap;
use crate::arch;
use crate::stats::{self, Event, MAX_CPUS};

/// PCIDs per CPU for user pmaps (PCIDs 1..=SLOTS).
pub const SLOTS: usize = 6;

/// Whether CR4.PCIDE is on (every CPU, or none).
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Ids given to user pmaps; 0 is never given (an empty slot).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// One CPU's PCID slots. Written only by that CPU, with interrupts off
/// (the scheduler's switch).
struct Slots {
    /// The pmap id each slot's PCID tags (0: none).
    owner: [AtomicU64; SLOTS],
    /// The owner's generation the slot's entries are current to.
    gen: [AtomicU64; SLOTS],
    /// The slot given out next when no slot holds the pmap.
    next: AtomicU64,
}

static CPU_SLOTS: [Slots; MAX_CPUS] = [const {
    Slots {
        owner: [const { AtomicU64::new(0) }; SLOTS],
        gen: [const { AtomicU64::new(0) }; SLOTS],
        next: AtomicU64::new(0),
    }
}; MAX_CPUS];

/// Whether this CPU offers PCID (CPUID.01H:ECX bit 17).
pub fn offered() -> bool {
    core::arch::x86_64::__cpuid(1).ecx & (1 << 17) != 0
}

/// Turns CR4.PCIDE on for this CPU if the CPU offers it; returns whether
/// it is on. CR3 must name PCID 0 (the boot tables: bits 11:0 clear), as
/// the SDM requires for the switch. Every CPU, at start.
pub fn init_cpu() -> bool {
    if !offered() {
        return false;
    }
    // SAFETY: PCID offered, long mode, CR3[11:0] = 0 (the boot tables are
    // loaded with no flags): setting PCIDE changes no translation.
    unsafe { Cr4::update(|f| f.insert(Cr4Flags::PCID)) };
    ENABLED.store(true, Ordering::Relaxed);
    true
}

/// Whether PCIDs are in use.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// A fresh id for a new user pmap.
pub fn new_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// Under `pcid`, marks every CPU's entries of user pmap `pm` stale: called
/// by a shootdown before it reads `pm_cpus` (see the module doc). A no-op
/// otherwise and for the kernel pmap (PCID 0, flushed everywhere).
pub fn note_shootdown(pm: &Pmap) {
    if cfg!(feature = "pcid") && !pm.is_kernel() {
        pm.pm_tlb_gen.fetch_add(1, Ordering::SeqCst);
    }
}

/// Under `pcid` with PCIDs on, loads `pm`'s tables on this CPU and returns
/// true; otherwise returns false and the caller loads CR3 the plain way.
/// The kernel pmap runs under PCID 0, keeping every PCID's entries:
/// kernel-address changes flush every PCID (module doc), and it maps
/// nothing below the kernel half that ever changes. A user pmap runs under
/// its slot's PCID, flushed unless its entries are current (module doc);
/// the caller has set this CPU's bit in `pm_cpus` (SeqCst). Interrupts off.
pub fn load(pm: &Pmap) -> bool {
    if !(cfg!(feature = "pcid") && enabled()) {
        return false;
    }
    if pm.is_kernel() {
        // SAFETY: the kernel tables map everything kernel code uses; PCID
        // 0 is valid.
        unsafe { Cr3::write_pcid_no_flush(pm.pm_pml4, Pcid::new(0).unwrap()) };
        return true;
    }
    let me = arch::cpu_id() as usize;
    let slots = &CPU_SLOTS[me];
    // After the pm_cpus bit (SeqCst on both sides, module doc).
    let gen = pm.pm_tlb_gen.load(Ordering::SeqCst);
    let held = (0..SLOTS).find(|&s| slots.owner[s].load(Ordering::Relaxed) == pm.pm_id);
    let (slot, current) = match held {
        Some(s) => (s, slots.gen[s].load(Ordering::Relaxed) == gen),
        None => {
            let s = (slots.next.fetch_add(1, Ordering::Relaxed) as usize) % SLOTS;
            slots.owner[s].store(pm.pm_id, Ordering::Relaxed);
            (s, false)
        }
    };
    // Mutant `mutant-pcid-stale`: every load keeps the PCID's entries, so
    // a CPU coming back to a pmap that was shot down while it was away
    // (and got no IPI) uses the old translations.
    let current = current || cfg!(feature = "mutant-pcid-stale");
    let pcid = Pcid::new(slot as u16 + 1).expect("PCID slots fit in 12 bits");
    slots.gen[slot].store(gen, Ordering::Relaxed);
    if current {
        stats::count(Event::PcidKeptLoads);
        // SAFETY: the pmap's PML4 maps the kernel half like every other;
        // its PCID's entries are current to its generation.
        unsafe { Cr3::write_pcid_no_flush(pm.pm_pml4, pcid) };
    } else {
        stats::count(Event::PcidFlushedLoads);
        // SAFETY: as above; bit 63 clear drops the PCID's old entries.
        unsafe { Cr3::write_pcid(pm.pm_pml4, pcid) };
    }
    true
}
