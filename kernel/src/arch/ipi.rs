//! Inter-processor interrupts: sending, receiving, and counting them.
//!
//! Each [`IpiKind`] has its own vector (trap.rs: 0xf0 + kind). An IPI
//! carries no sender, and two IPIs with the same vector that reach a CPU
//! before it serves the first coalesce into one interrupt (the IRR has one
//! bit per vector). So that counts stay exact, every request also goes
//! through a mailbox counter: `PENDING[to][kind][from]`.
//!
//! Protocol:
//! - sender `from`: `PENDING[to][kind][from] += 1`, counts
//!   `stats::ipi_sent(kind, to)`, then writes the ICR;
//! - target `to`, in the vector's handler with interrupts off: counts the
//!   interrupt (`ipi.interrupts.<kind>`), swaps every `PENDING[to][kind][*]`
//!   to 0 and counts what it took with `stats::ipi_received(kind, from)`
//!   (an interrupt that served three coalesced requests counts three), runs
//!   the kind's registered handler, then EOIs.
//!
//! So once every mailbox is empty, `received == sent` for every kind and
//! every (from, to) pair; [`quiesce`] waits for that before the report.
//!
//! The `Other` vector is also the kernel's generic cross-call: its handler
//! first acknowledges a sync request ([`sync`]), which is how a CPU learns
//! that another has taken every interrupt sent to it before.
//!
//! Locking: mailbox words are atomics written by one sender and drained by
//! one target; handlers are set once per kind (an atomic fn pointer). No
//! locks, so handlers may send IPIs themselves (ping-pong does).

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use lab_core::apic::Icr;
use lab_core::cpuset::CpuSet;
use lab_core::model_hint::Hint;

use super::{apic, percpu, smp, trap, tsc};
use crate::stats::{self, Event, IpiKind, MAX_CPUS};

/// One target's mailboxes, on its own cache lines.
#[repr(C, align(64))]
struct Mailbox {
    pending: [[AtomicU64; MAX_CPUS]; IpiKind::COUNT],
    /// Sync requests (generation) posted to this CPU, and the last one it
    /// acknowledged from its Other handler.
    sync_requested: AtomicU64,
    sync_acked: AtomicU64,
}

static MAILBOXES: [Mailbox; MAX_CPUS] = [const {
    Mailbox {
        pending: [const { [const { AtomicU64::new(0) }; MAX_CPUS] }; IpiKind::COUNT],
        sync_requested: AtomicU64::new(0),
        sync_acked: AtomicU64::new(0),
    }
}; MAX_CPUS];

/// Registered handlers by kind: a `fn()` as usize, 0 for none.
static HANDLERS: [AtomicUsize; IpiKind::COUNT] = [const { AtomicUsize::new(0) }; IpiKind::COUNT];

/// The interrupt-taken counter of each kind.
const fn interrupt_event(kind: IpiKind) -> Event {
    match kind {
        IpiKind::ShootPage => Event::IpiInterruptsShootPage,
        IpiKind::ShootRange => Event::IpiInterruptsShootRange,
        IpiKind::ShootTlb => Event::IpiInterruptsShootTlb,
        IpiKind::Other => Event::IpiInterruptsOther,
    }
}

/// Sends one IPI of `kind` to CPU `to`, which must be online and not this
/// CPU. Counted as sent before the ICR write, received when the target's
/// handler drains its mailbox. May be called with interrupts on or off,
/// and from interrupt handlers.
pub fn send(kind: IpiKind, to: u32) {
    let me = percpu::cpu_id();
    assert!(to != me, "ipi::send({kind:?}) to self (cpu {me})");
    assert!(
        smp::online().contains(to),
        "ipi::send({kind:?}) to cpu {to}, which is not online"
    );
    MAILBOXES[to as usize].pending[kind as usize][me as usize].fetch_add(1, Ordering::Release);
    stats::ipi_sent(kind, to);
    super::model_hint::give(Hint::IpiSend { target: to as u16 });
    apic::send(Icr::fixed(trap::ipi_vector(kind), smp::apic_id_of(to)));
}

