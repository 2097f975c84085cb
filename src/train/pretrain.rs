//! Multi-label pre-training (Zhou et al.'s AudioSet stage): a model whose classifier has one
//! output per label of another label set, trained with binary cross-entropy, scored by mAP on
//! that set's evaluation split. The scene training loop (`fit`) stays single-label.

use super::{checkpoint, loss::bce_with_logits, Adam, LrSchedule};
use crate::audio::augment::Mixup;
use crate::error::{Error, Result};
use crate::eval::multilabel::mean_average_precision;
use crate::models::{self, AscModel, ModelConfig};
use crate::recipe::TrainingSpec;
use indicatif::ProgressBar;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use std::path::Path;
use tch::{nn::VarStore, Device, Kind, Tensor};

/// Features [N, 1, F, T] and multi-hot targets [N, C] of a multi-label set, on the CPU.
pub struct MultiLabelSet {
    pub x: Tensor,
    pub targets: Tensor,
}

impl MultiLabelSet {
    pub fn len(&self) -> usize {
        self.x.size()[0] as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn classes(&self) -> i64 {
        self.targets.size()[1]
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        Tensor::write_safetensors(&[("x", &self.x), ("targets", &self.targets)], path)
            .map_err(|e| Error::file(path, e.to_string()))
    }

    pub fn load(path: &Path) -> Result<MultiLabelSet> {
        let mut named: std::collections::BTreeMap<String, Tensor> = Tensor::read_safetensors(path)
            .map_err(|e| Error::file(path, format!("corrupt cache entry: {e}")))?
            .into_iter()
            .collect();
        let mut take = |k: &str| {
            named
                .remove(k)
                .ok_or_else(|| Error::file(path, format!("corrupt cache entry: no `{k}`")))
        };
        Ok(MultiLabelSet {
            x: take("x")?,
            targets: take("targets")?,
        })
    }
}

/// One epoch of pre-training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PretrainEpoch {
    pub epoch: usize,
    pub lr: f64,
    pub train_loss: f64,
    /// mAP on the evaluation split (classes with a positive clip only).
    pub eval_map: f64,
}

pub struct PretrainOptions<'a> {
    /// For messages.
    pub id: &'a str,
    /// The architecture, with as many classes as the label set.
    pub model: &'a ModelConfig,
    pub training: &'a TrainingSpec,
    pub seed: u64,
    pub device: Device,
    pub progress: Option<&'a ProgressBar>,
    /// Where epoch checkpoints go; a later call with the same directory resumes from the last.
    pub checkpoint_dir: &'a Path,
}

/// Trains `opts.model` on `train` with BCE (Mixup mixes inputs and targets when configured),
/// scoring mAP on `eval` after every epoch.
pub fn fit_multilabel(
    opts: &PretrainOptions,
    train: &MultiLabelSet,
    eval: &MultiLabelSet,
) -> Result<(VarStore, Vec<PretrainEpoch>)> {
    let t = opts.training;
    let n = train.len();
    if n == 0 || eval.is_empty() {
        return Err(Error::msg(format!(
            "stage `{}`: the pre-training set has {n} training and {} evaluation clips; it needs both",
            opts.id,
            eval.len()
        )));
    }
    let batch = t.batch_size.min(n);
    let steps = (n / batch).max(1);
    let schedule = LrSchedule::from_spec(&t.schedule, t.optimizer.lr(), t.epochs);
    let mixup = t.mixup.as_ref().map(|m| Mixup { alpha: m.alpha });
    tch::manual_seed(opts.seed as i64);
    let vs = VarStore::new(opts.device);
    let model = models::build(&vs.root(), opts.model)?;
    let mut adam = Adam::for_spec(&vs, &t.optimizer);
    let (mut start, mut curve) = (0, Vec::with_capacity(t.epochs));
    if let Some((done, tensors)) = checkpoint::load::<Vec<PretrainEpoch>>(opts.checkpoint_dir)? {
        checkpoint::restore(&vs, &tensors, "w.")?;
        adam.load_state(&tensors)?;
        adam.step = (done.len() * steps) as i64;
        start = done.len();
        curve = done;
    }
    if let Some(pb) = opts.progress {
        pb.set_length((t.epochs * steps) as u64);
        pb.set_position((start * steps) as u64);
    }
    for epoch in start..t.epochs {
        let mut rng = checkpoint::epoch_rng(opts.seed, epoch);
        let mut order: Vec<i64> = (0..n as i64).collect();
        order.shuffle(&mut rng);
        let (mut loss_sum, mut lr) = (0.0, 0.0);
        for step in 0..steps {
            let idx = Tensor::from_slice(&order[step * batch..(step + 1) * batch]);
            let mut x = train.x.index_select(0, &idx).to_device(opts.device);
            let mut y = train.targets.index_select(0, &idx).to_device(opts.device);
            if let Some(m) = &mixup {
                let plan = m.plan(batch, &mut rng);
                x = plan.mix(&x);
                y = plan.mix(&y);
            }
            lr = schedule.at(epoch as f64 + step as f64 / steps as f64);
            let loss = bce_with_logits(&model.forward_t(&x, true), &y);
            adam.zero_grad();
            loss.backward();
            adam.step(lr);
            let l = loss.double_value(&[]);
            if !l.is_finite() {
                return Err(Error::msg(format!(
                    "stage `{}`: the pre-training loss became {l} at epoch {} step {step}; lower the learning rate",
                    opts.id,
                    epoch + 1
                )));
            }
            loss_sum += l;
            if let Some(pb) = opts.progress {
                pb.inc(1);
            }
        }
        curve.push(PretrainEpoch {
            epoch: epoch + 1,
            lr,
            train_loss: loss_sum / steps as f64,
            eval_map: score(model.as_ref(), eval, opts.device),
        });
        checkpoint::save(opts.checkpoint_dir, epoch + 1, &vs, &adam, None, &curve)?;
    }
    Ok((vs, curve))
}

/// mAP of `model` on `set`.
pub fn score(model: &dyn AscModel, set: &MultiLabelSet, device: Device) -> f64 {
    let mut out = Vec::new();
    tch::no_grad(|| {
        for start in (0..set.len() as i64).step_by(256) {
            let len = 256.min(set.len() as i64 - start);
            let x = set.x.narrow(0, start, len).to_device(device);
            out.push(model.forward_t(&x, false).to_device(Device::Cpu));
        }
    });
    let scores = Tensor::cat(&out, 0).to_kind(Kind::Float);
    mean_average_precision(&scores, &set.targets)
}

/// Writes the pre-training curve next to the weights.
pub fn write_curve(path: &Path, curve: &[PretrainEpoch]) -> Result<()> {
    let text = serde_json::to_string_pretty(curve).map_err(|e| Error::msg(e.to_string()))?;
    crate::fsio::write(path, text.as_bytes(), &[])
}
