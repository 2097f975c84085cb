//! TF-SepNet-64 (Cai et al., DCASE2024 technical report, Table 2), also the backbone of Zhou et
//! al.'s AdapTF-SepNet (DCASE2025).
//!
//! Stem: 3x3 conv-BN-ReLU, stride 2, to C/2 channels, then a grouped (C/2 groups) 3x3
//! conv-BN-ReLU, stride 2, to 2C. Then ResNorm (lambda 0.1, no parameters) and four stages of
//! TF-SepConv blocks at widths C, 1.5C, 2C, 2.5C (2, 2, 2, 3 blocks), each followed by ResNorm,
//! the first three by a 2x2 max-pool (depth 17; depth 16 has no pool before the last stage).
//! Head: 1x1 conv (with bias) to the classes, global average.
//!
//! Explicit widths (`widths`, e.g. after structured pruning, see [`Widths`]) replace the rule's
//! C/2, 2C, C, 1.5C, 2C, 2.5C.
//!
//! Variable names are those of the released code's state dict (Zhou et al.'s `TFSepNet`, the
//! Lightning module's `backbone.` prefix removed): `conv_layers.{0,1}`, `middle_layers.<i>` (the
//! index of the layer in the released `nn.Sequential`, norms and pools included) and
//! `classifier.conv`, so a released checkpoint imports by name.

use super::blocks::{
    ConvBn, ConvSpec, Ctx, GlobalAvgPool, MaxPool2d, Norm, NormKind, UnitNames, Vb,
};
use super::graph::Graph;
use super::spec::{check_dropout, check_max_width, check_num_classes, MAX_CHANNELS};
use super::tfsepconv::TfSepConv;
use super::{Architecture, FieldError, ModelSpec, Net};
use crate::error::Result;
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// ResNorm's identity weight in every norm of TF-SepNet-64.
const RESNORM_LAMBDA: f64 = 0.1;

/// Stage widths in halves of C (the released code's `int(m * C)` for m = 1, 1.5, 2, 2.5).
const STAGE_HALVES: [i64; 4] = [2, 3, 4, 5];
/// TF-SepConv blocks per stage.
pub const STAGE_BLOCKS: [usize; 4] = [2, 2, 2, 3];
/// Output channels of the grouped stem conv per input channel (2C from C/2).
pub const STEM_FANOUT: i64 = 4;
/// Length of an explicit width list: stem hidden, then the four stage widths.
pub const EXPLICIT_LEN: usize = 1 + STAGE_BLOCKS.len();

/// One entry of the released code's `middle_layers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    Norm,
    Pool,
    /// A TF-SepConv block of stage `stage` (0 to 3).
    Block {
        stage: usize,
    },
}

/// `middle_layers` of the released code's `cfg[depth]`.
pub fn layout(depth: i64) -> Vec<Entry> {
    use Entry::{Block, Norm, Pool};
    let mut layers = vec![Norm];
    for (stage, &blocks) in STAGE_BLOCKS.iter().enumerate() {
        // Depth 17 inserts the extra max-pool before the last stage.
        if stage == 1 || stage == 2 || (stage == 3 && depth == 17) {
            layers.push(Pool);
        }
        layers.extend(std::iter::repeat_n(Block { stage }, blocks));
        layers.push(Norm);
    }
    layers
}

/// Every width of a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Widths {
    /// Output of the first stem conv, and the group count of the second, whose output is
    /// [`STEM_FANOUT`] times as wide.
    pub stem_hidden: i64,
    /// Width of each stage's blocks (even: a block splits its channels into two halves).
    pub stages: [i64; 4],
}

impl Widths {
    /// The rule's widths for base width C.
    pub fn of_base(c: i64) -> Self {
        Widths {
            stem_hidden: c / 2,
            stages: STAGE_HALVES.map(|h| h * c / 2),
        }
    }

