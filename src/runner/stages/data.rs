//! The dataset a profile reads: generated (`synth`, cached like any stage and regenerated when
//! its files no longer match their manifest) or real (`tau2022`, verified against the project's
//! manifest on every run; its identity is that manifest's hash).

use crate::data::{manifest::Manifest, synth, tau};
use crate::error::{Error, Result};
use crate::recipe::{DataKind, DataSpec, Plan};
use crate::runner::cache::StageHash;
use crate::runner::graph::{Artefact, Context, DataArtefact, NodeId, Outputs, Stage};
use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;
use std::time::Instant;

/// The synthetic set is always read through its generator's fold-1 split.
const SYNTH_TRAIN: &str = "evaluation_setup/fold1_train.csv";
const SYNTH_TEST: &str = "evaluation_setup/fold1_evaluate.csv";

pub enum DataStage {
    Synth {
        config: synth::SynthConfig,
        validation: Option<String>,
    },
    Tau2022 {
        spec: Box<DataSpec>,
        /// The project's manifest of the data and its hash (read when the graph is built).
        manifest: Box<Manifest>,
        manifest_hash: String,
        irs_manifest: Option<(Manifest, String)>,
    },
}

impl DataStage {
    /// The profile's data; reading a real dataset's manifests (not its files) to name it.
    pub fn new(plan: &Plan, project: &Path) -> Result<DataStage> {
        let spec = &plan.profile_spec.data;
        if spec.kind == DataKind::Synth {
            return Ok(DataStage::Synth {
                config: spec.synth.clone().expect("validated"),
                validation: spec.validation_split.clone(),
            });
        }
        let field = |f: &str| {
            let at = ["profiles", plan.profile.as_str(), "data", f];
            (
                crate::recipe::locate(&plan.text, &at),
                format!("profiles.{}.data.{f}", plan.profile),
            )
        };
        let manifest_rel = spec.manifest.clone().expect("validated");
        let manifest_path = project.join(&manifest_rel);
        if !manifest_path.is_file() {
            let (line, f) = field("manifest");
            return Err(Error::input(
                &plan.path,
                line,
                Some(&f),
                format!(
                    "data manifest `{manifest_rel}` does not exist; create it from your copy of the data with `ascrepro manifest create DATA_DIR --out {manifest_rel}`"
                ),
            ));
        }
        let manifest = Manifest::load(&manifest_path)?;
        let irs_manifest = match &spec.irs_manifest {
            Some(rel) => {
                let m = Manifest::load(&project.join(rel))?;
                let h = m.hash();
                Some((m, h))
            }
            None => None,
        };
        Ok(DataStage::Tau2022 {
            spec: Box::new(spec.clone()),
            manifest_hash: manifest.hash(),
            manifest: Box::new(manifest),
            irs_manifest,
        })
    }
}

