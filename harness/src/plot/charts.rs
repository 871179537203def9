//! The chart kinds. Each is built from grouped results (`new` returns
//! `None` when there is nothing to draw) and then drawn by
//! [`super::render`] on an SVG and a PNG backend.
//!
//! Layout of every chart: a header strip (title and a subtitle saying what
//! the marks mean), the plot, and a legend panel on the right, outside the
//! plot, so legend and data never overlap.

use std::collections::BTreeMap;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::roles::{display_order, role_heading, variant_role, Role};
use super::{variant_color, workload_title, PlotOptions, FONT};
use crate::results::derive::{hist_quantile, CAUSE_FIGURE_PREFIX, SPARED_FIGURE_PREFIX};
use crate::results::stats::median_min_max;
use crate::results::summary::{fmt_num, GroupSummary};
use lab_core::cause::ShootCause;

type DrawResult<T, DB> = Result<T, DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

pub(super) const GREY: RGBColor = RGBColor(90, 90, 90);
/// The legend panel's width: room for the longest variant name
/// (`cacheline-consolidation`) at the legend's font.
pub(super) const LEGEND_WIDTH: u32 = 220;
/// The header strip's height ([`header`]).
pub(super) const HEADER_HEIGHT: u32 = 70;
/// Where a legend's first row starts, below its heading.
const LEGEND_TOP: i32 = 56;
/// A legend group's heading row (the variants' roles).
const LEGEND_GROUP_STEP: i32 = 24;

/// Draws the title and subtitle strip; returns the area below it.
pub(super) fn header<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    subtitle: &str,
) -> DrawResult<DrawingArea<DB, Shift>, DB> {
    let (head, body) = root.split_vertically(HEADER_HEIGHT);
    let room = head.dim_in_pixel().0.saturating_sub(40);
    let title_size = fitting_size(&head, title, 26, FontStyle::Bold, room)?;
    head.draw(&Text::new(
        title.to_string(),
        (20, 12),
        (FONT, title_size)
            .into_font()
            .style(FontStyle::Bold)
            .color(&BLACK),
    ))?;
    let subtitle_size = fitting_size(&head, subtitle, 16, FontStyle::Normal, room)?;
    head.draw(&Text::new(
        subtitle.to_string(),
        (20, 44),
        (FONT, subtitle_size).into_font().color(&GREY),
    ))?;
    Ok(body)
}

/// The largest font size up to `size` at which `text` is at most `width`
/// pixels wide (a workload's parameters can make a title longer than the
/// chart), but no smaller than 60 % of `size`.
fn fitting_size<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    text: &str,
    size: u32,
    style: FontStyle,
    width: u32,
) -> DrawResult<u32, DB> {
    let least = size * 3 / 5;
    let mut at = size;
    while at > least {
        let font = (FONT, at).into_font().style(style).color(&BLACK);
        if area.estimate_text_size(text, &font)?.0 <= width {
            break;
        }
        at -= 1;
    }
    Ok(at)
}

/// A row of a legend.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum LegendRow {
    /// A group's heading (a role of the variants below it).
    Group(String),
    /// A coloured box and a name, which may carry a second, smaller line
    /// after a `\n`.
    Entry(String, RGBColor),
}

/// The rows' height in pixels at full size: one step per entry (taller
/// when any entry has two lines), a smaller one per group heading.
fn legend_rows_height(rows: &[LegendRow]) -> i32 {
    let step = entry_step(rows);
    rows.iter()
        .map(|r| match r {
            LegendRow::Group(_) => LEGEND_GROUP_STEP,
            LegendRow::Entry(..) => step,
        })
        .sum()
}

fn entry_step(rows: &[LegendRow]) -> i32 {
    let two_lines = rows
        .iter()
        .any(|r| matches!(r, LegendRow::Entry(name, _) if name.contains('\n')));
    if two_lines {
        46
    } else {
        28
    }
}

/// The height a chart needs so that a legend of `rows` beside its plot
/// is complete: at least `base`.
pub(super) fn height_for_legend(base: u32, rows: &[LegendRow]) -> u32 {
    let needed = HEADER_HEIGHT as i32 + LEGEND_TOP + legend_rows_height(rows) + 16;
    base.max(needed as u32)
}

/// Draws a legend, top-left of `area`: a heading, then its rows. Charts
/// size themselves with [`height_for_legend`] so that every row fits at
/// full size; should an area still be too short, the rows are drawn
/// closer together and smaller rather than cut off.
pub(super) fn legend_rows<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    heading: &str,
    rows: &[LegendRow],
) -> DrawResult<(), DB> {
    let (_, height) = area.dim_in_pixel();
    let room = height as i32 - LEGEND_TOP - 8;
    let full = legend_rows_height(rows).max(1);
    let scale = (room as f64 / full as f64).clamp(0.45, 1.0);
    let px = |v: i32| (v as f64 * scale).round() as i32;
    area.draw(&Text::new(
        heading.to_string(),
        (12, 24),
        (FONT, 17).into_font().style(FontStyle::Bold).color(&BLACK),
    ))?;
    let step = entry_step(rows);
    let mut y = LEGEND_TOP;
    for row in rows {
        match row {
            LegendRow::Group(name) => {
                area.draw(&Text::new(
                    name.clone(),
                    (12, y),
                    (FONT, px(15).max(9)).into_font().color(&GREY),
                ))?;
                y += px(LEGEND_GROUP_STEP);
            }
            LegendRow::Entry(name, color) => {
                let (first, second) = name.split_once('\n').unwrap_or((name, ""));
                area.draw(&Rectangle::new([(12, y), (30, y + px(16))], color.filled()))?;
                area.draw(&Text::new(
                    first.to_string(),
                    (38, y),
                    (FONT, px(16).max(9)).into_font().color(&BLACK),
                ))?;
                if !second.is_empty() {
                    area.draw(&Text::new(
                        second.to_string(),
                        (38, y + px(19)),
                        (FONT, px(13).max(8)).into_font().color(&GREY),
                    ))?;
                }
                y += px(step);
            }
        }
    }
    Ok(())
}

