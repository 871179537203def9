//! TLB shootdowns: OpenBSD's interface, one protocol behind it.
//!
//! # Interface (OpenBSD amd64 pmap)
//!
//! After changing valid page-table entries, a pmap operation calls
//! [`pmap_tlb_shootpage`] (one page), [`pmap_tlb_shootrange`] (a range) or
//! [`pmap_tlb_shoottlb_all_cpus`] (everything), then [`pmap_tlb_shootwait`] before
//! it reuses what the old entries pointed at. A shoot call invalidates this
//! CPU's TLB itself (if the pmap is loaded here) after sending the IPIs,
//! so the local work overlaps the remote (`flush-first` does it before,
//! as Linux and FreeBSD did until Amit 2020 and D25510); the wait returns
//! when every target has invalidated. Callers must not migrate between
//! the two calls nor call them from interrupt context.
//!
//! # Targets (`lab_core::shoot::shoot_targets`)
//!
//! The online CPUs other than the caller on which the pmap may be cached:
//! all of them for the kernel pmap, those in `pm_cpus` for a user pmap
//! (seed 000's bugs make `pm_cpus` too large). pmap_tlb_shoottlb, as in
//! OpenBSD 2010, targets every other online CPU whatever the pmap
//! ([`pmap_tlb_shoottlb_all_cpus`]). No
//! target, no IPI: the call is still counted, and counted as "no IPI".
//!
//! # Protocols
//!
//! How requests reach the targets and how acknowledgements come back is a
//! [`Protocol`]; exactly one is compiled in, chosen by Cargo feature at the
//! `Active` alias below (the only place that names a protocol):
//! - `global_slot` (default): OpenBSD today, one global slot.
//! - `scoreboard` (feature `scoreboard`, and `scoreboard-padded`): FreeBSD
//!   D25510 (seed 003), per-CPU records and a generation scoreboard, so
//!   CPUs shoot down in parallel.
//! - `consolidated` (feature `cacheline-consolidation`, which implies
//!   `scoreboard`): the scoreboard's protocol with Amit 2020's cacheline
//!   consolidation, one 64-byte mailbox per (target, initiator) holding
//!   both the request and its acknowledgement word, so a target takes and
//!   acknowledges a request in one cache line instead of two, and a
//!   doorbell line per target that says which mailboxes to read.
//!
//! # Batches (`dfly_batch`, used by the pmap in the `dfly-batch` variant)
//!
//! DragonFly's pmap_inval_info (seeds 001, 002): a range operation records
//! the VAs it really changed and flushes them in one IPI round, as a
//! [`Request::List`] of up to `MAXPIR` VAs (the ShootRange vector and
//! counters) or, beyond that, a full flush of the pmap's CPUs; a pmap no
//! other CPU can cache is invalidated here without the machinery.
//!
//! # Shortcuts (the techniques published since the seeds)
//!
//! Each is a feature and a small block where it acts:
//! - when a target may acknowledge: [`AckRule`], carried with every request
//!   (`early-ack`, `in-context-flush` in global_slot.rs and [`in_context`]);
//! - which targets get an IPI at all, in [`shoot`]: `lazy-latr` leaves a
//!   munmap's record in this CPU's ring for the targets' next sweep
//!   instead (mm::latr), `lazy-tlb` skips a CPU that holds the pmap only
//!   lazily, which catches up by the pmap's generation on its return
//!   (mm::lazy_tlb);
//! - whether a change needs a shootdown: `no-flush-cow` in mm::pmap's
//!   enter;
//! - when the initiator invalidates its own TLB: `flush-first` (the order
//!   Amit 2020's concurrent flush replaced), in [`shoot`].
//!
//! # Measurements
//!
//! Per CPU (mm and stats): calls and no-IPI calls per kind, cycles spent
//! waiting for the protocol's lock (`shoot.wait.slot`) and in
//! pmap_tlb_shootwait (`shoot.wait.ack`), from the start of a shootdown that
//! sent IPIs to the end of its wait (`shoot.op_cycles`, the initiator's whole
//! cost, its own invalidation included), and the ack waits as a log2
//! histogram (`shoot.wait.ack.log2.<b>`, stats.rs). Per kind, a sample of the
//! acknowledgement latency of each shootdown that sent IPIs: cycles from
//! the request going out (the protocol's lock held, before the first IPI)
//! until the wait saw every target done, so sending is included as in an
//! IPI round trip (reported as
//! `shoot.ack.<kind>.{count,median,p99,max}` and the median in ns).
//!
//! Per run, from the protocol's layout rather than from any clock (TCG has
//! no cache model, so no time could show it): the 64-byte cache lines a
//! request goes through, from the addresses of the fields the protocol's
//! serve and start paths use ([`Protocol::footprint`], [`report`]). Only
//! lines of shared state some other CPU writes count (boot-time constants
//! such as a CPU count stay cached everywhere; the APIC and arch::ipi's
//! counters are the same for every protocol). Over every ordered pair
//! (target, initiator) of the run's CPUs, the maximum of:
//! `shoot.target_lines`, the lines a target reads or writes to take and
//! acknowledge one Page, Range or Tlb request (a List's VAs may add the
//! initiator's published array, see each protocol); `shoot.target_shared_lines`,
//! those of them another pair's request also goes through (lines that
//! bounce between targets, or between initiators); per target,
//! `shoot.target_scan_lines`, the lines its search for posted requests
//! reads; per initiator, `shoot.initiator_lines`, the lines it writes to
//! post one request to every other CPU (an all-CPU shoottlb).
//!
//! # Causes
//!
//! Each call is also counted under the cause in force on this CPU
//! ([`cause`], set by the pmap operation's caller): calls, no-IPI calls,
//! IPIs sent, and the ack-wait cycles of its pmap_tlb_shootwait, reported
//! as `shoot.cause.<cause>.<kind>.{calls,noipi,ipis,ack_cycles}` (stats.rs;
//! absent = 0). Per kind, the sums over causes equal `shoot.calls.<kind>`,
//! `shoot.noipi.<kind>` and `ipi.sent.<kind>` exactly (this module sends
//! every shootdown-kind IPI, one per target, in `Active::start`); summed
//! over causes and kinds, `ack_cycles` equals `shoot.wait.ack`.
//!
//! # Files
//!
//! This file is the interface (the pmap_tlb_* calls, [`Protocol`], the
//! one `Active` protocol) and the steps every shootdown takes ([`shoot`]:
//! targets, the techniques' shortcuts, the local invalidation); beside it
//! `request.rs` (what travels), `ack_rule.rs` (when a target may
//! acknowledge), `cpu.rs` (this CPU for the protocol cores),
//! `measure.rs` (the initiator's costs and their report), `footprint.rs`
//! (the cache-line footprint), `model.rs` (what the memory-system model
//! is told), and one file per protocol and technique step.

