//! Which workloads a built kernel knows, asked of the kernel itself.
//!
//! The harness keeps no list of workloads: the kernel's workload table is
//! the truth, and it grows as workloads land. To ask it without running
//! anything, the kernel is booted with `workload=<name> pmaplab-probe=1`:
//! the kernel looks the workload up first and then checks its parameters,
//! so a workload it knows fails with "unknown parameter 'pmaplab-probe'"
//! and one it does not know with "unknown workload '<name>'", both before
//! any work (kernel/src/workloads/mod.rs, lab_core::cmdline). One boot
//! costs ~0.1 s under TCG; the answers are cached per kernel image (by its
//! SHA-256) in `target/pmaplab/workload-probe.toml`.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::accel::Accel;
use crate::kernel_build::KernelImage;
use crate::outcome::Outcome;
use crate::qemu::Machine;
use crate::results::metadata::sha256_hex;
use crate::run::{self, RunFiles, RunSpec};
use crate::workspace::Workspace;

/// The parameter no workload takes.
pub const PROBE_KEY: &str = "pmaplab-probe";

/// The cache: kernel SHA-256 -> workload name -> known.
type Cache = BTreeMap<String, BTreeMap<String, bool>>;

/// For each of `workloads`, whether `kernel` knows it. Boots the kernel
/// once per workload not already cached for this image.
pub fn known_workloads(
    ws: &Workspace,
    kernel: &KernelImage,
    workloads: &[String],
    qemu: &Path,
) -> Result<BTreeMap<String, bool>> {
    let image = fs::read(&kernel.path)
        .with_context(|| format!("reading kernel image {}", kernel.path.display()))?;
    let digest = sha256_hex(&image);
    let cache_file = ws.cache_dir().join("workload-probe.toml");
    let mut cache: Cache = fs::read_to_string(&cache_file)
        .ok()
        .and_then(|text| toml::from_str(&text).ok())
        .unwrap_or_default();
    let logs = ws.cache_dir().join("workload-probe");
    fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;
    let mut answers = BTreeMap::new();
    let mut changed = false;
    for workload in workloads {
        if let Some(&known) = cache.get(&digest).and_then(|m| m.get(workload)) {
            answers.insert(workload.clone(), known);
            continue;
        }
        let known = ask(kernel, workload, qemu, &logs)?;
        cache
            .entry(digest.clone())
            .or_default()
            .insert(workload.clone(), known);
        answers.insert(workload.clone(), known);
        changed = true;
    }
    if changed {
        let text = toml::to_string(&cache).context("cannot encode the workload probe cache")?;
        fs::write(&cache_file, text)
            .with_context(|| format!("cannot write {}", cache_file.display()))?;
    }
    Ok(answers)
}

/// Boots `kernel` once to ask whether it knows `workload`.
fn ask(kernel: &KernelImage, workload: &str, qemu: &Path, logs: &Path) -> Result<bool> {
    let spec = RunSpec {
        kernel: kernel.clone(),
        workload: workload.to_string(),
        params: vec![(PROBE_KEY.into(), "1".into())],
        cpus: 1,
        mem_mib: 128,
        machine: Machine::Microvm,
        // Only the command-line check runs, so the accelerator is moot;
        // TCG works everywhere.
        accel: Accel::Tcg,
        timeout: Duration::from_secs(30),
        qemu: qemu.to_path_buf(),
        runs_dir: logs.to_path_buf(),
    };
    let id = format!("{}.{}", kernel.variant, workload);
    let result = run::run_into(&spec, &RunFiles::named(logs, &id))?;
    if let Outcome::Failed { errors } = &result.outcome {
        let says = |text: &str| errors.iter().any(|e| e.msg.contains(text));
        if says(&format!("unknown workload '{workload}'")) {
            return Ok(false);
        }
        if says(&format!("unknown parameter '{PROBE_KEY}'")) {
            return Ok(true);
        }
    }
    bail!(
        "asking the kernel of variant '{}' whether it has workload '{workload}' gave {} \
         instead of an unknown-workload or unknown-parameter error; log {}",
        kernel.variant,
        result.outcome,
        result.serial_log.display()
    )
}
