//! `kind: train`: a model trained on the scene data, with the augmentation inputs it needs
//! (device simulation, energy-driven IR copies, waveforms, impulse responses) as shared nodes,
//! an optional teacher, and its evaluation on the test split.

use super::evaluate::EvaluateStage;
use super::waveforms::{ImpulseResponsesStage, RateOf, WaveformsStage};
use super::{devsim::DevsimStage, energy_ir::EnergyIrStage, Base};
use crate::error::{Error, Result};
use crate::models;
use crate::recipe::{
    DistillSpec, KdForm, OptimizerSpec, ScheduleSpec, Select, TeacherSpec, TrainStage, TrainingSpec,
};
use crate::runner::cache::StageHash;
use crate::runner::graph::{Artefact, Context, Graph, ModelArtefact, NodeId, Outputs, Stage};
use crate::train::datamodule::TrainAudio;
use crate::train::init::InitFrom;
use crate::train::{distill, fit_with, FeatureSet, FitCallback, FitOptions, Fitted};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::rc::Rc;

pub struct TrainNode {
    pub stage: TrainStage,
    pub run: TrainInputs,
}

/// What a training run reads besides its stage: the data, the augmentations' shared nodes, the
/// teacher and the model it starts from (shared by `kind: train` and `kind: prune`).
pub struct TrainInputs {
    pub base: Base,
    pub augment: AugmentInputs,
    pub teacher: Option<Teacher>,
    /// The model it starts from.
    pub init: Option<NodeId>,
}

/// Where the teacher logits come from, resolved to nodes.
pub enum Teacher {
    /// The mean logits of these models (one: that model's logits).
    Models(Vec<NodeId>),
    /// A logits file (absolute path) and its SHA-256.
    File { path: PathBuf, sha256: String },
}

/// The shared nodes a training run's augmentations read (none for augmentations of feature
/// batches).
#[derive(Debug, Clone, Copy, Default)]
pub struct AugmentInputs {
    /// Offline extra rows, appended to the training split in this order.
    pub devsim: Option<NodeId>,
    pub energy: Option<NodeId>,
    /// Waveforms (and impulse responses) for the online waveform augmentations.
    pub waveforms: Option<NodeId>,
    pub irs: Option<NodeId>,
}

impl AugmentInputs {
    /// The nodes `tr`'s augmentations need, shared with every stage that needs the same.
    pub fn add(g: &mut Graph, base: &Base, tr: &TrainingSpec) -> Result<AugmentInputs> {
        let fe = &base.frontend;
        let devsim = match &tr.device_simulation {
            Some(spec) => Some(g.shared(
                format!("devsim {:?} {}", base.data, json(spec)),
                |_| {
                    Ok(base.scoped(DevsimStage {
                        data: base.data,
                        spec: spec.clone(),
                        frontend: fe.clone(),
                        seed: base.seed("device_simulation"),
                    }))
                },
            )?),
            None => None,
        };
        let on_waveforms = tr.dir_augmentation.is_some()
            || tr
                .time_roll
                .as_ref()
                .is_some_and(|r| r.max_shift_s.is_some());
        let waveforms_at = |g: &mut Graph, rate: Option<u32>| {
            g.shared(format!("waveforms {:?} {rate:?}", base.data), |_| {
                Ok(base.scoped(WaveformsStage {
                    data: base.data,
                    rate,
                    resampler: fe.resampler().clone(),
                }))
            })
        };
        let irs_for =
            |g: &mut Graph, limit: Option<usize>, waves: (NodeId, Option<u32>), purpose| {
                g.shared(
                    format!("irs {:?} {limit:?} {:?}", base.data, waves.0),
                    |_| {
                        Ok(base.scoped(ImpulseResponsesStage {
                            data: base.data,
                            limit,
                            rate: RateOf::Waveforms(waves.0, waves.1),
                            resampler: fe.resampler().clone(),
                            purpose,
                        }))
                    },
                )
            };
        // Online waveform augmentations see the clips as the system's loader delivers them
        // (`audio::resample`); offline energy-IR copies are made at the recorded rate.
        let (mut waveforms, mut irs) = (None, None);
        if on_waveforms {
            let rate = fe
                .resampler()
                .id()
                .resamples_on_load()
                .then_some(fe.sample_rate());
            let w = waveforms_at(g, rate)?;
            if let Some(d) = &tr.dir_augmentation {
                irs = Some(irs_for(g, d.irs, (w, rate), "DIR augmentation")?);
            }
            waveforms = Some(w);
        }
        let energy = match &tr.energy_ir {
            Some(spec) => {
                let recorded = waveforms_at(g, None)?;
                let set = irs_for(
                    g,
                    spec.irs,
                    (recorded, None),
                    "energy-driven IR augmentation",
                )?;
                Some(
                    g.shared(format!("energy_ir {:?} {}", base.data, json(spec)), |_| {
                        Ok(base.scoped(EnergyIrStage {
                            data: base.data,
                            waveforms: recorded,
                            irs: set,
                            spec: spec.clone(),
                            frontend: fe.clone(),
                            seed: base.seed("energy_ir"),
                        }))
                    })?,
                )
            }
            None => None,
        };
        Ok(AugmentInputs {
            devsim,
            energy,
            waveforms,
            irs,
        })
    }

