//! Comparison charts (plotters, each in SVG and PNG) and an index page.
//!
//! From a result set, [`render_all`] draws:
//! - `ipis-per-op-<workload>`: IPIs per operation by variant, log scale,
//!   bars grouped by CPU count (median, whiskers min-max over reps);
//! - `rate-<workload>`: operations per second against CPU count, one
//!   panel per role of the variants ([`roles`]), one line per variant,
//!   whiskers min-max over reps, `fixed` dashed in the other panels;
//! - `ack-wait-cdf-<workload>`: the CDF of shootdown acknowledgement waits
//!   per variant at the workload's largest CPU count (from the summed
//!   `shoot.wait.ack.log2.*` histograms; charts only where reported);
//! - `heatmap-<variant>-<workload>-c<N>`: IPIs sent per (from, to) CPU
//!   pair for one workload and CPU count, per variant, counts in the cells;
//! - `causes-<workload>`: shootdown IPIs per operation by cause
//!   (`ipis_per_op.cause.*`), stacked, one row per variant, with the IPIs
//!   a variant's shortcut spared (`spared_per_op.cause.*`) stacked pale
//!   after them; at the workload's largest CPU count (charts only where
//!   causes were counted);
//! - when the results span several CPU counts, log-log scaling charts
//!   ([`scale`]): IPIs per operation and wait per shootdown against CPUs,
//!   and `boot-time-by-cpus`;
//! - when runs carry the memory-system model's figures (`model.<profile>.*`,
//!   `--accel tcg-model`), per profile and workload the MODELED charts of
//!   [`modeled`]: `model-<profile>-transfers-`, `-tlb-`, `-wait-<workload>`
//!   and `model-<profile>-hot-lines-<workload>-c<N>` (hot lines named by
//!   kernel symbol, [`symbols`], when `<results>/logs/<run>.cmd` names the
//!   ELF), in a section per profile;
//! - `index.md` (embeds the PNGs) and `index.html` (embeds the SVGs), first
//!   each variant against `fixed` per workload and accelerator (`against`:
//!   better or worse only where the gate's statistics say so), last the
//!   key figures in a table.
//!
//! Every variant keeps one colour on every chart ([`palette`]), legends
//! list the variants by role and are never cut off, and no label is drawn
//! over another (tests/lab/charts.rs checks all three with the default
//! matrix's 19 variants). Figures come from runs whose outcome is `ok`;
//! the index table counts every outcome. Text is laid out with a font
//! embedded in the binary ([`font`]), so rendering needs no system fonts.

mod against;
mod charts;
mod index;
pub mod modeled;
pub mod palette;
pub mod roles;
mod scale;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Once;

use anyhow::{anyhow, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::results::model::ResultRow;
use crate::results::summary::{summarize, GroupSummary};

pub use charts::{CauseChart, CdfChart, HeatmapChart, IpiBarChart, RateChart};
pub use palette::variant_color;
pub use roles::{variant_role, Role};

/// Choices for [`render_all_with`].
#[derive(Clone, Debug, Default)]
pub struct PlotOptions {
    /// The workload of the heatmaps (default: forkexit if it has pair
    /// data, else the first workload that has).
    pub heatmap_workload: Option<String>,
    /// Their CPU count (default: the largest with pair data).
    pub heatmap_cpus: Option<u32>,
    /// The results folder the rows came from, whose `logs/<run>.cmd` name
    /// each run's kernel ELF (symbol names on the model's hot-line
    /// charts). Default: the output folder's parent when it has `logs/`
    /// (`harness plot` writes to `<results>/charts`).
    pub results_dir: Option<PathBuf>,
}

/// Font family name every chart uses; registered by [`font`].
pub const FONT: &str = "sans-serif";

/// Registers the embedded font (Ubuntu Light, shipped as bytes by the
/// `epaint_default_fonts` crate under the Ubuntu Font Licence) with
/// plotters once. An embedded font rather than fontconfig/freetype keeps
/// rendering identical on every machine and free of system packages.
pub fn font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let bytes = epaint_default_fonts::UBUNTU_LIGHT;
        for style in [FontStyle::Normal, FontStyle::Bold] {
            // The bytes are a valid font shipped by the crate; failing here
            // would be a build problem, not an input problem.
            if plotters::style::register_font(FONT, style, bytes).is_err() {
                panic!("embedded font failed to load");
            }
        }
    });
}

