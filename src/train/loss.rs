//! Losses: cross-entropy on (mixed) hard labels plus knowledge distillation from teacher logits;
//! binary cross-entropy for multi-label (AudioSet) pre-training.

use tch::{Kind, Reduction, Tensor};

/// The two distillation objectives of the reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KdLoss {
    /// DCASE2023 (Cai et al.): L = CE + lambda · KL(teacher_T || student_T).
    CePlusKl { lambda: f64, temperature: f64 },
    /// DCASE2024/2025: L = lambda · CE + (1 − lambda) · T² · KL(teacher_T || student_T).
    Weighted { lambda: f64, temperature: f64 },
}

impl KdLoss {
    pub fn from_spec(d: &crate::recipe::DistillSpec) -> KdLoss {
        match d.form {
            crate::recipe::KdForm::Weighted => KdLoss::Weighted {
                lambda: d.lambda,
                temperature: d.temperature,
            },
            crate::recipe::KdForm::CePlusKl => KdLoss::CePlusKl {
                lambda: d.lambda,
                temperature: d.temperature,
            },
        }
    }

    /// Combines an already computed label loss with the distillation term.
    pub fn combine(&self, ce: &Tensor, student: &Tensor, teacher: &Tensor) -> Tensor {
        match *self {
            KdLoss::CePlusKl {
                lambda,
                temperature,
            } => ce + kl_soft(student, teacher, temperature) * lambda,
            KdLoss::Weighted {
                lambda,
                temperature,
            } => {
                ce * lambda
                    + kl_soft(student, teacher, temperature)
                        * ((1.0 - lambda) * temperature * temperature)
            }
        }
    }
}

/// KL(softmax(teacher/T) || softmax(student/T)), summed over classes and averaged over the batch
/// (PyTorch `kl_div(..., reduction="batchmean")`).
pub fn kl_soft(student: &Tensor, teacher: &Tensor, temperature: f64) -> Tensor {
    let s = (student / temperature).log_softmax(-1, Kind::Float);
    let t = (teacher / temperature).log_softmax(-1, Kind::Float);
    s.kl_div(&t, Reduction::Sum, true) / student.size()[0] as f64
}

/// Per-sample cross-entropy of logits against integer labels.
pub fn cross_entropy_per_sample(logits: &Tensor, labels: &Tensor) -> Tensor {
    let logp = logits.log_softmax(-1, Kind::Float);
    -logp.gather(1, &labels.unsqueeze(1), false).squeeze_dim(1)
}

/// Multi-label loss: binary cross-entropy of each logit against its target in [0, 1] (0/1
/// labels, or mixed ones), averaged over every element, as `torch.nn.BCEWithLogitsLoss()`
/// (mean reduction, numerically stable for large logits).
pub fn bce_with_logits(logits: &Tensor, targets: &Tensor) -> Tensor {
    logits.binary_cross_entropy_with_logits::<Tensor>(targets, None, None, Reduction::Mean)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bce_matches_closed_form() {
        let x = [2.0f64, -1.0, 0.0, 40.0];
        let y = [1.0f64, 0.0, 0.5, 0.0];
        let expected: f64 = x
            .iter()
            .zip(&y)
            .map(|(x, y)| x.max(0.0) - x * y + (-x.abs()).exp().ln_1p())
            .sum::<f64>()
            / 4.0;
        let l = bce_with_logits(
            &Tensor::from_slice(&x).reshape([2, 2]),
            &Tensor::from_slice(&y).reshape([2, 2]),
        );
        assert!((l.double_value(&[]) - expected).abs() < 1e-12);
    }

    #[test]
    fn kl_is_zero_for_equal_logits_and_positive_otherwise() {
        let a = Tensor::from_slice(&[1.0f32, 2.0, 0.5, -1.0, 0.0, 3.0]).reshape([2, 3]);
        assert!(kl_soft(&a, &a, 2.0).double_value(&[]).abs() < 1e-7);
        let b = Tensor::from_slice(&[0.0f32, 0.0, 0.0, 2.0, 1.0, 0.0]).reshape([2, 3]);
        assert!(kl_soft(&a, &b, 2.0).double_value(&[]) > 0.0);
    }

    #[test]
    fn kl_matches_closed_form() {
        let s = Tensor::from_slice(&[0.0f32, 1.0]).reshape([1, 2]);
        let t = Tensor::from_slice(&[1.0f32, 0.0]).reshape([1, 2]);
        let p = |x: [f64; 2]| {
            let z = x[0].exp() + x[1].exp();
            [x[0].exp() / z, x[1].exp() / z]
        };
        let (ps, pt) = (p([0.0, 1.0]), p([1.0, 0.0]));
        let expected: f64 = (0..2).map(|i| pt[i] * (pt[i] / ps[i]).ln()).sum();
        assert!((kl_soft(&s, &t, 1.0).double_value(&[]) - expected).abs() < 1e-6);
    }

    #[test]
    fn loss_forms_weight_terms_as_published() {
        let ce = Tensor::from(2.0f32);
        let s = Tensor::from_slice(&[0.0f32, 1.0]).reshape([1, 2]);
        let t = Tensor::from_slice(&[1.0f32, 0.0]).reshape([1, 2]);
        let kl5 = kl_soft(&s, &t, 5.0).double_value(&[]);
        let l = KdLoss::CePlusKl {
            lambda: 20.0,
            temperature: 5.0,
        }
        .combine(&ce, &s, &t);
        assert!((l.double_value(&[]) - (2.0 + 20.0 * kl5)).abs() < 1e-5);
        let kl2 = kl_soft(&s, &t, 2.0).double_value(&[]);
        let l = KdLoss::Weighted {
            lambda: 0.02,
            temperature: 2.0,
        }
        .combine(&ce, &s, &t);
        assert!((l.double_value(&[]) - (0.02 * 2.0 + 0.98 * 4.0 * kl2)).abs() < 1e-5);
    }
}
