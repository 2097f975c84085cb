//! The CP-Mobile family (CP-JKU's CP-Mobile, the DCASE2025 baseline, Zhang et al.'s SSCP-Mobile):
//! the channel plan, the blocks and the network they share. Each member's file holds only what
//! sets it apart (a [`Family`] constant) and its configuration.
//!
//! Facts from the public reference code (CP-JKU's `cp_mobile_clean.py`, the DCASE2025 task 1
//! baseline's `models/net.py`, Zhang et al.'s `models/baseline.py`):
//! - Stem `in_c`: two conv-BN-ReLU units, stride 2 each, to C/4 then C channels (C = base width
//!   rounded by [`make_divisible`]). SSCP-Mobile adds a parallel stem `in_c2` with the 1-D
//!   kernels in the other order and sums the two.
//! - Three stages of 3, 2 and 1 inverted-bottleneck blocks (`stages.s1.b1` ... `stages.s3.b6`);
//!   stage widths `make_divisible(C * multiplier^s, 8)` for s = 0, 1, 2; each block: 1x1 expand
//!   conv-BN-ReLU to `make_divisible(in * expansion, 8)`, depthwise conv-BN-ReLU (carrying the
//!   block's stride), 1x1 project conv-BN; a residual add when the block keeps its width (through
//!   a 3x3 average pool, padding 1, when it strides); ReLU after the block (CP-Mobile puts GRN
//!   between the add and that ReLU).
//! - Head `feed_forward`: 1x1 conv (no bias) to the classes, BatchNorm, global average pool.
//! - Every conv without bias, every BatchNorm affine; convs start with variance 2 / fan_out
//!   (`kaiming_normal_(mode="fan_out")`; drawn uniformly here, see `conv`).

use super::blocks::{BatchNorm2d, Conv2d, ConvBn, ConvSpec, Ctx, GlobalAvgPool, Vb};
use super::spec::{check_num_classes, MAX_CHANNELS};
use super::{FieldError, ModelSpec, Net};
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// Blocks per stage (all three members).
pub const N_BLOCKS: [usize; 3] = [3, 2, 1];
/// Total block count.
pub const BLOCKS: usize = 6;
/// Length of an explicit width list: stem hidden and stem output, then (expansion, output) per block.
pub const EXPLICIT_LEN: usize = 2 + 2 * BLOCKS;

/// MobileNet's channel rounding as the reference code uses it: to the nearest multiple of
/// `divisor` (at least `divisor`), one step up if that lost more than 10 %.
pub fn make_divisible(v: f64, divisor: i64) -> i64 {
    let d = divisor as f64;
    // Python's `int(v + d / 2) // d * d` for positive v.
    let mut rounded = ((v + d / 2.0).floor() as i64 / divisor * divisor).max(divisor);
    if (rounded as f64) < 0.9 * v {
        rounded += divisor;
    }
    rounded
}

/// The depthwise convolution of a block, and with it the naming of the block's units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DepthwiseKind {
    /// One 3x3 depthwise conv; units `block.0` (expand), `block.1` (depthwise), `block.2` (project).
    Square,
    /// A (3x1) and a (1x3) depthwise conv in parallel, summed (SSCP-Mobile); units `exp_conv`,
    /// `depth_conv` (3x1), `depth_conv2` (1x3), `proj_conv`. The stem gets the same treatment.
    Separable,
}

/// What distinguishes one member of the family from another.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Family {
    /// The `arch` tag.
    pub arch: &'static str,
    /// Width growth from one stage to the next.
    pub channels_multiplier: f64,
    /// Expansion rate of the inverted bottlenecks.
    pub expansion_rate: f64,
    /// (block number, counting from 1, stride [freq, time]); the other blocks have stride 1.
    pub strides: &'static [(usize, [i64; 2])],
    pub depthwise: DepthwiseKind,
    /// Global response normalisation after each block's residual add (CP-Mobile).
    pub grn: bool,
}

/// The channel widths of a network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channels {
    /// Base width C; every other width follows from the family's rule.
    Base(i64),
    /// Explicit widths (e.g. after structured pruning), per block: `[stem hidden, stem output,
    /// b1 expansion, b1 output, ..., b6 expansion, b6 output]`. A block has its residual add
    /// exactly when its output width equals its input width, as in the reference code.
    Explicit(Vec<i64>),
}

