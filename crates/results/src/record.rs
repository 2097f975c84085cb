//! The run record (`results.json`) and the records it is made of: produced by ascrepro's
//! compress, eval and train stages, stored by its runner as JSON, rendered by its report and
//! read back by [`crate::Report`]. Data only; no behaviour beyond small accessors.

pub use crate::columns::{AccuracyUnit, PublishedColumn, TrainSplit};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One row of a torchinfo-style per-layer complexity table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerComplexity {
    /// Dotted module name, e.g. `stage1.block0.freq_dw`.
    pub name: String,
    /// Layer kind, e.g. `Conv2d`, `BatchNorm2d`, `AdaResNorm`, `MaxPool2d`.
    pub kind: String,
    /// Input shape without the batch dimension (C, F, T).
    pub input: Vec<usize>,
    /// Output shape without the batch dimension.
    pub output: Vec<usize>,
    pub params: u64,
    pub macs: u64,
}

/// Complexity of a model at one input shape, counted with torchinfo's convention
/// (see `../shared/reference/complexity.tsv`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Complexity {
    /// Input shape without batch (C, F, T).
    pub input: Vec<usize>,
    pub layers: Vec<LayerComplexity>,
    pub params: u64,
    pub macs: u64,
}

impl Complexity {
    /// Parameter memory in bytes at `bits` per parameter.
    pub fn param_bytes(&self, bits: u32) -> u64 {
        self.params * bits as u64 / 8
    }
}

/// DCASE task 1 limits (2024/2025 editions): parameter memory and MACs per 1-second clip.
pub const LIMIT_PARAM_BYTES: u64 = 128_000;
pub const LIMIT_MACS: u64 = 30_000_000;

/// Evaluation of one system on one test set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Number of test clips.
    pub clips: usize,
    /// Plain accuracy (correct / clips).
    pub accuracy: f64,
    /// Mean of the class-wise accuracies (the DCASE "macro average").
    pub macro_accuracy: f64,
    /// Mean negative log-likelihood of the true class.
    pub log_loss: f64,
    /// Class-wise accuracy (recall), in `labels::CLASSES` order.
    pub class_accuracy: Vec<f64>,
    /// Device-wise accuracy, keyed by device id, only for devices present in the test set.
    pub device_accuracy: BTreeMap<String, DeviceScore>,
    /// Confusion matrix, rows = true class, columns = predicted class, `labels::CLASSES` order.
    pub confusion: Vec<Vec<u64>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceScore {
    pub clips: usize,
    pub accuracy: f64,
    /// Mean of the class-wise accuracies within this device.
    pub macro_accuracy: f64,
}

/// One epoch of a training curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub lr: f64,
    pub train_loss: f64,
    pub train_accuracy: f64,
    /// Loss and accuracy on the held-out set, when the recipe asks for per-epoch validation.
    pub val_loss: Option<f64>,
    pub val_accuracy: Option<f64>,
}