/// Plain legend entries (no groups): coloured boxes and names.
pub(super) fn entry_rows(entries: &[(String, RGBColor)]) -> Vec<LegendRow> {
    entries
        .iter()
        .map(|(name, color)| LegendRow::Entry(name.clone(), *color))
        .collect()
}

/// Draws a legend of coloured boxes and names, top-left of `area`. A
/// name may carry a second, smaller line after a `\n`.
pub(super) fn legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    heading: &str,
    entries: &[(String, RGBColor)],
) -> DrawResult<(), DB> {
    legend_rows(area, heading, &entry_rows(entries))
}

/// Legend rows for `variants` (in display order) labelled by `label`,
/// each in its colour, under a heading per role when more than one role
/// is present.
pub(super) fn variant_rows(variants: &[String], label: impl Fn(&str) -> String) -> Vec<LegendRow> {
    let roles: Vec<Role> = variants.iter().map(|v| variant_role(v)).collect();
    let grouped = roles.iter().any(|r| *r != roles[0]);
    let mut rows = Vec::new();
    let mut last = None;
    for (v, role) in variants.iter().zip(roles) {
        if grouped && last != Some(role) {
            rows.push(LegendRow::Group(role_heading(role).to_string()));
            last = Some(role);
        }
        rows.push(LegendRow::Entry(label(v), variant_color(v)));
    }
    rows
}

/// The legend of `variants`, each in its colour, grouped by role.
pub(super) fn variant_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    variants: &[String],
) -> DrawResult<(), DB> {
    legend_rows(area, "variant", &variant_rows(variants, str::to_string))
}

/// Draws `text` centred under the data point `at` of a chart, `dy` pixels
/// below it, on `root` (absolute pixels).
pub(super) fn label_below<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    at: (i32, i32),
    dy: i32,
    text: &str,
) -> DrawResult<(), DB> {
    let style = (FONT, 16)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Center, VPos::Top));
    root.draw(&Text::new(text.to_string(), (at.0, at.1 + dy), style))
}

/// Variants present in `groups`, in display order (by role,
/// [`display_order`]).
pub(super) fn variants_of(groups: &[&GroupSummary]) -> Vec<String> {
    let mut v: Vec<String> = groups.iter().map(|g| g.key.variant.clone()).collect();
    v.sort_by_key(|v| display_order(v));
    v.dedup();
    v
}

pub(super) fn cpus_of(groups: &[&GroupSummary]) -> Vec<u32> {
    let mut c: Vec<u32> = groups.iter().map(|g| g.key.cpus).collect();
    c.sort();
    c.dedup();
    c
}

/// The accelerators of `groups`, joined (for subtitles).
pub(super) fn accels_of(groups: &[&GroupSummary]) -> String {
    let mut a: Vec<&str> = groups.iter().map(|g| g.key.accel.as_str()).collect();
    a.sort();
    a.dedup();
    a.join(", ")
}

/// (median, min, max) of a figure over a group's ok runs.
pub(super) fn figure_median_min_max(g: &GroupSummary, figure: &str) -> Option<(f64, f64, f64)> {
    median_min_max(&g.values(figure))
}

/// How many labels to ask of a plotters log axis from `lo` to `hi`: one
/// per decade and a few more, never ten a decade. Asked for ten or more a
/// decade, plotters 0.3.7 (LogRangeExt's key points) labels every 2x..10x
/// of a decade and then the next decade again, so each decade's label is
/// drawn twice, one over the other, and 7k 8k 9k 10k crowd its end.
pub(super) fn log_axis_labels(lo: f64, hi: f64) -> usize {
    let decades = (hi / lo).log10().floor().max(1.0) as usize;
    decades * 5
}

/// `1 CPU`, `4 CPUs`.
pub(super) fn cpus_label(cpus: u32) -> String {
    if cpus == 1 {
        "1 CPU".into()
    } else {
        format!("{cpus} CPUs")
    }
}

/// A number with an SI suffix and at most three significant digits:
/// `512`, `4.1k`, `1.5M`.
pub(super) fn fmt_si(v: f64) -> String {
    let (scaled, suffix) = [(1e9, "G"), (1e6, "M"), (1e3, "k")]
        .into_iter()
        .find(|(unit, _)| v.abs() >= *unit)
        .map_or((v, ""), |(unit, s)| (v / unit, s));
    let digits = if scaled.abs() >= 100.0 {
        0
    } else if scaled.abs() >= 10.0 {
        1
    } else {
        2
    };
    let text = format!("{scaled:.digits$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        &text
    };
    format!("{text}{suffix}")
}

