//! Feature tensors of a split, kept on the CPU and batched onto the training device; and, for
//! the augmentations that act on audio, the clips' waveforms, from which a batch's features
//! are then computed per batch with the Rust front end.

use crate::audio::augment::{ImpulseResponses, WaveEdit};
use crate::audio::features::extract_samples;
use crate::audio::frontend::{Features, Frontend};
use crate::error::{Error, Result};
use rayon::prelude::*;
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// Log-mel features of a set of clips with their labels and recording devices.
#[derive(Debug)]
pub struct FeatureSet {
    /// [N, 1, F, T] float32 on the CPU.
    pub x: Tensor,
    /// Scene class per clip (`labels::CLASSES` index).
    pub y: Vec<i64>,
    /// Recording device per clip: an index into its dataset's `labels::DeviceList`.
    pub device: Vec<i64>,
}

impl FeatureSet {
    /// Builds the set from per-clip matrices of one shape `[f, t]` (row-major).
    pub fn from_features(
        feats: &[crate::audio::frontend::Features],
        y: Vec<i64>,
        device: Vec<i64>,
    ) -> Result<FeatureSet> {
        let (f, t) = feats
            .first()
            .map(|x| (x.n_mels, x.n_frames))
            .unwrap_or((0, 0));
        if feats.iter().any(|x| x.n_mels != f || x.n_frames != t) {
            return Err(Error::msg(
                "clips produced feature matrices of different shapes (clips of different lengths?)",
            ));
        }
        let mut flat = Vec::with_capacity(feats.len() * f * t);
        for x in feats {
            flat.extend_from_slice(&x.data);
        }
        let x = Tensor::from_slice(&flat).reshape([feats.len() as i64, 1, f as i64, t as i64]);
        Ok(FeatureSet { x, y, device })
    }

    pub fn len(&self) -> usize {
        self.y.len()
    }

    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// Rows `idx`, moved to `device`: (x, y).
    pub fn batch(&self, idx: &[i64], device: Device) -> (Tensor, Tensor) {
        let i = Tensor::from_slice(idx);
        let x = self.x.index_select(0, &i).to_device(device);
        let y = Tensor::from_slice(&idx.iter().map(|&k| self.y[k as usize]).collect::<Vec<_>>())
            .to_device(device);
        (x, y)
    }

    /// Rows `idx` like [`batch`](Self::batch), except that each row `idx[k]` that has a
    /// waveform in `audio` and a non-identity `edits[k]` gets its features recomputed from the
    /// edited waveform (in parallel, rayon's global pool). Unedited rows keep their stored
    /// features: the same front end on the same samples (checked by [`TrainAudio::check`]).
    pub fn batch_with_audio(
        &self,
        idx: &[i64],
        audio: &TrainAudio,
        edits: &[WaveEdit],
        device: Device,
    ) -> Result<(Tensor, Tensor)> {
        let (x, y) = self.batch(idx, Device::Cpu);
        let jobs: Vec<(usize, usize, WaveEdit)> = idx
            .iter()
            .zip(edits)
            .enumerate()
            .filter(|(_, (&row, e))| (row as usize) < audio.waves.len() && !e.is_identity())
            .map(|(k, (&row, e))| (k, row as usize, *e))
            .collect();
        let feats: Vec<(usize, Vec<f32>)> = jobs
            .par_iter()
            .map(|&(k, row, edit)| {
                let samples = edit.apply(audio.waves.clip(row), audio.irs);
                Ok((k, audio.features(&samples)?.data))
            })
            .collect::<Result<_>>()?;
        let shape = &x.size()[1..];
        for (k, data) in feats {
            let row = Tensor::from_slice(&data);
            if row.numel() as i64 != shape.iter().product::<i64>() {
                return Err(Error::msg(format!(
                    "features computed from a waveform have {} values, the stored ones {:?}",
                    row.numel(),
                    shape
                )));
            }
            x.get(k as i64).copy_(&row.reshape(shape));
        }
        Ok((x.to_device(device), y))
    }

    /// The rows recorded by device `device` (an index into the dataset's device list), in order.
    pub fn rows_of_device(&self, device: i64) -> Vec<i64> {
        (0..self.len() as i64)
            .filter(|&i| self.device[i as usize] == device)
            .collect()
    }