use lab_core::cpuset::CpuSet;
use lab_core::model_hint::Mark;
use lab_core::shoot::{plan_range, shoot_targets, Flush};
use x86_64::registers::control::{Cr3, Cr4, Cr4Flags};
use x86_64::VirtAddr;

use super::pmap::Pmap;
use crate::arch;
use crate::stats::{self, CauseField, Event, IpiKind};

mod ack_rule;
pub mod cause;
mod cpu;
pub mod dfly_batch;
mod footprint;
pub mod in_context;
mod measure;
mod model;
mod request;

use ack_rule::{ack_rule, frees_tables_here};
pub use ack_rule::{tables_freed, AckRule};
pub(crate) use cpu::ThisCpu;
pub use footprint::{Footprint, Lines};
pub use measure::{report, take_last_ack};
pub use model::model_settled;
use model::tell_model_settled;
pub use request::{Invalidation, Request};

// The protocol compiled in: the one place a protocol is chosen.
#[cfg(not(feature = "scoreboard"))]
mod global_slot;
#[cfg(not(feature = "scoreboard"))]
type Active = global_slot::GlobalSlot;
#[cfg(all(feature = "scoreboard", not(feature = "cacheline-consolidation")))]
mod scoreboard;
#[cfg(all(feature = "scoreboard", not(feature = "cacheline-consolidation")))]
type Active = scoreboard::Scoreboard;
// `cacheline-consolidation` (Amit 2020): the scoreboard's protocol with
// each (target, initiator) pair's request and acknowledgement in one
// 64-byte mailbox instead of a row word plus the initiator's record.
#[cfg(feature = "cacheline-consolidation")]
mod consolidated;
#[cfg(feature = "cacheline-consolidation")]
type Active = consolidated::Consolidated;

