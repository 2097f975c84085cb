//! `ascrepro predict`: scene logits and labels for WAV files, from our own weights
//! (`.safetensors`, model configuration embedded) or a released PyTorch checkpoint
//! (`.ckpt`/`.pth`, architecture and options given on the command line).

use super::model_args::{self, ModelArgs};
use crate::audio::features::extract_file_with_note;
use crate::audio::frontend::{Frontend, FrontendId};
use crate::error::{Error, Result};
use crate::models::blocks::Ctx;
use crate::models::{checkpoint, load_net, ModelConfig, Net};
use crate::runner::platform;
use ascrepro_results::labels::CLASSES;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

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
    platform::pin(1, platform::DeviceChoice::Auto, true)?;
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
    let y = crate::panic_guard::catch(|| tch::no_grad(|| net.forward_ctx(&x, &Ctx::new(false))))
        .map_err(|torch| {
            Error::file(
                file,
                format!(
                    "the model cannot take this clip's features ({} mel bands x {} frames; \
                     is the clip much shorter than DCASE's 1 s?): libtorch: {torch}",
                    f.n_mels, f.n_frames
                ),
            )
        })?;
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
    let (frontend, fe_notes) = checkpoint::frontend::adopt(
        path,
        frontend,
        &imported.set_aside,
        args.resampler.is_some(),
    )?;
    notes.extend(fe_notes);
    Ok(Loaded {
        net: imported.net,
        config,
        frontend,
        notes,
        _vs: imported.vs,
    })
}
