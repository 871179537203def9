//! Small statistics over repetitions: median, range, and a seeded bootstrap
//! of the difference of two medians.
//!
//! Hand-written rather than pulled from a statistics crate: the whole need
//! is these three functions, and the bootstrap must be bit-for-bit
//! repeatable across machines and crate versions (a CI gate that flips on
//! a re-run is worse than none), which a fixed SplitMix64 stream gives.

// The bootstrap's random stream is lab-core's SplitMix64 (Steele, Lea,
// Flood 2014), the generator buildkernel draws its sources from too.
use lab_core::workloads::SplitMix64;

/// The median of `values` (mean of the two middle values for an even
/// count); `None` when empty. NaNs sort last.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// (min, max) of `values`; `None` when empty.
pub fn range(values: &[f64]) -> Option<(f64, f64)> {
    let min = values.iter().copied().min_by(f64::total_cmp)?;
    let max = values.iter().copied().max_by(f64::total_cmp)?;
    Some((min, max))
}

/// A uniform index below `n` (n > 0). The modulo bias is below 2^-40 for
/// the sample sizes used here, far under the bootstrap's own noise.
fn index_below(rng: &mut SplitMix64, n: usize) -> usize {
    rng.below(n as u64) as usize
}

/// A percentile bootstrap interval for `median(new) - median(old)`:
/// `resamples` times, resample each side with replacement and take the
/// difference of medians; return the `(1-confidence)/2` and
/// `(1+confidence)/2` quantiles of those differences. Deterministic for a
/// given `seed`. `None` when either side is empty.
pub fn bootstrap_median_diff(
    old: &[f64],
    new: &[f64],
    resamples: usize,
    confidence: f64,
    seed: u64,
) -> Option<(f64, f64)> {
    if old.is_empty() || new.is_empty() || resamples == 0 {
        return None;
    }
    let mut rng = SplitMix64::new(seed);
    let mut scratch_old = vec![0.0; old.len()];
    let mut scratch_new = vec![0.0; new.len()];
    let mut diffs = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        for x in scratch_old.iter_mut() {
            *x = old[index_below(&mut rng, old.len())];
        }
        for x in scratch_new.iter_mut() {
            *x = new[index_below(&mut rng, new.len())];
        }
        diffs.push(median(&scratch_new)? - median(&scratch_old)?);
    }
    diffs.sort_by(f64::total_cmp);
    let at = |q: f64| diffs[((q * (resamples - 1) as f64).round() as usize).min(resamples - 1)];
    let tail = (1.0 - confidence) / 2.0;
    Some((at(tail), at(1.0 - tail)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_range() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(range(&[4.0, 1.0, 2.0]), Some((1.0, 4.0)));
        assert_eq!(range(&[]), None);
    }

    #[test]
    fn bootstrap_is_deterministic_and_sensible() {
        let old = [100.0, 102.0, 98.0, 101.0, 99.0];
        let shifted = [120.0, 119.0, 122.0, 121.0, 118.0];
        let a = bootstrap_median_diff(&old, &shifted, 2000, 0.95, 42).unwrap();
        let b = bootstrap_median_diff(&old, &shifted, 2000, 0.95, 42).unwrap();
        assert_eq!(a, b, "same seed, same interval");
        assert!(a.0 > 0.0 && a.1 < 25.0, "{a:?} should exclude zero");
        let same = bootstrap_median_diff(&old, &old, 2000, 0.95, 42).unwrap();
        assert!(
            same.0 <= 0.0 && same.1 >= 0.0,
            "{same:?} should include zero"
        );
        assert_eq!(bootstrap_median_diff(&[], &old, 10, 0.95, 1), None);
    }
}
