//! Building blocks shared by every model, and the two pieces of plumbing every block uses:
//! [`Vb`] (where a block's variables live and how they start) and [`Ctx`] (how a forward pass
//! runs: train or eval, and an optional [`Probe`] that observes it).
//!
//! The probe is what lets one forward implementation serve training and complexity counting (a
//! probe that records every layer). Blocks also lower themselves to an operator graph
//! (`lower`, see [`super::graph`]), for the INT8 engine and post-training quantization.

use super::graph::{ConvOp, Graph, NormOp, Op, ValueId};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::{nn, Kind, Tensor};

/// Builds variables under a VarStore path (the role of candle's `VarBuilder`).
///
/// `random == false` gives every variable a constant start instead of drawing from torch's
/// global generator: complexity counting and checkpoint loading build throw-away or
/// soon-overwritten models and must not shift the random stream a seeded training run relies on.
#[derive(Debug, Clone)]
pub struct Vb<'a> {
    path: nn::Path<'a>,
    random: bool,
}

impl<'a> Vb<'a> {
    /// Variables start as PyTorch's defaults (random where PyTorch's are).
    pub fn new(path: &nn::Path<'a>) -> Self {
        Vb {
            path: path.clone(),
            random: true,
        }
    }

    /// Variables start as constants; no random numbers are drawn.
    pub fn constant(path: &nn::Path<'a>) -> Self {
        Vb {
            path: path.clone(),
            random: false,
        }
    }

    pub fn sub(&self, name: &str) -> Vb<'a> {
        Vb {
            path: self.path.sub(name),
            random: self.random,
        }
    }

    /// Dotted name of this path (`stage1.block0.freq_dw_conv`); empty at the root.
    pub fn name(&self) -> String {
        self.path.components().collect::<Vec<_>>().join(".")
    }

    /// Dotted name of a child of this path.
    pub fn child_name(&self, child: &str) -> String {
        let base = self.name();
        if base.is_empty() {
            child.to_string()
        } else {
            format!("{base}.{child}")
        }
    }

    /// Trainable variable drawn from U(-bound, bound) (0 when not random).
    pub fn uniform(&self, name: &str, dims: &[i64], bound: f64) -> Tensor {
        let init = if self.random {
            nn::Init::Uniform {
                lo: -bound,
                up: bound,
            }
        } else {
            nn::Init::Const(0.)
        };
        self.path.var(name, dims, init)
    }

    /// Trainable variable filled with `value`.
    pub fn constant_var(&self, name: &str, dims: &[i64], value: f64) -> Tensor {
        self.path.var(name, dims, nn::Init::Const(value))
    }

    /// Non-trainable state (e.g. BatchNorm running statistics) filled with `value`.
    pub fn buffer(&self, name: &str, dims: &[i64], value: f64) -> Tensor {
        let t = Tensor::full(dims, value, (self.path.kind(), self.path.device()));
        self.path.add(name, t, false)
    }
}

/// One executed layer, as the complexity probe sees it. Shapes exclude the batch dimension.
#[derive(Debug, Clone)]
pub struct LayerRecord<'a> {
    pub name: &'a str,
    pub kind: &'a str,
    pub input: Vec<i64>,
    pub output: Vec<i64>,
    pub params: u64,
    pub macs: u64,
}

/// Observes a forward pass. Every method has a pass-through default.
pub trait Probe {
    /// A layer ran.
    fn layer(&self, _layer: &LayerRecord<'_>) {}
}

/// How a forward pass runs.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    /// Train mode: BatchNorm uses and updates batch statistics, dropout is active.
    pub train: bool,
    pub probe: Option<&'a dyn Probe>,
}

impl std::fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("train", &self.train)
            .field("probe", &self.probe.is_some())
            .finish()
    }
}

impl<'a> Ctx<'a> {
    pub fn new(train: bool) -> Self {
        Ctx { train, probe: None }
    }

    pub fn with_probe(train: bool, probe: &'a dyn Probe) -> Self {
        Ctx {
            train,
            probe: Some(probe),
        }
    }

    /// Reports a layer to the probe, if any. `params`/`macs` are only evaluated when observed.
    pub fn record(
        &self,
        name: &str,
        kind: &str,
        xs: &Tensor,
        ys: &Tensor,
        cost: impl FnOnce() -> (u64, u64),
    ) {
        if let Some(probe) = self.probe {
            let (params, macs) = cost();
            probe.layer(&LayerRecord {
                name,
                kind,
                input: xs.size().into_iter().skip(1).collect(),
                output: ys.size().into_iter().skip(1).collect(),
                params,
                macs,
            });
        }
    }
}

