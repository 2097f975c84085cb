//! Training augmentations end to end, on a tiny recipe that switches every one of them on
//! (tests/fixtures/augmented.yaml): the run completes, caches its waveform and energy-IR stages,
//! regenerates bit for bit, reruns exactly the stages an augmentation setting touches, and bad
//! augmentation settings are refused with the file, line and field.

mod common;
use common::{ascrepro, run_recipe, run_recipe_ok, stage_status};
use std::path::Path;

const AUGMENTED: &str = include_str!("fixtures/augmented.yaml");

fn sums(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap()
}

#[test]
fn every_augmentation_trains_and_regenerates_identically() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let first = run_recipe_ok(d, AUGMENTED, "cache-a", "out-a");
    for (kind, id) in [
        ("waveforms", "train@recorded"),
        ("energy_ir", "energy_ir"),
        ("devsim", "devsim-2x6"),
        ("train", "waveform"),
        ("train", "frames"),
    ] {
        assert_eq!(stage_status(&first, kind, id), "computed", "{kind} {id}");
    }
    let results = std::fs::read_to_string(d.join("out-a/results.json")).unwrap();
    for what in [
        "DIR augmentation p=0.4",
        "energy-driven IR copies (up to 2 per a/b/c clip)",
        "time roll ±0.1 s",
        "time roll ±4 frames",
        "SpecAugment 1×freq<16 1×time<8",
    ] {
        assert!(results.contains(what), "the report does not say `{what}`");
    }

    // Same inputs: everything cached; a fresh cache regenerates the same bytes.
    let again = run_recipe_ok(d, AUGMENTED, "cache-a", "out-a");
    assert!(again.contains("nothing recomputed"), "{again}");
    run_recipe_ok(d, AUGMENTED, "cache-b", "out-b");
    assert_eq!(sums(&d.join("out-a")), sums(&d.join("out-b")));

    // An augmentation setting is part of its stage's hash, and of no other stage's.
    let changed = AUGMENTED.replace("dir_augmentation: {p: 0.4}", "dir_augmentation: {p: 0.6}");
    assert_ne!(changed, AUGMENTED);
    let log = run_recipe_ok(d, &changed, "cache-a", "out-a");
    assert_eq!(stage_status(&log, "waveforms", "train@recorded"), "cached");
    assert_eq!(stage_status(&log, "energy_ir", "energy_ir"), "cached");
    assert_eq!(stage_status(&log, "train", "waveform"), "computed");
    assert_eq!(stage_status(&log, "train", "frames"), "cached");
}

/// Where waveform augmentations act follows the recipe's resampler (`audio::resample`): with
/// torchaudio's (resampling in the front end) DIR, time roll and the energy-IR copies all use
/// the clips at their recorded rate; with librosa's (resampling on load) DIR and time roll use
/// 32 kHz waveforms, while the offline energy-IR copies stay at the recorded rate.
#[test]
fn waveform_augmentations_act_where_the_resampler_puts_them() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let torchaudio = run_recipe_ok(d, AUGMENTED, "cache", "out");
    assert!(!torchaudio.contains("train@32000Hz"), "{torchaudio}");
    let librosa = AUGMENTED.replace("resampler: torchaudio", "resampler: librosa");
    assert_ne!(librosa, AUGMENTED);
    let log = run_recipe_ok(d, &librosa, "cache", "out");
    assert_eq!(stage_status(&log, "waveforms", "train@32000Hz"), "computed");
    assert_eq!(stage_status(&log, "waveforms", "train@recorded"), "cached");
    // Other features, so other training; the recorded-rate copies are made again only
    // because their features come through the other resampler.
    assert_eq!(stage_status(&log, "energy_ir", "energy_ir"), "computed");
    assert_eq!(stage_status(&log, "train", "waveform"), "computed");
}

/// The new fields are left out of a recipe's normalised form when absent, so the hashes of
/// recipes that do not use them (the committed demo's among them) do not move.
#[test]
fn recipes_without_the_new_fields_serialise_as_before() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes/cai2023_tfsepnet.yaml");
    let plan = ascrepro::recipe::load(&path, "demo").unwrap();
    let text = serde_json::to_string(&plan.recipe).unwrap();
    for field in ["dir_augmentation", "energy_ir", "time_roll", "spec_augment"] {
        assert!(!text.contains(field), "`{field}` appears in {text}");
    }
    for stage in &plan.stages {
        if let ascrepro::recipe::PlannedStage::Train(t) = stage {
            let stage = serde_json::to_string(t.as_ref()).unwrap();
            assert!(!stage.contains("spec_augment") && !stage.contains("time_roll"));
        }
    }
}

