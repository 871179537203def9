//! The model: coherence, TLBs and clocks behind one per-event API, and the
//! counters they produce.
//!
//! The caller (the QEMU plugin, or a test) reports what each vCPU does, in
//! the order it happened on the host, and the model charges each CPU's
//! clock with the profile's costs:
//!
//! | event                      | charge                                         |
//! |----------------------------|------------------------------------------------|
//! | `insns(n, spinning=false)` | n x instruction                                |
//! | `insns(n, spinning=true)`  | nothing (a PAUSE loop: counted `insns.spin`)   |
//! | `access`, TLB miss         | page_walk                                      |
//! | `access`, coherence miss   | clock = max(clock, writer's clock at its write) + c2c_{same,cross}_socket |
//! | `invlpg`                   | invlpg                                         |
//! | `flush`                    | full_flush                                     |
//! | `ipi_send`                 | nothing; queues arrival = clock + ipi_delivery at the target |
//! | `ipi_enter`                | clock = max(clock, arrival) + interrupt_entry_exit + eoi |
//!
//! Spin loops are free because their length is an artefact of TCG's round
//! robin, not of the modeled machine: the causal rules (a coherence miss on
//! the line spun on, an IPI's arrival) move the spinner's clock to when the
//! awaited event happened instead.
//!
//! Marks (lab_core::model_hint::Mark) time intervals on these clocks: wait
//! and shoot intervals per CPU, the workload span (from the clock of the
//! CPU giving `WorkloadBegin` to the latest clock of any CPU at
//! `WorkloadEnd`), and numbered phases, during which a CPU's coherence, TLB
//! and stale counters are also summed into `phase.<n>.*`. A Begin while the
//! same interval is open on that CPU, or an End with none open, is ignored
//! and counted `marks.unpaired`. A `ShootEnd` (or `Settled`, a shootdown
//! that needed no IPI) settles the pages the kernel said it covered
//! ([`Model::covers`]): every CPU's TLB entry of them filled before the
//! shootdown began is condemned, and a later hit on it with a changed
//! frame is a stale access (see [`crate::tlb`]).
//!
//! Events naming a CPU >= ncpus are ignored (an IPI to such a target is
//! counted `ipi.bad_target`); the model holds at most 64 CPUs. An access is
//! looked up in the TLB once (its first page) and in the caches once per
//! line it touches.

use crate::clock::Clocks;
use crate::coherence::{line_masks, Coherence};
use crate::profile::Profile;
use crate::report::Metric;
use crate::tlb::{Layout, Lookup, PageSize, Tlb};
use lab_core::model_hint::Mark;
use std::collections::{BTreeMap, VecDeque};

/// The most CPUs a model holds (a line's valid set is a u64).
pub const MAX_CPUS: usize = 64;

/// How many hot lines the report lists.
pub const HOT_LINES: usize = 16;

/// Per-CPU counters. The discriminant indexes [`COUNTERS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
enum Ctr {
    Insns,
    InsnsSpin,
    CohMisses,
    CohFalseSharing,
    CohInvalidations,
    CohCold,
    CohCycles,
    TlbMisses,
    TlbMisses4k,
    TlbRefills,
    TlbInvlpg,
    TlbFlushes,
    TlbWalkCycles,
    StaleSuspects,
    StaleVerdicts,
    StaleLoads,
    StaleStores,
    IpiSent,
    IpiBadTarget,
    IpiEntered,
    IpiUnmatched,
    IpiCoalesced,
    IpiLatencyCycles,
    WaitCycles,
    WaitCount,
    ShootCycles,
    ShootCount,
    WorkloadCycles,
    MarksUnpaired,
    CausalJumps,
    CausalJumpCycles,
}

const N_CTRS: usize = Ctr::CausalJumpCycles as usize + 1;

