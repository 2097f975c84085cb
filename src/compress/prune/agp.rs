//! Automated gradual pruning (Zhu & Gupta 2017, "To prune, or not to prune"), as NNI's AGP
//! pruner schedules it: the sparsity after step t of n is `s_f + (s_i - s_f) (1 - t/n)^3`.

use super::budget::{counts_for_budget, Budget};
use super::groups::ChannelGroups;
use super::mask::ChannelMask;
use crate::error::{Error, Result};
use crate::models::Net;
use tch::nn;

/// The cubic sparsity schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AgpSchedule {
    /// s_i: sparsity before the first step.
    pub initial_sparsity: f64,
    /// s_f: sparsity after the last.
    pub final_sparsity: f64,
    /// n: pruning steps.
    pub steps: usize,
}

impl AgpSchedule {
    pub fn new(initial_sparsity: f64, final_sparsity: f64, steps: usize) -> Result<Self> {
        let in_unit = |s: f64| (0.0..1.0).contains(&s);
        if !in_unit(initial_sparsity) || !in_unit(final_sparsity) || steps == 0 {
            return Err(Error::msg(format!(
                "AGP schedule: sparsities must be in [0, 1) and steps at least 1, got s_i = \
                 {initial_sparsity}, s_f = {final_sparsity}, n = {steps}"
            )));
        }
        Ok(AgpSchedule {
            initial_sparsity,
            final_sparsity,
            steps,
        })
    }

    /// s_t; steps past n stay at s_f.
    pub fn sparsity(&self, step: usize) -> f64 {
        let t = step.min(self.steps) as f64 / self.steps as f64;
        self.final_sparsity + (self.initial_sparsity - self.final_sparsity) * (1.0 - t).powi(3)
    }
}

/// Where pruning ends.
#[derive(Debug, Clone, PartialEq)]
pub enum PruneTarget {
    /// The architecture's explicit width list (e.g. `sscp_mobile::S1_WIDTHS`).
    Widths(Vec<i64>),
    /// The widest network within a complexity budget, by [`counts_for_budget`]'s rule.
    Budget(Budget),
}

/// AGP over channel groups: each group's sparsity follows the schedule from 0 to its own final
/// sparsity `1 - target / base`, so every group reaches its target width at the last step.
#[derive(Debug, Clone)]
pub struct AgpPruner {
    groups: ChannelGroups,
    target: Vec<i64>,
    steps: usize,
}

impl AgpPruner {
    pub fn new(groups: ChannelGroups, target: &PruneTarget, steps: usize) -> Result<Self> {
        let target = match target {
            PruneTarget::Widths(w) => groups.counts_of_widths(w)?,
            PruneTarget::Budget(b) => counts_for_budget(&groups, b)?,
        };
        if let Some((g, t)) = groups
            .groups
            .iter()
            .zip(&target)
            .find(|(g, &t)| t > g.units)
        {
            return Err(Error::msg(format!(
                "AGP target keeps {t} channels of group `{}`, which has {}",
                g.name, g.units
            )));
        }
        if steps == 0 {
            return Err(Error::msg("AGP needs at least one pruning step"));
        }
        Ok(AgpPruner {
            groups,
            target,
            steps,
        })
    }

    pub fn groups(&self) -> &ChannelGroups {
        &self.groups
    }

    /// Kept units per group at the end.
    pub fn target(&self) -> &[i64] {
        &self.target
    }

    pub fn steps(&self) -> usize {
        self.steps
    }

    /// The group's schedule: s_i = 0, s_f = its final sparsity.
    pub fn schedule(&self, group: usize) -> AgpSchedule {
        let g = &self.groups.groups[group];
        AgpSchedule {
            initial_sparsity: 0.0,
            final_sparsity: 1.0 - self.target[group] as f64 / g.units as f64,
            steps: self.steps,
        }
    }

    /// Kept units per group after step `step` (0: none pruned; `steps`: the target): the
    /// scheduled fraction of each group, rounded to the nearest count, then up to one the group
    /// can be rebuilt at.
    pub fn keep_counts(&self, step: usize) -> Vec<i64> {
        self.groups
            .groups
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let keep = ((1.0 - self.schedule(i).sparsity(step)) * g.units as f64).round();
                g.feasible_at_least((keep as i64).clamp(self.target[i], g.units))
            })
            .collect()
    }

    /// One pruning step: ranks channels by the current (masked) weights' importance, keeps
    /// [`Self::keep_counts`] of them (those `previous` kept first, so masks only shrink), and
    /// applies the mask to `net`.
    pub fn prune_step(
        &self,
        step: usize,
        vs: &nn::VarStore,
        net: &mut dyn Net,
        previous: Option<&ChannelMask>,
    ) -> Result<ChannelMask> {
        let importance = self.groups.importance(vs)?;
        let mask = self
            .groups
            .select(&importance, &self.keep_counts(step), previous)?;
        self.groups.apply(&mask, vs, net)?;
        Ok(mask)
    }
}