/// A way of delivering shootdowns to other CPUs and waiting for them.
/// `start` and `wait` run with the caller's interrupt state (on, for the
/// pmap operations of syscalls and faults: targets, including one that is
/// itself initiating, take the IPI in the kernel); each protocol's header
/// says what it needs beyond that.
pub trait Protocol {
    /// Registers the IPI handlers. Called once, at boot.
    fn init();
    /// Delivers `req` to `targets` (non-empty, without this CPU): takes
    /// whatever the protocol serialises on (counting `Event::SlotWaitCycles`
    /// spent waiting), publishes the request, sends one IPI per target, and
    /// returns the TSC at which the request went out (after any wait, before
    /// the first IPI). Each target invalidates, then acknowledges.
    /// `rule` says when a target may acknowledge ([`AckRule`]); a protocol
    /// that always acknowledges after invalidating may ignore it.
    fn start(req: Request, targets: CpuSet, rule: AckRule) -> u64;
    /// Returns when every target of this CPU's last `start` has
    /// acknowledged. Serves requests for this CPU while it waits.
    fn wait();
    /// Serves any request pending for this CPU (from spin loops, so a CPU
    /// spinning with interrupts off does not hold up a shootdown).
    fn poll();
    /// Adds to `fp` the shared fields a Page, Range or Tlb request from
    /// `initiator` to `target` goes through: those the target's serve path
    /// reads or writes for it (`fp.request`) and those the initiator's
    /// start writes to post it to that target (`fp.post`), taken through
    /// the same accessors serve and start use. For the `shoot.*_lines`
    /// metrics ([`report`]).
    fn footprint(target: u32, initiator: u32, fp: &mut Footprint);
    /// Adds to `lines` the shared fields `target`'s serve path reads to
    /// find the requests posted to it (`ncpu` CPUs online).
    fn scan_footprint(target: u32, ncpu: u32, lines: &mut Lines);
}

/// Registers the protocol's IPI handlers.
pub fn init() {
    Active::init();
}

/// Serves shootdown requests pending for this CPU (see [`Protocol::poll`]).
pub fn poll() {
    Active::poll();
}

/// Invalidates `req` in this CPU's TLB.
pub fn invalidate_local(req: Request) {
    use crate::arch::model_hint::invlpg;
    // `lazy-tlb`: a CPU holding a user pmap only lazily loads the kernel's
    // tables instead of invalidating user pages, and leaves lazy mode
    // (mm::lazy_tlb, as Linux's flush_tlb_func). A full flush costs what
    // that load costs, so it stays lazy; kernel addresses go as usual.
    if matches!(req, Request::Page(_) | Request::Range(..))
        && !req.has_kernel_address()
        && super::lazy_tlb::leave_if_lazy()
    {
        return;
    }
    // `pcid`: a user address goes by the loaded user pmap's generation,
    // nothing or a flush of its PCID (mm::pcid); Tlb still flushes all. A
    // kernel address is mapped global under `pcid`, so the INVLPG below
    // drops it under every PCID (mm::pcid, "Kernel addresses").
    if cfg!(feature = "pcid")
        && req != Request::Tlb
        && !req.has_kernel_address()
        && super::pcid::invalidate()
    {
        return;
    }
    match req {
        Request::Page(va) => invlpg(va),
        Request::Range(sva, eva) => match plan_range(sva.as_u64(), eva.as_u64()) {
            Flush::All => flush_all(),
            pages => pages.pages().for_each(|va| invlpg(VirtAddr::new(va))),
        },
        Request::Tlb => flush_all(),
        Request::List { .. } => Invalidation::read(req).invalidate(),
    }
}