/// Name, unit, and whether an open phase also sums it.
const COUNTERS: [(&str, &str, bool); N_CTRS] = [
    ("insns", "count", false),
    ("insns.spin", "count", false),
    ("coh.misses", "count", true),
    ("coh.false_sharing", "count", true),
    ("coh.invalidations", "count", true),
    ("coh.cold", "count", false),
    ("coh.cycles", "cycles", false),
    ("tlb.misses", "count", true),
    ("tlb.misses_4k", "count", true),
    ("tlb.refills", "count", true),
    ("tlb.invlpg", "count", false),
    ("tlb.flushes", "count", false),
    ("tlb.walk_cycles", "cycles", false),
    ("stale.suspects", "count", true),
    ("stale.verdicts", "count", true),
    ("stale.loads", "count", true),
    ("stale.stores", "count", true),
    ("ipi.sent", "count", false),
    ("ipi.bad_target", "count", false),
    ("ipi.entered", "count", false),
    ("ipi.unmatched", "count", false),
    ("ipi.coalesced", "count", false),
    ("ipi.latency_cycles", "cycles", false),
    ("wait.cycles", "cycles", false),
    ("wait.count", "count", false),
    ("shoot.cycles", "cycles", false),
    ("shoot.count", "count", false),
    ("workload.cycles", "cycles", false),
    ("marks.unpaired", "count", false),
    ("causal.jumps", "count", false),
    ("causal.jump_cycles", "cycles", false),
];

/// The profile's costs, flattened for the hot path.
#[derive(Clone, Copy)]
struct Costs {
    instruction: u64,
    c2c_same: u64,
    c2c_cross: u64,
    page_walk: u64,
    invlpg: u64,
    full_flush: u64,
    ipi_delivery: u64,
    entry_exit: u64,
    eoi: u64,
    cpus_per_socket: usize,
}

/// One CPU's counters and open intervals.
struct Cpu {
    ctr: [u64; N_CTRS],
    /// Open phases: (number, clock at PhaseBegin).
    phases: Vec<(u8, u64)>,
    wait: Option<u64>,
    shoot: Option<u64>,
    workload: Option<u64>,
    /// IPIs sent to this CPU not yet entered: (arrival, sender's clock).
    ipis: VecDeque<(u64, u64)>,
    /// The event sequence number at this CPU's open `ShootBegin`.
    shoot_began: Option<u64>,
    /// The pages the shootdown about to settle covers: (va, pages).
    covers: Vec<(u64, u64)>,
}

/// One phase's sums over CPUs.
#[derive(Default)]
struct Phase {
    ctr: [u64; N_CTRS],
    cycles: u64,
}

/// The memory-system model for one cost profile.
pub struct Model {
    profile: Profile,
    costs: Costs,
    ncpus: usize,
    layout: Layout,
    coh: Coherence,
    tlbs: Vec<Tlb>,
    clocks: Clocks,
    cpus: Vec<Cpu>,
    phases: BTreeMap<u8, Phase>,
    /// Clock of the CPU that gave the open WorkloadBegin.
    workload_begin: Option<u64>,
    workload_span: u64,
    workload_spans: u64,
    /// Event sequence number: orders TLB fills against shootdowns.
    seq: u64,
}

impl Model {
    /// A model of `ncpus` CPUs (1..=64) with the kernel's layout.
    pub fn new(profile: Profile, ncpus: usize) -> Model {
        Model::with_layout(profile, ncpus, Layout::default())
    }

