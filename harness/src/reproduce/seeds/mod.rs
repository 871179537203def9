//! The rows and notes of the seeds' table (results/REPRODUCE.md), one
//! module per seed; this one puts them in seed order and dispatches each
//! note key to the seed that says it. (The techniques' table,
//! results/TECHNIQUES.md, is [`super::techniques`]'s.)

pub mod d25510;
pub mod d32569;
pub mod dragonfly;
pub mod openbsd;

use super::rows::{Note, Row};
use super::{modeled_seeds, techniques, Reproduction, Table, D32569_BUILDKERNEL, D32569_TOUCH};

pub use openbsd::SweepPoint;

/// Every row the plan's experiments allow, in seed order.
pub fn all(o: &Reproduction) -> Vec<Row> {
    if o.plan.table == Table::Techniques {
        return techniques::rows(o);
    }
    let mut rows = Vec::new();
    if openbsd::planned(o) {
        rows.extend(openbsd::rows(o));
    }
    for (tcg, icount, what, published) in d32569::RATES {
        for id in [tcg, icount] {
            if o.has(id) {
                rows.push(d32569::rate_row(o, id, what, published));
            }
        }
        // The touch loop on the model's clocks, beside its measured rows.
        if tcg == D32569_TOUCH {
            rows.extend(modeled_seeds::d32569(o));
        }
    }
    if o.has(D32569_BUILDKERNEL) {
        rows.push(d32569::exit_row(o));
    }
    if dragonfly::planned(o) {
        rows.extend(dragonfly::rows(o));
    }
    for id in d25510::EXPERIMENTS {
        if let Some(exp) = o.plan.experiment(id) {
            for &cpus in &exp.cpus {
                rows.push(d25510::row(o, id, cpus));
            }
        }
    }
    rows.extend(modeled_seeds::d25510(o));
    rows
}

/// The notes the rows cite, each once, in the order first cited.
pub fn notes(o: &Reproduction) -> Vec<Note> {
    let mut keys: Vec<&'static str> = Vec::new();
    for r in &o.rows {
        if !keys.contains(&r.note) {
            keys.push(r.note);
        }
    }
    keys.into_iter()
        .map(|key| {
            let (title, text) = match key {
                openbsd::NOTE => ("000 OpenBSD 2010", openbsd::note(o)),
                d32569::NOTE_RATE => ("004 FreeBSD D32569, the fork loop", d32569::rate_note(o)),
                d32569::NOTE_EXIT => ("004 FreeBSD D32569, buildkernel", d32569::exit_note(o)),
                dragonfly::NOTE => ("001 DragonFly 2004", dragonfly::note()),
                d25510::NOTE => ("003 FreeBSD D25510", d25510::note(o)),
                other => {
                    modeled_seeds::note(o, other).unwrap_or_else(|| techniques::note(o, other))
                }
            };
            Note {
                key,
                title: format!("{title} ({})", o.rows_citing(key)),
                text,
            }
        })
        .collect()
}

/// The sweep of the OpenBSD factor over the plan's CPU counts.
pub fn sweep(o: &Reproduction) -> Vec<SweepPoint> {
    openbsd::sweep(o)
}
