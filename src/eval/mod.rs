//! Evaluation: logits of a model over a feature set, the DCASE metrics computed from them, the
//! pre-training stage's multi-label metrics ([`multilabel`]: AP, mAP), and the published figures
//! reproduced ones are compared with ([`published`]; their columns are typed in
//! `ascrepro_results::columns`).

pub mod consistency;
pub mod effects;
pub mod multilabel;
pub mod published;

use crate::compress::int8::engine::Program;
use crate::error::{Error, Result};
use crate::models::AscModel;
use crate::train::FeatureSet;
use ascrepro_results::labels::{DeviceList, CLASSES};
use ascrepro_results::record::{DeviceScore, Evaluation};
use rayon::prelude::*;
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

/// Logits [N, classes] of an INT8 model on the integer engine, in batches of `batch` clips run
/// in parallel (each clip's result does not depend on its batch, so neither does the output).
pub fn predict_int8(program: &Program, set: &FeatureSet, batch: usize) -> Result<Tensor> {
    let n = set.len();
    let batch = batch.max(1);
    let dims: Vec<usize> = set.x.size().iter().map(|&d| d as usize).collect();
    let per_clip: usize = dims[1..].iter().product();
    // Tensors cannot cross threads: copy a group of batches out, then run them in parallel.
    let group = batch * rayon::current_num_threads();
    let mut logits: Vec<f32> = Vec::new();
    for start in (0..n).step_by(group) {
        let len = group.min(n - start);
        let x = set.x.narrow(0, start as i64, len as i64).contiguous();
        let values = Vec::<f32>::try_from(x.flatten(0, -1))
            .map_err(|e| Error::msg(format!("features: {e}")))?;
        let parts: Vec<Result<Vec<f32>>> = values
            .par_chunks(batch * per_clip)
            .map(|chunk| {
                let mut shape = dims.clone();
                shape[0] = chunk.len() / per_clip;
                program.run(chunk, &shape)
            })
            .collect();
        for part in parts {
            logits.extend(part?);
        }
    }
    if n == 0 {
        return Err(Error::msg("INT8 evaluation: no clips"));
    }
    Ok(Tensor::from_slice(&logits).reshape([n as i64, -1]))
}

/// Accuracy, macro-average (mean class-wise) accuracy, log loss, class- and device-wise accuracy
/// and the confusion matrix, from logits [N, classes]. `device` holds each clip's index into
/// `devices`; device-wise accuracy is keyed by the device ids present.
pub fn metrics(logits: &Tensor, y: &[i64], device: &[i64], devices: &DeviceList) -> Evaluation {
    let (pred, logp) = decide(logits);
    let k = CLASSES.len();
    let mut per_device: BTreeMap<usize, Vec<Vec<u64>>> = BTreeMap::new();
    for (i, &p) in pred.iter().enumerate() {
        per_device
            .entry(device[i] as usize)
            .or_insert_with(|| vec![vec![0; k]; k])[y[i] as usize][p] += 1;
    }
    let mut e = overall(&pred, &logp, y);
    e.device_accuracy = per_device
        .into_iter()
        .map(|(d, m)| {
            let clips: u64 = m.iter().flatten().sum();
            let right: u64 = (0..k).map(|c| m[c][c]).sum();
            (
                devices.name(d).to_string(),
                DeviceScore {
                    clips: clips as usize,
                    accuracy: right as f64 / clips.max(1) as f64,
                    macro_accuracy: macro_average(&m),
                },
            )
        })
        .collect();
    e
}

/// [`metrics`] without the device breakdown (`device_accuracy` is left empty): what training
/// curves and epoch selection read.
pub fn scores(logits: &Tensor, y: &[i64]) -> Evaluation {
    let (pred, logp) = decide(logits);
    overall(&pred, &logp, y)
}

/// Each clip's predicted class (the first maximum wins ties, as torch.argmax does) and the
/// log-probabilities, row-major [N, classes].
fn decide(logits: &Tensor) -> (Vec<usize>, Vec<f32>) {
    let k = CLASSES.len();
    let logp: Vec<f32> = logits
        .log_softmax(-1, Kind::Float)
        .reshape([-1])
        .try_into()
        .expect("float logits");
    let pred = logp
        .chunks(k)
        .map(|row| {
            row.iter()
                .enumerate()
                .fold(0, |best, (j, v)| if *v > row[best] { j } else { best })
        })
        .collect();
    (pred, logp)
}

