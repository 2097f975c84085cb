//! `kind: finetune_devices`: one model per listed device, each the general model of a train
//! stage (classifier included) trained further on that device's training clips only, and the
//! routed system, evaluated by [`RoutedEvaluateStage`]: each test clip classified by its
//! device's model, clips of every other device by the general model (the stage's `general`,
//! else the model the device models start from).
//!
//! The routed system is several models, so it is not recorded as a stage's model: no later
//! stage can take it as one (the recipe refuses such references).

use super::evaluate::RoutedEvaluateStage;
use super::train::{describe, AugmentInputs};
use super::Base;
use crate::error::{Error, Result};
use crate::models;
use crate::recipe::{FinetuneDevicesStage, TrainStage};
use crate::runner::cache::StageHash;
use crate::runner::graph::{Artefact, Context, Graph, ModelArtefact, NodeId, Outputs, Stage};
use crate::train::datamodule::TrainAudio;
use crate::train::init::InitFrom;
use crate::train::{fit, FitOptions};
use std::path::Path;
use std::rc::Rc;

/// One device's model.
pub struct DeviceModelNode {
    /// The device id whose training clips it learns.
    pub device: String,
    pub train: TrainStage,
    pub base: Base,
    pub augment: AugmentInputs,
    /// The general model it starts from.
    pub general: NodeId,
}

/// Adds the device models of `f` and the routed system's evaluation to the graph.
pub fn add(g: &mut Graph, base: &Base, f: &FinetuneDevicesStage) -> Result<()> {
    let start = g.model_of(&f.from)?;
    let mut devices = Vec::with_capacity(f.models.len());
    for m in &f.models {
        // A device model learns from the general model's training split (DCASE2025: split25).
        let base = &base.for_training(g, &m.train)?;
        let augment = AugmentInputs::add(g, base, &m.train.training)?;
        let node = g.add(DeviceModelNode {
            device: m.device.clone(),
            train: m.train.clone(),
            base: base.clone(),
            augment,
            general: start,
        });
        devices.push((m.device.clone(), node));
    }
    g.add(RoutedEvaluateStage {
        id: f.id.clone(),
        label: f.label.clone(),
        general: g.model_of(&f.general)?,
        devices,
        features: base.features,
    });
    Ok(())
}

impl DeviceModelNode {
    /// The stage as it trains: with the architecture of the general model it starts from (a
    /// pruned one's widths are known once its prune stage has run).
    fn planned(&self, inputs: &Outputs) -> TrainStage {
        TrainStage {
            model: inputs.model(self.general).config.clone(),
            ..self.train.clone()
        }
    }

    /// The device's index in the dataset's device list, and its rows in the training split.
    fn training_rows(&self, inputs: &Outputs) -> Result<(i64, Vec<i64>)> {
        let features = inputs.features(self.base.features);
        let no_clips = || {
            Error::msg(format!(
                "stage `{}`: no training clip was recorded by device `{}` (the dataset's devices: {}), so it cannot have a model of its own",
                self.train.id,
                self.device,
                features.devices.names().join(", ")
            ))
        };
        let device = features.devices.index(&self.device).ok_or_else(no_clips)? as i64;
        let rows = features.train.rows_of_device(device);
        if rows.is_empty() {
            return Err(no_clips());
        }
        Ok((device, rows))
    }
}

impl Stage for DeviceModelNode {
    fn kind(&self) -> &'static str {
        "finetune"
    }

    fn id(&self) -> String {
        self.train.id.clone()
    }

    fn needs(&self) -> Vec<NodeId> {
        std::iter::once(self.base.features)
            .chain(self.augment.nodes())
            .chain([self.general])
            .collect()
    }

    fn code(&self) -> &'static [&'static str] {
        &[
            "src/train/",
            "src/models/",
            "src/audio/",
            "src/eval/",
            "crates/results/src/record.rs",
            "src/runner/stages/finetune_devices.rs",
        ]
    }

    fn numeric(&self) -> bool {
        true
    }

    fn identity(&self, h: StageHash) -> StageHash {
        h.json("stage", &self.train).part("device", &self.device)
    }

    fn produce(&self, cx: &Context, inputs: &Outputs, dir: &Path) -> Result<()> {
        let features = inputs.features(self.base.features);
        let (device, rows) = self.training_rows(inputs)?;
        let set = features.train.select(&rows);
        // Waveform augmentations read the same clips: the training split's waveforms are its rows.
        let waves = self
            .augment
            .waveforms
            .map(|w| inputs.waveforms(w).select(&rows));
        let audio = waves.as_ref().map(|w| TrainAudio {
            waves: w,
            frontend: &self.base.frontend,
            irs: self
                .augment
                .irs
                .map(|i| inputs.impulse_responses(i).as_ref()),
        });
        // The curves follow the device's own test clips, when the test split has any.
        let test_rows = features.test.rows_of_device(device);
        let test = (!test_rows.is_empty()).then(|| features.test.select(&test_rows));
        let init = InitFrom {
            weights: inputs.model(self.general).weights.clone(),
            classifier: true,
        };
        let pb = cx.progress(&format!("finetune {}", self.train.id));
        let stage = self.planned(inputs);
        let fitted = fit(
            &FitOptions {
                stage: &stage,
                device: cx.device,
                checkpoint_dir: &inputs.resume_dir(cx, self.kind()),
                progress: Some(&pb),
                audio: audio.as_ref(),
                init: Some(&init),
                validation: None,
            },
            &set,
            None,
            test.as_ref(),
        )?;
        pb.finish_and_clear();
        models::save_weights(&fitted.vs, &stage.model, &dir.join("model.safetensors"))?;
        super::write_json(&dir.join("curve.json"), &fitted.curve)
    }

    fn load(&self, _cx: &Context, inputs: &Outputs, dir: Option<&Path>) -> Result<Artefact> {
        let dir = dir.expect("cached stage");
        let (_, rows) = self.training_rows(inputs)?;
        Ok(Artefact::Model(Rc::new(ModelArtefact {
            weights: dir.join("model.safetensors"),
            config: self.planned(inputs).model,
            curve: super::read_json(&dir.join("curve.json"))?,
            stage: self.train.id.clone(),
            label: self.train.label.clone(),
            training: describe(&self.train),
            notes: vec![format!(
                "device {}: its own model, fine-tuned on its {} training clips",
                self.device,
                rows.len()
            )],
            split: None,
            pruning: None,
        })))
    }
}