/// Flushes this CPU's whole TLB, global entries included: toggling
/// CR4.PGE if global pages are on, else reloading CR3. (Without `pcid` the
/// boot code does not enable PGE and no mapping is made global, so this is
/// a CR3 reload. Under `pcid` PGE is on, kernel mappings are global
/// (mm::pcid), and a CR3 reload would flush one PCID; the toggle flushes
/// every PCID, SDM 4.10.4.1.)
pub(crate) fn flush_all() {
    // `lazy-tlb`: the flush brings this CPU up to its user pmap's
    // generation (mm::lazy_tlb).
    super::lazy_tlb::flushing_all();
    let cr4 = Cr4::read();
    if cr4.contains(Cr4Flags::PAGE_GLOBAL) {
        // SAFETY: clearing and restoring PGE only flushes the TLB.
        unsafe {
            Cr4::write(cr4 - Cr4Flags::PAGE_GLOBAL);
            Cr4::write(cr4);
        }
    } else {
        let (frame, flags) = Cr3::read();
        // SAFETY: reloading the current value only flushes the TLB.
        unsafe { Cr3::write(frame, flags) };
    }
}

/// Sends `req` to `targets` (and invalidates locally if `local`); `pm`,
/// when given, is the pmap it is for, only to treat a dying one apart.
fn shoot(req: Request, targets: CpuSet, local: bool, pm: Option<&Pmap>) {
    let (calls, no_ipi) = req.events();
    let why = cause::current();
    let kind = req.kind();
    stats::count(calls);
    stats::cause_add(why, kind, CauseField::Calls, 1);
    let me = arch::cpu_id();
    // The IPIs the base pmap would send; what the shortcuts below take
    // out of them is counted as spared, under this cause.
    let asked = targets.intersect(arch::smp::online()).without(me).len();
    let targets = match pm {
        Some(pm) if pm.is_dying() => dying_targets(pm, targets),
        _ => targets,
    };
    // `lazy-latr`: a user pmap's munmap that frees no page table leaves
    // one record in this CPU's ring for the targets' next sweep instead
    // of IPIs (mm::latr); if the ring is full they get the IPIs.
    let targets =
        if why == lab_core::cause::ShootCause::Munmap && ack_rule(pm) == AckRule::MayPrecede {
            super::latr::leave_for_sweep(req, targets, pm)
        } else {
            targets
        };
    // `lazy-tlb`: the pmap's generation moves on, and CPUs holding it
    // only lazily get no IPI (they catch up by generation when they
    // return to it), unless page tables are freed (mm::lazy_tlb).
    let (targets, made) = super::lazy_tlb::skip_lazy(pm, targets, frees_tables_here());
    // Mutant `mutant-fork-no-shoot`: while fork write-protects the parent
    // (proc::vm fork_copy), shootdowns go to no other CPU, as if the
    // parent were single-threaded; its other threads keep writable entries
    // to frames now shared with the child.
    #[cfg(feature = "mutant-fork-no-shoot")]
    let targets =
        if FORK_LOCAL_ONLY[arch::cpu_id() as usize].load(core::sync::atomic::Ordering::Relaxed) {
            CpuSet::EMPTY
        } else {
            targets
        };
    let ipis = targets.intersect(arch::smp::online()).without(me);
    stats::cause_add(
        why,
        kind,
        CauseField::Spared,
        u64::from(asked.saturating_sub(ipis.len())),
    );
    if targets.is_empty() {
        stats::count(no_ipi);
        stats::cause_add(why, kind, CauseField::NoIpi, 1);
        if local {
            invalidate_local(req);
        }
        super::lazy_tlb::invalidated_here(pm, made, local);
        tell_model_settled(req, Mark::Settled);
        return;
    }
    if measure::outstanding() {
        pmap_tlb_shootwait();
    }
    arch::chaos::point(arch::chaos::Point::ShootBeforeStart);
    let began = arch::tsc::now();
    arch::model_hint::mark(Mark::ShootBegin);
    // `flush-first`: this CPU's own invalidation before any IPI goes out,
    // as Linux's flush_tlb_mm_range did (local flush_tlb_func, then
    // flush_tlb_others) and FreeBSD's pmap_invalidate_page before D25510
    // (invlpg, then smp_masked_invlpg): the targets wait for it. Without
    // it (OpenBSD's pmap_tlb_shootpage, FreeBSD D25510's curcpu_cb, Linux
    // after Amit's "x86/mm/tlb: Flush remote and local TLBs concurrently")
    // the local invalidation runs while the IPIs are in flight, below.
    if cfg!(feature = "flush-first") && local {
        invalidate_local(req);
        stats::count(Event::ShootLocalFirst);
    }
    // `ipis`: the IPIs arch::ipi::send_set will send and count.
    stats::cause_add(why, kind, CauseField::Ipis, u64::from(ipis.len()));
    let sent_at = Active::start(req, targets, ack_rule(pm));
    measure::started(kind, why, began, sent_at);
    model::remember(req);
    if !cfg!(feature = "flush-first") && local {
        arch::chaos::point(arch::chaos::Point::ShootBeforeLocal);
        invalidate_local(req);
        stats::count(Event::ShootLocalOverlapped);
    }
    super::lazy_tlb::invalidated_here(pm, made, local);
}

