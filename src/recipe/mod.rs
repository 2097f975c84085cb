//! Recipes: loading, validation, and resolution of one profile into a runnable [`Plan`].

mod expand;
mod locate;
mod overrides;
mod prune;
mod published;
mod ranges;
pub mod resources;
pub mod schema;
mod stages;
mod training;
mod validate;
mod yaml;

pub use locate::locate;
pub use schema::*;

use crate::compress::observer::ObserverKind;
use crate::error::{Error, IoContext, Result};
use crate::models::ModelConfig;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use validate::validate;

/// A recipe resolved for one profile: overrides applied, references checked, models built.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The recipe with the profile's overrides applied.
    pub recipe: Recipe,
    /// Model entries as the report describes them (before overrides): what its tables count.
    pub published_models: std::collections::BTreeMap<String, ModelSpec>,
    pub path: PathBuf,
    /// The recipe file exactly as read.
    pub text: String,
    /// SHA-256 of the normalised recipe (all profiles, before overrides).
    pub recipe_hash: String,
    pub profile: String,
    pub profile_spec: ProfileSpec,
    pub frontend: crate::audio::frontend::FrontendId,
    pub resampler: crate::audio::resample::ResamplerId,
    pub stages: Vec<PlannedStage>,
}

#[derive(Debug, Clone)]
pub enum PlannedStage {
    Train(Box<TrainStage>),
    Quantize(QuantizeStage),
    Half(HalfStage),
    Pretrain(Box<PretrainStage>),
    Released(ReleasedStage),
    FinetuneDevices(Box<FinetuneDevicesStage>),
    Prune(Box<PruneStage>),
    Reparameterize(ReparameterizeStage),
}

impl PlannedStage {
    pub fn id(&self) -> &str {
        match self {
            PlannedStage::Train(s) => &s.id,
            PlannedStage::Quantize(s) => &s.id,
            PlannedStage::Half(s) => &s.id,
            PlannedStage::Pretrain(s) => &s.id,
            PlannedStage::Released(s) => &s.id,
            PlannedStage::FinetuneDevices(s) => &s.id,
            PlannedStage::Prune(s) => &s.id,
            PlannedStage::Reparameterize(s) => &s.id,
        }
    }
}

/// A released-checkpoint stage as planned; serialised, its own part of its identity.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReleasedStage {
    #[serde(skip)]
    pub id: String,
    #[serde(skip)]
    pub label: String,
    pub model: ModelConfig,
    /// Relative to the data root.
    pub checkpoint: FileSpec,
    /// Per-device checkpoints, by device id (none: a single model); each is its own node.
    #[serde(skip)]
    pub devices: std::collections::BTreeMap<String, FileSpec>,
}

/// A pre-training stage as planned; serialised, its own part of its identity (as
/// [`TrainStage`]). The model's class count is the label set's, set when it trains.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PretrainStage {
    #[serde(skip)]
    pub id: String,
    #[serde(skip)]
    pub label: String,
    pub model: ModelConfig,
    pub training: TrainingSpec,
    pub seed: u64,
    /// The profile's pre-training data.
    pub data: PretrainDataSpec,
}

/// A train stage as planned. Serialised, it is the stage's own part of its identity: names
/// and labels are left out (renaming a row retrains nothing; the id reaches it through `seed`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct TrainStage {
    #[serde(skip)]
    pub id: String,
    #[serde(skip)]
    pub label: String,
    #[serde(skip)]
    pub model_key: String,
    /// The stage whose weights it starts from (its identity enters through that stage's).
    #[serde(skip)]
    pub init_from: Option<String>,
    /// Whether the classifier is taken from `init_from`.
    pub init_classifier: Option<bool>,
    pub select: Select,
    /// The named training split it trains on (none: the profile's whole training split).
    pub split: Option<String>,
    /// That split's CSV, relative to the dataset root.
    pub split_csv: Option<String>,
    pub model: ModelConfig,
    /// Whether it trains the architecture of the model it starts from rather than `model`
    /// (a fine-tuning stage after a prune stage, whose widths are known once it has run).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub model_of_init: bool,
    pub training: TrainingSpec,
    pub distill: Option<DistillSpec>,
    pub seed: u64,
}

/// A prune stage as planned; serialised, its own part of its identity (as [`TrainStage`]).
#[derive(Debug, Clone, serde::Serialize)]
pub struct PruneStage {
    #[serde(skip)]
    pub id: String,
    #[serde(skip)]
    pub label: String,
    /// The stage whose model is pruned (its identity enters through that stage's).
    #[serde(skip)]
    pub from: String,
    pub target: PruneTargetSpec,
    pub importance: Importance,
    pub training: TrainingSpec,
    /// AGP steps: one at the start of each of the first `prune_epochs` epochs.
    pub prune_epochs: usize,
    pub distill: Option<DistillSpec>,
    pub seed: u64,
}

