//! The reader table: every reader of outside bytes, each as one function `&[u8] -> Result<(),
//! String>` that calls the project's real reader. Keep every entry point the harness uses in
//! this file, so that when a reader is renamed only this file changes.
//!
//! Readers that only take a path get the bytes written to a file in the child's scratch
//! directory (one per process) first.

use ascrepro::audio::features::extract_file;
use ascrepro::audio::frontend::{Frontend, FrontendId};
use ascrepro::audio::resample::ResamplerId;
use ascrepro::audio::wav::read_wav;
use ascrepro::data::manifest::Manifest;
use ascrepro::models::checkpoint::{self, pickle, zip, Storage, Value};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// A reader of outside bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reader {
    /// Recipe YAML: `recipe::load` (parse, validate, resolve a profile).
    Recipe,
    /// WAV: `audio::wav::read_wav`, then the front ends' resample + log-mel (`extract_file`).
    Wav,
    /// The ZIP container of `torch.save` files: `checkpoint::zip::Archive` (parse, read entries).
    Zip,
    /// A pickle stream: `checkpoint::pickle::load`, storages resolved to zero-filled buffers.
    Pickle,
    /// A whole `.pt`/`.ckpt` file: `checkpoint::read_bytes`, its state dict, every tensor
    /// converted (what `checkpoint::import` does with the tensors it keeps or sets aside).
    Checkpoint,
    /// ascrepro weights: `models::load_net` (safetensors header, model config, tensors).
    Safetensors,
    /// Data manifest YAML: `Manifest::load`, then `verify` against a small data directory.
    Manifest,
    /// A report's `SHA256SUMS`: `report::verify` of a small report directory.
    Sha256Sums,
    /// Teacher logits, CSV or parquet (by the `PAR1` magic): `train::distill::read_logits`.
    Logits,
}

impl Reader {
    pub const ALL: [Reader; 9] = [
        Reader::Recipe,
        Reader::Wav,
        Reader::Zip,
        Reader::Pickle,
        Reader::Checkpoint,
        Reader::Safetensors,
        Reader::Manifest,
        Reader::Sha256Sums,
        Reader::Logits,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Reader::Recipe => "recipe",
            Reader::Wav => "wav",
            Reader::Zip => "zip",
            Reader::Pickle => "pickle",
            Reader::Checkpoint => "checkpoint",
            Reader::Safetensors => "safetensors",
            Reader::Manifest => "manifest",
            Reader::Sha256Sums => "sha256sums",
            Reader::Logits => "logits",
        }
    }

    pub fn from_name(name: &str) -> Option<Reader> {
        Reader::ALL.into_iter().find(|r| r.name() == name)
    }

    /// Text formats also get token-level mutations.
    pub fn is_text(self) -> bool {
        matches!(
            self,
            Reader::Recipe | Reader::Manifest | Reader::Sha256Sums | Reader::Logits
        )
    }

    /// YAML formats also get anchors, aliases and deep nesting.
    pub fn is_yaml(self) -> bool {
        matches!(self, Reader::Recipe | Reader::Manifest)
    }
}

/// Files of the small report directory `SHA256SUMS` inputs are checked against: a complete
/// report as `report::verify` requires it (the marker, `index.html`, `results.json`).
pub const REPORT_FILES: [(&str, &[u8]); 4] = [
    (
        "ascrepro-report.txt",
        b"This directory is a report rendered by ascrepro.\n",
    ),
    ("index.html", b"<html><body>report</body></html>\n"),
    ("results.json", b"{\"systems\": []}\n"),
    ("results/accuracy.csv", b"model,accuracy\nstudent,0.5\n"),
];

/// Files of the small dataset manifests are verified against.
pub const DATA_FILES: [(&str, &[u8]); 3] = [
    ("meta.csv", b"filename\tscene_label\naudio/a.wav\tpark\n"),
    ("audio/a.wav", b"RIFF-not-really-a-wav"),
    (
        "evaluation_setup/fold1_train.csv",
        b"filename\tscene_label\n",
    ),
];

/// Clips a logits file is arranged for.
pub const LOGIT_CLIPS: [&str; 4] = [
    "audio/airport-lisbon-1000-40000-a.wav",
    "audio/bus-lyon-1001-40001-b.wav",
    "audio/park-paris-1002-40002-s1.wav",
    "other/park-paris-1002-40002-s1.wav",
];

/// What the readers need, made once per child process.
pub struct Context {
    scratch: PathBuf,
    frontends: Vec<Frontend>,
    report_dir: PathBuf,
    data_dir: PathBuf,
    clips: Vec<String>,
}

fn write_tree(root: &Path, files: &[(&str, &[u8])]) -> Result<(), String> {
    for (rel, bytes) in files {
        let path = root.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        std::fs::write(&path, bytes).map_err(|e| e.to_string())?;
    }
    Ok(())
}

