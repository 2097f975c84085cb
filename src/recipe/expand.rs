//! A profile's stages planned as instances: each recipe stage runs once per training split it
//! is expanded over and once per training seed (`instance`), and every stage reading another
//! runs once per run of what it reads, paired with the run of the same split and seed.

use super::prune::{check_prunable, planned_model};
use super::training::{merge_training, stage_training};
use super::*;
use ascrepro_results::instance::Instance;
use std::collections::BTreeMap;

/// The runs of one planned recipe stage: each instance with its planned id.
struct Runs {
    instances: Vec<(Instance, String)>,
}

impl Runs {
    fn splits(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (i, _) in &self.instances {
            if let Some(s) = &i.split {
                if !out.contains(s) {
                    out.push(s.clone());
                }
            }
        }
        out
    }

    fn seeds(&self) -> usize {
        self.instances
            .iter()
            .map(|(i, _)| i.seed)
            .max()
            .unwrap_or(1)
    }

    /// The run a reader of instance `want` (training on `split` when it names one) reads.
    fn paired(&self, want: &Instance, split: Option<&str>) -> Option<&str> {
        let by_split = !self.splits().is_empty();
        let by_seed = self.seeds() > 1;
        self.instances
            .iter()
            .find(|(i, _)| {
                (!by_split || i.split.as_deref() == split) && (!by_seed || i.seed == want.seed)
            })
            .map(|(_, id)| id.as_str())
    }
}

/// The splits a train stage runs on by itself: its `for_each` list (`None`: it does not
/// expand over splits).
fn own_splits(s: &StageSpec) -> Option<Vec<String>> {
    match s {
        StageSpec::Train(t) => t.for_each.as_ref().map(|f| f.split.clone()),
        _ => None,
    }
}

/// The one named split a stage trains on without expanding (`split: S`).
fn single_split(s: &StageSpec) -> Option<&str> {
    match s {
        StageSpec::Train(t) if t.for_each.is_none() => t.split.as_deref(),
        _ => None,
    }
}

/// Whether the stage trains a model from a seed (so `repeats` runs it once per seed).
fn trains(s: &StageSpec) -> bool {
    matches!(
        s,
        StageSpec::Train(_)
            | StageSpec::Prune(_)
            | StageSpec::FinetuneDevices(_)
            | StageSpec::Pretrain(_)
    )
}

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

/// A distillation spec reading the runs `rename` maps its teachers to, and a per-split logits
/// file's path naming `split`.
fn instance_distill(
    ctx: &Ctx,
    i: usize,
    id: &str,
    d: &Option<DistillSpec>,
    rename: &BTreeMap<String, String>,
    split: Option<&str>,
) -> Result<Option<DistillSpec>> {
    let name = |s: &String| rename.get(s).cloned().unwrap_or_else(|| s.clone());
    let Some(mut d) = d.clone() else {
        return Ok(None);
    };
    d.teacher = match d.teacher {
        TeacherSpec::Stage { stage } => TeacherSpec::Stage {
            stage: name(&stage),
        },
        TeacherSpec::Ensemble { stages } => TeacherSpec::Ensemble {
            stages: stages.iter().map(name).collect(),
        },
        TeacherSpec::Logits { path, sha256 } if path.contains(SPLIT_PLACEHOLDER) => {
            let Some(split) = split else {
                return Err(ctx.err(
                    &["stages", &i.to_string(), "distill", "teacher", "path"],
                    format!(
                        "`{path}` names a file per training split, but `{}` trains on no named split: give it `for_each` or `split`",
                        id
                    ),
                ));
            };
            TeacherSpec::Logits {
                path: path.replace(SPLIT_PLACEHOLDER, split),
                sha256,
            }
        }
        logits @ TeacherSpec::Logits { .. } => logits,
    };
    Ok(Some(d))
}