    /// A model with another virtual layout (page sizes, global mappings).
    pub fn with_layout(profile: Profile, ncpus: usize, layout: Layout) -> Model {
        assert!(
            (1..=MAX_CPUS).contains(&ncpus),
            "the model holds 1..={MAX_CPUS} CPUs, not {ncpus}"
        );
        let c = &profile.costs;
        let costs = Costs {
            instruction: c.instruction.cycles,
            c2c_same: c.c2c_same_socket.cycles,
            c2c_cross: c.c2c_cross_socket.cycles,
            page_walk: c.page_walk.cycles,
            invlpg: c.invlpg.cycles,
            full_flush: c.full_flush.cycles,
            ipi_delivery: c.ipi_delivery.cycles,
            entry_exit: c.interrupt_entry_exit.cycles,
            eoi: c.eoi.cycles,
            cpus_per_socket: profile.cpus_per_socket,
        };
        Model {
            tlbs: (0..ncpus).map(|_| Tlb::new(&profile.tlb)).collect(),
            cpus: (0..ncpus)
                .map(|_| Cpu {
                    ctr: [0; N_CTRS],
                    phases: Vec::new(),
                    wait: None,
                    shoot: None,
                    workload: None,
                    ipis: VecDeque::new(),
                    shoot_began: None,
                    covers: Vec::new(),
                })
                .collect(),
            profile,
            costs,
            ncpus,
            layout,
            coh: Coherence::new(),
            clocks: Clocks::new(ncpus),
            phases: BTreeMap::new(),
            workload_begin: None,
            workload_span: 0,
            workload_spans: 0,
            seq: 0,
        }
    }

    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    pub fn ncpus(&self) -> usize {
        self.ncpus
    }

    /// CPU `cpu`'s modeled clock.
    pub fn clock(&self, cpu: usize) -> u64 {
        self.clocks.now(cpu)
    }

    /// Adds `v` to CPU `cpu`'s counter, and to every phase open on it.
    #[inline]
    fn bump(&mut self, cpu: usize, ctr: Ctr, v: u64) {
        let c = &mut self.cpus[cpu];
        c.ctr[ctr as usize] += v;
        if !c.phases.is_empty() && COUNTERS[ctr as usize].2 {
            for &(n, _) in &c.phases {
                if let Some(p) = self.phases.get_mut(&n) {
                    p.ctr[ctr as usize] += v;
                }
            }
        }
    }

    /// A causal rule moved `cpu`'s clock `jump` cycles beyond its own advance.
    fn jumped(&mut self, cpu: usize, jump: u64) {
        if jump > 0 {
            self.bump(cpu, Ctr::CausalJumps, 1);
            self.bump(cpu, Ctr::CausalJumpCycles, jump);
            self.clocks.sample_skew();
        }
    }

    /// A translation block executed on `cpu`: `n` instructions; `spinning`:
    /// the block holds a PAUSE (not charged, counted `insns.spin`).
    pub fn insns(&mut self, cpu: usize, n: u64, spinning: bool) {
        if cpu >= self.ncpus {
            return;
        }
        self.clocks.start(cpu);
        if spinning {
            self.cpus[cpu].ctr[Ctr::InsnsSpin as usize] += n;
        } else {
            self.cpus[cpu].ctr[Ctr::Insns as usize] += n;
            self.clocks.advance(cpu, n * self.costs.instruction);
        }
    }

    /// A data access of `size` bytes at `vaddr`, translated to `paddr`.
    pub fn access(&mut self, cpu: usize, vaddr: u64, paddr: u64, size: u64, store: bool) {
        if cpu >= self.ncpus {
            return;
        }
        self.clocks.start(cpu);
        let (psize, global) = self.layout.page_of(vaddr);
        self.seq += 1;
        match self.tlbs[cpu].access(vaddr, paddr, psize, global, self.seq) {
            Lookup::Hit => {}
            Lookup::HitOld {
                new_suspect,
                stale,
                new_verdict,
            } => {
                if new_suspect {
                    self.bump(cpu, Ctr::StaleSuspects, 1);
                }
                if new_verdict {
                    self.bump(cpu, Ctr::StaleVerdicts, 1);
                }
                if stale {
                    let ctr = if store {
                        Ctr::StaleStores
                    } else {
                        Ctr::StaleLoads
                    };
                    self.bump(cpu, ctr, 1);
                }
            }
            Lookup::Miss { refill } => {
                self.bump(cpu, Ctr::TlbMisses, 1);
                if psize == PageSize::Size4K {
                    self.bump(cpu, Ctr::TlbMisses4k, 1);
                }
                if refill {
                    self.bump(cpu, Ctr::TlbRefills, 1);
                }
                self.bump(cpu, Ctr::TlbWalkCycles, self.costs.page_walk);
                self.clocks.advance(cpu, self.costs.page_walk);
            }
        }
        let (lines, n) = line_masks(paddr, size);
        for &(line, mask) in &lines[..n] {
            self.line_access(cpu, line, mask, store);
        }
    }

