//! The seeds' modeled rows (results/REPRODUCE.md): D32569's fork loop on
//! the model's clocks, DragonFly's synchronous IPI and shootpage, and the
//! scoreboard padding D25510 left undone, each from a tcg-model
//! experiment of [`super::Plan::full`] and placed after the measured rows
//! it stands beside (seeds::all). The machinery is [`super::modeled`]'s.

use super::format::{three_decimals, three_digits};
use super::modeled::{self, ExtraFn, FigureFn, Modeled, Profile, Unit};
use super::rows::Row;
use super::template;
use super::{
    Reproduction, D25510_MODEL, D32569_TOUCH_MODEL, DFLY_PINGPONG_MODEL, DFLY_SHOOTPAGE_MODEL,
};
use crate::results::derive::RunFigures;

/// Note keys.
pub const NOTE_004_MODEL: &str = "004-model";
pub const NOTE_001_MODEL: &str = "001-model";
pub const NOTE_003_MODEL: &str = "003-model";

const D32569: &str = "004 FreeBSD D32569";
const DFLY: &str = "001 DragonFly 2004";
const D25510: &str = "003 FreeBSD D25510";

fn cpus(o: &Reproduction, id: &str) -> u32 {
    o.plan
        .experiment(id)
        .and_then(|e| e.cpus.first().copied())
        .unwrap_or(2)
}

/// D32569's touch loop, modeled: without/with on the model's clocks.
pub fn d32569(o: &Reproduction) -> Vec<Row> {
    if o.plan.experiment(D32569_TOUCH_MODEL).is_none() {
        return vec![];
    }
    let rate = |r: &RunFigures, p: &Profile| modeled::fig(r, &p.name, "ops_per_s");
    let before = |o: &Reproduction, p: &Profile| -> Option<String> {
        let hz = modeled::value(o, D32569_TOUCH_MODEL, "freebsd-before", |r| {
            modeled::fig(r, &p.name, "ops_per_s")
        })?;
        Some(format!("freebsd-before {} Hz", three_digits(hz)))
    };
    modeled::rows(
        o,
        &Modeled {
            source: D32569,
            published: "5750 Hz with the optimisation, 5430 Hz without (ratio 0.944)",
            definition: format!(
                "forkexit (the child touches the shared page: {}, {} CPUs), modeled \
                 ({{profile}}): loops per second of the model's clocks \
                 (model.{{profile}}.ops_per_s), shared-page-counted (without) vs \
                 shared-page-opt (with): the ratio is without/with",
                o.label(D32569_TOUCH_MODEL),
                cpus(o, D32569_TOUCH_MODEL)
            ),
            id: D32569_TOUCH_MODEL,
            variant: "shared-page-counted",
            base: Some("shared-page-opt"),
            cpus: cpus(o, D32569_TOUCH_MODEL),
            figure: &rate,
            unit: Unit::Plain(" Hz"),
            extra: Some(&before),
            note: NOTE_004_MODEL,
        },
    )
}

