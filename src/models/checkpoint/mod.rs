//! Released PyTorch checkpoints, read without Python: `torch.save` archives (PyTorch Lightning
//! `.ckpt`, plain `.pth`) and their import into our models.
//!
//! A `torch.save` file is a ZIP archive ([`zip`]) holding `<archive>/data.pkl`, a pickle of the
//! saved object whose tensors refer to storages `<archive>/data/<key>` by persistent id, plus
//! `<archive>/byteorder` and `<archive>/version`. [`read`] runs the pickle ([`pickle`]) and
//! turns the tensor rebuilds into [`StoredTensor`]s; everything else (epoch, optimizer state,
//! Lightning's callbacks and hyper-parameters) stays inert data.
//!
//! [`import`] maps a state dict onto a model: our VarStore names equal the released names up to
//! a prefix (`model.`, `backbone.`, ...), which is found from the names themselves; BatchNorm's
//! `num_batches_tracked` counters are dropped; tensors outside the model (Zhang et al.'s
//! `mel.*` front-end tensors) are set aside and returned; any missing, unexpected or mis-shaped
//! tensor refuses the file with a list of the first mismatches.

pub mod frontend;
pub mod pickle;
mod tensor;
pub mod zip;

pub use pickle::{Object, PickleError, Value};
pub use tensor::{DType, Storage, StoredTensor};

use super::blocks::Vb;
use super::{build_net, ModelConfig, Net};
use crate::error::{Error, Result};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use tch::{nn, Device, Kind, Tensor};

/// Where a model's state dict may sit inside a checkpoint, in the order they are tried.
pub const STATE_DICT_KEYS: [&str; 3] = ["state_dict", "model_state_dict", "model"];

/// Name prefixes tried first when mapping a state dict onto a model.
pub const COMMON_PREFIXES: [&str; 5] = ["", "model.", "backbone.", "net.", "module."];

/// Top-level modules of a bare state dict that are a front end saved with the model, not part
/// of it: set aside rather than refused.
pub const FRONTEND_MODULES: [&str; 2] = ["mel", "frontend"];

/// How many mismatches of each kind an error lists.
const LIST_AT_MOST: usize = 5;

/// A `torch.save` archive, loaded.
#[derive(Debug)]
pub struct Checkpoint {
    pub path: PathBuf,
    /// The saved object.
    pub root: Value,
}

/// The model tensors of a checkpoint, in the file's order.
#[derive(Debug)]
pub struct StateDict {
    /// Where it was found: `state_dict`, `model_state_dict`, `model` or `the top level`.
    pub location: String,
    pub tensors: Vec<(String, Rc<StoredTensor>)>,
    /// Keys of entries that are not tensors (ignored).
    pub skipped: Vec<String>,
}

/// Reads a `torch.save` archive; errors name the file and what is wrong with it.
pub fn read(path: &Path) -> Result<Checkpoint> {
    let bytes = crate::fsio::read(path)?;
    read_bytes(path, bytes)
}

