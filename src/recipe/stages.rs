//! Stage specs of the recipe format: one variant per stage kind, each kind with its own fields
//! (so a field of another kind is an unknown-field error naming the line).

use crate::compress::observer::ObserverKind;
use serde::{Deserialize, Serialize};
use serde_norway::Value;
use std::collections::BTreeMap;

/// A stage of the recipe, one variant per kind (`kind:` in the YAML). Each kind's fields are
/// its own, so a field of another kind is an unknown-field error naming the line.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind")]
pub enum StageSpec {
    /// A model trained on the scene data.
    #[serde(rename = "train")]
    Train(TrainSpec),
    /// Post-training INT8 quantization of a train stage's model.
    #[serde(rename = "quantize")]
    Quantize(QuantizeSpec),
    /// A stage's model deployed at half precision (fp16).
    #[serde(rename = "half")]
    Half(HalfSpec),
    /// Multi-label pre-training on the profile's `pretrain_data`.
    #[serde(rename = "pretrain")]
    Pretrain(PretrainSpec),
    /// The authors' released checkpoint, evaluated like a trained model.
    #[serde(rename = "released")]
    Released(ReleasedSpec),
    /// One model per listed device fine-tuned from a train stage's model, and the system that
    /// routes each clip by its device id (other devices: the general model).
    #[serde(rename = "finetune_devices")]
    FinetuneDevices(FinetuneDevicesSpec),
    /// Structured AGP channel pruning of a stage's model, with KD while pruning; its model is
    /// the network rebuilt at the pruned widths.
    #[serde(rename = "prune")]
    Prune(PruneSpec),
    /// A stage's model with its RepConv branches merged into single kernels (as deployed),
    /// evaluated, with the largest logit difference from the unmerged model.
    #[serde(rename = "reparameterize")]
    Reparameterize(ReparameterizeSpec),
}

/// The stage kinds, as `kind:` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageKind {
    Train,
    Quantize,
    Half,
    Pretrain,
    Released,
    FinetuneDevices,
    Prune,
    Reparameterize,
}

impl StageSpec {
    /// A stage from its YAML mapping. Not derived: serde buffers an internally tagged enum's
    /// content and loses the field path and line of an error inside a variant, so the variant is
    /// read from its own YAML text; the error is `path: message` (`distill.form: unknown ...`).
    fn from_value(value: Value) -> Result<StageSpec, String> {
        let Value::Mapping(mut map) = value else {
            return Err("expected a mapping with a `kind`".into());
        };
        let kind = map.remove("kind").ok_or("missing field `kind`")?;
        let kind: StageKind = serde_norway::from_value(kind).map_err(|e| format!("kind: {e}"))?;
        let body = serde_norway::to_string(&Value::Mapping(map)).map_err(|e| e.to_string())?;
        let variant = |e: serde_norway::Error| {
            let msg = e.to_string();
            msg.find(" at line ")
                .map_or(msg.clone(), |i| msg[..i].to_string())
        };
        Ok(match kind {
            StageKind::Train => StageSpec::Train(serde_norway::from_str(&body).map_err(variant)?),
            StageKind::Quantize => {
                StageSpec::Quantize(serde_norway::from_str(&body).map_err(variant)?)
            }
            StageKind::Half => StageSpec::Half(serde_norway::from_str(&body).map_err(variant)?),
            StageKind::Pretrain => {
                StageSpec::Pretrain(serde_norway::from_str(&body).map_err(variant)?)
            }
            StageKind::Released => {
                StageSpec::Released(serde_norway::from_str(&body).map_err(variant)?)
            }
            StageKind::Reparameterize => {
                StageSpec::Reparameterize(serde_norway::from_str(&body).map_err(variant)?)
            }
            StageKind::FinetuneDevices => {
                StageSpec::FinetuneDevices(serde_norway::from_str(&body).map_err(variant)?)
            }
            StageKind::Prune => StageSpec::Prune(serde_norway::from_str(&body).map_err(variant)?),
        })
    }
}

