//! What a variant is there for, as the charts group it: the seeds' bugs,
//! the shootdown protocols, the seeds' fixes, the techniques published
//! since, the negative controls and the mutants.
//!
//! With 19 variants in the default matrix a chart reads only when its
//! bars, lines and legend entries come in these groups: the roles of the
//! variant files (`role`, crate::variants::Role). [`variant_role`] is the
//! one place the charts take a variant's group from.

pub use crate::variants::Role;

/// The order the roles' groups are drawn in: the seeds' bugs, then the
/// protocols they are fixed on, the seeds' other states, the techniques
/// built on the protocols, and last what is broken on purpose.
const DRAWN: [Role; 6] = [
    Role::Bug,
    Role::Protocol,
    Role::Seed,
    Role::Technique,
    Role::Control,
    Role::Mutant,
];

/// The heading of a role's group in legends and panels.
pub fn role_heading(role: Role) -> &'static str {
    // The wildcard is for roles the charts do not group by (a file from
    // an older revision without one); it keeps this compiling whether or
    // not crate::variants::Role has such a variant.
    #[allow(unreachable_patterns)]
    match role {
        Role::Bug => "the seeds' bugs",
        Role::Protocol => "protocols",
        Role::Seed => "the seeds' fixes",
        Role::Technique => "techniques",
        Role::Control => "controls",
        Role::Mutant => "mutants",
        _ => "no role stated",
    }
}

/// Each known variant's role (the `role` of its variants/*.toml, checked
/// by `roles_are_the_variant_files`), in the order they are drawn within
/// a role.
const ROLES: [(&str, Role); 20] = [
    ("openbsd-2010", Role::Bug),
    ("uninit-bitmap", Role::Bug),
    ("fork-inherit", Role::Bug),
    ("shared-page-counted", Role::Bug),
    ("fixed", Role::Protocol),
    ("scoreboard", Role::Protocol),
    ("scoreboard-padded", Role::Protocol),
    ("dfly-batch", Role::Protocol),
    ("freebsd-before", Role::Seed),
    ("shared-page-opt", Role::Seed),
    ("dying-no-ipi", Role::Seed),
    ("cacheline-consolidation", Role::Technique),
    ("early-ack", Role::Technique),
    ("in-context-flush", Role::Technique),
    ("no-flush-cow", Role::Technique),
    ("lazy-tlb", Role::Technique),
    ("lazy-latr", Role::Technique),
    ("flush-first", Role::Technique),
    ("pcid", Role::Technique),
    ("lost-shootdown", Role::Control),
];

/// The group `variant` is drawn in: its role from `ROLES` (the `role`
/// of its variant file, which the tests check), a mutant's by its
/// `mutant-` name (variants/mutants/); any other variant is taken for a
/// technique. Charts are drawn from result rows alone, which name no
/// role: reading the variant files here would tie drawing to a checkout.
pub fn variant_role(variant: &str) -> Role {
    match ROLES.iter().find(|(v, _)| *v == variant) {
        Some((_, role)) => *role,
        None if variant.starts_with("mutant-") => Role::Mutant,
        None => Role::Technique,
    }
}

/// The order variants are drawn in: by role (`DRAWN`), within a role
/// in `ROLES`' order, then by name.
pub fn display_order(variant: &str) -> (usize, usize, String) {
    let role = variant_role(variant);
    let group = DRAWN.iter().position(|r| *r == role).unwrap_or(DRAWN.len());
    let place = ROLES
        .iter()
        .position(|(v, _)| *v == variant)
        .unwrap_or(ROLES.len());
    (group, place, variant.to_string())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::variants::load_all;
    use crate::workspace::Workspace;

    #[test]
    fn roles_group_the_default_matrix() {
        assert_eq!(variant_role("fixed"), Role::Protocol);
        assert_eq!(variant_role("openbsd-2010"), Role::Bug);
        assert_eq!(variant_role("freebsd-before"), Role::Seed);
        assert_eq!(variant_role("lazy-tlb"), Role::Technique);
        assert_eq!(variant_role("lost-shootdown"), Role::Control);
        assert_eq!(variant_role("mutant-cow-no-shoot"), Role::Mutant);
        let mut v = vec![
            "lost-shootdown",
            "lazy-tlb",
            "zz-new",
            "fixed",
            "openbsd-2010",
        ];
        v.sort_by_key(|v| display_order(v));
        assert_eq!(
            v,
            [
                "openbsd-2010",
                "fixed",
                "lazy-tlb",
                "zz-new",
                "lost-shootdown"
            ]
        );
        let mut freebsd = vec!["shared-page-opt", "freebsd-before"];
        freebsd.sort_by_key(|v| display_order(v));
        assert_eq!(freebsd, ["freebsd-before", "shared-page-opt"]);
    }

    /// The table is the variant files' roles, every file in it: a new
    /// variant or a changed role fails here until the table follows.
    #[test]
    fn roles_are_the_variant_files() {
        let ws = Workspace::at(Path::new(env!("CARGO_MANIFEST_DIR")).join("..")).unwrap();
        let files = load_all(&ws).unwrap();
        assert_eq!(files.len(), ROLES.len());
        for f in &files {
            let known = ROLES.iter().find(|(v, _)| *v == f.name);
            assert_eq!(known.map(|k| k.1), Some(f.role), "{}", f.name);
        }
        assert!(DRAWN.len() == 6 && ROLES.iter().all(|(_, r)| DRAWN.contains(r)));
    }
}
