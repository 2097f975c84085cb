//! Post-training static INT8 quantization, as PyTorch's eager-mode PTSQ with the fbgemm qconfig,
//! run as simulated quantization (quantize-dequantize in float) so it runs on any device.
//!
//! What PyTorch would do, and what happens here:
//! - `fuse_modules` on conv-BN(-ReLU): every BatchNorm is folded into its conv (`fold::fold_bn`).
//! - Weights: per-output-channel symmetric qint8 (`default_per_channel_weight_observer`):
//!   scale = max|w| / 127.5, zero point 0, q = clamp(round(w / scale), -128, 127). Conv biases
//!   stay float, as fbgemm adds a float bias during requantization.
//! - Activations: per-tensor affine quint8 with fbgemm's `reduce_range` (range 0..127), at every
//!   point eager PTSQ quantizes: the input (QuantStub), each fused conv's output, each float-only
//!   op's output (ResNorm/AdaResNorm run dequantized, as PyTorch has no quantized kernel for
//!   them), each residual add and concat (`FloatFunctional`). Max-pool, reshapes and splits keep
//!   their input's grid; quantized `mean` requantizes onto its input's grid.
//! - Observer: MinMax (`MinMaxObserver`), not fbgemm's default `HistogramObserver`. MinMax is
//!   exact and independent of batch order and batching, needs one float pair per point, and is
//!   what the reports' "calibration" needs for a 1 % tolerance on models of this size; the
//!   histogram observer's L2 range search mainly helps with heavy-tailed activations of large
//!   calibration sets. The ranges and qparams follow PyTorch's `_calculate_qparams` exactly.

use super::observer::affine_qparams;
use crate::error::{Error, Result};
use crate::models::blocks::{Ctx, Probe, Vb};
use crate::models::{build_net, AscModel, ModelConfig, Net};
use crate::results::Evaluation;
use std::cell::RefCell;
use std::collections::BTreeMap;
use tch::{nn, Kind, Tensor};

/// Options of the quantization scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuantConfig {
    /// Activations use 7 bits (0..127) as fbgemm's qconfig does to avoid overflow in its int16
    /// accumulation; `false` uses the full 0..255.
    pub reduce_range: bool,
}

impl Default for QuantConfig {
    fn default() -> Self {
        QuantConfig { reduce_range: true }
    }
}

/// Per-tensor affine quantization parameters of one activation point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QParams {
    pub scale: f64,
    pub zero_point: i64,
    pub quant_min: i64,
    pub quant_max: i64,
}

/// One conv weight as stored at INT8.
#[derive(Debug)]
pub struct QuantizedWeight {
    /// Dotted name of the conv (`stage1.block0.freq_dw.conv`).
    pub name: String,
    /// Integer values, `Kind::Int8`, the conv weight's shape.
    pub int8: Tensor,
    /// Per-output-channel scale (f32), zero point 0.
    pub scale: Tensor,
    /// `int8 * scale`: the weight the simulated model computes with.
    pub dequantized: Tensor,
}

/// An INT8 model (simulated): eval only, `train` is ignored.
#[derive(Debug)]
pub struct Int8Model {
    config: ModelConfig,
    net: Box<dyn Net>,
    fake_quant: FakeQuant,
    weights: Vec<QuantizedWeight>,
}

impl Int8Model {
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }
    /// Quantization parameters of every activation point, by name.
    pub fn activation_qparams(&self) -> &BTreeMap<String, QParams> {
        &self.fake_quant.points
    }
    /// Every conv weight, in forward order.
    pub fn weights(&self) -> &[QuantizedWeight] {
        &self.weights
    }
}

impl AscModel for Int8Model {
    fn forward_t(&self, xs: &Tensor, _train: bool) -> Tensor {
        tch::no_grad(|| {
            self.net
                .forward_ctx(xs, &Ctx::with_probe(false, &self.fake_quant))
        })
    }
}

/// Calibration probe: running min/max of every activation point.
#[derive(Default)]
struct MinMax {
    ranges: RefCell<BTreeMap<String, (f32, f32)>>,
}

impl Probe for MinMax {
    fn activation(&self, point: &str, xs: Tensor) -> Tensor {
        let lo = xs.min().double_value(&[]) as f32;
        let hi = xs.max().double_value(&[]) as f32;
        let mut ranges = self.ranges.borrow_mut();
        let r = ranges.entry(point.to_string()).or_insert((lo, hi));
        r.0 = r.0.min(lo);
        r.1 = r.1.max(hi);
        xs
    }
}

/// Inference probe: quantize-dequantize at every activation point.
#[derive(Debug)]
struct FakeQuant {
    points: BTreeMap<String, QParams>,
}

impl FakeQuant {
    fn apply(&self, point: &str, xs: Tensor) -> Tensor {
        match self.points.get(point) {
            Some(q) => {
                xs.fake_quantize_per_tensor_affine(q.scale, q.zero_point, q.quant_min, q.quant_max)
            }
            // Every point the forward pass reaches was observed during calibration.
            None => xs,
        }
    }
}

