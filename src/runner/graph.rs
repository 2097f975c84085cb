//! The stage graph: one [`Stage`] per node, each naming the nodes it reads, the code it depends
//! on and its own spec; typed [`Artefact`]s flow along the edges. The executor
//! (`runner::executor`) knows nothing of any stage's internals, and a stage knows nothing of
//! hashing, caching or order.

use super::cache::{Cache, StageHash};
use crate::audio::augment::ImpulseResponses;
use crate::error::{Error, Result};
use crate::models::ModelConfig;
use crate::recipe::{self, Plan};
use crate::train::datamodule::WaveformSet;
use crate::train::FeatureSet;
use ascrepro_results::record::{
    EpochLog, Evaluation, QuantizationRecord, RunRecord, StageRecord, StageTiming, SystemRecord,
};
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use tch::Device;

/// A node of the graph (its index: nodes are added after the nodes they read).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct NodeId(pub(super) usize);

/// One kind of work: what it reads, what its identity is, how it makes and loads its artefact.
pub trait Stage {
    /// Its kind: names its cache entries and its line in the progress and `plan` output.
    fn kind(&self) -> &'static str;
    /// Its name within the run, e.g. the recipe's stage id or `train@32000Hz`.
    fn id(&self) -> String;
    /// The nodes whose artefacts it reads (their identities are part of its own).
    fn needs(&self) -> Vec<NodeId>;
    /// Source files and folders (ending in `/`) its artefact depends on.
    fn code(&self) -> &'static [&'static str];
    /// Whether the numeric platform (libtorch, its thread count, CPU capability, device) is
    /// part of its identity: true for stages that run libtorch kernels, whose CPU reductions
    /// are split by thread and whose GPU kernels differ from the CPU's. Stages computed in Rust
    /// alone split their parallel loops per clip, so they give the same bytes on any number of
    /// rayon threads, and `--jobs` is part of no identity.
    fn numeric(&self) -> bool {
        false
    }
    /// Its own part of its identity: its typed spec, never labels or names.
    fn identity(&self, h: StageHash) -> StageHash;
    /// False for artefacts that are cheap to load and not worth a cache entry.
    fn cached(&self) -> bool {
        true
    }
    /// Whether a complete cache entry may still be used (false: recompute it).
    fn reusable(&self, _cx: &Context, _entry: &Path) -> Result<bool> {
        Ok(true)
    }
    /// Writes the artefact's files into `dir` (a fresh directory, published when complete).
    fn produce(&self, cx: &Context, inputs: &Outputs, dir: &Path) -> Result<()>;
    /// The artefact, from its files (`dir`; `None` for stages that are not cached).
    fn load(&self, cx: &Context, inputs: &Outputs, dir: Option<&Path>) -> Result<Artefact>;
    /// The systems it adds to the report (evaluated models).
    fn systems(&self, _own: &Artefact, _inputs: &Outputs) -> Result<Vec<SystemRecord>> {
        Ok(Vec::new())
    }
}

/// A shared input stage made for a narrowed training split (`Base::on_split`): the same stage,
/// its id prefixed with the split's name, so every node's `kind:id` stays unique (executors
/// and `ascrepro stage` address nodes by it). Its identity is the stage's own: its inputs
/// already differ.
pub struct Scoped<S> {
    pub scope: Option<String>,
    pub inner: S,
}

impl<S: Stage> Stage for Scoped<S> {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    fn id(&self) -> String {
        match &self.scope {
            Some(scope) => format!("{scope}/{}", self.inner.id()),
            None => self.inner.id(),
        }
    }
    fn needs(&self) -> Vec<NodeId> {
        self.inner.needs()
    }
    fn code(&self) -> &'static [&'static str] {
        self.inner.code()
    }
    fn numeric(&self) -> bool {
        self.inner.numeric()
    }
    fn identity(&self, h: StageHash) -> StageHash {
        self.inner.identity(h)
    }
    fn cached(&self) -> bool {
        self.inner.cached()
    }
    fn reusable(&self, cx: &Context, entry: &Path) -> Result<bool> {
        self.inner.reusable(cx, entry)
    }
    fn produce(&self, cx: &Context, inputs: &Outputs, dir: &Path) -> Result<()> {
        self.inner.produce(cx, inputs, dir)
    }
    fn load(&self, cx: &Context, inputs: &Outputs, dir: Option<&Path>) -> Result<Artefact> {
        self.inner.load(cx, inputs, dir)
    }
    fn systems(&self, own: &Artefact, inputs: &Outputs) -> Result<Vec<SystemRecord>> {
        self.inner.systems(own, inputs)
    }
}

