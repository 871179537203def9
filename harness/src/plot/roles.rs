//! What a variant is there for, as the charts group it: the seeds' bugs,
//! the shootdown protocols, the seeds' fixes, the techniques published
//! since, the negative controls and the mutants.
//!
//! With 19 variants in the default matrix a chart reads only when its
//! bars, lines and legend entries come in these groups. [`variant_role`]
//! is the one place that decides a variant's group, so that it can read
//! a `role` field of `variants/*.toml` once the variant files carry one.

/// A variant's group on the charts, in the order they are drawn: the
/// same kinds, by the same names, as the `role` field the variant files
/// are getting (harness/src/variants.rs), so that [`variant_role`] can
/// read that field instead of the lists below.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// A seed's bug, reproduced (OpenBSD 2010's and D32569's first diff).
    Bug,
    /// A correct shootdown protocol: OpenBSD's global slot, FreeBSD's
    /// scoreboards, DragonFly's batches.
    Protocol,
    /// A seed's own correct state: FreeBSD D32569's before, as landed,
    /// and the review's idea.
    Seed,
    /// A technique published since the seeds, on a protocol.
    Technique,
    /// Negative controls: broken on purpose, the oracles must catch them.
    Control,
    /// `harness mutants`' broken shootdown paths.
    Mutant,
}

impl Role {
    /// The heading of the group in legends.
    pub fn heading(self) -> &'static str {
        match self {
            Role::Bug => "the seeds' bugs",
            Role::Protocol => "protocols",
            Role::Seed => "the seeds' fixes",
            Role::Technique => "techniques",
            Role::Control => "controls",
            Role::Mutant => "mutants",
        }
    }
}

/// Each known variant's role (the roles of variants/*.toml), in the
/// order they are drawn within a role.
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

/// The group `variant` is drawn in: its role from [`ROLES`], a mutant's
/// by its `mutant-` name (variants/mutants/); any other variant is taken
/// for a technique.
pub fn variant_role(variant: &str) -> Role {
    match ROLES.iter().find(|(v, _)| *v == variant) {
        Some((_, role)) => *role,
        None if variant.starts_with("mutant-") => Role::Mutant,
        None => Role::Technique,
    }
}

/// The order variants are drawn in: by role, within a role in
/// [`ROLES`]' order, then by name.
pub fn display_order(variant: &str) -> (Role, usize, String) {
    let place = ROLES
        .iter()
        .position(|(v, _)| *v == variant)
        .unwrap_or(ROLES.len());
    (variant_role(variant), place, variant.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
