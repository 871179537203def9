//! Links the kernel with linker.ld (PVH entry at 1 MiB, the rest in the
//! higher half), records which features it was built with, so the
//! report's `begin` line states what actually ran, and builds the user
//! programs (kernel/user) and embeds them (`user_programs.rs`).
use std::{env, fs, path::Path, process::Command};

fn main() {
    let dir = env::var("CARGO_MANIFEST_DIR").unwrap();
    println!("cargo:rustc-link-arg-bins=-T{dir}/linker.ld");
    println!("cargo:rustc-link-arg-bins=--no-pie");
    println!("cargo:rerun-if-changed=linker.ld");

    // Cargo sets CARGO_FEATURE_<NAME> for each enabled feature.
    let mut features: Vec<String> = env::vars()
        .filter_map(|(k, _)| {
            k.strip_prefix("CARGO_FEATURE_")
                .map(|f| f.to_lowercase().replace('_', "-"))
        })
        .collect();
    features.sort();
    // The variant's name is not built in: it comes on the command line
    // (`variant=`, kernel/src/report.rs), so variants with the same
    // features share one build.
    let out = Path::new(&env::var("OUT_DIR").unwrap()).join("build_info.rs");
    fs::write(
        out,
        format!("pub const FEATURES: &[&str] = &{features:?};\n"),
    )
    .unwrap();

    build_user_programs(Path::new(&dir));
}

/// The target the user programs are built for (as the kernel).
const USER_TARGET: &str = "x86_64-unknown-none";
/// Their code generation flags: linked at fixed addresses by user.ld, so no
/// position-independent code; frame pointers for readable fault reports;
/// no symbol table: the kernel embeds each ELF whole and nothing reads the
/// user programs' symbols (their names carry crate hashes: kernel/Cargo.toml
/// says why those must not depend on where the checkout is).
const USER_RUSTFLAGS: &[&str] = &[
    "-Crelocation-model=static",
    "-Cforce-frame-pointers=yes",
    "-Cstrip=symbols",
];

/// [`USER_RUSTFLAGS`] and the kernel build's own `--remap-path-prefix`
/// flags (the harness passes them, harness/src/kernel_build.rs: source
/// paths in panic messages would make the images depend on where the
/// checkout is).
fn user_rustflags() -> Vec<String> {
    let kernel = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    USER_RUSTFLAGS
        .iter()
        .map(|f| f.to_string())
        .chain(
            kernel
                .split('\x1f')
                .filter(|f| f.starts_with("--remap-path-prefix="))
                .map(str::to_string),
        )
        .collect()
}

/// Builds kernel/user with a nested `cargo build --release` and writes
/// `$OUT_DIR/user_programs.rs`: `PROGRAMS`, a table of (name, ELF image)
/// for every `[[bin]]` of kernel/user/Cargo.toml, included with
/// `include_bytes!`.
///
/// The nested build has its own target directory (`<target>/user`, next to
/// the kernel's), so it never waits on the lock the outer build holds, and
/// it is incremental across kernel builds and variants. Variables the outer
/// cargo sets for build scripts that would change what the inner one does
/// (its flags, target dir, jobserver, clippy's wrapper, which would make it
/// skip codegen) are removed.
fn build_user_programs(kernel_dir: &Path) {
    let user_dir = kernel_dir.join("user");
    let lab_core = kernel_dir.join("lab-core");
    for path in [
        user_dir.join("src"),
        user_dir.join("Cargo.toml"),
        kernel_dir.join("Cargo.lock"),
        user_dir.join("build.rs"),
        user_dir.join("user.ld"),
        lab_core.join("src"),
        lab_core.join("Cargo.toml"),
    ] {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");
    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(|d| kernel_dir.join(d))
        .unwrap_or_else(|| kernel_dir.join("target"))
        .join("user");

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&user_dir)
        .args([
            "build",
            "--release",
            "--target",
            USER_TARGET,
            // The workspace's release profile is the kernel's (debug = 1):
            // the embedded programs need no debuginfo.
            "--config",
            "profile.release.debug=false",
            "--target-dir",
        ])
        .arg(&target_dir)
        .env("CARGO_ENCODED_RUSTFLAGS", user_rustflags().join("\x1f"));
    for var in [
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_TARGET_DIR",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "MFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(var);
    }
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("could not run cargo to build kernel/user: {e}"));
    if !output.status.success() {
        panic!(
            "building the user programs (kernel/user) failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    let bin_dir = target_dir.join(USER_TARGET).join("release");
    let manifest = fs::read_to_string(user_dir.join("Cargo.toml")).unwrap();
    let mut table = String::from(
        "/// Every user program, built from kernel/user: (name, ELF image).\n\
         pub static PROGRAMS: &[(&str, &[u8])] = &[\n",
    );
    for name in bin_names(&manifest) {
        let elf = bin_dir.join(&name);
        assert!(
            elf.is_file(),
            "user program {name} missing at {}",
            elf.display()
        );
        table.push_str(&format!(
            "    ({name:?}, include_bytes!({:?})),\n",
            elf.display().to_string()
        ));
    }
    table.push_str("];\n");
    let out = Path::new(&env::var("OUT_DIR").unwrap()).join("user_programs.rs");
    fs::write(out, table).unwrap();
}

/// The `name`s of the `[[bin]]` tables of a Cargo.toml (a line scan: the
/// manifest is ours and plain, so a TOML parser would be overkill here).
fn bin_names(manifest: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_bin = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
        } else if in_bin {
            if let Some(value) = line.strip_prefix("name").map(str::trim_start) {
                if let Some(value) = value.strip_prefix('=') {
                    names.push(value.trim().trim_matches('"').to_string());
                }
            }
        }
    }
    names
}
