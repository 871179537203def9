//! Distributions of measured values with bounded memory: a reservoir sample
//! (Vitter's algorithm R) that keeps a uniform random sample of everything
//! recorded, plus exact count and maximum; `summary` gives its percentiles.
//! Used for shootdown acknowledgement waits, whose median and p99 are
//! reported at the end of a run.

/// A uniform sample of at most `N` of the values recorded so far.
pub struct Reservoir<const N: usize> {
    samples: [u64; N],
    seen: u64,
    max: u64,
    rng: u64,
}

impl<const N: usize> Reservoir<N> {
    /// An empty reservoir; `seed` (non-zero) drives the replacement choice.
    pub const fn new(seed: u64) -> Self {
        Reservoir {
            samples: [0; N],
            seen: 0,
            max: 0,
            rng: if seed == 0 {
                0x9e37_79b9_7f4a_7c15
            } else {
                seed
            },
        }
    }

    /// xorshift64: fast, and good enough to choose which sample to replace.
    fn next_random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    /// Records one value.
    pub fn record(&mut self, value: u64) {
        if (self.seen as usize) < N {
            self.samples[self.seen as usize] = value;
        } else {
            let j = self.next_random() % (self.seen + 1);
            if (j as usize) < N {
                self.samples[j as usize] = value;
            }
        }
        self.seen += 1;
        self.max = self.max.max(value);
    }

    /// The kept sample (all values while fewer than `N` were recorded).
    pub fn samples(&self) -> &[u64] {
        &self.samples[..(self.seen as usize).min(N)]
    }

    /// How many values were recorded.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// The largest value recorded (exact, not sampled).
    pub fn max(&self) -> u64 {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_everything_until_full() {
        let mut r = Reservoir::<4>::new(1);
        for v in [5, 3, 9] {
            r.record(v);
        }
        assert_eq!(r.samples(), &[5, 3, 9]);
        assert_eq!((r.seen(), r.max()), (3, 9));
    }

    #[test]
    fn stays_bounded_and_roughly_uniform() {
        let mut r = Reservoir::<100>::new(42);
        for v in 0..10_000u64 {
            r.record(v);
        }
        assert_eq!(r.samples().len(), 100);
        assert_eq!((r.seen(), r.max()), (10_000, 9_999));
        // A uniform sample of 0..10000 has its mean near 5000.
        let mean = r.samples().iter().sum::<u64>() / 100;
        assert!((3_500..6_500).contains(&mean), "mean {mean}");
    }
}
