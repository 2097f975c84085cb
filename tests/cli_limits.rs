//! Inputs whose size or shape libtorch cannot take: a clip too short for the network, a count
//! input of a single bin or of a trillion, a width of a hundred million, a WAV declaring 1 Hz.
//! Each is a clear error naming what to change, never a panic, an abort or minutes of CPU.

use ascrepro::audio::wav::write_wav_24;
use ascrepro::models::blocks::NormKind;
use ascrepro::models::{build_net, save_weights, tfsepnet23, ModelConfig};
use std::path::Path;
use std::time::{Duration, Instant};

mod common;
use common::{ascrepro_fails, temp_dir};

fn tf8() -> ModelConfig {
    ModelConfig::Tfsepnet23(tfsepnet23::Config::new(8, NormKind::AdaResNorm))
}

fn tone(seconds: f64) -> Vec<f32> {
    let n = (seconds * 44_100.0) as usize;
    (0..n)
        .map(|i| (0.3 * (i as f64 * 0.05).sin()) as f32)
        .collect()
}

/// `predict` of one WAV with the weights the test saved.
fn predict(wav: &str) -> [&str; 6] {
    [
        "predict",
        "--weights",
        "w.safetensors",
        "--frontend",
        "cpmel-128",
        wav,
    ]
}

#[test]
fn predict_refuses_a_clip_too_short_for_the_network_naming_it() {
    let dir = temp_dir("cli_limits_short_clip");
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let vb = ascrepro::models::blocks::Vb::new(&vs.root());
    build_net(&vb, &tf8()).unwrap();
    save_weights(&vs, &tf8(), &dir.join("w.safetensors")).unwrap();
    write_wav_24(&dir.join("short.wav"), &tone(0.05), 44_100).unwrap();
    let err = ascrepro_fails(&dir, &predict("short.wav"));
    assert!(err.contains("short.wav"), "{err}");
    assert!(err.contains("Output size is too small"), "{err}");
    assert!(
        !err.contains("Exception raised"),
        "libtorch's trace leaks: {err}"
    );
    // A full clip still predicts.
    write_wav_24(&dir.join("full.wav"), &tone(1.0), 44_100).unwrap();
    let out = common::ascrepro(&dir, &predict("full.wav"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn complexity(extra: &[&str]) -> String {
    let dir = temp_dir("cli_limits_complexity");
    let mut args = vec!["complexity", "tfsepnet23", "--norm", "resnorm"];
    args.extend_from_slice(extra);
    let start = Instant::now();
    let err = ascrepro_fails(&dir, &args);
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{args:?} took {:?}",
        start.elapsed()
    );
    err
}

#[test]
fn complexity_refuses_inputs_the_network_cannot_take() {
    let err = complexity(&["--width", "32", "--input", "1x1x1"]);
    assert!(err.contains("Output size is too small"), "{err}");
    assert!(!err.contains("Exception raised"), "{err}");
    let err = complexity(&["--width", "32", "--input", "1x1000000x1000000"]);
    assert!(err.contains("more than 1048576 elements"), "{err}");
    let err = complexity(&["--width", "100000000", "--input", "1x256x65"]);
    assert!(err.contains("width") && err.contains("1024"), "{err}");
}

#[test]
fn a_wav_declaring_a_rate_of_1_hz_is_refused_at_once() {
    let dir = temp_dir("cli_limits_1hz");
    let path = dir.join("slow.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 1,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&path, spec).unwrap();
    for i in 0..100 {
        w.write_sample((i * 300) as i16).unwrap();
    }
    w.finalize().unwrap();
    assert!(std::fs::metadata(&path).unwrap().len() < 300);
    let start = Instant::now();
    let err = ascrepro_fails(
        &dir,
        &[
            "features",
            "slow.wav",
            "--out",
            "slow.npy",
            "--frontend",
            "cpmel-128",
        ],
    );
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert!(err.contains("slow.wav") && err.contains("1 Hz"), "{err}");
    assert!(!Path::new(&dir.join("slow.npy")).exists());
}
