//! Provenance: what a baseline may be compared with.
//!
//! A figure measured under one QEMU, accelerator or host is not the same
//! quantity under another. The gate reads the metadata of the results
//! (`IN/metadata.json`) and of every result set the baseline was made
//! from (`results/baseline.meta.json`, written by `harness baseline`):
//! - timing figures are compared only when QEMU's version, the
//!   accelerator and the Rust toolchain that compiled the kernel (its
//!   instructions are what icount's clock counts) agree, and, off
//!   `tcg-icount` (whose virtual clock does not depend on the host), the
//!   host CPU model too; otherwise the line is refused, saying what
//!   differs and how to remake the baseline;
//! - counts (exact, or scheduling-dependent under icount on both sides)
//!   are compared whatever the host.
//!
//! A baseline without metadata has unknown provenance: its timing lines
//! are refused the same way.

use crate::results::metadata::Metadata;
use crate::results::summary::GroupKey;

/// The metadata of the baseline input that ran under `accel`.
pub fn meta_for<'a>(metas: &'a [Metadata], accel: &str) -> Option<&'a Metadata> {
    metas.iter().find(|m| m.accel == accel)
}

/// Why a timing figure of `new` (results metadata `new_meta`) may not be
/// compared with `old` (baseline metadata `base`); `None` when it may.
pub fn timing_refusal(
    base: Option<&Metadata>,
    new_meta: Option<&Metadata>,
    old: &GroupKey,
    new: &GroupKey,
) -> Option<String> {
    let mut differs = Vec::new();
    if old.accel != new.accel {
        differs.push(format!(
            "accel: baseline {}, results {}",
            old.accel, new.accel
        ));
    }
    if old.machine != new.machine {
        differs.push(format!(
            "machine: baseline {}, results {}",
            old.machine, new.machine
        ));
    }
    let (Some(base), Some(now)) = (base, new_meta) else {
        let which = if base.is_none() {
            "the baseline has no metadata (results/baseline.meta.json) for this accelerator"
        } else {
            "the results have no metadata.json"
        };
        differs.push(format!("{which}: provenance unknown"));
        return Some(differs.join("; "));
    };
    differs.extend(build_differs(base, now));
    if !crate::accel::is_repeatable(&new.accel) && base.host_cpu != now.host_cpu {
        differs.push(format!(
            "host CPU under {}: baseline '{}', results '{}'",
            new.accel, base.host_cpu, now.host_cpu
        ));
    }
    (!differs.is_empty()).then(|| differs.join("; "))
}

/// What of the build behind a figure differs between the baseline's
/// metadata and the results': QEMU's version and the toolchain that
/// compiled the kernel. A repeatable accelerator repeats bit for bit only
/// for one tree, QEMU and toolchain, so these also decide whether an exact
/// comparison can tell the tree's changes apart (gate::exact).
pub fn build_differs(base: &Metadata, now: &Metadata) -> Vec<String> {
    let mut differs = Vec::new();
    if base.qemu_version != now.qemu_version {
        differs.push(format!(
            "QEMU: baseline '{}', results '{}'",
            base.qemu_version, now.qemu_version
        ));
    }
    if base.rustc_version != now.rustc_version {
        differs.push(format!(
            "toolchain: baseline '{}', results '{}'",
            base.rustc_version, now.rustc_version
        ));
    }
    differs
}

/// A one-line account of a metadata record, for the gate's header.
pub fn describe(m: &Metadata) -> String {
    format!(
        "accel {} on {} ({}), {}, {}, git {}",
        m.accel,
        m.host_cpu,
        if m.machine.is_empty() {
            "machine ?"
        } else {
            &m.machine
        },
        m.qemu_version,
        m.rustc_version,
        if m.git_rev.is_empty() {
            "?"
        } else {
            &m.git_rev
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::REPEATABLE_ACCEL;

    fn meta(accel: &str, qemu: &str, cpu: &str) -> Metadata {
        Metadata {
            accel: accel.into(),
            qemu_version: qemu.into(),
            host_cpu: cpu.into(),
            ..Metadata::default()
        }
    }

    fn key(accel: &str) -> GroupKey {
        GroupKey {
            variant: "fixed".into(),
            workload: "forkexit".into(),
            params: String::new(),
            cpus: 2,
            accel: accel.into(),
            machine: "microvm".into(),
        }
    }

    #[test]
    fn timing_needs_the_same_qemu_accel_and_host() {
        let ic = key(REPEATABLE_ACCEL);
        let a = meta(REPEATABLE_ACCEL, "QEMU 7.2", "EPYC");
        assert_eq!(timing_refusal(Some(&a), Some(&a), &ic, &ic), None);
        // icount does not care about the host CPU.
        let other_host = meta(REPEATABLE_ACCEL, "QEMU 7.2", "Xeon");
        assert_eq!(timing_refusal(Some(&a), Some(&other_host), &ic, &ic), None);
        let newer = meta(REPEATABLE_ACCEL, "QEMU 8.0", "EPYC");
        let why = timing_refusal(Some(&a), Some(&newer), &ic, &ic).unwrap();
        assert!(
            why.contains("QEMU: baseline 'QEMU 7.2', results 'QEMU 8.0'"),
            "{why}"
        );
        // KVM against a TCG baseline: the accelerator differs.
        let why = timing_refusal(Some(&a), Some(&a), &ic, &key("kvm")).unwrap();
        assert!(
            why.contains("accel: baseline tcg-icount, results kvm"),
            "{why}"
        );
        // Plain TCG on another host CPU.
        let t1 = meta("tcg", "QEMU 7.2", "EPYC");
        let t2 = meta("tcg", "QEMU 7.2", "Xeon");
        let why = timing_refusal(Some(&t1), Some(&t2), &key("tcg"), &key("tcg")).unwrap();
        assert!(why.contains("host CPU"), "{why}");
        // Another rustc compiled the kernel.
        let rustc = Metadata {
            rustc_version: "rustc 1.96.0".into(),
            ..a.clone()
        };
        let why = timing_refusal(Some(&a), Some(&rustc), &ic, &ic).unwrap();
        assert!(why.contains("toolchain"), "{why}");
        // No metadata: unknown.
        let why = timing_refusal(None, Some(&a), &ic, &ic).unwrap();
        assert!(why.contains("provenance unknown"), "{why}");
        assert_eq!(
            meta_for(&[t1.clone(), a.clone()], REPEATABLE_ACCEL),
            Some(&a)
        );
    }
}
