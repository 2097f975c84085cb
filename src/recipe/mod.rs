//! Recipes: loading, validation, and resolution of one profile into a runnable [`Plan`].

mod locate;
mod published;
pub mod schema;

pub use locate::locate;
pub use schema::*;

use crate::error::{Error, IoContext, Result};
use crate::labels::DEVICES;
use crate::models::ModelConfig;
use serde_norway::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

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
}

impl PlannedStage {
    pub fn id(&self) -> &str {
        match self {
            PlannedStage::Train(s) => &s.id,
            PlannedStage::Quantize(s) => &s.id,
        }
    }
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
    pub model: ModelConfig,
    pub training: TrainingSpec,
    pub distill: Option<DistillSpec>,
    pub seed: u64,
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
    /// Draws the calibration clips.
    pub seed: u64,
}

/// Reads and validates `path`, then resolves `profile`.
pub fn load(path: &Path, profile: &str) -> Result<Plan> {
    let text = std::fs::read_to_string(path).at(path)?;
    let recipe: Recipe = parse(path, &text)?;
    let recipe_hash = hex::encode(Sha256::digest(
        serde_json::to_vec(&recipe).map_err(|e| Error::msg(e.to_string()))?,
    ));
    let ctx = Ctx { path, text: &text };
    validate(&ctx, &recipe)?;
    let Some(spec) = recipe.profiles.get(profile).cloned() else {
        let known: Vec<_> = recipe.profiles.keys().cloned().collect();
        return Err(Error::input(
            path,
            locate(&text, &["profiles"]),
            Some("profiles"),
            format!(
                "the recipe has no profile `{profile}` (it has: {})",
                known.join(", ")
            ),
        ));
    };
    let resolved = apply_overrides(&ctx, &recipe, profile, &spec)?;
    validate(&ctx, &resolved)?;
    let frontend = resolved
        .frontend
        .parse()
        .map_err(|e: Error| ctx.err(&["frontend"], e.to_string()))?;
    let stages = plan_stages(&ctx, &resolved, profile, &spec, frontend)?;
    let resampler = resolved.resampler;
    Ok(Plan {
        published_models: recipe.models.clone(),
        recipe: resolved,
        path: path.to_path_buf(),
        text: text.clone(),
        recipe_hash,
        profile: profile.to_string(),
        profile_spec: spec,
        frontend,
        resampler,
        stages,
    })
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
}

impl Ctx<'_> {
    fn err(&self, field: &[&str], msg: impl Into<String>) -> Error {
        Error::input(
            self.path,
            locate(self.text, field),
            Some(&field.join(".")),
            msg,
        )
    }
}

