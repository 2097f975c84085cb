//! PyTorch checkpoints read in Rust: every format torch.save writes for training code (Lightning
//! `.ckpt`, `.pth` dicts, half/bfloat16/double storages, strided views) imports into our model and
//! reproduces PyTorch's logits; bad files are refused with clear errors and never panic; the
//! `predict` command gives the library's logits; the released checkpoints' key lists fit our models.

use ascrepro::audio::features::extract_file;
use ascrepro::audio::frontend::{Frontend, FrontendId};
use ascrepro::audio::resample::ResamplerId;
use ascrepro::audio::wav::write_wav_24;
use ascrepro::models::blocks::NormKind;
use ascrepro::models::checkpoint::{self, fit, DType, Imported, Value};
use ascrepro::models::{
    dsflexinet, save_weights, sscp_mobile, tfsepnet23, tfsepnet64, ModelConfig, ModelSpec, Net,
};
use ascrepro_results::labels::CLASSES;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;
use tch::{Device, Kind, Tensor};

mod common;
use common::{
    ascrepro, ascrepro_fails, eval, max_abs_diff, run_python, temp_dir, PREDICT_TFSEPNET23_C8,
};

/// The checkpoints of tests/python/make_checkpoints.py, written once per test binary.
fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = temp_dir("checkpoint_fixtures");
        // The mel-embedding checkpoints carry our cpmel-128 filterbank (and a changed copy).
        let bank = Frontend::authors(FrontendId::CpMel128).mel_bank();
        let bytes: Vec<u8> = bank.iter().flat_map(|w| w.to_le_bytes()).collect();
        std::fs::write(dir.join("fb.bin"), bytes).unwrap();
        run_python(
            "make_checkpoints.py",
            [dir.clone(), dir.join("fb.bin"), released_dir()],
        );
        dir
    })
}

/// The released checkpoints' key lists (names, shapes, dtypes, top-level keys).
fn released_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/reference/released")
}
fn c8() -> ModelConfig {
    ModelConfig::Tfsepnet23(tfsepnet23::Config::new(8, NormKind::AdaResNorm))
}

fn reference() -> HashMap<String, Tensor> {
    Tensor::read_safetensors(fixtures().join("reference.safetensors"))
        .unwrap()
        .into_iter()
        .collect()
}

fn import(name: &str, cfg: &ModelConfig) -> ascrepro::error::Result<Imported> {
    checkpoint::import(&fixtures().join(name), cfg, Device::Cpu)
}

#[test]
fn every_format_imports_and_reproduces_pytorch_logits() {
    tch::set_num_threads(1);
    let refs = reference();
    let x = &refs["x"];
    // (file, prefix stripped, where the state dict is, a note that must appear)
    let cases = [
        ("tf8.ckpt", "model.", "`state_dict`", "dropped"),
        ("tf8.pth", "", "`model_state_dict`", "dropped"),
        ("tf8_module.pth", "module.", "`model`", "dropped"),
        (
            "tf8_f16.pth",
            "",
            "`model_state_dict`",
            "float16 tensors to float32",
        ),
        (
            "tf8_bf16.pth",
            "",
            "`model_state_dict`",
            "bfloat16 tensors to float32",
        ),
        (
            "tf8_f64.ckpt",
            "model.",
            "`state_dict`",
            "float64 tensors to float32",
        ),
        ("tf8_strided.pth", "", "the top level", "dropped"),
        (
            "tf8_mel.ckpt",
            "model.",
            "`state_dict`",
            "set aside 2 tensors",
        ),
    ];
    let f32_logits = &refs["logits.tf8.pth"];
    for (file, prefix, location, note) in cases {
        let imported = import(file, &c8()).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(imported.prefix, prefix, "{file}");
        let notes = imported.notes.join("\n");
        assert!(notes.contains(location), "{file}: {notes}");
        assert!(notes.contains(note), "{file}: {notes}");
        let ours = eval(&*imported.net, x);
        let theirs = &refs[&format!("logits.{file}")];
        let d = max_abs_diff(&ours, theirs);
        assert!(d < 1e-4, "{file}: logits differ from PyTorch's by {d}");
        if file.contains("16") {
            // The reduced precision really reached the weights (the test would see a wrong
            // conversion), and our import follows it.
            assert!(max_abs_diff(theirs, f32_logits) > 1e-5, "{file}");
        }
    }
    let mel = import("tf8_mel.ckpt", &c8()).unwrap();
    let aside: Vec<(&str, Vec<i64>)> = mel
        .set_aside
        .iter()
        .map(|(n, t)| (n.as_str(), t.size()))
        .collect();
    assert_eq!(
        aside,
        [
            ("mel.0.kernel", vec![320, 1, 459]),
            ("mel.1.mel_scale.fb", vec![1025, 128])
        ]
    );
}

