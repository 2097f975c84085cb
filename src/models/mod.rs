//! Models: one file per architecture (a config struct, a constructor, a forward), building blocks
//! shared in [`blocks`], and the safetensors weight format every run stage reads and writes.
//!
//! Every model implements [`Net`]: a forward pass driven by a [`blocks::Ctx`] (train/eval plus an
//! optional probe), a visitor over its conv units and, where it runs at INT8, a lowering to an
//! operator graph ([`graph`]). Complexity counting, BatchNorm folding and quantization (in
//! `crate::compress`) work through those methods only, without model-specific code there.

pub mod bcresnet;
pub mod blocks;
pub mod checkpoint;
pub mod cp_blocks;
pub mod cp_mobile;
pub mod dcase25_baseline;
pub mod dsflexinet;
pub mod graph;
pub mod repconv;
pub mod spec;
pub mod sscp_mobile;
pub mod tfsepconv;
pub mod tfsepnet23;
pub mod tfsepnet64;

pub use spec::{FieldError, ModelSpec};

use crate::error::{Error, Result};
use blocks::{ConvBn, Ctx, Vb};
use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use tch::{nn, Device, Kind, Tensor};

/// Header-metadata key holding the model configuration (JSON) in a weights file.
pub const WEIGHTS_CONFIG_KEY: &str = "ascrepro.model";

/// What each architecture's config provides; [`ModelConfig`] dispatches to it.
pub trait Architecture: Sized {
    type Net: Net + 'static;
    /// Reads the options of `spec` this architecture uses; refuses the others.
    fn from_spec(spec: &ModelSpec) -> std::result::Result<Self, FieldError>;
    /// Short human-readable description, e.g. `tfsepnet23 C=12 AdaResNorm`.
    fn describe(&self) -> String;
    fn num_classes(&self) -> i64;
    /// Checks the configuration describes a buildable network; the error names the field.
    fn validate(&self) -> std::result::Result<(), FieldError>;
    /// Builds the network; `self` has passed [`validate`](Self::validate).
    fn build(&self, vb: &Vb) -> Self::Net;
}

/// Declares the buildable architectures once: the [`ModelConfig`] enum (serde tag `arch`, the
/// module name), its dispatch to [`Architecture`], and [`BUILDABLE_ARCHS`].
macro_rules! architectures {
    ($($variant:ident => $module:ident),* $(,)?) => {
        /// An architecture and its hyper-parameters.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "arch", rename_all = "snake_case")]
        pub enum ModelConfig {
            $($variant($module::Config),)*
        }

        /// Architectures this version can build, count and train.
        pub const BUILDABLE_ARCHS: &[&str] = &[$(stringify!($module)),*];

        impl ModelConfig {
            /// The `arch` tag.
            pub fn arch(&self) -> &'static str {
                match self {
                    $(ModelConfig::$variant(_) => stringify!($module),)*
                }
            }

            pub fn describe(&self) -> String {
                match self {
                    $(ModelConfig::$variant(c) => c.describe(),)*
                }
            }

            pub fn num_classes(&self) -> i64 {
                match self {
                    $(ModelConfig::$variant(c) => c.num_classes(),)*
                }
            }

            /// Checks the configuration describes a buildable network; the error names the field.
            pub fn check(&self) -> std::result::Result<(), FieldError> {
                match self {
                    $(ModelConfig::$variant(c) => c.validate(),)*
                }
            }

            /// The typed configuration of a model entry; the error names the field.
            pub fn from_spec(spec: &ModelSpec) -> std::result::Result<Self, FieldError> {
                let cfg = match spec.arch.as_str() {
                    $(stringify!($module) => ModelConfig::$variant($module::Config::from_spec(spec)?),)*
                    other if KNOWN_ARCHS.contains(&other) => {
                        return Err((
                            "arch",
                            format!("{NOT_BUILDABLE} `{other}` in this version of ascrepro"),
                        ))
                    }
                    other => {
                        return Err((
                            "arch",
                            format!(
                                "unknown architecture `{other}` (known: {})",
                                KNOWN_ARCHS.join(", ")
                            ),
                        ))
                    }
                };
                cfg.check()?;
                Ok(cfg)
            }
        }

        fn build_unchecked(vb: &Vb, cfg: &ModelConfig) -> Box<dyn Net> {
            match cfg {
                $(ModelConfig::$variant(c) => Box::new(c.build(vb)),)*
            }
        }
    };
}

