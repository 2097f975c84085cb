//! Channel groups: which channels of which layers go together, and which of them to keep.

use super::mask::ChannelMask;
use super::{cp_family, tfsepnet};
use crate::error::{Error, Result};
use crate::models::{cp_blocks::Channels, ModelConfig};
use std::collections::HashMap;
use tch::{nn, Kind, Tensor};

/// What a member's variables are, and which of their axes the group's channels index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberKind {
    /// A conv's output channels (axis 0 of `weight`, and of `bias` if it has one): the filters
    /// the importance is measured on and the mask zeroes.
    ConvOut,
    /// A dense conv's input channels (axis 1 of `weight`): cut when shrinking, never masked (the
    /// pruned inputs are zero in the masked network).
    ConvIn,
    /// A BatchNorm's channels (weight, bias, running statistics); the mask zeroes weight and bias.
    BatchNorm,
    /// A layer mixing channels' statistics (GRN, ResNorm), restricted to the kept channels in the
    /// masked network (see `models::Net::visit_channel_norms`).
    ChannelNorm,
}

/// Which positions of a group's channel space a member sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Whole,
    /// The first `c / 2` (a TF-SepConv block's frequency branch).
    FirstHalf,
    /// The rest (its time branch).
    SecondHalf,
}

impl Part {
    /// Positions `[lo, hi)` of the part in a space of `width` channels.
    pub fn range(self, width: i64) -> (i64, i64) {
        match self {
            Part::Whole => (0, width),
            Part::FirstHalf => (0, width / 2),
            Part::SecondHalf => (width / 2, width),
        }
    }
}

/// One layer's share of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Module name: the variable names without `.weight`, `.bias`, ... (also NNI's mask keys).
    pub module: String,
    pub kind: MemberKind,
    /// Which of the group's channel orders the layer sees (0 unless [`Layout::Shuffled`]).
    pub space: usize,
    pub part: Part,
    /// Channels of this layer per unit of the group (4 for TF-SepNet-64's grouped stem conv).
    pub per_unit: i64,
}

/// How a group's channels are ordered along the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One order everywhere; the shrunk network keeps the kept units in increasing order.
    Plain,
    /// A TF-SepNet stage: each of `blocks` blocks shuffles the channels (ShuffleNet, two groups)
    /// and splits them into halves. Space k is the order after k shuffles (unit u at position
    /// shuffle^k(u)). The shrunk network's own shuffles must send every kept channel through the
    /// same halves as the base network's, which fixes how many units of each "route" (the
    /// sequence of halves) a width keeps.
    Shuffled { blocks: usize },
}

/// Channels pruned together: the output channels of the convs that feed one residual stream
/// (or one block's expansion, or one stem layer), everything that follows them channel by
/// channel (BatchNorms, depthwise convs, norms) and the inputs of the convs that read them.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelGroup {
    /// E.g. `stages.s2.b5.exp` or `stream after stages.s2.b4`.
    pub name: String,
    /// The entries of the architecture's explicit width list this group sets (several when
    /// residual connections tie blocks' outputs).
    pub entries: Vec<usize>,
    /// Units (channels, or stem groups) in the base network.
    pub units: i64,
    pub layout: Layout,
    pub members: Vec<Member>,
}

/// Two widths that differ in the base network and must keep differing, or the rebuilt network
/// changes shape: a residual add appears where the widths meet (CP-Mobile), or a transition conv
/// disappears (TF-SepNet). Each side is (group index, channels per unit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Distinct {
    pub a: (usize, i64),
    pub b: (usize, i64),
}

/// ShuffleNet's channel shuffle with two groups per `width / 2` channels, as
/// `models::blocks::ChannelShuffle` applies it with `groups = width / 2`: position p goes to
/// `2 (p mod width/2) + p div width/2`.
pub fn shuffle(p: i64, width: i64) -> i64 {
    let n = width / 2;
    2 * (p % n) + p / n
}

/// The route of position `p` (of `width`) through `blocks` shuffle-and-split blocks: bit k set
/// when block k puts it in the second half.
fn route(mut p: i64, width: i64, blocks: usize) -> usize {
    let mut bits = 0;
    for k in 0..blocks {
        p = shuffle(p, width);
        if p >= width / 2 {
            bits |= 1 << k;
        }
    }
    bits
}

/// How many of `width` channels take each route.
fn route_counts(width: i64, blocks: usize) -> Vec<i64> {
    let mut counts = vec![0; 1 << blocks];
    for p in 0..width {
        counts[route(p, width, blocks)] += 1;
    }
    counts
}

impl ChannelGroup {
    /// Position of `unit` in space `space` of the base network.
    pub fn position(&self, space: usize, unit: i64) -> i64 {
        match self.layout {
            Layout::Plain => unit,
            Layout::Shuffled { .. } => (0..space).fold(unit, |p, _| shuffle(p, self.units)),
        }
    }

