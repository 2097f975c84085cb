//! `kind: reparameterize`: a train or prune stage's model with every RepConv2d's parallel
//! branches summed into one 3x3 kernel (`compress::reparam`), the graph Ramezanee et al. deploy
//! and release. The merged model is saved in that graph's layout, evaluated like any model, and
//! its logits on the test clips are compared with the unmerged model's: the report states the
//! largest difference, and a merge that changes them beyond float rounding is refused.

use super::evaluate::EvaluateStage;
use super::Base;
use crate::compress::complexity::{count, CountOptions};
use crate::compress::reparam::merged_model;
use crate::error::{Error, Result};
use crate::eval;
use crate::models;
use crate::recipe::ReparameterizeStage;
use crate::runner::cache::StageHash;
use crate::runner::graph::{Artefact, Context, Graph, ModelArtefact, NodeId, Outputs, Stage};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::rc::Rc;

/// The largest logit difference a merge may make: summing four kernels reorders f32 additions,
/// nothing more (seen: about 1e-6 on logits of order 1).
const MAX_LOGIT_DIFFERENCE: f64 = 1e-3;

pub struct ReparameterizeNode {
    pub stage: ReparameterizeStage,
    pub model: NodeId,
    pub features: NodeId,
}

/// What the merge did, as the stage saves it.
#[derive(Debug, Serialize, Deserialize)]
struct MergeRecord {
    units: usize,
    params_before: u64,
    params_after: u64,
    macs_before: u64,
    macs_after: u64,
    test_clips: usize,
    max_logit_difference: f64,
}

pub fn add(g: &mut Graph, base: &Base, r: &ReparameterizeStage) -> Result<()> {
    let model = g.add(ReparameterizeNode {
        stage: r.clone(),
        model: g.model_of(&r.from)?,
        features: base.features,
    });
    let eval = g.add(EvaluateStage {
        id: r.id.clone(),
        model,
        features: base.features,
    });
    g.name_model(&r.id, model, Some(eval));
    Ok(())
}

impl Stage for ReparameterizeNode {
    fn kind(&self) -> &'static str {
        "reparameterize"
    }

    fn id(&self) -> String {
        self.stage.id.clone()
    }

    fn needs(&self) -> Vec<NodeId> {
        vec![self.model, self.features]
    }

    fn code(&self) -> &'static [&'static str] {
        &[
            "src/compress/reparam.rs",
            "src/models/",
            "src/eval/",
            "crates/results/src/record.rs",
            "src/runner/stages/reparameterize.rs",
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
        let source = inputs.model(self.model);
        let test = &inputs.features(self.features).test;
        let input = super::input_shape(inputs, self.features);
        let (vs, cfg, mut net) = models::load_net(&source.weights, cx.device)?;
        let before = eval::predict(net.as_ref(), test, 256, cx.device);
        let merged = merged_model(&vs, net.as_mut(), &cfg)?;
        let after = eval::predict(merged.net.as_ref(), test, 256, cx.device);
        let max_logit_difference = if test.is_empty() {
            0.0
        } else {
            (&before - &after).abs().max().double_value(&[])
        };
        if max_logit_difference.is_nan() || max_logit_difference > MAX_LOGIT_DIFFERENCE {
            return Err(Error::msg(format!(
                "stage `{}`: merging the RepConv branches of `{}` changed its logits on the test clips by up to {max_logit_difference:e} (more than {MAX_LOGIT_DIFFERENCE:e}): the merged graph is not the trained one",
                self.stage.id, self.stage.from
            )));
        }
        let (b, a) = (
            count(&cfg, input, &CountOptions::default())?,
            count(&merged.config, input, &CountOptions::default())?,
        );
        models::save_weights(&merged.vs, &merged.config, &dir.join("model.safetensors"))?;
        super::write_json(
            &dir.join("merge.json"),
            &MergeRecord {
                units: merged.units,
                params_before: b.params,
                params_after: a.params,
                macs_before: b.macs,
                macs_after: a.macs,
                test_clips: test.len(),
                max_logit_difference,
            },
        )
    }

    fn load(&self, _cx: &Context, inputs: &Outputs, dir: Option<&Path>) -> Result<Artefact> {
        let dir = dir.expect("cached stage");
        let source = inputs.model(self.model);
        let m: MergeRecord = super::read_json(&dir.join("merge.json"))?;
        let config = crate::compress::reparam::merged_config(&source.config)
            .ok_or_else(|| Error::msg(format!("`{}` has no RepConv branches", self.stage.from)))?;
        Ok(Artefact::Model(Rc::new(ModelArtefact {
            weights: dir.join("model.safetensors"),
            config,
            curve: Vec::new(),
            stage: self.stage.id.clone(),
            label: self.stage.label.clone(),
            training: format!(
                "`{}` with its RepConv branches merged into single 3x3 kernels",
                self.stage.from
            ),
            notes: vec![format!(
                "RepConv merge: {} units, parameters {} -> {}, MACs {} -> {}; logits on the {} test clips equal the unmerged model's within {:.1e} (largest difference)",
                m.units,
                m.params_before,
                m.params_after,
                m.macs_before,
                m.macs_after,
                m.test_clips,
                m.max_logit_difference
            )],
            split: source.split.clone(),
            pruning: None,
        })))
    }
}
