//! Post-training static INT8 quantization as PyTorch's eager mode does it with the fbgemm
//! qconfig, on the network's operator graph (`models::graph`):
//! - RepConv branches merged and BatchNorm folded into the conv before it (the lowering does
//!   both), as `fuse_modules` does conv-BN(-ReLU);
//! - weights: per-output-channel symmetric `qint8` (`default_per_channel_weight_observer`),
//!   scale = max|w| / 127.5, zero point 0; conv and linear layers alike; biases stay float;
//! - activations: per-tensor affine `quint8` with `reduce_range` (observed range mapped onto
//!   0..127), observed at every activation point ([`Op::is_point`]) by a MinMax or histogram
//!   observer over the calibration batches (`compress::observer`).
//!
//! The result ([`QuantizedModel`]) runs two ways: on the integer engine ([`QuantizedModel::
//! program`], what evaluation uses) and simulated in float with tch ([`QuantizedModel::
//! simulate`]: the same grids, quantize-dequantize at the same places, dequantized weights),
//! which tolerance tuning uses to rank layers and which the engine is checked against.
//! Points named in [`QuantizedModel::fallback`] stay in float in both.

use super::int8::engine::{Kernel, Program, Step};
use super::int8::float::{FloatConv, FloatLinear, FloatNorm};
use super::int8::{Affine, AtenCapability, Conv2dConfig, Fused, Isa, QWeight};
use super::observer::{Observer, ObserverKind, QParams};
use crate::error::{Error, Result};
use crate::models::blocks::{NormKind, Vb};
use crate::models::graph::{eval_op, ConvOp, Graph, LinearOp, Op};
use crate::models::{build_net, ModelConfig};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use tch::{nn, Device, Kind, Tensor};

/// How activations are observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PtqConfig {
    pub observer: ObserverKind,
    /// Activations on 7 bits (0..127), as fbgemm's qconfig, so its `u8 x i8` products paired in
    /// `i16` cannot saturate.
    #[serde(default = "yes")]
    pub reduce_range: bool,
}

fn yes() -> bool {
    true
}

impl Default for PtqConfig {
    /// fbgemm's default qconfig: histogram observer, reduced range.
    fn default() -> Self {
        PtqConfig {
            observer: ObserverKind::Histogram,
            reduce_range: true,
        }
    }
}

/// One conv or linear weight at INT8.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizedWeight {
    /// `[O, I/groups, KH, KW]` or `[O, I]`.
    pub shape: Vec<usize>,
    pub int8: Vec<i8>,
    /// Per output channel, zero point 0.
    pub scales: Vec<f32>,
    pub bias: Option<Vec<f32>>,
}

/// One activation point of a quantized model.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub name: String,
    /// What computes it (`Conv2d 3x1 depthwise`, `Add`, `ResNorm(lambda=0.1)`).
    pub op: String,
    pub qparams: QParams,
    /// Left in float by tolerance tuning.
    pub fallback: bool,
}

/// An INT8 model: its float graph, every point's grid and every layer's INT8 weight.
#[derive(Debug)]
pub struct QuantizedModel {
    config: ModelConfig,
    graph: Graph,
    /// Per node: the grid of points, `None` for ops that keep their input's.
    grids: Vec<Option<QParams>>,
    /// Per node: the INT8 weight of convs and linear layers.
    weights: Vec<Option<QuantizedWeight>>,
    /// Nodes left in float.
    fallback: BTreeSet<usize>,
}

