//! The resamplers and front ends against the systems' own pipelines, computed here with the
//! venv's Python and the libraries the authors use (tests/python/authors_frontends.py):
//! librosa.load (resampy kaiser_best) and torchaudio's Resample, then CP-JKU's mel or
//! torchaudio's MelSpectrogram, on 44.1 kHz 24-bit clips: a real-looking scene, silence, a
//! full-scale clip, and clips shorter and longer than one second. And the place of waveform
//! augmentations in each system's chain (`audio::resample`): DIR at 32 kHz for the librosa
//! systems, at the recorded rate for the torchaudio ones, RMS-energy IR copies at the recorded
//! rate.

mod common;

use ascrepro::audio::augment::{energy, DirAugment, ImpulseResponses};
use ascrepro::audio::features::extract_samples;
use ascrepro::audio::frontend::{Features, Frontend, FrontendId};
use ascrepro::audio::npy;
use ascrepro::audio::resample::{Resampler, ResamplerId};
use ascrepro::audio::wav::read_wav;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::Tensor;

const RATE: u32 = 44100;

/// Log-mel tolerance against the authors' pipelines, evaluated exactly (in f64, with the f32
/// parameters their code builds) and as they run it (f32; its own distance from the exact
/// value, up to 3e-4 in near-silent top bands, is allowed on top), in every band within 40 dB
/// of its frame's loudest. Quieter bands get [`QUIET_BAND_TOLERANCE`]: there f32 rounding, of
/// the FFT (`cpmel-*` runs in f32, as the released code does) or of the resampled waveform
/// (torch's f32 conv1d against ours), is amplified past 1e-4, theirs as ours; the test prints
/// how many cells go beyond 1e-4.
const LOG_MEL_TOLERANCE: f32 = 1e-4;
const QUIET_BAND_TOLERANCE: f32 = 5e-4;

/// Whether each cell of `exact` (log-mel `[n_mels, frames]` of front end `f`) is quiet: its
/// power (+ 1e-5) more than 40 dB below the frame's loudest band.
fn quiet(exact: &[f32], n_mels: usize, n_frames: usize, f: FrontendId) -> Vec<bool> {
    let power = |v: f32| match f {
        FrontendId::CpMel128 | FrontendId::CpMel512 => (f64::from(v) * 5.0 - 4.5).exp(),
        FrontendId::TaMel256 | FrontendId::TaMel256x502 => f64::from(v).exp(),
    };
    let loudest: Vec<f64> = (0..n_frames)
        .map(|t| {
            (0..n_mels)
                .map(|m| power(exact[m * n_frames + t]))
                .fold(0.0, f64::max)
        })
        .collect();
    exact
        .iter()
        .enumerate()
        .map(|(k, &v)| {
            let p = power(v);
            loudest[k % n_frames] > 1e4 * p
        })
        .collect()
}

fn write_wav(path: &Path, samples: &[f32], float: bool) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: RATE,
        bits_per_sample: if float { 32 } else { 24 },
        sample_format: if float {
            hound::SampleFormat::Float
        } else {
            hound::SampleFormat::Int
        },
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for &s in samples {
        if float {
            w.write_sample(s).unwrap();
        } else {
            let q = (f64::from(s) * 8_388_608.0)
                .round()
                .clamp(-8_388_608.0, 8_388_607.0);
            w.write_sample(q as i32).unwrap();
        }
    }
    w.finalize().unwrap();
}

/// A street-like scene at about -20 dBFS: pink-ish noise, a few tonal sources (one above
/// 16 kHz, which resampling must remove), passing transients and broadband hiss to 22 kHz.
fn scene(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut b0, mut b1, mut b2) = (0f64, 0f64, 0f64);
    let tau = 2.0 * std::f64::consts::PI / f64::from(RATE);
    (0..len)
        .map(|n| {
            let white: f64 = rng.random_range(-1.0..1.0);
            // Paul Kellet's economy pink filter.
            b0 = 0.99765 * b0 + white * 0.0990460;
            b1 = 0.96300 * b1 + white * 0.2965164;
            b2 = 0.57000 * b2 + white * 1.0526913;
            let pink = (b0 + b1 + b2 + white * 0.1848) * 0.05;
            let t = n as f64;
            let tones = 0.03 * (tau * 220.0 * t).sin()
                + 0.01 * (tau * 3150.0 * t).sin()
                + 0.004 * (tau * 17_500.0 * t).sin();
            let burst = if (n / 4410) % 3 == 1 {
                0.08 * white * (-((n % 4410) as f64) / 600.0).exp()
            } else {
                0.0
            };
            (pink + tones + burst + 0.002 * white) as f32
        })
        .collect()
}

