//! `hello`: boots, reports the machine it found, and ends. The smoke test
//! every other run builds on.

use lab_core::report::{Scope, Status};

use super::Workload;
use crate::{println, report};

pub static HELLO: Workload = Workload {
    name: "hello",
    help: "report the memory map and CPUs, then end",
    params: &[],
    run: |_, info| {
        println!("hello from pmaplab");
        let usable: u64 = info
            .memory_map
            .iter()
            .filter(|r| r.is_usable())
            .map(|r| r.size)
            .sum();
        report::metric("mem.regions", info.memory_map.len(), "count", Scope::Global);
        report::metric("mem.usable", usable, "bytes", Scope::Global);
        Status::Ok
    },
};
