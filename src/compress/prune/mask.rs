//! Channel masks: the masked network (the base network with pruned channels zeroed) and the
//! shrunk network (rebuilt without them), whose outputs agree.

use super::groups::{ChannelGroups, MemberKind};
use crate::error::{Error, Result};
use crate::models::blocks::Vb;
use crate::models::{build_net, ModelConfig, Net};
use std::collections::{BTreeMap, HashMap};
use tch::{nn, Device, Tensor};

/// The kept units of every group (increasing unit ids), in [`ChannelGroups`] order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelMask {
    pub kept: Vec<Vec<i64>>,
}

impl ChannelMask {
    /// Every unit kept.
    pub fn full(groups: &ChannelGroups) -> Self {
        ChannelMask {
            kept: groups
                .groups
                .iter()
                .map(|g| (0..g.units).collect())
                .collect(),
        }
    }

    /// Kept units per group.
    pub fn counts(&self) -> Vec<i64> {
        self.kept.iter().map(|k| k.len() as i64).collect()
    }
}

/// A network rebuilt at the kept widths, with the kept weights.
#[derive(Debug)]
pub struct Shrunk {
    pub vs: nn::VarStore,
    pub config: ModelConfig,
    pub net: Box<dyn Net>,
}

/// The variables of a member and the axis the group indexes in each (those that exist and have
/// that axis: a conv without bias has no `bias`, GRN's gamma and beta are scalars).
fn member_vars(
    module: &str,
    kind: MemberKind,
    vars: &HashMap<String, Tensor>,
) -> Vec<(String, i64)> {
    let names: &[(&str, i64)] = match kind {
        MemberKind::ConvOut => &[("weight", 0), ("bias", 0)],
        MemberKind::ConvIn => &[("weight", 1)],
        MemberKind::BatchNorm => &[
            ("weight", 0),
            ("bias", 0),
            ("running_mean", 0),
            ("running_var", 0),
        ],
        // AdaResNorm's per-channel parameters are [1, C, 1, 1]; GRN's are scalars.
        MemberKind::ChannelNorm => &[("rho", 1), ("gamma", 1), ("beta", 1)],
    };
    names
        .iter()
        .map(|(n, axis)| (format!("{module}.{n}"), *axis))
        .filter(|(name, axis)| vars.get(name).is_some_and(|t| t.dim() as i64 > *axis))
        .collect()
}

impl ChannelGroups {
    /// The masks that make `mask`'s masked network: for each masked variable (pruned filters'
    /// conv weights and biases, their BatchNorms' weights and biases), a 0/1 tensor of its shape.
    pub fn variable_masks(
        &self,
        mask: &ChannelMask,
        vs: &nn::VarStore,
    ) -> Result<BTreeMap<String, Tensor>> {
        self.check_mask(mask)?;
        let vars = vs.variables();
        let mut out: BTreeMap<String, Tensor> = BTreeMap::new();
        for (g, kept) in self.groups.iter().zip(&mask.kept) {
            for m in &g.members {
                if !matches!(m.kind, MemberKind::ConvOut | MemberKind::BatchNorm) {
                    continue;
                }
                let units = g.member_units(m);
                let keep: Vec<f32> = units
                    .iter()
                    .map(|u| f32::from(u8::from(kept.binary_search(u).is_ok())))
                    .collect();
                for suffix in ["weight", "bias"] {
                    let name = format!("{}.{suffix}", m.module);
                    let Some(var) = vars.get(&name) else { continue };
                    let size = var.size();
                    if size[0] != keep.len() as i64 {
                        return Err(Error::msg(format!(
                            "mask: variable `{name}` has {} output channels, group `{}` expects {}",
                            size[0],
                            g.name,
                            keep.len()
                        )));
                    }
                    let mut view = vec![1i64; size.len()];
                    view[0] = size[0];
                    let t = Tensor::from_slice(&keep)
                        .to_device(var.device())
                        .to_kind(var.kind())
                        .reshape(view.as_slice())
                        .expand(size.as_slice(), false)
                        .contiguous();
                    let t = match out.remove(&name) {
                        Some(prev) => prev * t,
                        None => t,
                    };
                    out.insert(name, t);
                }
            }
        }
        Ok(out)
    }

    /// Kept channels of every channel-mixing norm (GRN, ResNorm), by module name.
    pub fn norm_channels(&self, mask: &ChannelMask) -> Result<BTreeMap<String, Vec<i64>>> {
        self.check_mask(mask)?;
        let mut out = BTreeMap::new();
        for (g, kept) in self.groups.iter().zip(&mask.kept) {
            for m in g
                .members
                .iter()
                .filter(|m| m.kind == MemberKind::ChannelNorm)
            {
                let channels = g
                    .member_units(m)
                    .iter()
                    .enumerate()
                    .filter(|(_, u)| kept.binary_search(u).is_ok())
                    .map(|(ch, _)| ch as i64)
                    .collect();
                out.insert(m.module.clone(), channels);
            }
        }
        Ok(out)
    }