#[test]
fn lightning_extras_load_as_inert_data() {
    let ckpt = checkpoint::read(&fixtures().join("tf8.ckpt")).unwrap();
    assert_eq!(
        ckpt.top_level_keys(),
        [
            "epoch",
            "global_step",
            "pytorch-lightning_version",
            "state_dict",
            "loops",
            "callbacks",
            "optimizer_states",
            "lr_schedulers",
            "hparams_name",
            "hyper_parameters"
        ]
    );
    let root = &ckpt.root;
    assert_eq!(root.get("epoch").and_then(|v| v.as_int()), Some(7));
    assert_eq!(root.get("global_step").and_then(|v| v.as_int()), Some(1234));
    // Adam's state: one entry per parameter with exp_avg / exp_avg_sq shaped like it.
    let opt = &root.get("optimizer_states").unwrap().as_seq().unwrap()[0];
    let state = opt.get("state").unwrap().as_map().unwrap();
    let sd = ckpt.state_dict().unwrap();
    let params: Vec<_> = sd
        .tensors
        .iter()
        .filter(|(n, _)| !n.contains("running_") && !n.contains("num_batches"))
        .collect();
    assert_eq!(state.len(), params.len());
    for (i, (_, entry)) in state.iter().enumerate() {
        let avg = entry.get("exp_avg").unwrap();
        assert_eq!(avg.as_tensor().unwrap().shape, params[i].1.shape);
        let step = entry.get("step").unwrap();
        assert_eq!(step.as_tensor().unwrap().to_f32().unwrap(), [1.0]);
    }
    let group = &opt.get("param_groups").unwrap().as_seq().unwrap()[0];
    assert!(matches!(group.get("lr"), Some(Value::Float(lr)) if lr == 1e-3));
    // A callback of an arbitrary class stays an opaque object with its attributes.
    let callbacks = root.get("callbacks").unwrap().as_map().unwrap();
    let Value::Object(obj) = &callbacks[0].1 else {
        panic!("callback is {:?}", callbacks[0].1)
    };
    let obj = obj.borrow();
    assert_eq!(obj.class, "__main__.EarlyStoppingState");
    let attrs = obj.state.as_ref().unwrap();
    assert_eq!(attrs.get("wait_count").and_then(|v| v.as_int()), Some(2));
    let hp = root.get("hyper_parameters").unwrap();
    assert_eq!(hp.get("norm").unwrap().as_str(), Some("ada"));
    assert!(matches!(hp.get("tag"), Some(Value::Bytes(ref b)) if b.as_slice() == b"bytes"));
    let betas = hp.get("betas").unwrap().as_seq().unwrap();
    assert!(matches!(betas[1], Value::Float(b) if b == 0.999));
}

#[test]
fn a_checkpoint_that_does_not_fit_is_refused_with_its_mismatches() {
    let wider = ModelConfig::Tfsepnet23(tfsepnet23::Config::new(12, NormKind::AdaResNorm));
    let e = import("tf8.ckpt", &wider).unwrap_err().to_string();
    assert!(e.contains("tf8.ckpt"), "{e}");
    assert!(
        e.contains("does not fit model `tfsepnet23 C=12 AdaResNorm`"),
        "{e}"
    );
    assert!(e.contains("of the wrong shape"), "{e}");
    assert!(
        e.contains(
            "first mismatches: `stem.conv.weight` has shape [16, 1, 5, 5] in the checkpoint, \
             [24, 1, 5, 5] in the model"
        ),
        "{e}"
    );

    // ResNorm has no parameters: AdaResNorm's are left over.
    let res = ModelConfig::Tfsepnet23(tfsepnet23::Config::new(
        8,
        NormKind::ResNorm { lambda: 0.1 },
    ));
    let e = import("tf8.pth", &res).unwrap_err().to_string();
    assert!(
        e.contains("unexpected `stem_norm.beta` [1, 16, 1, 1]"),
        "{e}"
    );

    // Another architecture: its variables are missing, ours unexpected.
    let other = ModelConfig::Tfsepnet64(tfsepnet64::Config::default());
    let e = import("tf8.ckpt", &other).unwrap_err().to_string();
    assert!(e.contains("missing `"), "{e}");
    assert!(e.contains("unexpected `model."), "{e}");
    assert!(e.contains("first mismatches"), "{e}");
}

