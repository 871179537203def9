//! The `build` verb: one kernel ELF per variant.
//!
//! `cargo build --release --features <the variant's>` runs in `kernel/`
//! (whose .cargo/config.toml sets the target and the static relocation
//! model). The build depends on the features alone (the variant's name
//! reaches the kernel on its command line, harness/src/run.rs), and
//! cargo keeps each feature set's build apart, so the cache is cargo's
//! own: an unchanged variant rebuilds in well under a second, and so does
//! one of the same features under another name (the gate self-test's). The result is copied
//! to `target/pmaplab/kernels/<variant>-<hash of its features>.elf`, so a
//! run (or a matrix) keeps booting the variant it built even after another
//! variant is built over cargo's output, and a variant file that changes
//! its features (the gate's mutation test's `fixed`) never replaces the
//! image a concurrent run of the real one boots.
//!
//! Locking: one harness builds at a time (a file lock on
//! `target/pmaplab/build.lock`), since cargo's single output path is shared
//! by every variant between its build and our copy.

use std::fs::{self, File};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::variants::Variant;
use crate::workspace::Workspace;

/// The kernel's target triple (also in kernel/.cargo/config.toml).
pub const TARGET: &str = "x86_64-unknown-none";

/// A built kernel, ready to boot.
#[derive(Clone, Debug)]
pub struct KernelImage {
    pub variant: String,
    pub features: Vec<String>,
    /// The per-variant copy of the ELF.
    pub path: PathBuf,
}

/// How much of cargo's output to show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// Pass cargo's stderr through (the `build` verb).
    Show,
    /// Keep it unless the build fails (verbs that build on the way to
    /// something else: cargo replays a crate's warnings on every no-op
    /// build, which would bury the run's own output).
    OnFailure,
}

/// The checkout's root and cargo's home, where they appear in the image,
/// as fixed names: `--config` adds these rustflags to the kernel's own
/// (kernel/.cargo/config.toml; cargo joins the arrays), and the kernel's
/// build script passes the same to the user programs' build.
///
/// Why: a panic's location names its source file, by absolute path for
/// every crate but the kernel itself (lab-core, the registry's), and those
/// strings sit in .rodata. A checkout at another path then moved every
/// static after them, and with them the cache lines the memory-system
/// model sees shared: one tree gave modeled figures 28 % apart in two
/// directories of one machine (scoreboard-padded, shoot-storm, 4 CPUs,
/// tcg-model: 11.5 M and 14.7 M shootdown cycles), though tcg-icount is
/// otherwise bit for bit. With the paths fixed (and the user programs
/// stripped, kernel/build.rs), two checkouts give the same loaded code and
/// data and the same modeled figures.
fn remap_config(root: &std::path::Path) -> String {
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    let mut flags = vec![format!("--remap-path-prefix={}=pmaplab", root.display())];
    if let Some(home) = cargo_home() {
        flags.push(format!("--remap-path-prefix={}=cargo-home", home.display()));
    }
    let quoted: Vec<String> = flags.iter().map(|f| format!("{f:?}")).collect();
    format!("target.{TARGET}.rustflags=[{}]", quoted.join(", "))
}

/// Cargo's home: `$CARGO_HOME`, else `~/.cargo` (where the registry's
/// sources are unpacked).
pub fn cargo_home() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
}

/// Builds `variant` and returns its ELF. A failed build is an error naming
/// the variant, with cargo's output.
pub fn build(ws: &Workspace, variant: &Variant, output: Output) -> Result<KernelImage> {
    let cache = ws.cache_dir();
    let kernels = cache.join("kernels");
    fs::create_dir_all(&kernels).with_context(|| format!("cannot create {}", kernels.display()))?;
    let lock_path = cache.join("build.lock");
    let lock = File::create(&lock_path)
        .with_context(|| format!("cannot create {}", lock_path.display()))?;
    lock.lock()
        .with_context(|| format!("cannot lock {}", lock_path.display()))?;

    let kernel_dir = ws.kernel_dir();
    let target_dir = kernel_dir.join("target");
    let program = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut args: Vec<std::ffi::OsString> = ["build", "--release", "--quiet", "--target", TARGET]
        .iter()
        .map(Into::into)
        .collect();
    args.push("--manifest-path".into());
    args.push(kernel_dir.join("Cargo.toml").into());
    args.push("--target-dir".into());
    args.push(target_dir.clone().into());
    if !variant.features.is_empty() {
        args.push("--features".into());
        args.push(variant.features.join(",").into());
    }
    args.push("--config".into());
    args.push(remap_config(&ws.root).into());
    let mut cargo = duct::cmd(program, args)
        .dir(&kernel_dir)
        // Flags meant for the host build (a caller's RUSTFLAGS, e.g. CI's
        // -D warnings) would replace the kernel's own target rustflags
        // (static relocation model) and break the image.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .stdin_null()
        .unchecked();
    if output == Output::OnFailure {
        cargo = cargo.stdout_capture().stderr_capture();
    }
    let result = cargo.run().with_context(|| {
        format!(
            "cannot start cargo to build variant '{}' (is cargo on PATH?)",
            variant.name
        )
    })?;
    let status = result.status;
    if !status.success() {
        if output == Output::OnFailure {
            eprint!("{}", String::from_utf8_lossy(&result.stderr));
        }
        bail!(
            "building the kernel for variant '{}' (features: {}) failed: cargo {status}",
            variant.name,
            if variant.features.is_empty() {
                "none".into()
            } else {
                variant.features.join(",")
            }
        );
    }

    let built = target_dir.join(TARGET).join("release").join("kernel");
    let features_hash = variant
        .features
        .join(",")
        .bytes()
        .fold(0x811c_9dc5u32, |h, b| {
            (h ^ b as u32).wrapping_mul(0x0100_0193)
        });
    let dest = kernels.join(format!("{}-{features_hash:08x}.elf", variant.name));
    // Copy then rename, so a concurrent run never boots a half-written file.
    let tmp = kernels.join(format!(".{}.elf.tmp{}", variant.name, std::process::id()));
    fs::copy(&built, &tmp)
        .with_context(|| format!("cannot copy {} to {}", built.display(), tmp.display()))?;
    fs::rename(&tmp, &dest)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), dest.display()))?;
    drop(lock);
    Ok(KernelImage {
        variant: variant.name.clone(),
        features: variant.features.clone(),
        path: dest,
    })
}