/// The data a run reads: the dataset, its identity, and the impulse responses of its profile.
pub struct DataArtefact {
    pub dataset: crate::data::Dataset,
    /// The profile's validation split (`select: best`), when it names one.
    pub validation: Option<Vec<crate::data::Clip>>,
    /// Dataset name (the manifest's), keyed in the report's identity.
    pub name: String,
    pub manifest_hash: String,
    /// Directory of the profile's impulse responses, when it has one.
    pub irs: Option<PathBuf>,
    /// SHA-256 of each file by relative path, when the (verified) manifest lists them: the
    /// per-clip feature cache's key without re-reading the files.
    pub file_sha256: BTreeMap<String, String>,
}

/// Features of the training and test splits.
pub struct SplitFeatures {
    /// The dataset's devices: what the sets' device indices point into.
    pub devices: ascrepro_results::labels::DeviceList,
    pub train: FeatureSet,
    pub test: FeatureSet,
    pub validation: Option<FeatureSet>,
}

/// A multi-label set's training and evaluation splits (pre-training).
pub struct MultiLabelData {
    pub train: crate::data::audioset::MultiLabelDataset,
    pub eval: crate::data::audioset::MultiLabelDataset,
    /// What the report calls it.
    pub name: String,
}

/// Features and targets of a multi-label set's splits.
pub struct MultiLabelFeatures {
    pub train: crate::train::pretrain::MultiLabelSet,
    pub eval: crate::train::pretrain::MultiLabelSet,
}

/// A trained (or imported) fp32 model with what the report says of it.
pub struct ModelArtefact {
    pub weights: PathBuf,
    pub config: ModelConfig,
    pub curve: Vec<EpochLog>,
    /// The recipe stage that made it, its row label and training description.
    pub stage: String,
    pub label: String,
    pub training: String,
    /// What the report notes about it (e.g. which epoch was kept).
    pub notes: Vec<String>,
    /// The named training split it was trained on.
    pub split: Option<String>,
    /// What pruning did, for a prune stage's model.
    pub pruning: Option<ascrepro_results::record::PruningRecord>,
}

/// What flows along the graph's edges.
pub enum Artefact {
    Data(Rc<DataArtefact>),
    Features(Rc<SplitFeatures>),
    Waveforms(Rc<WaveformSet>),
    ImpulseResponses(Rc<ImpulseResponses>),
    /// Extra training rows made offline (device simulation, energy-driven IR copies).
    Copies(Rc<FeatureSet>),
    Model(Rc<ModelArtefact>),
    Evaluation(Rc<Evaluation>),
    /// A quantize stage's evaluation with what quantization did.
    Quantized(Rc<(Evaluation, QuantizationRecord)>),
    MultiLabelData(Rc<MultiLabelData>),
    MultiLabelFeatures(Rc<MultiLabelFeatures>),
    Report(Rc<RunRecord>),
}

/// The artefacts of the nodes run so far, with the run's log.
#[derive(Default)]
pub struct Outputs {
    pub(super) artefacts: BTreeMap<NodeId, Artefact>,
    pub(super) hashes: BTreeMap<NodeId, String>,
    /// Stage records of the cached stages, in run order.
    pub records: Vec<StageRecord>,
    /// Systems the stages added, in run order.
    pub systems: Vec<SystemRecord>,
    pub timings: Vec<StageTiming>,
    /// Identity of the node being computed.
    pub(super) current: Option<String>,
}

macro_rules! accessor {
    ($name:ident, $variant:ident, $ty:ty) => {
        /// The artefact of `node`; the graph is built so that `node` makes this type.
        pub fn $name(&self, node: NodeId) -> &$ty {
            match self.artefacts.get(&node) {
                Some(Artefact::$variant(a)) => a,
                _ => panic!(
                    "node {} does not hold a {} artefact: the graph was built wrongly",
                    node.0,
                    stringify!($variant)
                ),
            }
        }
    };
}

impl Outputs {
    accessor!(data, Data, Rc<DataArtefact>);
    accessor!(features, Features, Rc<SplitFeatures>);
    accessor!(waveforms, Waveforms, Rc<WaveformSet>);
    accessor!(impulse_responses, ImpulseResponses, Rc<ImpulseResponses>);
    accessor!(copies, Copies, Rc<FeatureSet>);
    accessor!(model, Model, Rc<ModelArtefact>);
    accessor!(evaluation, Evaluation, Rc<Evaluation>);
    accessor!(report, Report, Rc<RunRecord>);
    accessor!(multilabel_data, MultiLabelData, Rc<MultiLabelData>);
    accessor!(
        multilabel_features,
        MultiLabelFeatures,
        Rc<MultiLabelFeatures>
    );

    /// Scratch space for the running node's resumable work (epoch checkpoints), kept across
    /// interrupted runs and removed when the node completes.
    pub fn resume_dir(&self, cx: &Context, kind: &str) -> PathBuf {
        let hash = self.current.as_deref().expect("set while a node runs");
        cx.cache.partial_dir(kind, hash)
    }

