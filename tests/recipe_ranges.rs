//! Every numeric recipe field has a range, duplicate keys are refused, errors from a profile's
//! `set` point at the override, and the pure reader survives hostile text. Each refusal names
//! the file, the line and the field.

use ascrepro::recipe;
use std::path::Path;

const TINY: &str = include_str!("fixtures/tiny.yaml");

/// `TINY` with `from` replaced by `to` (which must occur).
fn edit(from: &str, to: &str) -> String {
    assert!(TINY.contains(from), "the fixture has no `{from}`");
    TINY.replacen(from, to, 1)
}

/// 1-based line of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with `{needle}`"))
        + 1
}

/// The error of loading `text` as `r.yaml` with `profile`; `Ok` is reported as `None`.
fn load_error(text: &str, profile: &str) -> Option<String> {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("r.yaml");
    std::fs::write(&path, text).unwrap();
    recipe::load(&path, profile).err().map(|e| e.to_string())
}

/// One refusal to check: the edited text, the line the error must name (the first line holding
/// `at`), and words the error must contain (the field, the range).
struct Case {
    text: String,
    at: &'static str,
    words: Vec<&'static str>,
}

fn case(text: String, at: &'static str, words: &[&'static str]) -> Case {
    Case {
        text,
        at,
        words: words.to_vec(),
    }
}