architectures! {
    Tfsepnet23 => tfsepnet23,
    Tfsepnet64 => tfsepnet64,
    Dsflexinet => dsflexinet,
    Bcresnet => bcresnet,
    Dcase25Baseline => dcase25_baseline,
    CpMobile => cp_mobile,
    SscpMobile => sscp_mobile,
}

/// Every architecture the reports describe. Those not in [`BUILDABLE_ARCHS`] may appear in a
/// recipe (their published rows are then shown as not counted) but cannot be built.
pub const KNOWN_ARCHS: &[&str] = &[
    "tfsepnet23",
    "tfsepnet64",
    "bcresnet",
    "dcase25_baseline",
    "cp_mobile",
    "sscp_mobile",
    "dsflexinet",
    "beats",
];

const NOT_BUILDABLE: &str = "no builder for architecture";

impl ModelConfig {
    /// [`check`](Self::check) as a crate error.
    pub fn validate(&self) -> Result<()> {
        self.check().map_err(|(field, msg)| {
            Error::msg(format!(
                "model `{}`: field `{field}`: {msg}",
                self.describe()
            ))
        })
    }
}

impl ModelSpec {
    /// Checks an entry without requiring its architecture to be buildable (a known but unbuilt
    /// architecture passes: published rows may name it).
    pub fn check(&self) -> std::result::Result<(), FieldError> {
        match ModelConfig::from_spec(self) {
            Err((_, msg)) if msg.starts_with(NOT_BUILDABLE) => Ok(()),
            other => other.map(|_| ()),
        }
    }
}

/// A classifier mapping a batch of features [B, 1, F, T] to logits [B, num_classes].
pub trait AscModel: std::fmt::Debug + Send {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor;
}

/// What every architecture implements beyond [`AscModel`]; `crate::compress` works through it.
pub trait Net: AscModel {
    /// The forward pass, with the mode and probe in `ctx`.
    fn forward_ctx(&self, xs: &Tensor, ctx: &Ctx) -> Tensor;
    /// Calls `f` on every conv unit (conv + optional BatchNorm + optional ReLU), in forward order.
    fn visit_convs(&mut self, f: &mut dyn FnMut(&mut ConvBn));
    /// Merges every re-parameterisable unit (parallel RepConv branches) into the single conv it
    /// is equivalent to in eval mode; returns how many were merged. Most architectures have none.
    fn reparameterize(&mut self) -> usize {
        0
    }
    /// Calls `f` with the name and the kept-channel set of every layer whose per-channel output
    /// depends on other channels (GRN, ResNorm): structured pruning's masked network restricts
    /// them to the kept channels (see `compress::prune`). Most architectures have none.
    fn visit_channel_norms(&mut self, _f: &mut dyn FnMut(&str, &mut Option<Tensor>)) {}
    /// The eval-mode network as an operator graph (BatchNorm folded), for the INT8 engine and
    /// post-training quantization. Architectures without a lowering say so.
    fn lower(&self) -> Result<graph::Graph> {
        Err(graph::unsupported())
    }
}

/// Every architecture's plain forward pass is its `forward_ctx` without a probe.
impl<T: Net> AscModel for T {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.forward_ctx(xs, &Ctx::new(train))
    }
}

/// Whether `cfg` lowers to an operator graph (and so runs on the INT8 engine); the error says
/// why not. Builds the network with constant weights on the CPU: lowering depends on its
/// structure alone.
pub fn lowers(cfg: &ModelConfig) -> Result<()> {
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    build_net(&Vb::constant(&vs.root()), cfg)?
        .lower()
        .map(|_| ())
}