/// DragonFly's synchronous IPI (`pingpong`) or shootpage, modeled.
pub fn dfly(o: &Reproduction, shootpage: bool) -> Vec<Row> {
    let id = if shootpage {
        DFLY_SHOOTPAGE_MODEL
    } else {
        DFLY_PINGPONG_MODEL
    };
    if o.plan.experiment(id).is_none() {
        return vec![];
    }
    let latency = |r: &RunFigures, p: &Profile| modeled::fig(r, &p.name, "ipi_latency");
    let shoot = |r: &RunFigures, p: &Profile| modeled::fig(r, &p.name, "shoot_per_shootdown");
    let wait = |o: &Reproduction, p: &Profile| -> Option<String> {
        let w = modeled::value(o, id, "fixed", |r| {
            modeled::fig(r, &p.name, "wait_per_shootdown")
        })?;
        Some(format!(
            "of which the wait for the ack {} ns; {}",
            three_digits(p.ns(w)),
            assumed_share(o, id, p, true)?
        ))
    };
    let one_ipi = |o: &Reproduction, p: &Profile| assumed_share(o, id, p, false);
    let (figure, extra, definition, published): (FigureFn, ExtraFn, String, &str) = if shootpage {
        (
            &shoot,
            &wait,
            format!(
                "{} on {} CPUs, fixed, modeled ({{profile}}): a shootdown from its start to \
                 its last ack on the initiator's modeled clock \
                 (model.{{profile}}.shoot_per_shootdown = shoot.cycles / shoot.count; ns at \
                 the profile's clock)",
                o.label(id),
                cpus(o, id)
            ),
            "the same 4-5 us: a synchronous shootdown waits for the target's acknowledgement",
        )
    } else {
        (
            &latency,
            &one_ipi,
            format!(
                "{} on {} CPUs, modeled ({{profile}}): one IPI, the sender's ICR write to the \
                 handler's first instruction on the target's modeled clock \
                 (model.{{profile}}.ipi_latency = ipi.latency_cycles / ipi.entered); one way, \
                 where the seed's figure is a call to completion",
                o.label(id),
                cpus(o, id)
            ),
            "synchronous IPI, call to completion: 4-5 us (2-CPU P3 1.1 GHz; includes a dummy syscall)",
        )
    };
    modeled::rows(
        o,
        &Modeled {
            source: DFLY,
            published,
            definition,
            id,
            variant: "fixed",
            base: None,
            cpus: cpus(o, id),
            figure,
            unit: Unit::Cycles,
            extra: Some(extra),
            note: NOTE_001_MODEL,
        },
    )
}

/// The assumption-labelled share of a modeled IPI (`shootdown`: of a
/// whole shootdown): "ipi_delivery (an assumption) is 84 % of it".
fn assumed_share(o: &Reproduction, id: &str, p: &Profile, shootdown: bool) -> Option<String> {
    let what = if shootdown {
        "shoot_per_shootdown"
    } else {
        "ipi_latency"
    };
    let total = modeled::value(o, id, "fixed", |r| modeled::fig(r, &p.name, what))?;
    // One IPI's round: its delivery, the target's entry and exit, its EOI,
    // and for a shootdown the target's INVLPG.
    let mut costs = vec!["ipi_delivery"];
    if shootdown {
        costs.extend(["interrupt_entry_exit", "eoi", "invlpg"]);
    }
    let assumed: Vec<&str> = costs.iter().copied().filter(|c| p.assumed(c)).collect();
    let cycles: f64 = assumed.iter().map(|c| p.cycles(c)).sum();
    (total > 0.0 && !assumed.is_empty()).then(|| {
        format!(
            "{} ({} cycles, {} {:.0} % of it",
            assumed.join(" + "),
            three_digits(cycles),
            if assumed.len() == 1 {
                "labelled an assumption) is"
            } else {
                "each labelled an assumption) are"
            },
            100.0 * cycles / total
        )
    })
}

