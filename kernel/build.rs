//! Links the kernel with linker.ld (PVH entry at 1 MiB, the rest in the
//! higher half) and records which variant and features it was built with,
//! so the report's `begin` line states what actually ran.
use std::{env, fs, path::Path};

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
    // The harness names the variant it builds; a plain `cargo build` with no
    // features is the fixed pmap.
    println!("cargo:rerun-if-env-changed=PMAPLAB_VARIANT");
    let variant = env::var("PMAPLAB_VARIANT").unwrap_or_else(|_| {
        if features.is_empty() {
            "fixed".into()
        } else {
            "custom".into()
        }
    });
    let out = Path::new(&env::var("OUT_DIR").unwrap()).join("build_info.rs");
    fs::write(
        out,
        format!("pub const VARIANT: &str = {variant:?};\npub const FEATURES: &[&str] = &{features:?};\n"),
    )
    .unwrap();
}
