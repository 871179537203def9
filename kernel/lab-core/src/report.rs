//! The report protocol: how the guest tells the host what happened.
//!
//! This module is the one place the protocol is defined; the kernel writes
//! it with the `write_*` functions and the harness reads it with
//! [`parse_line`]. Everything else on the serial port is free-form console
//! output and is ignored by the parser (but kept in the run's log).
//!
//! # Lines
//!
//! A report line starts with [`PREFIX`] (`@pl `), then a record kind, then
//! space-separated `key=value` fields. Values hold no spaces, except the
//! field a record names as its *tail* (`cmdline=`, `msg=`), which is always
//! last and runs to the end of the line. Lines end with `\n`; a `\r` before
//! it is ignored. Records, in the order a run emits them:
//!
//! ```text
//! @pl begin proto=1 variant=fixed features=- cpus=4 cmdline=workload=hello
//! @pl metric name=mem.usable value=534118400 unit=bytes
//! @pl metric name=ipi.sent.shootpage value=12 unit=count cpu=1
//! @pl metric name=ipi.pair.shootpage value=3 unit=count from=0 to=2
//! @pl error kind=cmdline msg=unknown workload 'bogus'
//! @pl panic cpu=0 at=src/main.rs:42 msg=explicit panic
//! @pl end status=ok metrics=3
//! ```
//!
//! - `begin` (exactly one, first): protocol version, variant name, its Cargo
//!   features joined by `,` (`-` for none), online CPU count, and the kernel
//!   command line as received (tail).
//! - `metric`: `name` (dotted, `[a-z0-9._-]`), `value` (a decimal number,
//!   optionally negative and with a fractional part), `unit` (`count`,
//!   `bytes`, `cycles`, `ns`, `hz`, `ratio`, ...), and at most one scope:
//!   `cpu=N`, or a CPU pair `from=A to=B`. No scope means the whole machine.
//! - `error`: a diagnosed failure (bad command line, failed self-test, ...);
//!   `kind` names the area, `msg` (tail) says what went wrong.
//! - `panic`: a kernel panic or unhandled kernel-mode exception; the CPU,
//!   the source location (`at=file:line`, `-` when unknown) and the message.
//! - `end` (exactly one, last): `status=ok` or `status=failed`, and
//!   `metrics=N`, the number of metric lines the kernel wrote, so a reader
//!   can tell a truncated report from a complete one.
//!
//! Pair-scoped metrics (`from=A to=B`) are written only for pairs that
//! carried traffic; a pair that is absent reads as 0. So the report grows
//! with the traffic, not with CPUs squared: at 64 CPUs a hello run writes
//! about 2,900 metric lines, while a shoot-storm in which every CPU shoots
//! every other writes 2 x 64 x 63 pair lines for its kind (about 11,000
//! metric lines and 0.8 MB of serial output in all, a few seconds of a
//! 30-second run under tcg-icount).
//!
//! The kernel writes a newline before `begin`, since firmware may leave a
//! partial line on the console (SeaBIOS on q35 does); a reader must not
//! treat text before `begin` as part of the report.
//!
//! After a panic the kernel writes no `end`; it exits QEMU with the panic
//! code (see [`ExitCode`]). A missing `end` without a `panic` means the run
//! was cut short (hang, reset, triple fault) or the output was mangled.

use core::fmt::{self, Write};

/// Every report line starts with this; nothing else on the console does.
pub const PREFIX: &str = "@pl ";
/// The protocol version written in the `begin` line.
pub const VERSION: u32 = 1;

/// The byte the kernel writes to QEMU's isa-debug-exit port (0xf4) to end
/// the run. QEMU exits with `(byte << 1) | 1`, so every code the host sees
/// is odd and above 1; QEMU's own 0 (e.g. a triple fault under `-no-reboot`)
/// and 1 can never be mistaken for one of ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// The run completed and its `end` line says `status=ok`.
    Ok = 0x10,
    /// The run completed and reported a failure (`status=failed`).
    Failed = 0x11,
    /// The kernel panicked or took an unhandled exception.
    Panic = 0x12,
}

