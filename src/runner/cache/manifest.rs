//! An entry's manifest: size and SHA-256 of each of its files, written when the entry is
//! sealed and checked before it is used.

use crate::error::{Error, IoContext, Result};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Size and SHA-256 of every file of an entry; written first, then the marker.
pub(super) const MANIFEST: &str = ".manifest";
/// The stage's identity; its presence says the entry was published whole.
pub(super) const MARKER: &str = ".complete";
const MANIFEST_HEADER: &str = "ascrepro stage entry v1";

/// Every file under `dir` but the top-level manifest and marker, by `/`-separated relative
/// path, with whether it is a regular file.
fn scan(dir: &Path) -> Result<Vec<(String, PathBuf, bool)>> {
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new(dir).min_depth(1).sort_by_file_name() {
        let e = e.map_err(|e| Error::msg(format!("{}: {e}", dir.display())))?;
        if e.file_type().is_dir() {
            continue;
        }
        let rel: Vec<String> = e
            .path()
            .strip_prefix(dir)
            .unwrap_or(e.path())
            .components()
            .map(|c| c.as_os_str().to_string_lossy().to_string())
            .collect();
        let rel = rel.join("/");
        if rel != MANIFEST && rel != MARKER {
            out.push((rel, e.path().to_path_buf(), e.file_type().is_file()));
        }
    }
    Ok(out)
}

/// SHA-256 (hex) and size of a file, read in chunks.
fn hash_file(path: &Path) -> Result<(String, u64)> {
    let mut h = Sha256::new();
    let mut f = crate::fsio::open(path)?;
    let n = std::io::copy(&mut f, &mut h).at(path)?;
    Ok((hex::encode(h.finalize()), n))
}

/// Writes the manifest of `dir`'s files, then the marker: the entry's file hashes.
pub(super) fn seal(dir: &Path, hash: &str) -> Result<BTreeMap<String, String>> {
    let mut text = format!("{MANIFEST_HEADER}\n");
    let mut files = BTreeMap::new();
    for (rel, path, regular) in scan(dir)? {
        if !regular {
            return Err(Error::msg(format!(
                "{}: a stage output must be a regular file",
                path.display()
            )));
        }
        let (sha, size) = hash_file(&path)?;
        text += &format!("{sha} {size} {rel}\n");
        files.insert(rel, sha);
    }
    let manifest = dir.join(MANIFEST);
    std::fs::write(&manifest, text).at(&manifest)?;
    let marker = dir.join(MARKER);
    std::fs::write(&marker, hash).at(&marker)?;
    files.insert(MARKER.into(), hex::encode(Sha256::digest(hash.as_bytes())));
    Ok(files)
}

/// Path -> (SHA-256, size); `None` if the text is not a manifest.
pub(super) fn parse_manifest(text: &str) -> Option<BTreeMap<String, (String, u64)>> {
    let mut lines = text.lines();
    if lines.next()? != MANIFEST_HEADER {
        return None;
    }
    let mut out = BTreeMap::new();
    for line in lines {
        let (sha, rest) = line.split_once(' ')?;
        let (size, rel) = rest.split_once(' ')?;
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) || rel.is_empty() {
            return None;
        }
        out.insert(rel.to_string(), (sha.to_string(), size.parse().ok()?));
    }
    Some(out)
}

/// Checks entry `dir` of stage `hash` against its manifest: the file hashes, or why not.
pub(super) fn verify(
    dir: &Path,
    hash: &str,
) -> std::result::Result<BTreeMap<String, String>, String> {
    let marker = crate::fsio::read(&dir.join(MARKER))
        .map_err(|e| format!("no readable completion marker: {e}"))?;
    if marker != hash.as_bytes() {
        return Err("its completion marker names another stage".into());
    }
    let manifest = dir.join(MANIFEST);
    if std::fs::symlink_metadata(&manifest).is_err() {
        return Err("no checksum manifest (an entry from an older version)".into());
    }
    let text = crate::fsio::read_to_string(&manifest)
        .map_err(|e| format!("unreadable checksum manifest: {e}"))?;
    let listed = parse_manifest(&text).ok_or("unreadable checksum manifest")?;
    let found = scan(dir).map_err(|e| format!("cannot list it: {e}"))?;
    for (rel, _, regular) in &found {
        if !listed.contains_key(rel) {
            return Err(format!("unexpected file {rel}"));
        }
        if !regular {
            return Err(format!("{rel} is not a regular file"));
        }
    }
    let paths: BTreeMap<&String, &PathBuf> = found.iter().map(|(r, p, _)| (r, p)).collect();
    // Sizes first: a truncated file is found without hashing anything.
    for (rel, (_, size)) in &listed {
        let path = paths.get(rel).ok_or_else(|| format!("{rel} is missing"))?;
        let len = std::fs::metadata(path)
            .map_err(|e| format!("{rel}: {e}"))?
            .len();
        if len != *size {
            return Err(format!("{rel} has {len} bytes, not {size} (truncated?)"));
        }
    }
    let mut files = BTreeMap::new();
    for (rel, (sha, _)) in listed {
        let (got, _) = hash_file(paths[&rel]).map_err(|e| format!("{rel}: {e}"))?;
        if got != sha {
            return Err(format!("{rel}: checksum mismatch"));
        }
        files.insert(rel, sha);
    }
    files.insert(MARKER.into(), hex::encode(Sha256::digest(&marker)));
    Ok(files)
}
