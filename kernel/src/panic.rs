//! The panic handler: a `panic` record, then exit with the panic code.

use core::panic::PanicInfo;
use lab_core::report::{self, ExitCode};

use crate::{console, qemu};

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    x86_64::instructions::interrupts::disable();
    console::with_forced(|w| {
        let msg = info.message();
        match info.location() {
            Some(loc) => report::write_panic(
                w,
                crate::cpu_id(),
                format_args!("{}:{}", loc.file(), loc.line()),
                format_args!("{msg}"),
            ),
            None => {
                report::write_panic(w, crate::cpu_id(), format_args!("-"), format_args!("{msg}"))
            }
        }
    })
    .ok();
    qemu::exit(ExitCode::Panic)
}
