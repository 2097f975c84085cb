//! DSFlexiNet (Ramezanee et al., "A Residual CNN with RepConv2d and LearnablePooling for
//! Acoustic Scene Classification", DCASE2025 task 1 technical report), as in the authors'
//! released inference package (`Ramezanee_SUT_Task1/models/net.py`).
//!
//! With base width W (32 in the release):
//! - stem: BatchNorm over the input; RepConv2d 1 -> W/2, stride 2; ReLU; BatchNorm;
//!   RepConv2d W/2 -> W, stride 2; ReLU;
//! - stage 1 and stage 2: three [`DsFlexiNetBlock`]s W -> W plus a skip around the stage, then a
//!   [`ResidualNormalization`]; stage 3: one block W -> 2W (no stage skip), then the norm;
//! - head: [`LearnablePooling`] (2W -> 4W features), BatchNorm1d, dropout, linear classifier.
//!
//! Variable names are those of the released checkpoints (`conv1.0.weight`,
//! `stage1.0.expand_conv.weight`, `stage1_norm.lambda_param`, `pooling.attn_score.weight`,
//! `head_norm.running_var`, ...). The released checkpoints hold the merged graph (every RepConv2d
//! as one 3x3 conv): [`Config::reparameterized`] builds that graph directly so they load by name;
//! the training-time graph (four branches per RepConv2d) merges into it with
//! [`Net::reparameterize`].
//!
//! Two quirks of the released code are kept because the checkpoints and the published
//! complexity depend on them: each block's `expand_norm` BatchNorm has parameters but the forward
//! never applies it (it is counted as parameters, with no MACs, as torchinfo does), and the block
//! applies `spatial_norm` before the spatial conv, not after the expansion.
//!
//! No BatchNorm directly follows a conv here (each precedes one, or a ReLU sits between), so
//! conv-BN folding (`compress::fold`) leaves the network as it is, as PyTorch's `fuse_modules`
//! would; no conv unit carries a BatchNorm.

use super::blocks::{BatchNorm2d, Conv2d, ConvBn, ConvSpec, Ctx, GlobalAvgPool, Vb};
use super::repconv::RepConv2d;
use super::spec::{check_dropout, check_max_width, check_num_classes};
use super::{Architecture, FieldError, ModelSpec, Net};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// The released width W.
const RELEASED_WIDTH: i64 = 32;
/// The released head dropout.
const RELEASED_DROPOUT: f64 = 0.2;
/// Blocks per stage and whether a skip spans the stage.
const STAGES: [(usize, bool); 3] = [(3, true), (3, true), (1, false)];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Base width W: stem W/2 then W channels, stages W, W, 2W; 4W pooled features.
    pub width: i64,
    /// Dropout before the classifier (train mode only).
    pub dropout: f64,
    /// Build the inference graph (each RepConv2d as its merged 3x3 conv, variables
    /// `<name>.0.weight`): the layout of the released checkpoints.
    #[serde(default)]
    pub reparameterized: bool,
    #[serde(default = "ten")]
    pub num_classes: i64,
}

fn ten() -> i64 {
    10
}

impl Config {
    /// The training-time graph at width `width` (dropout 0.2, 10 classes).
    pub fn new(width: i64) -> Self {
        Config {
            width,
            dropout: RELEASED_DROPOUT,
            reparameterized: false,
            num_classes: 10,
        }
    }

    /// The configuration of the released checkpoints (`V1-A.pth` ... `GLOBAL.pth`): width 32,
    /// merged RepConv2d.
    pub fn released() -> Self {
        Config {
            reparameterized: true,
            ..Config::new(RELEASED_WIDTH)
        }
    }
}

impl Architecture for Config {
    type Net = DsFlexiNet;

    fn from_spec(spec: &ModelSpec) -> Result<Self, FieldError> {
        spec.only(&["width", "dropout", "reparameterized"])?;
        let dropout = match spec.dropout {
            Some(_) => spec.dropout_or_zero()?,
            None => RELEASED_DROPOUT,
        };
        Ok(Config {
            dropout,
            reparameterized: spec.reparameterized.unwrap_or(false),
            ..Config::new(spec.width.unwrap_or(RELEASED_WIDTH))
        })
    }

    fn describe(&self) -> String {
        let mut s = format!("dsflexinet W={}", self.width);
        if self.reparameterized {
            s.push_str(" RepConv merged");
        }
        if self.dropout != RELEASED_DROPOUT {
            s.push_str(&format!(" dropout={}", self.dropout));
        }
        if self.num_classes != 10 {
            s.push_str(&format!(" classes={}", self.num_classes));
        }
        s
    }

