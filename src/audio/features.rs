//! Feature extraction from samples and files: resample to the front end's rate, then log-mel.

use super::frontend::{Features, Frontend};
use super::resample::resample;
use super::wav::read_wav;
use crate::error::{Error, Result};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Mono samples at any rate -> resample to `fe.sample_rate()` if needed -> `fe.compute`.
pub fn extract_samples(samples: &[f32], sample_rate: u32, fe: &Frontend) -> Result<Features> {
    if samples.is_empty() {
        return Err(Error::msg("audio has no samples"));
    }
    if let Some(i) = samples.iter().position(|s| !s.is_finite()) {
        return Err(Error::msg(format!(
            "audio sample {i} is not a finite number ({})",
            samples[i]
        )));
    }
    if sample_rate == fe.sample_rate() {
        Ok(fe.compute(samples))
    } else {
        let resampled = resample(samples, sample_rate, fe.sample_rate())?;
        Ok(fe.compute(&resampled))
    }
}

/// `read_wav` + `extract_samples`; errors name the file.
pub fn extract_file(path: &Path, fe: &Frontend) -> Result<Features> {
    let audio = read_wav(path)?;
    extract_samples(&audio.samples, audio.sample_rate, fe).map_err(|e| match e {
        Error::Msg(m) => Error::file(path, m),
        other => other,
    })
}

/// All files in parallel (rayon's global pool); output in input order. On failure, the error
/// of the first failing file in input order. Ticks `progress` once per file when given.
pub fn extract_files(
    paths: &[PathBuf],
    fe: &Frontend,
    progress: Option<&indicatif::ProgressBar>,
) -> Result<Vec<Features>> {
    // Lowest index known to fail: files after it are skipped (their result cannot matter),
    // files before it still run, since one of them may fail too and come first.
    let first_failure = AtomicUsize::new(usize::MAX);
    let results: Vec<Option<Result<Features>>> = paths
        .par_iter()
        .enumerate()
        .map(|(i, path)| {
            if i > first_failure.load(Ordering::Relaxed) {
                return None;
            }
            let result = extract_file(path, fe);
            if result.is_err() {
                first_failure.fetch_min(i, Ordering::Relaxed);
            }
            if let Some(pb) = progress {
                pb.inc(1);
            }
            Some(result)
        })
        .collect();
    let mut out = Vec::with_capacity(paths.len());
    for result in results {
        // Every file before the first failure ran, so the first `None` comes after an error.
        match result {
            Some(r) => out.push(r?),
            None => break,
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::frontend::FrontendId;

    #[test]
    fn empty_and_non_finite_audio_are_errors() {
        let fe = Frontend::new(FrontendId::CpMel128);
        assert!(extract_samples(&[], 32000, &fe).is_err());
        assert!(extract_samples(&[0.0, f32::NAN], 32000, &fe).is_err());
        assert!(extract_samples(&[0.0; 10], 0, &fe).is_err());
    }

    #[test]
    fn resamples_other_rates() {
        let fe = Frontend::new(FrontendId::CpMel128);
        let x: Vec<f32> = (0..44100).map(|i| (i as f32 * 0.05).sin() * 0.3).collect();
        let f = extract_samples(&x, 44100, &fe).unwrap();
        assert_eq!((f.n_mels, f.n_frames), (128, 44));
    }

    #[test]
    fn first_failing_file_in_input_order_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, n: usize| {
            let path = dir.path().join(name);
            let spec = hound::WavSpec {
                channels: 1,
                sample_rate: 32000,
                bits_per_sample: 16,
                sample_format: hound::SampleFormat::Int,
            };
            let mut w = hound::WavWriter::create(&path, spec).unwrap();
            for i in 0..n {
                w.write_sample(((i * 37) % 2000) as i16 - 1000).unwrap();
            }
            w.finalize().unwrap();
            path
        };
        let good = write("good.wav", 8000);
        let bad1 = dir.path().join("missing1.wav");
        let bad2 = dir.path().join("missing2.wav");
        let fe = Frontend::new(FrontendId::CpMel128);
        let pb = indicatif::ProgressBar::hidden();
        let ok = extract_files(&[good.clone(), good.clone()], &fe, Some(&pb)).unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(
            ok[0],
            fe.compute(&crate::audio::wav::read_wav(&good).unwrap().samples)
        );
        assert_eq!(pb.position(), 2);
        let paths = vec![good.clone(), bad1.clone(), good, bad2];
        let err = extract_files(&paths, &fe, None).unwrap_err().to_string();
        assert!(err.contains("missing1.wav"), "{err}");
    }
}
