//! Variants: `variants/*.toml`, one file per pmap variant.
//!
//! A variant names a set of the kernel's Cargo features (the small,
//! feature-gated differences in the pmap) and says where it comes from and
//! what it should show. The schema (every field required except `features`):
//!
//! ```toml
//! name = "fixed"                       # must match the file name
//! role = "protocol"                    # what it is for: see [`Role`]
//! description = "one line for `harness list`"
//! features = []                        # kernel Cargo features
//! expect = "what a run of it should show"
//!
//! [provenance]
//! system = "OpenBSD"
//! file = "sys/arch/amd64/amd64/pmap.c"
//! revision = "1.56"
//! ```
//!
//! Features are checked against the `[features]` table of
//! `kernel/Cargo.toml`, so a typo is an error naming the file and field
//! rather than a kernel silently built without it.
//!
//! The `role` is the one home of every list of variants by kind: the gate
//! self-test's techniques, the mutants' default controls, the variants the
//! techniques' table and the shootdown tests must cover are all derived
//! from it ([`with_role`]), and `lists_derived_from_roles_agree` fails when
//! a list kept elsewhere disagrees.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

use crate::workspace::Workspace;

/// One variant file.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    pub name: String,
    /// Absent only in variant files from before roles existed (an older
    /// revision that `harness compare` builds and runs): read as
    /// [`Role::Unstated`], in no derived list. This tree's own files must
    /// each state one (`lists_derived_from_roles_agree`).
    #[serde(default)]
    pub role: Role,
    pub description: String,
    #[serde(default)]
    pub features: Vec<String>,
    pub provenance: Provenance,
    pub expect: String,
}

/// What a variant is for in the lab.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A correct shootdown protocol, the base the others are measured
    /// against and the mutants break: `fixed` (OpenBSD's global slot),
    /// `scoreboard`, `scoreboard-padded` (FreeBSD D25510), `dfly-batch`.
    Protocol,
    /// A technique published since the seeds, beside its protocol in
    /// results/TECHNIQUES.md, with a gate rule stating its mechanism.
    Technique,
    /// A seed's bug, reproduced: `openbsd-2010` and its two halves, and
    /// D32569's first diff (`shared-page-counted`, the early return
    /// nullified).
    Bug,
    /// A seed's own correct state that is neither a protocol nor a
    /// technique: FreeBSD D32569's tree before the diff, the diff as
    /// landed, and the review's idea (`freebsd-before`,
    /// `shared-page-opt`, `dying-no-ipi`).
    Seed,
    /// A negative control, wrong on purpose so that an oracle can be
    /// seen to catch it (`lost-shootdown`).
    Control,
    /// A mutant of `variants/mutants/` (crate::mutants): never in
    /// `variants/` itself.
    Mutant,
    /// No `role` line: a file from an older revision (see
    /// [`Variant::role`]); never this tree's.
    #[default]
    Unstated,
}

impl Role {
    /// Whether the variant is correct: its runs must pass every oracle
    /// (the mutants' controls are drawn from these).
    pub fn is_correct(self) -> bool {
        matches!(self, Role::Protocol | Role::Technique | Role::Seed)
    }
}

/// The names of the variants of `all` with role `role`, in `all`'s order.
pub fn with_role(all: &[Variant], role: Role) -> Vec<String> {
    all.iter()
        .filter(|v| v.role == role)
        .map(|v| v.name.clone())
        .collect()
}

/// Where a variant's code comes from.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    pub system: String,
    pub file: String,
    pub revision: String,
}

/// What is wrong with a variant file, or with a request for a variant.
#[derive(Debug, Error)]
pub enum VariantError {
    #[error("{}: cannot read: {source}", file.display())]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {}", file.display(), message.trim_end())]
    Malformed { file: PathBuf, message: String },
    #[error("{}: field `{field}`: {message}", file.display())]
    BadField {
        file: PathBuf,
        field: &'static str,
        message: String,
    },
    #[error("{}: field `features`: unknown kernel feature '{feature}' (the [features] table of {} has: {known})", file.display(), manifest.display())]
    UnknownFeature {
        file: PathBuf,
        feature: String,
        manifest: PathBuf,
        known: String,
    },
    #[error("no variant named '{name}' in {} (known: {known})", dir.display())]
    NoSuchVariant {
        name: String,
        dir: PathBuf,
        known: String,
    },
}

