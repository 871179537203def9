//! Metadata of one matrix run (`metadata.json`): what machine, emulator and
//! toolchain produced the figures, which accelerator was used and why, and
//! which matrix file. Figures from different hosts or QEMU versions are not
//! comparable; this file is how a reader tells.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::csv::write_atomic;

/// Name of the metadata file in a results directory.
pub const METADATA_JSON: &str = "metadata.json";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// `model name` from /proc/cpuinfo ("unknown" elsewhere).
    pub host_cpu: String,
    /// Logical CPUs the host offers (available_parallelism).
    pub host_cores: usize,
    /// First line of `qemu-system-x86_64 --version`.
    pub qemu_version: String,
    /// `rustc --version`.
    pub rustc_version: String,
    /// The accelerator used (`tcg`, `tcg-icount`, `kvm`, ...).
    pub accel: String,
    /// Why it was chosen (e.g. the auto-detection's measurement).
    pub accel_reason: String,
    /// What the matrix file asked for (`auto`, `tcg`, ...), when known.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub accel_requested: String,
    /// The `auto` probe's figures (boot times under TCG and KVM), when the
    /// accelerator was chosen by the probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accel_probe: Option<crate::accel_probe::ProbeResult>,
    /// The QEMU machine model (`microvm`, `q35`).
    #[serde(default)]
    pub machine: String,
    /// The tree the kernels were built from (`git rev-parse --short HEAD`,
    /// `-dirty` with changes).
    #[serde(default)]
    pub git_rev: String,
    /// The matrix file, as given, and the SHA-256 of its contents.
    pub matrix_path: String,
    pub matrix_sha256: String,
    /// Repetitions per cell as run (the file's, or `--reps`); 0 when not
    /// recorded. The gate's completeness check expects this many.
    #[serde(default)]
    pub reps: u32,
    /// `K/N` when this directory holds one shard of the matrix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// RFC 3339 UTC; `finished` is empty until [`Metadata::finish`].
    pub started: String,
    #[serde(default)]
    pub finished: String,
    /// For a merged directory: the metadata of each shard merged into it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<Metadata>,
}

impl Metadata {
    /// Collects the host's facts now, for a matrix read from `matrix_path`
    /// run under `accel` (chosen for `accel_reason`). A fact that cannot be
    /// read is recorded as "unknown: <why>" rather than failing the matrix;
    /// only an unreadable matrix file is an error.
    pub fn collect(matrix_path: &Path, accel: &str, accel_reason: &str) -> Result<Metadata> {
        let matrix = fs::read(matrix_path)
            .with_context(|| format!("reading matrix file {}", matrix_path.display()))?;
        Ok(Metadata {
            host_cpu: host_cpu_model(),
            host_cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            qemu_version: first_line_of("qemu-system-x86_64", &["--version"]),
            rustc_version: first_line_of("rustc", &["--version"]),
            accel: accel.to_string(),
            accel_reason: accel_reason.to_string(),
            accel_requested: String::new(),
            accel_probe: None,
            machine: String::new(),
            git_rev: String::new(),
            matrix_path: matrix_path.display().to_string(),
            matrix_sha256: sha256_hex(&matrix),
            reps: 0,
            shard: None,
            started: now(),
            finished: String::new(),
            shards: Vec::new(),
        })
    }

    /// Records the end time.
    pub fn finish(&mut self) {
        self.finished = now();
    }
}

/// The current time, RFC 3339 UTC, to the second.
pub fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn host_cpu_model() -> String {
    match fs::read_to_string("/proc/cpuinfo") {
        Ok(text) => text
            .lines()
            .find_map(|l| {
                let (key, value) = l.split_once(':')?;
                (key.trim() == "model name").then(|| value.trim().to_string())
            })
            .unwrap_or_else(|| "unknown: no model name in /proc/cpuinfo".into()),
        Err(e) => format!("unknown: /proc/cpuinfo: {e}"),
    }
}

fn first_line_of(program: &str, args: &[&str]) -> String {
    let run = duct::cmd(program, args)
        .stdin_null()
        .stdout_capture()
        .stderr_null()
        .unchecked()
        .run();
    match run {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string(),
        Ok(out) => format!("unknown: {program} exited with {}", out.status),
        Err(e) => format!("unknown: cannot run {program}: {e}"),
    }
}

/// Writes `dir/metadata.json` atomically.
pub fn write_metadata(dir: &Path, meta: &Metadata) -> Result<()> {
    write_atomic(&dir.join(METADATA_JSON), |w| {
        serde_json::to_writer_pretty(&mut *w, meta)?;
        w.write_all(b"\n")?;
        Ok(())
    })
}

/// Reads `dir/metadata.json`.
pub fn read_metadata(dir: &Path) -> Result<Metadata> {
    let path = dir.join(METADATA_JSON);
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let matrix = dir.path().join("m.toml");
        fs::write(&matrix, "reps = 1\n").unwrap();
        let mut meta = Metadata::collect(&matrix, "tcg", "test fixture: no detection").unwrap();
        assert_eq!(meta.matrix_sha256, sha256_hex(b"reps = 1\n"));
        assert!(meta.host_cores >= 1);
        assert!(
            meta.rustc_version.starts_with("rustc "),
            "{}",
            meta.rustc_version
        );
        assert!(!meta.host_cpu.is_empty());
        meta.finish();
        write_metadata(dir.path(), &meta).unwrap();
        assert_eq!(read_metadata(dir.path()).unwrap(), meta);
        assert!(Metadata::collect(&dir.path().join("missing.toml"), "tcg", "").is_err());
    }
}
