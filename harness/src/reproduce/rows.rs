//! What the table is made of: a [`Row`] (one figure beside the published
//! one), what kind of figure it is ([`Kind`]), and a [`Note`] (why a group
//! of rows differs from the published figures, said once; each row names
//! its note by key, so no explanation repeats across rows). Which rows a
//! table has is [`super::seeds`]'s (REPRODUCE.md) or
//! [`super::techniques`]'s (TECHNIQUES.md).

use super::{Measured, Reproduction};

/// One row of the table.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// `000 OpenBSD 2010`.
    pub seed: String,
    /// What the seed measured, as published.
    pub published: String,
    /// The definition both figures follow (the lab's metric names).
    pub definition: String,
    /// The lab's figure (median over reps), or "not measured: ...".
    pub lab: String,
    /// min..max over reps.
    pub spread: String,
    /// The per-rep values behind `lab` (None when not measured).
    pub measured: Option<Measured>,
    /// The accelerator the figure was measured under.
    pub accel: String,
    /// A count or a time: what the accelerator can speak for; or a
    /// modeled figure.
    pub kind: Kind,
    /// The cost profile of a modeled figure (None for a measured one).
    pub profile: Option<String>,
    /// The key of the [`Note`] that says why the figure differs.
    pub note: &'static str,
}

/// What a figure is, and so what its accelerator can speak for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Events counted (IPIs, calls, early returns): a property of the
    /// code and the workload, the same under any accelerator up to
    /// scheduling.
    Count,
    /// A rate or a latency: only as good as the accelerator's clock.
    Time,
    /// Computed by the memory-system model (tcg-model) from the guest's
    /// accesses and a cost profile: never a measurement (modeled.rs).
    Modeled,
}

impl Row {
    /// The accel column: the accelerator and what it speaks for here.
    pub fn accel_cell(&self) -> String {
        if self.kind == Kind::Modeled {
            let profile = self.profile.as_deref().unwrap_or("?");
            return format!("{} ({profile}): modeled", self.accel);
        }
        let what = match (self.kind, self.accel.as_str()) {
            (Kind::Count, _) => "count: same under any accel",
            (Kind::Time, "tcg-icount") => "virtual time: instruction cost, repeatable",
            (Kind::Time, "tcg") => "emulated time: host-noisy",
            (Kind::Time, "kvm") => "host time",
            (Kind::Time, _) => "time",
            (Kind::Modeled, _) => unreachable!("said above"),
        };
        format!("{} ({what})", self.accel)
    }
}

/// Why a group of rows differs from the published figures, said once.
#[derive(Clone, Debug, PartialEq)]
pub struct Note {
    pub key: &'static str,
    /// `000 OpenBSD 2010 (rows 1-4)`.
    pub title: String,
    pub text: String,
}

/// The lab, spread and measured cells of a row that has no figure.
pub(super) fn not_measured(why: String) -> (String, String, Option<Measured>) {
    (format!("not measured: {why}"), "-".into(), None)
}

impl Reproduction {
    /// The 1-based numbers of the rows citing note `key`: `rows 3-8`.
    pub(super) fn rows_citing(&self, key: &str) -> String {
        self.rows_where(|r| r.note == key)
    }

    /// The 1-based numbers of the rows `pred` picks: `rows 3-8`, `row 2`,
    /// `rows 1, 4`.
    pub(super) fn rows_where(&self, pred: impl Fn(&Row) -> bool) -> String {
        let n: Vec<usize> = self
            .rows
            .iter()
            .enumerate()
            .filter(|(_, r)| pred(r))
            .map(|(i, _)| i + 1)
            .collect();
        match n.as_slice() {
            [] => String::new(),
            [one] => format!("row {one}"),
            [first, .., last] if last - first + 1 == n.len() => format!("rows {first}-{last}"),
            _ => format!(
                "rows {}",
                n.iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accel_cell_says_what_the_figure_can_speak_for() {
        let row = |accel: &str, kind| Row {
            seed: String::new(),
            published: String::new(),
            definition: String::new(),
            lab: String::new(),
            spread: String::new(),
            measured: None,
            accel: accel.into(),
            kind,
            profile: None,
            note: "n",
        };
        assert_eq!(
            row("tcg", Kind::Count).accel_cell(),
            "tcg (count: same under any accel)"
        );
        assert_eq!(
            row("tcg-icount", Kind::Time).accel_cell(),
            "tcg-icount (virtual time: instruction cost, repeatable)"
        );
        assert_eq!(
            row("tcg", Kind::Time).accel_cell(),
            "tcg (emulated time: host-noisy)"
        );
        let mut modeled = row("tcg-model", Kind::Modeled);
        modeled.profile = Some("zen3".into());
        assert_eq!(modeled.accel_cell(), "tcg-model (zen3): modeled");
    }
}
