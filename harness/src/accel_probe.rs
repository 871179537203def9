//! The probe behind `--accel auto`.
//!
//! KVM is the fast path on a host with real hardware virtualisation, but an
//! openable /dev/kvm proves little: on some hosts it is backed by a
//! paravirtual module under which guest code runs about 1000x slower than
//! under TCG. So `auto` measures: it boots the kernel's `spin` workload (a
//! fixed compute loop) under TCG, then under KVM with TCG's time as the
//! deadline, and picks KVM only if KVM finished first. The answer is cached
//! in `target/pmaplab/accel-probe.toml`, keyed by QEMU's version, the host
//! CPU model and whether /dev/kvm opens, so the probe is paid once per host.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::accel::{Accel, AccelChoice};
use crate::outcome::{self, Outcome};
use crate::qemu::{self, Machine};
use crate::report;

/// The spin loop's length for the probe: about 0.1-0.2 s under TCG.
pub const PROBE_ITERS: u64 = 50_000_000;

/// What the probe measured, as cached.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeResult {
    /// QEMU version, host CPU model, /dev/kvm state: the answer holds
    /// while these do.
    pub key: String,
    pub accel: Accel,
    /// The probe boot's wall time under TCG.
    pub tcg_ms: u64,
    /// Under KVM; absent when KVM did not finish within TCG's time.
    pub kvm_ms: Option<u64>,
}

/// Resolves `choice` into an accelerator. For `auto`, uses the cached probe
/// result in `cache_file` if its key matches this host, else probes by
/// booting `kernel` (which must have the `spin` workload) and caches the
/// answer; probe logs go beside `cache_file`.
pub fn resolve(
    choice: AccelChoice,
    qemu: &Path,
    kernel: &Path,
    cache_file: &Path,
) -> Result<Accel> {
    resolve_explained(choice, qemu, kernel, cache_file).map(|(accel, _)| accel)
}

/// The probe result behind an `auto` choice, if one was measured (cached
/// or fresh) for this host: what a matrix records in its metadata.
pub fn cached_probe(qemu: &Path, cache_file: &Path) -> Option<ProbeResult> {
    let key = host_key(qemu).ok()?;
    read_cache(cache_file).filter(|c| c.key == key)
}

/// [`resolve`], also saying why that accelerator was chosen (for a
/// matrix's metadata: "auto: probe (cached): tcg 150 ms, kvm > 150 ms").
pub fn resolve_explained(
    choice: AccelChoice,
    qemu: &Path,
    kernel: &Path,
    cache_file: &Path,
) -> Result<(Accel, String)> {
    let asked = |accel: Accel| Ok((accel, format!("requested: {}", accel.as_str())));
    match choice {
        AccelChoice::Kvm => asked(Accel::Kvm),
        AccelChoice::Tcg => asked(Accel::Tcg),
        AccelChoice::TcgIcount => asked(Accel::TcgIcount),
        AccelChoice::TcgModel => asked(Accel::TcgModel),
        AccelChoice::Auto => {
            if !kvm_opens() {
                return Ok((Accel::Tcg, "auto: /dev/kvm does not open".into()));
            }
            // A QEMU that cannot even say its version cannot boot either:
            // leave it to the run to report that as its qemu-error.
            let Ok(key) = host_key(qemu) else {
                return Ok((
                    Accel::Tcg,
                    format!("auto: {} --version failed", qemu.display()),
                ));
            };
            if let Some(cached) = read_cache(cache_file).filter(|c| c.key == key) {
                let why = format!("auto: probe (cached): {}", cached.describe());
                return Ok((cached.accel, why));
            }
            eprintln!(
                "harness: probing KVM against TCG (once per host; cached in {})",
                cache_file.display()
            );
            let result = probe(qemu, kernel, cache_file, key)?;
            eprintln!("harness: accel probe: {}", result.describe());
            let text = toml::to_string(&result).context("cannot encode the probe result")?;
            if let Some(dir) = cache_file.parent() {
                fs::create_dir_all(dir).ok();
            }
            fs::write(cache_file, text)
                .with_context(|| format!("cannot write {}", cache_file.display()))?;
            Ok((result.accel, format!("auto: probe: {}", result.describe())))
        }
    }
}

impl ProbeResult {
    /// `tcg 150 ms, kvm > 150 ms (stopped): using tcg`.
    pub fn describe(&self) -> String {
        format!(
            "tcg {} ms, kvm {}: using {}",
            self.tcg_ms,
            self.kvm_ms.map_or_else(
                || format!("> {} ms (stopped)", self.tcg_ms),
                |ms| format!("{ms} ms")
            ),
            self.accel.as_str()
        )
    }
}

/// Whether /dev/kvm can be opened for reading and writing (what QEMU needs).
pub fn kvm_opens() -> bool {
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

/// The probe's cache key for this host.
pub fn host_key(qemu: &Path) -> Result<String> {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, model)| model.trim().to_string())
        })
        .unwrap_or_else(|| "unknown cpu".into());
    let kvm = if kvm_opens() { "kvm" } else { "no kvm" };
    Ok(format!("{} | {cpu} | {kvm}", qemu::version(qemu)?))
}

fn read_cache(file: &Path) -> Option<ProbeResult> {
    toml::from_str(&fs::read_to_string(file).ok()?).ok()
}

/// Times one `spin` boot under `accel`, killed after `timeout`. `Some` wall
/// time only if the run ended `ok`.
fn time_spin(
    qemu_bin: &Path,
    kernel: &Path,
    dir: &Path,
    accel: Accel,
    timeout: Duration,
) -> Result<(Option<Duration>, Outcome)> {
    let cfg = qemu::Config {
        qemu: qemu_bin.to_path_buf(),
        machine: Machine::Microvm,
        accel,
        cpus: 1,
        mem_mib: 128,
        kernel: kernel.to_path_buf(),
        append: format!("workload=spin iters={PROBE_ITERS}"),
        serial_log: dir.join(format!("{}.serial.log", accel.as_str())),
        plugin: None,
    };
    let boot = qemu::boot(
        &cfg,
        timeout,
        &dir.join(format!("{}.stderr", accel.as_str())),
    )?;
    let log = fs::read(&cfg.serial_log).unwrap_or_default();
    let outcome = outcome::decide(&boot, &report::parse(&log));
    Ok((outcome.is_ok().then_some(boot.wall), outcome))
}

fn probe(qemu: &Path, kernel: &Path, cache_file: &Path, key: String) -> Result<ProbeResult> {
    let dir: PathBuf = cache_file.with_extension("logs");
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let (tcg, tcg_outcome) = time_spin(qemu, kernel, &dir, Accel::Tcg, Duration::from_secs(60))?;
    let Some(tcg) = tcg else {
        anyhow::bail!(
            "the accelerator probe's TCG boot failed ({tcg_outcome}); logs in {}",
            dir.display()
        );
    };
    // KVM is only worth it if it beats TCG, so TCG's time bounds it: on a
    // host where KVM is 1000x slower this costs one TCG run, not minutes.
    let (kvm, _) = time_spin(qemu, kernel, &dir, Accel::Kvm, tcg)?;
    Ok(ProbeResult {
        key,
        accel: match kvm {
            Some(kvm) if kvm < tcg => Accel::Kvm,
            _ => Accel::Tcg,
        },
        tcg_ms: tcg.as_millis() as u64,
        kvm_ms: kvm.map(|d| d.as_millis() as u64),
    })
}