fn numel(t: &Tensor) -> u64 {
    t.size().iter().product::<i64>().max(0) as u64
}

/// Geometry of a 2-D convolution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConvSpec {
    pub in_ch: i64,
    pub out_ch: i64,
    pub kernel: [i64; 2],
    pub stride: [i64; 2],
    pub padding: [i64; 2],
    pub groups: i64,
    pub bias: bool,
}

impl ConvSpec {
    /// Stride 1, no padding, one group, no bias.
    pub fn new(in_ch: i64, out_ch: i64, kernel: [i64; 2]) -> Self {
        ConvSpec {
            in_ch,
            out_ch,
            kernel,
            stride: [1, 1],
            padding: [0, 0],
            groups: 1,
            bias: false,
        }
    }
    pub fn stride(mut self, stride: [i64; 2]) -> Self {
        self.stride = stride;
        self
    }
    pub fn padding(mut self, padding: [i64; 2]) -> Self {
        self.padding = padding;
        self
    }
    pub fn groups(mut self, groups: i64) -> Self {
        self.groups = groups;
        self
    }
    pub fn bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }
}

/// `torch.nn.Conv2d` (zero padding, dilation 1).
#[derive(Debug)]
pub struct Conv2d {
    pub name: String,
    /// `[out, in / groups, kh, kw]`.
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub stride: [i64; 2],
    pub padding: [i64; 2],
    pub groups: i64,
}

impl Conv2d {
    /// Variables `weight` (and `bias`) under `vb`, initialised as PyTorch does
    /// (kaiming_uniform with a = sqrt(5), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)), same for bias).
    pub fn new(vb: &Vb, spec: &ConvSpec) -> Self {
        let in_per_group = spec.in_ch / spec.groups.max(1);
        let fan_in = (in_per_group * spec.kernel[0] * spec.kernel[1]).max(1) as f64;
        let bound = 1.0 / fan_in.sqrt();
        let weight = vb.uniform(
            "weight",
            &[spec.out_ch, in_per_group, spec.kernel[0], spec.kernel[1]],
            bound,
        );
        let bias = spec.bias.then(|| vb.uniform("bias", &[spec.out_ch], bound));
        Conv2d {
            name: vb.name(),
            weight,
            bias,
            stride: spec.stride,
            padding: spec.padding,
            groups: spec.groups,
        }
    }

    pub fn forward(&self, xs: &Tensor, ctx: &Ctx) -> Tensor {
        let ys = xs.conv2d(
            &self.weight,
            self.bias.as_ref(),
            self.stride,
            self.padding,
            [1, 1],
            self.groups,
        );
        ctx.record(&self.name, "Conv2d", xs, &ys, || {
            let out = ys.size();
            let (oh, ow) = (out[2] as u64, out[3] as u64);
            // weight numel = out * in/groups * kh * kw: one MAC per weight per output position.
            let mut macs = numel(&self.weight) * oh * ow;
            let mut params = numel(&self.weight);
            if let Some(b) = &self.bias {
                macs += numel(b) * oh * ow;
                params += numel(b);
            }
            (params, macs)
        });
        ys
    }
}

/// `torch.nn.BatchNorm2d` (momentum 0.1, eps 1e-5, affine, tracking running statistics).
#[derive(Debug)]
pub struct BatchNorm2d {
    pub name: String,
    pub weight: Tensor,
    pub bias: Tensor,
    pub running_mean: Tensor,
    pub running_var: Tensor,
    pub momentum: f64,
    pub eps: f64,
}

impl BatchNorm2d {
    pub fn new(vb: &Vb, channels: i64) -> Self {
        BatchNorm2d {
            name: vb.name(),
            weight: vb.constant_var("weight", &[channels], 1.0),
            bias: vb.constant_var("bias", &[channels], 0.0),
            running_mean: vb.buffer("running_mean", &[channels], 0.0),
            running_var: vb.buffer("running_var", &[channels], 1.0),
            momentum: 0.1,
            eps: 1e-5,
        }
    }

    pub fn forward(&self, xs: &Tensor, ctx: &Ctx) -> Tensor {
        // ATen updates the running statistics in place in train mode (unbiased variance), as PyTorch.
        let ys = xs.batch_norm(
            Some(&self.weight),
            Some(&self.bias),
            Some(&self.running_mean),
            Some(&self.running_var),
            ctx.train,
            self.momentum,
            self.eps,
            false,
        );
        ctx.record(&self.name, "BatchNorm2d", xs, &ys, || {
            let c = numel(&self.weight);
            (2 * c, 2 * c)
        });
        ys
    }

