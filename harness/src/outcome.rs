//! What happened in a run: QEMU's exit plus the parsed report, decoded into
//! one [`Outcome`].
//!
//! The decision, in order:
//! 1. QEMU could not start => `qemu-error`.
//! 2. Still running at the deadline => `timeout` (the report so far is kept).
//! 3. Exit status one of the kernel's (`lab_core::report::ExitCode`):
//!    - panic code => `panic` with the panic record (none => `protocol-error`);
//!    - ok / failed code => the report must be complete (begin first, end
//!      last, metric count right, no malformed line) and its end status must
//!      agree with the code, else `protocol-error`; then `ok` or `failed`
//!      (with the kernel's error records).
//! 4. Exit 0 => the CPU reset (triple fault) and `-no-reboot` turned it into
//!    an exit: `triple-fault`, unless the log has an end or panic record
//!    (then the kernel did not exit as the protocol says: `protocol-error`).
//! 5. Anything else (QEMU's own 1 for a bad option, a signal) => `qemu-error`
//!    with QEMU's stderr.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use lab_core::report::{ExitCode, Status};

use crate::qemu::{Boot, Exit};
use crate::report::{ErrorRecord, PanicRecord, Problem, Report};

/// What kind of end a run had: the [`Outcome`] without its details. This
/// is what results store (`results::Outcome` is this type), spelled in
/// CSV as the kebab-case names below.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Report complete, `end status=ok`, QEMU exited with the ok code.
    Ok,
    /// The kernel reported `status=failed` (an `error` record).
    Failed,
    /// The kernel panicked.
    Panic,
    /// QEMU exited 0 under `-no-reboot`: the guest reset (triple fault).
    TripleFault,
    /// The run outlived its timeout and was killed.
    Timeout,
    /// QEMU could not start or exited with a status that is none of ours.
    QemuError,
    /// The report broke the protocol (bad line, missing `end`, count mismatch).
    ProtocolError,
    /// The variant needs something this CPU or accelerator does not offer
    /// (the kernel's `unsupported` error record, e.g. `pcid` under TCG):
    /// not a result about the pmap, and not a failure of one.
    Unsupported,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::Ok,
        Kind::Failed,
        Kind::Panic,
        Kind::TripleFault,
        Kind::Timeout,
        Kind::QemuError,
        Kind::ProtocolError,
        Kind::Unsupported,
    ];

    /// The CSV spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Ok => "ok",
            Kind::Failed => "failed",
            Kind::Panic => "panic",
            Kind::TripleFault => "triple-fault",
            Kind::Timeout => "timeout",
            Kind::QemuError => "qemu-error",
            Kind::ProtocolError => "protocol-error",
            Kind::Unsupported => "unsupported",
        }
    }

    pub fn is_ok(self) -> bool {
        self == Kind::Ok
    }

    /// The harness's exit status for a run that ended so: 0 only for ok.
    /// (1 is a harness error, 2 a usage error.)
    pub fn exit_code(self) -> i32 {
        match self {
            Kind::Ok => 0,
            Kind::Failed => 3,
            Kind::Panic => 4,
            Kind::TripleFault => 5,
            Kind::Timeout => 6,
            Kind::QemuError => 7,
            Kind::ProtocolError => 8,
            Kind::Unsupported => 9,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        Kind::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| anyhow::anyhow!("unknown run outcome '{s}'"))
    }
}

/// How a run ended, with the details (error records, panic, QEMU's
/// stderr); [`Outcome::kind`] is what results store.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The kernel ran the workload and reported success.
    Ok,
    /// The kernel finished and reported failure; its error records.
    Failed { errors: Vec<ErrorRecord> },
    /// The kernel panicked.
    Panic(PanicRecord),
    /// The CPU reset (triple fault); QEMU exited 0 under `-no-reboot`.
    TripleFault,
    /// Killed at the deadline.
    Timeout { after: Duration },
    /// QEMU could not run the kernel: it did not start, rejected its
    /// options, or died. `status` is its exit status if it had one.
    QemuError {
        reason: String,
        status: Option<i32>,
        stderr: String,
    },
    /// The report is missing, truncated or malformed.
    ProtocolError {
        problems: Vec<Problem>,
        status: Option<i32>,
    },
    /// The kernel stopped before the workload because the variant needs
    /// what the CPU does not offer; its `unsupported` error records.
    Unsupported { errors: Vec<ErrorRecord> },
}

