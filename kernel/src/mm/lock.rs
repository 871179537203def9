//! The spin lock of the memory-management layer.
//!
//! A CPU that spins on an mm lock may be a target of a shootdown that the
//! lock's holder started (the holder of a pmap lock sends IPIs and waits for
//! every target to acknowledge). If the spinner had interrupts disabled it
//! would never take the IPI and both would wait forever. So while spinning,
//! mm locks serve any shootdown request pending for this CPU
//! ([`super::shootdown::poll`]), as OpenBSD's spl-raised mutexes still take
//! IPIs at IPL_IPI.
//!
//! # Interrupts
//!
//! Kernel code runs with interrupts on (proc::sched, Preemption), and these
//! locks leave them as they are: a CPU holding a pmap, frame, pool, heap or
//! process lock takes shootdown IPIs, timer ticks and kicks. That is safe
//! because no interrupt handler takes any of these locks: the timer only
//! counts and marks the slice, the shootdown handlers use the protocols'
//! atomics and invalidate, the `other` handler acknowledges syncs; all count
//! in per-CPU atomics and allocate nothing. Locks an interrupt handler
//! could take are held with interrupts off instead: the console (which
//! the error handler prints through) and the scheduler's `SCHED`. Polling
//! stays for whoever spins with interrupts off (those sections, and the
//! kernel's own workloads). Keep it so: a handler that took one of these
//! locks would deadlock against the CPU it interrupted.

use spin::RelaxStrategy;

/// Spin-wait that serves pending shootdown requests for this CPU.
pub struct ServeShootdowns;

impl RelaxStrategy for ServeShootdowns {
    fn relax() {
        super::shootdown::poll();
        core::hint::spin_loop();
    }
}

/// A spin lock that keeps serving shootdowns while it waits.
pub type SpinLock<T> = spin::mutex::SpinMutex<T, ServeShootdowns>;
