//! The spin lock of the memory-management layer.
//!
//! A CPU that spins on an mm lock may be a target of a shootdown that the
//! lock's holder started (the holder of a pmap lock sends IPIs and waits for
//! every target to acknowledge). If the spinner had interrupts disabled it
//! would never take the IPI and both would wait forever. So while spinning,
//! mm locks serve any shootdown request pending for this CPU
//! ([`super::shootdown::poll`]), as OpenBSD's spl-raised mutexes still take
//! IPIs at IPL_IPI.

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
