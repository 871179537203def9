//! The reproduction table as Markdown (`results/REPRODUCE.md`, and the
//! README's section) and as text for the terminal.

use std::fmt::Write;

use super::rows::{fmt_num, Row};
use super::Reproduction;

/// A table cell: pipes escaped, no line breaks.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// The main table: one line per row, numbered; the notes carry the
/// explanations.
pub fn main_table(o: &Reproduction) -> String {
    let mut s = String::new();
    s += "| # | seed | published figure | definition (both) | lab, median | lab spread (min..max) | accel |\n";
    s += "|---|---|---|---|---|---|---|\n";
    for (i, r) in o.rows.iter().enumerate() {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} |",
            i + 1,
            cell(&r.seed),
            cell(&r.published),
            cell(&r.definition),
            cell(&r.lab),
            cell(&r.spread),
            cell(&o.accel)
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
        let opt = |v: Option<f64>| v.map(fmt_num).unwrap_or_else(|| "-".into());
        let factor = match p.factor.median() {
            Some(f) if f.is_infinite() => "∞ (fixed sent 0)".to_string(),
            Some(f) => fmt_num(f),
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
                p.factor.spread(fmt_num)
            }
        );
    }
    s
}

fn notes(rows: &[Row]) -> String {
    let mut s = String::new();
    for (i, r) in rows.iter().enumerate() {
        let _ = writeln!(
            s,
            "{}. **{}** ({}): {}\n",
            i + 1,
            r.seed,
            r.published,
            r.explanation
        );
    }
    s
}

/// The whole Markdown file. `command` is how it was made; `chart` the
/// sweep chart's path relative to the file.
pub fn markdown(o: &Reproduction, command: &str, chart: Option<&str>) -> String {
    let mut s = String::new();
    s += "# Reproducing the seeds' published figures\n\n";
    let _ = writeln!(
        s,
        "Made by `{command}` (`./lab reproduce`), measured under **{}** with {} repetitions per \
         cell; the runs are in `{}`. Every lab figure is computed per repetition from the \
         stored runs; the table gives the median and min..max over repetitions. Rows a tree \
         cannot measure say why.\n",
        o.accel,
        o.plan.reps,
        o.out.display()
    );
    s += &main_table(o);
    s += "\n## Why the figures differ\n\n";
    s += &notes(&o.rows);
    s += &general_notes(o);
    if !o.sweep.is_empty() {
        s += "\n## The OpenBSD factor by CPU count\n\n";
        let _ = writeln!(
            s,
            "shootpage + shootrange IPIs over {}, openbsd-2010 over fixed. The fill's low byte \
             0xef = 1110 1111b marks CPUs 0-3 and 5-7, not 4: on 5 CPUs the buggy pmaps look \
             active on 4 of them, so the 5th CPU's point dips below the line the others follow.\n",
            [super::OBSD_FORKEXIT, super::OBSD_BUILDKERNEL]
                .iter()
                .filter_map(|id| o.plan.experiment(id))
                .map(|e| e.label())
                .collect::<Vec<_>>()
                .join(" + ")
        );
        s += &sweep_table(o);
        if let Some(chart) = chart {
            let _ = writeln!(s, "\n![OpenBSD IPI factor by CPU count]({chart})");
        }
    }
    s
}

fn general_notes(o: &Reproduction) -> String {
    format!(
        "**What the accelerator can speak for.** These runs used {accel}. Counts (IPIs, \
         shootdown calls, early returns) are properties of the kernel's code and the workload and \
         come out the same under any accelerator, up to scheduling. Timings do not: under plain \
         TCG (MTTCG, one host thread per vCPU) this 2-core host over-subscribes 4 and 8 vCPUs, \
         and every cost is an emulated instruction's; under `tcg-icount` time is virtual (a 1 GHz \
         virtual TSC, instructions counted, vCPUs run round robin), repeatable but with no real \
         cache, TLB or interrupt-delivery costs. So ratios of counts stand; absolute rates and \
         latencies (seed 001's 4-5 us, seed 004's Hz, seed 003's waits) want KVM on real \
         hardware (`--accel kvm` on a host with VT-x/AMD-V; never on this paravirtual host, \
         where KVM is ~1000x slower).\n",
        accel = o.accel
    )
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
