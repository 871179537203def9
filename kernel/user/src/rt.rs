//! The runtime: `_start`, the program's arguments, and the panic handler.
//!
//! `exec` starts a program at `_start` with `rsp` at the initial stack block
//! `lab_core::syscall` describes (argc, argv pointers, NULL, NULL, strings).
//! `_start` passes that pointer to [`start`], which records argc/argv in
//! statics (read-only afterwards) and calls the program's `main` (declared
//! with [`main!`](crate::main!)); `main`'s return value is the exit status.

use core::fmt::{self, Write};
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use crate::{println, sys};

/// Exit status of a program that panicked (as Rust's std uses).
pub const PANIC_STATUS: i32 = 101;

static ARGC: AtomicUsize = AtomicUsize::new(0);
static ARGV: AtomicPtr<*const u8> = AtomicPtr::new(core::ptr::null_mut());

/// Declares the program's `fn main() -> i32`, called by `_start`.
#[macro_export]
macro_rules! main {
    ($main:path) => {
        #[no_mangle]
        pub extern "Rust" fn __ulib_main() -> i32 {
            $main()
        }
    };
}

extern "Rust" {
    fn __ulib_main() -> i32;
}

/// The entry point: `rsp` points at argc and is 16-byte aligned.
///
/// # Safety
/// Only the kernel calls it, once, with the initial stack of exec.
#[unsafe(naked)]
#[no_mangle]
pub unsafe extern "C" fn _start() -> ! {
    core::arch::naked_asm!(
        "mov rdi, rsp",
        // Already aligned by the ABI; re-align anyway, and end the frame
        // chain for backtraces.
        "and rsp, -16",
        "xor ebp, ebp",
        "call {start}",
        "ud2",
        start = sym start,
    );
}

extern "C" fn start(sp: *const u64) -> ! {
    // SAFETY: `sp` is the initial stack block the kernel built: argc, then
    // argc pointers to NUL-terminated strings that live as long as the
    // process.
    let argc = unsafe { sp.read() } as usize;
    ARGC.store(argc, Ordering::Relaxed);
    ARGV.store(sp.wrapping_add(1) as *mut *const u8, Ordering::Relaxed);
    // SAFETY: defined by the program's `main!`.
    let status = unsafe { __ulib_main() };
    sys::exit(status)
}

/// The number of arguments (argv[0], the program name, included).
pub fn argc() -> usize {
    ARGC.load(Ordering::Relaxed)
}

/// Argument `i` (`arg(0)` is the program name).
pub fn arg(i: usize) -> Option<&'static str> {
    if i >= argc() {
        return None;
    }
    // SAFETY: i < argc; the pointer array and the strings are on the initial
    // stack, which nothing writes and which outlives every caller.
    unsafe {
        let p = *ARGV.load(Ordering::Relaxed).add(i);
        let mut len = 0;
        while *p.add(len) != 0 {
            len += 1;
        }
        core::str::from_utf8(core::slice::from_raw_parts(p, len)).ok()
    }
}

/// The arguments, in order.
pub fn args() -> impl Iterator<Item = &'static str> {
    (0..argc()).map(|i| arg(i).unwrap_or(""))
}

/// argv[0], or "?" if there is none.
pub fn program_name() -> &'static str {
    arg(0).unwrap_or("?")
}

/// A fixed buffer that takes formatted text up to its size (the rest is
/// dropped) with control characters turned into spaces, so the result can
/// be one line of the report.
pub struct LineBuf<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> LineBuf<N> {
    pub const fn new() -> Self {
        LineBuf {
            buf: [0; N],
            len: 0,
        }
    }
    pub fn as_str(&self) -> &str {
        // SAFETY: only whole UTF-8 characters are ever appended.
        unsafe { core::str::from_utf8_unchecked(&self.buf[..self.len]) }
    }
}

impl<const N: usize> Default for LineBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Write for LineBuf<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            let c = if c.is_control() { ' ' } else { c };
            let mut utf8 = [0; 4];
            let bytes = c.encode_utf8(&mut utf8).as_bytes();
            if self.len + bytes.len() > N {
                break;
            }
            self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
            self.len += bytes.len();
        }
        Ok(())
    }
}

/// Prints the panic, reports it as an `error` record (kind `user-panic`),
/// and ends the process with [`PANIC_STATUS`].
#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    let mut msg = LineBuf::<{ lab_core::syscall::REPORT_MSG_MAX }>::new();
    let _ = write!(
        msg,
        "{} (pid {}): {}",
        program_name(),
        sys::getpid(),
        info.message()
    );
    if let Some(at) = info.location() {
        let _ = write!(msg, " at {}:{}", at.file(), at.line());
    }
    println!("panic: {}", msg.as_str());
    let _ = sys::report_error("user-panic", msg.as_str());
    sys::exit(PANIC_STATUS)
}
