//! `ascrepro predict`: scene logits and labels for WAV files, from our own weights
//! (`.safetensors`, model configuration embedded) or a released PyTorch checkpoint
//! (`.ckpt`/`.pth`, architecture and options given on the command line).

use super::model_args::{self, ModelArgs};
use crate::audio::features::extract_file_with_note;
use crate::audio::frontend::{Frontend, FrontendId};
use crate::audio::resample::{torchaudio_kernel, Resampler, ResamplerId, SincKernel};
use crate::error::{Error, Result};
use crate::labels::CLASSES;
use crate::models::blocks::Ctx;
use crate::models::{checkpoint, load_net, ModelConfig, Net};
use crate::runner::platform;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// Largest difference between an embedded filterbank weight and ours still called a match.
/// Both banks are built in f32 from the same formulas, but each weight is a difference of
/// frequencies up to 16 kHz (f32-rounded to ~1e-3 Hz) divided by a band's width (down to
/// ~10 Hz for 256 HTK bands), so two correct f32 builds differ by up to ~1e-5; another bank
/// (other scale, range or normalisation) moves weights by 1e-2 or more.
const FILTERBANK_TOLERANCE: f32 = 1e-4;

/// Largest difference between an embedded STFT window and ours still called a match (both are
/// torch's f32 Hann windows).
const WINDOW_TOLERANCE: f32 = 1e-6;

/// Largest difference between an embedded resampling kernel's taps and torchaudio's defaults
/// still called a match: both are f64 computations rounded to f32 (taps up to 0.72), so they
/// differ by at most an ulp or two.
const KERNEL_TOLERANCE: f32 = 1e-6;

#[derive(clap::Args, Debug)]
pub struct PredictArgs {
    /// Architecture, e.g. tfsepnet23 (required for .ckpt/.pth; a .safetensors file names its own).
    #[arg(long)]
    model: Option<String>,
    #[command(flatten)]
    options: ModelArgs,
    /// The weights are of the inference graph (RepConv branches merged, as in released
    /// dsflexinet checkpoints).
    #[arg(long)]
    reparam: bool,
    /// Front end the model was trained with: cpmel-128, cpmel-512, tamel-256, tamel-256-502.
    #[arg(long)]
    frontend: String,
    /// Resampler for clips not at 32 kHz: torchaudio or librosa. Default: a resampling
    /// kernel the checkpoint embeds (torchaudio's), else the one of the systems built on the
    /// front end (librosa for cpmel-*, torchaudio for tamel-*).
    #[arg(long)]
    resampler: Option<String>,
    /// Weights: ascrepro's .safetensors, or a PyTorch checkpoint (.ckpt, .pth, .pt).
    #[arg(long)]
    weights: PathBuf,
    /// One JSON object per file (file, logits, label) instead of a table.
    #[arg(long)]
    json: bool,
    /// WAV files (any sample rate; resampled to the front end's).
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

impl PredictArgs {
    /// The model options given, by flag name.
    fn model_options(&self) -> Vec<&'static str> {
        let mut given = self.options.given();
        if self.reparam {
            given.push("--reparam");
        }
        given
    }
}

/// A model ready for eval, the front end to feed it, and notes for the user.
struct Loaded {
    net: Box<dyn Net>,
    config: ModelConfig,
    frontend: Frontend,
    notes: Vec<String>,
    /// Keeps the variables alive for `net`.
    _vs: tch::nn::VarStore,
}

pub fn run(args: PredictArgs) -> Result<()> {
    platform::pin(1);
    let device = platform::device();
    let id: FrontendId = args
        .frontend
        .parse()
        .map_err(|e| Error::msg(format!("--frontend: {e}")))?;
    let resampler = super::features::parse_resampler(args.resampler.as_deref(), id)?;
    let loaded = load(&args, Frontend::new(id, resampler), device)?;
    if loaded.config.num_classes() != CLASSES.len() as i64 {
        return Err(Error::file(
            &args.weights,
            format!(
                "model `{}` has {} classes; predict needs the {} scene classes",
                loaded.config.describe(),
                loaded.config.num_classes(),
                CLASSES.len()
            ),
        ));
    }
    for note in &loaded.notes {
        eprintln!("note: {}: {note}", args.weights.display());
    }
    if !args.json {
        println!(
            "model {}, front end {}, weights {}",
            loaded.config.describe(),
            id,
            args.weights.display()
        );
        println!("{:<40} {:<18} {:>8} {:>8}", "file", "label", "logit", "p");
    }
    for file in &args.files {
        let logits = predict_file(&*loaded.net, &loaded.frontend, file, device)?;
        let best = argmax(&logits);
        if args.json {
            let v = serde_json::json!({
                "file": file.display().to_string(),
                "logits": logits,
                "label": CLASSES[best],
            });
            println!("{v}");
        } else {
            let max = logits[best];
            let total: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
            println!(
                "{:<40} {:<18} {:>8.3} {:>8.3}",
                file.display().to_string(),
                CLASSES[best],
                logits[best],
                1.0 / total
            );
        }
    }
    Ok(())
}

