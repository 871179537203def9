//! The serial console (COM1), shared by free-form output and the report.
//!
//! One lock serialises whole lines, so output from several CPUs never
//! interleaves inside a line and every report line stays parseable.

use core::fmt::{self, Write};
use spin::Mutex;
use uart_16550::SerialPort;

const COM1: u16 = 0x3f8;

static CONSOLE: Mutex<Option<SerialPort>> = Mutex::new(None);

/// Initialises COM1. Call once, first thing.
pub fn init() {
    // SAFETY: COM1 at 0x3f8 is the standard PC serial port, owned by us.
    let mut port = unsafe { SerialPort::new(COM1) };
    port.init();
    *CONSOLE.lock() = Some(port);
}

/// Runs `f` with the console locked, interrupts off (so an interrupt handler
/// that prints cannot deadlock against the CPU it interrupted).
pub fn with<R>(f: impl FnOnce(&mut dyn Write) -> R) -> R {
    x86_64::instructions::interrupts::without_interrupts(|| {
        let mut guard = CONSOLE.lock();
        let port = guard.as_mut().expect("console::init not called");
        f(port)
    })
}

/// Like [`with`], for the panic path: if the console lock is held (by a CPU
/// that panicked or hung while printing), waits a bounded time and then takes
/// it anyway, because getting the panic out matters more than a torn line.
pub fn with_forced<R>(f: impl FnOnce(&mut dyn Write) -> R) -> R {
    for _ in 0..10_000_000 {
        if let Some(mut guard) = CONSOLE.try_lock() {
            if let Some(port) = guard.as_mut() {
                return f(port);
            }
            break;
        }
        core::hint::spin_loop();
    }
    // SAFETY: last resort on the way to exit; a torn line is acceptable.
    unsafe { CONSOLE.force_unlock() };
    let mut guard = CONSOLE.lock();
    if guard.is_none() {
        // SAFETY: as in init().
        let mut port = unsafe { SerialPort::new(COM1) };
        port.init();
        *guard = Some(port);
    }
    f(guard.as_mut().unwrap())
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments<'_>) {
    with(|w| w.write_fmt(args)).ok();
}

/// Free-form console output (not part of the report).
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => ($crate::console::_print(format_args!($($arg)*)));
}

#[macro_export]
macro_rules! println {
    () => ($crate::print!("\n"));
    ($($arg:tt)*) => ($crate::console::_print(format_args!("{}\n", format_args!($($arg)*))));
}