#[test]
fn fit_finds_the_prefix_and_sets_aside_other_modules() {
    let model = vec![
        ("a.w".to_string(), vec![2]),
        ("b.c.w".to_string(), vec![3, 1]),
    ];
    let t = |n: &str, s: &[i64]| (n.to_string(), s.to_vec(), DType::F32);
    // A nested prefix (found from the names) and a tensor outside it.
    let ckpt = vec![
        t("mel.fb", &[5, 4]),
        t("lit.model.a.w", &[2]),
        t("lit.model.b.c.w", &[3, 1]),
        t("lit.model.b.bn.num_batches_tracked", &[]),
    ];
    let f = fit(&model, &ckpt).unwrap();
    assert_eq!(f.prefix, "lit.model.");
    assert_eq!(f.set_aside, [0]);
    assert_eq!(f.dropped_counters, 1);
    assert_eq!(
        f.assignments,
        [("a.w".to_string(), 1), ("b.c.w".to_string(), 2)]
    );
    // No prefix: a front end saved alongside is set aside, any other extra name is unexpected.
    let ckpt = vec![t("a.w", &[2]), t("mel.fb", &[4]), t("b.c.w", &[3, 1])];
    assert_eq!(fit(&model, &ckpt).unwrap().set_aside, [1]);
    let ckpt = vec![
        t("a.w", &[2]),
        t("b.c.w", &[3, 1]),
        t("b.extra", &[1]),
        t("teacher.w", &[1]),
    ];
    let m = fit(&model, &ckpt).unwrap_err();
    assert_eq!(
        m.unexpected,
        [
            ("b.extra".to_string(), vec![1]),
            ("teacher.w".to_string(), vec![1])
        ]
    );
    // Shape and type mismatches.
    let ckpt = vec![
        t("a.w", &[3]),
        ("b.c.w".to_string(), vec![3, 1], DType::I64),
    ];
    let m = fit(&model, &ckpt).unwrap_err();
    assert_eq!(m.wrong_shape, [("a.w".to_string(), vec![3], vec![2])]);
    assert_eq!(m.wrong_type, [("b.c.w".to_string(), "int64".to_string())]);
    assert!(m
        .describe()
        .contains("1 of the wrong shape, 1 not floating point"));
}

#[test]
fn unreadable_files_get_clear_errors() {
    let dir = fixtures();
    let cases = [
        ("legacy.pth", "legacy (non-zip) torch.save format"),
        ("compressed.pth", "is compressed"),
        ("nopickle.zip", "without `<archive>/data.pkl`"),
        ("script.pt", "TorchScript archive"),
    ];
    for (file, want) in cases {
        let e = checkpoint::read(&dir.join(file)).unwrap_err().to_string();
        assert!(e.contains(file) && e.contains(want), "{file}: {e}");
    }
    let p = Path::new("x.ckpt");
    let e = checkpoint::read_bytes(p, b"hello world".to_vec()).unwrap_err();
    assert!(e.to_string().contains("x.ckpt: not a zip archive"), "{e}");
    let e = checkpoint::read_bytes(p, Vec::new()).unwrap_err();
    assert!(e.to_string().contains("empty file"), "{e}");
    let e = checkpoint::read(&dir.join("absent.ckpt")).unwrap_err();
    assert!(e.to_string().contains("absent.ckpt"), "{e}");
    // Our own weights handed to the checkpoint reader.
    let mut st = 64u64.to_le_bytes().to_vec();
    st.extend(b"{\"__metadata__\":{}}");
    st.resize(200, b' ');
    let e = checkpoint::read_bytes(p, st).unwrap_err();
    assert!(e.to_string().contains("safetensors"), "{e}");
}