    /// A set of rows `rows`, in that order.
    pub fn select(&self, rows: &[i64]) -> FeatureSet {
        FeatureSet {
            x: self.x.index_select(0, &Tensor::from_slice(rows)),
            y: rows.iter().map(|&i| self.y[i as usize]).collect(),
            device: rows.iter().map(|&i| self.device[i as usize]).collect(),
        }
    }

    /// Concatenation of several sets with the same feature shape.
    pub fn concat(parts: &[&FeatureSet]) -> FeatureSet {
        let xs: Vec<&Tensor> = parts.iter().map(|p| &p.x).collect();
        FeatureSet {
            x: Tensor::cat(&xs, 0),
            y: parts.iter().flat_map(|p| p.y.iter().copied()).collect(),
            device: parts
                .iter()
                .flat_map(|p| p.device.iter().copied())
                .collect(),
        }
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let y = Tensor::from_slice(&self.y);
        let d = Tensor::from_slice(&self.device);
        Tensor::write_safetensors(&[("x", &self.x), ("y", &y), ("device", &d)], path)?;
        Ok(())
    }

    pub fn load(path: &Path) -> Result<FeatureSet> {
        let tensors = Tensor::read_safetensors(path)?;
        let get = |name: &str| named_tensor(&tensors, path, "feature", name);
        let x = get("x")?.to_kind(Kind::Float);
        let y: Vec<i64> = get("y")?.try_into().map_err(Error::Torch)?;
        let device: Vec<i64> = get("device")?.try_into().map_err(Error::Torch)?;
        Ok(FeatureSet { x, y, device })
    }
}

/// Clips as waveforms at one sample rate, all of one length (row-major `[N, clip_len]`).
#[derive(Debug, Clone, PartialEq)]
pub struct WaveformSet {
    pub sample_rate: u32,
    pub clip_len: usize,
    samples: Vec<f32>,
    /// Scene class per clip.
    pub y: Vec<i64>,
    /// Recording device per clip (as in [`FeatureSet::device`]).
    pub device: Vec<i64>,
}

impl WaveformSet {
    pub fn new(
        sample_rate: u32,
        clips: &[Vec<f32>],
        y: Vec<i64>,
        device: Vec<i64>,
    ) -> Result<WaveformSet> {
        let clip_len = clips.first().map_or(0, Vec::len);
        if let Some(i) = clips.iter().position(|c| c.len() != clip_len) {
            return Err(Error::msg(format!(
                "clip {i} has {} samples at {sample_rate} Hz, clip 0 has {clip_len}: waveform augmentations need clips of one length",
                clips[i].len()
            )));
        }
        if y.len() != clips.len() || device.len() != clips.len() {
            return Err(Error::msg("one label and one device per clip"));
        }
        Ok(WaveformSet {
            sample_rate,
            clip_len,
            samples: clips.concat(),
            y,
            device,
        })
    }

    pub fn len(&self) -> usize {
        self.y.len()
    }

    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    pub fn clip(&self, i: usize) -> &[f32] {
        &self.samples[i * self.clip_len..(i + 1) * self.clip_len]
    }

    /// A set of clips `rows`, in that order (the waveforms of [`FeatureSet::select`]'s rows).
    pub fn select(&self, rows: &[i64]) -> WaveformSet {
        WaveformSet {
            sample_rate: self.sample_rate,
            clip_len: self.clip_len,
            samples: rows
                .iter()
                .flat_map(|&i| self.clip(i as usize).iter().copied())
                .collect(),
            y: rows.iter().map(|&i| self.y[i as usize]).collect(),
            device: rows.iter().map(|&i| self.device[i as usize]).collect(),
        }
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let x =
            Tensor::from_slice(&self.samples).reshape([self.len() as i64, self.clip_len as i64]);
        let y = Tensor::from_slice(&self.y);
        let d = Tensor::from_slice(&self.device);
        let sr = Tensor::from_slice(&[i64::from(self.sample_rate)]);
        Tensor::write_safetensors(
            &[("x", &x), ("y", &y), ("device", &d), ("sample_rate", &sr)],
            path,
        )?;
        Ok(())
    }