impl Channels {
    /// `width=C` or `widths=a,b,...`.
    pub fn describe(&self) -> String {
        match self {
            Channels::Base(c) => format!("width={c}"),
            Channels::Explicit(w) => format!(
                "widths={}",
                w.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
            ),
        }
    }

    /// Reads `width` or `widths` from `spec` (not both); `default` when neither is set.
    pub fn from_spec(spec: &ModelSpec, default: Option<i64>) -> Result<Self, FieldError> {
        match (spec.width, &spec.widths) {
            (Some(_), Some(_)) => Err((
                "widths",
                format!(
                    "{} takes either `width` (base channels) or `widths` (explicit per-block widths), not both",
                    spec.arch
                ),
            )),
            (Some(c), None) => Ok(Channels::Base(c)),
            (None, Some(w)) => Ok(Channels::Explicit(w.clone())),
            (None, None) => default.map(Channels::Base).ok_or((
                "width",
                format!(
                    "{} needs `width` (base channels) or `widths` ({EXPLICIT_LEN} explicit widths: \
                     stem hidden, stem output, then expansion and output of each of the {BLOCKS} blocks)",
                    spec.arch
                ),
            )),
        }
    }
}

/// Widths and stride of one block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockPlan {
    pub in_ch: i64,
    pub exp_ch: i64,
    pub out_ch: i64,
    pub stride: [i64; 2],
}

/// Every width of a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub stem_hidden: i64,
    pub stem_out: i64,
    pub blocks: Vec<BlockPlan>,
}

impl Family {
    fn stride(&self, block: usize) -> [i64; 2] {
        self.strides
            .iter()
            .find(|(b, _)| *b == block)
            .map_or([1, 1], |(_, s)| *s)
    }

    /// Checks `channels` describes a buildable network; the error names the field.
    pub fn check(&self, channels: &Channels) -> Result<(), FieldError> {
        let in_range = |c: i64| (1..=MAX_CHANNELS).contains(&c);
        match channels {
            Channels::Base(c) if !in_range(*c) => Err((
                "width",
                format!(
                    "{}: base width must be in 1..={MAX_CHANNELS}, got {c}",
                    self.arch
                ),
            )),
            Channels::Explicit(w) if w.len() != EXPLICIT_LEN => Err((
                "widths",
                format!(
                    "{}: `widths` needs {EXPLICIT_LEN} numbers (stem hidden, stem output, then expansion \
                     and output of each of the {BLOCKS} blocks), got {}",
                    self.arch,
                    w.len()
                ),
            )),
            Channels::Explicit(w) => match w.iter().position(|&c| !in_range(c)) {
                Some(i) => Err((
                    "widths",
                    format!(
                        "{}: width #{} is {}; every width must be in 1..={MAX_CHANNELS}",
                        self.arch,
                        i + 1,
                        w[i]
                    ),
                )),
                None => Ok(()),
            },
            Channels::Base(_) => Ok(()),
        }
    }

    /// The widths and strides of every layer; `channels` has passed [`check`](Self::check).
    pub fn plan(&self, channels: &Channels) -> Plan {
        let (stem_hidden, stem_out, widths): (i64, i64, Vec<(i64, Option<i64>)>) = match channels {
            Channels::Base(c) => {
                let base = make_divisible(*c as f64, 8);
                let stage_widths: Vec<i64> = (0..N_BLOCKS.len())
                    .map(|s| {
                        make_divisible(base as f64 * self.channels_multiplier.powf(s as f64), 8)
                    })
                    .collect();
                let outs = N_BLOCKS
                    .iter()
                    .zip(&stage_widths)
                    .flat_map(|(&n, &w)| std::iter::repeat_n((w, None), n))
                    .collect();
                (base / 4, base, outs)
            }
            Channels::Explicit(w) => (
                w[0],
                w[1],
                w[2..].chunks(2).map(|p| (p[1], Some(p[0]))).collect(),
            ),
        };
        let mut in_ch = stem_out;
        let blocks = widths
            .into_iter()
            .enumerate()
            .map(|(i, (out_ch, exp))| {
                let exp_ch =
                    exp.unwrap_or_else(|| make_divisible(in_ch as f64 * self.expansion_rate, 8));
                let block = BlockPlan {
                    in_ch,
                    exp_ch,
                    out_ch,
                    stride: self.stride(i + 1),
                };
                in_ch = out_ch;
                block
            })
            .collect();
        Plan {
            stem_hidden,
            stem_out,
            blocks,
        }
    }

