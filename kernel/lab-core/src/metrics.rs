//! The kernel's counted events, one table: each event's metric name, unit
//! and meaning. The kernel counts and reports them (kernel/src/stats.rs:
//! per CPU and as a machine-wide total); the harness reads them back by
//! the same name (`Event::VmFaults.name()`), so a metric is spelled once,
//! here. The names are the report's and results/baseline.csv's: add events
//! anywhere, never rename one.
//!
//! Before this table the kernel kept the enum, its `ALL` list, its names
//! and its count by hand; [`events!`] makes all four from one list.

/// Declares [`Event`] from one list of `Variant = "metric.name"` (unit
/// `count`) or `Variant = "metric.name" in "unit"`, each with its doc:
/// the enum, `ALL` in the list's order, `COUNT`, `name()` and `unit()`.
macro_rules! events {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal $(in $unit:literal)? ,)*) => {
        /// Counted events other than IPIs (those are counted per kind,
        /// sender and receiver: kernel/src/stats.rs). The metric name is
        /// [`Event::name`]; all are reported per CPU and as a machine-wide
        /// total.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[repr(usize)]
        pub enum Event {
            $( $(#[$doc])* $variant, )*
        }

        impl Event {
            /// Every event, in the table's order (its discriminants').
            pub const ALL: [Event; Self::COUNT] = [$(Event::$variant,)*];
            /// How many events there are.
            pub const COUNT: usize = [$(Event::$variant,)*].len();

            /// The metric name.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Event::$variant => $name,)*
                }
            }

            /// The metric's unit: `count` unless the table says otherwise.
            pub const fn unit(self) -> &'static str {
                match self {
                    $(Event::$variant => events!(@unit $($unit)?),)*
                }
            }
        }
    };
    (@unit) => { "count" };
    (@unit $unit:literal) => { $unit };
}

