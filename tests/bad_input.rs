//! Bad input gets one clear error naming the file, line or field, a non-zero exit, and no panic.

mod common;
use common::{ascrepro, ascrepro_fails};
use std::path::Path;

const TINY: &str = include_str!("fixtures/tiny.yaml");

fn run_recipe(dir: &Path, text: &str) -> String {
    std::fs::write(dir.join("r.yaml"), text).unwrap();
    ascrepro_fails(
        dir,
        &[
            "run", "r.yaml", "--cache", "cache", "--out", "out", "--quiet",
        ],
    )
}

#[test]
fn malformed_yaml_names_file_and_line() {
    let d = tempfile::tempdir().unwrap();
    let e = run_recipe(d.path(), "id: x\nmodels: [unclosed\ntitle: y\n");
    assert!(e.contains("r.yaml:"), "{e}");
    assert!(e.contains(":2") || e.contains(":3"), "{e}");
}

#[test]
fn unknown_field_names_field_and_line() {
    let d = tempfile::tempdir().unwrap();
    let text = TINY.replace("  batch_size: 16\n", "  batch_size: 16\n  batch_sise: 3\n");
    let line = text.lines().position(|l| l.contains("batch_sise")).unwrap() + 1;
    let e = run_recipe(d.path(), &text);
    assert!(e.contains("batch_sise"), "{e}");
    assert!(
        e.contains(&format!("r.yaml:{line}")),
        "expected line {line}: {e}"
    );
}

#[test]
fn wrong_type_names_line() {
    let d = tempfile::tempdir().unwrap();
    let text = TINY.replace("  epochs: 2\n", "  epochs: many\n");
    let line = text
        .lines()
        .position(|l| l.contains("epochs: many"))
        .unwrap()
        + 1;
    let e = run_recipe(d.path(), &text);
    assert!(
        e.contains(&format!("r.yaml:{line}")),
        "expected line {line}: {e}"
    );
}

#[test]
fn missing_reference_names_field_and_line() {
    let d = tempfile::tempdir().unwrap();
    let text = TINY.replace(
        "teacher: {kind: stage, stage: teacher},",
        "teacher: {kind: stage, stage: nobody},",
    );
    let line = text
        .lines()
        .position(|l| l.contains("stage: nobody"))
        .unwrap()
        + 1;
    let e = run_recipe(d.path(), &text);
    assert!(
        e.contains("nobody") && e.contains("stages.1.distill"),
        "{e}"
    );
    assert!(
        e.contains(&format!("r.yaml:{line}")),
        "expected line {line}: {e}"
    );
}

#[test]
fn path_escaping_the_data_root_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let text = TINY.replace(
        "profiles:\n",
        "profiles:\n  paper:\n    note: x\n    data:\n      kind: tau2022\n      root: ../../etc\n      manifest: m.yaml\n      train_split: a.csv\n      test_split: b.csv\n    stages: [teacher]\n",
    );
    let line = text.lines().position(|l| l.contains("../../etc")).unwrap() + 1;
    let e = run_recipe(d.path(), &text);
    assert!(
        e.contains("profiles.paper.data.root") && e.contains("stay inside"),
        "{e}"
    );
    assert!(
        e.contains(&format!("r.yaml:{line}")),
        "expected line {line}: {e}"
    );
}

/// A tau2022-layout dataset under `dir/data/ds` with its manifest at `dir/ds.yaml`, and a recipe
/// whose `paper` profile reads it.
fn real_layout(dir: &Path) -> String {
    common::tiny_tau_dataset(dir, 2);
    TINY.replace(
        "profiles:\n",
        "profiles:\n  paper:\n    note: x\n    data:\n      kind: tau2022\n      root: ds\n      manifest: ds.yaml\n      train_split: evaluation_setup/fold1_train.csv\n      test_split: evaluation_setup/fold1_evaluate.csv\n      irs_root: ds/irs\n      irs_manifest: irs.yaml\n    stages: [teacher]\n",
    )
}

/// Runs the `paper` profile of `dir/r.yaml`, which must fail.
fn run_paper(dir: &Path) -> String {
    ascrepro_fails(
        dir,
        &[
            "run",
            "r.yaml",
            "--profile",
            "paper",
            "--cache",
            "cache",
            "--quiet",
        ],
    )
}