/// [`read`] of bytes already in memory; `path` names them in errors.
pub fn read_bytes(path: &Path, bytes: Vec<u8>) -> Result<Checkpoint> {
    if !zip::looks_like_zip(&bytes) {
        return Err(Error::file(path, not_a_zip(&bytes)));
    }
    let archive = zip::Archive::parse(bytes).map_err(|e| Error::file(path, e))?;
    let pkl = archive
        .names()
        .iter()
        .find(|n| n.ends_with("/data.pkl") && n.matches('/').count() == 1)
        .cloned()
        .ok_or_else(|| {
            Error::file(
                path,
                "a zip archive without `<archive>/data.pkl`: not a torch.save checkpoint",
            )
        })?;
    // TorchScript archives (torch.jit.save) also hold a data.pkl, of the scripted module.
    let dir = pkl.trim_end_matches("data.pkl");
    if archive
        .names()
        .iter()
        .any(|n| n == &format!("{dir}constants.pkl") || n.starts_with(&format!("{dir}code/")))
    {
        return Err(Error::file(
            path,
            "a TorchScript archive (torch.jit.save), not a torch.save checkpoint; save the state \
             dict with torch.save(model.state_dict(), path)",
        ));
    }
    let prefix = pkl.trim_end_matches("data.pkl").to_string();
    let entry = |name: &str| archive.read(name).map_err(|e| Error::file(path, e));
    let big_endian = match entry(&format!("{prefix}byteorder"))? {
        None | Some(b"little") => false,
        Some(b"big") => true,
        Some(other) => {
            return Err(Error::file(
                path,
                format!(
                    "unknown byte order `{}` in {prefix}byteorder",
                    String::from_utf8_lossy(other)
                ),
            ))
        }
    };
    let program = entry(&pkl)?.unwrap_or_default();

    let mut storages: HashMap<String, Rc<Storage>> = HashMap::new();
    let mut failure: Option<Error> = None;
    let mut persistent_load = |pid: &Value| -> std::result::Result<Value, String> {
        let fields = pid.as_seq().unwrap_or_default();
        let [kind, class, key, _location, numel] = fields.as_slice() else {
            return Err(format!("unknown persistent id (a {})", pid.type_name()));
        };
        if kind.as_str() != Some("storage") {
            return Err(format!("unknown persistent id kind {kind:?}"));
        }
        let key = key
            .as_str()
            .ok_or("storage key is not a string")?
            .to_string();
        if let Some(s) = storages.get(&key) {
            return Ok(Value::Storage(s.clone()));
        }
        let dtype = match class {
            Value::Global(g) if g.1 == "UntypedStorage" => DType::U8,
            Value::Global(g) => DType::from_storage_class(&g.1),
            other => return Err(format!("storage type is a {}", other.type_name())),
        };
        let numel = numel
            .as_int()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or("storage size is not a non-negative integer")?;
        let name = format!("{prefix}data/{key}");
        let bytes = match archive.read(&name) {
            Ok(Some(b)) => b.to_vec(),
            Ok(None) => return Err(format!("storage `{key}` has no entry `{name}`")),
            Err(e) => {
                failure = Some(Error::file(path, e.clone()));
                return Err(e);
            }
        };
        if let Some(size) = dtype.size() {
            if numel
                .checked_mul(size)
                .is_none_or(|need| bytes.len() < need)
            {
                return Err(format!(
                    "storage `{key}` holds {} bytes, fewer than {numel} {} elements",
                    bytes.len(),
                    dtype.name()
                ));
            }
        }
        let s = Rc::new(Storage {
            key: key.clone(),
            dtype,
            numel,
            bytes,
            big_endian,
        });
        storages.insert(key, s.clone());
        Ok(Value::Storage(s))
    };
    let root = pickle::load(program, &mut persistent_load);
    if let Some(e) = failure {
        return Err(e);
    }
    let root = root.map_err(|e| Error::file(path, format!("{pkl}: {e}")))?;
    Ok(Checkpoint {
        path: path.to_path_buf(),
        root,
    })
}

/// Why bytes that do not start like a ZIP archive are not a checkpoint we read.
fn not_a_zip(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "empty file: not a torch.save checkpoint".into();
    }
    if bytes.len() >= 2 && bytes[0] == 0x80 && bytes[1] <= 5 {
        return "legacy (non-zip) torch.save format, written by PyTorch < 1.6 or with \
                _use_new_zipfile_serialization=False, is not supported; re-save it with a current \
                PyTorch (torch.save(torch.load(path), new_path))"
            .into();
    }
    let header = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes);
    if header.is_some_and(|n| n > 0 && n < bytes.len() as u64) && bytes.get(8) == Some(&b'{') {
        return "not a zip archive: this looks like a safetensors file (ascrepro's own weights \
                are loaded by their .safetensors extension)"
            .into();
    }
    "not a zip archive: torch.save checkpoints (.ckpt, .pth, .pt) are zip archives since PyTorch 1.6"
        .into()
}

