//! Accuracy-driven tolerance tuning, as the reports' Intel Neural Compressor runs it: when the
//! INT8 model loses more than the tolerance against fp32 on the tuning set, layers fall back to
//! float one at a time, most sensitive first, until the loss is within tolerance or no layer is
//! left.
//!
//! Sensitivity of a point (INC's per-op fallback ranking): how much closer to the fp32 logits
//! the simulated INT8 model comes on the tuning set when that point alone stays in float
//! (reduction of the mean squared logit error). The acceptance decisions use the accuracy the
//! caller measures (the integer engine's, in the quantize stage).

use super::ptq::QuantizedModel;
use crate::error::Result;
use std::collections::BTreeMap;
use tch::{Kind, Tensor};

/// One point's measured sensitivity.
#[derive(Debug, Clone, PartialEq)]
pub struct Sensitivity {
    pub point: String,
    /// Mean squared logit error against fp32 with every point quantized, minus the same with
    /// this point in float: larger is more sensitive.
    pub error_reduction: f64,
}

/// One fallback and the accuracy after it.
#[derive(Debug, Clone, PartialEq)]
pub struct Fallback {
    pub point: String,
    pub op: String,
    pub accuracy: f64,
}

/// What tuning did.
#[derive(Debug, Clone, PartialEq)]
pub struct Tuning {
    pub fp32_accuracy: f64,
    /// Accuracy with every point quantized.
    pub int8_accuracy: f64,
    /// The points that fell back, in order, with the accuracy after each.
    pub fallbacks: Vec<Fallback>,
    pub final_accuracy: f64,
    /// The largest accuracy loss accepted (absolute, a fraction).
    pub tolerance: f64,
    pub accepted: bool,
    /// Every point, most sensitive first.
    pub ranking: Vec<Sensitivity>,
}

/// Ranks every quantized point of `model` by sensitivity on the tuning batches, whose fp32
/// logits are `fp32` (one tensor per batch).
pub fn rank(
    model: &mut QuantizedModel,
    batches: &[Tensor],
    fp32: &[Tensor],
) -> Result<Vec<Sensitivity>> {
    let error = |m: &QuantizedModel| -> f64 {
        let (mut sum, mut n) = (0f64, 0i64);
        for (x, want) in batches.iter().zip(fp32) {
            let got = m.simulate(x);
            let d = (got - want.to_device(tch::Device::Cpu)).square();
            sum += d.sum(Kind::Double).double_value(&[]);
            n += d.numel() as i64;
        }
        sum / n.max(1) as f64
    };
    let base = error(model);
    let mut ranking = Vec::new();
    for point in model.points() {
        if point.fallback {
            continue;
        }
        model.fall_back(&point.name)?;
        let reduced = error(model);
        model.quantize_again(&point.name)?;
        ranking.push(Sensitivity {
            error_reduction: base - reduced,
            point: point.name,
        });
    }
    // Stable: equally sensitive points keep execution order.
    ranking.sort_by(|a, b| b.error_reduction.total_cmp(&a.error_reduction));
    Ok(ranking)
}

/// Tunes `model` in place: `accuracy` measures a candidate on the tuning set, `fp32_accuracy`
/// is the float model's there. Only when the fully quantized model loses more than `tolerance`
/// are the points ranked (`rank`, e.g. [`rank`] on the tuning batches) and fallen back.
pub fn tune(
    model: &mut QuantizedModel,
    fp32_accuracy: f64,
    tolerance: f64,
    accuracy: &mut dyn FnMut(&QuantizedModel) -> Result<f64>,
    rank: impl FnOnce(&mut QuantizedModel) -> Result<Vec<Sensitivity>>,
) -> Result<Tuning> {
    let int8_accuracy = accuracy(model)?;
    let within = |acc: f64| fp32_accuracy - acc <= tolerance;
    let mut current = int8_accuracy;
    let mut fallbacks = Vec::new();
    let ranking = if within(current) {
        Vec::new()
    } else {
        rank(model)?
    };
    let ops: BTreeMap<String, String> =
        model.points().into_iter().map(|p| (p.name, p.op)).collect();
    for s in &ranking {
        if within(current) {
            break;
        }
        model.fall_back(&s.point)?;
        current = accuracy(model)?;
        fallbacks.push(Fallback {
            point: s.point.clone(),
            op: ops.get(&s.point).cloned().unwrap_or_default(),
            accuracy: current,
        });
    }
    Ok(Tuning {
        fp32_accuracy,
        int8_accuracy,
        fallbacks,
        final_accuracy: current,
        tolerance,
        accepted: within(current),
        ranking,
    })
}
