//! The chart of the OpenBSD factor by CPU count (`reproduce-ipi-factor`
//! `.svg`/`.png`), drawn with the plot module's font, colours and
//! renderer.

use std::path::{Path, PathBuf};

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::format::three_digits;
use super::rows::Kind;
use super::Reproduction;
use super::SweepPoint;
use crate::plot::{self, Chart, FONT};

/// The sweep as a chart: the factor's median per CPU count with its
/// min..max bar, the published 21 at 4 CPUs, and the points where fixed
/// sent no IPI drawn at the top as "∞".
pub struct FactorChart {
    pub points: Vec<SweepPoint>,
    pub accel: String,
    pub reps: u32,
    pub mix: String,
}

impl Chart for FactorChart {
    fn stem(&self) -> String {
        "reproduce-ipi-factor".into()
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        let finite: Vec<f64> = self
            .points
            .iter()
            .flat_map(|p| p.factor.per_rep.iter().copied())
            .filter(|v| v.is_finite())
            .collect();
        let top = finite.iter().copied().fold(25.0f64, f64::max) * 1.15;
        let max_cpus = self.points.iter().map(|p| p.cpus).max().unwrap_or(8);
        let color = plot::variant_color("openbsd-2010");
        let mut chart = ChartBuilder::on(root)
            .caption(
                "OpenBSD 2010 pm_cpus bugs: shootpage+shootrange IPIs, openbsd-2010 / fixed",
                (FONT, 24),
            )
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(0.5f64..(max_cpus as f64 + 0.5), 0f64..top)?;
        chart
            .configure_mesh()
            .x_desc(format!(
                "guest CPUs ({}, {} reps, {})",
                self.accel, self.reps, self.mix
            ))
            .y_desc("factor (median, bar = min..max)")
            .x_labels(max_cpus as usize)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .label_style((FONT, 16))
            .axis_desc_style((FONT, 17))
            .draw()?;
        // min..max bars.
        for p in &self.points {
            let (Some(lo), Some(hi)) = (p.factor.min(), p.factor.max()) else {
                continue;
            };
            let clamp = |v: f64| if v.is_finite() { v } else { top * 0.97 };
            let x = p.cpus as f64;
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(x, clamp(lo)), (x, clamp(hi))],
                color.stroke_width(2),
            )))?;
        }
        // The medians, joined where finite.
        let medians: Vec<(f64, f64)> = self
            .points
            .iter()
            .filter_map(|p| Some((p.cpus as f64, p.factor.median()?)))
            .collect();
        chart
            .draw_series(LineSeries::new(
                medians.iter().copied().filter(|(_, y)| y.is_finite()),
                color.stroke_width(3),
            ))?
            .label("lab, median")
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
            });
        for &(x, y) in &medians {
            if y.is_finite() {
                chart.draw_series(std::iter::once(Circle::new((x, y), 6, color.filled())))?;
                chart.draw_series(std::iter::once(Text::new(
                    three_digits(y),
                    (x + 0.08, y + top * 0.02),
                    (FONT, 15).into_font().color(&BLACK),
                )))?;
            } else {
                let y = top * 0.97;
                chart.draw_series(std::iter::once(TriangleMarker::new(
                    (x, y),
                    9,
                    color.filled(),
                )))?;
                chart.draw_series(std::iter::once(Text::new(
                    "∞ fixed sent 0".to_string(),
                    (x + 0.08, y - top * 0.02),
                    (FONT, 14).into_font().color(&BLACK),
                )))?;
            }
        }
        // CPU counts with no IPIs either way (1 CPU): say so on the axis.
        for p in self.points.iter().filter(|p| p.factor.per_rep.is_empty()) {
            chart.draw_series(std::iter::once(Text::new(
                "no IPIs either way".to_string(),
                (p.cpus as f64 - 0.3, top * 0.04),
                (FONT, 14).into_font().color(&BLACK),
            )))?;
        }
        let published = RGBColor(0x4e, 0x79, 0xa7);
        chart
            .draw_series(std::iter::once(Cross::new(
                (4.0, 21.0),
                10,
                published.stroke_width(4),
            )))?
            .label("published: 21 on a 4-CPU laptop")
            .legend(move |(x, y)| Cross::new((x + 10, y), 6, published.stroke_width(3)));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font((FONT, 16))
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()?;
        Ok(())
    }
}

