//! `ascrepro features`: the log-mel matrix of one WAV file as a NumPy `.npy` file.

use crate::audio::features::extract_file_with_note;
use crate::audio::frontend::{Frontend, FrontendId};
use crate::audio::npy;
use crate::error::{Error, Result};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct FeaturesArgs {
    /// Front end: cpmel-128, cpmel-512, tamel-256, tamel-256-502.
    #[arg(long)]
    frontend: String,
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
    let fe = Frontend::new(id);
    let f = extract_file_with_note(&args.wav, &fe)?;
    npy::write_f32(&args.out, &[f.n_mels, f.n_frames], &f.data)?;
    println!(
        "{}: {} x {} float32 log-mel ({id}) of {}",
        args.out.display(),
        f.n_mels,
        f.n_frames,
        args.wav.display()
    );
    Ok(())
}