    fn num_classes(&self) -> i64 {
        self.num_classes
    }

    fn validate(&self) -> Result<(), FieldError> {
        if self.width < 2 || self.width % 2 != 0 {
            return Err((
                "width",
                format!(
                    "width W must be an even number of at least 2 (the stem's first conv has W/2 \
                     channels), got {}",
                    self.width
                ),
            ));
        }
        check_max_width("width", self.width)?;
        check_dropout(self.dropout)?;
        check_num_classes(self.num_classes)
    }

    fn build(&self, vb: &Vb) -> DsFlexiNet {
        DsFlexiNet::new(vb, self)
    }
}

/// `torch.nn.functional.leaky_relu` for a slope in [0, 1].
fn leaky_relu(xs: &Tensor, slope: f64) -> Tensor {
    xs.maximum(&(xs * slope))
}

/// A conv unit without BatchNorm or ReLU (the activations here are not fusable ReLUs).
fn plain_conv(vb: &Vb, spec: &ConvSpec) -> ConvBn {
    ConvBn::from_parts(vb.name(), Conv2d::new(vb, spec), None, false)
}

/// A RepConv2d in the graph the config asks for.
fn rep_conv(vb: &Vb, spec: &ConvSpec, merged: bool) -> RepConv2d {
    if merged {
        RepConv2d::merged(vb, spec)
    } else {
        RepConv2d::new(vb, spec)
    }
}

/// `lambda * x + InstanceNorm2d(x)`: `lambda_param` `[C, 1, 1]` and an affine instance norm
/// (statistics per item and channel over frequency and time, biased variance, eps 1e-5, no
/// running statistics) under `instance_norm`.
#[derive(Debug)]
pub struct ResidualNormalization {
    pub name: String,
    pub lambda: Tensor,
    pub weight: Tensor,
    pub bias: Tensor,
    instance_norm: String,
}

impl ResidualNormalization {
    pub fn new(vb: &Vb, channels: i64) -> Self {
        let ivb = vb.sub("instance_norm");
        ResidualNormalization {
            name: vb.name(),
            lambda: vb.constant_var("lambda_param", &[channels, 1, 1], 1.0),
            weight: ivb.constant_var("weight", &[channels], 1.0),
            bias: ivb.constant_var("bias", &[channels], 0.0),
            instance_norm: ivb.name(),
        }
    }

    pub fn forward(&self, xs: &Tensor, ctx: &Ctx) -> Tensor {
        let normed = xs.instance_norm(
            Some(&self.weight),
            Some(&self.bias),
            None::<&Tensor>,
            None::<&Tensor>,
            true,
            0.1,
            1e-5,
            false,
        );
        // torchinfo: the affine InstanceNorm2d counts 2 MACs per channel; lambda none.
        ctx.record(&self.instance_norm, "InstanceNorm2d", xs, &normed, || {
            let c = self.weight.numel() as u64;
            (2 * c, 2 * c)
        });
        let ys = &self.lambda * xs + normed;
        ctx.record(&self.name, "ResidualNorm", xs, &ys, || {
            (self.lambda.numel() as u64, 0)
        });
        ys
    }
}

/// Attention-weighted plus average pooling: a normalised copy of x gives per-channel scores
/// (1x1 conv C -> C/2, ResidualNormalization, LeakyReLU 0.1, 1x1 conv C/2 -> C), a softmax over
/// all (frequency, time) positions turns them into weights; the output is
/// `[sum(x * weights), mean(x)]`, 2C features.
#[derive(Debug)]
pub struct LearnablePooling {
    pub name: String,
    bn_input: ResidualNormalization,
    attn_conv: ConvBn,
    bn_attn: ResidualNormalization,
    attn_score: ConvBn,
    global_avg_pool: GlobalAvgPool,
    attention: String,
}

impl LearnablePooling {
    pub fn new(vb: &Vb, channels: i64) -> Self {
        let hidden = channels / 2;
        LearnablePooling {
            name: vb.name(),
            bn_input: ResidualNormalization::new(&vb.sub("bn_input"), channels),
            attn_conv: plain_conv(
                &vb.sub("attn_conv"),
                &ConvSpec::new(channels, hidden, [1, 1]),
            ),
            bn_attn: ResidualNormalization::new(&vb.sub("bn_attn"), hidden),
            attn_score: plain_conv(
                &vb.sub("attn_score"),
                &ConvSpec::new(hidden, channels, [1, 1]),
            ),
            global_avg_pool: GlobalAvgPool::new(vb.child_name("global_avg_pool")),
            attention: vb.child_name("attention"),
        }
    }

