//! github-action-benchmark's custom tools: `customSmallerIsBetter` and
//! `customBiggerIsBetter` each read a JSON array of
//! `{name, unit, value, range, extra}`. One file per direction; a figure
//! goes to the file of its better direction. `value` is the median,
//! `range` `± half the min-max spread`, `extra` the reps, range and
//! accelerator as text.

use anyhow::Result;
use serde_json::{json, Value};

use super::{Bench, Exporter};
use crate::results::derive::Better;

pub struct GithubBenchmark {
    /// Which direction this file holds (`Lower` or `Higher`).
    pub better: Better,
}

impl Exporter for GithubBenchmark {
    fn file_name(&self) -> &'static str {
        match self.better {
            Better::Higher => "github-benchmark-bigger.json",
            _ => "github-benchmark-smaller.json",
        }
    }

    fn render(&self, benches: &[Bench]) -> Result<String> {
        let entries: Vec<Value> = benches
            .iter()
            .flat_map(|b| b.measures.iter().map(move |m| (b, m)))
            .filter(|(_, m)| m.better == self.better)
            .map(|(b, m)| {
                json!({
                    "name": format!("{} {}", b.name, m.figure),
                    "unit": m.unit,
                    "value": m.median,
                    "range": format!("± {}", (m.max - m.min) / 2.0),
                    "extra": format!(
                        "median of {} reps; min {} max {}; accel {} machine {}; runs: {}",
                        m.reps, m.min, m.max, b.accel, b.machine, b.outcomes
                    ),
                })
            })
            .collect();
        Ok(serde_json::to_string_pretty(&entries)? + "\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::export::benches;
    use crate::results::model::fixtures::matrix_rows;
    use crate::results::summary::summarize;

    #[test]
    fn shape_is_custom_benchmark_array() {
        let b = benches(&summarize(&matrix_rows(2)));
        let smaller: Value = serde_json::from_str(
            &GithubBenchmark {
                better: Better::Lower,
            }
            .render(&b)
            .unwrap(),
        )
        .unwrap();
        let bigger: Value = serde_json::from_str(
            &GithubBenchmark {
                better: Better::Higher,
            }
            .render(&b)
            .unwrap(),
        )
        .unwrap();
        let first = &smaller.as_array().unwrap()[0];
        for key in ["name", "unit", "value", "range", "extra"] {
            assert!(!first[key].is_null(), "missing {key}");
        }
        assert!(first["value"].is_number());
        let names = |v: &Value| -> Vec<String> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|e| e["name"].as_str().unwrap().to_string())
                .collect()
        };
        assert!(names(&smaller).iter().any(|n| n.ends_with(" ipis_per_op")));
        assert!(names(&bigger).iter().any(|n| n.ends_with(" ops_per_s")));
        assert!(!names(&smaller).iter().any(|n| n.ends_with(" ops_per_s")));
    }
}
