//! TF-SepNet-64 (Cai et al., DCASE2024 technical report, Table 2), also the backbone of Zhou et
//! al.'s AdapTF-SepNet (DCASE2025).
//!
//! Stem: 3x3 conv-BN-ReLU, stride 2, to C/2 channels, then a grouped (C/2 groups) 3x3
//! conv-BN-ReLU, stride 2, to 2C. Then ResNorm (lambda 0.1, no parameters) and four stages of
//! TF-SepConv blocks at widths C, 1.5C, 2C, 2.5C (2, 2, 2, 3 blocks), each followed by ResNorm,
//! the first three by a 2x2 max-pool (depth 17; depth 16 has no pool before the last stage).
//! Head: 1x1 conv (with bias) to the classes, global average.
//!
//! Variable names are those of the released code's state dict (Zhou et al.'s `TFSepNet`, the
//! Lightning module's `backbone.` prefix removed): `conv_layers.{0,1}`, `middle_layers.<i>` (the
//! index of the layer in the released `nn.Sequential`, norms and pools included) and
//! `classifier.conv`, so a released checkpoint imports by name.

use super::blocks::{
    ConvBn, ConvSpec, Ctx, GlobalAvgPool, MaxPool2d, Norm, NormKind, TfSepConv, UnitNames, Vb,
};
use super::spec::{check_dropout, check_max_width, check_num_classes};
use super::{Architecture, FieldError, ModelSpec, Net};
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// ResNorm's identity weight in every norm of TF-SepNet-64.
const RESNORM_LAMBDA: f64 = 0.1;

/// One entry of the released code's `middle_layers`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Entry {
    Norm,
    Pool,
    /// A TF-SepConv block of `halves * C / 2` channels (truncated, as the released code's
    /// `int(m * C)` for m = 1, 1.5, 2, 2.5).
    Block {
        halves: i64,
    },
}

/// `middle_layers` of the released code's `cfg[depth]`.
fn layout(depth: i64) -> Vec<Entry> {
    use Entry::{Block, Norm, Pool};
    let mut layers = vec![Norm];
    for (stage, (halves, blocks)) in [(2, 2), (3, 2), (4, 2), (5, 3)].into_iter().enumerate() {
        // Depth 17 inserts the extra max-pool before the last stage.
        if stage == 1 || stage == 2 || (stage == 3 && depth == 17) {
            layers.push(Pool);
        }
        layers.extend(std::iter::repeat_n(Block { halves }, blocks));
        layers.push(Norm);
    }
    layers
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
            num_classes: 10,
        }
    }
}

impl Architecture for Config {
    type Net = TfSepNet64;

    fn from_spec(spec: &ModelSpec) -> Result<Self, FieldError> {
        spec.only(&["width", "depth", "dropout"])?;
        let default = Config::default();
        Ok(Config {
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
        let mut s = format!("tfsepnet64 C={} depth {}", self.width, self.depth);
        if self.num_classes != 10 {
            s.push_str(&format!(" classes={}", self.num_classes));
        }
        s
    }

    fn num_classes(&self) -> i64 {
        self.num_classes
    }

    fn validate(&self) -> Result<(), FieldError> {
        if self.width < 4 || self.width % 4 != 0 {
            return Err((
                "width",
                format!(
                    "width C={} must be a positive multiple of 4: the stem has C/2 groups and every \
                     stage width (C, 1.5C, 2C, 2.5C) is split into two equal halves",
                    self.width
                ),
            ));
        }
        check_max_width("width", self.width)?;
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
        let c = cfg.width;
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
            unit(0, ConvSpec::new(1, c / 2, [3, 3])),
            unit(1, ConvSpec::new(c / 2, 2 * c, [3, 3]).groups(c / 2)),
        ];
        let norm = NormKind::ResNorm {
            lambda: RESNORM_LAMBDA,
        };
        let middle = vb.sub("middle_layers");
        let mut channels = 2 * c;
        let middle_layers = layout(cfg.depth)
            .into_iter()
            .enumerate()
            .map(|(i, entry)| match entry {
                Entry::Norm => Layer::Norm(Norm::new(&middle.sub(&i.to_string()), norm, channels)),
                Entry::Pool => Layer::Pool(MaxPool2d::new(middle.child_name(&i.to_string()), 2)),
                Entry::Block { halves } => {
                    let width = halves * c / 2;
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
        let mut x = ctx.act("input", xs.shallow_clone());
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
        self.pool.forward(&x, &self.classifier.name, ctx)
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
}