/// A chart that draws itself on any plotters backend.
pub trait Chart {
    /// File name without extension.
    fn stem(&self) -> String;
    /// Pixel size.
    fn size(&self) -> (u32, u32) {
        (1100, 620)
    }
    /// Draws onto `root` (already white).
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>>;
}

/// Renders `chart` as `<stem>.svg` and `<stem>.png` in `dir`, each drawn
/// into a temporary file and renamed into place. Returns both paths.
pub fn render<C: Chart>(chart: &C, dir: &Path) -> Result<Vec<PathBuf>> {
    font();
    let stem = chart.stem();
    let size = chart.size();
    let svg = dir.join(format!("{stem}.svg"));
    let png = dir.join(format!("{stem}.png"));
    let tmp_svg = dir.join(format!(".tmp-{stem}.svg"));
    let tmp_png = dir.join(format!(".tmp-{stem}.png"));
    let fail = |path: &Path, e: String| anyhow!("drawing {}: {e}", path.display());
    {
        let root = SVGBackend::new(&tmp_svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(&svg, e.to_string()))?;
        chart.draw(&root).map_err(|e| fail(&svg, e.to_string()))?;
        root.present().map_err(|e| fail(&svg, e.to_string()))?;
    }
    {
        let root = BitMapBackend::new(&tmp_png, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(&png, e.to_string()))?;
        chart.draw(&root).map_err(|e| fail(&png, e.to_string()))?;
        root.present().map_err(|e| fail(&png, e.to_string()))?;
    }
    for (tmp, path) in [(&tmp_svg, &svg), (&tmp_png, &png)] {
        fs::rename(tmp, path).with_context(|| format!("renaming into {}", path.display()))?;
    }
    Ok(vec![svg, png])
}

/// `forkexit` or `forkexit-touch-on`: a workload (and params) as a file
/// name part.
fn slug(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect::<String>()
        .trim_matches('-')
        .to_string()
}

/// The (workload, params) pairs present, in the groups' order.
fn workloads(groups: &[GroupSummary]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for g in groups {
        let w = (g.key.workload.clone(), g.key.params.clone());
        if !out.contains(&w) {
            out.push(w);
        }
    }
    out
}

/// `forkexit [touch=on]` for titles.
fn workload_title(workload: &str, params: &str) -> String {
    if params.is_empty() {
        workload.to_string()
    } else {
        format!("{workload} [{}]", params.replace(';', ", "))
    }
}

/// Draws every chart for `rows` into `out_dir` (created if needed) with
/// default options, plus the index pages. Returns every file written.
pub fn render_all(rows: &[ResultRow], out_dir: &Path) -> Result<Vec<PathBuf>> {
    render_all_with(rows, out_dir, &PlotOptions::default())
}

