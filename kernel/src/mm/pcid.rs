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
//! # Which PCID a pmap runs under, and when it is flushed
//!
//! The generations are a model-checked core, lab_core::protocol::pcid
//! (its module doc says how and why, after Linux's choose_new_asid,
//! switch_mm_irqs_off and flush_tlb_func; kernel/lab-core/tests/protocols/
//! pcid.rs checks it): per CPU, six slots (the core's `SLOTS`, Linux's
//! TLB_NR_DYN_ASIDS), each holding the id of the user pmap whose entries
//! its PCID (slot + 1) tags and the pmap's generation those entries are
//! current to; per user pmap, a generation (`pm_tlb_gen`) every shootdown
//! bumps before it reads `pm_cpus`. The kernel pmap runs under PCID 0.
//! Switching to a user pmap ([`load`]): a slot holding it at its current
//! generation is loaded with bit 63 set (no flush); otherwise
//! the slot (found, or the least recently given one) is loaded with bit
//! 63 clear, which drops whatever its PCID cached. Pmap ids are never
//! reused (a counter), so a slot cannot mistake a new pmap at an old one's
//! address for it.
//!
//! # Shootdowns
//!
//! A CPU switching to a pmap sets its `pm_cpus` bit before it reads the
//! generation, a shootdown bumps the generation before it reads
//! `pm_cpus` ([`note_shootdown`], in mm::shootdown's target computation):
//! both SeqCst, so either the initiator sees the bit and sends the IPI,
//! or the CPU sees the new generation and flushes. A CPU that ran the pmap
//! and switched away is out of `pm_cpus` (fixed's rule), gets no IPI, and
//! keeps the old entries under the pmap's PCID: its slot's generation is
//! the stale mark that makes it flush them when it comes back.
//!
//! A user-address invalidation reaching a CPU with a user pmap loaded
//! (the IPI handler's, or the initiator's own: mm::shootdown's
//! invalidate_local calls [`invalidate`]) does nothing if the loaded
//! slot is current to the pmap's generation, and otherwise flushes the
//! whole PCID and records the generation it read, so a pmap shot down
//! while loaded is not flushed again on its next load. Linux flushes
//! only the request's pages when the request was made for exactly the
//! next generation; the requests here do not say which generation they
//! were made for (adding it would change what every protocol posts), so
//! this kernel takes the core's full-flush-when-behind form: an INVLPG
//! of the old kernel became a flush of the PCID. A full flush
//! (`Request::Tlb`) still flushes every PCID without touching the slots.
//!
//! # Kernel addresses
//!
//! An INVLPG drops a non-global entry from the current PCID only, so a
//! kernel address cached under another PCID would survive it. Linux uses
//! PCIDs only together with global kernel entries (arch/x86/mm/tlb.c,
//! flush_tlb_one_kernel: "we only use PCID if we also use global PTEs for
//! the kernel mapping, and INVLPG flushes global translations across all
//! address spaces"; SDM 4.10.4.1), and so does this kernel: with PCIDs on,
//! [`init_cpu`] turns CR4.PGE on and the kernel pmap's mappings are made
//! global (mm::pmap's leaf flags, [`kernel_global`]), so a kernel-address
//! invalidation is one INVLPG, as without `pcid`. (The boot code's own
//! mappings stay non-global; they never change.) Kernel page tables are
//! never freed (mm::pmap's pmap_kenter_pa), so no other PCID's
//! paging-structure cache can hold a freed one. `Request::Tlb` toggles
//! CR4.PGE, which drops every entry of every PCID. Linux with PTI keeps
//! kernel entries non-global and defers a flush of the other address
//! spaces instead; PTI is not built here.
//!
//! # Where it cannot run
//!
//! QEMU's TCG (7.2 here) offers no PCID (`-cpu ...,+pcid` is filtered out
//! with "TCG doesn't support requested feature"), and this workplace's KVM
//! runs no user mode. On a CPU without PCID the kernel does not fall back:
//! the run ends with an `unsupported` error (workloads::run), which the
//! harness reports as the run's outcome.

use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};

use lab_core::protocol::pcid::{Flush, Keep, Pcids, Request, TlbGen};
use x86_64::instructions::tlb::Pcid;
use x86_64::registers::control::{Cr3, Cr4, Cr4Flags};

use super::pmap::Pmap;
use crate::arch;
use crate::stats::{self, Event, MAX_CPUS};