impl Outcome {
    /// The outcome's kind: what results store.
    pub fn kind(&self) -> Kind {
        match self {
            Outcome::Ok => Kind::Ok,
            Outcome::Failed { .. } => Kind::Failed,
            Outcome::Panic(_) => Kind::Panic,
            Outcome::TripleFault => Kind::TripleFault,
            Outcome::Timeout { .. } => Kind::Timeout,
            Outcome::QemuError { .. } => Kind::QemuError,
            Outcome::ProtocolError { .. } => Kind::ProtocolError,
            Outcome::Unsupported { .. } => Kind::Unsupported,
        }
    }

    /// The outcome's name, as printed and as stored in results.
    pub fn name(&self) -> &'static str {
        self.kind().as_str()
    }

    /// The harness's exit status for this outcome: 0 only for ok. (1 is a
    /// harness error, 2 a usage error.)
    pub fn exit_code(&self) -> i32 {
        self.kind().exit_code()
    }

    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Ok)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())?;
        match self {
            Outcome::Ok => Ok(()),
            Outcome::Failed { errors } if errors.is_empty() => {
                write!(f, ": the kernel reported failure without an error record")
            }
            Outcome::Unsupported { errors } => {
                for (i, e) in errors.iter().enumerate() {
                    let sep = if i == 0 { ": " } else { "; " };
                    write!(f, "{sep}{}", e.msg)?;
                }
                Ok(())
            }
            Outcome::Failed { errors } => {
                for (i, e) in errors.iter().enumerate() {
                    let sep = if i == 0 { ": " } else { "; " };
                    write!(f, "{sep}{}: {}", e.kind, e.msg)?;
                }
                Ok(())
            }
            Outcome::Panic(p) => {
                write!(f, ": {} (at {}", p.msg, p.at)?;
                if let Some(cpu) = p.cpu {
                    write!(f, ", cpu {cpu}")?;
                }
                write!(f, ")")
            }
            Outcome::TripleFault => write!(
                f,
                ": QEMU exited 0 with no end or panic record (the CPU reset, e.g. a triple fault)"
            ),
            Outcome::Timeout { after } => {
                write!(f, ": killed after {:.1} s", after.as_secs_f64())
            }
            Outcome::QemuError {
                reason,
                status,
                stderr,
            } => {
                write!(f, ": {reason}")?;
                if let Some(s) = status {
                    write!(f, " (exit status {s})")?;
                }
                let stderr = stderr.trim();
                if !stderr.is_empty() {
                    write!(f, "\nQEMU said:\n{stderr}")?;
                }
                Ok(())
            }
            Outcome::ProtocolError { problems, status } => {
                if let Some(s) = status {
                    write!(f, " (QEMU exit status {s})")?;
                }
                for p in problems {
                    write!(f, "\n  {p}")?;
                }
                Ok(())
            }
        }
    }
}

/// The kind of the kernel's error record for a variant the CPU cannot run
/// (kernel/src/workloads/mod.rs).
pub const UNSUPPORTED: &str = "unsupported";