    /// One line of an access: coherence, and its clock charge.
    fn line_access(&mut self, cpu: usize, line: u64, mask: u64, store: bool) {
        let costs = self.costs;
        let clocks = &mut self.clocks;
        // (transfer cycles, causal jump) of a miss.
        let mut charged = (0, 0);
        let out = self.coh.access(cpu, line, mask, store, |miss| {
            if let Some(m) = miss {
                let same = cpu / costs.cpus_per_socket == m.from / costs.cpus_per_socket;
                let transfer = if same {
                    costs.c2c_same
                } else {
                    costs.c2c_cross
                };
                // max(clock + t, writer_clock + t): the line cannot leave
                // the writer's cache before the writer wrote it.
                let jump = clocks.not_before(cpu, m.writer_clock);
                clocks.advance(cpu, transfer);
                charged = (transfer, jump);
            }
            clocks.now(cpu)
        });
        if out.cold {
            self.bump(cpu, Ctr::CohCold, 1);
        }
        if let Some(m) = out.miss {
            self.bump(cpu, Ctr::CohMisses, 1);
            if m.false_sharing {
                self.bump(cpu, Ctr::CohFalseSharing, 1);
            }
            self.bump(cpu, Ctr::CohCycles, charged.0);
            self.jumped(cpu, charged.1);
        }
        if out.invalidations > 0 {
            self.bump(cpu, Ctr::CohInvalidations, out.invalidations as u64);
        }
    }

    /// INVLPG of `va` on `cpu`.
    pub fn invlpg(&mut self, cpu: usize, va: u64) {
        if cpu >= self.ncpus {
            return;
        }
        self.tlbs[cpu].invlpg(va);
        self.bump(cpu, Ctr::TlbInvlpg, 1);
        self.clocks.advance(cpu, self.costs.invlpg);
    }

    /// A full flush on `cpu`: a CR3 write (`global_too` false: global
    /// entries survive) or a CR4 write (true).
    pub fn flush(&mut self, cpu: usize, global_too: bool) {
        if cpu >= self.ncpus {
            return;
        }
        self.tlbs[cpu].flush(global_too);
        self.bump(cpu, Ctr::TlbFlushes, 1);
        self.clocks.advance(cpu, self.costs.full_flush);
    }

    /// `cpu` is about to write the ICR to interrupt `target`.
    pub fn ipi_send(&mut self, cpu: usize, target: usize) {
        if cpu >= self.ncpus {
            return;
        }
        self.bump(cpu, Ctr::IpiSent, 1);
        if target >= self.ncpus {
            self.bump(cpu, Ctr::IpiBadTarget, 1);
            return;
        }
        let sent = self.clocks.now(cpu);
        self.cpus[target]
            .ipis
            .push_back((sent.saturating_add(self.costs.ipi_delivery), sent));
        self.clocks.sample_skew();
    }

    /// `cpu` entered an IPI handler: takes the oldest IPI sent to it, and
    /// serves every other one pending (counted as coalesced).
    pub fn ipi_enter(&mut self, cpu: usize) {
        if cpu >= self.ncpus {
            return;
        }
        let handler_cost = self.costs.entry_exit + self.costs.eoi;
        match self.cpus[cpu].ipis.pop_front() {
            Some((arrival, sent)) => {
                let jump = self.clocks.not_before(cpu, arrival);
                let start = self.clocks.now(cpu);
                self.bump(cpu, Ctr::IpiEntered, 1);
                self.bump(cpu, Ctr::IpiLatencyCycles, start - sent);
                // IPIs sent before this handler ran in the emulation are
                // served by it: the kernel's handler drains every mailbox
                // of its vector (arch/ipi.rs), and a second IPI of a
                // vector already pending coalesces in the IRR. Left
                // queued, they would pair later handlers with old sends.
                let coalesced = self.cpus[cpu].ipis.len() as u64;
                self.cpus[cpu].ipis.clear();
                self.bump(cpu, Ctr::IpiCoalesced, coalesced);
                self.clocks.advance(cpu, handler_cost);
                self.jumped(cpu, jump);
            }
            None => {
                self.bump(cpu, Ctr::IpiUnmatched, 1);
                self.clocks.advance(cpu, handler_cost);
            }
        }
    }

