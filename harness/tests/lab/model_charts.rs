//! `harness plot` on results with the memory-system model's rows
//! (`model.<profile>.*`, `--accel tcg-model`): the modeled charts are drawn
//! per profile and workload, say "modeled (<profile>)", and are listed in
//! the index; the hot lines are named by symbol when a run log names the
//! kernel ELF. No QEMU: the rows are made up here (TEST FIXTURE).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use harness::plot::{render_all_with, PlotOptions};
use harness::results::{Cell, Metric, ResultRow, RunRecord};
use harness::symbols::{Symbolizer, KERNEL_VMA};
use lab_core::report::Scope;

const PROFILES: [&str; 2] = ["skylake-sp", "zen3"];

/// TEST FIXTURE (made up, never measured): a tcg-model run of `variant`
/// with `ops` operations, `transfers` cache-line transfers of which
/// `false_sharing` false, and hot lines at `hot` (paddr, transfers, false).
fn model_run(
    variant: &str,
    workload: &str,
    cpus: u32,
    rep: u32,
    transfers: f64,
    false_sharing: f64,
    hot: &[(u64, f64, f64)],
) -> RunRecord {
    let ops = 300.0;
    let g = |name: &str, v: f64, unit: &str| Metric::new(name, v, unit, Scope::Global);
    let mut metrics = vec![
        g("workload.ops", ops, "count"),
        g("workload.elapsed_ns", 5e8, "ns"),
        g("ipi.sent.shootpage", 100.0, "count"),
        g("model.complete", 1.0, "count"),
        g("model.hints", 12.0, "count"),
        g("model.hint.errors", 0.0, "count"),
    ];
    for (i, p) in PROFILES.iter().enumerate() {
        let m = |n: &str| format!("model.{p}.{n}");
        // The zen3 clocks are faster: only costs differ by profile.
        let wait = 2000.0 + 500.0 * cpus as f64 - 300.0 * i as f64;
        metrics.extend([
            g(&m("coh.misses"), transfers, "count"),
            g(&m("coh.false_sharing"), false_sharing, "count"),
            g(&m("tlb.misses"), 60.0 * ops, "count"),
            g(&m("tlb.refills"), 45.0 * ops, "count"),
            g(&m("wait.cycles"), wait * 302.0, "cycles"),
            g(&m("wait.count"), 302.0, "count"),
            g(&m("workload.ns"), 4e8, "ns"),
        ]);
        for cpu in 0..cpus {
            metrics.push(Metric::new(
                &m("coh.misses"),
                transfers / cpus as f64,
                "count",
                Scope::Cpu(cpu),
            ));
        }
        for (r, &(paddr, t, f)) in hot.iter().enumerate() {
            metrics.extend([
                g(&m(&format!("hot.{r}.paddr")), paddr as f64, "addr"),
                g(&m(&format!("hot.{r}.transfers")), t, "count"),
                g(&m(&format!("hot.{r}.false_sharing")), f, "count"),
            ]);
        }
    }
    crate::common::fixture_run(
        Cell {
            variant: variant.into(),
            workload: workload.into(),
            params: if workload == "shoot-storm" {
                "ops=300".into()
            } else {
                String::new()
            },
            cpus,
            accel: "tcg-model".into(),
            machine: "microvm".into(),
            rep,
        },
        Duration::from_secs(5),
        metrics,
    )
}

/// The fixed kernel a run or matrix built, if this checkout has one.
fn built_kernel() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/pmaplab/kernels");
    fs::read_dir(dir).ok()?.find_map(|e| {
        let p = e.ok()?.path();
        let name = p.file_name()?.to_string_lossy().into_owned();
        (name.starts_with("fixed-") && name.ends_with(".elf")).then_some(p)
    })
}

fn rows_and_logs(results: &Path, kernel: Option<&Path>, hot0: u64) -> Vec<ResultRow> {
    let lines = |base: u64| -> Vec<(u64, f64, f64)> {
        (0..10u64)
            .map(|i| (base + 0x40 * i, 1800.0 - 100.0 * i as f64, 600.0))
            .collect()
    };
    let mut hot_fixed = lines(0x800_0000);
    hot_fixed[0] = (hot0, 4816.0, 0.0);
    let mut records = Vec::new();
    for rep in 1..=2 {
        for cpus in [2, 4] {
            records.push(model_run(
                "fixed", "forkexit", cpus, rep, 200_000.0, 6_600.0, &hot_fixed,
            ));
            records.push(model_run(
                "scoreboard",
                "forkexit",
                cpus,
                rep,
                201_000.0,
                7_500.0,
                &lines(0x34_2400),
            ));
            records.push(model_run(
                "cacheline-consolidation",
                "forkexit",
                cpus,
                rep,
                199_000.0,
                6_100.0,
                &lines(0x98_7000),
            ));
        }
        records.push(model_run(
            "fixed",
            "shoot-storm",
            4,
            rep,
            13_500.0,
            3_700.0,
            &hot_fixed,
        ));
        records.push(model_run(
            "scoreboard-padded",
            "shoot-storm",
            4,
            rep,
            17_400.0,
            6_400.0,
            &lines(0x1b_f080),
        ));
    }
    // The run logs name the kernel as harness writes them (`<run>.cmd`).
    if let Some(elf) = kernel {
        let doorbell = harness::model::doorbell(elf).unwrap();
        fs::create_dir_all(results.join("logs")).unwrap();
        for r in &records {
            fs::write(
                results
                    .join("logs")
                    .join(format!("{}.cmd", r.cell.run_id())),
                format!(
                    "qemu-system-x86_64 -accel tcg -plugin /x/libpmaplab_model.so,\
                     profile=/x/zen3.toml,out=x.model,doorbell={doorbell:#x} \
                     -kernel {} -append 'workload=forkexit'",
                    elf.display()
                ),
            )
            .unwrap();
        }
    }
    records.iter().flat_map(RunRecord::rows).collect()
}

