//! Workloads that fail on purpose, so the harness's outcome decoding is
//! tested against the real kernel: `panic` panics, `hang` never ends.

use lab_core::cmdline::{Kind, ParamSpec};

use super::Workload;

pub static PANIC: Workload = Workload {
    name: "panic",
    help: "panic on purpose (tests the harness's panic outcome)",
    params: &[ParamSpec {
        key: "msg",
        kind: Kind::Choice(&["deliberate", "other"]),
        default: "deliberate",
        help: "message word",
    }],
    run: |params, _| {
        panic!(
            "{} panic requested by the command line",
            params.choice("msg")
        )
    },
};

pub static HANG: Workload = Workload {
    name: "hang",
    help: "spin forever (tests the harness's timeout outcome)",
    params: &[],
    run: |_, _| loop {
        core::hint::spin_loop();
    },
};
