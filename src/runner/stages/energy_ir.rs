//! RMS-energy-driven IR augmentation (RepConv report, Section 2.1): each training clip of the
//! listed devices gets as many IR-convolved copies as its energy row says, with distinct
//! impulse responses drawn from a seeded stream in clip order.

use crate::audio::augment::{energy, EnergyTable, ImpulseResponses};
use crate::audio::features::extract_samples;
use crate::audio::frontend::Frontend;
use crate::error::{Error, Result};
use crate::recipe::EnergyIrSpec;
use crate::runner::cache::StageHash;
use crate::runner::graph::{Artefact, Context, NodeId, Outputs, Stage};
use crate::train::datamodule::WaveformSet;
use crate::train::FeatureSet;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::path::Path;
use std::rc::Rc;

pub struct EnergyIrStage {
    /// The dataset: names the devices the waveforms' indices point into.
    pub data: NodeId,
    /// The training split at its recorded rate.
    pub waveforms: NodeId,
    pub irs: NodeId,
    pub spec: EnergyIrSpec,
    pub frontend: Frontend,
    pub seed: u64,
}

impl Stage for EnergyIrStage {
    fn kind(&self) -> &'static str {
        "energy_ir"
    }

    fn id(&self) -> String {
        "energy_ir".into()
    }

    fn needs(&self) -> Vec<NodeId> {
        vec![self.data, self.waveforms, self.irs]
    }

    fn code(&self) -> &'static [&'static str] {
        &[
            "src/audio/",
            "src/train/datamodule.rs",
            "src/runner/stages/energy_ir.rs",
        ]
    }

    fn identity(&self, h: StageHash) -> StageHash {
        h.json("spec", &self.spec)
            .part("frontend", &self.frontend.fingerprint())
            .part("seed", &self.seed.to_string())
    }

    fn produce(&self, cx: &Context, inputs: &Outputs, dir: &Path) -> Result<()> {
        let w: &WaveformSet = inputs.waveforms(self.waveforms);
        let set: &ImpulseResponses = inputs.impulse_responses(self.irs);
        let spec = &self.spec;
        let table = EnergyTable::new(&spec.levels)
            .map_err(|(row, msg)| Error::msg(format!("energy_ir.levels.{row}: {msg}")))?;
        let known = &inputs.data(self.data).dataset.devices;
        let devices: Vec<i64> = spec
            .devices
            .iter()
            .map(|d| {
                known.index(d).map(|i| i as i64).ok_or_else(|| {
                    Error::msg(format!(
                        "energy-driven IR augmentation: no clip of the dataset was recorded by device `{d}` (its devices: {})",
                        known.names().join(", ")
                    ))
                })
            })
            .collect::<Result<_>>()?;
        let rms: Vec<Option<f64>> = (0..w.len())
            .map(|i| {
                devices
                    .contains(&w.device[i])
                    .then(|| energy::rms(w.clip(i)))
            })
            .collect();
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let jobs = table
            .plan(&rms, set.len(), &mut rng)
            .map_err(|m| Error::msg(format!("energy-driven IR augmentation: {m}")))?;
        let fade = energy::fade_samples(w.sample_rate);
        let pb = cx.progress("energy-driven IR copies");
        pb.set_length(jobs.len() as u64);
        let feats: Vec<_> = jobs
            .par_iter()
            .map(|&(clip, ir)| {
                let copy = energy::render(w.clip(clip), set.get(ir), fade);
                let f = extract_samples(&copy, w.sample_rate, &self.frontend);
                pb.inc(1);
                f
            })
            .collect::<Result<_>>()?;
        pb.finish_and_clear();
        let y = jobs.iter().map(|&(c, _)| w.y[c]).collect();
        let d = jobs.iter().map(|&(c, _)| w.device[c]).collect();
        FeatureSet::from_features(&feats, y, d)?.save(&dir.join("energy_ir.safetensors"))
    }

    fn load(&self, _cx: &Context, _inputs: &Outputs, dir: Option<&Path>) -> Result<Artefact> {
        let path = dir.expect("cached stage").join("energy_ir.safetensors");
        Ok(Artefact::Copies(Rc::new(FeatureSet::load(&path)?)))
    }
}