    pub fn load(path: &Path) -> Result<WaveformSet> {
        let tensors = Tensor::read_safetensors(path)?;
        let get = |name: &str| named_tensor(&tensors, path, "waveform", name);
        let x = get("x")?;
        let size = x.size();
        if size.len() != 2 {
            return Err(Error::file(
                path,
                "waveform tensor `x` must be [clips, samples]",
            ));
        }
        let samples: Vec<f32> = x
            .to_kind(Kind::Float)
            .reshape([-1])
            .try_into()
            .map_err(Error::Torch)?;
        let y: Vec<i64> = get("y")?.try_into().map_err(Error::Torch)?;
        let device: Vec<i64> = get("device")?.try_into().map_err(Error::Torch)?;
        let sr: Vec<i64> = get("sample_rate")?.try_into().map_err(Error::Torch)?;
        if y.len() as i64 != size[0] || device.len() != y.len() || sr.len() != 1 {
            return Err(Error::file(
                path,
                "waveform file tensors disagree in length",
            ));
        }
        Ok(WaveformSet {
            sample_rate: u32::try_from(sr[0])
                .map_err(|_| Error::file(path, "bad sample rate in waveform file"))?,
            clip_len: size[1] as usize,
            samples,
            y,
            device,
        })
    }
}

/// Waveforms of the leading rows of a training [`FeatureSet`] (the training split; offline
/// copies such as device simulation follow with features only), with what the waveform
/// augmentations need to turn them into features.
pub struct TrainAudio<'a> {
    pub waves: &'a WaveformSet,
    pub frontend: &'a Frontend,
    pub irs: Option<&'a ImpulseResponses>,
}

impl TrainAudio<'_> {
    /// Features of (edited) samples of the waveforms' rate: resampled by the front end's
    /// resampler first when the waveforms are at the recorded rate.
    pub fn features(&self, samples: &[f32]) -> Result<Features> {
        extract_samples(samples, self.waves.sample_rate, self.frontend)
    }

    /// The waveforms must be the first rows of `set`: same labels and devices, and the front
    /// end must turn the first one into exactly its stored features (both caches come from the
    /// same files through the same resampler and front end).
    pub fn check(&self, set: &FeatureSet) -> Result<()> {
        let n = self.waves.len();
        if set.len() < n
            || set.y[..n] != self.waves.y[..]
            || set.device[..n] != self.waves.device[..]
        {
            return Err(Error::msg(
                "the cached waveforms do not list the same clips as the training features",
            ));
        }
        if n > 0 {
            let fresh = Tensor::from_slice(&self.features(self.waves.clip(0))?.data);
            let stored = set.x.get(0).reshape([-1]);
            if fresh.size() != stored.size() || !fresh.equal(&stored) {
                return Err(Error::msg(
                    "features computed from the cached waveforms differ from the cached features of the same clip",
                ));
            }
        }
        Ok(())
    }
}

