//! `kind: prune`: structured AGP channel pruning of a stage's model (Zhang et al. 2025,
//! SSCP-Mobile), with knowledge distillation while pruning, then the network rebuilt at the
//! pruned widths: a model artefact like a train stage's, evaluated like one, that `half`,
//! `quantize`, a further `prune` and a fine-tuning `train` stage (`init: {from: <this>}`) take.
//!
//! Cadence: the run trains the source's weights with the recipe's loop (`train::fit_with`);
//! one AGP step at the start of each of the first `prune_epochs` epochs re-ranks the channels
//! (L1 of the masked weights) and keeps the scheduled counts, so the epoch `prune_epochs` trains
//! at the target widths already, and any later epoch fine-tunes under the final mask. After every
//! optimizer step the mask is applied again (pruned filters stay zero). The mask is part of the
//! epoch checkpoint, so a killed run resumes to the uninterrupted result.

use super::evaluate::EvaluateStage;
use super::train::{describe, TrainInputs};
use super::Base;
use crate::compress::complexity::{count, CountOptions};
use crate::compress::prune::{AgpPruner, Budget, ChannelGroups, ChannelMask, PruneTarget};
use crate::error::{Error, Result};
use crate::models::{self, ModelConfig, Net};
use crate::recipe::{Importance, PruneStage, PruneTargetSpec, Select, TrainStage};
use crate::runner::cache::StageHash;
use crate::runner::graph::{Artefact, Context, Graph, ModelArtefact, NodeId, Outputs, Stage};
use crate::train::FitCallback;
use ascrepro_results::record::{Complexity, PruningRecord};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::rc::Rc;
use tch::nn::VarStore;

pub struct PruneNode {
    pub stage: PruneStage,
    /// The training run's inputs; `run.init` is the model being pruned.
    pub run: TrainInputs,
}

/// Adds `p` and its evaluation to the graph.
pub fn add(g: &mut Graph, base: &Base, p: &PruneStage) -> Result<()> {
    let mut p = p.clone();
    super::train::pin_logits(&mut p.distill, base)?;
    let p = &p;
    let run = TrainInputs::add(g, base, &p.training, p.distill.as_ref(), Some(&p.from))?;
    let model = g.add(PruneNode {
        stage: p.clone(),
        run,
    });
    let eval = g.add(EvaluateStage {
        id: p.id.clone(),
        model,
        features: base.features,
    });
    g.name_model(&p.id, model, Some(eval));
    Ok(())
}

/// What pruning did, as the cache entry keeps it (`pruning.json`): the architectures, and the
/// record the report's pruning table and notes are rendered from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PruneSummary {
    /// The network pruned (the source stage's) and the one it was rebuilt as.
    pub base: ModelConfig,
    pub pruned: ModelConfig,
    #[serde(flatten)]
    pub record: PruningRecord,
}

impl PruneSummary {
    fn new(
        from: &str,
        groups: &ChannelGroups,
        mask: &ChannelMask,
        pruned: ModelConfig,
        before: &Complexity,
        after: &Complexity,
    ) -> Result<Self> {
        Ok(PruneSummary {
            base: groups.config.clone(),
            pruned,
            record: PruningRecord {
                from: from.to_string(),
                widths_before: groups.widths(&groups.base_counts())?,
                widths_after: groups.widths(&mask.counts())?,
                params_before: before.params,
                params_after: after.params,
                macs_before: before.macs,
                macs_after: after.macs,
            },
        })
    }

    /// The report's notes on it.
    pub fn notes(&self) -> Vec<String> {
        let r = &self.record;
        let list = |w: &[i64]| w.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
        vec![
            format!(
                "pruned from `{}` ({}): widths per block [{}] → [{}]",
                r.from,
                self.base.describe(),
                list(&r.widths_before),
                list(&r.widths_after)
            ),
            format!(
                "parameters {} → {}, MACs {:.2} M → {:.2} M (before → after pruning)",
                r.params_before,
                r.params_after,
                r.macs_before as f64 / 1e6,
                r.macs_after as f64 / 1e6
            ),
        ]
    }
}

/// The AGP masks as training hooks: a step at the start of each pruning epoch, the mask applied
/// after every optimizer step, the mask as checkpoint state.
pub struct AgpCallback {
    pruner: AgpPruner,
    /// AGP steps: the first `prune_epochs` epochs each start with one.
    prune_epochs: usize,
    mask: Option<ChannelMask>,
}

impl AgpCallback {
    pub fn new(pruner: AgpPruner) -> Self {
        AgpCallback {
            prune_epochs: pruner.steps(),
            pruner,
            mask: None,
        }
    }

    /// The mask after the last step taken (none before the first).
    pub fn mask(&self) -> Option<&ChannelMask> {
        self.mask.as_ref()
    }
}

impl FitCallback for AgpCallback {
    fn on_fit_start(
        &mut self,
        vs: &VarStore,
        net: &mut dyn Net,
        state: Option<&serde_json::Value>,
    ) -> Result<()> {
        let Some(state) = state else { return Ok(()) };
        let kept: Vec<Vec<i64>> = serde_json::from_value(state.clone())
            .map_err(|e| Error::msg(format!("pruning checkpoint: unreadable mask ({e})")))?;
        let mask = ChannelMask { kept };
        // The weights were saved masked; this restores the masked network's channel norms.
        self.pruner.groups().apply(&mask, vs, net)?;
        self.mask = Some(mask);
        Ok(())
    }

