//! Target widths from a complexity budget.
//!
//! The rule: every group keeps the same fraction r of its base channels, rounded to the nearest
//! count (at least one) and then up to a count the group can be rebuilt at; where that makes two
//! widths equal that must differ ([`super::Distinct`]), the later group drops to its next smaller
//! feasible count (or, at one channel, grows by one step). r is the largest ratio (bisection to
//! 1e-4 over [0, 1]: the count grows with r) whose network, counted with `compress::count`
//! (torchinfo convention, BatchNorm unfolded), fits both limits. No channel is added back
//! afterwards: the widths stay one common ratio of the base widths.

use super::groups::ChannelGroups;
use crate::compress::{count, CountOptions};
use crate::error::{Error, Result};
use ascrepro_results::record::{Complexity, LIMIT_MACS, LIMIT_PARAM_BYTES};

/// Complexity limits, measured at one input shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Parameter memory limit in bytes.
    pub param_bytes: u64,
    /// Precision the parameters are deployed at (16: float16, as Zhang et al.).
    pub bits_per_param: u32,
    pub macs: u64,
    /// Input `[C, F, T]` (batch 1) the MACs are counted for.
    pub input: [i64; 3],
}

impl Budget {
    /// The DCASE 2024/2025 task 1 limits: 128 kB of parameters at `bits_per_param`, 30 M MACs.
    pub fn dcase(bits_per_param: u32, input: [i64; 3]) -> Self {
        Budget {
            param_bytes: LIMIT_PARAM_BYTES,
            bits_per_param,
            macs: LIMIT_MACS,
            input,
        }
    }

    pub fn admits(&self, c: &Complexity) -> bool {
        c.param_bytes(self.bits_per_param) <= self.param_bytes && c.macs <= self.macs
    }
}

/// The counts at ratio `r` (see the module's rule).
fn counts_at(groups: &ChannelGroups, r: f64) -> Option<Vec<i64>> {
    let mut counts: Vec<i64> = groups
        .groups
        .iter()
        .map(|g| g.feasible_at_least(((r * g.units as f64).round() as i64).max(1)))
        .collect();
    // Each fix lowers a count (or, at one channel, raises it once); bounded all the same.
    for _ in 0..4 * groups.groups.len() * groups.groups.len() {
        let Some(d) = groups
            .distinct
            .iter()
            .find(|d| d.a.1 * counts[d.a.0] == d.b.1 * counts[d.b.0])
        else {
            return Some(counts);
        };
        let g = &groups.groups[d.b.0];
        counts[d.b.0] = match g.feasible_at_most(counts[d.b.0] - 1) {
            Some(c) => c,
            None => g.feasible_at_least(counts[d.b.0] + 1),
        };
    }
    None
}

/// Kept units per group for the widest network of one common ratio within `budget`.
pub fn counts_for_budget(groups: &ChannelGroups, budget: &Budget) -> Result<Vec<i64>> {
    let fits = |r: f64| -> Result<Option<Vec<i64>>> {
        let Some(counts) = counts_at(groups, r) else {
            return Ok(None);
        };
        let c = count(
            &groups.pruned_config(&counts)?,
            budget.input,
            &CountOptions::default(),
        )?;
        Ok(budget.admits(&c).then_some(counts))
    };
    if let Some(counts) = fits(1.0)? {
        return Ok(counts);
    }
    let (mut lo, mut hi) = (0.0, 1.0);
    let mut best = None;
    while hi - lo > 1e-4 {
        let mid = (lo + hi) / 2.0;
        match fits(mid)? {
            Some(counts) => {
                best = Some(counts);
                lo = mid;
            }
            None => hi = mid,
        }
    }
    best.ok_or_else(|| {
        Error::msg(format!(
            "no network pruned from `{}` by one common ratio fits {budget:?}",
            groups.config.describe()
        ))
    })
}
