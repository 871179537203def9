//! The reproduction table as Markdown (`results/REPRODUCE.md`, and the
//! README's section) and as text for the terminal.

use std::fmt::Write;

use super::format::three_digits;
use super::rows::{Kind, Note};
use super::template;
use super::{Reproduction, Table};

/// A table cell: pipes escaped, no line breaks.
pub(super) fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// The main table: one line per row, numbered; the accel column says which
/// accelerator each figure is from and what it speaks for; the notes carry
/// the explanations.
pub fn main_table(o: &Reproduction) -> String {
    let mut s = String::new();
    let source = match o.plan.table {
        Table::Seeds => "seed",
        Table::Techniques => "source",
    };
    let _ = writeln!(
        s,
        "| # | {source} | published figure | definition (both) | lab, median | lab spread (min..max) | accel (what it speaks for) | note |"
    );
    s += "|---|---|---|---|---|---|---|---|\n";
    for (i, r) in o.rows.iter().enumerate() {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            i + 1,
            cell(&r.seed),
            cell(&r.published),
            cell(&r.definition),
            cell(&r.lab),
            cell(&r.spread),
            cell(&r.accel_cell()),
            note_number(o, r.note)
        );
    }
    s
}

/// The CPU sweep of the OpenBSD factor.
pub fn sweep_table(o: &Reproduction) -> String {
    let mut s = String::new();
    s += "| CPUs | CPUs the 0xdeadbeef fill marks | openbsd-2010 IPIs | fixed IPIs | factor, median | min..max |\n";
    s += "|---|---|---|---|---|---|\n";
    for p in &o.sweep {
        let opt = |v: Option<f64>| v.map(three_digits).unwrap_or_else(|| "-".into());
        let factor = match p.factor.median() {
            Some(f) if f.is_infinite() => "∞ (fixed sent 0)".to_string(),
            Some(f) => three_digits(f),
            None => "- (no IPIs either way)".into(),
        };
        let _ = writeln!(
            s,
            "| {} | {} of {} | {} | {} | {} | {} |",
            p.cpus,
            p.fill_cpus,
            p.cpus,
            opt(p.obsd_ipis),
            opt(p.fixed_ipis),
            factor,
            if p.factor.per_rep.is_empty() {
                "-".into()
            } else {
                p.factor.range_over_reps(three_digits)
            }
        );
    }
    s
}

/// `N1`: the number of note `key` among the notes.
fn note_number(o: &Reproduction, key: &str) -> String {
    o.notes
        .iter()
        .position(|n| n.key == key)
        .map(|i| format!("N{}", i + 1))
        .unwrap_or_else(|| "-".into())
}

fn notes(notes: &[Note]) -> String {
    let mut s = String::new();
    for (i, n) in notes.iter().enumerate() {
        let _ = writeln!(s, "**N{}. {}.** {}\n", i + 1, n.title, n.text);
    }
    s
}

/// The whole Markdown file. `command` is how it was made; `chart` the
/// sweep chart's path relative to the file.
pub fn markdown(o: &Reproduction, command: &str, chart: Option<&str>) -> String {
    let mut s = String::new();
    if o.plan.table == Table::Techniques {
        s += "# Techniques published since the seeds, on the lab's workloads\n\n";
        let intro = template::INTRO_TECHNIQUES.fill(&[
            ("command", command.to_string()),
            ("reps", o.plan.reps.to_string()),
            ("out", o.out.display().to_string()),
            ("build", o.build.sentence()),
        ]);
        let _ = writeln!(s, "{intro}\n");
        s += &modeled_intro(o);
        s += &main_table(o);
        s += "\n## Why the figures differ\n\n";
        s += &notes(&o.notes);
        s += &general_notes(o);
        if let Some(chart) = chart {
            let _ = writeln!(s, "\n![each technique's figure over fixed's]({chart})");
        }
        return s;
    }
    s += "# Reproducing the seeds' published figures\n\n";
    let intro = template::INTRO_SEEDS.fill(&[
        ("command", command.to_string()),
        ("accel", o.accel.clone()),
        ("reps", o.plan.reps.to_string()),
        ("out", o.out.display().to_string()),
        ("build", o.build.sentence()),
    ]);
    let _ = writeln!(s, "{intro}\n");
    s += &modeled_intro(o);
    s += &main_table(o);
    s += "\n## Why the figures differ\n\n";
    s += "Each note is said once; the table's last column points at it.\n\n";
    s += &notes(&o.notes);
    s += &general_notes(o);
    if !o.sweep.is_empty() {
        s += "\n## The OpenBSD factor by CPU count\n\n";
        let _ = writeln!(s, "{}\n", template::SWEEP.fill(&[]));
        s += &sweep_table(o);
        if let Some(chart) = chart {
            let _ = writeln!(s, "\n![OpenBSD IPI factor by CPU count]({chart})");
        }
    }
    s
}

/// The paragraph that introduces the modeled rows (none without them).
fn modeled_intro(o: &Reproduction) -> String {
    if !o.rows.iter().any(|r| r.kind == Kind::Modeled) {
        return String::new();
    }
    let profiles = o
        .profiles
        .iter()
        .map(|p| format!("{} at {} GHz", p.name, p.ghz))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{}\n\n",
        template::INTRO_MODELED.fill(&[("profiles", profiles)])
    )
}

/// What the model's figures can speak for (after the accelerators').
fn modeled_general(o: &Reproduction) -> String {
    if !o.rows.iter().any(|r| r.kind == Kind::Modeled) {
        return String::new();
    }
    // Each assumption-labelled cost once, with its cycles per profile.
    let names: std::collections::BTreeSet<&String> = o
        .profiles
        .iter()
        .flat_map(|p| p.costs.iter().filter(|c| c.1 .1).map(|c| c.0))
        .collect();
    let order = o
        .profiles
        .iter()
        .map(|p| p.name.as_str())
        .collect::<Vec<_>>()
        .join("/");
    let assumed = names
        .iter()
        .map(|n| {
            let cycles: Vec<String> = o
                .profiles
                .iter()
                .map(|p| format!("{:.0}", p.cycles(n)))
                .collect();
            format!("{n} {}", cycles.join("/"))
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "\n{}\n",
        template::MODEL.fill(&[("assumed", format!("{assumed} (cycles, {order})"))])
    )
}

fn general_notes(o: &Reproduction) -> String {
    general_notes_measured(o) + &modeled_general(o)
}

/// What the measured figures' accelerators can speak for.
fn general_notes_measured(o: &Reproduction) -> String {
    let accels = o.accel_measured();
    format!("{}\n", template::ACCELERATORS.fill(&[("accels", accels)]))
}

/// The table for the terminal: the main table and the sweep.
pub fn text(o: &Reproduction) -> String {
    let mut s = main_table(o);
    if !o.sweep.is_empty() {
        s += "\nOpenBSD factor by CPU count:\n";
        s += &sweep_table(o);
    }
    s
}