/// The targets of a shootdown of the dying pmap `pm` (mm::pmap's
/// pmap_set_dying: the last thread of a single-threaded process tears it
/// down, loaded on this CPU). Counts a pm_cpus naming another online CPU,
/// and the IPIs that will be sent.
///
/// FreeBSD D32569 review (seed 004; sys/amd64/amd64/pmap.c), kib: "add
/// pmap flag to indicate that it is dying and disable invalidation IPIs";
/// markj: "why would we raise IPIs when the exiting/execing process is
/// guaranteed to be single-threaded?". Under `dying-no-ipi` the dying pmap
/// gets no IPI for a CPU that does not have it loaded, not even from
/// shoottlb (which OpenBSD 2010 sends to every CPU): safe exactly when
/// pm_cpus is right. With the fixed bitmap, the CPUs left are those in
/// pm_cpus other than this one, online: normally none, but a thread that
/// has just exited (or a CPU still switching away from it) may hold the
/// pmap a moment longer, and skipping it would be a lost shootdown; so
/// those keep their IPI, counted as `pmap.dying.cpus_other`. With a buggy
/// bitmap (`uninit-bitmap`, `fork-inherit`) pm_cpus cannot be trusted and
/// the idea, as the review put it, skips every IPI: that is what it saves
/// there, and the same counter shows how often the bitmap claimed others.
fn dying_targets(pm: &Pmap, targets: CpuSet) -> CpuSet {
    let others = shoot_targets(false, pm.cpus(), arch::smp::online(), arch::cpu_id());
    if !others.is_empty() {
        stats::count(Event::PmapDyingCpusOther);
    }
    let targets = if !cfg!(feature = "dying-no-ipi") {
        targets
    } else if cfg!(any(feature = "uninit-bitmap", feature = "fork-inherit")) {
        CpuSet::EMPTY
    } else {
        others
    };
    stats::add(Event::ShootDyingIpis, u64::from(targets.len()));
    targets
}

/// Per CPU: a fork's write-protect of the parent is in progress here
/// (only under `mutant-fork-no-shoot`, which sends its shootdowns nowhere).
#[cfg(feature = "mutant-fork-no-shoot")]
pub static FORK_LOCAL_ONLY: [core::sync::atomic::AtomicBool; crate::stats::MAX_CPUS] =
    [const { core::sync::atomic::AtomicBool::new(false) }; crate::stats::MAX_CPUS];

/// The CPUs other than this one that may cache `pm`'s entries.
fn targets(pm: &Pmap) -> CpuSet {
    // `pcid`: the CPUs this leaves out may still hold `pm`'s entries under
    // its PCID; the bumped generation makes them flush when they load it
    // again (mm::pcid). Before pm_cpus is read.
    super::pcid::note_shootdown(pm);
    let set = shoot_targets(
        pm.is_kernel(),
        pm.cpus(),
        arch::smp::online(),
        arch::cpu_id(),
    );
    // Mutant `mutant-skip-cpu`: an off-by-one in the target mask leaves
    // out the highest-numbered CPU, which keeps its stale entries.
    #[cfg(feature = "mutant-skip-cpu")]
    let set = match set.iter().last() {
        Some(top) => CpuSet(set.0 & !(1u64 << top)),
        None => set,
    };
    set
}

/// Invalidates `va` of `pm` on every CPU that may cache it (see the module
/// comment); the caller then calls [`pmap_tlb_shootwait`].
pub fn pmap_tlb_shootpage(pm: &Pmap, va: VirtAddr) {
    shoot(
        Request::Page(va),
        targets(pm),
        pm.is_loaded_here(),
        Some(pm),
    );
}

