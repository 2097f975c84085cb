//! Offline device simulation (`audio::augment::devsim`): extra device-a training rows, shared by
//! every train stage with the same configuration.

use crate::audio::augment::devsim;
use crate::audio::features::extract_samples;
use crate::audio::frontend::Frontend;
use crate::audio::wav::{read_wav, Audio};
use crate::error::{Error, IoContext, Result};
use crate::recipe::DeviceSimulationSpec;
use crate::runner::cache::StageHash;
use crate::runner::graph::{Artefact, Context, NodeId, Outputs, Stage};
use crate::train::FeatureSet;
use ascrepro_results::labels::known_device_index;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::rc::Rc;

pub struct DevsimStage {
    pub data: NodeId,
    pub spec: DeviceSimulationSpec,
    pub frontend: Frontend,
    pub seed: u64,
}

impl Stage for DevsimStage {
    fn kind(&self) -> &'static str {
        "devsim"
    }

    fn id(&self) -> String {
        format!("devsim-{}x{}", self.spec.irs, self.spec.clips_per_ir)
    }

    fn needs(&self) -> Vec<NodeId> {
        vec![self.data]
    }

    fn code(&self) -> &'static [&'static str] {
        &[
            "src/audio/",
            "src/train/datamodule.rs",
            "src/runner/stages/devsim.rs",
        ]
    }

    fn identity(&self, h: StageHash) -> StageHash {
        h.json("spec", &self.spec)
            .part("frontend", &self.frontend.fingerprint())
            .part("seed", &self.seed.to_string())
    }

    fn produce(&self, cx: &Context, inputs: &Outputs, dir: &Path) -> Result<()> {
        let data = inputs.data(self.data);
        let Some(ir_dir) = &data.irs else {
            return Err(cx.data_error(
                "irs_root",
                "device simulation needs impulse responses: give `irs_root` and `irs_manifest`",
            ));
        };
        let spec = &self.spec;
        let ds = &data.dataset;
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
        let a = known_device_index("a").expect("device a exists");
        let pool: Vec<usize> = (0..ds.train.len())
            .filter(|&i| ds.train[i].device == a)
            .collect();
        if pool.len() < spec.clips_per_ir {
            return Err(Error::msg(format!(
                "device simulation asks for {} device-a clips per impulse response but the training split has {}",
                spec.clips_per_ir,
                pool.len()
            )));
        }
        // Each impulse response is read once; multi-channel ones are mixed to mono like clips.
        let ir_audio: Vec<Audio> = irs
            .iter()
            .take(spec.irs)
            .map(|p| read_wav(p))
            .collect::<Result<_>>()?;
        let mixed: Vec<(&PathBuf, u16)> = irs
            .iter()
            .zip(&ir_audio)
            .filter_map(|(p, a)| a.mixed_from_channels.map(|c| (p, c)))
            .collect();
        if let Some((first, channels)) = mixed.first() {
            cx.say(&format!(
                "  note: {} of {} impulse responses had several channels and were mixed to mono (mean of the channels), e.g. {} ({channels} channels)",
                mixed.len(),
                spec.irs,
                first.display()
            ));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let jobs = devsim::plan(ir_audio.len(), &pool, spec.clips_per_ir, &mut rng);
        let pb = cx.progress("device simulation");
        pb.set_length(jobs.len() as u64);
        let fe = &self.frontend;
        let feats: Vec<_> = jobs
            .par_iter()
            .map(|&(ir, clip)| {
                let audio = read_wav(&ds.root.join(&ds.train[clip].file))?;
                let y = devsim::simulate(&audio, &ir_audio[ir], fe.resampler())?;
                let f = extract_samples(&y, audio.sample_rate, fe);
                pb.inc(1);
                f
            })
            .collect::<Result<_>>()?;
        pb.finish_and_clear();
        let y = jobs
            .iter()
            .map(|(_, c)| ds.train[*c].scene as i64)
            .collect();
        let d = jobs.iter().map(|_| a as i64).collect();
        FeatureSet::from_features(&feats, y, d)?.save(&dir.join("devsim.safetensors"))
    }

    fn load(&self, _cx: &Context, _inputs: &Outputs, dir: Option<&Path>) -> Result<Artefact> {
        let path = dir.expect("cached stage").join("devsim.safetensors");
        Ok(Artefact::Copies(Rc::new(FeatureSet::load(&path)?)))
    }
}