/// Every tensor of the state dict, as values.
fn contents(ckpt: &checkpoint::Checkpoint) -> Vec<(String, Vec<i64>, Vec<f32>)> {
    let sd = ckpt.state_dict().unwrap();
    sd.tensors
        .iter()
        .map(|(n, t)| (n.clone(), t.shape.clone(), t.to_f32().unwrap()))
        .collect()
}

#[test]
fn truncated_or_corrupted_files_are_refused_never_misread() {
    let path = fixtures().join("tf8.ckpt");
    let bytes = std::fs::read(&path).unwrap();
    let good = contents(&checkpoint::read_bytes(&path, bytes.clone()).unwrap());
    // Every truncation loses the end records (or part of them).
    for cut in (0..bytes.len())
        .step_by(997)
        .chain(bytes.len() - 30..bytes.len())
    {
        let r = checkpoint::read_bytes(&path, bytes[..cut].to_vec());
        assert!(r.is_err(), "truncated to {cut} bytes but read");
    }
    // A flipped byte is either refused or lands where nothing depends on it (padding, unused
    // entries): the tensors read are then exactly the originals.
    let mut refused = 0;
    let positions: Vec<usize> = (0..bytes.len())
        .step_by(211)
        .chain(bytes.len() - 300..bytes.len())
        .collect();
    for &at in &positions {
        let mut bad = bytes.clone();
        bad[at] ^= 0x5a;
        match checkpoint::read_bytes(&path, bad).and_then(|c| c.state_dict().map(|_| c)) {
            Err(e) => {
                assert!(e.to_string().contains("tf8.ckpt"), "{e}");
                refused += 1;
            }
            Ok(c) => assert!(
                contents(&c) == good,
                "flip at {at} changed the tensors read"
            ),
        }
    }
    assert!(
        refused * 2 > positions.len(),
        "{refused} of {}",
        positions.len()
    );
}

