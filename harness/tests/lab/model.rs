//! The memory-system model (`--accel tcg-model`) on the real kernel: its
//! self-test's answers known in advance, its determinism, and its TLB as a
//! stale-translation oracle. Every figure read here is the plugin's,
//! computed from the guest's own accesses (model/README.md).

use harness::accel::Accel;
use harness::outcome::Outcome;
use harness::report::Report;
use lab_core::report::Scope;

use crate::common::*;

/// The profiles in model/profiles/, by name.
fn profiles() -> Vec<String> {
    harness::model::profiles(&repo().join("model").join("profiles"))
        .unwrap()
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// The machine-wide value of `name`, which must be there.
fn global(report: &Report, name: &str) -> f64 {
    metrics(report, name)
        .into_iter()
        .find(|(scope, _)| *scope == Scope::Global)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no {name} in the report"))
}

fn model_boot(variant: &str, workload: &str, cpus: u32, params: &[(&str, &str)]) -> Boot {
    boot_variant(variant, workload, cpus, |s| {
        s.accel = Accel::TcgModel;
        s.timeout = std::time::Duration::from_secs(180);
        s.params = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    })
}

/// The answers of kernel/src/workloads/model_selftest.rs, for every profile.
#[test]
fn model_selftest_gives_the_answers_known_in_advance() {
    let b = model_boot(
        "fixed",
        "model-selftest",
        2,
        &[("rounds", "200"), ("pages", "32")],
    );
    let r = &b.result.report;
    assert_eq!(b.result.outcome, Outcome::Ok, "{}", b.result.outcome);
    assert!(b.result.kernel_cmdline.ends_with(" model=on"));
    assert_eq!(global(r, "model.hint.errors"), 0.0);
    assert_eq!(global(r, "model.hint.invlpg_unhinted"), 0.0);
    assert!(global(r, "model.hints") > 0.0);
    for p in profiles() {
        let phase = |n: u32, what: &str| global(r, &format!("model.{p}.phase.{n}.{what}"));
        // 1: 200 writes each, taking turns: one miss per hand-over (399),
        // and at the edges the waiting CPU's first read may come before
        // the first write (the line last written by CPU 0's zeroing) and
        // the last reader may read once more: 399..=401 by interleaving.
        let pingpong = phase(1, "coh.misses");
        assert!(
            (399.0..=401.0).contains(&pingpong),
            "{p}: ping-pong misses {pingpong}, not 399..=401"
        );
        assert_eq!(
            phase(1, "coh.false_sharing"),
            0.0,
            "{p}: ping-pong is true sharing"
        );
        // 2: two counters in one line: every miss is false sharing.
        assert!(
            phase(2, "coh.misses") >= 1.0,
            "{p}: packed counters never moved"
        );
        assert_eq!(
            phase(2, "coh.false_sharing"),
            phase(2, "coh.misses"),
            "{p}: packed"
        );
        // 3: a line each: nothing moves.
        assert_eq!(phase(3, "coh.misses"), 0.0, "{p}: padded counters");
        // 4: 32 pages after a flush: 32 4 KiB misses.
        assert_eq!(phase(4, "tlb.misses_4k"), 32.0, "{p}: TLB fill");
        // 5: one INVLPG: one miss, and it refills what the INVLPG removed.
        assert_eq!(phase(5, "tlb.misses_4k"), 1.0, "{p}: after one INVLPG");
        assert_eq!(phase(5, "tlb.refills"), 1.0, "{p}: the refill");
        assert_eq!(phase(5, "tlb.misses"), 1.0, "{p}: nothing else missed");
        // Costs differ by profile; the modeled clock moved.
        assert!(phase(1, "cycles") > 0.0);
    }
}

/// Two runs give the same model figures, bit for bit, and the guest's own
/// invariants hold with the plugin loaded.
#[test]
fn the_model_is_deterministic() {
    let params = [("loops", "60"), ("touch", "on")];
    let a = model_boot("scoreboard", "forkexit", 2, &params);
    let b = model_boot("scoreboard", "forkexit", 2, &params);
    for run in [&a, &b] {
        assert_eq!(run.result.outcome, Outcome::Ok, "{}", run.result.outcome);
        assert_ipis_balanced(&run.result.report);
    }
    let model = |run: &Boot| {
        run.result
            .report
            .metrics
            .iter()
            .filter(|m| m.name.starts_with("model."))
            .map(|m| (m.name.clone(), m.scope, m.value.to_bits()))
            .collect::<Vec<_>>()
    };
    let (ma, mb) = (model(&a), model(&b));
    assert!(ma.len() > 100, "only {} model metrics", ma.len());
    assert_eq!(ma, mb, "the model's figures differ between two runs");
    // The model saw the shootdowns the guest made and timed them.
    for p in profiles() {
        let r = &a.result.report;
        assert!(global(r, &format!("model.{p}.shoot.count")) > 0.0);
        assert!(global(r, &format!("model.{p}.wait.cycles")) > 0.0);
        assert!(global(r, &format!("model.{p}.workload.ns")) > 0.0);
        assert_eq!(global(r, &format!("model.{p}.marks.unpaired")), 0.0);
    }
}

/// The model's TLB keeps what hardware may keep. DragonFly's batch
/// truncated to its first address (a mutant) leaves the other pages'
/// kernel translations in the targets' TLBs; QEMU flushes a whole MMU
/// index on a kernel-address INVLPG (its large-page tracking), so the
/// guest's own shoot-storm oracle reads through QEMU's TLB and cannot see
/// it. The model judges each shootdown's return by hardware's rules: a
/// stale verdict. The correct batch leaves none.
#[test]
fn the_models_tlb_judges_stale_translations() {
    let ws = workspace();
    let mutant = harness::mutants::load_all(&ws)
        .unwrap()
        .into_iter()
        .find(|m| m.name == "mutant-dfly-truncate")
        .expect("variants/mutants/mutant-dfly-truncate.toml");
    let image = harness::kernel_build::build(
        &ws,
        &mutant.as_variant(),
        harness::kernel_build::Output::OnFailure,
    )
    .unwrap();
    let params = [("mode", "mixed"), ("ops", "300")];
    let truncated = boot_with("shoot-storm", 4, |s| {
        s.kernel = image;
        s.accel = Accel::TcgModel;
        s.timeout = std::time::Duration::from_secs(180);
        s.params = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    });
    let batch = model_boot("dfly-batch", "shoot-storm", 4, &params);
    for b in [&truncated, &batch] {
        assert_eq!(b.result.outcome, Outcome::Ok, "{}", b.result.outcome);
    }
    for p in profiles() {
        let verdicts = |b: &Boot| global(&b.result.report, &format!("model.{p}.stale.verdicts"));
        assert!(
            verdicts(&truncated) > 0.0,
            "{p}: the model missed mutant-dfly-truncate"
        );
        assert_eq!(
            verdicts(&batch),
            0.0,
            "{p}: a stale verdict against dfly-batch"
        );
    }
}