    pub fn stem_out(&self) -> i64 {
        STEM_FANOUT * self.stem_hidden
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The base channel count C (64 in the reports).
    pub width: i64,
    /// 16, or 17: an extra max-pool before the last stage (the reports' network).
    pub depth: i64,
    /// Dropout after each block's 1x1 convs (train mode only).
    pub dropout: f64,
    /// Explicit widths `[stem hidden, stage 1, ..., stage 4]` (e.g. after structured pruning);
    /// `width` is then unused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub widths: Option<Vec<i64>>,
    #[serde(default = "ten")]
    pub num_classes: i64,
}

fn ten() -> i64 {
    10
}

impl Default for Config {
    /// The reports' network: C = 64, depth 17, the released code's dropout 0.1, 10 classes.
    fn default() -> Self {
        Config {
            width: 64,
            depth: 17,
            dropout: 0.1,
            widths: None,
            num_classes: 10,
        }
    }
}

impl Config {
    /// The widths of every layer; `self` has passed [`Architecture::validate`].
    pub fn widths(&self) -> Widths {
        match &self.widths {
            Some(w) => Widths {
                stem_hidden: w[0],
                stages: [w[1], w[2], w[3], w[4]],
            },
            None => Widths::of_base(self.width),
        }
    }

    fn validate_widths(w: &[i64]) -> Result<(), FieldError> {
        if w.len() != EXPLICIT_LEN {
            return Err((
                "widths",
                format!(
                    "tfsepnet64 `widths` needs {EXPLICIT_LEN} numbers (stem hidden, then the four                      stage widths), got {}",
                    w.len()
                ),
            ));
        }
        if !(1..=MAX_CHANNELS / STEM_FANOUT).contains(&w[0]) {
            return Err((
                "widths",
                format!(
                    "tfsepnet64 stem hidden width {} must be in 1..={} (the stem outputs {STEM_FANOUT}                      times as many channels)",
                    w[0],
                    MAX_CHANNELS / STEM_FANOUT
                ),
            ));
        }
        match w[1..]
            .iter()
            .find(|&&c| c < 2 || c % 2 != 0 || c > MAX_CHANNELS)
        {
            Some(c) => Err((
                "widths",
                format!(
                    "tfsepnet64 stage width {c} must be even and in 2..={MAX_CHANNELS}: a block                      splits its channels into two equal halves"
                ),
            )),
            None => Ok(()),
        }
    }
}

impl Architecture for Config {
    type Net = TfSepNet64;

    fn from_spec(spec: &ModelSpec) -> Result<Self, FieldError> {
        spec.only(&["width", "depth", "dropout", "widths"])?;
        if spec.width.is_some() && spec.widths.is_some() {
            return Err((
                "widths",
                "tfsepnet64 takes either `width` (C) or `widths` (explicit widths), not both"
                    .into(),
            ));
        }
        let default = Config::default();
        Ok(Config {
            widths: spec.widths.clone(),
            width: spec.width.unwrap_or(default.width),
            depth: spec.depth.unwrap_or(default.depth),
            dropout: match spec.dropout {
                Some(_) => spec.dropout_or_zero()?,
                None => default.dropout,
            },
            num_classes: default.num_classes,
        })
    }

    fn describe(&self) -> String {
        let mut s = match &self.widths {
            Some(w) => format!(
                "tfsepnet64 widths={} depth {}",
                w.iter().map(i64::to_string).collect::<Vec<_>>().join(","),
                self.depth
            ),
            None => format!("tfsepnet64 C={} depth {}", self.width, self.depth),
        };
        if self.num_classes != 10 {
            s.push_str(&format!(" classes={}", self.num_classes));
        }
        s
    }

    fn num_classes(&self) -> i64 {
        self.num_classes
    }