/// Whether CR4.PCIDE is on (every CPU, or none).
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Ids given to user pmaps; 0 is never given (an empty slot).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Every CPU's PCID slots (the core's; each CPU's written only by that
/// CPU, with interrupts off).
static SLOTS_OF: Pcids = Pcids::new();

/// Per CPU: the generation of the user pmap loaded there (null: the
/// kernel pmap), for [`invalidate`]. A pmap stays alive while it is
/// loaded on a CPU (proc::sched), and every CR3 load under `pcid` goes
/// through [`load`], which sets this.
static LOADED: [AtomicPtr<TlbGen>; MAX_CPUS] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_CPUS];

/// Whether a load may keep what the PCID cached.
const KEEP: Keep = if cfg!(feature = "mutant-pcid-stale") {
    // Mutant `mutant-pcid-stale`: every load keeps the PCID's entries, so
    // a CPU coming back to a pmap that was shot down while it was away
    // (and got no IPI) uses the old translations.
    Keep::Always
} else {
    Keep::IfCurrent
};

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
    // loaded with no flags): setting PCIDE changes no translation, and
    // setting PGE none either (no entry is global yet).
    unsafe { Cr4::update(|f| f.insert(Cr4Flags::PCID | Cr4Flags::PAGE_GLOBAL)) };
    ENABLED.store(true, Ordering::Relaxed);
    true
}

/// Whether the kernel pmap's mappings are made global: under `pcid` with
/// PCIDs on (see "Kernel addresses" in the module doc).
pub fn kernel_global() -> bool {
    cfg!(feature = "pcid") && enabled()
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
        pm.pm_tlb_gen.bump();
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
    let me = arch::cpu_id();
    let slots = SLOTS_OF.of(me);
    if pm.is_kernel() {
        slots.switch_kernel();
        LOADED[me as usize].store(core::ptr::null_mut(), Ordering::Relaxed);
        // SAFETY: the kernel tables map everything kernel code uses; PCID
        // 0 is valid.
        unsafe { Cr3::write_pcid_no_flush(pm.pm_pml4, Pcid::new(0).unwrap()) };
        return true;
    }
    let to = slots.switch(pm.pm_id, &pm.pm_tlb_gen, KEEP);
    let gen = &pm.pm_tlb_gen as *const TlbGen;
    LOADED[me as usize].store(gen.cast_mut(), Ordering::Relaxed);
    let pcid = Pcid::new(to.slot as u16 + 1).expect("PCID slots fit in 12 bits");
    if to.flush {
        stats::count(Event::PcidFlushedLoads);
        // SAFETY: the pmap's PML4 maps the kernel half like every other;
        // bit 63 clear drops the PCID's old entries.
        unsafe { Cr3::write_pcid(pm.pm_pml4, pcid) };
    } else {
        stats::count(Event::PcidKeptLoads);
        // SAFETY: as above; its PCID's entries are current to its
        // generation (or, under the mutant, kept regardless).
        unsafe { Cr3::write_pcid_no_flush(pm.pm_pml4, pcid) };
    }
    true
}

/// Under `pcid` with PCIDs on and a user pmap loaded here, carries out a
/// user-address invalidation by the loaded slot's generation (module
/// doc): nothing, or a flush of the whole loaded PCID. Returns false when
/// the caller must invalidate the request's pages itself (PCIDs off, or
/// the kernel pmap loaded). Any interrupt state: the slot is read and
/// written with interrupts off, as its CPU's own.
pub fn invalidate() -> bool {
    if !(cfg!(feature = "pcid") && enabled()) {
        return false;
    }
    x86_64::instructions::interrupts::without_interrupts(|| {
        let me = arch::cpu_id();
        let loaded = LOADED[me as usize].load(Ordering::Relaxed);
        if loaded.is_null() {
            return false;
        }
        // SAFETY: the pmap loaded here is alive (see LOADED).
        let gen = unsafe { &*loaded };
        match SLOTS_OF.of(me).invalidate(gen, Request::UNTAGGED) {
            None | Some(Flush::Partial) => false,
            Some(Flush::Nothing) => {
                stats::count(Event::PcidInvalidationsSkipped);
                true
            }
            Some(Flush::Full) => {
                stats::count(Event::PcidInvalidationsFull);
                let (frame, pcid) = Cr3::read_pcid();
                // SAFETY: reloading the current tables and PCID with bit
                // 63 clear only drops that PCID's entries.
                unsafe { Cr3::write_pcid(frame, pcid) };
                true
            }
        }
    })
}