/// The feature names declared in the `[features]` table of the kernel's
/// Cargo.toml at `manifest`.
pub fn kernel_features(manifest: &Path) -> Result<BTreeSet<String>, VariantError> {
    let text = fs::read_to_string(manifest).map_err(|source| VariantError::Read {
        file: manifest.to_path_buf(),
        source,
    })?;
    let table: toml::Table =
        text.parse()
            .map_err(|e: toml::de::Error| VariantError::Malformed {
                file: manifest.to_path_buf(),
                message: e.to_string(),
            })?;
    match table.get("features") {
        None => Ok(BTreeSet::new()),
        Some(toml::Value::Table(features)) => Ok(features.keys().cloned().collect()),
        Some(_) => Err(VariantError::BadField {
            file: manifest.to_path_buf(),
            field: "features",
            message: "is not a table".into(),
        }),
    }
}

/// Parses the text of variant file `file` and checks it: the name is the
/// file's stem and a plain word, every feature is one the kernel declares
/// (`known`). Pure, so it is tested without files.
pub fn parse(
    file: &Path,
    text: &str,
    known: &BTreeSet<String>,
    manifest: &Path,
) -> Result<Variant, VariantError> {
    let variant: Variant = toml::from_str(text).map_err(|e| VariantError::Malformed {
        file: file.to_path_buf(),
        message: e.to_string(),
    })?;
    let bad = |field, message: String| VariantError::BadField {
        file: file.to_path_buf(),
        field,
        message,
    };
    // At most 64: the kernel takes the name on its command line
    // (lab_core::cmdline's Kind::Name).
    if variant.name.is_empty()
        || variant.name.len() > 64
        || !variant
            .name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(bad(
            "name",
            format!(
                "'{}' is not a variant name (1 to 64 lower-case letters, digits and '-')",
                variant.name
            ),
        ));
    }
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    if variant.name != stem {
        return Err(bad(
            "name",
            format!(
                "'{}' differs from the file name '{stem}.toml'",
                variant.name
            ),
        ));
    }
    if variant.description.trim().is_empty() {
        return Err(bad("description", "is empty".into()));
    }
    if variant.role == Role::Mutant {
        return Err(bad(
            "role",
            "'mutant' belongs in variants/mutants/ (harness mutants), not among the variants a user measures".into(),
        ));
    }
    for feature in &variant.features {
        if !known.contains(feature) {
            let known = if known.is_empty() {
                "none".to_string()
            } else {
                known.iter().cloned().collect::<Vec<_>>().join(", ")
            };
            return Err(VariantError::UnknownFeature {
                file: file.to_path_buf(),
                feature: feature.clone(),
                manifest: manifest.to_path_buf(),
                known,
            });
        }
    }
    Ok(variant)
}

/// Reads and checks one variant file.
pub fn load_file(ws: &Workspace, file: &Path) -> Result<Variant, VariantError> {
    let manifest = ws.kernel_dir().join("Cargo.toml");
    let known = kernel_features(&manifest)?;
    let text = fs::read_to_string(file).map_err(|source| VariantError::Read {
        file: file.to_path_buf(),
        source,
    })?;
    let variant = parse(file, &text, &known, &manifest)?;
    // The kernel's test-only features (`harness gate --self-test` plants them in
    // a temporary variants directory) never belong to a variant of the tree.
    if ws.variants.is_none() {
        if let Some(f) = variant
            .features
            .iter()
            .find(|f| f.starts_with(TEST_ONLY_FEATURE_PREFIX))
        {
            return Err(VariantError::BadField {
                file: file.to_path_buf(),
                field: "features",
                message: format!(
                    "'{f}' is a test-only kernel feature (the gate's mutation test); no variant of the tree may use it"
                ),
            });
        }
    }
    Ok(variant)
}

/// Kernel features that exist only for the gate's mutation test.
pub const TEST_ONLY_FEATURE_PREFIX: &str = "gate-selftest-";

