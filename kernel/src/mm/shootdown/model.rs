//! What the memory-system model (`model=on`, arch::model_hint) is told
//! about shootdowns: which pages a settled one covered, so its TLB can
//! hold a CPU that still translates them to hardware's rules.

use lab_core::model_hint::Mark;

use super::{dfly_batch, Request};
use crate::arch;
use crate::stats::MAX_CPUS;

/// Under `model=on`, each CPU's outstanding shootdown request, for
/// [`tell_model_settled`] at its shootwait (arch::model_hint).
static MODEL_REQ: [spin::Mutex<Option<Request>>; MAX_CPUS] =
    [const { spin::Mutex::new(None) }; MAX_CPUS];

/// Under `model=on`, keeps `req` as this CPU's outstanding shootdown, to
/// be told settled at its wait ([`outstanding_settled`]).
pub(super) fn remember(req: Request) {
    if arch::model_hint::enabled() {
        *MODEL_REQ[arch::cpu_id() as usize].lock() = Some(req);
    }
}

/// Tells the model that this CPU's outstanding shootdown (if it kept
/// one) is settled: its acknowledgements are in.
pub(super) fn outstanding_settled() {
    if let Some(req) = MODEL_REQ[arch::cpu_id() as usize].lock().take() {
        tell_model_settled(req, Mark::ShootEnd);
    }
}

/// Tells the memory-system model that a change of `req`'s pages is settled
/// although no shootdown was made for it (a shortcut's or a mutant's
/// skip): the pmap operation returning is the promise.
pub fn model_settled(req: Request) {
    tell_model_settled(req, Mark::Settled);
}

/// Tells the memory-system model that the shootdown of `req` is settled
/// (`mark`: ShootEnd after its acknowledgements, Settled when it needed no
/// IPI), and which pages it covered: the model's TLB then holds any CPU
/// that still has a translation of them, filled before the shootdown
/// began, to hardware's rules (model/README.md, the stale-TLB oracle).
/// Nothing without `model=on`.
pub(super) fn tell_model_settled(req: Request, mark: Mark) {
    use lab_core::model_hint::{Hint, MAX_COVER_PAGES};
    if !arch::model_hint::enabled() {
        return;
    }
    let cover = |va: u64, pages: u64| {
        let pages = if pages > MAX_COVER_PAGES {
            0
        } else {
            pages as u16
        };
        arch::model_hint::give(Hint::Covers { va, pages });
    };
    match req {
        Request::Page(va) => cover(va.as_u64(), 1),
        Request::Range(sva, eva) => cover(
            sva.as_u64(),
            (eva - sva).div_ceil(lab_core::physmem::PAGE_SIZE).max(1),
        ),
        Request::Tlb => cover(0, 0),
        // What the batch recorded, not what the request names: a request
        // that lost addresses on the way must not shrink the claim.
        Request::List { cpu, .. } => {
            let mut vas = [0; dfly_batch::MAXPIR];
            let n = dfly_batch::published_len(cpu).min(vas.len());
            dfly_batch::read_published(cpu, &mut vas[..n]);
            vas[..n].iter().for_each(|&va| cover(va, 1));
        }
    }
    arch::model_hint::mark(mark);
}
