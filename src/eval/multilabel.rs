//! Multi-label metrics for the AudioSet pre-training stage: average precision (AP) per class
//! and its mean over the classes (mAP), AudioSet's headline metric.
//!
//! AP is scikit-learn's `average_precision_score`: the step-function integral of the
//! precision-recall curve, sum over thresholds of (R_k - R_(k-1)) P_k, the thresholds being the
//! distinct scores in descending order. Tied scores form one threshold (all clips at that score
//! are taken together), as sklearn's curve does; no interpolation.

use tch::{Kind, Tensor};

/// AP of one class from its clips' scores and whether each clip is a positive. `None` when no
/// clip is a positive (AP is undefined there). Panics if the lengths differ or a score is NaN.
pub fn average_precision(scores: &[f64], positive: &[bool]) -> Option<f64> {
    assert_eq!(
        scores.len(),
        positive.len(),
        "average_precision: {} scores but {} targets",
        scores.len(),
        positive.len()
    );
    assert!(
        scores.iter().all(|s| !s.is_nan()),
        "average_precision: a score is NaN"
    );
    let total = positive.iter().filter(|&&p| p).count();
    if total == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_unstable_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut fp) = (0usize, 0usize);
    let (mut ap, mut prev_recall) = (0.0f64, 0.0f64);
    let mut i = 0;
    while i < order.len() {
        // One threshold: every clip scoring exactly this (−0.0 and 0.0 alike, as numpy).
        let s = scores[order[i]];
        while i < order.len() && scores[order[i]] == s {
            if positive[order[i]] {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        let recall = tp as f64 / total as f64;
        let precision = tp as f64 / (tp + fp) as f64;
        ap += (recall - prev_recall) * precision;
        prev_recall = recall;
    }
    Some(ap)
}

/// AP of every class of `scores` [N, C] (any float kind; logits or probabilities give the same
/// AP) against `targets` [N, C] of 0s and 1s: `None` for a class with no positive clip.
/// Panics if the shapes differ, a target is not 0 or 1, or a score is NaN.
pub fn class_average_precision(scores: &Tensor, targets: &Tensor) -> Vec<Option<f64>> {
    let shape = scores.size();
    assert!(
        shape.len() == 2 && targets.size() == shape,
        "class_average_precision: scores {:?} and targets {:?} must both be [clips, classes]",
        shape,
        targets.size()
    );
    let (n, c) = (shape[0] as usize, shape[1] as usize);
    let flat = |t: &Tensor| -> Vec<f64> {
        t.to_kind(Kind::Double)
            .contiguous()
            .reshape([-1])
            .try_into()
            .expect("a CPU tensor of numbers")
    };
    let s = flat(scores);
    let t = flat(targets);
    assert!(
        t.iter().all(|&v| v == 0.0 || v == 1.0),
        "class_average_precision: targets must be 0 or 1"
    );
    (0..c)
        .map(|k| {
            let col: Vec<f64> = (0..n).map(|i| s[i * c + k]).collect();
            let pos: Vec<bool> = (0..n).map(|i| t[i * c + k] == 1.0).collect();
            average_precision(&col, &pos)
        })
        .collect()
}

/// mAP: the mean of [`class_average_precision`] over the classes that have at least one
/// positive clip. Classes without a positive are left out: scikit-learn's
/// `average_precision_score(targets, scores, average="macro")` would count them as AP 0 (with
/// a warning), which punishes a model for the evaluation set's make-up; so this equals sklearn
/// on the columns with a positive. NaN when no class has one.
pub fn mean_average_precision(scores: &Tensor, targets: &Tensor) -> f64 {
    let present: Vec<f64> = class_average_precision(scores, targets)
        .into_iter()
        .flatten()
        .collect();
    if present.is_empty() {
        f64::NAN
    } else {
        present.iter().sum::<f64>() / present.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sklearn_documentation_example() {
        // sklearn's docstring: average_precision_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]).
        let ap = average_precision(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]).unwrap();
        assert!((ap - 0.833_333_333_333_333_3).abs() < 1e-15, "{ap}");
    }

    #[test]
    fn ties_form_one_threshold() {
        // All clips tied: one threshold, precision = prevalence.
        let ap = average_precision(&[0.5; 4], &[true, false, false, false]).unwrap();
        assert!((ap - 0.25).abs() < 1e-15);
        // A positive tied with a negative at the top: P = 1/2 at R = 1/2, then P = 2/3 at R = 1.
        let ap = average_precision(&[0.9, 0.9, 0.5], &[true, false, true]).unwrap();
        assert!((ap - (0.5 * 0.5 + 0.5 * 2.0 / 3.0)).abs() < 1e-15);
        assert_eq!(average_precision(&[0.1, 0.2], &[false, false]), None);
    }

    #[test]
    fn mean_leaves_out_classes_without_positives() {
        let scores = Tensor::from_slice(&[0.9f32, 0.1, 0.2, 0.8, 0.3, 0.4]).reshape([3, 2]);
        let targets = Tensor::from_slice(&[1.0f32, 0.0, 0.0, 0.0, 0.0, 0.0]).reshape([3, 2]);
        let per = class_average_precision(&scores, &targets);
        assert_eq!(per, vec![Some(1.0), None]);
        assert_eq!(mean_average_precision(&scores, &targets), 1.0);
        assert!(mean_average_precision(&scores, &targets.zeros_like()).is_nan());
    }
}
