//! The index pages: `index.md` (PNG images, for GitHub and reviews) and
//! `index.html` (SVG images). In the order a reviewer reads them: first,
//! per workload, each variant against `fixed` (ratios of IPIs per
//! operation and of the operation rate, coloured better/worse in the html,
//! with the accelerator named); then the charts by section; last the full
//! key-figure table.

use std::path::{Path, PathBuf};

use anyhow::Result;

use lab_core::cause::ShootCause;

use super::charts::{cause_figure, causes_present, spared_figure};
use crate::results::csv::write_atomic;
use crate::results::summary::{fmt_num, GroupKey, GroupSummary};

/// The variant every other is set against in the overview.
pub const REFERENCE: &str = "fixed";

/// A ratio closer to 1 than this is shown as neither better nor worse.
const SAME_WITHIN: f64 = 0.02;

/// How a ratio against the reference reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tone {
    Better,
    Worse,
    Same,
    Unknown,
}

impl Tone {
    fn class(self) -> &'static str {
        match self {
            Tone::Better => "better",
            Tone::Worse => "worse",
            Tone::Same => "same",
            Tone::Unknown => "",
        }
    }

    fn word(self) -> &'static str {
        match self {
            Tone::Better => "better",
            Tone::Worse => "worse",
            Tone::Same => "same",
            Tone::Unknown => "",
        }
    }
}

/// `ratio` (variant / reference) of a figure where lower (or, with
/// `higher_better`, higher) is better: the text and its tone.
fn ratio_cell(v: Option<f64>, r: Option<f64>, higher_better: bool) -> Ratio {
    match (v, r) {
        (Some(v), Some(r)) if r != 0.0 => {
            let ratio = v / r;
            let tone = if (ratio - 1.0).abs() <= SAME_WITHIN {
                Tone::Same
            } else if (ratio > 1.0) == higher_better {
                Tone::Better
            } else {
                Tone::Worse
            };
            (format!("{}x", fmt_num(ratio)), tone)
        }
        // Both 0: no ratio to show (e.g. a workload without shootdowns).
        (Some(0.0), Some(_)) => ("both 0".into(), Tone::Unknown),
        (Some(_), Some(_)) => (
            "inf".into(),
            if higher_better {
                Tone::Better
            } else {
                Tone::Worse
            },
        ),
        _ => ("-".into(), Tone::Unknown),
    }
}

/// A ratio's text and tone.
type Ratio = (String, Tone);

/// One workload's block of the overview.
struct Overview {
    /// `forkexit [touch=on, loops=300]`.
    workload: String,
    /// `tcg-icount, microvm` (every accelerator the block's rows ran on).
    accel: String,
    /// (variant, cpus, IPIs/op ratio, rate ratio) against the reference.
    rows: Vec<(String, u32, Ratio, Ratio)>,
}

/// Each variant against [`REFERENCE`] in the same workload, params, CPU
/// count, accelerator and machine; workloads without the reference, and
/// rows with neither ratio defined, are left out.
fn overview(groups: &[GroupSummary]) -> Vec<Overview> {
    let mut out: Vec<Overview> = Vec::new();
    let reference = |k: &GroupKey| {
        groups.iter().find(|g| {
            g.key.variant == REFERENCE
                && GroupKey {
                    variant: REFERENCE.into(),
                    ..k.clone()
                } == g.key
        })
    };
    for g in groups.iter().filter(|g| g.key.variant != REFERENCE) {
        let Some(r) = reference(&g.key) else { continue };
        let workload = workload_name(&g.key);
        let ipi = ratio_cell(g.median("ipis_per_op"), r.median("ipis_per_op"), false);
        let rate = ratio_cell(g.median("ops_per_s"), r.median("ops_per_s"), true);
        if ipi.1 == Tone::Unknown && rate.1 == Tone::Unknown {
            continue;
        }
        let accel = format!("{}, {}", g.key.accel, g.key.machine);
        let block = match out.iter_mut().find(|o| o.workload == workload) {
            Some(b) => b,
            None => {
                out.push(Overview {
                    workload,
                    accel: String::new(),
                    rows: Vec::new(),
                });
                out.last_mut().expect("just pushed")
            }
        };
        if !block.accel.split("; ").any(|a| a == accel) {
            if !block.accel.is_empty() {
                block.accel.push_str("; ");
            }
            block.accel.push_str(&accel);
        }
        block
            .rows
            .push((g.key.variant.clone(), g.key.cpus, ipi, rate));
    }
    out
}

fn workload_name(key: &GroupKey) -> String {
    if key.params.is_empty() {
        key.workload.clone()
    } else {
        format!("{} [{}]", key.workload, key.params.replace(';', ", "))
    }
}

