//! `ascrepro features`: the .npy it writes loads in numpy with the library's values; other
//! sample rates are resampled; multi-channel files are mixed to mono (mean of the channels)
//! with a note naming the file; bad inputs fail with one error naming the file, no panic.

mod common;
use common::{ascrepro, ascrepro_fails, run_python};

use ascrepro::audio::features::extract_file;
use ascrepro::audio::frontend::{Frontend, FrontendId};
use ascrepro::audio::wav::read_wav;
use std::path::{Path, PathBuf};

/// A test signal per channel: tones at channel-dependent frequencies plus a little noise.
fn signal(channel: usize, rate: u32, seconds: f64) -> Vec<f32> {
    let n = (f64::from(rate) * seconds) as usize;
    let mut s = 0x2545_F491_4F6C_DD1Du64.wrapping_mul(channel as u64 + 1);
    (0..n)
        .map(|i| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let noise = (s >> 40) as f64 / (1u64 << 24) as f64 - 0.5;
            let t = i as f64 / f64::from(rate);
            let f = 300.0 * (channel + 1) as f64;
            (0.4 * (2.0 * std::f64::consts::PI * f * t).sin() + 0.02 * noise) as f32
        })
        .collect()
}

/// Writes `channels` (equal lengths) interleaved as 32-bit float or 16/24-bit integer PCM.
fn write_wav(path: &Path, rate: u32, bits: u16, channels: &[Vec<f32>]) {
    let spec = hound::WavSpec {
        channels: channels.len() as u16,
        sample_rate: rate,
        bits_per_sample: bits,
        sample_format: if bits == 32 {
            hound::SampleFormat::Float
        } else {
            hound::SampleFormat::Int
        },
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..channels[0].len() {
        for ch in channels {
            match bits {
                32 => w.write_sample(ch[i]).unwrap(),
                16 => w.write_sample((ch[i] * 32767.0).round() as i16).unwrap(),
                _ => w
                    .write_sample((ch[i] * 8_388_607.0).round() as i32)
                    .unwrap(),
            }
        }
    }
    w.finalize().unwrap();
}

/// Loads `npy` with the venv's numpy: (shape, dtype, values as numpy holds them).
fn numpy_load(dir: &Path, npy: &Path) -> (Vec<usize>, String, Vec<f32>) {
    let raw = dir.join("values.f32");
    let stdout = run_python("load_npy.py", [npy, raw.as_path()]);
    let info: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
    assert_eq!(info["c_contiguous"], true);
    assert_eq!(info["finite"], true);
    let shape = info["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    let values = std::fs::read(&raw)
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    (shape, info["dtype"].as_str().unwrap().to_string(), values)
}

fn features_ok(dir: &Path, frontend: &str, out: &str, wav: &str) -> String {
    let o = ascrepro(
        dir,
        &["features", "--frontend", frontend, "--out", out, wav],
    );
    let stderr = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "features failed:\n{stderr}");
    assert!(String::from_utf8_lossy(&o.stdout).contains(out));
    stderr
}

#[test]
fn npy_loads_in_numpy_with_the_library_values() {
    let dir = common::temp_dir("features_cli_npy");
    // 32 kHz mono: no resampling.
    let clip = dir.join("mono32k.wav");
    write_wav(&clip, 32000, 16, &[signal(0, 32000, 1.0)]);
    let stderr = features_ok(&dir, "cpmel-512", "mono.npy", "mono32k.wav");
    assert!(
        !stderr.contains("note:"),
        "a mono file needs no note: {stderr}"
    );
    let (shape, dtype, values) = numpy_load(&dir, &dir.join("mono.npy"));
    assert_eq!((shape, dtype.as_str()), (vec![512, 64], "float32"));
    let fe = Frontend::authors(FrontendId::CpMel512);
    let expected = fe.compute(&read_wav(&clip).unwrap().samples);
    assert_eq!(values, expected.data, "values differ from the library's");

    // 44.1 kHz 24-bit (the TAU format): resampled to 32 kHz first, one second -> 44 frames.
    let clip = dir.join("tau44k.wav");
    write_wav(&clip, 44100, 24, &[signal(1, 44100, 1.0)]);
    features_ok(&dir, "cpmel-128", "tau.npy", "tau44k.wav");
    let (shape, dtype, values) = numpy_load(&dir, &dir.join("tau.npy"));
    assert_eq!((shape, dtype.as_str()), (vec![128, 44], "float32"));
    let expected = extract_file(&clip, &Frontend::authors(FrontendId::CpMel128)).unwrap();
    assert_eq!(values, expected.data);
}

#[test]
fn multichannel_files_are_mixed_to_mono_with_a_note() {
    let dir = common::temp_dir("features_cli_multichannel");
    let channels: Vec<Vec<f32>> = (0..3).map(|c| signal(c, 32000, 0.5)).collect();
    let clip = dir.join("three.wav");
    write_wav(&clip, 32000, 32, &channels);

    // The mix is the mean of the channels (torchaudio's `x.mean(0)`, librosa's `to_mono`).
    let audio = read_wav(&clip).unwrap();
    assert_eq!(audio.mixed_from_channels, Some(3));
    assert_eq!(audio.samples.len(), channels[0].len());
    for (i, &s) in audio.samples.iter().enumerate() {
        let mean =
            (f64::from(channels[0][i]) + f64::from(channels[1][i]) + f64::from(channels[2][i]))
                / 3.0;
        assert!(
            (f64::from(s) - mean).abs() < 1e-7,
            "sample {i}: {s} vs {mean}"
        );
    }

    let stderr = features_ok(&dir, "tamel-256", "three.npy", "three.wav");
    let notes: Vec<&str> = stderr.lines().filter(|l| l.contains("note:")).collect();
    assert_eq!(notes.len(), 1, "{stderr}");
    assert!(
        notes[0].contains("three.wav") && notes[0].contains("3 channels"),
        "{stderr}"
    );
    let (shape, _, values) = numpy_load(&dir, &dir.join("three.npy"));
    assert_eq!(shape, vec![256, 33]);
    let fe = Frontend::authors(FrontendId::TaMel256);
    assert_eq!(values, fe.compute(&audio.samples).data);
}

#[test]
fn bad_inputs_name_the_file_and_fail_without_output() {
    let dir = common::temp_dir("features_cli_bad");
    let good = dir.join("good.wav");
    write_wav(&good, 32000, 16, &[signal(0, 32000, 0.25)]);
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(dir.join("empty.wav"), b"").unwrap();
    // Header intact, data cut in the middle of a sample.
    std::fs::write(dir.join("truncated.wav"), &bytes[..bytes.len() / 2 + 1]).unwrap();
    // Header cut short.
    std::fs::write(dir.join("short.wav"), &bytes[..20]).unwrap();
    // A RIFF file of another kind, and plain text.
    let mut avi = bytes.clone();
    avi[8..12].copy_from_slice(b"AVI ");
    std::fs::write(dir.join("video.wav"), &avi).unwrap();
    std::fs::write(dir.join("notes.wav"), "scene,label\nairport,1\n").unwrap();
    std::fs::create_dir_all(dir.join("folder.wav")).unwrap();

    for name in [
        "missing.wav",
        "empty.wav",
        "truncated.wav",
        "short.wav",
        "video.wav",
        "notes.wav",
        "folder.wav",
    ] {
        let out: PathBuf = dir.join(format!("{name}.npy"));
        let stderr = ascrepro_fails(
            &dir,
            &[
                "features",
                "--frontend",
                "cpmel-128",
                "--out",
                out.to_str().unwrap(),
                name,
            ],
        );
        let error: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("error: "))
            .collect();
        assert_eq!(error.len(), 1, "{name}: {stderr}");
        assert!(
            error[0].contains(name),
            "{name}: error does not name the file: {stderr}"
        );
        assert!(!out.exists(), "{name}: output written despite the error");
    }

    let o = ascrepro(
        &dir,
        &[
            "features",
            "--frontend",
            "cpmel-64",
            "--out",
            "x.npy",
            "good.wav",
        ],
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        stderr.contains("cpmel-64") && stderr.contains("tamel-256-502"),
        "{stderr}"
    );
    let o = ascrepro(
        &dir,
        &[
            "features",
            "--frontend",
            "cpmel-128",
            "--out",
            "no/such/dir/x.npy",
            "good.wav",
        ],
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && stderr.contains("no/such/dir/x.npy"),
        "{stderr}"
    );
}