/// Quantizes the model `cfg` with the variables of `vs`, calibrated on `calibration` (feature
/// batches `[B, 1, F, T]`). `vs` is left untouched.
pub fn quantize_int8(
    vs: &nn::VarStore,
    cfg: &ModelConfig,
    calibration: &[Tensor],
    ptq: &PtqConfig,
) -> Result<QuantizedModel> {
    let context = |e: Error| Error::msg(format!("quantizing `{}`: {e}", cfg.describe()));
    if calibration.is_empty() {
        return Err(context(Error::msg("no calibration batches")));
    }
    let graph = lower_on_cpu(vs, cfg).map_err(context)?;
    let mut observers: Vec<Option<Box<dyn Observer>>> = graph
        .nodes()
        .iter()
        .map(|n| {
            n.op.is_point()
                .then(|| ptq.observer.build(ptq.reduce_range))
        })
        .collect();
    let mut failure = None;
    for batch in calibration {
        let batch = batch.to_device(Device::Cpu).to_kind(Kind::Float);
        let _ = graph.run(&batch, &mut |i, _, ys| {
            if let Some(obs) = &mut observers[i] {
                let values = Vec::<f32>::try_from(ys.flatten(0, -1)).unwrap_or_default();
                if let Err(e) = obs.observe(&values) {
                    failure.get_or_insert(e);
                }
            }
            ys
        });
    }
    if let Some(e) = failure {
        return Err(context(e));
    }
    let mut grids = Vec::with_capacity(observers.len());
    for (node, obs) in graph.nodes().iter().zip(observers) {
        grids.push(match obs {
            Some(o) => Some(o.qparams().map_err(|e| {
                context(Error::msg(format!("activation point `{}`: {e}", node.name)))
            })?),
            None => None,
        });
    }
    let weights = graph
        .nodes()
        .iter()
        .map(|n| match &n.op {
            Op::Conv(c) => Some(quantize_weight(&c.weight, c.bias.as_ref())),
            Op::Linear(l) => Some(quantize_weight(&l.weight, l.bias.as_ref())),
            _ => None,
        })
        .collect();
    Ok(QuantizedModel {
        config: cfg.clone(),
        graph,
        grids,
        weights,
        fallback: BTreeSet::new(),
    })
}

/// The eval-mode graph of `cfg` with the weights of `vs`, on the CPU.
fn lower_on_cpu(vs: &nn::VarStore, cfg: &ModelConfig) -> Result<Graph> {
    cfg.validate()?;
    let mut own = nn::VarStore::new(Device::Cpu);
    let mut net = build_net(&Vb::constant(&own.root()), cfg)?;
    let src = vs.variables();
    for (name, var) in own.variables() {
        match src.get(&name) {
            Some(s) if s.size() == var.size() => {}
            Some(s) => {
                return Err(Error::msg(format!(
                    "variable `{name}` has shape {:?}, the model expects {:?}",
                    s.size(),
                    var.size()
                )))
            }
            None => return Err(Error::msg(format!("the weights have no variable `{name}`"))),
        }
    }
    own.copy(vs)?;
    net.reparameterize();
    let graph = net.lower()?;
    graph.validate()?;
    Ok(graph)
}

/// Per-output-channel symmetric `qint8` of a weight, as PyTorch's
/// `PerChannelMinMaxObserver(qscheme=per_channel_symmetric, dtype=qint8)` and
/// `quantize_per_channel` compute it (f32 arithmetic, `x * (1 / scale)` rounded half to even).
fn quantize_weight(weight: &Tensor, bias: Option<&Tensor>) -> QuantizedWeight {
    let w = weight.to_device(Device::Cpu).to_kind(Kind::Float);
    let shape: Vec<usize> = w.size().iter().map(|&d| d as usize).collect();
    let values = Vec::<f32>::try_from(w.flatten(0, -1)).expect("a float weight");
    let per = values.len() / shape[0];
    let mut int8 = Vec::with_capacity(values.len());
    let mut scales = Vec::with_capacity(shape[0]);
    for channel in values.chunks_exact(per) {
        let amax = channel.iter().fold(0f32, |m, v| m.max(v.abs()));
        let scale = (amax / 127.5).max(f32::EPSILON);
        let inverse = 1.0 / scale;
        int8.extend(
            channel
                .iter()
                .map(|&v| (v * inverse).round_ties_even().clamp(-128.0, 127.0) as i8),
        );
        scales.push(scale);
    }
    let bias = bias
        .map(|b| Vec::<f32>::try_from(b.to_device(Device::Cpu).to_kind(Kind::Float)))
        .and_then(|b| b.ok());
    QuantizedWeight {
        shape,
        int8,
        scales,
        bias,
    }
}