/// Decides the outcome of `boot` whose serial log parsed as `report`.
pub fn decide(boot: &Boot, report: &Report) -> Outcome {
    let status = match &boot.exit {
        Exit::SpawnFailed(why) => {
            return Outcome::QemuError {
                reason: why.clone(),
                status: None,
                stderr: boot.stderr.clone(),
            }
        }
        Exit::TimedOut => return Outcome::Timeout { after: boot.wall },
        Exit::Signal(sig) => {
            return Outcome::QemuError {
                reason: format!("QEMU was killed by signal {sig}"),
                status: None,
                stderr: boot.stderr.clone(),
            }
        }
        Exit::Status(s) => *s,
    };
    let protocol_error = |problems: Vec<Problem>| Outcome::ProtocolError {
        problems,
        status: Some(status),
    };
    let whole = |what: &str| Problem {
        line: 0,
        what: what.into(),
    };
    match ExitCode::from_qemu_status(status) {
        Some(ExitCode::Panic) => match &report.panic {
            Some(p) => Outcome::Panic(p.clone()),
            None => protocol_error(vec![whole(
                "the kernel exited with the panic code but the log has no panic record",
            )]),
        },
        Some(code) => {
            let mut problems = report.check_complete();
            let expected = if code == ExitCode::Ok {
                Status::Ok
            } else {
                Status::Failed
            };
            if let Some(end) = report.end {
                if end.status != expected {
                    problems.push(whole(&format!(
                        "the end line says status={} but the kernel exited with the {} code",
                        end.status.as_str(),
                        expected.as_str()
                    )));
                }
            }
            if !problems.is_empty() {
                protocol_error(problems)
            } else if code == ExitCode::Ok {
                Outcome::Ok
            } else if !report.errors.is_empty()
                && report.errors.iter().all(|e| e.kind == UNSUPPORTED)
            {
                Outcome::Unsupported {
                    errors: report.errors.clone(),
                }
            } else {
                Outcome::Failed {
                    errors: report.errors.clone(),
                }
            }
        }
        None if status == 0 => {
            if report.end.is_some() || report.panic.is_some() {
                protocol_error(vec![whole(
                    "QEMU exited 0 (a reset) although the log has an end or panic record",
                )])
            } else {
                Outcome::TripleFault
            }
        }
        None => Outcome::QemuError {
            reason: if status == 1 {
                "QEMU failed (bad option, missing file, or an error while running)".into()
            } else {
                format!("QEMU exited with status {status}, not one of the kernel's codes")
            },
            status: Some(status),
            stderr: boot.stderr.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::parse;

    const OK_LOG: &str =
        "@pl begin proto=1 variant=fixed features=- cpus=1 cmdline=workload=hello\n\
                          @pl metric name=mem.usable value=1 unit=bytes\n\
                          @pl end status=ok metrics=1\n";

    fn boot(exit: Exit) -> Boot {
        Boot {
            exit,
            wall: Duration::from_millis(40),
            stderr: "qemu: some complaint\n".into(),
        }
    }

    fn decide_log(exit: Exit, log: &str) -> Outcome {
        decide(&boot(exit), &parse(log.as_bytes()))
    }

    #[test]
    fn ok_needs_a_complete_report() {
        let ok = ExitCode::Ok.qemu_status();
        assert_eq!(decide_log(Exit::Status(ok), OK_LOG), Outcome::Ok);
        let truncated = &OK_LOG[..OK_LOG.len() - 10];
        let o = decide_log(Exit::Status(ok), truncated);
        assert_eq!(o.name(), "protocol-error", "{o}");
        let o = decide_log(Exit::Status(ok), "");
        assert!(o.to_string().contains("no begin line"), "{o}");
        let o = decide_log(Exit::Status(ExitCode::Failed.qemu_status()), OK_LOG);
        assert!(o.to_string().contains("says status=ok"), "{o}");
    }

    #[test]
    fn failed_lists_the_errors() {
        let log = OK_LOG.replace("status=ok", "status=failed").replace(
            "@pl end",
            "@pl error kind=cmdline msg=unknown workload 'bogus'\n@pl end",
        );
        let o = decide_log(Exit::Status(ExitCode::Failed.qemu_status()), &log);
        assert_eq!(o.to_string(), "failed: cmdline: unknown workload 'bogus'");
        assert_eq!(o.exit_code(), 3);
    }

    #[test]
    fn unsupported_only_when_every_error_says_so() {
        let failed = |errors: &str| {
            let log = OK_LOG
                .replace("status=ok", "status=failed")
                .replace("@pl end", &format!("{errors}@pl end"));
            decide_log(Exit::Status(ExitCode::Failed.qemu_status()), &log)
        };
        let o = failed("@pl error kind=unsupported msg=variant needs PCID\n");
        assert_eq!(o.kind(), Kind::Unsupported);
        assert_eq!(o.to_string(), "unsupported: variant needs PCID");
        assert_eq!(o.exit_code(), 9);
        // Any other error makes it a failure.
        let o = failed(
            "@pl error kind=unsupported msg=variant needs PCID\n@pl error kind=proc msg=x\n",
        );
        assert_eq!(o.kind(), Kind::Failed);
    }

    #[test]
    fn panic_triple_fault_timeout_qemu_error() {
        let panic = ExitCode::Panic.qemu_status();
        let log = "@pl begin proto=1 variant=fixed features=- cpus=1 cmdline=workload=panic\n\
                   @pl panic cpu=0 at=src/x.rs:3 msg=boom\n";
        let o = decide_log(Exit::Status(panic), log);
        assert_eq!(o.to_string(), "panic: boom (at src/x.rs:3, cpu 0)");
        assert_eq!(
            decide_log(Exit::Status(panic), OK_LOG).name(),
            "protocol-error"
        );
        assert_eq!(
            decide_log(
                Exit::Status(0),
                "@pl begin proto=1 variant=f features=- cpus=1 cmdline=\n"
            ),
            Outcome::TripleFault
        );
        assert_eq!(decide_log(Exit::Status(0), OK_LOG).name(), "protocol-error");
        assert_eq!(decide_log(Exit::TimedOut, "half a li").name(), "timeout");
        let o = decide_log(Exit::Status(1), "");
        assert!(o.to_string().contains("some complaint"), "{o}");
        assert_eq!(o.exit_code(), 7);
        assert_eq!(
            decide_log(Exit::SpawnFailed("no such file".into()), "").name(),
            "qemu-error"
        );
        assert_eq!(decide_log(Exit::Signal(9), "").name(), "qemu-error");
    }

    #[test]
    fn exit_codes_are_distinct() {
        let all = [
            Outcome::Ok,
            Outcome::Failed { errors: vec![] },
            Outcome::Panic(PanicRecord {
                cpu: None,
                at: "-".into(),
                msg: String::new(),
            }),
            Outcome::TripleFault,
            Outcome::Timeout {
                after: Duration::ZERO,
            },
            Outcome::QemuError {
                reason: String::new(),
                status: None,
                stderr: String::new(),
            },
            Outcome::ProtocolError {
                problems: vec![],
                status: None,
            },
        ];
        let mut codes: Vec<i32> = all.iter().map(Outcome::exit_code).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
        assert!(
            codes[1..].iter().all(|&c| c > 2),
            "1 and 2 are the harness's own"
        );
    }

    /// The README's outcome table (one row per outcome: its name, what it
    /// means, its exit status) is what users script against, so each of
    /// its rows must name a kind and give that kind's exit status, and
    /// every kind must have a row.
    #[test]
    fn the_readme_outcome_table_is_the_harness() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
        let mut seen = Vec::new();
        for line in readme.lines() {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            // `| name | meaning | status |` splits into 5 cells.
            if cells.len() != 5 {
                continue;
            }
            let name = cells[1].trim_matches('`');
            let Some(kind) = Kind::ALL.into_iter().find(|k| k.as_str() == name) else {
                continue;
            };
            assert_eq!(
                cells[3].parse::<i32>().ok(),
                Some(kind.exit_code()),
                "README row for `{name}`: {line}"
            );
            seen.push(kind);
        }
        assert_eq!(seen, Kind::ALL, "one README row per outcome, in order");
    }
}
