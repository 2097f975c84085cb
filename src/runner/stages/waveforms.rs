//! The training split's waveforms for the augmentations that act on them, at the rate the
//! system's loader delivers them (`audio::resample`), and the impulse-response sets those
//! augmentations convolve with.

use crate::audio::augment::ImpulseResponses;
use crate::audio::resample::Resampler;
use crate::audio::wav::read_wav;
use crate::error::{Error, Result};
use crate::runner::cache::StageHash;
use crate::runner::graph::{Artefact, Context, NodeId, Outputs, Stage};
use crate::train::datamodule::WaveformSet;
use rayon::prelude::*;
use std::path::Path;
use std::rc::Rc;

/// The training split at `rate` (by `resampler`), or at its recorded rate (`None`: one rate
/// for all clips).
pub struct WaveformsStage {
    pub data: NodeId,
    pub rate: Option<u32>,
    pub resampler: Resampler,
}

impl Stage for WaveformsStage {
    fn kind(&self) -> &'static str {
        "waveforms"
    }

    fn id(&self) -> String {
        match self.rate {
            Some(rate) => format!("train@{rate}Hz"),
            None => "train@recorded".into(),
        }
    }

    fn needs(&self) -> Vec<NodeId> {
        vec![self.data]
    }

    fn code(&self) -> &'static [&'static str] {
        &[
            "src/audio/resample/",
            "src/audio/wav.rs",
            "src/train/datamodule.rs",
            "src/runner/stages/waveforms.rs",
        ]
    }

    fn identity(&self, h: StageHash) -> StageHash {
        match self.rate {
            Some(rate) => h
                .part("rate", &rate.to_string())
                .part("resampler", &self.resampler.fingerprint()),
            None => h.part("rate", "recorded"),
        }
    }

    fn produce(&self, cx: &Context, inputs: &Outputs, dir: &Path) -> Result<()> {
        let ds = &inputs.data(self.data).dataset;
        let what = match self.rate {
            Some(rate) => format!("{rate} Hz"),
            None => "the recorded rate".to_string(),
        };
        let pb = cx.progress(&format!("waveforms at {what}"));
        pb.set_length(ds.train.len() as u64);
        let clips: Vec<(Vec<f32>, u32)> = ds
            .train
            .par_iter()
            .map(|c| {
                let path = ds.root.join(&c.file);
                let audio = read_wav(&path)?;
                let at = self.rate.unwrap_or(audio.sample_rate);
                let samples = self
                    .resampler
                    .resample(&audio.samples, audio.sample_rate, at)
                    .map_err(|e| Error::file(&path, e.to_string()))?;
                pb.inc(1);
                Ok((samples, at))
            })
            .collect::<Result<_>>()?;
        pb.finish_and_clear();
        let first_rate = clips.first().map_or(self.rate.unwrap_or(0), |c| c.1);
        if let Some(i) = clips.iter().position(|c| c.1 != first_rate) {
            return Err(Error::file(
                ds.root.join(&ds.train[i].file),
                format!(
                    "is at {} Hz, {} at {first_rate} Hz: waveform augmentations at the \
                     recorded rate need the training clips at one rate",
                    clips[i].1, ds.train[0].file
                ),
            ));
        }
        let clips: Vec<Vec<f32>> = clips.into_iter().map(|c| c.0).collect();
        let y = ds.train.iter().map(|c| c.scene as i64).collect();
        let d = ds.train.iter().map(|c| c.device as i64).collect();
        WaveformSet::new(first_rate, &clips, y, d)?.save(&dir.join("waveforms.safetensors"))
    }

    fn load(&self, _cx: &Context, _inputs: &Outputs, dir: Option<&Path>) -> Result<Artefact> {
        let path = dir.expect("cached stage").join("waveforms.safetensors");
        Ok(Artefact::Waveforms(Rc::new(WaveformSet::load(&path)?)))
    }
}

/// The first `limit` impulse responses of the profile's set (all when `None`) at `rate`, by
/// the system's resampler; read in memory, not cached (their files are the data).
pub struct ImpulseResponsesStage {
    pub data: NodeId,
    pub limit: Option<usize>,
    pub rate: RateOf,
    pub resampler: Resampler,
    /// What needs them, for the error when the profile has none.
    pub purpose: &'static str,
}

/// The rate of an impulse-response set: fixed, or that of a waveform node (whose own rate,
/// `None` for the recorded one, names the set).
pub enum RateOf {
    Fixed(u32),
    Waveforms(NodeId, Option<u32>),
}

impl Stage for ImpulseResponsesStage {
    fn kind(&self) -> &'static str {
        "irs"
    }

    fn id(&self) -> String {
        let n = self.limit.map_or("all".to_string(), |n| n.to_string());
        match self.rate {
            RateOf::Fixed(rate) => format!("{n}@{rate}Hz"),
            RateOf::Waveforms(_, Some(rate)) => format!("{n}@clips-{rate}Hz"),
            RateOf::Waveforms(_, None) => format!("{n}@clips-recorded"),
        }
    }

    fn needs(&self) -> Vec<NodeId> {
        match self.rate {
            RateOf::Fixed(_) => vec![self.data],
            RateOf::Waveforms(w, _) => vec![self.data, w],
        }
    }

    fn code(&self) -> &'static [&'static str] {
        &[
            "src/audio/resample/",
            "src/audio/wav.rs",
            "src/audio/augment/dir.rs",
            "src/runner/stages/waveforms.rs",
        ]
    }

    fn identity(&self, h: StageHash) -> StageHash {
        let h = h
            .json("limit", &self.limit)
            .part("resampler", &self.resampler.fingerprint());
        match self.rate {
            RateOf::Fixed(rate) => h.part("rate", &rate.to_string()),
            RateOf::Waveforms(..) => h,
        }
    }

    fn cached(&self) -> bool {
        false
    }

    fn produce(&self, _cx: &Context, _inputs: &Outputs, _dir: &Path) -> Result<()> {
        unreachable!("impulse responses are loaded, not cached")
    }

    fn load(&self, cx: &Context, inputs: &Outputs, _dir: Option<&Path>) -> Result<Artefact> {
        let Some(dir) = &inputs.data(self.data).irs else {
            return Err(cx.data_error(
                "irs_root",
                format!(
                    "{} needs impulse responses: give `irs_root` and `irs_manifest`",
                    self.purpose
                ),
            ));
        };
        let rate = match self.rate {
            RateOf::Fixed(rate) => rate,
            RateOf::Waveforms(w, _) => inputs.waveforms(w).sample_rate,
        };
        let set = ImpulseResponses::load(dir, self.limit, rate, &self.resampler)?;
        Ok(Artefact::ImpulseResponses(Rc::new(set)))
    }
}
