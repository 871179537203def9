//! A lab figure per repetition, and what the table says of it: its median
//! (the lab column) and its range over the repetitions (the spread column).

use crate::results::stats;

/// A figure per repetition; `f64::INFINITY` stands for a ratio over 0.
#[derive(Clone, Debug, PartialEq)]
pub struct Measured {
    pub per_rep: Vec<f64>,
}

impl Measured {
    /// The median over the repetitions: [`stats::median`], the matrix's
    /// own. An even count with an infinite middle value gives an infinite
    /// median there too (the mean of a finite and an infinite value), and
    /// the figures here are never negative, so no -∞ meets an ∞.
    pub fn median(&self) -> Option<f64> {
        stats::median(&self.per_rep)
    }

    pub fn min(&self) -> Option<f64> {
        stats::range(&self.per_rep).map(|(lo, _)| lo)
    }

    pub fn max(&self) -> Option<f64> {
        stats::range(&self.per_rep).map(|(_, hi)| hi)
    }

    /// The spread column's text, `min..max over N reps`, each value
    /// written by `fmt`; when every rep gave the same value (always, under
    /// tcg-icount, which repeats a run bit for bit, and for exact counts),
    /// it says so: that is one sample repeated, not a spread.
    pub fn range_over_reps(&self, fmt: impl Fn(f64) -> String) -> String {
        let n = self.per_rep.len();
        match stats::range(&self.per_rep) {
            Some((lo, hi)) if n > 1 && lo == hi => {
                format!(
                    "{} in each of {n} reps: one sample, repeated exactly",
                    fmt(lo)
                )
            }
            Some((lo, hi)) => format!(
                "{}..{} over {n} rep{}",
                fmt(lo),
                fmt(hi),
                if n == 1 { "" } else { "s" }
            ),
            None => "no runs".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reproduce::format::three_digits;

    #[test]
    fn medians_and_ranges() {
        let m = Measured {
            per_rep: vec![3.0, 1.0, 2.0],
        };
        assert_eq!(m.median(), Some(2.0));
        assert_eq!(m.range_over_reps(three_digits), "1.00..3.00 over 3 reps");
        let inf = Measured {
            per_rep: vec![f64::INFINITY, 5.0],
        };
        assert_eq!(inf.median(), Some(f64::INFINITY));
        assert_eq!(inf.range_over_reps(three_digits), "5.00..∞ over 2 reps");
        let same = Measured {
            per_rep: vec![7.0; 3],
        };
        assert_eq!(
            same.range_over_reps(three_digits),
            "7.00 in each of 3 reps: one sample, repeated exactly"
        );
        let none = Measured { per_rep: vec![] };
        assert_eq!(none.median(), None);
        assert_eq!(none.range_over_reps(three_digits), "no runs");
    }
}
