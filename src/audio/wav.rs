//! WAV decoding (16/24/32-bit integer and 32-bit float, any channel count) and 24-bit writing.

use crate::error::{Error, Result};
use std::path::Path;

/// Sample rates [`read_wav`] accepts: telephone audio to studio masters.
pub const SAMPLE_RATES: std::ops::RangeInclusive<u32> = 4_000..=768_000;

/// Decoded mono audio.
#[derive(Debug, Clone, PartialEq)]
pub struct Audio {
    pub samples: Vec<f32>,
    pub sample_rate: u32,
    /// Channel count of the file when it had more than one (mixed down to mono by averaging,
    /// as the DCASE loaders do); `None` for mono files.
    pub mixed_from_channels: Option<u16>,
}

/// Names how [`read_wav`] turns a file into samples; part of the feature cache's key
/// (`audio::feature_cache`), so change it whenever decoding can give other samples.
pub const DECODER_ID: &str = "hound;int/2^(bits-1),float32;mono=mean-of-channels;v1";

impl Audio {
    /// The one-line note for a file that was mixed down to mono, `None` for a mono file.
    pub fn mixdown_note(&self, path: &Path) -> Option<String> {
        self.mixed_from_channels.map(|channels| {
            format!(
                "note: {}: {channels} channels mixed to mono (mean of the channels, as the DCASE \
                 loaders do)",
                path.display()
            )
        })
    }
}

/// [`read_wav`] for commands that read files one by one (`features`, `predict`): prints the
/// mix-down note to stderr when the file has several channels.
pub fn read_wav_noting(path: &Path) -> Result<Audio> {
    let audio = read_wav(path)?;
    if let Some(note) = audio.mixdown_note(path) {
        eprintln!("{note}");
    }
    Ok(audio)
}

/// Reads a WAV file to mono f32 in [-1, 1]. Corrupt, empty or non-WAV files are input errors
/// naming the file.
pub fn read_wav(path: &Path) -> Result<Audio> {
    let file = crate::fsio::open(path)?;
    let file_bytes = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if file_bytes == 0 {
        return Err(Error::file(path, "file is empty (0 bytes), not a WAV file"));
    }
    let file = std::io::BufReader::new(file);
    let reader = hound::WavReader::new(file).map_err(|e| describe(path, e))?;
    let spec = reader.spec();
    if spec.channels == 0 {
        return Err(Error::file(path, "WAV header declares 0 channels"));
    }
    // Resampling and features cost grows with the declared duration, not with the bytes: a
    // rate of a few Hz would turn a tiny file into hours of audio.
    if !SAMPLE_RATES.contains(&spec.sample_rate) {
        return Err(Error::file(
            path,
            format!(
                "WAV header declares a sample rate of {} Hz; supported rates are {} to {} Hz",
                spec.sample_rate,
                SAMPLE_RATES.start(),
                SAMPLE_RATES.end()
            ),
        ));
    }
    // The decoder reserves memory for the declared sample count: it must fit in the file.
    let declared_bytes = u64::from(reader.len()) * u64::from(spec.bits_per_sample.div_ceil(8));
    if declared_bytes > file_bytes {
        return Err(Error::file(
            path,
            format!(
                "WAV header declares {} samples ({declared_bytes} bytes) but the file holds only \
                 {file_bytes} bytes (truncated file?)",
                reader.len()
            ),
        ));
    }
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => {
            if spec.bits_per_sample != 32 {
                return Err(Error::file(
                    path,
                    format!(
                        "{}-bit float WAV is not supported (32-bit float is)",
                        spec.bits_per_sample
                    ),
                ));
            }
            reader
                .into_samples::<f32>()
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| describe(path, e))?
        }
        hound::SampleFormat::Int => {
            let bits = spec.bits_per_sample;
            if !matches!(bits, 8 | 16 | 24 | 32) {
                return Err(Error::file(
                    path,
                    format!("{bits}-bit integer WAV is not supported"),
                ));
            }
            let scale = 1.0 / (1u64 << (bits - 1)) as f64;
            reader
                .into_samples::<i32>()
                .map(|s| s.map(|v| (v as f64 * scale) as f32))
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| describe(path, e))?
        }
    };
    if interleaved.is_empty() {
        return Err(Error::file(path, "WAV file contains no samples"));
    }
    let channels = spec.channels as usize;
    if !interleaved.len().is_multiple_of(channels) {
        return Err(Error::file(
            path,
            "WAV data ends in the middle of a frame (truncated file?)",
        ));
    }
    let (samples, mixed_from_channels) = if channels == 1 {
        (interleaved, None)
    } else {
        let mono = interleaved
            .chunks_exact(channels)
            .map(|frame| frame.iter().sum::<f32>() / channels as f32)
            .collect();
        (mono, Some(spec.channels))
    };
    if samples.iter().any(|s| !s.is_finite()) {
        return Err(Error::file(
            path,
            "WAV file contains NaN or infinite samples",
        ));
    }
    Ok(Audio {
        samples,
        sample_rate: spec.sample_rate,
        mixed_from_channels,
    })
}

fn describe(path: &Path, e: hound::Error) -> Error {
    match e {
        hound::Error::IoError(io) if io.kind() == std::io::ErrorKind::NotFound => {
            Error::io(path, io)
        }
        hound::Error::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            Error::file(path, "WAV file is truncated (unexpected end of file)")
        }
        // hound's short read of a header field or sample.
        hound::Error::IoError(io) if io.to_string().starts_with("Failed to read enough bytes") => {
            Error::file(
                path,
                "WAV file ends before its header or data are complete (truncated, or not a WAV \
                 file)",
            )
        }
        hound::Error::IoError(io) => Error::io(path, io),
        hound::Error::FormatError(what) => {
            Error::file(path, format!("not a valid WAV file: {what}"))
        }
        hound::Error::Unsupported => Error::file(path, "unsupported WAV encoding"),
        other => Error::file(path, format!("cannot decode WAV: {other}")),
    }
}

/// Writes mono samples as 24-bit PCM WAV (the TAU format). Samples are clipped to [-1, 1].
/// The file is written to a temporary name and renamed, so a crash never leaves half a WAV
/// (under the output policy of [`crate::fsio`]).
pub fn write_wav_24(path: &Path, samples: &[f32], sample_rate: u32) -> Result<()> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate,
        bits_per_sample: 24,
        sample_format: hound::SampleFormat::Int,
    };
    let mut out = crate::fsio::OutputFile::create(path, &[])?;
    let tmp = out.temp_path().to_path_buf();
    let io = |e: hound::Error| match e {
        hound::Error::IoError(io) => Error::io(&tmp, io),
        other => Error::msg(format!("{}: {other}", tmp.display())),
    };
    let mut writer =
        hound::WavWriter::new(std::io::BufWriter::new(out.file()), spec).map_err(io)?;
    const FULL: f64 = 8_388_607.0; // 2^23 - 1
    for &s in samples {
        let v = (s.clamp(-1.0, 1.0) as f64 * FULL).round() as i32;
        writer.write_sample(v).map_err(io)?;
    }
    writer.finalize().map_err(io)?;
    out.commit()
}
