//! Content-addressed stage cache. A stage's directory appears only when complete: outputs are
//! written into a temp directory and renamed, so an interrupted run never leaves a half-written
//! artefact, and work in progress (epoch checkpoints) lives apart under `partial/`.

use crate::error::{Error, IoContext, Result};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Hash of everything a stage's outputs depend on, built from labelled parts.
#[derive(Clone)]
pub struct StageHash(Sha256);

impl StageHash {
    pub fn new(kind: &str) -> StageHash {
        let mut h = Sha256::new();
        h.update(b"ascrepro-stage\0");
        h.update(kind.as_bytes());
        StageHash(h)
    }

    pub fn part(mut self, label: &str, value: &str) -> StageHash {
        for s in [label, value] {
            self.0.update((s.len() as u64).to_le_bytes());
            self.0.update(s.as_bytes());
        }
        self
    }

    /// Adds a serialisable value as canonical JSON.
    pub fn json(self, label: &str, value: &impl Serialize) -> StageHash {
        let text = serde_json::to_string(value).expect("plain data serialises");
        self.part(label, &text)
    }

    pub fn finish(self) -> String {
        hex::encode(self.0.finalize())
    }
}

pub struct Cache {
    root: PathBuf,
}

/// A completed stage in the cache.
pub struct Entry {
    pub dir: PathBuf,
}

impl Entry {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// SHA-256 of every output file, by name.
    pub fn output_hashes(&self) -> Result<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        for e in std::fs::read_dir(&self.dir).at(&self.dir)? {
            let p = e.at(&self.dir)?.path();
            if p.is_file() {
                let bytes = std::fs::read(&p).at(&p)?;
                out.insert(
                    p.file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .to_string(),
                    hex::encode(Sha256::digest(&bytes)),
                );
            }
        }
        Ok(out)
    }
}

impl Cache {
    pub fn open(root: &Path) -> Result<Cache> {
        for sub in ["stages", "partial", "tmp"] {
            let d = root.join(sub);
            std::fs::create_dir_all(&d).at(&d)?;
        }
        Ok(Cache {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn final_dir(&self, kind: &str, hash: &str) -> PathBuf {
        self.root
            .join("stages")
            .join(format!("{kind}-{}", &hash[..24]))
    }

    pub fn get(&self, kind: &str, hash: &str) -> Option<Entry> {
        let dir = self.final_dir(kind, hash);
        dir.join(".complete").is_file().then_some(Entry { dir })
    }

    /// Scratch space for a stage's resumable work (kept across interrupted runs).
    pub fn partial_dir(&self, kind: &str, hash: &str) -> PathBuf {
        self.root
            .join("partial")
            .join(format!("{kind}-{}", &hash[..24]))
    }

    /// Runs `produce` in a fresh temp directory and publishes it as the stage's entry.
    pub fn put(
        &self,
        kind: &str,
        hash: &str,
        produce: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<Entry> {
        let tmp =
            self.root
                .join("tmp")
                .join(format!("{kind}-{}-{}", &hash[..24], std::process::id()));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).at(&tmp)?;
        }
        std::fs::create_dir_all(&tmp).at(&tmp)?;
        produce(&tmp)?;
        std::fs::write(tmp.join(".complete"), hash).at(&tmp)?;
        let dir = self.final_dir(kind, hash);
        if dir.exists() {
            // An incomplete leftover (no marker) from an older layout: replace it.
            std::fs::remove_dir_all(&dir).at(&dir)?;
        }
        std::fs::rename(&tmp, &dir).map_err(|e| Error::io(&dir, e))?;
        let partial = self.partial_dir(kind, hash);
        if partial.exists() {
            std::fs::remove_dir_all(&partial).at(&partial)?;
        }
        Ok(Entry { dir })
    }
}
