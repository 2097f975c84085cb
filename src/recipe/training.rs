//! Validation of training settings (the recipe's, a stage's, a split's), and the merge of a
//! stage's `training` fields over the recipe's.

use super::ranges::{self, Num, Range};
use super::schema::*;
use super::Ctx;
use crate::error::{Error, Result};
use ascrepro_results::labels::is_device_id;
use serde_norway::Value;

/// The fields below one path of the recipe, checked against their ranges.
struct Fields<'a> {
    ctx: &'a Ctx<'a>,
    at: &'a [&'a str],
}

impl Fields<'_> {
    fn err(&self, sub: &[&str], msg: String) -> Error {
        let p: Vec<&str> = self.at.iter().chain(sub).copied().collect();
        self.ctx.err(&p, msg)
    }

    fn check<T: Num>(&self, sub: &[&str], v: T, r: Range) -> Result<()> {
        let p: Vec<&str> = self.at.iter().chain(sub).copied().collect();
        self.ctx.check(&p, v, r)
    }
}

/// Checks `t`, found at `at` in the recipe: every number in its range, every block consistent.
pub(super) fn validate_training(ctx: &Ctx, at: &[&str], t: &TrainingSpec) -> Result<()> {
    let f = Fields { ctx, at };
    f.check(&["epochs"], t.epochs, ranges::EPOCHS)?;
    f.check(&["batch_size"], t.batch_size, ranges::BATCH_SIZE)?;
    f.check(
        &["validate_every"],
        t.validate_every,
        ranges::VALIDATE_EVERY,
    )?;
    let (OptimizerSpec::Adam {
        lr,
        betas,
        weight_decay,
    }
    | OptimizerSpec::AdamW {
        lr,
        betas,
        weight_decay,
    }) = &t.optimizer;
    f.check(&["optimizer", "lr"], *lr, ranges::LR)?;
    for (i, b) in betas.iter().enumerate() {
        f.check(&["optimizer", "betas", &i.to_string()], *b, ranges::BETA)?;
    }
    f.check(
        &["optimizer", "weight_decay"],
        *weight_decay,
        ranges::WEIGHT_DECAY,
    )?;
    match t.schedule {
        ScheduleSpec::WarmupCosine { warmup_epochs } => {
            ranges::check(warmup_epochs, ranges::warmup(t.epochs)).map_err(|m| {
                f.err(
                    &["schedule", "warmup_epochs"],
                    format!(
                        "{m} (the warm-up must leave at least one of the {} epochs)",
                        t.epochs
                    ),
                )
            })?
        }
        ScheduleSpec::Sgdr { t0, t_mult } => {
            f.check(&["schedule", "t0"], t0, ranges::SGDR_T0)?;
            f.check(&["schedule", "t_mult"], t_mult, ranges::SGDR_T_MULT)?;
        }
        ScheduleSpec::Cosine => {}
    }
    if let Some(m) = &t.mixup {
        f.check(&["mixup", "alpha"], m.alpha, ranges::BETA_ALPHA)?;
    }
    if let Some(m) = &t.freq_mixstyle {
        f.check(&["freq_mixstyle", "alpha"], m.alpha, ranges::BETA_ALPHA)?;
        f.check(&["freq_mixstyle", "p"], m.p, ranges::PROBABILITY)?;
    }
    if let Some(d) = &t.device_simulation {
        f.check(&["device_simulation", "irs"], d.irs, ranges::IRS)?;
        f.check(
            &["device_simulation", "clips_per_ir"],
            d.clips_per_ir,
            ranges::CLIPS_PER_IR,
        )?;
    }
    if let Some(d) = &t.dir_augmentation {
        f.check(&["dir_augmentation", "p"], d.p, ranges::PROBABILITY)?;
        if let Some(n) = d.irs {
            f.check(&["dir_augmentation", "irs"], n, ranges::IRS)?;
        }
    }
    if let Some(e) = &t.energy_ir {
        let lengths = [
            ("levels", e.levels.len(), ranges::ENERGY_ROWS),
            ("devices", e.devices.len(), ranges::NAMES),
        ];
        for (field, n, range) in lengths {
            ranges::check_len(n, range).map_err(|m| f.err(&["energy_ir", field], m))?;
        }
        for (i, level) in e.levels.iter().enumerate() {
            let row = i.to_string();
            f.check(
                &["energy_ir", "levels", &row, "count"],
                level.count,
                ranges::ENERGY_COPIES,
            )?;
        }
        if let Some(n) = e.irs {
            f.check(&["energy_ir", "irs"], n, ranges::IRS)?;
        }
    }
    if let Some(r) = &t.time_roll {
        if let Some(s) = r.max_shift_s {
            f.check(&["time_roll", "max_shift_s"], s, ranges::ROLL_SECONDS)?;
        }
        if let Some(n) = r.max_frames {
            f.check(&["time_roll", "max_frames"], n, ranges::ROLL_FRAMES)?;
        }
    }
    if let Some(a) = &t.spec_augment {
        f.check(&["spec_augment", "freq_masks"], a.freq_masks, ranges::MASKS)?;
        f.check(&["spec_augment", "time_masks"], a.time_masks, ranges::MASKS)?;
        f.check(
            &["spec_augment", "freq_width"],
            a.freq_width,
            ranges::MASK_WIDTH,
        )?;
        f.check(
            &["spec_augment", "time_width"],
            a.time_width,
            ranges::MASK_WIDTH,
        )?;
        if let Some(v) = a.value {
            f.check(&["spec_augment", "value"], v, ranges::MASK_VALUE)?;
        }
    }
    validate_augmentations(ctx, at, t)
}

