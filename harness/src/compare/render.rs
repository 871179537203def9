//! The comparison as a terminal table, Markdown (a PR comment) and CSV.

use std::io::Write;

use anyhow::Result;

use super::diff::{Comparison, Line, Verdict};
use crate::results::summary::fmt_num;

/// The output formats of `harness compare --format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Md,
    Csv,
}

const HEADER: [&str; 9] = [
    "cell",
    "figure",
    "A",
    "B",
    "change",
    "threshold",
    "verdict",
    "causes",
    "how",
];

fn num(v: Option<f64>) -> String {
    v.map(fmt_num).unwrap_or_else(|| "-".into())
}

fn change(l: &Line) -> String {
    match l.change_pct() {
        Some(p) if p.is_finite() => format!("{}{}%", if p > 0.0 { "+" } else { "" }, fmt_num(p)),
        Some(p) => format!("{}inf", if p > 0.0 { "+" } else { "-" }),
        None => "-".into(),
    }
}

/// `past threshold: worse`, `changed, below threshold`, `same`, ...
fn verdict(l: &Line) -> String {
    match (&l.verdict, l.regression, l.improvement) {
        (Verdict::PastThreshold, true, _) => "past threshold: worse".into(),
        (Verdict::PastThreshold, _, true) => "past threshold: better".into(),
        (v, _, _) => v.text().into(),
    }
}

fn cells(l: &Line) -> [String; 9] {
    [
        l.cell(),
        l.figure.clone(),
        num(l.a),
        num(l.b),
        change(l),
        l.threshold.text(),
        verdict(l),
        l.causes.clone(),
        l.note.clone(),
    ]
}

/// `125 figures compared: 3 changed past their threshold (2 worse, 1
/// better), 25 changed below it`.
fn summary(c: &Comparison) -> String {
    format!(
        "{} figures compared: {} changed past their threshold ({} worse, {} better), \
         {} changed below it",
        c.lines.len(),
        c.past_threshold(),
        c.regressions(),
        c.improvements(),
        c.below_threshold()
    )
}

/// A fixed-width table (the `how` column left out: it is in md and csv).
pub fn table(c: &Comparison, a: &str, b: &str) -> String {
    let rows: Vec<[String; 9]> = c.lines.iter().map(cells).collect();
    let shown = 8;
    let mut width = [0usize; 9];
    for (i, h) in HEADER.iter().enumerate() {
        width[i] = h.len();
    }
    for r in &rows {
        for i in 0..shown {
            width[i] = width[i].max(r[i].chars().count());
        }
    }
    let mut out = format!("A = {a}\nB = {b}\n\n");
    let line = |cols: &[String]| {
        let mut s = String::new();
        for i in 0..shown {
            let pad = width[i] - cols[i].chars().count();
            // Numbers right-aligned, text left-aligned.
            if (2..=5).contains(&i) {
                s.push_str(&" ".repeat(pad));
                s.push_str(&cols[i]);
            } else {
                s.push_str(&cols[i]);
                s.push_str(&" ".repeat(pad));
            }
            s.push_str("  ");
        }
        s.trim_end().to_string() + "\n"
    };
    out.push_str(&line(&HEADER.map(String::from)));
    for r in &rows {
        out.push_str(&line(r));
    }
    out.push('\n');
    out.push_str(&summary(c));
    out.push('\n');
    out.push_str(&c.thresholds);
    out.push('\n');
    out
}

fn md_row(cols: &[String]) -> String {
    let esc: Vec<String> = cols.iter().map(|c| c.replace('|', "\\|")).collect();
    format!("| {} |\n", esc.join(" | "))
}

/// Markdown: the changes past their threshold first, then those below it,
/// then every figure folded.
pub fn markdown(c: &Comparison, a: &str, b: &str) -> String {
    let mut out = String::from("## harness compare\n\n");
    out.push_str(&format!("- **A**: `{a}`\n- **B**: `{b}`\n\n"));
    out.push_str(&format!("{}.\n\n", summary(c)));
    out.push_str(&format!(
        "Statistics as the gate's: under `tcg-icount` identical repetitions compare exactly; \
         otherwise Welch on the logarithms with >= 5 repetitions a side, Holm-corrected (alpha 0.05). \
         A significant change counts when it moves by at least its threshold, either way: {}.\n\n",
        c.thresholds
    ));
    let header = HEADER.map(String::from);
    let sep = format!("|{}\n", "---|".repeat(HEADER.len()));
    for (verdict, title, none) in [
        (
            Verdict::PastThreshold,
            "### Past threshold",
            "No change past its threshold.",
        ),
        (
            Verdict::BelowThreshold,
            "### Changed, below threshold",
            "No change below threshold.",
        ),
    ] {
        let lines: Vec<&Line> = c.lines.iter().filter(|l| l.verdict == verdict).collect();
        if lines.is_empty() {
            out.push_str(&format!("{none}\n\n"));
            continue;
        }
        out.push_str(&format!("{title}\n\n"));
        out.push_str(&md_row(&header));
        out.push_str(&sep);
        for l in lines {
            out.push_str(&md_row(&cells(l)));
        }
        out.push('\n');
    }
    out.push_str("<details><summary>Every figure</summary>\n\n");
    out.push_str(&md_row(&header));
    out.push_str(&sep);
    for l in &c.lines {
        out.push_str(&md_row(&cells(l)));
    }
    out.push_str("\n</details>\n");
    out
}

/// CSV: one row per cell and figure, numbers unformatted.
pub fn csv(c: &Comparison, w: &mut dyn Write) -> Result<()> {
    let mut out = ::csv::Writer::from_writer(w);
    out.write_record([
        "variant",
        "workload",
        "params",
        "cpus",
        "accel",
        "machine",
        "figure",
        "a",
        "b",
        "a_reps",
        "b_reps",
        "change_pct",
        "threshold_pct",
        "verdict",
        "regression",
        "causes",
        "note",
    ])?;
    let opt = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
    for l in &c.lines {
        out.write_record([
            l.key.variant.clone(),
            l.key.workload.clone(),
            l.key.params.clone(),
            l.key.cpus.to_string(),
            l.key.accel.clone(),
            l.key.machine.clone(),
            l.figure.clone(),
            opt(l.a),
            opt(l.b),
            l.a_reps.to_string(),
            l.b_reps.to_string(),
            opt(l.change_pct()),
            l.threshold.pct.to_string(),
            l.verdict.text().to_string(),
            l.regression.to_string(),
            l.causes.clone(),
            l.note.clone(),
        ])?;
    }
    out.flush()?;
    Ok(())
}
