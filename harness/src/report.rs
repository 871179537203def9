//! Reading a run's serial log with the report protocol.
//!
//! The protocol itself (record kinds, fields, the `@pl ` prefix) is defined
//! once, in `lab_core::report`; this module applies it to a whole log and
//! checks the rules a single line cannot: exactly one `begin`, first; at
//! most one `end`, last, whose metric count matches the metric lines seen;
//! every line valid UTF-8 and ended by a newline. Anything else on the
//! console is free-form output and is ignored.
//!
//! [`parse`] never fails and never panics, whatever the bytes: it returns
//! the records it could read (owned) plus a list of [`Problem`]s, each with
//! its line number. Whether the problems matter depends on how the run
//! ended (a timed-out run has no `end`, of course), which is
//! [`crate::outcome`]'s decision; [`Report::check_complete`] is the check
//! for a run that claims to have finished.

use std::fmt;

use lab_core::report::{self as proto, Record, Scope, Status};

/// The `begin` record.
#[derive(Clone, Debug, PartialEq)]
pub struct Begin {
    pub proto: u32,
    pub variant: String,
    pub features: Vec<String>,
    pub cpus: u32,
    pub cmdline: String,
}

/// A `metric` record.
#[derive(Clone, Debug, PartialEq)]
pub struct Metric {
    pub name: String,
    pub value: f64,
    pub unit: String,
    pub scope: Scope,
}

impl Metric {
    pub fn new(name: &str, value: f64, unit: &str, scope: Scope) -> Self {
        Metric {
            name: name.to_string(),
            value,
            unit: unit.to_string(),
            scope,
        }
    }
}

/// An `error` record: a failure the kernel diagnosed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorRecord {
    pub kind: String,
    pub msg: String,
}

/// A `panic` record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PanicRecord {
    pub cpu: Option<u32>,
    /// `file:line`, or `-` when the kernel did not know.
    pub at: String,
    pub msg: String,
}

/// The `end` record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct End {
    pub status: Status,
    pub metrics: u64,
}

/// A break of the protocol, at a line of the log (1-based; 0 when it is
/// about the log as a whole).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub what: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.what)
        } else {
            write!(f, "line {}: {}", self.line, self.what)
        }
    }
}

/// Everything read from one serial log.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    pub begin: Option<Begin>,
    pub metrics: Vec<Metric>,
    pub errors: Vec<ErrorRecord>,
    /// The first `panic` record: the cause. A later one (another CPU
    /// panicking meanwhile) is dropped.
    pub panic: Option<PanicRecord>,
    pub end: Option<End>,
    /// Protocol breaks found line by line, in order (at most
    /// [`MAX_PROBLEMS`]).
    pub problems: Vec<Problem>,
    /// Number of lines in the log.
    pub lines: usize,
}

/// Problems kept per log: enough to diagnose, bounded for a log of noise.
pub const MAX_PROBLEMS: usize = 16;

/// Parses a whole serial log. Never panics.
pub fn parse(log: &[u8]) -> Report {
    let mut report = Report::default();
    let mut pieces = log.split(|&b| b == b'\n').peekable();
    let mut number = 0;
    while let Some(raw) = pieces.next() {
        let last = pieces.peek().is_none();
        if last && raw.is_empty() {
            break; // the log ended with a newline, as it should
        }
        number += 1;
        if last {
            // QEMU flushes the serial file as bytes arrive, so a line cut
            // off by a kill, a crash or a lost byte has no newline.
            report.problem(number, "truncated: the log ends without a newline".into());
        }
        let Ok(line) = std::str::from_utf8(raw) else {
            report.problem(number, "invalid UTF-8".into());
            continue;
        };
        match proto::parse_line(line) {
            Ok(None) => {}
            Ok(Some(record)) => report.add(number, record),
            Err(e) => report.problem(number, format!("malformed report line: {e}")),
        }
    }
    report.lines = number;
    report
}

