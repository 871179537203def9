//! The workloads that run as user programs, and their parameters.
//!
//! A run's command line names a workload (`workload=forkexit loops=1000`);
//! for the ones in [`USER_WORKLOADS`] the kernel validates the line against
//! the workload's [`ParamSpec`]s (`crate::cmdline`), execs its program, and
//! answers the program's `getparam` calls (`crate::syscall::Sys::Getparam`)
//! with the command-line value or the default declared here. Declaring the
//! parameters once, here, keeps the kernel's validation and the programs'
//! defaults from drifting apart.
//!
//! Also here, because both the program and the host tests need them: the
//! deterministic "source tree" that `buildkernel` compiles.

use crate::cmdline::{Kind, ParamSpec};

/// A workload implemented by a user program.
#[derive(Clone, Copy, Debug)]
pub struct UserWorkload {
    /// The `workload=` name.
    pub name: &'static str,
    /// The embedded program the kernel execs (with `argv = [program]`).
    pub program: &'static str,
    pub help: &'static str,
    pub params: &'static [ParamSpec],
}

const fn u64p(
    key: &'static str,
    min: u64,
    max: u64,
    default: &'static str,
    help: &'static str,
) -> ParamSpec {
    ParamSpec {
        key,
        kind: Kind::U64 { min, max },
        default,
        help,
    }
}

const fn flag(key: &'static str, default: &'static str, help: &'static str) -> ParamSpec {
    ParamSpec {
        key,
        kind: Kind::Bool,
        default,
        help,
    }
}

pub const FORKEXIT: UserWorkload = UserWorkload {
    name: "forkexit",
    program: "forkexit",
    help: "fork; the child writes its stack and data (copy-on-write), touches the shared page (or not) and exits; the parent waits (FreeBSD D32569's loop)",
    params: &[
        u64p("instances", 1, 64, "1", "concurrent fork loops, each its own process"),
        u64p("loops", 1, 100_000_000, "1000", "fork-exit cycles per instance (unless duration_ms)"),
        u64p("duration_ms", 0, 3_600_000, "0", "run each instance this long instead of counting loops (0: count)"),
        flag("touch", "on", "the child reads the shared page before exiting"),
        flag("pin", "off", "pin instance i (and so its children) to CPU i mod ncpus"),
        u64p("entries", 0, 1024, "0", "extra map entries of each instance: one-page mappings, touched, made before the loop (D32569's parent had 60)"),
    ],
};

pub const BUILDKERNEL: UserWorkload = UserWorkload {
    name: "buildkernel",
    program: "buildkernel",
    help: "make -jN over a seeded source list: fork+exec cc jobs, then a threaded link step on every CPU",
    params: &[
        u64p("jobs", 1, 100_000, "64", "cc jobs (one per source)"),
        u64p("j", 0, 256, "0", "most jobs at once (0: the number of CPUs)"),
        u64p("seed", 0, u64::MAX, "1", "seed of the source list (sizes)"),
        u64p("link_regions", 0, 100_000, "32", "regions each link thread maps, touches and unmaps"),
        u64p("clock_pct", 0, 100, "80", "percent of jobs that read the clock (touch the shared page; the others' exits return early from pmap_remove)"),
    ],
};

pub const MMAP_STORM: UserWorkload = UserWorkload {
    name: "mmap-storm",
    program: "mmap-storm",
    help:
        "threads on every CPU mmap, touch and munmap private regions (will-it-scale mmap1, threads)",
    params: &[
        u64p("threads", 0, 64, "0", "threads (0: one per CPU)"),
        u64p("pages", 1, 4096, "4", "pages per region"),
        u64p(
            "ops",
            1,
            100_000_000,
            "100",
            "mmap+touch+munmap cycles per thread (unless duration_ms)",
        ),
        u64p(
            "duration_ms",
            0,
            3_600_000,
            "0",
            "run this long instead of counting ops (0: count)",
        ),
        flag("pin", "on", "pin thread i to CPU i mod ncpus"),
    ],
};

/// `coherence`'s `mode` choices: `all`, then the oracle's modes in the
/// order `all` runs them (kernel/user/src/bin/coherence.rs).
pub const COHERENCE_MODE_CHOICES: &[&str] = &[
    "all",
    "remap",
    "crossfire",
    "munmap",
    "range",
    "tlb",
    "mprotect",
    "mprotect-range",
    "cow",
    "fork-protect",
];

/// The oracle modes `mode=all` runs.
pub const COHERENCE_MODES: &[&str] = COHERENCE_MODE_CHOICES.split_at(1).1;

