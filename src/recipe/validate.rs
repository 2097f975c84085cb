//! Recipe validation: every reference, value range and path checked before a plan is made, each
//! error naming the field and its line.

use super::prune::{pruned_model_key, validate_prune};
use super::ranges;
use super::schema::*;
use super::training::{merge_training, stage_training, validate_training};
use super::Ctx;
use crate::error::Result;
use ascrepro_results::labels::is_device_id;

pub(super) fn validate(ctx: &Ctx, r: &Recipe) -> Result<()> {
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
    validate_sizes(ctx, r)?;
    for (key, m) in &r.models {
        validate_model(ctx, key, m)?;
    }
    validate_training(ctx, &["training"], &r.training)?;
    let mut seen: Vec<&str> = Vec::new();
    for (i, s) in r.stages.iter().enumerate() {
        let idx = i.to_string();
        check_stage_id(s.id()).map_err(|m| ctx.err(&["stages", &idx, "id"], m))?;
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
                    let kinds = [StageKind::Train, StageKind::Pretrain, StageKind::Prune];
                    earlier_stage(r, i, &init.from, &kinds)
                        .map_err(|m| ctx.err(&["stages", &idx, "init", "from"], m))?;
                    // After pruning the stage trains the pruned architecture; `model` names the
                    // entry it was cut from, so the recipe says which family it is.
                    let pruned = matches!(
                        r.stages.iter().find(|s| s.id() == init.from),
                        Some(StageSpec::Prune(_))
                    );
                    if let Some(key) = pruned_model_key(r, &init.from).filter(|_| pruned) {
                        if key != t.model {
                            return Err(ctx.err(
                                &["stages", &idx, "model"],
                                format!(
                                    "`{}` starts from prune stage `{}`, whose network was cut from model `{key}`: name `{key}` here (the stage trains the pruned widths)",
                                    t.id, init.from
                                ),
                            ));
                        }
                    }
                }
                validate_splits(ctx, r, i, t)?;
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
                    validate_distill(ctx, r, i, d)?;
                }
            }
            StageSpec::Pretrain(p) => {
                if !r.models.contains_key(&p.model) {
                    return Err(ctx.err(
                        &["stages", &idx, "model"],
                        format!(
                            "no model `{}` in `models` (it has: {})",
                            p.model,
                            keys(&r.models)
                        ),
                    ));
                }
                stage_training(ctx, r, i)?;
                for (name, prof) in &r.profiles {
                    if prof.stages.iter().any(|s| s == &p.id) && prof.pretrain_data.is_none() {
                        return Err(ctx.err(
                            &["profiles", name, "stages"],
                            format!(
                                "profile `{name}` runs pre-training stage `{}` but names no `pretrain_data`",
                                p.id
                            ),
                        ));
                    }
                }
            }
            StageSpec::Released(rel) => {
                if !r.models.contains_key(&rel.model) {
                    return Err(ctx.err(
                        &["stages", &idx, "model"],
                        format!(
                            "no model `{}` in `models` (it has: {})",
                            rel.model,
                            keys(&r.models)
                        ),
                    ));
                }
                check_file(ctx, &["stages", &idx, "checkpoint"], &rel.checkpoint)?;
                for (device, file) in &rel.devices {
                    let at = ["stages", idx.as_str(), "devices", device.as_str()];
                    if !is_device_id(device) {
                        return Err(ctx.err(
                            &at,
                            format!("`{device}` is not a device id (letters, digits, `_` and `-`, e.g. a, s1)"),
                        ));
                    }
                    check_file(ctx, &at, file)?;
                }
            }
            StageSpec::FinetuneDevices(f) => validate_finetune_devices(ctx, r, i, f)?,
            StageSpec::Prune(p) => validate_prune(ctx, r, i, p)?,
            StageSpec::Half(h) => {
                let kinds = [StageKind::Train, StageKind::Released, StageKind::Prune];
                earlier_stage(r, i, &h.from, &kinds)
                    .map_err(|m| ctx.err(&["stages", &idx, "from"], m))?;
            }
            StageSpec::Reparameterize(rp) => {
                let kinds = [StageKind::Train, StageKind::Prune];
                earlier_stage(r, i, &rp.from, &kinds)
                    .map_err(|m| ctx.err(&["stages", &idx, "from"], m))?;
            }
            StageSpec::Quantize(q) => {
                let kinds = [StageKind::Train, StageKind::Released, StageKind::Prune];
                earlier_stage(r, i, &q.from, &kinds)
                    .map_err(|m| ctx.err(&["stages", &idx, "from"], m))?;
                let at = |f| ["stages", idx.as_str(), f];
                ctx.check(
                    &at("calibration_clips"),
                    q.calibration_clips,
                    ranges::CALIBRATION_CLIPS,
                )?;
                ctx.check(&at("tolerance"), q.tolerance, ranges::TOLERANCE)?;
            }
        }
        seen.push(s.id());
    }
    super::published::validate(ctx, r)?;
    validate_effects(ctx, r)?;
    for (name, p) in &r.profiles {
        if p.stages.is_empty() {
            return Err(ctx.err(
                &["profiles", name, "stages"],
                "a profile runs at least one stage: list their ids",
            ));
        }
        for (j, s) in p.stages.iter().enumerate() {
            if !r.stages.iter().any(|t| t.id() == s) {
                return Err(ctx.err(
                    &["profiles", name, "stages", &j.to_string()],
                    format!("no stage `{s}`"),
                ));
            }
        }
        validate_data(ctx, name, &p.data)?;
        if let Some(rep) = &p.repeats {
            validate_repeats(ctx, r, name, rep)?;
        }
        super::resources::validate(ctx, name, p)?;
        if let Some(d) = &p.pretrain_data {
            validate_pretrain_data(ctx, name, d)?;
        }
    }
    Ok(())
}

