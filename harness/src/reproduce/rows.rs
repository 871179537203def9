//! The rows of the reproduction table, computed from the stored runs.
//!
//! Every lab figure is computed per repetition (the runs of one rep of the
//! experiments it needs) and then summarised as the median and min..max
//! over the repetitions ([`Measured`]). A figure that needs a variant or
//! workload the tree lacks says "not measured: <why>" in place of a value.
//!
//! Why a lab figure differs from the published one is said once per seed
//! (or per group of rows) in a [`Note`]; each [`Row`] names its note by
//! key, so no explanation repeats across rows.

use std::collections::BTreeSet;

use super::{
    Reproduction, D25510_MMAP, D25510_SHOOT, D32569_BUILDKERNEL, D32569_NCPU, D32569_NCPU_ICOUNT,
    D32569_NOTOUCH, D32569_NOTOUCH_ICOUNT, D32569_TOUCH, D32569_TOUCH_ICOUNT, DFLY_PINGPONG,
    DFLY_SHOOTPAGE, OBSD_BUILDKERNEL, OBSD_FORKEXIT,
};
use crate::results::derive::{RunFigures, SHOOT_KINDS};

/// The pool fill of an uninitialised `pm_cpus` (OpenBSD's pool poison):
/// the 32-bit 0xdeadbeef repeated (lab_core::poison), so the u64 reads
/// 0xdeadbeef_deadbeef. Below 32 CPUs only the low word counts; above, CPU
/// n + 32 is marked exactly when CPU n is: 24 of CPUs 0-31, 48 of 0-63.
pub const POOL_FILL: u64 =
    (lab_core::poison::POISON as u64) << 32 | lab_core::poison::POISON as u64;

/// A figure per repetition; `f64::INFINITY` stands for a ratio over 0.
#[derive(Clone, Debug, PartialEq)]
pub struct Measured {
    pub per_rep: Vec<f64>,
}

impl Measured {
    pub fn median(&self) -> Option<f64> {
        let mut v = self.per_rep.clone();
        if v.is_empty() {
            return None;
        }
        v.sort_by(|a, b| a.total_cmp(b));
        let n = v.len();
        // An even count with an infinite middle value has an infinite
        // median (the mean would be too, but say it plainly).
        Some(
            if n % 2 == 1 || v[n / 2 - 1].is_infinite() || v[n / 2].is_infinite() {
                v[n / 2]
            } else {
                (v[n / 2 - 1] + v[n / 2]) / 2.0
            },
        )
    }
    pub fn min(&self) -> Option<f64> {
        self.per_rep.iter().copied().min_by(|a, b| a.total_cmp(b))
    }
    pub fn max(&self) -> Option<f64> {
        self.per_rep.iter().copied().max_by(|a, b| a.total_cmp(b))
    }
    /// `min..max over N reps`, each value written by `fmt`; when every
    /// rep gave the same value (always, under tcg-icount, which repeats a
    /// run bit for bit, and for exact counts), it says so: that is one
    /// sample repeated, not a spread.
    pub fn spread(&self, fmt: impl Fn(f64) -> String) -> String {
        match (self.min(), self.max()) {
            (Some(lo), Some(hi)) if self.per_rep.len() > 1 && lo == hi => format!(
                "{} in each of {} reps: one sample, repeated exactly",
                fmt(lo),
                self.per_rep.len()
            ),
            (Some(lo), Some(hi)) => format!(
                "{}..{} over {} rep{}",
                fmt(lo),
                fmt(hi),
                self.per_rep.len(),
                if self.per_rep.len() == 1 { "" } else { "s" }
            ),
            _ => "no runs".into(),
        }
    }
}

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

/// One CPU count of the OpenBSD factor's sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepPoint {
    pub cpus: u32,
    /// CPUs below `cpus` the 0xdeadbeef fill marks active.
    pub fill_cpus: u32,
    /// shootpage+shootrange IPIs over the mix, median over reps.
    pub obsd_ipis: Option<f64>,
    pub fixed_ipis: Option<f64>,
    /// Factor per rep (infinite when fixed sent none).
    pub factor: Measured,
}

/// The CPUs among `0..cpus` whose bit the pool fill sets.
pub fn fill_cpus(cpus: u32) -> u32 {
    let mask = if cpus >= 64 {
        u64::MAX
    } else {
        (1u64 << cpus) - 1
    };
    (POOL_FILL & mask).count_ones()
}