fn overall(pred: &[usize], logp: &[f32], y: &[i64]) -> Evaluation {
    let n = y.len();
    let k = CLASSES.len();
    let mut confusion = vec![vec![0u64; k]; k];
    let mut nll = 0.0f64;
    for (i, &p) in pred.iter().enumerate() {
        let truth = y[i] as usize;
        confusion[truth][p] += 1;
        nll -= logp[i * k + truth] as f64;
    }
    let correct: u64 = (0..k).map(|c| confusion[c][c]).sum();
    Evaluation {
        clips: n,
        accuracy: correct as f64 / n.max(1) as f64,
        macro_accuracy: macro_average(&confusion),
        log_loss: nll / n.max(1) as f64,
        class_accuracy: class_recalls(&confusion),
        device_accuracy: BTreeMap::new(),
        confusion,
    }
}

/// The mean of the class-wise accuracies over the classes present (the DCASE macro average).
fn macro_average(m: &[Vec<u64>]) -> f64 {
    let present: Vec<f64> = class_recalls(m)
        .into_iter()
        .zip(m)
        .filter(|(_, row)| row.iter().sum::<u64>() > 0)
        .map(|(r, _)| r)
        .collect();
    present.iter().sum::<f64>() / present.len().max(1) as f64
}

/// The logits of a system routing each clip of `set` by its device id: the clips of each
/// device in `routes` through that device's model, every other clip through `general`. Each
/// model runs on its own clips only.
pub fn predict_routed(
    set: &FeatureSet,
    routes: &[(i64, &dyn AscModel)],
    general: &dyn AscModel,
    batch: usize,
    device: Device,
) -> Tensor {
    let general_rows: Vec<i64> = (0..set.len() as i64)
        .filter(|&i| routes.iter().all(|(d, _)| set.device[i as usize] != *d))
        .collect();
    let parts: Vec<(Vec<i64>, &dyn AscModel)> = routes
        .iter()
        .map(|(d, model)| (set.rows_of_device(*d), *model))
        .chain([(general_rows, general)])
        .filter(|(rows, _)| !rows.is_empty())
        .collect();
    let mut routed: Option<Tensor> = None;
    for (rows, model) in parts {
        let logits = predict(model, &set.select(&rows), batch, device);
        let out = routed.get_or_insert_with(|| {
            Tensor::zeros(
                [set.len() as i64, logits.size()[1]],
                (Kind::Float, Device::Cpu),
            )
        });
        let _ = tch::no_grad(|| out.index_copy_(0, &Tensor::from_slice(&rows), &logits));
    }
    routed.unwrap_or_else(|| Tensor::zeros([0, 0], (Kind::Float, Device::Cpu)))
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
        let e = metrics(&logits, &[0, 0, 1, 2], &[0, 1, 0, 0], &DeviceList::known());
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

    /// Logits `scale * (x + k)` for class k: which model produced a row shows in its values.
    #[derive(Debug)]
    struct Affine(f64);

    impl AscModel for Affine {
        fn forward_t(&self, xs: &Tensor, _train: bool) -> Tensor {
            let k = Tensor::arange(10, (Kind::Float, Device::Cpu));
            (xs.reshape([-1, 1]) + k.reshape([1, 10])) * self.0
        }
    }

    #[test]
    fn predict_routed_runs_each_model_on_its_devices_clips_and_the_general_one_on_the_rest() {
        // Clips of devices 0, 3, 9 (an id beyond the known nine), 0, 6; feature = row index.
        let set = FeatureSet {
            x: Tensor::arange(5, (Kind::Float, Device::Cpu)).reshape([5, 1, 1, 1]),
            y: vec![0; 5],
            device: vec![0, 3, 9, 0, 6],
        };
        let (general, model_a, model_s1) = (Affine(1.0), Affine(-1.0), Affine(1000.0));
        let routes: [(i64, &dyn AscModel); 2] = [(0, &model_a), (3, &model_s1)];
        let routed = predict_routed(&set, &routes, &general, 2, Device::Cpu);
        let all = |m: &Affine| predict(m, &set, 5, Device::Cpu);
        let expected = [&model_a, &model_s1, &general, &model_a, &general];
        for (i, m) in expected.iter().enumerate() {
            assert!(routed.get(i as i64).equal(&all(m).get(i as i64)), "row {i}");
        }
        // No device model: the general model's logits.
        let alone = predict_routed(&set, &[], &general, 2, Device::Cpu);
        assert!(alone.equal(&all(&general)));
    }
}
