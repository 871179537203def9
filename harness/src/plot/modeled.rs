//! Charts of the memory-system model (`--accel tcg-model`, model/README.md):
//! its figures are *modeled*, never measured, and every title and axis
//! here says so, with the cost profile's name.
//!
//! Per profile (`model.<profile>.*`) and per workload:
//! - `model-<profile>-transfers-<workload>`: cache-line transfers per op
//!   (`per_op.coh.misses`) by variant, bars grouped by CPU count, the
//!   false-sharing part (`per_op.coh.false_sharing`) pale on top;
//! - `model-<profile>-tlb-<workload>`: TLB misses per op
//!   (`per_op.tlb.misses`), refills (`per_op.tlb.refills`: misses on an
//!   entry an INVLPG or flush removed) pale on top;
//! - `model-<profile>-wait-<workload>`: the initiator's modeled wait per
//!   shootdown (`wait_per_shootdown`, cycles), median and min-max;
//! - `model-<profile>-hot-lines-<workload>-c<N>`: the 8 hottest lines of
//!   each variant at the workload's largest CPU count (`hot.<r>.*`, first
//!   ok repetition), transfers per op with the false-sharing part pale,
//!   labelled by physical address and, when a run log names the kernel ELF
//!   and it still matches the run (its doorbell address), by symbol
//!   ([`super::symbols`]). The lines do not depend on the profile (only
//!   costs do), so when they are the same under every profile they are
//!   drawn once, for the first.
//!
//! The same helpers ([`profiles_of`], [`hot_lines`]) serve `harness
//! explain`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::charts::{
    cpus_label, cpus_of, figure_median_min_max, fmt_si, header, label_below, legend, pale,
    variant_legend, variants_of, GREY, LEGEND_WIDTH,
};
use super::{variant_color, FONT};
use crate::results::derive::{RunFigures, MODEL_PREFIX};
use crate::results::model::{Cell, ResultRow};
use crate::results::summary::{fmt_num, GroupSummary};
use crate::symbols::{Place, Symbolizer, KERNEL_VMA};

type DrawResult<T, DB> = Result<T, DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// How many hot lines a variant's panel shows.
pub const HOT_SHOWN: usize = 8;

/// Where the pointer to the model's own description is.
pub const README: &str = "model/README.md";

/// The cost profiles a run's model metrics are under, sorted: every
/// `<p>` of a `model.<p>.coh.misses` (each profile reports its counters;
/// the plugin's own `model.hint.*`, `model.turns` are no profile).
pub fn profiles_of(f: &RunFigures) -> Vec<String> {
    let mut out = BTreeSet::new();
    for name in f.totals.keys() {
        if let Some(p) = name
            .strip_prefix(MODEL_PREFIX)
            .and_then(|r| r.strip_suffix(".coh.misses"))
            .filter(|p| !p.contains('.'))
        {
            out.insert(p.to_string());
        }
    }
    out.into_iter().collect()
}

/// The profiles of every run in `groups`, sorted.
pub fn profiles_in(groups: &[GroupSummary]) -> Vec<String> {
    let mut out = BTreeSet::new();
    for g in groups {
        for r in &g.runs {
            out.extend(profiles_of(r));
        }
    }
    out.into_iter().collect()
}

/// One of the model's hot lines (`model.<p>.hot.<rank>.*`).
#[derive(Clone, Debug, PartialEq)]
pub struct HotLine {
    pub rank: usize,
    /// Guest physical address of the 64-byte line.
    pub paddr: u64,
    pub transfers: f64,
    pub false_sharing: f64,
}

/// The run's hot lines under `profile`, hottest first.
pub fn hot_lines(f: &RunFigures, profile: &str) -> Vec<HotLine> {
    let mut out = Vec::new();
    for rank in 0.. {
        let get = |what: &str| f.total(&format!("{MODEL_PREFIX}{profile}.hot.{rank}.{what}"));
        let Some(paddr) = get("paddr") else { break };
        out.push(HotLine {
            rank,
            paddr: paddr as u64,
            transfers: get("transfers").unwrap_or(0.0),
            false_sharing: get("false_sharing").unwrap_or(0.0),
        });
    }
    out
}