/// `0, 1, 2, 3, 5, 6, 7`-style list of the CPUs the fill marks.
fn fill_list(cpus: u32) -> String {
    (0..cpus.min(64))
        .filter(|c| POOL_FILL >> c & 1 == 1)
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

pub fn fmt_num(v: f64) -> String {
    if v.is_infinite() {
        "∞".into()
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn fmt_pct(v: f64) -> String {
    format!("{:.1} %", v * 100.0)
}

pub(super) fn fmt_ratio(v: f64) -> String {
    if v.is_infinite() {
        "∞".into()
    } else {
        format!("{v:.3}")
    }
}

/// `cycles` of run `r` per shootdown that sent IPIs, in us.
fn us_per_ipi_shootdown(r: &RunFigures, cycles: Option<f64>) -> Option<f64> {
    let calls = r.sum_kinds("shoot.calls.", &SHOOT_KINDS).unwrap_or(0.0);
    let noipi = r.sum_kinds("shoot.noipi.", &SHOOT_KINDS).unwrap_or(0.0);
    let (cycles, hz) = (cycles?, r.total("tsc.hz")?);
    (calls - noipi > 0.0).then(|| cycles / (calls - noipi) / hz * 1e6)
}

/// Mean wait (slot + acks) per shootdown that sent IPIs, in us.
pub(super) fn wait_us_per_ipi_shootdown(r: &RunFigures) -> Option<f64> {
    let wait = r
        .total("shoot.wait.ack")
        .map(|ack| r.total("shoot.wait.slot").unwrap_or(0.0) + ack);
    us_per_ipi_shootdown(r, wait)
}

/// The initiator's whole cost per shootdown that sent IPIs, its own
/// invalidation included (shoot.op_cycles: start to the end of its wait),
/// in us.
pub(super) fn op_us_per_ipi_shootdown(r: &RunFigures) -> Option<f64> {
    us_per_ipi_shootdown(r, r.total("shoot.op_cycles"))
}

/// shootpage + shootrange IPIs sent.
fn page_range_ipis(r: &RunFigures) -> f64 {
    r.total("ipi.sent.shootpage").unwrap_or(0.0) + r.total("ipi.sent.shootrange").unwrap_or(0.0)
}

/// (calls, calls that sent no IPI) of shootpage + shootrange.
fn page_range_calls(r: &RunFigures) -> (f64, f64) {
    let get = |m: &str| r.total(m).unwrap_or(0.0);
    (
        get("shoot.calls.shootpage") + get("shoot.calls.shootrange"),
        get("shoot.noipi.shootpage") + get("shoot.noipi.shootrange"),
    )
}

impl Reproduction {
    fn reps(&self) -> std::ops::RangeInclusive<u32> {
        1..=self.plan.reps
    }

    fn has(&self, id: &str) -> bool {
        self.plan.experiment(id).is_some()
    }

    /// Why (any of) `variants` of experiment `ids` was not measured.
    pub(super) fn why_not(&self, ids: &[&str], variants: &[&str]) -> Option<String> {
        ids.iter()
            .flat_map(|id| variants.iter().map(move |v| (id, v)))
            .find_map(|(id, v)| self.availability.why_not(id, v))
    }

    /// `f(rep)` for each rep where it has a value.
    pub(super) fn per_rep(&self, f: impl Fn(u32) -> Option<f64>) -> Option<Measured> {
        let per_rep: Vec<f64> = self.reps().filter_map(f).collect();
        (!per_rep.is_empty()).then_some(Measured { per_rep })
    }

    /// Sum of `f` over the OpenBSD mix's runs of `variant` on `cpus`, rep
    /// `rep`; None unless every experiment of the mix has that run.
    fn mix_sum(
        &self,
        variant: &str,
        cpus: u32,
        rep: u32,
        f: impl Fn(&RunFigures) -> f64,
    ) -> Option<f64> {
        let ids: Vec<&str> = [OBSD_FORKEXIT, OBSD_BUILDKERNEL]
            .into_iter()
            .filter(|id| self.has(id))
            .collect();
        if ids.is_empty() {
            return None;
        }
        ids.iter()
            .map(|id| self.pool.get(id, variant, cpus, rep).map(&f))
            .sum()
    }

    /// openbsd-2010's over fixed's shootpage+shootrange IPIs on `cpus`.
    fn factor(&self, cpus: u32) -> Option<Measured> {
        self.per_rep(|rep| {
            let obsd = self.mix_sum("openbsd-2010", cpus, rep, page_range_ipis)?;
            let fixed = self.mix_sum("fixed", cpus, rep, page_range_ipis)?;
            Some(if fixed == 0.0 {
                if obsd == 0.0 {
                    return None;
                }
                f64::INFINITY
            } else {
                obsd / fixed
            })
        })
    }

    fn mix_ipis(&self, variant: &str, cpus: u32) -> Option<f64> {
        self.per_rep(|rep| self.mix_sum(variant, cpus, rep, page_range_ipis))?
            .median()
    }

    fn noipi_share(&self, variant: &str, cpus: u32) -> Option<Measured> {
        self.per_rep(|rep| {
            let calls = self.mix_sum(variant, cpus, rep, |r| page_range_calls(r).0)?;
            let noipi = self.mix_sum(variant, cpus, rep, |r| page_range_calls(r).1)?;
            (calls > 0.0).then(|| noipi / calls)
        })
    }

    /// Median over reps of a figure of one run.
    fn run_median(
        &self,
        id: &str,
        variant: &str,
        cpus: u32,
        f: impl Fn(&RunFigures) -> Option<f64>,
    ) -> Option<Measured> {
        self.per_rep(|rep| f(self.pool.get(id, variant, cpus, rep)?))
    }

    /// The mix's label: `forkexit[loops=100] + buildkernel[jobs=8]`.
    pub(super) fn mix_label(&self) -> String {
        [OBSD_FORKEXIT, OBSD_BUILDKERNEL]
            .iter()
            .filter_map(|id| self.plan.experiment(id))
            .map(|e| e.label())
            .collect::<Vec<_>>()
            .join(" + ")
    }
}

pub(super) fn not_measured(why: String) -> (String, String, Option<Measured>) {
    (format!("not measured: {why}"), "-".into(), None)
}

/// Note keys.
const NOTE_000: &str = "000";
const NOTE_004_RATE: &str = "004-rate";
const NOTE_004_EXIT: &str = "004-exit";
const NOTE_001: &str = "001";
const NOTE_003: &str = "003";

/// Seed 004's rate experiments: (plain TCG id, tcg-icount id, what the
/// child does, the published figure).
const D32569_RATES: [(&str, &str, &str, &str); 3] = [
    (
        D32569_TOUCH,
        D32569_TOUCH_ICOUNT,
        "the child touches the shared page",
        "5750 Hz with the optimisation, 5430 Hz without (ratio 0.944)",
    ),
    (
        D32569_NOTOUCH,
        D32569_NOTOUCH_ICOUNT,
        "the child does not touch the shared page",
        "no significant difference",
    ),
    (
        D32569_NCPU,
        D32569_NCPU_ICOUNT,
        "the child touches the shared page, NCPU instances",
        "a smaller but still measurable effect (bottlenecked on pv list locks)",
    ),
];

impl Reproduction {
    /// The accelerator experiment `id` was measured under.
    pub(super) fn accel_of(&self, id: &str) -> String {
        self.accels.get(id).cloned().unwrap_or_else(|| {
            match self.plan.experiment(id).and_then(|e| e.accel) {
                Some(choice) => super::accel_name(choice).to_string(),
                None => self.accel.clone(),
            }
        })
    }

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

    /// The median of `m`, if measured.
    fn median_of(&self, m: Option<Measured>) -> Option<f64> {
        m.and_then(|m| m.median())
    }
}

/// openbsd-2010 / fixed from two IPI counts; infinite when fixed sent
/// none, None when neither did.
fn factor_of(obsd: f64, fixed: f64) -> Option<f64> {
    if fixed == 0.0 {
        (obsd > 0.0).then_some(f64::INFINITY)
    } else {
        Some(obsd / fixed)
    }
}

/// The lab and spread cells of a factor: "all eliminated" where fixed
/// sent no IPI, said as counts, not as a number.
fn factor_cells(
    m: Measured,
    obsd: Option<Measured>,
    fixed: Option<Measured>,
    suffix: &str,
) -> (String, String, Option<Measured>) {
    let o_med = obsd.as_ref().and_then(|m| m.median()).unwrap_or(f64::NAN);
    let f_med = fixed.as_ref().and_then(|m| m.median()).unwrap_or(f64::NAN);
    let zero_reps = m.per_rep.iter().filter(|v| v.is_infinite()).count();
    let n = m.per_rep.len();
    let med = m.median().unwrap_or(f64::NAN);
    let lab = if med.is_infinite() {
        format!("{} vs 0 IPIs: all eliminated{suffix}", fmt_num(o_med))
    } else {
        format!(
            "{} ({} vs {} IPIs){suffix}",
            fmt_num(med),
            fmt_num(o_med),
            fmt_num(f_med)
        )
    };
    let spread = if zero_reps == n {
        format!(
            "fixed sent 0 in {n} of {n} reps; openbsd-2010 {}",
            obsd.map(|m| m.spread(fmt_num))
                .unwrap_or_else(|| "-".into())
        )
    } else if zero_reps > 0 {
        format!("{} (fixed sent 0 in {zero_reps} reps)", m.spread(fmt_num))
    } else {
        m.spread(fmt_num)
    };
    (lab, spread, Some(m))
}

/// Every row the plan's experiments allow, in seed order.
pub fn all(o: &Reproduction) -> Vec<Row> {
    if o.plan.table == super::Table::Techniques {
        return super::techniques::rows(o);
    }
    let mut rows = Vec::new();
    if o.has(OBSD_FORKEXIT) || o.has(OBSD_BUILDKERNEL) {
        rows.extend(openbsd(o));
    }
    for (tcg, icount, what, published) in D32569_RATES {
        for id in [tcg, icount] {
            if o.has(id) {
                rows.push(d32569_rate(o, id, what, published));
            }
        }
        // The touch loop on the model's clocks, beside its measured rows.
        if tcg == D32569_TOUCH {
            rows.extend(super::modeled_seeds::d32569(o));
        }
    }
    if o.has(D32569_BUILDKERNEL) {
        rows.push(d32569_exit_early(o));
    }
    if o.has(DFLY_PINGPONG) || o.has(DFLY_SHOOTPAGE) {
        rows.extend(dfly(o));
    }
    for id in [D25510_MMAP, D25510_SHOOT] {
        if let Some(exp) = o.plan.experiment(id) {
            for &cpus in &exp.cpus {
                rows.push(d25510(o, id, cpus));
            }
        }
    }
    rows.extend(super::modeled_seeds::d25510(o));
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
                NOTE_000 => ("000 OpenBSD 2010", note_000(o)),
                NOTE_004_RATE => ("004 FreeBSD D32569, the fork loop", note_004_rate(o)),
                NOTE_004_EXIT => ("004 FreeBSD D32569, buildkernel", note_004_exit(o)),
                NOTE_001 => ("001 DragonFly 2004", note_001()),
                NOTE_003 => ("003 FreeBSD D25510", note_003(o)),
                other => super::modeled_seeds::note(o, other)
                    .unwrap_or_else(|| super::techniques::note(o, other)),
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
    if !(o.has(OBSD_FORKEXIT) || o.has(OBSD_BUILDKERNEL)) {
        return vec![];
    }
    o.plan
        .sweep_cpus
        .iter()
        .map(|&cpus| SweepPoint {
            cpus,
            fill_cpus: fill_cpus(cpus),
            obsd_ipis: o.mix_ipis("openbsd-2010", cpus),
            fixed_ipis: o.mix_ipis("fixed", cpus),
            factor: o.factor(cpus).unwrap_or(Measured { per_rep: vec![] }),
        })
        .collect()
}

const OBSD: [&str; 2] = ["openbsd-2010", "fixed"];

fn openbsd(o: &Reproduction) -> Vec<Row> {
    let cpus = o.plan.factor_cpus;
    let mix = o.mix_label();
    let mix_ids = [OBSD_FORKEXIT, OBSD_BUILDKERNEL];
    let row = |published: &str, definition: String, cells: (String, String, Option<Measured>)| {
        let (lab, spread, measured) = cells;
        Row {
            seed: "000 OpenBSD 2010".into(),
            published: published.into(),
            definition,
            lab,
            spread,
            measured,
            accel: o.accel_of(OBSD_FORKEXIT),
            kind: Kind::Count,
            profile: None,
            note: NOTE_000,
        }
    };
    let mut rows = Vec::new();
    // Each workload alone: the lead figures.
    for id in mix_ids {
        let Some(exp) = o.plan.experiment(id) else {
            continue;
        };
        let ipis = |v: &str| o.run_median(id, v, cpus, |r| Some(page_range_ipis(r)));
        let factor = o.per_rep(|rep| {
            factor_of(
                page_range_ipis(o.pool.get(id, "openbsd-2010", cpus, rep)?),
                page_range_ipis(o.pool.get(id, "fixed", cpus, rep)?),
            )
        });
        let cells = match (o.why_not(&[id], &OBSD), factor) {
            (Some(why), _) => not_measured(why),
            (None, None) => not_measured("no ok runs, or no IPIs either way".into()),
            (None, Some(m)) => factor_cells(m, ipis("openbsd-2010"), ipis("fixed"), ""),
        };
        rows.push(row(
            "no figure per workload (the 21 below is over ordinary use)",
            format!(
                "ipi.sent.shootpage + ipi.sent.shootrange in {} alone, openbsd-2010 / fixed, {cpus} CPUs",
                exp.label()
            ),
            cells,
        ));
    }
    // The mix: the published factor's counterpart, set by the mix.
    let why = o.why_not(&mix_ids, &OBSD);
    let mix_ipis = |v: &str| o.per_rep(|rep| o.mix_sum(v, cpus, rep, page_range_ipis));
    let cells = match (&why, o.factor(cpus)) {
        (Some(why), _) => not_measured(why.clone()),
        (None, None) => not_measured("no ok runs".into()),
        (None, Some(m)) => factor_cells(
            m,
            mix_ipis("openbsd-2010"),
            mix_ipis("fixed"),
            ": a figure set by the mix",
        ),
    };
    rows.push(row(
        "shootpage+shootrange IPIs fall by a factor of 21 (4-CPU laptop, ordinary use)",
        format!(
            "the same sum over the mix {mix} (the lab's stand-in for ordinary use), openbsd-2010 / fixed, {cpus} CPUs"
        ),
        cells,
    ));
    let cells = match (&why, o.noipi_share("fixed", cpus)) {
        (Some(why), _) => not_measured(why.clone()),
        (None, None) => not_measured("no shootpage/shootrange calls".into()),
        (None, Some(m)) => (
            fmt_pct(m.median().unwrap_or(f64::NAN)),
            m.spread(fmt_pct),
            Some(m),
        ),
    };
    rows.push(row(
        "the IPI eliminated on over 7/8 (87.5 %) of shootpage/shootrange calls",
        format!(
            "(shoot.noipi.shootpage + shoot.noipi.shootrange) / (shoot.calls.shootpage + shoot.calls.shootrange) in fixed, over the same mix, {cpus} CPUs"
        ),
        cells,
    ));
    rows
}

fn note_000(o: &Reproduction) -> String {
    let cpus = o.plan.factor_cpus;
    let k = fill_cpus(cpus);
    let obsd_share = o
        .noipi_share("openbsd-2010", cpus)
        .and_then(|m| m.median())
        .map(fmt_pct)
        .unwrap_or_else(|| "not measured".into());
    let fixed_bk = o
        .run_median(OBSD_BUILDKERNEL, "fixed", cpus, |r| {
            Some(page_range_ipis(r))
        })
        .map(|m| m.spread(fmt_num))
        .unwrap_or_else(|| "not measured".into());
    format!(
        "openbsd-2010 leaves pm_cpus with the pool's 0xdeadbeef fill: its low byte 0xef marks \
         CPUs {list} of {cpus} ({k} CPUs; CPU 4 is the one clear bit below 8), so every pmap \
         looks active there and each shootpage/shootrange IPIs all of them but the caller, and \
         the fork bug adds the parent's CPU to the child. fixed IPIs only CPUs that really run \
         the pmap: a single-threaded process is active on its own CPU only, so its shootdowns \
         send none, and a call sends no IPI when the pmap is active on no CPU but the caller's \
         (openbsd-2010's share of such calls is {obsd_share}). forkexit's processes are all \
         single-threaded, so fixed may send no shootpage/shootrange IPI there at all: the \
         factor is then not a number but \"all eliminated\". What fixed still sends comes from \
         threads on several CPUs at once (buildkernel's link step) and from processes that \
         moved CPU; how many depends on timing (which CPU a forked child starts on, since it \
         starts on an idle one, and whether the link threads overlap), so fixed's buildkernel \
         count moves between reps (on {cpus} CPUs: {fixed_bk}) and a factor with it in the \
         denominator moves more than the counts do. So a factor over several workloads is set by their mix, as the laptop's \
         21 was by its desktop's mix of processes, threaded programs and CPUs that had run a \
         pmap lately; the lab's mix is one forkexit and one buildkernel run, nothing else runs, \
         there is no lazy TLB and threads exist only where the workload makes them, which is \
         also why the no-IPI share is above the laptop's 7/8. On 4 CPUs the fill marks every \
         CPU, as on the laptop; above 4, CPU 4 is spared (see the sweep below) and fixed's \
         threaded IPIs grow with the CPUs, so the factor falls.",
        list = fill_list(cpus),
    )
}

fn d32569_rate(o: &Reproduction, id: &str, what: &str, published: &str) -> Row {
    let exp = o.plan.experiment(id).expect("caller checked");
    let cpus = exp.cpus[0];
    let hz = |variant: &str| o.run_median(id, variant, cpus, |r| r.figure("ops_per_s"));
    let ratio = d32569_ratio(o, id);
    let why = o.why_not(&[id], &["shared-page-opt", "shared-page-counted"]);
    let med = |m: Option<Measured>| m.and_then(|m| m.median());
    let before_hz = med(hz("freebsd-before"))
        .map(|v| format!("{} Hz", fmt_num(v)))
        .unwrap_or_else(|| "not measured".into());
    let (lab, spread, measured) = match (&why, ratio) {
        (Some(why), _) => (
            format!("not measured: {why}; freebsd-before (before the diff): {before_hz}"),
            "-".into(),
            None,
        ),
        (None, None) => not_measured("no ok runs".into()),
        (None, Some(m)) => (
            format!(
                "{} vs {} Hz, ratio {} (freebsd-before {before_hz})",
                fmt_num(med(hz("shared-page-opt")).unwrap_or(f64::NAN)),
                fmt_num(med(hz("shared-page-counted")).unwrap_or(f64::NAN)),
                fmt_ratio(m.median().unwrap_or(f64::NAN))
            ),
            format!("ratio {}", m.spread(fmt_ratio)),
            Some(m),
        ),
    };
    let instances = exp
        .params
        .iter()
        .find(|(k, _)| k == "instances")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| "1".into());
    Row {
        seed: "004 FreeBSD D32569".into(),
        published: published.into(),
        definition: format!(
            "forkexit ({what}: instances={instances}, {cpus} CPUs): loops/s (ops_per_s), \
             shared-page-opt (with) vs shared-page-counted (without), median over reps of the per-rep ratio without/with"
        ),
        lab,
        spread,
        measured,
        accel: o.accel_of(id),
        kind: Kind::Time,
        profile: None,
        note: NOTE_004_RATE,
    }
}

/// The touch loop's ratio without/with under tcg-icount, for the notes.
pub(super) fn d32569_icount_ratio(o: &Reproduction) -> String {
    o.median_of(d32569_ratio(o, D32569_TOUCH_ICOUNT))
        .map(fmt_ratio)
        .unwrap_or_else(|| "not measured".into())
}

/// Per rep: shared-page-counted's loops/s over shared-page-opt's.
fn d32569_ratio(o: &Reproduction, id: &str) -> Option<Measured> {
    let cpus = o.plan.experiment(id)?.cpus[0];
    o.per_rep(|rep| {
        let with = o
            .pool
            .get(id, "shared-page-opt", cpus, rep)?
            .figure("ops_per_s")?;
        let without = o
            .pool
            .get(id, "shared-page-counted", cpus, rep)?
            .figure("ops_per_s")?;
        Some(without / with)
    })
}

fn note_004_rate(o: &Reproduction) -> String {
    // The figures the note quotes come from the touch experiment,
    // preferably its tcg-icount twin (repeatable).
    let id = [D32569_TOUCH_ICOUNT, D32569_TOUCH]
        .into_iter()
        .find(|id| o.has(id))
        .unwrap_or(D32569_TOUCH);
    let cpus = o.plan.experiment(id).map(|e| e.cpus[0]).unwrap_or(2);
    let q = |m: Option<Measured>| o.median_of(m).map(fmt_num).unwrap_or_else(|| "?".into());
    let removes_per_exit = q(o.run_median(id, "freebsd-before", cpus, |r| {
        Some(r.total("pmap.remove.exit_calls")? / r.figure("ops")?)
    }));
    let ipis = |v: &str| q(o.run_median(id, v, cpus, |r| r.figure("ipis_per_op")));
    let ratio = |id: &str| {
        o.median_of(d32569_ratio(o, id))
            .map(fmt_ratio)
            .unwrap_or_else(|| "not measured".into())
    };
    let nt_hz = |v: &str| {
        let id = D32569_NOTOUCH_ICOUNT;
        let cpus = o.plan.experiment(id).map(|e| e.cpus[0]).unwrap_or(2);
        q(o.run_median(id, v, cpus, |r| r.figure("ops_per_s")))
    };
    let spread = |id: &str| {
        d32569_ratio(o, id)
            .map(|m| m.spread(fmt_ratio))
            .unwrap_or_else(|| "-".into())
    };
    format!(
        "\"Without the optimisation\" in the review is pmap_remove's early return disabled; \
         shared-page-counted stands for it (top-level pages counted in resident_count and the \
         shared page not unmapped, so resident_count never reaches 0 and the early return never \
         fires), shared-page-opt is D32569 as landed (the shared page unmapped on exec and exit, \
         so the early return fires again), freebsd-before is the tree before the diff. All \
         three are built on freebsd-base: pmap_remove invalidates only if it removed a valid \
         entry, and then only the CPUs in pm_cpus, so an exiting single-threaded process \
         interrupts no other CPU (shootdown IPIs per loop in the touch experiment under {accel}: \
         shared-page-counted {c}, shared-page-opt {p}). What the optimisation saves is then the \
         same thing as on FreeBSD: the walk. The parent maps 60 extra entries (entries=60; the \
         reviewer's parent had 60), so each exit makes {removes_per_exit} pmap_remove calls per \
         loop, and without the early return each walks the page-table levels of its range. \
         Under tcg-icount the touch ratio is {icount} against FreeBSD's 0.944. Only the walk is \
         the same work, though: the rest of the loop, against which the saved walks are \
         measured, is the lab's own; its fork has no vm_objects and no pv lists and copies \
         the resident pages eagerly, so a cheaper or dearer fork would move the ratio, and \
         the close match is partly coincidence. Under plain TCG the ratio is {tcg} ({tcg_spread}) \
         and moves from run to run and day to day: two MTTCG vCPU threads share the host's 2 \
         cores with everything else, and that noise is larger than the 6 % effect, so read the \
         tcg-icount rows, which are repeatable to the instruction. Without the touch the \
         review compared with and without exec_free_abi_mappings() and saw no significant \
         difference; the lab's \"without\", shared-page-counted, still counts the top-level \
         pages, so resident_count stays above 0, the early return never fires and the walks \
         come back (ratio {notouch} under tcg-icount), while freebsd-before, whose early \
         return works because the child never faulted the shared page in, runs as fast as \
         shared-page-opt ({before_nt} vs {opt_nt} Hz): the lab's stand-in for \"without\" is \
         harsher than the review's there. NCPU instances (ratio {ncpu} under tcg-icount): NCPU is 2 \
         guest CPUs, the experiment's setting: its plain-TCG twin on more vCPUs than the \
         host has cores would measure the host's scheduling; FreeBSD's limit was pv list lock contention \
         in pmap_remove_pages, which the lab has no counterpart for, and under tcg-icount the \
         vCPUs run round robin on one host thread, so that row measures instruction cost, not \
         contention. Neither accelerator has caches or TLB misses: the ratios say the saved \
         work is visible, not its size on hardware; 5750 Hz wants KVM on real hardware.",
        accel = o.accel_of(id),
        c = ipis("shared-page-counted"),
        p = ipis("shared-page-opt"),
        icount = ratio(D32569_TOUCH_ICOUNT),
        tcg = ratio(D32569_TOUCH),
        tcg_spread = spread(D32569_TOUCH),
        notouch = ratio(D32569_NOTOUCH_ICOUNT),
        before_nt = nt_hz("freebsd-before"),
        opt_nt = nt_hz("shared-page-opt"),
        ncpu = ratio(D32569_NCPU_ICOUNT),
    )
}

fn exit_early_share(o: &Reproduction, variant: &str) -> Option<Measured> {
    let id = D32569_BUILDKERNEL;
    let cpus = o.plan.experiment(id)?.cpus[0];
    o.run_median(id, variant, cpus, |r| {
        let calls = r.total("pmap.remove.exit_calls")?;
        (calls > 0.0).then(|| r.total("pmap.remove.exit_early").unwrap_or(0.0) / calls)
    })
}

fn d32569_exit_early(o: &Reproduction) -> Row {
    let id = D32569_BUILDKERNEL;
    let exp = o.plan.experiment(id).expect("caller checked");
    let cpus = exp.cpus[0];
    let why = o.why_not(&[id], &["freebsd-before"]);
    let (lab, spread, measured) = match (&why, exit_early_share(o, "freebsd-before")) {
        (Some(why), _) => not_measured(why.clone()),
        (None, None) => not_measured("no exit-time pmap_remove calls".into()),
        (None, Some(m)) => (
            format!(
                "{} (freebsd-before)",
                fmt_pct(m.median().unwrap_or(f64::NAN))
            ),
            m.spread(fmt_pct),
            Some(m),
        ),
    };
    Row {
        seed: "004 FreeBSD D32569".into(),
        published: "15-20 % of pmap_remove calls at exit end early during buildkernel".into(),
        definition: format!(
            "pmap.remove.exit_early / pmap.remove.exit_calls, {} on {cpus} CPUs, freebsd-before \
             (the tree the reviewer traced, before the diff)",
            exp.label()
        ),
        lab,
        spread,
        measured,
        accel: o.accel_of(id),
        kind: Kind::Count,
        profile: None,
        note: NOTE_004_EXIT,
    }
}

fn note_004_exit(o: &Reproduction) -> String {
    let id = D32569_BUILDKERNEL;
    let cpus = o.plan.experiment(id).map(|e| e.cpus[0]).unwrap_or(4);
    let others: Vec<String> = ["shared-page-opt", "shared-page-counted"]
        .iter()
        .map(|v| match o.why_not(&[id], &[v]) {
            Some(why) => format!("{v}: not measured ({why})"),
            None => format!(
                "{v}: {}",
                exit_early_share(o, v)
                    .and_then(|m| m.median())
                    .map(fmt_pct)
                    .unwrap_or_else(|| "no ok runs".into())
            ),
        })
        .collect();
    let per_exit = o
        .run_median(id, "freebsd-before", cpus, |r| {
            Some(r.total("pmap.remove.exit_calls")? / r.total("pmap.remove_pages.calls")?)
        })
        .and_then(|m| m.median())
        .map(fmt_num)
        .unwrap_or_else(|| "?".into());
    format!(
        "Other states: {}. On FreeBSD, exit calls pmap_remove once per map entry after \
         pmap_remove_pages, and a call ends early only if the pmap is already empty, i.e. the \
         process never faulted the shared page in; most programs read the clock or the signal \
         trampoline there, so only 15-20 % of the calls ended early. The lab's buildkernel \
         decides that share by a parameter: clock_pct (default 80, chosen after the review) of \
         its cc jobs read the clock through the shared page; the others' exit-time calls find \
         the pmap empty. Here an exit makes {per_exit} pmap_remove calls (pmap.remove.exit_calls \
         / pmap.remove_pages.calls), and the make driver and the link threads add calls of \
         their own, so the share of calls differs from the share of jobs. The row checks the \
         mechanism (early returns happen exactly when nothing is mapped) rather than FreeBSD's \
         programs.",
        others.join("; ")
    )
}

fn dfly(o: &Reproduction) -> Vec<Row> {
    let mut rows = Vec::new();
    for (id, metric, what, published) in [
        (
            DFLY_PINGPONG,
            "pingpong.rtt.median_ns",
            "ipi-pingpong on 2 CPUs: median round trip of an IPI and its reply (pingpong.rtt.median_ns)",
            "synchronous IPI, call to completion: 4-5 us (2-CPU P3 1.1 GHz; includes a dummy syscall)",
        ),
        (
            DFLY_SHOOTPAGE,
            "shoot.ack.shootpage.median_ns",
            "pmap-selftest on 2 CPUs, fixed: median wait from sending shootpage IPIs to every ack (shoot.ack.shootpage.median_ns)",
            "the same 4-5 us: a synchronous shootdown waits for the target's acknowledgement",
        ),
    ] {
        if !o.has(id) {
            continue;
        }
        let cpus = o.plan.experiment(id).map(|e| e.cpus[0]).unwrap_or(2);
        let us = o.run_median(id, "fixed", cpus, |r| r.total(metric).map(|ns| ns / 1000.0));
        let (lab, spread, measured) = match (o.why_not(&[id], &["fixed"]), us) {
            (Some(why), _) => not_measured(why),
            (None, None) => not_measured(format!("the runs reported no {metric}")),
            (None, Some(m)) => (
                format!("{} us", fmt_num(m.median().unwrap_or(f64::NAN))),
                m.spread(|v| format!("{} us", fmt_num(v))),
                Some(m),
            ),
        };
        let modeled = super::modeled_seeds::dfly(o, id == DFLY_SHOOTPAGE);
        rows.push(Row {
            seed: "001 DragonFly 2004".into(),
            published: published.into(),
            definition: what.into(),
            lab,
            spread,
            measured,
            accel: o.accel_of(id),
            kind: Kind::Time,
            profile: None,
            note: NOTE_001,
        });
        rows.extend(modeled);
    }
    rows
}

fn note_001() -> String {
    "Under TCG each vCPU is a host thread (MTTCG): an IPI reaches its target when that thread \
     next checks for interrupts (a translation-block boundary, or waking from HLT), so the \
     figure is QEMU's delivery latency and the host's scheduling, not an APIC's; under \
     tcg-icount time is virtual (instructions counted, 1 GHz virtual TSC, vCPUs run round robin \
     on one thread), repeatable but set by how many instructions the other vCPU runs before its \
     turn. Neither speaks for a real machine: the 4-5 us of a 2-CPU P3 at 1.1 GHz wants KVM on \
     real hardware."
        .into()
}

fn d25510(o: &Reproduction, id: &str, cpus: u32) -> Row {
    let exp = o.plan.experiment(id).expect("caller checked");
    let wait_us = wait_us_per_ipi_shootdown;
    let summary = |variant: &str| -> String {
        if let Some(why) = o.why_not(&[id], &[variant]) {
            return format!("{variant}: not measured ({why})");
        }
        let ops = o
            .run_median(id, variant, cpus, |r| r.figure("ops_per_s"))
            .and_then(|m| m.median());
        let wait = o
            .run_median(id, variant, cpus, wait_us)
            .and_then(|m| m.median());
        match (ops, wait) {
            (Some(ops), wait) => format!(
                "{variant} {} ops/s, wait {}",
                fmt_num(ops),
                wait.map(|w| format!("{} us", fmt_num(w)))
                    .unwrap_or_else(|| "-".into())
            ),
            _ => format!("{variant}: no ok runs"),
        }
    };
    let ratio = o.per_rep(|rep| {
        let base = o.pool.get(id, "fixed", cpus, rep)?.figure("ops_per_s")?;
        let sb = o
            .pool
            .get(id, "scoreboard", cpus, rep)?
            .figure("ops_per_s")?;
        Some(sb / base)
    });
    let (lab, spread, measured) = match (o.why_not(&[id], &["fixed", "scoreboard"]), ratio) {
        (Some(why), _) => (
            format!("{}; scoreboard not measured: {why}", summary("fixed")),
            "-".into(),
            None,
        ),
        (None, None) => not_measured("no ok runs".into()),
        (None, Some(m)) => (
            format!(
                "{}; {}; throughput ratio {}",
                summary("fixed"),
                summary("scoreboard"),
                fmt_ratio(m.median().unwrap_or(f64::NAN))
            ),
            format!("ratio {}", m.spread(fmt_ratio)),
            Some(m),
        ),
    };
    Row {
        seed: "003 FreeBSD D25510".into(),
        published: "none: the review gives no figure".into(),
        definition: format!(
            "{} on {cpus} CPUs: ops/s (ops_per_s) and mean wait per IPI-sending shootdown \
             ((shoot.wait.slot + shoot.wait.ack) / shootdowns with IPIs, TSC cycles / tsc.hz); \
             scoreboard vs fixed (global slot), median over reps of the per-rep throughput ratio scoreboard/fixed",
            exp.label()
        ),
        lab,
        spread,
        measured,
        accel: o.accel_of(id),
        kind: Kind::Time,
        profile: None,
        note: NOTE_003,
    }
}

fn note_003(o: &Reproduction) -> String {
    let over: BTreeSet<u32> = [D25510_MMAP, D25510_SHOOT]
        .iter()
        .filter_map(|id| o.plan.experiment(id))
        .flat_map(|e| e.cpus.iter().copied())
        .filter(|&c| c > 2)
        .collect();
    let over = over
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(" and ");
    format!(
        "The scoreboard removes the global slot (its wait, shoot.wait.slot, goes to 0) and lets \
         initiators shoot in parallel. On 2 vCPUs the 2 host cores are not over-subscribed, but \
         other host work shares them. On {over} vCPUs they are: a CPU spinning for acks can be \
         descheduled behind the very vCPUs it waits for, so waits of milliseconds are host \
         scheduling, and throughput says little. TCG has no caches, so the cache-line \
         ping-pong of unpadded scoreboard words (the padding D25510 left undone) costs nothing \
         here; scoreboard vs scoreboard-padded and the real gain want KVM on real multi-core \
         hardware."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fill_marks_cpus_0_to_3_and_5_to_7() {
        assert_eq!(fill_list(8), "0,1,2,3,5,6,7");
        assert_eq!(
            (1..=8).map(fill_cpus).collect::<Vec<_>>(),
            [1, 2, 3, 4, 4, 5, 6, 7]
        );
    }

    #[test]
    fn above_32_cpus_the_fill_repeats() {
        assert_eq!(POOL_FILL, 0xdead_beef_dead_beef);
        assert_eq!(fill_cpus(32), 24);
        assert_eq!(fill_cpus(40), 24 + 7);
        assert_eq!(fill_cpus(64), 48);
        assert!(fill_list(40).ends_with(",31,32,33,34,35,37,38,39"));
    }

    #[test]
    fn medians_and_spreads() {
        let m = Measured {
            per_rep: vec![3.0, 1.0, 2.0],
        };
        assert_eq!(m.median(), Some(2.0));
        assert_eq!(m.spread(fmt_num), "1.00..3.00 over 3 reps");
        let inf = Measured {
            per_rep: vec![f64::INFINITY, 5.0],
        };
        assert_eq!(inf.median(), Some(f64::INFINITY));
        assert_eq!(inf.spread(fmt_num), "5.00..∞ over 2 reps");
    }

    #[test]
    fn a_factor_over_zero_reads_all_eliminated() {
        let m = |v: Vec<f64>| Measured { per_rep: v };
        let (lab, spread, _) = factor_cells(
            m(vec![f64::INFINITY; 3]),
            Some(m(vec![1800.0, 1824.0, 1830.0])),
            Some(m(vec![0.0; 3])),
            "",
        );
        assert_eq!(lab, "1824 vs 0 IPIs: all eliminated");
        assert_eq!(
            spread,
            "fixed sent 0 in 3 of 3 reps; openbsd-2010 1800..1830 over 3 reps"
        );
        let (lab, spread, _) = factor_cells(
            m(vec![3.0, 3.0, 3.0]),
            Some(m(vec![270.0; 3])),
            Some(m(vec![90.0; 3])),
            ": a figure set by the mix",
        );
        assert_eq!(lab, "3.00 (270 vs 90.0 IPIs): a figure set by the mix");
        assert_eq!(
            spread,
            "3.00 in each of 3 reps: one sample, repeated exactly"
        );
        assert_eq!(factor_of(0.0, 0.0), None);
        assert_eq!(factor_of(5.0, 0.0), Some(f64::INFINITY));
    }

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
            note: NOTE_000,
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
    }
}
