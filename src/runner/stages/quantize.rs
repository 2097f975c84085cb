//! `kind: quantize`: post-training static INT8 quantization of a train stage's model,
//! calibrated on a seeded subset of the training split, evaluated on the test split and
//! accepted or rejected against the fp32 model (`compress::quantize::int8_verdict`).

use super::Base;
use crate::compress::complexity::{count, CountOptions};
use crate::compress::quantize::{int8_verdict, quantize_int8};
use crate::error::Result;
use crate::eval;
use crate::models;
use crate::recipe::QuantizeStage;
use crate::results::{Precision, SystemRecord};
use crate::runner::cache::StageHash;
use crate::runner::graph::{Artefact, Context, Graph, NodeId, Outputs, Stage};
use rand::seq::index::sample;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::Path;
use tch::Tensor;

pub struct QuantizeNode {
    pub stage: QuantizeStage,
    pub model: NodeId,
    /// The fp32 model's evaluation, which the INT8 one is judged against.
    pub fp32: NodeId,
    pub features: NodeId,
}

pub fn add(g: &mut Graph, base: &Base, q: &QuantizeStage) -> Result<()> {
    let node = QuantizeNode {
        stage: q.clone(),
        model: g.model_of(&q.from)?,
        fp32: g.evaluation_of(&q.from)?,
        features: base.features,
    };
    g.add(node);
    Ok(())
}

impl Stage for QuantizeNode {
    fn kind(&self) -> &'static str {
        "quantize"
    }

    fn id(&self) -> String {
        self.stage.id.clone()
    }

    fn needs(&self) -> Vec<NodeId> {
        vec![self.model, self.fp32, self.features]
    }

    fn code(&self) -> &'static [&'static str] {
        &[
            "src/compress/",
            "src/models/",
            "src/eval/",
            "src/runner/stages/quantize.rs",
        ]
    }

    fn numeric(&self) -> bool {
        true
    }

    fn identity(&self, h: StageHash) -> StageHash {
        h.json("stage", &self.stage)
    }

    fn produce(&self, cx: &Context, inputs: &Outputs, dir: &Path) -> Result<()> {
        let q = &self.stage;
        let f = inputs.features(self.features);
        let (train, test) = (&f.train, &f.test);
        let (vs, cfg, _model) = models::load_weights(&inputs.model(self.model).weights, cx.device)?;
        // Calibration clips: a seeded random subset of the (non-augmented) training split.
        let n = q.calibration_clips.min(train.len());
        let mut rng = ChaCha8Rng::seed_from_u64(q.seed);
        let mut idx: Vec<i64> = sample(&mut rng, train.len(), n)
            .into_iter()
            .map(|i| i as i64)
            .collect();
        idx.sort_unstable();
        let batches: Vec<Tensor> = idx
            .chunks(64)
            .map(|c| train.batch(c, cx.device).0)
            .collect();
        let int8 = quantize_int8(&vs, &cfg, &batches)?;
        let logits = eval::predict(&int8, test, 256, cx.device);
        super::write_evaluation(
            dir,
            &eval::metrics(&logits, &test.y, &test.device, &f.devices),
        )
    }

    fn load(&self, _cx: &Context, _inputs: &Outputs, dir: Option<&Path>) -> Result<Artefact> {
        super::load_evaluation(dir)
    }

    fn systems(&self, own: &Artefact, inputs: &Outputs) -> Result<Vec<SystemRecord>> {
        let Artefact::Evaluation(e) = own else {
            unreachable!("load makes an evaluation")
        };
        let q = &self.stage;
        let m = inputs.model(self.model);
        let verdict = int8_verdict(inputs.evaluation(self.fp32), e, q.tolerance);
        let folded = CountOptions {
            fold_bn: true,
            reparam: true,
        };
        Ok(vec![SystemRecord {
            id: q.id.clone(),
            label: q.label.clone(),
            model: m.config.describe(),
            training: format!(
                "post-training static INT8 quantization of `{}` ({} calibration clips)",
                q.from, q.calibration_clips
            ),
            precision: Precision::Int8,
            complexity: count(
                &m.config,
                super::input_shape(inputs, self.features),
                &folded,
            )?,
            evaluation: e.as_ref().clone(),
            curve: Vec::new(),
            notes: vec![verdict.note],
            split: m.split.clone(),
            pruning: None,
        }])
    }
}