impl QuantizedWeight {
    /// `int8 * scale` as a float tensor of the weight's shape.
    fn dequantized(&self) -> Tensor {
        let per = self.int8.len() / self.shape[0];
        let values: Vec<f32> = self
            .int8
            .chunks_exact(per)
            .zip(&self.scales)
            .flat_map(|(c, &s)| c.iter().map(move |&q| q as f32 * s))
            .collect();
        let dims: Vec<i64> = self.shape.iter().map(|&d| d as i64).collect();
        Tensor::from_slice(&values).reshape(dims)
    }

    fn qweight(&self) -> Result<QWeight> {
        QWeight::new(
            self.int8.clone(),
            &self.shape,
            self.scales.clone(),
            self.bias.clone(),
        )
    }

    pub fn params(&self) -> usize {
        self.int8.len() + self.bias.as_ref().map_or(0, Vec::len)
    }
}

fn to_vec(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(t.to_device(Device::Cpu).to_kind(Kind::Float).flatten(0, -1))
        .expect("a float tensor")
}

fn affine(q: &QParams) -> Affine {
    Affine::new(q.scale as f32, q.zero_point as u8)
}

impl QuantizedModel {
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Every activation point in execution order.
    pub fn points(&self) -> Vec<Point> {
        self.graph
            .nodes()
            .iter()
            .enumerate()
            .filter_map(|(i, n)| {
                self.grids[i].map(|qparams| Point {
                    name: n.name.clone(),
                    op: n.op.describe(),
                    qparams,
                    fallback: self.fallback.contains(&i),
                })
            })
            .collect()
    }

    /// Conv and linear layers computing in INT8.
    pub fn int8_layers(&self) -> usize {
        self.weights
            .iter()
            .enumerate()
            .filter(|(i, w)| w.is_some() && !self.fallback.contains(i))
            .count()
    }

    /// The INT8 weight of the conv or linear layer `name`.
    pub fn weight(&self, name: &str) -> Option<&QuantizedWeight> {
        let i = self.graph.nodes().iter().position(|n| n.name == name)?;
        self.weights[i].as_ref()
    }

    /// Replaces the INT8 weight of the conv or linear layer `name` (e.g. PyTorch's own).
    pub fn set_weight(&mut self, name: &str, weight: QuantizedWeight) -> Result<()> {
        let i = self.point_index(name)?;
        match &self.weights[i] {
            Some(w) if w.shape == weight.shape && w.int8.len() == weight.int8.len() => {
                self.weights[i] = Some(weight);
                Ok(())
            }
            Some(w) => Err(Error::msg(format!(
                "`{name}`: a weight of shape {:?} for a layer of shape {:?}",
                weight.shape, w.shape
            ))),
            None => Err(Error::msg(format!("`{name}` has no weight"))),
        }
    }

    /// Replaces the grid of the points named in `grids` (e.g. PyTorch's own calibration).
    pub fn set_grids(&mut self, grids: &BTreeMap<String, QParams>) -> Result<()> {
        for (name, q) in grids {
            let i = self.point_index(name)?;
            self.grids[i] = Some(*q);
        }
        Ok(())
    }

    fn point_index(&self, name: &str) -> Result<usize> {
        self.graph
            .nodes()
            .iter()
            .position(|n| n.name == name && n.op.is_point())
            .ok_or_else(|| Error::msg(format!("the model has no activation point `{name}`")))
    }

    /// The names of the points left in float.
    pub fn fallback(&self) -> Vec<String> {
        self.fallback
            .iter()
            .map(|&i| self.graph.nodes()[i].name.clone())
            .collect()
    }

    /// Leaves the point `name` in float (its weights too, for a conv or linear layer).
    pub fn fall_back(&mut self, name: &str) -> Result<()> {
        let i = self.point_index(name)?;
        self.fallback.insert(i);
        Ok(())
    }

    /// Undoes [`QuantizedModel::fall_back`].
    pub fn quantize_again(&mut self, name: &str) -> Result<()> {
        let i = self.point_index(name)?;
        self.fallback.remove(&i);
        Ok(())
    }