/// A finetune_devices stage as planned: the general model's stage and one model per device.
#[derive(Debug, Clone)]
pub struct FinetuneDevicesStage {
    pub id: String,
    pub label: String,
    /// The train stage every device model starts from.
    pub from: String,
    /// The train stage whose model classifies the clips of every unlisted device (`from`
    /// unless the recipe names another).
    pub general: String,
    /// In the recipe's order.
    pub models: Vec<DeviceModel>,
}

/// One device's model of a finetune_devices stage.
#[derive(Debug, Clone)]
pub struct DeviceModel {
    pub device: String,
    /// How it is trained: the general model's architecture and weights (classifier included),
    /// the stage's training settings, a seed of its own (stage and device), the last epoch kept.
    pub train: TrainStage,
}

/// A quantize stage as planned; serialised, its own part of its identity (as [`TrainStage`]).
#[derive(Debug, Clone, serde::Serialize)]
pub struct QuantizeStage {
    #[serde(skip)]
    pub id: String,
    #[serde(skip)]
    pub label: String,
    #[serde(skip)]
    pub from: String,
    pub calibration_clips: usize,
    pub tolerance: f64,
    pub observer: ObserverKind,
    /// Draws the calibration clips.
    pub seed: u64,
}

/// A half-precision stage as planned: nothing of its own beyond its source, whose identity the
/// stage hash includes.
#[derive(Debug, Clone)]
pub struct HalfStage {
    pub id: String,
    pub label: String,
    pub from: String,
}

/// A re-parameterisation stage as planned: nothing of its own beyond its source, whose identity
/// the stage hash includes.
#[derive(Debug, Clone)]
pub struct ReparameterizeStage {
    pub id: String,
    pub label: String,
    pub from: String,
}

/// Reads and validates `path`, then resolves `profile`.
pub fn load(path: &Path, profile: &str) -> Result<Plan> {
    use std::io::Read;
    // One byte past the limit is enough for the size check to refuse it (a device, a huge file).
    let mut bytes = Vec::new();
    crate::fsio::open(path)?
        .take(yaml::MAX_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .at(path)?;
    yaml::check_size(path, bytes.len())?;
    plan_str(utf8(path, &bytes)?, path, profile)
}

/// Recipe text from bytes; invalid UTF-8 is named by line.
fn utf8<'a>(file: &Path, bytes: &'a [u8]) -> Result<&'a str> {
    std::str::from_utf8(bytes).map_err(|e| {
        let at = e.valid_up_to();
        let line = 1 + bytes[..at].iter().filter(|&&b| b == b'\n').count();
        Error::input(
            file,
            Some(line),
            None,
            format!("is not UTF-8 text (byte {at}); a recipe is UTF-8 YAML"),
        )
    })
}

/// [`parse_str`] of bytes: invalid UTF-8 is an error naming the line.
pub fn parse_bytes(bytes: &[u8], file: &Path) -> Result<Recipe> {
    parse_str(utf8(file, bytes)?, file)
}

/// Parses and validates recipe text (`file` names it in errors; nothing is read), and resolves
/// every profile as [`load`] would: `Ok` means `load` accepts the recipe with any of its
/// profiles. Pure; any text gives a value or an error, never a panic.
pub fn parse_str(text: &str, file: &Path) -> Result<Recipe> {
    let recipe = read(file, text)?;
    for profile in recipe.profiles.keys() {
        resolve(file, text, &recipe, profile)?;
    }
    Ok(recipe)
}

/// [`load`] of recipe text named `file`.
pub fn plan_str(text: &str, file: &Path, profile: &str) -> Result<Plan> {
    let recipe = read(file, text)?;
    let recipe_hash = hex::encode(Sha256::digest(
        serde_json::to_vec(&recipe).map_err(|e| Error::msg(e.to_string()))?,
    ));
    let (resolved, spec, frontend, stages) = resolve(file, text, &recipe, profile)?;
    let resampler = resolved.resampler;
    Ok(Plan {
        published_models: recipe.models.clone(),
        recipe: resolved,
        path: file.to_path_buf(),
        text: text.to_string(),
        recipe_hash,
        profile: profile.to_string(),
        profile_spec: spec,
        frontend,
        resampler,
        stages,
    })
}

/// The recipe in `text`, checked: its YAML (repeated keys, size), its schema, its values.
fn read(file: &Path, text: &str) -> Result<Recipe> {
    yaml::check(file, text)?;
    let recipe = parse(file, text)?;
    validate(&Ctx::new(file, text), &recipe)?;
    Ok(recipe)
}