events! {
    /// pmap_tlb_shootpage / shootrange / shoottlb calls.
    ShootPageCalls = "shoot.calls.shootpage",
    ShootRangeCalls = "shoot.calls.shootrange",
    ShootTlbCalls = "shoot.calls.shoottlb",
    /// ... of which had no target CPU and sent no IPI.
    ShootPageNoIpi = "shoot.noipi.shootpage",
    ShootRangeNoIpi = "shoot.noipi.shootrange",
    ShootTlbNoIpi = "shoot.noipi.shoottlb",
    /// TSC cycles spent waiting for the global shootdown slot.
    SlotWaitCycles = "shoot.wait.slot" in "cycles",
    /// TSC cycles spent waiting for shootdown acknowledgements.
    AckWaitCycles = "shoot.wait.ack" in "cycles",
    /// pmap_remove calls, and those that returned early (nothing resident).
    PmapRemoveCalls = "pmap.remove.calls",
    PmapRemoveEarly = "pmap.remove.early",
    /// pmap_destroy calls, and those that found pm_cpus non-zero (the
    /// DIAGNOSTIC check of the OpenBSD fix, seed 000).
    PmapDestroyCalls = "pmap.destroy.calls",
    PmapDestroyCpusNonzero = "pmap.destroy.cpus_nonzero",
    /// Local APIC timer interrupts taken.
    TimerTicks = "timer.ticks",
    /// IPI interrupts taken per vector. Below `ipi.received` when requests
    /// coalesced (several IPIs served by one interrupt, see arch::ipi).
    IpiInterruptsShootPage = "ipi.interrupts.shootpage",
    IpiInterruptsShootRange = "ipi.interrupts.shootrange",
    IpiInterruptsShootTlb = "ipi.interrupts.shoottlb",
    IpiInterruptsOther = "ipi.interrupts.other",
    /// Processes made by fork, programs loaded by exec (the first
    /// process's included), processes ended (exit, last thread_exit or a
    /// kill), and of those the kills.
    ProcForks = "proc.forks",
    ProcExecs = "proc.execs",
    ProcExits = "proc.exits",
    ProcKills = "proc.kills",
    /// Context switches (a CPU changing the thread it runs).
    SchedSwitches = "sched.switches",
    /// pmap_remove_pages calls (vmspace teardown at exit and exec).
    PmapRemovePagesCalls = "pmap.remove_pages.calls",
    /// The per-region pmap_remove calls of the teardown at exit, and how
    /// many of them found nothing resident (seed 004's early return); the
    /// same for the teardown of the old address space at exec.
    PmapRemoveExitCalls = "pmap.remove.exit_calls",
    PmapRemoveExitEarly = "pmap.remove.exit_early",
    PmapRemoveExecCalls = "pmap.remove.exec_calls",
    PmapRemoveExecEarly = "pmap.remove.exec_early",
    /// User page faults resolved, and of those copy-on-write copies.
    VmFaults = "vm.faults",
    VmCowCopies = "vm.cow_copies",
    /// User faults the page tables already allowed (proc::fault): taken
    /// through a stale TLB entry of a change that added rights, or lost to
    /// another thread's fault on the same page; only retried.
    VmFaultsSpurious = "vm.faults_spurious",
    /// Invalidations of a pmap that no other CPU can cache, done here with
    /// plain instructions without entering the shootdown machinery (so not
    /// counted as shootdown calls): DragonFly's single-threaded pmap
    /// optimisation (seed 002), in the `dfly-batch` variant only.
    ShootLocalOnly = "shoot.local_only",
    /// Shootdown IPIs sent for a dying pmap (the teardown at exit and
    /// exec, mm::pmap::pmap_set_dying), shoottlb's included: what seed
    /// 004's "dying pmap needs no IPIs" idea (`dying-no-ipi`) saves.
    ShootDyingIpis = "shoot.dying.ipis",
    /// Shootdowns of a dying pmap whose pm_cpus named another online CPU
    /// (0 with the fixed bitmap; `dying-no-ipi` skips them anyway).
    PmapDyingCpusOther = "pmap.dying.cpus_other",
    /// Shootdown requests this CPU acknowledged before invalidating them
    /// (`early-ack`; mm::shootdown::AckRule).
    ShootEarlyAcks = "shoot.early_acks",
    /// Requests acknowledged in the kernel and deferred to the return to
    /// user mode (`in-context-flush`), and the returns that applied some.
    ShootDeferred = "shoot.deferred",
    ShootDeferredApplied = "shoot.deferred_applied",
    /// Shootdowns that sent IPIs and also invalidated on this CPU: the
    /// local invalidation done before the IPIs went out (`flush-first`),
    /// or while they were in flight (every other variant); and the cycles
    /// from such a shootdown's start to the end of its pmap_tlb_shootwait,
    /// the initiator's whole cost (mm::shootdown::shoot).
    ShootLocalFirst = "shoot.local_first",
    ShootLocalOverlapped = "shoot.local_overlapped",
    ShootOpCycles = "shoot.op_cycles" in "cycles",
    /// Under `pcid`, loads of a user pmap's tables that kept its PCID's
    /// entries (no flush), and those that flushed them (a slot given anew,
    /// or the pmap shot down since): mm::pcid::load.
    PcidKeptLoads = "pcid.kept_loads",
    PcidFlushedLoads = "pcid.flushed_loads",
    /// Under `pcid`, user-address invalidations (IPI handlers' and the
    /// initiator's own) that found the loaded PCID already current, and
    /// those that flushed the whole PCID: mm::pcid::invalidate.
    PcidInvalidationsSkipped = "pcid.invalidations_skipped",
    PcidInvalidationsFull = "pcid.invalidations_full",
    /// pmap_enter calls that only added write access to a valid entry of
    /// the same frame (a copy-on-write fault on a frame no longer shared),
    /// and of those the ones shot down nowhere (`no-flush-cow`).
    PmapUpgrades = "pmap.enter.upgrades",
    PmapUpgradesNoShoot = "pmap.enter.upgrades_noshoot",
    /// CR3 writes by the scheduler's address-space switch (each one
    /// flushes this CPU's non-global TLB entries).
    SchedCr3Loads = "sched.cr3_loads",
    /// `lazy-tlb` (mm::lazy_tlb). What it saves: switches to the idle
    /// thread that kept the user pmap loaded, shootdown targets skipped
    /// because they were lazy, and returns to the pmap kept with nothing
    /// to flush (CR3 loads saved). What it costs: returns that found the
    /// pmap's generation ahead and flushed the whole TLB (catch-up
    /// flushes), lazy CPUs that took a table-freeing shootdown and loaded
    /// the kernel's tables instead, and lazy CPUs made to drop a pmap
    /// about to be freed.
    LazyEnters = "lazy.enters",
    LazySkipped = "lazy.skipped",
    LazyKeptReturns = "lazy.kept_returns",
    LazyCatchups = "lazy.catchup_flushes",
    LazyLeftForKernel = "lazy.left_for_kernel",
    LazyEvictions = "lazy.evictions",
    /// `lazy-latr` (mm::latr). What it saves: records saved in the
    /// initiator's ring instead of IPIs, and the target CPUs they named
    /// (IPIs not sent). What it adds: records its sweeps read (every live
    /// record of every ring, at every tick and switch), sweeps, records a
    /// target applied (and of those, for an address space not loaded
    /// there, so with nothing to invalidate), munmaps whose ring was full
    /// (IPIs sent after all), cross-calls to settle a quarantine needed
    /// before its time bound, fallback cross-calls to CPUs still pending
    /// when the bound had passed, munmaps quarantined, their pages, the
    /// pages given back (of those, before the bound) and the pages'
    /// quarantine time (page-microseconds).
    LatrQueued = "latr.queued",
    LatrDeferred = "latr.deferred",
    LatrScanned = "latr.scanned",
    LatrSweeps = "latr.sweeps",
    LatrApplied = "latr.applied",
    LatrAppliedNotLoaded = "latr.applied_not_loaded",
    LatrRingFull = "latr.ring_full",
    LatrSettleIpis = "latr.settle_ipis",
    LatrFallbackIpis = "latr.fallback_ipis",
    LatrQuarantines = "latr.quarantines",
    LatrQuarantinedPages = "latr.quarantined_pages",
    LatrReleasedPages = "latr.released_pages",
    LatrReleasedEarlyPages = "latr.released_early_pages",
    LatrHeldPageUs = "latr.held_page_us",
    /// Chaos mode (`chaos=<seed>`, arch::chaos): delays taken at the
    /// protocols' annotated points; 0 when chaos is off, so a run shows
    /// whether it was on.
    ChaosDelays = "chaos.delays",
    /// Of those, the delays taken with interrupts on, which end at the
    /// first interrupt this CPU takes (an IPI landing mid-poll).
    ChaosIrqWindows = "chaos.irq_windows",
}