    /// Parameter memory in bytes at the model's precisions: one byte per parameter of an INT8
    /// layer (weights and biases, as the challenge counts INT8 models), four per parameter of a
    /// layer in float (fallen back, or float-only such as AdaResNorm).
    pub fn parameter_bytes(&self) -> u64 {
        let mut bytes = 0u64;
        for (i, node) in self.graph.nodes().iter().enumerate() {
            let float = self.fallback.contains(&i);
            let params = match (&node.op, &self.weights[i]) {
                (_, Some(w)) => w.params() as u64,
                (Op::Norm(n), _) => n
                    .ada
                    .as_ref()
                    .map_or(0, |(r, g, b)| (r.numel() + g.numel() + b.numel()) as u64),
                _ => 0,
            };
            let per = if float || matches!(node.op, Op::Norm(_)) {
                4
            } else {
                1
            };
            bytes += params * per;
        }
        bytes
    }

    /// The model compiled for the integer engine. `capability`: which ATen vector loop the
    /// quantized `add` reproduces (see `int8::add`).
    pub fn program(&self, isa: Isa, capability: AtenCapability) -> Result<Program> {
        let mut steps = Vec::with_capacity(self.graph.nodes().len());
        for (i, node) in self.graph.nodes().iter().enumerate() {
            let quantized = self.grids[i].is_some() && !self.fallback.contains(&i);
            let fused = |relu: bool| if relu { Fused::Relu } else { Fused::None };
            let kernel = match &node.op {
                Op::Input => Kernel::Input,
                Op::Conv(c) => {
                    let w = self.weights[i].as_ref().expect("convs have weights");
                    let config = Conv2dConfig {
                        stride: c.stride.map(|s| s as usize),
                        padding: c.padding.map(|p| p as usize),
                        groups: c.groups as usize,
                    };
                    if quantized {
                        Kernel::QConv {
                            weight: w.qweight()?,
                            config,
                            fused: fused(c.relu),
                        }
                    } else {
                        let s = &w.shape;
                        Kernel::FConv(FloatConv {
                            weight: to_vec(&c.weight),
                            shape: [s[0], s[1], s[2], s[3]],
                            bias: c.bias.as_ref().map(to_vec),
                            stride: config.stride,
                            padding: config.padding,
                            groups: config.groups,
                            relu: c.relu,
                        })
                    }
                }
                Op::Linear(l) => {
                    let w = self.weights[i]
                        .as_ref()
                        .expect("linear layers have weights");
                    if quantized {
                        Kernel::QLinear {
                            weight: w.qweight()?,
                            fused: fused(l.relu),
                        }
                    } else {
                        Kernel::FLinear(FloatLinear {
                            weight: to_vec(&l.weight),
                            shape: [w.shape[0], w.shape[1]],
                            bias: l.bias.as_ref().map(to_vec),
                            relu: l.relu,
                        })
                    }
                }
                Op::Norm(n) => Kernel::Norm(match (&n.ada, n.kind) {
                    (Some((rho, gamma, beta)), _) => FloatNorm::AdaResNorm {
                        rho: to_vec(rho),
                        gamma: to_vec(gamma),
                        beta: to_vec(beta),
                    },
                    (None, NormKind::ResNorm { lambda }) => FloatNorm::ResNorm {
                        lambda: lambda as f32,
                    },
                    (None, NormKind::AdaResNorm) => FloatNorm::ResNorm { lambda: 0.0 },
                }),
                Op::Add { relu } => Kernel::Add { relu: *relu },
                Op::Cat => Kernel::Cat,
                Op::Slice { start, len } => Kernel::Slice {
                    start: *start as usize,
                    len: *len as usize,
                },
                Op::ChannelShuffle { groups } => Kernel::ChannelShuffle {
                    groups: *groups as usize,
                },
                Op::MaxPool { kernel } => Kernel::MaxPool {
                    kernel: *kernel as usize,
                },
                Op::Mean { dims, keepdim } => Kernel::Mean {
                    dims: dims.iter().map(|&d| d as usize).collect(),
                    keepdim: *keepdim,
                },
            };
            steps.push(Step {
                name: node.name.clone(),
                kernel,
                inputs: node.inputs.clone(),
                grid: self.grids[i].as_ref().map(affine),
                quantized,
            });
        }
        Program::new(steps, isa, capability)
    }

