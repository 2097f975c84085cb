//! NNI 3.x pruning masks: `torch.save` of `{module_name: {"weight": mask, "bias": mask}}`, each
//! mask a 0/1 float tensor shaped like the parameter, zeroing whole output channels (the
//! authors' `c64_mask_1.pth`, applied with `ModelSpeedup` to the unpruned base network).

use super::groups::{ChannelGroups, MemberKind, Part};
use crate::error::{Error, Result};
use crate::models::blocks::Vb;
use crate::models::build_net;
use crate::models::checkpoint::{self, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use tch::{nn, Device};

/// The explicit widths an NNI mask file prunes `groups`' base network to.
pub fn import_nni_masks(path: &Path, groups: &ChannelGroups) -> Result<Vec<i64>> {
    let ckpt = checkpoint::read(path)?;
    groups.widths(&nni_mask_counts(path, &ckpt.root, groups)?)
}

/// Kept units per group of the masks in `root` (the loaded file; `path` names it in errors).
/// Groups no mask touches keep every channel. Refuses non-0/1 values, shapes other than the base
/// network's, masks that cut inside a channel, masks on the class outputs, and layers of one
/// group that keep different numbers of channels.
pub fn nni_mask_counts(path: &Path, root: &Value, groups: &ChannelGroups) -> Result<Vec<i64>> {
    let fail = |key: &str, msg: String| Error::file(path, format!("mask `{key}`: {msg}"));
    let vs = nn::VarStore::new(Device::Cpu);
    tch::no_grad(|| build_net(&Vb::constant(&vs.root()), &groups.config))?;
    let shapes: HashMap<String, Vec<i64>> = vs
        .variables()
        .into_iter()
        .map(|(k, t)| (k, t.size()))
        .collect();
    // Module -> (group, member) of every layer whose output channels a group holds.
    let mut producers = HashMap::new();
    for (gi, g) in groups.groups.iter().enumerate() {
        for m in &g.members {
            if matches!(m.kind, MemberKind::ConvOut | MemberKind::BatchNorm) {
                producers.insert(m.module.as_str(), (gi, m));
            }
        }
    }
    let entries = root.as_map().ok_or_else(|| {
        Error::file(
            path,
            format!(
                "an NNI mask file holds a dict of module names, not a `{}`",
                root.type_name()
            ),
        )
    })?;
    // Per group, per (space, part): (first key, kept units).
    let mut seen: Vec<BTreeMap<(usize, u8), (String, i64)>> =
        vec![BTreeMap::new(); groups.groups.len()];
    for (module, params) in entries {
        let module = module
            .as_str()
            .ok_or_else(|| Error::file(path, format!("a `{}` key", module.type_name())))?
            .to_string();
        let params = params.as_map().ok_or_else(|| {
            fail(
                &module,
                format!("a `{}`, not a dict of parameter masks", params.type_name()),
            )
        })?;
        for (param, t) in params {
            let key = format!("{module}.{}", param.as_str().unwrap_or("?"));
            let t = t
                .as_tensor()
                .ok_or_else(|| fail(&key, format!("a `{}`, not a tensor", t.type_name())))?;
            let shape = shapes.get(&key).ok_or_else(|| {
                fail(
                    &key,
                    format!("`{}` has no parameter `{key}`", groups.config.describe()),
                )
            })?;
            if &t.shape != shape {
                return Err(fail(
                    &key,
                    format!(
                        "shape {:?}, the base network's parameter is {shape:?}",
                        t.shape
                    ),
                ));
            }
            let values = t.to_f32().map_err(|e| fail(&key, e))?;
            if let Some(v) = values.iter().find(|&&v| v != 0.0 && v != 1.0) {
                return Err(fail(&key, format!("value {v}: a mask holds only 0 and 1")));
            }
            let per_channel = values.len() / shape[0].max(1) as usize;
            let kept: Vec<bool> = values
                .chunks(per_channel.max(1))
                .enumerate()
                .map(|(ch, row)| {
                    if row.iter().all(|&v| v == row[0]) {
                        Ok(row[0] == 1.0)
                    } else {
                        Err(fail(
                            &key,
                            format!("output channel {ch} is partly masked: structured pruning masks whole channels"),
                        ))
                    }
                })
                .collect::<Result<_>>()?;
            let Some(&(gi, member)) = producers.get(module.as_str()) else {
                if kept.iter().all(|&k| k) {
                    continue;
                }
                return Err(fail(
                    &key,
                    "prunes output channels of a layer whose outputs cannot be pruned (the class \
                     outputs)"
                        .into(),
                ));
            };
            let g = &groups.groups[gi];
            // A unit is kept when all its channels are (a TF-SepNet stem group's four outputs).
            let units = g.member_units(member);
            let mut unit_kept: BTreeMap<i64, Vec<bool>> = BTreeMap::new();
            for (u, k) in units.iter().zip(&kept) {
                unit_kept.entry(*u).or_default().push(*k);
            }
            let mut n = 0;
            for (u, ks) in &unit_kept {
                if ks.iter().any(|&k| k != ks[0]) {
                    return Err(fail(
                        &key,
                        format!(
                            "keeps only some of the {} channels of unit {u} of group `{}`",
                            ks.len(),
                            g.name
                        ),
                    ));
                }
                n += i64::from(ks[0]);
            }
            let part = member.part as u8;
            match seen[gi].get(&(member.space, part)) {
                Some((other, m)) if *m != n => {
                    return Err(fail(
                        &key,
                        format!(
                            "keeps {n} channels of group `{}`, `{other}` keeps {m}: a group's \
                             layers are pruned together",
                            g.name
                        ),
                    ))
                }
                Some(_) => {}
                None => {
                    seen[gi].insert((member.space, part), (key.clone(), n));
                }
            }
        }
    }
    groups
        .groups
        .iter()
        .zip(&seen)
        .map(|(g, cells)| {
            // Each space's count: its whole-width layers', or its two halves' together.
            let mut counts: Vec<(String, i64)> = Vec::new();
            let spaces: std::collections::BTreeSet<usize> = cells.keys().map(|k| k.0).collect();
            for s in spaces {
                let cell = |p: Part| cells.get(&(s, p as u8));
                if let Some((key, n)) = cell(Part::Whole) {
                    counts.push((key.clone(), *n));
                }
                match (cell(Part::FirstHalf), cell(Part::SecondHalf)) {
                    (Some((key, a)), Some((_, b))) => counts.push((key.clone(), a + b)),
                    (Some((key, _)), None) | (None, Some((key, _)))
                        if cell(Part::Whole).is_none() =>
                    {
                        return Err(fail(
                            key,
                            format!(
                                "masks one half of group `{}` only: its width is unknown",
                                g.name
                            ),
                        ))
                    }
                    _ => {}
                }
            }
            match counts.split_first() {
                None => Ok(g.units),
                Some(((key, n), rest)) => match rest.iter().find(|(_, m)| m != n) {
                    Some((other, m)) => Err(fail(
                        other,
                        format!(
                            "keeps {m} channels of group `{}`, `{key}` keeps {n}",
                            g.name
                        ),
                    )),
                    None => Ok(*n),
                },
            }
        })
        .collect()
}
