//! The stage engine's capabilities chained on tiny synthetic data (tests/fixtures/chain.yaml):
//! multi-label pre-training, init without the classifier, `select: best`, KD from an ensemble,
//! KD from a stage and from its exported logits file (same student bit for bit), a released
//! checkpoint evaluated like the model it was saved from, device-specific fine-tuning with routed
//! evaluation, one stage per training split, and a fully cached second run.

mod common;
use ascrepro::runner::{run, RunOptions, RunOutcome};
use ascrepro_results::columns::PublishedColumn;
use ascrepro_results::published;
use ascrepro_results::record::RunRecord;
use common::{ascrepro, ascrepro_fails, run_python};
use std::path::Path;

const CHAIN: &str = include_str!("fixtures/chain.yaml");
const ZERO: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn recipe(released: &str, logits: &str) -> String {
    CHAIN
        .replace("RELEASED_SHA256", released)
        .replace("LOGITS_SHA256", logits)
}

fn run_profile(d: &Path, text: &str, profile: &str) -> RunOutcome {
    std::fs::write(d.join("chain.yaml"), text).unwrap();
    run(&RunOptions {
        cache: Some(d.join("cache")),
        out: Some(d.join(format!("out-{profile}"))),
        data_root: Some(d.join("data")),
        quiet: true,
        ..RunOptions::new(d.join("chain.yaml"), profile)
    })
    .unwrap_or_else(|e| panic!("profile {profile}: {e}"))
}

/// SHA-256 of stage `kind:id`'s output `file` in a run's record.
fn output(record: &RunRecord, kind: &str, id: &str, file: &str) -> String {
    let s = record
        .stages
        .iter()
        .find(|s| s.kind == kind && s.id == id)
        .unwrap_or_else(|| panic!("no stage {kind}:{id}"));
    s.outputs[file].clone()
}

