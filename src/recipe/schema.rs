//! The recipe file format: one YAML per technical report. Every struct denies unknown fields so
//! a typo is an error naming the field and line, never a silently ignored setting.

pub use crate::eval::columns::{AccuracyUnit, PublishedColumn, TrainSplit};
use serde::{Deserialize, Serialize};
use serde_norway::Value;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// Identifier: names the report directory (`reports/<id>`).
    pub id: String,
    pub title: String,
    pub citation: String,
    /// The technical report this recipe transcribes (file name under shared/seeds).
    pub source: String,
    /// Front-end id (SPEC.md table), e.g. `cpmel-128`.
    pub frontend: String,
    /// How the system's authors bring clips to the front end's rate (`torchaudio` or
    /// `librosa`; `audio::resample` says which system uses which and where in the chain).
    pub resampler: crate::audio::resample::ResamplerId,
    /// Master seed; every stage derives its own from it and its id.
    pub seed: u64,
    /// Named model architectures.
    pub models: BTreeMap<String, ModelSpec>,
    /// Training defaults every train stage starts from.
    pub training: TrainingSpec,
    #[serde(deserialize_with = "stages_from_yaml")]
    pub stages: Vec<StageSpec>,
    #[serde(default)]
    pub published: Vec<PublishedSpec>,
    pub profiles: BTreeMap<String, ProfileSpec>,
}

pub use crate::models::ModelSpec;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingSpec {
    pub epochs: usize,
    pub batch_size: usize,
    pub optimizer: OptimizerSpec,
    pub schedule: ScheduleSpec,
    #[serde(default)]
    pub mixup: Option<MixupSpec>,
    #[serde(default)]
    pub freq_mixstyle: Option<FreqMixStyleSpec>,
    /// Offline device simulation: device-a training clips convolved with device impulse responses.
    #[serde(default)]
    pub device_simulation: Option<DeviceSimulationSpec>,
    // The augmentations below are left out of the serialised recipe when absent, so adding
    // them changed no existing recipe's hash.
    /// Online device impulse response augmentation of device-a waveforms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir_augmentation: Option<DirAugmentationSpec>,
    /// Offline IR-convolved copies of real-device clips, as many as the clip's RMS energy says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy_ir: Option<EnergyIrSpec>,
    /// Random circular shift along time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_roll: Option<TimeRollSpec>,
    /// SpecAugment frequency and time masking of batch spectrograms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_augment: Option<SpecAugmentSpec>,
    /// Evaluate on the test split every this many epochs for the curves (0: never).
    #[serde(default = "one")]
    pub validate_every: usize,
}

fn one() -> usize {
    1
}

/// The optimiser, as its PyTorch namesake with PyTorch's defaults unless given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", deny_unknown_fields)]
pub enum OptimizerSpec {
    /// `torch.optim.Adam`: weight decay is an L2 term added to the gradient.
    #[serde(rename = "adam")]
    Adam {
        lr: f64,
        #[serde(default = "adam_betas")]
        betas: [f64; 2],
        #[serde(default)]
        weight_decay: f64,
    },
    /// `torch.optim.AdamW`: decoupled weight decay (the parameters shrink by `lr * weight_decay`
    /// before each Adam step), 0.01 by default as in PyTorch.
    #[serde(rename = "adamw")]
    AdamW {
        lr: f64,
        #[serde(default = "adam_betas")]
        betas: [f64; 2],
        #[serde(default = "adamw_weight_decay")]
        weight_decay: f64,
    },
}

impl OptimizerSpec {
    /// The peak learning rate (the schedule scales it).
    pub fn lr(&self) -> f64 {
        match self {
            OptimizerSpec::Adam { lr, .. } | OptimizerSpec::AdamW { lr, .. } => *lr,
        }
    }
}

fn adam_betas() -> [f64; 2] {
    [0.9, 0.999]
}

fn adamw_weight_decay() -> f64 {
    0.01
}