/// Renders the sweep chart into `dir` (created if needed); returns the
/// files written (none when the plan had no sweep).
pub fn render_sweep(o: &Reproduction, dir: &Path) -> Result<Vec<PathBuf>> {
    if o.sweep.iter().all(|p| p.factor.per_rep.is_empty()) {
        return Ok(vec![]);
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    let mix = o.mix_label();
    let chart = FactorChart {
        points: o.sweep.clone(),
        accel: o.accel.clone(),
        reps: o.plan.reps,
        mix,
    };
    plot::render(&chart, dir)
}

/// The techniques' table as a chart (`reproduce-techniques.svg`/`.png`, kept by `harness baseline` as the seeds' chart is): one bar per
/// measured row, its median ratio against `fixed` (1 = no change), labelled
/// with the row's number and source.
pub struct TechniquesChart {
    /// (row number, label, median ratio, min, max).
    pub bars: Vec<(usize, String, f64, f64, f64)>,
    pub accel: String,
}

impl Chart for TechniquesChart {
    fn stem(&self) -> String {
        "reproduce-techniques".into()
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        let top = self
            .bars
            .iter()
            .map(|b| b.4)
            .filter(|v| v.is_finite())
            .fold(1.5f64, f64::max)
            * 1.1;
        let n = self.bars.len().max(1) as f64;
        let mut chart = ChartBuilder::on(root)
            .caption(
                "Techniques since the seeds: each figure / fixed's (1 = no change)",
                (FONT, 24),
            )
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(40)
            .build_cartesian_2d(0f64..top, -0.5f64..(n - 0.5))?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_desc(format!(
                "ratio to fixed, median (bar = min..max over reps; {})",
                self.accel
            ))
            .label_style((FONT, 16))
            .axis_desc_style((FONT, 17))
            .draw()?;
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(1.0, -0.5), (1.0, n - 0.5)],
            BLACK.stroke_width(2),
        )))?;
        for (i, (row, label, median, lo, hi)) in self.bars.iter().enumerate() {
            let y = n - 1.0 - i as f64;
            let variant = label.split(',').next().unwrap_or(label);
            let color = plot::variant_color(variant);
            chart.draw_series(std::iter::once(Rectangle::new(
                [(0.0, y - 0.3), (median.min(top), y + 0.3)],
                color.filled(),
            )))?;
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(lo.min(top), y), (hi.min(top), y)],
                BLACK.stroke_width(2),
            )))?;
            chart.draw_series(std::iter::once(Text::new(
                format!("{row}. {label}: {}", three_digits(*median)),
                (top * 0.02, y + 0.42),
                (FONT, 15).into_font().color(&BLACK),
            )))?;
        }
        Ok(())
    }
}

/// Renders the techniques chart into `dir`; returns the files written
/// (none when no row was measured).
pub fn render_techniques(o: &Reproduction, dir: &Path) -> Result<Vec<PathBuf>> {
    let bars: Vec<(usize, String, f64, f64, f64)> = o
        .rows
        .iter()
        .enumerate()
        // Measured rows only: a modeled figure never shares a measured
        // axis (the table gives it its own rows).
        .filter(|(_, r)| r.kind != Kind::Modeled)
        .filter_map(|(i, r)| {
            let m = r.measured.as_ref()?;
            let variant = r.lab.split_whitespace().next()?;
            // The figure's name: the definition after "on N CPUs: ", up
            // to its metric names in parentheses.
            let what = r
                .definition
                .split_once(" CPUs: ")
                .map(|(_, d)| d.split(" (").next().unwrap_or(d))
                .unwrap_or("");
            let label = format!("{variant}, {what}");
            Some((i + 1, label, m.median()?, m.min()?, m.max()?))
        })
        .collect();
    if bars.is_empty() {
        return Ok(vec![]);
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    plot::render(
        &TechniquesChart {
            bars,
            accel: o.accel_measured(),
        },
        dir,
    )
}