    fn validate(&self) -> Result<(), FieldError> {
        if let Some(w) = &self.widths {
            Self::validate_widths(w)?;
        } else if self.width < 4 || self.width % 4 != 0 {
            return Err((
                "width",
                format!(
                    "width C={} must be a positive multiple of 4: the stem has C/2 groups and every \
                     stage width (C, 1.5C, 2C, 2.5C) is split into two equal halves",
                    self.width
                ),
            ));
        }
        if self.widths.is_none() {
            check_max_width("width", self.width)?;
        }
        if self.depth != 16 && self.depth != 17 {
            return Err((
                "depth",
                format!(
                    "depth must be 16 or 17 (17 adds a max-pool before the last stage), got {}",
                    self.depth
                ),
            ));
        }
        check_dropout(self.dropout)?;
        check_num_classes(self.num_classes)
    }

    fn build(&self, vb: &Vb) -> TfSepNet64 {
        TfSepNet64::new(vb, self)
    }
}

#[derive(Debug)]
enum Layer {
    Norm(Norm),
    Pool(MaxPool2d),
    /// Boxed: a block is far larger than a norm or a pool.
    Block(Box<TfSepConv>),
}

#[derive(Debug)]
pub struct TfSepNet64 {
    pub config: Config,
    conv_layers: [ConvBn; 2],
    middle_layers: Vec<Layer>,
    classifier: ConvBn,
    pool: GlobalAvgPool,
}

impl TfSepNet64 {
    /// Builds the network; `cfg` must pass [`Config::validate`].
    pub fn new(vb: &Vb, cfg: &Config) -> Self {
        let widths = cfg.widths();
        let stem = vb.sub("conv_layers");
        let unit = |i: usize, spec: ConvSpec| {
            let spec = spec.stride([2, 2]).padding([1, 1]);
            ConvBn::named(
                &stem.sub(&i.to_string()),
                &spec,
                true,
                true,
                UnitNames::Underscored,
            )
        };
        let conv_layers = [
            unit(0, ConvSpec::new(1, widths.stem_hidden, [3, 3])),
            unit(
                1,
                ConvSpec::new(widths.stem_hidden, widths.stem_out(), [3, 3])
                    .groups(widths.stem_hidden),
            ),
        ];
        let norm = NormKind::ResNorm {
            lambda: RESNORM_LAMBDA,
        };
        let middle = vb.sub("middle_layers");
        let mut channels = widths.stem_out();
        let middle_layers = layout(cfg.depth)
            .into_iter()
            .enumerate()
            .map(|(i, entry)| match entry {
                Entry::Norm => Layer::Norm(Norm::new(&middle.sub(&i.to_string()), norm, channels)),
                Entry::Pool => Layer::Pool(MaxPool2d::new(middle.child_name(&i.to_string()), 2)),
                Entry::Block { stage } => {
                    let width = widths.stages[stage];
                    let block = TfSepConv::new(
                        &middle.sub(&i.to_string()),
                        channels,
                        width,
                        cfg.dropout,
                        None,
                    );
                    channels = width;
                    Layer::Block(Box::new(block))
                }
            })
            .collect();
        let head = ConvSpec::new(channels, cfg.num_classes, [1, 1]).bias(true);
        TfSepNet64 {
            config: cfg.clone(),
            conv_layers,
            middle_layers,
            classifier: ConvBn::new(&vb.sub("classifier"), &head, false, false),
            pool: GlobalAvgPool::new(vb.child_name("classifier.pool")),
        }
    }
}

impl Net for TfSepNet64 {
    fn forward_ctx(&self, xs: &Tensor, ctx: &Ctx) -> Tensor {
        let mut x = xs.shallow_clone();
        for unit in &self.conv_layers {
            x = unit.forward(&x, ctx);
        }
        for layer in &self.middle_layers {
            x = match layer {
                Layer::Norm(n) => n.forward(&x, ctx),
                Layer::Pool(p) => p.forward(&x, ctx),
                Layer::Block(b) => b.forward(&x, ctx),
            };
        }
        x = self.classifier.forward(&x, ctx);
        self.pool.forward(&x, ctx)
    }

