//! Chaos mode's choices (`chaos=<seed>` on the kernel command line): at
//! each annotated point of a shootdown protocol, whether this CPU stops
//! for a while, and for how long.
//!
//! Why delays find bugs: a race whose window is a few instructions wide is
//! almost never hit by chance, and under `-icount` (tcg-icount) QEMU runs
//! the vCPUs one at a time, so the other CPUs never run inside it at all.
//! A delay made of PAUSEs both widens the window and, under icount, hands
//! the turn to the other vCPUs in the middle of it (QEMU ends a vCPU's
//! turn at PAUSE). The kernel's side (the points and the spinning) is
//! `kernel/src/arch/chaos.rs`; this is the pure part, tested on the host.
//!
//! Reproducible from the seed: a CPU's n-th decision is a function of
//! (seed, CPU, n) and nothing else (a counter-based generator, so the
//! kernel keeps one counter per CPU and an interrupt handler that draws in
//! the middle of another draw takes the next n, never a torn state). Under
//! tcg-icount, where the guest's execution is itself a function of its
//! input, the same seed gives the same run bit for bit.

use crate::workloads::SplitMix64;

/// One point in [`DELAY_ONE_IN`] delays.
pub const DELAY_ONE_IN: u64 = 8;

/// The longest delay, in spin iterations (PAUSEs): a few thousand, long
/// enough for another vCPU to take many turns, short enough that a run
/// with delays at every protocol step still finishes in its usual time.
pub const MAX_SPINS: u32 = 4096;

/// The seed that means "chaos off".
pub const OFF: u64 = 0;

/// SplitMix64's increment (its state advances by this per output).
const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// The key of CPU `cpu`'s stream under `seed`: the seed mixed with the CPU
/// id, so CPUs do not delay in lockstep.
pub fn stream(seed: u64, cpu: u32) -> u64 {
    SplitMix64::new(seed ^ u64::from(cpu).wrapping_mul(GAMMA)).next_u64()
}

/// The `n`-th random word (from 0) of the stream `key`: the `n`-th output
/// of [`SplitMix64`] seeded with `key`, reached directly (its state after
/// `n` outputs is `key + n * GAMMA`), so a CPU keeps a counter, not a
/// generator.
pub fn draw(key: u64, n: u64) -> u64 {
    SplitMix64::new(key.wrapping_add(n.wrapping_mul(GAMMA))).next_u64()
}

/// The delay a random word `r` asks for: `None` (most of the time), or
/// 1..=[`MAX_SPINS`] spins with probability 1/[`DELAY_ONE_IN`]. The low
/// bits decide whether, the high bits how long, so the two are independent.
pub const fn delay(r: u64) -> Option<u32> {
    if !r.is_multiple_of(DELAY_ONE_IN) {
        return None;
    }
    Some(1 + ((r >> 32) % MAX_SPINS as u64) as u32)
}

/// The delay of CPU `cpu`'s `n`-th decision under `seed` (`seed` not
/// [`OFF`]).
pub fn decide(seed: u64, cpu: u32, n: u64) -> Option<u32> {
    delay(draw(stream(seed, cpu), n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_decisions() {
        let a: Vec<_> = (0..1000).map(|n| decide(7, 1, n)).collect();
        let b: Vec<_> = (0..1000).map(|n| decide(7, 1, n)).collect();
        assert_eq!(a, b);
    }

    #[test]
    fn seeds_and_cpus_give_different_streams() {
        let run = |seed, cpu| (0..1000).map(|n| decide(seed, cpu, n)).collect::<Vec<_>>();
        assert_ne!(run(7, 1), run(8, 1), "seed ignored");
        assert_ne!(run(7, 1), run(7, 2), "CPU id ignored");
        assert_ne!(stream(7, 0), stream(7, 1));
    }

    #[test]
    fn delays_stay_in_bounds() {
        for n in 0..100_000 {
            if let Some(spins) = decide(42, 3, n) {
                assert!((1..=MAX_SPINS).contains(&spins), "{spins} spins");
            }
        }
        assert_eq!(delay(0), Some(1), "shortest delay is one spin, never zero");
        assert_eq!(delay((MAX_SPINS as u64 - 1) << 32), Some(MAX_SPINS));
        assert_eq!(delay(1), None);
    }

    #[test]
    fn about_one_point_in_eight_delays_and_lengths_spread() {
        let draws = 80_000u64;
        let spins: Vec<u32> = (0..draws).filter_map(|n| decide(1, 0, n)).collect();
        let expected = draws / DELAY_ONE_IN;
        // Binomial(80000, 1/8): sd ~ 94; 5 sd either side.
        assert!(
            spins.len().abs_diff(expected as usize) < 470,
            "{} delays of {draws} draws, expected about {expected}",
            spins.len()
        );
        // Uniform over 1..=MAX_SPINS: the mean near the middle, and both
        // the short and the long quarter taken.
        let mean = spins.iter().map(|&s| s as u64).sum::<u64>() / spins.len() as u64;
        let mid = MAX_SPINS as u64 / 2;
        assert!(mean.abs_diff(mid) < mid / 10, "mean {mean}");
        assert!(spins.iter().any(|&s| s <= MAX_SPINS / 4));
        assert!(spins.iter().any(|&s| s > MAX_SPINS / 4 * 3));
    }

    #[test]
    fn a_draw_is_the_generators_nth_output() {
        let key = stream(7, 3);
        let mut g = SplitMix64::new(key);
        for n in 0..100 {
            assert_eq!(draw(key, n), g.next_u64(), "draw {n}");
        }
    }
}
