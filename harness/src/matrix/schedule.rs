//! The core budget: how many runs may be in flight at once.
//!
//! A guest with V vCPUs under MTTCG (or KVM) keeps up to V host threads
//! busy, so running as many guests as there are host cores would
//! oversubscribe the host and skew every timing. Each run therefore costs
//! [`cost`] slots of a budget of host cores (or `--jobs`), and a run starts
//! only when its slots are free. Runs start in matrix order (a run waits
//! for the one before it to start), so the big 4-CPU cells are never
//! starved by a stream of small ones.
//!
//! Locking: one mutex over the free-slot count, with a condition variable
//! that [`Budget::release`] signals. Waiters wake every 100 ms to notice a
//! stop request (`qemu::request_stop`).

use std::sync::{Condvar, Mutex};
use std::time::Duration;

use crate::accel::Accel;
use crate::qemu;

/// The slots a run of `cpus` vCPUs under `accel` takes from a budget of
/// `total`: one under `tcg-icount` (its vCPUs take turns on one host
/// thread), else one per vCPU up to the whole budget (a guest bigger than
/// the host still runs, alone).
pub fn cost(cpus: u32, accel: Accel, total: usize) -> usize {
    let threads = match accel {
        Accel::TcgIcount | Accel::TcgModel => 1,
        Accel::Tcg | Accel::Kvm => cpus as usize,
    };
    threads.clamp(1, total.max(1))
}

/// A budget of slots shared by the runner threads.
#[derive(Debug)]
pub struct Budget {
    total: usize,
    free: Mutex<usize>,
    freed: Condvar,
}

impl Budget {
    /// A budget of `total` slots (at least 1).
    pub fn new(total: usize) -> Budget {
        let total = total.max(1);
        Budget {
            total,
            free: Mutex::new(total),
            freed: Condvar::new(),
        }
    }

    pub fn total(&self) -> usize {
        self.total
    }

    /// Waits until `cost` slots (at most the total) are free and takes
    /// them. Returns `false`, taking nothing, if a stop was requested
    /// meanwhile.
    pub fn acquire(&self, cost: usize) -> bool {
        let cost = cost.min(self.total);
        let mut free = self.free.lock().unwrap();
        loop {
            if qemu::stop_requested() {
                return false;
            }
            if *free >= cost {
                *free -= cost;
                return true;
            }
            free = self
                .freed
                .wait_timeout(free, Duration::from_millis(100))
                .unwrap()
                .0;
        }
    }

    /// Gives back `cost` slots taken by [`Budget::acquire`].
    pub fn release(&self, cost: usize) {
        let cost = cost.min(self.total);
        let mut free = self.free.lock().unwrap();
        *free = (*free + cost).min(self.total);
        self.freed.notify_all();
    }

    /// Slots free now (for tests and progress).
    pub fn free(&self) -> usize {
        *self.free.lock().unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn costs() {
        assert_eq!(cost(4, Accel::Tcg, 2), 2, "capped at the budget");
        assert_eq!(cost(1, Accel::Tcg, 2), 1);
        assert_eq!(cost(2, Accel::Kvm, 8), 2);
        assert_eq!(cost(4, Accel::TcgIcount, 2), 1, "icount is one thread");
        assert_eq!(cost(4, Accel::Tcg, 0), 1);
    }

    #[test]
    fn never_oversubscribes() {
        let budget = Arc::new(Budget::new(3));
        let busy = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        std::thread::scope(|s| {
            for i in 0..12 {
                let c = 1 + i % 3;
                assert!(budget.acquire(c));
                let (budget, busy, peak) = (&budget, &busy, &peak);
                s.spawn(move || {
                    let now = busy.fetch_add(c, Ordering::SeqCst) + c;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(5));
                    busy.fetch_sub(c, Ordering::SeqCst);
                    budget.release(c);
                });
            }
        });
        assert!(peak.load(Ordering::SeqCst) <= 3);
        assert_eq!(budget.free(), 3);
    }
}
