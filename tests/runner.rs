//! End-to-end runner behaviour on the tiny fixture recipe: caching, selective re-runs, exact
//! resume after a kill, and byte-identical reports from independent runs.

mod common;
use common::{ascrepro, run_killed_after_epoch, run_recipe_ok, stage_status};
use std::path::{Path, PathBuf};

const TINY: &str = include_str!("fixtures/tiny.yaml");

fn sums(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap()
}

#[test]
fn cache_reuse_selective_rerun_and_identical_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let first = run_recipe_ok(d, TINY, "cache-a", "out-a");
    assert_eq!(stage_status(&first, "train", "teacher"), "computed");
    assert!(d.join("out-a/index.html").is_file());

    // Nothing changed: nothing recomputed, and the log says so.
    let again = run_recipe_ok(d, TINY, "cache-a", "out-a");
    assert!(
        again.contains("stages were cached: nothing recomputed"),
        "{again}"
    );

    // An independent run into empty directories gives the same checksums.
    run_recipe_ok(d, TINY, "cache-b", "out-b");
    assert_eq!(sums(&d.join("out-a")), sums(&d.join("out-b")));
    let v = ascrepro(d, &["verify", "out-b"]);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));

    // One student hyper-parameter changes: the student and what follows rerun, the teacher does not.
    let changed = TINY.replace(
        "    distill: {teacher: {kind: stage, stage: teacher}, form: ce_plus_kl, lambda: 20, temperature: 5}",
        "    distill: {teacher: {kind: stage, stage: teacher}, form: ce_plus_kl, lambda: 10, temperature: 5}",
    );
    assert_ne!(changed, TINY);
    let log = run_recipe_ok(d, &changed, "cache-a", "out-a");
    assert_eq!(stage_status(&log, "train", "teacher"), "cached");
    assert_eq!(stage_status(&log, "evaluate", "teacher"), "cached");
    assert_eq!(stage_status(&log, "train", "student"), "computed");
    assert_eq!(stage_status(&log, "quantize", "student_int8"), "computed");
    assert_ne!(sums(&d.join("out-a")), sums(&d.join("out-b")));
}

#[test]
fn killed_training_resumes_to_the_uninterrupted_result() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let recipe = TINY.replace("  epochs: 2\n", "  epochs: 6\n");
    std::fs::write(d.join("recipe.yaml"), &recipe).unwrap();

    // Reference: uninterrupted.
    run_recipe_ok(d, &recipe, "cache-ref", "out-ref");

    // Interrupted: kill -9 once the teacher has checkpointed its second epoch.
    run_killed_after_epoch(d, "cache-int", "out-int", "train", 2);
    assert!(!d.join("out-int/SHA256SUMS").exists());

    let log = run_recipe_ok(d, &recipe, "cache-int", "out-int");
    assert_eq!(stage_status(&log, "data", "synth"), "cached");
    assert_eq!(sums(&d.join("out-int")), sums(&d.join("out-ref")));
}

/// The cache entry (directory) of the run's stage `kind` `id`, in the cache at `cache`.
fn cache_entry(
    outcome: &ascrepro::runner::RunOutcome,
    cache: &Path,
    kind: &str,
    id: &str,
) -> PathBuf {
    let s = outcome
        .record
        .stages
        .iter()
        .find(|s| s.kind == kind && s.id == id)
        .unwrap_or_else(|| panic!("no stage {kind} {id}"));
    ascrepro::runner::Cache::open(cache)
        .unwrap()
        .get(kind, &s.hash)
        .unwrap()
        .dir
}

/// (kind, id) of the stages a run computed, in order.
fn computed(o: &ascrepro::runner::RunOutcome) -> Vec<(String, String)> {
    o.timings
        .iter()
        .filter(|t| !t.cached)
        .map(|t| (t.kind.clone(), t.id.clone()))
        .collect()
}