/// (file, logits, label) of each JSON line.
fn parse_json_lines(out: &Output) -> Vec<(String, Vec<f32>, String)> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "predict failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let logits: Vec<f32> = v["logits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect();
            (
                v["file"].as_str().unwrap().to_string(),
                logits,
                v["label"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Two clips: 44.1 kHz (resampled by predict) and 32 kHz, different content.
fn write_wavs(dir: &Path) {
    let clip = |sr: u32, secs: f32, f0: f32| -> Vec<f32> {
        let n = (sr as f32 * secs) as usize;
        let mut noise = 12345u32;
        (0..n)
            .map(|i| {
                noise = noise.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let t = i as f32 / sr as f32;
                0.3 * (2.0 * std::f32::consts::PI * f0 * t).sin()
                    + 0.1 * ((noise >> 16) as f32 / 32768.0 - 1.0)
            })
            .collect()
    };
    write_wav_24(&dir.join("a.wav"), &clip(44100, 1.0, 440.0), 44100).unwrap();
    write_wav_24(&dir.join("b.wav"), &clip(32000, 1.5, 3000.0), 32000).unwrap();
}

fn library_logits(net: &dyn Net, fe: &Frontend, wav: &Path) -> Vec<f32> {
    let f = extract_file(wav, fe).unwrap();
    let x = Tensor::from_slice(&f.data).reshape([1, 1, f.n_mels as i64, f.n_frames as i64]);
    Vec::<f32>::try_from(&eval(net, &x).view([-1])).unwrap()
}

fn assert_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    let d = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(d <= tol, "{what}: differ by {d}");
}

fn predict_ckpt(dir: &Path, ckpt: &str) -> Output {
    let weights = fixtures().join(ckpt);
    let mut args = PREDICT_TFSEPNET23_C8.to_vec();
    args.extend([
        "--weights",
        weights.to_str().unwrap(),
        "--json",
        "a.wav",
        "b.wav",
    ]);
    ascrepro(dir, &args)
}

#[test]
fn predict_prints_the_library_logits_for_a_checkpoint_and_for_our_weights() {
    tch::set_num_threads(1);
    let dir = temp_dir("predict_ckpt");
    write_wavs(&dir);
    let out = predict_ckpt(&dir, "tf8.ckpt");
    let rows = parse_json_lines(&out);
    let imported = import("tf8.ckpt", &c8()).unwrap();
    let fe = Frontend::authors(FrontendId::CpMel128);
    assert_eq!(rows.len(), 2);
    for ((file, logits, label), wav) in rows.iter().zip(["a.wav", "b.wav"]) {
        assert_eq!(file, wav);
        assert_eq!(logits.len(), 10);
        let best = (0..10)
            .max_by(|&i, &j| logits[i].total_cmp(&logits[j]))
            .unwrap();
        assert_eq!(label, CLASSES[best]);
        let lib = library_logits(&*imported.net, &fe, &dir.join(wav));
        assert_close(logits, &lib, 1e-5, wav);
    }
    let apart = rows[0]
        .1
        .iter()
        .zip(&rows[1].1)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(apart > 1e-3, "different clips, different logits ({apart})");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("prefix `model.` stripped"), "{stderr}");

    // The same weights saved as ours: no model options needed, same logits.
    save_weights(&imported.vs, &c8(), &dir.join("w.safetensors")).unwrap();
    let out = ascrepro(
        &dir,
        &[
            "predict",
            "--frontend",
            "cpmel-128",
            "--weights",
            "w.safetensors",
            "--json",
            "a.wav",
            "b.wav",
        ],
    );
    let again = parse_json_lines(&out);
    for (a, b) in rows.iter().zip(&again) {
        assert_close(&a.1, &b.1, 0.0, &a.0);
        assert_eq!(a.2, b.2);
    }
    // Model options do not apply to our weights; the table output names every file.
    let e = ascrepro_fails(
        &dir,
        &[
            "predict",
            "--width",
            "8",
            "--frontend",
            "cpmel-128",
            "--weights",
            "w.safetensors",
            "a.wav",
        ],
    );
    assert!(e.contains("--width do not apply"), "{e}");
    let out = ascrepro(
        &dir,
        &[
            "predict",
            "--frontend",
            "cpmel-128",
            "--weights",
            "w.safetensors",
            "a.wav",
            "b.wav",
        ],
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        table.contains("a.wav") && table.contains(&rows[1].2),
        "{table}"
    );
}

#[test]
fn predict_refuses_what_does_not_fit() {
    let dir = temp_dir("predict_refusals");
    write_wavs(&dir);
    let weights = fixtures().join("tf8.ckpt");
    let w = weights.to_str().unwrap();
    let mut args = PREDICT_TFSEPNET23_C8.to_vec();
    args[4] = "12";
    args.extend(["--weights", w, "a.wav"]);
    let e = ascrepro_fails(&dir, &args);
    assert!(e.contains("tf8.ckpt") && e.contains("does not fit"), "{e}");
    assert!(e.contains("has shape"), "{e}");
    let e = ascrepro_fails(
        &dir,
        &[
            "predict",
            "--frontend",
            "cpmel-128",
            "--weights",
            w,
            "a.wav",
        ],
    );
    assert!(e.contains("--model"), "{e}");
    let e = ascrepro_fails(
        &dir,
        &[
            "predict",
            "--model",
            "tfsepnet23",
            "--frontend",
            "cpmel-128",
            "--weights",
            w,
            "a.wav",
        ],
    );
    assert!(e.contains("--width"), "{e}");
    std::fs::write(dir.join("junk.pth"), b"not a checkpoint").unwrap();
    let mut args = PREDICT_TFSEPNET23_C8.to_vec();
    args.extend(["--weights", "junk.pth", "a.wav"]);
    let e = ascrepro_fails(&dir, &args);
    assert!(e.contains("junk.pth: not a zip archive"), "{e}");
    let mut args = PREDICT_TFSEPNET23_C8.to_vec();
    args.extend(["--weights", w, "missing.wav"]);
    let e = ascrepro_fails(&dir, &args);
    assert!(e.contains("missing.wav"), "{e}");
    let mut args = PREDICT_TFSEPNET23_C8.to_vec();
    args[8] = "cpmel-64";
    args.extend(["--weights", w, "a.wav"]);
    let e = ascrepro_fails(&dir, &args);
    assert!(e.contains("--frontend") && e.contains("cpmel-64"), "{e}");
}

