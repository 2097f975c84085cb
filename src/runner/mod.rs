//! The runner: turns a recipe's plan into stages (data, features, device simulation, train,
//! evaluate, quantize, report), each identified by a [`StageHash`] of its inputs and cached by
//! content, so a re-run recomputes only what changed and an interrupted run resumes.

pub mod cache;
pub mod platform;

pub use cache::{Cache, StageHash};

use crate::audio::augment::{energy, EnergyTable, ImpulseResponses};
use crate::audio::feature_cache::FeatureCache;
use crate::audio::features::{extract_batch, extract_samples, BatchStats, ClipFile};
use crate::audio::frontend::Frontend;
use crate::audio::{
    conv::fft_convolve,
    wav::{read_wav, Audio},
};
use crate::compress::complexity::{count, CountOptions};
use crate::data::{manifest::Manifest, synth, tau, Dataset};
use crate::error::{Error, IoContext, Result};
use crate::eval;
use crate::labels::device_index;
use crate::models;
use crate::recipe::{
    self, DataKind, DeviceSimulationSpec, EnergyIrSpec, KdForm, OptimizerSpec, Plan, PlannedStage,
    QuantizeStage, ScheduleSpec, TrainStage,
};
use crate::results::*;
use crate::train::datamodule::{TrainAudio, WaveformSet};
use crate::train::{fit, FeatureSet, FitOptions};
use indicatif::{ProgressBar, ProgressStyle};
use rand::seq::index::sample;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;
use tch::{Device, Tensor};

pub struct RunOptions {
    pub recipe: PathBuf,
    pub profile: String,
    /// Report directory; default `reports/<recipe id>`.
    pub out: Option<PathBuf>,
    /// Cache directory; default `.cache/ascrepro` under the project.
    pub cache: Option<PathBuf>,
    /// Root of real datasets; default `data` under the project.
    pub data_root: Option<PathBuf>,
    /// libtorch intra-op threads (part of the platform: results are identical only for equal counts).
    pub threads: usize,
    pub quiet: bool,
}

pub struct RunOutcome {
    pub out_dir: PathBuf,
    pub record: RunRecord,
    pub timings: Vec<StageTiming>,
    pub computed: usize,
    pub cached: usize,
}

/// Runs the recipe's profile end to end and writes the report.
pub fn run(opts: &RunOptions) -> Result<RunOutcome> {
    let started = Instant::now();
    let platform = platform::pin(opts.threads).clone();
    let plan = recipe::load(&opts.recipe, &opts.profile)?;
    let project = std::env::current_dir().map_err(|e| Error::io(".", e))?;
    let cache = Cache::open(
        &opts
            .cache
            .clone()
            .unwrap_or_else(|| project.join(".cache/ascrepro")),
    )?;
    let data_root = opts
        .data_root
        .clone()
        .unwrap_or_else(|| project.join("data"));
    let out_dir = opts
        .out
        .clone()
        .unwrap_or_else(|| project.join("reports").join(&plan.recipe.id));
    let mut r = Runner {
        plan: &plan,
        cache,
        platform,
        device: platform::device(),
        code: platform::code_version(),
        records: Vec::new(),
        timings: Vec::new(),
        hashes: BTreeMap::new(),
        quiet: opts.quiet,
        computed: 0,
        augmentation: AugmentationMemo::default(),
    };
    r.say(&format!(
        "ascrepro: {} (profile {}) on {}, {} thread(s)",
        plan.recipe.id, plan.profile, r.platform["device"], r.platform["threads"]
    ));
    let data = r.prepare_data(&project, &data_root)?;
    let fe = Frontend::new(plan.frontend, plan.resampler);
    let (train, test, features_hash) = r.features(&data, &fe)?;

    // Device-simulated clips by configuration: stages sharing one share the clips.
    let mut simulated: BTreeMap<String, (FeatureSet, String)> = BTreeMap::new();
    let mut systems = Vec::new();
    let mut evaluations: BTreeMap<String, Evaluation> = BTreeMap::new();
    let input = [1i64, test.x.size()[2], test.x.size()[3]];
    for stage in &plan.stages {
        match stage {
            PlannedStage::Train(t) => {
                let sim = match &t.training.device_simulation {
                    Some(spec) => {
                        let key = serde_json::to_string(spec).expect("plain data");
                        if !simulated.contains_key(&key) {
                            simulated.insert(key.clone(), r.device_simulation(spec, &data, &fe)?);
                        }
                        simulated.get(&key)
                    }
                    None => None,
                };
                let extra = r.augmentation_inputs(t, &data, &fe)?;
                let entry_hash = r.train(t, &train, sim, &extra, &test, &features_hash)?;
                let eval = r.evaluate(&t.id, &entry_hash, &test, &features_hash)?;
                let curve: Vec<EpochLog> = read_json(
                    &r.cache
                        .get("train", &entry_hash)
                        .expect("just ran")
                        .path("curve.json"),
                )?;
                evaluations.insert(t.id.clone(), eval.clone());
                systems.push(SystemRecord {
                    id: t.id.clone(),
                    label: t.label.clone(),
                    model: t.model.describe(),
                    training: describe_training(t),
                    precision: "fp32".into(),
                    complexity: count(&t.model, input, &CountOptions::default())?,
                    evaluation: eval,
                    curve,
                    notes: Vec::new(),
                });
            }
            PlannedStage::Quantize(q) => {
                let from = plan.stages.iter().find_map(|s| match s {
                    PlannedStage::Train(t) if t.id == q.from => Some(t),
                    _ => None,
                });
                let from = from.expect("plan checks quantize sources");
                let fp32 = evaluations[&q.from].clone();
                let (eval, note) = r.quantize(q, &train, &test, &features_hash, &fp32)?;
                systems.push(SystemRecord {
                    id: q.id.clone(),
                    label: q.label.clone(),
                    model: from.model.describe(),
                    training: format!(
                        "post-training static INT8 quantization of `{}` ({} calibration clips)",
                        q.from, q.calibration_clips
                    ),
                    precision: "int8".into(),
                    complexity: count(
                        &from.model,
                        input,
                        &CountOptions {
                            fold_bn: true,
                            reparam: true,
                        },
                    )?,
                    evaluation: eval,
                    curve: Vec::new(),
                    notes: vec![note],
                });
            }
        }
    }

    let record = r.record(&data, &fe, systems, input)?;
    let report_hash = StageHash::new("report")
        .json("record", &record)
        .part("code", &r.code)
        .finish();
    r.report(&record, &report_hash, &out_dir)?;
    let cached = r.timings.iter().filter(|t| t.cached).count();
    let total = r.timings.len();
    if r.computed == 0 {
        r.say(&format!(
            "All {total} stages were cached: nothing recomputed ({:.1} s). Report: {}",
            started.elapsed().as_secs_f64(),
            out_dir.display()
        ));
    } else {
        r.say(&format!(
            "{} of {total} stages computed, {cached} cached ({:.1} s). Report: {}",
            r.computed,
            started.elapsed().as_secs_f64(),
            out_dir.display()
        ));
    }
    Ok(RunOutcome {
        out_dir,
        record,
        timings: r.timings,
        computed: r.computed,
        cached,
    })
}

