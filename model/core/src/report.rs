//! Metrics out: the model's figures as lab_core report `metric` lines.
//!
//! A [`Metric`] is a name (dotted, `[a-z0-9._-]`, without the
//! `model.<profile>.` prefix the writer adds), an integer value, a unit
//! (`count`, `cycles`, `ns`, or `addr` for a physical address), and a
//! scope: the whole machine (`cpu: None`) or one vCPU. The lines are the
//! same protocol the kernel writes on its serial port (lab_core::report),
//! so the harness parses both with one parser.

use lab_core::report::{write_metric, Scope};
use std::fmt;

/// One figure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metric {
    pub name: String,
    pub value: u64,
    pub unit: &'static str,
    pub cpu: Option<usize>,
}

/// Whether `name` is a valid metric name (`[a-z0-9._-]+`).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

/// Writes one metric line for `prefix` + `m.name`. Returns the number of
/// lines written (1). Panics (a bug in the model) on an invalid name.
pub fn write(w: &mut (impl fmt::Write + ?Sized), prefix: &str, m: &Metric) -> fmt::Result {
    let name = format!("{prefix}{}", m.name);
    assert!(valid_name(&name), "invalid metric name '{name}'");
    let scope = match m.cpu {
        Some(c) => Scope::Cpu(c as u32),
        None => Scope::Global,
    };
    write_metric(w, &name, m.value, m.unit, scope)
}

/// Writes every metric of `metrics` with `prefix`.
pub fn write_all(
    w: &mut (impl fmt::Write + ?Sized),
    prefix: &str,
    metrics: &[Metric],
) -> fmt::Result {
    metrics.iter().try_for_each(|m| write(w, prefix, m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lab_core::report::{parse_line, Record};

    #[test]
    fn lines_parse_back() {
        let mut s = String::new();
        let m = Metric {
            name: "coh.misses".into(),
            value: 7,
            unit: "count",
            cpu: Some(3),
        };
        write(&mut s, "model.x.", &m).unwrap();
        assert_eq!(
            parse_line(&s).unwrap(),
            Some(Record::Metric {
                name: "model.x.coh.misses",
                value: 7.0,
                unit: "count",
                scope: Scope::Cpu(3)
            })
        );
        assert!(!valid_name("Model.x"));
        assert!(!valid_name(""));
    }
}