#[test]
fn predict_checks_an_embedded_filterbank_and_uses_it_when_it_differs() {
    tch::set_num_threads(1);
    let dir = temp_dir("predict_fb");
    write_wavs(&dir);
    let plain = parse_json_lines(&predict_ckpt(&dir, "tf8.ckpt"));

    // The embedded torchaudio kernel is used for the 44.1 kHz clip (cpmel-128 alone would take
    // librosa's resampler); the 32 kHz clip is not resampled.
    let out = predict_ckpt(&dir, "tf8_mel.ckpt");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        stderr.contains("`mel.1.mel_scale.fb` matches front end cpmel-128's")
            && stderr.contains(
                "`mel.0.kernel` (44100 -> 32000 Hz) matches torchaudio's Resample defaults"
            ),
        "{stderr}"
    );
    let imported = import("tf8_mel.ckpt", &c8()).unwrap();
    let torchaudio = Frontend::new(FrontendId::CpMel128, ResamplerId::Torchaudio);
    for ((file, logits, _), p) in parse_json_lines(&out).iter().zip(&plain) {
        let lib = library_logits(&*imported.net, &torchaudio, &dir.join(file));
        assert_close(logits, &lib, 1e-5, file);
        if file == "b.wav" {
            assert_close(logits, &p.1, 0.0, file);
        }
    }
    let weights = fixtures().join("tf8_melk.ckpt");
    let mut args = PREDICT_TFSEPNET23_C8.to_vec();
    args.extend(["--weights", weights.to_str().unwrap(), "a.wav"]);
    let e = ascrepro_fails(&dir, &args);
    assert!(
        e.contains("tf8_melk.ckpt")
            && e.contains("`mel.0.kernel`")
            && e.contains("not a torchaudio kernel"),
        "{e}"
    );

    let out = predict_ckpt(&dir, "tf8_melx.ckpt");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        stderr.contains("differs from front end cpmel-128's")
            && stderr.contains("using the embedded filterbank"),
        "{stderr}"
    );
    let changed = parse_json_lines(&out);
    // The library path with the embedded bank gives the same logits; ours do not.
    let imported = import("tf8_melx.ckpt", &c8()).unwrap();
    let fb = &imported
        .set_aside
        .iter()
        .find(|(n, _)| n == "mel.1.mel_scale.fb")
        .unwrap()
        .1;
    let bank = checkpoint::tensor_values(&fb.transpose(0, 1));
    let fe = torchaudio.with_mel_bank(&bank, 128).unwrap();
    for ((file, logits, _), p) in changed.iter().zip(&plain) {
        let lib = library_logits(&*imported.net, &fe, &dir.join(file));
        assert_close(logits, &lib, 1e-5, file);
        let d = logits
            .iter()
            .zip(&p.1)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            d > 1e-3,
            "{file}: the embedded filterbank made no difference"
        );
    }
}

/// The synthetic checkpoint with exactly a released key list's names, shapes, dtypes and
/// top-level structure (tensor i holds the value i), and the list's names in order.
fn released(tsv: &str) -> (PathBuf, Vec<String>) {
    let out = fixtures().join(tsv.replace(".keys.tsv", ".released"));
    let names = std::fs::read_to_string(released_dir().join(tsv))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect();
    (out, names)
}

/// Imports a synthetic released checkpoint and checks every variable received its tensor.
fn check_released(tsv: &str, cfg: &ModelConfig, prefix: &str, set_aside: &[&str]) {
    let (path, names) = released(tsv);
    let imported = checkpoint::import(&path, cfg, Device::Cpu)
        .unwrap_or_else(|e| panic!("{tsv} into {}: {e}", cfg.describe()));
    assert_eq!(imported.prefix, prefix);
    let aside: Vec<&str> = imported.set_aside.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(aside, set_aside);
    let vars = imported.vs.variables();
    assert!(!vars.is_empty());
    for (name, var) in &vars {
        let index = names
            .iter()
            .position(|n| *n == format!("{prefix}{name}"))
            .unwrap_or_else(|| panic!("{name} not in {tsv}"));
        let (lo, hi) = (var.min().double_value(&[]), var.max().double_value(&[]));
        assert!(
            lo == index as f64 && hi == index as f64,
            "{name}: holds [{lo}, {hi}], expected tensor {index} of {tsv}"
        );
        assert_eq!(var.kind(), Kind::Float);
    }
    let counters = names
        .iter()
        .filter(|n| n.ends_with("num_batches_tracked"))
        .count();
    assert_eq!(
        vars.len() + counters + set_aside.len(),
        names.len(),
        "every tensor of {tsv} is used, dropped or set aside"
    );
}