impl Checkpoint {
    /// The string keys of the saved dict (empty when it is not a dict).
    pub fn top_level_keys(&self) -> Vec<String> {
        self.root
            .as_map()
            .unwrap_or_default()
            .iter()
            .filter_map(|(k, _)| k.as_str().map(str::to_string))
            .collect()
    }

    /// The model's state dict: under `state_dict`, `model_state_dict` or `model`, or the saved
    /// dict itself when its values are tensors.
    pub fn state_dict(&self) -> Result<StateDict> {
        let has_tensors = |v: &Value| {
            v.as_map()
                .is_some_and(|m| m.iter().any(|(_, t)| t.as_tensor().is_some()))
        };
        let Some(top) = self.root.as_map() else {
            return Err(Error::file(
                &self.path,
                format!(
                    "the checkpoint holds a pickled `{}`, not a dict of tensors (torch.save(model) \
                     pickles the Python class itself); save model.state_dict() instead",
                    self.root.type_name()
                ),
            ));
        };
        let (location, dict) = STATE_DICT_KEYS
            .iter()
            .find_map(|k| {
                self.root
                    .get(k)
                    .filter(&has_tensors)
                    .map(|v| (k.to_string(), v))
            })
            .or_else(|| has_tensors(&self.root).then(|| ("the top level".to_string(), self.root.clone())))
            .ok_or_else(|| {
                Error::file(
                    &self.path,
                    format!(
                        "no state dict found: no tensors under {} nor at the top level (top-level keys: {})",
                        STATE_DICT_KEYS.map(|k| format!("`{k}`")).join(", "),
                        describe_keys(&top)
                    ),
                )
            })?;
        let mut tensors = Vec::new();
        let mut skipped = Vec::new();
        for (k, v) in dict.as_map().unwrap_or_default() {
            let name = match &k {
                Value::Str(s) => s.to_string(),
                other => format!("{other:?}"),
            };
            match v {
                Value::Tensor(t) => tensors.push((name, t)),
                _ => skipped.push(name),
            }
        }
        Ok(StateDict {
            location,
            tensors,
            skipped,
        })
    }
}

fn describe_keys(entries: &[(Value, Value)]) -> String {
    let keys: Vec<String> = entries
        .iter()
        .map(|(k, _)| match k.as_str() {
            Some(s) => format!("`{s}`"),
            None => k.type_name(),
        })
        .collect();
    if keys.is_empty() {
        "none".into()
    } else {
        keys.join(", ")
    }
}

/// A checkpoint tensor as a CPU f32 tch tensor.
pub fn to_tch(t: &StoredTensor) -> std::result::Result<Tensor, String> {
    let values = t.to_f32()?;
    Tensor::f_from_slice(&values)
        .and_then(|x| x.f_reshape(t.shape.as_slice()))
        .map_err(|e| e.to_string())
}

/// How a state dict maps onto a model's variables.
#[derive(Debug, Clone, PartialEq)]
pub struct Fit {
    /// Prefix stripped from the checkpoint names.
    pub prefix: String,
    /// (model variable, index into the checkpoint's tensors).
    pub assignments: Vec<(String, usize)>,
    /// Checkpoint tensors outside the model (indices).
    pub set_aside: Vec<usize>,
    /// `num_batches_tracked` counters dropped.
    pub dropped_counters: usize,
}

/// Why a state dict does not fit a model.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mismatch {
    pub prefix: String,
    /// Model variables without a tensor: (name, model shape).
    pub missing: Vec<(String, Vec<i64>)>,
    /// Checkpoint tensors (full names) the model has no variable for: (name, shape).
    pub unexpected: Vec<(String, Vec<i64>)>,
    /// (model name, checkpoint shape, model shape).
    pub wrong_shape: Vec<(String, Vec<i64>, Vec<i64>)>,
    /// (model name, checkpoint type) for non-float tensors.
    pub wrong_type: Vec<(String, String)>,
}