#[test]
fn an_edit_recomputes_only_the_stages_that_depend_on_it() {
    use ascrepro::runner::{run, CodeIndex, RunOptions};
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let recipe = d.join("tiny.yaml");
    std::fs::write(&recipe, TINY).unwrap();
    let opts = |code: CodeIndex| RunOptions {
        cache: Some(d.join("cache")),
        out: Some(d.join("out")),
        quiet: true,
        code,
        ..RunOptions::new(&recipe, "demo")
    };
    let code = CodeIndex::embedded();
    let first = run(&opts(code.clone())).unwrap();
    assert_eq!(first.cached, 0, "{:?}", first.timings);

    // A template edit re-renders the report and recomputes nothing else.
    let template = run(&opts(code.clone().edited("templates/index.html").unwrap())).unwrap();
    assert_eq!(
        computed(&template),
        [("report".into(), "index.html".into())]
    );

    // A trainer edit retrains and re-evaluates; data, features and device simulation stay.
    let trainer = run(&opts(code.clone().edited("src/train/fit.rs").unwrap())).unwrap();
    let recomputed = computed(&trainer);
    let kinds: Vec<&str> = recomputed.iter().map(|(k, _)| k.as_str()).collect();
    for k in ["train", "evaluate", "quantize", "report"] {
        assert!(kinds.contains(&k), "{k} not recomputed: {kinds:?}");
    }
    for k in ["data", "features", "devsim"] {
        assert!(
            !kinds.contains(&k),
            "{k} recomputed by a trainer edit: {kinds:?}"
        );
    }

    // Renaming a row label retrains nothing: only the report changes.
    std::fs::write(
        &recipe,
        TINY.replace("label: \"Teacher\"", "label: \"Big teacher\""),
    )
    .unwrap();
    let renamed = run(&opts(code)).unwrap();
    assert_eq!(computed(&renamed), [("report".into(), "index.html".into())]);
    assert!(renamed
        .record
        .systems
        .iter()
        .any(|s| s.label == "Big teacher"));
}