type Resolved = (
    Recipe,
    ProfileSpec,
    crate::audio::frontend::FrontendId,
    Vec<PlannedStage>,
);

/// `recipe` (valid) with `profile`'s overrides applied, validated again, and its stages planned;
/// errors the overrides cause point at them.
fn resolve(file: &Path, text: &str, recipe: &Recipe, profile: &str) -> Result<Resolved> {
    let ctx = Ctx::new(file, text);
    let Some(spec) = recipe.profiles.get(profile).cloned() else {
        let known: Vec<_> = recipe.profiles.keys().cloned().collect();
        return Err(ctx.err(
            &["profiles"],
            format!(
                "the recipe has no profile `{profile}` (it has: {})",
                known.join(", ")
            ),
        ));
    };
    let (resolved, applied) = overrides::apply(&ctx, recipe, profile, &spec)?;
    let ctx = Ctx {
        overrides: &applied,
        ..ctx
    };
    validate(&ctx, &resolved)?;
    let frontend = resolved
        .frontend
        .parse()
        .map_err(|e: Error| ctx.err(&["frontend"], e.to_string()))?;
    let stages = expand::plan_stages(&ctx, &resolved, profile, &spec, frontend)?;
    Ok((resolved, spec, frontend, stages))
}

fn parse(path: &Path, text: &str) -> Result<Recipe> {
    serde_norway::from_str(text).map_err(|e| {
        // serde_norway appends " at line N column M"; the location is shown by us instead.
        let msg = e.to_string();
        let msg = match msg.find(" at line ") {
            Some(i) => msg[..i].to_string(),
            None => msg,
        };
        match nested_field(&msg) {
            // An error inside a tagged variant (`schema::variant`): its own path follows the
            // variant's, and the line is that of the joined path.
            Some((field, rest)) => {
                let segments: Vec<&str> = field
                    .split(['.', '[', ']'])
                    .filter(|s| !s.is_empty())
                    .collect();
                let line = locate(text, &segments).or(e.location().map(|l| l.line()));
                Error::input(path, line, None, format!("{field}: {rest}"))
            }
            None => Error::input(path, e.location().map(|l| l.line()), None, msg),
        }
    })
}

/// `stages[1].distill.form: unknown variant ...` -> (`stages[1].distill.form`, the rest), for
/// errors inside a stage (`schema::stages_from_yaml`), whose serde location is not the field's,
/// and inside a published row, whose unknown column is named by its own path
/// (`published[3].values.metro_staton`).
fn nested_field(msg: &str) -> Option<(String, &str)> {
    let (path, rest) = msg.split_once(": ")?;
    let ok = (path.starts_with(&format!("{}[", schema::STAGES)) || path.starts_with("published["))
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_[].".contains(c));
    if !ok {
        return None;
    }
    // An unknown field or column is named by its own path, so the line is its own.
    let unknown = ["unknown field `", "unknown column `"]
        .iter()
        .find_map(|prefix| rest.strip_prefix(prefix))
        .and_then(|r| r.split_once('`'))
        .map(|(name, _)| name);
    Some(match unknown {
        Some(name) => (format!("{path}.{name}"), rest),
        None => (path.to_string(), rest),
    })
}

struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
    /// The profile's `set` overrides applied to the recipe being checked (none: as written).
    overrides: &'a [overrides::Override],
}

impl<'a> Ctx<'a> {
    fn new(path: &'a Path, text: &'a str) -> Self {
        Ctx {
            path,
            text,
            overrides: &[],
        }
    }

    /// An error at `field`: its line, or that of the override that set it.
    fn err(&self, field: &[&str], msg: impl Into<String>) -> Error {
        let msg = msg.into();
        if let Some(o) = overrides::cause(self.overrides, field) {
            return o.err(self, &field.join("."), msg);
        }
        Error::input(
            self.path,
            locate(self.text, field),
            Some(&field.join(".")),
            msg,
        )
    }

    /// The range check every numeric field goes through.
    fn check<T: ranges::Num>(&self, field: &[&str], v: T, range: ranges::Range) -> Result<()> {
        ranges::check(v, range).map_err(|m| self.err(field, m))
    }
}

/// The kind of the recipe's stage `id`.
fn stage_kind(r: &Recipe, id: &str) -> Option<StageKind> {
    r.stages.iter().find(|s| s.id() == id).map(StageSpec::kind)
}

/// A stage's own seed: independent of the other stages, so adding a stage changes nothing else.
pub fn derive_seed(seed: u64, stage: &str) -> u64 {
    let h = Sha256::new()
        .chain_update(seed.to_le_bytes())
        .chain_update(stage.as_bytes())
        .finalize();
    u64::from_le_bytes(h[..8].try_into().expect("32-byte digest"))
}