#[cfg(test)]
#[test]
fn si_numbers() {
    assert_eq!(fmt_si(4096.0), "4.1k");
    assert_eq!(fmt_si(512.0), "512");
    assert_eq!(fmt_si(1_500_000.0), "1.5M");
    assert_eq!(fmt_si(65536.0), "65.5k");
    assert_eq!(fmt_si(100.0), "100");
}

// ---- (a) IPIs per operation by variant ------------------------------------

/// Bars of median IPIs per operation (log scale), grouped by CPU count,
/// one bar per variant, whiskers min-max over reps. None when no run of
/// the workload sent a shootdown IPI.
pub struct IpiBarChart {
    name: String,
    title: String,
    accel: String,
    cpus: Vec<u32>,
    variants: Vec<String>,
    /// (cpus index, variant index) -> (median, min, max).
    values: BTreeMap<(usize, usize), (f64, f64, f64)>,
}

impl IpiBarChart {
    pub fn new(groups: &[&GroupSummary], name: &str, title: &str) -> Option<Self> {
        let cpus = cpus_of(groups);
        let variants = variants_of(groups);
        let mut values = BTreeMap::new();
        for g in groups {
            if let Some(s) = figure_median_min_max(g, "ipis_per_op") {
                let ci = cpus.iter().position(|&c| c == g.key.cpus)?;
                let vi = variants.iter().position(|v| *v == g.key.variant)?;
                values.insert((ci, vi), s);
            }
        }
        // A workload that sends no shootdowns at all (ipi-pingpong's IPIs
        // are all `other`) would give a chart of nothing but zeros.
        let any_ipis = values.values().any(|&(_, _, max)| max > 0.0);
        any_ipis.then(|| IpiBarChart {
            name: name.to_string(),
            title: title.to_string(),
            accel: accels_of(groups),
            cpus,
            variants,
            values,
        })
    }

    pub fn caption(&self) -> String {
        format!(
            "{}: shootdown IPIs per operation by variant (log scale)",
            self.title
        )
    }
}

impl super::Chart for IpiBarChart {
    fn stem(&self) -> String {
        format!("ipis-per-op-{}", self.name)
    }

