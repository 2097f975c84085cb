//! `ascrepro features`: the log-mel matrix of one WAV file as a NumPy `.npy` file.

use crate::audio::features::extract_file_with_note;
use crate::audio::frontend::{Frontend, FrontendId};
use crate::audio::npy;
use crate::audio::resample::ResamplerId;
use crate::error::{Error, Result};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct FeaturesArgs {
    /// Front end: cpmel-128, cpmel-512, tamel-256, tamel-256-502.
    #[arg(long)]
    frontend: String,
    /// Resampler for clips not at 32 kHz: torchaudio (torchaudio.transforms.Resample) or
    /// librosa (librosa.load, resampy kaiser_best). Default: the one of the systems built on
    /// the front end (librosa for cpmel-*, torchaudio for tamel-*).
    #[arg(long)]
    resampler: Option<String>,
    /// Output file: float32 array of shape (mel bands, frames), C order.
    #[arg(long)]
    out: PathBuf,
    /// WAV file (any sample rate: resampled to the front end's 32 kHz first; several
    /// channels are mixed to mono, with a note).
    wav: PathBuf,
}

pub fn run(args: FeaturesArgs) -> Result<()> {
    let id: FrontendId = args
        .frontend
        .parse()
        .map_err(|e: Error| Error::msg(format!("--frontend: {e}")))?;
    let resampler = parse_resampler(args.resampler.as_deref(), id)?;
    let fe = Frontend::new(id, resampler);
    // Refused before the work, not only when the result is written.
    crate::fsio::check_output(&args.out, &[&args.wav])?;
    let f = extract_file_with_note(&args.wav, &fe)?;
    npy::write_f32(&args.out, &[f.n_mels, f.n_frames], &f.data, &[&args.wav])?;
    println!(
        "{}: {} x {} float32 log-mel ({id}, {resampler} resampler) of {}",
        args.out.display(),
        f.n_mels,
        f.n_frames,
        args.wav.display()
    );
    Ok(())
}

/// `--resampler` as given, or the front end's authors' resampler.
pub(super) fn parse_resampler(given: Option<&str>, frontend: FrontendId) -> Result<ResamplerId> {
    match given {
        Some(name) => name
            .parse()
            .map_err(|e: Error| Error::msg(format!("--resampler: {e}"))),
        None => Ok(frontend.authors_resampler()),
    }
}