/// Whether every run of `runs` lists the same hot lines under each of
/// `profiles` (the model's costs differ by profile, its lines should not).
pub fn same_lines(runs: &[&RunFigures], profiles: &[String]) -> bool {
    runs.iter().all(|r| {
        let first = profiles.first().map(|p| hot_lines(r, p));
        profiles.iter().all(|p| Some(hot_lines(r, p)) == first)
    })
}

// ---- The kernel ELF of each run (for symbol names) ------------------------

/// The kernel ELFs of the runs, found through the run logs beside the
/// results (`<results>/logs/<run_id>.cmd`, QEMU's `-kernel`), each checked
/// against the run by its doorbell address (the plugin's `doorbell=`).
#[derive(Default)]
pub struct Kernels {
    by_cell: BTreeMap<Cell, PathBuf>,
    symbolizers: BTreeMap<PathBuf, Symbolizer>,
    /// Why some runs have addresses only (one line per reason).
    pub notes: BTreeSet<String>,
}

impl Kernels {
    /// Looks for the logs of `rows`' model runs in `results_dir/logs`.
    pub fn find(rows: &[ResultRow], results_dir: Option<&Path>) -> Kernels {
        let mut k = Kernels::default();
        let mut seen = BTreeSet::new();
        for row in rows.iter().filter(|r| {
            r.metric.starts_with(MODEL_PREFIX) && r.metric.contains(".hot.") && r.cpu.is_none()
        }) {
            if !seen.insert(row.run_id.clone()) {
                continue;
            }
            let Some(dir) = results_dir else {
                k.notes
                    .insert("addresses only: no results folder to find the run logs in".into());
                continue;
            };
            let cmd = dir.join("logs").join(format!("{}.cmd", row.run_id));
            let Ok(text) = std::fs::read_to_string(&cmd) else {
                k.notes.insert(format!(
                    "addresses only where no run log names the kernel ELF ({}/logs/*.cmd)",
                    dir.display()
                ));
                continue;
            };
            let Some((elf, doorbell)) = parse_cmd(&text) else {
                k.notes
                    .insert(format!("addresses only: {} names no kernel", cmd.display()));
                continue;
            };
            if !k.symbolizers.contains_key(&elf) {
                match Symbolizer::from_elf(&elf) {
                    Ok(s) => {
                        k.symbolizers.insert(elf.clone(), s);
                    }
                    Err(e) => {
                        k.notes.insert(format!("addresses only: {e:#}"));
                        continue;
                    }
                }
            }
            if let Some(want) = doorbell {
                if crate::model::doorbell(&elf).ok() != Some(want) {
                    k.notes.insert(format!(
                        "addresses only for runs whose kernel was rebuilt since ({}: its \
                         doorbell moved)",
                        elf.file_name().unwrap_or_default().to_string_lossy()
                    ));
                    continue;
                }
            }
            k.by_cell.insert(row.cell(), elf);
        }
        k
    }

    /// The symbolizer of the run of `cell`, if its kernel was found.
    pub fn for_cell(&self, cell: &Cell) -> Option<&Symbolizer> {
        self.symbolizers.get(self.by_cell.get(cell)?)
    }

    /// The ELF files used, for subtitles.
    pub fn files(&self) -> Vec<String> {
        let set: BTreeSet<String> = self
            .by_cell
            .values()
            .map(|p| {
                p.file_name()
                    .map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into())
            })
            .collect();
        set.into_iter().collect()
    }
}

/// The `-kernel` path and the plugin's `doorbell=` address in a run's
/// QEMU command line (as `<run>.cmd` holds it, shell-quoted).
pub fn parse_cmd(text: &str) -> Option<(PathBuf, Option<u64>)> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "-kernel")?;
    let path = words.get(at + 1)?.trim_matches(|c| c == '\'' || c == '"');
    let doorbell = text.split([',', ' ', '\'']).find_map(|w| {
        let hex = w.strip_prefix("doorbell=")?;
        u64::from_str_radix(hex.trim_start_matches("0x"), 16).ok()
    });
    Some((PathBuf::from(path), doorbell))
}