    fn size(&self) -> (u32, u32) {
        (
            1100,
            height_for_legend(620, &variant_rows(&self.variants, str::to_string)),
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<(), DB> {
        let body = header(
            root,
            &format!("{}: shootdown IPIs per operation", self.title),
            &format!(
                "bar = median over repetitions, whisker = min-max; log scale, 0 marked on the axis; accel {}",
                self.accel
            ),
        )?;
        let (w, _) = body.dim_in_pixel();
        let (main, side) = body.split_horizontally(w - LEGEND_WIDTH);
        let positive = self
            .values
            .values()
            .flat_map(|&(m, lo, hi)| [m, lo, hi])
            .filter(|v| *v > 0.0);
        let (min_pos, max_pos) =
            positive.fold((f64::INFINITY, 0.0f64), |(a, b), v| (a.min(v), b.max(v)));
        let (floor, ceil) = if max_pos > 0.0 {
            let floor = 10f64.powf((min_pos / 2.0).log10().floor());
            let ceil = 10f64.powf((max_pos * 1.5).log10().ceil());
            (floor, ceil.max(floor * 10.0))
        } else {
            (1e-3, 1.0)
        };
        let n = self.cpus.len() as f64;
        let mut chart = ChartBuilder::on(&main)
            .margin(16)
            .x_label_area_size(60)
            .y_label_area_size(90)
            .build_cartesian_2d(0f64..n, (floor..ceil).log_scale())?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_labels(log_axis_labels(floor, ceil))
            .y_label_formatter(&|v| fmt_num(*v))
            .y_desc("shootdown IPIs per operation")
            .x_desc("CPUs")
            .axis_desc_style((FONT, 18))
            .label_style((FONT, 15))
            .draw()?;
        // Each bar's place in its CPU group, with half a bar's gap between
        // the roles' groups, as the legend groups them.
        let mut places = Vec::new();
        let mut at = 0.0f64;
        for (i, v) in self.variants.iter().enumerate() {
            if i > 0 && variant_role(v) != variant_role(&self.variants[i - 1]) {
                at += 0.5;
            }
            places.push(at);
            at += 1.0;
        }
        let slot = 0.8 / at.max(1.0);
        for (&(ci, vi), &(med, lo, hi)) in &self.values {
            let x0 = ci as f64 + 0.1 + places[vi] * slot;
            let (x1, xc) = (x0 + slot * 0.9, x0 + slot * 0.45);
            let color = variant_color(&self.variants[vi]);
            if med > 0.0 {
                chart.draw_series([Rectangle::new([(x0, floor), (x1, med)], color.filled())])?;
            } else {
                // log scale: a zero cannot be drawn as a bar; mark it.
                chart.draw_series([Text::new(
                    "0".to_string(),
                    (xc, floor),
                    (FONT, 15)
                        .into_font()
                        .color(&color)
                        .pos(Pos::new(HPos::Center, VPos::Bottom)),
                )])?;
            }
            if hi > lo {
                let px = chart.backend_coord(&(x1, floor)).0 - chart.backend_coord(&(x0, floor)).0;
                chart.draw_series([ErrorBar::new_vertical(
                    xc,
                    lo.max(floor),
                    med.max(floor),
                    hi.max(floor),
                    BLACK.stroke_width(1),
                    (px / 2).max(4) as u32,
                )])?;
            }
        }
        for (ci, &cpus) in self.cpus.iter().enumerate() {
            let at = chart.backend_coord(&(ci as f64 + 0.5, floor));
            label_below(root, at, 8, &cpus_label(cpus))?;
        }
        variant_legend(&side, &self.variants)
    }
}

// ---- (b) operation rate against CPU count --------------------------------

/// (cpus, median, min, max) of one variant's rate.
type RatePoint = (u32, f64, f64, f64);

/// A variant and its points.
type RateSeries = (String, Vec<RatePoint>);

/// The variant the rate chart's panels draw as their reference (the
/// index's tables set every variant against it too).
const REFERENCE_VARIANT: &str = super::against::REFERENCE;

/// Median operations per second against CPU count, one line per variant,
/// whiskers min-max over reps, in small multiples by the variant's role.
pub struct RateChart {
    name: String,
    title: String,
    accel: String,
    cpus: Vec<u32>,
    /// variant -> its points.
    series: Vec<RateSeries>,
}

impl RateChart {
    pub fn new(groups: &[&GroupSummary], name: &str, title: &str) -> Option<Self> {
        let mut series = Vec::new();
        for variant in variants_of(groups) {
            let points: Vec<RatePoint> = groups
                .iter()
                .filter(|g| g.key.variant == variant)
                .filter_map(|g| {
                    figure_median_min_max(g, "ops_per_s").map(|(m, lo, hi)| (g.key.cpus, m, lo, hi))
                })
                .collect();
            if !points.is_empty() {
                series.push((variant, points));
            }
        }
        (!series.is_empty()).then(|| RateChart {
            name: name.to_string(),
            title: title.to_string(),
            accel: accels_of(groups),
            cpus: cpus_of(groups),
            series,
        })
    }

    pub fn caption(&self) -> String {
        format!("{}: operations per second against CPU count", self.title)
    }

    /// The variants drawn, in display order.
    fn variants(&self) -> Vec<String> {
        self.series.iter().map(|(v, _)| v.clone()).collect()
    }

    /// The series by role, in display order: one panel each.
    fn panels(&self) -> Vec<(Role, Vec<&RateSeries>)> {
        let mut panels: Vec<(Role, Vec<&RateSeries>)> = Vec::new();
        for s in &self.series {
            let role = variant_role(&s.0);
            match panels.iter_mut().find(|(r, _)| *r == role) {
                Some((_, series)) => series.push(s),
                None => panels.push((role, vec![s])),
            }
        }
        panels
    }
}

impl super::Chart for RateChart {
    fn stem(&self) -> String {
        format!("rate-{}", self.name)
    }

    /// A row of up to three panels per 300 pixels (one row as tall as
    /// the other charts), and the legend.
    fn size(&self) -> (u32, u32) {
        let rows = self.panels().len().div_ceil(3).max(1) as u32;
        let legend = variant_rows(&self.variants(), str::to_string);
        (
            1100,
            height_for_legend((HEADER_HEIGHT + 300 * rows).max(620), &legend),
        )
    }

    /// One panel per role (small multiples: 19 lines in one plot cannot
    /// be followed), on one y scale, `fixed` dashed in every panel but its
    /// own as the reference; the legend lists every variant by role.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<(), DB> {
        let note = if crate::accel::is_repeatable(&self.accel) {
            "repeatable virtual time: an instruction-count cost model"
        } else {
            "guest time under plain TCG: expect run-to-run noise"
        };
        let body = header(
            root,
            &format!("{}: operations per second", self.title),
            &format!(
                "point = median over repetitions, whisker = min-max; dashed: {REFERENCE_VARIANT}; \
                 accel {} ({note})",
                self.accel
            ),
        )?;
        let (w, _) = body.dim_in_pixel();
        let (main, side) = body.split_horizontally(w - LEGEND_WIDTH);
        let max = self
            .series
            .iter()
            .flat_map(|(_, p)| p.iter().map(|p| p.3))
            .fold(0.0f64, f64::max);
        let lo_x = *self.cpus.first().unwrap_or(&1) as f64 - 0.5;
        let hi_x = *self.cpus.last().unwrap_or(&1) as f64 + 0.5;
        let panels = self.panels();
        let cols = panels.len().clamp(1, 3);
        let rows = panels.len().div_ceil(cols).max(1);
        let areas = main.split_evenly((rows, cols));
        let reference = self.series.iter().find(|(v, _)| v == REFERENCE_VARIANT);
        for (p, ((role, series), area)) in panels.iter().zip(&areas).enumerate() {
            let mut chart = ChartBuilder::on(area)
                .margin(10)
                .caption(role_heading(*role), (FONT, 17))
                .x_label_area_size(36)
                .y_label_area_size(if p % cols == 0 { 84 } else { 56 })
                .build_cartesian_2d(lo_x..hi_x, 0f64..(max * 1.15).max(1.0))?;
            let mut mesh = chart.configure_mesh();
            mesh.disable_x_mesh()
                .x_labels(0)
                .y_labels(6)
                .y_label_formatter(&|v| fmt_num(*v))
                .axis_desc_style((FONT, 16))
                .label_style((FONT, 14));
            if p % cols == 0 {
                mesh.y_desc("operations per second (guest time)");
            }
            mesh.draw()?;
            if let Some((_, points)) =
                reference.filter(|_| *role != variant_role(REFERENCE_VARIANT))
            {
                chart.draw_series(DashedLineSeries::new(
                    points.iter().map(|p| (p.0 as f64, p.1)),
                    6,
                    4,
                    variant_color(REFERENCE_VARIANT).stroke_width(2),
                ))?;
            }
            let n = series.len() as f64;
            for (i, (variant, points)) in series.iter().enumerate() {
                // Small horizontal offsets keep whiskers of close values apart.
                let dx = (i as f64 - (n - 1.0) / 2.0) * 0.06;
                let color = variant_color(variant);
                chart.draw_series(LineSeries::new(
                    points.iter().map(|p| (p.0 as f64 + dx, p.1)),
                    color.stroke_width(2),
                ))?;
                chart.draw_series(points.iter().map(|p| {
                    ErrorBar::new_vertical(p.0 as f64 + dx, p.2, p.1, p.3, color.stroke_width(2), 8)
                }))?;
                chart.draw_series(
                    points
                        .iter()
                        .map(|p| Circle::new((p.0 as f64 + dx, p.1), 4, color.filled())),
                )?;
            }
            for &cpus in &self.cpus {
                let at = chart.backend_coord(&(cpus as f64, 0.0));
                label_below(root, at, 6, &cpus_label(cpus))?;
            }
        }
        variant_legend(&side, &self.variants())
    }
}

// ---- (c) acknowledgement-wait CDF -------------------------------------------

/// The CDF of shootdown acknowledgement waits per variant, at the
/// workload's largest CPU count with wait data.
pub struct CdfChart {
    name: String,
    title: String,
    cpus: u32,
    /// variant -> (summed log2 histogram, shootdowns counted).
    series: Vec<(String, BTreeMap<u32, f64>, f64)>,
}

impl CdfChart {
    pub fn new(groups: &[&GroupSummary], name: &str, title: &str) -> Option<Self> {
        let summed = |g: &GroupSummary| -> BTreeMap<u32, f64> {
            let mut hist = BTreeMap::new();
            for run in g.runs.iter().filter(|r| r.outcome.is_ok()) {
                for (&b, &n) in &run.ack_hist {
                    *hist.entry(b).or_default() += n;
                }
            }
            hist
        };
        let cpus = groups
            .iter()
            .filter(|g| summed(g).values().sum::<f64>() > 0.0)
            .map(|g| g.key.cpus)
            .max()?;
        let mut series = Vec::new();
        for variant in variants_of(groups) {
            let mut hist = BTreeMap::new();
            for g in groups
                .iter()
                .filter(|g| g.key.variant == variant && g.key.cpus == cpus)
            {
                for (b, n) in summed(g) {
                    *hist.entry(b).or_default() += n;
                }
            }
            let total: f64 = hist.values().sum();
            if total > 0.0 {
                series.push((variant, hist, total));
            }
        }
        Some(CdfChart {
            name: name.to_string(),
            title: title.to_string(),
            cpus,
            series,
        })
    }

