//! `SHA256SUMS` (in `sha256sum` format, so `sha256sum -c SHA256SUMS` also works), its check,
//! and the directory swap that makes a render all-or-nothing.

use crate::error::{Error, IoContext, Result};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io;
use std::path::{Component, Path, PathBuf};

pub(crate) const SUMS: &str = "SHA256SUMS";

/// Wall-clock files: present in a report but never checksummed (they differ run to run).
pub(crate) fn is_timing_file(rel: &str) -> bool {
    !rel.contains('/') && rel.starts_with("timings.")
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).at(path)?;
    let mut hasher = Sha256::new();
    io::copy(&mut file, &mut hasher).at(path)?;
    Ok(hex::encode(hasher.finalize()))
}

/// Every file under `dir` as a `/`-separated relative path, sorted; symlinks and other
/// non-directories count as files so nothing slips past the check.
fn files_under(dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(dir).to_path_buf();
            Error::msg(format!("{}: cannot list the report: {e}", path.display()))
        })?;
        if entry.file_type().is_dir() {
            continue;
        }
        let rel = entry.path().strip_prefix(dir).map_err(|_| {
            Error::msg(format!(
                "{}: outside {}",
                entry.path().display(),
                dir.display()
            ))
        })?;
        let parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        out.push(parts.join("/"));
    }
    out.sort();
    Ok(out)
}

/// Hashes every file under `dir` except timings and `SHA256SUMS` itself and writes `SHA256SUMS`.
pub(crate) fn write_sums(dir: &Path) -> Result<()> {
    let mut text = String::new();
    for rel in files_under(dir)? {
        if rel == SUMS || is_timing_file(&rel) {
            continue;
        }
        let hash = sha256_file(&dir.join(&rel))?;
        text.push_str(&format!("{hash}  {rel}\n"));
    }
    let path = dir.join(SUMS);
    fs::write(&path, text).at(&path)
}

/// A listed path must stay inside the report directory.
fn safe_rel(rel: &str) -> bool {
    let p = Path::new(rel);
    !rel.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)))
}

pub(crate) fn verify(dir: &Path) -> Result<()> {
    let sums_path = dir.join(SUMS);
    if !sums_path.is_file() {
        return Err(Error::file(
            &sums_path,
            format!(
                "missing: {} is not a rendered report (render it again with `ascrepro run`)",
                dir.display()
            ),
        ));
    }
    let text = fs::read_to_string(&sums_path).at(&sums_path)?;
    let mut listed = BTreeSet::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |why: &str| {
            Error::input(
                &sums_path,
                Some(n + 1),
                None,
                format!("{why}; expected `<64 hex digits>  <relative path>`"),
            )
        };
        let (hash, rest) = line.split_once(' ').ok_or_else(|| bad("malformed line"))?;
        // sha256sum writes two spaces (text mode) or ` *` (binary mode) before the name.
        let rel = rest
            .strip_prefix(' ')
            .or_else(|| rest.strip_prefix('*'))
            .ok_or_else(|| bad("malformed line"))?;
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("malformed hash"));
        }
        if !safe_rel(rel) {
            return Err(bad(&format!("path `{rel}` leaves the report directory")));
        }
        let path = dir.join(rel);
        if !path.is_file() {
            return Err(Error::file(
                &path,
                "listed in SHA256SUMS but missing: the report is incomplete; render it again",
            ));
        }
        let actual = sha256_file(&path)?;
        if !actual.eq_ignore_ascii_case(hash) {
            return Err(Error::file(
                &path,
                format!(
                    "changed since the report was rendered: SHA-256 {actual}, SHA256SUMS lists {hash}"
                ),
            ));
        }
        listed.insert(rel.to_string());
    }
    for rel in files_under(dir)? {
        if rel == SUMS || is_timing_file(&rel) || listed.contains(&rel) {
            continue;
        }
        return Err(Error::file(
            dir.join(&rel),
            "not listed in SHA256SUMS: added after the report was rendered; remove it or render again",
        ));
    }
    Ok(())
}

/// Name prefix of the hidden sibling directories a render uses (`.<name>.partial-*`, `.<name>.old-*`).
fn sibling(name: &str, tag: &str) -> String {
    format!(".{name}.{tag}-")
}

/// Removes leftovers of an interrupted render of `name` in `parent` (temp and old copies).
pub(crate) fn remove_stale(parent: &Path, name: &str) -> Result<()> {
    let prefixes = [sibling(name, "partial"), sibling(name, "old")];
    for entry in fs::read_dir(parent).at(parent)? {
        let entry = entry.at(parent)?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if prefixes.iter().any(|p| file_name.starts_with(p.as_str())) {
            let path = entry.path();
            if entry.file_type().at(&path)?.is_dir() {
                fs::remove_dir_all(&path).at(&path)?;
            }
        }
    }
    Ok(())
}

/// A fresh empty directory next to the final one, removed on drop unless swapped in.
pub(crate) fn temp_dir(parent: &Path, name: &str) -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(&sibling(name, "partial"))
        .tempdir_in(parent)
        .at(parent)
}

/// Replaces `out_dir` with the finished `tmp`: the old report moves aside, the new one takes
/// its name (a rename each, so readers see either the old or the new report, never a mix),
/// then the old copy is deleted.
pub(crate) fn swap_in(
    tmp: tempfile::TempDir,
    parent: &Path,
    name: &str,
    out_dir: &Path,
) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // tempfile creates 0700 directories; a report is meant to be read by others.
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).at(tmp.path())?;
    }
    let old: Option<PathBuf> = if out_dir.exists() {
        let aside = tempfile::Builder::new()
            .prefix(&sibling(name, "old"))
            .tempdir_in(parent)
            .at(parent)?
            .keep();
        // Rename onto the fresh empty directory (allowed for directories on POSIX).
        fs::rename(out_dir, &aside).at(out_dir)?;
        Some(aside)
    } else {
        None
    };
    let tmp_path = tmp.keep();
    if let Err(e) = fs::rename(&tmp_path, out_dir) {
        // Put the previous report back so a failed swap changes nothing.
        if let Some(aside) = &old {
            let _ = fs::rename(aside, out_dir);
        }
        let _ = fs::remove_dir_all(&tmp_path);
        return Err(Error::io(out_dir, e));
    }
    if let Some(aside) = old {
        fs::remove_dir_all(&aside).at(&aside)?;
    }
    Ok(())
}