    /// The weight and bias of the conv (`weight`, `bias`) this BatchNorm follows, with the
    /// BatchNorm folded in (exact in eval mode). With s = gamma / sqrt(running_var + eps):
    /// W' = W * s per output channel, b' = beta + (b - running_mean) * s. New, detached tensors.
    pub fn fold(&self, weight: &Tensor, bias: Option<&Tensor>) -> (Tensor, Tensor) {
        tch::no_grad(|| {
            let scale = &self.weight.detach() / (self.running_var.detach() + self.eps).sqrt();
            let out = scale.size()[0];
            let weight = weight.detach() * scale.reshape([out, 1, 1, 1]);
            let bias = match bias {
                Some(b) => b.detach(),
                None => Tensor::zeros_like(&scale),
            };
            let bias = self.bias.detach() + (bias - self.running_mean.detach()) * &scale;
            (weight, bias)
        })
    }
}

/// Sub-module names of a [`ConvBn`]'s conv and BatchNorm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitNames {
    /// `conv`, `bn`.
    Plain,
    /// `_conv`, `_bn`: the `ConvBnRelu` of Cai et al.'s released TF-SepNet code, so checkpoints
    /// of that code import by name.
    Underscored,
}

impl UnitNames {
    fn conv_and_bn(self) -> (&'static str, &'static str) {
        match self {
            UnitNames::Plain => ("conv", "bn"),
            UnitNames::Underscored => ("_conv", "_bn"),
        }
    }
}

/// Conv2d, optional BatchNorm2d, optional ReLU: the unit PyTorch's `fuse_modules` fuses and
/// eager quantization quantizes as one op. Variables live under `<name>.conv` and `<name>.bn`
/// (or `_conv`/`_bn`, see [`UnitNames`]).
#[derive(Debug)]
pub struct ConvBn {
    pub name: String,
    pub conv: Conv2d,
    /// `None` when the unit has no BatchNorm or after folding.
    pub bn: Option<BatchNorm2d>,
    pub relu: bool,
}

impl ConvBn {
    pub fn new(vb: &Vb, spec: &ConvSpec, batch_norm: bool, relu: bool) -> Self {
        Self::named(vb, spec, batch_norm, relu, UnitNames::Plain)
    }

    /// [`ConvBn::new`] with the conv and BatchNorm under the names `names` gives.
    pub fn named(vb: &Vb, spec: &ConvSpec, batch_norm: bool, relu: bool, names: UnitNames) -> Self {
        let (conv, bn) = names.conv_and_bn();
        ConvBn {
            name: vb.name(),
            conv: Conv2d::new(&vb.sub(conv), spec),
            bn: batch_norm.then(|| BatchNorm2d::new(&vb.sub(bn), spec.out_ch)),
            relu,
        }
    }

    /// A unit from a conv and BatchNorm built elsewhere: for layouts (e.g. a released
    /// checkpoint's) that keep the two under unrelated names. `name` is the activation point.
    pub fn from_parts(name: String, conv: Conv2d, bn: Option<BatchNorm2d>, relu: bool) -> Self {
        ConvBn {
            name,
            conv,
            bn,
            relu,
        }
    }

    pub fn forward(&self, xs: &Tensor, ctx: &Ctx) -> Tensor {
        let mut ys = self.conv.forward(xs, ctx);
        if let Some(bn) = &self.bn {
            ys = bn.forward(&ys, ctx);
        }
        if self.relu {
            ys = ys.relu();
        }
        ys
    }

    /// The unit as one conv node, its BatchNorm folded in (eval mode).
    pub fn lower(&self, g: &mut Graph, x: ValueId) -> ValueId {
        let (weight, bias) = match &self.bn {
            Some(bn) => {
                let (w, b) = bn.fold(&self.conv.weight, self.conv.bias.as_ref());
                (w, Some(b))
            }
            None => (
                self.conv.weight.detach(),
                self.conv.bias.as_ref().map(Tensor::detach),
            ),
        };
        let op = Op::Conv(ConvOp {
            weight,
            bias,
            stride: self.conv.stride,
            padding: self.conv.padding,
            groups: self.conv.groups,
            relu: self.relu,
        });
        g.push(&self.name, op, &[x])
    }
}

