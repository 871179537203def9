//! The protocol's cache-line footprint, from its layout rather than from
//! any clock (TCG has no cache model): the `shoot.*_lines` metrics (the
//! module doc of mm::shootdown says what each counts).

use lab_core::report::Scope;

use super::{Active, Protocol};
use crate::report;

/// Bytes in a cache line on every x86-64 the lab runs on.
const LINE: usize = 64;

/// A set of cache lines (address / [`LINE`]).
#[derive(Default)]
pub struct Lines(alloc::vec::Vec<usize>);

impl Lines {
    /// Adds the line(s) holding `field`.
    pub fn touch<T>(&mut self, field: &T) {
        let start = field as *const T as usize;
        let end = start + core::mem::size_of::<T>();
        (start / LINE..end.div_ceil(LINE)).for_each(|line| self.insert(line));
    }

    fn insert(&mut self, line: usize) {
        if !self.0.contains(&line) {
            self.0.push(line);
        }
    }

    fn len(&self) -> u64 {
        self.0.len() as u64
    }
}

/// The lines one request goes through ([`Protocol::footprint`]).
#[derive(Default)]
pub struct Footprint {
    /// Read or written by the target to take and acknowledge it.
    pub request: Lines,
    /// Written by the initiator to post it to this target.
    pub post: Lines,
}

/// Writes the `shoot.*_lines` metrics (see the module comment) for CPUs
/// `0..cpus`; nothing on one CPU, where no request has a target.
pub(super) fn report(cpus: u32) {
    use alloc::vec::Vec;
    if cpus < 2 {
        return;
    }
    let pairs: Vec<(u32, u32)> = (0..cpus)
        .flat_map(|t| (0..cpus).filter(move |&i| i != t).map(move |i| (t, i)))
        .collect();
    let fps: Vec<Footprint> = pairs
        .iter()
        .map(|&(t, i)| {
            let mut fp = Footprint::default();
            <Active as Protocol>::footprint(t, i, &mut fp);
            fp
        })
        .collect();
    // (line, pair) for every line a pair's request or posting goes
    // through; a line two pairs use is shared.
    let mut uses: Vec<(usize, usize)> = fps
        .iter()
        .enumerate()
        .flat_map(|(p, fp)| fp.request.0.iter().chain(&fp.post.0).map(move |&l| (l, p)))
        .collect();
    uses.sort_unstable();
    uses.dedup();
    let mut shared: Vec<usize> = uses
        .windows(2)
        .filter(|w| w[0].0 == w[1].0)
        .map(|w| w[0].0)
        .collect();
    shared.dedup();
    let target = fps.iter().map(|fp| fp.request.len()).max();
    let target_shared = fps
        .iter()
        .map(|fp| {
            let n = fp.request.0.iter();
            n.filter(|l| shared.binary_search(l).is_ok()).count() as u64
        })
        .max();
    let scan = (0..cpus)
        .map(|t| {
            let mut lines = Lines::default();
            <Active as Protocol>::scan_footprint(t, cpus, &mut lines);
            lines.len()
        })
        .max();
    let initiator = (0..cpus)
        .map(|i| {
            let mut lines = Lines::default();
            for (fp, _) in fps.iter().zip(&pairs).filter(|(_, &(_, pi))| pi == i) {
                fp.post.0.iter().for_each(|&l| lines.insert(l));
            }
            lines.len()
        })
        .max();
    for (name, value) in [
        ("shoot.target_lines", target),
        ("shoot.target_shared_lines", target_shared),
        ("shoot.target_scan_lines", scan),
        ("shoot.initiator_lines", initiator),
    ] {
        report::metric(name, value.unwrap_or(0), "lines", Scope::Global);
    }
}