    /// Its nodes, in the order a stage reads them.
    pub fn nodes(&self) -> impl Iterator<Item = NodeId> {
        [self.devsim, self.energy, self.waveforms, self.irs]
            .into_iter()
            .flatten()
    }
}

/// Adds `t`, its shared inputs and its evaluation to the graph.
/// `distill` with an unpinned teacher logits file pinned to the SHA-256 of the file there now,
/// so what the stage reads enters its identity.
pub(super) fn pin_logits(distill: &mut Option<DistillSpec>, base: &Base) -> Result<()> {
    if let Some(DistillSpec {
        teacher: TeacherSpec::Logits {
            path,
            sha256: sha @ None,
        },
        ..
    }) = distill
    {
        let file = base.data_root.join(&*path);
        let bytes = crate::fsio::read(&file).map_err(|e| {
            Error::msg(format!(
                "{e}. It is the teacher logits file the recipe names (`{path}` under the data root); `ascrepro logits` writes one from a trained stage, or the authors' teachers must be run elsewhere"
            ))
        })?;
        *sha = Some(hex::encode(Sha256::digest(&bytes)));
    }
    Ok(())
}

pub fn add(g: &mut Graph, base: &Base, t: &TrainStage) -> Result<()> {
    let mut t = t.clone();
    pin_logits(&mut t.distill, base)?;
    let t = &t;
    let base = &base.for_training(g, t)?;
    let run = TrainInputs::add(
        g,
        base,
        &t.training,
        t.distill.as_ref(),
        t.init_from.as_deref(),
    )?;
    let model = g.add(TrainNode {
        stage: t.clone(),
        run,
    });
    let eval = g.add(EvaluateStage {
        id: t.id.clone(),
        model,
        features: base.features,
    });
    g.name_model(&t.id, model, Some(eval));
    Ok(())
}

impl TrainInputs {
    /// The nodes a run of `training` with `distill`, starting from stage `init_from`'s model,
    /// reads (shared augmentation inputs added to the graph).
    pub fn add(
        g: &mut Graph,
        base: &Base,
        training: &TrainingSpec,
        distill: Option<&DistillSpec>,
        init_from: Option<&str>,
    ) -> Result<TrainInputs> {
        let augment = AugmentInputs::add(g, base, training)?;
        let teacher = match distill.map(|d| &d.teacher) {
            Some(TeacherSpec::Logits { path, sha256 }) => Some(Teacher::File {
                path: base.data_root.join(path),
                sha256: sha256
                    .clone()
                    .ok_or_else(|| Error::msg(format!("logits file `{path}`: not pinned")))?,
            }),
            Some(spec) => Some(Teacher::Models(
                spec.stages()
                    .into_iter()
                    .map(|s| g.model_of(s))
                    .collect::<Result<_>>()?,
            )),
            None => None,
        };
        let init = match init_from {
            Some(from) => Some(g.model_of(from)?),
            None => None,
        };
        Ok(TrainInputs {
            base: base.clone(),
            augment,
            teacher,
            init,
        })
    }

    /// Its nodes, in the order a stage reads them.
    pub fn nodes(&self) -> Vec<NodeId> {
        let teachers = match &self.teacher {
            Some(Teacher::Models(m)) => m.clone(),
            _ => Vec::new(),
        };
        std::iter::once(self.base.features)
            .chain(self.augment.nodes())
            .chain(teachers)
            .chain(self.init)
            .collect()
    }
}

fn json(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).expect("plain data")
}