/// Which residual normalisation a model uses.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum NormKind {
    /// `lambda * x + FreqIN(x)`, no parameters.
    ResNorm { lambda: f64 },
    /// `(rho * x + (1 - rho) * FreqIN(x)) * gamma + beta`, rho/gamma/beta per channel.
    AdaResNorm,
}

impl NormKind {
    pub fn describe(&self) -> String {
        match self {
            NormKind::ResNorm { lambda } => format!("ResNorm(lambda={lambda})"),
            NormKind::AdaResNorm => "AdaResNorm".to_string(),
        }
    }
}

/// Frequency-wise instance normalisation of `[B, C, F, T]`: statistics per (batch item,
/// frequency bin) over channels and time; unbiased variance (torch.var's default), eps 1e-5:
/// `(x - mean) / sqrt(var + eps)`.
///
/// Computed as a GroupNorm with one group per bin over the `[B, F, C, T]` view: one fused kernel
/// each way instead of the ten or so elementwise passes (and their backward) of the formula,
/// which made ResNorm the largest cost of a TF-SepNet-64 training step. GroupNorm divides by
/// n = C·T, not n − 1, so with v_b = v·(n−1)/n the same value is
/// `sqrt((n−1)/n) · (x − mean) / sqrt(v_b + eps·(n−1)/n)`: the factor is GroupNorm's weight
/// and the eps is scaled.
pub fn freq_in(xs: &Tensor) -> Tensor {
    let dims = xs.size();
    let (f, n) = (dims[2], dims[1] * dims[3]);
    if n < 2 {
        // The unbiased variance of one value is undefined; keep PyTorch's NaN.
        let mean = xs.mean_dim([1i64, 3].as_slice(), true, None::<Kind>);
        let var = xs.var_dim([1i64, 3].as_slice(), true, true);
        return (xs - mean) / (var + 1e-5).sqrt();
    }
    let shrink = (n - 1) as f64 / n as f64;
    let weight = Tensor::full([f], shrink.sqrt(), (xs.kind(), xs.device()));
    xs.permute([0, 2, 1, 3])
        .group_norm(f, Some(&weight), None::<&Tensor>, 1e-5 * shrink, false)
        .permute([0, 2, 1, 3])
}

/// ResNorm or AdaResNorm over `channels` channels.
#[derive(Debug)]
pub struct Norm {
    pub name: String,
    pub kind: NormKind,
    /// rho, gamma, beta (AdaResNorm only), each `[1, C, 1, 1]`.
    pub ada: Option<(Tensor, Tensor, Tensor)>,
    /// Channels kept by a structured-pruning mask (int64 indices), `None` outside pruning. The
    /// statistics of FreqIN mix channels, so zeroed weights alone cannot make a masked network
    /// equal the shrunk one: with this set the norm runs on the kept channels only and outputs
    /// zeros on the others, exactly as the network without them would.
    pub kept: Option<Tensor>,
}

impl Norm {
    pub fn new(vb: &Vb, kind: NormKind, channels: i64) -> Self {
        let ada = match kind {
            NormKind::ResNorm { .. } => None,
            NormKind::AdaResNorm => {
                let dims = [1, channels, 1, 1];
                Some((
                    vb.constant_var("rho", &dims, 0.5),
                    vb.constant_var("gamma", &dims, 1.0),
                    vb.constant_var("beta", &dims, 0.0),
                ))
            }
        };
        Norm {
            name: vb.name(),
            kind,
            ada,
            kept: None,
        }
    }

    pub fn forward(&self, xs: &Tensor, ctx: &Ctx) -> Tensor {
        let ys = match &self.kept {
            None => self.normalize(xs, self.ada.as_ref()),
            Some(kept) => {
                let ada = self.ada.as_ref().map(|(r, g, b)| {
                    let pick = |t: &Tensor| t.index_select(1, kept);
                    (pick(r), pick(g), pick(b))
                });
                let part = self.normalize(&xs.index_select(1, kept), ada.as_ref());
                xs.zeros_like().index_copy(1, kept, &part)
            }
        };
        let kind = match self.kind {
            NormKind::ResNorm { .. } => "ResNorm",
            NormKind::AdaResNorm => "AdaResNorm",
        };
        ctx.record(&self.name, kind, xs, &ys, || {
            let params = self
                .ada
                .as_ref()
                .map(|(r, g, b)| numel(r) + numel(g) + numel(b))
                .unwrap_or(0);
            (params, 0)
        });
        ys
    }

