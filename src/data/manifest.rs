//! Data manifests (`data-manifests/*.yaml`): a dataset's name, its layout, and every file's
//! relative path, size and SHA-256, so a run can refuse data that is not what the recipe was
//! written for. For very large datasets (TAU: 230k files) a manifest may carry only the file
//! count and a hash of the sorted per-file list (`list_hash`) instead of the list itself; it is
//! verified the same way but can then only say that the list differs, not which file.

use super::tree::walk;
use crate::data::check_relative_path;
use crate::error::{Error, Result};
use indicatif::ProgressBar;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

pub use super::tree::hash_file;

/// What data a recipe needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Dataset name, e.g. `tau2022-mobile-development` or `synth-demo`.
    pub dataset: String,
    /// Directory layout the loader expects, e.g. `tau2022-mobile`.
    pub layout: String,
    /// Number of files; required in the summary form, a consistency check in the full form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_count: Option<u64>,
    /// Sum of all file sizes in bytes (informative; checked when present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_size: Option<u64>,
    /// Summary form only: SHA-256 of the sorted per-file list (see [`Manifest::hash`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_hash: Option<String>,
    /// Full form: every file, sorted by path. Empty in the summary form.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileEntry>,
}

/// One file of a dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Path relative to the dataset root, `/`-separated, no `..`.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Lower-case hex SHA-256 of the content.
    pub sha256: String,
}

/// Options for [`Manifest::create_with`] and [`Manifest::verify_with`].
#[derive(Debug, Clone, Default)]
pub struct Options<'a> {
    /// Files to leave out of the walk (typically the manifest itself when it lives inside the
    /// data directory). Relative paths are taken relative to the current directory.
    pub exclude: Vec<PathBuf>,
    /// Advanced by one per file hashed.
    pub progress: Option<&'a ProgressBar>,
}

impl Manifest {
    /// Walks `dir` (in sorted order; symbolic links followed only within `dir`, see
    /// [`crate::data::tree`]) and hashes every file in parallel.
    pub fn create(dir: &Path, dataset: &str, layout: &str) -> Result<Manifest> {
        Self::create_with(dir, dataset, layout, &Options::default())
    }