/// What the augmentation blocks need beyond their numbers' ranges; errors point at the key.
fn validate_augmentations(ctx: &Ctx, at: &[&str], t: &TrainingSpec) -> Result<()> {
    let err = |sub: &[&str], msg: String| {
        let p: Vec<&str> = at.iter().chain(sub).copied().collect();
        ctx.err(&p, msg)
    };
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
            if !is_device_id(d) {
                return Err(err(
                    &["energy_ir", "devices", &i.to_string()],
                    format!("`{d}` is not a device id (letters, digits, `_` and `-`, e.g. a, s1)"),
                ));
            }
        }
    }
    if let Some(r) = &t.time_roll {
        if r.max_shift_s.is_some() == r.max_frames.is_some() {
            return Err(err(
                &["time_roll"],
                "give exactly one of `max_shift_s` (waveform) and `max_frames` (spectrogram)"
                    .into(),
            ));
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
    }
    Ok(())
}

/// The training settings of stage `i`: the recipe's defaults with the stage's fields replacing them.
pub(super) fn stage_training(ctx: &Ctx, r: &Recipe, i: usize) -> Result<TrainingSpec> {
    let idx = i.to_string();
    match r.stages[i].training_override() {
        Some(over) => merge_training(ctx, &r.training, over, &["stages", &idx, "training"]),
        None => Ok(r.training.clone()),
    }
}

/// `base` with the fields of the mapping `over` (at `at` in the recipe) replacing its own.
pub(super) fn merge_training(
    ctx: &Ctx,
    base: &TrainingSpec,
    over: &Value,
    at: &[&str],
) -> Result<TrainingSpec> {
    let mut merged = serde_norway::to_value(base).map_err(|e| Error::msg(e.to_string()))?;
    let Value::Mapping(over) = over else {
        return Err(ctx.err(at, "must be a mapping of training fields"));
    };
    for (k, v) in over {
        let key = k.as_str().unwrap_or_default().to_string();
        if let Value::Mapping(b) = &mut merged {
            if !b.contains_key(key.as_str()) && !OPTIONAL_TRAINING_FIELDS.contains(&key.as_str()) {
                let field: Vec<&str> = at.iter().copied().chain([key.as_str()]).collect();
                return Err(ctx.err(&field, format!("unknown training field `{key}`")));
            }
            b.insert(k.clone(), v.clone());
        }
    }
    let t: TrainingSpec =
        serde_norway::from_value(merged).map_err(|e| ctx.err(at, e.to_string()))?;
    validate_training(ctx, at, &t)?;
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