impl ExitCode {
    /// The process exit status QEMU reports for this code.
    pub const fn qemu_status(self) -> i32 {
        ((self as i32) << 1) | 1
    }

    /// The code behind a QEMU exit status, if it is one of ours.
    pub fn from_qemu_status(status: i32) -> Option<Self> {
        [Self::Ok, Self::Failed, Self::Panic]
            .into_iter()
            .find(|code| code.qemu_status() == status)
    }
}

/// The status carried by an `end` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    Failed,
}

impl Status {
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Failed => "failed",
        }
    }
}

/// Where a metric applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The whole machine.
    Global,
    /// One CPU.
    Cpu(u32),
    /// A (from, to) CPU pair, e.g. IPIs sent from one CPU to another.
    Pair { from: u32, to: u32 },
}

/// One parsed report line. Borrowed from the input line.
#[derive(Clone, Debug, PartialEq)]
pub enum Record<'a> {
    Begin {
        proto: u32,
        variant: &'a str,
        /// Cargo features, `,`-separated; empty when the line says `-`.
        features: &'a str,
        cpus: u32,
        cmdline: &'a str,
    },
    Metric {
        name: &'a str,
        value: f64,
        unit: &'a str,
        scope: Scope,
    },
    Error {
        kind: &'a str,
        msg: &'a str,
    },
    Panic {
        cpu: Option<u32>,
        at: &'a str,
        msg: &'a str,
    },
    End {
        status: Status,
        metrics: u64,
    },
}

/// Why a line that starts with [`PREFIX`] is not a valid record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError<'a> {
    UnknownRecord(&'a str),
    MissingField {
        record: &'static str,
        field: &'static str,
    },
    BadValue {
        field: &'static str,
        value: &'a str,
    },
    UnknownField(&'a str),
}

impl fmt::Display for ParseError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::UnknownRecord(r) => write!(f, "unknown record kind '{r}'"),
            ParseError::MissingField { record, field } => {
                write!(f, "'{record}' line has no '{field}=' field")
            }
            ParseError::BadValue { field, value } => {
                write!(f, "bad value '{value}' for field '{field}'")
            }
            ParseError::UnknownField(k) => write!(f, "unknown field '{k}'"),
        }
    }
}

/// Parses one line of console output. Returns `Ok(None)` for free-form
/// console output (no [`PREFIX`]), `Ok(Some(record))` for a report line and
/// `Err` for a report line that breaks the protocol.
pub fn parse_line(line: &str) -> Result<Option<Record<'_>>, ParseError<'_>> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    let Some(rest) = line.strip_prefix(PREFIX) else {
        return Ok(None);
    };
    let (kind, body) = rest.split_once(' ').unwrap_or((rest, ""));
    let fields = Fields::new(body);
    let record = match kind {
        "begin" => {
            let (head, cmdline) = fields.split_tail("cmdline")?;
            let proto = head.number("begin", "proto")?;
            let features = head.get("begin", "features")?;
            Record::Begin {
                proto,
                variant: head.get("begin", "variant")?,
                features: if features == "-" { "" } else { features },
                cpus: head.number("begin", "cpus")?,
                cmdline,
            }
        }
        "metric" => {
            let name = fields.get("metric", "name")?;
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
            {
                return Err(ParseError::BadValue {
                    field: "name",
                    value: name,
                });
            }
            let value_text = fields.get("metric", "value")?;
            let value = parse_decimal(value_text).ok_or(ParseError::BadValue {
                field: "value",
                value: value_text,
            })?;
            let scope = match (fields.find("cpu"), fields.find("from"), fields.find("to")) {
                (None, None, None) => Scope::Global,
                (Some(_), None, None) => Scope::Cpu(fields.number("metric", "cpu")?),
                (None, Some(_), Some(_)) => Scope::Pair {
                    from: fields.number("metric", "from")?,
                    to: fields.number("metric", "to")?,
                },
                (_, _, _) => {
                    return Err(ParseError::BadValue {
                        field: "scope",
                        value: body,
                    });
                }
            };
            fields.only(&["name", "value", "unit", "cpu", "from", "to"])?;
            Record::Metric {
                name,
                value,
                unit: fields.get("metric", "unit")?,
                scope,
            }
        }
        "error" => {
            let (head, msg) = fields.split_tail("msg")?;
            Record::Error {
                kind: head.get("error", "kind")?,
                msg,
            }
        }
        "panic" => {
            let (head, msg) = fields.split_tail("msg")?;
            let cpu = match head.find("cpu") {
                None | Some("-") => None,
                Some(_) => Some(head.number("panic", "cpu")?),
            };
            Record::Panic {
                cpu,
                at: head.get("panic", "at")?,
                msg,
            }
        }
        "end" => {
            let status = match fields.get("end", "status")? {
                "ok" => Status::Ok,
                "failed" => Status::Failed,
                other => {
                    return Err(ParseError::BadValue {
                        field: "status",
                        value: other,
                    })
                }
            };
            fields.only(&["status", "metrics"])?;
            Record::End {
                status,
                metrics: fields.number("end", "metrics")?,
            }
        }
        other => return Err(ParseError::UnknownRecord(other)),
    };
    Ok(Some(record))
}