struct Runner<'a> {
    plan: &'a Plan,
    cache: Cache,
    platform: BTreeMap<String, String>,
    device: Device,
    code: String,
    records: Vec<StageRecord>,
    timings: Vec<StageTiming>,
    /// Stage id → stage hash.
    hashes: BTreeMap<String, String>,
    quiet: bool,
    computed: usize,
    /// Waveforms, impulse-response sets and energy-IR copies, shared by the stages using them.
    augmentation: AugmentationMemo,
}

/// The data a run reads: the dataset, its manifest identity, and the impulse responses for
/// device simulation.
struct PreparedData {
    dataset: Dataset,
    name: String,
    manifest_hash: String,
    irs: Option<(PathBuf, String)>,
    /// SHA-256 of each file by relative path, when the (verified) manifest lists them: the
    /// per-clip feature cache's key without re-reading the files.
    file_sha256: BTreeMap<String, String>,
}

/// A loaded artefact with the hash that identifies it.
type Hashed<T> = Rc<(T, String)>;

/// Augmentation inputs already loaded in this run, shared by the stages that use them.
#[derive(Default)]
struct AugmentationMemo {
    /// By sample rate (`None`: the clips' recorded rate).
    waves: BTreeMap<Option<u32>, Hashed<WaveformSet>>,
    /// By how many impulse responses of the set are used (`None`: all) and their rate.
    irs: BTreeMap<(Option<usize>, u32), Hashed<ImpulseResponses>>,
    /// By energy-IR stage hash.
    energy: BTreeMap<String, Hashed<FeatureSet>>,
}

/// What a train stage's augmentations read besides the features.
struct AugmentationInputs<'f> {
    frontend: &'f Frontend,
    /// Energy-driven IR copies (features), appended after the device-simulated clips.
    energy: Option<Hashed<FeatureSet>>,
    /// Training-split waveforms, when the stage augments waveforms.
    waves: Option<Hashed<WaveformSet>>,
    /// Impulse responses for DIR augmentation.
    irs: Option<Hashed<ImpulseResponses>>,
}

