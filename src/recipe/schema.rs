//! The recipe file format: one YAML per technical report. Every struct denies unknown fields so
//! a typo is an error naming the field and line, never a silently ignored setting.

pub use ascrepro_results::columns::{AccuracyUnit, PublishedColumn, TrainSplit};
use serde::{Deserialize, Serialize};
use serde_norway::Value;
use std::collections::BTreeMap;

pub use super::stages::*;

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
    #[serde(deserialize_with = "super::stages::stages_from_yaml")]
    pub stages: Vec<StageSpec>,
    #[serde(default)]
    pub published: Vec<PublishedSpec>,
    /// The methods the report credits with an effect, each as two stages that differ by it;
    /// the report measures each effect over the training seeds the profile ran.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub effects: Vec<EffectSpec>,
    /// Where the report contradicts itself, both statements transcribed; the report flags each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<ConflictSpec>,
    pub profiles: BTreeMap<String, ProfileSpec>,
}

/// One setting the report states twice, differently.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConflictSpec {
    /// What the statements are about, e.g. "the learning rate per split".
    pub about: String,
    pub statements: Vec<StatementSpec>,
    /// Which one the recipe follows, and why.
    pub recipe_uses: String,
}

/// A statement of the report, where it is and what it says (quoted or transcribed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatementSpec {
    pub r#where: String,
    pub says: String,
}

/// A method the report credits, measured as `with` minus `without` (paired by training seed
/// and split).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EffectSpec {
    pub method: crate::eval::effects::Method,
    /// The stage with the method, and the one without it.
    pub with: String,
    pub without: String,
    /// Where the report states the effect, e.g. "Table 3: 51.9 -> 53.9".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<String>,
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
    /// What a Slurm job of each stage kind asks for (`default`: every kind), e.g.
    /// `train: {gpus: 1, cpus: 8, mem: 32G, time: "24:00:00"}`. Scheduling only.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resources: BTreeMap<String, super::resources::ResourceSpec>,
    /// Training seeds: every training stage of the profile runs this many times, each with its
    /// own seed, so the report can state each effect with its spread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeats: Option<RepeatsSpec>,
}

/// `repeats:` of a profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepeatsSpec {
    /// Runs of each training stage (train, prune, finetune_devices, pretrain): `<id>` (the
    /// stage's own seed, as without repeats), `<id>#2`, ... Stages reading a repeated one run
    /// once per run of it.
    pub seeds: usize,
    /// Training stages trained once all the same (a stand-in teacher: an input of the
    /// comparison, not a compared system); their readers pair every run with the one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub except: Vec<String>,
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
