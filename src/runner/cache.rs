//! Content-addressed stage cache. A stage's directory appears only when complete: outputs are
//! written into a temp directory and renamed, so an interrupted run never leaves a half-written
//! artefact, and work in progress (epoch checkpoints) lives apart under `partial/`. Runs that
//! share a cache compute each stage once: the first holds a lock file under `locks/` while it
//! computes, the others wait for it and then find the stage complete.

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
        for sub in ["stages", "partial", "tmp", "locks"] {
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

    /// The stage's entry and whether this call computed it: from the cache, or else computed by
    /// `produce` under the stage's lock. `on_wait` is called once if another run (or thread)
    /// holds the lock; when it releases it, the stage is normally complete and read from the
    /// cache (computed here only if that run failed).
    pub fn get_or_compute(
        &self,
        kind: &str,
        hash: &str,
        on_wait: impl FnOnce(),
        produce: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<(Entry, bool)> {
        if let Some(e) = self.get(kind, hash) {
            return Ok((e, false));
        }
        let path = self
            .root
            .join("locks")
            .join(format!("{kind}-{}.lock", &hash[..24]));
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .at(&path)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                on_wait();
                lock.lock().at(&path)?;
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
        // Released when `lock` is dropped (also if `produce` fails or the process dies).
        if let Some(e) = self.get(kind, hash) {
            return Ok((e, false));
        }
        Ok((self.put(kind, hash, produce)?, true))
    }

    /// Runs `produce` in a fresh temp directory and publishes it as the stage's entry. If another
    /// run published the same stage meanwhile, its entry is kept and ours discarded (same hash,
    /// same content).
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
        if let Some(e) = self.get(kind, hash) {
            std::fs::remove_dir_all(&tmp).at(&tmp)?;
            return Ok(e);
        }
        if dir.exists() {
            // An incomplete leftover (no marker) from an older layout: replace it.
            std::fs::remove_dir_all(&dir).at(&dir)?;
        }
        if let Err(err) = std::fs::rename(&tmp, &dir) {
            // Published by another run between the check above and the rename.
            return match self.get(kind, hash) {
                Some(e) => {
                    std::fs::remove_dir_all(&tmp).at(&tmp)?;
                    Ok(e)
                }
                None => Err(Error::io(&dir, err)),
            };
        }
        let partial = self.partial_dir(kind, hash);
        if partial.exists() {
            std::fs::remove_dir_all(&partial).at(&partial)?;
        }
        Ok(Entry { dir })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    const HASH: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn concurrent_runs_compute_a_stage_once() {
        let root = tempfile::tempdir().unwrap();
        let (produced, waited) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let start = std::sync::Barrier::new(2);
        let results: Vec<(PathBuf, bool, String)> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..2)
                .map(|_| {
                    scope.spawn(|| {
                        // Each worker opens the cache itself, as a separate run would.
                        let cache = Cache::open(root.path()).unwrap();
                        start.wait();
                        let (entry, computed) = cache
                            .get_or_compute(
                                "train",
                                HASH,
                                || {
                                    waited.fetch_add(1, Ordering::SeqCst);
                                },
                                |dir| {
                                    let n = produced.fetch_add(1, Ordering::SeqCst);
                                    // Long enough for the other worker to reach the lock.
                                    std::thread::sleep(Duration::from_millis(300));
                                    std::fs::write(dir.join("out.txt"), format!("run {n}")).at(dir)
                                },
                            )
                            .unwrap();
                        let text = std::fs::read_to_string(entry.path("out.txt")).unwrap();
                        (entry.dir, computed, text)
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        assert_eq!(produced.load(Ordering::SeqCst), 1, "computed twice");
        assert_eq!(
            waited.load(Ordering::SeqCst),
            1,
            "the second run did not wait"
        );
        assert_eq!(results.iter().filter(|r| r.1).count(), 1);
        assert_eq!(results[0].0, results[1].0);
        assert!(results.iter().all(|r| r.2 == "run 0"), "{results:?}");
    }

    #[test]
    fn put_keeps_an_entry_published_meanwhile() {
        let root = tempfile::tempdir().unwrap();
        let cache = Cache::open(root.path()).unwrap();
        let first = cache
            .put("data", HASH, |dir| {
                std::fs::write(dir.join("a"), "first").at(dir)
            })
            .unwrap();
        // A second producer of the same stage (a run that did not take the lock) finishes later.
        let second = cache
            .put("data", HASH, |dir| {
                std::fs::write(dir.join("a"), "second").at(dir)
            })
            .unwrap();
        assert_eq!(first.dir, second.dir);
        assert_eq!(std::fs::read_to_string(second.path("a")).unwrap(), "first");
        let leftovers = std::fs::read_dir(root.path().join("tmp")).unwrap().count();
        assert_eq!(leftovers, 0, "temp directory left behind");
    }
}
