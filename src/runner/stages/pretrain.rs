//! `kind: pretrain`: multi-label pre-training (Zhou et al. stage 1) on the profile's
//! `pretrain_data`: a user-supplied AudioSet copy (verified against its manifest) or the
//! synthetic multi-label set (generated and cached), its features through the recipe's front
//! end, and the model trained with BCE, scored by mAP (`train::pretrain`).

use super::Base;
use crate::audio::feature_cache::FeatureCache;
use crate::audio::features::{extract_batch, ClipFile};
use crate::audio::frontend::Frontend;
use crate::data::audioset::{self, Missing, MultiLabelDataset};
use crate::data::manifest::Manifest;
use crate::data::synth::{generate_multilabel, multilabel::Split, MultiLabelSynthConfig};
use crate::error::Result;
use crate::models;
use crate::recipe::{PretrainDataKind, PretrainDataSpec, PretrainStage};
use crate::runner::cache::StageHash;
use crate::runner::graph::{
    Artefact, Context, Graph, ModelArtefact, MultiLabelData, MultiLabelFeatures, NodeId, Outputs,
    Stage,
};
use crate::train::pretrain::{fit_multilabel, write_curve, MultiLabelSet, PretrainOptions};
use std::path::Path;
use std::rc::Rc;
use tch::Tensor;

/// Adds the stage with its (shared) data and features nodes.
pub fn add(g: &mut Graph, base: &Base, p: &PretrainStage) -> Result<()> {
    let data = g.shared(format!("pretrain data {}", json(&p.data)), |_| {
        PretrainDataStage::new(&p.data, &base.project)
    })?;
    let features = g.shared(format!("pretrain features {data:?}"), |_| {
        Ok(PretrainFeaturesStage {
            data,
            frontend: base.frontend.clone(),
        })
    })?;
    let model = g.add(PretrainNode {
        stage: p.clone(),
        features,
        data,
    });
    g.name_model(&p.id, model, None);
    Ok(())
}

fn json(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).expect("plain data")
}

const CLASSES_CSV: &str = "class_labels_indices.csv";

pub enum PretrainDataStage {
    Synth(MultiLabelSynthConfig),
    AudioSet {
        root: String,
        missing: Missing,
        manifest: Box<Manifest>,
        manifest_hash: String,
    },
}

impl PretrainDataStage {
    fn new(spec: &PretrainDataSpec, project: &Path) -> Result<PretrainDataStage> {
        Ok(match spec.kind {
            PretrainDataKind::SynthMultiLabel => {
                PretrainDataStage::Synth(spec.synth.clone().unwrap_or_default())
            }
            PretrainDataKind::AudioSet => {
                let rel = spec.manifest.as_deref().expect("validated");
                let manifest = Manifest::load(&project.join(rel))?;
                PretrainDataStage::AudioSet {
                    root: spec.root.clone().expect("validated"),
                    missing: spec.missing,
                    manifest_hash: manifest.hash(),
                    manifest: Box::new(manifest),
                }
            }
        })
    }
}

fn load_splits(root: &Path, missing: Missing, name: String) -> Result<Artefact> {
    let read = |split: Split| {
        audioset::load_with(
            root,
            Path::new(split.segments_file()),
            Path::new(CLASSES_CSV),
            missing,
        )
    };
    Ok(Artefact::MultiLabelData(Rc::new(MultiLabelData {
        train: read(Split::Train)?,
        eval: read(Split::Eval)?,
        name,
    })))
}

impl Stage for PretrainDataStage {
    fn kind(&self) -> &'static str {
        "data"
    }

    fn id(&self) -> String {
        match self {
            PretrainDataStage::Synth(_) => "synth-multilabel".into(),
            PretrainDataStage::AudioSet { manifest, .. } => manifest.dataset.clone(),
        }
    }

    fn needs(&self) -> Vec<NodeId> {
        Vec::new()
    }

    fn code(&self) -> &'static [&'static str] {
        &[
            "src/data/",
            "src/audio/wav.rs",
            "src/runner/stages/pretrain.rs",
        ]
    }

    fn identity(&self, h: StageHash) -> StageHash {
        match self {
            PretrainDataStage::Synth(cfg) => h.json("synth_multilabel", cfg),
            PretrainDataStage::AudioSet {
                manifest_hash,
                missing,
                ..
            } => h.part("manifest", manifest_hash).json("missing", missing),
        }
    }

    fn cached(&self) -> bool {
        matches!(self, PretrainDataStage::Synth(_))
    }

    fn produce(&self, cx: &Context, _inputs: &Outputs, dir: &Path) -> Result<()> {
        let PretrainDataStage::Synth(cfg) = self else {
            unreachable!("only synthetic data is cached")
        };
        let pb = cx.progress("synthesising multi-label clips");
        generate_multilabel(cfg, &dir.join("data"), Some(&pb))?;
        pb.finish_and_clear();
        Ok(())
    }

    fn load(&self, cx: &Context, _inputs: &Outputs, dir: Option<&Path>) -> Result<Artefact> {
        match self {
            PretrainDataStage::Synth(_) => load_splits(
                &dir.expect("cached stage").join("data"),
                Missing::Error,
                "synthetic multi-label set".into(),
            ),
            PretrainDataStage::AudioSet {
                root,
                missing,
                manifest,
                ..
            } => {
                let root = cx.data_root.join(root);
                manifest.verify(&root)?;
                let data = load_splits(&root, *missing, manifest.dataset.clone())?;
                if let Artefact::MultiLabelData(d) = &data {
                    let skipped = d.train.skipped.len() + d.eval.skipped.len();
                    if skipped > 0 {
                        cx.say(&format!(
                            "  note: {skipped} listed clips of {} have no WAV and were left out (`missing: skip`)",
                            manifest.dataset
                        ));
                    }
                }
                Ok(data)
            }
        }
    }
}

