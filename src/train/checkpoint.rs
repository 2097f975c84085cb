//! Epoch checkpoints of a training loop: the weights (`w.*`), the optimiser state, optionally
//! the best epoch's weights (`b.*`), and the loop's own metadata, written into a temp directory
//! with their checksums (`sums`, last) and renamed, so a directory `epoch-N` is complete when
//! it appears and a killed run resumes from the newest one. The newest two are kept: one found
//! damaged (checksum, or unreadable) is discarded with a note and training resumes from the one
//! before, or from scratch. And the per-epoch random state that makes resuming exact.

use super::Adam;
use crate::error::{Error, IoContext, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{de::DeserializeOwned, Serialize};
use sha2::{Digest, Sha256};
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

/// Checksums of a checkpoint's files, written last.
const SUMS: &str = "sums";
const FILES: [&str; 2] = ["state.safetensors", "meta.json"];

fn sha256_of(path: &Path) -> Result<String> {
    let mut h = Sha256::new();
    let mut f = std::fs::File::open(path).at(path)?;
    std::io::copy(&mut f, &mut h).at(path)?;
    Ok(hex::encode(h.finalize()))
}

/// One checkpoint, checked against its sums: its metadata and tensors, or why not.
fn read_checked<M: DeserializeOwned>(
    path: &Path,
) -> std::result::Result<(M, BTreeMap<String, Tensor>), String> {
    let sums = std::fs::read_to_string(path.join(SUMS)).map_err(|e| format!("no sums: {e}"))?;
    let listed: BTreeMap<&str, &str> = sums
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(sha, name)| (name, sha)))
        .collect();
    for name in FILES {
        let want = listed.get(name).ok_or(format!("{name} not in its sums"))?;
        let got = sha256_of(&path.join(name)).map_err(|e| e.to_string())?;
        if got != *want {
            return Err(format!("{name}: checksum mismatch"));
        }
    }
    let meta = serde_json::from_slice(&std::fs::read(path.join("meta.json")).unwrap_or_default())
        .map_err(|e| format!("metadata: {e}"))?;
    let tensors = Tensor::read_safetensors(path.join("state.safetensors"))
        .map_err(|e| e.to_string())?
        .into_iter()
        .collect();
    Ok((meta, tensors))
}

/// The newest intact checkpoint. Damaged ones (and temp directories of killed runs) are
/// removed; the loop is the only writer, as it runs under its stage's lock.
pub fn load<M: DeserializeOwned>(dir: &Path) -> Result<Option<(M, BTreeMap<String, Tensor>)>> {
    if !dir.exists() {
        return Ok(None);
    }
    for e in std::fs::read_dir(dir).at(dir)? {
        let p = e.at(dir)?.path();
        if p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("tmp-"))
        {
            std::fs::remove_dir_all(&p).at(&p)?;
        }
    }
    for (_, path) in checkpoint_dirs(dir)?.into_iter().rev() {
        match read_checked(&path) {
            Ok(found) => return Ok(Some(found)),
            Err(why) => {
                // Shown even when quiet: the run redoes the epochs this checkpoint held.
                eprintln!(
                    "  cache     damaged epoch checkpoint {} discarded ({why}); resuming from \
                     the one before it, or from the start",
                    path.display()
                );
                std::fs::remove_dir_all(&path).at(&path)?;
            }
        }
    }
    Ok(None)
}

/// The checkpoint's files in `tmp`, their sums last.
fn write_files<M: Serialize>(
    tmp: &Path,
    vs: &VarStore,
    adam: &Adam,
    best: Option<&BTreeMap<String, Tensor>>,
    meta: &M,
) -> Result<()> {
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
    let mut sums = String::new();
    for name in FILES {
        sums += &format!("{} {name}\n", sha256_of(&tmp.join(name))?);
    }
    let sums_path = tmp.join(SUMS);
    std::fs::write(&sums_path, sums).at(&sums_path)
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
    if let Err(e) = write_files(&tmp, vs, adam, best, meta) {
        // Frees what was written (a full disk above all); the previous checkpoint stands.
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let final_dir = dir.join(format!("epoch-{:05}", epochs_done));
    std::fs::rename(&tmp, &final_dir).at(&final_dir)?;
    // Older checkpoints are superseded; the previous one stays in case this one is damaged.
    for (n, p) in checkpoint_dirs(dir)? {
        if n + 1 < epochs_done {
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