    pub fn forward(&self, xs: &Tensor, ctx: &Ctx) -> Tensor {
        let x_norm = self.bn_input.forward(xs, ctx);
        let a = self.attn_conv.forward(&x_norm, ctx);
        let a = leaky_relu(&self.bn_attn.forward(&a, ctx), 0.1);
        let scores = self.attn_score.forward(&a, ctx);
        let weights = scores.flatten(2, 3).softmax(-1, Kind::Float).view_as(xs);
        let attn_pooled = (xs * weights).sum_dim_intlist([2i64, 3].as_slice(), false, Kind::Float);
        ctx.record(&self.attention, "AttentionPool", xs, &attn_pooled, || {
            (0, 0)
        });
        let attn_pooled = attn_pooled;
        let gap = self.global_avg_pool.forward(xs, ctx);
        Tensor::cat(&[attn_pooled, gap], 1)
    }

    pub fn visit_convs(&mut self, f: &mut dyn FnMut(&mut ConvBn)) {
        f(&mut self.attn_conv);
        f(&mut self.attn_score);
    }
}

/// The residual block: `LeakyReLU(RepConv_dw(BN(LeakyReLU(conv1x1(BN(x)))))) + conv1x1(x)`.
///
/// Sub-modules keep the released names: `input_norm`, `input_scaling` (the skip's 1x1 conv,
/// present even when the width does not change), `expand_conv` (1x1, in -> out: despite the name
/// it does not expand), `expand_norm` (never applied, see the module docs), `spatial_norm`,
/// `spatial_conv` (depthwise RepConv2d).
#[derive(Debug)]
pub struct DsFlexiNetBlock {
    pub name: String,
    input_norm: BatchNorm2d,
    input_scaling: ConvBn,
    expand_conv: ConvBn,
    expand_norm: BatchNorm2d,
    spatial_conv: RepConv2d,
    spatial_norm: BatchNorm2d,
}

impl DsFlexiNetBlock {
    pub fn new(vb: &Vb, in_ch: i64, out_ch: i64, merged: bool) -> Self {
        // Built in the released module's order, so a seeded build draws as PyTorch does.
        let input_norm = BatchNorm2d::new(&vb.sub("input_norm"), in_ch);
        let pointwise = ConvSpec::new(in_ch, out_ch, [1, 1]);
        let input_scaling = plain_conv(&vb.sub("input_scaling"), &pointwise);
        let expand_conv = plain_conv(&vb.sub("expand_conv"), &pointwise);
        let expand_norm = BatchNorm2d::new(&vb.sub("expand_norm"), out_ch);
        let depthwise = ConvSpec::new(out_ch, out_ch, [3, 3]).groups(out_ch);
        let spatial_conv = rep_conv(&vb.sub("spatial_conv"), &depthwise, merged);
        let spatial_norm = BatchNorm2d::new(&vb.sub("spatial_norm"), out_ch);
        DsFlexiNetBlock {
            name: vb.name(),
            input_norm,
            input_scaling,
            expand_conv,
            expand_norm,
            spatial_conv,
            spatial_norm,
        }
    }

    pub fn forward(&self, xs: &Tensor, ctx: &Ctx) -> Tensor {
        let residual = self.input_scaling.forward(xs, ctx);
        let out = self.input_norm.forward(xs, ctx);
        let out = self.expand_conv.conv.forward(&out, ctx);
        let out = leaky_relu(&out, 0.01);
        // The released forward skips `expand_norm`; torchinfo still counts its parameters.
        ctx.record(&self.expand_norm.name, "BN (unused)", &out, &out, || {
            (2 * self.expand_norm.weight.numel() as u64, 0)
        });
        let out = self.spatial_norm.forward(&out, ctx);
        let out = self.spatial_conv.forward(&out, ctx);
        let out = leaky_relu(&out, 0.01);
        out + residual
    }

    pub fn visit_convs(&mut self, f: &mut dyn FnMut(&mut ConvBn)) {
        f(&mut self.input_scaling);
        f(&mut self.expand_conv);
        self.spatial_conv.visit_convs(f);
    }

    pub fn reparameterize(&mut self) -> usize {
        self.spatial_conv.reparameterize() as usize
    }
}

/// `torch.nn.Linear`.
#[derive(Debug)]
pub struct Linear {
    pub name: String,
    /// `[out, in]`.
    pub weight: Tensor,
    pub bias: Tensor,
}

impl Linear {
    /// PyTorch's initialisation: weight and bias from U(-1/sqrt(in), 1/sqrt(in)).
    pub fn new(vb: &Vb, in_features: i64, out_features: i64) -> Self {
        let bound = 1.0 / (in_features.max(1) as f64).sqrt();
        Linear {
            name: vb.name(),
            weight: vb.uniform("weight", &[out_features, in_features], bound),
            bias: vb.uniform("bias", &[out_features], bound),
        }
    }