/// Sends one IPI of `kind` to every online CPU in `targets` except this one
/// (one IPI per target, never a broadcast shorthand, so each is counted).
/// Bits for CPUs that do not exist are ignored, as OpenBSD's loop over
/// existing CPUs ignores them in a garbage `pm_cpus`.
pub fn send_set(kind: IpiKind, targets: CpuSet) {
    let me = percpu::cpu_id();
    for to in targets.intersect(smp::online()).without(me).iter() {
        send(kind, to);
    }
}

/// Registers `handler` to run on the target of every IPI of `kind`, in
/// interrupt context (interrupts off), after the receipt is counted and
/// before EOI. Replaces any earlier handler.
pub fn set_handler(kind: IpiKind, handler: fn()) {
    HANDLERS[kind as usize].store(handler as usize, Ordering::Release);
}

/// The kernel's own work on a cross-call: run by the Other vector's
/// handler before it acknowledges a [`sync`], whatever handler a workload
/// registered for the kind (a `fn()` as usize, 0 for none).
static CROSS_CALL_HOOK: AtomicUsize = AtomicUsize::new(0);

/// Sets the work every Other IPI does before acknowledging a sync (the
/// scheduler's lazy-TLB eviction, LATR's queue), so that `sync(cpu)` returning means CPU
/// `cpu` has done it. Interrupt context, interrupts off.
pub fn set_cross_call_hook(hook: fn()) {
    CROSS_CALL_HOOK.store(hook as usize, Ordering::Release);
}

/// Removes the handler of `kind` (IPIs are still counted).
pub fn clear_handler(kind: IpiKind) {
    HANDLERS[kind as usize].store(0, Ordering::Release);
}

/// Per CPU: IPIs taken (handlers entered), for chaos mode's delays that
/// wait for one (arch::chaos).
static TAKEN: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// IPIs this CPU has taken so far.
pub fn taken_here() -> u64 {
    TAKEN[percpu::cpu_id() as usize].load(Ordering::Relaxed)
}

/// Per CPU: the IPI handler running here interrupted user mode.
static INTERRUPTED_USER: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];

/// True while this CPU runs an IPI handler that interrupted user mode;
/// false in the kernel's own code (a spin loop's poll included). For the
/// shootdown handlers (mm::shootdown::in_context).
#[cfg_attr(feature = "scoreboard", allow(dead_code))] // the global slot's only
pub fn interrupted_user_mode() -> bool {
    INTERRUPTED_USER[percpu::cpu_id() as usize].load(Ordering::Relaxed)
}