    fn lower(&self) -> Result<Graph> {
        let mut g = Graph::new();
        let mut x = g.input();
        for unit in &self.conv_layers {
            x = unit.lower(&mut g, x);
        }
        for layer in &self.middle_layers {
            x = match layer {
                Layer::Norm(n) => n.lower(&mut g, x)?,
                Layer::Pool(p) => p.lower(&mut g, x),
                Layer::Block(b) => b.lower(&mut g, x),
            };
        }
        x = self.classifier.lower(&mut g, x);
        self.pool.lower(&mut g, x);
        Ok(g)
    }

    fn visit_convs(&mut self, f: &mut dyn FnMut(&mut ConvBn)) {
        for unit in &mut self.conv_layers {
            f(unit);
        }
        for layer in &mut self.middle_layers {
            if let Layer::Block(b) = layer {
                b.visit_convs(f);
            }
        }
        f(&mut self.classifier);
    }

    fn visit_channel_norms(&mut self, f: &mut dyn FnMut(&str, &mut Option<Tensor>)) {
        for layer in &mut self.middle_layers {
            if let Layer::Norm(n) = layer {
                f(&n.name, &mut n.kept);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_indices_match_the_released_state_dict() {
        let blocks = |depth| -> Vec<usize> {
            layout(depth)
                .iter()
                .enumerate()
                .filter(|(_, e)| matches!(e, Entry::Block { .. }))
                .map(|(i, _)| i)
                .collect()
        };
        assert_eq!(blocks(17), [1, 2, 5, 6, 9, 10, 13, 14, 15]);
        assert_eq!(blocks(16), [1, 2, 5, 6, 9, 10, 12, 13, 14]);
        assert_eq!(layout(17).len(), 17);
        assert_eq!(layout(16).len(), 16);
    }

    #[test]
    fn from_spec_defaults_and_refusals() {
        let cfg = Config::from_spec(&ModelSpec::new("tfsepnet64")).unwrap();
        assert_eq!(cfg, Config::default());
        let mut spec = ModelSpec::new("tfsepnet64");
        spec.depth = Some(16);
        spec.dropout = Some(0.0);
        let cfg = Config::from_spec(&spec).unwrap();
        assert_eq!((cfg.depth, cfg.dropout), (16, 0.0));
        spec.norm = Some("adaresnorm".into());
        assert_eq!(Config::from_spec(&spec).unwrap_err().0, "norm");
        let bad = Config {
            depth: 18,
            ..Config::default()
        };
        assert_eq!(bad.validate().unwrap_err().0, "depth");
        let bad = Config {
            width: 66,
            ..Config::default()
        };
        assert_eq!(bad.validate().unwrap_err().0, "width");
    }

    #[test]
    fn explicit_widths_build_what_the_rule_builds() {
        let shapes = |cfg: &Config| {
            let vs = tch::nn::VarStore::new(tch::Device::Cpu);
            cfg.build(&Vb::constant(&vs.root()));
            let mut v: Vec<(String, Vec<i64>)> = vs
                .variables()
                .into_iter()
                .map(|(k, t)| (k, t.size()))
                .collect();
            v.sort();
            v
        };
        let w = Widths::of_base(64);
        let explicit = Config {
            widths: Some(vec![
                w.stem_hidden,
                w.stages[0],
                w.stages[1],
                w.stages[2],
                w.stages[3],
            ]),
            ..Config::default()
        };
        explicit.validate().unwrap();
        assert_eq!(explicit.widths(), Widths::of_base(64));
        assert_eq!(shapes(&explicit), shapes(&Config::default()));
        assert!(explicit.describe().contains("widths=32,64,96,128,160"));
        let odd = Config {
            widths: Some(vec![8, 20, 31, 40, 50]),
            ..Config::default()
        };
        assert!(odd.validate().unwrap_err().1.contains("even"));
        let mut spec = ModelSpec::new("tfsepnet64");
        spec.widths = Some(vec![8, 20, 30, 40, 50]);
        assert_eq!(Config::from_spec(&spec).unwrap().widths, spec.widths);
        spec.width = Some(64);
        assert_eq!(Config::from_spec(&spec).unwrap_err().0, "widths");
    }
}