impl Mismatch {
    fn is_empty(&self) -> bool {
        self.missing.is_empty()
            && self.unexpected.is_empty()
            && self.wrong_shape.is_empty()
            && self.wrong_type.is_empty()
    }

    /// One paragraph: counts, then the first few of each kind.
    pub fn describe(&self) -> String {
        let mut counts = Vec::new();
        let mut first = Vec::new();
        if !self.missing.is_empty() {
            counts.push(format!("{} missing", self.missing.len()));
            first.extend(
                self.missing
                    .iter()
                    .take(LIST_AT_MOST)
                    .map(|(n, s)| format!("missing `{n}` {s:?}")),
            );
        }
        if !self.unexpected.is_empty() {
            counts.push(format!("{} unexpected", self.unexpected.len()));
            first.extend(
                self.unexpected
                    .iter()
                    .take(LIST_AT_MOST)
                    .map(|(n, s)| format!("unexpected `{n}` {s:?}")),
            );
        }
        if !self.wrong_shape.is_empty() {
            counts.push(format!("{} of the wrong shape", self.wrong_shape.len()));
            first.extend(self.wrong_shape.iter().take(LIST_AT_MOST).map(|(n, c, m)| {
                format!("`{n}` has shape {c:?} in the checkpoint, {m:?} in the model")
            }));
        }
        if !self.wrong_type.is_empty() {
            counts.push(format!("{} not floating point", self.wrong_type.len()));
            first.extend(
                self.wrong_type
                    .iter()
                    .take(LIST_AT_MOST)
                    .map(|(n, t)| format!("`{n}` is {t} in the checkpoint")),
            );
        }
        format!(
            "{}; first mismatches: {}",
            counts.join(", "),
            first.join("; ")
        )
    }
}

const COUNTER: &str = "num_batches_tracked";

