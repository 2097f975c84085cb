//! Feature extraction from samples and files: resample to the front end's rate, then log-mel.
//! Batches run on rayon's pool, optionally through the per-clip [`FeatureCache`]; each clip's
//! features depend only on its file, so results do not depend on the number of threads.

use super::feature_cache::{CachedFeatures, FeatureCache, Lookup};
use super::frontend::{Features, Frontend};
use super::wav::{read_wav, read_wav_noting, Audio};
use crate::data::manifest::hash_file;
use crate::error::{Error, Result};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Mono samples at any rate -> the front end's resampler to `fe.sample_rate()` if needed ->
/// `fe.compute`.
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
        let resampled = fe
            .resampler()
            .resample(samples, sample_rate, fe.sample_rate())?;
        Ok(fe.compute(&resampled))
    }
}

/// `read_wav` + `extract_samples`; errors name the file.
pub fn extract_file(path: &Path, fe: &Frontend) -> Result<Features> {
    extract_audio(path, &read_wav(path)?, fe)
}

/// [`extract_file`] for commands that take files one by one (`features`, `predict`): a file
/// with several channels is mixed to mono with a one-line note on stderr naming it.
pub fn extract_file_with_note(path: &Path, fe: &Frontend) -> Result<Features> {
    extract_audio(path, &read_wav_noting(path)?, fe)
}

/// `extract_samples` of decoded audio; errors name `path`.
fn extract_audio(path: &Path, audio: &Audio, fe: &Frontend) -> Result<Features> {
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
    let clips: Vec<ClipFile> = paths
        .iter()
        .map(|p| ClipFile {
            path: p.clone(),
            sha256: None,
        })
        .collect();
    Ok(extract_batch(&clips, fe, None, progress)?.0)
}

/// One clip of a batch: its file and, when a data manifest lists it, the SHA-256 of its bytes
/// (lower-case hex; computed from the file when absent and a cache is used).
#[derive(Clone, Debug)]
pub struct ClipFile {
    pub path: PathBuf,
    pub sha256: Option<String>,
}

/// What a batch did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchStats {
    /// Clips whose features came from the cache.
    pub cache_hits: usize,
    /// Clips decoded and extracted.
    pub extracted: usize,
    /// Cache entries found damaged and replaced (counted in `extracted` too).
    pub corrupt_entries: usize,
    /// Files with several channels, mixed to mono: path and channel count, in input order.
    pub mixed_down: Vec<(PathBuf, u16)>,
}

impl BatchStats {
    /// One line summing up the multi-channel files of the batch, `None` when all were mono.
    pub fn mixdown_note(&self) -> Option<String> {
        let (first, channels) = self.mixed_down.first()?;
        Some(format!(
            "note: {} of {} files had several channels and were mixed to mono (mean of the \
             channels, as the DCASE loaders do), e.g. {} ({channels} channels)",
            self.mixed_down.len(),
            self.cache_hits + self.extracted,
            first.display()
        ))
    }

    /// Adds another batch's counts.
    pub fn absorb(&mut self, other: BatchStats) {
        self.cache_hits += other.cache_hits;
        self.extracted += other.extracted;
        self.corrupt_entries += other.corrupt_entries;
        self.mixed_down.extend(other.mixed_down);
    }
}

/// How one clip's features were obtained.
enum Source {
    Cache,
    Extracted { replaced_corrupt: bool },
}

/// Features of every clip, in input order, on rayon's pool. With a cache, a clip whose entry is
/// present and intact is read from it; the others are decoded, extracted and stored. On
/// failure, the error of the first failing clip in input order. Ticks `progress` per clip.
pub fn extract_batch(
    clips: &[ClipFile],
    fe: &Frontend,
    cache: Option<&FeatureCache>,
    progress: Option<&indicatif::ProgressBar>,
) -> Result<(Vec<Features>, BatchStats)> {
    // Lowest index known to fail: clips after it are skipped (their result cannot matter),
    // clips before it still run, since one of them may fail too and come first.
    let first_failure = AtomicUsize::new(usize::MAX);
    let results: Vec<Option<Result<(CachedFeatures, Source)>>> = clips
        .par_iter()
        .enumerate()
        .map(|(i, clip)| {
            if i > first_failure.load(Ordering::Relaxed) {
                return None;
            }
            let result = match cache {
                Some(cache) => through_cache(clip, fe, cache),
                None => extract_clip(&clip.path, fe).map(|f| {
                    (
                        f,
                        Source::Extracted {
                            replaced_corrupt: false,
                        },
                    )
                }),
            };
            if result.is_err() {
                first_failure.fetch_min(i, Ordering::Relaxed);
            }
            if let Some(pb) = progress {
                pb.inc(1);
            }
            Some(result)
        })
        .collect();
    let mut features = Vec::with_capacity(clips.len());
    let mut stats = BatchStats::default();
    for (clip, result) in clips.iter().zip(results) {
        // Every clip before the first failure ran, so the first `None` comes after an error.
        let Some(result) = result else { break };
        let (entry, source) = result?;
        match source {
            Source::Cache => stats.cache_hits += 1,
            Source::Extracted { replaced_corrupt } => {
                stats.extracted += 1;
                stats.corrupt_entries += usize::from(replaced_corrupt);
            }
        }
        if let Some(channels) = entry.mixed_from_channels {
            stats.mixed_down.push((clip.path.clone(), channels));
        }
        features.push(entry.features);
    }
    Ok((features, stats))
}

fn extract_clip(path: &Path, fe: &Frontend) -> Result<CachedFeatures> {
    let audio = read_wav(path)?;
    Ok(CachedFeatures {
        features: extract_audio(path, &audio, fe)?,
        mixed_from_channels: audio.mixed_from_channels,
    })
}

fn through_cache(
    clip: &ClipFile,
    fe: &Frontend,
    cache: &FeatureCache,
) -> Result<(CachedFeatures, Source)> {
    let sha256 = match &clip.sha256 {
        Some(h) => h.clone(),
        None => hash_file(&clip.path)?.1,
    };
    let replaced_corrupt = match cache.get(&sha256)? {
        Lookup::Hit(entry) => return Ok((entry, Source::Cache)),
        Lookup::Miss => false,
        Lookup::Corrupt(_) => true,
    };
    let entry = extract_clip(&clip.path, fe)?;
    cache.put(&sha256, &entry)?;
    Ok((entry, Source::Extracted { replaced_corrupt }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::frontend::FrontendId;

    #[test]
    fn empty_and_non_finite_audio_are_errors() {
        let fe = Frontend::authors(FrontendId::CpMel128);
        assert!(extract_samples(&[], 32000, &fe).is_err());
        assert!(extract_samples(&[0.0, f32::NAN], 32000, &fe).is_err());
        assert!(extract_samples(&[0.0; 10], 0, &fe).is_err());
    }

    #[test]
    fn resamples_other_rates() {
        let fe = Frontend::authors(FrontendId::CpMel128);
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
        let fe = Frontend::authors(FrontendId::CpMel128);
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