/// `effects`: each compares two different stages of the recipe; `conflicts`: each quotes two
/// statements or more.
fn validate_effects(ctx: &Ctx, r: &Recipe) -> Result<()> {
    for (i, e) in r.effects.iter().enumerate() {
        let idx = i.to_string();
        for (field, id) in [("with", &e.with), ("without", &e.without)] {
            if !r.stages.iter().any(|s| s.id() == id) {
                return Err(ctx.err(&["effects", &idx, field], format!("no stage `{id}`")));
            }
        }
        if e.with == e.without {
            return Err(ctx.err(
                &["effects", &idx, "without"],
                "an effect compares two different stages",
            ));
        }
    }
    for (i, c) in r.conflicts.iter().enumerate() {
        if c.statements.len() < 2 {
            return Err(ctx.err(
                &["conflicts", &i.to_string(), "statements"],
                "a contradiction has at least two statements: transcribe each with where it is",
            ));
        }
    }
    Ok(())
}

/// A profile's `repeats`: a sensible seed count; `except` names training stages it runs.
fn validate_repeats(ctx: &Ctx, r: &Recipe, profile: &str, rep: &RepeatsSpec) -> Result<()> {
    ctx.check(
        &["profiles", profile, "repeats", "seeds"],
        rep.seeds,
        ranges::SEEDS,
    )?;
    for (k, id) in rep.except.iter().enumerate() {
        let at = ["profiles", profile, "repeats", "except", &k.to_string()];
        let Some(stage) = r.stages.iter().find(|s| s.id() == id) else {
            return Err(ctx.err(&at, format!("no stage `{id}`")));
        };
        let profiles = r.profiles.get(profile);
        if !profiles.is_some_and(|p| p.stages.iter().any(|s| s == id)) {
            return Err(ctx.err(&at, format!("this profile does not run `{id}`")));
        }
        if matches!(
            stage.kind(),
            StageKind::Quantize | StageKind::Half | StageKind::Released | StageKind::Reparameterize
        ) {
            return Err(ctx.err(
                &at,
                format!("`{id}` trains nothing: it runs once per run of what it reads"),
            ));
        }
    }
    Ok(())
}

