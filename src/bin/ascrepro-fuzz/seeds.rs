//! `ascrepro-fuzz seed-corpus DIR`: writes the corpus seeds the project itself can make (WAV,
//! safetensors weights, manifests, SHA256SUMS, logits files) and copies the committed recipes.
//! The checkpoint, zip and pickle seeds come from PyTorch (`fuzz/make_seeds.py`).

use crate::readers::{DATA_FILES, LOGIT_CLIPS, REPORT_FILES};
use ascrepro::audio::wav::write_wav_24;
use ascrepro::data::manifest::Manifest;
use ascrepro::models::blocks::{NormKind, Vb};
use ascrepro::models::{build_net, save_weights, tfsepnet23, ModelConfig};
use sha2::{Digest, Sha256};
use std::path::Path;
use tch::{nn, Device, Kind, Tensor};

type Res = Result<(), String>;

fn e<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

fn dir(root: &Path, reader: &str) -> Result<std::path::PathBuf, String> {
    let d = root.join(reader);
    std::fs::create_dir_all(&d).map_err(e)?;
    Ok(d)
}

pub fn write_all(root: &Path) -> Res {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    tch::manual_seed(0);

    // Recipes: the committed ones.
    let out = dir(root, "recipe")?;
    for src in ["recipes", "tests/fixtures"] {
        for entry in std::fs::read_dir(manifest_dir.join(src)).map_err(e)? {
            let path = entry.map_err(e)?.path();
            if path.extension().is_some_and(|x| x == "yaml") {
                std::fs::copy(&path, out.join(path.file_name().unwrap())).map_err(e)?;
            }
        }
    }

    // WAV: 24-bit by the project's writer, and hound's other formats; short clips (fast runs).
    let out = dir(root, "wav")?;
    let tone = |n: usize, rate: f32| -> Vec<f32> {
        (0..n)
            .map(|i| 0.3 * (i as f32 * 440.0 * std::f32::consts::TAU / rate).sin())
            .collect()
    };
    write_wav_24(&out.join("mono24_44k.wav"), &tone(2205, 44_100.0), 44_100).map_err(e)?;
    write_wav_24(&out.join("mono24_32k.wav"), &tone(1600, 32_000.0), 32_000).map_err(e)?;
    for (name, channels, bits, float, rate) in [
        ("stereo16_44k.wav", 2u16, 16u16, false, 44_100u32),
        ("mono8_22k.wav", 1, 8, false, 22_050),
        ("mono32_48k.wav", 1, 32, false, 48_000),
        ("float32_16k.wav", 1, 32, true, 16_000),
    ] {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format: if float {
                hound::SampleFormat::Float
            } else {
                hound::SampleFormat::Int
            },
        };
        let mut w = hound::WavWriter::create(out.join(name), spec).map_err(e)?;
        for (i, s) in tone(rate as usize / 20, rate as f32).iter().enumerate() {
            for c in 0..channels {
                let v = if c == 1 { -s } else { *s };
                if float {
                    w.write_sample(v).map_err(e)?;
                } else {
                    let scale = ((1i64 << (bits - 1)) - 1) as f32;
                    let q = (v * scale) as i32;
                    match bits {
                        8 => w.write_sample(q as i8).map_err(e)?,
                        16 => w.write_sample(q as i16).map_err(e)?,
                        _ => w.write_sample(q).map_err(e)?,
                    }
                }
            }
            let _ = i;
        }
        w.finalize().map_err(e)?;
    }

    // Safetensors: ascrepro weights of a narrow TF-SepNet (save_weights).
    let out = dir(root, "safetensors")?;
    let cfg = ModelConfig::Tfsepnet23(tfsepnet23::Config::new(4, NormKind::AdaResNorm));
    let vs = nn::VarStore::new(Device::Cpu);
    build_net(&Vb::constant(&vs.root()), &cfg).map_err(e)?;
    save_weights(&vs, &cfg, &out.join("tfsepnet23_w4.safetensors")).map_err(e)?;
    let x = Tensor::randn([2, 3], (Kind::Float, Device::Cpu));
    Tensor::write_safetensors(&[("x", &x)], out.join("no_config.safetensors")).map_err(e)?;

    // Manifests of the small data directory the reader verifies against.
    let out = dir(root, "manifest")?;
    let data = tempfile::tempdir().map_err(e)?;
    for (rel, bytes) in DATA_FILES {
        let p = data.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).map_err(e)?;
        std::fs::write(p, bytes).map_err(e)?;
    }
    let m = Manifest::create(data.path(), "fuzz-data", "tau2022-mobile").map_err(e)?;
    m.save(&out.join("full.yaml")).map_err(e)?;
    m.summarized().save(&out.join("summary.yaml")).map_err(e)?;
    let mut bad = m.clone();
    bad.files[0].sha256 = "0".repeat(64);
    bad.save(&out.join("mismatch.yaml")).map_err(e)?;

    // SHA256SUMS of the small report directory (text and binary mode), and the committed one.
    let out = dir(root, "sha256sums")?;
    let mut text = String::new();
    let mut binary = String::new();
    for (rel, bytes) in REPORT_FILES {
        let h = hex::encode(Sha256::digest(bytes));
        text.push_str(&format!("{h}  {rel}\n"));
        binary.push_str(&format!("{} *{rel}\n", h.to_uppercase()));
    }
    std::fs::write(out.join("report.SHA256SUMS"), text).map_err(e)?;
    std::fs::write(out.join("binary.SHA256SUMS"), binary).map_err(e)?;
    std::fs::copy(
        manifest_dir.join("reports/cai2023_tfsepnet/SHA256SUMS"),
        out.join("cai2023.SHA256SUMS"),
    )
    .map_err(e)?;

    // Logits files by the project's writer, CSV and parquet.
    let out = dir(root, "logits")?;
    let clips: Vec<String> = LOGIT_CLIPS.iter().map(|s| s.to_string()).collect();
    let logits = Tensor::randn([clips.len() as i64, 10], (Kind::Float, Device::Cpu));
    let w = ascrepro::train::distill::write_logits;
    w(&out.join("teacher.csv"), &clips, &logits).map_err(e)?;
    w(&out.join("teacher.parquet"), &clips, &logits).map_err(e)?;
    Ok(())
}