    pub fn caption(&self) -> String {
        format!(
            "{}: shootdown acknowledgement wait CDF, {} CPUs",
            self.title, self.cpus
        )
    }

    /// Each variant with its median wait and how many shootdowns it
    /// counted, grouped by role.
    fn legend(&self) -> Vec<LegendRow> {
        let variants: Vec<String> = self.series.iter().map(|(v, ..)| v.clone()).collect();
        variant_rows(&variants, |v| {
            let (_, hist, total) = self
                .series
                .iter()
                .find(|(name, ..)| name == v)
                .expect("a variant of the series");
            let p50 = hist_quantile(hist, 0.5).map(fmt_si).unwrap_or_default();
            format!("{v}\np50 {p50}, n={}", fmt_si(*total))
        })
    }
}

impl super::Chart for CdfChart {
    fn stem(&self) -> String {
        format!("ack-wait-cdf-{}", self.name)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<(), DB> {
        let body = header(
            root,
            &format!("{}: wait for shootdown acknowledgements", self.title),
            &format!(
                "{}, all repetitions pooled; from log2 histograms (shoot.wait.ack.log2.*), x = bucket upper edge",
                cpus_label(self.cpus)
            ),
        )?;
        let (w, _) = body.dim_in_pixel();
        let (main, side) = body.split_horizontally(w - LEGEND_WIDTH);
        let lo_b = self
            .series
            .iter()
            .filter_map(|s| s.1.keys().next())
            .min()
            .copied()
            .unwrap_or(0);
        let hi_b = self
            .series
            .iter()
            .filter_map(|s| s.1.keys().last())
            .max()
            .copied()
            .unwrap_or(1);
        let x_lo = 2f64.powi(lo_b as i32);
        let x_hi = 2f64.powi(hi_b as i32 + 1).max(x_lo * 2.0);
        let mut chart = ChartBuilder::on(&main)
            .margin(16)
            .x_label_area_size(60)
            .y_label_area_size(90)
            .build_cartesian_2d((x_lo..x_hi).log_scale(), 0f64..1.0)?;
        chart
            .configure_mesh()
            .x_labels(log_axis_labels(x_lo, x_hi))
            .x_label_formatter(&|v| fmt_si(*v))
            .y_label_formatter(&|v| format!("{:.0}%", v * 100.0))
            .x_desc("acknowledgement wait (TSC cycles, log scale)")
            .y_desc("share of shootdowns waiting at most x")
            .axis_desc_style((FONT, 18))
            .label_style((FONT, 15))
            .draw()?;
        for (variant, hist, total) in &self.series {
            let color = variant_color(variant);
            let mut points = vec![(x_lo, 0.0)];
            let mut seen = 0.0;
            for (&b, &n) in hist {
                points.push((2f64.powi(b as i32), seen / total));
                seen += n;
                points.push((2f64.powi(b as i32 + 1), seen / total));
            }
            chart.draw_series(LineSeries::new(points, color.stroke_width(3)))?;
        }
        legend_rows(&side, "variant", &self.legend())
    }

    fn size(&self) -> (u32, u32) {
        (1200, height_for_legend(620, &self.legend()))
    }
}

// ---- (d) IPI (from, to) heatmap ------------------------------------------------

/// IPIs sent per (from, to) CPU pair, summed over kinds, mean over a
/// group's ok runs, for one variant.
pub struct HeatmapChart {
    pub variant: String,
    pub workload_title: String,
    name: String,
    suffix: String,
    pub cpus: u32,
    runs: usize,
    /// [from][to] mean IPIs.
    cells: Vec<Vec<f64>>,
}

impl HeatmapChart {
    /// Heatmaps of every variant for the chosen workload and CPU count
    /// (see [`PlotOptions`]); empty when no run reported pair counts.
    pub fn all(groups: &[GroupSummary], opts: &PlotOptions) -> Vec<HeatmapChart> {
        let has_pairs = |g: &GroupSummary| {
            g.runs
                .iter()
                .any(|r| r.outcome.is_ok() && !r.pairs.is_empty())
        };
        let with_pairs: Vec<&GroupSummary> = groups.iter().filter(|g| has_pairs(g)).collect();
        let workload = match &opts.heatmap_workload {
            Some(w) => w.clone(),
            None => match with_pairs.iter().find(|g| g.key.workload == "forkexit") {
                Some(g) => g.key.workload.clone(),
                None => match with_pairs.first() {
                    Some(g) => g.key.workload.clone(),
                    None => return Vec::new(),
                },
            },
        };
        let Some(first) = with_pairs.iter().find(|g| g.key.workload == workload) else {
            return Vec::new();
        };
        let params = first.key.params.clone();
        let chosen: Vec<&GroupSummary> = with_pairs
            .iter()
            .copied()
            .filter(|g| g.key.workload == workload && g.key.params == params)
            .collect();
        let Some(cpus) = opts
            .heatmap_cpus
            .or_else(|| chosen.iter().map(|g| g.key.cpus).max())
        else {
            return Vec::new();
        };
        let mut chosen: Vec<&GroupSummary> =
            chosen.into_iter().filter(|g| g.key.cpus == cpus).collect();
        chosen.sort_by_key(|g| display_order(&g.key.variant));
        let mixed = chosen.iter().any(|g| {
            (&g.key.accel, &g.key.machine) != (&chosen[0].key.accel, &chosen[0].key.machine)
        });
        chosen
            .into_iter()
            .map(|g| {
                let ok: Vec<_> = g.runs.iter().filter(|r| r.outcome.is_ok()).collect();
                let n = cpus as usize;
                let mut cells = vec![vec![0.0; n]; n];
                for run in &ok {
                    for (&(from, to), &v) in &run.pairs {
                        if (from as usize) < n && (to as usize) < n {
                            cells[from as usize][to as usize] += v / ok.len() as f64;
                        }
                    }
                }
                HeatmapChart {
                    variant: g.key.variant.clone(),
                    workload_title: workload_title(&workload, &params),
                    name: super::slug(&format!("{workload}-{params}")),
                    suffix: if mixed {
                        format!("-{}-{}", g.key.accel, g.key.machine)
                    } else {
                        String::new()
                    },
                    cpus,
                    runs: ok.len(),
                    cells,
                }
            })
            .collect()
    }