    fn on_epoch_start(&mut self, epoch: usize, vs: &VarStore, net: &mut dyn Net) -> Result<()> {
        if epoch < self.prune_epochs {
            let mask = self
                .pruner
                .prune_step(epoch + 1, vs, net, self.mask.as_ref())?;
            self.mask = Some(mask);
        }
        Ok(())
    }

    fn after_step(&mut self, vs: &VarStore, net: &mut dyn Net) -> Result<()> {
        match &self.mask {
            Some(mask) => self.pruner.groups().apply(mask, vs, net),
            None => Ok(()),
        }
    }

    fn state(&self) -> Result<serde_json::Value> {
        Ok(match &self.mask {
            Some(mask) => {
                serde_json::to_value(&mask.kept).map_err(|e| Error::msg(e.to_string()))?
            }
            None => serde_json::Value::Null,
        })
    }
}

impl PruneNode {
    /// The training run: the source's architecture and weights (classifier included), the
    /// stage's training, distillation and seed, its last epoch kept.
    fn train_stage(&self, base: &ModelConfig) -> TrainStage {
        let p = &self.stage;
        TrainStage {
            id: p.id.clone(),
            label: p.label.clone(),
            model_key: String::new(),
            init_from: Some(p.from.clone()),
            init_classifier: Some(true),
            select: Select::Last,
            split: None,
            split_csv: None,
            model: base.clone(),
            model_of_init: false,
            training: p.training.clone(),
            distill: p.distill.clone(),
            seed: p.seed,
        }
    }

    /// An error about field `field` of this stage in the recipe, with its line.
    fn field_error(&self, cx: &Context, field: &[&str], msg: String) -> Error {
        let index = cx
            .plan
            .recipe
            .stages
            .iter()
            .position(|s| s.id() == self.stage.id)
            .map_or_else(String::new, |i| i.to_string());
        let path: Vec<&str> = ["stages", index.as_str()]
            .into_iter()
            .chain(field.iter().copied())
            .collect();
        cx.recipe_error(&path, msg)
    }

    fn source(&self) -> NodeId {
        self.run.init.expect("a prune stage starts from its source")
    }
}

impl Stage for PruneNode {
    fn kind(&self) -> &'static str {
        "prune"
    }

    fn id(&self) -> String {
        self.stage.id.clone()
    }

    fn needs(&self) -> Vec<NodeId> {
        self.run.nodes()
    }

    fn code(&self) -> &'static [&'static str] {
        &[
            "src/train/",
            "src/models/",
            "src/audio/",
            "src/eval/",
            "crates/results/src/record.rs",
            "src/compress/",
            "src/runner/stages/train.rs",
            "src/runner/stages/prune.rs",
        ]
    }

    fn numeric(&self) -> bool {
        true
    }

    fn identity(&self, h: StageHash) -> StageHash {
        h.json("stage", &self.stage)
    }

    fn produce(&self, cx: &Context, inputs: &Outputs, dir: &Path) -> Result<()> {
        let p = &self.stage;
        let base = inputs.model(self.source()).config.clone();
        let groups = ChannelGroups::of(&base).map_err(|e| {
            self.field_error(cx, &["from"], format!("cannot prune `{}`: {e}", p.from))
        })?;
        let input = super::input_shape(inputs, self.run.base.features);
        let target = match &p.target {
            PruneTargetSpec::Widths { widths } => PruneTarget::Widths(widths.clone()),
            PruneTargetSpec::Budget { bits } => PruneTarget::Budget(Budget::dcase(*bits, input)),
        };
        // L1 is `ChannelGroups::importance`'s criterion, the only one so far.
        match p.importance {
            Importance::L1 => {}
        }
        let pruner = AgpPruner::new(groups.clone(), &target, p.prune_epochs)
            .map_err(|e| self.field_error(cx, &["target"], e.to_string()))?;
        let target_counts = pruner.target().to_vec();
        let mut agp = AgpCallback::new(pruner);
        let fitted = self
            .run
            .fit(&self.train_stage(&base), cx, inputs, self.kind(), &mut agp)?;
        let mask = agp
            .mask()
            .filter(|m| m.counts() == target_counts)
            .ok_or_else(|| {
                Error::msg(format!(
                    "stage `{}`: AGP ended without reaching its target widths",
                    p.id
                ))
            })?;
        let shrunk = groups.shrink(mask, &fitted.vs)?;
        models::save_weights(&shrunk.vs, &shrunk.config, &dir.join("model.safetensors"))?;
        let opts = CountOptions::default();
        let summary = PruneSummary::new(
            &p.from,
            &groups,
            mask,
            shrunk.config.clone(),
            &count(&base, input, &opts)?,
            &count(&shrunk.config, input, &opts)?,
        )?;
        super::write_json(&dir.join("pruning.json"), &summary)?;
        super::write_json(&dir.join("curve.json"), &fitted.curve)
    }

    fn load(&self, _cx: &Context, _inputs: &Outputs, dir: Option<&Path>) -> Result<Artefact> {
        let dir = dir.expect("cached stage");
        let p = &self.stage;
        let summary: PruneSummary = super::read_json(&dir.join("pruning.json"))?;
        let training = format!(
            "AGP structured pruning (L1 importance, one step per epoch over {} of the epochs); {}",
            p.prune_epochs,
            describe(&self.train_stage(&summary.base))
        );
        Ok(Artefact::Model(Rc::new(ModelArtefact {
            weights: dir.join("model.safetensors"),
            config: summary.pruned.clone(),
            curve: super::read_json(&dir.join("curve.json"))?,
            stage: p.id.clone(),
            label: p.label.clone(),
            training,
            notes: summary.notes(),
            split: None,
            pruning: Some(summary.record.clone()),
        })))
    }
}