    fn normalize(&self, xs: &Tensor, ada: Option<&(Tensor, Tensor, Tensor)>) -> Tensor {
        res_norm(xs, self.kind, ada)
    }

    /// The norm as a graph node; a norm restricted to kept channels (a masked network during
    /// pruning) does not lower: shrink the network first.
    pub fn lower(&self, g: &mut Graph, x: ValueId) -> Result<ValueId> {
        if self.kept.is_some() {
            return Err(Error::msg(format!(
                "`{}` is restricted to a pruning mask's channels: shrink the network before \
                 lowering it",
                self.name
            )));
        }
        let ada = self
            .ada
            .as_ref()
            .map(|(r, g, b)| (r.detach(), g.detach(), b.detach()));
        let op = Op::Norm(NormOp {
            kind: self.kind,
            ada,
        });
        Ok(g.push(&self.name, op, &[x]))
    }
}

/// ResNorm (`lambda * x + FreqIN(x)`) or, with its parameters, AdaResNorm.
pub fn res_norm(xs: &Tensor, kind: NormKind, ada: Option<&(Tensor, Tensor, Tensor)>) -> Tensor {
    let normed = freq_in(xs);
    match (kind, ada) {
        (_, Some((rho, gamma, beta))) => (rho * xs + (1.0 - rho) * normed) * gamma + beta,
        // x first: the result takes x's (contiguous) layout, not the permuted view's.
        (NormKind::ResNorm { lambda }, None) => xs * lambda + normed,
        // A norm built as AdaResNorm always has its parameters; fall back to plain FreqIN.
        (NormKind::AdaResNorm, None) => normed,
    }
}

/// `torch.nn.MaxPool2d(k)` (stride k, no padding, floor mode).
#[derive(Debug)]
pub struct MaxPool2d {
    pub name: String,
    pub kernel: i64,
}

impl MaxPool2d {
    pub fn new(name: String, kernel: i64) -> Self {
        MaxPool2d { name, kernel }
    }

    pub fn forward(&self, xs: &Tensor, ctx: &Ctx) -> Tensor {
        let k = self.kernel;
        let ys = xs.max_pool2d([k, k], [k, k], [0, 0], [1, 1], false);
        ctx.record(&self.name, "MaxPool2d", xs, &ys, || (0, 0));
        ys
    }

    pub fn lower(&self, g: &mut Graph, x: ValueId) -> ValueId {
        g.push(
            &self.name,
            Op::MaxPool {
                kernel: self.kernel,
            },
            &[x],
        )
    }
}

/// Global average pooling over frequency and time: `[B, C, F, T] -> [B, C]`.
#[derive(Debug)]
pub struct GlobalAvgPool {
    pub name: String,
}

impl GlobalAvgPool {
    pub fn new(name: String) -> Self {
        GlobalAvgPool { name }
    }

    pub fn forward(&self, xs: &Tensor, ctx: &Ctx) -> Tensor {
        let ys = xs.mean_dim([2i64, 3].as_slice(), false, None::<Kind>);
        ctx.record(&self.name, "AdaptiveAvgPool2d", xs, &ys, || (0, 0));
        ys
    }

    pub fn lower(&self, g: &mut Graph, x: ValueId) -> ValueId {
        let op = Op::Mean {
            dims: vec![2, 3],
            keepdim: false,
        };
        g.push(&self.name, op, &[x])
    }
}

/// ShuffleNet channel shuffle with `groups` groups:
/// `x.reshape(b, c/g, g, f, t).permute(0, 2, 1, 3, 4).reshape(b, c, f, t)`.
#[derive(Debug)]
pub struct ChannelShuffle {
    pub name: String,
    pub groups: i64,
}

impl ChannelShuffle {
    pub fn new(name: String, groups: i64) -> Self {
        ChannelShuffle { name, groups }
    }

    pub fn forward(&self, xs: &Tensor, ctx: &Ctx) -> Tensor {
        let (b, c, f, t) = xs.size4().unwrap_or((0, 0, 0, 0));
        let g = self.groups;
        let ys = xs
            .reshape([b, c / g, g, f, t])
            .permute([0, 2, 1, 3, 4])
            .reshape([b, c, f, t]);
        ctx.record(&self.name, "ChannelShuffle", xs, &ys, || (0, 0));
        ys
    }

    pub fn lower(&self, g: &mut Graph, x: ValueId) -> ValueId {
        g.push(
            &self.name,
            Op::ChannelShuffle {
                groups: self.groups,
            },
            &[x],
        )
    }
}
