//! Ending the run: QEMU's isa-debug-exit device at port 0xf4.
//!
//! The harness starts QEMU with `-device isa-debug-exit,iobase=0xf4,iosize=4`;
//! writing a byte `v` there makes QEMU exit with status `(v << 1) | 1`. The
//! codes are defined with the report protocol (`lab_core::report::ExitCode`).

use lab_core::report::ExitCode;
use x86_64::instructions::port::Port;

const DEBUG_EXIT_PORT: u16 = 0xf4;

/// Exits QEMU with `code`. Without the device (another VMM), halts forever.
pub fn exit(code: ExitCode) -> ! {
    // SAFETY: the port is QEMU's debug-exit device or nothing at all.
    unsafe { Port::<u32>::new(DEBUG_EXIT_PORT).write(code as u32) };
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}
