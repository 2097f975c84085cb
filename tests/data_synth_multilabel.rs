//! The synthetic multi-label set: deterministic (byte-identical files, whatever the thread
//! count), in the AudioSet layout the loader reads, its WAVs exactly the renderer's output, and
//! every label audible in its clip.

mod common;

use ascrepro::audio::wav::read_wav;
use ascrepro::data::audioset;
use ascrepro::data::manifest::Manifest;
use ascrepro::data::synth::multilabel::{
    clip_sources, generate_multilabel, render_clip, source_mid, MultiLabelSynthConfig, Split,
    CLASSES_CSV, SOURCES,
};
use std::path::Path;

fn tiny() -> MultiLabelSynthConfig {
    MultiLabelSynthConfig {
        seed: 11,
        clips: 12,
        eval_clips: 4,
        ..Default::default()
    }
}

fn rms(x: &[f32]) -> f64 {
    (x.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / x.len() as f64).sqrt()
}

#[test]
fn deterministic_loadable_and_the_renderers_output() {
    let cfg = tiny();
    let work = tempfile::tempdir().unwrap();
    let one = work.path().join("one");
    let two = work.path().join("two");
    generate_multilabel(&cfg, &one, None).unwrap();
    // The second run on one thread: no dependence on thread count or order.
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(|| generate_multilabel(&cfg, &two, None))
        .unwrap();
    let m1 = Manifest::create(&one, "ml", "audioset").unwrap();
    let m2 = Manifest::create(&two, "ml", "audioset").unwrap();
    assert_eq!(m1.files, m2.files);
    assert_eq!(m1.files.len(), 16 + 4);
    // A different seed gives different audio.
    let other = work.path().join("other");
    generate_multilabel(
        &MultiLabelSynthConfig {
            seed: 12,
            ..cfg.clone()
        },
        &other,
        None,
    )
    .unwrap();
    let m3 = Manifest::create(&other, "ml", "audioset").unwrap();
    let wav = |m: &Manifest| {
        m.files
            .iter()
            .find(|f| f.path == "audio/train_00000.wav")
            .cloned()
    };
    assert_ne!(wav(&m1), wav(&m3));

    for split in [Split::Train, Split::Eval] {
        let ds = audioset::load(
            &one,
            Path::new(split.segments_file()),
            Path::new(CLASSES_CSV),
        )
        .unwrap();
        let names: Vec<&str> = SOURCES.iter().map(|(_, display)| *display).collect();
        assert_eq!(ds.classes, names);
        assert_eq!(ds.mids[3], source_mid(3));
        let ids = split.clip_ids(&cfg);
        assert_eq!(ds.clips.len(), ids.len());
        for (clip, id) in ds.clips.iter().zip(&ids) {
            assert_eq!(clip.file, format!("audio/{id}.wav"));
            assert_eq!(clip.labels, clip_sources(&cfg, id));
            assert!((1..=cfg.max_labels).contains(&clip.labels.len()));
        }
    }

    // Each WAV is 1 s of 44.1 kHz 24-bit mono holding exactly what render_clip returns.
    for id in Split::Eval.clip_ids(&cfg) {
        let path = one.join(format!("audio/{id}.wav"));
        let spec = hound::WavReader::open(&path).unwrap().spec();
        assert_eq!(
            (spec.sample_rate, spec.bits_per_sample, spec.channels),
            (44_100, 24, 1)
        );
        let audio = read_wav(&path).unwrap();
        let rendered = render_clip(&cfg, &id, &clip_sources(&cfg, &id));
        assert_eq!(audio.samples.len(), 44_100);
        let worst = audio
            .samples
            .iter()
            .zip(&rendered)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst <= 1.0 / (1 << 23) as f32, "{id}: {worst}");
    }
}

/// Every label is audible: the clip minus the clip rendered without that source (same place,
/// background and other sources) holds the source at a level comparable to the background's.
/// The generator guarantees at least `MIN_EVENT_SECONDS` (50 ms) of an event at 6 dB or more
/// above the background inside the clip: about -7 dB of the background's energy over the whole
/// second at the least, far more for layers; -10 dB leaves room for the peak limiter.
#[test]
fn every_label_is_audible_in_its_clip() {
    let cfg = MultiLabelSynthConfig {
        seed: 3,
        clips: 60,
        ..Default::default()
    };
    let mut levels = Vec::new();
    for id in Split::Train.clip_ids(&cfg) {
        let labels = clip_sources(&cfg, &id);
        let with = render_clip(&cfg, &id, &labels);
        let background = rms(&render_clip(&cfg, &id, &[]));
        for &l in &labels {
            let rest: Vec<usize> = labels.iter().copied().filter(|&s| s != l).collect();
            let without = render_clip(&cfg, &id, &rest);
            let diff: Vec<f32> = with.iter().zip(&without).map(|(a, b)| a - b).collect();
            let db = 20.0 * (rms(&diff) / background).log10();
            levels.push((db, id.clone(), SOURCES[l].0));
        }
    }
    levels.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (quietest, id, source) = &levels[0];
    assert!(
        *quietest >= -10.0,
        "{id}: `{source}` only {quietest:.1} dB relative to the background"
    );
    // And typically well above it.
    let median = levels[levels.len() / 2].0;
    assert!(median >= 6.0, "median label level {median:.1} dB");
}

#[test]
fn cli_writes_a_loadable_set_and_refuses_a_non_empty_directory() {
    let dir = common::temp_dir("synth_multilabel_cli");
    let out = common::ascrepro(
        &dir,
        &[
            "synth-multilabel",
            "--out",
            "ml",
            "--clips",
            "3",
            "--eval-clips",
            "2",
            "--seed",
            "5",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let root = dir.join("ml");
    let ds = audioset::load(
        &root,
        Path::new("eval_segments.csv"),
        Path::new(CLASSES_CSV),
    )
    .unwrap();
    assert_eq!(ds.clips.len(), 2);
    let yaml = std::fs::read_to_string(root.join("synth_multilabel.yaml")).unwrap();
    assert!(
        yaml.contains("seed: 5") && yaml.contains("clips: 3"),
        "{yaml}"
    );

    let e = common::ascrepro_fails(&dir, &["synth-multilabel", "--out", "ml"]);
    assert!(e.contains("not empty"), "{e}");
    let e = common::ascrepro_fails(&dir, &["synth-multilabel", "--out", "zero", "--clips", "0"]);
    assert!(e.contains("clips"), "{e}");
    assert!(!dir.join("zero").exists());
}
