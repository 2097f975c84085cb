//! Evaluation: logits of a model over a feature set, the DCASE metrics computed from them, the
//! pre-training stage's multi-label metrics ([`multilabel`]: AP, mAP), and the published figures
//! reproduced ones are compared with ([`published`], their columns typed in [`columns`]).

pub mod columns;
pub mod multilabel;
pub mod published;

use crate::labels::{CLASSES, DEVICES};
use crate::models::AscModel;
use crate::results::{DeviceScore, Evaluation};
use crate::train::FeatureSet;
use std::collections::BTreeMap;
use tch::{Device, Kind, Tensor};

/// Eval-mode logits [N, classes] on the CPU, computed in batches on `device`.
pub fn predict(model: &dyn AscModel, set: &FeatureSet, batch: usize, device: Device) -> Tensor {
    let n = set.len() as i64;
    let mut out = Vec::new();
    tch::no_grad(|| {
        let mut start = 0;
        while start < n {
            let len = (batch as i64).min(n - start);
            let x = set.x.narrow(0, start, len).to_device(device);
            out.push(
                model
                    .forward_t(&x, false)
                    .to_device(Device::Cpu)
                    .to_kind(Kind::Float),
            );
            start += len;
        }
    });
    Tensor::cat(&out, 0)
}

/// Accuracy, macro-average (mean class-wise) accuracy, log loss, class- and device-wise accuracy
/// and the confusion matrix, from logits [N, classes].
pub fn metrics(logits: &Tensor, y: &[i64], device: &[i64]) -> Evaluation {
    let n = y.len();
    let k = CLASSES.len();
    let logp: Vec<f32> = logits
        .log_softmax(-1, Kind::Float)
        .reshape([-1])
        .try_into()
        .expect("float logits");
    let mut confusion = vec![vec![0u64; k]; k];
    let mut per_device: BTreeMap<usize, Vec<Vec<u64>>> = BTreeMap::new();
    let mut nll = 0.0f64;
    for i in 0..n {
        let row = &logp[i * k..(i + 1) * k];
        // First maximum wins ties, as torch.argmax does.
        let pred = row
            .iter()
            .enumerate()
            .fold(0, |best, (j, v)| if *v > row[best] { j } else { best });
        let truth = y[i] as usize;
        confusion[truth][pred] += 1;
        per_device
            .entry(device[i] as usize)
            .or_insert_with(|| vec![vec![0; k]; k])[truth][pred] += 1;
        nll -= row[truth] as f64;
    }
    let class_accuracy = class_recalls(&confusion);
    let correct: u64 = (0..k).map(|c| confusion[c][c]).sum();
    let device_accuracy = per_device
        .into_iter()
        .map(|(d, m)| {
            let clips: u64 = m.iter().flatten().sum();
            let right: u64 = (0..k).map(|c| m[c][c]).sum();
            let recalls = class_recalls(&m);
            let present: Vec<f64> = recalls
                .iter()
                .zip(&m)
                .filter(|(_, row)| row.iter().sum::<u64>() > 0)
                .map(|(r, _)| *r)
                .collect();
            (
                DEVICES[d].to_string(),
                DeviceScore {
                    clips: clips as usize,
                    accuracy: right as f64 / clips.max(1) as f64,
                    macro_accuracy: present.iter().sum::<f64>() / present.len().max(1) as f64,
                },
            )
        })
        .collect();
    let present: Vec<f64> = class_accuracy
        .iter()
        .zip(&confusion)
        .filter(|(_, row)| row.iter().sum::<u64>() > 0)
        .map(|(r, _)| *r)
        .collect();
    Evaluation {
        clips: n,
        accuracy: correct as f64 / n.max(1) as f64,
        macro_accuracy: present.iter().sum::<f64>() / present.len().max(1) as f64,
        log_loss: nll / n.max(1) as f64,
        class_accuracy,
        device_accuracy,
        confusion,
    }
}

fn class_recalls(m: &[Vec<u64>]) -> Vec<f64> {
    m.iter()
        .enumerate()
        .map(|(c, row)| {
            let total: u64 = row.iter().sum();
            if total == 0 {
                0.0
            } else {
                row[c] as f64 / total as f64
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_on_a_hand_made_case() {
        // 4 clips: class 0 right, class 0 wrong (pred 1), class 1 right, class 2 right.
        let mut l = vec![0.0f32; 4 * 10];
        l[0] = 5.0;
        l[10 + 1] = 5.0;
        l[20 + 1] = 5.0;
        l[30 + 2] = 5.0;
        let logits = Tensor::from_slice(&l).reshape([4, 10]);
        let e = metrics(&logits, &[0, 0, 1, 2], &[0, 1, 0, 0]);
        assert_eq!(e.clips, 4);
        assert!((e.accuracy - 0.75).abs() < 1e-12);
        // Class recalls 0.5, 1, 1 → macro 2.5/3.
        assert!((e.macro_accuracy - 2.5 / 3.0).abs() < 1e-12);
        assert_eq!(e.confusion[0][1], 1);
        assert_eq!(e.device_accuracy["a"].clips, 3);
        assert!((e.device_accuracy["a"].accuracy - 1.0).abs() < 1e-12);
        assert!((e.device_accuracy["b"].accuracy - 0.0).abs() < 1e-12);
        let p_right = (5.0f64.exp()) / (5.0f64.exp() + 9.0);
        let expected = -(3.0 * p_right.ln() + (1.0 / (5.0f64.exp() + 9.0)).ln()) / 4.0;
        assert!((e.log_loss - expected).abs() < 1e-5);
    }
}
