//! `kind: half`: a train or released stage's model deployed at half precision
//! (`compress::half`), evaluated on the test split; its parameters count at 2 bytes each.

use super::Base;
use crate::compress::complexity::{count, CountOptions};
use crate::compress::half::HalfModel;
use crate::error::Result;
use crate::eval;
use crate::models;
use crate::recipe::HalfStage;
use crate::runner::cache::StageHash;
use crate::runner::graph::{Artefact, Context, Graph, NodeId, Outputs, Stage};
use ascrepro_results::record::{Precision, SystemRecord};
use std::path::Path;

pub struct HalfNode {
    pub stage: HalfStage,
    pub model: NodeId,
    pub features: NodeId,
}

pub fn add(g: &mut Graph, base: &Base, h: &HalfStage) -> Result<()> {
    let node = HalfNode {
        stage: h.clone(),
        model: g.model_of(&h.from)?,
        features: base.features,
    };
    g.add(node);
    Ok(())
}

impl Stage for HalfNode {
    fn kind(&self) -> &'static str {
        "half"
    }

    fn id(&self) -> String {
        self.stage.id.clone()
    }

    fn needs(&self) -> Vec<NodeId> {
        vec![self.model, self.features]
    }

    fn code(&self) -> &'static [&'static str] {
        &[
            "src/compress/half.rs",
            "src/models/",
            "src/eval/",
            "crates/results/src/record.rs",
            "src/runner/stages/half.rs",
        ]
    }

    fn numeric(&self) -> bool {
        true
    }

    /// Nothing of its own: the model (an input) is all it depends on.
    fn identity(&self, h: StageHash) -> StageHash {
        h
    }

    fn produce(&self, cx: &Context, inputs: &Outputs, dir: &Path) -> Result<()> {
        let f = inputs.features(self.features);
        let (vs, _cfg, net) = models::load_net(&inputs.model(self.model).weights, cx.device)?;
        let half = HalfModel::new(vs, net);
        let logits = eval::predict(&half, &f.test, 256, cx.device);
        super::write_evaluation(
            dir,
            &eval::metrics(&logits, &f.test.y, &f.test.device, &f.devices),
        )
    }

    fn load(&self, _cx: &Context, _inputs: &Outputs, dir: Option<&Path>) -> Result<Artefact> {
        super::load_evaluation(dir)
    }

    fn systems(&self, own: &Artefact, inputs: &Outputs) -> Result<Vec<SystemRecord>> {
        let Artefact::Evaluation(e) = own else {
            unreachable!("load makes an evaluation")
        };
        let h = &self.stage;
        let m = inputs.model(self.model);
        Ok(vec![SystemRecord {
            id: h.id.clone(),
            label: h.label.clone(),
            model: m.config.describe(),
            training: format!("`{}` at half precision (fp16 weights)", h.from),
            precision: Precision::Fp16,
            complexity: count(
                &m.config,
                super::input_shape(inputs, self.features),
                &CountOptions::default(),
            )?,
            evaluation: e.as_ref().clone(),
            curve: Vec::new(),
            // The device is the report's platform: the cache keeps a CPU and a CUDA result apart.
            notes: vec![
                "fp16 weights, 2 bytes per parameter; on CUDA the network computes in half, on \
                 the CPU in f32 with the half-rounded weights"
                    .to_string(),
            ],
            split: m.split.clone(),
            pruning: None,
            quantization: None,
        }])
    }
}