/// Learning-rate schedule, stepped every optimisation step (fractional epochs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", deny_unknown_fields)]
pub enum ScheduleSpec {
    /// Linear 0 -> lr over `warmup_epochs`, then cosine to 0 at the last epoch.
    #[serde(rename = "warmup_cosine")]
    WarmupCosine { warmup_epochs: usize },
    /// Cosine from lr to 0 over all epochs.
    #[serde(rename = "cosine")]
    Cosine,
    /// SGDR (`CosineAnnealingWarmRestarts`): cosine to 0 over `t0` epochs, then restarts with
    /// periods `t_mult` times longer.
    #[serde(rename = "sgdr")]
    Sgdr { t0: usize, t_mult: usize },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MixupSpec {
    /// lambda ~ Beta(alpha, alpha).
    pub alpha: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreqMixStyleSpec {
    pub alpha: f64,
    /// Probability of applying it to a batch.
    pub p: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceSimulationSpec {
    /// How many impulse responses to use (the first N of the IR set, sorted by name).
    pub irs: usize,
    /// How many random device-a training clips each impulse response is applied to.
    pub clips_per_ir: usize,
}

/// Device impulse response (DIR) augmentation: each device-a training clip is convolved, with
/// probability `p`, with an impulse response drawn from the profile's IR set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirAugmentationSpec {
    pub p: f64,
    /// Use the first N impulse responses of the set (sorted by name); all when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub irs: Option<usize>,
}

/// RMS-energy-driven IR augmentation (Ramezanee et al. 2025): each clip of `devices` gets as
/// many copies, each convolved with its own impulse response, as its RMS row of `levels` says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnergyIrSpec {
    /// The energy table; Table 1 of the RepConv report when absent.
    #[serde(default = "repconv_levels")]
    pub levels: Vec<crate::audio::augment::EnergyLevel>,
    /// Devices whose training clips are augmented (the released generator: the real ones).
    #[serde(default = "real_devices")]
    pub devices: Vec<String>,
    /// Use the first N impulse responses of the set (sorted by name); all when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub irs: Option<usize>,
}

fn repconv_levels() -> Vec<crate::audio::augment::EnergyLevel> {
    crate::audio::augment::energy::REPCONV_2025.to_vec()
}

fn real_devices() -> Vec<String> {
    ["a", "b", "c"].map(String::from).to_vec()
}

/// Time rolling by a shift uniform in `[-max, max]`: give exactly one of the two.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeRollSpec {
    /// On the waveform (as the reference datasets do), in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_shift_s: Option<f64>,
    /// On the batch spectrogram, in frames.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_frames: Option<usize>,
}

/// SpecAugment masks, drawn as torchaudio's `FrequencyMasking`/`TimeMasking(iid_masks=True)`:
/// each mask's width is uniform in `[0, width)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecAugmentSpec {
    #[serde(default = "one")]
    pub freq_masks: usize,
    /// Mask parameter along frequency (CP-JKU's `freqm`), in mel bins.
    #[serde(default)]
    pub freq_width: usize,
    #[serde(default = "one")]
    pub time_masks: usize,
    /// Mask parameter along time (CP-JKU's `timem`), in frames.
    #[serde(default)]
    pub time_width: usize,
    /// Value of masked cells in feature units; when absent, what the front end's reference
    /// implementation produces (filled in when the plan is made).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
}

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
}

/// The stage kinds, as `kind:` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageKind {
    Train,
    Quantize,
    Pretrain,
    Released,
    FinetuneDevices,
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
            StageKind::Pretrain => {
                StageSpec::Pretrain(serde_norway::from_str(&body).map_err(variant)?)
            }
            StageKind::Released => {
                StageSpec::Released(serde_norway::from_str(&body).map_err(variant)?)
            }
            StageKind::FinetuneDevices => {
                StageSpec::FinetuneDevices(serde_norway::from_str(&body).map_err(variant)?)
            }
        })
    }
}

/// `Recipe::stages`, each stage read by [`StageSpec::from_value`]; errors carry the whole
/// field path (`stages[2].distill.form: ...`), which `recipe::parse` turns into the line.
/// The field `stages_from_yaml` reads; errors under it are located by their path.
pub(crate) const STAGES: &str = "stages";

fn stages_from_yaml<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<StageSpec>, D::Error> {
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
            StageSpec::Pretrain(s) => &s.id,
            StageSpec::Released(s) => &s.id,
            StageSpec::FinetuneDevices(s) => &s.id,
        }
    }

    pub fn kind(&self) -> StageKind {
        match self {
            StageSpec::Train(_) => StageKind::Train,
            StageSpec::Quantize(_) => StageKind::Quantize,
            StageSpec::Pretrain(_) => StageKind::Pretrain,
            StageSpec::Released(_) => StageKind::Released,
            StageSpec::FinetuneDevices(_) => StageKind::FinetuneDevices,
        }
    }

    pub fn label(&self) -> &str {
        match self {
            StageSpec::Train(s) => &s.label,
            StageSpec::Quantize(s) => &s.label,
            StageSpec::Pretrain(s) => &s.label,
            StageSpec::Released(s) => &s.label,
            StageSpec::FinetuneDevices(s) => &s.label,
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
            StageSpec::Pretrain(_) | StageSpec::Released(_) => Vec::new(),
            StageSpec::FinetuneDevices(s) => vec![s.from.as_str()],
        }
    }

    /// The stage's `training` override mapping, for the kinds that train.
    pub fn training_override(&self) -> Option<&Value> {
        match self {
            StageSpec::Train(s) => s.training.as_ref(),
            StageSpec::Pretrain(s) => s.training.as_ref(),
            StageSpec::FinetuneDevices(s) => s.training.as_ref(),
            StageSpec::Quantize(_) | StageSpec::Released(_) => None,
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

/// Where a profile's pre-training data comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PretrainDataKind {
    /// A user-supplied AudioSet copy under the data root (`data::audioset` layout).
    #[serde(rename = "audioset")]
    AudioSet,
    /// The synthetic multi-label set (`data::synth::multilabel`).
    #[serde(rename = "synth_multilabel")]
    SynthMultiLabel,
}

/// The multi-label set `pretrain` stages train on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainDataSpec {
    pub kind: PretrainDataKind,
    /// audioset: directory relative to the data root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
    /// audioset: manifest of that copy, relative to the project root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
    /// audioset: what to do with listed clips whose WAV is missing (copies always miss some).
    #[serde(default)]
    pub missing: crate::data::audioset::Missing,
    /// synth_multilabel: the generator's configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synth: Option<crate::data::synth::MultiLabelSynthConfig>,
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
    /// Fields replacing those of the recipe's `training` (as a train stage's `training`).
    #[serde(default)]
    pub training: Option<Value>,
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

/// Where a profile's data comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DataKind {
    /// Real TAU Urban Acoustic Scenes 2022 Mobile data under the data root.
    #[serde(rename = "tau2022")]
    Tau2022,
    /// The synthetic set generated from the profile's `synth` block.
    #[serde(rename = "synth")]
    Synth,
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
    /// by `ascrepro logits`), checked against its SHA-256: teachers that cannot run here.
    #[serde(rename = "logits")]
    Logits { path: String, sha256: String },
}

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