    /// E.g. `sscp_mobile widths=8,32,...` or `dcase25_baseline width=32`.
    pub fn describe(&self, channels: &Channels, num_classes: i64) -> String {
        let mut s = format!("{} {}", self.arch, channels.describe());
        if num_classes != 10 {
            s.push_str(&format!(" classes={num_classes}"));
        }
        s
    }

    /// [`check`](Self::check) plus the class count; the error names the field.
    pub fn validate(&self, channels: &Channels, num_classes: i64) -> Result<(), FieldError> {
        self.check(channels)?;
        check_num_classes(num_classes)
    }
}

/// Default of every member's `num_classes`.
pub fn ten() -> i64 {
    10
}

/// Declares a member's `Config` (channels and classes) and its [`super::Architecture`] impl,
/// which the members share but for their [`Family`] and the default base width (`None`: one of
/// `width` or `widths` is required).
macro_rules! family_config {
    ($family:path, $default_width:expr) => {
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct Config {
            pub channels: $crate::models::cp_blocks::Channels,
            #[serde(default = "crate::models::cp_blocks::ten")]
            pub num_classes: i64,
        }

        impl $crate::models::Architecture for Config {
            type Net = $crate::models::cp_blocks::CpMobileNet;

            /// `width` (base channels) or `widths` (explicit per-block widths).
            fn from_spec(
                spec: &$crate::models::ModelSpec,
            ) -> Result<Self, $crate::models::FieldError> {
                spec.only(&["width", "widths"])?;
                Ok(Config {
                    channels: $crate::models::cp_blocks::Channels::from_spec(spec, $default_width)?,
                    num_classes: 10,
                })
            }

            fn describe(&self) -> String {
                $family.describe(&self.channels, self.num_classes)
            }

            fn num_classes(&self) -> i64 {
                self.num_classes
            }

            fn validate(&self) -> Result<(), $crate::models::FieldError> {
                $family.validate(&self.channels, self.num_classes)
            }

            fn build(&self, vb: &$crate::models::blocks::Vb) -> Self::Net {
                $crate::models::cp_blocks::CpMobileNet::new(
                    vb,
                    &$family,
                    &self.channels,
                    self.num_classes,
                )
            }
        }
    };
}
pub(crate) use family_config;

/// A conv without bias. The reference code starts from `kaiming_normal_(mode="fan_out")`, i.e.
/// variance 2 / fan_out; [`Vb`] draws uniformly, so this draws U(-b, b) with that variance
/// (b = sqrt(3 * 2 / fan_out), torch's `kaiming_uniform_(mode="fan_out")`).
fn conv(vb: &Vb, spec: &ConvSpec) -> Conv2d {
    let fan_out = (spec.out_ch * spec.kernel[0] * spec.kernel[1]).max(1) as f64;
    Conv2d {
        name: vb.name(),
        weight: vb.uniform(
            "weight",
            &[
                spec.out_ch,
                spec.in_ch / spec.groups,
                spec.kernel[0],
                spec.kernel[1],
            ],
            (6.0 / fan_out).sqrt(),
        ),
        bias: None,
        stride: spec.stride,
        padding: spec.padding,
        groups: spec.groups,
    }
}

/// torchvision's `Conv2dNormActivation`: a Sequential of conv (`0`), BatchNorm (`1`) and
/// optionally ReLU; padding (k - 1) / 2 per dimension.
fn conv_bn(vb: &Vb, spec: ConvSpec, relu: bool) -> ConvBn {
    let spec = spec.padding([(spec.kernel[0] - 1) / 2, (spec.kernel[1] - 1) / 2]);
    ConvBn::from_parts(
        vb.name(),
        conv(&vb.sub("0"), &spec),
        Some(BatchNorm2d::new(&vb.sub("1"), spec.out_ch)),
        relu,
    )
}