pub const COHERENCE: UserWorkload = UserWorkload {
    name: "coherence",
    program: "coherence",
    help: "stale-TLB oracle: readers on other CPUs read a page while its mapping is replaced, removed or write-protected",
    params: &[
        ParamSpec {
            key: "mode",
            kind: Kind::Choice(COHERENCE_MODE_CHOICES),
            default: "all",
            help: "which shootdown path to check (all: every mode in turn)",
        },
        u64p("remaps", 1, 100_000_000, "40", "mapping replacements in remap mode"),
        // Crossfire's own count, per page and thread: every CPU makes
        // replacements at once, each a shootdown to every other CPU, so
        // crossfire dominates mode=all (at 50 per page and thread on 4
        // CPUs under plain TCG, 6.2 s of the fixed kernel's 12 s). The
        // mutation runs raise it (harness/src/mutants.rs).
        u64p("cross_remaps", 1, 100_000_000, "10", "crossfire mode: replacements per page and thread"),
        u64p("rounds", 1, 100_000, "8", "child processes per round mode (each makes one change)"),
        u64p("readers", 0, 63, "0", "reader threads (0: one per other CPU, at least 1)"),
        ParamSpec {
            key: "lazy",
            kind: Kind::Bool,
            default: "off",
            help: "the kernel's munmap is lazy (LATR): after it returns, a read of the old value is \
                   allowed until the reader's CPU applies it, anything else is stale",
        },
        flag(
            "chase",
            "off",
            "remap mode's readers queue behind the writer's mmap on the process's VM lock and \
             read the page the moment it returns (see coherence.rs, chase_reader)",
        ),
    ],
};

pub const USERTEST: UserWorkload = UserWorkload {
    name: "usertest",
    program: "usertest",
    help: "in-guest tests of processes: fork/COW, exec argv, wait status, threads, mmap/munmap/mprotect, faults, bad syscalls",
    params: &[],
};

pub const BOMBS: UserWorkload = UserWorkload {
    name: "bombs",
    program: "bombs",
    help: "directed tests of the kernel's limits: thread, fork, region, frame and heap bombs; waitpid with its status page unmapped; joining a negative exit value",
    params: &[
        ParamSpec {
            key: "mode",
            kind: Kind::Choice(&[
                "thread-bomb",
                "fork-bomb",
                "region-bomb",
                "frame-exhaust",
                "heap-exhaust",
                "waitpid-efault",
                "join-neg",
            ]),
            default: "thread-bomb",
            help: "which limit or failure to provoke",
        },
        u64p("levels", 1, 1000, "30", "heap-exhaust: processes in the chain, each with 255 unjoined dead threads"),
    ],
};

pub const FUZZ: UserWorkload = UserWorkload {
    name: "fuzz",
    program: "fuzz",
    help: "seeded random system calls with hostile arguments from one thread per CPU, in batches of child processes: results by errno, kills by reason",
    params: &[
        u64p("seed", 0, u64::MAX, "1", "the generator's seed"),
        u64p("calls", 1, 100_000_000, "20000", "calls over all batches and threads (unless duration_ms)"),
        u64p("duration_ms", 0, 3_600_000, "0", "run this long instead of counting calls (0: count)"),
        u64p("batches", 1, 1000, "4", "child processes, one after the other"),
    ],
};

pub const BUSY_TARGET: UserWorkload = UserWorkload {
    name: "busy-target",
    program: "busy-target",
    help: "shootdowns of a pmap whose other CPU spins in user mode, then in a busy_us syscall: ack medians and their ratio",
    params: &[
        u64p("busy_us", 0, 1_000_000, "2000", "length of each busy syscall the target CPU makes in the kernel phase"),
        u64p("rounds", 1, 1000, "20", "shootdowns measured per phase"),
    ],
};

pub const EXEC_RACE: UserWorkload = UserWorkload {
    name: "exec-race",
    program: "exec-race",
    help:
        "stress: a child execs while its freshly made threads exit on other CPUs, round after round",
    params: &[
        u64p(
            "rounds",
            1,
            1_000_000,
            "1000",
            "children, each racing its threads' exits with an exec",
        ),
        u64p(
            "threads",
            0,
            16,
            "3",
            "threads each child starts, which exit at once",
        ),
    ],
};

/// Every workload that is a user program.
pub const USER_WORKLOADS: &[UserWorkload] = &[
    FORKEXIT,
    BUILDKERNEL,
    MMAP_STORM,
    COHERENCE,
    USERTEST,
    BOMBS,
    FUZZ,
    BUSY_TARGET,
];

/// The user workload named `name`.
pub fn user_workload(name: &str) -> Option<&'static UserWorkload> {
    USER_WORKLOADS.iter().find(|w| w.name == name)
}

// ---- buildkernel's source tree ---------------------------------------------

