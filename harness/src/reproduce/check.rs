//! `harness reproduce --check FILE`: does the tree still produce the
//! figures a committed table (results/REPRODUCE.md, results/TECHNIQUES.md)
//! shows where they are repeatable?
//!
//! A tcg-icount or tcg-model figure is a property of the tree: the same
//! images on the same QEMU give it bit for bit (icount's round robin and
//! virtual clock, the model's replay of the guest's own accesses; the
//! images do not depend on where the checkout is, harness::kernel_build).
//! So a committed one that the tree no longer gives is stale, and a test
//! can say so. Plain TCG's and KVM's figures move from run to run; their
//! rows are not checked. The check runs only the repeatable experiments,
//! once each (their repetitions are identical), and compares each
//! repeatable row's "lab, median" cell, where the figures are, with the
//! committed row of the same number.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};

use super::Reproduction;
use crate::accel::AccelChoice;
use crate::results::metadata::Metadata;

/// The build a table's runs were made with: QEMU's version and the
/// toolchain's, as their metadata records them. A repeatable figure is
/// exact for one tree and one build; the tables name theirs in the
/// introduction ("Built and run with `...` and `...`"), so that a check
/// on another build can say why it cannot judge.
#[derive(Clone, Debug, PartialEq)]
pub struct Build {
    pub qemu: String,
    pub rustc: String,
}

/// How a table's introduction names its build, before the two names.
const BUILT_WITH: &str = "Built and run with ";

impl Build {
    pub fn of(m: &Metadata) -> Build {
        Build {
            qemu: m.qemu_version.clone(),
            rustc: m.rustc_version.clone(),
        }
    }

    /// No experiment recorded metadata.
    pub fn unknown() -> Build {
        Build {
            qemu: "unknown QEMU".into(),
            rustc: "unknown rustc".into(),
        }
    }

    /// The sentence of a table's introduction that names the build.
    pub fn sentence(&self) -> String {
        format!("{BUILT_WITH}{self}; the repeatable rows are exact for that build and the tree.")
    }

    /// The build a committed table names, if it names one.
    fn named_in(markdown: &str) -> Option<Build> {
        let flat = markdown.split_whitespace().collect::<Vec<_>>().join(" ");
        let rest = &flat[flat.find(BUILT_WITH)? + BUILT_WITH.len()..];
        let mut quoted = rest.split('`').skip(1).step_by(2);
        Some(Build {
            qemu: quoted.next()?.to_string(),
            rustc: quoted.next()?.to_string(),
        })
    }
}

impl std::fmt::Display for Build {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` and `{}`", self.qemu, self.rustc)
    }
}

/// Whether an experiment under `accel` (None: the plan's `--accel`, plain
/// TCG for --check) gives repeatable figures.
pub fn repeatable(accel: Option<AccelChoice>) -> bool {
    matches!(accel, Some(AccelChoice::TcgIcount | AccelChoice::TcgModel))
}

/// Whether a table row's accel cell names a repeatable accelerator.
fn repeatable_cell(accel_cell: &str) -> bool {
    accel_cell.starts_with("tcg-icount") || accel_cell.starts_with("tcg-model")
}

/// How the lab cell of a row no experiment measured begins
/// (rows::not_measured).
const NOT_MEASURED: &str = "not measured";

/// One row of a committed main table, its cells as written (pipes still
/// escaped).
#[derive(Clone, Debug, PartialEq)]
struct CommittedRow {
    number: usize,
    source: String,
    definition: String,
    lab: String,
    accel: String,
}

/// Splits a Markdown table line into its cells, at the pipes a cell does
/// not escape.
fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    let mut out = vec![String::new()];
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                out.last_mut().unwrap().push_str("\\|");
                chars.next();
            }
            '|' => out.push(String::new()),
            c => out.last_mut().unwrap().push(c),
        }
    }
    out.iter().map(|c| c.trim().to_string()).collect()
}

/// The main table's rows of `markdown` (the first table whose header
/// starts with `| # |`), by the header's column names.
fn committed_rows(markdown: &str) -> Result<Vec<CommittedRow>> {
    let mut lines = markdown.lines().skip_while(|l| !l.starts_with("| # |"));
    let header = cells(
        lines
            .next()
            .context("no table whose header starts with `| # |`")?,
    );
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h.starts_with(name))
            .with_context(|| format!("the table has no `{name}` column"))
    };
    let (source, definition, lab, accel) =
        (1, col("definition")?, col("lab, median")?, col("accel")?);
    let mut rows = Vec::new();
    for line in lines.skip(1).take_while(|l| l.starts_with('|')) {
        let c = cells(line);
        let number = c[0]
            .parse()
            .with_context(|| format!("a row without a number: {line}"))?;
        let get = |i: usize| c.get(i).cloned().unwrap_or_default();
        rows.push(CommittedRow {
            number,
            source: get(source),
            definition: get(definition),
            lab: get(lab),
            accel: get(accel),
        });
    }
    Ok(rows)
}