/// Tensor `name` of a safetensors file read by `load`; the error names the file (a `what` file).
fn named_tensor(
    tensors: &[(String, Tensor)],
    path: &Path,
    what: &str,
    name: &str,
) -> Result<Tensor> {
    tensors
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, t)| t.shallow_clone())
        .ok_or_else(|| Error::file(path, format!("{what} file lacks tensor `{name}`")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::frontend::FrontendId;

    fn clips(n: usize, len: usize) -> Vec<Vec<f32>> {
        (0..n)
            .map(|c| {
                (0..len)
                    .map(|i| ((i * (c + 3) * 7919) % 2003) as f32 / 1001.5 - 1.0)
                    .collect()
            })
            .collect()
    }

    fn sets(fe: &Frontend) -> (WaveformSet, FeatureSet) {
        let c = clips(4, 8000);
        let y = vec![0, 1, 2, 3];
        let d = vec![0, 0, 1, 0];
        let waves = WaveformSet::new(fe.sample_rate(), &c, y.clone(), d.clone()).unwrap();
        let feats: Vec<_> = c.iter().map(|x| fe.compute(x)).collect();
        (waves, FeatureSet::from_features(&feats, y, d).unwrap())
    }

    #[test]
    fn a_devices_rows_select_its_clips_and_their_waveforms() {
        let fe = Frontend::authors(FrontendId::CpMel128);
        let (waves, set) = sets(&fe);
        let rows = set.rows_of_device(0);
        assert_eq!(rows, [0, 1, 3]);
        let one = set.select(&rows);
        assert_eq!(one.y, [0, 1, 3]);
        assert!(one.device.iter().all(|&d| d == 0));
        for (k, &r) in rows.iter().enumerate() {
            assert!(one.x.get(k as i64).equal(&set.x.get(r)));
        }
        let w = waves.select(&rows);
        assert_eq!(
            (w.y.clone(), w.device.clone()),
            (one.y.clone(), one.device.clone())
        );
        assert_eq!(w.clip(2), waves.clip(3));
        // The selected waveforms still lead the selected features.
        TrainAudio {
            waves: &w,
            frontend: &fe,
            irs: None,
        }
        .check(&one)
        .unwrap();
        assert!(set.rows_of_device(5).is_empty());
    }

    #[test]
    fn waveform_set_round_trips_and_refuses_ragged_clips() {
        let dir = tempfile::tempdir().unwrap();
        let c = clips(3, 500);
        let w = WaveformSet::new(32000, &c, vec![1, 2, 3], vec![0, 1, 2]).unwrap();
        assert_eq!(w.clip(1), &c[1][..]);
        let path = dir.path().join("w.safetensors");
        w.save(&path).unwrap();
        assert_eq!(WaveformSet::load(&path).unwrap(), w);
        let mut ragged = c.clone();
        ragged[2].pop();
        let err = WaveformSet::new(32000, &ragged, vec![1, 2, 3], vec![0, 1, 2]).unwrap_err();
        assert!(err.to_string().contains("clip 2 has 499 samples"), "{err}");
    }

    #[test]
    fn batch_with_audio_recomputes_exactly_the_edited_rows() {
        let fe = Frontend::authors(FrontendId::CpMel128);
        let (waves, set) = sets(&fe);
        let irs = ImpulseResponses::from_samples(32000, vec![vec![0.6, -0.2, 0.1]]);
        let audio = TrainAudio {
            waves: &waves,
            frontend: &fe,
            irs: Some(&irs),
        };
        audio.check(&set).unwrap();
        let idx = [3i64, 0, 2, 1];
        let identity = [WaveEdit::default(); 4];
        let (plain, y) = set.batch(&idx, Device::Cpu);
        let (same, y2) = set
            .batch_with_audio(&idx, &audio, &identity, Device::Cpu)
            .unwrap();
        assert!(same.equal(&plain) && y.equal(&y2));

        let edits = [
            WaveEdit {
                ir: Some(0),
                shift: 0,
            },
            WaveEdit::default(),
            WaveEdit {
                ir: None,
                shift: 1234,
            },
            WaveEdit {
                ir: Some(0),
                shift: -5,
            },
        ];
        let (x, _) = set
            .batch_with_audio(&idx, &audio, &edits, Device::Cpu)
            .unwrap();
        for (k, (&row, e)) in idx.iter().zip(&edits).enumerate() {
            let want = fe
                .compute(&e.apply(waves.clip(row as usize), Some(&irs)))
                .data;
            let got: Vec<f32> = x.get(k as i64).reshape([-1]).try_into().unwrap();
            assert_eq!(got, want, "row {k}");
            if !e.is_identity() {
                assert!(
                    !x.get(k as i64).equal(&plain.get(k as i64)),
                    "row {k} unchanged"
                );
            }
        }
    }

    #[test]
    fn rows_without_waveforms_keep_their_features_and_mismatches_are_refused() {
        let fe = Frontend::authors(FrontendId::CpMel128);
        let (waves, set) = sets(&fe);
        // Only the first two clips have waveforms.
        let short = WaveformSet::new(
            32000,
            &[waves.clip(0).to_vec(), waves.clip(1).to_vec()],
            waves.y[..2].to_vec(),
            waves.device[..2].to_vec(),
        )
        .unwrap();
        let audio = TrainAudio {
            waves: &short,
            frontend: &fe,
            irs: None,
        };
        audio.check(&set).unwrap();
        let edits = [WaveEdit {
            ir: None,
            shift: 77,
        }; 2];
        let (x, _) = set
            .batch_with_audio(&[3, 1], &audio, &edits, Device::Cpu)
            .unwrap();
        assert!(
            x.get(0).equal(&set.x.get(3)),
            "a row without waveform changed"
        );
        assert!(!x.get(1).equal(&set.x.get(1)));

        let other = FeatureSet {
            x: set.x.shallow_clone(),
            y: vec![1, 1, 2, 3],
            device: set.device.clone(),
        };
        assert!(audio.check(&other).is_err());
        let shifted = FeatureSet {
            x: set.x.roll([1], [3]),
            y: set.y.clone(),
            device: set.device.clone(),
        };
        let err = audio.check(&shifted).unwrap_err().to_string();
        assert!(err.contains("differ"), "{err}");
    }
}
