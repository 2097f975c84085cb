//! TF-SepNet as submitted to DCASE2023 task 1 (Cai et al., technical report, Table 1).
//!
//! Stem: 5x5 conv, stride 2, to 2C channels (no BatchNorm), then the norm. Four stages of
//! TF-SepConv blocks at widths C, 1.5C, 2C, 2.5C (2, 2, 2, 3 blocks), each followed by the norm,
//! the first two by a 2x2 max-pool. Head: 1x1 conv (with bias) to the classes, global average.

use super::blocks::{ConvBn, ConvSpec, Ctx, GlobalAvgPool, MaxPool2d, Norm, NormKind, Vb};
use super::graph::{unsupported, Graph, ValueId};
use super::spec::{check_dropout, check_max_width, check_norm, check_num_classes};
use super::tfsepconv::TfSepConv;
use super::{Architecture, FieldError, ModelSpec, Net};
use crate::error::Result;
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// Stage layout: (width multiplier of C, blocks, max-pool after the stage).
const STAGES: [(f64, usize, bool); 4] = [
    (1.0, 2, true),
    (1.5, 2, true),
    (2.0, 2, false),
    (2.5, 3, false),
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The width hyper-parameter C.
    pub width: i64,
    pub norm: NormKind,
    /// Dropout after each block's 1x1 convs (train mode only).
    pub dropout: f64,
    /// Channel-shuffle groups in every block; `None`: half of each block's channels.
    #[serde(default)]
    pub shuffle_groups: Option<i64>,
    #[serde(default = "ten")]
    pub num_classes: i64,
}

fn ten() -> i64 {
    10
}

/// Python's `round` (ties to even), as the reference implementation would compute `m * C`.
fn scaled(width: i64, m: f64) -> i64 {
    (m * width as f64).round_ties_even() as i64
}

impl Config {
    /// The paper's configuration at width `c`: AdaResNorm, no dropout, default shuffle, 10 classes.
    pub fn new(width: i64, norm: NormKind) -> Self {
        Config {
            width,
            norm,
            dropout: 0.0,
            shuffle_groups: None,
            num_classes: 10,
        }
    }

    /// Channel widths of the four stages.
    pub fn stage_widths(&self) -> [i64; 4] {
        STAGES.map(|(m, _, _)| scaled(self.width, m))
    }
}

impl Architecture for Config {
    type Net = TfSepNet23;

    fn from_spec(spec: &ModelSpec) -> Result<Self, FieldError> {
        spec.only(&[
            "width",
            "norm",
            "resnorm_lambda",
            "dropout",
            "shuffle_groups",
        ])?;
        Ok(Config {
            width: spec
                .width
                .ok_or(("width", "tfsepnet23 needs `width` (C)".to_string()))?,
            norm: spec.norm_kind(None)?,
            dropout: spec.dropout_or_zero()?,
            shuffle_groups: spec.shuffle_groups,
            num_classes: 10,
        })
    }

