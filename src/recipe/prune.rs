//! The prune kind's recipe checks: its source, target and epochs (with the other stages'
//! checks in `validate`), and, where the plan knows the source's architecture, that the target
//! widths are ones it can be pruned to (with the planning in `plan_stages`).

use super::schema::*;
use super::training::stage_training;
use super::validate::{earlier_stage, validate_distill};
use super::{ranges, Ctx, PlannedStage};
use crate::compress::prune::{AgpPruner, ChannelGroups, PruneTarget};
use crate::error::Result;
use crate::models::ModelConfig;

/// A prune stage: its source makes one model, its target and epochs are in range, its training
/// and distillation valid.
pub(super) fn validate_prune(ctx: &Ctx, r: &Recipe, i: usize, p: &PruneSpec) -> Result<()> {
    let idx = i.to_string();
    let at = |f| ["stages", idx.as_str(), f];
    earlier_stage(
        r,
        i,
        &p.from,
        &[StageKind::Train, StageKind::Released, StageKind::Prune],
    )
    .map_err(|m| ctx.err(&at("from"), m))?;
    match &p.target {
        PruneTargetSpec::Widths { widths: ws } => {
            ctx.check(
                &["stages", &idx, "target", "widths"],
                ws.len(),
                ranges::WIDTHS_LEN,
            )?;
            for (k, w) in ws.iter().enumerate() {
                let field = ["stages", idx.as_str(), "target", "widths", &k.to_string()];
                ctx.check(&field, *w, ranges::CHANNELS)?;
            }
        }
        PruneTargetSpec::Budget { bits } => {
            if ![8, 16, 32].contains(bits) {
                return Err(ctx.err(
                    &["stages", &idx, "target", "bits"],
                    format!(
                        "{bits} bits per parameter: the DCASE budget counts parameters at 8, 16 or 32 bits"
                    ),
                ));
            }
        }
    }
    let training = stage_training(ctx, r, i)?;
    if let Some(n) = p.prune_epochs {
        if n == 0 || n > training.epochs {
            return Err(ctx.err(
                &at("prune_epochs"),
                format!(
                    "{n}: AGP needs at least one of the stage's {} training epochs, and at most all of them",
                    training.epochs
                ),
            ));
        }
    }
    if let Some(d) = &p.distill {
        validate_distill(ctx, r, i, d)?;
    }
    Ok(())
}

/// The `models` entry a prune stage's network was cut from (following chained prune stages).
pub(super) fn pruned_model_key<'r>(r: &'r Recipe, stage: &str) -> Option<&'r str> {
    match r.stages.iter().find(|s| s.id() == stage)? {
        StageSpec::Prune(p) => pruned_model_key(r, &p.from),
        StageSpec::Train(t) => Some(&t.model),
        StageSpec::Released(rel) => Some(&rel.model),
        _ => None,
    }
}

/// The architecture of planned stage `id`'s model, where the plan knows it: a prune stage's with
/// a budget target is known once it has run.
pub(super) fn planned_model(out: &[PlannedStage], id: &str) -> Option<ModelConfig> {
    match out.iter().find(|o| o.id() == id)? {
        PlannedStage::Train(t) if t.model_of_init => planned_model(out, t.init_from.as_deref()?),
        PlannedStage::Train(t) => Some(t.model.clone()),
        PlannedStage::Released(rel) => Some(rel.model.clone()),
        PlannedStage::Reparameterize(r) => {
            crate::compress::reparam::merged_config(&planned_model(out, &r.from)?)
        }
        PlannedStage::Prune(p) => match &p.target {
            PruneTargetSpec::Widths { widths } => {
                let groups = ChannelGroups::of(&planned_model(out, &p.from)?).ok()?;
                let counts = groups.counts_of_widths(widths).ok()?;
                groups.pruned_config(&counts).ok()
            }
            PruneTargetSpec::Budget { .. } => None,
        },
        _ => None,
    }
}

/// Refuses, before anything runs, a prune stage whose source architecture has no channel groups
/// or whose explicit widths that architecture cannot be pruned to.
pub(super) fn check_prunable(
    ctx: &Ctx,
    i: usize,
    p: &PruneSpec,
    source: &ModelConfig,
) -> Result<()> {
    let idx = i.to_string();
    let groups = ChannelGroups::of(source).map_err(|e| {
        ctx.err(
            &["stages", &idx, "from"],
            format!("`{}` makes {}: {e}", p.from, source.describe()),
        )
    })?;
    if let PruneTargetSpec::Widths { widths } = &p.target {
        AgpPruner::new(groups, &PruneTarget::Widths(widths.clone()), 1)
            .map_err(|e| ctx.err(&["stages", &idx, "target", "widths"], e.to_string()))?;
    }
    Ok(())
}