    /// [`Manifest::create`] with exclusions and progress.
    pub fn create_with(
        dir: &Path,
        dataset: &str,
        layout: &str,
        opts: &Options<'_>,
    ) -> Result<Manifest> {
        if dataset.trim().is_empty() || layout.trim().is_empty() {
            return Err(Error::msg(
                "a data manifest needs a non-empty dataset name and layout",
            ));
        }
        let found = walk(dir, &opts.exclude)?;
        if let Some(pb) = opts.progress {
            pb.set_length(found.len() as u64);
        }
        let files = found
            .par_iter()
            .map(|(rel, abs)| {
                let (size, sha256) = hash_file(abs)?;
                if let Some(pb) = opts.progress {
                    pb.inc(1);
                }
                Ok(FileEntry {
                    path: rel.clone(),
                    size,
                    sha256,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Manifest {
            dataset: dataset.to_string(),
            layout: layout.to_string(),
            file_count: Some(files.len() as u64),
            total_size: Some(files.iter().map(|f| f.size).sum()),
            list_hash: None,
            files,
        })
    }

    /// The summary form of [`Manifest::create`]: file count, total size and list hash only.
    pub fn create_summary(dir: &Path, dataset: &str, layout: &str) -> Result<Manifest> {
        Ok(Self::create(dir, dataset, layout)?.summarized())
    }

    /// This manifest in the summary form (same [`Manifest::hash`]).
    pub fn summarized(&self) -> Manifest {
        Manifest {
            dataset: self.dataset.clone(),
            layout: self.layout.clone(),
            file_count: Some(self.file_count()),
            total_size: self
                .total_size
                .or_else(|| (!self.is_summary()).then(|| self.files.iter().map(|f| f.size).sum())),
            list_hash: Some(self.hash()),
            files: Vec::new(),
        }
    }

    /// True for the summary form (no per-file list).
    pub fn is_summary(&self) -> bool {
        self.list_hash.is_some()
    }

    /// Number of files the manifest describes.
    pub fn file_count(&self) -> u64 {
        if self.is_summary() {
            self.file_count.unwrap_or(0)
        } else {
            self.files.len() as u64
        }
    }

    /// Reads a manifest. Malformed YAML, unknown fields, wrong types and bad entries (absolute
    /// paths, `..`, malformed hashes, duplicates) are errors naming the file and line.
    pub fn load(path: &Path) -> Result<Manifest> {
        let bytes = crate::fsio::read(path)?;
        let text = String::from_utf8(bytes)
            .map_err(|_| Error::file(path, "data manifest is not valid UTF-8 text"))?;
        Self::parse(path, &text)
    }

    /// Parses and checks manifest text without touching the disk; `origin` only names it in
    /// errors (as [`Manifest::load`] reports them).
    pub fn parse(origin: &Path, text: &str) -> Result<Manifest> {
        let path = origin;
        if let Some(line) = crate::yaml_nesting::too_deep(text) {
            return Err(Error::input(
                path,
                Some(line),
                None,
                format!(
                    "invalid data manifest: brackets nest deeper than {} levels",
                    crate::yaml_nesting::MAX_DEPTH
                ),
            ));
        }
        let manifest: Manifest = serde_norway::from_str(text).map_err(|e| {
            let line = e.location().map(|l| l.line());
            let mut msg = e.to_string();
            // The line is reported through the location; drop serde's own copy of it.
            if let Some(cut) = msg.rfind(" at line ") {
                msg.truncate(cut);
            }
            Error::input(path, line, None, format!("invalid data manifest: {msg}"))
        })?;
        manifest.validate().map_err(|bad| {
            let line = bad
                .needle
                .as_deref()
                .and_then(|needle| text.lines().position(|l| l.contains(needle)))
                .map(|i| i + 1);
            Error::input(path, line, Some(&bad.field), bad.message)
        })?;
        Ok(manifest)
    }

    /// Writes the manifest atomically (temporary file + rename). Same manifest, same bytes.
    pub fn save(&self, path: &Path) -> Result<()> {
        self.write(path, &[])
    }

    fn write(&self, path: &Path, inputs: &[&Path]) -> Result<()> {
        self.validate()
            .map_err(|bad| Error::input(path, None, Some(&bad.field), bad.message))?;
        let mut sorted = self.clone();
        sorted.files.sort_by(|a, b| a.path.cmp(&b.path));
        let yaml = serde_norway::to_string(&sorted).map_err(|e| {
            Error::msg(format!(
                "{}: cannot serialise manifest: {e}",
                path.display()
            ))
        })?;
        let text = format!(
            "# ascrepro data manifest (`ascrepro manifest create|verify`); identity {}\n{yaml}",
            sorted.hash()
        );
        crate::fsio::write(path, text.as_bytes(), inputs)
    }

    /// Refuses `path` as the manifest of the data directory `root` (`manifest create`): inside
    /// `root` it would overwrite, or become, a file it lists. Check before hashing.
    pub fn check_output(path: &Path, root: &Path) -> Result<()> {
        crate::fsio::check_output(path, &[])?;
        super::tree::check_outside(path, root)
    }

    /// [`Manifest::save`] of the manifest of `root` (see [`Manifest::check_output`]); also
    /// refuses a `path` that is one of the `hashed` files (a hard link from outside `root`).
    pub fn save_outside(&self, path: &Path, root: &Path, hashed: &[FileEntry]) -> Result<()> {
        Self::check_output(path, root)?;
        let listed: Vec<PathBuf> = hashed.iter().map(|f| root.join(&f.path)).collect();
        let inputs: Vec<&Path> = listed.iter().map(PathBuf::as_path).collect();
        self.write(path, &inputs)
    }

    /// SHA-256 (hex) over the sorted `(path, size, sha256)` list, one `path\tsize\tsha256\n` line
    /// per file: the manifest's identity. The summary form returns its stored `list_hash`, which
    /// is this same value computed when it was made.
    pub fn hash(&self) -> String {
        match &self.list_hash {
            Some(h) if self.files.is_empty() => h.clone(),
            _ => {
                let mut refs: Vec<&FileEntry> = self.files.iter().collect();
                refs.sort_by(|a, b| a.path.cmp(&b.path));
                list_hash(
                    refs.into_iter()
                        .map(|f| (f.path.as_str(), f.size, f.sha256.as_str())),
                )
            }
        }
    }

    /// Checks the files under `root` against the manifest.
    pub fn verify(&self, root: &Path) -> Result<()> {
        self.verify_with(root, &Options::default())
    }

    /// [`Manifest::verify`] with exclusions and progress. Full form: the first listed file (in
    /// sorted order) that is missing or whose size or content differs is named, then the first
    /// file under `root` that is not listed. Summary form: file count, then list hash.
    pub fn verify_with(&self, root: &Path, opts: &Options<'_>) -> Result<()> {
        self.validate().map_err(|bad| {
            Error::msg(format!(
                "data manifest for `{}`: field `{}`: {}",
                self.dataset, bad.field, bad.message
            ))
        })?;
        if !root.is_dir() {
            return Err(Error::file(
                root,
                format!(
                    "data directory for `{}` does not exist or is not a directory",
                    self.dataset
                ),
            ));
        }
        let present = walk(root, &opts.exclude)?;
        if self.is_summary() {
            return self.verify_summary(root, &present, opts);
        }
        let mut listed: Vec<&FileEntry> = self.files.iter().collect();
        listed.sort_by(|a, b| a.path.cmp(&b.path));
        if let Some(pb) = opts.progress {
            pb.set_length(listed.len() as u64);
        }
        let ds = &self.dataset;

        // Cheap checks first (existence, size); then hash only the files before the first
        // cheap failure, so the error names the first bad file in sorted order without
        // hashing the whole dataset when an early file is missing.
        let cheap = listed.par_iter().enumerate().find_map_first(|(i, f)| {
            let abs = root.join(&f.path);
            match std::fs::metadata(&abs) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some((
                    i,
                    Error::file(
                        &abs,
                        format!("listed in the data manifest for `{ds}` but missing"),
                    ),
                )),
                Err(e) => Some((i, Error::io(&abs, e))),
                Ok(m) if !m.is_file() => Some((
                    i,
                    Error::file(
                        &abs,
                        format!("listed in the data manifest for `{ds}` but not a regular file"),
                    ),
                )),
                Ok(m) if m.len() != f.size => Some((
                    i,
                    Error::file(
                        &abs,
                        format!(
                            "size differs from the data manifest for `{ds}`: {} bytes, manifest lists {}",
                            m.len(),
                            f.size
                        ),
                    ),
                )),
                Ok(_) => None,
            }
        });
        let limit = cheap.as_ref().map_or(listed.len(), |(i, _)| *i);
        let content = listed[..limit].par_iter().find_map_first(|f| {
            let abs = root.join(&f.path);
            let outcome = match hash_file(&abs) {
                Err(e) => Some(e),
                Ok((_, h)) if h != f.sha256 => Some(Error::file(
                    &abs,
                    format!(
                        "content differs from the data manifest for `{ds}`: SHA-256 {h}, manifest lists {}",
                        f.sha256
                    ),
                )),
                Ok((size, _)) if size != f.size => Some(Error::file(
                    &abs,
                    format!("size changed while reading ({size} bytes, manifest lists {})", f.size),
                )),
                Ok(_) => None,
            };
            if let Some(pb) = opts.progress {
                pb.inc(1);
            }
            outcome
        });
        if let Some(e) = content {
            return Err(e);
        }
        if let Some((_, e)) = cheap {
            return Err(e);
        }
        let known: HashSet<&str> = listed.iter().map(|f| f.path.as_str()).collect();
        let extra: Vec<&(String, PathBuf)> = present
            .iter()
            .filter(|(rel, _)| !known.contains(rel.as_str()))
            .collect();
        if let Some((_, abs)) = extra.first() {
            let others = match extra.len() - 1 {
                0 => String::new(),
                1 => " (1 more unlisted file)".to_string(),
                n => format!(" ({n} more unlisted files)"),
            };
            return Err(Error::file(
                abs,
                format!(
                    "not listed in the data manifest for `{ds}`{others}; remove it or recreate the manifest"
                ),
            ));
        }
        Ok(())
    }

    fn verify_summary(
        &self,
        root: &Path,
        present: &[(String, PathBuf)],
        opts: &Options<'_>,
    ) -> Result<()> {
        let ds = &self.dataset;
        let expected = self.file_count();
        if present.len() as u64 != expected {
            return Err(Error::file(
                root,
                format!(
                    "holds {} files, the data manifest for `{ds}` lists {expected}",
                    present.len()
                ),
            ));
        }
        if let Some(pb) = opts.progress {
            pb.set_length(present.len() as u64);
        }
        let hashed = present
            .par_iter()
            .map(|(rel, abs)| {
                let (size, h) = hash_file(abs)?;
                if let Some(pb) = opts.progress {
                    pb.inc(1);
                }
                Ok((rel.as_str(), size, h))
            })
            .collect::<Result<Vec<_>>>()?;
        if let Some(total) = self.total_size {
            let actual: u64 = hashed.iter().map(|(_, s, _)| s).sum();
            if actual != total {
                return Err(Error::file(
                    root,
                    format!(
                        "files total {actual} bytes, the data manifest for `{ds}` lists {total}"
                    ),
                ));
            }
        }
        let actual = list_hash(hashed.iter().map(|(p, s, h)| (*p, *s, h.as_str())));
        if Some(&actual) != self.list_hash.as_ref() {
            return Err(Error::file(
                root,
                format!(
                    "does not match the data manifest for `{ds}`: the per-file list hash differs \
                     (a file was renamed, replaced or changed). The manifest is in summary form and \
                     cannot say which file; compare against a full manifest to find it"
                ),
            ));
        }
        Ok(())
    }

    /// Structural checks shared by load, save and verify.
    fn validate(&self) -> std::result::Result<(), Invalid> {
        let bad = |field: &str, message: String, needle: Option<String>| Invalid {
            field: field.to_string(),
            message,
            needle,
        };
        if self.dataset.trim().is_empty() {
            return Err(bad("dataset", "must not be empty".into(), None));
        }
        if self.layout.trim().is_empty() {
            return Err(bad("layout", "must not be empty".into(), None));
        }
        if let Some(h) = &self.list_hash {
            if !is_sha256(h) {
                return Err(bad(
                    "list_hash",
                    format!("`{h}` is not a lower-case hex SHA-256 (64 characters)"),
                    Some("list_hash".into()),
                ));
            }
            if !self.files.is_empty() {
                return Err(bad(
                    "list_hash",
                    "a manifest has either `files` (full form) or `list_hash` (summary form), not both"
                        .into(),
                    Some("list_hash".into()),
                ));
            }
            if self.file_count.is_none() {
                return Err(bad(
                    "file_count",
                    "the summary form (`list_hash`) also needs `file_count`".into(),
                    None,
                ));
            }
            return Ok(());
        }
        if let Some(n) = self.file_count {
            if n != self.files.len() as u64 {
                return Err(bad(
                    "file_count",
                    format!("says {n} files but `files` lists {}", self.files.len()),
                    Some("file_count".into()),
                ));
            }
        }
        if let Some(total) = self.total_size {
            let sum: u64 = self.files.iter().map(|f| f.size).sum();
            if total != sum {
                return Err(bad(
                    "total_size",
                    format!("says {total} bytes but the listed sizes add up to {sum}"),
                    Some("total_size".into()),
                ));
            }
        }
        let mut seen = HashSet::new();
        for (i, f) in self.files.iter().enumerate() {
            if let Err(why) = check_relative_path(&f.path) {
                return Err(bad(
                    &format!("files[{i}].path"),
                    format!("entry {i}: {why}"),
                    Some(f.path.clone()),
                ));
            }
            if !is_sha256(&f.sha256) {
                return Err(bad(
                    &format!("files[{i}].sha256"),
                    format!(
                        "entry {i} (`{}`): `{}` is not a lower-case hex SHA-256 (64 characters)",
                        f.path, f.sha256
                    ),
                    Some(f.sha256.clone()),
                ));
            }
            if !seen.insert(f.path.as_str()) {
                return Err(bad(
                    &format!("files[{i}].path"),
                    format!("entry {i}: `{}` is listed twice", f.path),
                    None,
                ));
            }
        }
        Ok(())
    }
}

/// A structural problem: the field, the message, and a string to find its line by.
struct Invalid {
    field: String,
    message: String,
    needle: Option<String>,
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn list_hash<'a>(entries: impl Iterator<Item = (&'a str, u64, &'a str)>) -> String {
    let mut h = Sha256::new();
    for (path, size, sha) in entries {
        h.update(format!("{path}\t{size}\t{sha}\n").as_bytes());
    }
    hex::encode(h.finalize())
}
