//! DragonFly's batched invalidation (lab_core::protocol::batch, the
//! kernel's dfly_batch), over the global slot: a List shootdown publishes
//! its pages in the initiator's [`Published`] list, then posts `Words {
//! kind: LIST, addr1: cpu, addr2: n }` through the slot; a target's
//! `ModelWork::copy` reads the first n published pages (before it
//! acknowledges, so before the initiator can publish its next list) and
//! carries out each. The initiator's previous shootdown was always waited
//! for (every model shootdown waits), as the kernel's flush makes sure.
//! Checked as the global slot's model: every published page is settled
//! once the shootdown returns, and no CPU uses it cached in user mode.

use super::*;
use lab_core::protocol::batch::MAXPIR;

/// A List shootdown: `pages` published, the request naming the first
/// `n` (fewer than published: `mutant-dfly-truncate`).
#[derive(Clone, Copy, Debug)]
pub(super) struct List {
    pages: [u64; 2],
    n: u64,
}

/// pmap_inval_flush of a batch of two or more pages, from a syscall.
pub(super) fn shoot(cpu: &ModelCpu, list: List) {
    let w = &cpu.world;
    assert!(
        w.scoreboard.is_none(),
        "the model's lists go through the global slot"
    );
    w.published.publish(cpu, &list.pages);
    let words = Words {
        kind: LIST,
        addr1: u64::from(cpu.id),
        addr2: list.n,
    };
    // What the batch recorded is what the shootdown must cover,
    // whatever the request names (the kernel's tell_model_settled).
    let settles = list.pages.iter().fold(0, |m, p| m | 1 << p);
    cpu.shoot_words(words, true, settles);
}

/// A target's copy of a List request: the first n pages its initiator
/// published, as a mask.
pub(super) fn read(world: &World, words: Words) -> u64 {
    let mut pages = [0; MAXPIR];
    let n = (words.addr2 as usize).min(MAXPIR);
    world.published.read(words.addr1 as u32, &mut pages[..n]);
    pages[..n].iter().fold(0, |m, p| m | 1 << p)
}

/// Two cases, each request naming `n` of its list's pages: CPU 0
/// flushes lists [1, 2] and then [3, 4] back to back, republishing
/// only after CPU 1 has read (and acknowledged) the first; and CPU 0
/// flushes [1, 2] while CPU 1 shoots page 5, so CPU 1 may serve the
/// list from its spin for the slot, and CPU 0 CPU 1's page from its
/// wait. (The two in one run, three shootdowns, take over a minute.)
fn explore(policy: Policy, n: u64) -> Result<(), String> {
    let list = |pages| Op::List(List { pages, n });
    let cases = [
        vec![vec![list([1, 2]), list([3, 4])], vec![]],
        vec![vec![list([1, 2])], vec![Op::Shoot(Shoot { page: 5 })]],
    ];
    cases
        .into_iter()
        .try_for_each(|programs| explore_ops(policy, None, programs))
}

#[test]
fn dfly_batch_is_clean() {
    expect_clean(explore(Policy::PLAIN, 2), "");
}

/// The request names only the first published page: the second stays
/// cached (on the target, and on the initiator, whose local
/// invalidation reads the same request).
#[test]
fn mutant_dfly_truncate() {
    expect_caught(explore(Policy::PLAIN, 1));
}
