//! Where a row's figures come from: the stored runs of an experiment,
//! per repetition ([`Reproduction::per_rep`], [`Reproduction::run_median`]),
//! and the per-run figures more than one seed or table uses.

use super::{Measured, Reproduction};
use crate::results::derive::{RunFigures, SHOOT_KINDS};

/// `cycles` of run `r` per shootdown that sent IPIs, in us.
fn us_per_ipi_shootdown(r: &RunFigures, cycles: Option<f64>) -> Option<f64> {
    let calls = r.sum_kinds("shoot.calls.", &SHOOT_KINDS).unwrap_or(0.0);
    let noipi = r.sum_kinds("shoot.noipi.", &SHOOT_KINDS).unwrap_or(0.0);
    let (cycles, hz) = (cycles?, r.total("tsc.hz")?);
    (calls - noipi > 0.0).then(|| cycles / (calls - noipi) / hz * 1e6)
}

/// Mean wait (slot + acks) per shootdown that sent IPIs, in us.
pub fn wait_us_per_ipi_shootdown(r: &RunFigures) -> Option<f64> {
    let wait = r
        .total("shoot.wait.ack")
        .map(|ack| r.total("shoot.wait.slot").unwrap_or(0.0) + ack);
    us_per_ipi_shootdown(r, wait)
}

/// The initiator's whole cost per shootdown that sent IPIs, its own
/// invalidation included (shoot.op_cycles: start to the end of its wait),
/// in us.
pub fn op_us_per_ipi_shootdown(r: &RunFigures) -> Option<f64> {
    us_per_ipi_shootdown(r, r.total("shoot.op_cycles"))
}

impl Reproduction {
    fn reps(&self) -> std::ops::RangeInclusive<u32> {
        1..=self.plan.reps
    }

    /// Whether the plan has experiment `id`.
    pub(super) fn has(&self, id: &str) -> bool {
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

    /// A figure of one run of `variant` in experiment `id` on `cpus`
    /// CPUs, per rep.
    pub(super) fn run_median(
        &self,
        id: &str,
        variant: &str,
        cpus: u32,
        f: impl Fn(&RunFigures) -> Option<f64>,
    ) -> Option<Measured> {
        self.per_rep(|rep| f(self.pool.get(id, variant, cpus, rep)?))
    }

    /// The median of `m`, if measured.
    pub(super) fn median_of(&self, m: Option<Measured>) -> Option<f64> {
        m.and_then(|m| m.median())
    }

    /// The accelerator experiment `id` was measured under.
    pub(super) fn accel_of(&self, id: &str) -> String {
        self.accels.get(id).cloned().unwrap_or_else(|| {
            match self.plan.experiment(id).and_then(|e| e.accel) {
                Some(choice) => super::accel_name(choice).to_string(),
                None => self.accel.clone(),
            }
        })
    }
}
