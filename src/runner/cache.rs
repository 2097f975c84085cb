//! Content-addressed stage cache. A stage's directory appears only when complete: outputs are
//! written into a temp directory and renamed, so an interrupted run never leaves a half-written
//! artefact, and work in progress (epoch checkpoints) lives apart under `partial/`. Runs that
//! share a cache compute each stage once: the first holds a lock file under `locks/` while it
//! computes, the others wait for it and then find the stage complete.
//!
//! Each entry carries `.manifest` (size and SHA-256 of every file, recursively) and then
//! `.complete` (the stage's identity), both written before the rename. An entry is used only
//! after every file has been checked against its manifest: a flipped bit, a truncated, missing
//! or extra file, or an entry without a manifest (older layouts) is moved aside, reported, and
//! recomputed, never read.

use crate::error::{Error, IoContext, Result};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

mod manifest;
use manifest::MANIFEST;
use manifest::{parse_manifest, seal, verify, MARKER};

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
    /// SHA-256 of every file by `/`-separated path under `dir`, the marker included.
    files: BTreeMap<String, String>,
}

impl Entry {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// SHA-256 of every top-level output file (and the marker), by name: what the run's record
    /// lists. Taken from the manifest the entry was verified against, so not read twice.
    pub fn output_hashes(&self) -> BTreeMap<String, String> {
        self.files
            .iter()
            .filter(|(name, _)| !name.contains('/'))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// What the cache holds for a stage.
pub enum Lookup {
    /// Complete, every file checked against its manifest.
    Hit(Entry),
    Missing,
    /// There, but not to be trusted (the reason): to be moved aside and recomputed.
    Damaged(String),
}

/// What [`Cache::get_or_compute`] tells its caller along the way.
pub enum Notice {
    /// Another run (or thread) holds the stage's lock.
    Waiting,
    /// The stage's entry was damaged (the reason) and has been discarded.
    Damaged(String),
}

impl Cache {
    pub fn open(root: &Path) -> Result<Cache> {
        for sub in ["stages", "partial", "tmp", "locks"] {
            let d = root.join(sub);
            std::fs::create_dir_all(&d).map_err(|e| {
                Error::msg(format!(
                    "cannot set up the cache at {}: {}: {e}; make it writable or pass --cache \
                     with another directory",
                    root.display(),
                    d.display()
                ))
            })?;
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

    /// The stage's entry if it looks complete (marker and manifest present), without reading
    /// its files: for listing. What a run reads comes from [`Cache::lookup`].
    pub fn get(&self, kind: &str, hash: &str) -> Option<Entry> {
        let dir = self.final_dir(kind, hash);
        if std::fs::read(dir.join(MARKER)).ok()? != hash.as_bytes() {
            return None;
        }
        let listed = parse_manifest(&std::fs::read_to_string(dir.join(MANIFEST)).ok()?)?;
        let mut files: BTreeMap<String, String> =
            listed.into_iter().map(|(k, (sha, _))| (k, sha)).collect();
        files.insert(MARKER.into(), hex::encode(Sha256::digest(hash.as_bytes())));
        Some(Entry { dir, files })
    }

    /// The stage's entry, verified file by file against its manifest.
    pub fn lookup(&self, kind: &str, hash: &str) -> Lookup {
        let dir = self.final_dir(kind, hash);
        if std::fs::symlink_metadata(&dir).is_err() {
            return Lookup::Missing;
        }
        match verify(&dir, hash) {
            Ok(files) => Lookup::Hit(Entry { dir, files }),
            Err(why) => Lookup::Damaged(why),
        }
    }

    /// Scratch space for a stage's resumable work (kept across interrupted runs).
    pub fn partial_dir(&self, kind: &str, hash: &str) -> PathBuf {
        self.root
            .join("partial")
            .join(format!("{kind}-{}", &hash[..24]))
    }

    /// Fails (naming the path and the OS error) when nothing can be written into the cache.
    pub fn check_writable(&self) -> Result<()> {
        let probe = self
            .root
            .join("tmp")
            .join(format!(".write-probe-{}", std::process::id()));
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&probe)
            .at(&probe)?;
        std::fs::remove_file(&probe).at(&probe)
    }

    /// Takes entry `dir` out of `stages/` with one rename (no reader sees it half removed),
    /// then deletes it.
    pub fn discard(&self, dir: &Path) -> Result<()> {
        let name = dir.file_name().unwrap_or_default().to_string_lossy();
        let aside = self
            .root
            .join("tmp")
            .join(format!("{name}-discarded-{}", std::process::id()));
        if aside.exists() {
            std::fs::remove_dir_all(&aside).at(&aside)?;
        }
        std::fs::rename(dir, &aside).at(dir)?;
        std::fs::remove_dir_all(&aside).at(&aside)
    }

    /// Temp directories of this stage left by killed runs; called with the stage's lock held,
    /// so none of them is in use.
    fn clear_stale(&self, kind: &str, hash: &str) -> Result<()> {
        let prefix = format!("{kind}-{}-", &hash[..24]);
        let tmp = self.root.join("tmp");
        for e in std::fs::read_dir(&tmp).at(&tmp)? {
            let p = e.at(&tmp)?.path();
            if p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
            {
                std::fs::remove_dir_all(&p).at(&p)?;
            }
        }
        Ok(())
    }

    /// The stage's lock file (opened, not locked) and its path.
    fn lock_file(&self, kind: &str, hash: &str) -> Result<(std::fs::File, PathBuf)> {
        let path = self
            .root
            .join("locks")
            .join(format!("{kind}-{}.lock", &hash[..24]));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .at(&path)?;
        Ok((file, path))
    }

    /// Verifies the stage's entry, if there is one; a damaged one is discarded (under the
    /// stage's lock, as [`Cache::get_or_compute`] does) and the reason returned.
    pub fn discard_if_damaged(&self, kind: &str, hash: &str) -> Result<Option<String>> {
        if !matches!(self.lookup(kind, hash), Lookup::Damaged(_)) {
            return Ok(None);
        }
        let (lock, path) = self.lock_file(kind, hash)?;
        // Released when `lock` is dropped.
        lock.lock().at(&path)?;
        match self.lookup(kind, hash) {
            Lookup::Damaged(why) => {
                self.discard(&self.final_dir(kind, hash))?;
                Ok(Some(why))
            }
            _ => Ok(None),
        }
    }

    /// The stage's entry and whether this call computed it: a verified entry that `keep`
    /// accepts, or else computed by `produce` under the stage's lock (a damaged or rejected
    /// entry is discarded first). `notify` hears of a wait for another run holding the lock and
    /// of a damaged entry; when the other run releases the lock the stage is normally complete
    /// and read from the cache (computed here only if that run failed).
    pub fn get_or_compute(
        &self,
        kind: &str,
        hash: &str,
        mut notify: impl FnMut(Notice),
        keep: impl Fn(&Path) -> Result<bool>,
        produce: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<(Entry, bool)> {
        let rejected = match self.lookup(kind, hash) {
            Lookup::Hit(e) => {
                if keep(&e.dir)? {
                    // Resume state of a run killed between publishing and cleaning up.
                    let _ = std::fs::remove_dir_all(self.partial_dir(kind, hash));
                    return Ok((e, false));
                }
                true
            }
            _ => false,
        };
        let (lock, path) = self.lock_file(kind, hash)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                notify(Notice::Waiting);
                lock.lock().at(&path)?;
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
        // Released when `lock` is dropped (also if `produce` fails or the process dies).
        self.clear_stale(kind, hash)?;
        match self.lookup(kind, hash) {
            // Asked once only: a stage's check may say why it rejects the entry.
            Lookup::Hit(e) if !rejected && keep(&e.dir)? => return Ok((e, false)),
            Lookup::Hit(e) => self.discard(&e.dir)?,
            Lookup::Damaged(why) => {
                self.discard(&self.final_dir(kind, hash))?;
                notify(Notice::Damaged(why));
            }
            Lookup::Missing => {}
        }
        Ok((self.put(kind, hash, produce)?, true))
    }

    /// Runs `produce` in a fresh temp directory, seals it (manifest, then marker) and publishes
    /// it as the stage's entry. If another run published the same stage meanwhile, its entry is
    /// kept and ours discarded (same hash, same content).
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
        let files = match produce(&tmp).and_then(|()| seal(&tmp, hash)) {
            Ok(files) => files,
            Err(e) => {
                // Frees what the attempt wrote (on a full disk above all); resumable work
                // lives under partial/ and is kept.
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(e);
            }
        };
        let dir = self.final_dir(kind, hash);
        match self.lookup(kind, hash) {
            Lookup::Hit(e) => {
                std::fs::remove_dir_all(&tmp).at(&tmp)?;
                return Ok(e);
            }
            Lookup::Damaged(_) => self.discard(&dir)?,
            Lookup::Missing => {}
        }
        if let Err(err) = std::fs::rename(&tmp, &dir) {
            // Published by another run between the check above and the rename.
            let _ = std::fs::remove_dir_all(&tmp);
            return match self.lookup(kind, hash) {
                Lookup::Hit(e) => Ok(e),
                _ => Err(Error::io(&dir, err)),
            };
        }
        // Best effort: a leftover is never read again once the entry is complete.
        let _ = std::fs::remove_dir_all(self.partial_dir(kind, hash));
        Ok(Entry { dir, files })
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
                                |n| {
                                    if matches!(n, Notice::Waiting) {
                                        waited.fetch_add(1, Ordering::SeqCst);
                                    }
                                },
                                |_| Ok(true),
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

    /// Each kind of damage, made to a fresh entry: the next read recomputes it and says why.
    #[test]
    fn damaged_entries_are_recomputed_never_used() {
        type Damage = fn(&Path);
        let damages: [(&str, Damage); 7] = [
            ("checksum mismatch", |d| {
                let p = d.join("sub/b.bin");
                let mut bytes = std::fs::read(&p).unwrap();
                bytes[3] ^= 0x04;
                std::fs::write(p, bytes).unwrap();
            }),
            ("truncated", |d| {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(d.join("a"))
                    .unwrap();
                f.set_len(2).unwrap();
            }),
            ("sub/b.bin is missing", |d| {
                std::fs::remove_file(d.join("sub/b.bin")).unwrap()
            }),
            ("unexpected file extra", |d| {
                std::fs::write(d.join("extra"), "x").unwrap()
            }),
            ("older version", |d| {
                std::fs::remove_file(d.join(MANIFEST)).unwrap()
            }),
            ("unreadable checksum manifest", |d| {
                std::fs::write(d.join(MANIFEST), "garbage").unwrap()
            }),
            ("marker", |d| {
                std::fs::write(d.join(MARKER), "other").unwrap()
            }),
        ];
        for (expected, damage) in damages {
            let root = tempfile::tempdir().unwrap();
            let cache = Cache::open(root.path()).unwrap();
            let produce = |dir: &Path| -> Result<()> {
                std::fs::write(dir.join("a"), "first file").at(dir)?;
                std::fs::create_dir(dir.join("sub")).at(dir)?;
                std::fs::write(dir.join("sub/b.bin"), [7u8; 64]).at(dir)
            };
            let (entry, fresh) = cache
                .get_or_compute("train", HASH, |_| {}, |_| Ok(true), produce)
                .unwrap();
            assert!(fresh);
            let good = entry.output_hashes();
            assert_eq!(
                good.keys().collect::<Vec<_>>(),
                [".complete", "a"],
                "the record lists top-level files"
            );
            assert!(matches!(cache.lookup("train", HASH), Lookup::Hit(_)));
            damage(&entry.dir);
            match cache.lookup("train", HASH) {
                Lookup::Damaged(why) => assert!(why.contains(expected), "{expected}: {why}"),
                _ => panic!("{expected}: damage not detected"),
            }
            let mut notes = Vec::new();
            let (again, fresh) = cache
                .get_or_compute(
                    "train",
                    HASH,
                    |n| {
                        if let Notice::Damaged(why) = n {
                            notes.push(why)
                        }
                    },
                    |_| Ok(true),
                    produce,
                )
                .unwrap();
            assert!(fresh, "{expected}: damaged entry used");
            assert_eq!(notes.len(), 1, "{expected}: no note");
            assert_eq!(again.output_hashes(), good);
            assert!(matches!(cache.lookup("train", HASH), Lookup::Hit(_)));
            let leftovers = std::fs::read_dir(root.path().join("tmp")).unwrap().count();
            assert_eq!(leftovers, 0, "{expected}: damaged entry left in tmp/");
        }
    }

    #[test]
    fn a_failed_or_killed_attempt_leaves_no_entry_and_no_temp_dir() {
        let root = tempfile::tempdir().unwrap();
        let cache = Cache::open(root.path()).unwrap();
        // A run killed while producing left its temp directory (another process id).
        let stale = root
            .path()
            .join("tmp")
            .join(format!("data-{}-999999", &HASH[..24]));
        std::fs::create_dir_all(&stale).unwrap();
        std::fs::write(stale.join("half"), "x").unwrap();
        let err = cache.get_or_compute(
            "data",
            HASH,
            |_| {},
            |_| Ok(true),
            |dir| {
                std::fs::write(dir.join("a"), "x").at(dir)?;
                Err(Error::msg("disk full"))
            },
        );
        assert!(err.is_err());
        assert!(matches!(cache.lookup("data", HASH), Lookup::Missing));
        let leftovers: Vec<_> = std::fs::read_dir(root.path().join("tmp"))
            .unwrap()
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}