/// Eval-mode logits of one WAV file.
pub fn predict_file(net: &dyn Net, fe: &Frontend, file: &Path, device: Device) -> Result<Vec<f32>> {
    let f = extract_file_with_note(file, fe)?;
    let x = Tensor::f_from_slice(&f.data)?
        .f_reshape([1, 1, f.n_mels as i64, f.n_frames as i64])?
        .to_device(device);
    let y = tch::no_grad(|| net.forward_ctx(&x, &Ctx::new(false)));
    let y = y.to_device(Device::Cpu).to_kind(Kind::Float).view([-1]);
    let logits = Vec::<f32>::try_from(&y)?;
    if logits.iter().any(|l| !l.is_finite()) {
        return Err(Error::file(
            file,
            format!(
                "the model's logits are not finite ({logits:?}): its weights overflow or hold NaN"
            ),
        ));
    }
    Ok(logits)
}

/// Index of the largest logit (the first on ties; NaN never wins).
fn argmax(logits: &[f32]) -> usize {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] || logits[best].is_nan() {
            best = i;
        }
    }
    best
}

fn load(args: &PredictArgs, frontend: Frontend, device: Device) -> Result<Loaded> {
    let path = &args.weights;
    let ours = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"));
    if ours {
        let (vs, config, net) = load_net(path, device)?;
        if let Some(model) = &args.model {
            if model != config.arch() {
                return Err(Error::file(
                    path,
                    format!(
                        "--model {model} given, but the weights are of model `{}`",
                        config.describe()
                    ),
                ));
            }
        }
        let options = args.model_options();
        if !options.is_empty() {
            return Err(Error::file(
                path,
                format!(
                    "{} do not apply to ascrepro weights: the file embeds its model (`{}`); drop them",
                    options.join(", "),
                    config.describe()
                ),
            ));
        }
        return Ok(Loaded {
            net,
            config,
            frontend,
            notes: Vec::new(),
            _vs: vs,
        });
    }
    let model = args.model.clone().ok_or_else(|| {
        Error::file(
            path,
            "a PyTorch checkpoint does not say which model it holds: give --model and the model's \
             options (e.g. --model tfsepnet23 --width 40 --norm adaresnorm)",
        )
    })?;
    let mut spec = args.options.spec(&model);
    spec.reparameterized = args.reparam.then_some(true);
    let config = model_args::config(&spec)?;
    let imported = checkpoint::import(path, &config, device)?;
    let mut notes = imported.notes;
    let (frontend, fb_note) = embedded_frontend(path, frontend, &imported.set_aside)?;
    notes.extend(fb_note);
    notes.extend(embedded_window(path, &frontend, &imported.set_aside)?);
    let (frontend, kernel_note) = embedded_resampler(
        path,
        frontend,
        &imported.set_aside,
        args.resampler.is_some(),
    )?;
    notes.extend(kernel_note);
    Ok(Loaded {
        net: imported.net,
        config,
        frontend,
        notes,
        _vs: imported.vs,
    })
}

/// When the checkpoint embeds its STFT window (`*.spectrogram.window`, torchaudio's
/// `MelSpectrogram`), checks it is the front end's: a model trained on another window needs
/// another front end, which is said rather than silently computed.
fn embedded_window(
    path: &Path,
    fe: &Frontend,
    set_aside: &[(String, Tensor)],
) -> Result<Option<String>> {
    let Some((name, window)) = set_aside
        .iter()
        .find(|(n, _)| n.ends_with("spectrogram.window"))
    else {
        return Ok(None);
    };
    let theirs = checkpoint::tensor_values(window);
    let ours = fe.window();
    let id = fe.id();
    let diff = (theirs.len() == ours.len()).then(|| {
        ours.iter()
            .zip(&theirs)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max)
    });
    match diff {
        Some(d) if d <= WINDOW_TOLERANCE => Ok(Some(format!(
            "embedded STFT window `{name}` matches front end {id}'s (largest difference {d:.1e})"
        ))),
        _ => Err(Error::file(
            path,
            format!(
                "embedded STFT window `{name}` ({} values) is not front end {id}'s ({} values{}): \
                 choose the --frontend the model was trained with",
                theirs.len(),
                ours.len(),
                diff.map(|d| format!(", largest difference {d:.3e}"))
                    .unwrap_or_default()
            ),
        )),
    }
}

