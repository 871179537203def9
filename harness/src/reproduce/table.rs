//! The reproduction table as Markdown (`results/REPRODUCE.md`, and the
//! README's section) and as text for the terminal.

use std::fmt::Write;

use super::rows::{fmt_num, Note};
use super::{Reproduction, Table};

/// A table cell: pipes escaped, no line breaks.
fn cell(text: &str) -> String {
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
        let _ = writeln!(
            s,
            "Made by `{command}` (`./lab reproduce --techniques`), every experiment under \
             **tcg-icount** on 4 CPUs with {} repetitions per cell (icount repeats them bit \
             for bit); the runs are in `{}`. Each row compares a technique's variant with \
             `fixed` on one of the lab's workloads: the lab figure is the variant's median \
             beside fixed's and the median of the per-repetition ratio. The published column \
             quotes the source where it gives a figure; the direction of an effect is what the \
             lab can confirm, its size is the lab's own (the notes say why). Rows a tree cannot \
             measure say why.\n",
            o.plan.reps,
            o.out.display()
        );
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
    let _ = writeln!(
        s,
        "Made by `{command}` (`./lab reproduce`), measured under **{}** (seed 004's fork-loop \
         rows under both tcg and tcg-icount, whatever `--accel` says) with {} repetitions per \
         cell; the runs are in `{}`. Every lab figure is computed per repetition from the \
         stored runs; the table gives the median and min..max over repetitions, and its accel \
         column says which accelerator each figure is from and what that accelerator can speak \
         for (see the last note). Rows a tree cannot measure say why.\n",
        o.accel,
        o.plan.reps,
        o.out.display()
    );
    s += &main_table(o);
    s += "\n## Why the figures differ\n\n";
    s += "Each note is said once; the table's last column points at it.\n\n";
    s += &notes(&o.notes);
    s += &general_notes(o);
    if !o.sweep.is_empty() {
        s += "\n## The OpenBSD factor by CPU count\n\n";
        let _ = writeln!(
            s,
            "shootpage + shootrange IPIs over the table's mix (the 21x row), openbsd-2010 over \
             fixed. The fill's low byte 0xef = 1110 1111b marks CPUs 0-3 and 5-7, not 4: on 5 \
             CPUs the buggy pmaps look active on 4 of them, so the 5th CPU's point dips below the \
             line the others follow.\n"
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
        "**What each accelerator can speak for.** These runs used {accels}. A *count* (IPIs, \
         shootdown calls, early returns) is a property of the kernel's code and the workload \
         and comes out the same under any accelerator, up to scheduling (which CPU a child \
         runs on). A *time* is only as good as the clock: under plain `tcg` (MTTCG, one host \
         thread per vCPU) it is QEMU's emulation speed on a shared 2-core host, which \
         over-subscribes 4 and 8 vCPUs and moves from run to run (*emulated time*); under \
         `tcg-icount` it is virtual (a 1 GHz virtual TSC, instructions counted, vCPUs run round \
         robin on one host thread), repeatable to the instruction and a measure of instruction \
         cost, but blind to parallel speed-up and with no cache, TLB or interrupt-delivery \
         costs (*virtual time*). So counts and their ratios stand; absolute rates and latencies \
         (seed 001's 4-5 us, seed 004's Hz, seed 003's waits) want KVM on real hardware \
         (`--accel kvm` on a host with VT-x/AMD-V; never on this paravirtual host, where KVM \
         is ~1000x slower).\n",
        accels = o.accel_of_all()
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