impl Event {
    /// The event called `name`, if any (the harness reading a report).
    pub fn from_name(name: &str) -> Option<Event> {
        Event::ALL.into_iter().find(|e| e.name() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_event_once_in_discriminant_order() {
        for (i, e) in Event::ALL.iter().enumerate() {
            assert_eq!(*e as usize, i, "{e:?}");
        }
        assert_eq!(Event::ALL.len(), Event::COUNT);
    }

    #[test]
    fn names_are_unique_dotted_lower_case_words() {
        for (i, a) in Event::ALL.iter().enumerate() {
            let n = a.name();
            // A group and a name at least (`shoot.op_cycles`): a bare word
            // is a unit or a kind pasted where the name belongs.
            assert!(
                n.contains('.')
                    && n.split('.').all(|w| !w.is_empty()
                        && w.bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')),
                "{n}"
            );
            assert!(
                Event::ALL[i + 1..].iter().all(|b| b.name() != n),
                "{n} twice"
            );
            assert_eq!(Event::from_name(n), Some(*a));
        }
        assert_eq!(Event::from_name("no.such"), None);
    }

    #[test]
    fn wait_cycles_are_cycles_and_the_rest_counts() {
        assert_eq!(Event::AckWaitCycles.unit(), "cycles");
        assert_eq!(Event::ShootOpCycles.unit(), "cycles");
        assert_eq!(Event::ShootPageCalls.unit(), "count");
        assert_eq!(Event::ShootPageCalls.name(), "shoot.calls.shootpage");
        assert_eq!(Event::ShootOpCycles.name(), "shoot.op_cycles");
    }
}