/// A decimal number: optional `-`, digits, optional `.` and digits.
fn parse_decimal(text: &str) -> Option<f64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, "0"));
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int) || !all_digits(frac) {
        return None;
    }
    text.parse().ok()
}

/// The `key=value` fields of a line body.
#[derive(Clone, Copy)]
struct Fields<'a> {
    body: &'a str,
}

impl<'a> Fields<'a> {
    fn new(body: &'a str) -> Self {
        Fields { body }
    }

    fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.body
            .split(' ')
            .filter(|t| !t.is_empty())
            .map(|t| t.split_once('=').unwrap_or((t, "")))
    }

    fn find(&self, key: &str) -> Option<&'a str> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    fn get(&self, record: &'static str, field: &'static str) -> Result<&'a str, ParseError<'a>> {
        self.find(field)
            .ok_or(ParseError::MissingField { record, field })
    }

    fn number<T: core::str::FromStr>(
        &self,
        record: &'static str,
        field: &'static str,
    ) -> Result<T, ParseError<'a>> {
        let text = self.get(record, field)?;
        text.parse()
            .map_err(|_| ParseError::BadValue { field, value: text })
    }

    /// Rejects any field not in `allowed`.
    fn only(&self, allowed: &[&str]) -> Result<(), ParseError<'a>> {
        match self.iter().find(|(k, _)| !allowed.contains(k)) {
            Some((k, _)) => Err(ParseError::UnknownField(k)),
            None => Ok(()),
        }
    }

    /// Splits off the tail field `key=...` (which runs to the end of the
    /// line) from the fields before it.
    fn split_tail(&self, key: &'static str) -> Result<(Fields<'a>, &'a str), ParseError<'a>> {
        let mut offset = 0;
        for token in self.body.split(' ') {
            if token.strip_prefix(key).is_some_and(|t| t.starts_with('=')) {
                let start = offset + key.len() + 1;
                return Ok((Fields::new(&self.body[..offset]), &self.body[start..]));
            }
            offset += token.len() + 1;
        }
        Err(ParseError::MissingField {
            record: "line",
            field: key,
        })
    }
}

// ---- Writing (the kernel's side) ----------------------------------------