impl Stage for TrainNode {
    fn kind(&self) -> &'static str {
        "train"
    }

    fn id(&self) -> String {
        self.stage.id.clone()
    }

    fn needs(&self) -> Vec<NodeId> {
        self.run.nodes()
    }

    fn code(&self) -> &'static [&'static str] {
        &[
            "src/train/",
            "src/models/",
            "src/audio/",
            "src/eval/",
            "crates/results/src/record.rs",
            "src/runner/stages/train.rs",
        ]
    }

    fn numeric(&self) -> bool {
        true
    }

    fn identity(&self, h: StageHash) -> StageHash {
        h.json("stage", &self.stage)
    }

    fn produce(&self, cx: &Context, inputs: &Outputs, dir: &Path) -> Result<()> {
        let t = self.planned(inputs);
        let fitted = self
            .run
            .fit(&t, cx, inputs, self.kind(), &mut crate::train::NoCallback)?;
        models::save_weights(&fitted.vs, &t.model, &dir.join("model.safetensors"))?;
        super::write_json(&dir.join("selected.json"), &fitted.selected)?;
        super::write_json(&dir.join("curve.json"), &fitted.curve)
    }

    fn load(&self, _cx: &Context, inputs: &Outputs, dir: Option<&Path>) -> Result<Artefact> {
        let dir = dir.expect("cached stage");
        let t = &self.stage;
        let (epoch, score): (usize, Option<f64>) = super::read_json(&dir.join("selected.json"))?;
        let notes = match (t.select, score) {
            (Select::Best, Some(score)) => vec![format!(
                "weights of epoch {epoch} of {}: the best macro accuracy on the validation split ({:.2}%)",
                t.training.epochs,
                100.0 * score
            )],
            _ => Vec::new(),
        };
        Ok(Artefact::Model(Rc::new(ModelArtefact {
            weights: dir.join("model.safetensors"),
            config: self.planned(inputs).model,
            curve: super::read_json(&dir.join("curve.json"))?,
            stage: t.id.clone(),
            label: t.label.clone(),
            training: describe(t),
            notes,
            split: t.split.clone(),
            pruning: None,
        })))
    }
}

impl TrainNode {
    /// The stage as it trains: with the architecture of the model it starts from when the plan
    /// says so (after a prune stage).
    pub(super) fn planned(&self, inputs: &Outputs) -> TrainStage {
        match self.run.init.filter(|_| self.stage.model_of_init) {
            Some(init) => TrainStage {
                model: inputs.model(init).config.clone(),
                ..self.stage.clone()
            },
            None => self.stage.clone(),
        }
    }
}

impl TrainInputs {
    /// Trains `t` on these inputs with `callback`'s hooks; checkpoints go to the resume
    /// directory of the running node, of `kind`.
    pub fn fit(
        &self,
        t: &TrainStage,
        cx: &Context,
        inputs: &Outputs,
        kind: &str,
        callback: &mut dyn FitCallback,
    ) -> Result<Fitted> {
        let features = inputs.features(self.base.features);
        // The training split first: its rows are the ones with waveforms.
        let mut parts = vec![&features.train];
        if let Some(n) = self.augment.devsim {
            parts.push(inputs.copies(n).as_ref());
        }
        if let Some(e) = self
            .augment
            .energy
            .map(|n| inputs.copies(n))
            .filter(|e| !e.is_empty())
        {
            parts.push(e.as_ref());
        }
        let set = FeatureSet::concat(&parts);
        let audio = self.augment.waveforms.map(|w| TrainAudio {
            waves: inputs.waveforms(w),
            frontend: &self.base.frontend,
            irs: self
                .augment
                .irs
                .map(|i| inputs.impulse_responses(i).as_ref()),
        });
        let teacher_logits = match &self.teacher {
            Some(Teacher::Models(models)) => {
                let weights: Vec<&Path> = models
                    .iter()
                    .map(|&n| inputs.model(n).weights.as_path())
                    .collect();
                Some(distill::teacher_logits(&weights, &set, cx.device)?)
            }
            Some(Teacher::File { path, sha256 }) => {
                if set.len() != features.train.len() {
                    return Err(Error::msg(format!(
                        "stage `{}`: a logits-file teacher has logits for the training clips only, but this stage also trains on {} offline copies (device simulation or energy-driven IR copies); use a stage or ensemble teacher, or drop the offline augmentation",
                        t.id,
                        set.len() - features.train.len()
                    )));
                }
                let clips: Vec<String> = inputs
                    .data(self.base.data)
                    .dataset
                    .train
                    .iter()
                    .map(|c| c.file.clone())
                    .collect();
                Some(distill::read_logits(path, sha256, &clips)?)
            }
            None => None,
        };
        let init = self.init.map(|n| InitFrom {
            weights: inputs.model(n).weights.clone(),
            classifier: t.init_classifier.unwrap_or(true),
        });
        let pb = cx.progress(&format!("{kind} {}", t.id));
        let fitted = fit_with(
            &FitOptions {
                stage: t,
                device: cx.device,
                checkpoint_dir: &inputs.resume_dir(cx, kind),
                progress: Some(&pb),
                audio: audio.as_ref(),
                init: init.as_ref(),
                validation: features.validation.as_ref(),
            },
            &set,
            teacher_logits.as_ref(),
            Some(&features.test),
            callback,
        )?;
        pb.finish_and_clear();
        Ok(fitted)
    }
}

