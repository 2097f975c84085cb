//! Training seeds (`repeats`) and stage instances: which runs a profile plans, how readers pair
//! with the runs they read (same seed, same split), what the refusals say, and, end to end on
//! the tiny fixture, that a repeated profile keeps the first seed's cache entries and reports
//! each effect and published row over its seeds.

mod common;

use common::{ascrepro_fails, ascrepro_ok, run_recipe_ok, stage_status};
use std::path::Path;

const TINY: &str = include_str!("fixtures/tiny.yaml");

/// The tiny fixture with a plain student beside the distilled one, an effect comparing them,
/// and `extra` appended to its demo profile.
fn recipe(extra: &str) -> String {
    TINY.replacen(
        "  - id: student_int8\n",
        "  - id: plain\n    kind: train\n    label: \"Student\"\n    model: student\n  - id: student_int8\n",
        1,
    )
    .replacen(
        "profiles:\n",
        "effects:\n  - method: distillation\n    with: student\n    without: plain\n    claim: \"Table 3\"\n\nprofiles:\n",
        1,
    )
    .replacen(
        "    stages: [teacher, student, student_int8]\n",
        &format!("    stages: [teacher, plain, student, student_int8]\n{extra}"),
        1,
    )
}

/// `ascrepro plan` of `text`: each planned node as `kind id hash needs`.
fn plan(dir: &Path, text: &str) -> Vec<String> {
    std::fs::write(dir.join("recipe.yaml"), text).unwrap();
    let (out, _) = ascrepro_ok(dir, &["plan", "recipe.yaml", "--cache", "cache"]);
    out.lines()
        .filter(|l| l.split_whitespace().count() >= 3 && !l.starts_with("run plan"))
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let needs = l.split("needs ").nth(1).unwrap_or("-");
            format!("{} {} {} {needs}", w[0], w[1], w[2])
        })
        .collect()
}

fn line<'a>(plan: &'a [String], kind: &str, id: &str) -> &'a str {
    plan.iter()
        .find(|l| l.starts_with(&format!("{kind} {id} ")))
        .unwrap_or_else(|| panic!("no {kind} {id} in {plan:#?}"))
}

#[test]
fn repeats_plan_one_run_per_seed_and_readers_pair_by_seed() {
    let d = tempfile::tempdir().unwrap();
    let p = plan(
        d.path(),
        &recipe("    repeats:\n      seeds: 3\n      except: [teacher]\n"),
    );
    // The teacher once; each student three times, the first under its own id.
    assert!(!p.iter().any(|l| l.starts_with("train teacher#")), "{p:#?}");
    for id in [
        "plain",
        "plain#2",
        "plain#3",
        "student",
        "student#2",
        "student#3",
    ] {
        line(&p, "train", id);
    }
    assert!(
        !p.iter().any(|l| l.contains("#4") || l.contains("#1")),
        "{p:#?}"
    );
    // Every distilled student reads the one teacher.
    for id in ["student", "student#2", "student#3"] {
        assert!(line(&p, "train", id).contains("train:teacher"), "{p:#?}");
    }
    // The quantize stage trains nothing but runs once per run of what it reads, paired.
    assert!(line(&p, "quantize", "student_int8#2").contains("train:student#2,"));
    assert!(line(&p, "quantize", "student_int8#3").contains("train:student#3,"));
    assert!(line(&p, "quantize", "student_int8").contains("train:student,"));
}

#[test]
fn the_first_seed_is_the_unrepeated_stage() {
    let d = tempfile::tempdir().unwrap();
    let once = plan(d.path(), &recipe(""));
    let thrice = plan(d.path(), &recipe("    repeats: {seeds: 3}\n"));
    let hash = |p: &[String], id: &str| line(p, "train", id).split(' ').nth(2).unwrap().to_string();
    for id in ["teacher", "plain", "student"] {
        assert_eq!(hash(&once, id), hash(&thrice, id), "{id}");
    }
    assert_ne!(hash(&thrice, "student"), hash(&thrice, "student#2"));
    // Without `except`, the teacher runs three times and each student reads its own.
    assert!(line(&thrice, "train", "student#2").contains("train:teacher#2"));
}

