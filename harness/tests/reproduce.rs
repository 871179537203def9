//! `harness reproduce` on a tiny plan: the OpenBSD factor from real runs of
//! openbsd-2010 and fixed on 2 CPUs with small loops, and an experiment
//! whose variant does not exist, which must say so and not stop the rest.

mod common;

use harness::accel::AccelChoice;
use harness::qemu::DEFAULT_QEMU;
use harness::reproduce::{
    self, table, Experiment, Plan, ReproduceOptions, DFLY_PINGPONG, OBSD_BUILDKERNEL, OBSD_FORKEXIT,
};

#[test]
fn tiny_plan_gives_rows_from_real_runs() {
    let ws = common::workspace();
    let out = tempfile::tempdir().unwrap();
    let obsd = ["openbsd-2010", "fixed"];
    let plan = Plan {
        experiments: vec![
            Experiment::new(OBSD_FORKEXIT, &obsd, "forkexit", &[("loops", "20")]).cpus(&[2]),
            Experiment::new(OBSD_BUILDKERNEL, &obsd, "buildkernel", &[("jobs", "2")]).cpus(&[2]),
            Experiment::new(DFLY_PINGPONG, &["no-such-variant"], "ipi-pingpong", &[]).cpus(&[2]),
        ],
        reps: 1,
        factor_cpus: 2,
        sweep_cpus: vec![2],
    };
    let opts = ReproduceOptions {
        accel: AccelChoice::Tcg,
        reps: 1,
        out: Some(out.path().to_path_buf()),
        resume: false,
        jobs: Some(2),
        qemu: DEFAULT_QEMU.into(),
        markdown: None,
        charts: None,
    };
    let r = common::with_slot(|| reproduce::run_plan(&ws, &plan, &opts)).unwrap();
    assert_eq!(r.accel, "tcg");
    assert_eq!(r.rows.len(), 3, "{:#?}", r.rows);

    // The factor: openbsd-2010's fill marks both CPUs, so it sends
    // shootpage/shootrange IPIs; the figure comes from one real rep.
    let factor = &r.rows[0];
    assert!(factor.published.contains("21"));
    let m = factor.measured.as_ref().expect("factor measured");
    assert_eq!(m.per_rep.len(), 1);
    assert!(m.per_rep[0] > 1.0, "factor {}", m.per_rep[0]);
    let obsd_ipis = r.sweep[0].obsd_ipis.expect("openbsd-2010 IPIs");
    assert!(obsd_ipis > 0.0);
    assert!(
        factor.lab.contains(&format!("{obsd_ipis:.0}")),
        "{}",
        factor.lab
    );

    // The share of calls without an IPI in fixed, a ratio from real runs.
    let noipi = &r.rows[1];
    let share = noipi.measured.as_ref().expect("share measured").per_rep[0];
    assert!((0.5..=1.0).contains(&share), "share {share}");
    assert!(noipi.lab.ends_with('%'), "{}", noipi.lab);

    // The missing variant is a row that says why, not an error.
    let pingpong = &r.rows[2];
    assert!(
        pingpong
            .lab
            .starts_with("not measured: variant no-such-variant not built in this tree"),
        "{}",
        pingpong.lab
    );
    assert!(pingpong.measured.is_none());

    // The sweep at 2 CPUs: the fill marks both.
    assert_eq!(r.sweep.len(), 1);
    assert_eq!(r.sweep[0].fill_cpus, 2);

    let md = table::markdown(&r, "harness reproduce (test)", None);
    assert!(md.contains("| 1 | 000 OpenBSD 2010 |"), "{md}");
    assert!(md.contains("| 3 | 001 DragonFly 2004 |"), "{md}");
    assert!(md.contains("0xdeadbeef"));
}
