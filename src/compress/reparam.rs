//! Structural re-parameterisation: every RepConv2d's parallel branches (3x3, 1x3, 3x1, 1x1)
//! become the one 3x3 conv they sum to, as Ramezanee et al. do after training. Exact in train
//! and eval mode (no BatchNorm sits inside a RepConv2d), it shrinks the deployed graph's
//! parameters and MACs; `complexity::count` applies it when `CountOptions::reparam` is set.
//!
//! The merged tensors are new (detached) tensors, as with BatchNorm folding: the VarStore the
//! model was built from keeps the branches. A checkpoint of the merged graph is loaded into a
//! model built in that graph (e.g. `dsflexinet::Config::reparameterized`).

use crate::error::{Error, Result};
use crate::models::blocks::Vb;
use crate::models::{build_net, dsflexinet, ModelConfig, Net};
use std::collections::BTreeMap;
use tch::{nn, Tensor};

/// Merges every re-parameterisable unit of `net`; returns how many were merged (0 for
/// architectures without RepConv2d, or when already merged).
pub fn reparameterize(net: &mut dyn Net) -> usize {
    net.reparameterize()
}

/// The deployed configuration of `cfg`, its RepConv branches merged; `None` when it has no
/// branches to merge (another architecture, or already merged).
pub fn merged_config(cfg: &ModelConfig) -> Option<ModelConfig> {
    match cfg {
        ModelConfig::Dsflexinet(c) if !c.reparameterized => {
            Some(ModelConfig::Dsflexinet(dsflexinet::Config {
                reparameterized: true,
                ..c.clone()
            }))
        }
        _ => None,
    }
}

/// A network merged into its deployed graph.
pub struct Merged {
    pub vs: nn::VarStore,
    pub config: ModelConfig,
    pub net: Box<dyn Net>,
    /// How many RepConv2d units were merged.
    pub units: usize,
}

/// The merged network of `net` (built from `vs` for `cfg`) in a VarStore of its own, laid out
/// as the deployed graph `merged_config(cfg)` (the released checkpoints' layout): each merged
/// kernel from `net`'s branches, every other variable copied. `net` is left merged.
pub fn merged_model(vs: &nn::VarStore, net: &mut dyn Net, cfg: &ModelConfig) -> Result<Merged> {
    let merged_cfg = merged_config(cfg).ok_or_else(|| {
        Error::msg(format!(
            "{} has no RepConv branches to merge",
            cfg.describe()
        ))
    })?;
    let units = reparameterize(net);
    let mut tensors: BTreeMap<String, Tensor> = vs.variables().into_iter().collect();
    net.visit_convs(&mut |unit| {
        let conv = &unit.conv;
        tensors.insert(format!("{}.weight", conv.name), conv.weight.shallow_clone());
        if let Some(b) = &conv.bias {
            tensors.insert(format!("{}.bias", conv.name), b.shallow_clone());
        }
    });
    let out = nn::VarStore::new(vs.device());
    let merged = build_net(&Vb::new(&out.root()), &merged_cfg)?;
    for (name, mut var) in out.variables() {
        let t = tensors.get(&name).ok_or_else(|| {
            Error::msg(format!(
                "merging {}: the deployed graph's `{name}` has no source",
                cfg.describe()
            ))
        })?;
        tch::no_grad(|| var.copy_(t));
    }
    Ok(Merged {
        vs: out,
        config: merged_cfg,
        net: merged,
        units,
    })
}