/// Counts, as spared under the current cause, the IPIs a shootpage of `pm`
/// would send now: for a shortcut that makes no shootdown at all
/// (`no-flush-cow`'s copy-on-write upgrade in mm::pmap's enter).
pub fn spare_shootpage(pm: &Pmap) {
    let n = targets(pm).intersect(arch::smp::online()).len();
    stats::cause_add(
        cause::current(),
        IpiKind::ShootPage,
        CauseField::Spared,
        u64::from(n),
    );
}

/// The `lost-shootdown` negative control's pmap_tlb_shootpage (mm::pmap's
/// pmap_remove of one user page): counted as a shootpage call that sent no
/// IPI, invalidated on this CPU only, whatever `pm_cpus` says. A bug on
/// purpose, for the coherence oracle to catch.
#[cfg(feature = "lost-shootdown")]
pub fn pmap_tlb_shootpage_lost(pm: &Pmap, va: VirtAddr) {
    shoot(Request::Page(va), CpuSet::EMPTY, pm.is_loaded_here(), None);
}

/// Invalidates `[sva, eva)` of `pm` on every CPU that may cache it.
#[cfg_attr(feature = "dfly-batch", allow(dead_code))] // only OpenBSD's range ops
pub fn pmap_tlb_shootrange(pm: &Pmap, sva: VirtAddr, eva: VirtAddr) {
    // Mutant `mutant-range-no-ipi`: the range is invalidated on this CPU
    // only; other CPUs keep every page of it.
    let targets = if cfg!(feature = "mutant-range-no-ipi") {
        CpuSet::EMPTY
    } else {
        targets(pm)
    };
    shoot(
        Request::Range(sva, eva),
        targets,
        pm.is_loaded_here(),
        Some(pm),
    );
}

/// OpenBSD 2010's pmap_tlb_shoottlb, called on behalf of `pm` (by
/// pmap_remove and pmap_protect of a large range): flushes the TLB of
/// every online CPU, whatever `pm_cpus` says (hence the name); `pm` only
/// lets a dying pmap be treated apart (see [`dying_targets`]).
#[cfg_attr(
    any(feature = "dfly-batch", feature = "freebsd-base"),
    allow(dead_code)
)] // only OpenBSD's range ops
pub fn pmap_tlb_shoottlb_all_cpus(pm: &Pmap) {
    // `pcid`: every CPU flushes its current PCID, which is not `pm`'s on
    // the CPUs not running it: they flush when they load it (mm::pcid).
    super::pcid::note_shootdown(pm);
    // Mutant `mutant-tlb-no-ipi`: the all-CPU flush of a big range flushes
    // only this CPU.
    let all = if cfg!(feature = "mutant-tlb-no-ipi") {
        CpuSet::EMPTY
    } else {
        shoot_targets(true, CpuSet::EMPTY, arch::smp::online(), arch::cpu_id())
    };
    shoot(Request::Tlb, all, true, Some(pm));
}

/// Flushes every TLB entry of `pm` on the CPUs that may cache it (a
/// pmap_tlb_shoottlb targeted at `pm_cpus`, as FreeBSD's
/// pmap_invalidate_all): the one invalidation of pmap_remove_pages.
pub fn pmap_tlb_shootpmap(pm: &Pmap) {
    shoot(Request::Tlb, targets(pm), pm.is_loaded_here(), Some(pm));
}

/// Waits until the targets of this CPU's last shootdown have invalidated;
/// returns at once if it sent none. Counts the cycles spent here and
/// samples the latency since the request went out.
pub fn pmap_tlb_shootwait() {
    if !measure::outstanding() {
        return;
    }
    let t0 = arch::tsc::now();
    arch::model_hint::mark(Mark::WaitBegin);
    // Mutant `mutant-no-wait`: the initiator does not wait for the
    // acknowledgements, so the caller frees and reuses what the old entries
    // pointed at while targets may not have invalidated yet.
    if !cfg!(feature = "mutant-no-wait") {
        Active::wait();
    }
    let t1 = arch::tsc::now();
    arch::model_hint::mark(Mark::WaitEnd);
    model::outstanding_settled();
    measure::waited(t0, t1);
}