    /// Whether the group can keep `count` units and still be rebuilt.
    pub fn is_feasible(&self, count: i64) -> bool {
        match self.layout {
            Layout::Plain => (1..=self.units).contains(&count),
            Layout::Shuffled { blocks } => {
                (2..=self.units).contains(&count)
                    && count % 2 == 0
                    && route_counts(count, blocks)
                        .iter()
                        .zip(route_counts(self.units, blocks))
                        .all(|(&need, have)| need <= have)
            }
        }
    }

    /// The smallest feasible count of at least `count` (the base count is always feasible).
    pub fn feasible_at_least(&self, count: i64) -> i64 {
        (count.max(1)..self.units)
            .find(|&c| self.is_feasible(c))
            .unwrap_or(self.units)
    }

    /// The largest feasible count of at most `count`, if any.
    pub fn feasible_at_most(&self, count: i64) -> Option<i64> {
        (1..=count.min(self.units))
            .rev()
            .find(|&c| self.is_feasible(c))
    }

    /// `count` units ranked by (kept in `previous` first, higher `scores` first, lower index
    /// first), within the route quotas of a shuffled group; returned in increasing order.
    pub fn select(&self, scores: &[f64], count: i64, previous: Option<&[i64]>) -> Vec<i64> {
        let was_kept = |u: i64| previous.is_none_or(|p| p.binary_search(&u).is_ok());
        let mut ranked: Vec<i64> = (0..self.units).collect();
        ranked.sort_by(|&a, &b| {
            was_kept(b)
                .cmp(&was_kept(a))
                .then(scores[b as usize].total_cmp(&scores[a as usize]))
                .then(a.cmp(&b))
        });
        let mut kept: Vec<i64> = match self.layout {
            Layout::Plain => ranked.into_iter().take(count as usize).collect(),
            Layout::Shuffled { blocks } => {
                let mut quota = route_counts(count, blocks);
                ranked
                    .into_iter()
                    .filter(|&u| {
                        let r = route(u, self.units, blocks);
                        let take = quota[r] > 0;
                        quota[r] -= i64::from(take);
                        take
                    })
                    .collect()
            }
        };
        kept.sort_unstable();
        kept
    }

    /// For each space, the base position of every channel of the network that keeps `kept`
    /// (increasing unit ids), in the shrunk network's order.
    pub fn order(&self, kept: &[i64]) -> Result<Vec<Vec<i64>>> {
        let count = kept.len() as i64;
        match self.layout {
            Layout::Plain => Ok(vec![kept.to_vec()]),
            Layout::Shuffled { blocks } => {
                // Channel j of the shrunk stream takes the next kept unit of j's route.
                let mut by_route: Vec<std::collections::VecDeque<i64>> =
                    vec![Default::default(); 1 << blocks];
                for &u in kept {
                    by_route[route(u, self.units, blocks)].push_back(u);
                }
                let origin = (0..count)
                    .map(|j| {
                        by_route[route(j, count, blocks)]
                            .pop_front()
                            .ok_or_else(|| {
                                Error::msg(format!(
                                    "group `{}`: the kept channels do not fit the shuffles of a \
                                 {count}-channel stage",
                                    self.name
                                ))
                            })
                    })
                    .collect::<Result<Vec<i64>>>()?;
                Ok((0..=blocks)
                    .map(|k| {
                        let mut order = vec![0; count as usize];
                        for (j, &u) in origin.iter().enumerate() {
                            let shrunk = (0..k).fold(j as i64, |p, _| shuffle(p, count));
                            order[shrunk as usize] = self.position(k, u);
                        }
                        order
                    })
                    .collect())
            }
        }
    }

    /// The member's channel indices (along its pruned axis) that the shrunk network keeps, in
    /// the shrunk network's order.
    pub fn member_channels(&self, member: &Member, order: &[Vec<i64>]) -> Vec<i64> {
        let count = order[0].len() as i64;
        let (lo_new, hi_new) = member.part.range(count);
        let (lo, _) = member.part.range(self.units);
        let k = member.per_unit;
        order[member.space][lo_new as usize..hi_new as usize]
            .iter()
            .flat_map(|&p| (p - lo) * k..(p - lo + 1) * k)
            .collect()
    }

    /// For each channel of the member's pruned axis, its unit.
    pub fn member_units(&self, member: &Member) -> Vec<i64> {
        let (lo, hi) = member.part.range(self.units);
        let mut units = vec![0; ((hi - lo) * member.per_unit) as usize];
        for u in 0..self.units {
            let p = self.position(member.space, u);
            if (lo..hi).contains(&p) {
                for i in 0..member.per_unit {
                    units[((p - lo) * member.per_unit + i) as usize] = u;
                }
            }
        }
        units
    }
}

