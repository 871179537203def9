//! Bencher Metric Format (BMF) JSON: an object keyed by benchmark name,
//! each an object keyed by measure (our figure names), each
//! `{value, lower_value, upper_value}`: median, min and max over reps.

use anyhow::Result;
use serde_json::{json, Map, Value};

use super::{Bench, Exporter};

pub struct Bencher;

impl Exporter for Bencher {
    fn file_name(&self) -> &'static str {
        "bencher.json"
    }

    fn render(&self, benches: &[Bench]) -> Result<String> {
        let mut root = Map::new();
        for bench in benches {
            let measures: Map<String, Value> = bench
                .measures
                .iter()
                .map(|m| {
                    (
                        m.figure.to_string(),
                        json!({ "value": m.median, "lower_value": m.min, "upper_value": m.max }),
                    )
                })
                .collect();
            root.insert(bench.name.clone(), Value::Object(measures));
        }
        Ok(serde_json::to_string_pretty(&Value::Object(root))? + "\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::export::benches;
    use crate::results::model::fixtures::matrix_rows;
    use crate::results::summary::summarize;

    #[test]
    fn shape_is_bmf() {
        let text = Bencher
            .render(&benches(&summarize(&matrix_rows(3))))
            .unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        let m = &v["fixed/forkexit[touch=on]/4"]["ipis_per_op"];
        let (value, lo, hi) = (
            m["value"].as_f64().unwrap(),
            m["lower_value"].as_f64().unwrap(),
            m["upper_value"].as_f64().unwrap(),
        );
        assert!(lo <= value && value <= hi);
        assert!((value - 0.2).abs() < 1e-12);
        assert!(v["openbsd-2010/ipi-pingpong/2"]["ops_per_s"]["value"].is_number());
    }
}