fn validate(ctx: &Ctx, r: &Recipe) -> Result<()> {
    if r.id.is_empty()
        || !r
            .id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(ctx.err(
            &["id"],
            "must be non-empty and use only letters, digits, `_` and `-`",
        ));
    }
    for (key, m) in &r.models {
        m.check()
            .map_err(|(field, msg)| ctx.err(&["models", key.as_str(), field], msg))?;
    }
    validate_training(ctx, &["training"], &r.training)?;
    let mut seen: Vec<&str> = Vec::new();
    for (i, s) in r.stages.iter().enumerate() {
        let idx = i.to_string();
        if seen.contains(&s.id()) {
            return Err(ctx.err(
                &["stages", &idx, "id"],
                format!("duplicate stage id `{}`", s.id()),
            ));
        }
        match s {
            StageSpec::Train(t) => {
                if !r.models.contains_key(&t.model) {
                    return Err(ctx.err(
                        &["stages", &idx, "model"],
                        format!(
                            "no model `{}` in `models` (it has: {})",
                            t.model,
                            keys(&r.models)
                        ),
                    ));
                }
                stage_training(ctx, r, i)?;
                if let Some(init) = &t.init {
                    earlier_train_stage(r, i, &init.from)
                        .map_err(|m| ctx.err(&["stages", &idx, "init", "from"], m))?;
                }
                if t.select == Select::Best {
                    for (name, p) in &r.profiles {
                        let runs = p.stages.iter().any(|s| s == &t.id);
                        if runs && p.data.validation_split.is_none() {
                            return Err(ctx.err(
                                &["stages", &idx, "select"],
                                format!(
                                    "`select: best` needs a validation split: profile `{name}` runs `{}` but its data names no `validation_split`",
                                    t.id
                                ),
                            ));
                        }
                    }
                }
                if let Some(d) = &t.distill {
                    let at = ["stages", idx.as_str(), "distill", "teacher"];
                    for teacher in d.teacher.stages() {
                        earlier_train_stage(r, i, teacher).map_err(|m| ctx.err(&at, m))?;
                    }
                    match &d.teacher {
                        TeacherSpec::Ensemble { stages } if stages.len() < 2 => {
                            return Err(ctx.err(&at, "an ensemble needs at least two stages"));
                        }
                        TeacherSpec::Logits { path, sha256 } => {
                            crate::data::check_relative_path(path).map_err(|m| ctx.err(&at, m))?;
                            if sha256.len() != 64 || !sha256.chars().all(|c| c.is_ascii_hexdigit())
                            {
                                return Err(ctx.err(
                                    &at,
                                    "`sha256` must be the file's 64 hex digits (`ascrepro logits` prints it)",
                                ));
                            }
                        }
                        _ => {}
                    }
                    if d.temperature <= 0.0 || d.lambda < 0.0 {
                        return Err(ctx.err(
                            &["stages", &idx, "distill"],
                            "temperature must be > 0 and lambda >= 0",
                        ));
                    }
                    if d.form == KdForm::Weighted && d.lambda > 1.0 {
                        return Err(ctx.err(
                            &["stages", &idx, "distill", "lambda"],
                            "the weighted form needs 0 <= lambda <= 1",
                        ));
                    }
                }
            }
            StageSpec::Quantize(q) => {
                earlier_train_stage(r, i, &q.from)
                    .map_err(|m| ctx.err(&["stages", &idx, "from"], m))?;
                if !(0.0..=1.0).contains(&q.tolerance) {
                    return Err(ctx.err(
                        &["stages", &idx, "tolerance"],
                        "must be a fraction in [0, 1]",
                    ));
                }
            }
        }
        seen.push(s.id());
    }
    published::validate(ctx, r)?;
    for (name, p) in &r.profiles {
        for (j, s) in p.stages.iter().enumerate() {
            if !r.stages.iter().any(|t| t.id() == s) {
                return Err(ctx.err(
                    &["profiles", name, "stages", &j.to_string()],
                    format!("no stage `{s}`"),
                ));
            }
        }
        validate_data(ctx, name, &p.data)?;
    }
    Ok(())
}

/// Checks that `source` names a train stage listed before stage `i`.
fn earlier_train_stage(r: &Recipe, i: usize, source: &str) -> std::result::Result<(), String> {
    match r.stages.iter().position(|t| t.id() == source) {
        Some(t) if t < i && matches!(r.stages[t], StageSpec::Train(_)) => Ok(()),
        Some(_) => Err(format!(
            "`{source}` must be a train stage listed before `{}`",
            r.stages[i].id()
        )),
        None => Err(format!("no stage `{source}`")),
    }
}

fn keys<V>(m: &std::collections::BTreeMap<String, V>) -> String {
    m.keys().cloned().collect::<Vec<_>>().join(", ")
}

