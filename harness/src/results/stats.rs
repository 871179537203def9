//! Small statistics over repetitions: median, range, a one-sided Welch
//! t-test, and the Holm and Benjamini-Hochberg corrections for many
//! comparisons. (A percentile bootstrap of the median difference used to
//! be here: with the 2-3 repetitions a matrix has, its interval is the
//! min..max of the data, so the gate no longer uses one.)
//!
//! Hand-written rather than pulled from a statistics crate: the whole need
//! is these few functions, and they must give the same answer on every
//! machine and crate version (a CI gate that flips on a re-run is worse
//! than none).

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

/// (median, min, max) of `values`: a figure over its repetitions as the
/// charts draw it (a mark at the median, a whisker from min to max);
/// `None` when empty.
pub fn median_min_max(values: &[f64]) -> Option<(f64, f64, f64)> {
    let (lo, hi) = range(values)?;
    Some((median(values)?, lo, hi))
}

/// One-sided Welch t-test that the mean of `new` exceeds the mean of
/// `old` by more than `margin`: the p-value of H0 `mean(new) - mean(old)
/// <= margin`. `None` with fewer than 2 values on a side. When both sides
/// have no spread the answer is exact: 0 if the difference exceeds the
/// margin, else 1.
pub fn welch_greater_p(old: &[f64], new: &[f64], margin: f64) -> Option<f64> {
    if old.len() < 2 || new.len() < 2 {
        return None;
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let var =
        |v: &[f64], m: f64| v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64;
    let (mo, mn) = (mean(old), mean(new));
    let (so, sn) = (
        var(old, mo) / old.len() as f64,
        var(new, mn) / new.len() as f64,
    );
    let diff = mn - mo - margin;
    let se2 = so + sn;
    if se2 == 0.0 {
        return Some(if diff > 0.0 { 0.0 } else { 1.0 });
    }
    let t = diff / se2.sqrt();
    let df = se2 * se2 / (so * so / (old.len() - 1) as f64 + sn * sn / (new.len() - 1) as f64);
    Some(student_t_sf(t, df))
}

/// P(T > t) for Student's t with `df` degrees of freedom.
pub fn student_t_sf(t: f64, df: f64) -> f64 {
    let tail = 0.5 * inc_beta(df / 2.0, 0.5, df / (df + t * t));
    if t >= 0.0 {
        tail
    } else {
        1.0 - tail
    }
}

/// The regularized incomplete beta function I_x(a, b) (Numerical
/// Recipes' continued fraction, Lentz's method).
fn inc_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    if x < (a + 1.0) / (a + b + 2.0) {
        ln_front.exp() * beta_cf(a, b, x) / a
    } else {
        1.0 - ln_front.exp() * beta_cf(b, a, 1.0 - x) / b
    }
}

fn beta_cf(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..300 {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        d = if d.abs() < TINY { TINY } else { d };
        c = 1.0 + aa / c;
        c = if c.abs() < TINY { TINY } else { c };
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        d = if d.abs() < TINY { TINY } else { d };
        c = 1.0 + aa / c;
        c = if c.abs() < TINY { TINY } else { c };
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < 1e-14 {
            break;
        }
    }
    h
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9).
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = G[0];
    let t = x + 7.5;
    for (i, g) in G.iter().enumerate().skip(1) {
        a += g / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Holm's step-down correction (controls the family-wise error rate):
/// which of `p` are rejected at level `alpha` over all `p.len()` tests.
/// Sorted ascending, the i-th smallest (0-based) is rejected while
/// `p <= alpha / (m - i)`; the first that is not stops the rejections.
pub fn holm(p: &[f64], alpha: f64) -> Vec<bool> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut reject = vec![false; m];
    for (i, &k) in order.iter().enumerate() {
        if p[k] <= alpha / (m - i) as f64 {
            reject[k] = true;
        } else {
            break;
        }
    }
    reject
}

/// Benjamini-Hochberg (controls the false discovery rate): rejects the k
/// smallest p-values, k the largest rank with `p_(k) <= k / m * alpha`.
pub fn benjamini_hochberg(p: &[f64], alpha: f64) -> Vec<bool> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let k = (0..m)
        .rev()
        .find(|&i| p[order[i]] <= (i + 1) as f64 / m as f64 * alpha)
        .map_or(0, |i| i + 1);
    let mut reject = vec![false; m];
    for &i in &order[..k] {
        reject[i] = true;
    }
    reject
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_distribution_and_welch() {
        // Tables: P(T > 2.015) = 0.05 at 5 df; P(T > 1.96) -> 0.025 as df grows.
        assert!((student_t_sf(2.015, 5.0) - 0.05).abs() < 1e-3);
        assert!((student_t_sf(1.96, 1e6) - 0.025).abs() < 1e-3);
        assert!((student_t_sf(0.0, 3.0) - 0.5).abs() < 1e-12);
        assert!((student_t_sf(-2.015, 5.0) - 0.95).abs() < 1e-3);
        let old = [100.0, 102.0, 98.0, 101.0, 99.0];
        let worse = [120.0, 119.0, 122.0, 121.0, 118.0];
        assert!(welch_greater_p(&old, &worse, 0.0).unwrap() < 1e-6);
        // 20 more, but the margin is 25: not significant.
        assert!(welch_greater_p(&old, &worse, 25.0).unwrap() > 0.9);
        assert!(welch_greater_p(&old, &old, 0.0).unwrap() >= 0.5);
        assert_eq!(welch_greater_p(&[1.0], &worse, 0.0), None);
        // No spread at all: exact.
        assert_eq!(welch_greater_p(&[1.0, 1.0], &[2.0, 2.0], 0.5), Some(0.0));
        assert_eq!(welch_greater_p(&[1.0, 1.0], &[2.0, 2.0], 1.5), Some(1.0));
    }

    #[test]
    fn holm_and_bh() {
        let p = [0.01, 0.04, 0.03, 0.005];
        // Holm at 0.05: 0.005 <= 0.0125 yes, 0.01 <= 0.0167 yes,
        // 0.03 <= 0.025 no: stop.
        assert_eq!(holm(&p, 0.05), vec![true, false, false, true]);
        // BH: 0.04 <= 4/4*0.05: all four.
        assert_eq!(benjamini_hochberg(&p, 0.05), vec![true; 4]);
        assert_eq!(holm(&[], 0.05), Vec::<bool>::new());
        assert_eq!(benjamini_hochberg(&[0.5, 0.9], 0.05), vec![false, false]);
    }

    #[test]
    fn median_and_range() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(range(&[4.0, 1.0, 2.0]), Some((1.0, 4.0)));
        assert_eq!(range(&[]), None);
    }
}
