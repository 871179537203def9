//! TLB shootdowns: OpenBSD's interface, one protocol behind it.
//!
//! # Interface (OpenBSD amd64 pmap)
//!
//! After changing valid page-table entries, a pmap operation calls
//! [`pmap_tlb_shootpage`] (one page), [`pmap_tlb_shootrange`] (a range) or
//! [`pmap_tlb_shoottlb`] (everything), then [`pmap_tlb_shootwait`] before
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
//! OpenBSD 2010, takes no pmap and targets every other online CPU. No
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
//! - which targets get an IPI at all, in [`shoot`]: `lazy-latr` queues a
//!   munmap's request for the target's next tick instead (mm::latr),
//!   `lazy-tlb` leaves a CPU that holds the pmap only lazily a note to
//!   flush on its return (mm::lazy_tlb);
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

use core::sync::atomic::{AtomicU64, Ordering};

use lab_core::cpuset::CpuSet;
use lab_core::model_hint::Mark;
use lab_core::sample::Reservoir;
use lab_core::shoot::{plan_range, shoot_targets, Flush};
use lab_core::summary::summarize;
use x86_64::registers::control::{Cr3, Cr4, Cr4Flags};
use x86_64::VirtAddr;

use super::pmap::Pmap;
use crate::arch;
use crate::report;
use crate::stats::{self, CauseField, Event, IpiKind, MAX_CPUS};
use lab_core::report::Scope;

pub mod cause;
pub mod dfly_batch;
pub mod in_context;

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

    fn events(self) -> (Event, Event) {
        match self.kind() {
            IpiKind::ShootPage => (Event::ShootPageCalls, Event::ShootPageNoIpi),
            IpiKind::ShootRange => (Event::ShootRangeCalls, Event::ShootRangeNoIpi),
            _ => (Event::ShootTlbCalls, Event::ShootTlbNoIpi),
        }
    }

    /// Whether it invalidates a kernel (upper-half) address.
    fn has_kernel_address(self) -> bool {
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

/// When a target may acknowledge a request relative to invalidating it.
///
/// The initiator reuses what the old entries pointed at as soon as every
/// target has acknowledged. On x86 a target acknowledging from its IPI
/// handler (or from a spin loop's poll) cannot resume the code it
/// interrupted before the handler has invalidated, so an acknowledgement
/// before the invalidation is invisible to any architectural access; what
/// can still use the old entry is the hardware itself: a speculative walk
/// through a paging-structure cache into a page-table page the initiator
/// has freed and reused (Intel SDM vol. 3, 4.10.3; Linux sends lazy-TLB
/// CPUs IPIs only for freed tables for this reason). So a request may be
/// acknowledged early, or its invalidation deferred, only when it changes
/// user entries and frees no page-table page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckRule {
    /// Invalidate, then acknowledge: kernel-pmap requests, and any request
    /// whose operation frees page-table pages after the wait.
    AfterInvalidate,
    /// A user-pmap request that frees no page-table page: the target may
    /// acknowledge first (`early-ack`) or, in the kernel, defer the
    /// invalidation to its return to user mode (`in-context-flush`).
    MayPrecede,
}

/// Per CPU: the pmap operation in progress here frees page-table pages
/// after its shootdown (set by mm::pmap around the shootdown, see
/// [`tables_freed`]).
static FREES_TABLES: [core::sync::atomic::AtomicBool; MAX_CPUS] =
    [const { core::sync::atomic::AtomicBool::new(false) }; MAX_CPUS];

/// Marks this CPU's shootdowns, until the guard drops, as freeing
/// page-table pages after the wait if `frees` (mm::pmap's pmap_remove and
/// pmap_remove_pages, whose emptied PTPs are freed after
/// pmap_tlb_shootwait): such requests are [`AckRule::AfterInvalidate`].
#[must_use = "the mark holds only while the guard lives"]
pub fn tables_freed(frees: bool) -> TablesFreed {
    let me = arch::cpu_id() as usize;
    let prev = FREES_TABLES[me].swap(frees, Ordering::Relaxed);
    TablesFreed { prev }
}

/// Restores the previous mark when dropped (see [`tables_freed`]).
pub struct TablesFreed {
    prev: bool,
}

impl Drop for TablesFreed {
    fn drop(&mut self) {
        FREES_TABLES[arch::cpu_id() as usize].store(self.prev, Ordering::Relaxed);
    }
}