/// The instances stage `s` (profile position `j`) runs: its own splits or those of what it
/// reads, times its own seeds or those of what it reads.
fn instances(
    ctx: &Ctx,
    profile: &str,
    p: &ProfileSpec,
    j: usize,
    s: &StageSpec,
    runs: &BTreeMap<String, Runs>,
) -> Result<Vec<Instance>> {
    let at = |field: &str| -> Vec<String> {
        match field {
            "" => vec![
                "profiles".into(),
                profile.into(),
                "stages".into(),
                j.to_string(),
            ],
            f => vec![
                "profiles".into(),
                profile.into(),
                "repeats".into(),
                f.into(),
            ],
        }
    };
    let err = |path: Vec<String>, msg: String| {
        let refs: Vec<&str> = path.iter().map(String::as_str).collect();
        ctx.err(&refs, msg)
    };
    let sources = s.sources();
    let mut inherited: Option<(String, Vec<String>)> = None;
    for src in &sources {
        let splits = runs[*src].splits();
        if splits.is_empty() {
            continue;
        }
        match (&inherited, single_split(s), own_splits(s)) {
            (_, Some(one), _) if !splits.iter().any(|x| x == one) => {
                return Err(err(
                    at(""),
                    format!(
                        "stage `{}` trains on `{one}`, but `{src}` runs only on {}",
                        s.id(),
                        splits.join(", ")
                    ),
                ))
            }
            (_, _, Some(own)) => {
                if let Some(missing) = own.iter().find(|x| !splits.contains(x)) {
                    return Err(err(
                        at(""),
                        format!(
                            "stage `{}` runs on `{missing}`, which `{src}` (run once per split: {}) does not",
                            s.id(),
                            splits.join(", ")
                        ),
                    ));
                }
            }
            (Some((first, theirs)), None, None) if *theirs != splits => {
                return Err(err(
                    at(""),
                    format!(
                        "stage `{}` reads `{first}` (run on {}) and `{src}` (run on {}): they must run on the same splits",
                        s.id(),
                        theirs.join(", "),
                        splits.join(", ")
                    ),
                ))
            }
            _ => inherited = Some((src.to_string(), splits)),
        }
    }
    let splits: Vec<Option<String>> = match (own_splits(s), inherited, single_split(s)) {
        (Some(own), _, _) => own.into_iter().map(Some).collect(),
        (None, Some((_, theirs)), None) => theirs.into_iter().map(Some).collect(),
        _ => vec![None],
    };
    let own_seeds = match &p.repeats {
        Some(rep) if trains(s) && !rep.except.iter().any(|e| e == s.id()) => rep.seeds,
        _ => 1,
    };
    let seeds = sources
        .iter()
        .map(|src| runs[*src].seeds())
        .fold(own_seeds, usize::max);
    if let Some(rep) = &p.repeats {
        if let Some(k) = rep.except.iter().position(|e| e == s.id()) {
            if seeds > 1 {
                return Err(err(
                    at("except").into_iter().chain([k.to_string()]).collect(),
                    format!(
                        "`{}` reads a stage run once per seed, so it runs once per seed too: leave it out of `except`",
                        s.id()
                    ),
                ));
            }
        }
    }
    Ok(splits
        .into_iter()
        .flat_map(|split| {
            (1..=seeds).map(move |seed| Instance {
                split: split.clone(),
                seed,
            })
        })
        .collect())
}

pub(super) fn plan_stages(
    ctx: &Ctx,
    r: &Recipe,
    profile: &str,
    p: &ProfileSpec,
    frontend: crate::audio::frontend::FrontendId,
) -> Result<Vec<PlannedStage>> {
    let mut out: Vec<PlannedStage> = Vec::new();
    let mut runs: BTreeMap<String, Runs> = BTreeMap::new();
    for (j, id) in p.stages.iter().enumerate() {
        let at_j = j.to_string();
        let i = r
            .stages
            .iter()
            .position(|s| s.id() == id)
            .expect("validated");
        let s = &r.stages[i];
        for need in s.sources() {
            if !runs.contains_key(need) {
                return Err(ctx.err(
                    &["profiles", profile, "stages", &at_j],
                    format!(
                        "stage `{id}` needs `{need}`, which this profile does not run before it"
                    ),
                ));
            }
        }
        let list = instances(ctx, profile, p, j, s, &runs)?;
        let seeds = list.iter().map(|i| i.seed).max().unwrap_or(1);
        let mut made = Vec::new();
        for inst in list {
            let split = inst.split.as_deref().or(single_split(s));
            let rename: BTreeMap<String, String> = s
                .sources()
                .into_iter()
                .map(|src| {
                    let run = runs[src].paired(&inst, split).expect("instances pair");
                    (src.to_string(), run.to_string())
                })
                .collect();
            let iid = inst.id(s.id());
            let label = inst.label(s.label(), seeds);
            let planned = plan_one(
                ctx,
                r,
                p,
                frontend,
                i,
                &out,
                &inst,
                iid.clone(),
                label,
                &rename,
            )?;
            made.push((inst, iid));
            out.push(planned);
        }
        runs.insert(id.clone(), Runs { instances: made });
    }
    Ok(out)
}