// ---- (a), (b) stacked per-op bars -------------------------------------------

/// Which stacked chart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stack {
    /// Cache-line transfers, false sharing pale.
    Transfers,
    /// TLB misses, refills pale.
    Tlb,
}

impl Stack {
    fn figures(self, profile: &str) -> (String, String) {
        let f = |m: &str| format!("{MODEL_PREFIX}{profile}.per_op.{m}");
        match self {
            Stack::Transfers => (f("coh.misses"), f("coh.false_sharing")),
            Stack::Tlb => (f("tlb.misses"), f("tlb.refills")),
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Stack::Transfers => "transfers",
            Stack::Tlb => "tlb",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Stack::Transfers => "cache-line transfers per op",
            Stack::Tlb => "TLB misses per op",
        }
    }

    fn part(self) -> &'static str {
        match self {
            Stack::Transfers => "false sharing",
            Stack::Tlb => "refills",
        }
    }

    fn part_meaning(self) -> &'static str {
        match self {
            Stack::Transfers => "false sharing (bytes accessed did not overlap the writer's)",
            Stack::Tlb => "refills (of an entry an INVLPG or flush had removed)",
        }
    }
}

/// Bars of a modeled per-op figure by variant, grouped by CPU count, with
/// a part of it pale on top (medians over ok repetitions).
pub struct StackChart {
    kind: Stack,
    profile: String,
    name: String,
    title: String,
    cpus: Vec<u32>,
    variants: Vec<String>,
    /// (cpus index, variant index) -> (total, part).
    values: BTreeMap<(usize, usize), (f64, f64)>,
}

impl StackChart {
    pub fn new(
        kind: Stack,
        groups: &[&GroupSummary],
        profile: &str,
        name: &str,
        title: &str,
    ) -> Option<Self> {
        let (total_f, part_f) = kind.figures(profile);
        let cpus = cpus_of(groups);
        let variants = variants_of(groups);
        let mut values = BTreeMap::new();
        for g in groups {
            let Some(total) = g.median(&total_f) else {
                continue;
            };
            let part = g.median(&part_f).unwrap_or(0.0).min(total);
            let ci = cpus.iter().position(|&c| c == g.key.cpus)?;
            let vi = variants.iter().position(|v| *v == g.key.variant)?;
            values.insert((ci, vi), (total, part));
        }
        let cpus_used: BTreeSet<usize> = values.keys().map(|k| k.0).collect();
        let variants_used: BTreeSet<usize> = values.keys().map(|k| k.1).collect();
        if values.values().all(|v| v.0 <= 0.0) {
            return None;
        }
        // Only the CPU counts and variants that have the figure.
        let remap = |used: &BTreeSet<usize>| -> BTreeMap<usize, usize> {
            used.iter()
                .enumerate()
                .map(|(new, &old)| (old, new))
                .collect()
        };
        let (cm, vm) = (remap(&cpus_used), remap(&variants_used));
        Some(StackChart {
            kind,
            profile: profile.to_string(),
            name: name.to_string(),
            title: title.to_string(),
            cpus: cpus_used.iter().map(|&i| cpus[i]).collect(),
            variants: variants_used.iter().map(|&i| variants[i].clone()).collect(),
            values: values
                .into_iter()
                .map(|((c, v), x)| ((cm[&c], vm[&v]), x))
                .collect(),
        })
    }

    pub fn caption(&self) -> String {
        format!(
            "{}: {} by variant, {} pale, modeled ({})",
            self.title,
            self.kind.what(),
            self.kind.part(),
            self.profile
        )
    }
}

/// The axes of a modeled bar chart by CPU count: `slots` groups along x
/// (unlabelled: each group's bars are labelled where they are drawn),
/// 0..`ceil` on y, described `y_desc` and formatted by `fmt`.
fn cpu_axes<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    slots: f64,
    ceil: f64,
    y_desc: &str,
    fmt: &dyn Fn(&f64) -> String,
) -> DrawResult<ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>, DB> {
    let mut chart = ChartBuilder::on(area)
        .margin(16)
        .x_label_area_size(60)
        .y_label_area_size(90)
        .build_cartesian_2d(0f64..slots, 0f64..ceil)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_label_formatter(fmt)
        .y_desc(y_desc)
        .x_desc("CPUs")
        .axis_desc_style((FONT, 18))
        .label_style((FONT, 15))
        .draw()?;
    Ok(chart)
}

