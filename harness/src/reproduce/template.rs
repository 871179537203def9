//! The reproduction tables' prose: each note and introduction is a text
//! file in `prose/`, with named holes (`{name}`) the harness fills from the
//! measured figures, so the words can be read and edited as prose, apart
//! from the code that computes what goes in them.
//!
//! Format: a template is Markdown wrapped at any width. Lines of a
//! paragraph are joined with single spaces; paragraphs (split by a blank
//! line) are kept apart by one blank line. A hole is `{` a lower-case
//! name (letters, digits, `_`) `}`; no other brace may appear.
//!
//! Why a dozen lines of our own rather than a templating crate (tinytemplate,
//! minijinja): the notes need named holes and nothing else (what a note says
//! when a figure is missing is decided in Rust, where the figure is), and
//! this substitution is strict both ways: a hole without a value and a value
//! without a hole are each a panic naming the template, so a renamed hole
//! cannot leave `{x}` in results/REPRODUCE.md, and the unit tests fill
//! every template.

use std::collections::BTreeSet;

/// One template of `prose/`.
#[derive(Clone, Copy, Debug)]
pub struct Prose {
    /// Its file name in `prose/`, for messages.
    pub file: &'static str,
    pub text: &'static str,
}

macro_rules! prose {
    ($file:literal) => {
        Prose {
            file: $file,
            text: include_str!(concat!("prose/", $file)),
        }
    };
}

/// Seed 000's note: why openbsd-2010's factor over fixed is the lab's.
pub const SEED_000: Prose = prose!("000-openbsd.md");
/// Seed 004's fork loop.
pub const SEED_004_RATE: Prose = prose!("004-fork-loop.md");
/// Seed 004's early returns at exit, in buildkernel.
pub const SEED_004_EXIT: Prose = prose!("004-buildkernel.md");
/// Seed 001's IPI and shootpage times.
pub const SEED_001: Prose = prose!("001-dragonfly.md");
/// Seed 003's scoreboard under TCG.
pub const SEED_003: Prose = prose!("003-scoreboard.md");
/// The seeds' modeled rows.
pub const SEED_004_MODEL: Prose = prose!("004-modeled.md");
pub const SEED_001_MODEL: Prose = prose!("001-modeled.md");
pub const SEED_003_MODEL: Prose = prose!("003-modeled.md");
/// The opening paragraphs of results/REPRODUCE.md and TECHNIQUES.md.
pub const INTRO_SEEDS: Prose = prose!("intro-seeds.md");
pub const INTRO_TECHNIQUES: Prose = prose!("intro-techniques.md");
/// The paragraph before the modeled rows (tables that have them).
pub const INTRO_MODELED: Prose = prose!("intro-modeled.md");
/// The sweep's introduction.
pub const SWEEP: Prose = prose!("sweep.md");
/// The general notes: what each accelerator, and the model, can speak for.
pub const ACCELERATORS: Prose = prose!("accelerators.md");
pub const MODEL: Prose = prose!("model.md");
/// The techniques' notes (results/TECHNIQUES.md), measured and modeled.
pub const TECH_AMIT: Prose = prose!("tech-amit.md");
pub const TECH_LAZY: Prose = prose!("tech-lazy.md");
pub const TECH_LATR: Prose = prose!("tech-latr.md");
pub const TECH_PCID: Prose = prose!("tech-pcid.md");
pub const TECH_AMIT_MODEL: Prose = prose!("tech-amit-model.md");
pub const TECH_LAZY_MODEL: Prose = prose!("tech-lazy-model.md");
pub const TECH_LATR_MODEL: Prose = prose!("tech-latr-model.md");

/// Every template, for the tests.
pub const ALL: [Prose; 21] = [
    SEED_000,
    SEED_004_RATE,
    SEED_004_EXIT,
    SEED_001,
    SEED_003,
    SEED_004_MODEL,
    SEED_001_MODEL,
    SEED_003_MODEL,
    INTRO_SEEDS,
    INTRO_TECHNIQUES,
    INTRO_MODELED,
    SWEEP,
    ACCELERATORS,
    MODEL,
    TECH_AMIT,
    TECH_LAZY,
    TECH_LATR,
    TECH_PCID,
    TECH_AMIT_MODEL,
    TECH_LAZY_MODEL,
    TECH_LATR_MODEL,
];