/// The handler of the vector of `kind`, called by trap.rs with whether it
/// interrupted user mode. Interrupts stay off throughout, so handlers do
/// not nest.
pub(super) fn handle(kind: IpiKind, from_user: bool) {
    super::model_hint::give(Hint::IpiEnter);
    let me = percpu::cpu_id() as usize;
    TAKEN[me].fetch_add(1, Ordering::Relaxed);
    INTERRUPTED_USER[me].store(from_user, Ordering::Relaxed);
    stats::count(interrupt_event(kind));
    let mailbox = &MAILBOXES[me];
    for (from, slot) in mailbox.pending[kind as usize].iter().enumerate() {
        let n = slot.swap(0, Ordering::Acquire);
        if n != 0 {
            stats::ipi_received_n(kind, from as u32, n);
        }
    }
    if kind == IpiKind::Other {
        let hook = CROSS_CALL_HOOK.load(Ordering::Acquire);
        if hook != 0 {
            // SAFETY: only set_cross_call_hook stores non-zero values, all `fn()`s.
            let hook: fn() = unsafe { core::mem::transmute::<usize, fn()>(hook) };
            hook();
        }
        let requested = mailbox.sync_requested.load(Ordering::Acquire);
        mailbox.sync_acked.store(requested, Ordering::Release);
    }
    let handler = HANDLERS[kind as usize].load(Ordering::Acquire);
    if handler != 0 {
        // SAFETY: only set_handler stores non-zero values, all `fn()`s.
        let handler: fn() = unsafe { core::mem::transmute::<usize, fn()>(handler) };
        handler();
    }
    INTERRUPTED_USER[me].store(false, Ordering::Relaxed);
    apic::eoi();
    if kind != IpiKind::Other && !smp::interrupted_ap_idle() {
        // A shootdown was served: PAUSE, which QEMU's TCG turns into "let
        // another vCPU run". Under `-icount` one host thread runs the vCPUs
        // round robin, and a target that kept its turn after acknowledging
        // would run its whole slice before the initiator saw the ack
        // (measured: fixed forkexit instances=4 on 4 CPUs, ack median 55k
        // cycles, against 1.3k with this; IPI round trips are 0.7k). On
        // hardware and under MTTCG the initiator sees the ack at once and
        // PAUSE costs a spin-loop hint.
        //
        // Not when this IPI woke the AP idle loop (smp::idle, where an AP
        // waits for its first job): that loop halts again a few
        // instructions on, which ends the turn anyway. Under QEMU 7.2's
        // icount round robin a vCPU that ends its turn here only gets the
        // next one when an earlier vCPU stops; with 2 vCPUs that is CPU 0
        // waiting for the next ack, whose IPI is then already pending and
        // is taken before the interrupted code's first instruction. So an
        // AP that PAUSEd here never got past its idle HLT, never ran its
        // scheduler job, and served shootdowns only (forkexit, 2 CPUs).
        core::hint::spin_loop();
    }
}

/// A CPU did not answer within the time allowed.
#[derive(Debug)]
pub struct Unresponsive {
    pub cpu: u32,
    pub what: &'static str,
}

impl core::fmt::Display for Unresponsive {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "cpu {} did not {} within 1 s", self.cpu, self.what)
    }
}

/// Cross-calls CPU `to` and waits until it has run its Other handler, i.e.
/// has taken every interrupt of equal or higher priority sent to it before.
/// Interrupts must be on (this CPU may have to answer IPIs meanwhile).
pub fn sync(to: u32) -> Result<(), Unresponsive> {
    let mailbox = &MAILBOXES[to as usize];
    let generation = mailbox.sync_requested.fetch_add(1, Ordering::AcqRel) + 1;
    send(IpiKind::Other, to);
    wait_until(|| mailbox.sync_acked.load(Ordering::Acquire) >= generation).map_err(|()| {
        Unresponsive {
            cpu: to,
            what: "acknowledge a sync IPI",
        }
    })
}

/// Makes sure no IPI is in flight before the counters are reported: a sync
/// round to every other CPU, then a wait until every mailbox is empty (an
/// IPI of a lower vector than Other may still be pending behind the sync).
/// After it, sent == received for every kind and pair, provided no CPU
/// sends IPIs any more. Interrupts must be on.
pub fn quiesce() -> Result<(), Unresponsive> {
    let me = percpu::cpu_id();
    for cpu in smp::online().without(me).iter() {
        sync(cpu)?;
    }
    for cpu in smp::online().iter() {
        let mailbox = &MAILBOXES[cpu as usize];
        let empty = || {
            mailbox
                .pending
                .iter()
                .flatten()
                .all(|slot| slot.load(Ordering::Acquire) == 0)
        };
        wait_until(empty).map_err(|()| Unresponsive {
            cpu,
            what: "drain its IPI mailboxes",
        })?;
    }
    Ok(())
}

/// Spins until `done()` (Ok) or one second of TSC time passed (Err).
fn wait_until(mut done: impl FnMut() -> bool) -> Result<(), ()> {
    let start = tsc::now();
    let limit = tsc::hz();
    while !done() {
        if tsc::now().wrapping_sub(start) > limit {
            return if done() { Ok(()) } else { Err(()) };
        }
        core::hint::spin_loop();
    }
    Ok(())
}
