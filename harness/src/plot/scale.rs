//! Scaling charts, drawn when the results span at least [`MIN_CPU_COUNTS`]
//! CPU counts (the scale matrix, `variants/matrix-scale.toml`): figures
//! against the CPU count on log-log axes, one line per variant.
//!
//! - `ipis-per-op-by-cpus-<workload>`: shootdown IPIs per operation;
//! - `wait-per-shootdown-by-cpus-<workload>`: TSC cycles an initiator
//!   waited per shootdown that sent IPIs (slot + acknowledgements), by
//!   protocol: `fixed` is the global slot, `scoreboard(-padded)` FreeBSD's;
//! - `boot-time-by-cpus`: guest time from reset to the `begin` line
//!   (`boot.begin_ns`, every run) and, where hello runs exist, their host
//!   wall time (QEMU start to exit).
//!
//! A log axis cannot show 0: points at 0 (fixed's forkexit sends no IPI)
//! are left out, and the subtitle says so.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::charts::{
    accels_of, entry_rows, header, height_for_legend, label_below, legend, log_axis_labels,
};
use super::roles::display_order;
use super::{slug, variant_color, workload_title, workloads, FONT};
use crate::results::derive::{RunFigures, SHOOT_KINDS};
use crate::results::stats::median_min_max;
use crate::results::summary::{fmt_num, GroupSummary};

/// Fewer CPU counts than this draw no scaling chart.
pub const MIN_CPU_COUNTS: usize = 3;

/// (cpus, median, min, max).
type Point = (u32, f64, f64, f64);

/// A log-log chart of one figure against the CPU count.
pub struct ScaleChart {
    stem: String,
    title: String,
    subtitle: String,
    y_desc: String,
    legend_heading: String,
    series: Vec<(String, RGBColor, Vec<Point>)>,
    cpus: Vec<u32>,
}

/// Median, min and max of `values`' positive entries (a log axis
/// cannot draw the others).
fn positive_median_min_max(values: &[f64]) -> Option<(f64, f64, f64)> {
    let positive: Vec<f64> = values.iter().copied().filter(|v| *v > 0.0).collect();
    median_min_max(&positive)
}

/// Cycles waited per shootdown that sent IPIs, in one run: the slot wait
/// (global slot only) plus the acknowledgement wait.
pub fn wait_per_shootdown(run: &RunFigures) -> Option<f64> {
    let sum = |prefix: &str| -> f64 {
        SHOOT_KINDS
            .iter()
            .filter_map(|k| run.total(&format!("{prefix}{k}")))
            .sum()
    };
    let (calls, noipi) = (sum("shoot.calls."), sum("shoot.noipi."));
    let wait = run.total("shoot.wait.slot").unwrap_or(0.0) + run.total("shoot.wait.ack")?;
    (calls - noipi > 0.0).then(|| wait / (calls - noipi))
}

/// The protocol a variant shoots down with, for legends.
fn protocol(variant: &str) -> String {
    match variant {
        "scoreboard" => "scoreboard\nFreeBSD D25510".into(),
        "scoreboard-padded" => "scoreboard-padded\nrows padded to a line".into(),
        "dfly-batch" => "dfly-batch\nbatched rendezvous".into(),
        v => format!("{v}\nglobal slot"),
    }
}

/// The sorted distinct CPU counts of `groups`.
fn cpu_counts<'a>(groups: impl IntoIterator<Item = &'a GroupSummary>) -> Vec<u32> {
    let mut c: Vec<u32> = groups.into_iter().map(|g| g.key.cpus).collect();
    c.sort();
    c.dedup();
    c
}

/// One series per variant of `groups` from `figure` of each ok run.
fn by_variant(
    groups: &[&GroupSummary],
    figure: impl Fn(&RunFigures) -> Option<f64>,
    label: impl Fn(&str) -> String,
) -> Vec<(String, RGBColor, Vec<Point>)> {
    let mut variants: Vec<&str> = groups.iter().map(|g| g.key.variant.as_str()).collect();
    variants.sort_by_key(|v| display_order(v));
    variants.dedup();
    variants
        .into_iter()
        .filter_map(|variant| {
            let points: Vec<Point> = groups
                .iter()
                .filter(|g| g.key.variant == variant)
                .filter_map(|g| {
                    let values: Vec<f64> = g
                        .runs
                        .iter()
                        .filter(|r| r.outcome.is_ok())
                        .filter_map(&figure)
                        .collect();
                    positive_median_min_max(&values).map(|(m, lo, hi)| (g.key.cpus, m, lo, hi))
                })
                .collect();
            (!points.is_empty()).then(|| (label(variant), variant_color(variant), points))
        })
        .collect()
}