/// Everything a report shows about one run. Produced by the runner, rendered by `report`;
/// it must hold only deterministic values (no wall-clock times) so the report is reproducible.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub recipe_id: String,
    pub title: String,
    /// Full citation of the technical report the recipe reproduces.
    pub citation: String,
    pub profile: String,
    /// What the profile changes relative to the report (shown next to every reproduced figure).
    pub profile_note: String,
    pub identity: RunIdentity,
    pub stages: Vec<StageRecord>,
    pub systems: Vec<SystemRecord>,
    pub published: Vec<PublishedRow>,
    /// Published complexity figures recomputed from the architecture each row describes.
    pub complexity_checks: Vec<ComplexityCheck>,
    pub findings: Vec<Finding>,
    /// The effect of each method the report credits, over the training seeds this run ran.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub effects: Vec<EffectRecord>,
    /// The recipe exactly as read.
    pub recipe_text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunIdentity {
    /// Hash of everything below; names the run.
    pub run_hash: String,
    /// SHA-256 of the normalised recipe.
    pub recipe_hash: String,
    /// Manifest hash of every dataset the run read, keyed by dataset name.
    pub data: BTreeMap<String, String>,
    pub code_version: String,
    /// The front end with its resampler: the fingerprint naming every parameter of the
    /// features (`Frontend::fingerprint`).
    #[serde(default)]
    pub frontend: String,
    /// Numeric platform: libtorch version, threads, CPU capability, architecture, OS.
    pub platform: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageRecord {
    pub id: String,
    pub kind: String,
    /// Content hash identifying the stage's inputs (its cache key).
    pub hash: String,
    /// Upstream stage ids.
    pub needs: Vec<String>,
    /// SHA-256 of each output artefact, keyed by file name.
    pub outputs: BTreeMap<String, String>,
}

/// One evaluated system (a trained or compressed model).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemRecord {
    /// The stage id that produced it.
    pub id: String,
    pub label: String,
    /// Model description, e.g. `tfsepnet23 C=12 AdaResNorm`.
    pub model: String,
    /// What training did: augmentations, distillation, epochs.
    pub training: String,
    /// `fp32` or `int8`.
    pub precision: Precision,
    pub complexity: Complexity,
    pub evaluation: Evaluation,
    /// Per-epoch curve; empty for systems not trained in their own stage (e.g. quantized).
    pub curve: Vec<EpochLog>,
    pub notes: Vec<String>,
    /// The named training split (DCASE2024 `split5` ... `split100`) it was trained on; none
    /// for the profile's whole training split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<String>,
    /// What structured pruning did, for a prune stage's system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pruning: Option<PruningRecord>,
    /// What INT8 quantization and its tolerance tuning did, for a quantize stage's system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization: Option<QuantizationRecord>,
}

impl SystemRecord {
    /// Parameter memory in bytes as deployed: the quantization record's count at mixed
    /// precision where tuning left layers in float, else every parameter at `precision`.
    pub fn param_bytes(&self) -> u64 {
        match &self.quantization {
            Some(q) => q.parameter_bytes,
            None => self.complexity.param_bytes(self.precision.bits()),
        }
    }
}

/// A quantize stage's INT8 model: calibration, tolerance tuning, and how its integer execution
/// compares with the simulated one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuantizationRecord {
    /// The stage whose model was quantized.
    pub from: String,
    /// `min_max` or `histogram`.
    pub observer: String,
    pub calibration_clips: usize,
    /// Activation points (each with its own grid) and INT8 layers (convs and linear layers).
    pub points: usize,
    pub int8_layers: usize,
    /// Macro accuracy on the tuning set (the test split) of the fp32 model, of the INT8 model
    /// with every point quantized, and of the final model; all INT8 figures from the integer
    /// engine.
    pub fp32_accuracy: f64,
    pub int8_accuracy: f64,
    pub final_accuracy: f64,
    /// The largest accepted loss (absolute, a fraction).
    pub tolerance: f64,
    pub accepted: bool,
    /// The points left in float, most sensitive first, with the accuracy after each fallback.
    pub fallbacks: Vec<FallbackRecord>,
    /// Parameter memory at the final precisions (INT8 layers one byte per parameter, float
    /// layers four).
    pub parameter_bytes: u64,
    /// Fraction of test clips whose integer-engine prediction equals the simulated
    /// (fake-quant) model's.
    pub simulated_agreement: f64,
}

impl QuantizationRecord {
    /// What the report says of the model: the verdict, the layers left in float, the memory.
    pub fn notes(&self) -> Vec<String> {
        let loss = self.fp32_accuracy - self.final_accuracy;
        let mut notes =
            vec![format!(
            "INT8 {} on the integer engine: macro accuracy {:.2}% vs {:.2}% in fp32 (loss {:.2} \
             points; tolerance {:.2})",
            if self.accepted { "accepted" } else { "REJECTED" },
            100.0 * self.final_accuracy,
            100.0 * self.fp32_accuracy,
            100.0 * loss,
            100.0 * self.tolerance
        )];
        if !self.fallbacks.is_empty() {
            let names: Vec<String> = self
                .fallbacks
                .iter()
                .map(|f| format!("`{}` ({})", f.point, f.op))
                .collect();
            notes.push(format!(
                "tolerance tuning: fully INT8 {:.2}%; {} layer(s) left in float, most sensitive \
                 first: {}",
                100.0 * self.int8_accuracy,
                names.len(),
                names.join(", ")
            ));
        }
        notes.push(format!(
            "parameter memory {} bytes at the deployed precisions ({} the 128 kB limit); \
             integer-engine predictions equal the simulated model's on {:.2}% of test clips",
            self.parameter_bytes,
            if self.parameter_bytes <= LIMIT_PARAM_BYTES {
                "within"
            } else {
                "OVER"
            },
            100.0 * self.simulated_agreement
        ));
        notes
    }
}