/// The channel groups of a base network: everything structured pruning needs to know about it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelGroups {
    /// The network pruned from.
    pub config: ModelConfig,
    pub groups: Vec<ChannelGroup>,
    pub distinct: Vec<Distinct>,
}

impl ChannelGroups {
    /// The groups of `config` (the CP-Mobile family and TF-SepNet-64).
    pub fn of(config: &ModelConfig) -> Result<ChannelGroups> {
        config.validate()?;
        let (groups, distinct) = match config {
            ModelConfig::SscpMobile(c) => {
                cp_family::groups(&crate::models::sscp_mobile::FAMILY, &c.channels)
            }
            ModelConfig::CpMobile(c) => {
                cp_family::groups(&crate::models::cp_mobile::FAMILY, &c.channels)
            }
            ModelConfig::Dcase25Baseline(c) => {
                cp_family::groups(&crate::models::dcase25_baseline::FAMILY, &c.channels)
            }
            ModelConfig::Tfsepnet64(c) => tfsepnet::groups(c)?,
            other => {
                return Err(Error::msg(format!(
                    "structured pruning of `{}`: channel groups are known for sscp_mobile, \
                     cp_mobile, dcase25_baseline and tfsepnet64 only",
                    other.describe()
                )))
            }
        };
        Ok(ChannelGroups {
            config: config.clone(),
            groups,
            distinct,
        })
    }

    /// Units of every group in the base network.
    pub fn base_counts(&self) -> Vec<i64> {
        self.groups.iter().map(|g| g.units).collect()
    }

    /// Checks `counts` (one per group) describe a network this base can be shrunk to.
    pub fn check_counts(&self, counts: &[i64]) -> Result<()> {
        let err = |msg: String| Error::msg(format!("pruning `{}`: {msg}", self.config.describe()));
        if counts.len() != self.groups.len() {
            return Err(err(format!(
                "{} channel counts for {} groups",
                counts.len(),
                self.groups.len()
            )));
        }
        for (g, &c) in self.groups.iter().zip(counts) {
            if !g.is_feasible(c) {
                return Err(err(format!(
                    "group `{}` cannot keep {c} of its {} channels{}",
                    g.name,
                    g.units,
                    match g.layout {
                        Layout::Plain => String::new(),
                        Layout::Shuffled { .. } => format!(
                            " (its shuffles need an even count whose routes fit; nearest above: {})",
                            g.feasible_at_least(c)
                        ),
                    }
                )));
            }
        }
        for d in &self.distinct {
            if d.a.1 * counts[d.a.0] == d.b.1 * counts[d.b.0] {
                return Err(err(format!(
                    "groups `{}` and `{}` would both be {} channels wide, which changes the \
                     network (a residual add appears or a transition conv goes)",
                    self.groups[d.a.0].name,
                    self.groups[d.b.0].name,
                    d.b.1 * counts[d.b.0]
                )));
            }
        }
        Ok(())
    }

    /// The architecture's explicit width list for `counts`.
    pub fn widths(&self, counts: &[i64]) -> Result<Vec<i64>> {
        self.check_counts(counts)?;
        let len = self.groups.iter().flat_map(|g| &g.entries).count();
        let mut widths = vec![0; len];
        for (g, &c) in self.groups.iter().zip(counts) {
            for &e in &g.entries {
                widths[e] = c;
            }
        }
        Ok(widths)
    }

    /// The counts an explicit width list keeps; tied entries must agree.
    pub fn counts_of_widths(&self, widths: &[i64]) -> Result<Vec<i64>> {
        let len = self.groups.iter().flat_map(|g| &g.entries).count();
        if widths.len() != len {
            return Err(Error::msg(format!(
                "pruning `{}` to {widths:?}: the width list has {len} entries",
                self.config.describe()
            )));
        }
        let counts = self
            .groups
            .iter()
            .map(|g| {
                let c = widths[g.entries[0]];
                match g.entries.iter().find(|&&e| widths[e] != c) {
                    Some(&e) => Err(Error::msg(format!(
                        "pruning to {widths:?}: entries {} and {} are tied by residual \
                         connections (group `{}`) but differ",
                        g.entries[0] + 1,
                        e + 1,
                        g.name
                    ))),
                    None => Ok(c),
                }
            })
            .collect::<Result<Vec<_>>>()?;
        self.check_counts(&counts)?;
        Ok(counts)
    }