#[test]
fn draws_the_model_charts_and_lists_them() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let out = results.join("charts");
    fs::create_dir_all(&results).unwrap();
    // With a built kernel, the hottest line of `fixed` is its doorbell
    // page's first line, which must come out named.
    let kernel = built_kernel();
    let named = kernel.as_ref().map(|elf| {
        let doorbell = harness::model::doorbell(elf).unwrap();
        let place = Symbolizer::from_elf(elf)
            .unwrap()
            .place_line(doorbell - KERNEL_VMA);
        (doorbell - KERNEL_VMA, place.short())
    });
    let hot0 = named.as_ref().map_or(0x801_0000, |n| n.0);
    let rows = rows_and_logs(&results, kernel.as_deref(), hot0);
    let files = render_all_with(&rows, &out, &PlotOptions::default()).unwrap();
    if let Some(keep) = std::env::var_os("PMAPLAB_KEEP_PLOTS") {
        render_all_with(&rows, Path::new(&keep), &PlotOptions::default()).unwrap();
    }
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let expected = [
        "model-skylake-sp-transfers-forkexit",
        "model-skylake-sp-tlb-forkexit",
        "model-skylake-sp-wait-forkexit",
        "model-skylake-sp-hot-lines-forkexit-c4",
        "model-zen3-transfers-forkexit",
        "model-zen3-tlb-forkexit",
        "model-zen3-wait-forkexit",
        "model-skylake-sp-transfers-shoot-storm-ops-300",
        "model-skylake-sp-hot-lines-shoot-storm-ops-300-c4",
        "model-zen3-wait-shoot-storm-ops-300",
    ];
    let md = fs::read_to_string(out.join("index.md")).unwrap();
    let html = fs::read_to_string(out.join("index.html")).unwrap();
    for stem in expected {
        for ext in ["png", "svg"] {
            let file = format!("{stem}.{ext}");
            assert!(names.contains(&file), "{file} not in {names:?}");
            assert!(
                fs::metadata(out.join(&file)).unwrap().len() > 3_000,
                "{file}"
            );
        }
        assert!(
            md.contains(&format!("({stem}.png)")),
            "{stem} not in index.md"
        );
        assert!(
            html.contains(&format!("src=\"{stem}.svg\"")),
            "{stem} not in index.html"
        );
    }
    // The lines are the same under both profiles: drawn once.
    assert!(
        !names.iter().any(|n| n.starts_with("model-zen3-hot-lines")),
        "{names:?}"
    );
    assert!(md.contains("## Modeled (skylake-sp)"), "{md}");
    assert!(md.contains("## Modeled (zen3)"), "{md}");
    // Every chart says it is modeled, and by which profile, in its title
    // and on its axis.
    for stem in expected {
        let svg = fs::read_to_string(out.join(format!("{stem}.svg"))).unwrap();
        let profile = if stem.contains("zen3") {
            "zen3"
        } else {
            "skylake-sp"
        };
        let said = svg.matches(&format!("modeled ({profile}")).count();
        assert!(said >= 2, "{stem}: 'modeled ({profile}' {said} times");
        assert!(svg.contains("MODELED"), "{stem}");
    }
    // The hot lines: by address, by symbol when the kernel is known.
    let hot = fs::read_to_string(out.join("model-skylake-sp-hot-lines-forkexit-c4.svg")).unwrap();
    assert!(hot.contains("0x342400"), "no address label");
    assert!(hot.contains("the same lines in zen3"));
    match &named {
        Some((paddr, short)) => {
            assert!(hot.contains(&format!("{paddr:#x}")));
            assert!(hot.contains(short.as_str()), "{short} not in the chart");
            // Frames outside the image are named as such.
            assert!(hot.contains("heap or frame"));
        }
        None => assert!(hot.contains("physical addresses only")),
    }
    // PNGs decode at the declared size and are not blank.
    let png = out.join("model-skylake-sp-hot-lines-forkexit-c4.png");
    let decoder = png::Decoder::new(fs::File::open(&png).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert!(info.width >= 1000 && info.height >= 900, "{info:?}");
}

#[test]
fn results_without_the_model_draw_no_model_chart() {
    let dir = tempfile::tempdir().unwrap();
    let mut rec = model_run("fixed", "forkexit", 2, 1, 1.0, 0.0, &[]);
    rec.metrics.retain(|m| !m.name.starts_with("model."));
    let files = render_all_with(&rec.rows(), dir.path(), &PlotOptions::default()).unwrap();
    assert!(files.iter().all(|f| !f
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("model-")));
    let md = fs::read_to_string(dir.path().join("index.md")).unwrap();
    assert!(!md.contains("Modeled"));
}