/// The rule for a shootdown of `pm` (None: no pmap, the kernel's or
/// OpenBSD's pmap-less shoottlb) from this CPU now.
fn ack_rule(pm: Option<&Pmap>) -> AckRule {
    let user = pm.is_some_and(|pm| !pm.is_kernel());
    if user && !FREES_TABLES[arch::cpu_id() as usize].load(Ordering::Relaxed) {
        AckRule::MayPrecede
    } else {
        AckRule::AfterInvalidate
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

/// This CPU, as the protocol cores in lab_core::protocol see it. The
/// hardware takes interrupts by itself, so an interrupt window is nothing
/// here but a chaos point (arch::chaos), where a seeded run may delay.
pub(crate) struct ThisCpu;

impl lab_core::protocol::Cpu for ThisCpu {
    fn id(&self) -> u32 {
        arch::cpu_id()
    }

    #[inline(always)]
    fn interruptible(&self, at: lab_core::protocol::Window) {
        use crate::arch::chaos::{point, Point};
        use lab_core::protocol::Window;
        point(match at {
            Window::SlotServeClaimed => Point::ServeSeen,
            Window::SlotServeCopied => Point::SlotServeCopied,
            Window::SlotServeAcked => Point::SlotServeAcked,
            Window::SlotStartTaken => Point::SlotTaken,
            Window::DeferPush => Point::DeferPush,
            Window::LazySkip => Point::LazySkip,
            Window::MailboxSeen => Point::ServeSeen,
            Window::MailboxCopied => Point::ServeCopied,
            Window::MailboxAcked => Point::ServeAcked,
            Window::ScoreboardSeen => Point::ServeSeen,
            Window::ScoreboardCopied => Point::ServeCopied,
            Window::ScoreboardAcked => Point::ServeAcked,
            Window::ScoreboardPosted => Point::StartPosted,
            Window::BatchPublished => Point::BatchPublished,
            Window::LatrQueued => Point::LatrQueued,
            Window::LatrApplied => Point::LatrApplied,
            Window::LatrSettle => Point::LatrSettle,
        });
    }

    fn without_interrupts<R>(&self, f: impl FnOnce() -> R) -> R {
        x86_64::instructions::interrupts::without_interrupts(f)
    }

    fn spin(&self) {
        crate::arch::chaos::point(crate::arch::chaos::Point::WaitSpin);
        core::hint::spin_loop();
    }
}

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

/// Bytes in a cache line on every x86-64 the lab runs on.
const LINE: usize = 64;

/// A set of cache lines (address / [`LINE`]).
#[derive(Default)]
pub struct Lines(alloc::vec::Vec<usize>);

impl Lines {
    /// Adds the line(s) holding `field`.
    pub fn touch<T>(&mut self, field: &T) {
        let start = field as *const T as usize;
        let end = start + core::mem::size_of::<T>();
        (start / LINE..end.div_ceil(LINE)).for_each(|line| self.insert(line));
    }

    fn insert(&mut self, line: usize) {
        if !self.0.contains(&line) {
            self.0.push(line);
        }
    }

    fn len(&self) -> u64 {
        self.0.len() as u64
    }
}

/// The lines one request goes through ([`Protocol::footprint`]).
#[derive(Default)]
pub struct Footprint {
    /// Read or written by the target to take and acknowledge it.
    pub request: Lines,
    /// Written by the initiator to post it to this target.
    pub post: Lines,
}

/// Per CPU: the kind of the shootdown awaiting pmap_tlb_shootwait (+1; 0
/// for none) in the low byte, its cause (`ShootCause as u8`) in the next,
/// and when its request went out. Written only by that CPU.
static OUTSTANDING: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static SENT_AT: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// Per CPU: when its outstanding shootdown began (before any local
/// invalidation `flush-first` does ahead of the IPIs), for
/// `shoot.op_cycles`. Written only by that CPU.
static SHOOT_BEGAN: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// Per CPU: the latency of its last waited-for shootdown, until
/// [`take_last_ack`] (the `ack_last` syscall) takes it. Written only by
/// that CPU.
static LAST_ACK: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// Samples kept per CPU and kind.
const SAMPLES: usize = 1024;
const SHOOT_KINDS: [IpiKind; 3] = [IpiKind::ShootPage, IpiKind::ShootRange, IpiKind::ShootTlb];
/// Ack latency samples, per CPU and kind; locked only by the owner CPU and
/// by the report at the end of the run.
static ACK_SAMPLES: [[spin::Mutex<Reservoir<SAMPLES>>; 3]; MAX_CPUS] =
    [const { [const { spin::Mutex::new(Reservoir::new(0x5eed)) }; 3] }; MAX_CPUS];

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
    let (targets, made) = super::lazy_tlb::skip_lazy(
        pm,
        targets,
        FREES_TABLES[arch::cpu_id() as usize].load(Ordering::Relaxed),
    );
    // Mutant `mutant-fork-no-shoot`: while fork write-protects the parent
    // (proc::vm fork_copy), shootdowns go to no other CPU, as if the
    // parent were single-threaded; its other threads keep writable entries
    // to frames now shared with the child.
    #[cfg(feature = "mutant-fork-no-shoot")]
    let targets = if FORK_LOCAL_ONLY[arch::cpu_id() as usize].load(Ordering::Relaxed) {
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
    let me = me as usize;
    if OUTSTANDING[me].load(Ordering::Relaxed) != 0 {
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
    SENT_AT[me].store(sent_at, Ordering::Relaxed);
    SHOOT_BEGAN[me].store(began, Ordering::Relaxed);
    OUTSTANDING[me].store(kind as u64 + 1 + ((why as u64) << 8), Ordering::Relaxed);
    if arch::model_hint::enabled() {
        *MODEL_REQ[me].lock() = Some(req);
    }
    if !cfg!(feature = "flush-first") && local {
        arch::chaos::point(arch::chaos::Point::ShootBeforeLocal);
        invalidate_local(req);
        stats::count(Event::ShootLocalOverlapped);
    }
    super::lazy_tlb::invalidated_here(pm, made, local);
}

/// Under `model=on`, each CPU's outstanding shootdown request, for
/// [`tell_model_settled`] at its shootwait (arch::model_hint).
static MODEL_REQ: [spin::Mutex<Option<Request>>; MAX_CPUS] =
    [const { spin::Mutex::new(None) }; MAX_CPUS];

/// Tells the memory-system model that a change of `req`'s pages is settled
/// although no shootdown was made for it (a shortcut's or a mutant's
/// skip): the pmap operation returning is the promise.
pub fn model_settled(req: Request) {
    tell_model_settled(req, Mark::Settled);
}

/// Tells the memory-system model that the shootdown of `req` is settled
/// (`mark`: ShootEnd after its acknowledgements, Settled when it needed no
/// IPI), and which pages it covered: the model's TLB then holds any CPU
/// that still has a translation of them, filled before the shootdown
/// began, to hardware's rules (model/README.md, the stale-TLB oracle).
/// Nothing without `model=on`.
fn tell_model_settled(req: Request, mark: Mark) {
    use lab_core::model_hint::{Hint, MAX_COVER_PAGES};
    if !arch::model_hint::enabled() {
        return;
    }
    let cover = |va: u64, pages: u64| {
        let pages = if pages > MAX_COVER_PAGES {
            0
        } else {
            pages as u16
        };
        arch::model_hint::give(Hint::Covers { va, pages });
    };
    match req {
        Request::Page(va) => cover(va.as_u64(), 1),
        Request::Range(sva, eva) => cover(
            sva.as_u64(),
            (eva - sva).div_ceil(lab_core::physmem::PAGE_SIZE).max(1),
        ),
        Request::Tlb => cover(0, 0),
        // What the batch recorded, not what the request names: a request
        // that lost addresses on the way must not shrink the claim.
        Request::List { cpu, .. } => {
            let mut vas = [0; dfly_batch::MAXPIR];
            let n = dfly_batch::published_len(cpu).min(vas.len());
            dfly_batch::read_published(cpu, &mut vas[..n]);
            vas[..n].iter().for_each(|&va| cover(va, 1));
        }
    }
    arch::model_hint::mark(mark);
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
pub static FORK_LOCAL_ONLY: [core::sync::atomic::AtomicBool; MAX_CPUS] =
    [const { core::sync::atomic::AtomicBool::new(false) }; MAX_CPUS];

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

/// OpenBSD 2010's pmap_tlb_shoottlb, called for `pm` (by pmap_remove and
/// pmap_protect of a large range): flushes the TLB of every online CPU,
/// whatever `pm_cpus` says; `pm` only lets a dying pmap be treated apart
/// (see [`dying_targets`]).
#[cfg_attr(
    any(feature = "dfly-batch", feature = "freebsd-base"),
    allow(dead_code)
)] // only OpenBSD's range ops
pub fn pmap_tlb_shoottlb_for(pm: &Pmap) {
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
    let me = arch::cpu_id() as usize;
    let outstanding = OUTSTANDING[me].load(Ordering::Relaxed);
    if outstanding == 0 {
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
    if let Some(req) = MODEL_REQ[me].lock().take() {
        tell_model_settled(req, Mark::ShootEnd);
    }
    stats::add(Event::AckWaitCycles, t1 - t0);
    stats::add(
        Event::ShootOpCycles,
        t1.saturating_sub(SHOOT_BEGAN[me].load(Ordering::Relaxed)),
    );
    stats::record_ack_wait(t1 - t0);
    let k = (outstanding & 0xff) as usize - 1;
    let why = lab_core::cause::ShootCause::from_index((outstanding >> 8) as usize);
    stats::cause_add(why, SHOOT_KINDS[k], CauseField::AckCycles, t1 - t0);
    let latency = t1.saturating_sub(SENT_AT[me].load(Ordering::Relaxed));
    ACK_SAMPLES[me][k].lock().record(latency);
    LAST_ACK[me].store(latency, Ordering::Relaxed);
    OUTSTANDING[me].store(0, Ordering::Relaxed);
}

/// The ack latency of this CPU's last waited-for shootdown (cycles), 0 if
/// none since the previous call, which this call clears.
pub fn take_last_ack() -> u64 {
    LAST_ACK[arch::cpu_id() as usize].swap(0, Ordering::Relaxed)
}

/// Writes the `shoot.*_lines` metrics (see the module comment) for CPUs
/// `0..cpus`; nothing on one CPU, where no request has a target.
fn report_footprint(cpus: u32) {
    use alloc::vec::Vec;
    if cpus < 2 {
        return;
    }
    let pairs: Vec<(u32, u32)> = (0..cpus)
        .flat_map(|t| (0..cpus).filter(move |&i| i != t).map(move |i| (t, i)))
        .collect();
    let fps: Vec<Footprint> = pairs
        .iter()
        .map(|&(t, i)| {
            let mut fp = Footprint::default();
            Active::footprint(t, i, &mut fp);
            fp
        })
        .collect();
    // (line, pair) for every line a pair's request or posting goes
    // through; a line two pairs use is shared.
    let mut uses: Vec<(usize, usize)> = fps
        .iter()
        .enumerate()
        .flat_map(|(p, fp)| fp.request.0.iter().chain(&fp.post.0).map(move |&l| (l, p)))
        .collect();
    uses.sort_unstable();
    uses.dedup();
    let mut shared: Vec<usize> = uses
        .windows(2)
        .filter(|w| w[0].0 == w[1].0)
        .map(|w| w[0].0)
        .collect();
    shared.dedup();
    let target = fps.iter().map(|fp| fp.request.len()).max();
    let target_shared = fps
        .iter()
        .map(|fp| {
            let n = fp.request.0.iter();
            n.filter(|l| shared.binary_search(l).is_ok()).count() as u64
        })
        .max();
    let scan = (0..cpus)
        .map(|t| {
            let mut lines = Lines::default();
            Active::scan_footprint(t, cpus, &mut lines);
            lines.len()
        })
        .max();
    let initiator = (0..cpus)
        .map(|i| {
            let mut lines = Lines::default();
            for (fp, _) in fps.iter().zip(&pairs).filter(|(_, &(_, pi))| pi == i) {
                fp.post.0.iter().for_each(|&l| lines.insert(l));
            }
            lines.len()
        })
        .max();
    for (name, value) in [
        ("shoot.target_lines", target),
        ("shoot.target_shared_lines", target_shared),
        ("shoot.target_scan_lines", scan),
        ("shoot.initiator_lines", initiator),
    ] {
        report::metric(name, value.unwrap_or(0), "lines", Scope::Global);
    }
}

/// Writes the acknowledgement latency distributions, the shootdowns by
/// cause and the protocol's cache-line footprint as metrics.
pub fn report(cpus: u32) {
    use alloc::format;
    use alloc::vec::Vec;
    stats::report_causes(cpus);
    report_footprint(cpus);
    for (k, kind) in SHOOT_KINDS.iter().enumerate() {
        let mut samples = Vec::new();
        let (mut seen, mut max) = (0, 0);
        for per_cpu in ACK_SAMPLES.iter().take(cpus as usize) {
            let r = per_cpu[k].lock();
            samples.extend_from_slice(r.samples());
            seen += r.seen();
            max = max.max(r.max());
        }
        let name = |what: &str| format!("shoot.ack.{}.{what}", kind.name());
        report::metric(&name("count"), seen, "count", Scope::Global);
        if let Some(sum) = summarize(&mut samples) {
            report::metric(&name("median"), sum.median, "cycles", Scope::Global);
            report::metric(&name("p99"), sum.p99, "cycles", Scope::Global);
            // The reservoir keeps a sample; the true maximum is kept apart.
            report::metric(&name("max"), max, "cycles", Scope::Global);
            report::metric(
                &name("median_ns"),
                arch::tsc::cycles_to_ns(sum.median),
                "ns",
                Scope::Global,
            );
        }
    }
}