/// Runs the recipe expecting a clean failure; returns stderr.
fn refused(dir: &Path, recipe: &str) -> String {
    let o = run_recipe(dir, recipe, "cache", "out");
    let stderr = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!o.status.success(), "expected failure:\n{stderr}");
    assert!(!stderr.contains("panicked"), "panic:\n{stderr}");
    stderr
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn bad_augmentation_settings_name_file_line_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // (replace, with, field, message, text on the line the error must name)
    let cases = [
        (
            "dir_augmentation: {p: 0.4}",
            "dir_augmentation: {p: 1.5}",
            "training.dir_augmentation.p",
            "must be in [0, 1], not 1.5",
            "dir_augmentation: {p: 1.5}",
        ),
        (
            "time_roll: {max_shift_s: 0.1}",
            "time_roll:\n    max_shift_s: 0.1\n    max_frames: 3",
            "training.time_roll",
            "exactly one of",
            "time_roll:",
        ),
        (
            "time_roll: {max_shift_s: 0.1}",
            "time_roll:\n    max_shift_s: -0.1",
            "training.time_roll.max_shift_s",
            "must be in (0, 60], not -0.1",
            "max_shift_s: -0.1",
        ),
        (
            "spec_augment: {freq_masks: 1, freq_width: 16, time_masks: 1, time_width: 8}",
            "spec_augment: {freq_masks: 0, time_width: 0}",
            "training.spec_augment",
            "masks nothing",
            "spec_augment: {freq_masks: 0",
        ),
        (
            "      - {up_to: 0.05, count: 1}",
            "      - {up_to: 0.01, count: 1}",
            "training.energy_ir.levels.1",
            "above the previous row",
            "{up_to: 0.01, count: 1}",
        ),
    ];
    for (from, to, field, says, on) in cases {
        let text = AUGMENTED.replace(from, to);
        assert_ne!(text, AUGMENTED, "{from}");
        let e = refused(d, &text);
        let line = line_of(&text, on);
        assert!(
            e.contains(&format!("recipe.yaml:{line}: field `{field}`")),
            "{field}: expected line {line}:\n{e}"
        );
        assert!(e.contains(says), "{field}: {e}");
    }

    // A stage override is checked too.
    let text = AUGMENTED.replace(
        "training: {dir_augmentation: null,",
        "training: {dir_augmentation: {p: -1},",
    );
    let e = refused(d, &text);
    assert!(
        e.contains("field `stages.1.training.dir_augmentation.p`"),
        "{e}"
    );
}

#[test]
fn dir_augmentation_without_impulse_responses_names_the_profile_field() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // A real-data profile (TAU layout, here generated) that names no impulse responses.
    common::tiny_tau_dataset(d, 0);
    let o = ascrepro(d, &["manifest", "create", "data/ds", "--out", "ds.yaml"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = AUGMENTED
        .replace("  device_simulation: {irs: 2, clips_per_ir: 6}\n", "")
        .replace(
            "profiles:\n",
            "profiles:\n  paper:\n    note: x\n    data:\n      kind: tau2022\n      root: ds\n      manifest: ds.yaml\n      train_split: evaluation_setup/fold1_train.csv\n      test_split: evaluation_setup/fold1_evaluate.csv\n    stages: [waveform]\n",
        );
    std::fs::write(d.join("recipe.yaml"), &text).unwrap();
    let o = ascrepro(
        d,
        &[
            "run",
            "recipe.yaml",
            "--profile",
            "paper",
            "--cache",
            "c",
            "--out",
            "o",
            "--quiet",
        ],
    );
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && !e.contains("panicked"), "{e}");
    let line = line_of(&text, "      kind: tau2022") - 1;
    assert!(
        e.contains(&format!(
            "recipe.yaml:{line}: field `profiles.paper.data.irs_root`: DIR augmentation needs impulse responses"
        )),
        "{e}"
    );
}

mod resume {
    use ascrepro::audio::augment::ImpulseResponses;
    use ascrepro::audio::frontend::{Frontend, FrontendId};
    use ascrepro::models::{ModelConfig, ModelSpec};
    use ascrepro::recipe::{TrainStage, TrainingSpec};
    use ascrepro::train::datamodule::{TrainAudio, WaveformSet};
    use ascrepro::train::{fit, FeatureSet, FitOptions, Fitted};
    use std::path::Path;
    use tch::Device;