/// A stage's `distill`: teachers are earlier train stages (or a checked logits file), the loss
/// weights in range.
pub(super) fn validate_distill(ctx: &Ctx, r: &Recipe, i: usize, d: &DistillSpec) -> Result<()> {
    let idx = i.to_string();
    let at = ["stages", idx.as_str(), "distill", "teacher"];
    for teacher in d.teacher.stages() {
        earlier_train_stage(r, i, teacher).map_err(|m| ctx.err(&at, m))?;
    }
    match &d.teacher {
        TeacherSpec::Ensemble { stages } if stages.len() < 2 => {
            return Err(ctx.err(&at, "an ensemble needs at least two stages"));
        }
        TeacherSpec::Logits { path, sha256 } => {
            let per_split = path.contains(SPLIT_PLACEHOLDER);
            crate::data::check_relative_path(&path.replace(SPLIT_PLACEHOLDER, "split"))
                .map_err(|m| ctx.err(&at, m))?;
            match sha256 {
                Some(_) if per_split => {
                    return Err(ctx.err(
                        &at,
                        "one `sha256` cannot pin a file per split (`{split}` in the path): leave it out, and the run pins each file it reads",
                    ))
                }
                Some(h) if h.len() != 64 || !h.chars().all(|c| c.is_ascii_hexdigit()) => {
                    return Err(ctx.err(
                        &at,
                        "`sha256` must be the file's 64 hex digits (`ascrepro logits` prints it)",
                    ));
                }
                _ => {}
            }
        }
        _ => {}
    }
    let at = |f| ["stages", idx.as_str(), "distill", f];
    ctx.check(&at("temperature"), d.temperature, ranges::TEMPERATURE)?;
    let lambda = match d.form {
        KdForm::CePlusKl => ranges::KD_WEIGHT,
        KdForm::Weighted => ranges::KD_FRACTION,
    };
    ctx.check(&at("lambda"), d.lambda, lambda)?;
    Ok(())
}