/// Writes the `begin` line.
pub fn write_begin(
    w: &mut (impl Write + ?Sized),
    variant: &str,
    features: &[&str],
    cpus: u32,
    cmdline: &str,
) -> fmt::Result {
    write!(
        w,
        "{PREFIX}begin proto={VERSION} variant={variant} features="
    )?;
    if features.is_empty() {
        w.write_char('-')?;
    }
    for (i, feature) in features.iter().enumerate() {
        if i > 0 {
            w.write_char(',')?;
        }
        w.write_str(feature)?;
    }
    // The tail is echoed as received, on one line.
    write!(w, " cpus={cpus} cmdline=")?;
    write_one_line(w, cmdline)?;
    w.write_char('\n')
}

/// Writes a metric line. `value` is anything whose `Display` is a decimal
/// number (integers, or [`Fixed`] for fractions).
pub fn write_metric(
    w: &mut (impl Write + ?Sized),
    name: &str,
    value: impl fmt::Display,
    unit: &str,
    scope: Scope,
) -> fmt::Result {
    write!(w, "{PREFIX}metric name={name} value={value} unit={unit}")?;
    match scope {
        Scope::Global => {}
        Scope::Cpu(cpu) => write!(w, " cpu={cpu}")?,
        Scope::Pair { from, to } => write!(w, " from={from} to={to}")?,
    }
    w.write_char('\n')
}

/// Writes an `error` line.
pub fn write_error(
    w: &mut (impl Write + ?Sized),
    kind: &str,
    msg: fmt::Arguments<'_>,
) -> fmt::Result {
    write!(w, "{PREFIX}error kind={kind} msg=")?;
    write_one_line(w, msg)?;
    w.write_char('\n')
}

/// Writes a `panic` line. `at` is `file:line`, or `-` when unknown.
pub fn write_panic(
    w: &mut (impl Write + ?Sized),
    cpu: Option<u32>,
    at: fmt::Arguments<'_>,
    msg: fmt::Arguments<'_>,
) -> fmt::Result {
    match cpu {
        Some(cpu) => write!(w, "{PREFIX}panic cpu={cpu} at={at} msg=")?,
        None => write!(w, "{PREFIX}panic cpu=- at={at} msg=")?,
    }
    write_one_line(w, msg)?;
    w.write_char('\n')
}

/// Writes the `end` line.
pub fn write_end(w: &mut (impl Write + ?Sized), status: Status, metrics: u64) -> fmt::Result {
    writeln!(
        w,
        "{PREFIX}end status={} metrics={metrics}",
        status.as_str()
    )
}

/// Writes `text` with line breaks replaced by spaces, so a tail field
/// cannot end its line early.
fn write_one_line(w: &mut (impl Write + ?Sized), text: impl fmt::Display) -> fmt::Result {
    struct OneLine<'w, W: Write + ?Sized>(&'w mut W);
    impl<W: Write + ?Sized> Write for OneLine<'_, W> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            for piece in s.split_inclusive(['\n', '\r']) {
                let trimmed = piece.trim_end_matches(['\n', '\r']);
                self.0.write_str(trimmed)?;
                if trimmed.len() != piece.len() {
                    self.0.write_char(' ')?;
                }
            }
            Ok(())
        }
    }
    write!(OneLine(w), "{text}")
}

/// A fixed-point decimal for metric values: `Fixed { milli: 1500 }` prints
/// `1.500`. The kernel runs without floating point, so fractions are carried
/// as integers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fixed {
    pub milli: i64,
}

impl Fixed {
    /// `num / den` with three decimals (0 when `den` is 0).
    pub fn ratio(num: u64, den: u64) -> Self {
        let milli = if den == 0 {
            0
        } else {
            (num as u128 * 1000 / den as u128) as i64
        };
        Fixed { milli }
    }
}

