//! Per-CPU modeled clocks, in cycles, and the skew between them.
//!
//! Under TCG with `-icount shift=0,sleep=off` the vCPUs run round robin on
//! one host thread, so the guest's own notion of time says nothing about
//! what its code would cost. Each vCPU instead gets a modeled clock that
//! only moves forward: by the cost of what that CPU did (instructions,
//! line transfers, page walks, INVLPGs, flushes, interrupts), and by
//! *causal* rules that push it to the time an event it depends on happened
//! elsewhere (a line written by another CPU, an IPI sent by another CPU):
//! a CPU cannot observe an effect before its cause.
//!
//! Skew (the largest gap between clocks, over the CPUs that have started
//! and are not halted) is a health figure of that scheme: the round-robin
//! scheduler lets one vCPU run far ahead in guest instructions, and the
//! causal rules only pull the laggards forward when they interact. A
//! halted CPU (`idle`) and one that has not executed yet are left out.
//!
//! Assumptions: a clock is a plain u64 (2^64 cycles is centuries); no CPU
//! frequency changes; a halted CPU's clock stands still (its next causal
//! event, such as an IPI, moves it).

/// All CPUs' clocks.
pub struct Clocks {
    now: Vec<u64>,
    /// Halted (between an idle and a resume callback).
    idle: Vec<bool>,
    /// Has executed at least one instruction.
    started: Vec<bool>,
    skew_max: u64,
}

impl Clocks {
    pub fn new(ncpus: usize) -> Clocks {
        Clocks {
            now: vec![0; ncpus],
            idle: vec![false; ncpus],
            started: vec![false; ncpus],
            skew_max: 0,
        }
    }

    /// CPU `cpu`'s clock.
    #[inline]
    pub fn now(&self, cpu: usize) -> u64 {
        self.now[cpu]
    }

    /// CPU `cpu` spent `cycles` of its own.
    #[inline]
    pub fn advance(&mut self, cpu: usize, cycles: u64) {
        self.now[cpu] = self.now[cpu].saturating_add(cycles);
    }

    /// A causal rule: CPU `cpu` cannot be earlier than `at`. Moves it there
    /// if it is, and returns how far it was pushed (0: no jump).
    pub fn not_before(&mut self, cpu: usize, at: u64) -> u64 {
        let jump = at.saturating_sub(self.now[cpu]);
        if jump > 0 {
            self.now[cpu] = at;
        }
        jump
    }

    /// CPU `cpu` executed code, an instruction or an access (it now counts
    /// for skew unless idle).
    #[inline]
    pub fn start(&mut self, cpu: usize) {
        self.started[cpu] = true;
    }

    pub fn set_idle(&mut self, cpu: usize, idle: bool) {
        self.idle[cpu] = idle;
    }

    /// Samples the skew: max - min over started, non-idle CPUs.
    pub fn sample_skew(&mut self) {
        let mut lo = u64::MAX;
        let mut hi = 0;
        for i in 0..self.now.len() {
            if self.started[i] && !self.idle[i] {
                lo = lo.min(self.now[i]);
                hi = hi.max(self.now[i]);
            }
        }
        if lo <= hi {
            self.skew_max = self.skew_max.max(hi - lo);
        }
    }

    /// The largest skew sampled.
    pub fn skew_max(&self) -> u64 {
        self.skew_max
    }

    /// The latest clock over all CPUs.
    pub fn max(&self) -> u64 {
        self.now.iter().copied().max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causal_jump_and_skew() {
        let mut c = Clocks::new(3);
        c.start(0);
        c.start(1);
        c.advance(0, 100);
        assert_eq!(c.not_before(1, 50), 50);
        assert_eq!(c.not_before(1, 20), 0);
        assert_eq!(c.now(1), 50);
        // CPU 2 never started: not part of the skew.
        c.sample_skew();
        assert_eq!(c.skew_max(), 50);
        c.set_idle(1, true);
        c.advance(0, 1000);
        c.sample_skew();
        assert_eq!(c.skew_max(), 50);
    }
}