/// A row of a published table, transcribed from the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishedSpec {
    pub table: String,
    pub label: String,
    /// Key into `models`: the architecture whose complexity the row states.
    #[serde(default)]
    pub model: Option<String>,
    /// The stage that reproduces this row, when a profile runs it.
    #[serde(default)]
    pub stage: Option<String>,
    // The three fields below are left out of the serialised recipe when absent, so adding
    // them changed no existing recipe's hash.
    /// The only profile whose run reproduces this row (others show it published only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The training subset the row's figures were obtained on: every row of a table printed
    /// one row per subset names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<TrainSplit>,
    /// How the row prints accuracies: `percent` (default) or `fraction` (0.595).
    #[serde(default, skip_serializing_if = "AccuracyUnit::is_percent")]
    pub accuracy_unit: AccuracyUnit,
    /// Column → value as printed: `{a: 66.0, unseen: 50.1, airport: 48.3, split25: 57.9,
    /// accuracy: 54.2, log_loss: 1.31, macs_m: 10.23, params_k: 87.04, ...}`; the valid columns
    /// are [`PublishedColumn`]'s.
    pub values: BTreeMap<PublishedColumn, f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileSpec {
    /// What this profile changes relative to the report; printed beside every reproduced figure.
    pub note: String,
    pub data: DataSpec,
    /// Stage ids this profile runs, in order.
    pub stages: Vec<String>,
    /// The multi-label set of the `pretrain` stages this profile runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pretrain_data: Option<PretrainDataSpec>,
    /// Dotted-path overrides of recipe values, e.g. `training.epochs: 20`, `models.c160.width: 32`.
    #[serde(default)]
    pub set: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    pub kind: DataKind,
    /// tau2022: dataset directory relative to the data root.
    #[serde(default)]
    pub root: Option<String>,
    /// tau2022: manifest file relative to the project root.
    #[serde(default)]
    pub manifest: Option<String>,
    /// Split CSVs relative to the dataset root.
    #[serde(default)]
    pub train_split: Option<String>,
    #[serde(default)]
    pub test_split: Option<String>,
    /// Named training splits (DCASE2024: `split5` ... `split100`) -> CSV relative to the
    /// dataset root; for synthetic data, `splitN` names the generator's `splitN.csv` by default.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub splits: BTreeMap<String, String>,
    /// Split CSV (relative to the dataset root) that `select: best` stages choose their epoch
    /// on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_split: Option<String>,
    /// Device impulse responses for device simulation: directory relative to the data root
    /// (tau2022; the synthetic set carries its own `irs/`).
    #[serde(default)]
    pub irs_root: Option<String>,
    #[serde(default)]
    pub irs_manifest: Option<String>,
    /// synth: the generator's configuration.
    #[serde(default)]
    pub synth: Option<crate::data::synth::SynthConfig>,
}

impl DataSpec {
    /// The CSV of the named training split: as `splits` maps it, or for synthetic data the
    /// generator's own `splitN.csv` when N is one of its subsets.
    pub fn split_csv(&self, name: &str) -> Option<String> {
        if let Some(csv) = self.splits.get(name) {
            return Some(csv.clone());
        }
        let pct: u32 = name.strip_prefix("split")?.parse().ok()?;
        let synth = self
            .synth
            .as_ref()
            .filter(|_| self.kind == DataKind::Synth)?;
        synth.subsets.contains(&pct).then(|| format!("{name}.csv"))
    }
}