/// Every variant in `variants/`, by name. Any bad file is an error: a
/// matrix must not quietly skip a variant.
pub fn load_all(ws: &Workspace) -> Result<Vec<Variant>, VariantError> {
    let dir = ws.variants_dir();
    let entries = fs::read_dir(&dir).map_err(|source| VariantError::Read {
        file: dir.clone(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && !is_lab_file(p))
        .collect();
    files.sort();
    files.iter().map(|f| load_file(ws, f)).collect()
}

/// variants/ also holds the matrix files (`matrix*.toml`) and the gate
/// rules (`gates.toml`); they sit beside the variants they name but are not
/// variants themselves.
fn is_lab_file(path: &Path) -> bool {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    stem == "gates" || stem == "matrix" || stem.starts_with("matrix-")
}

/// The variant called `name` (`variants/<name>.toml`).
pub fn load(ws: &Workspace, name: &str) -> Result<Variant, VariantError> {
    let dir = ws.variants_dir();
    let file = dir.join(format!("{name}.toml"));
    if !name.contains(['/', '\\']) && file.is_file() {
        return load_file(ws, &file);
    }
    let known = match load_all(ws) {
        Ok(all) => all
            .into_iter()
            .map(|v| v.name)
            .collect::<Vec<_>>()
            .join(", "),
        Err(_) => "unreadable".into(),
    };
    Err(VariantError::NoSuchVariant {
        name: name.to_string(),
        dir,
        known,
    })
}

/// What `harness list` prints: one block per variant, its name and Cargo
/// features on the first line (features aligned, "(none)" for the default
/// build), then the description and the provenance indented under it, so
/// long descriptions stay readable in an 80-column terminal.
pub fn listing(all: &[Variant]) -> String {
    use std::fmt::Write;
    let width = all.iter().map(|v| v.name.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (i, v) in all.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let features = if v.features.is_empty() {
            "(none)".to_string()
        } else {
            v.features.join(" ")
        };
        let p = &v.provenance;
        let _ = writeln!(out, "{:<width$}  features: {features}", v.name);
        let _ = writeln!(out, "    {}", v.description);
        let _ = writeln!(out, "    from: {}, {}, {}", p.system, p.file, p.revision);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_shows_name_features_description() {
        let mut a: Variant = toml::from_str(GOOD).unwrap();
        let mut b = a.clone();
        a.features.clear();
        b.name = "shared-page-opt".into();
        b.features = vec!["count-top-level".into(), "unmap-shared-page".into()];
        let text = listing(&[a, b]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "fixed            features: (none)");
        assert_eq!(lines[1], "    the fix");
        assert!(lines[2].starts_with("    from: OpenBSD, "));
        assert_eq!(lines[3], "");
        assert_eq!(
            lines[4],
            "shared-page-opt  features: count-top-level unmap-shared-page"
        );
    }

    const GOOD: &str = r#"
name = "fixed"
role = "protocol"
description = "the fix"
features = ["a"]
expect = "few IPIs"
[provenance]
system = "OpenBSD"
file = "sys/arch/amd64/amd64/pmap.c"
revision = "1.56"
"#;

    fn known() -> BTreeSet<String> {
        ["a".to_string(), "b".to_string()].into()
    }

    fn check(text: &str) -> Result<Variant, VariantError> {
        parse(
            Path::new("variants/fixed.toml"),
            text,
            &known(),
            Path::new("kernel/Cargo.toml"),
        )
    }

    fn error(text: &str) -> String {
        check(text).unwrap_err().to_string()
    }

    #[test]
    fn parses_a_good_file() {
        let v = check(GOOD).unwrap();
        assert_eq!(v.name, "fixed");
        assert_eq!(v.features, vec!["a"]);
        assert_eq!(v.provenance.revision, "1.56");
    }

    #[test]
    fn unknown_feature_names_file_field_and_feature() {
        let e = error(&GOOD.replace(r#"["a"]"#, r#"["a", "nope"]"#));
        assert!(e.contains("variants/fixed.toml"), "{e}");
        assert!(e.contains("`features`"), "{e}");
        assert!(e.contains("'nope'"), "{e}");
        assert!(e.contains("a, b"), "{e}");
    }

    #[test]
    fn a_role_must_be_known_and_an_older_file_without_one_still_reads() {
        // A file from before roles (an older revision compare runs).
        assert_eq!(
            check(&GOOD.replace("role = \"protocol\"\n", ""))
                .unwrap()
                .role,
            Role::Unstated
        );
        let e = error(&GOOD.replace("\"protocol\"", "\"optimisation\""));
        assert!(e.contains("variants/fixed.toml"), "{e}");
        assert!(e.contains("optimisation") && e.contains("technique"), "{e}");
        let e = error(&GOOD.replace("\"protocol\"", "\"mutant\""));
        assert!(
            e.contains("`role`") && e.contains("variants/mutants/"),
            "{e}"
        );
        assert_eq!(
            check(&GOOD.replace("\"protocol\"", "\"bug\""))
                .unwrap()
                .role,
            Role::Bug
        );
    }

    #[test]
    fn missing_field_names_file_and_field() {
        let e = error(&GOOD.replace("description = \"the fix\"\n", ""));
        assert!(e.contains("variants/fixed.toml"), "{e}");
        assert!(e.contains("description"), "{e}");
        let e = error(&GOOD.replace("revision = \"1.56\"\n", ""));
        assert!(e.contains("revision"), "{e}");
    }

    #[test]
    fn malformed_file_names_file_and_line() {
        let e = error("name = \"fixed\"\ndescription = [unclosed\n");
        assert!(e.contains("variants/fixed.toml"), "{e}");
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn wrong_type_and_unknown_field_are_named() {
        let e = error(&GOOD.replace(r#"features = ["a"]"#, "features = 3"));
        assert!(e.contains("features"), "{e}");
        let e = error(&GOOD.replace("expect =", "colour = \"red\"\nexpect ="));
        assert!(e.contains("colour"), "{e}");
    }

    #[test]
    fn name_must_match_file_and_be_a_word() {
        let e = error(&GOOD.replace("name = \"fixed\"", "name = \"other\""));
        assert!(e.contains("`name`") && e.contains("other"), "{e}");
        let e = error(&GOOD.replace("name = \"fixed\"", "name = \"Fixed Pmap\""));
        assert!(e.contains("`name`"), "{e}");
    }

    #[test]
    fn the_repository_variants_are_valid() {
        let ws = Workspace::at(Path::new(env!("CARGO_MANIFEST_DIR")).join("..")).unwrap();
        let all = load_all(&ws).unwrap();
        assert!(all.iter().any(|v| v.name == "fixed"));
        let e = load(&ws, "no-such-variant").unwrap_err().to_string();
        assert!(e.contains("no-such-variant") && e.contains("fixed"), "{e}");
    }

    /// Every list of variants by kind is derived from the roles; this
    /// fails when a variant states no role or a
    /// list kept elsewhere disagrees with them.
    #[test]
    fn lists_derived_from_roles_agree() {
        use std::collections::BTreeSet as Set;
        let ws = Workspace::at(Path::new(env!("CARGO_MANIFEST_DIR")).join("..")).unwrap();
        let all = load_all(&ws).unwrap();
        for v in &all {
            assert_ne!(
                v.role,
                Role::Unstated,
                "variants/{}.toml states no role",
                v.name
            );
        }
        let set = |v: Vec<String>| v.into_iter().collect::<Set<String>>();
        let role = |r: Role| set(with_role(&all, r));
        let techniques = role(Role::Technique);
        let protocols = role(Role::Protocol);
        assert!(techniques.contains("early-ack") && protocols.contains("fixed"));
        assert_eq!(role(Role::Control), set(vec!["lost-shootdown".into()]));

        // The gate self-test plants every technique a rule states a
        // mechanism for: all but pcid, whose runs end unsupported under
        // TCG (no PCID), so no rule can be stated for it.
        let rules: toml::Table =
            toml::from_str(&fs::read_to_string(ws.variants_dir().join("gates.toml")).unwrap())
                .unwrap();
        let (planted, unplanted) =
            crate::verbs::selftest::planted(&with_role(&all, Role::Technique), &rules);
        assert_eq!(unplanted, ["pcid"]);
        let planted: Set<String> = planted.into_iter().map(|p| p.variant).collect();
        assert_eq!(&planted | &set(unplanted), techniques);

        // The mutants' default controls: every protocol and technique.
        let controls = set(crate::mutants::default_controls(&all));
        assert_eq!(controls, &protocols | &techniques);

        // The techniques' table measures every technique, beside a
        // protocol; the seeds' table measures no technique and no control.
        let variants_of = |plan: crate::reproduce::Plan| {
            plan.experiments
                .into_iter()
                .flat_map(|e| e.variants)
                .collect::<Set<String>>()
        };
        let in_techniques = variants_of(crate::reproduce::Plan::techniques(1));
        assert!(in_techniques.is_superset(&techniques), "{in_techniques:?}");
        assert!(
            in_techniques.is_subset(&(&techniques | &protocols)),
            "{in_techniques:?}"
        );
        let in_seeds = variants_of(crate::reproduce::Plan::full(1, 8));
        for v in &in_seeds {
            let r = all.iter().find(|x| &x.name == v).map(|x| x.role);
            assert!(
                matches!(r, Some(Role::Protocol | Role::Bug | Role::Seed)),
                "{v}: {r:?} in the seeds' table"
            );
        }

        // variants/mutants/ holds mutants only (the loader checks the role).
        assert!(!crate::mutants::load_all(&ws).unwrap().is_empty());
    }

    #[test]
    fn test_only_features_stay_out_of_the_tree() {
        let tree = Workspace::at(Path::new(env!("CARGO_MANIFEST_DIR")).join("..")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("fixed.toml");
        let text = fs::read_to_string(tree.variants_dir().join("fixed.toml"))
            .unwrap()
            .replace(
                "features = []",
                "features = [\"gate-selftest-slow-remove\"]",
            );
        fs::write(&file, text).unwrap();
        let e = load_file(&tree, &file).unwrap_err().to_string();
        assert!(e.contains("test-only"), "{e}");
        let elsewhere = tree.with_variants_dir(Some(dir.path().to_path_buf()));
        assert_eq!(
            load(&elsewhere, "fixed").unwrap().features,
            vec!["gate-selftest-slow-remove"]
        );
    }
}