    pub fn caption(&self) -> String {
        format!(
            "IPIs sent from CPU (row) to CPU (column): {} on {}, {} CPUs",
            self.variant, self.workload_title, self.cpus
        )
    }
}

impl super::Chart for HeatmapChart {
    fn stem(&self) -> String {
        format!(
            "heatmap-{}-{}-c{}{}",
            super::slug(&self.variant),
            self.name,
            self.cpus,
            self.suffix
        )
    }

    fn size(&self) -> (u32, u32) {
        (820, 760)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<(), DB> {
        let total: f64 = self.cells.iter().flatten().sum();
        let max = self.cells.iter().flatten().copied().fold(0.0f64, f64::max);
        let body = header(
            root,
            &format!("IPIs sent, from -> to: {}", self.variant),
            &format!(
                "{}, {} CPUs; mean of {} runs; all kinds; total {} per run",
                self.workload_title,
                self.cpus,
                self.runs,
                fmt_num(total)
            ),
        )?;
        let n = self.cpus as f64;
        let mut chart = ChartBuilder::on(&body)
            .margin(20)
            .margin_right(40)
            .x_label_area_size(70)
            .y_label_area_size(90)
            .build_cartesian_2d(0f64..n, 0f64..n)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(0)
            .y_labels(0)
            .x_desc("to CPU")
            .y_desc("from CPU")
            .axis_desc_style((FONT, 18))
            .draw()?;
        let cell_px = chart.backend_coord(&(1.0, 0.0)).0 - chart.backend_coord(&(0.0, 0.0)).0;
        let text_size = (cell_px / 3).clamp(9, 22);
        for (from, row) in self.cells.iter().enumerate() {
            for (to, &v) in row.iter().enumerate() {
                // Row 0 at the top, as in a matrix.
                let y = n - 1.0 - from as f64;
                let x = to as f64;
                let t = if max > 0.0 { (v / max).sqrt() } else { 0.0 };
                let mix =
                    |white: u8, dark: u8| (white as f64 + (dark as f64 - white as f64) * t) as u8;
                let fill = RGBColor(mix(255, 153), mix(255, 27), mix(255, 30));
                chart.draw_series([Rectangle::new([(x, y), (x + 1.0, y + 1.0)], fill.filled())])?;
                chart.draw_series([Rectangle::new(
                    [(x, y), (x + 1.0, y + 1.0)],
                    RGBColor(220, 220, 220).stroke_width(1),
                )])?;
                let ink = if t > 0.55 { WHITE } else { BLACK };
                chart.draw_series([Text::new(
                    fmt_num(v),
                    (x + 0.5, y + 0.5),
                    (FONT, text_size)
                        .into_font()
                        .color(&ink)
                        .pos(Pos::new(HPos::Center, VPos::Center)),
                )])?;
            }
        }
        let label = (FONT, 16)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Right, VPos::Center));
        for cpu in 0..self.cpus {
            let at = chart.backend_coord(&(cpu as f64 + 0.5, 0.0));
            label_below(root, at, 8, &cpu.to_string())?;
            let at = chart.backend_coord(&(0.0, n - 0.5 - cpu as f64));
            root.draw(&Text::new(
                cpu.to_string(),
                (at.0 - 10, at.1),
                label.clone(),
            ))?;
        }
        Ok(())
    }
}

// ---- (e) IPIs per operation by cause -------------------------------------

/// The colour of a shootdown cause, fixed across charts (by its place in
/// lab_core::cause's list).
pub fn cause_color(cause: ShootCause) -> RGBColor {
    const PALETTE: [RGBColor; ShootCause::COUNT] = [
        RGBColor(0x79, 0x70, 0x6e), // grey: other
        RGBColor(0xe1, 0x57, 0x59), // red: exit
        RGBColor(0xf2, 0x8e, 0x2b), // orange: exec
        RGBColor(0x4e, 0x79, 0xa7), // blue: munmap
        RGBColor(0x76, 0xb7, 0xb2), // teal: mmap_replace
        RGBColor(0x59, 0xa1, 0x4f), // green: mprotect
        RGBColor(0xed, 0xc9, 0x48), // yellow: cow
        RGBColor(0xb0, 0x7a, 0xa1), // purple: fork_protect
        RGBColor(0x9c, 0x75, 0x5f), // brown: ptp_free
        RGBColor(0xff, 0x9d, 0xa7), // pink: shared_page
        RGBColor(0x1b, 0x6e, 0x6a), // dark teal: kernel
        RGBColor(0x2f, 0x2f, 0x2f), // near black: selftest
    ];
    PALETTE[cause as usize]
}

/// The causes with a non-zero median `ipis_per_op.cause.<cause>` or
/// `spared_per_op.cause.<cause>` in any of `groups`, in lab_core::cause's
/// order.
pub fn causes_present(groups: &[&GroupSummary]) -> Vec<ShootCause> {
    ShootCause::ALL
        .into_iter()
        .filter(|c| {
            groups.iter().any(|g| {
                [cause_figure(*c), spared_figure(*c)]
                    .iter()
                    .any(|f| g.median(f).is_some_and(|v| v > 0.0))
            })
        })
        .collect()
}

/// `ipis_per_op.cause.<cause>`.
pub fn cause_figure(cause: ShootCause) -> String {
    format!("{CAUSE_FIGURE_PREFIX}{}", cause.name())
}

/// `spared_per_op.cause.<cause>`.
pub fn spared_figure(cause: ShootCause) -> String {
    format!("{SPARED_FIGURE_PREFIX}{}", cause.name())
}

/// `color` washed out towards white, for what a shortcut spared.
pub(super) fn pale(color: RGBColor) -> RGBColor {
    let mix = |c: u8| (c as u16 + 2 * 255).div_ceil(3) as u8;
    RGBColor(mix(color.0), mix(color.1), mix(color.2))
}

/// Stacked bars of shootdown IPIs per operation by cause (median over
/// reps of each cause's figure, linear scale), one bar per variant, at the
/// workload's largest CPU count. None when no run of it counted causes or
/// sent a shootdown IPI.
pub struct CauseChart {
    name: String,
    title: String,
    accel: String,
    cpus: u32,
    causes: Vec<ShootCause>,
    /// variant -> median IPIs/op sent, and spared by the variant's
    /// shortcut, per cause (in `causes` order).
    bars: Vec<(String, Vec<f64>, Vec<f64>)>,
}

impl CauseChart {
    pub fn new(groups: &[&GroupSummary], name: &str, title: &str) -> Option<Self> {
        let cpus = *cpus_of(groups).last()?;
        let these: Vec<&GroupSummary> = groups
            .iter()
            .filter(|g| g.key.cpus == cpus)
            .copied()
            .collect();
        let causes = causes_present(&these);
        if causes.is_empty() {
            return None;
        }
        let bars = variants_of(&these)
            .into_iter()
            .filter_map(|v| {
                let g = these.iter().find(|g| g.key.variant == v)?;
                g.median(&cause_figure(ShootCause::Other))?;
                let median = |f: String| g.median(&f).unwrap_or(0.0);
                let sent = causes.iter().map(|c| median(cause_figure(*c))).collect();
                let spared = causes.iter().map(|c| median(spared_figure(*c))).collect();
                Some((v, sent, spared))
            })
            .collect();
        Some(CauseChart {
            name: name.to_string(),
            title: title.to_string(),
            accel: accels_of(&these),
            cpus,
            causes,
            bars,
        })
    }