    fn stage() -> TrainStage {
        let spec: ModelSpec = serde_norway::from_str(
            "{arch: tfsepnet23, width: 4, norm: adaresnorm, dropout: 0.1, shuffle_groups: 1}",
        )
        .unwrap();
        let training: TrainingSpec = serde_norway::from_str(
            "epochs: 2
batch_size: 8
optimizer: {kind: adam, lr: 0.005}
schedule: {kind: cosine}
mixup: {alpha: 0.3}
freq_mixstyle: {alpha: 0.4, p: 0.8}
dir_augmentation: {p: 0.5}
time_roll: {max_shift_s: 0.1}
spec_augment: {freq_width: 16, time_width: 8, value: 0.9}
validate_every: 0",
        )
        .unwrap();
        TrainStage {
            id: "resume".into(),
            label: "resume".into(),
            model_key: "m".into(),
            model: ModelConfig::from_spec(&spec).unwrap(),
            model_of_init: false,
            training,
            init_from: None,
            init_classifier: None,
            select: ascrepro::recipe::Select::Last,
            split: None,
            split_csv: None,
            distill: None,
            seed: 3,
        }
    }

    /// 16 one-second clips of coloured noise: half device a, half device b.
    fn data(fe: &Frontend) -> (WaveformSet, FeatureSet) {
        let clips: Vec<Vec<f32>> = (0..16u64)
            .map(|c| {
                let mut state = c * 2654435761 + 1;
                let mut prev = 0.0f32;
                (0..32000)
                    .map(|_| {
                        state = state
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        let white = (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
                        prev = 0.9 * prev + 0.1 * white * (1.0 + (c % 10) as f32);
                        prev
                    })
                    .collect()
            })
            .collect();
        let y: Vec<i64> = (0..16).map(|c| c % 10).collect();
        let d: Vec<i64> = (0..16).map(|c| c % 2).collect();
        let feats: Vec<_> = clips.iter().map(|x| fe.compute(x)).collect();
        (
            WaveformSet::new(32000, &clips, y.clone(), d.clone()).unwrap(),
            FeatureSet::from_features(&feats, y, d).unwrap(),
        )
    }

    fn train(dir: &Path, set: &FeatureSet, audio: &TrainAudio) -> Fitted {
        let st = stage();
        fit(
            &FitOptions {
                stage: &st,
                device: Device::Cpu,
                checkpoint_dir: dir,
                progress: None,
                audio: Some(audio),
                init: None,
                validation: None,
            },
            set,
            None,
            None,
        )
        .unwrap()
    }

    fn same_weights(a: &Fitted, b: &Fitted) -> bool {
        let (va, vb) = (a.vs.variables(), b.vs.variables());
        va.len() == vb.len() && va.iter().all(|(k, t)| vb[k].equal(t))
    }

    fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(to)?;
        for e in std::fs::read_dir(from)? {
            let e = e?;
            std::fs::copy(e.path(), to.join(e.file_name()))?;
        }
        Ok(())
    }

    /// Waveform DIR and roll, per-batch extraction, SpecAugment, Freq-MixStyle and Mixup all
    /// draw from the epoch's stream: a run resumed from an epoch checkpoint ends with the very
    /// weights of the uninterrupted run.
    #[test]
    fn augmented_training_resumes_to_the_uninterrupted_weights() {
        let tmp = tempfile::tempdir().unwrap();
        let fe = Frontend::authors(FrontendId::CpMel128);
        let (waves, set) = data(&fe);
        let irs = ImpulseResponses::from_samples(
            32000,
            vec![vec![0.7, 0.0, -0.3, 0.1], vec![0.2, 0.5, 0.2, -0.1, 0.05]],
        );
        let audio = TrainAudio {
            waves: &waves,
            frontend: &fe,
            irs: Some(&irs),
        };
        let reference = train(&tmp.path().join("a"), &set, &audio);

        // Same run again, keeping its first epoch checkpoint (deleted once the second one is
        // written, an epoch later).
        let b = tmp.path().join("b");
        let saved = tmp.path().join("c/epoch-00001");
        let watch = {
            let (b, saved) = (b.clone(), saved.clone());
            std::thread::spawn(move || loop {
                let ck = b.join("epoch-00001");
                if ck.is_dir() && copy_dir(&ck, &saved).is_ok() {
                    return true;
                }
                if b.join("epoch-00002").exists() && !ck.exists() {
                    return false;
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            })
        };
        let again = train(&b, &set, &audio);
        assert!(watch.join().unwrap(), "missed the first epoch checkpoint");
        assert!(
            same_weights(&reference, &again),
            "two identical runs differ"
        );

        let resumed = train(&tmp.path().join("c"), &set, &audio);
        assert_eq!(resumed.curve.len(), 2);
        assert_eq!(resumed.curve, reference.curve);
        assert!(
            same_weights(&reference, &resumed),
            "the resumed run differs"
        );
    }
}