/// D25510's padding, modeled: false sharing per shootdown, padded vs not.
pub fn d25510(o: &Reproduction) -> Vec<Row> {
    if o.plan.experiment(D25510_MODEL).is_none() {
        return vec![];
    }
    let id = D25510_MODEL;
    let false_sh =
        |r: &RunFigures, p: &Profile| modeled::per_shootdown(r, &p.name, "coh.false_sharing");
    let extra = |o: &Reproduction, p: &Profile| -> Option<String> {
        let v = |variant: &str, f: &dyn Fn(&RunFigures) -> Option<f64>| {
            modeled::value(o, id, variant, f)
        };
        let all = |r: &RunFigures| modeled::per_shootdown(r, &p.name, "coh.misses");
        let wait = |r: &RunFigures| modeled::fig(r, &p.name, "wait_per_shootdown");
        let fs = |r: &RunFigures| modeled::per_shootdown(r, &p.name, "coh.false_sharing");
        let ns = |x: f64| format!("{} ns", three_digits(p.ns(x)));
        Some(format!(
            "fixed {}; all transfers {} vs {} (fixed {}); initiator wait {} vs {} (fixed {})",
            three_digits(v("fixed", &fs)?),
            three_digits(v("scoreboard-padded", &all)?),
            three_digits(v("scoreboard", &all)?),
            three_digits(v("fixed", &all)?),
            ns(v("scoreboard-padded", &wait)?),
            ns(v("scoreboard", &wait)?),
            ns(v("fixed", &wait)?),
        ))
    };
    modeled::rows(
        o,
        &Modeled {
            source: D25510,
            published: "none: the review gives no figure, and leaves the scoreboard's padding \
                        undone (each CPU's row word shares its cache line with the others')",
            definition: format!(
                "{} on {} CPUs, modeled ({{profile}}): falsely shared cache-line transfers \
                 per shootdown (model.{{profile}}.coh.false_sharing / shoot.count: a line \
                 moved for a word the receiver does not touch), then all transfers per \
                 shootdown (coh.misses / shoot.count) and the initiator's wait \
                 (wait_per_shootdown); scoreboard-padded vs scoreboard",
                o.label(id),
                cpus(o, id)
            ),
            id,
            variant: "scoreboard-padded",
            base: Some("scoreboard"),
            cpus: cpus(o, id),
            figure: &false_sh,
            unit: Unit::Plain(""),
            extra: Some(&extra),
            note: NOTE_003_MODEL,
        },
    )
}