    fn describe(&self) -> String {
        let mut s = format!("tfsepnet23 C={} {}", self.width, self.norm.describe());
        if let Some(g) = self.shuffle_groups {
            s.push_str(&format!(" shuffle_groups={g}"));
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
        if self.width < 2 {
            return Err((
                "width",
                format!("width C must be at least 2, got {}", self.width),
            ));
        }
        check_max_width("width", self.width)?;
        for w in self.stage_widths() {
            if w % 2 != 0 {
                return Err((
                    "width",
                    format!(
                        "width C={} gives a stage of {w} channels, which cannot be split into two equal \
                         halves; choose C so that C, 1.5C, 2C and 2.5C round to even numbers (e.g. a multiple of 4)",
                        self.width
                    ),
                ));
            }
            if let Some(g) = self.shuffle_groups {
                if g < 1 || w % g != 0 {
                    return Err((
                        "shuffle_groups",
                        format!(
                            "shuffle_groups={g} must divide every stage width {:?}",
                            self.stage_widths()
                        ),
                    ));
                }
            }
        }
        check_dropout(self.dropout)?;
        check_norm(self.norm)?;
        check_num_classes(self.num_classes)
    }

    fn build(&self, vb: &Vb) -> TfSepNet23 {
        TfSepNet23::new(vb, self)
    }
}

/// A block of a [`Staged`] network's stages.
pub(crate) trait StageBlock: std::fmt::Debug {
    fn forward(&self, xs: &Tensor, ctx: &Ctx) -> Tensor;
    fn visit_convs(&mut self, f: &mut dyn FnMut(&mut ConvBn));
    /// The block as graph nodes; blocks without a lowering refuse.
    fn lower(&self, _g: &mut Graph, _x: ValueId) -> Result<ValueId> {
        Err(unsupported())
    }
}

impl StageBlock for TfSepConv {
    fn forward(&self, xs: &Tensor, ctx: &Ctx) -> Tensor {
        TfSepConv::forward(self, xs, ctx)
    }
    fn visit_convs(&mut self, f: &mut dyn FnMut(&mut ConvBn)) {
        TfSepConv::visit_convs(self, f)
    }
    fn lower(&self, g: &mut Graph, x: ValueId) -> Result<ValueId> {
        Ok(TfSepConv::lower(self, g, x))
    }
}

#[derive(Debug)]
pub(crate) struct Stage<B> {
    blocks: Vec<B>,
    norm: Norm,
    pool: Option<MaxPool2d>,
}

/// `stage1`..`stage4` of `layout` (width multiplier, blocks, max-pool after) at `widths`, from
/// `in_ch` channels: each stage's blocks (`make_block(vb, in, out)`), its norm and its pool.
/// Returns the stages and their output width.
pub(crate) fn build_stages<B>(
    vb: &Vb,
    norm: NormKind,
    mut in_ch: i64,
    layout: &[(f64, usize, bool)],
    widths: &[i64],
    make_block: impl Fn(&Vb, i64, i64) -> B,
) -> (Vec<Stage<B>>, i64) {
    let mut stages = Vec::with_capacity(layout.len());
    for (i, ((_, n_blocks, pool), &width)) in layout.iter().zip(widths).enumerate() {
        let svb = vb.sub(&format!("stage{}", i + 1));
        let blocks = (0..*n_blocks)
            .map(|j| {
                make_block(
                    &svb.sub(&format!("block{j}")),
                    if j == 0 { in_ch } else { width },
                    width,
                )
            })
            .collect();
        stages.push(Stage {
            blocks,
            norm: Norm::new(&svb.sub("norm"), norm, width),
            pool: pool.then(|| MaxPool2d::new(svb.child_name("pool"), 2)),
        });
        in_ch = width;
    }
    (stages, in_ch)
}

/// The TF-SepNet skeleton (also that of the BC-ResNet Cai et al. compare with): stem conv and
/// norm, the stages, a 1x1 head conv and the global average.
#[derive(Debug)]
pub(crate) struct Staged<B> {
    pub stem: ConvBn,
    pub stem_norm: Norm,
    pub stages: Vec<Stage<B>>,
    pub head: ConvBn,
    pub pool: GlobalAvgPool,
}

impl<B: StageBlock> Staged<B> {
    pub fn forward(&self, xs: &Tensor, ctx: &Ctx) -> Tensor {
        let mut x = xs.shallow_clone();
        x = self.stem.forward(&x, ctx);
        x = self.stem_norm.forward(&x, ctx);
        for stage in &self.stages {
            for block in &stage.blocks {
                x = block.forward(&x, ctx);
            }
            x = stage.norm.forward(&x, ctx);
            if let Some(pool) = &stage.pool {
                x = pool.forward(&x, ctx);
            }
        }
        x = self.head.forward(&x, ctx);
        self.pool.forward(&x, ctx)
    }

    /// Mirrors [`Staged::forward`] in eval mode.
    pub fn lower(&self) -> Result<Graph> {
        let mut g = Graph::new();
        let input = g.input();
        let mut x = self.stem.lower(&mut g, input);
        x = self.stem_norm.lower(&mut g, x)?;
        for stage in &self.stages {
            for block in &stage.blocks {
                x = block.lower(&mut g, x)?;
            }
            x = stage.norm.lower(&mut g, x)?;
            if let Some(pool) = &stage.pool {
                x = pool.lower(&mut g, x);
            }
        }
        x = self.head.lower(&mut g, x);
        self.pool.lower(&mut g, x);
        Ok(g)
    }

    pub fn visit_convs(&mut self, f: &mut dyn FnMut(&mut ConvBn)) {
        f(&mut self.stem);
        for stage in &mut self.stages {
            for block in &mut stage.blocks {
                block.visit_convs(f);
            }
        }
        f(&mut self.head);
    }
}

#[derive(Debug)]
pub struct TfSepNet23 {
    pub config: Config,
    body: Staged<TfSepConv>,
}

impl TfSepNet23 {
    /// Builds the network; `cfg` must pass [`Config::validate`].
    pub fn new(vb: &Vb, cfg: &Config) -> Self {
        let c0 = 2 * cfg.width;
        let stem_spec = ConvSpec::new(1, c0, [5, 5]).stride([2, 2]).padding([2, 2]);
        let stem = ConvBn::new(&vb.sub("stem"), &stem_spec, false, false);
        let stem_norm = Norm::new(&vb.sub("stem_norm"), cfg.norm, c0);
        let (stages, in_ch) = build_stages(
            vb,
            cfg.norm,
            c0,
            &STAGES,
            &cfg.stage_widths(),
            |bvb, cin, width| TfSepConv::new(bvb, cin, width, cfg.dropout, cfg.shuffle_groups),
        );
        let head_spec = ConvSpec::new(in_ch, cfg.num_classes, [1, 1]).bias(true);
        TfSepNet23 {
            config: cfg.clone(),
            body: Staged {
                stem,
                stem_norm,
                stages,
                head: ConvBn::new(&vb.sub("head"), &head_spec, false, false),
                pool: GlobalAvgPool::new(vb.child_name("pool")),
            },
        }
    }
}

impl Net for TfSepNet23 {
    fn forward_ctx(&self, xs: &Tensor, ctx: &Ctx) -> Tensor {
        self.body.forward(xs, ctx)
    }

    fn visit_convs(&mut self, f: &mut dyn FnMut(&mut ConvBn)) {
        self.body.visit_convs(f)
    }

    fn lower(&self) -> Result<Graph> {
        self.body.lower()
    }
}