/// The test clips: name and samples at 44.1 kHz.
fn clips() -> Vec<(&'static str, Vec<f32>)> {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let full_scale: Vec<f32> = (0..RATE as usize)
        .map(|_| {
            if rng.random_bool(0.5) {
                1.0 - 1.0 / 8_388_608.0
            } else {
                -1.0
            }
        })
        .collect();
    vec![
        ("scene", scene(RATE as usize, 1)),
        ("silence", vec![0.0; RATE as usize]),
        ("full-scale", full_scale),
        ("short", scene(16_317, 2)),
        ("long", scene(70_003, 3)),
    ]
}

fn reference(args: &[String]) -> HashMap<String, Tensor> {
    common::run_python("authors_frontends.py", args);
    let out = PathBuf::from(&args[1]);
    Tensor::read_safetensors(&out)
        .unwrap()
        .into_iter()
        .collect()
}

fn values(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(&t.reshape([-1])).unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}

/// Largest difference between our features and a reference `[n_mels, frames]` tensor.
fn feature_diff(ours: &Features, theirs: &Tensor) -> f32 {
    assert_eq!(
        theirs.size(),
        vec![ours.n_mels as i64, ours.n_frames as i64],
        "feature shapes differ"
    );
    max_diff(&ours.data, &values(theirs))
}

#[test]
fn every_resampler_and_front_end_matches_the_authors_pipeline() {
    let dir = common::temp_dir("resampler_parity");
    let clips = clips();
    let mut args = vec![
        "features".to_string(),
        dir.join("ref.safetensors").display().to_string(),
    ];
    for (name, samples) in &clips {
        let path = dir.join(format!("{name}.wav"));
        write_wav(&path, samples, false);
        args.push(path.display().to_string());
    }
    let theirs = reference(&args);
    let mut worst = 0f32;
    for (i, (name, _)) in clips.iter().enumerate() {
        let audio = read_wav(&dir.join(format!("{name}.wav"))).unwrap();
        for r in ResamplerId::ALL {
            let wave = Resampler::new(r)
                .resample(&audio.samples, RATE, 32000)
                .unwrap();
            let ref_wave = values(&theirs[&format!("{i}/{r}/wave")]);
            let d = max_diff(&wave, &ref_wave);
            eprintln!(
                "{name:<10} {r:<10} waveform ({} samples): {d:.2e}",
                wave.len()
            );
            assert!(d <= 1e-6, "{name} {r}: resampled waveform differs by {d}");
            for f in FrontendId::ALL {
                let ours = extract_samples(&audio.samples, RATE, &Frontend::new(f, r)).unwrap();
                let f32_run = &theirs[&format!("{i}/{r}/{f}")];
                let f64_run = values(&theirs[&format!("{i}/{r}/{f}/f64")]);
                let d64 = feature_diff(&ours, &theirs[&format!("{i}/{r}/{f}/f64")]);
                let d32 = feature_diff(&ours, f32_run);
                // Every cell within the tolerance of the exact value and of their f32 run, except
                // quiet cells, which get the looser bound (and are counted).
                let quiet = quiet(&f64_run, ours.n_mels, ours.n_frames, f);
                let their_run = values(f32_run);
                let mut loose = 0;
                for (k, &o) in ours.data.iter().enumerate() {
                    // Against their run, their own rounding (distance from exact) comes on top.
                    let own = (their_run[k] - f64_run[k]).abs();
                    let d = (o - f64_run[k]).abs().max((o - their_run[k]).abs() - own);
                    let bound = if quiet[k] {
                        QUIET_BAND_TOLERANCE
                    } else {
                        LOG_MEL_TOLERANCE
                    };
                    loose += usize::from(d > LOG_MEL_TOLERANCE);
                    assert!(
                        d <= bound,
                        "{name} {r} {f}: band {} frame {}: ours {o}, exact {}, their f32 run {} \
                         (quiet: {})",
                        k / ours.n_frames,
                        k % ours.n_frames,
                        f64_run[k],
                        their_run[k],
                        quiet[k]
                    );
                }
                eprintln!(
                    "{name:<10} {r:<10} {f:<14} log-mel vs exact: {d64:.2e}, vs their f32 run: \
                     {d32:.2e}; {loose} quiet cells beyond {LOG_MEL_TOLERANCE:.0e}"
                );
                worst = worst.max(d64);
            }
        }
    }
    eprintln!("largest log-mel difference: {worst:.2e}");

    // `ascrepro features` writes exactly these features (checked above against the authors'
    // pipelines), with the front end's authors' resampler when none is given.
    let audio = read_wav(&dir.join("scene.wav")).unwrap();
    for (f, r, given) in [
        (FrontendId::TaMel256, ResamplerId::Torchaudio, true),
        (FrontendId::TaMel256, ResamplerId::Librosa, true),
        (FrontendId::CpMel512, ResamplerId::Librosa, true),
        (FrontendId::CpMel512, ResamplerId::Torchaudio, true),
        (FrontendId::TaMel256, ResamplerId::Torchaudio, false),
        (FrontendId::CpMel512, ResamplerId::Librosa, false),
    ] {
        let out = format!("{f}-{r}-{given}.npy");
        let (fs, rs) = (f.to_string(), r.to_string());
        let mut args = vec!["features", "--frontend", &fs, "--out", &out, "scene.wav"];
        if given {
            args.splice(3..3, ["--resampler", rs.as_str()]);
        }
        let o = common::ascrepro(&dir, &args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(String::from_utf8_lossy(&o.stdout).contains(&format!("{r} resampler")));
        let lib = extract_samples(&audio.samples, RATE, &Frontend::new(f, r)).unwrap();
        let expected = npy::to_bytes(&[lib.n_mels, lib.n_frames], &lib.data).unwrap();
        assert!(std::fs::read(dir.join(&out)).unwrap() == expected, "{out}");
    }
    let e = common::ascrepro_fails(
        &dir,
        &[
            "features",
            "--frontend",
            "tamel-256",
            "--resampler",
            "sox",
            "--out",
            "x.npy",
            "scene.wav",
        ],
    );
    assert!(
        e.contains("--resampler") && e.contains("torchaudio, librosa"),
        "{e}"
    );
}

/// A small room-like device impulse response at 44.1 kHz.
fn impulse_response() -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    (0..2205)
        .map(|n| {
            let decay = (-(n as f64) / 300.0).exp();
            let v: f64 = if n == 0 {
                1.0
            } else {
                rng.random_range(-0.5..0.5)
            };
            (v * decay) as f32
        })
        .collect()
}

