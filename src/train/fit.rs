//! The training loop: seeded, resumable epoch by epoch, with the recipe's optimiser, schedule,
//! augmentations and optional distillation from precomputed teacher logits.

use super::checkpoint;
use super::datamodule::TrainAudio;
use super::init::{self, InitFrom};
use super::{loss::cross_entropy_per_sample, Adam, FeatureSet, KdLoss, LrSchedule};
use crate::audio::augment::{roll, DirAugment, FreqMixStyle, Mixup, SpecAugment, WaveformAugment};
use crate::error::{Error, Result};
use crate::models::blocks::Vb;
use crate::models::{self, AscModel, Net};
use crate::recipe::{Select, TrainStage};
use ascrepro_results::record::EpochLog;
use indicatif::ProgressBar;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use tch::{nn::VarStore, Device, Kind, Tensor};

pub struct FitOptions<'a> {
    pub stage: &'a TrainStage,
    pub device: Device,
    /// Where epoch checkpoints go; a later call with the same directory resumes from the last one.
    pub checkpoint_dir: &'a Path,
    pub progress: Option<&'a ProgressBar>,
    /// Waveforms of the training set's leading rows: required when the stage augments
    /// waveforms (DIR augmentation, time rolling in seconds); batches are then extracted per step.
    pub audio: Option<&'a TrainAudio<'a>>,
    /// Weights to start from instead of a fresh initialisation.
    pub init: Option<&'a InitFrom>,
    /// The split `select: best` chooses the epoch on (required then).
    pub validation: Option<&'a FeatureSet>,
}

pub struct Fitted {
    pub vs: VarStore,
    pub model: Box<dyn AscModel>,
    pub curve: Vec<EpochLog>,
    /// The epoch whose weights `vs` holds (1-based), and its validation macro accuracy when it
    /// was selected on the validation split.
    pub selected: (usize, Option<f64>),
}

/// Hooks into the training loop for work that edits the network while it trains (structured
/// pruning's masks), Lightning-style: the loop calls them in a fixed order and knows nothing of
/// what they do. Every hook defaults to doing nothing.
///
/// Order: [`Self::on_fit_start`] once (after the weights are initialised or restored from an
/// epoch checkpoint); per epoch [`Self::on_epoch_start`], [`Self::after_step`] after every
/// optimizer step, [`Self::on_epoch_end`]; then the epoch checkpoint stores [`Self::state`].
/// A run resumed from that checkpoint gets the state back in `on_fit_start` and continues with
/// the next epoch's `on_epoch_start`, so a killed run ends where an uninterrupted one does.
pub trait FitCallback {
    /// `state`: what [`Self::state`] returned for the checkpoint the run resumes from (none: a
    /// fresh start).
    fn on_fit_start(
        &mut self,
        _vs: &VarStore,
        _net: &mut dyn Net,
        _state: Option<&serde_json::Value>,
    ) -> Result<()> {
        Ok(())
    }
    /// Before the first step of `epoch` (0-based).
    fn on_epoch_start(&mut self, _epoch: usize, _vs: &VarStore, _net: &mut dyn Net) -> Result<()> {
        Ok(())
    }
    /// After each optimizer step.
    fn after_step(&mut self, _vs: &VarStore, _net: &mut dyn Net) -> Result<()> {
        Ok(())
    }
    /// After the epoch's last step and its validation, before its checkpoint.
    fn on_epoch_end(&mut self, _epoch: usize, _vs: &VarStore, _net: &mut dyn Net) -> Result<()> {
        Ok(())
    }
    /// What the epoch checkpoint keeps for a resumed run (`Null`: nothing).
    fn state(&self) -> Result<serde_json::Value> {
        Ok(serde_json::Value::Null)
    }
}

/// The callback of a plain training run.
pub struct NoCallback;

impl FitCallback for NoCallback {}

#[derive(Serialize, Deserialize)]
struct CheckpointMeta {
    epochs_done: usize,
    adam_step: i64,
    curve: Vec<EpochLog>,
    /// The best validation epoch so far and its macro accuracy (`select: best`); its weights
    /// are kept in the checkpoint as `b.*`.
    #[serde(default)]
    best: Option<(usize, f64)>,
    /// The callback's state ([`FitCallback::state`]); absent for plain training.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    callback: Option<serde_json::Value>,
}