const OVERVIEW_INTRO: &str = "Each variant against `fixed` (the OpenBSD fix) in the same cell: \
     the ratio of the medians, variant / fixed. IPIs per operation: below 1 is better; \
     operation rate: above 1 is better. Within 2 % counts as the same.";

/// A section of charts: (file stem, caption) pairs.
pub struct Section {
    pub title: String,
    pub charts: Vec<(String, String)>,
}

/// The key-figure table's header and rows (plain text cells).
fn table(groups: &[GroupSummary]) -> (Vec<&'static str>, Vec<Vec<String>>) {
    let header = vec![
        "variant",
        "workload",
        "cpus",
        "accel",
        "ops/s (median)",
        "IPIs/op (median)",
        "no-IPI share",
        "runs",
    ];
    let fig = |g: &GroupSummary, f: &str| g.median(f).map(fmt_num).unwrap_or_else(|| "-".into());
    let rows = groups
        .iter()
        .map(|g| {
            let workload = if g.key.params.is_empty() {
                g.key.workload.clone()
            } else {
                format!("{} [{}]", g.key.workload, g.key.params.replace(';', ", "))
            };
            vec![
                g.key.variant.clone(),
                workload,
                g.key.cpus.to_string(),
                g.key.accel.clone(),
                fig(g, "ops_per_s"),
                fig(g, "ipis_per_op"),
                g.median("noipi_share")
                    .map(|v| format!("{:.1}%", v * 100.0))
                    .unwrap_or_else(|| "-".into()),
                g.outcome_text(),
            ]
        })
        .collect();
    (header, rows)
}

fn markdown(groups: &[GroupSummary], sections: &[Section]) -> String {
    let mut out = String::from("# pmaplab results\n\n");
    out.push_str(
        "Figures are medians over the repetitions that completed (`ok`); \
         the runs column counts every outcome. Generated by `harness plot`.\n\n",
    );
    if groups.is_empty() {
        out.push_str("_No results._\n");
        return out;
    }
    let blocks = overview(groups);
    if !blocks.is_empty() {
        out.push_str(&format!("## Against {REFERENCE}\n\n{OVERVIEW_INTRO}\n"));
        for b in &blocks {
            out.push_str(&format!("\n### {} ({})\n\n", b.workload, b.accel));
            out.push_str(
                "| variant | cpus | IPIs/op vs fixed | rate vs fixed |\n|---|---|---|---|\n",
            );
            for (variant, cpus, ipi, rate) in &b.rows {
                let shown = |c: &(String, Tone)| match c.1 {
                    Tone::Better | Tone::Worse => format!("{} ({})", c.0, c.1.word()),
                    _ => c.0.clone(),
                };
                out.push_str(&format!(
                    "| {variant} | {cpus} | {} | {} |\n",
                    shown(ipi),
                    shown(rate)
                ));
            }
        }
        out.push('\n');
    }
    for s in sections {
        out.push_str(&format!("\n## {}\n", s.title));
        if s.charts.is_empty() {
            out.push_str("\n_No chartable figures for this workload._\n");
        }
        for (stem, caption) in &s.charts {
            let alt = caption.replace('[', "\\[").replace(']', "\\]");
            out.push_str(&format!("\n![{alt}]({stem}.png)\n"));
        }
    }
    out.push_str("\n## Key figures\n\n");
    let (header, rows) = table(groups);
    out.push_str(&md_table(&header, &rows));
    out
}

/// A markdown table (a cell's line breaks become spaces).
fn md_table(header: &[impl AsRef<str>], rows: &[Vec<String>]) -> String {
    let header: Vec<&str> = header.iter().map(AsRef::as_ref).collect();
    let mut out = format!(
        "| {} |\n|{}\n",
        header.join(" | "),
        "---|".repeat(header.len())
    );
    for row in rows {
        out.push_str(&format!("| {} |\n", row.join(" | ").replace('\n', " ")));
    }
    out
}