#[test]
fn waveform_augmentations_act_where_each_systems_authors_apply_them() {
    let dir = common::temp_dir("augmentation_chain");
    let clip_path = dir.join("clip-a.wav");
    write_wav(&clip_path, &scene(RATE as usize, 5), false);
    let ir_dir = dir.join("irs");
    std::fs::create_dir_all(&ir_dir).unwrap();
    write_wav(&ir_dir.join("ir.wav"), &impulse_response(), true);
    let theirs = reference(&[
        "chains".into(),
        dir.join("ref.safetensors").display().to_string(),
        clip_path.display().to_string(),
        ir_dir.join("ir.wav").display().to_string(),
    ]);
    let x = read_wav(&clip_path).unwrap().samples;

    // The clip and the IR brought to `rate` by the front end's resampler (the IR as a set, the
    // way the runner loads it), then DIR convolution or an energy-IR copy, then the features.
    let at = |fe: &Frontend, rate: u32, energy_copy: bool| {
        let irs = ImpulseResponses::load(&ir_dir, None, rate, fe.resampler()).unwrap();
        let clip = fe.resampler().resample(&x, RATE, rate).unwrap();
        let y = if energy_copy {
            energy::render(&clip, irs.get(0), energy::fade_samples(rate))
        } else {
            DirAugment::convolve(&clip, irs.get(0))
        };
        extract_samples(&y, rate, fe).unwrap()
    };
    // Ours must match the authors' chain, and the other place in the chain must not.
    let check = |what: &str, key: &str, ours: &Features, swapped: &Features| {
        let d = feature_diff(ours, &theirs[key]);
        let d_swapped = feature_diff(swapped, &theirs[key]);
        eprintln!("{what}: {d:.2e} (at the other rate: {d_swapped:.2e})");
        assert!(d <= 1e-3, "{what} differs from the authors' chain by {d}");
        assert!(
            d_swapped > 10.0 * d,
            "{what}: the test cannot tell the rates apart"
        );
    };
    // DIR, librosa systems (CP-JKU's loader): at 32 kHz, the IR loaded at 32 kHz too.
    let fe = Frontend::new(FrontendId::CpMel512, ResamplerId::Librosa);
    assert!(fe.resampler().id().resamples_on_load());
    let (ours, swapped) = (at(&fe, 32000, false), at(&fe, RATE, false));
    check(
        "DIR, librosa, cpmel-512, at 32 kHz",
        "dir/librosa/cpmel-512",
        &ours,
        &swapped,
    );
    // DIR, torchaudio systems (DCASE baselines): at the recorded rate, resampled in the front end.
    let fe = Frontend::new(FrontendId::TaMel256, ResamplerId::Torchaudio);
    assert!(!fe.resampler().id().resamples_on_load());
    let (ours, swapped) = (at(&fe, RATE, false), at(&fe, 32000, false));
    check(
        "DIR, torchaudio, tamel-256, at 44.1 kHz",
        "dir/torchaudio/tamel-256",
        &ours,
        &swapped,
    );
    // RMS-energy IR copies (Ramezanee et al.): offline, at the recorded rate.
    let fe = Frontend::new(FrontendId::TaMel256x502, ResamplerId::Torchaudio);
    let (ours, swapped) = (at(&fe, RATE, true), at(&fe, 32000, true));
    check(
        "energy IR, torchaudio, tamel-256-502, at 44.1 kHz",
        "energy/torchaudio/tamel-256-502",
        &ours,
        &swapped,
    );
}