impl fmt::Display for Fixed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.milli < 0 { "-" } else { "" };
        let abs = self.milli.unsigned_abs();
        write!(f, "{sign}{}.{:03}", abs / 1000, abs % 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> Record<'_> {
        parse_line(line).unwrap().unwrap()
    }

    #[test]
    fn round_trips_every_record() {
        let mut out = String::new();
        write_begin(&mut out, "fixed", &["a", "b"], 4, "workload=hello n=3").unwrap();
        write_metric(&mut out, "ipi.sent", 12, "count", Scope::Cpu(1)).unwrap();
        write_metric(
            &mut out,
            "ipi.pair",
            Fixed::ratio(3, 2),
            "ratio",
            Scope::Pair { from: 0, to: 2 },
        )
        .unwrap();
        write_error(&mut out, "cmdline", format_args!("unknown key\n'x'")).unwrap();
        write_panic(
            &mut out,
            Some(3),
            format_args!("src/a.rs:9"),
            format_args!("boom"),
        )
        .unwrap();
        write_end(&mut out, Status::Failed, 2).unwrap();
        let records: Vec<_> = out.lines().map(one).collect();
        assert_eq!(
            records,
            vec![
                Record::Begin {
                    proto: 1,
                    variant: "fixed",
                    features: "a,b",
                    cpus: 4,
                    cmdline: "workload=hello n=3"
                },
                Record::Metric {
                    name: "ipi.sent",
                    value: 12.0,
                    unit: "count",
                    scope: Scope::Cpu(1)
                },
                Record::Metric {
                    name: "ipi.pair",
                    value: 1.5,
                    unit: "ratio",
                    scope: Scope::Pair { from: 0, to: 2 }
                },
                Record::Error {
                    kind: "cmdline",
                    msg: "unknown key 'x'"
                },
                Record::Panic {
                    cpu: Some(3),
                    at: "src/a.rs:9",
                    msg: "boom"
                },
                Record::End {
                    status: Status::Failed,
                    metrics: 2
                },
            ]
        );
    }

    #[test]
    fn no_features_is_a_dash() {
        let mut out = String::new();
        write_begin(&mut out, "fixed", &[], 1, "").unwrap();
        assert!(out.contains("features=- "));
        assert!(matches!(
            one(&out),
            Record::Begin {
                features: "",
                cmdline: "",
                ..
            }
        ));
    }

    #[test]
    fn console_output_is_not_a_record() {
        assert_eq!(parse_line("hello from the kernel"), Ok(None));
        assert_eq!(parse_line("@plx begin"), Ok(None));
    }

    #[test]
    fn rejects_garbage_after_the_prefix() {
        assert!(matches!(
            parse_line("@pl bogus x=1"),
            Err(ParseError::UnknownRecord("bogus"))
        ));
        assert!(parse_line("@pl metric name=a value=1x unit=count").is_err());
        assert!(parse_line("@pl metric name=A value=1 unit=count").is_err());
        assert!(parse_line("@pl metric name=a value=1").is_err());
        assert!(parse_line("@pl metric name=a value=1 unit=count cpu=1 from=0 to=1").is_err());
        assert!(parse_line("@pl metric name=a value=1 unit=count weird=1").is_err());
        assert!(parse_line("@pl end status=maybe metrics=1").is_err());
        assert!(parse_line("@pl end status=ok").is_err());
        assert!(parse_line("@pl begin proto=1 variant=x").is_err());
        assert!(parse_line("@pl ").is_err());
    }

    #[test]
    fn exit_codes_are_odd_and_never_qemus_own() {
        for code in [ExitCode::Ok, ExitCode::Failed, ExitCode::Panic] {
            let status = code.qemu_status();
            assert!(status % 2 == 1 && status > 1);
            assert_eq!(ExitCode::from_qemu_status(status), Some(code));
        }
        assert_eq!(ExitCode::from_qemu_status(0), None);
        assert_eq!(ExitCode::from_qemu_status(1), None);
    }

    #[test]
    fn fixed_prints_three_decimals() {
        assert_eq!(Fixed::ratio(1, 3).to_string(), "0.333");
        assert_eq!(Fixed { milli: -1500 }.to_string(), "-1.500");
        assert_eq!(Fixed::ratio(5, 0).to_string(), "0.000");
    }
}