/// The command a committed table says made it (its first `harness
/// reproduce ...` in backticks), for the message that asks to re-make it.
fn made_by(markdown: &str) -> String {
    markdown
        .split('`')
        .find(|s| s.starts_with("harness reproduce"))
        .unwrap_or("harness reproduce")
        .to_string()
}

/// What `--check` found in a committed table.
pub struct Checked {
    /// One line per repeatable row that differs (empty: the table stands).
    pub differences: Vec<String>,
    /// The build the table names, when it is not the one the runs were
    /// made with (None: the same, or the table names none).
    pub other_build: Option<Build>,
}

/// Compares the repeatable rows of the committed table `file` with those
/// `o` computed, and the build the table names with `o`'s.
pub fn check(file: &Path, o: &Reproduction) -> Result<Checked> {
    let markdown =
        fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    Ok(Checked {
        differences: differences(file, &markdown, o)?,
        other_build: Build::named_in(&markdown).filter(|b| *b != o.build),
    })
}

/// One line per repeatable row of `markdown` (the committed table `file`)
/// that differs from the row `o` computed.
fn differences(file: &Path, markdown: &str, o: &Reproduction) -> Result<Vec<String>> {
    let committed = committed_rows(markdown)
        .with_context(|| format!("{}: cannot read its main table", file.display()))?;
    let remake = format!("re-make {} with `{}`", file.display(), made_by(markdown));
    let mut out = Vec::new();
    for (i, row) in o.rows.iter().enumerate() {
        let number = i + 1;
        let accel = super::table::cell(&row.accel_cell());
        if !repeatable_cell(&accel) {
            continue;
        }
        let lab = super::table::cell(&row.lab);
        match committed.iter().find(|c| c.number == number) {
            None => out.push(format!(
                "row {number} ({}, {accel}) is not in the committed table; {remake}",
                row.seed
            )),
            Some(c) if c.definition != super::table::cell(&row.definition) => out.push(format!(
                "row {number} ({}) defines another figure than the committed row {number}; \
                 {remake}",
                row.seed
            )),
            // A row not measured says why, naming its runs' directory;
            // that it was not measured is the figure.
            Some(c) if c.lab.starts_with(NOT_MEASURED) && lab.starts_with(NOT_MEASURED) => {}
            Some(c) if c.lab != lab => out.push(format!(
                "row {number} ({}, {accel}): committed \"{}\", this tree \"{lab}\"; {remake}",
                c.source, c.lab
            )),
            Some(_) => {}
        }
    }
    for c in committed.iter().filter(|c| repeatable_cell(&c.accel)) {
        if o.rows.len() < c.number {
            out.push(format!(
                "committed row {} ({}, {}) is no longer produced; {remake}",
                c.number, c.source, c.accel
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "Made by `harness reproduce --techniques --reps 2` (x).\n\n\
        | # | source | published figure | definition (both) | lab, median | lab spread (min..max) | accel (what it speaks for) | note |\n\
        |---|---|---|---|---|---|---|---|\n\
        | 1 | A | p | d \\| e | 2.59 us vs 2.47 us | s | tcg-icount (virtual time) | N1 |\n\
        | 2 | B | p | d | 5876 Hz | s | tcg (emulated time: host-noisy) | N2 |\n\n\
        ## Notes\n";

    #[test]
    fn reads_the_main_table_with_escaped_pipes() {
        let rows = committed_rows(TABLE).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].definition, "d \\| e");
        assert_eq!(rows[0].lab, "2.59 us vs 2.47 us");
        assert!(repeatable_cell(&rows[0].accel));
        assert!(!repeatable_cell(&rows[1].accel));
        assert_eq!(made_by(TABLE), "harness reproduce --techniques --reps 2");
    }

    #[test]
    fn a_table_names_its_build_and_the_check_reads_it_back() {
        let build = Build {
            qemu: "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)".into(),
            rustc: "rustc 1.95.0 (59807616e 2026-04-14)".into(),
        };
        // As a table wraps it: the sentence may break anywhere.
        let intro =
            format!("Made by x. {}\n\n| # |", build.sentence()).replace(" and `", "\nand `");
        assert_eq!(Build::named_in(&intro), Some(build));
        assert_eq!(Build::named_in(TABLE), None);
    }

    #[test]
    fn only_icount_and_model_experiments_are_repeatable() {
        assert!(repeatable(Some(AccelChoice::TcgIcount)));
        assert!(repeatable(Some(AccelChoice::TcgModel)));
        assert!(!repeatable(Some(AccelChoice::Tcg)));
        assert!(!repeatable(None));
    }
}