    pub fn caption(&self) -> String {
        format!(
            "{}: shootdown IPIs per operation by cause, {}",
            self.title,
            cpus_label(self.cpus)
        )
    }
}

/// Pixels per variant row of the cause chart.
const CAUSE_ROW_PX: u32 = 26;
/// Room left of the cause chart's plot for the variant names.
const CAUSE_NAME_WIDTH: u32 = 200;

impl super::Chart for CauseChart {
    fn stem(&self) -> String {
        format!("causes-{}", self.name)
    }

    /// Tall enough for one row per variant (bars side by side left no
    /// room for 19 names under them) and for the cause legend.
    fn size(&self) -> (u32, u32) {
        let rows = HEADER_HEIGHT + 2 * 16 + 60 + self.bars.len() as u32 * CAUSE_ROW_PX;
        let legend: Vec<LegendRow> = self
            .causes
            .iter()
            .map(|c| LegendRow::Entry(c.name().to_string(), cause_color(*c)))
            .collect();
        // A few variants need no more than 420 pixels: bars no fatter.
        (1100, height_for_legend(420, &legend).max(rows))
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<(), DB> {
        let body = header(
            root,
            &format!(
                "{}: shootdown IPIs per operation by cause, {}",
                self.title,
                cpus_label(self.cpus)
            ),
            &format!(
                "bar = median over repetitions of each cause's IPIs/op; pale, right: IPIs \
                 the variant's shortcut spared; accel {}",
                self.accel
            ),
        )?;
        let (w, _) = body.dim_in_pixel();
        let (main, side) = body.split_horizontally(w - LEGEND_WIDTH);
        let top = self
            .bars
            .iter()
            .map(|(_, sent, spared)| sent.iter().chain(spared).sum::<f64>())
            .fold(0.0f64, f64::max);
        // Room right of the longest bar for its value.
        let ceil = if top > 0.0 { top * 1.18 } else { 1.0 };
        let n = self.bars.len().max(1) as f64;
        let mut chart = ChartBuilder::on(&main)
            .margin(16)
            .x_label_area_size(60)
            .y_label_area_size(CAUSE_NAME_WIDTH)
            .build_cartesian_2d(0f64..ceil, 0f64..n)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_label_formatter(&|v| fmt_num(*v))
            .x_desc("shootdown IPIs per operation")
            .axis_desc_style((FONT, 18))
            .label_style((FONT, 15))
            .draw()?;
        // The first variant on top.
        let row_y = |i: usize| n - 1.0 - i as f64;
        let mut last_role = None;
        for (i, (variant, sent, spared)) in self.bars.iter().enumerate() {
            let (y0, y1) = (row_y(i) + 0.18, row_y(i) + 0.82);
            // A rule between the roles' groups (seeds, techniques,
            // controls), which the bars come in.
            let role = variant_role(variant);
            if last_role.is_some_and(|r| r != role) {
                let y = row_y(i) + 1.0;
                chart.draw_series([PathElement::new(
                    [(0.0, y), (ceil, y)],
                    RGBColor(200, 200, 200).stroke_width(1),
                )])?;
            }
            last_role = Some(role);
            let mut x = 0.0;
            for (ci, &v) in sent.iter().enumerate() {
                if v > 0.0 {
                    let color = cause_color(self.causes[ci]);
                    chart.draw_series([Rectangle::new([(x, y0), (x + v, y1)], color.filled())])?;
                    x += v;
                }
            }
            // The value gives what was sent; the pale part after it is
            // what the base pmap would have sent on top.
            let sent_total = x;
            for (ci, &v) in spared.iter().enumerate() {
                if v > 0.0 {
                    let color = cause_color(self.causes[ci]);
                    chart.draw_series([
                        Rectangle::new([(x, y0), (x + v, y1)], pale(color).filled()),
                        Rectangle::new([(x, y0), (x + v, y1)], color.stroke_width(1)),
                    ])?;
                    x += v;
                }
            }
            let centre = row_y(i) + 0.5;
            let at = chart.backend_coord(&(x, centre));
            let value = (FONT, 15)
                .into_font()
                .color(&BLACK)
                .pos(Pos::new(HPos::Left, VPos::Center));
            root.draw(&Text::new(fmt_num(sent_total), (at.0 + 6, at.1), value))?;
            let at = chart.backend_coord(&(0.0, centre));
            let name = (FONT, 16)
                .into_font()
                .color(&BLACK)
                .pos(Pos::new(HPos::Right, VPos::Center));
            root.draw(&Text::new(variant.clone(), (at.0 - 8, at.1), name))?;
        }
        let entries: Vec<(String, RGBColor)> = self
            .causes
            .iter()
            .map(|c| (c.name().to_string(), cause_color(*c)))
            .collect();
        legend(&side, "cause", &entries)
    }
}
