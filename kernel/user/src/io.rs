//! Console output: `print!` and `println!` write to fd 1 through the `write`
//! call. Each macro call formats into a stack buffer and writes it with as
//! few calls as it can (one per 512 bytes), so a line from one thread is
//! not split by another's (the kernel writes each call as one piece).

use core::fmt::{self, Write};

use crate::sys;

const BUF: usize = 512;

struct Console {
    buf: [u8; BUF],
    len: usize,
}

impl Console {
    fn flush(&mut self) {
        if self.len > 0 {
            let _ = sys::write(1, &self.buf[..self.len]);
            self.len = 0;
        }
    }
}

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len == BUF {
                self.flush();
            }
            self.buf[self.len] = b;
            self.len += 1;
        }
        Ok(())
    }
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments<'_>, newline: bool) {
    let mut c = Console {
        buf: [0; BUF],
        len: 0,
    };
    let _ = c.write_fmt(args);
    if newline {
        let _ = c.write_str("\n");
    }
    c.flush();
}

#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => ($crate::io::_print(format_args!($($arg)*), false));
}

#[macro_export]
macro_rules! println {
    () => ($crate::io::_print(format_args!(""), true));
    ($($arg:tt)*) => ($crate::io::_print(format_args!($($arg)*), true));
}
