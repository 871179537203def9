//! Logic shared by the guest kernel and the host harness.
//!
//! Everything here is `no_std`, allocation-free and free of hardware access,
//! so the same code that runs in the guest is unit-tested on the host.
//! - [`report`]: the serial report protocol (the kernel writes it, the
//!   harness parses it).
//! - [`cmdline`]: the kernel command line (`workload=NAME key=value ...`)
//!   and its validation against a workload's parameter list.
//! - [`cpuset`]: CPU sets (the pmap's `pm_cpus`, IPI targets).
//! - [`physmem`]: which physical frames the frame allocator may use.
//! - [`poison`]: pool poisoning (the 0xdeadbeef fill of free pool items).
//! - [`ptmath`]: page-table index math.
//! - [`shoot`]: shootdown targets and range invalidation plans.
//! - [`sample`]: bounded samples and percentiles of measured values.
#![cfg_attr(not(test), no_std)]

pub mod cmdline;
pub mod cpuset;
pub mod physmem;
pub mod poison;
pub mod ptmath;
pub mod report;
pub mod sample;
pub mod shoot;