#[test]
fn plan_lists_the_graph_and_computes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("tiny.yaml"), TINY).unwrap();
    let plan = |extra: &[&str]| {
        let mut args = vec!["plan", "tiny.yaml", "--cache", "cache", "--out", "out"];
        args.extend_from_slice(extra);
        let o = ascrepro(d, &args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let before = plan(&[]);
    for line in [
        "train      teacher",
        "train      student",
        "quantize   student_int8",
    ] {
        assert!(before.contains(line), "{line} missing:\n{before}");
    }
    assert!(
        before.contains("9 stages: 0 cached, 9 to compute"),
        "{before}"
    );
    assert!(!d.join("out").exists(), "plan wrote a report");
    let stages = std::fs::read_dir(d.join("cache/stages")).unwrap().count();
    assert_eq!(stages, 0, "plan computed something");

    run_recipe_ok(d, TINY, "cache", "out");
    assert!(plan(&[]).contains("9 stages: 9 cached, 0 to compute"));
    let edited = plan(&["--edited", "src/models/tfsepnet23.rs"]);
    assert!(edited.contains("data:synth"), "{edited}");
    assert!(
        edited.contains("9 stages: 3 cached, 6 to compute"),
        "{edited}"
    );

    // An invalid recipe is refused with its line, computing nothing.
    std::fs::write(
        d.join("bad.yaml"),
        TINY.replace("model: student", "model: nope"),
    )
    .unwrap();
    let o = ascrepro(d, &["plan", "bad.yaml"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("bad.yaml:") && err.contains("no model `nope`"),
        "{err}"
    );
}

/// The tiny recipe with device-specific models for `a` and `s1` fine-tuned from the teacher
/// (with DIR augmentation, which reads the selected clips' waveforms), and a published row for
/// them naming a device the development set lacks (`s7`).
fn per_device_recipe() -> String {
    let stage = r#"  - id: per_device
    kind: finetune_devices
    label: "Teacher, device-specific"
    from: teacher
    devices: [a, s1]
    training:
      epochs: 1
      schedule: {kind: cosine}
      optimizer: {kind: adam, lr: 0.001}
      device_simulation: null
      dir_augmentation: {p: 0.8}

published:
  - table: Table 2
    label: "With device-specific fine-tuning"
    stage: per_device
    values: {a: 67.6, s1: 58.3, s7: 55.0, accuracy: 59.5}
"#;
    let text = TINY.replacen("\npublished:\n", stage, 1).replace(
        "stages: [teacher, student, student_int8]",
        "stages: [teacher, per_device]",
    );
    assert!(text.contains("kind: finetune_devices") && text.contains("[teacher, per_device]"));
    text
}

#[test]
fn device_models_route_their_devices_clips_and_the_general_model_the_rest() {
    use ascrepro::data::tau;
    use ascrepro::runner::{run, RunOptions};
    use ascrepro::train::FeatureSet;
    use tch::{Device, Tensor};
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let recipe = d.join("devices.yaml");
    std::fs::write(&recipe, per_device_recipe()).unwrap();
    let opts = RunOptions {
        cache: Some(d.join("cache")),
        out: Some(d.join("out")),
        quiet: true,
        ..RunOptions::new(&recipe, "demo")
    };
    let first = run(&opts).unwrap();
    let ran: Vec<(String, String)> = computed(&first);
    for (kind, id) in [
        ("train", "teacher"),
        ("finetune", "per_device/a"),
        ("finetune", "per_device/s1"),
        ("evaluate", "per_device"),
    ] {
        assert!(
            ran.contains(&(kind.into(), id.into())),
            "{kind} {id} not computed: {ran:?}"
        );
    }

    // The cache entries of the run's stages.
    let entry = |kind: &str, id: &str| cache_entry(&first, &d.join("cache"), kind, id);
    let data = entry("data", "synth").join("data");
    let ds = tau::load(
        &data,
        "evaluation_setup/fold1_train.csv",
        "evaluation_setup/fold1_evaluate.csv",
    )
    .unwrap();
    let test = FeatureSet::load(&entry("features", "cpmel-128").join("test.safetensors")).unwrap();
    let logits_of = |dir: PathBuf| {
        let (_vs, _cfg, model) =
            ascrepro::models::load_weights(&dir.join("model.safetensors"), Device::Cpu).unwrap();
        ascrepro::eval::predict(model.as_ref(), &test, 256, Device::Cpu)
    };
    let general = logits_of(entry("train", "teacher"));
    let model_a = logits_of(entry("finetune", "per_device/a"));
    let model_s1 = logits_of(entry("finetune", "per_device/s1"));
    let routed =
        Tensor::read_safetensors(entry("evaluate", "per_device").join("routed_logits.safetensors"))
            .unwrap()
            .remove(0)
            .1;

    // Clip by clip: a's clips from a's model, s1's from s1's, every other device's from the
    // general model.
    let (a, s1) = (
        ds.devices.index("a").unwrap(),
        ds.devices.index("s1").unwrap(),
    );
    let mut others = 0;
    for (i, clip) in ds.test.iter().enumerate() {
        assert_eq!(test.device[i], clip.device as i64);
        let expected = match clip.device {
            x if x == a => &model_a,
            x if x == s1 => &model_s1,
            _ => {
                others += 1;
                &general
            }
        };
        let i = i as i64;
        assert!(
            routed.get(i).equal(&expected.get(i)),
            "clip {i} ({}) not routed to its model",
            ds.device_name(clip)
        );
    }
    assert!(others > 0, "the test split has only routed devices");
    assert!(!model_a.equal(&general), "fine-tuning changed nothing");

    // The report: the routed system beside the general one, keyed by device, with the number
    // of training clips each device model learned from.
    let systems = &first.record.systems;
    let general_row = systems.iter().find(|s| s.id == "teacher").unwrap();
    let routed_row = systems.iter().find(|s| s.id == "per_device").unwrap();
    assert_eq!(
        routed_row.evaluation,
        ascrepro::eval::metrics(&routed, &test.y, &test.device, &ds.devices)
    );
    assert_eq!(
        routed_row.evaluation.device_accuracy["s4"],
        general_row.evaluation.device_accuracy["s4"]
    );
    assert!(routed_row.model.contains("routed by device id"));
    for (device, index) in [("a", a), ("s1", s1)] {
        let clips = ds.train.iter().filter(|c| c.device == index).count();
        let note =
            format!("device {device}: its own model, fine-tuned on its {clips} training clips");
        assert!(routed_row.notes.contains(&note), "{:?}", routed_row.notes);
    }
    let published = std::fs::read_to_string(d.join("out/index.html")).unwrap();
    assert!(
        published.contains(">S7</th>"),
        "published device column missing"
    );

    // A second run computes nothing.
    let again = run(&opts).unwrap();
    assert!(computed(&again).is_empty(), "{:?}", computed(&again));
}

#[test]
fn a_half_stage_evaluates_the_half_rounded_model_at_two_bytes_per_parameter() {
    use ascrepro::compress::half::HalfModel;
    use ascrepro::runner::{run, RunOptions};
    use ascrepro::train::FeatureSet;
    use ascrepro_results::record::Precision;
    use tch::Device;
    let stage = r#"  - id: teacher_fp16
    kind: half
    label: "Teacher, fp16"
    from: teacher

published:
"#;
    let text = TINY.replacen("\npublished:\n", stage, 1).replace(
        "stages: [teacher, student, student_int8]",
        "stages: [teacher, teacher_fp16]",
    );
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let recipe = d.join("half.yaml");
    std::fs::write(&recipe, text).unwrap();
    let opts = RunOptions {
        cache: Some(d.join("cache")),
        out: Some(d.join("out")),
        quiet: true,
        ..RunOptions::new(&recipe, "demo")
    };
    let outcome = run(&opts).unwrap();
    let system = |id: &str| {
        outcome
            .record
            .systems
            .iter()
            .find(|s| s.id == id)
            .unwrap_or_else(|| panic!("no system {id}"))
            .clone()
    };
    let (fp32, fp16) = (system("teacher"), system("teacher_fp16"));
    assert_eq!(fp16.precision, Precision::Fp16);
    assert_eq!(fp16.complexity.params, fp32.complexity.params);
    assert_eq!(
        fp16.complexity.param_bytes(fp16.precision.bits()),
        2 * fp16.complexity.params
    );

    // Its evaluation is that of the teacher's weights rounded to half, not of the teacher.
    let entry = |kind: &str, id: &str| cache_entry(&outcome, &d.join("cache"), kind, id);
    let test = FeatureSet::load(&entry("features", "cpmel-128").join("test.safetensors")).unwrap();
    let weights = entry("train", "teacher").join("model.safetensors");
    let (vs, _cfg, net) = ascrepro::models::load_net(&weights, Device::Cpu).unwrap();
    let (_, _, fp32_model) = ascrepro::models::load_weights(&weights, Device::Cpu).unwrap();
    let logits = ascrepro::eval::predict(&HalfModel::new(vs, net), &test, 256, Device::Cpu);
    let fp32_logits = ascrepro::eval::predict(fp32_model.as_ref(), &test, 256, Device::Cpu);
    assert!(!logits.equal(&fp32_logits), "fp16 logits equal fp32 ones");
    let ds = ascrepro::data::tau::load(
        &entry("data", "synth").join("data"),
        "evaluation_setup/fold1_train.csv",
        "evaluation_setup/fold1_evaluate.csv",
    )
    .unwrap();
    let want = ascrepro::eval::metrics(&logits, &test.y, &test.device, &ds.devices);
    assert_eq!(fp16.evaluation.log_loss, want.log_loss);
    assert_eq!(fp16.evaluation.confusion, want.confusion);
}
