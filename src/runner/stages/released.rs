//! `kind: released`: an authors' released checkpoint (`.ckpt` / `.pth` under the data root,
//! checked against its SHA-256), imported onto the recipe's architecture without Python
//! (`models::checkpoint`) and evaluated like a trained model; with per-device checkpoints, also
//! as the system routing each clip to its device's model.

use super::evaluate::{EvaluateStage, RoutedEvaluateStage};
use super::Base;
use crate::data::manifest::hash_file;
use crate::error::{Error, Result};
use crate::models::{self, checkpoint};
use crate::recipe::ReleasedStage;
use crate::runner::cache::StageHash;
use crate::runner::graph::{Artefact, Context, Graph, ModelArtefact, NodeId, Outputs, Stage};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use tch::Device;

pub struct ReleasedNode {
    pub stage: ReleasedStage,
    /// The checkpoint's absolute path.
    pub path: PathBuf,
}

/// With per-device checkpoints, the stage's id names the routed system (as a finetune_devices
/// stage's does) and its general model is evaluated alone as `<id>/general`; the general model
/// stays the stage's model for later stages.
pub fn add(g: &mut Graph, base: &Base, r: &ReleasedStage) -> Result<()> {
    let routed = !r.devices.is_empty();
    let general = ReleasedStage {
        id: if routed {
            format!("{}/general", r.id)
        } else {
            r.id.clone()
        },
        label: if routed {
            format!("{} (general model)", r.label)
        } else {
            r.label.clone()
        },
        devices: Default::default(),
        ..r.clone()
    };
    let model = g.add(ReleasedNode {
        path: base.data_root.join(&r.checkpoint.path),
        stage: general.clone(),
    });
    let eval = g.add(EvaluateStage {
        id: general.id.clone(),
        model,
        features: base.features,
    });
    g.name_model(&r.id, model, Some(eval));
    if !routed {
        return Ok(());
    }
    let devices = r
        .devices
        .iter()
        .map(|(device, file)| {
            let node = g.add(ReleasedNode {
                stage: ReleasedStage {
                    id: format!("{}/{device}", r.id),
                    label: format!("{} ({device})", r.label),
                    checkpoint: file.clone(),
                    devices: Default::default(),
                    ..r.clone()
                },
                path: base.data_root.join(&file.path),
            });
            (device.clone(), node)
        })
        .collect();
    g.add(RoutedEvaluateStage {
        id: r.id.clone(),
        label: r.label.clone(),
        general: model,
        devices,
        features: base.features,
    });
    Ok(())
}

impl Stage for ReleasedNode {
    fn kind(&self) -> &'static str {
        "released"
    }

    fn id(&self) -> String {
        self.stage.id.clone()
    }

    fn needs(&self) -> Vec<NodeId> {
        Vec::new()
    }

    fn code(&self) -> &'static [&'static str] {
        &["src/models/", "src/runner/stages/released.rs"]
    }

    fn identity(&self, h: StageHash) -> StageHash {
        // The checkpoint enters by its hash: a different file is a different stage.
        h.json("stage", &self.stage)
    }

    fn produce(&self, _cx: &Context, _inputs: &Outputs, dir: &Path) -> Result<()> {
        let want = &self.stage.checkpoint.sha256;
        let (_, got) = hash_file(&self.path)?;
        if !got.eq_ignore_ascii_case(want) {
            return Err(Error::file(
                &self.path,
                format!(
                    "SHA-256 is {got}, but the recipe's stage `{}` names {want}: not the released file it names (update `sha256` if you replaced it on purpose)",
                    self.stage.id
                ),
            ));
        }
        let imported = checkpoint::import(&self.path, &self.stage.model, Device::Cpu)?;
        models::save_weights(
            &imported.vs,
            &imported.config,
            &dir.join("model.safetensors"),
        )?;
        super::write_json(&dir.join("notes.json"), &imported.notes)
    }

    fn load(&self, _cx: &Context, _inputs: &Outputs, dir: Option<&Path>) -> Result<Artefact> {
        let dir = dir.expect("cached stage");
        let r = &self.stage;
        Ok(Artefact::Model(Rc::new(ModelArtefact {
            weights: dir.join("model.safetensors"),
            config: r.model.clone(),
            curve: Vec::new(),
            stage: r.id.clone(),
            label: r.label.clone(),
            training: format!(
                "the authors' released checkpoint `{}` (SHA-256 {}…), imported without Python",
                r.checkpoint.path,
                &r.checkpoint.sha256[..12]
            ),
            notes: super::read_json(&dir.join("notes.json"))?,
            split: None,
            pruning: None,
        })))
    }
}
