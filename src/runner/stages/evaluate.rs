//! Evaluation on the test split: of a model, or of a system routing each clip by its device to
//! one of several models; the DCASE metrics, and the system row the report shows for it.

use crate::compress::complexity::{count, CountOptions};
use crate::error::Result;
use crate::eval;
use crate::models;
use crate::runner::cache::StageHash;
use crate::runner::graph::{Artefact, Context, NodeId, Outputs, Stage};
use ascrepro_results::record::{Precision, SystemRecord};
use std::path::Path;
use tch::Tensor;

pub struct EvaluateStage {
    /// The recipe stage whose model it evaluates.
    pub id: String,
    pub model: NodeId,
    pub features: NodeId,
}

impl Stage for EvaluateStage {
    fn kind(&self) -> &'static str {
        "evaluate"
    }

    fn id(&self) -> String {
        self.id.clone()
    }

    fn needs(&self) -> Vec<NodeId> {
        vec![self.model, self.features]
    }

    fn code(&self) -> &'static [&'static str] {
        &[
            "src/eval/",
            "crates/results/src/record.rs",
            "src/models/",
            "src/runner/stages/evaluate.rs",
        ]
    }

    fn numeric(&self) -> bool {
        true
    }

    fn identity(&self, h: StageHash) -> StageHash {
        h
    }

    fn produce(&self, cx: &Context, inputs: &Outputs, dir: &Path) -> Result<()> {
        let features = inputs.features(self.features);
        let test = &features.test;
        let (_vs, _cfg, model) =
            models::load_weights(&inputs.model(self.model).weights, cx.device)?;
        let logits = eval::predict(model.as_ref(), test, 256, cx.device);
        super::write_evaluation(
            dir,
            &eval::metrics(&logits, &test.y, &test.device, &features.devices),
        )
    }

    fn load(&self, _cx: &Context, _inputs: &Outputs, dir: Option<&Path>) -> Result<Artefact> {
        super::load_evaluation(dir)
    }

    fn systems(&self, own: &Artefact, inputs: &Outputs) -> Result<Vec<SystemRecord>> {
        let Artefact::Evaluation(e) = own else {
            unreachable!("load makes an evaluation")
        };
        let m = inputs.model(self.model);
        let input = super::input_shape(inputs, self.features);
        Ok(vec![SystemRecord {
            id: m.stage.clone(),
            label: m.label.clone(),
            model: m.config.describe(),
            training: m.training.clone(),
            precision: Precision::Fp32,
            complexity: count(&m.config, input, &CountOptions::default())?,
            evaluation: e.as_ref().clone(),
            curve: m.curve.clone(),
            notes: m.notes.clone(),
            split: m.split.clone(),
            pruning: m.pruning.clone(),
            quantization: None,
        }])
    }
}

/// Evaluation of a routed system (`kind: finetune_devices`): each test clip is classified by
/// the model of its device, clips of every other device by the general model
/// ([`eval::predict_routed`]). Besides the metrics it keeps the routed logits, clip by clip.
pub struct RoutedEvaluateStage {
    /// The recipe stage that made the device models, and its row label.
    pub id: String,
    pub label: String,
    pub general: NodeId,
    /// Each device with its own model, in the recipe's order.
    pub devices: Vec<(String, NodeId)>,
    pub features: NodeId,
}

/// File of the routed logits [test clips, classes] in the evaluation's cache entry.
pub const ROUTED_LOGITS: &str = "routed_logits.safetensors";

impl Stage for RoutedEvaluateStage {
    fn kind(&self) -> &'static str {
        "evaluate"
    }

    fn id(&self) -> String {
        self.id.clone()
    }

    fn needs(&self) -> Vec<NodeId> {
        std::iter::once(self.general)
            .chain(self.devices.iter().map(|(_, n)| *n))
            .chain([self.features])
            .collect()
    }

    fn code(&self) -> &'static [&'static str] {
        &[
            "src/eval/",
            "crates/results/src/record.rs",
            "src/models/",
            "src/runner/stages/evaluate.rs",
        ]
    }

    fn numeric(&self) -> bool {
        true
    }

    fn identity(&self, h: StageHash) -> StageHash {
        let devices: Vec<&str> = self.devices.iter().map(|(d, _)| d.as_str()).collect();
        h.json("routes", &devices)
    }

    fn produce(&self, cx: &Context, inputs: &Outputs, dir: &Path) -> Result<()> {
        let features = inputs.features(self.features);
        let test = &features.test;
        let load = |node: NodeId| -> Result<Box<dyn models::AscModel>> {
            Ok(models::load_weights(&inputs.model(node).weights, cx.device)?.2)
        };
        let general = load(self.general)?;
        let mut models = Vec::with_capacity(self.devices.len());
        for (device, node) in &self.devices {
            // Its model exists, so the dataset names the device (`DeviceModelNode` checks).
            let index = features
                .devices
                .index(device)
                .expect("a device of the data") as i64;
            models.push((index, load(*node)?));
        }
        let routes: Vec<(i64, &dyn models::AscModel)> =
            models.iter().map(|(d, m)| (*d, m.as_ref())).collect();
        let routed = eval::predict_routed(test, &routes, general.as_ref(), 256, cx.device);
        Tensor::write_safetensors(&[("logits", &routed)], dir.join(ROUTED_LOGITS))?;
        super::write_evaluation(
            dir,
            &eval::metrics(&routed, &test.y, &test.device, &features.devices),
        )
    }

    fn load(&self, _cx: &Context, _inputs: &Outputs, dir: Option<&Path>) -> Result<Artefact> {
        super::load_evaluation(dir)
    }

    fn systems(&self, own: &Artefact, inputs: &Outputs) -> Result<Vec<SystemRecord>> {
        let Artefact::Evaluation(e) = own else {
            unreachable!("load makes an evaluation")
        };
        let general = inputs.model(self.general);
        let routed: Vec<&str> = self.devices.iter().map(|(d, _)| d.as_str()).collect();
        let training = match self.devices.first() {
            Some((_, node)) => inputs.model(*node).training.clone(),
            None => String::new(),
        };
        let input = super::input_shape(inputs, self.features);
        let mut notes = vec![format!(
            "routed by device id: {} → each its own model; every other device → the general model `{}`. Complexity is one model's (a clip runs through one); the system stores {} models",
            routed.join(", "),
            general.stage,
            routed.len() + 1
        )];
        notes.extend(
            self.devices
                .iter()
                .flat_map(|(_, n)| inputs.model(*n).notes.iter().cloned()),
        );
        Ok(vec![SystemRecord {
            id: self.id.clone(),
            label: self.label.clone(),
            model: format!(
                "{} per device, routed by device id ({} → own models; others → `{}`)",
                general.config.describe(),
                routed.join(", "),
                general.stage
            ),
            training: format!(
                "device-specific fine-tuning of `{}` on each listed device's training clips: {training}",
                general.stage
            ),
            precision: Precision::Fp32,
            complexity: count(&general.config, input, &CountOptions::default())?,
            evaluation: e.as_ref().clone(),
            curve: Vec::new(),
            notes,
            split: general.split.clone(),
            pruning: None,
            quantization: None,
        }])
    }
}