pub struct PretrainFeaturesStage {
    pub data: NodeId,
    pub frontend: Frontend,
}

fn split_features(
    set: &MultiLabelDataset,
    fe: &Frontend,
    cache: &FeatureCache,
    cx: &Context,
    name: &str,
) -> Result<MultiLabelSet> {
    let files: Vec<ClipFile> = set
        .clips
        .iter()
        .map(|c| ClipFile {
            path: set.path_of(c),
            sha256: None,
        })
        .collect();
    let pb = cx.progress(&format!("{} features ({name})", fe.id()));
    pb.set_length(files.len() as u64);
    let (feats, _) = extract_batch(&files, fe, Some(cache), Some(&pb))?;
    pb.finish_and_clear();
    let y = vec![0; feats.len()];
    let x = crate::train::FeatureSet::from_features(&feats, y.clone(), y)?.x;
    let targets = Tensor::from_slice(&set.targets())
        .reshape([set.clips.len() as i64, set.classes.len() as i64]);
    Ok(MultiLabelSet { x, targets })
}

impl Stage for PretrainFeaturesStage {
    fn kind(&self) -> &'static str {
        "features"
    }

    fn id(&self) -> String {
        format!("{} (pre-training)", self.frontend.id())
    }

    fn needs(&self) -> Vec<NodeId> {
        vec![self.data]
    }

    fn code(&self) -> &'static [&'static str] {
        &[
            "src/audio/",
            "src/train/pretrain.rs",
            "src/train/datamodule.rs",
            "src/runner/stages/pretrain.rs",
        ]
    }

    fn identity(&self, h: StageHash) -> StageHash {
        h.part("frontend", &self.frontend.fingerprint())
    }

    fn produce(&self, cx: &Context, inputs: &Outputs, dir: &Path) -> Result<()> {
        let data = inputs.multilabel_data(self.data);
        let cache = FeatureCache::open(&cx.cache.root().join("features"), &self.frontend)?;
        split_features(&data.train, &self.frontend, &cache, cx, "train")?
            .save(&dir.join("train.safetensors"))?;
        split_features(&data.eval, &self.frontend, &cache, cx, "eval")?
            .save(&dir.join("eval.safetensors"))
    }

    fn load(&self, _cx: &Context, _inputs: &Outputs, dir: Option<&Path>) -> Result<Artefact> {
        let dir = dir.expect("cached stage");
        Ok(Artefact::MultiLabelFeatures(Rc::new(MultiLabelFeatures {
            train: MultiLabelSet::load(&dir.join("train.safetensors"))?,
            eval: MultiLabelSet::load(&dir.join("eval.safetensors"))?,
        })))
    }
}

pub struct PretrainNode {
    pub stage: PretrainStage,
    pub data: NodeId,
    pub features: NodeId,
}

impl Stage for PretrainNode {
    fn kind(&self) -> &'static str {
        "pretrain"
    }

    fn id(&self) -> String {
        self.stage.id.clone()
    }

    fn needs(&self) -> Vec<NodeId> {
        vec![self.data, self.features]
    }

    fn code(&self) -> &'static [&'static str] {
        &[
            "src/train/",
            "src/models/",
            "src/audio/augment/",
            "src/eval/multilabel.rs",
            "src/runner/stages/pretrain.rs",
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
        let f = inputs.multilabel_features(self.features);
        let model = p.model.with_classes(f.train.classes())?;
        let pb = cx.progress(&format!("pretrain {}", p.id));
        let (vs, curve) = fit_multilabel(
            &PretrainOptions {
                id: &p.id,
                model: &model,
                training: &p.training,
                seed: p.seed,
                device: cx.device,
                progress: Some(&pb),
                checkpoint_dir: &inputs.resume_dir(cx, self.kind()),
            },
            &f.train,
            &f.eval,
        )?;
        pb.finish_and_clear();
        models::save_weights(&vs, &model, &dir.join("model.safetensors"))?;
        write_curve(&dir.join("curve.json"), &curve)
    }

    fn load(&self, _cx: &Context, inputs: &Outputs, dir: Option<&Path>) -> Result<Artefact> {
        let dir = dir.expect("cached stage");
        let p = &self.stage;
        let weights = dir.join("model.safetensors");
        let curve: Vec<crate::train::pretrain::PretrainEpoch> =
            super::read_json(&dir.join("curve.json"))?;
        let data = inputs.multilabel_data(self.data);
        let t = &p.training;
        let training = format!(
            "multi-label pre-training on the {} ({} clips, {} classes; BCE), {} epochs, batch {}, lr {}: mAP {:.3} on its {} evaluation clips",
            data.name,
            data.train.clips.len(),
            data.train.classes.len(),
            t.epochs,
            t.batch_size,
            t.optimizer.lr(),
            curve.last().map_or(f64::NAN, |c| c.eval_map),
            data.eval.clips.len()
        );
        Ok(Artefact::Model(Rc::new(ModelArtefact {
            config: p.model.with_classes(data.train.classes.len() as i64)?,
            weights,
            curve: Vec::new(),
            stage: p.id.clone(),
            label: p.label.clone(),
            training,
            notes: Vec::new(),
            split: None,
            pruning: None,
        })))
    }
}
