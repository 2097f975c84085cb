//! The stage kinds, one module each, and the registry that turns a recipe's plan into the
//! graph the executor runs: the profile's data and features first, then one entry per planned
//! stage (each adding the shared inputs it needs), then the report.
//!
//! Adding a stage kind: a variant in `recipe::StageSpec` / `recipe::PlannedStage`, a module
//! here implementing [`Stage`](super::graph::Stage) with an `add` function, and its line in
//! [`build`].

pub mod data;
pub mod devsim;
pub mod energy_ir;
pub mod evaluate;
pub mod features;
pub mod finetune_devices;
pub mod half;
pub mod pretrain;
pub mod prune;
pub mod quantize;
pub mod released;
pub mod reparameterize;
pub mod report;
pub mod train;
pub mod waveforms;

use super::graph::{Graph, NodeId, Outputs};
use crate::audio::frontend::Frontend;
use crate::error::{Error, IoContext, Result};
use crate::recipe::{self, Plan, PlannedStage};
use std::path::{Path, PathBuf};

/// What every stage kind may build on: the profile's data and features, the front end, and the
/// recipe's seed.
#[derive(Clone)]
pub struct Base {
    pub data: NodeId,
    pub features: NodeId,
    pub frontend: Frontend,
    /// Root of user-supplied files (datasets, teacher logits).
    pub data_root: PathBuf,
    /// The project, which data manifests are relative to.
    pub project: PathBuf,
    /// The profile's validation split, whose features every features node makes.
    pub validation_split: Option<String>,
    /// The named training split this base is narrowed to: scopes the names of its nodes.
    pub split: Option<String>,
    recipe_seed: u64,
}

impl Base {
    /// A seed for `what`, derived from the recipe's.
    pub fn seed(&self, what: &str) -> u64 {
        recipe::derive_seed(self.recipe_seed, what)
    }

    /// The base a training stage reads: this one narrowed to the stage's named training split
    /// when it has one.
    pub fn for_training(&self, g: &mut Graph, t: &recipe::TrainStage) -> Result<Base> {
        match (&t.split, &t.split_csv) {
            (Some(name), Some(csv)) => self.on_split(g, name, csv),
            _ => Ok(self.clone()),
        }
    }

    /// This base with its training split narrowed to the named split (shared by the stages
    /// training on it): the split's data and its features (the whole set's rows of its clips).
    pub fn on_split(&self, g: &mut Graph, name: &str, csv: &str) -> Result<Base> {
        let data = g.shared(format!("split {name} {csv}"), |_| {
            Ok(data::SplitDataStage {
                data: self.data,
                name: name.to_string(),
                csv: csv.to_string(),
            })
        })?;
        let features = g.shared(format!("features {data:?}"), |_| {
            Ok(features::SplitFeaturesStage {
                whole_data: self.data,
                whole: self.features,
                split_data: data,
                split: name.to_string(),
                frontend: self.frontend.id().to_string(),
            })
        })?;
        Ok(Base {
            data,
            features,
            split: Some(name.to_string()),
            ..self.clone()
        })
    }

    /// `stage`, named within this base's split.
    pub fn scoped<S: super::graph::Stage>(&self, stage: S) -> super::graph::Scoped<S> {
        super::graph::Scoped {
            scope: self.split.clone(),
            inner: stage,
        }
    }
}

/// The graph of `plan`: every node the profile's stages need, the report last.
pub fn build(
    plan: &Plan,
    project: &Path,
    data_root: &Path,
    out_dir: PathBuf,
    code_version: &str,
) -> Result<Graph> {
    let mut g = Graph::default();
    let frontend = Frontend::new(plan.frontend, plan.resampler);
    let data = g.add(data::DataStage::new(plan, project)?);
    let features = g.add(features::FeaturesStage {
        data,
        frontend: frontend.clone(),
        validation: plan.profile_spec.data.validation_split.clone(),
    });
    g.set_inputs(data, features);
    let base = Base {
        data,
        features,
        frontend: frontend.clone(),
        data_root: data_root.to_path_buf(),
        project: project.to_path_buf(),
        validation_split: plan.profile_spec.data.validation_split.clone(),
        split: None,
        recipe_seed: plan.recipe.seed,
    };
    for stage in &plan.stages {
        match stage {
            PlannedStage::Train(t) => train::add(&mut g, &base, t)?,
            PlannedStage::Quantize(q) => quantize::add(&mut g, &base, q)?,
            PlannedStage::Half(h) => half::add(&mut g, &base, h)?,
            PlannedStage::Pretrain(p) => pretrain::add(&mut g, &base, p)?,
            PlannedStage::Released(r) => released::add(&mut g, &base, r)?,
            PlannedStage::FinetuneDevices(f) => finetune_devices::add(&mut g, &base, f)?,
            PlannedStage::Prune(p) => prune::add(&mut g, &base, p)?,
            PlannedStage::Reparameterize(r) => reparameterize::add(&mut g, &base, r)?,
        }
    }
    let needs = g.all();
    g.add(report::ReportStage {
        data,
        features,
        needs,
        out_dir,
        frontend: frontend.fingerprint(),
        shown: report::Shown::new(plan, code_version),
    });
    g.check_names()?;
    Ok(g)
}

/// The model input shape (channels, mel bins, frames) of the features node.
fn input_shape(inputs: &Outputs, features: NodeId) -> [i64; 3] {
    let x = inputs.features(features).test.x.size();
    [1, x[2], x[3]]
}

/// Writes an evaluation stage's result.
fn write_evaluation(dir: &Path, e: &ascrepro_results::record::Evaluation) -> Result<()> {
    write_json(&dir.join("evaluation.json"), e)
}

/// Loads an evaluation stage's result as its artefact.
fn load_evaluation(dir: Option<&Path>) -> Result<super::graph::Artefact> {
    let path = dir.expect("cached stage").join("evaluation.json");
    Ok(super::graph::Artefact::Evaluation(std::rc::Rc::new(
        read_json(&path)?,
    )))
}

fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::msg(e.to_string()))?;
    std::fs::write(path, text).at(path)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).at(path)?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::file(path, format!("corrupt cache entry: {e}")))
}