/// [`render_all`] with explicit options.
pub fn render_all_with(
    rows: &[ResultRow],
    out_dir: &Path,
    opts: &PlotOptions,
) -> Result<Vec<PathBuf>> {
    fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let groups = summarize(rows);
    let mut written = Vec::new();
    let mut sections = Vec::new();
    for (workload, params) in workloads(&groups) {
        let these: Vec<&GroupSummary> = groups
            .iter()
            .filter(|g| g.key.workload == workload && g.key.params == params)
            .collect();
        let name = slug(&format!("{workload}-{params}"));
        let title = workload_title(&workload, &params);
        let mut charts = Vec::new();
        if let Some(c) = IpiBarChart::new(&these, &name, &title) {
            charts.push((c.stem(), c.caption()));
            written.extend(render(&c, out_dir)?);
        }
        if let Some(c) = RateChart::new(&these, &name, &title) {
            charts.push((c.stem(), c.caption()));
            written.extend(render(&c, out_dir)?);
        }
        if let Some(c) = CdfChart::new(&these, &name, &title) {
            charts.push((c.stem(), c.caption()));
            written.extend(render(&c, out_dir)?);
        }
        if let Some(c) = CauseChart::new(&these, &name, &title) {
            charts.push((c.stem(), c.caption()));
            written.extend(render(&c, out_dir)?);
        }
        sections.push(index::Section { title, charts });
    }
    let heatmaps = HeatmapChart::all(&groups, opts);
    if !heatmaps.is_empty() {
        let mut charts = Vec::new();
        for c in &heatmaps {
            charts.push((c.stem(), c.caption()));
            written.extend(render(c, out_dir)?);
        }
        sections.push(index::Section {
            title: format!(
                "IPI heatmaps: {}, {} CPUs",
                heatmaps[0].workload_title, heatmaps[0].cpus
            ),
            charts,
        });
    }
    let scaling = scale::charts(&groups);
    if !scaling.is_empty() {
        let mut charts = Vec::new();
        for c in &scaling {
            charts.push((c.stem(), c.caption()));
            written.extend(render(c, out_dir)?);
        }
        sections.push(index::Section {
            title: "Scaling with the CPU count".into(),
            charts,
        });
    }
    let results_dir = opts.results_dir.clone().or_else(|| {
        out_dir
            .parent()
            .filter(|p| p.join("logs").is_dir())
            .map(Path::to_path_buf)
    });
    for section in model_sections(rows, &groups, results_dir.as_deref(), out_dir, &mut written)? {
        sections.push(section);
    }
    written.extend(index::write(&groups, &sections, out_dir)?);
    Ok(written)
}