/// One layer tolerance tuning left in float.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FallbackRecord {
    pub point: String,
    pub op: String,
    /// Measured sensitivity: reduction of the mean squared logit error against fp32 when this
    /// point alone stays in float.
    pub sensitivity: f64,
    /// Macro accuracy after this fallback.
    pub accuracy: f64,
}

/// A prune stage's network before and after pruning (`kind: prune`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruningRecord {
    /// The stage whose model was pruned.
    pub from: String,
    /// The architecture's explicit width list before and after.
    pub widths_before: Vec<i64>,
    pub widths_after: Vec<i64>,
    /// Counted at the features' input shape (`compress::count`).
    pub params_before: u64,
    pub params_after: u64,
    pub macs_before: u64,
    pub macs_after: u64,
}

/// The numeric precision a system is deployed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    Fp32,
    Fp16,
    Int8,
}

impl Precision {
    /// Bits per parameter.
    pub fn bits(self) -> u32 {
        match self {
            Precision::Fp32 => 32,
            Precision::Fp16 => 16,
            Precision::Int8 => 8,
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::Fp32 => "fp32",
            Precision::Fp16 => "fp16",
            Precision::Int8 => "int8",
        })
    }
}

/// One row of a table the report published, transcribed in the recipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublishedRow {
    /// e.g. `Table 3`.
    pub table: String,
    pub label: String,
    /// Published values as printed, by column (`crate::columns` says what each means).
    pub values: BTreeMap<PublishedColumn, f64>,
    /// The system id that reproduces this row in this profile, if any.
    pub reproduced_by: Option<String>,
    /// The only profile whose run reproduces the row, when the recipe restricts it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The training subset the row's figures were obtained on (a table printed one row per
    /// subset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<TrainSplit>,
    /// How the row prints its accuracies (%, or fractions).
    #[serde(default, skip_serializing_if = "AccuracyUnit::is_percent")]
    pub accuracy_unit: AccuracyUnit,
}

/// A published complexity figure against our count of the architecture the row describes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComplexityCheck {
    pub label: String,
    pub model: String,
    pub published_params_k: Option<f64>,
    pub published_macs_m: Option<f64>,
    /// None when the architecture is not available to count.
    pub params: Option<u64>,
    pub macs: Option<u64>,
    /// `match`, `mismatch` or `not counted: <why>`.
    pub status: String,
}

/// A method's effect: `with` minus `without` in accuracy points, paired by training seed and
/// split (`eval::effects`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EffectRecord {
    pub method: String,
    /// Row labels of the stage with the method and the one without.
    pub with: String,
    pub without: String,
    /// What the report itself claims, as the recipe transcribes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<String>,
    pub pairs: Vec<EffectPair>,
    /// Mean paired difference, its standard deviation (two runs or more) and the 95 %
    /// t-interval of the mean.
    pub mean: Option<f64>,
    pub sd: Option<f64>,
    pub ci95: Option<[f64; 2]>,
    pub verdict: Verdict,
    /// The sentence the report prints.
    pub statement: String,
}

/// One pair of runs an effect is measured on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EffectPair {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<String>,
    pub seed: usize,
    /// Accuracy in % with and without the method.
    pub with: f64,
    pub without: f64,
}

/// What an effect's spread supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Improves,
    Hurts,
    NotEstablished,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// `contradiction` (a published figure our recomputation refutes) or `note`.
    pub kind: String,
    pub text: String,
}

/// Wall-clock record of one stage in one invocation. Never part of the checksummed report:
/// it differs between runs by nature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageTiming {
    /// Stage kind (`train`, `evaluate`, ...): ids repeat across kinds.
    pub kind: String,
    pub id: String,
    /// Seconds spent in this invocation (near zero when cached).
    pub seconds: f64,
    /// True when the stage's outputs came from the cache.
    pub cached: bool,
}