fn first_wav(dir: &Path) -> std::path::PathBuf {
    let mut wavs: Vec<_> = std::fs::read_dir(dir.join("data/ds/audio"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    wavs.sort();
    wavs.remove(0)
}

fn manifests(dir: &Path) {
    for (sub, out) in [("data/ds", "ds.yaml"), ("data/ds/irs", "irs.yaml")] {
        let o = ascrepro(dir, &["manifest", "create", sub, "--out", out]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
}

#[test]
fn data_changed_after_its_manifest_names_the_file() {
    let d = tempfile::tempdir().unwrap();
    let recipe = real_layout(d.path());
    manifests(d.path());
    let wav = first_wav(d.path());
    let mut bytes = std::fs::read(&wav).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    std::fs::write(&wav, bytes).unwrap();
    std::fs::write(d.path().join("r.yaml"), recipe).unwrap();
    let e = run_paper(d.path());
    let name = wav.file_name().unwrap().to_string_lossy().to_string();
    assert!(e.contains(&name), "{e}");
}

#[test]
fn corrupt_wav_names_the_file() {
    let d = tempfile::tempdir().unwrap();
    let recipe = real_layout(d.path());
    let wav = first_wav(d.path());
    std::fs::write(&wav, b"RIFF\x10\x00\x00\x00WAVEnot really audio").unwrap();
    // The manifest matches the corrupt file, so the failure comes from decoding it.
    manifests(d.path());
    std::fs::write(d.path().join("r.yaml"), recipe).unwrap();
    let e = run_paper(d.path());
    let name = wav.file_name().unwrap().to_string_lossy().to_string();
    assert!(e.contains(&name), "{e}");
}

#[test]
fn missing_recipe_and_unknown_profile() {
    let d = tempfile::tempdir().unwrap();
    let e = ascrepro_fails(d.path(), &["run", "nope.yaml"]);
    assert!(e.contains("nope.yaml"), "{e}");
    std::fs::write(d.path().join("r.yaml"), TINY).unwrap();
    let e = ascrepro_fails(d.path(), &["run", "r.yaml", "--profile", "papr"]);
    assert!(e.contains("papr"), "{e}");
}

/// Optimiser, schedule, resampler, stage, distillation and data kinds are typed: an unknown
/// value is a parse error naming the file, line and field and listing the valid ones; there is
/// no fallback.
#[test]
fn unknown_kinds_name_file_line_field_and_the_valid_ones() {
    let d = tempfile::tempdir().unwrap();
    for (from, to, field, valid) in [
        (
            "optimizer: {kind: adam,",
            "optimizer: {kind: sgd,",
            "training.optimizer.kind",
            "`adam` or `adamw`",
        ),
        (
            "schedule: {kind: warmup_cosine,",
            "schedule: {kind: step,",
            "training.schedule.kind",
            "`warmup_cosine`, `cosine`, `sgdr`",
        ),
        (
            "resampler: librosa",
            "resampler: sox",
            "resampler",
            "`torchaudio` or `librosa`",
        ),
        (
            "    kind: quantize",
            "    kind: sparsify",
            "stages[2].kind",
            "`train`, `quantize`, `half`, `pretrain`, `released`, `finetune_devices`, `prune`",
        ),
        (
            "form: ce_plus_kl,",
            "form: mse,",
            "stages[1].distill.form",
            "`ce_plus_kl` or `weighted`",
        ),
        (
            "teacher: {kind: stage,",
            "teacher: {kind: oracle,",
            "stages[1].distill.teacher.kind",
            "`stage`, `ensemble`, `logits`",
        ),
        (
            "    model: teacher\n",
            "    model: teacher\n    select: first\n",
            "stages[0].select",
            "`last` or `best`",
        ),
        (
            "      kind: synth",
            "      kind: tau2019",
            "profiles.demo.data.kind",
            "`tau2022` or `synth`",
        ),
    ] {
        let text = TINY.replace(from, to);
        assert_ne!(text, TINY, "{from}");
        let needle = to.trim_end().lines().last().unwrap();
        let line = text.lines().position(|l| l.contains(needle)).unwrap() + 1;
        let e = run_recipe(d.path(), &text);
        assert!(
            e.contains(&format!("r.yaml:{line}: {field}: unknown variant")) && e.contains(valid),
            "{e}"
        );
    }
    // A schedule's own fields are checked too.
    let text = TINY.replace(
        "schedule: {kind: warmup_cosine, warmup_epochs: 1}",
        "schedule: {kind: sgdr, t0: 0, t_mult: 2}",
    );
    let e = run_recipe(d.path(), &text);
    assert!(e.contains("training.schedule") && e.contains("t0"), "{e}");
}

/// A split the profile does not name, and `split` with `for_each`, are refused with the line.
#[test]
fn unknown_splits_are_refused_with_the_line() {
    let d = tempfile::tempdir().unwrap();
    let text = TINY.replacen(
        "    label: \"Student + KD\"\n    model: student\n",
        "    label: \"Student + KD\"\n    model: student\n    for_each: {split: [split50, split7]}\n",
        1,
    );
    let line = text.lines().position(|l| l.contains("split7")).unwrap() + 1;
    let e = run_recipe(d.path(), &text);
    assert!(
        e.contains(&format!("r.yaml:{line}")) && e.contains("no split `split7`"),
        "{e}"
    );
    let text = TINY.replacen(
        "    label: \"Student + KD\"\n    model: student\n",
        "    label: \"Student + KD\"\n    model: student\n    split: split50\n    for_each: {split: [split50]}\n",
        1,
    );
    let e = run_recipe(d.path(), &text);
    assert!(e.contains("not both"), "{e}");
}

/// A finetune_devices stage's references, devices and fields are checked before anything runs.
#[test]
fn bad_finetune_devices_stages_name_file_line_and_field() {
    let d = tempfile::tempdir().unwrap();
    let recipe = |body: &str| {
        let stage = format!(
            "  - id: per_device\n    kind: finetune_devices\n    label: \"Per device\"\n{body}\npublished:\n"
        );
        let text = TINY.replacen("\npublished:\n", &stage, 1);
        assert_ne!(text, TINY);
        text
    };
    let ok = "    from: teacher\n    devices: [a, s1]\n    training: {device_simulation: null}\n";
    for (body, marker, field, says) in [
        (
            ok.replace("from: teacher", "from: nobody"),
            "from: nobody",
            "stages.3.from",
            "no stage `nobody`",
        ),
        (
            ok.replace("from: teacher", "from: student_int8"),
            "from: student_int8",
            "stages.3.from",
            "must be a train stage",
        ),
        (
            ok.replace("[a, s1]", "[]"),
            "devices: []",
            "stages.3.devices",
            "at least one device",
        ),
        (
            ok.replace("[a, s1]", "[a, s1, a]"),
            "devices: [a, s1, a]",
            "stages.3.devices.2",
            "listed twice",
        ),
        (
            format!("{ok}    epochs: 3\n"),
            "epochs: 3",
            "stages[3].epochs",
            "unknown field `epochs`",
        ),
        (
            ok.replace("device_simulation: null", "mixup: null"),
            "training: {mixup: null}",
            "stages.3.training.device_simulation",
            "set `device_simulation: null`",
        ),
        (
            format!(
                "{ok}  - id: routed_int8\n    kind: quantize\n    label: x\n    from: per_device\n"
            ),
            "from: per_device",
            "stages.4.from",
            "is a finetune_devices stage",
        ),
    ] {
        let text = recipe(&body);
        let line = text.lines().position(|l| l.contains(marker)).unwrap() + 1;
        let e = run_recipe(d.path(), &text);
        assert!(
            e.contains(&format!("r.yaml:{line}")) && e.contains(field) && e.contains(says),
            "expected line {line}, `{field}`, `{says}`: {e}"
        );
    }
}

/// A half stage deploys one model: a train or released stage listed before it.
#[test]
fn a_half_stage_names_a_model_stage_before_it() {
    let d = tempfile::tempdir().unwrap();
    for (from, says) in [
        ("student_int8", "must be a train or released or prune stage"),
        ("nobody", "no stage `nobody`"),
    ] {
        let stage = format!(
            "  - id: fp16\n    kind: half\n    label: \"fp16\"\n    from: {from}\n\npublished:\n"
        );
        let text = TINY.replacen("\npublished:\n", &stage, 1);
        let line = text
            .lines()
            .position(|l| l.contains(&format!("from: {from}")))
            .unwrap()
            + 1;
        let e = run_recipe(d.path(), &text);
        assert!(
            e.contains(&format!("r.yaml:{line}"))
                && e.contains("stages.3.from")
                && e.contains(says),
            "expected line {line}, `{says}`: {e}"
        );
    }
}

/// Published columns are typed: an unknown column, a misspelt scene class and a row missing
/// its subset in a table printed one row per subset are refused, naming file, line and field.
#[test]
fn bad_published_columns_name_file_line_and_field() {
    let d = tempfile::tempdir().unwrap();
    let row = "values: {a: 64.4, s4: 53.5, accuracy: 53.9, macs_m: 0.5, params_k: 1.0}";
    assert!(TINY.contains(row));
    for (column, field, says) in [
        (
            "Acc",
            "published[0].values.Acc",
            "unknown column `Acc`; a column is a device id",
        ),
        (
            "metro_staton",
            "published[0].values.metro_staton",
            "unknown column `metro_staton` (did you mean `metro_station`?",
        ),
        (
            "airprot",
            "published[0].values.airprot",
            "(did you mean `airport`?",
        ),
    ] {
        let text = TINY.replace(row, &row.replace("s4:", &format!("{column}:")));
        let line = text.lines().position(|l| l.contains(column)).unwrap() + 1;
        let e = run_recipe(d.path(), &text);
        assert!(e.contains(&format!("r.yaml:{line}: {field}: ")), "{e}");
        assert!(e.contains(says), "{e}");
        // The message lists the valid kinds.
        for kind in [
            "a scene class (airport",
            "a DCASE2024 training subset",
            "log_loss",
        ] {
            assert!(e.contains(kind), "{e}");
        }
    }

    // A second row of the same table names its subset: the table is printed one row per
    // subset, and the first row, which names none, is refused at its own line.
    let text = TINY.replace(
        "profiles:\n",
        "  - table: Table 3\n    label: \"Student + KD, 25 %\"\n    split: split25\n    values: {accuracy: 57.9}\n\nprofiles:\n",
    );
    let line = text
        .lines()
        .position(|l| l.contains("- table: Table 3"))
        .unwrap()
        + 1;
    let e = run_recipe(d.path(), &text);
    assert!(
        e.contains(&format!("r.yaml:{line}: field `published.0.split`")),
        "{e}"
    );
    assert!(
        e.contains("one row per training subset") && e.contains("split25"),
        "{e}"
    );

    // A subset the challenge does not have, and fractions out of range.
    let text = TINY.replace(
        "  - table: Table 3\n",
        "  - table: Table 3\n    split: split30\n",
    );
    let e = run_recipe(d.path(), &text);
    assert!(
        e.contains("published[0].split: unknown variant `split30`"),
        "{e}"
    );
    let text = TINY.replace(
        "  - table: Table 3\n",
        "  - table: Table 3\n    accuracy_unit: fraction\n",
    );
    let e = run_recipe(d.path(), &text);
    assert!(
        e.contains("field `published.0.values.a`") && e.contains("as a fraction (0–1)"),
        "{e}"
    );
}

/// A quantize stage whose source architecture cannot run on the INT8 engine is refused before
/// anything trains, naming the file, line and field and why.
#[test]
fn a_quantize_stage_of_an_architecture_without_lowering_is_refused_at_planning() {
    let d = tempfile::tempdir().unwrap();
    let text = TINY
        .replacen(
            "models:\n",
            "models:\n  cp:\n    arch: cp_mobile\n    width: 8\n",
            1,
        )
        .replacen(
            "\npublished:\n",
            "  - id: cp_base\n    kind: train\n    label: \"cp\"\n    model: cp\n  - id: cp_int8\n    kind: quantize\n    label: \"cp int8\"\n    from: cp_base\n\npublished:\n",
            1,
        )
        .replacen(
            "stages: [teacher, student, student_int8]",
            "stages: [teacher, student, student_int8, cp_base, cp_int8]",
            1,
        );
    let line = text
        .lines()
        .position(|l| l.contains("from: cp_base"))
        .unwrap()
        + 1;
    let e = run_recipe(d.path(), &text);
    assert!(
        e.contains(&format!("r.yaml:{line}"))
            && e.contains("stages.4.from")
            && e.contains("no operator-graph lowering"),
        "expected line {line}: {e}"
    );
    assert!(
        !e.contains("computed"),
        "nothing runs before the plan is refused: {e}"
    );
}
