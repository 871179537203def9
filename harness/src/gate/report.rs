//! The gate's verdicts: one line per (rule, group), printed as a text
//! table, as Markdown (appended to `$GITHUB_STEP_SUMMARY` in Actions),
//! and summed up as pass/fail.

use std::fmt;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

/// The verdict on one line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Pass,
    Fail,
    /// Not evaluated, for a stated reason (a timing figure under a
    /// non-repeatable clock, optional data absent, 0/0, no baseline given).
    Skip,
    /// A statistical comparison with too few repetitions to claim
    /// anything either way: neither a pass nor a fail, and said so.
    TooFew,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Skip => "skip",
            Verdict::TooFew => "too-few",
        })
    }
}

/// One evaluated (rule, group).
#[derive(Clone, Debug, PartialEq)]
pub struct GateLine {
    /// `bound`, `ratio` or `baseline`.
    pub kind: &'static str,
    pub rule: String,
    /// The group (or the rule's selection when no group matched).
    pub selection: String,
    /// The figure and statistic compared.
    pub figure: String,
    pub value: String,
    /// The per-rep values the value came from (`[a, b]`), if any.
    pub reps: String,
    /// The baseline's per-rep values, for baseline lines.
    pub baseline: String,
    pub bound: String,
    pub verdict: Verdict,
    /// Why, for fails and skips (missing data, overlap, ...).
    pub note: String,
}

/// Every line of a gate run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GateReport {
    pub lines: Vec<GateLine>,
}

impl GateReport {
    /// True when no line failed and at least one rule line (not the
    /// completeness check) passed: a report of nothing but skips says
    /// nothing, and is not a pass.
    pub fn passed(&self) -> bool {
        self.lines.iter().all(|l| l.verdict != Verdict::Fail)
            && self
                .lines
                .iter()
                .any(|l| l.verdict == Verdict::Pass && l.kind != "complete")
    }

    /// The failed lines.
    pub fn failures(&self) -> impl Iterator<Item = &GateLine> {
        self.lines.iter().filter(|l| l.verdict == Verdict::Fail)
    }

    fn count(&self, v: Verdict) -> usize {
        self.lines.iter().filter(|l| l.verdict == v).count()
    }

    /// `gate: PASSED (12 pass, 0 fail, 3 skip, 0 too-few)`, or FAILED
    /// with why when nothing failed but nothing passed either.
    pub fn headline(&self) -> String {
        let verdict = if self.passed() {
            "PASSED"
        } else if self.failures().next().is_none() {
            "FAILED: no rule passed (every line was skipped)"
        } else {
            "FAILED"
        };
        format!(
            "gate: {verdict} ({} pass, {} fail, {} skip, {} too-few)",
            self.count(Verdict::Pass),
            self.count(Verdict::Fail),
            self.count(Verdict::Skip),
            self.count(Verdict::TooFew)
        )
    }

    /// (pass, fail, skip, too-few) counts.
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        (
            self.count(Verdict::Pass),
            self.count(Verdict::Fail),
            self.count(Verdict::Skip),
            self.count(Verdict::TooFew),
        )
    }

    /// A plain-text table with aligned columns, then the headline.
    pub fn table(&self) -> String {
        let header = [
            "verdict",
            "kind",
            "rule",
            "selection",
            "figure",
            "value",
            "bound",
            "note",
        ];
        let rows: Vec<[String; 8]> = self
            .lines
            .iter()
            .map(|l| {
                [
                    l.verdict.to_string(),
                    l.kind.to_string(),
                    l.rule.clone(),
                    l.selection.clone(),
                    l.figure.clone(),
                    l.value.clone(),
                    l.bound.clone(),
                    l.note.clone(),
                ]
            })
            .collect();
        let mut widths = header.map(|h| h.chars().count());
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let mut line = |cells: &[String]| {
            let text: Vec<String> = cells
                .iter()
                .zip(widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            out.push_str(text.join("  ").trim_end());
            out.push('\n');
        };
        line(&header.map(String::from));
        for row in &rows {
            line(row);
        }
        out.push_str(&self.headline());
        out.push('\n');
        out
    }

    /// Prints [`GateReport::table`] to stdout.
    pub fn print_table(&self) {
        print!("{}", self.table());
    }

    /// The report as a Markdown section: per failing rule, its groups
    /// (cells) with their values, the baseline and the reason; then the
    /// full table (failures first).
    pub fn markdown(&self) -> String {
        let esc = |s: &str| s.replace('|', "\\|");
        let mut out = format!("### pmaplab {}\n\n", self.headline());
        let mut failing: Vec<&str> = Vec::new();
        for l in self.failures() {
            if !failing.contains(&l.rule.as_str()) {
                failing.push(&l.rule);
            }
        }
        for rule in &failing {
            let lines: Vec<&GateLine> = self.failures().filter(|l| l.rule == *rule).collect();
            out.push_str(&format!(
                "#### ❌ {} ({}, {}; bound {})\n\n",
                rule, lines[0].kind, lines[0].figure, lines[0].bound
            ));
            out.push_str(
                "| cells | value | per rep | baseline | reason |\n|---|---|---|---|---|\n",
            );
            let dash = |s: &str| {
                if s.is_empty() {
                    "-".to_string()
                } else {
                    esc(s)
                }
            };
            for l in lines {
                out.push_str(&format!(
                    "| {} | {} | {} | {} | {} |\n",
                    esc(&l.selection),
                    esc(&l.value),
                    dash(&l.reps),
                    dash(&l.baseline),
                    esc(&l.note)
                ));
            }
            out.push('\n');
        }
        if !failing.is_empty() {
            out.push_str("#### All lines\n\n");
        }
        out.push_str("| verdict | kind | rule | selection | figure | value | bound | note |\n");
        out.push_str("|---|---|---|---|---|---|---|---|\n");
        let mut lines: Vec<&GateLine> = self.lines.iter().collect();
        lines.sort_by_key(|l| match l.verdict {
            Verdict::Fail => 0,
            Verdict::Pass => 1,
            Verdict::TooFew => 2,
            Verdict::Skip => 3,
        });
        for l in lines {
            let verdict = match l.verdict {
                Verdict::Pass => "✅ pass",
                Verdict::Fail => "❌ **FAIL**",
                Verdict::Skip => "➖ skip",
                Verdict::TooFew => "❔ too few reps",
            };
            out.push_str(&format!(
                "| {verdict} | {} | {} | {} | {} | {} | {} | {} |\n",
                l.kind,
                esc(&l.rule),
                esc(&l.selection),
                esc(&l.figure),
                esc(&l.value),
                esc(&l.bound),
                esc(&l.note)
            ));
        }
        out
    }

    /// Appends [`GateReport::markdown`] to the file `$GITHUB_STEP_SUMMARY`
    /// names, when that is set. Returns whether it wrote.
    pub fn write_step_summary(&self) -> Result<bool> {
        match std::env::var_os("GITHUB_STEP_SUMMARY") {
            Some(path) => self.append_markdown_to(Path::new(&path)).map(|()| true),
            None => Ok(false),
        }
    }

    /// Appends [`GateReport::markdown`] to `path` (created if absent).
    pub fn append_markdown_to(&self, path: &Path) -> Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        writeln!(file, "{}", self.markdown()).with_context(|| format!("writing {}", path.display()))
    }
}