/// A train stage's `split` / `for_each`: exclusive, known to every profile that runs the stage,
/// per-split training fields only for listed splits (and valid once merged).
fn validate_splits(ctx: &Ctx, r: &Recipe, i: usize, t: &TrainSpec) -> Result<()> {
    let idx = i.to_string();
    let (field, names): (Vec<&str>, Vec<&str>) = match (&t.split, &t.for_each) {
        (Some(_), Some(_)) => {
            return Err(ctx.err(
                &["stages", &idx, "for_each"],
                "give `split` (one split) or `for_each` (one stage per split), not both",
            ))
        }
        (Some(s), None) => (vec!["stages", &idx, "split"], vec![s.as_str()]),
        (None, Some(f)) => {
            let at = ["stages", idx.as_str(), "for_each", "split"];
            if f.split.is_empty() {
                return Err(ctx.err(&at, "name at least one split"));
            }
            if let Some(d) = f
                .split
                .iter()
                .enumerate()
                .find(|(k, s)| f.split[..*k].contains(s))
            {
                return Err(ctx.err(&at, format!("split `{}` is listed twice", d.1)));
            }
            for (name, over) in &f.training {
                let at = [
                    "stages",
                    idx.as_str(),
                    "for_each",
                    "training",
                    name.as_str(),
                ];
                if !f.split.contains(name) {
                    return Err(ctx.err(&at, format!("`{name}` is not one of the listed splits")));
                }
                merge_training(ctx, &stage_training(ctx, r, i)?, over, &at)?;
            }
            (at.to_vec(), f.split.iter().map(String::as_str).collect())
        }
        (None, None) => return Ok(()),
    };
    for (profile, p) in &r.profiles {
        if !p.stages.iter().any(|s| s == &t.id) {
            continue;
        }
        for name in &names {
            if p.data.split_csv(name).is_none() {
                return Err(ctx.err(
                    &field,
                    format!(
                        "profile `{profile}` runs `{}` but its data names no split `{name}` (add it to `data.splits`)",
                        t.id
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// A user-supplied file: a path inside the data root and a SHA-256 of 64 hex digits.
fn check_file(ctx: &Ctx, at: &[&str], f: &FileSpec) -> Result<()> {
    crate::data::check_relative_path(&f.path).map_err(|m| ctx.err(at, m))?;
    if f.sha256.len() != 64 || !f.sha256.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(ctx.err(
            at,
            "`sha256` must be the file's 64 hex digits (`sha256sum FILE`; `ascrepro logits` prints a logits file's)",
        ));
    }
    Ok(())
}

/// Checks that `source` names a train stage listed before stage `i`.
fn earlier_train_stage(r: &Recipe, i: usize, source: &str) -> std::result::Result<(), String> {
    earlier_stage(r, i, source, &[StageKind::Train])
}

/// Checks that `source` names a stage of one of `kinds` listed before stage `i`.
pub(super) fn earlier_stage(
    r: &Recipe,
    i: usize,
    source: &str,
    kinds: &[StageKind],
) -> std::result::Result<(), String> {
    // As recipes write them (`finetune_devices`), not as the variants are named.
    let names: Vec<String> = kinds
        .iter()
        .filter_map(|k| serde_json::to_value(k).ok()?.as_str().map(str::to_string))
        .collect();
    match r.stages.iter().position(|t| t.id() == source) {
        Some(t) if t < i && kinds.contains(&r.stages[t].kind()) => Ok(()),
        // Its system is several models chosen per clip; no stage takes it as one model.
        Some(t) if matches!(&r.stages[t], StageSpec::FinetuneDevices(_)) => {
            let StageSpec::FinetuneDevices(f) = &r.stages[t] else {
                unreachable!("matched above")
            };
            Err(format!(
                "`{source}` is a finetune_devices stage: its system routes each clip to one of several models, which `{}` cannot take as one model; name a train stage (e.g. its general model `{}`)",
                r.stages[i].id(),
                f.from
            ))
        }
        Some(_) => Err(format!(
            "`{source}` must be a {} stage listed before `{}`",
            names.join(" or "),
            r.stages[i].id()
        )),
        None => Err(format!("no stage `{source}`")),
    }
}

/// A finetune_devices stage: its general model is an earlier train stage, its devices are
/// distinct device ids, and its training adds no offline copies.
fn validate_finetune_devices(
    ctx: &Ctx,
    r: &Recipe,
    i: usize,
    f: &FinetuneDevicesSpec,
) -> Result<()> {
    let idx = i.to_string();
    earlier_train_stage(r, i, &f.from).map_err(|m| ctx.err(&["stages", &idx, "from"], m))?;
    if let Some(general) = &f.general {
        earlier_train_stage(r, i, general).map_err(|m| ctx.err(&["stages", &idx, "general"], m))?;
    }
    if f.devices.is_empty() {
        return Err(ctx.err(
            &["stages", &idx, "devices"],
            "name at least one device to fine-tune a model for (e.g. `[a, b, c, s1, s2, s3]`)",
        ));
    }
    for (j, d) in f.devices.iter().enumerate() {
        let at = ["stages", idx.as_str(), "devices", &j.to_string()];
        if !is_device_id(d) {
            return Err(ctx.err(
                &at,
                format!("`{d}` is not a device id (letters, digits, `_` and `-`, e.g. a, s1)"),
            ));
        }
        if f.devices[..j].contains(d) {
            return Err(ctx.err(&at, format!("device `{d}` is listed twice")));
        }
    }
    let t = stage_training(ctx, r, i)?;
    // A device model learns its own device's recordings; offline copies simulate others.
    let offline = [
        ("device_simulation", t.device_simulation.is_some()),
        ("energy_ir", t.energy_ir.is_some()),
    ];
    if let Some((field, _)) = offline.iter().find(|(_, on)| *on) {
        return Err(ctx.err(
            &["stages", &idx, "training", field],
            format!(
                "a device model trains on its own device's clips only, and `{field}` adds copies that simulate other devices; set `{field}: null` in this stage's `training`"
            ),
        ));
    }
    Ok(())
}

pub(super) fn keys<V>(m: &std::collections::BTreeMap<String, V>) -> String {
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
    for (name, csv) in &d.splits {
        crate::data::check_relative_path(csv).map_err(|m| {
            let path = at("splits");
            let mut refs: Vec<&str> = path.iter().map(String::as_str).collect();
            refs.push(name);
            ctx.err(&refs, m)
        })?;
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

fn validate_pretrain_data(ctx: &Ctx, profile: &str, d: &PretrainDataSpec) -> Result<()> {
    let err = |f: &str, msg: String| ctx.err(&["profiles", profile, "pretrain_data", f], msg);
    for (field, value) in [("root", &d.root), ("manifest", &d.manifest)] {
        if let Some(v) = value {
            crate::data::check_relative_path(v).map_err(|m| err(field, m))?;
        }
    }
    match d.kind {
        PretrainDataKind::AudioSet => {
            for (field, value) in [("root", &d.root), ("manifest", &d.manifest)] {
                if value.is_none() {
                    return Err(err(field, format!("audioset data needs `{field}`")));
                }
            }
            if d.synth.is_some() {
                return Err(err(
                    "synth",
                    "only synth_multilabel data takes `synth`".into(),
                ));
            }
        }
        PretrainDataKind::SynthMultiLabel => {
            if let Err((field, msg)) = d.synth.clone().unwrap_or_default().check() {
                return Err(ctx.err(&["profiles", profile, "pretrain_data", "synth", field], msg));
            }
            for (field, set) in [
                ("root", d.root.is_some()),
                ("manifest", d.manifest.is_some()),
            ] {
                if set {
                    return Err(err(field, "only audioset data takes this field".into()));
                }
            }
        }
    }
    Ok(())
}

/// A stage id names the stage's outputs, is joined to split and device names (`id@split50`,
/// `id/s1`) and addresses the stage in a profile's `set` paths (split at `.`): a plain name.
fn check_stage_id(id: &str) -> std::result::Result<(), String> {
    if id.is_empty() {
        Err("a stage id must not be empty".into())
    } else if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        Err(format!(
            "`{id}` is not a stage id: use only letters, digits, `_` and `-`"
        ))
    } else {
        Ok(())
    }
}

/// A model entry: its numbers in range first (so an absurd width is named as such, not as a
/// consequence), then what its architecture requires.
fn validate_model(ctx: &Ctx, key: &str, m: &ModelSpec) -> Result<()> {
    let at = |f| ["models", key, f];
    if key.is_empty() {
        return Err(ctx.err(&["models"], "a model needs a non-empty name"));
    }
    if let Some(w) = m.width {
        ctx.check(&at("width"), w, ranges::CHANNELS)?;
    }
    if let Some(d) = m.depth {
        ctx.check(&at("depth"), d, ranges::DEPTH)?;
    }
    if let Some(ws) = &m.widths {
        ctx.check(&at("widths"), ws.len(), ranges::WIDTHS_LEN)?;
        for (i, w) in ws.iter().enumerate() {
            ctx.check(
                &["models", key, "widths", &i.to_string()],
                *w,
                ranges::CHANNELS,
            )?;
        }
    }
    if let Some(g) = m.shuffle_groups {
        ctx.check(&at("shuffle_groups"), g, ranges::CHANNELS)?;
    }
    if let Some(p) = m.dropout {
        ctx.check(&at("dropout"), p, ranges::DROPOUT)?;
    }
    if let Some(l) = m.resnorm_lambda {
        ctx.check(&at("resnorm_lambda"), l, ranges::RESNORM_LAMBDA)?;
    }
    m.check()
        .map_err(|(field, msg)| ctx.err(&["models", key, field], msg))
}

/// Every list and map of the recipe within its length range, before anything compares entries.
fn validate_sizes(ctx: &Ctx, r: &Recipe) -> Result<()> {
    let len = |field: &[&str], n: usize, range| {
        ranges::check_len(n, range).map_err(|m| ctx.err(field, m))
    };
    len(&["stages"], r.stages.len(), ranges::STAGES)?;
    len(&["models"], r.models.len(), ranges::MODELS)?;
    len(&["profiles"], r.profiles.len(), ranges::PROFILES)?;
    len(&["published"], r.published.len(), ranges::PUBLISHED_ROWS)?;
    for (name, p) in &r.profiles {
        let at = |f| ["profiles", name.as_str(), f];
        len(&at("stages"), p.stages.len(), ranges::PROFILE_STAGES)?;
        len(&at("set"), p.set.len(), ranges::SET_ENTRIES)?;
        len(
            &["profiles", name, "data", "splits"],
            p.data.splits.len(),
            ranges::NAMES,
        )?;
        if let Some(synth) = &p.data.synth {
            let at = ["profiles", name.as_str(), "data", "synth", "subsets"];
            len(&at, synth.subsets.len(), ranges::NAMES)?;
        }
    }
    for (i, s) in r.stages.iter().enumerate() {
        let idx = i.to_string();
        let (field, n) = match s {
            StageSpec::Train(t) => match (&t.for_each, &t.distill) {
                (Some(f), _) => ("for_each", f.split.len().max(f.training.len())),
                (None, Some(d)) => ("distill", d.teacher.stages().len()),
                (None, None) => continue,
            },
            StageSpec::FinetuneDevices(f) => ("devices", f.devices.len()),
            StageSpec::Released(rel) => ("devices", rel.devices.len()),
            StageSpec::Prune(p) => match &p.distill {
                Some(d) => ("distill", d.teacher.stages().len()),
                None => continue,
            },
            StageSpec::Pretrain(_)
            | StageSpec::Quantize(_)
            | StageSpec::Half(_)
            | StageSpec::Reparameterize(_) => continue,
        };
        len(&["stages", &idx, field], n, ranges::NAMES)?;
    }
    Ok(())
}