/// `Recipe::stages`, each stage read by [`StageSpec::from_value`]; errors carry the whole
/// field path (`stages[2].distill.form: ...`), which `recipe::parse` turns into the line.
/// The field `stages_from_yaml` reads; errors under it are located by their path.
pub(crate) const STAGES: &str = "stages";

pub(super) fn stages_from_yaml<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<StageSpec>, D::Error> {
    Vec::<Value>::deserialize(d)?
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            StageSpec::from_value(v).map_err(|msg| {
                use serde::de::Error;
                match msg.split_once(": ") {
                    Some((path, rest)) if !path.contains(' ') => {
                        D::Error::custom(format!("{STAGES}[{i}].{path}: {rest}"))
                    }
                    _ => D::Error::custom(format!("{STAGES}[{i}]: {msg}")),
                }
            })
        })
        .collect()
}

impl StageSpec {
    pub fn id(&self) -> &str {
        match self {
            StageSpec::Train(s) => &s.id,
            StageSpec::Quantize(s) => &s.id,
            StageSpec::Half(s) => &s.id,
            StageSpec::Pretrain(s) => &s.id,
            StageSpec::Released(s) => &s.id,
            StageSpec::FinetuneDevices(s) => &s.id,
            StageSpec::Prune(s) => &s.id,
            StageSpec::Reparameterize(s) => &s.id,
        }
    }

    pub fn kind(&self) -> StageKind {
        match self {
            StageSpec::Train(_) => StageKind::Train,
            StageSpec::Quantize(_) => StageKind::Quantize,
            StageSpec::Half(_) => StageKind::Half,
            StageSpec::Pretrain(_) => StageKind::Pretrain,
            StageSpec::Released(_) => StageKind::Released,
            StageSpec::FinetuneDevices(_) => StageKind::FinetuneDevices,
            StageSpec::Prune(_) => StageKind::Prune,
            StageSpec::Reparameterize(_) => StageKind::Reparameterize,
        }
    }

    pub fn label(&self) -> &str {
        match self {
            StageSpec::Train(s) => &s.label,
            StageSpec::Quantize(s) => &s.label,
            StageSpec::Half(s) => &s.label,
            StageSpec::Pretrain(s) => &s.label,
            StageSpec::Released(s) => &s.label,
            StageSpec::FinetuneDevices(s) => &s.label,
            StageSpec::Prune(s) => &s.label,
            StageSpec::Reparameterize(s) => &s.label,
        }
    }

    /// The stages this one reads from, by id.
    pub fn sources(&self) -> Vec<&str> {
        match self {
            StageSpec::Train(s) => s
                .distill
                .iter()
                .flat_map(|d| d.teacher.stages())
                .chain(s.init.iter().map(|i| i.from.as_str()))
                .collect(),
            StageSpec::Quantize(s) => vec![s.from.as_str()],
            StageSpec::Half(s) => vec![s.from.as_str()],
            StageSpec::Reparameterize(s) => vec![s.from.as_str()],
            StageSpec::Pretrain(_) | StageSpec::Released(_) => Vec::new(),
            StageSpec::FinetuneDevices(s) => std::iter::once(s.from.as_str())
                .chain(s.general.as_deref())
                .collect(),
            StageSpec::Prune(s) => std::iter::once(s.from.as_str())
                .chain(s.distill.iter().flat_map(|d| d.teacher.stages()))
                .collect(),
        }
    }