/// Maps checkpoint tensors `(name, shape, dtype)` onto model variables `(name, shape)`.
///
/// The prefix is the one under which the most model variables are present: the common ones
/// ([`COMMON_PREFIXES`]) and every prefix that turns some checkpoint name into a model name are
/// tried. Under that prefix, a name the model lacks is unexpected, except (prefix `""`) a front
/// end saved alongside (first component in [`FRONTEND_MODULES`]); names outside a non-empty
/// prefix belong to other modules (a front end, a teacher) and are set aside.
pub fn fit(
    model: &[(String, Vec<i64>)],
    ckpt: &[(String, Vec<i64>, DType)],
) -> std::result::Result<Fit, Mismatch> {
    let names: Vec<&str> = ckpt
        .iter()
        .map(|(n, _, _)| n.as_str())
        .filter(|n| !is_counter(n))
        .collect();
    let present: BTreeSet<&str> = names.iter().copied().collect();

    let mut candidates: Vec<String> = COMMON_PREFIXES.iter().map(|p| p.to_string()).collect();
    for (var, _) in model {
        for n in &names {
            if let Some(p) = n.strip_suffix(var.as_str()) {
                if (p.is_empty() || p.ends_with('.')) && !candidates.iter().any(|c| c == p) {
                    candidates.push(p.to_string());
                }
            }
        }
    }
    let score = |p: &str| {
        model
            .iter()
            .filter(|(v, _)| present.contains(format!("{p}{v}").as_str()))
            .count()
    };
    // Most variables present; ties go to the earlier candidate (common prefixes first).
    let mut prefix = String::new();
    let mut best = 0;
    for c in &candidates {
        let s = score(c);
        if s > best {
            best = s;
            prefix = c.clone();
        }
    }

    let index: HashMap<&str, usize> = ckpt
        .iter()
        .enumerate()
        .map(|(i, (n, _, _))| (n.as_str(), i))
        .collect();
    let mut m = Mismatch {
        prefix: prefix.clone(),
        ..Default::default()
    };
    let mut assignments = Vec::new();
    // Mismatched tensors are listed in the checkpoint's order (usually the forward order).
    let mut wrong_shape = Vec::new();
    let mut wrong_type = Vec::new();
    let model_names: BTreeSet<&str> = model.iter().map(|(n, _)| n.as_str()).collect();
    for (var, shape) in model {
        match index.get(format!("{prefix}{var}").as_str()) {
            None => m.missing.push((var.clone(), shape.clone())),
            Some(&i) => {
                let (_, cshape, dtype) = &ckpt[i];
                if cshape != shape {
                    wrong_shape.push((i, (var.clone(), cshape.clone(), shape.clone())));
                } else if !dtype.is_float() {
                    wrong_type.push((i, (var.clone(), dtype.name().to_string())));
                } else {
                    assignments.push((var.clone(), i));
                }
            }
        }
    }
    wrong_shape.sort_by_key(|(i, _)| *i);
    wrong_type.sort_by_key(|(i, _)| *i);
    m.wrong_shape = wrong_shape.into_iter().map(|(_, w)| w).collect();
    m.wrong_type = wrong_type.into_iter().map(|(_, w)| w).collect();
    let mut set_aside = Vec::new();
    let mut dropped_counters = 0;
    for (i, (name, shape, _)) in ckpt.iter().enumerate() {
        if is_counter(name) {
            dropped_counters += 1;
            continue;
        }
        match name.strip_prefix(prefix.as_str()) {
            None => set_aside.push(i),
            Some(local) if model_names.contains(local) => {}
            Some(local) => {
                let root = local.split('.').next().unwrap_or("");
                let frontend = FRONTEND_MODULES.contains(&root)
                    && !model_names
                        .iter()
                        .any(|n| n.starts_with(&format!("{root}.")));
                if prefix.is_empty() && frontend {
                    set_aside.push(i);
                } else {
                    m.unexpected.push((name.clone(), shape.clone()));
                }
            }
        }
    }
    if m.is_empty() {
        Ok(Fit {
            prefix,
            assignments,
            set_aside,
            dropped_counters,
        })
    } else {
        Err(m)
    }
}

fn is_counter(name: &str) -> bool {
    name == COUNTER || name.ends_with(".num_batches_tracked")
}

/// A model built from a checkpoint.
pub struct Imported {
    pub vs: nn::VarStore,
    pub net: Box<dyn Net>,
    pub config: ModelConfig,
    /// Prefix stripped from the checkpoint's names (e.g. `model.`).
    pub prefix: String,
    /// Tensors of the file that are not part of the model (e.g. a front end's `mel.*`), as
    /// CPU f32 tensors.
    pub set_aside: Vec<(String, Tensor)>,
    /// What the import did that the user may want to know, one sentence each.
    pub notes: Vec<String>,
}

impl std::fmt::Debug for Imported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Imported")
            .field("config", &self.config)
            .field("prefix", &self.prefix)
            .field(
                "set_aside",
                &self.set_aside.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("notes", &self.notes)
            .finish_non_exhaustive()
    }
}

/// Builds the model `cfg` on `device` and loads the checkpoint at `path` into it (BatchNorm
/// running statistics included, so it is ready for eval). Refuses a file whose names or shapes
/// do not fit the model, listing the first mismatches.
pub fn import(path: &Path, cfg: &ModelConfig, device: Device) -> Result<Imported> {
    let ckpt = read(path)?;
    import_checkpoint(&ckpt, cfg, device)
}

