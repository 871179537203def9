//! Logic shared by the guest kernel and the host harness.
//!
//! Everything here is `no_std`, allocation-free and free of hardware access,
//! so the same code that runs in the guest is unit-tested on the host.
//! - [`report`]: the serial report protocol (the kernel writes it, the
//!   harness parses it).
//! - [`cmdline`]: the kernel command line (`workload=NAME key=value ...`)
//!   and its validation against a workload's parameter list.
//! - [`cpuset`]: CPU sets (the pmap's `pm_cpus`, IPI targets).
//! - [`apic`]: local APIC interrupt command encoding (xAPIC and x2APIC).
//! - [`smpcfg`]: which CPUs to start, from the ACPI MADT entries.
//! - [`summary`]: min / median / p99 / max of measured samples.
//! - [`limits`]: the kernel's resource limits per process and in total.
//! - [`syscall`]: the system-call ABI between the kernel and user programs
//!   (numbers, errors, address-space layout, initial stack, shared page).
//! - [`elf`]: checking a user program's ELF image and planning its load.
//! - [`workloads`]: the workloads that are user programs, their parameters.
//! - [`physmem`]: which physical frames the frame allocator may use.
//! - [`poison`]: pool poisoning (the 0xdeadbeef fill of free pool items).
//! - [`ptmath`]: page-table index math.
//! - [`shoot`]: shootdown targets and range invalidation plans.
//! - [`sample`]: bounded samples and percentiles of measured values.
//! - [`cause`]: why a shootdown was sent (the list of causes).
//! - [`model_hint`]: what the kernel tells the memory-system model
//!   (`tcg-model`) that QEMU's plugin API cannot show it.
//! - [`protocol`]: the shootdown protocols' cores, which the kernel runs
//!   and the host model-checks (`--cfg loom`, tests/protocols/).
//! - [`chaos`]: chaos mode's seeded delays at the protocols' points
//!   (`chaos=<seed>`).
//! - [`metrics`]: the kernel's counted events, their metric names and
//!   units (the kernel reports them, the harness reads them).
#![cfg_attr(not(test), no_std)]

pub mod apic;
pub mod cause;
pub mod chaos;
pub mod cmdline;
pub mod cpuset;
pub mod elf;
pub mod limits;
pub mod metrics;
pub mod model_hint;
pub mod physmem;
pub mod poison;
pub mod protocol;
pub mod ptmath;
pub mod report;
pub mod sample;
pub mod shoot;
pub mod smpcfg;
pub mod summary;
pub mod syscall;
pub mod workloads;