/// When the checkpoint embeds torchaudio's resampling kernel (`mel.0.kernel`, `[new, 1, taps]`,
/// the `Resample` module in front of the mel), the front end resamples with it for its rate
/// pair, unless `--resampler` was given; either way the user is told once how it compares
/// with torchaudio's defaults.
fn embedded_resampler(
    path: &Path,
    fe: Frontend,
    set_aside: &[(String, Tensor)],
    resampler_given: bool,
) -> Result<(Frontend, Option<String>)> {
    let Some((name, kernel)) = set_aside
        .iter()
        .find(|(n, t)| n.starts_with("mel.") && n.ends_with("kernel") && t.dim() == 3)
    else {
        return Ok((fe, None));
    };
    let size = kernel.size();
    let (rows, cols) = (size[0] as usize, size[2] as usize);
    let values = checkpoint::tensor_values(kernel);
    let theirs = SincKernel::from_dense(&values, rows, cols, fe.sample_rate())
        .map_err(|e| Error::file(path, format!("embedded resampling kernel `{name}`: {e}")))?;
    let (from, to) = theirs.rates();
    if resampler_given && fe.resampler().id() != ResamplerId::Torchaudio {
        let chosen = fe.resampler().id();
        return Ok((
            fe,
            Some(format!(
                "the checkpoint embeds a torchaudio resampling kernel `{name}` ({from} -> {to} \
                 Hz); --resampler {chosen} given, so it is not used"
            )),
        ));
    }
    let comparison = match theirs.max_difference(&torchaudio_kernel(from, to)) {
        Some(d) if d <= KERNEL_TOLERANCE => {
            format!("matches torchaudio's Resample defaults (largest difference {d:.1e})")
        }
        Some(d) => {
            format!("differs from torchaudio's Resample defaults (largest difference {d:.3e})")
        }
        None => "has another shape than torchaudio's Resample defaults".to_string(),
    };
    let note = format!(
        "embedded resampling kernel `{name}` ({from} -> {to} Hz) {comparison}: {from} Hz files \
         are resampled with it, files at other rates with torchaudio's defaults"
    );
    Ok((
        fe.with_resampler(Resampler::with_kernel(theirs)),
        Some(note),
    ))
}

/// When the checkpoint embeds a torchaudio mel filterbank (`*.mel_scale.fb`, `[n_bins, n_mels]`),
/// compares it with the front end's: a match keeps ours; a difference switches to the embedded
/// bank (the model was trained on it). Either way the user is told.
fn embedded_frontend(
    path: &Path,
    fe: Frontend,
    set_aside: &[(String, Tensor)],
) -> Result<(Frontend, Option<String>)> {
    let Some((name, fb)) = set_aside.iter().find(|(n, _)| n.ends_with("mel_scale.fb")) else {
        return Ok((fe, None));
    };
    let ours = fe.mel_bank();
    let n_mels = fe.n_mels();
    let n_bins = ours.len() / n_mels.max(1);
    let size = fb.size();
    let [bins, mels] = size.as_slice() else {
        return Err(Error::file(
            path,
            format!("embedded filterbank `{name}` has shape {size:?}, expected [bins, mels]"),
        ));
    };
    if *bins != n_bins as i64 || *mels < 1 {
        return Err(Error::file(
            path,
            format!(
                "embedded filterbank `{name}` {size:?} has {bins} frequency bins, front end {} has \
                 {n_bins}: choose the --frontend the model was trained with",
                fe.id()
            ),
        ));
    }
    // torchaudio keeps [bins, mels]; ours is [mels, bins].
    let theirs: Vec<f32> = checkpoint::tensor_values(&fb.transpose(0, 1));
    let id = fe.id();
    if *mels == n_mels as i64 {
        let diff = ours
            .iter()
            .zip(&theirs)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        if diff <= FILTERBANK_TOLERANCE {
            return Ok((
                fe,
                Some(format!(
                    "embedded mel filterbank `{name}` matches front end {id}'s (largest difference {diff:.1e})"
                )),
            ));
        }
        let fe = fe.with_mel_bank(&theirs, *mels as usize)?;
        return Ok((
            fe,
            Some(format!(
                "embedded mel filterbank `{name}` differs from front end {id}'s (largest difference \
                 {diff:.3e}): using the embedded filterbank"
            )),
        ));
    }
    let fe = fe.with_mel_bank(&theirs, *mels as usize)?;
    Ok((
        fe,
        Some(format!(
            "embedded mel filterbank `{name}` has {mels} bands, front end {id} has {n_mels}: using \
             the embedded filterbank"
        )),
    ))
}