/// Two stride-2 conv-BN-ReLU units (`<name>.0`, `<name>.1`) with the given kernels.
#[derive(Debug)]
struct StemBranch {
    first: ConvBn,
    second: ConvBn,
}

impl StemBranch {
    fn new(vb: &Vb, kernels: [[i64; 2]; 2], hidden: i64, out: i64) -> Self {
        let unit = |i: usize, cin: i64, cout: i64| {
            let spec = ConvSpec::new(cin, cout, kernels[i]).stride([2, 2]);
            conv_bn(&vb.sub(&i.to_string()), spec, true)
        };
        StemBranch {
            first: unit(0, 1, hidden),
            second: unit(1, hidden, out),
        }
    }

    fn forward(&self, xs: &Tensor, ctx: &Ctx) -> Tensor {
        self.second.forward(&self.first.forward(xs, ctx), ctx)
    }
}

/// The stem: `in_c` (3x3, 3x3), or for separable members `in_c` (3x1, 1x3) + `in_c2` (1x3, 3x1).
#[derive(Debug)]
pub struct Stem {
    /// One branch, or two summed (separable members).
    branches: Vec<StemBranch>,
}

impl Stem {
    pub fn new(vb: &Vb, kind: DepthwiseKind, hidden: i64, out: i64) -> Self {
        match kind {
            DepthwiseKind::Square => Stem {
                branches: vec![StemBranch::new(
                    &vb.sub("in_c"),
                    [[3, 3], [3, 3]],
                    hidden,
                    out,
                )],
            },
            DepthwiseKind::Separable => Stem {
                branches: vec![
                    StemBranch::new(&vb.sub("in_c"), [[3, 1], [1, 3]], hidden, out),
                    StemBranch::new(&vb.sub("in_c2"), [[1, 3], [3, 1]], hidden, out),
                ],
            },
        }
    }

    pub fn forward(&self, xs: &Tensor, ctx: &Ctx) -> Tensor {
        let mut ys = self.branches.iter().map(|b| b.forward(xs, ctx));
        let first = ys.next().unwrap_or_else(|| xs.shallow_clone());
        ys.fold(first, |acc, y| acc + y)
    }

    pub fn visit_convs(&mut self, f: &mut dyn FnMut(&mut ConvBn)) {
        for b in &mut self.branches {
            f(&mut b.first);
            f(&mut b.second);
        }
    }
}

/// Global response normalisation (ConvNeXt V2) with scalar gamma and beta, as CP-Mobile uses it:
/// `gamma * (x * nx) + beta + x`, nx = L2 norm over (F, T) divided by its mean over channels.
#[derive(Debug)]
pub struct Grn {
    pub name: String,
    pub gamma: Tensor,
    pub beta: Tensor,
    /// Channels kept by a structured-pruning mask (int64 indices), `None` outside pruning: the
    /// channel mean of the norms then runs over the kept channels and the others output zero
    /// (beta would otherwise revive them), as in the network without them.
    pub kept: Option<Tensor>,
}

impl Grn {
    pub fn new(vb: &Vb) -> Self {
        Grn {
            name: vb.name(),
            gamma: vb.constant_var("gamma", &[1], 0.0),
            beta: vb.constant_var("beta", &[1], 0.0),
            kept: None,
        }
    }

    pub fn forward(&self, xs: &Tensor, ctx: &Ctx) -> Tensor {
        let ys = match &self.kept {
            None => self.normalize(xs),
            Some(kept) => {
                let part = self.normalize(&xs.index_select(1, kept));
                xs.zeros_like().index_copy(1, kept, &part)
            }
        };
        // torchinfo counts MACs only for `weight`/`bias` tensors: gamma and beta are params only.
        ctx.record(&self.name, "GRN", xs, &ys, || (2, 0));
        ys
    }

    fn normalize(&self, xs: &Tensor) -> Tensor {
        let gx = xs.norm_scalaropt_dim(2.0, [2i64, 3].as_slice(), true);
        let nx = &gx / (gx.mean_dim([1i64].as_slice(), true, None::<tch::Kind>) + 1e-6);
        &self.gamma * (xs * nx) + &self.beta + xs
    }
}

