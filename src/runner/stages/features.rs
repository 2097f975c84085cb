//! Features of the training and test splits through the recipe's front end. Per-clip features
//! are also kept in a cache shared by every stage, recipe and profile that reads the same files
//! through the same front end.

use crate::audio::feature_cache::FeatureCache;
use crate::audio::features::{extract_batch, BatchStats, ClipFile};
use crate::audio::frontend::Frontend;
use crate::error::Result;
use crate::runner::cache::StageHash;
use crate::runner::graph::{Artefact, Context, NodeId, Outputs, SplitFeatures, Stage};
use crate::train::FeatureSet;
use std::path::Path;
use std::rc::Rc;

pub struct FeaturesStage {
    pub data: NodeId,
    pub frontend: Frontend,
    /// The profile's validation split, whose features are made too.
    pub validation: Option<String>,
}

impl Stage for FeaturesStage {
    fn kind(&self) -> &'static str {
        "features"
    }

    fn id(&self) -> String {
        self.frontend.id().to_string()
    }

    fn needs(&self) -> Vec<NodeId> {
        vec![self.data]
    }

    fn code(&self) -> &'static [&'static str] {
        &[
            "src/audio/frontend.rs",
            "src/audio/resample/",
            "src/audio/features.rs",
            "src/audio/feature_cache.rs",
            "src/audio/wav.rs",
            "src/audio/conv.rs",
            "src/train/datamodule.rs",
            "src/runner/stages/features.rs",
        ]
    }

    fn identity(&self, h: StageHash) -> StageHash {
        h.part("frontend", &self.frontend.fingerprint())
            .json("validation", &self.validation)
    }

    fn produce(&self, cx: &Context, inputs: &Outputs, dir: &Path) -> Result<()> {
        let data = inputs.data(self.data);
        let ds = &data.dataset;
        let fe = &self.frontend;
        let feature_cache = FeatureCache::open(&cx.cache.root().join("features"), fe)?;
        let mut stats = BatchStats::default();
        let splits = [("train", &ds.train), ("test", &ds.test)]
            .into_iter()
            .chain(data.validation.as_ref().map(|v| ("validation", v)));
        for (name, clips) in splits {
            let files: Vec<ClipFile> = clips
                .iter()
                .map(|c| ClipFile {
                    path: ds.root.join(&c.file),
                    sha256: data.file_sha256.get(&c.file).cloned(),
                })
                .collect();
            let pb = cx.progress(&format!("{} features ({name})", fe.id()));
            pb.set_length(files.len() as u64);
            let (feats, batch) = extract_batch(&files, fe, Some(&feature_cache), Some(&pb))?;
            pb.finish_and_clear();
            stats.absorb(batch);
            let y = clips.iter().map(|c| c.scene as i64).collect();
            let d = clips.iter().map(|c| c.device as i64).collect();
            FeatureSet::from_features(&feats, y, d)?
                .save(&dir.join(format!("{name}.safetensors")))?;
        }
        cx.say(&format!(
            "  features  per-clip cache: {} clips reused, {} extracted{} ({})",
            stats.cache_hits,
            stats.extracted,
            match stats.corrupt_entries {
                0 => String::new(),
                n => format!(", {n} damaged entries recomputed"),
            },
            feature_cache.dir().display()
        ));
        if let Some(note) = stats.mixdown_note() {
            cx.say(&format!("  {note}"));
        }
        Ok(())
    }

    fn load(&self, _cx: &Context, inputs: &Outputs, dir: Option<&Path>) -> Result<Artefact> {
        load_split_features(inputs.data(self.data), dir.expect("cached stage"))
    }
}

/// A named training split's features: the rows of the whole training split's features for the
/// split's clips (DCASE2024's subsets are subsets of it), the test and validation features
/// as they are. Nothing is extracted twice, and a split's rows are bit for bit the whole set's.
pub struct SplitFeaturesStage {
    pub whole_data: NodeId,
    pub whole: NodeId,
    pub split_data: NodeId,
    pub split: String,
    /// The front end's id, the node's name.
    pub frontend: String,
}

impl Stage for SplitFeaturesStage {
    fn kind(&self) -> &'static str {
        "features"
    }

    fn id(&self) -> String {
        format!("{}/{}", self.split, self.frontend)
    }

    fn needs(&self) -> Vec<NodeId> {
        vec![self.split_data, self.whole]
    }

    fn code(&self) -> &'static [&'static str] {
        &["src/train/datamodule.rs", "src/runner/stages/features.rs"]
    }

    fn identity(&self, h: StageHash) -> StageHash {
        h
    }

    fn produce(&self, _cx: &Context, inputs: &Outputs, dir: &Path) -> Result<()> {
        let whole = inputs.features(self.whole);
        let all = &inputs.data(self.whole_data).dataset;
        let split = &inputs.data(self.split_data).dataset;
        let row: std::collections::HashMap<&str, i64> = all
            .train
            .iter()
            .enumerate()
            .map(|(i, c)| (c.file.as_str(), i as i64))
            .collect();
        let rows: Vec<i64> = split
            .train
            .iter()
            .map(|c| {
                row.get(c.file.as_str()).copied().ok_or_else(|| {
                    crate::error::Error::msg(format!(
                        "training split `{}`: clip `{}` is not in the profile's training split, so it has no features there; a named split must be a subset of the training split",
                        self.split, c.file
                    ))
                })
            })
            .collect::<Result<_>>()?;
        let pick = |v: &[i64]| rows.iter().map(|&r| v[r as usize]).collect::<Vec<_>>();
        let train = FeatureSet {
            x: whole
                .train
                .x
                .f_index_select(0, &tch::Tensor::from_slice(&rows))?,
            y: pick(&whole.train.y),
            device: pick(&whole.train.device),
        };
        train.save(&dir.join("train.safetensors"))?;
        whole.test.save(&dir.join("test.safetensors"))?;
        if let Some(v) = &whole.validation {
            v.save(&dir.join("validation.safetensors"))?;
        }
        Ok(())
    }

    fn load(&self, _cx: &Context, inputs: &Outputs, dir: Option<&Path>) -> Result<Artefact> {
        load_split_features(inputs.data(self.split_data), dir.expect("cached stage"))
    }
}

/// Features of a data artefact's splits from a features entry.
fn load_split_features(data: &crate::runner::graph::DataArtefact, dir: &Path) -> Result<Artefact> {
    Ok(Artefact::Features(Rc::new(SplitFeatures {
        devices: data.dataset.devices.clone(),
        train: FeatureSet::load(&dir.join("train.safetensors"))?,
        test: FeatureSet::load(&dir.join("test.safetensors"))?,
        validation: match dir.join("validation.safetensors") {
            p if p.is_file() => Some(FeatureSet::load(&p)?),
            _ => None,
        },
    })))
}