/// One line on what training did, for the report.
pub(super) fn describe(t: &TrainStage) -> String {
    let tr = &t.training;
    let optimizer = match &tr.optimizer {
        OptimizerSpec::Adam { lr, .. } => format!("Adam lr {lr}"),
        OptimizerSpec::AdamW {
            lr, weight_decay, ..
        } => format!("AdamW lr {lr} weight decay {weight_decay}"),
    };
    let schedule = match tr.schedule {
        ScheduleSpec::WarmupCosine { warmup_epochs } => {
            format!("warmup_cosine, warm-up {warmup_epochs} epochs")
        }
        ScheduleSpec::Cosine => "cosine".to_string(),
        ScheduleSpec::Sgdr { t0, t_mult } => format!("sgdr, T0 {t0}, Tmult {t_mult}"),
    };
    let mut parts = vec![format!(
        "{} epochs, batch {}, {optimizer} ({schedule})",
        tr.epochs, tr.batch_size
    )];
    if let Some(split) = &t.split {
        parts.insert(0, format!("on training split {split}"));
    }
    if let Some(m) = &tr.mixup {
        parts.push(format!("Mixup α={}", m.alpha));
    }
    if let Some(m) = &tr.freq_mixstyle {
        parts.push(format!("Freq-MixStyle α={} p={}", m.alpha, m.p));
    }
    if let Some(d) = &tr.dir_augmentation {
        parts.push(format!("DIR augmentation p={}", d.p));
    }
    if let Some(e) = &tr.energy_ir {
        parts.push(format!(
            "energy-driven IR copies (up to {} per {} clip)",
            e.levels.iter().map(|l| l.count).max().unwrap_or(0),
            e.devices.join("/")
        ));
    }
    if let Some(r) = &tr.time_roll {
        match (r.max_shift_s, r.max_frames) {
            (Some(s), _) => parts.push(format!("time roll ±{s} s")),
            (_, Some(n)) => parts.push(format!("time roll ±{n} frames")),
            _ => {}
        }
    }
    if let Some(a) = &tr.spec_augment {
        parts.push(format!(
            "SpecAugment {}×freq<{} {}×time<{}",
            a.freq_masks, a.freq_width, a.time_masks, a.time_width
        ));
    }
    if let Some(d) = &tr.device_simulation {
        parts.push(format!(
            "device simulation {} IRs × {} clips",
            d.irs, d.clips_per_ir
        ));
    } else {
        parts.push("no device simulation".into());
    }
    if let (Some(from), Some(classifier)) = (&t.init_from, t.init_classifier) {
        parts.push(format!(
            "initialised from `{from}` ({})",
            if classifier {
                "all weights"
            } else {
                "without its classifier"
            }
        ));
    }
    if let Some(d) = &t.distill {
        let form = match d.form {
            KdForm::Weighted => format!("{}·CE + (1−{})·T²·KL", d.lambda, d.lambda),
            KdForm::CePlusKl => format!("CE + {}·KL", d.lambda),
        };
        let teacher = match &d.teacher {
            TeacherSpec::Stage { stage } => format!("`{stage}`"),
            TeacherSpec::Ensemble { stages } => format!(
                "the mean logits of {}",
                stages
                    .iter()
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            TeacherSpec::Logits { path, sha256 } => {
                let sha = sha256.as_deref().unwrap_or_default();
                format!(
                    "logits file `{path}` (SHA-256 {}…)",
                    &sha[..sha.len().min(12)]
                )
            }
        };
        parts.push(format!("KD from {teacher} ({form}, T={})", d.temperature));
    }
    parts.join("; ")
}