    /// The quantized model simulated in float with tch (on the CPU): every quantized point
    /// quantize-dequantized on its grid (clamped to 0..255, as the converted model's `quint8`
    /// tensors are: `reduce_range` only narrows the observed range), INT8 layers computing
    /// with dequantized weights, and integer ops reading a float value quantizing it first,
    /// exactly where the engine does.
    pub fn simulate(&self, xs: &Tensor) -> Tensor {
        tch::no_grad(|| {
            let xs = xs.to_device(Device::Cpu);
            let nodes = self.graph.nodes();
            let last = self.graph.last_uses();
            // Per value: the tensor, whether it is on a grid (quantized), and that grid.
            let mut values: Vec<Option<(Tensor, bool, Option<QParams>)>> =
                (0..nodes.len()).map(|_| None).collect();
            let fq = |t: &Tensor, q: &QParams| {
                t.fake_quantize_per_tensor_affine(q.scale, q.zero_point, 0, 255)
            };
            for (i, node) in nodes.iter().enumerate() {
                let quantized = self.grids[i].is_some() && !self.fallback.contains(&i);
                let (ys, on_grid, grid) = {
                    let ins: Vec<&(Tensor, bool, Option<QParams>)> = node
                        .inputs
                        .iter()
                        .map(|&v| values[v].as_ref().expect("inputs precede their readers"))
                        .collect();
                    // Integer ops quantize float inputs on the inputs' grids.
                    let integer = quantized && !matches!(node.op, Op::Norm(_));
                    let inputs: Vec<Tensor> = ins
                        .iter()
                        .map(|(t, on, g)| match (integer && !on, g) {
                            (true, Some(g)) => fq(t, g),
                            _ => t.shallow_clone(),
                        })
                        .collect();
                    let refs: Vec<&Tensor> = inputs.iter().collect();
                    match &node.op {
                        Op::Input => {
                            let x = xs.to_kind(Kind::Float);
                            match (&self.grids[i], quantized) {
                                (Some(g), true) => (fq(&x, g), true, Some(*g)),
                                (g, _) => (x, false, *g),
                            }
                        }
                        op if op.is_point() => {
                            // INT8 layers compute with their dequantized weights.
                            let ys = match (op, &self.weights[i], integer) {
                                (Op::Conv(c), Some(w), true) => {
                                    let dequantized = Op::Conv(ConvOp {
                                        weight: w.dequantized(),
                                        bias: c.bias.as_ref().map(Tensor::shallow_clone),
                                        ..*c
                                    });
                                    eval_op(&dequantized, &refs)
                                }
                                (Op::Linear(l), Some(w), true) => {
                                    let dequantized = Op::Linear(LinearOp {
                                        weight: w.dequantized(),
                                        bias: l.bias.as_ref().map(Tensor::shallow_clone),
                                        relu: l.relu,
                                    });
                                    eval_op(&dequantized, &refs)
                                }
                                _ => eval_op(op, &refs),
                            };
                            match (&self.grids[i], quantized) {
                                (Some(g), true) => (fq(&ys, g), true, Some(*g)),
                                (g, _) => (ys, false, *g),
                            }
                        }
                        op => {
                            let (_, on, g) = ins[0];
                            let ys = match (op, on, g) {
                                // Quantized mean: PyTorch dequantizes the channels-last conv
                                // output and takes a float mean, requantized onto its input's
                                // grid. The same layout gives ATen's summation order, so exact
                                // ties between two steps round as the engine's do.
                                (Op::Mean { .. }, true, Some(g)) => {
                                    let nhwc = refs[0]
                                        .permute([0, 2, 3, 1])
                                        .contiguous()
                                        .permute([0, 3, 1, 2]);
                                    fq(&eval_op(op, &[&nhwc]), g)
                                }
                                _ => eval_op(op, &refs),
                            };
                            (ys, *on, *g)
                        }
                    }
                };
                values[i] = Some((ys, on_grid, grid));
                for &v in &node.inputs {
                    if last[v] == i {
                        values[v] = None;
                    }
                }
            }
            let (out, _, _) = values[self.graph.output()]
                .take()
                .expect("the output is computed");
            out
        })
    }
}