    /// Makes `net` (built on `vs`, of [`Self::config`]) the masked network of `mask`: multiplies
    /// the variables by [`Self::variable_masks`] and restricts the channel-mixing norms. Call
    /// again after every optimizer step while training the masked network.
    pub fn apply(&self, mask: &ChannelMask, vs: &nn::VarStore, net: &mut dyn Net) -> Result<()> {
        let masks = self.variable_masks(mask, vs)?;
        let vars = vs.variables();
        tch::no_grad(|| {
            for (name, m) in &masks {
                let mut var = vars[name].shallow_clone();
                let _ = var.f_mul_(m)?;
            }
            Ok::<(), tch::TchError>(())
        })?;
        let mut norms = self.norm_channels(mask)?;
        let mut unknown = None;
        net.visit_channel_norms(&mut |name, kept| match norms.remove(name) {
            Some(channels) => {
                let device = vars.values().next().map_or(Device::Cpu, Tensor::device);
                *kept = Some(Tensor::from_slice(&channels).to_device(device));
            }
            None => unknown = Some(name.to_string()),
        });
        // Every channel-mixing norm must be some group's, and every such member a real layer.
        if let Some(name) = unknown.or_else(|| norms.into_keys().next()) {
            return Err(Error::msg(format!(
                "mask of `{}`: channel norm `{name}` is not matched between the network and its \
                 channel groups",
                self.config.describe()
            )));
        }
        Ok(())
    }

    /// The network at `mask`'s widths with the kept weights of `vs` (a network of
    /// [`Self::config`]): conv output and input channels, BatchNorm parameters and statistics,
    /// classifier inputs. In eval mode its outputs equal the masked network's.
    pub fn shrink(&self, mask: &ChannelMask, vs: &nn::VarStore) -> Result<Shrunk> {
        let config = self.pruned_config(&mask.counts())?;
        let vars = vs.variables();
        // Per variable: (axis, kept indices in the shrunk network's order).
        let mut cuts: HashMap<String, Vec<(i64, Vec<i64>)>> = HashMap::new();
        for (g, kept) in self.groups.iter().zip(&mask.kept) {
            let order = g.order(kept)?;
            for m in &g.members {
                let channels = g.member_channels(m, &order);
                for (name, axis) in member_vars(&m.module, m.kind, &vars) {
                    let entry = cuts.entry(name.clone()).or_default();
                    if entry.iter().any(|(a, _)| *a == axis) {
                        return Err(Error::msg(format!(
                            "shrink: axis {axis} of `{name}` is in two channel groups"
                        )));
                    }
                    entry.push((axis, channels.clone()));
                }
            }
        }
        let shrunk_vs = nn::VarStore::new(vs.device());
        let net = build_net(&Vb::constant(&shrunk_vs.root()), &config)?;
        let mut targets = shrunk_vs.variables();
        tch::no_grad(|| -> Result<()> {
            for (name, base) in &vars {
                let target = targets.remove(name).ok_or_else(|| {
                    Error::msg(format!(
                        "shrink to `{}`: no variable `{name}` in the shrunk network",
                        config.describe()
                    ))
                })?;
                let mut t = base.detach();
                for (axis, idx) in cuts.remove(name).unwrap_or_default() {
                    let idx = Tensor::from_slice(&idx).to_device(t.device());
                    t = t.f_index_select(axis, &idx)?;
                }
                if t.size() != target.size() {
                    return Err(Error::msg(format!(
                        "shrink to `{}`: `{name}` cut to {:?}, the shrunk network has {:?}",
                        config.describe(),
                        t.size(),
                        target.size()
                    )));
                }
                target.shallow_clone().f_copy_(&t)?;
            }
            Ok(())
        })?;
        if let Some(name) = targets.keys().next().or(cuts.keys().next()) {
            return Err(Error::msg(format!(
                "shrink to `{}`: variable `{name}` has no counterpart",
                config.describe()
            )));
        }
        Ok(Shrunk {
            vs: shrunk_vs,
            config,
            net,
        })
    }

    fn check_mask(&self, mask: &ChannelMask) -> Result<()> {
        if mask.kept.len() != self.groups.len() {
            return Err(Error::msg(format!(
                "mask of {} groups for {} groups",
                mask.kept.len(),
                self.groups.len()
            )));
        }
        for (g, kept) in self.groups.iter().zip(&mask.kept) {
            let sorted = kept.windows(2).all(|w| w[0] < w[1]);
            if !sorted || kept.iter().any(|&u| !(0..g.units).contains(&u)) {
                return Err(Error::msg(format!(
                    "mask: group `{}` keeps {kept:?}, not increasing unit ids below {}",
                    g.name, g.units
                )));
            }
        }
        Ok(())
    }
}
