//! TLB shootdowns: OpenBSD's interface, one protocol behind it.
//!
//! # Interface (OpenBSD amd64 pmap)
//!
//! After changing valid page-table entries, a pmap operation calls
//! [`pmap_tlb_shootpage`] (one page), [`pmap_tlb_shootrange`] (a range) or
//! [`pmap_tlb_shoottlb`] (everything), then [`pmap_tlb_shootwait`] before
//! it reuses what the old entries pointed at. A shoot call invalidates this
//! CPU's TLB itself (if the pmap is loaded here) after sending the IPIs,
//! so the local work overlaps the remote; the wait returns when every
//! target has invalidated. Callers must not migrate between the two calls
//! nor call them from interrupt context.
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
//! [`Protocol`]; exactly one is compiled in, chosen by Cargo feature:
//! - [`global_slot`] (default): OpenBSD today, one global slot.
//! - FreeBSD's per-CPU scoreboard (seed 003) comes later, as a feature.
//!
//! # Measurements
//!
//! Per CPU (mm and stats): calls and no-IPI calls per kind, cycles spent
//! waiting for the protocol's lock (`shoot.wait.slot`) and in
//! pmap_tlb_shootwait (`shoot.wait.ack`). Per kind, a sample of the
//! acknowledgement latency of each shootdown that sent IPIs: cycles from
//! the request going out (the protocol's lock held, before the first IPI)
//! until the wait saw every target done, so sending is included as in an
//! IPI round trip (reported as
//! `shoot.ack.<kind>.{count,median,p99,max}` and the median in ns).

use core::sync::atomic::{AtomicU64, Ordering};

use lab_core::cpuset::CpuSet;
use lab_core::sample::Reservoir;
use lab_core::shoot::{plan_range, shoot_targets, Flush};
use lab_core::summary::summarize;
use x86_64::registers::control::{Cr3, Cr4, Cr4Flags};
use x86_64::VirtAddr;

use super::pmap::Pmap;
use crate::arch;
use crate::report;
use crate::stats::{self, Event, IpiKind, MAX_CPUS};
use lab_core::report::Scope;

mod global_slot;

/// The protocol compiled in.
type Active = global_slot::GlobalSlot;

/// One invalidation request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    Page(VirtAddr),
    /// `[start, end)`.
    Range(VirtAddr, VirtAddr),
    Tlb,
}

impl Request {
    pub fn kind(self) -> IpiKind {
        match self {
            Request::Page(_) => IpiKind::ShootPage,
            Request::Range(..) => IpiKind::ShootRange,
            Request::Tlb => IpiKind::ShootTlb,
        }
    }

    fn events(self) -> (Event, Event) {
        match self {
            Request::Page(_) => (Event::ShootPageCalls, Event::ShootPageNoIpi),
            Request::Range(..) => (Event::ShootRangeCalls, Event::ShootRangeNoIpi),
            Request::Tlb => (Event::ShootTlbCalls, Event::ShootTlbNoIpi),
        }
    }
}

/// A way of delivering shootdowns to other CPUs and waiting for them.
pub trait Protocol {
    /// Registers the IPI handlers. Called once, at boot.
    fn init();
    /// Delivers `req` to `targets` (non-empty, without this CPU): takes
    /// whatever the protocol serialises on (counting `Event::SlotWaitCycles`
    /// spent waiting), publishes the request, sends one IPI per target, and
    /// returns the TSC at which the request went out (after any wait, before
    /// the first IPI). Each target invalidates, then acknowledges.
    fn start(req: Request, targets: CpuSet) -> u64;
    /// Returns when every target of this CPU's last `start` has
    /// acknowledged. Serves requests for this CPU while it waits.
    fn wait();
    /// Serves any request pending for this CPU (from spin loops, so a CPU
    /// spinning with interrupts off does not hold up a shootdown).
    fn poll();
}

/// Per CPU: the kind of the shootdown awaiting pmap_tlb_shootwait (+1; 0
/// for none) and when its request went out. Written only by that CPU.
static OUTSTANDING: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static SENT_AT: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

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
    use x86_64::instructions::tlb;
    match req {
        Request::Page(va) => tlb::flush(va),
        Request::Range(sva, eva) => match plan_range(sva.as_u64(), eva.as_u64()) {
            Flush::All => flush_all(),
            pages => pages.pages().for_each(|va| tlb::flush(VirtAddr::new(va))),
        },
        Request::Tlb => flush_all(),
    }
}

/// Flushes this CPU's whole TLB, global entries included: toggling
/// CR4.PGE if global pages are on, else reloading CR3. (The boot code does
/// not enable PGE and no mapping is made global, so today this is a CR3
/// reload.)
fn flush_all() {
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

fn shoot(req: Request, targets: CpuSet, local: bool) {
    let (calls, no_ipi) = req.events();
    stats::count(calls);
    if targets.is_empty() {
        stats::count(no_ipi);
    } else {
        let me = arch::cpu_id() as usize;
        if OUTSTANDING[me].load(Ordering::Relaxed) != 0 {
            pmap_tlb_shootwait();
        }
        let sent_at = Active::start(req, targets);
        SENT_AT[me].store(sent_at, Ordering::Relaxed);
        OUTSTANDING[me].store(req.kind() as u64 + 1, Ordering::Relaxed);
    }
    if local {
        invalidate_local(req);
    }
}

fn targets(pm: &Pmap) -> CpuSet {
    shoot_targets(
        pm.is_kernel(),
        pm.cpus(),
        arch::smp::online(),
        arch::cpu_id(),
    )
}

/// Invalidates `va` of `pm` on every CPU that may cache it (see the module
/// comment); the caller then calls [`pmap_tlb_shootwait`].
pub fn pmap_tlb_shootpage(pm: &Pmap, va: VirtAddr) {
    shoot(Request::Page(va), targets(pm), pm.is_loaded_here());
}

/// Invalidates `[sva, eva)` of `pm` on every CPU that may cache it.
pub fn pmap_tlb_shootrange(pm: &Pmap, sva: VirtAddr, eva: VirtAddr) {
    shoot(Request::Range(sva, eva), targets(pm), pm.is_loaded_here());
}

/// Flushes the TLB of every online CPU (OpenBSD 2010: no pmap, so every
/// other online CPU is a target).
pub fn pmap_tlb_shoottlb() {
    let all = shoot_targets(true, CpuSet::EMPTY, arch::smp::online(), arch::cpu_id());
    shoot(Request::Tlb, all, true);
}

/// Flushes every TLB entry of `pm` on the CPUs that may cache it (a
/// pmap_tlb_shoottlb targeted at `pm_cpus`, as FreeBSD's
/// pmap_invalidate_all): the one invalidation of pmap_remove_pages.
pub fn pmap_tlb_shootpmap(pm: &Pmap) {
    shoot(Request::Tlb, targets(pm), pm.is_loaded_here());
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
    Active::wait();
    let t1 = arch::tsc::now();
    stats::add(Event::AckWaitCycles, t1 - t0);
    let latency = t1.saturating_sub(SENT_AT[me].load(Ordering::Relaxed));
    ACK_SAMPLES[me][outstanding as usize - 1]
        .lock()
        .record(latency);
    OUTSTANDING[me].store(0, Ordering::Relaxed);
}

/// Writes the acknowledgement latency distributions as metrics.
pub fn report(cpus: u32) {
    use alloc::format;
    use alloc::vec::Vec;
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