impl Context {
    pub fn new(scratch: &Path) -> Result<Context, String> {
        std::fs::create_dir_all(scratch).map_err(|e| e.to_string())?;
        let report_dir = scratch.join("report");
        let data_dir = scratch.join("data");
        write_tree(&report_dir, &REPORT_FILES)?;
        write_tree(&data_dir, &DATA_FILES)?;
        Ok(Context {
            scratch: scratch.to_path_buf(),
            // Both resamplers: librosa's (resampy) and torchaudio's (a kernel per rate pair).
            frontends: vec![
                Frontend::new(FrontendId::CpMel128, ResamplerId::Librosa),
                Frontend::new(FrontendId::TaMel256, ResamplerId::Torchaudio),
            ],
            report_dir,
            data_dir,
            clips: LOGIT_CLIPS.iter().map(|s| s.to_string()).collect(),
        })
    }

    fn file(&self, name: &str, bytes: &[u8]) -> Result<PathBuf, String> {
        let path = self.scratch.join(name);
        std::fs::write(&path, bytes).map_err(|e| format!("harness: {e}"))?;
        Ok(path)
    }
}

/// Runs `reader` on `bytes`: `Ok` for a value, `Err` for an error (both are fine).
pub fn run(reader: Reader, cx: &Context, bytes: &[u8]) -> Result<(), String> {
    let s = |e: ascrepro::Error| e.to_string();
    match reader {
        Reader::Recipe => {
            let path = cx.file("recipe.yaml", bytes)?;
            let demo = ascrepro::recipe::load(&path, "demo");
            let paper = ascrepro::recipe::load(&path, "paper");
            match (demo, paper) {
                (Err(e), Err(_)) => Err(s(e)),
                _ => Ok(()),
            }
        }
        Reader::Wav => {
            let path = cx.file("clip.wav", bytes)?;
            read_wav(&path).map_err(s)?;
            for fe in &cx.frontends {
                extract_file(&path, fe).map_err(s)?;
            }
            Ok(())
        }
        Reader::Zip => {
            let archive = zip::Archive::parse(bytes.to_vec())?;
            for name in archive.names() {
                archive.read(name)?;
            }
            Ok(())
        }
        Reader::Pickle => {
            let mut storages = |pid: &Value| -> Result<Value, String> { zero_storage(pid) };
            pickle::load(bytes, &mut storages)
                .map(drop)
                .map_err(|e| e.to_string())
        }
        Reader::Checkpoint => {
            let ckpt = checkpoint::read_bytes(Path::new("fuzz.ckpt"), bytes.to_vec()).map_err(s)?;
            ckpt.top_level_keys();
            let sd = ckpt.state_dict().map_err(s)?;
            for (_, t) in &sd.tensors {
                drop(checkpoint::to_tch(t)?);
            }
            Ok(())
        }
        Reader::Safetensors => {
            let path = cx.file("model.safetensors", bytes)?;
            drop(ascrepro::models::load_net(&path, tch::Device::Cpu).map_err(s)?);
            Ok(())
        }
        Reader::Manifest => {
            let path = cx.file("manifest.yaml", bytes)?;
            let manifest = Manifest::load(&path).map_err(s)?;
            manifest.verify(&cx.data_dir).map_err(s)
        }
        Reader::Sha256Sums => {
            std::fs::write(cx.report_dir.join("SHA256SUMS"), bytes)
                .map_err(|e| format!("harness: {e}"))?;
            ascrepro::report::verify(&cx.report_dir).map_err(s)
        }
        Reader::Logits => {
            let name = if bytes.starts_with(b"PAR1") {
                "logits.parquet"
            } else {
                "logits.csv"
            };
            let path = cx.file(name, bytes)?;
            let sha = hex::encode(Sha256::digest(bytes));
            drop(ascrepro::train::distill::read_logits(&path, &sha, &cx.clips).map_err(s)?);
            Ok(())
        }
    }
}

/// Persistent ids of the pickle reader alone: `('storage', type, key, location, numel)` gets a
/// zero-filled storage (at most 16 MiB; larger is refused like a short archive entry).
fn zero_storage(pid: &Value) -> Result<Value, String> {
    let fields = pid.as_seq().unwrap_or_default();
    let [_, class, key, _, numel] = fields.as_slice() else {
        return Err(format!("unknown persistent id (a {})", pid.type_name()));
    };
    let dtype = match class {
        Value::Global(g) => checkpoint::DType::from_storage_class(&g.1),
        other => return Err(format!("storage type is a {}", other.type_name())),
    };
    let numel = numel
        .as_int()
        .and_then(|n| usize::try_from(n).ok())
        .ok_or("storage size is not a non-negative integer")?;
    let bytes = numel
        .checked_mul(dtype.size().unwrap_or(1))
        .filter(|&n| n <= 16 << 20)
        .ok_or("storage larger than the harness's 16 MiB")?;
    Ok(Value::Storage(Rc::new(Storage {
        key: key.as_str().unwrap_or("0").to_string(),
        dtype,
        numel,
        bytes: vec![0; bytes],
        big_endian: false,
    })))
}
