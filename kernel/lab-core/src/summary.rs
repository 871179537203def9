//! Order statistics of measured samples (latencies in TSC cycles): min,
//! median, 99th percentile and max, by the nearest-rank method, so every
//! figure reported is a sample that was actually measured.

/// The summary of a non-empty sample set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    pub count: usize,
    pub min: u64,
    pub median: u64,
    pub p99: u64,
    pub max: u64,
}

/// The `p`-th percentile (0 < p <= 100) of sorted `samples` by nearest rank:
/// the smallest sample with at least p % of the samples at or below it.
pub fn percentile(sorted: &[u64], p: u32) -> u64 {
    assert!(!sorted.is_empty() && p > 0 && p <= 100);
    let rank = (sorted.len() * p as usize).div_ceil(100);
    sorted[rank.max(1) - 1]
}

/// Sorts `samples` in place and summarises them; `None` when empty.
pub fn summarize(samples: &mut [u64]) -> Option<Summary> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    Some(Summary {
        count: samples.len(),
        min: samples[0],
        median: percentile(samples, 50),
        p99: percentile(samples, 99),
        max: samples[samples.len() - 1],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let mut s: Vec<u64> = (1..=100).rev().collect();
        let sum = summarize(&mut s).unwrap();
        assert_eq!((sum.min, sum.median, sum.p99, sum.max), (1, 50, 99, 100));
        let mut one = [7];
        let sum = summarize(&mut one).unwrap();
        assert_eq!((sum.min, sum.median, sum.p99, sum.max), (7, 7, 7, 7));
        let mut three = [30, 10, 20];
        assert_eq!(summarize(&mut three).unwrap().median, 20);
        assert_eq!(summarize(&mut []), None);
    }
}