    /// The base architecture at the widths `counts` keep.
    pub fn pruned_config(&self, counts: &[i64]) -> Result<ModelConfig> {
        let widths = self.widths(counts)?;
        let cfg = match &self.config {
            ModelConfig::SscpMobile(c) => ModelConfig::SscpMobile(explicit(c, widths)),
            ModelConfig::CpMobile(c) => ModelConfig::CpMobile(crate::models::cp_mobile::Config {
                channels: Channels::Explicit(widths),
                num_classes: c.num_classes,
            }),
            ModelConfig::Dcase25Baseline(c) => {
                ModelConfig::Dcase25Baseline(crate::models::dcase25_baseline::Config {
                    channels: Channels::Explicit(widths),
                    num_classes: c.num_classes,
                })
            }
            ModelConfig::Tfsepnet64(c) => {
                ModelConfig::Tfsepnet64(crate::models::tfsepnet64::Config {
                    widths: Some(widths),
                    ..c.clone()
                })
            }
            other => return Err(Error::msg(format!("cannot prune `{}`", other.describe()))),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// The default importance of every unit of every group: the L1 norm of its filters (all
    /// weights producing its output channels), summed over the group's convs.
    pub fn importance(&self, vs: &nn::VarStore) -> Result<Vec<Vec<f64>>> {
        let vars = vs.variables();
        let mut rows: HashMap<&str, Vec<f64>> = HashMap::new();
        for m in self.groups.iter().flat_map(|g| &g.members) {
            if m.kind == MemberKind::ConvOut && !rows.contains_key(m.module.as_str()) {
                let name = format!("{}.weight", m.module);
                let w = vars
                    .get(&name)
                    .ok_or_else(|| Error::msg(format!("importance: no variable `{name}`")))?;
                let l1 = w.detach().abs().flatten(1, -1).sum_dim_intlist(
                    [1i64].as_slice(),
                    false,
                    Kind::Double,
                );
                rows.insert(&m.module, tensor_f64(&l1)?);
            }
        }
        Ok(self
            .groups
            .iter()
            .map(|g| {
                let mut scores = vec![0.0; g.units as usize];
                for m in g.members.iter().filter(|m| m.kind == MemberKind::ConvOut) {
                    let l1 = &rows[m.module.as_str()];
                    for (ch, u) in g.member_units(m).into_iter().enumerate() {
                        scores[u as usize] += l1[ch];
                    }
                }
                scores
            })
            .collect())
    }

    /// Keeps the `counts[g]` best units of each group by `importance` (units kept in
    /// `previous` first, so AGP's masks only ever shrink).
    pub fn select(
        &self,
        importance: &[Vec<f64>],
        counts: &[i64],
        previous: Option<&ChannelMask>,
    ) -> Result<ChannelMask> {
        if counts.len() != self.groups.len() || importance.len() != self.groups.len() {
            return Err(Error::msg(format!(
                "select: {} counts and {} score lists for {} groups",
                counts.len(),
                importance.len(),
                self.groups.len()
            )));
        }
        for (i, g) in self.groups.iter().enumerate() {
            if !g.is_feasible(counts[i]) || importance[i].len() != g.units as usize {
                return Err(Error::msg(format!(
                    "select: group `{}` cannot keep {} of {} channels ({} scores)",
                    g.name,
                    counts[i],
                    g.units,
                    importance[i].len()
                )));
            }
        }
        Ok(ChannelMask {
            kept: self
                .groups
                .iter()
                .enumerate()
                .map(|(i, g)| {
                    g.select(
                        &importance[i],
                        counts[i],
                        previous.map(|p| p.kept[i].as_slice()),
                    )
                })
                .collect(),
        })
    }
}

fn explicit(
    c: &crate::models::sscp_mobile::Config,
    widths: Vec<i64>,
) -> crate::models::sscp_mobile::Config {
    crate::models::sscp_mobile::Config {
        channels: Channels::Explicit(widths),
        num_classes: c.num_classes,
    }
}

/// An `f64` score list from a tensor.
pub(super) fn tensor_f64(t: &Tensor) -> Result<Vec<f64>> {
    Ok(Vec::<f64>::try_from(
        &t.to_kind(Kind::Double).flatten(0, -1),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffle_matches_channel_shuffle() {
        // models::blocks::ChannelShuffle with groups = width / 2 on 8 channels.
        let x = Tensor::arange(8, (Kind::Float, tch::Device::Cpu)).reshape([1, 8, 1, 1]);
        let s = crate::models::blocks::ChannelShuffle::new("s".into(), 4);
        let y = s.forward(&x, &crate::models::blocks::Ctx::new(false));
        let y = Vec::<f32>::try_from(&y.flatten(0, -1)).unwrap();
        for p in 0..8 {
            assert_eq!(y[shuffle(p, 8) as usize], p as f32);
        }
    }

    #[test]
    fn routes_split_evenly_for_powers_of_two() {
        assert_eq!(route_counts(64, 2), [16, 16, 16, 16]);
        assert_eq!(route_counts(32, 2), [8, 8, 8, 8]);
        assert_eq!(route_counts(8, 3), [1; 8]);
    }
}