impl Report {
    fn problem(&mut self, line: usize, what: String) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(Problem { line, what });
        }
    }

    fn add(&mut self, line: usize, record: Record<'_>) {
        if self.end.is_some() {
            self.problem(line, "report record after the end line".into());
            return;
        }
        if self.begin.is_none() && !matches!(record, Record::Begin { .. } | Record::Panic { .. }) {
            // A panic may come before begin (a boot-time panic); nothing
            // else may.
            self.problem(line, "report record before the begin line".into());
        }
        match record {
            Record::Begin {
                proto: version,
                variant,
                features,
                cpus,
                cmdline,
            } => {
                if self.begin.is_some() {
                    self.problem(line, "a second begin line".into());
                    return;
                }
                if version != proto::VERSION {
                    self.problem(
                        line,
                        format!(
                            "protocol version {version}, this harness reads {}",
                            proto::VERSION
                        ),
                    );
                }
                self.begin = Some(Begin {
                    proto: version,
                    variant: variant.into(),
                    features: features
                        .split(',')
                        .filter(|f| !f.is_empty())
                        .map(String::from)
                        .collect(),
                    cpus,
                    cmdline: cmdline.into(),
                });
            }
            Record::Metric {
                name,
                value,
                unit,
                scope,
            } => self.metrics.push(Metric {
                name: name.into(),
                value,
                unit: unit.into(),
                scope,
            }),
            Record::Error { kind, msg } => self.errors.push(ErrorRecord {
                kind: kind.into(),
                msg: msg.into(),
            }),
            Record::Panic { cpu, at, msg } => {
                if self.panic.is_none() {
                    self.panic = Some(PanicRecord {
                        cpu,
                        at: at.into(),
                        msg: msg.into(),
                    });
                }
            }
            Record::End { status, metrics } => self.end = Some(End { status, metrics }),
        }
    }

    /// Checks the report of a run that says it finished: no line-level
    /// problem, a begin, an end, and the end's metric count matching.
    /// Returns every problem found (empty when complete).
    pub fn check_complete(&self) -> Vec<Problem> {
        let mut problems = self.problems.clone();
        if self.begin.is_none() {
            problems.push(Problem {
                line: 0,
                what: "no begin line in the log".into(),
            });
        }
        match self.end {
            None => problems.push(Problem {
                line: 0,
                what: "no end line: the report is missing or truncated".into(),
            }),
            Some(end) if end.metrics != self.metrics.len() as u64 => problems.push(Problem {
                line: 0,
                what: format!(
                    "the end line counts {} metrics but the log holds {}",
                    end.metrics,
                    self.metrics.len()
                ),
            }),
            Some(_) => {}
        }
        problems
    }

    /// The value of the global (machine-wide) metric `name`.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics
            .iter()
            .find(|m| m.name == name && m.scope == Scope::Global)
            .map(|m| m.value)
    }
}

/// `value` as the kernel wrote it: integral values without a fraction.
pub fn format_value(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        format!("{value}")
    }
}

/// A metric's scope for display: `all`, `cpu N`, or `A->B`.
pub fn format_scope(scope: Scope) -> String {
    match scope {
        Scope::Global => "all".into(),
        Scope::Cpu(cpu) => format!("cpu {cpu}"),
        Scope::Pair { from, to } => format!("{from}->{to}"),
    }
}