/// Builds the network for `cfg` with variables under `vb`; fails if `cfg` is invalid.
pub fn build_net(vb: &Vb, cfg: &ModelConfig) -> Result<Box<dyn Net>> {
    cfg.validate()?;
    Ok(build_unchecked(vb, cfg))
}

impl ModelConfig {
    /// The same architecture with `n` output classes (e.g. pre-training on another label set).
    pub fn with_classes(&self, n: i64) -> Result<ModelConfig> {
        let mut v = serde_json::to_value(self).map_err(|e| Error::msg(e.to_string()))?;
        v["num_classes"] = n.into();
        let cfg: ModelConfig = serde_json::from_value(v).map_err(|e| Error::msg(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The classifier: every variable whose shape depends on the number of classes, found by
    /// building the network with one class more (so no architecture has to name its head).
    pub fn classifier_variables(&self) -> Result<Vec<String>> {
        let shapes = |cfg: &ModelConfig| -> Result<BTreeMap<String, Vec<i64>>> {
            let vs = nn::VarStore::new(Device::Cpu);
            tch::no_grad(|| build_net(&Vb::new(&vs.root()), cfg))?;
            Ok(vs
                .variables()
                .into_iter()
                .map(|(k, t)| (k, t.size()))
                .collect())
        };
        let (a, b) = (
            shapes(self)?,
            shapes(&self.with_classes(self.num_classes() + 1)?)?,
        );
        Ok(a.into_iter()
            .filter(|(k, shape)| b.get(k) != Some(shape))
            .map(|(k, _)| k)
            .collect())
    }
}

/// Builds the model with PyTorch's default initialisation (uses torch's global generator).
pub fn build(vs: &nn::Path, cfg: &ModelConfig) -> Result<Box<dyn AscModel>> {
    Ok(build_net(&Vb::new(vs), cfg)? as Box<dyn AscModel>)
}

fn dtype_of(kind: Kind) -> Option<(Dtype, usize)> {
    match kind {
        Kind::Float => Some((Dtype::F32, 4)),
        Kind::Double => Some((Dtype::F64, 8)),
        _ => None,
    }
}

fn kind_of(dtype: Dtype) -> Option<Kind> {
    match dtype {
        Dtype::F32 => Some(Kind::Float),
        Dtype::F64 => Some(Kind::Double),
        _ => None,
    }
}

/// Little-endian bytes of a float tensor (safetensors' layout).
fn tensor_bytes(t: &Tensor, elem: usize) -> Vec<u8> {
    let t = t.detach().to_device(Device::Cpu).contiguous();
    let n = t.numel();
    let mut buf = vec![0u8; n * elem];
    t.copy_data_u8(&mut buf, n);
    if cfg!(target_endian = "big") {
        for chunk in buf.chunks_mut(elem) {
            chunk.reverse();
        }
    }
    buf
}

/// safetensors file holding every variable of `vs` (trainable and BatchNorm running stats) plus
/// the model config as JSON in the header metadata (key "ascrepro.model"); deterministic bytes
/// (tensors sorted by name, fixed metadata); atomic write (temporary file, then rename).
pub fn save_weights(vs: &nn::VarStore, cfg: &ModelConfig, path: &Path) -> Result<()> {
    let vars: BTreeMap<String, Tensor> = vs.variables().into_iter().collect();
    let mut blobs = Vec::with_capacity(vars.len());
    for (name, t) in &vars {
        let (dtype, elem) = dtype_of(t.kind()).ok_or_else(|| {
            Error::msg(format!(
                "{}: cannot save variable `{name}` of type {:?} (only f32/f64)",
                path.display(),
                t.kind()
            ))
        })?;
        let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
        blobs.push((name.clone(), dtype, shape, tensor_bytes(t, elem)));
    }
    let views = blobs
        .iter()
        .map(|(name, dtype, shape, data)| {
            TensorView::new(*dtype, shape.clone(), data)
                .map(|v| (name.clone(), v))
                .map_err(|e| Error::msg(format!("{}: tensor `{name}`: {e}", path.display())))
        })
        .collect::<Result<Vec<_>>>()?;
    let json = serde_json::to_string(cfg).map_err(|e| Error::msg(e.to_string()))?;
    let meta = HashMap::from([(WEIGHTS_CONFIG_KEY.to_string(), json)]);
    let bytes = safetensors::serialize(views, Some(meta))
        .map_err(|e| Error::msg(format!("{}: {e}", path.display())))?;

    crate::fsio::write(path, &bytes, &[])
}

/// Reads a file written by [`save_weights`]: builds the model from the embedded config on
/// `device` and loads every tensor; errors name the file and the first missing, mis-shaped
/// or unexpected tensor.
pub fn load_weights(
    path: &Path,
    device: Device,
) -> Result<(nn::VarStore, ModelConfig, Box<dyn AscModel>)> {
    let (vs, cfg, net) = load_net(path, device)?;
    Ok((vs, cfg, net as Box<dyn AscModel>))
}

/// [`load_weights`] returning the [`Net`] interface.
pub fn load_net(path: &Path, device: Device) -> Result<(nn::VarStore, ModelConfig, Box<dyn Net>)> {
    let bytes = crate::fsio::read(path)?;
    checkpoint::safetensors_names::check_unique_names(&bytes).map_err(|e| {
        Error::file(
            path,
            format!("not a readable safetensors weights file ({e})"),
        )
    })?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| {
        Error::file(
            path,
            format!("not a readable safetensors weights file ({e})"),
        )
    })?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| Error::file(path, format!("unreadable safetensors header ({e})")))?;
    let json = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(WEIGHTS_CONFIG_KEY))
        .ok_or_else(|| {
            Error::file(
                path,
                format!(
                    "no `{WEIGHTS_CONFIG_KEY}` entry in the header metadata: not an ascrepro weights file \
                     (released checkpoints are imported, not loaded)"
                ),
            )
        })?;
    let cfg: ModelConfig = serde_json::from_str(json)
        .map_err(|e| Error::file(path, format!("model configuration in the header: {e}")))?;
    cfg.check().map_err(|(field, msg)| {
        Error::file(
            path,
            format!("model configuration in the header: field `{field}`: {msg}"),
        )
    })?;