fn validate_data(ctx: &Ctx, profile: &str, d: &DataSpec) -> Result<()> {
    let at = |f: &str| {
        vec![
            "profiles".to_string(),
            profile.to_string(),
            "data".to_string(),
            f.to_string(),
        ]
    };
    let err = |f: &str, msg: String| {
        let path = at(f);
        let refs: Vec<&str> = path.iter().map(String::as_str).collect();
        ctx.err(&refs, msg)
    };
    let paths = [
        ("root", &d.root),
        ("manifest", &d.manifest),
        ("train_split", &d.train_split),
        ("test_split", &d.test_split),
        ("validation_split", &d.validation_split),
        ("irs_root", &d.irs_root),
        ("irs_manifest", &d.irs_manifest),
    ];
    for (field, value) in paths {
        if let Some(v) = value {
            crate::data::check_relative_path(v).map_err(|m| err(field, m))?;
        }
    }
    match d.kind {
        DataKind::Tau2022 => {
            for (field, value) in [
                ("root", &d.root),
                ("manifest", &d.manifest),
                ("train_split", &d.train_split),
                ("test_split", &d.test_split),
            ] {
                if value.is_none() {
                    return Err(err(field, format!("tau2022 data needs `{field}`")));
                }
            }
            if d.synth.is_some() {
                return Err(err("synth", "only synth data takes `synth`".into()));
            }
        }
        DataKind::Synth => {
            let Some(cfg) = &d.synth else {
                return Err(err("synth", "synth data needs a `synth` block".into()));
            };
            if let Err((field, msg)) = cfg.check() {
                let path = at("synth");
                let mut refs: Vec<&str> = path.iter().map(String::as_str).collect();
                refs.push(field);
                return Err(ctx.err(&refs, msg));
            }
        }
    }
    Ok(())
}

fn validate_training(ctx: &Ctx, at: &[&str], t: &TrainingSpec) -> Result<()> {
    let field = |f: &str| -> Vec<String> {
        at.iter()
            .map(|s| s.to_string())
            .chain([f.to_string()])
            .collect()
    };
    let err = |f: &str, msg: &str| {
        let p = field(f);
        let refs: Vec<&str> = p.iter().map(String::as_str).collect();
        ctx.err(&refs, msg.to_string())
    };
    if t.epochs == 0 {
        return Err(err("epochs", "must be at least 1"));
    }
    if t.batch_size == 0 {
        return Err(err("batch_size", "must be at least 1"));
    }
    let lr = t.optimizer.lr();
    if !positive(lr) {
        return Err(err("optimizer", "lr must be > 0"));
    }
    match t.schedule {
        ScheduleSpec::WarmupCosine { warmup_epochs } if warmup_epochs >= t.epochs => {
            return Err(err(
                "schedule",
                &format!(
                    "warmup_epochs ({warmup_epochs}) must be fewer than the epochs ({})",
                    t.epochs
                ),
            ));
        }
        ScheduleSpec::Sgdr { t0, t_mult } if t0 == 0 || t_mult == 0 => {
            return Err(err("schedule", "sgdr needs `t0` >= 1 and `t_mult` >= 1"));
        }
        _ => {}
    }
    if let Some(m) = &t.mixup {
        if !positive(m.alpha) {
            return Err(err("mixup", "alpha must be > 0"));
        }
    }
    if let Some(m) = &t.freq_mixstyle {
        if !positive(m.alpha) || !(0.0..=1.0).contains(&m.p) {
            return Err(err("freq_mixstyle", "needs alpha > 0 and 0 <= p <= 1"));
        }
    }
    if let Some(d) = &t.device_simulation {
        if d.irs == 0 || d.clips_per_ir == 0 {
            return Err(err(
                "device_simulation",
                "irs and clips_per_ir must be at least 1",
            ));
        }
    }
    validate_augmentations(ctx, at, t)
}

