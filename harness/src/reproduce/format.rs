//! How the reproduction tables write a figure. These differ from
//! `results::summary::fmt_num` (which writes `0`, `inf` and up to four
//! digits for the matrix's summaries) on purpose: a table cell beside a
//! published figure wants about three significant digits, `∞` for a ratio
//! over 0, and the same number of decimals for every ratio of a column.

/// About three significant digits: whole from 100, one decimal from 10,
/// two below; `∞` for an infinite value (a ratio over 0).
pub fn three_digits(v: f64) -> String {
    if v.is_infinite() {
        "∞".into()
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A ratio with three decimals (`0.944`, as D32569's review gives its
/// ratio), `∞` over 0.
pub fn three_decimals(v: f64) -> String {
    if v.is_infinite() {
        "∞".into()
    } else {
        format!("{v:.3}")
    }
}

/// A share (0.875) as a percentage with one decimal (`87.5 %`).
pub fn percent(v: f64) -> String {
    format!("{:.1} %", v * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_digits_by_magnitude() {
        assert_eq!(three_digits(1824.4), "1824");
        assert_eq!(three_digits(90.04), "90.0");
        assert_eq!(three_digits(3.0), "3.00");
        assert_eq!(three_digits(f64::INFINITY), "∞");
    }

    #[test]
    fn ratios_and_shares() {
        assert_eq!(three_decimals(0.94412), "0.944");
        assert_eq!(three_decimals(f64::INFINITY), "∞");
        assert_eq!(percent(0.875), "87.5 %");
    }
}
