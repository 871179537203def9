//! The pmap and its shootdowns on the real kernel (issue 4): pmap-selftest
//! passes, frees every frame it took, and on several CPUs its kernel-pmap
//! changes send shootdown IPIs that are all received and acknowledged.

use harness::outcome::Outcome;

use crate::common::*;

#[test]
fn pmap_selftest_passes_on_one_and_four_cpus() {
    for cpus in [1, 4] {
        let b = boot_with("pmap-selftest", cpus, |s| {
            s.params = vec![("shoot_rounds".into(), "100".into())];
        });
        let r = &b.result.report;
        assert_eq!(
            b.result.outcome,
            Outcome::Ok,
            "x{cpus}: {}",
            b.result.outcome
        );
        assert!(r.metric("selftest.checks").unwrap() > 100.0);
        assert_eq!(r.metric("selftest.failures"), Some(0.0));
        assert_eq!(
            r.metric("mem.frames.free_start"),
            r.metric("mem.frames.free_end"),
            "x{cpus}: frames leaked"
        );
        assert_ipis_balanced(r);
        let calls = r.metric("shoot.calls.shootpage").unwrap();
        let no_ipi = r.metric("shoot.noipi.shootpage").unwrap();
        assert!(calls >= 100.0, "x{cpus}: {calls} shootpage calls");
        if cpus == 1 {
            assert_eq!(no_ipi, calls, "one CPU has nobody to interrupt");
            assert_eq!(r.metric("ipi.sent.shootpage"), Some(0.0));
        } else {
            // Kernel-pmap shootdowns target every other online CPU.
            let sent = r.metric("ipi.sent.shootpage").unwrap();
            assert!(
                sent >= (calls - no_ipi) * f64::from(cpus - 1),
                "x{cpus}: {sent} IPIs"
            );
            assert!(
                r.metric("shoot.wait.ack").unwrap() > 0.0,
                "acknowledgements were waited for"
            );
            assert!(r.metric("shoot.ack.shootpage.median").unwrap() > 0.0);
        }
    }
}

/// The seed-000 variants carry their bugs: pmap-selftest checks each build
/// against its own pm_cpus semantics (0xdeadbeef after create in
/// uninit-bitmap, the CPU marked by a not-current activate in fork-inherit,
/// both in openbsd-2010) and passes only if the bug is really there.
#[test]
fn openbsd_2010_variants_pass_their_own_selftest() {
    for variant in ["openbsd-2010", "uninit-bitmap", "fork-inherit"] {
        let b = boot_variant(variant, "pmap-selftest", 4, |_| {});
        let r = &b.result.report;
        assert_eq!(
            b.result.outcome,
            Outcome::Ok,
            "{variant}: {}",
            b.result.outcome
        );
        assert_eq!(r.begin.as_ref().unwrap().variant, variant);
        assert_eq!(r.metric("selftest.failures"), Some(0.0), "{variant}");
        assert_ipis_balanced(r);
    }
}