#[test]
fn zhou_released_state_dict_imports_into_tfsepnet64() {
    check_released(
        "zhou2025_device_a_ckpt.keys.tsv",
        &ModelConfig::Tfsepnet64(tfsepnet64::Config::default()),
        "backbone.",
        &[],
    );
}

#[test]
fn ramezanee_released_state_dict_imports_into_dsflexinet() {
    // What `predict --model dsflexinet --reparam` builds: the released (RepConv-merged) graph.
    let mut spec = ModelSpec::new("dsflexinet");
    spec.reparameterized = Some(true);
    let cfg = ModelConfig::from_spec(&spec).unwrap();
    assert_eq!(cfg, ModelConfig::Dsflexinet(dsflexinet::Config::released()));
    check_released("ramezanee2025_V1-A_pth.keys.tsv", &cfg, "", &[]);
}

#[test]
fn zhang_released_state_dict_imports_into_sscp_mobile_and_sets_the_front_end_aside() {
    // The widths of the released c64 system (pruned 64 -> 32), given explicitly.
    let mut spec = ModelSpec::new("sscp_mobile");
    spec.widths = Some(sscp_mobile::S1_WIDTHS.to_vec());
    check_released(
        "zhang2025_c64_unpruned_distilled_1_ckpt.keys.tsv",
        &ModelConfig::from_spec(&spec).unwrap(),
        "model.",
        &[
            "mel.0.kernel",
            "mel.1.spectrogram.window",
            "mel.1.mel_scale.fb",
        ],
    );
}

#[test]
fn the_pickle_machine_survives_truncated_and_corrupted_programs() {
    use ascrepro::models::checkpoint::{pickle, zip::Archive, Storage};
    use std::rc::Rc;
    let bytes = std::fs::read(fixtures().join("tf8.ckpt")).unwrap();
    let archive = Archive::parse(bytes).unwrap();
    let name = archive
        .names()
        .iter()
        .find(|n| n.ends_with("/data.pkl"))
        .unwrap()
        .clone();
    let program = archive.read(&name).unwrap().unwrap().to_vec();
    // Storages of zeros, as large as the (possibly corrupted) persistent id says, within reason.
    let mut zeros: HashMap<usize, Rc<Storage>> = HashMap::new();
    let mut storage = |pid: &Value| -> Result<Value, String> {
        let fields = pid.as_seq().ok_or("pid is not a tuple")?;
        let numel = fields
            .get(4)
            .and_then(|v| v.as_int())
            .filter(|n| (0..1 << 20).contains(n))
            .ok_or("bad numel")? as usize;
        let s = zeros.entry(numel).or_insert_with(|| {
            Rc::new(Storage {
                key: "0".into(),
                dtype: DType::F32,
                numel,
                bytes: vec![0; numel * 4],
                big_endian: false,
            })
        });
        Ok(Value::Storage(s.clone()))
    };
    let whole = pickle::load(&program, &mut storage).unwrap();
    assert!(whole.get("state_dict").is_some());
    // A few thousand mutations spread over the whole program (every opcode kind occurs).
    let n = program.len();
    for cut in (0..n).step_by(n / 400).chain(n - 20..n - 1) {
        assert!(
            pickle::load(&program[..cut], &mut storage).is_err(),
            "truncated at {cut}"
        );
    }
    let mut errors = 0;
    for at in (0..n).step_by(n / 1500) {
        for flip in [0x01u8, 0xff] {
            let mut bad = program.clone();
            bad[at] ^= flip;
            errors += usize::from(pickle::load(&bad, &mut storage).is_err());
        }
    }
    assert!(errors > 0);
}

