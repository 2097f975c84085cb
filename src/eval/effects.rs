//! The effect of each method a report credits, at the size a profile ran: the paired
//! differences in accuracy between the stage with the method and the one without, over every
//! training seed and split both ran, and the direction those differences support. A direction
//! is claimed only when the 95 % t-interval of the mean paired difference excludes zero; one
//! run supports none.

use crate::recipe::EffectSpec;
use ascrepro_results::instance::{self, Instance};
use ascrepro_results::record::{EffectPair, EffectRecord, SystemRecord, Verdict};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Methods the five reports credit with an effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Knowledge distillation from a teacher (or teacher ensemble).
    Distillation,
    /// A larger teacher ensemble than the compared system's.
    TeacherEnsemble,
    /// Offline device simulation (IR-convolved copies of device-a clips).
    DeviceSimulation,
    /// Online device impulse response augmentation.
    DirAugmentation,
    /// RMS-energy-driven IR augmentation.
    EnergyIrAugmentation,
    /// Adaptive residual normalisation instead of ResNorm.
    #[serde(rename = "adaresnorm")]
    AdaResNorm,
    /// Multi-label pre-training before training on the scenes.
    Pretraining,
    /// Structured pruning followed by fine-tuning, against the unpruned model.
    Pruning,
    /// One model per training device with routing by device id.
    DeviceSpecificFinetuning,
    /// INT8 post-training quantization against the fp32 model.
    Quantization,
    /// fp16 deployment against the fp32 model.
    HalfPrecision,
    /// RepConv branches merged into single kernels for deployment, against the trained graph.
    RepconvMerge,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Distillation => "Knowledge distillation",
            Method::TeacherEnsemble => "Larger teacher ensemble",
            Method::DeviceSimulation => "Device simulation",
            Method::DirAugmentation => "DIR augmentation",
            Method::EnergyIrAugmentation => "RMS-energy IR augmentation",
            Method::AdaResNorm => "AdaResNorm",
            Method::Pretraining => "Multi-label pre-training",
            Method::Pruning => "Pruning + fine-tuning",
            Method::DeviceSpecificFinetuning => "Device-specific fine-tuning with routing",
            Method::Quantization => "INT8 quantization",
            Method::HalfPrecision => "fp16 deployment",
            Method::RepconvMerge => "RepConv merge",
        }
    }
}

/// Two-sided 97.5 % quantiles of Student's t for 1 ... 30 degrees of freedom.
const T975: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
];

fn t975(df: usize) -> f64 {
    // Beyond 30 degrees of freedom the normal quantile is within 2 %.
    T975.get(df.wrapping_sub(1)).copied().unwrap_or(1.96)
}

/// Each effect of `specs` measured on the systems of this run (accuracy, in points); `label`
/// gives a recipe stage's row label.
pub fn effects(
    specs: &[EffectSpec],
    systems: &[SystemRecord],
    label: impl Fn(&str) -> String,
) -> Vec<EffectRecord> {
    let runs = |stage: &str| -> BTreeMap<Instance, &SystemRecord> {
        systems
            .iter()
            .filter_map(|s| {
                let (base, inst) = instance::parse(&s.id);
                (base == stage).then_some((inst, s))
            })
            .collect()
    };
    specs
        .iter()
        .map(|spec| {
            let with = runs(&spec.with);
            let without = runs(&spec.without);
            let pairs: Vec<EffectPair> = with
                .iter()
                .filter_map(|(inst, w)| {
                    let wo = without.get(inst)?;
                    Some(EffectPair {
                        split: inst.split.clone(),
                        seed: inst.seed,
                        with: 100.0 * w.evaluation.accuracy,
                        without: 100.0 * wo.evaluation.accuracy,
                    })
                })
                .collect();
            record(spec, label(&spec.with), label(&spec.without), pairs)
        })
        .collect()
}