/// The augmentation blocks added with the waveform path; errors point at the offending key.
fn validate_augmentations(ctx: &Ctx, at: &[&str], t: &TrainingSpec) -> Result<()> {
    let err = |sub: &[&str], msg: String| {
        let p: Vec<&str> = at.iter().chain(sub).copied().collect();
        ctx.err(&p, msg)
    };
    if let Some(d) = &t.dir_augmentation {
        if !(0.0..=1.0).contains(&d.p) {
            return Err(err(
                &["dir_augmentation", "p"],
                format!("must be a probability in [0, 1], not {}", d.p),
            ));
        }
        if d.irs == Some(0) {
            return Err(err(
                &["dir_augmentation", "irs"],
                "must be at least 1".into(),
            ));
        }
    }
    if let Some(e) = &t.energy_ir {
        if let Err((row, msg)) = crate::audio::augment::EnergyTable::new(&e.levels) {
            return Err(err(&["energy_ir", "levels", &row.to_string()], msg));
        }
        if e.devices.is_empty() {
            return Err(err(
                &["energy_ir", "devices"],
                "name at least one device".into(),
            ));
        }
        for (i, d) in e.devices.iter().enumerate() {
            if !DEVICES.contains(&d.as_str()) {
                return Err(err(
                    &["energy_ir", "devices", &i.to_string()],
                    format!("unknown device `{d}` (use a, b, c, s1–s6)"),
                ));
            }
        }
        if e.irs == Some(0) {
            return Err(err(&["energy_ir", "irs"], "must be at least 1".into()));
        }
    }
    if let Some(r) = &t.time_roll {
        match (r.max_shift_s, r.max_frames) {
            (Some(s), None) if s.is_finite() && s > 0.0 => {}
            (Some(s), None) => {
                return Err(err(
                    &["time_roll", "max_shift_s"],
                    format!("must be a positive number of seconds, not {s}"),
                ))
            }
            (None, Some(0)) => {
                return Err(err(
                    &["time_roll", "max_frames"],
                    "must be at least 1".into(),
                ))
            }
            (None, Some(_)) => {}
            _ => {
                return Err(err(
                    &["time_roll"],
                    "give exactly one of `max_shift_s` (waveform) and `max_frames` (spectrogram)"
                        .into(),
                ))
            }
        }
    }
    if let Some(a) = &t.spec_augment {
        let freq = a.freq_masks > 0 && a.freq_width > 0;
        let time = a.time_masks > 0 && a.time_width > 0;
        if !freq && !time {
            return Err(err(
                &["spec_augment"],
                "masks nothing: give `freq_width` or `time_width` above 0 (with at least one mask)"
                    .into(),
            ));
        }
        if let Some(v) = a.value {
            if !v.is_finite() {
                return Err(err(
                    &["spec_augment", "value"],
                    format!("must be a finite number, not {v}"),
                ));
            }
        }
    }
    Ok(())
}

/// False for zero, negatives and NaN.
fn positive(x: f64) -> bool {
    x > 0.0
}

/// The training settings of stage `i`: the recipe's defaults with the stage's fields replacing them.
fn stage_training(ctx: &Ctx, r: &Recipe, i: usize) -> Result<TrainingSpec> {
    let idx = i.to_string();
    let StageSpec::Train(s) = &r.stages[i] else {
        return Ok(r.training.clone());
    };
    let Some(over) = &s.training else {
        return Ok(r.training.clone());
    };
    let mut base = serde_norway::to_value(&r.training).map_err(|e| Error::msg(e.to_string()))?;
    let Value::Mapping(over) = over else {
        return Err(ctx.err(
            &["stages", &idx, "training"],
            "must be a mapping of training fields",
        ));
    };
    for (k, v) in over {
        let key = k.as_str().unwrap_or_default().to_string();
        if let Value::Mapping(b) = &mut base {
            if !b.contains_key(key.as_str()) && !OPTIONAL_TRAINING_FIELDS.contains(&key.as_str()) {
                return Err(ctx.err(
                    &["stages", &idx, "training", &key],
                    format!("unknown training field `{key}`"),
                ));
            }
            b.insert(k.clone(), v.clone());
        }
    }
    let t: TrainingSpec = serde_norway::from_value(base)
        .map_err(|e| ctx.err(&["stages", &idx, "training"], e.to_string()))?;
    validate_training(ctx, &["stages", &idx, "training"], &t)?;
    Ok(t)
}

const OPTIONAL_TRAINING_FIELDS: [&str; 8] = [
    "mixup",
    "freq_mixstyle",
    "device_simulation",
    "dir_augmentation",
    "energy_ir",
    "time_roll",
    "spec_augment",
    "validate_every",
];

/// Fills in what a stage's training depends on beyond the recipe text, so the stage (and its
/// hash) states it: the SpecAugment mask value of the recipe's front end.
fn resolve_training(
    mut t: TrainingSpec,
    frontend: crate::audio::frontend::FrontendId,
) -> TrainingSpec {
    if let Some(a) = &mut t.spec_augment {
        a.value
            .get_or_insert(crate::audio::augment::specaugment::reference_mask_value(
                frontend,
            ));
    }
    t
}