/// Trains `stage.model` on `train`. `teacher` holds teacher logits aligned with `train`'s rows;
/// `val` is evaluated every `validate_every` epochs for the curves (never used for selection).
pub fn fit(
    opts: &FitOptions,
    train: &FeatureSet,
    teacher: Option<&Tensor>,
    val: Option<&FeatureSet>,
) -> Result<Fitted> {
    fit_with(opts, train, teacher, val, &mut NoCallback)
}

/// [`fit`] with `callback`'s hooks.
pub fn fit_with(
    opts: &FitOptions,
    train: &FeatureSet,
    teacher: Option<&Tensor>,
    val: Option<&FeatureSet>,
    callback: &mut dyn FitCallback,
) -> Result<Fitted> {
    let st = opts.stage;
    let t = &st.training;
    let n = train.len();
    if n == 0 {
        return Err(Error::msg(format!(
            "stage `{}`: the training set is empty",
            st.id
        )));
    }
    let batch = t.batch_size.min(n);
    // Full batches only: BatchNorm in train mode cannot take a batch of one.
    let steps = (n / batch).max(1);
    let kd = match (&st.distill, teacher) {
        (Some(d), Some(_)) => Some(KdLoss::from_spec(d)),
        (Some(_), None) => {
            return Err(Error::msg(format!(
                "stage `{}` distils but got no teacher logits",
                st.id
            )))
        }
        _ => None,
    };
    let mixup = t.mixup.as_ref().map(|m| Mixup { alpha: m.alpha });
    let fms = t.freq_mixstyle.as_ref().map(|m| FreqMixStyle {
        alpha: m.alpha,
        p: m.p,
    });
    let schedule = LrSchedule::from_spec(&t.schedule, t.optimizer.lr(), t.epochs);
    let augment = BatchAugment::from_stage(st, opts.audio, train)?;

    let select_best = st.select == Select::Best;
    if select_best && opts.validation.is_none() {
        return Err(Error::msg(format!(
            "stage `{}` selects its best epoch but got no validation split",
            st.id
        )));
    }
    // Found before seeding: finding the classifier builds networks, which draws numbers.
    let fresh = match opts.init {
        Some(init) => Some(init::fresh_variables(&st.model, init)?),
        None => None,
    };
    tch::manual_seed(st.seed as i64);
    let vs = VarStore::new(opts.device);
    // As `models::build` does; the callbacks need the `Net` interface.
    let mut model = models::build_net(&Vb::new(&vs.root()), &st.model)?;
    if let (Some(init), Some(fresh)) = (opts.init, &fresh) {
        init::load_into(&vs, init, fresh)?;
    }
    let mut adam = Adam::for_spec(&vs, &t.optimizer);
    let (mut start, mut curve) = (0, Vec::new());
    let mut best: Option<(usize, f64, BTreeMap<String, Tensor>)> = None;
    let mut callback_state = None;
    if let Some((meta, tensors)) = checkpoint::load::<CheckpointMeta>(opts.checkpoint_dir)? {
        checkpoint::restore(&vs, &tensors, "w.")?;
        adam.load_state(&tensors)?;
        adam.step = meta.adam_step;
        start = meta.epochs_done;
        curve = meta.curve;
        if let Some((epoch, score)) = meta.best {
            best = Some((epoch, score, prefixed(&tensors, "b.")));
        }
        callback_state = meta.callback;
    }
    callback.on_fit_start(&vs, model.as_mut(), callback_state.as_ref())?;
    if let Some(pb) = opts.progress {
        pb.set_length((t.epochs * steps) as u64);
        pb.set_position((start * steps) as u64);
    }

    for epoch in start..t.epochs {
        let mut rng = checkpoint::epoch_rng(st.seed, epoch);
        let mut order: Vec<i64> = (0..n as i64).collect();
        order.shuffle(&mut rng);
        let (mut loss_sum, mut correct, mut seen) = (0.0, 0i64, 0usize);
        let mut lr = 0.0;
        callback.on_epoch_start(epoch, &vs, model.as_mut())?;
        for step in 0..steps {
            let idx = &order[step * batch..(step + 1) * batch];
            let (mut x, y) = augment.batch(train, idx, opts.device, &mut rng)?;
            if augment.max_frames > 0 {
                x = roll::roll_frames(&x, &roll::draw_shifts(batch, augment.max_frames, &mut rng));
            }
            if let Some(f) = &fms {
                x = f.apply(&x, &mut rng);
            }
            if let Some(s) = &augment.spec {
                x = s.augment(&x, &mut rng);
            }
            let plan = mixup.map(|m| m.plan(batch, &mut rng));
            if let Some(p) = &plan {
                x = p.mix(&x);
            }
            lr = schedule.at(epoch as f64 + step as f64 / steps as f64);
            let logits = model.forward_t(&x, true);
            let ce = match &plan {
                Some(p) => p.mix_loss(&y, |labels| cross_entropy_per_sample(&logits, labels)),
                None => cross_entropy_per_sample(&logits, &y).mean(Kind::Float),
            };
            let loss = match (&kd, teacher) {
                (Some(kd), Some(tl)) => {
                    let tb = tl
                        .index_select(0, &Tensor::from_slice(idx))
                        .to_device(opts.device);
                    let tb = match &plan {
                        Some(p) => p.mix(&tb),
                        None => tb,
                    };
                    kd.combine(&ce, &logits, &tb)
                }
                _ => ce,
            };
            adam.zero_grad();
            loss.backward();
            adam.step(lr);
            callback.after_step(&vs, model.as_mut())?;
            let l = loss.double_value(&[]);
            if !l.is_finite() {
                return Err(Error::msg(format!(
                    "stage `{}`: the training loss became {l} at epoch {} step {step}; lower the learning rate",
                    st.id,
                    epoch + 1
                )));
            }
            loss_sum += l * batch as f64;
            correct += logits
                .argmax(-1, false)
                .eq_tensor(&y)
                .sum(Kind::Int64)
                .int64_value(&[]);
            seen += batch;
            if let Some(pb) = opts.progress {
                pb.inc(1);
            }
        }
        let (val_loss, val_accuracy) = match val {
            Some(v) if validates(t, epoch) => {
                let logits =
                    crate::eval::predict(model.as_ref() as &dyn AscModel, v, 256, opts.device);
                let e = crate::eval::scores(&logits, &v.y);
                (Some(e.log_loss), Some(e.macro_accuracy))
            }
            _ => (None, None),
        };
        curve.push(EpochLog {
            epoch: epoch + 1,
            lr,
            train_loss: loss_sum / seen as f64,
            train_accuracy: correct as f64 / seen as f64,
            val_loss,
            val_accuracy,
        });
        if let Some(pb) = opts.progress {
            let last = curve.last().expect("pushed above");
            pb.set_message(format!(
                "epoch {}/{} loss {:.3}{}",
                epoch + 1,
                t.epochs,
                last.train_loss,
                last.val_accuracy
                    .map(|a| format!(" val acc {:.1}%", 100.0 * a))
                    .unwrap_or_default()
            ));
        }
        if select_best && validates(t, epoch) {
            let v = opts.validation.expect("checked above");
            let logits = crate::eval::predict(model.as_ref() as &dyn AscModel, v, 256, opts.device);
            let score = crate::eval::scores(&logits, &v.y).macro_accuracy;
            // Ties keep the earlier epoch.
            if best.as_ref().is_none_or(|b| score > b.1) {
                let weights = vs
                    .variables()
                    .into_iter()
                    .map(|(k, t)| (k, t.detach().copy()))
                    .collect();
                best = Some((epoch + 1, score, weights));
            }
        }
        callback.on_epoch_end(epoch, &vs, model.as_mut())?;
        let state = callback.state()?;
        checkpoint::save(
            opts.checkpoint_dir,
            epoch + 1,
            &vs,
            &adam,
            best.as_ref().map(|b| &b.2),
            &CheckpointMeta {
                epochs_done: epoch + 1,
                adam_step: adam.step,
                curve: curve.clone(),
                best: best.as_ref().map(|b| (b.0, b.1)),
                callback: (!state.is_null()).then_some(state),
            },
        )?;
    }
    let selected = match best {
        Some((epoch, score, weights)) if select_best => {
            checkpoint::restore(&vs, &weights, "")?;
            (epoch, Some(score))
        }
        _ => (t.epochs, None),
    };
    Ok(Fitted {
        vs,
        model: model as Box<dyn AscModel>,
        curve,
        selected,
    })
}