impl super::Chart for StackChart {
    fn stem(&self) -> String {
        format!(
            "model-{}-{}-{}",
            super::slug(&self.profile),
            self.kind.slug(),
            self.name
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<(), DB> {
        let body = header(
            root,
            &format!(
                "{}: {}, modeled ({})",
                self.title,
                self.kind.what(),
                self.profile
            ),
            &format!(
                "MODELED ({README}); bar = median over repetitions; pale top = {}",
                self.kind.part_meaning()
            ),
        )?;
        let (w, _) = body.dim_in_pixel();
        let (main, side) = body.split_horizontally(w - LEGEND_WIDTH);
        let top = self.values.values().map(|v| v.0).fold(0.0f64, f64::max);
        let ceil = if top > 0.0 { top * 1.15 } else { 1.0 };
        let n = self.cpus.len() as f64;
        let y_desc = format!("{}, modeled ({})", self.kind.what(), self.profile);
        let mut chart = cpu_axes(&main, n, ceil, &y_desc, &|v| fmt_num(*v))?;
        let slot = 0.8 / self.variants.len().max(1) as f64;
        for (&(ci, vi), &(total, part)) in &self.values {
            let x0 = ci as f64 + 0.1 + vi as f64 * slot;
            let x1 = x0 + slot * 0.9;
            let color = variant_color(&self.variants[vi]);
            let solid = total - part;
            chart.draw_series([Rectangle::new([(x0, 0.0), (x1, solid)], color.filled())])?;
            if part > 0.0 {
                chart.draw_series([
                    Rectangle::new([(x0, solid), (x1, total)], pale(color).filled()),
                    Rectangle::new([(x0, solid), (x1, total)], color.stroke_width(1)),
                ])?;
            }
            let at = chart.backend_coord(&((x0 + x1) / 2.0, total));
            let style = (FONT, 14)
                .into_font()
                .color(&BLACK)
                .pos(Pos::new(HPos::Center, VPos::Bottom));
            root.draw(&Text::new(fmt_si(total), (at.0, at.1 - 3), style))?;
        }
        for (ci, &cpus) in self.cpus.iter().enumerate() {
            let at = chart.backend_coord(&(ci as f64 + 0.5, 0.0));
            label_below(root, at, 8, &cpus_label(cpus))?;
        }
        let mut entries: Vec<(String, RGBColor)> = self
            .variants
            .iter()
            .map(|v| (v.clone(), variant_color(v)))
            .collect();
        entries.push((
            format!("pale top: {}", self.kind.part()),
            pale(RGBColor(120, 120, 120)),
        ));
        legend(&side, "variant", &entries)
    }
}

// ---- (c) the initiator's wait per shootdown ------------------------------

/// The initiator's modeled wait per shootdown by variant, grouped by CPU
/// count: median bar, min-max whisker over ok repetitions.
pub struct WaitChart {
    profile: String,
    name: String,
    title: String,
    cpus: Vec<u32>,
    variants: Vec<String>,
    values: BTreeMap<(usize, usize), (f64, f64, f64)>,
}

impl WaitChart {
    pub fn new(groups: &[&GroupSummary], profile: &str, name: &str, title: &str) -> Option<Self> {
        let figure = format!("{MODEL_PREFIX}{profile}.wait_per_shootdown");
        let these: Vec<&GroupSummary> = groups
            .iter()
            .filter(|g| g.median(&figure).is_some())
            .copied()
            .collect();
        let cpus = cpus_of(&these);
        let variants = variants_of(&these);
        let mut values = BTreeMap::new();
        for g in &these {
            let s = figure_median_min_max(g, &figure)?;
            let ci = cpus.iter().position(|&c| c == g.key.cpus)?;
            let vi = variants.iter().position(|v| *v == g.key.variant)?;
            values.insert((ci, vi), s);
        }
        values.values().any(|v| v.2 > 0.0).then(|| WaitChart {
            profile: profile.to_string(),
            name: name.to_string(),
            title: title.to_string(),
            cpus,
            variants,
            values,
        })
    }

    pub fn caption(&self) -> String {
        format!(
            "{}: the initiator's wait per shootdown by variant, modeled ({})",
            self.title, self.profile
        )
    }
}

impl super::Chart for WaitChart {
    fn stem(&self) -> String {
        format!("model-{}-wait-{}", super::slug(&self.profile), self.name)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<(), DB> {
        let body = header(
            root,
            &format!(
                "{}: initiator's wait per shootdown, modeled ({})",
                self.title, self.profile
            ),
            &format!(
                "MODELED ({README}): wait.cycles / wait.count on the profile's clocks; \
                 bar = median over repetitions, whisker = min-max"
            ),
        )?;
        let (w, _) = body.dim_in_pixel();
        let (main, side) = body.split_horizontally(w - LEGEND_WIDTH);
        let top = self.values.values().map(|v| v.2).fold(0.0f64, f64::max);
        let ceil = if top > 0.0 { top * 1.15 } else { 1.0 };
        let n = self.cpus.len() as f64;
        let y_desc = format!("wait per shootdown (cycles), modeled ({})", self.profile);
        let mut chart = cpu_axes(&main, n, ceil, &y_desc, &|v| fmt_si(*v))?;
        let slot = 0.8 / self.variants.len().max(1) as f64;
        for (&(ci, vi), &(med, lo, hi)) in &self.values {
            let x0 = ci as f64 + 0.1 + vi as f64 * slot;
            let (x1, xc) = (x0 + slot * 0.9, x0 + slot * 0.45);
            let color = variant_color(&self.variants[vi]);
            chart.draw_series([Rectangle::new([(x0, 0.0), (x1, med)], color.filled())])?;
            if hi > lo {
                chart.draw_series([ErrorBar::new_vertical(
                    xc,
                    lo,
                    med,
                    hi,
                    BLACK.stroke_width(1),
                    8,
                )])?;
            }
            let at = chart.backend_coord(&(xc, hi.max(med)));
            let style = (FONT, 14)
                .into_font()
                .color(&BLACK)
                .pos(Pos::new(HPos::Center, VPos::Bottom));
            root.draw(&Text::new(fmt_si(med), (at.0, at.1 - 3), style))?;
        }
        for (ci, &cpus) in self.cpus.iter().enumerate() {
            let at = chart.backend_coord(&(ci as f64 + 0.5, 0.0));
            label_below(root, at, 8, &cpus_label(cpus))?;
        }
        variant_legend(&side, &self.variants)
    }
}

// ---- (d) the hottest lines of each variant ---------------------------------

/// One variant's panel: its ops and its hottest lines with their places.
struct Panel {
    variant: String,
    ops: f64,
    lines: Vec<(HotLine, Option<Place>)>,
}

/// The hottest lines of each variant at the workload's largest CPU count,
/// one panel per variant, transfers per op with false sharing pale.
pub struct HotLinesChart {
    profile: String,
    /// Other profiles with the very same lines (drawn once).
    same_in: Vec<String>,
    name: String,
    title: String,
    cpus: u32,
    panels: Vec<Panel>,
    /// How the lines were named, a line each.
    naming: Vec<String>,
}

impl HotLinesChart {
    pub fn new(
        groups: &[&GroupSummary],
        profile: &str,
        same_in: &[String],
        kernels: &Kernels,
        name: &str,
        title: &str,
    ) -> Option<Self> {
        let first_ok = |g: &GroupSummary| -> Option<RunFigures> {
            g.runs
                .iter()
                .find(|r| r.outcome.is_ok() && !hot_lines(r, profile).is_empty())
                .cloned()
        };
        let cpus = groups
            .iter()
            .filter(|g| first_ok(g).is_some())
            .map(|g| g.key.cpus)
            .max()?;
        let mut panels = Vec::new();
        let mut named = false;
        for variant in variants_of(groups) {
            let Some(run) = groups
                .iter()
                .filter(|g| g.key.variant == variant && g.key.cpus == cpus)
                .find_map(|g| first_ok(g))
            else {
                continue;
            };
            let Some(ops) = run.ops().filter(|&o| o > 0.0) else {
                continue;
            };
            let sym = kernels.for_cell(&run.cell);
            named |= sym.is_some();
            let lines = hot_lines(&run, profile)
                .into_iter()
                .take(HOT_SHOWN)
                .map(|h| {
                    let place = sym.map(|s| s.place_line(h.paddr));
                    (h, place)
                })
                .collect();
            panels.push(Panel {
                variant,
                ops,
                lines,
            });
        }
        if panels.is_empty() {
            return None;
        }
        let mut naming = vec![if named {
            format!(
                "symbols from the kernel ELF each run booted ({} file{}, named by logs/<run>.cmd, \
                 checked by the doorbell address); image at KERNEL_VMA {KERNEL_VMA:#x} + physical",
                kernels.files().len(),
                if kernels.files().len() == 1 { "" } else { "s" }
            )
        } else {
            "physical addresses only".to_string()
        }];
        naming.extend(kernels.notes.iter().cloned());
        Some(HotLinesChart {
            profile: profile.to_string(),
            same_in: same_in.to_vec(),
            name: name.to_string(),
            title: title.to_string(),
            cpus,
            panels,
            naming,
        })
    }

    pub fn caption(&self) -> String {
        format!(
            "{}: the {HOT_SHOWN} hottest cache lines of each variant, {}, modeled ({}{})",
            self.title,
            cpus_label(self.cpus),
            self.profile,
            self.same_lines_note()
        )
    }

    fn note_height(&self) -> u32 {
        10 + 18 * self.naming.len() as u32
    }

    fn same_lines_note(&self) -> String {
        if self.same_in.is_empty() {
            String::new()
        } else {
            format!("; the same lines in {}", self.same_in.join(", "))
        }
    }
}

const PANEL_HEIGHT: u32 = 300;
const LINE_LABEL_WIDTH: u32 = 430;

impl super::Chart for HotLinesChart {
    fn stem(&self) -> String {
        format!(
            "model-{}-hot-lines-{}-c{}",
            super::slug(&self.profile),
            self.name,
            self.cpus
        )
    }

    fn size(&self) -> (u32, u32) {
        (
            1300,
            70 + self.note_height() + PANEL_HEIGHT * self.panels.len() as u32,
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<(), DB> {
        let body = header(
            root,
            &format!(
                "{}: hottest cache lines, {}, modeled ({}{})",
                self.title,
                cpus_label(self.cpus),
                self.profile,
                self.same_lines_note()
            ),
            &format!(
                "MODELED ({README}); lines ranked by transfers (a line last written by another \
                 CPU), first ok repetition; pale = false sharing"
            ),
        )?;
        let (note, body) = body.split_vertically(self.note_height());
        for (i, line) in self.naming.iter().enumerate() {
            note.draw(&Text::new(
                line.clone(),
                (20, 2 + 18 * i as i32),
                (FONT, 14).into_font().color(&GREY),
            ))?;
        }
        let top = self
            .panels
            .iter()
            .flat_map(|p| p.lines.iter().map(|(h, _)| h.transfers / p.ops))
            .fold(0.0f64, f64::max);
        let ceil = if top > 0.0 { top * 1.2 } else { 1.0 };
        let areas = body.split_evenly((self.panels.len(), 1));
        for (panel, area) in self.panels.iter().zip(&areas) {
            let color = variant_color(&panel.variant);
            let mut chart = ChartBuilder::on(area)
                .margin(10)
                .margin_right(30)
                .caption(
                    format!(
                        "{} ({} ops; {} hottest of its lines)",
                        panel.variant,
                        fmt_num(panel.ops),
                        panel.lines.len()
                    ),
                    (FONT, 18).into_font().style(FontStyle::Bold).color(&color),
                )
                .x_label_area_size(48)
                .y_label_area_size(LINE_LABEL_WIDTH)
                .build_cartesian_2d(0f64..ceil, 0f64..HOT_SHOWN as f64)?;
            chart
                .configure_mesh()
                .disable_y_mesh()
                .y_labels(0)
                .x_label_formatter(&|v| fmt_num(*v))
                .x_desc(format!(
                    "cache-line transfers per op, modeled ({})",
                    self.profile
                ))
                .axis_desc_style((FONT, 15))
                .label_style((FONT, 13))
                .draw()?;
            for (i, (h, place)) in panel.lines.iter().enumerate() {
                let y = HOT_SHOWN as f64 - 1.0 - i as f64;
                let (y0, y1) = (y + 0.15, y + 0.85);
                let total = h.transfers / panel.ops;
                let fs = (h.false_sharing / panel.ops).min(total);
                chart.draw_series([Rectangle::new(
                    [(0.0, y0), (total - fs, y1)],
                    color.filled(),
                )])?;
                if fs > 0.0 {
                    chart.draw_series([
                        Rectangle::new([(total - fs, y0), (total, y1)], pale(color).filled()),
                        Rectangle::new([(total - fs, y0), (total, y1)], color.stroke_width(1)),
                    ])?;
                }
                let at = chart.backend_coord(&(total, y + 0.5));
                root.draw(&Text::new(
                    format!(
                        "{} ({} false)",
                        fmt_num(h.transfers),
                        fmt_num(h.false_sharing)
                    ),
                    (at.0 + 6, at.1),
                    (FONT, 13)
                        .into_font()
                        .color(&BLACK)
                        .pos(Pos::new(HPos::Left, VPos::Center)),
                ))?;
                let label = match place {
                    Some(p) => format!("{:#x}  {}", h.paddr, p.short()),
                    None => format!("{:#x}", h.paddr),
                };
                let at = chart.backend_coord(&(0.0, y + 0.5));
                root.draw(&Text::new(
                    label,
                    (at.0 - 8, at.1),
                    (FONT, 14)
                        .into_font()
                        .color(&BLACK)
                        .pos(Pos::new(HPos::Right, VPos::Center)),
                ))?;
            }
        }
        Ok(())
    }
}

/// Every modeled chart for one profile and one workload's groups.
pub struct WorkloadCharts {
    pub transfers: Option<StackChart>,
    pub tlb: Option<StackChart>,
    pub wait: Option<WaitChart>,
    pub hot: Option<HotLinesChart>,
}

impl WorkloadCharts {
    /// `hot_same_in`: `None` to leave the hot lines out (drawn under
    /// another profile), else the other profiles with the same lines.
    pub fn new(
        groups: &[&GroupSummary],
        profile: &str,
        hot_same_in: Option<&[String]>,
        kernels: &Kernels,
        name: &str,
        title: &str,
    ) -> WorkloadCharts {
        WorkloadCharts {
            transfers: StackChart::new(Stack::Transfers, groups, profile, name, title),
            tlb: StackChart::new(Stack::Tlb, groups, profile, name, title),
            wait: WaitChart::new(groups, profile, name, title),
            hot: hot_same_in
                .and_then(|same| HotLinesChart::new(groups, profile, same, kernels, name, title)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_run_command_line() {
        // As harness writes `<run>.cmd` (model-try1's shoot-storm run).
        let text = "qemu-system-x86_64 -machine microvm -accel tcg -icount shift=0,sleep=off \
             -plugin /x/libpmaplab_model.so,profile=/x/skylake-sp.toml,out=a.model,\
             doorbell=0xffffffff80149000 -serial file:a.log \
             -kernel /work/main/target/pmaplab/kernels/fixed-811c9dc5.elf \
             -append 'workload=shoot-storm ops=300 model=on'";
        let (elf, doorbell) = parse_cmd(text).unwrap();
        assert_eq!(
            elf,
            PathBuf::from("/work/main/target/pmaplab/kernels/fixed-811c9dc5.elf")
        );
        assert_eq!(doorbell, Some(0xffff_ffff_8014_9000));
        assert_eq!(parse_cmd("qemu -m 256M"), None);
    }
}
