//! The memory-system model (`--accel tcg-model`), from the harness's side:
//! building its QEMU plugin, finding the kernel's doorbell, and reading the
//! plugin's figures back into a run's report.
//!
//! What the model is, and what it assumes, is in model/README.md; the
//! hint protocol between kernel and plugin in `lab_core::model_hint`. The
//! plugin writes report `metric` lines (`lab_core::report`), every name
//! under `model.`, to a file of the run's own; [`read_metrics`] adds them to
//! the run's report, so they sit beside the guest's counts in the results
//! but never under a guest metric's name.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};

use crate::qemu::Plugin;
use crate::report::Metric;
use crate::workspace::Workspace;

/// The plugin's crate (model/plugin) and the file cargo makes of it.
const PLUGIN_PACKAGE: &str = "lab-model-plugin";
const PLUGIN_FILE: &str = "libpmaplab_model.so";

/// Every metric the plugin writes starts with this.
pub const PREFIX: &str = "model.";
/// The plugin's last metric: a file without it was cut short.
pub const COMPLETE: &str = "model.complete";

/// The built plugin and the profiles it models, found once per process.
#[derive(Clone, Debug)]
pub struct Setup {
    pub lib: PathBuf,
    pub profiles: Vec<PathBuf>,
}

/// The plugin built from this checkout and its profiles
/// (model/profiles/*.toml, by name). Built on first use (cargo's
/// incremental build: well under a second when nothing changed); an error
/// names what failed and is repeated to every caller.
pub fn setup() -> Result<Setup> {
    static SETUP: OnceLock<Result<Setup, String>> = OnceLock::new();
    SETUP
        .get_or_init(|| {
            Workspace::locate()
                .and_then(|ws| build(&ws))
                .map_err(|e| format!("{e:#}"))
        })
        .clone()
        .map_err(|e| anyhow::anyhow!("the memory-system model (tcg-model): {e}"))
}

/// Builds the plugin in `target/pmaplab/model/` (its own target directory,
/// so it never waits on or disturbs the harness's build) and lists the
/// profiles.
pub fn build(ws: &Workspace) -> Result<Setup> {
    let target_dir = ws.cache_dir().join("model");
    let program = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = duct::cmd(
        program,
        [
            "build".as_ref(),
            "--release".as_ref(),
            "--quiet".as_ref(),
            "-p".as_ref(),
            PLUGIN_PACKAGE.as_ref(),
            "--manifest-path".as_ref(),
            ws.root.join("Cargo.toml").as_os_str(),
            "--target-dir".as_ref(),
            target_dir.as_os_str(),
        ],
    )
    .dir(&ws.root)
    .env_remove("CARGO_TARGET_DIR")
    .env_remove("CARGO_BUILD_TARGET")
    .stdin_null()
    .stdout_capture()
    .stderr_capture()
    .unchecked()
    .run()
    .context("cannot start cargo to build the model's plugin (is cargo on PATH?)")?;
    if !out.status.success() {
        bail!(
            "building the model's plugin ({PLUGIN_PACKAGE}) failed: cargo {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let lib = target_dir.join("release").join(PLUGIN_FILE);
    if !lib.is_file() {
        bail!(
            "cargo built {PLUGIN_PACKAGE} but {} is not there",
            lib.display()
        );
    }
    Ok(Setup {
        lib,
        profiles: profiles(&ws.root.join("model").join("profiles"))?,
    })
}

/// The cost profiles in `dir`, sorted by file name; at least one.
pub fn profiles(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list the model's profiles in {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    found.sort();
    if found.is_empty() {
        bail!("no cost profile (*.toml) in {}", dir.display());
    }
    Ok(found)
}

/// The virtual address of the kernel's doorbell page
/// (`lab_core::model_hint::DOORBELL_SYMBOL`, unmangled), from the ELF's
/// symbol table.
pub fn doorbell(kernel: &Path) -> Result<u64> {
    let want = lab_core::model_hint::DOORBELL_SYMBOL;
    crate::symbols::Symbolizer::from_elf(kernel)?
        .symbols()
        .iter()
        .find(|s| s.name == want)
        .map(|s| s.addr)
        .with_context(|| {
            format!(
                "{} has no symbol {want}: a kernel without the model's doorbell (built before it?)",
                kernel.display()
            )
        })
}

/// The plugin arguments for one boot of `kernel`, writing to `out`.
pub fn plugin_for(kernel: &Path, out: &Path) -> Result<Plugin> {
    let setup = setup()?;
    Ok(Plugin {
        lib: setup.lib,
        profiles: setup.profiles,
        out: out.to_path_buf(),
        doorbell: doorbell(kernel)?,
    })
}

/// Reads the plugin's output file. `Ok(None)` when there is none (QEMU
/// never got to exit normally: a timeout, a kill); an error when it is
/// there but not what the plugin writes (a line that is no metric, a name
/// outside `model.`, no closing [`COMPLETE`]).
pub fn read_metrics(path: &Path) -> Result<Option<Vec<Metric>>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut metrics = Vec::new();
    let mut complete = false;
    for (n, line) in text.lines().enumerate() {
        let what = || format!("{} line {}", path.display(), n + 1);
        let record =
            lab_core::report::parse_line(line).map_err(|e| anyhow::anyhow!("{}: {e}", what()))?;
        let Some(lab_core::report::Record::Metric {
            name,
            value,
            unit,
            scope,
        }) = record
        else {
            bail!("{}: not a metric line: {line:?}", what());
        };
        if !name.starts_with(PREFIX) {
            bail!("{}: metric '{name}' is not under '{PREFIX}'", what());
        }
        complete |= name == COMPLETE;
        metrics.push(Metric::new(name, value, unit, scope));
    }
    if !complete {
        bail!(
            "{} ends without {COMPLETE}: the plugin was cut short",
            path.display()
        );
    }
    Ok(Some(metrics))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_the_plugin_writes_and_refuses_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m");
        assert!(read_metrics(&p).unwrap().is_none());
        std::fs::write(
            &p,
            "@pl metric name=model.a.coh.misses value=3 unit=count cpu=1\n\
             @pl metric name=model.complete value=1 unit=count\n",
        )
        .unwrap();
        let m = read_metrics(&p).unwrap().unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].name, "model.a.coh.misses");
        std::fs::write(&p, "@pl metric name=model.a value=1 unit=count\n").unwrap();
        assert!(format!("{:#}", read_metrics(&p).unwrap_err()).contains("cut short"));
        std::fs::write(&p, "@pl metric name=ipi.sent value=1 unit=count\n").unwrap();
        assert!(format!("{:#}", read_metrics(&p).unwrap_err()).contains("not under"));
        std::fs::write(&p, "garbage\n").unwrap();
        assert!(format!("{:#}", read_metrics(&p).unwrap_err()).contains("not a metric"));
    }
}
