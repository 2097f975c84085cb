//! Walking and hashing a data directory for its manifest.
//!
//! A manifest covers only what lies inside its data directory: a symbolic link is followed
//! when its target is inside the directory too, and refused (naming the link and its target)
//! when it leads out of it, since hashing it would vouch for a file the dataset does not hold
//! (and `manifest create` would read, say, /etc). Refusing, not skipping, keeps a manifest from
//! silently missing a file the loader will read. Anything that is neither a regular file nor a
//! directory (a FIFO, socket or device) is refused too: reading it could hang.

use crate::error::{Error, IoContext, Result};
use crate::fsio;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Size and SHA-256 of a regular file.
pub fn hash_file(path: &Path) -> Result<(u64, String)> {
    let mut file = fsio::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 18];
    let mut size = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(path, e)),
        };
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hex::encode(h.finalize())))
}

/// Every regular file under `dir` as (relative `/`-separated path, full path), sorted by the
/// relative path, leaving out `exclude`; see the module documentation for links.
pub(crate) fn walk(dir: &Path, exclude: &[PathBuf]) -> Result<Vec<(String, PathBuf)>> {
    if !dir.is_dir() {
        return Err(Error::file(dir, "is not a directory"));
    }
    let base = dir.canonicalize().at(dir)?;
    let skip: HashSet<PathBuf> = exclude.iter().filter_map(|p| resolve(p)).collect();
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(dir)
        .follow_links(true)
        .sort_by_file_name()
    {
        let entry = entry.map_err(|e| {
            let at = e.path().unwrap_or(dir).to_path_buf();
            match e.into_io_error() {
                Some(io) => Error::io(&at, io),
                None => Error::file(&at, "symbolic link loop in the data directory"),
            }
        })?;
        let abs = entry.path();
        if entry.path_is_symlink() {
            let target = abs.canonicalize().at(abs)?;
            if !target.starts_with(&base) {
                return Err(Error::file(
                    abs,
                    format!(
                        "is a symbolic link to {}, outside the data directory {}; a manifest \
                         covers only files inside it: copy the file in, or remove the link",
                        target.display(),
                        dir.display()
                    ),
                ));
            }
        }
        let ft = entry.file_type();
        if ft.is_dir() {
            continue;
        }
        if !ft.is_file() {
            return Err(Error::file(
                abs,
                format!(
                    "is {}; a data directory holds only regular files and directories: remove it",
                    fsio::kind_name(&ft)
                ),
            ));
        }
        if !skip.is_empty() {
            let full = base.join(abs.strip_prefix(dir).unwrap_or(abs));
            if skip.contains(&full) {
                continue;
            }
        }
        let rel = abs.strip_prefix(dir).unwrap_or(abs);
        let mut parts = Vec::new();
        for c in rel.components() {
            match c.as_os_str().to_str() {
                Some(s) => parts.push(s),
                None => {
                    return Err(Error::file(
                        abs,
                        "file name is not valid UTF-8; data manifests list UTF-8 paths",
                    ))
                }
            }
        }
        out.push((parts.join("/"), abs.to_path_buf()));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Refuses `out` as the manifest of the data directory `root`: inside it, the manifest would
/// replace (or become) one of the files it lists.
pub(crate) fn check_outside(out: &Path, root: &Path) -> Result<()> {
    let (Some(out_abs), Ok(root_abs)) = (resolve(out), root.canonicalize()) else {
        return Ok(());
    };
    if out_abs.starts_with(&root_abs) {
        return Err(Error::file(
            out,
            format!(
                "is inside the data directory {} that the manifest describes; write the \
                 manifest outside it (e.g. data-manifests/<name>.yaml)",
                root.display()
            ),
        ));
    }
    Ok(())
}

/// Absolute, symlink-resolved form of a path that may not exist yet (its parent must).
fn resolve(p: &Path) -> Option<PathBuf> {
    if let Ok(c) = p.canonicalize() {
        return Some(c);
    }
    let name = p.file_name()?;
    let parent = match p.parent() {
        Some(q) if !q.as_os_str().is_empty() => q,
        _ => Path::new("."),
    };
    parent.canonicalize().ok().map(|c| c.join(name))
}