    /// The stage's `training` override mapping, for the kinds that train.
    pub fn training_override(&self) -> Option<&Value> {
        match self {
            StageSpec::Train(s) => s.training.as_ref(),
            StageSpec::Pretrain(s) => s.training.as_ref(),
            StageSpec::FinetuneDevices(s) => s.training.as_ref(),
            StageSpec::Prune(s) => s.training.as_ref(),
            StageSpec::Quantize(_)
            | StageSpec::Half(_)
            | StageSpec::Released(_)
            | StageSpec::Reparameterize(_) => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSpec {
    pub id: String,
    /// Human-readable row label for the report.
    pub label: String,
    /// Key into `models`.
    pub model: String,
    /// Fields replacing those of the recipe's `training` (null removes an augmentation).
    #[serde(default)]
    pub training: Option<Value>,
    /// Knowledge distillation from another train stage's model.
    #[serde(default)]
    pub distill: Option<DistillSpec>,
    /// Start from another stage's weights instead of a fresh initialisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<InitSpec>,
    /// Which epoch's weights the stage keeps.
    #[serde(default, skip_serializing_if = "Select::is_last")]
    pub select: Select,
    /// Train on this named training split of the profile (`data.splits`) instead of its
    /// whole training split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<String>,
    /// Run the stage once per listed split, as stages `<id>@<split>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_each: Option<ForEachSpec>,
}

/// One stage per split (Cai et al. 2024, Table 3), with per-split training fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForEachSpec {
    pub split: Vec<String>,
    /// Per split: fields replacing the stage's training (e.g. a learning rate per split).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub training: BTreeMap<String, Value>,
}

/// A model pre-trained multi-label (BCE, mAP) on the profile's `pretrain_data`; its classifier
/// has one output per label of that set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainSpec {
    pub id: String,
    pub label: String,
    /// Key into `models`: the architecture (its class count becomes the label set's).
    pub model: String,
    /// Fields replacing those of the recipe's `training` (epochs, optimiser, schedule, mixup).
    #[serde(default)]
    pub training: Option<Value>,
}

/// A released checkpoint (`.ckpt` / `.pth`, read without Python) mapped onto an architecture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleasedSpec {
    pub id: String,
    pub label: String,
    /// Key into `models`: the architecture the checkpoint's tensors are mapped onto.
    pub model: String,
    /// The (general) model's checkpoint.
    pub checkpoint: FileSpec,
    /// Per-device checkpoints of the same architecture (Zhou et al.'s seven, Ramezanee et al.'s
    /// per-device `.pth`): evaluated as a system routing each clip by its device id, clips of
    /// any other device to the general model.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub devices: BTreeMap<String, FileSpec>,
}

/// A user-supplied file under the data root, with the SHA-256 the run checks and hashes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    pub path: String,
    pub sha256: String,
}

/// Weights a train stage starts from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitSpec {
    /// The stage whose model is taken.
    pub from: String,
    /// Whether its classifier is taken too; without it, the source may have another number of
    /// classes (pre-training on another label set).
    pub classifier: bool,
}

/// Which epoch's weights a train stage keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Select {
    /// The last epoch's.
    #[default]
    Last,
    /// The epoch with the best macro accuracy on the profile's validation split.
    Best,
}

impl Select {
    fn is_last(&self) -> bool {
        *self == Select::Last
    }
}

/// Device-specific fine-tuning (Zhou et al. 2025 stage 4; Zhang et al. 2025 Table 3;
/// Ramezanee et al. 2025): for each listed device, the general model of `from` (classifier
/// included) trained further on that device's training clips only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinetuneDevicesSpec {
    pub id: String,
    pub label: String,
    /// The train stage whose model every device model starts from, and which classifies the
    /// clips of every other device.
    pub from: String,
    /// Devices that get their own model, e.g. `[a, b, c, s1, s2, s3]`.
    pub devices: Vec<String>,
    /// The train stage whose model classifies the clips of every unlisted device, when it is
    /// not `from` (Zhou et al.'s `unknown` model, fine-tuned like the device models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub general: Option<String>,
    /// Fields replacing those of the recipe's `training` (as a train stage's `training`).
    #[serde(default)]
    pub training: Option<Value>,
}

/// Structured pruning (Zhang et al. 2025, SSCP-Mobile): the model of `from` trained on with its
/// lowest-importance channels masked, more of them at each AGP step until the target widths,
/// then rebuilt at those widths.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruneSpec {
    pub id: String,
    pub label: String,
    /// The train, released or prune stage whose model is pruned.
    pub from: String,
    /// The widths pruning ends at.
    pub target: PruneTargetSpec,
    /// How channels are ranked.
    pub importance: Importance,
    /// Fields replacing those of the recipe's `training`; its epochs are the pruning run's.
    #[serde(default)]
    pub training: Option<Value>,
    /// AGP prunes over the first this many epochs (one step at the start of each), the rest
    /// train at the target widths; default: every epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune_epochs: Option<usize>,
    /// Knowledge distillation while pruning.
    #[serde(default)]
    pub distill: Option<DistillSpec>,
}