/// An HTML table, every header and cell escaped.
fn html_table(header: &[impl AsRef<str>], rows: &[Vec<String>]) -> String {
    let mut out = String::from("<table>\n<tr>");
    for h in header {
        out.push_str(&format!("<th>{}</th>", esc(h.as_ref())));
    }
    out.push_str("</tr>\n");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            out.push_str(&format!("<td>{}</td>", esc(cell)));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn html(groups: &[GroupSummary], sections: &[Section]) -> String {
    let mut out = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>pmaplab results</title>\n<style>\n\
         body { font-family: sans-serif; margin: 2em; max-width: 1250px; }\n\
         table { border-collapse: collapse; font-size: 0.9em; }\n\
         th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }\n\
         th { background: #f3f3f3; } td:nth-child(-n+2) { text-align: left; }\n\
         img { max-width: 100%; margin: 1em 0; border: 1px solid #eee; }\n\
         .overview { display: flex; flex-wrap: wrap; gap: 0 2em; }\n\
         .overview h3 { font-size: 1em; margin: 1em 0 0.4em; }\n\
         .overview td:nth-child(2) { text-align: right; }\n\
         .overview th:first-child { text-align: left; }\n\
         .accel { font-weight: normal; color: #666; }\n\
         td.better { background: #d7f0d2; color: #1a5c12; }\n\
         td.worse { background: #f8d4d0; color: #8a1c10; }\n\
         td.same { color: #666; }\n\
         </style>\n</head>\n<body>\n<h1>pmaplab results</h1>\n\
         <p>Figures are medians over the repetitions that completed (<code>ok</code>); \
         the runs column counts every outcome. Generated by <code>harness plot</code>.</p>\n",
    );
    if groups.is_empty() {
        out.push_str("<p><em>No results.</em></p>\n</body>\n</html>\n");
        return out;
    }
    let blocks = overview(groups);
    if !blocks.is_empty() {
        out.push_str(&format!(
            "<h2>Against {REFERENCE}</h2>\n<p>{}</p>\n<div class=\"overview\">\n",
            esc(OVERVIEW_INTRO).replace("`fixed`", "<code>fixed</code>")
        ));
        for b in &blocks {
            out.push_str(&format!(
                "<div class=\"block\"><h3>{} <span class=\"accel\">{}</span></h3>\n<table>\n\
                 <tr><th>variant</th><th>cpus</th><th>IPIs/op vs fixed</th><th>rate vs fixed</th></tr>\n",
                esc(&b.workload),
                esc(&b.accel)
            ));
            for (variant, cpus, ipi, rate) in &b.rows {
                let td = |c: &(String, Tone)| {
                    let title = if c.1.word().is_empty() {
                        String::new()
                    } else {
                        format!(" title=\"{}\"", c.1.word())
                    };
                    format!("<td class=\"{}\"{title}>{}</td>", c.1.class(), esc(&c.0))
                };
                out.push_str(&format!(
                    "<tr><td>{}</td><td>{cpus}</td>{}{}</tr>\n",
                    esc(variant),
                    td(ipi),
                    td(rate)
                ));
            }
            out.push_str("</table></div>\n");
        }
        out.push_str("</div>\n");
    }
    for s in sections {
        out.push_str(&format!("<h2>{}</h2>\n", esc(&s.title)));
        if s.charts.is_empty() {
            out.push_str("<p><em>No chartable figures for this workload.</em></p>\n");
        }
        for (stem, caption) in &s.charts {
            out.push_str(&format!(
                "<figure><img src=\"{}.svg\" alt=\"{}\"><figcaption>{}</figcaption></figure>\n",
                esc(stem),
                esc(caption),
                esc(caption)
            ));
        }
    }
    out.push_str("<h2>Key figures</h2>\n");
    let (header, rows) = table(groups);
    out.push_str(&html_table(&header, &rows));
    out.push_str("</body>\n</html>\n");
    out
}

const MUTANTS_MD: &str = "\n## Mutation score of the stale-TLB oracles\n\n\
    Which broken shootdown paths the oracles catch, per CPU count and accelerator: \
    [mutants.md](mutants.md) (`harness mutants`).\n";
const MUTANTS_HTML: &str = "<h2>Mutation score of the stale-TLB oracles</h2>\n\
    <p>Which broken shootdown paths the oracles catch: \
    <a href=\"mutants.md\">mutants.md</a> (<code>harness mutants</code>).</p>\n";

// ---- IPIs per op by cause (its own section, appended) ---------------------

/// The "IPIs per op by cause" table: one row per (variant, workload, cpus,
/// accel) group that counted causes, one column per cause that any of
/// them sent IPIs for (median `ipis_per_op.cause.<cause>`); None if no
/// group has one.
fn cause_table(groups: &[GroupSummary]) -> Option<(Vec<String>, Vec<Vec<String>>)> {
    let all: Vec<&GroupSummary> = groups.iter().collect();
    let causes = causes_present(&all);
    if causes.is_empty() {
        return None;
    }
    let mut header: Vec<String> = ["variant", "workload", "cpus", "accel"]
        .iter()
        .map(|h| h.to_string())
        .collect();
    header.extend(causes.iter().map(|c| c.name().to_string()));
    let rows = groups
        .iter()
        .filter(|g| g.median(&cause_figure(ShootCause::Other)).is_some())
        .map(|g| {
            let mut row = vec![
                g.key.variant.clone(),
                if g.key.params.is_empty() {
                    g.key.workload.clone()
                } else {
                    format!("{} [{}]", g.key.workload, g.key.params.replace(';', ", "))
                },
                g.key.cpus.to_string(),
                g.key.accel.clone(),
            ];
            row.extend(causes.iter().map(|c| {
                let sent = g
                    .median(&cause_figure(*c))
                    .map(fmt_num)
                    .unwrap_or_else(|| "-".into());
                match g.median(&spared_figure(*c)) {
                    Some(spared) if spared > 0.0 => {
                        format!("{sent} (+{} spared)", fmt_num(spared))
                    }
                    _ => sent,
                }
            }));
            row
        })
        .collect();
    Some((header, rows))
}

const CAUSES_NOTE: &str = "Shootdown IPIs per operation by the pmap operation that sent them \
    (median `ipis_per_op.cause.<cause>`; causes in lab_core::cause; columns only for causes \
    that sent or spared any). \"+x spared\" is what a variant's shortcut took out of that \
    cause's shootdowns (median `spared_per_op.cause.<cause>`: targets LATR queued for, lazy \
    CPUs lazy-tlb skipped, a dying pmap's CPUs dying-no-ipi skipped, the targets of the \
    shootpages no-flush-cow did not make): what the variant's base pmap would have sent on top.";

/// The cause table as a markdown section (empty if there is none).
fn cause_section_md(groups: &[GroupSummary]) -> String {
    let Some((header, rows)) = cause_table(groups) else {
        return String::new();
    };
    format!(
        "\n## IPIs per op by cause\n\n{CAUSES_NOTE}\n\n{}",
        md_table(&header, &rows)
    )
}

/// The cause table as an HTML section (empty if there is none).
fn cause_section_html(groups: &[GroupSummary]) -> String {
    let Some((header, rows)) = cause_table(groups) else {
        return String::new();
    };
    format!(
        "<h2>IPIs per op by cause</h2>\n<p>{}</p>\n{}",
        esc(CAUSES_NOTE),
        html_table(&header, &rows)
    )
}

/// Writes `index.md` and `index.html` into `dir`; returns their paths.
pub fn write(groups: &[GroupSummary], sections: &[Section], dir: &Path) -> Result<Vec<PathBuf>> {
    let md = dir.join("index.md");
    let page = dir.join("index.html");
    let mut md_text = markdown(groups, sections);
    let mut html_text = html(groups, sections);
    md_text.push_str(&cause_section_md(groups));
    if let Some(at) = html_text.rfind("</body>") {
        html_text.insert_str(at, &cause_section_html(groups));
    }
    // The oracles' mutation score (`harness mutants --out DIR` writes
    // DIR/mutants.md; put it beside the charts to have it linked).
    if dir.join("mutants.md").is_file() {
        md_text.push_str(MUTANTS_MD);
        if let Some(at) = html_text.rfind("</body>") {
            html_text.insert_str(at, MUTANTS_HTML);
        }
    }
    write_atomic(&md, |w| Ok(w.write_all(md_text.as_bytes())?))?;
    write_atomic(&page, |w| Ok(w.write_all(html_text.as_bytes())?))?;
    Ok(vec![md, page])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::model::fixtures::{cell, run};
    use crate::results::summary::summarize;

    #[test]
    fn the_overview_against_fixed_comes_first() {
        let rows: Vec<_> = [("fixed", 10.0), ("openbsd-2010", 90.0)]
            .iter()
            .flat_map(|(v, ipis)| run(cell(v, "forkexit", 2, 1), 100.0, 10.0, *ipis).rows())
            .collect();
        let groups = summarize(&rows);
        let sections = [Section {
            title: "forkexit".into(),
            charts: vec![("ipis".into(), "IPIs".into())],
        }];
        let md = markdown(&groups, &sections);
        let (over, charts, keys) = (
            md.find("## Against fixed").unwrap(),
            md.find("![IPIs]").unwrap(),
            md.find("## Key figures").unwrap(),
        );
        assert!(over < charts && charts < keys, "{md}");
        assert!(
            md.contains("| openbsd-2010 | 2 | 9x (worse) | 1x |"),
            "{md}"
        );
        assert!(md.contains("(tcg, microvm)"));
        let page = html(&groups, &sections);
        assert!(
            page.contains("<td class=\"worse\" title=\"worse\">9x</td>"),
            "{page}"
        );
        assert!(page.find("Against fixed").unwrap() < page.find("Key figures").unwrap());
    }
}
