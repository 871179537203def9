//! The colour of each variant, the same on every chart.
//!
//! The seeds' variants keep the Tableau 10 colours (and two darker tones)
//! they were drawn in from the start. The variants published since took
//! colours picked to be as far as possible, in CIEDE2000 colour
//! difference, from those and from each other (a greedy max-min search
//! over a 16-step sRGB grid, lightness 30-75 so that none fades into the
//! white background): the closest two of the default matrix's 19 differ
//! by about 18 (before, two of them were 10 apart; before commit d09f163
//! every later variant took one of two greys).
//! `tests/lab/charts.rs` measures it with the `palette` crate.

use plotters::style::RGBColor;

/// Every known variant's colour.
const KNOWN: [(&str, RGBColor); 20] = [
    // The seeds' variants (Tableau 10 and two darker tones).
    ("openbsd-2010", RGBColor(0xe1, 0x57, 0x59)),  // red
    ("uninit-bitmap", RGBColor(0xf2, 0x8e, 0x2b)), // orange
    ("fork-inherit", RGBColor(0xed, 0xc9, 0x48)),  // yellow
    ("fixed", RGBColor(0x4e, 0x79, 0xa7)),         // blue
    ("scoreboard", RGBColor(0x59, 0xa1, 0x4f)),    // green
    ("scoreboard-padded", RGBColor(0x1f, 0x5f, 0x2a)), // dark green
    ("dfly-batch", RGBColor(0xb0, 0x7a, 0xa1)),    // purple
    ("shared-page-counted", RGBColor(0xff, 0x9d, 0xa7)), // pink
    ("shared-page-opt", RGBColor(0x76, 0xb7, 0xb2)), // teal
    ("dying-no-ipi", RGBColor(0x1b, 0x6e, 0x6a)),  // dark teal
    ("lost-shootdown", RGBColor(0x9c, 0x75, 0x5f)), // brown
    // The later ones, by the max-min search (in the order it found them).
    ("early-ack", RGBColor(0x77, 0x00, 0xaa)), // violet
    ("in-context-flush", RGBColor(0x77, 0x33, 0x44)), // wine
    ("freebsd-before", RGBColor(0x77, 0x33, 0x00)), // chestnut
    ("lazy-latr", RGBColor(0xaa, 0xaa, 0xff)), // lavender
    ("lazy-tlb", RGBColor(0x77, 0x66, 0x00)),  // olive
    ("cacheline-consolidation", RGBColor(0x44, 0xbb, 0xff)), // sky blue
    ("no-flush-cow", RGBColor(0xdd, 0x00, 0xff)), // magenta
    ("flush-first", RGBColor(0x55, 0x55, 0x55)), // dark grey
    // Not in the default matrix (every run of it ends `unsupported`
    // under TCG): the colour the search found last.
    ("pcid", RGBColor(0x99, 0x99, 0x88)), // warm grey
];

/// Colours for variants not in [`KNOWN`] (the mutants, new variants), the
/// search's next finds; a variant takes one by its name, so two unknown
/// variants may share one.
const OTHERS: [RGBColor; 7] = [
    RGBColor(0x33, 0x44, 0x88), // navy
    RGBColor(0xcc, 0x00, 0x88), // raspberry
    RGBColor(0xff, 0x88, 0xff), // light magenta
    RGBColor(0x99, 0x99, 0x11), // khaki
    RGBColor(0x99, 0x99, 0xaa), // blue grey
    RGBColor(0xcc, 0x44, 0x00), // rust
    RGBColor(0x77, 0x55, 0x88), // plum
];

/// The colour of `variant`, fixed across charts: its own when the lab
/// knows it, else one of `OTHERS` by its name.
pub fn variant_color(variant: &str) -> RGBColor {
    match KNOWN.iter().find(|(v, _)| *v == variant) {
        Some((_, c)) => *c,
        None => OTHERS[variant.bytes().map(usize::from).sum::<usize>() % OTHERS.len()],
    }
}

/// The variants that have a colour of their own.
pub fn known_variants() -> impl Iterator<Item = &'static str> {
    KNOWN.iter().map(|(v, _)| *v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_variant_has_its_own_colour() {
        let mut seen: Vec<RGBColor> = Vec::new();
        for v in known_variants() {
            let c = variant_color(v);
            assert!(!seen.contains(&c), "{v} shares a colour");
            assert!(!OTHERS.contains(&c), "{v}'s colour is also a fallback");
            seen.push(c);
        }
        assert!(OTHERS.contains(&variant_color("mutant-cow-no-shoot")));
    }

    /// A variant file without a colour of its own would share one of
    /// [`OTHERS`] with whatever else lacks one.
    #[test]
    fn every_variant_file_has_a_colour_of_its_own() {
        let ws = crate::workspace::Workspace::at(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".."),
        )
        .unwrap();
        for v in crate::variants::load_all(&ws).unwrap() {
            assert!(
                known_variants().any(|k| k == v.name),
                "{} has no colour in palette.rs",
                v.name
            );
        }
    }
}