impl Probe for FakeQuant {
    fn activation(&self, point: &str, xs: Tensor) -> Tensor {
        self.apply(point, xs)
    }
    fn same_grid(&self, source: &str, xs: Tensor) -> Tensor {
        self.apply(source, xs)
    }
}

/// Per-output-channel symmetric int8 quantization of a conv weight.
fn quantize_weight(name: &str, w: &Tensor) -> QuantizedWeight {
    let w = w.detach().to_kind(Kind::Float);
    let out = w.size()[0];
    let amax = w.abs().reshape([out, -1]).amax([1i64].as_slice(), false);
    let scale = (amax / 127.5).clamp_min(f32::EPSILON as f64);
    let shape = [out, 1, 1, 1];
    let q = (&w / scale.reshape(shape)).round().clamp(-128.0, 127.0);
    let dequantized = &q * scale.reshape(shape);
    QuantizedWeight {
        name: name.to_string(),
        int8: q.to_kind(Kind::Int8),
        scale,
        dequantized,
    }
}

/// Post-training static INT8 quantization of the model `cfg` with the variables of `vs`,
/// calibrated on `calibration` (feature batches `[B, 1, F, T]`), with fbgemm's settings.
pub fn quantize_int8(
    vs: &nn::VarStore,
    cfg: &ModelConfig,
    calibration: &[Tensor],
) -> Result<Int8Model> {
    quantize_int8_with(vs, cfg, calibration, &QuantConfig::default())
}

/// Whether an INT8 model is accepted: its macro accuracy may fall at most `tolerance` (a
/// fraction) below the fp32 model's. The note states both figures and the verdict.
pub fn int8_verdict(fp32: &Evaluation, int8: &Evaluation, tolerance: f64) -> Int8Verdict {
    let loss = fp32.macro_accuracy - int8.macro_accuracy;
    let accepted = loss <= tolerance;
    Int8Verdict {
        accepted,
        note: format!(
            "INT8 {}: macro accuracy {:.2}% vs {:.2}% in fp32 (loss {:.2} points; tolerance {:.2})",
            if accepted { "accepted" } else { "REJECTED" },
            100.0 * int8.macro_accuracy,
            100.0 * fp32.macro_accuracy,
            100.0 * loss,
            100.0 * tolerance
        ),
    }
}

/// The acceptance of an INT8 model against its fp32 source.
#[derive(Debug, Clone, PartialEq)]
pub struct Int8Verdict {
    pub accepted: bool,
    pub note: String,
}

/// [`quantize_int8`] with explicit options.
pub fn quantize_int8_with(
    vs: &nn::VarStore,
    cfg: &ModelConfig,
    calibration: &[Tensor],
    qc: &QuantConfig,
) -> Result<Int8Model> {
    cfg.validate()?;
    if calibration.is_empty() {
        return Err(Error::msg(format!(
            "quantizing `{}`: no calibration batches",
            cfg.describe()
        )));
    }
    let device = vs.device();
    // A private copy of the model: folding and weight quantization must not touch `vs`.
    let mut own = nn::VarStore::new(device);
    let mut net = build_net(&Vb::constant(&own.root()), cfg)?;
    let src = vs.variables();
    for (name, var) in own.variables() {
        match src.get(&name) {
            Some(s) if s.size() == var.size() => {}
            Some(s) => {
                return Err(Error::msg(format!(
                    "quantizing `{}`: variable `{name}` has shape {:?}, the model expects {:?}",
                    cfg.describe(),
                    s.size(),
                    var.size()
                )))
            }
            None => {
                return Err(Error::msg(format!(
                    "quantizing `{}`: the weights have no variable `{name}`",
                    cfg.describe()
                )))
            }
        }
    }
    own.copy(vs)?;
    super::fold::fold_bn(net.as_mut());

    let observer = MinMax::default();
    tch::no_grad(|| {
        for batch in calibration {
            let _ = net.forward_ctx(&batch.to_device(device), &Ctx::with_probe(false, &observer));
        }
    });
    let (qmin, qmax) = if qc.reduce_range { (0, 127) } else { (0, 255) };
    let mut points = BTreeMap::new();
    for (point, (lo, hi)) in observer.ranges.into_inner() {
        if !lo.is_finite() || !hi.is_finite() {
            return Err(Error::msg(format!(
                "quantizing `{}`: calibration produced non-finite activations at `{point}`",
                cfg.describe()
            )));
        }
        points.insert(point, affine_qparams(lo, hi, qmin, qmax));
    }

    let mut weights = Vec::new();
    net.visit_convs(&mut |unit| {
        let qw = quantize_weight(&unit.conv.name, &unit.conv.weight);
        unit.conv.weight = qw.dequantized.shallow_clone();
        weights.push(qw);
    });
    Ok(Int8Model {
        config: cfg.clone(),
        net,
        fake_quant: FakeQuant { points },
        weights,
    })
}