/// Whether `epoch` (0-based) is a validation epoch: every `validate_every`, and the last.
fn validates(t: &crate::recipe::TrainingSpec, epoch: usize) -> bool {
    t.validate_every > 0 && ((epoch + 1).is_multiple_of(t.validate_every) || epoch + 1 == t.epochs)
}

/// The tensors named `prefix`*, without the prefix.
fn prefixed(tensors: &BTreeMap<String, Tensor>, prefix: &str) -> BTreeMap<String, Tensor> {
    tensors
        .iter()
        .filter_map(|(k, t)| {
            k.strip_prefix(prefix)
                .map(|k| (k.to_string(), t.shallow_clone()))
        })
        .collect()
}

/// The augmentations around Freq-MixStyle and Mixup, in the reference order (Cai et al.'s
/// training step): waveform DIR then roll (with per-batch feature extraction) and frame roll
/// before Freq-MixStyle, SpecAugment after it, Mixup last. Each draws from the epoch's RNG
/// only when configured, so a stage without them draws exactly what it drew before.
struct BatchAugment<'a> {
    wave: WaveformAugment,
    audio: Option<&'a TrainAudio<'a>>,
    max_frames: usize,
    spec: Option<SpecAugment>,
}

impl<'a> BatchAugment<'a> {
    fn from_stage(
        st: &TrainStage,
        audio: Option<&'a TrainAudio<'a>>,
        train: &FeatureSet,
    ) -> Result<BatchAugment<'a>> {
        let t = &st.training;
        let need = |what: &str| {
            Error::msg(format!(
                "stage `{}`: {what} needs the clips' waveforms, which the runner did not provide",
                st.id
            ))
        };
        let dir = t.dir_augmentation.as_ref().map(|d| DirAugment { p: d.p });
        let shift_s = t.time_roll.as_ref().and_then(|r| r.max_shift_s);
        let audio = match (dir.is_some() || shift_s.is_some(), audio) {
            (false, _) => None,
            (true, None) => return Err(need("waveform augmentation")),
            (true, Some(a)) => {
                a.check(train)?;
                if dir.is_some() && a.irs.is_none_or(|s| s.is_empty()) {
                    return Err(need("DIR augmentation (impulse responses)"));
                }
                Some(a)
            }
        };
        let max_shift = match (shift_s, audio) {
            (Some(s), Some(a)) => (s * f64::from(a.waves.sample_rate)).round() as usize,
            _ => 0,
        };
        let spec = match &t.spec_augment {
            Some(a) => Some(SpecAugment {
                freq_masks: a.freq_masks,
                freq_width: a.freq_width,
                time_masks: a.time_masks,
                time_width: a.time_width,
                value: a.value.ok_or_else(|| {
                    Error::msg(format!(
                        "stage `{}`: the SpecAugment mask value was not resolved from the front end",
                        st.id
                    ))
                })?,
            }),
            None => None,
        };
        Ok(BatchAugment {
            wave: WaveformAugment { dir, max_shift },
            audio,
            max_frames: t.time_roll.as_ref().and_then(|r| r.max_frames).unwrap_or(0),
            spec,
        })
    }

    /// Rows `idx` of `train` on `device`; with waveform augmentations, the rows that have a
    /// waveform are edited and re-extracted.
    fn batch(
        &self,
        train: &FeatureSet,
        idx: &[i64],
        device: Device,
        rng: &mut ChaCha8Rng,
    ) -> Result<(Tensor, Tensor)> {
        let Some(audio) = self.audio else {
            return Ok(train.batch(idx, device));
        };
        let eligible: Vec<bool> = idx
            .iter()
            .map(|&i| {
                let i = i as usize;
                i < audio.waves.len() && DirAugment::eligible(train.device[i])
            })
            .collect();
        let n_irs = audio.irs.map_or(0, |s| s.len());
        let edits = self.wave.plan(&eligible, n_irs, rng);
        train.batch_with_audio(idx, audio, &edits, device)
    }
}
