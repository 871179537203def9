//! Where things live: the repository root and the paths the harness reads
//! and writes under it.
//!
//! ```text
//! <root>/kernel/                     the guest kernel (built with its own manifest)
//! <root>/variants/*.toml             one file per pmap variant
//! <root>/target/pmaplab/kernels/     one built kernel ELF per variant
//! <root>/target/pmaplab/accel-probe.toml   the `--accel auto` probe's answer
//! <root>/runs/<stamp>-<variant>-<workload>-<n>cpu/   one folder per run
//! ```

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

/// The repository the harness works on.
#[derive(Clone, Debug)]
pub struct Workspace {
    pub root: PathBuf,
    /// Where the variant, matrix and gate files are read from instead of
    /// `<root>/variants` (`--variants DIR`; the gate's mutation test
    /// points it at a temporary copy so nothing in the tree changes).
    pub variants: Option<PathBuf>,
}

impl Workspace {
    /// A workspace rooted at `root`, which must hold `kernel/Cargo.toml` and
    /// `variants/`.
    pub fn at(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        if !is_root(&root) {
            bail!(
                "{} is not a pmaplab checkout (no kernel/Cargo.toml and variants/ there)",
                root.display()
            );
        }
        Ok(Workspace {
            root,
            variants: None,
        })
    }

    /// This workspace reading its variants from `dir` (`--variants`).
    pub fn with_variants_dir(self, dir: Option<PathBuf>) -> Self {
        Workspace {
            variants: dir.or(self.variants),
            ..self
        }
    }

    /// Finds the repository: `$PMAPLAB_ROOT`, else the nearest ancestor of
    /// the current directory that is one, else the checkout this harness
    /// was compiled from.
    pub fn locate() -> Result<Self> {
        if let Some(root) = std::env::var_os("PMAPLAB_ROOT") {
            return Self::at(PathBuf::from(root));
        }
        if let Ok(cwd) = std::env::current_dir() {
            if let Some(root) = cwd.ancestors().find(|dir| is_root(dir)) {
                return Ok(Workspace {
                    root: root.to_path_buf(),
                    variants: None,
                });
            }
        }
        Self::at(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
    }

    pub fn kernel_dir(&self) -> PathBuf {
        self.root.join("kernel")
    }

    pub fn variants_dir(&self) -> PathBuf {
        self.variants
            .clone()
            .unwrap_or_else(|| self.root.join("variants"))
    }

    /// The harness's own cache: built kernels, the accelerator probe.
    pub fn cache_dir(&self) -> PathBuf {
        self.root.join("target").join("pmaplab")
    }

    /// The default parent of per-run folders.
    pub fn runs_dir(&self) -> PathBuf {
        self.root.join("runs")
    }

    /// The checkout's revision for result rows: `git rev-parse --short
    /// HEAD`, with `-dirty` when tracked files differ from it (the kernel
    /// was then built from uncommitted code); `unknown` outside git.
    pub fn git_rev(&self) -> String {
        let git = |args: &[&str]| {
            duct::cmd("git", args)
                .dir(&self.root)
                .stdin_null()
                .stdout_capture()
                .stderr_null()
                .unchecked()
                .run()
                .ok()
        };
        let Some(out) = git(&["rev-parse", "--short", "HEAD"]).filter(|o| o.status.success())
        else {
            return "unknown".into();
        };
        let rev = String::from_utf8_lossy(&out.stdout).trim().to_string();
        // `status` refreshes the index first (a bare diff-index would call
        // a freshly checked-out file dirty on its timestamps alone).
        let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
            .is_some_and(|o| o.status.success() && !o.stdout.is_empty());
        if dirty {
            format!("{rev}-dirty")
        } else {
            rev
        }
    }
}

fn is_root(dir: &Path) -> bool {
    dir.join("kernel").join("Cargo.toml").is_file() && dir.join("variants").is_dir()
}
