//! QEMU's accelerators: what the user asks for ([`AccelChoice`]) and what a
//! boot uses ([`Accel`]). A leaf: [`crate::qemu`] builds command lines from
//! it, and the probe that turns `auto` into an accelerator, which boots
//! QEMU, lives above both in [`crate::accel_probe`].

use serde::{Deserialize, Serialize};

/// What the user asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AccelChoice {
    /// KVM if /dev/kvm opens and a probe boot shows it faster than TCG.
    Auto,
    Kvm,
    /// TCG, one host thread per vCPU (MTTCG).
    Tcg,
    /// TCG with `-icount shift=0,sleep=off`: deterministic virtual time.
    TcgIcount,
    /// tcg-icount plus the memory-system model (model/): modeled cache-line
    /// transfers, TLB misses and per-CPU clocks, beside the guest's counts.
    TcgModel,
}

/// The accelerator a boot uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Accel {
    Kvm,
    Tcg,
    TcgIcount,
    TcgModel,
}

impl Accel {
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
            Accel::TcgIcount => "tcg-icount",
            Accel::TcgModel => "tcg-model",
        }
    }

    /// Whether QEMU runs under `-icount` (one host thread, virtual time
    /// that repeats bit for bit).
    pub fn is_icount(self) -> bool {
        matches!(self, Accel::TcgIcount | Accel::TcgModel)
    }
}

/// Whether figures under the accelerator named `accel` repeat bit for bit
/// (QEMU `-icount`; the model is deterministic on top of it), so that a
/// difference is exact and one repetition speaks for all.
pub fn is_repeatable(accel: &str) -> bool {
    accel == Accel::TcgIcount.as_str() || accel == Accel::TcgModel.as_str()
}