/// The depthwise part of a block: one unit, or (SSCP-Mobile) a (3x1) and a (1x3) unit in
/// parallel, summed.
#[derive(Debug)]
struct Depthwise {
    first: ConvBn,
    parallel: Option<ConvBn>,
}

impl Depthwise {
    fn forward(&self, xs: &Tensor, ctx: &Ctx) -> Tensor {
        let y = self.first.forward(xs, ctx);
        match &self.parallel {
            Some(second) => y + second.forward(xs, ctx),
            None => y,
        }
    }
}

/// The residual path of a block that keeps its width.
#[derive(Debug)]
enum Shortcut {
    Identity,
    /// `AvgPool2d(3, stride, padding 1)` (zero padding counted in the average).
    AvgPool {
        name: String,
        stride: [i64; 2],
    },
}

/// CP-Mobile's inverted-bottleneck block.
#[derive(Debug)]
pub struct CpMobileBlock {
    pub name: String,
    exp: ConvBn,
    depthwise: Depthwise,
    proj: ConvBn,
    shortcut: Option<Shortcut>,
    grn: Option<Grn>,
}

impl CpMobileBlock {
    pub fn new(vb: &Vb, family: &Family, plan: &BlockPlan) -> Self {
        let BlockPlan {
            in_ch,
            exp_ch,
            out_ch,
            stride,
        } = *plan;
        let expand = ConvSpec::new(in_ch, exp_ch, [1, 1]);
        let project = ConvSpec::new(exp_ch, out_ch, [1, 1]);
        let dw = |kernel: [i64; 2]| {
            ConvSpec::new(exp_ch, exp_ch, kernel)
                .stride(stride)
                .groups(exp_ch)
        };
        let (exp, depthwise, proj) = match family.depthwise {
            DepthwiseKind::Square => {
                let seq = vb.sub("block");
                (
                    conv_bn(&seq.sub("0"), expand, true),
                    Depthwise {
                        first: conv_bn(&seq.sub("1"), dw([3, 3]), true),
                        parallel: None,
                    },
                    conv_bn(&seq.sub("2"), project, false),
                )
            }
            DepthwiseKind::Separable => (
                conv_bn(&vb.sub("exp_conv"), expand, true),
                Depthwise {
                    first: conv_bn(&vb.sub("depth_conv"), dw([3, 1]), true),
                    parallel: Some(conv_bn(&vb.sub("depth_conv2"), dw([1, 3]), true)),
                },
                conv_bn(&vb.sub("proj_conv"), project, false),
            ),
        };
        let shortcut = (in_ch == out_ch).then(|| {
            if stride == [1, 1] {
                Shortcut::Identity
            } else {
                Shortcut::AvgPool {
                    name: vb.child_name("shortcut"),
                    stride,
                }
            }
        });
        CpMobileBlock {
            name: vb.name(),
            exp,
            depthwise,
            proj,
            shortcut,
            grn: family.grn.then(|| Grn::new(&vb.sub("after_block_norm"))),
        }
    }

    /// Whether the block has a residual add.
    pub fn has_shortcut(&self) -> bool {
        self.shortcut.is_some()
    }

    pub fn forward(&self, xs: &Tensor, ctx: &Ctx) -> Tensor {
        let y = self.exp.forward(xs, ctx);
        let y = self.depthwise.forward(&y, ctx);
        let y = self.proj.forward(&y, ctx);
        let mut y = match &self.shortcut {
            None => y,
            Some(Shortcut::Identity) => y + xs,
            Some(Shortcut::AvgPool { name, stride }) => {
                let pooled = xs.avg_pool2d([3, 3], *stride, [1, 1], false, true, None);
                ctx.record(name, "AvgPool2d", xs, &pooled, || (0, 0));
                y + pooled
            }
        };
        if let Some(grn) = &self.grn {
            y = grn.forward(&y, ctx);
        }
        y.relu()
    }

    /// Every conv unit of the block, in forward order.
    pub fn visit_convs(&mut self, f: &mut dyn FnMut(&mut ConvBn)) {
        f(&mut self.exp);
        f(&mut self.depthwise.first);
        if let Some(second) = &mut self.depthwise.parallel {
            f(second);
        }
        f(&mut self.proj);
    }
}