/// [`import`] of a checkpoint already read.
pub fn import_checkpoint(ckpt: &Checkpoint, cfg: &ModelConfig, device: Device) -> Result<Imported> {
    let path = ckpt.path.as_path();
    let sd = ckpt.state_dict()?;
    let vs = nn::VarStore::new(device);
    let net = build_net(&Vb::constant(&vs.root()), cfg)?;
    let vars: BTreeMap<String, Tensor> = vs.variables().into_iter().collect();
    let model: Vec<(String, Vec<i64>)> = vars.iter().map(|(n, t)| (n.clone(), t.size())).collect();
    let listing: Vec<(String, Vec<i64>, DType)> = sd
        .tensors
        .iter()
        .map(|(n, t)| (n.clone(), t.shape.clone(), t.dtype.clone()))
        .collect();
    let fit = fit(&model, &listing).map_err(|m| {
        let prefix = if m.prefix.is_empty() {
            String::new()
        } else {
            format!(", names read under prefix `{}`", m.prefix)
        };
        Error::file(
            path,
            format!(
                "checkpoint does not fit model `{}` (state dict at {}{prefix}): {}. Check the \
                 architecture and its options (width, norm, ...)",
                cfg.describe(),
                where_(&sd.location),
                m.describe()
            ),
        )
    })?;

    let mut converted: BTreeMap<String, usize> = BTreeMap::new();
    for (var, i) in &fit.assignments {
        let (name, t) = &sd.tensors[*i];
        let src = to_tch(t).map_err(|e| Error::file(path, format!("tensor `{name}`: {e}")))?;
        if t.dtype != DType::F32 {
            *converted.entry(t.dtype.name().to_string()).or_default() += 1;
        }
        let mut dst = vars[var].shallow_clone();
        tch::no_grad(|| dst.f_copy_(&src.to_kind(dst.kind())))?;
    }

    let mut notes = vec![format!(
        "read the state dict at {} ({} tensors{})",
        where_(&sd.location),
        sd.tensors.len(),
        if fit.prefix.is_empty() {
            String::new()
        } else {
            format!(", prefix `{}` stripped", fit.prefix)
        }
    )];
    if fit.dropped_counters > 0 {
        notes.push(format!(
            "dropped {} BatchNorm `{COUNTER}` counters (not used in eval)",
            fit.dropped_counters
        ));
    }
    for (dtype, n) in &converted {
        notes.push(format!("converted {n} {dtype} tensors to float32"));
    }
    if !sd.skipped.is_empty() {
        notes.push(format!(
            "ignored {} non-tensor entries of the state dict: {}",
            sd.skipped.len(),
            sd.skipped.join(", ")
        ));
    }
    let mut set_aside = Vec::new();
    let mut unreadable = Vec::new();
    for &i in &fit.set_aside {
        let (name, t) = &sd.tensors[i];
        match to_tch(t) {
            Ok(x) => set_aside.push((name.clone(), x)),
            Err(e) => unreadable.push(format!("`{name}` ({e})")),
        }
    }
    if !set_aside.is_empty() {
        let listed: Vec<String> = set_aside
            .iter()
            .map(|(n, t)| format!("`{n}` {:?}", t.size()))
            .collect();
        notes.push(format!(
            "set aside {} tensors that are not part of the model: {}",
            set_aside.len(),
            listed.join(", ")
        ));
    }
    if !unreadable.is_empty() {
        notes.push(format!(
            "skipped unreadable tensors outside the model: {}",
            unreadable.join(", ")
        ));
    }
    Ok(Imported {
        vs,
        net,
        config: cfg.clone(),
        prefix: fit.prefix,
        set_aside,
        notes,
    })
}

fn where_(location: &str) -> String {
    if location == "the top level" {
        location.to_string()
    } else {
        format!("`{location}`")
    }
}

/// A CPU f32 tensor's values (for comparing set-aside tensors).
pub fn tensor_values(t: &Tensor) -> Vec<f32> {
    let t = t
        .to_device(Device::Cpu)
        .to_kind(Kind::Float)
        .contiguous()
        .view(-1);
    Vec::<f32>::try_from(&t).unwrap_or_default()
}
