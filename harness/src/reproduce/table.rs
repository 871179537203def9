//! The reproduction table as Markdown (`results/REPRODUCE.md`, and the
//! README's section) and as text for the terminal.

use std::fmt::Write;

use super::modeled::fill;
use super::rows::{fmt_num, Kind, Note};
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
            "Made by `{command}` (`./lab reproduce --techniques`), every measured experiment \
             under **tcg-icount** on 4 CPUs with {} repetitions per cell (icount repeats them bit \
             for bit); the runs are in `{}`. Each row compares a technique's variant with \
             `fixed` on one of the lab's workloads: the lab figure is the variant's median \
             beside fixed's and the median of the per-repetition ratio. The published column \
             quotes the source where it gives a figure; the direction of an effect is what the \
             lab can confirm, its size is the lab's own (the notes say why). Rows a tree cannot \
             measure say why.\n",
            o.plan.reps,
            o.out.display()
        );
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
    s += &modeled_intro(o);
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

/// The paragraph that introduces the modeled rows (none without them).
const MODELED_INTRO: &str = "Rows whose accel cell says `tcg-model (<profile>): modeled` \
are not measurements: they are the memory-system model's figures (model/README.md) from \
tcg-model runs of the same kernels and workloads, one row per cost profile ({profiles}), \
one run per cell (the model repeats bit for bit), placed after the measured row they stand \
beside and never in its columns. Their notes say where the model agrees with the source's \
direction, where it does not and why, and where the costs its profiles label assumptions \
decide the figure.\n";

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
    format!("{}\n", fill(MODELED_INTRO, &[("profiles", profiles)]))
}

/// What the model's figures can speak for (after the accelerators').
const MODELED_GENERAL: &str = "**What the model can speak for.** A *modeled* figure \
(tcg-model) replays the guest's own memory accesses, INVLPGs and IPIs, taken from the same \
icount round robin, through per-CPU caches (MESI-style, 64-byte lines, false sharing \
detected), a per-CPU set-associative TLB and causal per-CPU clocks, and charges each event \
a cost profile's cycles; spin-wait loops (blocks holding PAUSE) are not charged, and vCPUs \
run in icount turns of about 100k instructions. Its counts of transfers, misses and \
refills follow from the guest's accesses and the profile's cache and TLB shapes; its \
cycles are only as good as the costs, and the profiles label these costs assumptions \
(no published figure found): {assumed}. So a modeled difference made of line transfers \
(measured core-to-core latencies) is the model's to give; one made of IPI, interrupt and \
TLB-maintenance cycles shows a direction and a mechanism, with a size the assumption sets. \
One cycle per instruction, no capacity misses and no DRAM make modeled rates (Hz, ops/s) \
comparable between variants, not with a real machine's.\n";

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
        "\n{}",
        fill(
            MODELED_GENERAL,
            &[("assumed", format!("{assumed} (cycles, {order})"))]
        )
    )
}

fn general_notes(o: &Reproduction) -> String {
    general_notes_measured(o) + &modeled_general(o)
}

fn general_notes_measured(o: &Reproduction) -> String {
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
        accels = o.accel_measured()
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