/// Zhang et al.'s released system 1 read by `predict` from 44.1 kHz WAVs: a checkpoint with the
/// released key names, torchaudio's own resampling kernel and filterbank embedded, and the
/// logits of the authors' inference path (torchaudio Resample + MelSpectrogram in front of the
/// model) on the same files, computed with the venv's torch.
#[test]
fn predict_reproduces_zhangs_system_from_44k_clips_with_its_embedded_front_end() {
    let dir = temp_dir("zhang_system");
    let scene = |seed: u32, f0: f32| -> Vec<f32> {
        let mut noise = seed;
        let mut low = 0f32;
        (0..44100)
            .map(|i| {
                noise = noise.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let white = (noise >> 16) as f32 / 32768.0 - 1.0;
                low = 0.98 * low + 0.02 * white;
                let t = i as f32 / 44100.0;
                0.05 * (2.0 * std::f32::consts::PI * f0 * t).sin() + 0.4 * low + 0.02 * white
            })
            .collect()
    };
    let wavs: Vec<String> = [(7, 440.0), (99, 5200.0)]
        .iter()
        .enumerate()
        .map(|(i, &(seed, f0))| {
            let path = dir.join(format!("clip{i}.wav"));
            write_wav_24(&path, &scene(seed, f0), 44100).unwrap();
            path.display().to_string()
        })
        .collect();
    let ckpt = dir
        .join("c64_unpruned_distilled_1.ckpt")
        .display()
        .to_string();
    let json = dir.join("authors.json");
    let mut args = vec![ckpt.clone(), json.display().to_string()];
    args.extend(wavs.iter().cloned());
    run_python("zhang_system.py", &args);
    let authors: HashMap<String, Vec<f32>> =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let widths: Vec<String> = sscp_mobile::S1_WIDTHS
        .iter()
        .map(|w| w.to_string())
        .collect();
    let widths = widths.join(",");
    let mut cli = vec![
        "predict",
        "--model",
        "sscp_mobile",
        "--widths",
        &widths,
        "--frontend",
        "tamel-256",
        "--weights",
        &ckpt,
        "--json",
    ];
    cli.extend(wavs.iter().map(String::as_str));
    let out = ascrepro(&dir, &cli);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .contains("`mel.0.kernel` (44100 -> 32000 Hz) matches torchaudio's Resample defaults")
            && stderr.contains("`mel.1.mel_scale.fb` matches front end tamel-256's")
            && stderr.contains("`mel.1.spectrogram.window` matches front end tamel-256's"),
        "{stderr}"
    );
    for (file, logits, label) in parse_json_lines(&out) {
        let theirs = &authors[&file];
        let diff = logits
            .iter()
            .zip(theirs)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        let best = (0..10)
            .max_by(|&a, &b| theirs[a].total_cmp(&theirs[b]))
            .unwrap();
        eprintln!("{file}: largest logit difference {diff:.2e}, label {label}");
        assert!(
            diff <= 2e-3,
            "{file}: logits differ by {diff}: {logits:?} vs {theirs:?}"
        );
        assert_eq!(label, CLASSES[best], "{file}");
    }
    // A front end with another window is refused, naming the window.
    let mut wrong = cli.clone();
    wrong[6] = "tamel-256-502";
    let e = ascrepro_fails(&dir, &wrong);
    assert!(
        e.contains("`mel.1.spectrogram.window` (3072 values) is not front end tamel-256-502's"),
        "{e}"
    );
    // The check can fail: the same system fed through librosa's resampler is farther off.
    cli.splice(9..9, ["--resampler", "librosa"]);
    let out = ascrepro(&dir, &cli);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--resampler librosa given"));
    let off = parse_json_lines(&out)
        .iter()
        .map(|(file, logits, _)| {
            let theirs = &authors[file];
            logits
                .iter()
                .zip(theirs)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max)
        })
        .fold(0f32, f32::max);
    eprintln!("with librosa's resampler instead: largest logit difference {off:.2e}");
    assert!(
        off > 10.0 * 2e-3,
        "the resampler hardly changes the logits ({off})"
    );
}