#[test]
fn per_split_stages_pair_with_per_split_sources() {
    let d = tempfile::tempdir().unwrap();
    let text = recipe("")
        .replacen(
            "    label: \"Teacher\"\n    model: teacher\n",
            "    label: \"Teacher\"\n    model: teacher\n    for_each: {split: [split25, split50]}\n",
            1,
        )
        .replacen(
            "    label: \"Student + KD\"\n    model: student\n",
            "    label: \"Student + KD\"\n    model: student\n    for_each: {split: [split25, split50]}\n",
            1,
        )
        .replacen(
            "    label: \"Student\"\n    model: student\n",
            "    label: \"Student\"\n    model: student\n    for_each: {split: [split25, split50]}\n",
            1,
        );
    let p = plan(d.path(), &text);
    assert!(line(&p, "train", "student@split25").contains("train:teacher@split25"));
    assert!(line(&p, "train", "student@split50").contains("train:teacher@split50"));
    // The INT8 stage inherits the splits of the model it quantizes.
    assert!(line(&p, "quantize", "student_int8@split50").contains("train:student@split50,"));

    // A student on a split its teacher did not run on is refused, naming both.
    let bad = text.replacen(
        "model: student\n    for_each: {split: [split25, split50]}\n    distill",
        "model: student\n    for_each: {split: [split25, split10]}\n    distill",
        1,
    );
    std::fs::write(d.path().join("recipe.yaml"), &bad).unwrap();
    let e = ascrepro_fails(d.path(), &["plan", "recipe.yaml", "--cache", "cache"]);
    assert!(
        e.contains("split10") && e.contains("`teacher`") && e.contains("recipe.yaml:"),
        "{e}"
    );
}

#[test]
fn bad_repeats_and_effects_are_refused_with_the_line() {
    let d = tempfile::tempdir().unwrap();
    let fails = |text: &str, needle: &str| {
        std::fs::write(d.path().join("recipe.yaml"), text).unwrap();
        let e = ascrepro_fails(d.path(), &["plan", "recipe.yaml", "--cache", "cache"]);
        let line = text.lines().position(|l| l.contains(needle)).unwrap() + 1;
        assert!(e.contains(&format!("recipe.yaml:{line}")), "{needle}: {e}");
        e
    };
    let e = fails(&recipe("    repeats: {seeds: 0}\n"), "seeds: 0");
    assert!(e.contains("seeds"), "{e}");
    let e = fails(
        &recipe("    repeats: {seeds: 2, except: [student_int8]}\n"),
        "except",
    );
    assert!(e.contains("trains nothing"), "{e}");
    let e = fails(
        &recipe("    repeats: {seeds: 2, except: [student]}\n"),
        "except",
    );
    assert!(e.contains("`student`"), "{e}");
    let e = fails(
        &recipe("").replacen("without: plain", "without: nobody", 1),
        "nobody",
    );
    assert!(e.contains("no stage `nobody`"), "{e}");
}

#[test]
fn a_repeated_run_reports_each_effect_and_row_over_its_seeds() {
    let d = tempfile::tempdir().unwrap();
    let log = run_recipe_ok(
        d.path(),
        &recipe("    repeats: {seeds: 2, except: [teacher]}\n"),
        "cache",
        "out",
    );
    assert_eq!(stage_status(&log, "train", "student#2"), "computed");
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.path().join("out/results.json")).unwrap()).unwrap();
    let effects = record["effects"].as_array().unwrap();
    assert_eq!(effects.len(), 1);
    let e = &effects[0];
    assert_eq!(e["pairs"].as_array().unwrap().len(), 2, "{e}");
    let diffs: Vec<f64> = e["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["with"].as_f64().unwrap() - p["without"].as_f64().unwrap())
        .collect();
    let mean = (diffs[0] + diffs[1]) / 2.0;
    assert!((e["mean"].as_f64().unwrap() - mean).abs() < 1e-9, "{e}");
    // Two seeds: t(1) = 12.7; the statement follows the interval, never the mean alone.
    let verdict = e["verdict"].as_str().unwrap();
    let [lo, hi] = [0, 1].map(|i| e["ci95"][i].as_f64().unwrap());
    assert_eq!(verdict == "not_established", lo <= 0.0 && hi >= 0.0, "{e}");
    // The published row is reproduced by the mean of the student's two seeds.
    let accuracy = |id: &str| {
        record["systems"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .unwrap()["evaluation"]["accuracy"]
            .as_f64()
            .unwrap()
    };
    let mean_acc = 50.0 * (accuracy("student") + accuracy("student#2"));
    let html = std::fs::read_to_string(d.path().join("out/index.html")).unwrap();
    assert!(
        html.contains("mean of 2 training seeds"),
        "the row names its seeds"
    );
    assert!(
        html.contains(&format!("{mean_acc:.1}")),
        "mean {mean_acc:.1} shown"
    );
    assert!(html.contains("seed sd"));

    // Without repeats the first seed's runs come from the cache.
    let log = run_recipe_ok(d.path(), &recipe(""), "cache", "out1");
    for id in ["teacher", "plain", "student"] {
        assert_eq!(stage_status(&log, "train", id), "cached", "{log}");
    }
    let one: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.path().join("out1/results.json")).unwrap())
            .unwrap();
    assert!(one["effects"][0]["statement"]
        .as_str()
        .unwrap()
        .contains("not established"));
}
