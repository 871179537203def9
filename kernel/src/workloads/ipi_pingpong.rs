//! `ipi-pingpong`: the IPI round-trip floor that shootdown costs are
//! compared with.
//!
//! For each ordered CPU pair (from, to), `from` sends an Other IPI to `to`,
//! whose handler sends one straight back; `from` measures send to reply in
//! TSC cycles, `warmup` unrecorded rounds and then `rounds` recorded ones.
//! Pairs are CPU 0 to every other CPU (`pairs=from0`) or every ordered
//! pair (`pairs=all`, started on `from` with smp::run_on). Reported per pair
//! and overall: min, median, p99, max in cycles and ns.
//!
//! `others=spin` keeps every AP outside the pair busy in a spin loop (with
//! interrupts on) while a pair is measured: under TCG each vCPU is a host
//! thread, so this shows what over-subscribing the host's cores does to the
//! figure (`others=idle`, the default, leaves them halted, costing nothing).
//!
//! Shared state: one round is in flight at a time. `PING` is the sequence
//! number of the current round (written by the initiator), `REPLIED` the
//! last one the responder answered, `PONG` the last reply the initiator
//! saw; sequence numbers only grow, so a stray Other IPI (a wake-up, a
//! sync) never completes a round. Samples are written by the initiator of
//! the current pair into its slice of `SAMPLES` and read by CPU 0 after
//! the pair finished (run_on's completion orders them).

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use lab_core::cmdline::{Kind, ParamSpec};
use lab_core::cpuset::CpuSet;
use lab_core::report::{Scope, Status};
use lab_core::summary::{summarize, Summary};

use super::Workload;
use crate::arch::{self, ipi, smp, tsc};
use crate::stats::IpiKind;
use crate::{println, report};

/// Capacity of the sample buffer (pairs x rounds), 2 MiB of .bss.
const MAX_SAMPLES: usize = 1 << 18;
/// A round that takes longer than this is reported as lost.
const ROUND_TIMEOUT_NS: u64 = 1_000_000_000;

struct Samples(UnsafeCell<[u64; MAX_SAMPLES]>);
// SAFETY: see the module comment: one writer at a time, handed over by
// run_on's release/acquire.
unsafe impl Sync for Samples {}
static SAMPLES: Samples = Samples(UnsafeCell::new([0; MAX_SAMPLES]));

static FROM: AtomicU32 = AtomicU32::new(0);
static TO: AtomicU32 = AtomicU32::new(0);
static ROUNDS: AtomicU64 = AtomicU64::new(0);
static WARMUP: AtomicU64 = AtomicU64::new(0);
static PING: AtomicU64 = AtomicU64::new(0);
static REPLIED: AtomicU64 = AtomicU64::new(0);
static PONG: AtomicU64 = AtomicU64::new(0);
static LOST: AtomicBool = AtomicBool::new(false);
/// Tells the background spinners (others=spin) to return.
static SPIN_STOP: AtomicBool = AtomicBool::new(false);

pub static IPI_PINGPONG: Workload = Workload {
    name: "ipi-pingpong",
    help: "IPI round-trip latency between CPUs (min/median/p99/max, cycles and ns)",
    params: &[
        ParamSpec {
            key: "pairs",
            kind: Kind::Choice(&["from0", "all"]),
            default: "from0",
            help: "from0: CPU 0 to each other CPU; all: every ordered pair",
        },
        ParamSpec {
            key: "rounds",
            kind: Kind::U64 {
                min: 1,
                max: 100_000,
            },
            default: "1000",
            help: "recorded round trips per pair",
        },
        ParamSpec {
            key: "others",
            kind: Kind::Choice(&["idle", "spin"]),
            default: "idle",
            help:
                "what the CPUs outside the measured pair do: halt, or spin (host over-subscription)",
        },
        ParamSpec {
            key: "warmup",
            kind: Kind::U64 {
                min: 0,
                max: 100_000,
            },
            default: "100",
            help: "unrecorded round trips per pair before measuring",
        },
    ],
    run: |params, _| {
        run(
            params.choice("pairs") == "all",
            params.choice("others") == "spin",
            params.u64("rounds"),
            params.u64("warmup"),
        )
    },
};

/// The Other-IPI handler on both ends of a pair.
fn on_ipi() {
    let me = arch::cpu_id();
    let ping = PING.load(Ordering::Acquire);
    if me == TO.load(Ordering::Relaxed) && ping > REPLIED.load(Ordering::Relaxed) {
        REPLIED.store(ping, Ordering::Release);
        ipi::send(IpiKind::Other, FROM.load(Ordering::Relaxed));
    } else if me == FROM.load(Ordering::Relaxed) {
        PONG.store(REPLIED.load(Ordering::Acquire), Ordering::Release);
    }
}

/// A background job for others=spin: burn this CPU until told to stop.
fn spin(_: u64) {
    while !SPIN_STOP.load(Ordering::Acquire) {
        core::hint::spin_loop();
    }
}