impl Runner<'_> {
    fn say(&self, line: &str) {
        if !self.quiet {
            eprintln!("{line}");
        }
    }

    fn progress(&self, what: &str) -> ProgressBar {
        if self.quiet {
            return ProgressBar::hidden();
        }
        let pb = ProgressBar::new(0);
        pb.set_style(
            ProgressStyle::with_template(
                "  {prefix:<22} [{bar:30}] {pos}/{len} {elapsed_precise} (eta {eta}) {msg}",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        pb.set_prefix(what.to_string());
        pb
    }

    /// Looks the stage up in the cache or runs `produce` into a fresh entry; records and times it.
    fn stage(
        &mut self,
        kind: &str,
        id: &str,
        hash: &str,
        needs: Vec<String>,
        produce: impl FnOnce(&Self, &Path) -> Result<()>,
    ) -> Result<cache::Entry> {
        let t0 = Instant::now();
        let (entry, computed) = self.cache.get_or_compute(
            kind,
            hash,
            || {
                self.say(&format!(
                    "  {kind:<9} {id:<22} waiting for another run computing it"
                ))
            },
            |dir| produce(self, dir),
        )?;
        let cached = !computed;
        let seconds = t0.elapsed().as_secs_f64();
        self.say(&format!(
            "  {:<9} {:<22} {}",
            kind,
            id,
            if cached {
                "cached".to_string()
            } else {
                format!("computed in {seconds:.1} s")
            }
        ));
        if !cached {
            self.computed += 1;
        }
        self.records.push(StageRecord {
            id: id.to_string(),
            kind: kind.to_string(),
            hash: hash.to_string(),
            needs,
            outputs: entry.output_hashes()?,
        });
        self.timings.push(StageTiming {
            kind: kind.to_string(),
            id: id.to_string(),
            seconds,
            cached,
        });
        self.hashes.insert(format!("{kind}:{id}"), hash.to_string());
        Ok(entry)
    }

    fn prepare_data(&mut self, project: &Path, data_root: &Path) -> Result<PreparedData> {
        let spec = &self.plan.profile_spec.data;
        let recipe_path = &self.plan.path;
        let text = &self.plan.text;
        let field = |f: &str| {
            let at = ["profiles", self.plan.profile.as_str(), "data", f];
            (
                recipe::locate(text, &at),
                format!("profiles.{}.data.{f}", self.plan.profile),
            )
        };
        if spec.kind == DataKind::Synth {
            let cfg = spec.synth.clone().expect("validated");
            let hash = StageHash::new("synth")
                .json("config", &cfg)
                .part("code", &self.code)
                .finish();
            if let Some(e) = self.cache.get("synth", &hash) {
                // Reuse only while the files still match their manifest; otherwise regenerate.
                let m = Manifest::load(&e.path("manifest.yaml"))?;
                if let Err(err) = m.verify(&e.path("data")) {
                    self.say(&format!(
                        "  synthetic data changed since generation ({err}); regenerating"
                    ));
                    std::fs::remove_dir_all(&e.dir).at(&e.dir)?;
                }
            }
            let entry = self.stage("data", "synth", &hash, vec![], |r, dir| {
                let pb = r.progress("synthesising clips");
                synth::generate(&cfg, &dir.join("data"), Some(&pb))?;
                pb.finish_and_clear();
                Manifest::create(&dir.join("data"), "synthetic-tau2022", "tau2022-mobile")?
                    .save(&dir.join("manifest.yaml"))
            })?;
            let manifest = Manifest::load(&entry.path("manifest.yaml"))?;
            let root = entry.path("data");
            let dataset = tau::load(
                &root,
                "evaluation_setup/fold1_train.csv",
                "evaluation_setup/fold1_evaluate.csv",
            )?;
            let mh = manifest.hash();
            return Ok(PreparedData {
                dataset,
                name: "synthetic-tau2022".into(),
                irs: Some((root.join("irs"), mh.clone())),
                manifest_hash: mh,
                file_sha256: file_hashes(&manifest),
            });
        }
        // Real data: the manifest lives in the project, the files under the data root.
        let manifest_rel = spec.manifest.clone().expect("validated");
        let manifest_path = project.join(&manifest_rel);
        if !manifest_path.is_file() {
            let (line, f) = field("manifest");
            return Err(Error::input(
                recipe_path,
                line,
                Some(&f),
                format!(
                    "data manifest `{manifest_rel}` does not exist; create it from your copy of the data with `ascrepro manifest create DATA_DIR --out {manifest_rel}`"
                ),
            ));
        }
        let manifest = Manifest::load(&manifest_path)?;
        let root = data_root.join(spec.root.as_deref().expect("validated"));
        let t0 = Instant::now();
        manifest.verify(&root)?;
        self.say(&format!(
            "  data      {:<22} verified against {} in {:.1} s",
            manifest.dataset,
            manifest_rel,
            t0.elapsed().as_secs_f64()
        ));
        let dataset = tau::load(
            &root,
            spec.train_split.as_deref().expect("validated"),
            spec.test_split.as_deref().expect("validated"),
        )?;
        let irs = match (&spec.irs_root, &spec.irs_manifest) {
            (Some(ir_root), Some(ir_manifest)) => {
                let m = Manifest::load(&project.join(ir_manifest))?;
                let dir = data_root.join(ir_root);
                m.verify(&dir)?;
                Some((dir, m.hash()))
            }
            _ => None,
        };
        Ok(PreparedData {
            dataset,
            name: manifest.dataset.clone(),
            manifest_hash: manifest.hash(),
            irs,
            file_sha256: file_hashes(&manifest),
        })
    }

    fn features(
        &mut self,
        data: &PreparedData,
        fe: &Frontend,
    ) -> Result<(FeatureSet, FeatureSet, String)> {
        let hash = StageHash::new("features")
            .part("frontend", &fe.fingerprint())
            .part("data", &data.manifest_hash)
            .json(
                "splits",
                &(
                    &self.plan.profile_spec.data.train_split,
                    &self.plan.profile_spec.data.test_split,
                ),
            )
            .part("code", &self.code)
            .finish();
        let ds = &data.dataset;
        let entry = self.stage(
            "features",
            &fe.id().to_string(),
            &hash,
            vec!["data".into()],
            |r, dir| {
                // Per-clip features are shared with every stage, recipe and profile that reads
                // the same files through this front end.
                let feature_cache = FeatureCache::open(&r.cache.root().join("features"), fe)?;
                let mut stats = BatchStats::default();
                for (name, clips) in [("train", &ds.train), ("test", &ds.test)] {
                    let files: Vec<ClipFile> = clips
                        .iter()
                        .map(|c| ClipFile {
                            path: ds.root.join(&c.file),
                            sha256: data.file_sha256.get(&c.file).cloned(),
                        })
                        .collect();
                    let pb = r.progress(&format!("{} features ({name})", fe.id()));
                    pb.set_length(files.len() as u64);
                    let (feats, batch) =
                        extract_batch(&files, fe, Some(&feature_cache), Some(&pb))?;
                    pb.finish_and_clear();
                    stats.absorb(batch);
                    let y = clips.iter().map(|c| c.scene as i64).collect();
                    let d = clips.iter().map(|c| c.device as i64).collect();
                    FeatureSet::from_features(&feats, y, d)?
                        .save(&dir.join(format!("{name}.safetensors")))?;
                }
                r.say(&format!(
                    "  features  per-clip cache: {} clips reused, {} extracted{} ({})",
                    stats.cache_hits,
                    stats.extracted,
                    match stats.corrupt_entries {
                        0 => String::new(),
                        n => format!(", {n} damaged entries recomputed"),
                    },
                    feature_cache.dir().display()
                ));
                if let Some(note) = stats.mixdown_note() {
                    r.say(&format!("  {note}"));
                }
                Ok(())
            },
        )?;
        let train = FeatureSet::load(&entry.path("train.safetensors"))?;
        let test = FeatureSet::load(&entry.path("test.safetensors"))?;
        Ok((train, test, hash))
    }

    /// Offline device simulation: `clips_per_ir` random device-a training clips convolved with
    /// each of the first `irs` impulse responses (sorted by name), rescaled to the clip's RMS so
    /// the IR changes the colour of the sound, not its level.
    fn device_simulation(
        &mut self,
        spec: &DeviceSimulationSpec,
        data: &PreparedData,
        fe: &Frontend,
    ) -> Result<(FeatureSet, String)> {
        let Some((ir_dir, ir_hash)) = &data.irs else {
            return Err(Error::input(
                &self.plan.path,
                recipe::locate(&self.plan.text, &["profiles", &self.plan.profile, "data"]),
                Some(&format!("profiles.{}.data.irs_root", self.plan.profile)),
                "device simulation needs impulse responses: give `irs_root` and `irs_manifest`",
            ));
        };
        let seed = recipe::derive_seed(self.plan.recipe.seed, "device_simulation");
        let hash = StageHash::new("devsim")
            .json("spec", spec)
            .part("data", &data.manifest_hash)
            .part("irs", ir_hash)
            .part("frontend", &fe.fingerprint())
            .part("seed", &seed.to_string())
            .part("code", &self.code)
            .finish();
        let id = format!("devsim-{}x{}", spec.irs, spec.clips_per_ir);
        let ds = &data.dataset;
        let entry = self.stage("devsim", &id, &hash, vec!["data".into()], |r, dir| {
            let mut irs: Vec<PathBuf> = std::fs::read_dir(ir_dir)
                .at(ir_dir)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("wav")))
                .collect();
            irs.sort();
            if irs.len() < spec.irs {
                return Err(Error::msg(format!(
                    "device simulation asks for {} impulse responses but {} has only {}",
                    spec.irs,
                    ir_dir.display(),
                    irs.len()
                )));
            }
            let a = device_index("a").expect("device a exists") ;
            let pool: Vec<usize> = (0..ds.train.len()).filter(|&i| ds.train[i].device == a).collect();
            if pool.len() < spec.clips_per_ir {
                return Err(Error::msg(format!(
                    "device simulation asks for {} device-a clips per impulse response but the training split has {}",
                    spec.clips_per_ir,
                    pool.len()
                )));
            }
            // Each impulse response is read once; multi-channel ones are mixed to mono like
            // clips, said once.
            let ir_audio: Vec<Audio> = irs.iter().take(spec.irs).map(|p| read_wav(p)).collect::<Result<_>>()?;
            let mixed: Vec<(&PathBuf, u16)> = irs
                .iter()
                .zip(&ir_audio)
                .filter_map(|(p, a)| a.mixed_from_channels.map(|c| (p, c)))
                .collect();
            if let Some((first, channels)) = mixed.first() {
                r.say(&format!(
                    "  note: {} of {} impulse responses had several channels and were mixed to mono (mean of the channels), e.g. {} ({channels} channels)",
                    mixed.len(),
                    spec.irs,
                    first.display()
                ));
            }
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut jobs = Vec::new();
            for ir in 0..ir_audio.len() {
                for k in sample(&mut rng, pool.len(), spec.clips_per_ir) {
                    jobs.push((ir, pool[k]));
                }
            }
            let pb = r.progress("device simulation");
            pb.set_length(jobs.len() as u64);
            let feats: Vec<_> = jobs
                .par_iter()
                .map(|&(ir, clip)| {
                    let clip = &ds.train[clip];
                    let audio = read_wav(&ds.root.join(&clip.file))?;
                    let ir = &ir_audio[ir];
                    // At the clip's recorded rate: simulated recordings are new WAV files, read
                    // (and resampled) like any clip.
                    let h = fe
                        .resampler()
                        .resample(&ir.samples, ir.sample_rate, audio.sample_rate)?;
                    let mut y = fft_convolve(&audio.samples, &h);
                    let rms = |v: &[f32]| (v.iter().map(|s| (*s as f64).powi(2)).sum::<f64>() / v.len().max(1) as f64).sqrt();
                    let (a, b) = (rms(&audio.samples), rms(&y));
                    if b > 0.0 {
                        let g = (a / b) as f32;
                        y.iter_mut().for_each(|s| *s *= g);
                    }
                    let f = extract_samples(&y, audio.sample_rate, fe);
                    pb.inc(1);
                    f
                })
                .collect::<Result<_>>()?;
            pb.finish_and_clear();
            let y = jobs.iter().map(|(_, c)| ds.train[*c].scene as i64).collect();
            let d = jobs.iter().map(|_| a as i64).collect();
            FeatureSet::from_features(&feats, y, d)?.save(&dir.join("devsim.safetensors"))
        })?;
        Ok((FeatureSet::load(&entry.path("devsim.safetensors"))?, hash))
    }

    fn train(
        &mut self,
        t: &TrainStage,
        train: &FeatureSet,
        sim: Option<&(FeatureSet, String)>,
        extra: &AugmentationInputs,
        test: &FeatureSet,
        features_hash: &str,
    ) -> Result<String> {
        let mut h = StageHash::new("train")
            .json("stage", t)
            .part("features", features_hash)
            .part("code", &self.code)
            .json("platform", &self.platform);
        let mut needs = vec!["features".to_string()];
        if let Some((_, sh)) = sim {
            h = h.part("devsim", sh);
            needs.push("devsim".into());
        }
        if let Some(e) = &extra.energy {
            h = h.part("energy_ir", &e.1);
            needs.push("energy_ir".into());
        }
        if let Some(w) = &extra.waves {
            h = h.part("waveforms", &w.1);
            needs.push("waveforms".into());
        }
        if let Some(irs) = &extra.irs {
            h = h.part("irs", &irs.1);
        }
        let teacher = t.distill.as_ref().map(|d| d.teacher.clone());
        if let Some(teacher) = &teacher {
            h = h.part("teacher", &self.hashes[&format!("train:{teacher}")]);
            needs.push(teacher.clone());
        }
        let hash = h.finish();
        let partial = self.cache.partial_dir("train", &hash);
        self.stage("train", &t.id, &hash, needs, |r, dir| {
            // The training split first: its rows are the ones with waveforms.
            let mut parts = vec![train];
            if let Some((s, _)) = sim {
                parts.push(s);
            }
            if let Some(e) = extra.energy.as_ref().filter(|e| !e.0.is_empty()) {
                parts.push(&e.0);
            }
            let set = FeatureSet::concat(&parts);
            let audio = extra.waves.as_ref().map(|w| TrainAudio {
                waves: &w.0,
                frontend: extra.frontend,
                irs: extra.irs.as_ref().map(|i| &i.0),
            });
            let teacher_logits = match &teacher {
                Some(tid) => {
                    let entry = r
                        .cache
                        .get("train", &r.hashes[&format!("train:{tid}")])
                        .expect("teacher ran first");
                    let (_vs, _cfg, model) =
                        models::load_weights(&entry.path("model.safetensors"), r.device)?;
                    Some(eval::predict(model.as_ref(), &set, 256, r.device))
                }
                None => None,
            };
            let pb = r.progress(&format!("train {}", t.id));
            let fitted = fit(
                &FitOptions {
                    stage: t,
                    device: r.device,
                    checkpoint_dir: &partial,
                    progress: Some(&pb),
                    audio: audio.as_ref(),
                },
                &set,
                teacher_logits.as_ref(),
                Some(test),
            )?;
            pb.finish_and_clear();
            models::save_weights(&fitted.vs, &t.model, &dir.join("model.safetensors"))?;
            write_json(&dir.join("curve.json"), &fitted.curve)
        })?;
        Ok(hash)
    }

    /// Loads or computes what `t`'s augmentations read besides the features: the training
    /// split's waveforms (waveform augmentations), an impulse-response set (DIR augmentation)
    /// and the energy-driven IR copies.
    fn augmentation_inputs<'f>(
        &mut self,
        t: &TrainStage,
        data: &PreparedData,
        fe: &'f Frontend,
    ) -> Result<AugmentationInputs<'f>> {
        let tr = &t.training;
        let on_waveforms = tr.dir_augmentation.is_some()
            || tr
                .time_roll
                .as_ref()
                .is_some_and(|r| r.max_shift_s.is_some());
        let mut inputs = AugmentationInputs {
            frontend: fe,
            energy: None,
            waves: None,
            irs: None,
        };
        if !on_waveforms && tr.energy_ir.is_none() {
            return Ok(inputs);
        }
        // Online waveform augmentations see the clips as the system's loader delivers them
        // (`audio::resample`: at the front end's rate when it resamples on load, else at the
        // recorded rate); offline energy-IR copies are made at the recorded rate.
        if on_waveforms {
            let rate = fe
                .resampler()
                .id()
                .resamples_on_load()
                .then_some(fe.sample_rate());
            let waves = self.waveforms(data, fe, rate)?;
            if let Some(d) = &tr.dir_augmentation {
                let rate = waves.0.sample_rate;
                inputs.irs =
                    Some(self.impulse_responses(data, d.irs, rate, fe, "DIR augmentation")?);
            }
            inputs.waves = Some(waves);
        }
        if let Some(e) = &tr.energy_ir {
            let recorded = self.waveforms(data, fe, None)?;
            let irs = self.impulse_responses(
                data,
                e.irs,
                recorded.0.sample_rate,
                fe,
                "energy-driven IR augmentation",
            )?;
            inputs.energy = Some(self.energy_ir(e, &recorded, &irs, fe)?);
        }
        Ok(inputs)
    }

    /// The training split at `rate` (by the front end's resampler), or at its recorded rate
    /// (`None`, one rate for all clips), cached like features.
    fn waveforms(
        &mut self,
        data: &PreparedData,
        fe: &Frontend,
        rate: Option<u32>,
    ) -> Result<Hashed<WaveformSet>> {
        if let Some(w) = self.augmentation.waves.get(&rate) {
            return Ok(w.clone());
        }
        let resampler = fe.resampler();
        let mut hash = StageHash::new("waveforms")
            .part("data", &data.manifest_hash)
            .json("split", &self.plan.profile_spec.data.train_split)
            .part("code", &self.code);
        hash = match rate {
            Some(rate) => hash
                .part("rate", &rate.to_string())
                .part("resampler", &resampler.fingerprint()),
            None => hash.part("rate", "recorded"),
        };
        let hash = hash.finish();
        let (what, id) = match rate {
            Some(rate) => (format!("{rate} Hz"), format!("train@{rate}Hz")),
            None => (
                "the recorded rate".to_string(),
                "train@recorded".to_string(),
            ),
        };
        let ds = &data.dataset;
        let entry = self.stage("waveforms", &id, &hash, vec!["data".into()], |r, dir| {
            let pb = r.progress(&format!("waveforms at {what}"));
            pb.set_length(ds.train.len() as u64);
            let clips: Vec<(Vec<f32>, u32)> = ds
                .train
                .par_iter()
                .map(|c| {
                    let path = ds.root.join(&c.file);
                    let audio = read_wav(&path)?;
                    let at = rate.unwrap_or(audio.sample_rate);
                    let samples = resampler
                        .resample(&audio.samples, audio.sample_rate, at)
                        .map_err(|e| Error::file(&path, e.to_string()))?;
                    pb.inc(1);
                    Ok((samples, at))
                })
                .collect::<Result<_>>()?;
            pb.finish_and_clear();
            let first_rate = clips.first().map_or(rate.unwrap_or(0), |c| c.1);
            if let Some(i) = clips.iter().position(|c| c.1 != first_rate) {
                return Err(Error::file(
                    ds.root.join(&ds.train[i].file),
                    format!(
                        "is at {} Hz, {} at {first_rate} Hz: waveform augmentations at the \
                             recorded rate need the training clips at one rate",
                        clips[i].1, ds.train[0].file
                    ),
                ));
            }
            let clips: Vec<Vec<f32>> = clips.into_iter().map(|c| c.0).collect();
            let y = ds.train.iter().map(|c| c.scene as i64).collect();
            let d = ds.train.iter().map(|c| c.device as i64).collect();
            WaveformSet::new(first_rate, &clips, y, d)?.save(&dir.join("waveforms.safetensors"))
        })?;
        let w = Rc::new((
            WaveformSet::load(&entry.path("waveforms.safetensors"))?,
            hash,
        ));
        self.augmentation.waves.insert(rate, w.clone());
        Ok(w)
    }

    /// The first `limit` impulse responses of the profile's set (all when `None`) at `rate`,
    /// by the front end's resampler.
    fn impulse_responses(
        &mut self,
        data: &PreparedData,
        limit: Option<usize>,
        rate: u32,
        fe: &Frontend,
        what: &str,
    ) -> Result<Hashed<ImpulseResponses>> {
        if let Some(set) = self.augmentation.irs.get(&(limit, rate)) {
            return Ok(set.clone());
        }
        let Some((ir_dir, ir_hash)) = &data.irs else {
            return Err(Error::input(
                &self.plan.path,
                recipe::locate(&self.plan.text, &["profiles", &self.plan.profile, "data"]),
                Some(&format!("profiles.{}.data.irs_root", self.plan.profile)),
                format!("{what} needs impulse responses: give `irs_root` and `irs_manifest`"),
            ));
        };
        let set = ImpulseResponses::load(ir_dir, limit, rate, fe.resampler())?;
        let hash = StageHash::new("irs")
            .part("set", ir_hash)
            .json("limit", &limit)
            .part("rate", &rate.to_string())
            .part("resampler", &fe.resampler().fingerprint())
            .finish();
        let set = Rc::new((set, hash));
        self.augmentation.irs.insert((limit, rate), set.clone());
        Ok(set)
    }

    /// RMS-energy-driven IR augmentation (RepConv report, Section 2.1): each training clip of
    /// the listed devices gets as many IR-convolved copies as its energy row says, with
    /// distinct impulse responses drawn from a seeded stream in clip order.
    fn energy_ir(
        &mut self,
        spec: &EnergyIrSpec,
        waves: &Hashed<WaveformSet>,
        irs: &Hashed<ImpulseResponses>,
        fe: &Frontend,
    ) -> Result<Hashed<FeatureSet>> {
        let seed = recipe::derive_seed(self.plan.recipe.seed, "energy_ir");
        let hash = StageHash::new("energy_ir")
            .json("spec", spec)
            .part("waveforms", &waves.1)
            .part("irs", &irs.1)
            .part("frontend", &fe.fingerprint())
            .part("seed", &seed.to_string())
            .part("code", &self.code)
            .finish();
        if let Some(e) = self.augmentation.energy.get(&hash) {
            return Ok(e.clone());
        }
        let (w, set) = (&waves.0, &irs.0);
        let entry = self.stage(
            "energy_ir",
            "energy_ir",
            &hash,
            vec!["waveforms".into()],
            |r, dir| {
                let table = EnergyTable::new(&spec.levels)
                    .map_err(|(row, msg)| Error::msg(format!("energy_ir.levels.{row}: {msg}")))?;
                let devices: Vec<i64> = spec
                    .devices
                    .iter()
                    .filter_map(|d| device_index(d).map(|i| i as i64))
                    .collect();
                let rms: Vec<Option<f64>> = (0..w.len())
                    .map(|i| {
                        devices
                            .contains(&w.device[i])
                            .then(|| energy::rms(w.clip(i)))
                    })
                    .collect();
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                let jobs = table
                    .plan(&rms, set.len(), &mut rng)
                    .map_err(|m| Error::msg(format!("energy-driven IR augmentation: {m}")))?;
                let fade = energy::fade_samples(w.sample_rate);
                let pb = r.progress("energy-driven IR copies");
                pb.set_length(jobs.len() as u64);
                let feats: Vec<_> = jobs
                    .par_iter()
                    .map(|&(clip, ir)| {
                        let copy = energy::render(w.clip(clip), set.get(ir), fade);
                        let f = extract_samples(&copy, w.sample_rate, fe);
                        pb.inc(1);
                        f
                    })
                    .collect::<Result<_>>()?;
                pb.finish_and_clear();
                let y = jobs.iter().map(|&(c, _)| w.y[c]).collect();
                let d = jobs.iter().map(|&(c, _)| w.device[c]).collect();
                FeatureSet::from_features(&feats, y, d)?.save(&dir.join("energy_ir.safetensors"))
            },
        )?;
        let e = Rc::new((
            FeatureSet::load(&entry.path("energy_ir.safetensors"))?,
            hash.clone(),
        ));
        self.augmentation.energy.insert(hash, e.clone());
        Ok(e)
    }

    fn evaluate(
        &mut self,
        id: &str,
        model_hash: &str,
        test: &FeatureSet,
        features_hash: &str,
    ) -> Result<Evaluation> {
        let hash = StageHash::new("evaluate")
            .part("model", model_hash)
            .part("features", features_hash)
            .part("code", &self.code)
            .json("platform", &self.platform)
            .finish();
        let entry = self.stage("evaluate", id, &hash, vec![id.to_string()], |r, dir| {
            let model_entry = r
                .cache
                .get("train", model_hash)
                .expect("model stage ran first");
            let (_vs, _cfg, model) =
                models::load_weights(&model_entry.path("model.safetensors"), r.device)?;
            let logits = eval::predict(model.as_ref(), test, 256, r.device);
            write_json(
                &dir.join("evaluation.json"),
                &eval::metrics(&logits, &test.y, &test.device),
            )
        })?;
        read_json(&entry.path("evaluation.json"))
    }

    fn quantize(
        &mut self,
        q: &QuantizeStage,
        train: &FeatureSet,
        test: &FeatureSet,
        features_hash: &str,
        fp32: &Evaluation,
    ) -> Result<(Evaluation, String)> {
        let from_hash = self.hashes[&format!("train:{}", q.from)].clone();
        let hash = StageHash::new("quantize")
            .json("stage", q)
            .part("model", &from_hash)
            .part("features", features_hash)
            .part("code", &self.code)
            .json("platform", &self.platform)
            .finish();
        let seed = recipe::derive_seed(self.plan.recipe.seed, &q.id);
        let entry = self.stage("quantize", &q.id, &hash, vec![q.from.clone()], |r, dir| {
            let model_entry = r
                .cache
                .get("train", &from_hash)
                .expect("model stage ran first");
            let (vs, cfg, _model) =
                models::load_weights(&model_entry.path("model.safetensors"), r.device)?;
            // Calibration clips: a seeded random subset of the (non-augmented) training split.
            let n = q.calibration_clips.min(train.len());
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut idx: Vec<i64> = sample(&mut rng, train.len(), n)
                .into_iter()
                .map(|i| i as i64)
                .collect();
            idx.sort_unstable();
            let batches: Vec<Tensor> = idx.chunks(64).map(|c| train.batch(c, r.device).0).collect();
            let int8 = crate::compress::quantize::quantize_int8(&vs, &cfg, &batches)?;
            let logits = eval::predict(&int8, test, 256, r.device);
            write_json(
                &dir.join("evaluation.json"),
                &eval::metrics(&logits, &test.y, &test.device),
            )
        })?;
        let e: Evaluation = read_json(&entry.path("evaluation.json"))?;
        let loss = fp32.macro_accuracy - e.macro_accuracy;
        let verdict = if loss <= q.tolerance {
            "accepted"
        } else {
            "REJECTED"
        };
        let note = format!(
            "INT8 {verdict}: macro accuracy {:.2}% vs {:.2}% in fp32 (loss {:.2} points; tolerance {:.2})",
            100.0 * e.macro_accuracy,
            100.0 * fp32.macro_accuracy,
            100.0 * loss,
            100.0 * q.tolerance
        );
        Ok((e, note))
    }

    fn record(
        &self,
        data: &PreparedData,
        fe: &Frontend,
        systems: Vec<SystemRecord>,
        input: [i64; 3],
    ) -> Result<RunRecord> {
        let r = &self.plan.recipe;
        let mut data_hashes = BTreeMap::new();
        data_hashes.insert(data.name.clone(), data.manifest_hash.clone());
        let run_hash = StageHash::new("run")
            .part("recipe", &self.plan.recipe_hash)
            .part("profile", &self.plan.profile)
            .json("data", &data_hashes)
            .part("code", &self.code)
            .json("platform", &self.platform)
            .finish();
        let ran: Vec<&str> = systems.iter().map(|s| s.id.as_str()).collect();
        let published: Vec<PublishedRow> = r
            .published
            .iter()
            .map(|p| PublishedRow {
                table: p.table.clone(),
                label: p.label.clone(),
                values: p.values.clone(),
                reproduced_by: p.stage.clone().filter(|s| ran.contains(&s.as_str())),
            })
            .collect();
        let mut findings = Vec::new();
        let mut checks = Vec::new();
        for p in &r.published {
            let Some(key) = &p.model else { continue };
            let spec = &self.plan.published_models[key];
            let cfg = models::ModelConfig::from_spec(spec).map_err(|(_, why)| why);
            let pp = p.values.get("params_k").copied();
            let pm = p.values.get("macs_m").copied();
            let (params, macs, status) = match cfg
                .as_ref()
                .map(|c| count(c, input, &CountOptions::default()))
            {
                Ok(Ok(c)) => {
                    let ok_p = pp.is_none_or(|v| printed_as(c.params as f64 / 1e3, v));
                    let ok_m = pm.is_none_or(|v| printed_as(c.macs as f64 / 1e6, v));
                    let status = if ok_p && ok_m {
                        "match".to_string()
                    } else {
                        "mismatch".to_string()
                    };
                    if !ok_p || !ok_m {
                        findings.push(Finding {
                            kind: "contradiction".into(),
                            text: format!(
                                "{} ({}): the report prints {} params / {} MMACs, but the architecture it describes counts {} params / {} MACs ({:.2}K / {:.2}M) at input {}x{}x{}.",
                                p.label,
                                p.table,
                                pp.map(|v| format!("{v}K")).unwrap_or("–".into()),
                                pm.map(|v| format!("{v}")).unwrap_or("–".into()),
                                c.params,
                                c.macs,
                                c.params as f64 / 1e3,
                                c.macs as f64 / 1e6,
                                input[0],
                                input[1],
                                input[2]
                            ),
                        });
                    }
                    (Some(c.params), Some(c.macs), status)
                }
                Ok(Err(e)) => (None, None, format!("not counted: {e}")),
                Err(why) => (None, None, format!("not counted: {why}")),
            };
            checks.push(ComplexityCheck {
                label: p.label.clone(),
                model: spec.arch.clone() + &describe_spec(spec),
                published_params_k: pp,
                published_macs_m: pm,
                params,
                macs,
                status,
            });
        }
        for s in &systems {
            for n in &s.notes {
                if n.contains("REJECTED") {
                    findings.push(Finding {
                        kind: "note".into(),
                        text: format!("{}: {n}", s.label),
                    });
                }
            }
        }
        Ok(RunRecord {
            recipe_id: r.id.clone(),
            title: r.title.clone(),
            citation: r.citation.clone(),
            profile: self.plan.profile.clone(),
            profile_note: self.plan.profile_spec.note.clone(),
            identity: RunIdentity {
                run_hash,
                recipe_hash: self.plan.recipe_hash.clone(),
                data: data_hashes,
                code_version: self.code.clone(),
                frontend: fe.fingerprint(),
                platform: self.platform.clone(),
            },
            stages: self.records.clone(),
            systems,
            published,
            complexity_checks: checks,
            findings,
            recipe_text: self.plan.text.clone(),
        })
    }

    /// Renders the report unless `out_dir` already holds exactly this report.
    fn report(&mut self, record: &RunRecord, hash: &str, out_dir: &Path) -> Result<()> {
        let sums_now = std::fs::read(out_dir.join("SHA256SUMS")).ok();
        if let Some(e) = self.cache.get("report", hash) {
            let cached_sums = std::fs::read(e.path("SHA256SUMS")).ok();
            if sums_now.is_some()
                && sums_now == cached_sums
                && crate::report::verify(out_dir).is_ok()
            {
                self.timings.push(StageTiming {
                    kind: "report".into(),
                    id: "index.html".into(),
                    seconds: 0.0,
                    cached: true,
                });
                crate::report::write_timings(record, &self.timings, out_dir)?;
                self.say(&format!("  {:<9} {:<22} cached", "report", "index.html"));
                return Ok(());
            }
        }
        let t0 = Instant::now();
        // Timings include this stage's own entry only after rendering; it is the last one.
        let mut timings = self.timings.clone();
        timings.push(StageTiming {
            kind: "report".into(),
            id: "index.html".into(),
            seconds: 0.0,
            cached: false,
        });
        crate::report::render(record, &timings, out_dir)?;
        let sums = out_dir.join("SHA256SUMS");
        self.cache.put("report", hash, |dir| {
            std::fs::copy(&sums, dir.join("SHA256SUMS"))
                .map(|_| ())
                .at(&sums)
        })?;
        let seconds = t0.elapsed().as_secs_f64();
        self.computed += 1;
        self.timings.push(StageTiming {
            kind: "report".into(),
            id: "index.html".into(),
            seconds,
            cached: false,
        });
        self.say(&format!(
            "  {:<9} {:<22} rendered in {seconds:.1} s",
            "report", "index.html"
        ));
        Ok(())
    }
}

