//! `programs`: checks the user programs embedded in the kernel image.
//!
//! Parses every program's ELF image as exec will (`proc::elf`) and reports
//! its size, entry point, segments and mapped bytes; an image that does not
//! load, or a user workload whose program is missing, is an `error` record
//! and fails the run.

use lab_core::report::{Scope, Status};
use lab_core::workloads::USER_WORKLOADS;

use super::Workload;
use crate::proc::{elf, programs::PROGRAMS};
use crate::{println, report};

pub static PROGRAMS_CHECK: Workload = Workload {
    name: "programs",
    help: "parse every embedded user program and report its size, entry and segments",
    params: &[],
    run: |_, _| {
        let mut status = Status::Ok;
        report::metric("user.programs", PROGRAMS.len(), "count", Scope::Global);
        for (name, image) in PROGRAMS {
            let metric = |what: &str, value: u64, unit: &str| {
                let mut buf = MetricName::new();
                let _ = core::fmt::write(&mut buf, format_args!("user.program.{name}.{what}"));
                report::metric(buf.as_str(), value, unit, Scope::Global);
            };
            metric("bytes", image.len() as u64, "bytes");
            match elf::plan(name) {
                Ok(plan) => {
                    println!(
                        "program {name}: {} bytes, entry {:#x}",
                        image.len(),
                        plan.entry
                    );
                    for s in plan.segments() {
                        println!(
                            "  {:#x}..{:#x} prot {:#x} file {} bytes",
                            s.vaddr,
                            s.vaddr + s.memsz,
                            s.prot.0,
                            s.file.len()
                        );
                    }
                    metric("entry", plan.entry, "address");
                    metric("segments", plan.len() as u64, "count");
                    metric("mapped", plan.mapped_bytes(), "bytes");
                }
                Err(err) => {
                    report::error("elf", format_args!("program {name}: {err}"));
                    status = Status::Failed;
                }
            }
        }
        for w in USER_WORKLOADS {
            if crate::proc::programs::find(w.program).is_none() {
                report::error(
                    "elf",
                    format_args!(
                        "workload {} needs program {}, which is not embedded",
                        w.name, w.program
                    ),
                );
                status = Status::Failed;
            }
        }
        status
    },
};

/// A metric name built on the stack (the kernel has no heap here).
struct MetricName {
    buf: [u8; 64],
    len: usize,
}

impl MetricName {
    fn new() -> Self {
        MetricName {
            buf: [0; 64],
            len: 0,
        }
    }
    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("user.program.bad-name")
    }
}

impl core::fmt::Write for MetricName {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(core::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}