/// The memory-system model's charts ([`modeled`]), one section per cost
/// profile; none when no run has `model.` figures.
fn model_sections(
    rows: &[ResultRow],
    groups: &[GroupSummary],
    results_dir: Option<&Path>,
    out_dir: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<Vec<index::Section>> {
    let profiles = modeled::profiles_in(groups);
    if profiles.is_empty() {
        return Ok(Vec::new());
    }
    let kernels = modeled::Kernels::find(rows, results_dir);
    let mut per_profile: Vec<Vec<(String, String)>> = vec![Vec::new(); profiles.len()];
    for (workload, params) in workloads(groups) {
        let these: Vec<&GroupSummary> = groups
            .iter()
            .filter(|g| g.key.workload == workload && g.key.params == params)
            .collect();
        let name = slug(&format!("{workload}-{params}"));
        let title = workload_title(&workload, &params);
        // The lines are the model's, not the profile's: drawn once when
        // every profile lists the same.
        let runs: Vec<&crate::results::derive::RunFigures> =
            these.iter().flat_map(|g| g.runs.iter()).collect();
        let same = modeled::same_lines(&runs, &profiles);
        for (i, profile) in profiles.iter().enumerate() {
            let others: Vec<String> = profiles[1..].to_vec();
            let hot_same_in: Option<&[String]> = match (same, i) {
                (true, 0) => Some(&others),
                (true, _) => None,
                (false, _) => Some(&[]),
            };
            let c =
                modeled::WorkloadCharts::new(&these, profile, hot_same_in, &kernels, &name, &title);
            let charts = &mut per_profile[i];
            if let Some(c) = &c.transfers {
                charts.push((c.stem(), c.caption()));
                written.extend(render(c, out_dir)?);
            }
            if let Some(c) = &c.tlb {
                charts.push((c.stem(), c.caption()));
                written.extend(render(c, out_dir)?);
            }
            if let Some(c) = &c.wait {
                charts.push((c.stem(), c.caption()));
                written.extend(render(c, out_dir)?);
            }
            if let Some(c) = &c.hot {
                charts.push((c.stem(), c.caption()));
                written.extend(render(c, out_dir)?);
            }
        }
    }
    Ok(profiles
        .into_iter()
        .zip(per_profile)
        .filter(|(_, charts)| !charts.is_empty())
        .map(|(profile, charts)| index::Section {
            title: format!(
                "Modeled ({profile}): the memory-system model under tcg-model, {}",
                modeled::README
            ),
            charts,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::model::fixtures::matrix_rows;

    #[test]
    fn renders_every_chart_kind_readably() {
        let dir = tempfile::tempdir().unwrap();
        // TEST FIXTURE rows (made up, never measured).
        let rows = matrix_rows(3);
        let files = render_all(&rows, dir.path()).unwrap();
        // To look at the fixture charts: PMAPLAB_KEEP_PLOTS=/some/dir.
        if let Some(keep) = std::env::var_os("PMAPLAB_KEEP_PLOTS") {
            render_all(&rows, Path::new(&keep)).unwrap();
        }
        let names: Vec<String> = files
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        for expected in [
            "ipis-per-op-forkexit-touch-on.png",
            "rate-forkexit-touch-on.svg",
            "ack-wait-cdf-ipi-pingpong.png",
            "heatmap-openbsd-2010-forkexit-touch-on-c4.png",
            "heatmap-fixed-forkexit-touch-on-c4.svg",
            "index.md",
            "index.html",
        ] {
            assert!(
                names.iter().any(|n| n == expected),
                "{expected} not in {names:?}"
            );
        }
        for file in &files {
            let len = fs::metadata(file).unwrap().len();
            let name = file.to_string_lossy();
            if name.ends_with(".png") {
                assert!(len > 10_000, "{name} is only {len} bytes");
                let decoder = png::Decoder::new(fs::File::open(file).unwrap());
                let mut reader = decoder.read_info().unwrap();
                let mut buf = vec![0; reader.output_buffer_size()];
                let info = reader.next_frame(&mut buf).unwrap();
                assert!(info.width >= 600 && info.height >= 400);
                // Not blank: many pixels are not white.
                let inked = buf.chunks(3).filter(|p| p != &[255, 255, 255]).count();
                assert!(inked > 5_000, "{name}: only {inked} non-white pixels");
            } else if name.ends_with(".svg") {
                assert!(len > 3_000, "{name} is only {len} bytes");
                let text = fs::read_to_string(file).unwrap();
                assert!(text.contains("<text"), "{name} has no text");
            }
        }
        // No temporary file is left behind.
        for entry in fs::read_dir(dir.path()).unwrap() {
            let name = entry.unwrap().file_name();
            assert!(!name.to_string_lossy().starts_with(".tmp"), "{name:?}");
        }
        let md = fs::read_to_string(dir.path().join("index.md")).unwrap();
        assert!(md.contains("![") && md.contains(".png)"));
        assert!(
            md.contains("| openbsd-2010 | forkexit [touch=on] | 4 |"),
            "{md}"
        );
        let html = fs::read_to_string(dir.path().join("index.html")).unwrap();
        assert!(html.contains(".svg\""));
    }

    #[test]
    fn renders_the_cause_chart_and_table() {
        let dir = tempfile::tempdir().unwrap();
        // TEST FIXTURE rows (made up): each run's shoottlb IPIs said to
        // come from exit, its shootpage IPIs from copy-on-write.
        let mut rows = matrix_rows(1);
        let extra: Vec<ResultRow> = rows
            .iter()
            .filter(|r| r.cpu.is_none() && r.from.is_none())
            .filter_map(|r| {
                let cause = match r.metric.as_str() {
                    "ipi.sent.shoottlb" => "shoot.cause.exit.shoottlb.ipis",
                    "ipi.sent.shootpage" => "shoot.cause.cow.shootpage.ipis",
                    _ => return None,
                };
                let mut r = r.clone();
                r.metric = cause.into();
                Some(r)
            })
            .collect();
        assert!(!extra.is_empty());
        rows.extend(extra);
        let files = render_all(&rows, dir.path()).unwrap();
        assert!(
            files
                .iter()
                .any(|f| f.ends_with("causes-forkexit-touch-on.svg")),
            "{files:?}"
        );
        let md = fs::read_to_string(dir.path().join("index.md")).unwrap();
        assert!(md.contains("## IPIs per op by cause"), "{md}");
        assert!(
            md.contains("| variant | workload | cpus | accel | cow |"),
            "{md}"
        );
        assert!(md.contains("causes-forkexit-touch-on.png"), "{md}");
        let html = fs::read_to_string(dir.path().join("index.html")).unwrap();
        assert!(html.contains("<h2>IPIs per op by cause</h2>"));
    }

    #[test]
    fn empty_results_still_give_an_index() {
        let dir = tempfile::tempdir().unwrap();
        let files = render_all(&[], dir.path()).unwrap();
        assert_eq!(files.len(), 2);
    }
}