impl Stage for DataStage {
    fn kind(&self) -> &'static str {
        "data"
    }

    fn id(&self) -> String {
        match self {
            DataStage::Synth { .. } => "synth".into(),
            DataStage::Tau2022 { manifest, .. } => manifest.dataset.clone(),
        }
    }

    fn needs(&self) -> Vec<NodeId> {
        Vec::new()
    }

    fn code(&self) -> &'static [&'static str] {
        &["src/data/", "src/audio/wav.rs", "src/runner/stages/data.rs"]
    }

    fn identity(&self, h: StageHash) -> StageHash {
        match self {
            // The validation split only selects clips to load: the features name it.
            DataStage::Synth { config, .. } => h.json("synth", config),
            DataStage::Tau2022 {
                spec,
                manifest_hash,
                irs_manifest,
                ..
            } => h
                .part("manifest", manifest_hash)
                .json(
                    "splits",
                    &(&spec.train_split, &spec.test_split, &spec.validation_split),
                )
                .json("irs", &irs_manifest.as_ref().map(|m| &m.1)),
        }
    }

    /// Real data is verified on every run rather than copied into the cache.
    fn cached(&self) -> bool {
        matches!(self, DataStage::Synth { .. })
    }

    fn produce(&self, cx: &Context, _inputs: &Outputs, dir: &Path) -> Result<()> {
        let DataStage::Synth { config, .. } = self else {
            unreachable!("only synthetic data is cached")
        };
        let pb = cx.progress("synthesising clips");
        synth::generate(config, &dir.join("data"), Some(&pb))?;
        pb.finish_and_clear();
        Manifest::create(&dir.join("data"), "synthetic-tau2022", "tau2022-mobile")?
            .save(&dir.join("manifest.yaml"))
    }

    fn load(&self, cx: &Context, _inputs: &Outputs, dir: Option<&Path>) -> Result<Artefact> {
        let data = match self {
            DataStage::Synth { validation, .. } => {
                let dir = dir.expect("cached stage");
                let manifest = Manifest::load(&dir.join("manifest.yaml"))?;
                let root = dir.join("data");
                DataArtefact {
                    validation: validation
                        .as_deref()
                        .map(|v| tau::load_split(&root, v))
                        .transpose()?,
                    dataset: tau::load(&root, SYNTH_TRAIN, SYNTH_TEST)?,
                    name: "synthetic-tau2022".into(),
                    irs: Some(root.join("irs")),
                    manifest_hash: manifest.hash(),
                    file_sha256: file_hashes(&manifest),
                }
            }
            DataStage::Tau2022 {
                spec,
                manifest,
                manifest_hash,
                irs_manifest,
            } => {
                let root = cx.data_root.join(spec.root.as_deref().expect("validated"));
                let t0 = Instant::now();
                manifest.verify(&root)?;
                cx.say(&format!(
                    "  data      {:<22} verified against {} in {:.1} s",
                    manifest.dataset,
                    spec.manifest.as_deref().unwrap_or_default(),
                    t0.elapsed().as_secs_f64()
                ));
                let irs = match (&spec.irs_root, irs_manifest) {
                    (Some(ir_root), Some((m, _))) => {
                        let dir = cx.data_root.join(ir_root);
                        m.verify(&dir)?;
                        Some(dir)
                    }
                    _ => None,
                };
                DataArtefact {
                    validation: spec
                        .validation_split
                        .as_deref()
                        .map(|v| tau::load_split(&root, v))
                        .transpose()?,
                    dataset: tau::load(
                        &root,
                        spec.train_split.as_deref().expect("validated"),
                        spec.test_split.as_deref().expect("validated"),
                    )?,
                    name: manifest.dataset.clone(),
                    manifest_hash: manifest_hash.clone(),
                    irs,
                    file_sha256: file_hashes(manifest),
                }
            }
        };
        Ok(Artefact::Data(Rc::new(data)))
    }
}

/// Each listed file's SHA-256 by relative path (empty for a summary-form manifest).
fn file_hashes(manifest: &Manifest) -> BTreeMap<String, String> {
    manifest
        .files
        .iter()
        .map(|f| (f.path.clone(), f.sha256.clone()))
        .collect()
}

/// The profile's data with its training split narrowed to a named split (DCASE2024's
/// split5 ... split100); loaded, not cached.
pub struct SplitDataStage {
    pub data: NodeId,
    pub name: String,
    /// The split's CSV, relative to the dataset root.
    pub csv: String,
}

impl Stage for SplitDataStage {
    fn kind(&self) -> &'static str {
        "split"
    }

    fn id(&self) -> String {
        self.name.clone()
    }

    fn needs(&self) -> Vec<NodeId> {
        vec![self.data]
    }

    fn code(&self) -> &'static [&'static str] {
        &["src/data/tau.rs", "src/runner/stages/data.rs"]
    }

    fn identity(&self, h: StageHash) -> StageHash {
        h.part("split", &self.name).part("csv", &self.csv)
    }

    fn cached(&self) -> bool {
        false
    }

    fn produce(&self, _cx: &Context, _inputs: &Outputs, _dir: &Path) -> Result<()> {
        unreachable!("a split is loaded, not cached")
    }

    fn load(&self, _cx: &Context, inputs: &Outputs, _dir: Option<&Path>) -> Result<Artefact> {
        let all = inputs.data(self.data);
        let mut dataset = all.dataset.clone();
        dataset.train = tau::load_split(&dataset.root, &self.csv)?;
        Ok(Artefact::Data(Rc::new(DataArtefact {
            dataset,
            validation: all.validation.clone(),
            name: all.name.clone(),
            manifest_hash: all.manifest_hash.clone(),
            irs: all.irs.clone(),
            file_sha256: all.file_sha256.clone(),
        })))
    }
}