/// Where a prune stage ends (`kind:` as a teacher's): explicit widths, or the widest network
/// within the DCASE limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum PruneTargetSpec {
    /// The architecture's explicit width list (e.g. SSCP-Mobile's 14 entries).
    Widths { widths: Vec<i64> },
    /// The DCASE task 1 limits (128 kB of parameters at `bits` per parameter: 8, 16 or 32;
    /// 30 M MACs), widths derived by `compress::prune::counts_for_budget`'s rule.
    Budget { bits: u32 },
}

/// Channel importance criteria.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Importance {
    /// The L1 norm of each channel's filters (NNI's L1NormPruner).
    L1,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuantizeSpec {
    pub id: String,
    pub label: String,
    /// The train stage whose model is quantized.
    pub from: String,
    /// Number of training clips used to calibrate activation ranges.
    #[serde(default = "calibration_clips")]
    pub calibration_clips: usize,
    /// Largest accepted accuracy loss (fraction, e.g. 0.01) against the fp32 model.
    #[serde(default = "tolerance")]
    pub tolerance: f64,
    /// Activation observer: `histogram` (fbgemm's default qconfig) or `min_max`.
    #[serde(default = "observer")]
    pub observer: ObserverKind,
}

fn observer() -> ObserverKind {
    ObserverKind::Histogram
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HalfSpec {
    pub id: String,
    pub label: String,
    /// The train or released stage whose model is deployed at half precision.
    pub from: String,
}

/// RepConv re-parameterisation (Ramezanee et al. 2025): the model of `from` with each RepConv2d's
/// parallel branches summed into one 3x3 kernel, the graph the authors deploy and release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReparameterizeSpec {
    pub id: String,
    pub label: String,
    /// The train or prune stage whose model is merged.
    pub from: String,
}

fn calibration_clips() -> usize {
    1024
}

fn tolerance() -> f64 {
    0.01
}

/// The knowledge-distillation loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KdForm {
    /// L = CE + lambda·KL (2023).
    CePlusKl,
    /// L = lambda·CE + (1 − lambda)·T²·KL (2024/2025).
    Weighted,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistillSpec {
    /// Where the teacher logits come from.
    pub teacher: TeacherSpec,
    pub form: KdForm,
    pub lambda: f64,
    pub temperature: f64,
}

/// Where a distilling stage's teacher logits come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", deny_unknown_fields)]
pub enum TeacherSpec {
    /// A train stage's model, run on every training row (offline copies included).
    #[serde(rename = "stage")]
    Stage { stage: String },
    /// The mean of several train stages' logits (the reports' teacher ensembles).
    #[serde(rename = "ensemble")]
    Ensemble { stages: Vec<String> },
    /// A logits file under the data root (clip filename + 10 logits, CSV or parquet; written
    /// by `ascrepro logits`): teachers that cannot run here. `{split}` in the path names the
    /// file of each training split a per-split stage runs on. With `sha256` the run refuses
    /// any other file; without (files the authors never published, made by whoever runs the
    /// recipe), the run pins the file it finds: its hash enters the stage's identity.
    #[serde(rename = "logits")]
    Logits {
        path: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sha256: Option<String>,
    },
}

/// What a logits teacher's path holds in place of the training split's name.
pub const SPLIT_PLACEHOLDER: &str = "{split}";

impl TeacherSpec {
    /// The train stages it reads, by id.
    pub fn stages(&self) -> Vec<&str> {
        match self {
            TeacherSpec::Stage { stage } => vec![stage.as_str()],
            TeacherSpec::Ensemble { stages } => stages.iter().map(String::as_str).collect(),
            TeacherSpec::Logits { .. } => Vec::new(),
        }
    }
}
