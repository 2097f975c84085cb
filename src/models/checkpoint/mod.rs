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

mod calls;
pub mod craft;
mod fit;
pub mod frontend;
mod heap;
pub mod pickle;
pub mod safetensors_names;
mod tensor;
mod value;
pub mod zip;

pub use fit::{fit, Fit, Mismatch, COMMON_PREFIXES, FRONTEND_MODULES};
pub use heap::{MAX_COPIES, MAX_DEPTH, MAX_NODES};
pub use pickle::{Dict, Object, PickleError, Pickled, Value};
pub use tensor::{DType, Storage, StoredTensor};

use super::blocks::Vb;
use super::{build_net, ModelConfig, Net};
use crate::error::{Error, Result};
use fit::COUNTER;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use tch::{nn, Device, Kind, Tensor};

/// Where a model's state dict may sit inside a checkpoint, in the order they are tried.
pub const STATE_DICT_KEYS: [&str; 3] = ["state_dict", "model_state_dict", "model"];

/// A `torch.save` archive, loaded.
pub struct Checkpoint {
    pub path: PathBuf,
    /// The saved object.
    pub root: Value,
    /// Emptied when the checkpoint is dropped (breaks reference cycles the pickle built).
    _containers: heap::Containers,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint")
            .field("path", &self.path)
            .field("root", &self.root)
            .finish()
    }
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
        // The length first: a hostile id may be a huge list, and ids are resolved often.
        let fields = match pid.seq_len() {
            Some(5) => pid.as_seq().unwrap_or_default(),
            _ => Vec::new(),
        };
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
    let loaded = root.map_err(|e| Error::file(path, format!("{pkl}: {e}")))?;
    Ok(Checkpoint {
        path: path.to_path_buf(),
        root: loaded.root,
        _containers: loaded.containers,
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
            match v.as_tensor() {
                Some(t) => tensors.push((name, t.clone())),
                None => skipped.push(name),
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
        .take(LISTED + 1)
        .map(|(k, _)| match k.as_str() {
            Some(s) => format!("`{s}`"),
            None => k.type_name(),
        })
        .collect();
    if keys.is_empty() {
        "none".into()
    } else {
        first_few(&keys)
    }
}

/// How many items a message lists before "and N more" (a hostile file may hold millions).
const LISTED: usize = 20;

fn first_few(items: &[String]) -> String {
    if items.len() <= LISTED {
        items.join(", ")
    } else {
        format!("{}, ...", items[..LISTED].join(", "))
    }
}

/// A checkpoint tensor as a CPU f32 tch tensor (bounded by [`StoredTensor::default_limit`]).
pub fn to_tch(t: &StoredTensor) -> std::result::Result<Tensor, String> {
    to_tch_within(t, t.default_limit())
}

/// [`to_tch`] of a tensor of at most `limit` elements.
pub fn to_tch_within(t: &StoredTensor, limit: usize) -> std::result::Result<Tensor, String> {
    let values = t.to_f32_within(limit)?;
    Tensor::f_from_slice(&values)
        .and_then(|x| x.f_reshape(t.shape.as_slice()))
        .map_err(|e| e.to_string())
}

/// A model built from a checkpoint.
pub struct Imported {
    pub vs: nn::VarStore,
    pub net: Box<dyn Net>,
    pub config: ModelConfig,
    /// Prefix stripped from the checkpoint's names (e.g. `model.`).
    pub prefix: String,
    /// Tensors of the file that are not part of the model and that the front end reads (e.g.
    /// Zhang et al.'s `mel.*`), as CPU f32 tensors. Others (a teacher's weights) are only
    /// named in the notes, never read.
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
        // `fit` checked the shape equals the variable's, so its size bounds the tensor's.
        let limit = vars[var].numel();
        let src = to_tch_within(t, limit)
            .map_err(|e| Error::file(path, format!("tensor `{name}`: {e}")))?;
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
            first_few(&sd.skipped)
        ));
    }
    // Only the tensors the front end reads are materialised, and none larger than its storage
    // or the model's largest variable: a few bytes broadcast to terabytes are refused here.
    let largest = model.iter().map(|(_, s)| s.iter().product::<i64>()).max();
    let largest = usize::try_from(largest.unwrap_or(0)).unwrap_or(0);
    let mut set_aside = Vec::new();
    let mut listed = Vec::new();
    let mut unreadable = Vec::new();
    for &i in &fit.set_aside {
        let (name, t) = &sd.tensors[i];
        listed.push(format!("`{name}` {:?}", t.shape));
        if !frontend::uses(name, &t.shape) {
            continue;
        }
        let limit = t.storage.elements(&t.dtype).max(largest);
        if t.numel().is_none_or(|n| n > limit) {
            return Err(Error::file(
                path,
                format!(
                    "tensor `{name}` (size {:?}, stride {:?}) claims more elements than its \
                     storage `{}` holds ({}) or the model's largest variable ({largest}): refused",
                    t.shape,
                    t.stride,
                    t.storage.key,
                    t.storage.elements(&t.dtype)
                ),
            ));
        }
        match to_tch_within(t, limit) {
            Ok(x) => set_aside.push((name.clone(), x)),
            Err(e) => unreadable.push(format!("`{name}` ({e})")),
        }
    }
    if !listed.is_empty() {
        notes.push(format!(
            "set aside {} tensors that are not part of the model: {}",
            listed.len(),
            first_few(&listed)
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
