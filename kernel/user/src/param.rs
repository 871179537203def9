//! The workload's parameters, read with `getparam`.
//!
//! The kernel validated the command line against the workload's declared
//! parameters (`lab_core::workloads`), and answers with the given value or
//! the declared default, so a failure here is a bug (a key the workload
//! does not declare) and panics with its name.

use lab_core::cmdline::parse_bool;

use crate::sys;

/// Longest value read.
const MAX: usize = 64;

/// A parameter's value, in a small owned buffer.
pub struct Value {
    buf: [u8; MAX],
    len: usize,
}

impl Value {
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

/// The raw value of `key`.
pub fn raw(key: &str) -> Value {
    let mut v = Value {
        buf: [0; MAX],
        len: 0,
    };
    match sys::getparam(key, &mut v.buf) {
        Ok(len) if len <= MAX => v.len = len,
        Ok(len) => panic!("parameter '{key}' is {len} bytes long (max {MAX})"),
        Err(e) => panic!("getparam('{key}'): {e}"),
    }
    v
}

/// The integer value of `key`.
pub fn u64(key: &str) -> u64 {
    let v = raw(key);
    v.as_str()
        .parse()
        .unwrap_or_else(|_| panic!("parameter '{key}'='{}' is not an integer", v.as_str()))
}

/// The on/off value of `key`.
pub fn flag(key: &str) -> bool {
    let v = raw(key);
    parse_bool(v.as_str())
        .unwrap_or_else(|| panic!("parameter '{key}'='{}' is not on/off", v.as_str()))
}