#[test]
fn every_capability_chains_and_a_second_run_is_cached() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::create_dir_all(d.join("data/released")).unwrap();
    let text = recipe(ZERO, ZERO);
    let first = run_profile(d, &text, "demo");
    let systems: Vec<&str> = first.record.systems.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        systems,
        [
            "general",
            "t1",
            "t2",
            "kd_ensemble",
            "kd",
            "per_device",
            "per_split@split50",
            "per_split@split100"
        ]
    );
    // The routed system: devices a and s1 by their own models, every other by `kd`'s.
    let routed = &first.record.systems[5];
    assert!(
        routed.model.contains("routed by device id"),
        "{}",
        routed.model
    );
    let kd = &first.record.systems[4];
    for (device, score) in &routed.evaluation.device_accuracy {
        if device != "a" && device != "s1" {
            assert_eq!(score, &kd.evaluation.device_accuracy[device], "{device}");
        }
    }
    let (s50, s100) = (&first.record.systems[6], &first.record.systems[7]);
    assert_eq!(s50.split.as_deref(), Some("split50"));
    assert!(s50.training.contains("on training split split50") && s50.training.contains("lr 0.01"));
    assert!(s100.training.contains("lr 0.005"), "{}", s100.training);
    let scene_features: Vec<&str> = first
        .record
        .stages
        .iter()
        .filter(|s| s.kind == "features" && !s.id.contains("pre-training"))
        .map(|s| s.outputs["train.safetensors"].as_str())
        .collect();
    assert_eq!(
        scene_features.len(),
        3,
        "one features node per split, one for the whole split"
    );
    assert!(scene_features[0] != scene_features[1] && scene_features[1] != scene_features[2]);
    // The split-keyed published row is reproduced by the per-split systems.
    let row = &first.record.published[0];
    assert_eq!(row.reproduced_by.as_deref(), Some("per_split"));
    let column = |key: &str| -> PublishedColumn { key.parse().unwrap() };
    let at = |key: &str| published::reproduced(row, &column(key), &first.record.systems).unwrap();
    assert_eq!(at("split50"), 100.0 * s50.evaluation.accuracy);
    assert_eq!(at("split100"), 100.0 * s100.evaluation.accuracy);
    assert_eq!(at("split_mean"), (at("split50") + at("split100")) / 2.0);
    let html = std::fs::read_to_string(d.join("out-demo/index.html")).unwrap();
    assert!(
        html.contains("run once per training split"),
        "the report shows the split row"
    );
    let general = &first.record.systems[0];
    assert!(
        general
            .training
            .contains("initialised from `pre` (without its classifier)")
            && general
                .notes
                .iter()
                .any(|n| n.contains("best macro accuracy on the validation split")),
        "{general:?}"
    );
    let ensemble = &first.record.systems[3];
    assert!(
        ensemble.training.contains("the mean logits of `t1`, `t2`"),
        "{}",
        ensemble.training
    );

    // Nothing changed: everything is cached.
    let again = run_profile(d, &text, "demo");
    assert_eq!(again.computed, 0, "{:?}", again.timings);

    // The teacher's logits, exported, teach the same student bit for bit.
    let export = ascrepro(
        d,
        &[
            "logits",
            "chain.yaml",
            "--stage",
            "t1",
            "--out",
            "data/t1_logits.csv",
            "--cache",
            "cache",
            "--data-root",
            "data",
            "--quiet",
        ],
    );
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    let sha = String::from_utf8(export.stdout).unwrap();
    let sha = sha.split_whitespace().next().unwrap().to_string();
    let from_file = run_profile(d, &recipe(ZERO, &sha), "from_file");
    let kd_stage = from_file
        .record
        .systems
        .iter()
        .find(|s| s.id == "kd")
        .unwrap();
    assert!(
        kd_stage.training.contains("logits file `t1_logits.csv`"),
        "{}",
        kd_stage.training
    );
    assert_eq!(
        output(&first.record, "train", "kd", "model.safetensors"),
        output(&from_file.record, "train", "kd", "model.safetensors"),
        "the student distilled from the exported logits differs from the one distilled from the stage"
    );
    // Unpinned (no `sha256`: files only whoever runs the recipe can make), the run pins the
    // file it reads: the same stage identity, hence the cached student.
    let unpinned = recipe(ZERO, &sha).replace(&format!(", sha256: {sha}}}"), "}");
    assert_ne!(unpinned, recipe(ZERO, &sha));
    let pinned_by_run = run_profile(d, &unpinned, "from_file");
    assert_eq!(
        pinned_by_run.computed, 1,
        "only the report: {:?}",
        pinned_by_run.timings
    );
    // A changed file is a different teacher: the student retrains.
    let logits_file = d.join("data/t1_logits.csv");
    let original = std::fs::read(&logits_file).unwrap();
    let mut changed = original.clone();
    let at = changed.iter().rposition(u8::is_ascii_digit).unwrap();
    changed[at] = if changed[at] == b'1' { b'2' } else { b'1' };
    std::fs::write(&logits_file, &changed).unwrap();
    let retrained = run_profile(d, &unpinned, "from_file");
    assert!(retrained.computed >= 2, "{:?}", retrained.timings);
    std::fs::write(&logits_file, &original).unwrap();

    // A released checkpoint (the student saved as a plain PyTorch state dict) is evaluated
    // exactly like the model it came from.
    let kd_weights = std::fs::read_dir(d.join("cache/stages"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            let h = output(&first.record, "train", "kd", "model.safetensors");
            p.join("model.safetensors").is_file()
                && common::sha256_file(&p.join("model.safetensors")) == h
        })
        .unwrap()
        .join("model.safetensors");
    let pth = d.join("data/released/student.pth");
    run_python(
        "state_dict_from_safetensors.py",
        [kd_weights.as_os_str(), pth.as_os_str()],
    );
    let released_sha = common::sha256_file(&pth);
    let released = run_profile(d, &recipe(&released_sha, &sha), "released");
    // With per-device checkpoints the stage's id names the routed system; its general model
    // is evaluated alone as `<id>/general`.
    let system = |id: &str| {
        released
            .record
            .systems
            .iter()
            .find(|s| s.id == id)
            .unwrap_or_else(|| panic!("no system {id}"))
    };
    let rel = system("released/general");
    let routed = system("released");
    assert_eq!(routed.evaluation, rel.evaluation);
    let kd = first.record.systems.iter().find(|s| s.id == "kd").unwrap();
    assert_eq!(rel.evaluation, kd.evaluation);

    // The wrong architecture or a wrong hash is refused, naming the file.
    std::fs::write(
        d.join("chain.yaml"),
        recipe(&released_sha, &sha).replace(
            "    model: student\n    checkpoint:",
            "    model: teacher\n    checkpoint:",
        ),
    )
    .unwrap();
    let args = [
        "run",
        "chain.yaml",
        "--profile",
        "released",
        "--cache",
        "cache",
        "--out",
        "out-bad",
        "--data-root",
        "data",
        "--quiet",
    ];
    let e = ascrepro_fails(d, &args);
    assert!(
        e.contains("student.pth") && e.contains("does not fit model"),
        "{e}"
    );
    std::fs::write(d.join("chain.yaml"), recipe(ZERO, &sha)).unwrap();
    let e = ascrepro_fails(d, &args);
    assert!(e.contains("student.pth") && e.contains("SHA-256"), "{e}");
    let mut args = args.to_vec();
    args[3] = "from_file";
    std::fs::write(d.join("chain.yaml"), recipe(ZERO, ZERO)).unwrap();
    let e = ascrepro_fails(d, &args);
    assert!(e.contains("t1_logits.csv"), "{e}");
}

/// The `paper` path of pre-training: a copy in AudioSet's own layout under the data root,
/// verified against its manifest, trains the same stage kind; a changed file is refused by name.
#[test]
fn pretraining_reads_an_audioset_layout_copy_verified_by_its_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("chain.yaml"), recipe(ZERO, ZERO)).unwrap();
    let ok = |args: &[&str]| {
        let o = ascrepro(d, args);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    ok(&[
        "synth-multilabel",
        "--out",
        "data/audioset",
        "--clips",
        "24",
        "--eval-clips",
        "12",
    ]);
    ok(&[
        "manifest",
        "create",
        "data/audioset",
        "--out",
        "audioset.yaml",
    ]);
    let args = [
        "run",
        "chain.yaml",
        "--profile",
        "audioset",
        "--cache",
        "cache",
        "--out",
        "out",
        "--data-root",
        "data",
        "--quiet",
    ];
    ok(&args);
    let results = std::fs::read_to_string(d.join("out/results.json")).unwrap();
    assert!(results.contains("\"kind\": \"pretrain\""), "{results}");
    // A clip changed after its manifest was made is named.
    let clip = std::fs::read_dir(d.join("data/audioset/audio"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .min()
        .unwrap();
    let mut bytes = std::fs::read(&clip).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&clip, bytes).unwrap();
    let e = ascrepro_fails(d, &args);
    let name = clip.file_name().unwrap().to_string_lossy().to_string();
    assert!(e.contains(&name), "{e}");
}
