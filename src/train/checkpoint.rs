//! Epoch checkpoints of a training loop: the weights (`w.*`), the optimiser state, optionally
//! the best epoch's weights (`b.*`), and the loop's own metadata, written into a temp directory
//! and renamed, so a directory `epoch-N` is always complete and a killed run resumes from the
//! newest one; and the per-epoch random state that makes resuming exact.

use super::Adam;
use crate::error::{Error, IoContext, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{de::DeserializeOwned, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tch::{nn::VarStore, Tensor};

/// The random state of one epoch: a ChaCha stream for the loop's own draws (order, augmentations)
/// and libtorch's generator (dropout), both derived from (stage seed, epoch) only, so a resumed
/// run draws exactly what the uninterrupted one drew.
pub fn epoch_rng(seed: u64, epoch: usize) -> ChaCha8Rng {
    let epoch_seed = seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    tch::manual_seed((epoch_seed >> 1) as i64);
    ChaCha8Rng::seed_from_u64(epoch_seed)
}

fn checkpoint_dirs(dir: &Path) -> Result<Vec<(usize, PathBuf)>> {
    let mut out = Vec::new();
    if !dir.exists() {
        return Ok(out);
    }
    for e in std::fs::read_dir(dir).at(dir)? {
        let e = e.at(dir)?;
        let name = e.file_name().to_string_lossy().to_string();
        if let Some(n) = name
            .strip_prefix("epoch-")
            .and_then(|s| s.parse::<usize>().ok())
        {
            out.push((n, e.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// The newest complete checkpoint. Each one is written into a temp directory and renamed, so a
/// directory named `epoch-N` is always complete.
pub fn load<M: DeserializeOwned>(dir: &Path) -> Result<Option<(M, BTreeMap<String, Tensor>)>> {
    let Some((_, path)) = checkpoint_dirs(dir)?.pop() else {
        return Ok(None);
    };
    let meta_path = path.join("meta.json");
    let meta: M = serde_json::from_slice(&std::fs::read(&meta_path).at(&meta_path)?)
        .map_err(|e| Error::file(&meta_path, format!("corrupt checkpoint metadata: {e}")))?;
    let tensors = Tensor::read_safetensors(path.join("state.safetensors"))?
        .into_iter()
        .collect();
    Ok(Some((meta, tensors)))
}

pub fn save<M: Serialize>(
    dir: &Path,
    epochs_done: usize,
    vs: &VarStore,
    adam: &Adam,
    best: Option<&BTreeMap<String, Tensor>>,
    meta: &M,
) -> Result<()> {
    std::fs::create_dir_all(dir).at(dir)?;
    let tmp = dir.join(format!("tmp-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).at(&tmp)?;
    }
    std::fs::create_dir_all(&tmp).at(&tmp)?;
    let mut named: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .map(|(k, v)| (format!("w.{k}"), v))
        .collect();
    named.extend(adam.state());
    if let Some(best) = best {
        named.extend(
            best.iter()
                .map(|(k, t)| (format!("b.{k}"), t.shallow_clone())),
        );
    }
    named.sort_by(|a, b| a.0.cmp(&b.0));
    Tensor::write_safetensors(&named, tmp.join("state.safetensors"))?;
    let meta_path = tmp.join("meta.json");
    std::fs::write(
        &meta_path,
        serde_json::to_vec(meta).map_err(|e| Error::msg(e.to_string()))?,
    )
    .at(&meta_path)?;
    let final_dir = dir.join(format!("epoch-{:05}", epochs_done));
    std::fs::rename(&tmp, &final_dir).at(&final_dir)?;
    // Older checkpoints are superseded.
    for (n, p) in checkpoint_dirs(dir)? {
        if n < epochs_done {
            std::fs::remove_dir_all(&p).at(&p)?;
        }
    }
    Ok(())
}

/// Copies `tensors` named `prefix` + variable name into `vs`.
pub fn restore(vs: &VarStore, tensors: &BTreeMap<String, Tensor>, prefix: &str) -> Result<()> {
    for (name, mut var) in vs.variables() {
        let src = tensors
            .get(&format!("{prefix}{name}"))
            .ok_or_else(|| Error::msg(format!("checkpoint lacks variable `{name}`")))?;
        tch::no_grad(|| var.copy_(src));
    }
    Ok(())
}