    /// The shootdown `cpu` is about to mark settled covered `pages` pages
    /// from `va` (0: every page).
    pub fn covers(&mut self, cpu: usize, va: u64, pages: u64) {
        if cpu < self.ncpus {
            self.cpus[cpu].covers.push((va, pages));
        }
    }

    /// `cpu`'s shootdown, begun at sequence number `began`, is settled:
    /// every CPU's entries of the pages it covered, filled before it began,
    /// are condemned.
    fn settle(&mut self, cpu: usize, began: u64) {
        let covers = std::mem::take(&mut self.cpus[cpu].covers);
        for &(va, pages) in &covers {
            for tlb in &mut self.tlbs {
                tlb.condemn(va, pages, began);
            }
        }
        self.cpus[cpu].covers = covers;
        self.cpus[cpu].covers.clear();
    }

    /// `cpu` halted (`true`) or resumed (`false`). Only affects skew.
    pub fn idle(&mut self, cpu: usize, idle: bool) {
        if cpu < self.ncpus {
            self.clocks.set_idle(cpu, idle);
        }
    }

    /// An interval boundary on `cpu`.
    pub fn mark(&mut self, cpu: usize, mark: Mark) {
        if cpu >= self.ncpus {
            return;
        }
        let now = self.clocks.now(cpu);
        self.seq += 1;
        match mark {
            Mark::WaitBegin => self.open(cpu, |c| &mut c.wait),
            Mark::WaitEnd => self.close(cpu, |c| &mut c.wait, Ctr::WaitCycles, Ctr::WaitCount),
            Mark::ShootBegin => {
                self.open(cpu, |c| &mut c.shoot);
                self.cpus[cpu].shoot_began = Some(self.seq);
            }
            Mark::ShootEnd => {
                self.close(cpu, |c| &mut c.shoot, Ctr::ShootCycles, Ctr::ShootCount);
                let began = self.cpus[cpu].shoot_began.take().unwrap_or(self.seq);
                self.settle(cpu, began);
            }
            Mark::Settled => self.settle(cpu, self.seq),
            Mark::WorkloadBegin => {
                self.open(cpu, |c| &mut c.workload);
                if self.workload_begin.is_none() {
                    self.workload_begin = Some(now);
                }
            }
            Mark::WorkloadEnd => {
                let open = self.cpus[cpu].workload.take();
                match open {
                    Some(b) => self.bump(cpu, Ctr::WorkloadCycles, now - b),
                    None => self.bump(cpu, Ctr::MarksUnpaired, 1),
                }
                if let Some(b) = self.workload_begin.take() {
                    self.workload_span += self.clocks.max().saturating_sub(b);
                    self.workload_spans += 1;
                }
            }
            Mark::PhaseBegin(n) => {
                if self.cpus[cpu].phases.iter().any(|&(p, _)| p == n) {
                    self.bump(cpu, Ctr::MarksUnpaired, 1);
                } else {
                    self.phases.entry(n).or_default();
                    self.cpus[cpu].phases.push((n, now));
                }
            }
            Mark::PhaseEnd(n) => {
                let phases = &mut self.cpus[cpu].phases;
                match phases.iter().position(|&(p, _)| p == n) {
                    Some(i) => {
                        let (_, begin) = phases.remove(i);
                        if let Some(p) = self.phases.get_mut(&n) {
                            p.cycles += now - begin;
                        }
                    }
                    None => self.bump(cpu, Ctr::MarksUnpaired, 1),
                }
            }
        }
    }