/// Per profile: `f`'s text, joined: "skylake-sp: ...; zen3: ...".
fn per_profile(o: &Reproduction, f: impl Fn(&Profile) -> String) -> String {
    o.profiles
        .iter()
        .map(|p| format!("{}: {}", p.name, f(p)))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The title and text of a seed's modeled note, if `key` is one.
pub fn note(o: &Reproduction, key: &str) -> Option<(&'static str, String)> {
    Some(match key {
        NOTE_004_MODEL => {
            let id = D32569_TOUCH_MODEL;
            let ratio = |p: &Profile| {
                let f =
                    |v: &str| modeled::value(o, id, v, |r| modeled::fig(r, &p.name, "ops_per_s"));
                Some(f("shared-page-counted")? / f("shared-page-opt")?)
            };
            let rates = per_profile(o, |p| {
                let q = |v: &str| {
                    modeled::quote(
                        o,
                        id,
                        v,
                        |r| modeled::fig(r, &p.name, "ops_per_s"),
                        |x| format!("{} Hz", three_digits(x)),
                    )
                };
                format!(
                    "shared-page-opt {}, shared-page-counted {}",
                    q("shared-page-opt"),
                    q("shared-page-counted")
                )
            });
            let ratios = per_profile(o, |p| {
                ratio(p).map(three_decimals).unwrap_or_else(|| "?".into())
            });
            let falls = o.profiles.iter().all(|p| ratio(p).is_some_and(|r| r < 1.0));
            let icount = super::seeds::d32569::icount_ratio(o);
            let icount_v: Option<f64> = icount.parse().ok();
            let model_v = o.profiles.first().and_then(ratio);
            let dilution = match (model_v, icount_v) {
                (Some(m), Some(i)) if (1.0 - m).abs() < (1.0 - i).abs() => {
                    "The modeled ratio is nearer 1 than tcg-icount's: the transfers and \
                     misses are mostly the fork, exec and page copies both variants make, and \
                     they dilute the saved walk's share of the loop."
                }
                (Some(_), Some(_)) => {
                    "The modeled ratio is further from 1 than tcg-icount's: the walks the \
                     early return saves touch page-table lines and TLB entries the model \
                     charges, so the saving weighs more on its clocks than in instructions."
                }
                _ => "",
            };
            let per_op = |m: &'static str| {
                per_profile(o, move |p| {
                    modeled::quote(
                        o,
                        id,
                        "shared-page-opt",
                        |r| modeled::fig(r, &p.name, &format!("per_op.{m}")),
                        three_digits,
                    )
                })
            };
            (
                "004 FreeBSD D32569, modeled",
                template::SEED_004_MODEL.fill(&[
                    ("rates", rates),
                    ("ratios", ratios),
                    ("icount", icount.clone()),
                    ("dilution", dilution.into()),
                    (
                        "agrees",
                        if falls {
                            "agrees with"
                        } else {
                            "disagrees with"
                        }
                        .into(),
                    ),
                    ("transfers", per_op("coh.misses")),
                    ("tlb", per_op("tlb.misses")),
                ]),
            )
        }
        NOTE_001_MODEL => {
            let ipi = per_profile(o, |p| {
                modeled::quote(
                    o,
                    DFLY_PINGPONG_MODEL,
                    "fixed",
                    |r| modeled::fig(r, &p.name, "ipi_latency"),
                    |x| format!("{} ns", three_digits(p.ns(x))),
                )
            });
            let shoot = per_profile(o, |p| {
                modeled::quote(
                    o,
                    DFLY_SHOOTPAGE_MODEL,
                    "fixed",
                    |r| modeled::fig(r, &p.name, "shoot_per_shootdown"),
                    |x| format!("{} ns", three_digits(p.ns(x))),
                )
            });
            (
                "001 DragonFly 2004, modeled",
                template::SEED_001_MODEL.fill(&[("ipi", ipi), ("shoot", shoot)]),
            )
        }
        NOTE_003_MODEL => {
            let id = D25510_MODEL;
            let pair = |f: &dyn Fn(&RunFigures, &Profile) -> Option<f64>,
                        show: &dyn Fn(f64, &Profile) -> String| {
                per_profile(o, |p| {
                    let v = |variant: &str| modeled::value(o, id, variant, |r| f(r, p));
                    match (v("scoreboard-padded"), v("scoreboard")) {
                        (Some(a), Some(b)) => format!("{} padded vs {}", show(a, p), show(b, p)),
                        _ => "?".into(),
                    }
                })
            };
            let ratio = |f: &dyn Fn(&RunFigures, &Profile) -> Option<f64>| -> Option<f64> {
                let p = o.profiles.first()?;
                let v = |variant: &str| modeled::value(o, id, variant, |r| f(r, p));
                Some(v("scoreboard-padded")? / v("scoreboard")?)
            };
            let fs = |r: &RunFigures, p: &Profile| {
                modeled::per_shootdown(r, &p.name, "coh.false_sharing")
            };
            let all =
                |r: &RunFigures, p: &Profile| modeled::per_shootdown(r, &p.name, "coh.misses");
            let wait = |r: &RunFigures, p: &Profile| modeled::fig(r, &p.name, "wait_per_shootdown");
            let plain = |x: f64, _: &Profile| three_digits(x);
            let pct = |r: Option<f64>| {
                let first = o
                    .profiles
                    .first()
                    .map(|p| p.name.clone())
                    .unwrap_or_default();
                r.map(|r| format!("{:.0} % on {first}", (r - 1.0).abs() * 100.0))
                    .unwrap_or_else(|| "?".into())
            };
            let ns = |x: f64, p: &Profile| format!("{} ns", three_digits(p.ns(x)));
            (
                "003 FreeBSD D25510, modeled",
                template::SEED_003_MODEL.fill(&[
                    ("fs_dir", modeled::direction(ratio(&fs)).into()),
                    ("fs_pct", pct(ratio(&fs))),
                    ("fs", pair(&fs, &plain)),
                    ("all_pct", pct(ratio(&all))),
                    ("wait_pct", pct(ratio(&wait))),
                    ("all_dir", modeled::direction(ratio(&all)).into()),
                    ("all", pair(&all, &plain)),
                    ("wait_dir", modeled::direction(ratio(&wait)).into()),
                    ("wait", pair(&wait, &ns)),
                ]),
            )
        }
        _ => return None,
    })
}