/// A template's pieces: literal text and hole names, in order.
enum Piece<'a> {
    Text(&'a str),
    Hole(&'a str),
}

impl Prose {
    /// The template's text with its lines joined (see the module's
    /// format), still with its holes.
    fn joined(&self) -> String {
        self.text
            .split("\n\n")
            .map(|para| {
                para.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join("\n\n")
    }

    /// Splits `text` into literal text and holes; a brace that does not
    /// make a hole is a bug in the template.
    fn pieces<'a>(&self, text: &'a str) -> Vec<Piece<'a>> {
        let mut out = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find(['{', '}']) {
            let close = rest[open..].find('}').map(|c| open + c);
            let name = close.map(|c| &rest[open + 1..c]);
            match name {
                Some(name)
                    if rest.as_bytes()[open] == b'{'
                        && !name.is_empty()
                        && name
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') =>
                {
                    out.push(Piece::Text(&rest[..open]));
                    out.push(Piece::Hole(name));
                    rest = &rest[close.unwrap_or(open) + 1..];
                }
                _ => panic!(
                    "prose/{}: a brace that is not a hole ({{lower_case_name}}) near {:?}",
                    self.file,
                    &rest[open..rest.len().min(open + 20)]
                ),
            }
        }
        out.push(Piece::Text(rest));
        out
    }

    /// The names of the template's holes.
    pub fn holes(&self) -> BTreeSet<String> {
        let joined = self.joined();
        self.pieces(&joined)
            .into_iter()
            .filter_map(|p| match p {
                Piece::Hole(name) => Some(name.to_string()),
                Piece::Text(_) => None,
            })
            .collect()
    }

    /// The template with each hole replaced by its value. Panics, naming
    /// the template, when a hole has no value or a value no hole: either
    /// is a bug in the caller or the template, never in the figures.
    pub fn fill(&self, values: &[(&str, String)]) -> String {
        let joined = self.joined();
        let mut out = String::new();
        let mut used = BTreeSet::new();
        for piece in self.pieces(&joined) {
            match piece {
                Piece::Text(t) => out += t,
                Piece::Hole(name) => {
                    let Some((_, value)) = values.iter().find(|(k, _)| *k == name) else {
                        panic!("prose/{}: no value for the hole {{{name}}}", self.file)
                    };
                    used.insert(name);
                    out += value;
                }
            }
        }
        if let Some((unused, _)) = values.iter().find(|(k, _)| !used.contains(k)) {
            panic!(
                "prose/{}: a value for {{{unused}}}, which it has no hole for",
                self.file
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Prose = Prose {
        file: "test.md",
        text: "One {a}\n  and {b_2}.\n\nSecond paragraph.\n",
    };

    #[test]
    fn fills_holes_and_joins_lines_and_paragraphs() {
        let s = T.fill(&[("a", "x".into()), ("b_2", "y".into())]);
        assert_eq!(s, "One x and y.\n\nSecond paragraph.");
        assert_eq!(T.holes(), ["a", "b_2"].map(String::from).into());
    }

    #[test]
    #[should_panic(expected = "prose/test.md: no value for the hole {b_2}")]
    fn a_hole_without_a_value_panics() {
        T.fill(&[("a", "x".into())]);
    }

    #[test]
    #[should_panic(expected = "which it has no hole for")]
    fn a_value_without_a_hole_panics() {
        T.fill(&[("a", "x".into()), ("b_2", "y".into()), ("c", "z".into())]);
    }

    #[test]
    #[should_panic(expected = "not a hole")]
    fn a_stray_brace_panics() {
        Prose {
            file: "t",
            text: "a {Not a hole}",
        }
        .holes();
    }

    /// Every template of prose/ parses, has no empty paragraph, and is
    /// filled without a hole left over when each hole gets a value.
    #[test]
    fn every_template_fills() {
        for p in ALL {
            let holes = p.holes();
            let values: Vec<(&str, String)> = holes
                .iter()
                .map(|h| (h.as_str(), format!("<{h}>")))
                .collect();
            let s = p.fill(&values);
            assert!(!s.is_empty() && !s.contains('{'), "prose/{}", p.file);
        }
    }
}