    /// The identity (stage hash) of a node that has run.
    pub fn hash(&self, node: NodeId) -> &str {
        &self.hashes[&node]
    }
}

/// What every stage may use: the plan, the cache, the device, the run's identity parts.
pub struct Context<'a> {
    pub plan: &'a Plan,
    pub cache: &'a Cache,
    pub project: PathBuf,
    pub data_root: PathBuf,
    pub device: Device,
    /// The whole tree's code version (what the report states).
    pub code_version: String,
    pub platform: BTreeMap<String, String>,
    pub quiet: bool,
}

impl Context<'_> {
    pub fn say(&self, line: &str) {
        if !self.quiet {
            eprintln!("{line}");
        }
    }

    pub fn progress(&self, what: &str) -> ProgressBar {
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

    /// A stage-specific seed derived from the recipe's.
    pub fn seed(&self, what: &str) -> u64 {
        recipe::derive_seed(self.plan.recipe.seed, what)
    }

    /// An error about a field of the recipe, with its line.
    pub fn recipe_error(&self, field: &[&str], msg: impl Into<String>) -> Error {
        Error::input(
            &self.plan.path,
            recipe::locate(&self.plan.text, field),
            Some(&field.join(".")),
            msg,
        )
    }

    /// An error about a field of the profile's data block.
    pub fn data_error(&self, field: &str, msg: impl Into<String>) -> Error {
        self.recipe_error(&["profiles", &self.plan.profile, "data", field], msg)
    }
}

/// The graph under construction: nodes in dependency order, shared nodes by key, and what each
/// recipe stage made.
#[derive(Default)]
pub struct Graph {
    pub(super) nodes: Vec<Box<dyn Stage>>,
    shared: BTreeMap<String, NodeId>,
    models: BTreeMap<String, NodeId>,
    evaluations: BTreeMap<String, NodeId>,
    /// The profile's data and features nodes.
    inputs: Option<(NodeId, NodeId)>,
}

impl Graph {
    pub fn add(&mut self, stage: impl Stage + 'static) -> NodeId {
        self.nodes.push(Box::new(stage));
        NodeId(self.nodes.len() - 1)
    }

    /// The node stored under `key`, made by `make` the first time (stages sharing an input,
    /// e.g. one device-simulation configuration, share its node).
    pub fn shared<S: Stage + 'static>(
        &mut self,
        key: String,
        make: impl FnOnce(&mut Graph) -> Result<S>,
    ) -> Result<NodeId> {
        if let Some(&n) = self.shared.get(&key) {
            return Ok(n);
        }
        let stage = make(self)?;
        let n = self.add(stage);
        self.shared.insert(key, n);
        Ok(n)
    }

    /// Records that recipe stage `stage` made the model of node `model`, evaluated on the
    /// scenes by `eval` (none for a pre-trained model).
    pub fn name_model(&mut self, stage: &str, model: NodeId, eval: Option<NodeId>) {
        self.models.insert(stage.to_string(), model);
        if let Some(eval) = eval {
            self.evaluations.insert(stage.to_string(), eval);
        }
    }

    /// The node holding recipe stage `stage`'s model (the plan orders sources first).
    pub fn model_of(&self, stage: &str) -> Result<NodeId> {
        self.models
            .get(stage)
            .copied()
            .ok_or_else(|| Error::msg(format!("stage `{stage}` makes no model in this profile")))
    }

    /// The node holding recipe stage `stage`'s evaluation.
    pub fn evaluation_of(&self, stage: &str) -> Result<NodeId> {
        self.evaluations
            .get(stage)
            .copied()
            .ok_or_else(|| Error::msg(format!("stage `{stage}` is not evaluated in this profile")))
    }

    /// Records the profile's data and features nodes.
    pub fn set_inputs(&mut self, data: NodeId, features: NodeId) {
        self.inputs = Some((data, features));
    }

    /// The profile's data and features nodes.
    pub fn inputs(&self) -> (NodeId, NodeId) {
        self.inputs
            .expect("the registry adds the data and features first")
    }

    /// Every node so far.
    pub fn all(&self) -> Vec<NodeId> {
        (0..self.nodes.len()).map(NodeId).collect()
    }

    pub fn stage(&self, n: NodeId) -> &dyn Stage {
        self.nodes[n.0].as_ref()
    }

    /// Refuses a graph two of whose nodes share a `kind:id` (a registry bug: executors address
    /// nodes by it).
    pub fn check_names(&self) -> Result<()> {
        let mut seen = std::collections::BTreeSet::new();
        for s in &self.nodes {
            let label = format!("{}:{}", s.kind(), s.id());
            if !seen.insert(label.clone()) {
                return Err(Error::msg(format!(
                    "internal error: two nodes of the stage graph are named `{label}`; please report it"
                )));
            }
        }
        Ok(())
    }
}