    pub fn forward(&self, xs: &Tensor, ctx: &Ctx) -> Tensor {
        let ys = xs.linear(&self.weight, Some(&self.bias));
        ctx.record(&self.name, "Linear", xs, &ys, || {
            let n = (self.weight.numel() + self.bias.numel()) as u64;
            (n, n)
        });
        ys
    }
}

#[derive(Debug)]
struct Stage {
    blocks: Vec<DsFlexiNetBlock>,
    /// A skip around the whole stage (stages 1 and 2).
    skip: bool,
    norm: ResidualNormalization,
}

#[derive(Debug)]
pub struct DsFlexiNet {
    pub config: Config,
    input_norm: BatchNorm2d,
    conv1: RepConv2d,
    norm1: BatchNorm2d,
    conv2: RepConv2d,
    stages: Vec<Stage>,
    pooling: LearnablePooling,
    /// `BatchNorm1d` over the pooled features (the same computation on `[B, C]`).
    head_norm: BatchNorm2d,
    classifier: Linear,
}

impl DsFlexiNet {
    /// Builds the network; `cfg` must pass [`Config::validate`].
    pub fn new(vb: &Vb, cfg: &Config) -> Self {
        let w = cfg.width;
        let merged = cfg.reparameterized;
        let input_norm = BatchNorm2d::new(&vb.sub("input_norm"), 1);
        let stem = |name: &str, cin, cout| {
            let spec = ConvSpec::new(cin, cout, [3, 3]).stride([2, 2]);
            rep_conv(&vb.sub(name), &spec, merged)
        };
        let conv1 = stem("conv1", 1, w / 2);
        let norm1 = BatchNorm2d::new(&vb.sub("norm1"), w / 2);
        let conv2 = stem("conv2", w / 2, w);
        let widths = [w, w, 2 * w];
        let mut in_ch = w;
        let mut stages = Vec::with_capacity(STAGES.len());
        for (i, ((n_blocks, skip), out_ch)) in STAGES.iter().zip(widths).enumerate() {
            let name = format!("stage{}", i + 1);
            let svb = vb.sub(&name);
            let blocks = (0..*n_blocks)
                .map(|j| {
                    let cin = if j == 0 { in_ch } else { out_ch };
                    DsFlexiNetBlock::new(&svb.sub(&j.to_string()), cin, out_ch, merged)
                })
                .collect();
            stages.push(Stage {
                blocks,
                skip: *skip,
                norm: ResidualNormalization::new(&vb.sub(&format!("{name}_norm")), out_ch),
            });
            in_ch = out_ch;
        }
        DsFlexiNet {
            config: cfg.clone(),
            input_norm,
            conv1,
            norm1,
            conv2,
            stages,
            pooling: LearnablePooling::new(&vb.sub("pooling"), in_ch),
            head_norm: BatchNorm2d::new(&vb.sub("head_norm"), 2 * in_ch),
            classifier: Linear::new(&vb.sub("classifier"), 2 * in_ch, cfg.num_classes),
        }
    }
}

impl Net for DsFlexiNet {
    fn forward_ctx(&self, xs: &Tensor, ctx: &Ctx) -> Tensor {
        let x = xs.shallow_clone();
        let x = self.input_norm.forward(&x, ctx);
        let x = self.conv1.forward(&x, ctx).relu();
        let x = self.norm1.forward(&x, ctx);
        let mut x = self.conv2.forward(&x, ctx).relu();
        for stage in &self.stages {
            let mut y = x.shallow_clone();
            for block in &stage.blocks {
                y = block.forward(&y, ctx);
            }
            let y = if stage.skip { y + &x } else { y };
            x = stage.norm.forward(&y, ctx);
        }
        let x = self.pooling.forward(&x, ctx);
        let x = self.head_norm.forward(&x, ctx);
        let x = x.dropout(self.config.dropout, ctx.train);
        self.classifier.forward(&x, ctx)
    }

    fn visit_convs(&mut self, f: &mut dyn FnMut(&mut ConvBn)) {
        self.conv1.visit_convs(f);
        self.conv2.visit_convs(f);
        for stage in &mut self.stages {
            for block in &mut stage.blocks {
                block.visit_convs(f);
            }
        }
        self.pooling.visit_convs(f);
    }

    fn reparameterize(&mut self) -> usize {
        let mut merged =
            self.conv1.reparameterize() as usize + self.conv2.reparameterize() as usize;
        for stage in &mut self.stages {
            for block in &mut stage.blocks {
                merged += block.reparameterize();
            }
        }
        merged
    }
}
