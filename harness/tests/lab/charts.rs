//! The charts read with every variant of the default matrix
//! (`variants/matrix.toml`, 19 variants): each variant has a colour of its
//! own, far enough from every other to be told apart, drawn in the chart;
//! every legend names every variant inside the picture; no label is
//! drawn over another; the index page says where its figures come from.
//! No QEMU: the rows are made up here (TEST FIXTURE), one run per variant,
//! CPU count and repetition.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use harness::plot::{self, render_all, variant_color};
use harness::results::{Cell, MatrixSpec, Metric, ResultRow, RunRecord};
use lab_core::report::Scope;
use palette::color_difference::Ciede2000;
use palette::{IntoColor, Lab, Srgb};
use plotters::style::{FontDesc, FontFamily, FontStyle};

/// The least CIEDE2000 difference between two variants' colours. About 2
/// is the least a viewer notices side by side; lines and legend boxes a
/// few pixels wide need far more (the default matrix's closest two were
/// 10 apart when this test was written, and are now about 18).
const MIN_COLOUR_DIFFERENCE: f32 = 15.0;

fn default_matrix_variants() -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../variants/matrix.toml");
    MatrixSpec::load(&path).unwrap().variants
}

/// TEST FIXTURE (made up, never measured): a forkexit run of the `i`-th
/// variant, its figures spread by `i` so that no two coincide.
fn run(variant: &str, i: usize, cpus: u32, rep: u32) -> RunRecord {
    let ops = 1000.0;
    let k = i as f64;
    let ipis = ops * (0.5 + 0.1 * k) * cpus as f64;
    let g = |name: &str, v: f64, unit: &str| Metric::new(name, v, unit, Scope::Global);
    let mut metrics = vec![
        g("workload.ops", ops, "count"),
        g(
            "workload.elapsed_ns",
            1e9 / (1.0 + 0.05 * k + 0.01 * rep as f64),
            "ns",
        ),
        g("ipi.sent.shootpage", ipis, "count"),
        g("ipi.received.shootpage", ipis, "count"),
        g("shoot.calls.shootpage", ipis, "count"),
        g("shoot.noipi.shootpage", 0.0, "count"),
        g("shoot.wait.ack", ipis * 3000.0, "cycles"),
        g("shoot.cause.exit.shootpage.ipis", ipis * 0.4, "count"),
        g("shoot.cause.munmap.shootpage.ipis", ipis * 0.6, "count"),
        g("shoot.cause.cow.shootpage.spared", ops * 0.1 * k, "count"),
    ];
    for b in 8..14u32 {
        let n = 10.0 + (b as f64 - 8.0 - k / 4.0).abs() * 5.0;
        metrics.push(g(&format!("shoot.wait.ack.log2.{b}"), n, "count"));
    }
    crate::common::fixture_run(
        Cell {
            variant: variant.into(),
            workload: "forkexit".into(),
            params: "touch=on".into(),
            cpus,
            accel: "tcg".into(),
            machine: "microvm".into(),
            rep,
        },
        Duration::from_secs(2),
        metrics,
    )
}

fn rows(variants: &[String]) -> Vec<ResultRow> {
    let mut rows = Vec::new();
    for rep in 1..=2 {
        for cpus in [2, 4] {
            for (i, v) in variants.iter().enumerate() {
                rows.extend(run(v, i, cpus, rep).rows());
            }
        }
    }
    rows
}

/// A text of an SVG as plotters' SVG backend writes it, and the box it
/// covers in pixels: (left, top, right, bottom).
#[derive(Debug)]
struct SvgText {
    text: String,
    bounds: (f64, f64, f64, f64),
}

fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let at = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let len = tag[at..].find('"')?;
    Some(&tag[at..at + len])
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// The SVG's size and every text in it, each measured with the font the
/// charts use (plotters writes `font-size` as its size / 1.24, anchors as
/// `text-anchor` and a `dy` of 0.76em, 0.5ex or -0.5ex for top, centre and
/// bottom, and turned text as `rotate(270, x, y)`).
fn svg_texts(svg: &str) -> ((f64, f64), Vec<SvgText>) {
    plot::font();
    let head = &svg[svg.find("<svg").unwrap()..];
    let size = (
        attr(head, "width").unwrap().parse().unwrap(),
        attr(head, "height").unwrap().parse().unwrap(),
    );
    let mut texts = Vec::new();
    let mut rest = svg;
    while let Some(start) = rest.find("<text") {
        let tag_end = start + rest[start..].find('>').unwrap();
        let tag = &rest[start..tag_end];
        let close = tag_end + rest[tag_end..].find("</text>").unwrap();
        let text = unescape(rest[tag_end + 1..close].trim());
        rest = &rest[close..];
        let num = |n: &str| attr(tag, n).unwrap().parse::<f64>().unwrap();
        let (x, y) = (num("x"), num("y"));
        let px = num("font-size") * 1.24;
        let style = if attr(tag, "font-weight") == Some("bold") {
            FontStyle::Bold
        } else {
            FontStyle::Normal
        };
        if text.is_empty() {
            continue;
        }
        let (w, h) = FontDesc::new(FontFamily::Name(plot::FONT), px, style)
            .box_size(&text)
            .unwrap_or_else(|e| panic!("measuring {text:?}: {e}"));
        let (w, h) = (w as f64, h as f64);
        let (dx0, dx1) = match attr(tag, "text-anchor").unwrap() {
            "start" => (0.0, w),
            "middle" => (-w / 2.0, w / 2.0),
            _ => (-w, 0.0),
        };
        let (dy0, dy1) = match attr(tag, "dy").unwrap() {
            "0.76em" => (0.0, h),
            "0.5ex" => (-h / 2.0, h / 2.0),
            _ => (-h, 0.0),
        };
        let bounds = match attr(tag, "transform") {
            // rotate(270) about the anchor: (dx, dy) -> (dy, -dx).
            Some(t) if t.starts_with("rotate(270") => (x + dy0, y - dx1, x + dy1, y - dx0),
            Some(t) => panic!("a text turned by {t}: measure it here"),
            None => (x + dx0, y + dy0, x + dx1, y + dy1),
        };
        texts.push(SvgText { text, bounds });
    }
    (size, texts)
}

/// Pairs of texts whose boxes overlap by more than a pixel each way.
fn overlapping(texts: &[SvgText]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, a) in texts.iter().enumerate() {
        for b in &texts[i + 1..] {
            let (a0, a1) = ((a.bounds.0, a.bounds.1), (a.bounds.2, a.bounds.3));
            let (b0, b1) = ((b.bounds.0, b.bounds.1), (b.bounds.2, b.bounds.3));
            let x = a1.0.min(b1.0) - a0.0.max(b0.0);
            let y = a1.1.min(b1.1) - a0.1.max(b0.1);
            if x > 1.0 && y > 1.0 {
                out.push((a.text.clone(), b.text.clone()));
            }
        }
    }
    out
}

/// The colours of the PNG's pixels.
fn png_colours(path: &Path) -> ((u32, u32), BTreeSet<[u8; 3]>) {
    let decoder = png::Decoder::new(fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb, "{}", path.display());
    let colours = buf[..info.buffer_size()]
        .chunks(3)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    ((info.width, info.height), colours)
}

fn lab(c: plotters::style::RGBColor) -> Lab {
    Srgb::new(c.0, c.1, c.2)
        .into_format::<f32>()
        .into_linear()
        .into_color()
}

#[test]
fn every_default_matrix_variant_has_a_colour_far_from_the_others() {
    let variants = default_matrix_variants();
    assert!(variants.len() >= 19, "{variants:?}");
    let mut closest = (f32::MAX, String::new());
    for (i, a) in variants.iter().enumerate() {
        for b in &variants[i + 1..] {
            let d = lab(variant_color(a)).difference(lab(variant_color(b)));
            if d < closest.0 {
                closest = (d, format!("{a} and {b}"));
            }
        }
    }
    println!(
        "closest colours: {} (CIEDE2000 {:.1})",
        closest.1, closest.0
    );
    assert!(
        closest.0 >= MIN_COLOUR_DIFFERENCE,
        "{} are only {:.1} apart (CIEDE2000)",
        closest.1,
        closest.0
    );
}