/// True when `exact`, rounded or truncated to the decimals of `printed`, gives `printed`
/// (reports do both: Table 3 prints 6,838 parameters as 6.83K).
fn printed_as(exact: f64, printed: f64) -> bool {
    let mut decimals = 0;
    while decimals < 4
        && ((printed * 10f64.powi(decimals)).round() - printed * 10f64.powi(decimals)).abs() > 1e-6
    {
        decimals += 1;
    }
    let scale = 10f64.powi(decimals);
    let target = (printed * scale).round();
    (exact * scale).round() == target || (exact * scale + 1e-9).floor() == target
}

fn describe_spec(m: &recipe::ModelSpec) -> String {
    let mut s = String::new();
    if let Some(w) = m.width {
        s += &format!(" C={w}");
    }
    if let Some(d) = m.depth {
        s += &format!(" depth {d}");
    }
    if let Some(w) = &m.widths {
        s += &format!(" widths {w:?}");
    }
    if let Some(n) = &m.norm {
        s += &format!(" {n}");
    }
    s
}

fn describe_training(t: &TrainStage) -> String {
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
    if let Some(d) = &t.distill {
        let form = match d.form {
            KdForm::Weighted => format!("{}·CE + (1−{})·T²·KL", d.lambda, d.lambda),
            KdForm::CePlusKl => format!("CE + {}·KL", d.lambda),
        };
        parts.push(format!(
            "KD from `{}` ({form}, T={})",
            d.teacher, d.temperature
        ));
    }
    parts.join("; ")
}

/// Each listed file's SHA-256 by relative path (empty for a summary-form manifest).
fn file_hashes(manifest: &Manifest) -> BTreeMap<String, String> {
    manifest
        .files
        .iter()
        .map(|f| (f.path.clone(), f.sha256.clone()))
        .collect()
}

fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::msg(e.to_string()))?;
    std::fs::write(path, text).at(path)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).at(path)?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::file(path, format!("corrupt cache entry: {e}")))
}

#[cfg(test)]
mod tests {
    use super::printed_as;

    #[test]
    fn printed_figures_match_by_rounding_or_truncation() {
        assert!(printed_as(6.838, 6.83)); // truncated
        assert!(printed_as(1.650149, 1.65));
        assert!(printed_as(10.22034, 10.22));
        assert!(printed_as(757.05, 757.05));
        assert!(!printed_as(121.82256, 242.18));
        assert!(!printed_as(6.85, 6.83));
    }
}