    let vs = nn::VarStore::new(device);
    let net = build_net(&Vb::constant(&vs.root()), &cfg)?;
    let vars: BTreeMap<String, Tensor> = vs.variables().into_iter().collect();
    for (name, var) in &vars {
        let view = st.tensor(name).map_err(|_| {
            Error::file(
                path,
                format!(
                    "missing tensor `{name}` (shape {:?}) for model `{}`",
                    var.size(),
                    cfg.describe()
                ),
            )
        })?;
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        if shape != var.size() {
            return Err(Error::file(
                path,
                format!(
                    "tensor `{name}` has shape {shape:?}, model `{}` expects {:?}",
                    cfg.describe(),
                    var.size()
                ),
            ));
        }
        let kind = kind_of(view.dtype()).ok_or_else(|| {
            Error::file(
                path,
                format!("tensor `{name}` has unsupported type {:?}", view.dtype()),
            )
        })?;
        let mut data = view.data().to_vec();
        if cfg!(target_endian = "big") {
            let elem = dtype_of(kind).map(|(_, e)| e).unwrap_or(4);
            for chunk in data.chunks_mut(elem) {
                chunk.reverse();
            }
        }
        let t = Tensor::f_from_data_size(&data, &shape, kind)?;
        let mut var = var.shallow_clone();
        tch::no_grad(|| var.f_copy_(&t))?;
    }
    let mut names = st.names();
    names.sort_unstable();
    if let Some(extra) = names.into_iter().find(|n| !vars.contains_key(*n)) {
        return Err(Error::file(
            path,
            format!(
                "unexpected tensor `{extra}`: model `{}` has no such variable",
                cfg.describe()
            ),
        ));
    }
    Ok((vs, cfg, net))
}