/// Writes the report as a table: the begin line's facts, then one row per
/// metric (name, scope, value, unit), then errors and a panic if any.
pub fn write_table(report: &Report, out: &mut impl fmt::Write) -> fmt::Result {
    match &report.begin {
        Some(b) => writeln!(
            out,
            "variant {} (features: {}), {} cpu{}, protocol {}\ncmdline: {}",
            b.variant,
            if b.features.is_empty() {
                "none".to_string()
            } else {
                b.features.join(",")
            },
            b.cpus,
            if b.cpus == 1 { "" } else { "s" },
            b.proto,
            b.cmdline
        )?,
        None => writeln!(out, "(no begin line)")?,
    }
    if !report.metrics.is_empty() {
        let name_w = report
            .metrics
            .iter()
            .map(|m| m.name.len())
            .max()
            .unwrap_or(0)
            .max(6);
        let values: Vec<String> = report
            .metrics
            .iter()
            .map(|m| format_value(m.value))
            .collect();
        let value_w = values.iter().map(String::len).max().unwrap_or(0).max(5);
        writeln!(
            out,
            "{:<name_w$}  {:<7}  {:>value_w$}  unit",
            "metric", "scope", "value"
        )?;
        for (m, v) in report.metrics.iter().zip(&values) {
            writeln!(
                out,
                "{:<name_w$}  {:<7}  {:>value_w$}  {}",
                m.name,
                format_scope(m.scope),
                v,
                m.unit
            )?;
        }
    }
    for e in &report.errors {
        writeln!(out, "error ({}): {}", e.kind, e.msg)?;
    }
    if let Some(p) = &report.panic {
        writeln!(out, "panic at {}: {}", p.at, p.msg)?;
    }
    if let Some(end) = report.end {
        writeln!(
            out,
            "end: status={} metrics={}",
            end.status.as_str(),
            end.metrics
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
console noise
@pl begin proto=1 variant=fixed features=- cpus=2 cmdline=workload=hello
hello from pmaplab
@pl metric name=mem.usable value=1024 unit=bytes
@pl metric name=ipi.sent value=3 unit=count cpu=1
@pl end status=ok metrics=2
";

    #[test]
    fn a_good_log_is_complete() {
        let r = parse(GOOD.as_bytes());
        assert!(r.check_complete().is_empty(), "{:?}", r.check_complete());
        let b = r.begin.as_ref().unwrap();
        assert_eq!(
            (b.variant.as_str(), b.cpus, b.cmdline.as_str()),
            ("fixed", 2, "workload=hello")
        );
        assert!(b.features.is_empty());
        assert_eq!(r.metric("mem.usable"), Some(1024.0));
        assert_eq!(r.metrics[1].scope, Scope::Cpu(1));
        assert_eq!(r.end.unwrap().status, Status::Ok);
        assert_eq!(r.lines, 6);
    }

    fn problems(log: &[u8]) -> Vec<String> {
        parse(log)
            .check_complete()
            .iter()
            .map(|p| p.to_string())
            .collect()
    }

    fn assert_problem(log: &[u8], needle: &str) {
        let p = problems(log);
        assert!(
            p.iter().any(|p| p.contains(needle)),
            "{needle:?} not in {p:?}"
        );
    }

    #[test]
    fn truncated_logs() {
        // Cut mid-line: a truncated line and no end.
        let cut = &GOOD.as_bytes()[..GOOD.find("@pl end").unwrap() + 10];
        assert_problem(cut, "line 6: truncated");
        assert_problem(cut, "no end line");
        // Cut at a line boundary: no end.
        let cut = &GOOD.as_bytes()[..GOOD.find("@pl end").unwrap()];
        assert_eq!(
            problems(cut),
            vec!["no end line: the report is missing or truncated"]
        );
        // Nothing at all.
        assert_problem(b"", "no begin line");
        // A line cut inside a record makes it malformed.
        assert_problem(b"@pl begin proto=1 variant=fixed\n", "line 1: malformed");
    }

    #[test]
    fn garbage_after_the_prefix() {
        let log = GOOD.replace("hello from pmaplab", "@pl \u{1}\u{2}garbage ==");
        assert_problem(
            log.as_bytes(),
            "line 3: malformed report line: unknown record kind",
        );
        let log = GOOD.replace("value=1024", "value=1k");
        assert_problem(
            log.as_bytes(),
            "line 4: malformed report line: bad value '1k'",
        );
    }

    #[test]
    fn invalid_utf8_names_the_line() {
        let mut log = GOOD.as_bytes().to_vec();
        let at = GOOD.find("hello from").unwrap();
        log[at] = 0xff;
        assert_eq!(problems(&log), vec!["line 3: invalid UTF-8"]);
    }

    #[test]
    fn missing_end_wrong_count_two_begins() {
        let log = GOOD.replace("@pl end status=ok metrics=2\n", "");
        assert_problem(log.as_bytes(), "no end line");
        let log = GOOD.replace("metrics=2", "metrics=3");
        assert_problem(log.as_bytes(), "counts 3 metrics but the log holds 2");
        let begin = GOOD.lines().nth(1).unwrap();
        let log = GOOD.replace("hello from pmaplab", begin);
        assert_problem(log.as_bytes(), "line 3: a second begin");
    }

    #[test]
    fn order_rules() {
        let log = "@pl metric name=a value=1 unit=count\n".to_string() + GOOD;
        assert_problem(
            log.as_bytes(),
            "line 1: report record before the begin line",
        );
        let log = GOOD.to_string() + "@pl metric name=a value=1 unit=count\n";
        assert_problem(log.as_bytes(), "line 7: report record after the end line");
        let log = GOOD.replace("proto=1", "proto=9");
        assert_problem(log.as_bytes(), "protocol version 9");
        // A panic before begin is a boot-time panic, not a protocol break.
        let r = parse(b"@pl panic cpu=- at=- msg=early\n");
        assert!(r.problems.is_empty());
        assert_eq!(r.panic.unwrap().msg, "early");
    }

    #[test]
    fn never_panics_on_noise() {
        // A deterministic xorshift stream of bytes, biased towards the
        // protocol's own characters so the parser sees near-misses.
        let alphabet = b"@pl beginmetricendpanicerror=0123456789-. \n\xff\xc3";
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for round in 0..300 {
            let mut log = Vec::new();
            if round % 2 == 0 {
                log.extend_from_slice(GOOD.as_bytes());
            }
            for _ in 0..(round * 7 % 400) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                log.push(alphabet[(x % alphabet.len() as u64) as usize]);
                if x.is_multiple_of(5) {
                    log.extend_from_slice(b"@pl ");
                }
            }
            let r = parse(&log);
            assert!(r.problems.len() <= MAX_PROBLEMS);
            let _ = r.check_complete();
            let mut table = String::new();
            write_table(&r, &mut table).unwrap();
        }
    }

    #[test]
    fn table_shows_scope_value_and_unit() {
        let mut out = String::new();
        write_table(&parse(GOOD.as_bytes()), &mut out).unwrap();
        assert!(out.contains("cmdline: workload=hello"), "{out}");
        assert!(
            out.lines().any(|l| l.starts_with("mem.usable")
                && l.contains("all")
                && l.contains("1024  bytes")),
            "{out}"
        );
        assert!(
            out.lines()
                .any(|l| l.starts_with("ipi.sent") && l.contains("cpu 1")),
            "{out}"
        );
        assert_eq!(format_value(1.5), "1.5");
        assert_eq!(format_scope(Scope::Pair { from: 0, to: 2 }), "0->2");
    }
}