#[test]
fn charts_of_the_default_matrix_name_and_colour_every_variant_without_overlaps() {
    let variants = default_matrix_variants();
    let dir = tempfile::tempdir().unwrap();
    let files = render_all(&rows(&variants), dir.path()).unwrap();
    if let Some(keep) = std::env::var_os("PMAPLAB_KEEP_PLOTS") {
        render_all(&rows(&variants), Path::new(&keep)).unwrap();
    }
    let chart = |stem: &str| -> PathBuf {
        let path = dir.path().join(format!("{stem}.svg"));
        assert!(files.contains(&path), "{stem} not drawn: {files:?}");
        path
    };
    // The charts with one mark and one legend entry per variant, and
    // the cause chart with one row per variant.
    let per_variant = [
        "ipis-per-op-forkexit-touch-on",
        "rate-forkexit-touch-on",
        "ack-wait-cdf-forkexit-touch-on",
    ];
    for stem in per_variant.iter().chain(&["causes-forkexit-touch-on"]) {
        let svg = fs::read_to_string(chart(stem)).unwrap();
        let ((w, h), texts) = svg_texts(&svg);
        for t in &texts {
            let (l, top, r, b) = t.bounds;
            assert!(
                l >= -1.0 && top >= -1.0 && r <= w + 1.0 && b <= h + 1.0,
                "{stem}: {:?} at {:?} is not inside {w}x{h}",
                t.text,
                t.bounds
            );
        }
        let missing: Vec<&String> = variants
            .iter()
            .filter(|v| !texts.iter().any(|t| &t.text == *v))
            .collect();
        assert!(missing.is_empty(), "{stem} does not name {missing:?}");
        let overlaps = overlapping(&texts);
        assert!(
            overlaps.is_empty(),
            "{stem}: labels over others: {overlaps:?}"
        );
        // The PNG is drawn by the same code at the same size; each
        // variant's colour is in it (its legend box at least).
        let ((pw, ph), colours) = png_colours(&dir.path().join(format!("{stem}.png")));
        assert_eq!((pw as f64, ph as f64), (w, h), "{stem}");
        if per_variant.contains(stem) {
            for v in &variants {
                let c = variant_color(v);
                let hex = format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2);
                assert!(
                    svg.to_uppercase().contains(&hex),
                    "{stem}.svg: no {v} ({hex})"
                );
                assert!(colours.contains(&[c.0, c.1, c.2]), "{stem}.png: no {v}");
            }
        }
    }
    // The index page embeds them and says what plain TCG's figures can
    // speak for; two repetitions colour no ratio.
    let html = fs::read_to_string(dir.path().join("index.html")).unwrap();
    for stem in per_variant {
        assert!(html.contains(&format!("src=\"{stem}.svg\"")), "{stem}");
    }
    assert!(html.contains("plain TCG: counts the workload fixes are exact"));
    assert!(!html.contains("<td class=\"better\""), "coloured noise");
    assert!(!html.contains("<td class=\"worse\""), "coloured noise");
    for v in variants.iter().filter(|v| *v != "fixed") {
        assert!(
            html.contains(&format!("<tr><td>{v}</td>")),
            "{v} not in the overview"
        );
    }
}

/// The same checks on charts already drawn from real results:
/// `PMAPLAB_CHARTS=runs/matrix-latest/charts cargo test -p harness --test
/// lab charts::drawn -- --ignored` counts, over every SVG there, the texts
/// outside the picture and the pairs of labels drawn over each other.
#[test]
#[ignore = "reads charts drawn elsewhere (PMAPLAB_CHARTS)"]
fn drawn_charts_have_no_label_over_another() {
    let dir = PathBuf::from(std::env::var_os("PMAPLAB_CHARTS").expect("PMAPLAB_CHARTS"));
    let (mut charts, mut outside, mut overlaps) = (0, Vec::new(), Vec::new());
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "svg") {
            continue;
        }
        charts += 1;
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let ((w, h), texts) = svg_texts(&fs::read_to_string(&path).unwrap());
        for t in &texts {
            let (l, top, r, b) = t.bounds;
            if l < -1.0 || top < -1.0 || r > w + 1.0 || b > h + 1.0 {
                outside.push(format!("{name}: {}", t.text));
            }
        }
        overlaps.extend(
            overlapping(&texts)
                .into_iter()
                .map(|(a, b)| format!("{name}: {a} / {b}")),
        );
    }
    println!(
        "{charts} charts: {} texts outside, {} overlapping pairs",
        outside.len(),
        overlaps.len()
    );
    assert!(charts > 0, "no SVG in {}", dir.display());
    assert!(outside.is_empty(), "{outside:#?}");
    assert!(overlaps.is_empty(), "{overlaps:#?}");
}