fn record(
    spec: &EffectSpec,
    with: String,
    without: String,
    pairs: Vec<EffectPair>,
) -> EffectRecord {
    let d: Vec<f64> = pairs.iter().map(|p| p.with - p.without).collect();
    let n = d.len();
    let mean = (n > 0).then(|| d.iter().sum::<f64>() / n as f64);
    let sd = mean
        .filter(|_| n > 1)
        .map(|m| (d.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1) as f64).sqrt());
    let ci95 = match (mean, sd) {
        (Some(m), Some(s)) => {
            let half = t975(n - 1) * s / (n as f64).sqrt();
            Some([m - half, m + half])
        }
        _ => None,
    };
    let verdict = match ci95 {
        Some([lo, _]) if lo > 0.0 => Verdict::Improves,
        Some([_, hi]) if hi < 0.0 => Verdict::Hurts,
        _ => Verdict::NotEstablished,
    };
    let statement = statement(spec.method, n, mean, sd, ci95, verdict);
    EffectRecord {
        method: spec.method.name().to_string(),
        with,
        without,
        claim: spec.claim.clone(),
        pairs,
        mean,
        sd,
        ci95,
        verdict,
        statement,
    }
}

fn statement(
    method: Method,
    n: usize,
    mean: Option<f64>,
    sd: Option<f64>,
    ci95: Option<[f64; 2]>,
    verdict: Verdict,
) -> String {
    let name = method.name();
    let Some(m) = mean else {
        return format!("{name}: not measured in this profile (no run of both stages).");
    };
    let (Some(s), Some([lo, hi])) = (sd, ci95) else {
        return format!(
            "{name}: {m:+.1} points of accuracy from one run of each; one run gives no spread, so the effect is not established at this size."
        );
    };
    // An exact transformation (a RepConv merge) changes no prediction.
    if m == 0.0 && s == 0.0 {
        return format!(
            "{name}: the same accuracy in each of the {n} paired runs: no effect on accuracy."
        );
    }
    let what = match verdict {
        Verdict::Improves => "improves accuracy at this size",
        Verdict::Hurts => "lowers accuracy at this size",
        Verdict::NotEstablished => {
            "the interval includes zero, so no direction is established at this size"
        }
    };
    format!(
        "{name}: {m:+.1} points of accuracy (mean of {n} paired runs, sd {s:.1}, 95 % interval {lo:+.1} to {hi:+.1}): {what}."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> EffectSpec {
        EffectSpec {
            method: Method::Distillation,
            with: "kd".into(),
            without: "plain".into(),
            claim: None,
        }
    }

    fn pairs(d: &[f64]) -> Vec<EffectPair> {
        d.iter()
            .enumerate()
            .map(|(i, x)| EffectPair {
                split: None,
                seed: i + 1,
                with: 50.0 + x,
                without: 50.0,
            })
            .collect()
    }

    #[test]
    fn direction_only_when_the_interval_excludes_zero() {
        let r = record(
            &spec(),
            "kd".into(),
            "plain".into(),
            pairs(&[2.0, 2.5, 3.0]),
        );
        assert_eq!(r.verdict, Verdict::Improves);
        assert!((r.mean.unwrap() - 2.5).abs() < 1e-12);
        // Same mean, wide spread: t(2) = 4.303 makes the interval cross zero.
        let r = record(
            &spec(),
            "kd".into(),
            "plain".into(),
            pairs(&[-1.0, 2.5, 6.0]),
        );
        assert_eq!(r.verdict, Verdict::NotEstablished);
        assert!(r.statement.contains("no direction is established"));
        let r = record(
            &spec(),
            "kd".into(),
            "plain".into(),
            pairs(&[-2.0, -2.2, -1.9, -2.1]),
        );
        assert_eq!(r.verdict, Verdict::Hurts);
    }

    #[test]
    fn one_run_establishes_nothing() {
        let r = record(&spec(), "kd".into(), "plain".into(), pairs(&[5.0]));
        assert_eq!(r.verdict, Verdict::NotEstablished);
        assert!(r.sd.is_none() && r.ci95.is_none());
        assert!(r.statement.contains("not established"));
        let r = record(&spec(), "kd".into(), "plain".into(), Vec::new());
        assert_eq!(r.verdict, Verdict::NotEstablished);
        assert!(r.statement.contains("not measured"));
    }
}