/// SplitMix64: a small, well-known generator, good enough to draw sizes, and
/// trivially the same on the host and in the guest (hand-written: `rand`
/// does not fit a no_std user program this small).
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub const fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`; the tiny modulo bias does not matter
    /// here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Smallest and largest "source file" buildkernel compiles.
pub const SOURCE_MIN_BYTES: u64 = 4 * 1024;
pub const SOURCE_MAX_BYTES: u64 = 512 * 1024;

/// The size of source `index` of the tree drawn from `seed`: log-uniform in
/// `SOURCE_MIN_BYTES..=SOURCE_MAX_BYTES` (many small files, a few big ones,
/// like a kernel tree), a multiple of 64 bytes. Depends only on (seed,
/// index), so a job list can be regenerated in any order.
pub fn source_size(seed: u64, index: u64) -> u64 {
    let mut rng = SplitMix64::new(seed ^ index.wrapping_mul(0xd6e8_feb8_6659_fd93));
    rng.next_u64();
    // 2^(12 + u * 7) with u uniform in [0, 1), in 1/1024 steps of the
    // exponent, by integer arithmetic only (the guest is soft-float).
    let steps = (SOURCE_MAX_BYTES / SOURCE_MIN_BYTES).trailing_zeros() as u64 * 1024;
    let e = rng.below(steps + 1);
    let whole = SOURCE_MIN_BYTES << (e / 1024);
    // 2^(f/1024) ~= 1 + f * ln2 / 1024 (linear between powers of two:
    // accurate to 6 %, fine for "varied sizes").
    let frac = e % 1024;
    let size = whole + whole * frac * 710 / (1024 * 1024);
    (size / 64 * 64).clamp(SOURCE_MIN_BYTES, SOURCE_MAX_BYTES)
}

/// Whether job `index` of the tree drawn from `seed` reads the clock, with
/// `pct` percent of jobs doing so (drawn independently of its size).
///
/// Reading the clock reads the shared page (`SHARED_PAGE_VA`, where the
/// kernel publishes the TSC parameters), which faults its translation in;
/// the page is unmanaged, so `pmap_remove_pages` at exit leaves it
/// resident and every `pmap_remove` of the exit's teardown has work to do.
/// A job that never reads it leaves nothing resident after
/// `pmap_remove_pages`, so all its exit `pmap_remove` calls return early
/// (FreeBSD D32569, seed 004: "some applications do not fault in a mapping
/// of the shared page"; 15-20 % of the exit calls of a buildkernel ended
/// early there). So `pct` decides buildkernel's share of early exit
/// returns: about `(100 - pct) %` of the jobs' exit calls.
pub fn job_reads_clock(seed: u64, index: u64, pct: u64) -> bool {
    let mut rng = SplitMix64::new(seed ^ index.wrapping_mul(0x9fb2_1c65_1e98_df25) ^ 0xc10c);
    rng.below(100) < pct
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmdline::Params;

    #[test]
    fn specs_are_valid_and_unique() {
        for (i, w) in USER_WORKLOADS.iter().enumerate() {
            assert!(USER_WORKLOADS[..i].iter().all(|o| o.name != w.name));
            for (j, p) in w.params.iter().enumerate() {
                assert!(w.params[..j].iter().all(|o| o.key != p.key), "{}", p.key);
            }
            // The defaults alone make a valid command line.
            let line = std::format!("workload={}", w.name);
            let spec: &'static [ParamSpec] = w.params;
            let params = Params::parse(&line, spec).unwrap();
            for p in w.params {
                assert_eq!(params.raw(p.key), p.default);
            }
            // And each default is valid for its key when given explicitly.
            for p in w.params {
                let line = std::format!("workload={} {}={}", w.name, p.key, p.default);
                assert!(Params::parse(&line, spec).is_ok(), "{} {}", w.name, p.key);
            }
        }
        assert_eq!(user_workload("coherence").unwrap().program, "coherence");
        assert!(user_workload("hello").is_none());
    }

    #[test]
    fn source_sizes_are_deterministic_varied_and_in_range() {
        let sizes: std::vec::Vec<u64> = (0..1000).map(|i| source_size(7, i)).collect();
        assert_eq!(
            sizes,
            (0..1000)
                .map(|i| source_size(7, i))
                .collect::<std::vec::Vec<_>>()
        );
        assert!(sizes
            .iter()
            .all(|s| (SOURCE_MIN_BYTES..=SOURCE_MAX_BYTES).contains(s)));
        assert!(sizes.iter().all(|s| s % 64 == 0));
        let small = sizes.iter().filter(|s| **s < 32 * 1024).count();
        let big = sizes.iter().filter(|s| **s > 128 * 1024).count();
        // Log-uniform over 7 octaves: 3/7 below 32 KiB, 2/7 above 128 KiB.
        assert!((350..500).contains(&small), "{small}");
        assert!((200..370).contains(&big), "{big}");
        assert_ne!(source_size(1, 0), source_size(2, 0));
    }

    #[test]
    fn clock_reading_jobs_follow_the_percentage() {
        let count = |pct| (0..1000).filter(|i| job_reads_clock(3, *i, pct)).count();
        assert_eq!(count(0), 0);
        assert_eq!(count(100), 1000);
        assert!((750..850).contains(&count(80)), "{}", count(80));
        assert_eq!(
            (0..100)
                .map(|i| job_reads_clock(3, i, 50))
                .collect::<std::vec::Vec<_>>(),
            (0..100)
                .map(|i| job_reads_clock(3, i, 50))
                .collect::<std::vec::Vec<_>>()
        );
    }

    #[test]
    fn splitmix_matches_its_reference_output() {
        // First outputs for seed 0 from the reference implementation.
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(r.next_u64(), 0x6e78_9e6a_a1b9_65f4);
    }
}