/// Every scaling chart `groups` support (none below [`MIN_CPU_COUNTS`]).
pub fn charts(groups: &[GroupSummary]) -> Vec<ScaleChart> {
    let cpus = cpu_counts(groups);
    if cpus.len() < MIN_CPU_COUNTS {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (workload, params) in workloads(groups) {
        let these: Vec<&GroupSummary> = groups
            .iter()
            .filter(|g| g.key.workload == workload && g.key.params == params)
            .collect();
        let cpus = cpu_counts(these.iter().copied());
        if cpus.len() < MIN_CPU_COUNTS {
            continue;
        }
        let name = slug(&format!("{workload}-{params}"));
        let title = workload_title(&workload, &params);
        let accel = accels_of(&these);
        let ipis = by_variant(&these, |r| r.figure("ipis_per_op"), str::to_string);
        if !ipis.is_empty() {
            out.push(ScaleChart {
                stem: format!("ipis-per-op-by-cpus-{name}"),
                title: format!("{title}: shootdown IPIs per operation"),
                subtitle: format!(
                    "median over repetitions, whisker = min-max; log-log; 0 not drawn; accel {accel}"
                ),
                y_desc: "IPIs per operation".into(),
                legend_heading: "variant".into(),
                series: ipis,
                cpus: cpus.clone(),
            });
        }
        let waits = by_variant(&these, wait_per_shootdown, protocol);
        if !waits.is_empty() {
            out.push(ScaleChart {
                stem: format!("wait-per-shootdown-by-cpus-{name}"),
                title: format!("{title}: wait per shootdown"),
                subtitle: format!(
                    "(slot + ack wait) / shootdowns with IPIs, TSC cycles; log-log; accel {accel}"
                ),
                y_desc: "cycles waited per shootdown".into(),
                legend_heading: "protocol".into(),
                series: waits,
                cpus,
            });
        }
    }
    out.extend(boot_chart(groups));
    out
}

/// `boot-time-by-cpus`: guest boot time from every run, per machine and
/// accelerator, and the host wall time of hello runs.
fn boot_chart(groups: &[GroupSummary]) -> Option<ScaleChart> {
    const COLORS: [RGBColor; 4] = [
        RGBColor(0x4e, 0x79, 0xa7),
        RGBColor(0xe1, 0x57, 0x59),
        RGBColor(0x59, 0xa1, 0x4f),
        RGBColor(0xf2, 0x8e, 0x2b),
    ];
    let mut machines: Vec<(String, String)> = groups
        .iter()
        .map(|g| (g.key.machine.clone(), g.key.accel.clone()))
        .collect();
    machines.sort();
    machines.dedup();
    let mut series = Vec::new();
    let mut all_cpus = Vec::new();
    for (machine, accel) in &machines {
        let on: Vec<&GroupSummary> = groups
            .iter()
            .filter(|g| &g.key.machine == machine && &g.key.accel == accel)
            .collect();
        let point = |cpus: u32, hello_only: bool, f: &dyn Fn(&RunFigures) -> Option<f64>| {
            let values: Vec<f64> = on
                .iter()
                .filter(|g| g.key.cpus == cpus && (!hello_only || g.key.workload == "hello"))
                .flat_map(|g| g.runs.iter().filter(|r| r.outcome.is_ok()).filter_map(f))
                .collect();
            positive_median_min_max(&values).map(|(m, lo, hi)| (cpus, m, lo, hi))
        };
        let cpus = cpu_counts(on.iter().copied());
        let guest: Vec<Point> = cpus
            .iter()
            .filter_map(|&c| point(c, false, &|r| Some(r.total("boot.begin_ns")? / 1e6)))
            .collect();
        let host: Vec<Point> = cpus
            .iter()
            .filter_map(|&c| point(c, true, &|r| Some(r.total("run.wall_s")? * 1e3)))
            .collect();
        for (label, points) in [
            (format!("{machine}, {accel}\nguest: reset to begin"), guest),
            (format!("{machine}, {accel}\nhost: hello, QEMU wall"), host),
        ] {
            if points.len() >= MIN_CPU_COUNTS {
                all_cpus.extend(points.iter().map(|p| p.0));
                series.push((label, COLORS[series.len() % COLORS.len()], points));
            }
        }
    }
    all_cpus.sort();
    all_cpus.dedup();
    (!series.is_empty()).then(|| ScaleChart {
        stem: "boot-time-by-cpus".into(),
        title: "Boot time against CPU count".into(),
        subtitle: "guest: boot.begin_ns (TSC from reset, every run); host: hello runs' wall time; \
                   median, whisker = min-max; log-log"
            .into(),
        y_desc: "milliseconds".into(),
        legend_heading: "series".into(),
        series,
        cpus: all_cpus,
    })
}

impl ScaleChart {
    pub fn caption(&self) -> String {
        format!("{} against CPU count (log-log)", self.title)
    }
}

impl ScaleChart {
    fn legend_entries(&self) -> Vec<(String, RGBColor)> {
        self.series
            .iter()
            .map(|(label, color, _)| (label.clone(), *color))
            .collect()
    }
}

impl super::Chart for ScaleChart {
    fn stem(&self) -> String {
        self.stem.clone()
    }

    /// Tall enough for every legend entry.
    fn size(&self) -> (u32, u32) {
        (
            1100,
            height_for_legend(620, &entry_rows(&self.legend_entries())),
        )
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        let body = header(root, &self.title, &self.subtitle)?;
        let (w, _) = body.dim_in_pixel();
        let (main, side) = body.split_horizontally(w - 230);
        let values = || self.series.iter().flat_map(|(_, _, p)| p.iter());
        let lo_y = values().map(|p| p.2).fold(f64::INFINITY, f64::min);
        let hi_y = values().map(|p| p.3).fold(0.0f64, f64::max);
        let (lo_y, hi_y) = if lo_y.is_finite() && hi_y > 0.0 {
            (lo_y / 1.6, hi_y * 1.6)
        } else {
            (0.1, 10.0)
        };
        let lo_x = *self.cpus.first().unwrap_or(&1) as f64 / 1.25;
        let hi_x = *self.cpus.last().unwrap_or(&1) as f64 * 1.25;
        let mut chart = ChartBuilder::on(&main)
            .margin(16)
            .x_label_area_size(60)
            .y_label_area_size(90)
            .build_cartesian_2d((lo_x..hi_x).log_scale(), (lo_y..hi_y).log_scale())?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .x_label_formatter(&|_| String::new())
            .y_labels(log_axis_labels(lo_y, hi_y))
            .y_label_formatter(&|v| fmt_num(*v))
            .y_desc(self.y_desc.as_str())
            .x_desc("CPUs")
            .axis_desc_style((FONT, 18))
            .label_style((FONT, 15))
            .draw()?;
        for (_, color, points) in &self.series {
            chart.draw_series(LineSeries::new(
                points.iter().map(|p| (p.0 as f64, p.1)),
                color.stroke_width(2),
            ))?;
            chart.draw_series(points.iter().map(|p| {
                ErrorBar::new_vertical(p.0 as f64, p.2, p.1, p.3, color.stroke_width(2), 10)
            }))?;
            chart.draw_series(
                points
                    .iter()
                    .map(|p| Circle::new((p.0 as f64, p.1), 4, color.filled())),
            )?;
        }
        for &cpus in &self.cpus {
            let at = chart.backend_coord(&(cpus as f64, lo_y));
            label_below(root, at, 8, &cpus.to_string())?;
        }
        legend(&side, &self.legend_heading, &self.legend_entries())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{render_all, Chart};
    use super::*;
    use crate::results::model::fixtures::{cell, matrix_rows, run};
    use crate::results::summary::summarize;

    /// TEST FIXTURE rows (made up, never measured): forkexit on 1 to 64
    /// CPUs, IPIs growing with the CPU count.
    fn sweep_rows() -> Vec<crate::results::model::ResultRow> {
        let mut rows = Vec::new();
        for cpus in [1, 2, 4, 8, 16, 32, 64] {
            for (variant, per_cpu) in [("openbsd-2010", 0.75), ("fixed", 0.02)] {
                let ipis = 1000.0 * per_cpu * (cpus - 1) as f64;
                rows.extend(run(cell(variant, "forkexit", cpus, 1), 1000.0, 50.0, ipis).rows());
            }
        }
        rows
    }

    #[test]
    fn a_cpu_sweep_draws_the_log_log_charts() {
        let groups = summarize(&sweep_rows());
        let charts = charts(&groups);
        let stems: Vec<String> = charts.iter().map(|c| c.stem()).collect();
        assert!(
            stems[0].starts_with("ipis-per-op-by-cpus-forkexit"),
            "{stems:?}"
        );
        let ipis = &charts[0];
        // The 1-CPU point (no IPI) cannot go on a log axis.
        assert_eq!(ipis.series[0].2.first().map(|p| p.0), Some(2));
        let dir = tempfile::tempdir().unwrap();
        let files = render_all(&sweep_rows(), dir.path()).unwrap();
        let png = dir.path().join(format!("{}.png", stems[0]));
        assert!(files.contains(&png), "{files:?}");
        let md = std::fs::read_to_string(dir.path().join("index.md")).unwrap();
        assert!(md.contains("Scaling with the CPU count"), "{md}");
    }

    #[test]
    fn two_cpu_counts_draw_no_scaling_chart() {
        assert!(charts(&summarize(&matrix_rows(2))).is_empty());
    }
}
