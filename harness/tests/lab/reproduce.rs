//! `harness reproduce` on a tiny plan: the OpenBSD factor from real runs of
//! openbsd-2010 and fixed on 2 CPUs with small loops, and an experiment
//! whose variant does not exist, which must say so and not stop the rest.

use harness::accel::AccelChoice;
use harness::qemu::DEFAULT_QEMU;
use harness::reproduce::{
    self, table, Experiment, Plan, ReproduceOptions, Table, DFLY_PINGPONG, OBSD_BUILDKERNEL,
    OBSD_FORKEXIT,
};

#[test]
fn tiny_plan_gives_rows_from_real_runs() {
    let ws = crate::common::workspace();
    let out = tempfile::tempdir().unwrap();
    let obsd = ["openbsd-2010", "fixed"];
    let plan = Plan {
        table: Table::Seeds,
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
        sweep_to: 8,
        techniques: false,
        check: None,
    };
    let r = crate::common::with_slot(|| reproduce::run_plan(&ws, &plan, &opts)).unwrap();
    assert_eq!(r.accel, "tcg");
    // forkexit alone, buildkernel alone, the mix, the no-IPI share, the
    // missing variant's row.
    assert_eq!(r.rows.len(), 5, "{:#?}", r.rows);
    assert!(r.rows.iter().all(|row| row.accel == "tcg"));

    // Each workload alone: forkexit's fixed may send no IPI at all, which
    // must read "all eliminated", never a number over 0.
    let forkexit = &r.rows[0];
    assert!(
        forkexit.definition.contains("forkexit"),
        "{}",
        forkexit.definition
    );
    let m = forkexit
        .measured
        .as_ref()
        .expect("forkexit factor measured");
    if m.per_rep[0].is_infinite() {
        assert!(forkexit.lab.contains("all eliminated"), "{}", forkexit.lab);
    }
    assert!(r.rows[1].definition.contains("buildkernel"));

    // The mix: the published 21, the factor from one real rep, said to be
    // set by the mix.
    let factor = &r.rows[2];
    assert!(factor.published.contains("21"));
    assert!(factor.lab.contains("set by the mix"), "{}", factor.lab);
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
    let noipi = &r.rows[3];
    let share = noipi.measured.as_ref().expect("share measured").per_rep[0];
    assert!((0.5..=1.0).contains(&share), "share {share}");
    assert!(noipi.lab.ends_with('%'), "{}", noipi.lab);

    // The missing variant is a row that says why, not an error.
    let pingpong = &r.rows[4];
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

    // Each note once: the four OpenBSD rows share one, the DragonFly row
    // has its own.
    assert_eq!(r.notes.len(), 2, "{:#?}", r.notes);
    assert!(
        r.notes[0].title.contains("rows 1-4"),
        "{}",
        r.notes[0].title
    );

    let md = table::markdown(&r, "harness reproduce (test)", None);
    assert!(md.contains("| 1 | 000 OpenBSD 2010 |"), "{md}");
    assert!(md.contains("| 5 | 001 DragonFly 2004 |"), "{md}");
    assert!(md.contains("tcg (count: same under any accel)"), "{md}");
    assert_eq!(
        md.matches("0xdeadbeef fill: its low byte").count(),
        1,
        "{md}"
    );
    assert!(md.contains("0xdeadbeef"));
}