/// Converts a recipe model entry into a typed model configuration.
fn model_config(ctx: &Ctx, key: &str, m: &ModelSpec) -> Result<ModelConfig> {
    ModelConfig::from_spec(m).map_err(|(field, msg)| ctx.err(&["models", key, field], msg))
}

/// Applies the profile's `set` overrides (dotted paths; a sequence element is addressed by its `id`).
fn apply_overrides(ctx: &Ctx, r: &Recipe, profile: &str, p: &ProfileSpec) -> Result<Recipe> {
    let mut v = serde_norway::to_value(r).map_err(|e| Error::msg(e.to_string()))?;
    for (path, value) in &p.set {
        let at = ["profiles", profile, "set", path.as_str()];
        let mut node = &mut v;
        let segs: Vec<&str> = path.split('.').collect();
        for (n, seg) in segs.iter().enumerate() {
            let last = n + 1 == segs.len();
            node = match node {
                Value::Mapping(m) => {
                    if !m.contains_key(*seg) {
                        if last {
                            m.insert(Value::String(seg.to_string()), Value::Null);
                        } else {
                            return Err(ctx.err(
                                &at,
                                format!("`{path}` does not name a recipe value (no `{seg}`)"),
                            ));
                        }
                    }
                    m.get_mut(*seg).expect("inserted above")
                }
                Value::Sequence(items) => {
                    let found = items
                        .iter_mut()
                        .find(|it| it.get("id").and_then(Value::as_str) == Some(seg));
                    match found {
                        Some(it) => it,
                        None => {
                            return Err(
                                ctx.err(&at, format!("`{path}`: no element with id `{seg}`"))
                            )
                        }
                    }
                }
                _ => return Err(ctx.err(&at, format!("`{path}` does not name a recipe value"))),
            };
        }
        *node = value.clone();
    }
    serde_norway::from_value(v).map_err(|e| {
        ctx.err(
            &["profiles", profile, "set"],
            format!("after overrides: {e}"),
        )
    })
}

fn plan_stages(
    ctx: &Ctx,
    r: &Recipe,
    profile: &str,
    p: &ProfileSpec,
    frontend: crate::audio::frontend::FrontendId,
) -> Result<Vec<PlannedStage>> {
    let mut out: Vec<PlannedStage> = Vec::new();
    for (j, id) in p.stages.iter().enumerate() {
        let at_j = j.to_string();
        let i = r
            .stages
            .iter()
            .position(|s| s.id() == id)
            .expect("validated");
        let s = &r.stages[i];
        for need in s.sources() {
            if !out.iter().any(|o| o.id() == need) {
                return Err(ctx.err(
                    &["profiles", profile, "stages", &at_j],
                    format!(
                        "stage `{id}` needs `{need}`, which this profile does not run before it"
                    ),
                ));
            }
        }
        out.push(match s {
            StageSpec::Train(t) => PlannedStage::Train(Box::new(TrainStage {
                id: t.id.clone(),
                label: t.label.clone(),
                model: model_config(ctx, &t.model, &r.models[&t.model])?,
                model_key: t.model.clone(),
                training: resolve_training(stage_training(ctx, r, i)?, frontend),
                distill: t.distill.clone(),
                init_from: t.init.as_ref().map(|i| i.from.clone()),
                init_classifier: t.init.as_ref().map(|i| i.classifier),
                select: t.select,
                seed: derive_seed(r.seed, &t.id),
            })),
            StageSpec::Quantize(q) => PlannedStage::Quantize(QuantizeStage {
                id: q.id.clone(),
                label: q.label.clone(),
                from: q.from.clone(),
                calibration_clips: q.calibration_clips,
                tolerance: q.tolerance,
                seed: derive_seed(r.seed, &q.id),
            }),
        });
    }
    Ok(out)
}

/// A stage's own seed: independent of the other stages, so adding a stage changes nothing else.
pub fn derive_seed(seed: u64, stage: &str) -> u64 {
    let h = Sha256::new()
        .chain_update(seed.to_le_bytes())
        .chain_update(stage.as_bytes())
        .finalize();
    u64::from_le_bytes(h[..8].try_into().expect("32-byte digest"))
}
