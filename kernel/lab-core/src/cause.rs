//! Why a TLB shootdown was sent: the one list of causes.
//!
//! Every pmap-level operation that may shoot down runs under a cause, set
//! by the caller where the operation starts (the kernel's proc::vm and its
//! kernel workloads, through `mm::shootdown::cause`); each shootdown call
//! is counted under the cause in force. The kernel reports, per cause and
//! shootdown kind (`shootpage`, `shootrange`, `shoottlb`), the metrics
//! `shoot.cause.<cause>.<kind>.{calls,noipi,ipis,ack_cycles}` (scope all);
//! a metric that is absent is 0 (all-zero ones are left out to keep the
//! report small). The harness reads the same names back ([`ShootCause::name`]
//! and [`ShootCause::from_name`]), so they are stable: add causes at the
//! end, never rename one.

/// Why a shootdown was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum ShootCause {
    /// Nothing more specific was set (the default).
    Other,
    /// The teardown of an address space at exit (pmap_remove_pages and the
    /// per-region pmap_remove calls).
    Exit,
    /// exec: the teardown of the old address space and the loading of the
    /// new one.
    Exec,
    /// munmap.
    Munmap,
    /// mmap(MAP_FIXED) over an existing mapping: the old pages removed.
    MmapReplace,
    /// mprotect taking rights away (pmap_protect, or pmap_remove for none).
    Mprotect,
    /// A page fault (or the kernel's copyout) replacing a read-only entry:
    /// copy-on-write copy, or taking over a frame no longer shared.
    Cow,
    /// fork write-protecting the parent's writable pages.
    ForkProtect,
    /// A page-table page freed. Reserved: today a freed PTP waits for the
    /// shootdown of the operation that emptied it (OpenBSD's empty_ptps)
    /// and is never the reason for one of its own.
    PtpFree,
    /// FreeBSD D32569's explicit unmap of the shared page at exec and exit
    /// (`unmap-shared-page`).
    SharedPage,
    /// Kernel pmap remaps and removals (the shoot-storm workload; the heap
    /// lives in the direct map and never remaps).
    Kernel,
    /// The pmap-selftest workload's own pmap operations.
    Selftest,
}

impl ShootCause {
    pub const COUNT: usize = 12;
    pub const ALL: [ShootCause; Self::COUNT] = [
        ShootCause::Other,
        ShootCause::Exit,
        ShootCause::Exec,
        ShootCause::Munmap,
        ShootCause::MmapReplace,
        ShootCause::Mprotect,
        ShootCause::Cow,
        ShootCause::ForkProtect,
        ShootCause::PtpFree,
        ShootCause::SharedPage,
        ShootCause::Kernel,
        ShootCause::Selftest,
    ];

    /// The stable snake_case name used in metric names.
    pub const fn name(self) -> &'static str {
        match self {
            ShootCause::Other => "other",
            ShootCause::Exit => "exit",
            ShootCause::Exec => "exec",
            ShootCause::Munmap => "munmap",
            ShootCause::MmapReplace => "mmap_replace",
            ShootCause::Mprotect => "mprotect",
            ShootCause::Cow => "cow",
            ShootCause::ForkProtect => "fork_protect",
            ShootCause::PtpFree => "ptp_free",
            ShootCause::SharedPage => "shared_page",
            ShootCause::Kernel => "kernel",
            ShootCause::Selftest => "selftest",
        }
    }

    /// The cause named `name` ([`ShootCause::name`]).
    pub fn from_name(name: &str) -> Option<ShootCause> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The cause with discriminant `n` (out of range: `Other`).
    pub fn from_index(n: usize) -> ShootCause {
        Self::ALL.get(n).copied().unwrap_or(ShootCause::Other)
    }

    /// In words, for a sentence ("all from exit teardown").
    pub const fn words(self) -> &'static str {
        match self {
            ShootCause::Other => "unattributed operations",
            ShootCause::Exit => "exit teardown",
            ShootCause::Exec => "exec (old address space torn down, new one loaded)",
            ShootCause::Munmap => "munmap",
            ShootCause::MmapReplace => "mmap(MAP_FIXED) replacing a mapping",
            ShootCause::Mprotect => "mprotect",
            ShootCause::Cow => "copy-on-write faults",
            ShootCause::ForkProtect => "fork write-protecting the parent",
            ShootCause::PtpFree => "page-table pages freed",
            ShootCause::SharedPage => "the explicit shared-page unmap (D32569)",
            ShootCause::Kernel => "kernel pmap remaps",
            ShootCause::Selftest => "the pmap self-test",
        }
    }
}

/// What is counted per (cause, kind), in metric-name order.
/// `spared`: IPIs a shortcut took out of a shootdown of this cause
/// (targets removed by lazy-latr, lazy-tlb, dying-no-ipi; the targets of a
/// shootpage no-flush-cow did not make), so `ipis + spared` is what the
/// variant's base would have sent for the same calls.
pub const CAUSE_FIELDS: [&str; 5] = ["calls", "noipi", "ipis", "ack_cycles", "spared"];

/// The shootdown kinds counted per cause.
pub const CAUSE_KINDS: [&str; 3] = ["shootpage", "shootrange", "shoottlb"];

/// The metric `shoot.cause.<cause>.<kind>.<field>`.
#[cfg(test)]
fn metric_name(cause: ShootCause, kind: &str, field: &str) -> std::string::String {
    std::format!("shoot.cause.{}.{kind}.{field}", cause.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        for (i, c) in ShootCause::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i, "ALL is in discriminant order");
            assert_eq!(ShootCause::from_name(c.name()), Some(*c));
            assert_eq!(ShootCause::from_index(i), *c);
        }
        assert_eq!(ShootCause::from_name("nope"), None);
        assert_eq!(
            metric_name(ShootCause::MmapReplace, "shootpage", "ipis"),
            "shoot.cause.mmap_replace.shootpage.ipis"
        );
    }
}
