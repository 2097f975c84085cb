//! Starting a model from another model's weights (fine-tuning after pre-training, device-specific
//! models from a general one), with or without its classifier.

use crate::error::{Error, Result};
use crate::models::{self, ModelConfig};
use std::collections::BTreeSet;
use tch::nn::VarStore;
use tch::Device;

/// Which weights a model starts from.
#[derive(Debug, Clone, PartialEq)]
pub struct InitFrom {
    /// Weights saved by `models::save_weights`.
    pub weights: std::path::PathBuf,
    /// Whether the classifier is taken too (false: it keeps its fresh initialisation, and the
    /// source may have another number of classes).
    pub classifier: bool,
}

/// The variables `init` leaves fresh in a model of `cfg`: its classifier, unless taken. Computed
/// before seeding the model, as finding the classifier builds networks.
pub fn fresh_variables(cfg: &ModelConfig, init: &InitFrom) -> Result<BTreeSet<String>> {
    Ok(match init.classifier {
        true => BTreeSet::new(),
        false => cfg.classifier_variables()?.into_iter().collect(),
    })
}

/// Copies the weights of `init` into `vs`, except the variables in `fresh`. Every other
/// variable must exist in the source with the same shape: an error names the first that does
/// not (a source of another architecture).
pub fn load_into(vs: &VarStore, init: &InitFrom, fresh: &BTreeSet<String>) -> Result<()> {
    let (src, src_cfg, _) = models::load_weights(&init.weights, Device::Cpu)?;
    let src_vars = src.variables();
    let path = init.weights.as_path();
    let mismatch = |what: String| {
        Error::file(
            path,
            format!(
                "cannot initialise from these weights ({}): {what}",
                src_cfg.describe()
            ),
        )
    };
    let mut dst_vars: Vec<_> = vs.variables().into_iter().collect();
    dst_vars.sort_by(|a, b| a.0.cmp(&b.0));
    tch::no_grad(|| {
        for (name, mut t) in dst_vars {
            if fresh.contains(&name) {
                continue;
            }
            let Some(s) = src_vars.get(&name) else {
                return Err(mismatch(format!("it has no variable `{name}`")));
            };
            if s.size() != t.size() {
                return Err(mismatch(format!(
                    "`{name}` is {:?} there but {:?} here",
                    s.size(),
                    t.size()
                )));
            }
            t.copy_(&s.to_device(t.device()));
        }
        Ok(())
    })?;
    let extra: Vec<&String> = src_vars
        .keys()
        .filter(|k| !fresh.contains(*k) && !vs.variables().contains_key(*k))
        .collect();
    if let Some(k) = extra.first() {
        return Err(mismatch(format!(
            "its variable `{k}` has no counterpart here ({} unmatched)",
            extra.len()
        )));
    }
    Ok(())
}
