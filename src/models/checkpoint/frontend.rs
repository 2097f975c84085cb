//! Front-end tensors a released checkpoint embeds beside its model (Zhang et al.'s: the
//! DCASE2025 baseline's `mel = Sequential(Resample, MelSpectrogram)` as `mel.0.kernel`,
//! `mel.1.spectrogram.window`, `mel.1.mel_scale.fb`): each is compared with the front end's
//! own, within a tolerance that fits how it is computed in f32, and adopted when the model was
//! trained on something else, or refused when it cannot be; the user is told once per tensor.

use crate::audio::frontend::Frontend;
use crate::audio::resample::{torchaudio_kernel, Resampler, ResamplerId, SincKernel};
use crate::error::{Error, Result};
use std::path::Path;
use tch::Tensor;

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

/// Which embedded tensor a set-aside name and shape is, if the front end reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Embedded {
    /// torchaudio's STFT window (`*.spectrogram.window`).
    Window,
    /// torchaudio's resampling kernel (`mel.*kernel`, `[new, 1, taps]`).
    Kernel,
    /// torchaudio's mel filterbank (`*.mel_scale.fb`).
    Filterbank,
}

fn embedded(name: &str, shape: &[i64]) -> Option<Embedded> {
    if name.ends_with("spectrogram.window") {
        Some(Embedded::Window)
    } else if name.starts_with("mel.") && name.ends_with("kernel") && shape.len() == 3 {
        Some(Embedded::Kernel)
    } else if name.ends_with("mel_scale.fb") {
        Some(Embedded::Filterbank)
    } else {
        None
    }
}

/// Whether [`adopt`] reads the set-aside tensor `name` of size `shape`: only those are
/// materialised at import.
pub fn uses(name: &str, shape: &[i64]) -> bool {
    embedded(name, shape).is_some()
}

/// The first set-aside tensor of kind `kind`.
fn find(set_aside: &[(String, Tensor)], kind: Embedded) -> Option<&(String, Tensor)> {
    set_aside
        .iter()
        .find(|(n, t)| embedded(n, &t.size()) == Some(kind))
}

/// `fe` as the checkpoint at `path` asks, given the tensors its import set aside: its mel
/// filterbank, its STFT window (checked), its resampling kernel (unless the user chose a
/// resampler: `resampler_given`). Returns the front end and one note per embedded tensor.
pub fn adopt(
    path: &Path,
    fe: Frontend,
    set_aside: &[(String, Tensor)],
    resampler_given: bool,
) -> Result<(Frontend, Vec<String>)> {
    let mut notes = Vec::new();
    let (fe, note) = embedded_filterbank(path, fe, set_aside)?;
    notes.extend(note);
    notes.extend(embedded_window(path, &fe, set_aside)?);
    let (fe, note) = embedded_resampler(path, fe, set_aside, resampler_given)?;
    notes.extend(note);
    Ok((fe, notes))
}

/// When the checkpoint embeds its STFT window (`*.spectrogram.window`, torchaudio's
/// `MelSpectrogram`), checks it is the front end's: a model trained on another window needs
/// another front end, which is said rather than silently computed.
fn embedded_window(
    path: &Path,
    fe: &Frontend,
    set_aside: &[(String, Tensor)],
) -> Result<Option<String>> {
    let Some((name, window)) = find(set_aside, Embedded::Window) else {
        return Ok(None);
    };
    let theirs = super::tensor_values(window);
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
    let Some((name, kernel)) = find(set_aside, Embedded::Kernel) else {
        return Ok((fe, None));
    };
    let size = kernel.size();
    let (rows, cols) = (size[0] as usize, size[2] as usize);
    let values = super::tensor_values(kernel);
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
fn embedded_filterbank(
    path: &Path,
    fe: Frontend,
    set_aside: &[(String, Tensor)],
) -> Result<(Frontend, Option<String>)> {
    let Some((name, fb)) = find(set_aside, Embedded::Filterbank) else {
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
    let theirs: Vec<f32> = super::tensor_values(&fb.transpose(0, 1));
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