    /// Opens the interval `slot` selects on `cpu` (unpaired if open).
    fn open(&mut self, cpu: usize, slot: fn(&mut Cpu) -> &mut Option<u64>) {
        let now = self.clocks.now(cpu);
        let s = slot(&mut self.cpus[cpu]);
        if s.is_some() {
            self.bump(cpu, Ctr::MarksUnpaired, 1);
        } else {
            *s = Some(now);
        }
    }

    /// Closes it, adding its length to `cycles` and 1 to `count`.
    fn close(
        &mut self,
        cpu: usize,
        slot: fn(&mut Cpu) -> &mut Option<u64>,
        cycles: Ctr,
        count: Ctr,
    ) {
        let now = self.clocks.now(cpu);
        match slot(&mut self.cpus[cpu]).take() {
            Some(b) => {
                self.bump(cpu, cycles, now - b);
                self.bump(cpu, count, 1);
            }
            None => self.bump(cpu, Ctr::MarksUnpaired, 1),
        }
    }

    /// Every metric, sorted by name then scope (machine first, then CPUs
    /// in order). Names carry no prefix. Deterministic: nothing here
    /// depends on hash order.
    ///
    /// Each counter comes once per CPU and once for the machine (the sum),
    /// except `workload.cycles`, whose machine figure is the workload span.
    /// `clock.cycles` is per CPU only (`clock.max_cycles` for the machine).
    /// `hot.<rank>.*` (rank 0..16) lists only lines with at least one
    /// transfer; `phase.<n>.*` only phases that were ever begun.
    pub fn metrics(&self) -> Vec<Metric> {
        let mut out = Vec::new();
        let m = |name: String, value: u64, unit: &'static str, cpu: Option<usize>| Metric {
            name,
            value,
            unit,
            cpu,
        };
        for (i, &(name, unit, _)) in COUNTERS.iter().enumerate() {
            let mut total = 0u64;
            for (c, cpu) in self.cpus.iter().enumerate() {
                total = total.saturating_add(cpu.ctr[i]);
                out.push(m(name.into(), cpu.ctr[i], unit, Some(c)));
            }
            // The machine-wide workload figure is the span, not a sum.
            if i == Ctr::WorkloadCycles as usize {
                total = self.workload_span;
            }
            out.push(m(name.into(), total, unit, None));
        }
        for c in 0..self.ncpus {
            out.push(m(
                "clock.cycles".into(),
                self.clocks.now(c),
                "cycles",
                Some(c),
            ));
        }
        out.push(m(
            "clock.max_cycles".into(),
            self.clocks.max(),
            "cycles",
            None,
        ));
        let ns = (self.workload_span as f64 / self.profile.ghz).round() as u64;
        out.push(m("workload.ns".into(), ns, "ns", None));
        out.push(m(
            "workload.spans".into(),
            self.workload_spans,
            "count",
            None,
        ));
        out.push(m(
            "skew.max_cycles".into(),
            self.clocks.skew_max(),
            "cycles",
            None,
        ));
        out.push(m(
            "coh.lines".into(),
            self.coh.lines() as u64,
            "count",
            None,
        ));
        for (rank, h) in self.coh.hottest(HOT_LINES).iter().enumerate() {
            out.push(m(format!("hot.{rank}.paddr"), h.paddr, "addr", None));
            out.push(m(
                format!("hot.{rank}.transfers"),
                h.transfers,
                "count",
                None,
            ));
            out.push(m(
                format!("hot.{rank}.false_sharing"),
                h.false_sharing,
                "count",
                None,
            ));
        }
        for (n, p) in &self.phases {
            for (i, &(name, unit, tracked)) in COUNTERS.iter().enumerate() {
                if tracked {
                    out.push(m(format!("phase.{n}.{name}"), p.ctr[i], unit, None));
                }
            }
            out.push(m(format!("phase.{n}.cycles"), p.cycles, "cycles", None));
        }
        out.sort_by(|a, b| {
            a.name
                .cmp(&b.name)
                .then(a.cpu.map_or(0, |c| c + 1).cmp(&b.cpu.map_or(0, |c| c + 1)))
        });
        out
    }
}