/// Runs the rounds of the current pair on its `from` CPU, writing samples
/// from index `offset`. Interrupts on.
fn measure(offset: u64) {
    let to = TO.load(Ordering::Relaxed);
    let rounds = ROUNDS.load(Ordering::Relaxed);
    let warmup = WARMUP.load(Ordering::Relaxed);
    let timeout = ROUND_TIMEOUT_NS * tsc::hz() / 1_000_000_000;
    for round in 0..warmup + rounds {
        let seq = PING.load(Ordering::Relaxed) + 1;
        PING.store(seq, Ordering::Release);
        let start = tsc::now();
        ipi::send(IpiKind::Other, to);
        while PONG.load(Ordering::Acquire) < seq {
            if tsc::now() - start > timeout {
                LOST.store(true, Ordering::Relaxed);
                return;
            }
            core::hint::spin_loop();
        }
        let rtt = tsc::now() - start;
        if round >= warmup {
            let index = (offset + round - warmup) as usize;
            // SAFETY: this CPU is the only writer now (module comment);
            // `index` < MAX_SAMPLES was checked by `run`.
            unsafe { (*SAMPLES.0.get())[index] = rtt };
        }
    }
}

fn report_summary(prefix: &str, s: &Summary, scope: Scope) {
    let figures = [
        ("min", s.min),
        ("median", s.median),
        ("p99", s.p99),
        ("max", s.max),
    ];
    let mut name = heapless_name::Name::new();
    for (what, cycles) in figures {
        report::metric(name.set(prefix, what, ""), cycles, "cycles", scope);
        report::metric(
            name.set(prefix, what, "_ns"),
            tsc::cycles_to_ns(cycles),
            "ns",
            scope,
        );
    }
}

/// Metric names built without a heap.
mod heapless_name {
    pub struct Name {
        buf: [u8; 64],
        len: usize,
    }

    impl Name {
        pub fn new() -> Self {
            Name {
                buf: [0; 64],
                len: 0,
            }
        }

        /// `prefix.what` followed by `suffix`.
        pub fn set(&mut self, prefix: &str, what: &str, suffix: &str) -> &str {
            self.len = 0;
            for part in [prefix, ".", what, suffix] {
                let bytes = part.as_bytes();
                self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
                self.len += bytes.len();
            }
            core::str::from_utf8(&self.buf[..self.len]).unwrap()
        }
    }
}

fn run(all_pairs: bool, spin_others: bool, rounds: u64, warmup: u64) -> Status {
    let cpus = smp::online().len();
    if cpus < 2 {
        report::error(
            "pingpong",
            format_args!("ipi-pingpong needs at least 2 CPUs, {cpus} online"),
        );
        return Status::Failed;
    }
    let pairs = |f: &mut dyn FnMut(u32, u32)| {
        for from in 0..if all_pairs { cpus } else { 1 } {
            for to in (0..cpus).filter(|&to| to != from) {
                f(from, to);
            }
        }
    };
    let mut npairs = 0u64;
    pairs(&mut |_, _| npairs += 1);
    if npairs * rounds > MAX_SAMPLES as u64 {
        report::error(
            "pingpong",
            format_args!(
                "{npairs} pairs x {rounds} rounds exceeds the {MAX_SAMPLES}-sample buffer; lower rounds="
            ),
        );
        return Status::Failed;
    }
    ROUNDS.store(rounds, Ordering::Relaxed);
    WARMUP.store(warmup, Ordering::Relaxed);
    LOST.store(false, Ordering::Relaxed);
    ipi::set_handler(IpiKind::Other, on_ipi);
    let mut offset = 0u64;
    let mut status = Status::Ok;
    pairs(&mut |from, to| {
        if status == Status::Failed {
            return;
        }
        FROM.store(from, Ordering::Relaxed);
        TO.store(to, Ordering::Relaxed);
        let me = arch::cpu_id();
        let spinners = if spin_others {
            smp::online().without(me).without(from).without(to)
        } else {
            CpuSet::EMPTY
        };
        SPIN_STOP.store(false, Ordering::Release);
        for cpu in spinners.iter() {
            smp::post(cpu, spin, 0);
        }
        if from == me {
            measure(offset);
        } else {
            smp::run_on(from, measure, offset);
        }
        SPIN_STOP.store(true, Ordering::Release);
        for cpu in spinners.iter() {
            smp::wait(cpu);
        }
        if LOST.load(Ordering::Relaxed) {
            report::error(
                "pingpong",
                format_args!("cpu {to} did not answer cpu {from}'s ping within 1 s"),
            );
            status = Status::Failed;
            return;
        }
        // SAFETY: the pair's initiator is done (measure returned here, or
        // run_on returned); CPU 0 is the only user of the buffer now.
        let slice =
            unsafe { &mut (&mut *SAMPLES.0.get())[offset as usize..(offset + rounds) as usize] };
        let summary = summarize(slice).expect("rounds >= 1");
        println!(
            "pingpong: cpu {from} -> {to}: median {} cycles ({} ns), p99 {}, max {}",
            summary.median,
            tsc::cycles_to_ns(summary.median),
            summary.p99,
            summary.max
        );
        report_summary("pingpong.rtt", &summary, Scope::Pair { from, to });
        offset += rounds;
    });
    ipi::clear_handler(IpiKind::Other);
    if status == Status::Ok {
        // SAFETY: as above, every pair is done.
        let all = unsafe { &mut (&mut *SAMPLES.0.get())[..offset as usize] };
        let summary = summarize(all).expect("at least one pair");
        report_summary("pingpong.rtt", &summary, Scope::Global);
        report::metric("pingpong.pairs", npairs, "count", Scope::Global);
        report::metric("pingpong.rounds", rounds, "count", Scope::Global);
    }
    status
}