/// One instance of recipe stage `i`, reading the runs `from` names.
#[allow(clippy::too_many_arguments)]
fn plan_one(
    ctx: &Ctx,
    r: &Recipe,
    p: &ProfileSpec,
    frontend: crate::audio::frontend::FrontendId,
    i: usize,
    out: &[PlannedStage],
    inst: &Instance,
    id: String,
    label: String,
    rename: &BTreeMap<String, String>,
) -> Result<PlannedStage> {
    let s = &r.stages[i];
    // The run of a source this instance reads.
    let from = |src: &str| rename[src].clone();
    Ok(match s {
        StageSpec::Train(t) => {
            let base = stage_training(ctx, r, i)?;
            let training = match (&t.for_each, &inst.split) {
                (Some(f), Some(name)) => match f.training.get(name) {
                    Some(over) => {
                        let at = ["stages", &i.to_string(), "for_each", "training", name];
                        merge_training(ctx, &base, over, &at)?
                    }
                    None => base,
                },
                _ => base,
            };
            let split = inst.split.clone().or_else(|| t.split.clone());
            PlannedStage::Train(Box::new(TrainStage {
                label,
                model: model_config(ctx, &t.model, &r.models[&t.model])?,
                model_of_init: t
                    .init
                    .as_ref()
                    .is_some_and(|i| stage_kind(r, &i.from) == Some(StageKind::Prune)),
                model_key: t.model.clone(),
                training: resolve_training(training, frontend),
                distill: instance_distill(ctx, i, &t.id, &t.distill, rename, split.as_deref())?,
                init_from: t.init.as_ref().map(|i| from(&i.from)),
                init_classifier: t.init.as_ref().map(|i| i.classifier),
                select: t.select,
                split_csv: split.as_ref().and_then(|n| p.data.split_csv(n)),
                split,
                seed: derive_seed(r.seed, &id),
                id,
            }))
        }
        StageSpec::Pretrain(pt) => PlannedStage::Pretrain(Box::new(PretrainStage {
            seed: derive_seed(r.seed, &id),
            id,
            label,
            model: model_config(ctx, &pt.model, &r.models[&pt.model])?,
            training: stage_training(ctx, r, i)?,
            data: p.pretrain_data.clone().expect("validated"),
        })),
        StageSpec::Released(rel) => PlannedStage::Released(ReleasedStage {
            id,
            label,
            model: model_config(ctx, &rel.model, &r.models[&rel.model])?,
            checkpoint: rel.checkpoint.clone(),
            devices: rel.devices.clone(),
        }),
        StageSpec::FinetuneDevices(f) => {
            let general_id = from(&f.from);
            let general = out
                .iter()
                .find_map(|o| match o {
                    PlannedStage::Train(t) if t.id == general_id => Some(t),
                    _ => None,
                })
                .expect("validated: an earlier train stage this profile runs");
            let training = resolve_training(stage_training(ctx, r, i)?, frontend);
            let models = f
                .devices
                .iter()
                .map(|device| {
                    let model_id = format!("{id}/{device}");
                    DeviceModel {
                        device: device.clone(),
                        train: TrainStage {
                            label: format!("{label} ({device})"),
                            model_key: general.model_key.clone(),
                            init_from: Some(general_id.clone()),
                            init_classifier: Some(true),
                            select: Select::Last,
                            split: general.split.clone(),
                            split_csv: general.split_csv.clone(),
                            model: general.model.clone(),
                            // The general model's architecture, whatever pruning made it.
                            model_of_init: true,
                            training: training.clone(),
                            distill: None,
                            seed: derive_seed(r.seed, &model_id),
                            id: model_id,
                        },
                    }
                })
                .collect();
            PlannedStage::FinetuneDevices(Box::new(FinetuneDevicesStage {
                id,
                label,
                general: f
                    .general
                    .as_deref()
                    .map_or_else(|| general_id.clone(), from),
                from: general_id,
                models,
            }))
        }
        StageSpec::Quantize(q) => {
            let source_id = from(&q.from);
            if let Some(source) = planned_model(out, &source_id) {
                crate::models::lowers(&source).map_err(|e| {
                    ctx.err(
                        &["stages", &i.to_string(), "from"],
                        format!("`{}` makes {}: {e}", q.from, source.describe()),
                    )
                })?;
            }
            PlannedStage::Quantize(QuantizeStage {
                seed: derive_seed(r.seed, &id),
                id,
                label,
                from: source_id,
                calibration_clips: q.calibration_clips,
                tolerance: q.tolerance,
                observer: q.observer,
            })
        }
        StageSpec::Prune(pr) => {
            let source_id = from(&pr.from);
            if let Some(source) = planned_model(out, &source_id) {
                check_prunable(ctx, i, pr, &source)?;
            }
            let training = resolve_training(stage_training(ctx, r, i)?, frontend);
            PlannedStage::Prune(Box::new(PruneStage {
                seed: derive_seed(r.seed, &id),
                id,
                label,
                from: source_id,
                target: pr.target.clone(),
                importance: pr.importance,
                prune_epochs: pr.prune_epochs.unwrap_or(training.epochs),
                training,
                distill: instance_distill(ctx, i, &pr.id, &pr.distill, rename, None)?,
            }))
        }
        StageSpec::Half(h) => PlannedStage::Half(HalfStage {
            id,
            label,
            from: from(&h.from),
        }),
        StageSpec::Reparameterize(rp) => {
            let source_id = from(&rp.from);
            if let Some(source) = planned_model(out, &source_id) {
                if crate::compress::reparam::merged_config(&source).is_none() {
                    return Err(ctx.err(
                        &["stages", &i.to_string(), "from"],
                        format!(
                            "`{}` makes {}, which has no RepConv branches to merge (dsflexinet trained with its branches has)",
                            rp.from,
                            source.describe()
                        ),
                    ));
                }
            }
            PlannedStage::Reparameterize(ReparameterizeStage {
                id,
                label,
                from: source_id,
            })
        }
    })
}