/// Checks every case, then fails listing all that were accepted or badly reported.
fn check(cases: Vec<Case>) {
    let mut wrong = Vec::new();
    for c in &cases {
        let line = line_of(&c.text, c.at);
        match load_error(&c.text, "demo") {
            None => wrong.push(format!("accepted: `{}`", c.at)),
            Some(e) => {
                let located = e.contains(&format!("r.yaml:{line}:"));
                let missing: Vec<_> = c.words.iter().filter(|w| !e.contains(**w)).collect();
                if !located || !missing.is_empty() {
                    wrong.push(format!(
                        "`{}`: expected r.yaml:{line} and {missing:?} in: {e}",
                        c.at
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

#[test]
fn optimizer_values_must_be_finite_and_in_range() {
    let opt = "optimizer: {kind: adam, lr: 0.005}";
    check(vec![
        case(
            edit(opt, "optimizer: {kind: adam, lr: .inf}"),
            "lr: .inf",
            &["training.optimizer.lr", "(0, 10]"],
        ),
        case(
            edit(opt, "optimizer: {kind: adam, lr: 1e308}"),
            "lr: 1e308",
            &["training.optimizer.lr", "(0, 10]"],
        ),
        case(
            edit(opt, "optimizer: {kind: adam, lr: .nan}"),
            "lr: .nan",
            &["training.optimizer.lr", "(0, 10]"],
        ),
        case(
            edit(
                opt,
                "optimizer: {kind: adamw, lr: 0.005, weight_decay: .nan}",
            ),
            "weight_decay: .nan",
            &["training.optimizer.weight_decay", "[0, 10]"],
        ),
        case(
            edit(
                opt,
                "optimizer: {kind: adam, lr: 0.005, weight_decay: -0.1}",
            ),
            "weight_decay: -0.1",
            &["training.optimizer.weight_decay", "[0, 10]"],
        ),
        case(
            edit(opt, "optimizer: {kind: adam, lr: 0.005, betas: [2, -1]}"),
            "betas: [2, -1]",
            &["training.optimizer.betas.0", "[0, 1)"],
        ),
        case(
            edit(opt, "optimizer: {kind: adam, lr: 0.005, betas: [0.9, 1]}"),
            "betas: [0.9, 1]",
            &["training.optimizer.betas.1", "[0, 1)"],
        ),
    ]);
}

#[test]
fn augmentation_values_must_be_finite_and_bounded() {
    check(vec![
        case(
            edit("mixup: {alpha: 0.3}", "mixup: {alpha: .inf}"),
            "mixup: {alpha: .inf}",
            &["training.mixup.alpha", "(0, 100]"],
        ),
        case(
            edit(
                "freq_mixstyle: {alpha: 0.3, p: 0.5}",
                "freq_mixstyle: {alpha: .inf, p: 0.5}",
            ),
            "freq_mixstyle:",
            &["training.freq_mixstyle.alpha", "(0, 100]"],
        ),
        case(
            edit(
                "freq_mixstyle: {alpha: 0.3, p: 0.5}",
                "freq_mixstyle: {alpha: 0.3, p: .nan}",
            ),
            "freq_mixstyle:",
            &["training.freq_mixstyle.p", "[0, 1]"],
        ),
        case(
            edit(
                "device_simulation: {irs: 2, clips_per_ir: 6}",
                "device_simulation: {irs: 1000000, clips_per_ir: 6}",
            ),
            "device_simulation:",
            &["training.device_simulation.irs", "[1, 10000]"],
        ),
        case(
            edit(
                "device_simulation: {irs: 2, clips_per_ir: 6}",
                "device_simulation: {irs: 2, clips_per_ir: 100000000000}",
            ),
            "device_simulation:",
            &["training.device_simulation.clips_per_ir", "[1, 1000000]"],
        ),
        case(
            edit(
                "  validate_every: 1\n",
                "  validate_every: 1\n  dir_augmentation: {p: 0.5, irs: 1000000}\n",
            ),
            "dir_augmentation:",
            &["training.dir_augmentation.irs", "[1, 10000]"],
        ),
        case(
            edit(
                "  validate_every: 1\n",
                "  validate_every: 1\n  energy_ir:\n    irs: 1000000\n",
            ),
            "irs: 1000000",
            &["training.energy_ir.irs", "[1, 10000]"],
        ),
        case(
            edit(
                "  validate_every: 1\n",
                "  validate_every: 1\n  energy_ir:\n    levels: [{count: 1000000000}]\n",
            ),
            "levels:",
            &["training.energy_ir.levels.0.count", "[0, 1000]"],
        ),
        case(
            edit(
                "  validate_every: 1\n",
                "  validate_every: 1\n  spec_augment: {freq_masks: 1000000000, freq_width: 8}\n",
            ),
            "spec_augment:",
            &["training.spec_augment.freq_masks", "[0, 100]"],
        ),
        case(
            edit(
                "  validate_every: 1\n",
                "  validate_every: 1\n  time_roll: {max_frames: 100000000000}\n",
            ),
            "time_roll:",
            &["training.time_roll.max_frames", "[1, 100000]"],
        ),
    ]);
}

#[test]
fn distillation_lambda_and_temperature_must_be_finite() {
    let kd = "form: ce_plus_kl, lambda: 20, temperature: 5}";
    check(vec![
        case(
            edit(kd, "form: ce_plus_kl, lambda: .nan, temperature: 5}"),
            "lambda: .nan",
            &["stages.1.distill.lambda", "[0, 1000]"],
        ),
        case(
            edit(kd, "form: ce_plus_kl, lambda: .inf, temperature: 5}"),
            "lambda: .inf",
            &["stages.1.distill.lambda", "[0, 1000]"],
        ),
        case(
            edit(kd, "form: weighted, lambda: .nan, temperature: 5}"),
            "lambda: .nan",
            &["stages.1.distill.lambda", "[0, 1]"],
        ),
        case(
            edit(kd, "form: ce_plus_kl, lambda: 20, temperature: .inf}"),
            "temperature: .inf",
            &["stages.1.distill.temperature", "(0, 100]"],
        ),
        case(
            edit(kd, "form: ce_plus_kl, lambda: 20, temperature: .nan}"),
            "temperature: .nan",
            &["stages.1.distill.temperature", "(0, 100]"],
        ),
    ]);
}

#[test]
fn published_values_must_be_finite_and_in_the_column_range() {
    let row = "values: {a: 64.4, s4: 53.5, accuracy: 53.9, macs_m: 0.5, params_k: 1.0}";
    let with = |v: &str| edit(row, &format!("values: {{{v}}}"));
    check(vec![
        case(
            with("a: .nan"),
            "values:",
            &["published.0.values.a", "[0, 100]"],
        ),
        case(
            with("accuracy: -.inf"),
            "values:",
            &["published.0.values.accuracy", "[0, 100]"],
        ),
        case(
            with("log_loss: 1e300"),
            "values:",
            &["published.0.values.log_loss", "[0, 100]"],
        ),
        case(
            with("macs_m: .inf"),
            "values:",
            &["published.0.values.macs_m", "[0, 1000000]"],
        ),
    ]);
}

#[test]
fn counts_and_sizes_have_finite_upper_bounds() {
    check(vec![
        case(
            edit("calibration_clips: 32", "calibration_clips: 0"),
            "calibration_clips: 0",
            &["stages.2.calibration_clips", "[1, 1000000]"],
        ),
        case(
            edit("    width: 4\n", "    width: 1000000000\n"),
            "width: 1000000000",
            &["models.student.width", "[1, 1024]"],
        ),
        case(
            edit("    shuffle_groups: 2\n", "    shuffle_groups: 100000000\n"),
            "shuffle_groups: 100000000",
            &["models.teacher.shuffle_groups", "[1, 1024]"],
        ),
        case(
            edit("  batch_size: 16", "  batch_size: 1000000000000"),
            "batch_size:",
            &["training.batch_size", "[1, 65536]"],
        ),
        case(
            edit("  epochs: 2", "  epochs: 1000000000"),
            "epochs:",
            &["training.epochs", "[1, 10000]"],
        ),
        case(
            edit("  validate_every: 1", "  validate_every: 10000000000"),
            "validate_every:",
            &["training.validate_every", "[0, 10000]"],
        ),
        case(
            edit(
                "schedule: {kind: warmup_cosine, warmup_epochs: 1}",
                "schedule: {kind: sgdr, t0: 1, t_mult: 100000000000}",
            ),
            "schedule:",
            &["training.schedule.t_mult", "[1, 100]"],
        ),
    ]);
    // `1e12` is a float in YAML: refused as a count, still naming the line and field.
    let text = edit("  batch_size: 16", "  batch_size: 1e12");
    let e = load_error(&text, "demo").expect("batch_size: 1e12 accepted");
    assert!(
        e.contains(&format!("r.yaml:{}:", line_of(&text, "batch_size")))
            && e.contains("batch_size"),
        "{e}"
    );
}

/// `warmup_epochs` must be below the epochs wherever the two meet: the recipe's training, a
/// stage's `training`, a `for_each` split's, a pre-training or fine-tuning stage's, a profile's
/// `set`.
#[test]
fn warmup_beyond_epochs_is_refused_wherever_it_appears() {
    let warm = "schedule: {kind: warmup_cosine, warmup_epochs: 1}";
    let extra = |stage: &str| edit("\npublished:", &format!("{stage}\npublished:"));
    let pretrain = "  - id: pre\n    kind: pretrain\n    label: \"Pre\"\n    model: student\n    training: {epochs: 1}\n";
    let finetune = "  - id: ft\n    kind: finetune_devices\n    label: \"FT\"\n    from: teacher\n    devices: [a]\n    training: {epochs: 1, device_simulation: null}\n";
    let per_split = "  - id: ps\n    kind: train\n    label: \"PS\"\n    model: student\n    for_each:\n      split: [split50]\n      training: {split50: {epochs: 1}}\n";
    check(vec![
        case(
            edit(warm, "schedule: {kind: warmup_cosine, warmup_epochs: 2}"),
            "schedule:",
            &["training.schedule.warmup_epochs", "[0, 2)"],
        ),
        case(
            edit(
                "    model: teacher\n",
                "    model: teacher\n    training: {epochs: 1}\n",
            ),
            "training: {epochs: 1}",
            &["stages.0.training", "warmup_epochs", "[0, 1)"],
        ),
        case(
            extra(pretrain),
            "training: {epochs: 1}",
            &["stages.3.training", "[0, 1)"],
        ),
        case(
            extra(finetune),
            "training: {epochs: 1",
            &["stages.3.training", "[0, 1)"],
        ),
        case(
            extra(per_split),
            "training: {split50:",
            &["stages.3.for_each.training.split50", "[0, 1)"],
        ),
        case(
            format!("{TINY}    set:\n      training.epochs: 1\n"),
            "training.epochs: 1",
            &["profile `demo`", "set", "warmup_epochs", "[0, 1)"],
        ),
    ]);
}

#[test]
fn empty_stage_ids_and_profiles_without_stages_are_refused() {
    check(vec![
        case(
            edit("  - id: student_int8\n", "  - id: \"\"\n").replace(
                "[teacher, student, student_int8]",
                "[teacher, student, \"\"]",
            ),
            "id: \"\"",
            &["stages.2.id", "empty"],
        ),
        case(
            edit(
                "    stages: [teacher, student, student_int8]",
                "    stages: []",
            ),
            "stages: []",
            &["profiles.demo.stages", "at least one"],
        ),
    ]);
}

#[test]
fn duplicate_keys_are_refused_naming_the_key_and_its_line() {
    let dup_model = "  teacher:   # again\n    arch: tfsepnet23\n    width: 16\n";
    check(vec![
        case(
            edit("\ntraining:\n", &format!("{dup_model}\ntraining:\n")),
            "# again",
            &["duplicate key `teacher`", "models"],
        ),
        case(
            format!("{TINY}  demo: # again\n    note: again\n"),
            "# again",
            &["duplicate key `demo`", "profiles"],
        ),
        case(
            format!("{TINY}    set:\n      training.epochs: 3\n      training.epochs: 4\n"),
            "training.epochs: 4",
            &["duplicate key `training.epochs`", "profiles.demo.set"],
        ),
        case(
            edit("values: {a: 64.4,", "values: {a: 64.4, a: 10.0,"),
            "values:",
            &["duplicate key `a`", "published.0.values"],
        ),
        case(
            edit("  epochs: 2\n", "  epochs: 2\n  epochs: 3\n"),
            "epochs: 3",
            &["duplicate key `epochs`", "training"],
        ),
    ]);
}

/// An error the profile's `set` causes names the override's line and the profile.
#[test]
fn errors_from_set_overrides_point_at_the_override() {
    let with_set = |entry: &str| format!("{TINY}    set:\n      {entry}\n");
    check(vec![
        case(
            with_set("training.optimizer.lr: -1"),
            "training.optimizer.lr: -1",
            &["profile `demo`", "`set`", "(0, 10]"],
        ),
        case(
            with_set("models.student.width: 1000000000"),
            "models.student.width",
            &["profile `demo`", "`set`", "[1, 1024]"],
        ),
        case(
            with_set("training.epochs: many"),
            "training.epochs: many",
            &["profile `demo`", "`set`"],
        ),
        case(
            with_set("stages.student.distill.temperature: .inf"),
            "stages.student.distill.temperature",
            &["profile `demo`", "`set`", "(0, 100]"],
        ),
    ]);
}

/// `recipe::parse_str` returns an error, never panics, on any text: truncations and byte
/// edits of a real recipe, alias bombs, deep nesting, huge numbers; `parse_bytes` also on
/// invalid UTF-8.
#[test]
fn the_pure_reader_refuses_hostile_text_without_panicking() {
    let name = Path::new("fuzz.yaml");
    assert!(recipe::parse_str(TINY, name).is_ok());
    // Every prefix, and each line dropped or duplicated.
    for end in 0..TINY.len() {
        if TINY.is_char_boundary(end) {
            let _ = recipe::parse_str(&TINY[..end], name);
        }
    }
    let lines: Vec<&str> = TINY.lines().collect();
    for i in 0..lines.len() {
        let mut dropped = lines.clone();
        dropped.remove(i);
        let _ = recipe::parse_str(&dropped.join("\n"), name);
        let mut doubled = lines.clone();
        doubled.insert(i, lines[i]);
        let _ = recipe::parse_str(&doubled.join("\n"), name);
    }
    // Alias expansion ("billion laughs"): refused by size before anything is built.
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let prev = (b'a' + i - 1) as char;
        let cur = (b'a' + i) as char;
        bomb += &format!("{cur}: &{cur} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n");
    }
    let e = recipe::parse_str(&bomb, name).unwrap_err().to_string();
    assert!(e.contains("fuzz.yaml"), "{e}");
    // Deep nesting, flow and block.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(recipe::parse_str(&deep, name).is_err());
    let block: String = (0..2000)
        .map(|i| format!("{}k:\n", " ".repeat(i)))
        .collect();
    assert!(recipe::parse_str(&block, name).is_err());
    // Huge numbers, in every numeric field's place.
    for huge in [
        "1e400",
        "-1e400",
        "99999999999999999999999999",
        "-1",
        ".nan",
    ] {
        let text = TINY.replace(": 2\n", &format!(": {huge}\n"));
        assert!(recipe::parse_str(&text, name).is_err(), "{huge}");
    }
    // Bytes: invalid UTF-8 names the line.
    let mut bytes = TINY.as_bytes().to_vec();
    let at = TINY.find("title").unwrap();
    bytes[at] = 0xff;
    let e = recipe::parse_bytes(&bytes, name).unwrap_err().to_string();
    assert!(
        e.contains(&format!("fuzz.yaml:{}", line_of(TINY, "title"))),
        "{e}"
    );
    // Every single-byte edit of the first part of the recipe.
    for i in (0..TINY.len().min(1500)).step_by(3) {
        for b in [b'\0', b':', b'[', b'-', b'&', b'*', 0x80] {
            let mut bytes = TINY.as_bytes().to_vec();
            bytes[i] = b;
            let _ = recipe::parse_bytes(&bytes, name);
        }
    }
}

/// Lists have a length bound too, so that checks comparing their entries stay instant on any
/// input (a fuzzer's, a generated recipe's).
#[test]
fn list_lengths_are_bounded() {
    let many = |n: usize, f: &dyn Fn(usize) -> String| (0..n).map(f).collect::<Vec<_>>();
    let stages = many(1001, &|i| {
        format!("  - id: s{i}\n    kind: train\n    label: \"S\"\n    model: student\n")
    })
    .concat();
    let devices = many(101, &|i| format!("d{i}")).join(", ");
    check(vec![
        case(
            edit("\npublished:", &format!("{stages}\npublished:")),
            "stages:",
            &["field `stages`", "[1, 1000]", "1004"],
        ),
        case(
            edit(
                "\npublished:",
                &format!("  - id: ft\n    kind: finetune_devices\n    label: \"FT\"\n    from: teacher\n    devices: [{devices}]\n    training: {{device_simulation: null}}\n\npublished:"),
            ),
            "devices: [d0",
            &["stages.3.devices", "[0, 100]", "101"],
        ),
    ]);
}

/// A recipe file over the size limit is refused by its size, without being read whole.
#[test]
fn oversized_recipe_files_are_refused() {
    let text = format!("{TINY}{}", "# padding\n".repeat(120_000));
    let e = load_error(&text, "demo").expect("a 1.2 MB recipe accepted");
    assert!(e.contains("r.yaml: is over 1048576 bytes"), "{e}");
}
