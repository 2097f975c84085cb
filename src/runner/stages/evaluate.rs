//! Evaluation of a model on the test split: the DCASE metrics, and the system row the report
//! shows for it.

use crate::compress::complexity::{count, CountOptions};
use crate::error::Result;
use crate::eval;
use crate::models;
use crate::results::{Evaluation, SystemRecord};
use crate::runner::cache::StageHash;
use crate::runner::graph::{Artefact, Context, NodeId, Outputs, Stage};
use std::path::Path;
use std::rc::Rc;

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
        &["src/eval/", "src/models/", "src/runner/stages/evaluate.rs"]
    }

    fn numeric(&self) -> bool {
        true
    }

    fn identity(&self, h: StageHash) -> StageHash {
        h
    }

    fn produce(&self, cx: &Context, inputs: &Outputs, dir: &Path) -> Result<()> {
        let test = &inputs.features(self.features).test;
        let (_vs, _cfg, model) =
            models::load_weights(&inputs.model(self.model).weights, cx.device)?;
        let logits = eval::predict(model.as_ref(), test, 256, cx.device);
        super::write_json(
            &dir.join("evaluation.json"),
            &eval::metrics(&logits, &test.y, &test.device),
        )
    }

    fn load(&self, _cx: &Context, _inputs: &Outputs, dir: Option<&Path>) -> Result<Artefact> {
        let e: Evaluation = super::read_json(&dir.expect("cached stage").join("evaluation.json"))?;
        Ok(Artefact::Evaluation(Rc::new(e)))
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
            precision: "fp32".into(),
            complexity: count(&m.config, input, &CountOptions::default())?,
            evaluation: e.as_ref().clone(),
            curve: m.curve.clone(),
            notes: m.notes.clone(),
            split: m.split.clone(),
        }])
    }
}