/// `feed_forward`: 1x1 conv (no bias, `.0`) to the classes, BatchNorm (`.1`), global average pool.
#[derive(Debug)]
pub struct Classifier {
    unit: ConvBn,
    pool: GlobalAvgPool,
}

impl Classifier {
    pub fn new(vb: &Vb, in_ch: i64, num_classes: i64) -> Self {
        Classifier {
            unit: conv_bn(vb, ConvSpec::new(in_ch, num_classes, [1, 1]), false),
            pool: GlobalAvgPool::new(vb.child_name("2")),
        }
    }

    pub fn forward(&self, xs: &Tensor, ctx: &Ctx) -> Tensor {
        let ys = self.unit.forward(xs, ctx);
        self.pool.forward(&ys, ctx)
    }
}

/// A member of the CP-Mobile family: stem, six blocks in three stages, classifier.
#[derive(Debug)]
pub struct CpMobileNet {
    pub family: Family,
    pub plan: Plan,
    stem: Stem,
    blocks: Vec<CpMobileBlock>,
    head: Classifier,
}

impl CpMobileNet {
    /// Builds the network; `channels` has passed [`Family::check`].
    pub fn new(vb: &Vb, family: &Family, channels: &Channels, num_classes: i64) -> Self {
        let plan = family.plan(channels);
        let stem = Stem::new(vb, family.depthwise, plan.stem_hidden, plan.stem_out);
        let stages = vb.sub("stages");
        let mut blocks = Vec::with_capacity(plan.blocks.len());
        let stage_of = N_BLOCKS
            .iter()
            .enumerate()
            .flat_map(|(s, &n)| std::iter::repeat_n(s + 1, n));
        for (i, (block, stage)) in plan.blocks.iter().zip(stage_of).enumerate() {
            let bvb = stages.sub(&format!("s{stage}")).sub(&format!("b{}", i + 1));
            blocks.push(CpMobileBlock::new(&bvb, family, block));
        }
        let last = plan.blocks.last().map_or(plan.stem_out, |b| b.out_ch);
        CpMobileNet {
            family: *family,
            stem,
            blocks,
            head: Classifier::new(&vb.sub("feed_forward"), last, num_classes),
            plan,
        }
    }

    /// The blocks, in forward order.
    pub fn blocks(&self) -> &[CpMobileBlock] {
        &self.blocks
    }
}

impl Net for CpMobileNet {
    fn forward_ctx(&self, xs: &Tensor, ctx: &Ctx) -> Tensor {
        let mut x = xs.shallow_clone();
        x = self.stem.forward(&x, ctx);
        for block in &self.blocks {
            x = block.forward(&x, ctx);
        }
        self.head.forward(&x, ctx)
    }

    fn visit_convs(&mut self, f: &mut dyn FnMut(&mut ConvBn)) {
        self.stem.visit_convs(f);
        for block in &mut self.blocks {
            block.visit_convs(f);
        }
        f(&mut self.head.unit);
    }

    fn visit_channel_norms(&mut self, f: &mut dyn FnMut(&str, &mut Option<Tensor>)) {
        for grn in self.blocks.iter_mut().filter_map(|b| b.grn.as_mut()) {
            f(&grn.name, &mut grn.kept);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn make_divisible_matches_the_reference_rounding() {
        // Values from the reference networks' widths (base 32/64/96 with their multipliers).
        assert_eq!(make_divisible(32.0 * 2.1, 8), 64);
        assert_eq!(make_divisible(57.6, 8), 56);
        assert_eq!(make_divisible(56.0 * 2.1, 8), 120);
        assert_eq!(make_divisible(32.0 * 1.8f64.powf(2.0), 8), 104);
        assert_eq!(make_divisible(73.6, 8), 72);
        assert_eq!(make_divisible(64.0 * 2.2, 8), 144);
        // The 10 % rule and the minimum.
        assert_eq!(make_divisible(3.0, 8), 8);
        assert_eq!(make_divisible(11.0, 8), 16);
        assert_eq!(make_divisible(19.0, 16), 32);
    }
}
