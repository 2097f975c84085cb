//! `SHA256SUMS` (in `sha256sum` format, so `sha256sum -c SHA256SUMS` also works), its check,
//! and what makes a directory recognisably a report ascrepro rendered. The renderer writes it
//! (`ascrepro::report`); `ascrepro verify`, the renderer before it replaces a directory, and
//! [`crate::Report::open`] check it here.
//!
//! A report directory holds only regular files and directories; every file but `SHA256SUMS`
//! is listed in it, including the marker file [`MARKER`], `index.html` and `results.json`.
//! `ascrepro verify` checks exactly that, and `ascrepro run` replaces an existing directory
//! only when it passes the same check (or is empty), so it never deletes anything else.

use crate::error::{Error, IoContext, Result};
use crate::files;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::io;
use std::path::Path;

pub const SUMS: &str = "SHA256SUMS";

/// The file that marks a directory as an ascrepro report (listed in `SHA256SUMS` like the rest).
pub const MARKER: &str = "ascrepro-report.txt";

/// Files every report lists: without them a `SHA256SUMS` proves nothing about a report.
const REQUIRED: [&str; 3] = [MARKER, "index.html", "results.json"];

/// One line of `SHA256SUMS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SumsEntry {
    /// 64 hex digits as written (either case).
    pub hash: String,
    /// `/`-separated path relative to the report directory.
    pub path: String,
}

/// Why a `SHA256SUMS` text was refused, and on which line (1-based) if one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SumsError {
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for SumsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(n) => write!(f, "line {n}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// A listed path must name a file inside the report: relative, `/`-separated, no empty, `.`
/// or `..` segment, no backslash or control character (sha256sum escapes those).
fn check_rel(rel: &str) -> std::result::Result<(), String> {
    if rel.is_empty() {
        return Err("empty path".into());
    }
    if rel.starts_with('/') {
        return Err(format!("path `{rel}` is absolute"));
    }
    if rel.chars().any(|c| c == '\\' || c.is_control()) {
        return Err(format!(
            "path `{}` has a backslash or control character",
            rel.escape_debug()
        ));
    }
    if rel
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(format!(
            "path `{rel}` is not a plain relative path (empty, `.` or `..` segment)"
        ));
    }
    Ok(())
}

/// Parses `SHA256SUMS` text without touching the disk: one `<64 hex>  <path>` (or
/// `<64 hex> *<path>`) per line, blank lines ignored. Refuses malformed lines, unsafe paths
/// (absolute, `..`), a path listed twice, and a text that lists nothing.
pub fn parse_sums(text: &str) -> std::result::Result<Vec<SumsEntry>, SumsError> {
    let mut entries = Vec::new();
    let mut seen = BTreeSet::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |why: String| SumsError {
            line: Some(n + 1),
            message: format!("{why}; expected `<64 hex digits>  <relative path>`"),
        };
        let (hash, rest) = line
            .split_once(' ')
            .ok_or_else(|| bad("malformed line".into()))?;
        // sha256sum writes two spaces (text mode) or ` *` (binary mode) before the name.
        let rel = rest
            .strip_prefix(' ')
            .or_else(|| rest.strip_prefix('*'))
            .ok_or_else(|| bad("malformed line".into()))?;
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("malformed hash".into()));
        }
        check_rel(rel).map_err(bad)?;
        if rel == SUMS {
            return Err(bad(format!("{SUMS} lists itself")));
        }
        if !seen.insert(rel.to_string()) {
            return Err(bad(format!("path `{rel}` is listed twice")));
        }
        entries.push(SumsEntry {
            hash: hash.to_string(),
            path: rel.to_string(),
        });
    }
    if entries.is_empty() {
        return Err(SumsError {
            line: None,
            message: "lists no files".into(),
        });
    }
    Ok(entries)
}

/// The SHA-256 of the regular file at `path` (a symbolic link is refused), in lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = files::open_nofollow(path)?;
    let mut hasher = Sha256::new();
    io::copy(&mut file, &mut hasher).at(path)?;
    Ok(hex::encode(hasher.finalize()))
}

/// Every file under `dir` as a `/`-separated relative path, sorted. Refuses a symbolic link or
/// anything else that is neither a regular file nor a directory, naming it.
pub fn files_under(dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(dir).to_path_buf();
            Error::msg(format!("{}: cannot list the report: {e}", path.display()))
        })?;
        let ft = entry.file_type();
        if ft.is_dir() {
            continue;
        }
        if !ft.is_file() {
            return Err(Error::file(
                entry.path(),
                format!(
                    "is {}; a report holds only regular files and directories (remove it, or \
                     render the report again)",
                    files::kind_name(&ft)
                ),
            ));
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

/// The layouts [`check`] accepts.
#[derive(Clone, Copy, PartialEq)]
enum Layout {
    Current,
    /// Before the marker: no marker, `timings.json` and `timings.html` unlisted at the top.
    Legacy,
}

/// What [`check`] is for: `verify` (every listed file present), or deciding whether a
/// render may replace the directory (a listed file deleted by hand loses nothing).
#[derive(Clone, Copy, PartialEq)]
enum Purpose {
    Verify,
    Replace,
}

/// Checks the report in `dir`: only regular files and directories, every file but
/// `SHA256SUMS` listed and hashing as listed, the marker, `index.html` and `results.json`
/// among them (the legacy layout: see [`Layout`]).
fn check(dir: &Path, layout: Layout, purpose: Purpose) -> Result<()> {
    let sums_path = dir.join(SUMS);
    if fs::symlink_metadata(&sums_path).is_err() {
        return Err(Error::file(
            &sums_path,
            format!(
                "missing: {} is not a rendered report (render it again with `ascrepro run`)",
                dir.display()
            ),
        ));
    }
    let present: BTreeSet<String> = files_under(dir)?.into_iter().collect();
    let entries = parse_sums(&files::read_to_string(&sums_path)?)
        .map_err(|e| Error::at_line(&sums_path, e.line, e.message))?;
    let (required, also_allowed): (&[&str], &[&str]) = match layout {
        Layout::Current => (&REQUIRED, &[]),
        Layout::Legacy => (&REQUIRED[1..], &["timings.json", "timings.html"]),
    };
    for required in required {
        if !entries.iter().any(|e| e.path == *required) {
            return Err(Error::file(
                &sums_path,
                format!(
                    "does not list `{required}`: {} is not a complete ascrepro report (render it \
                     again with `ascrepro run`)",
                    dir.display()
                ),
            ));
        }
    }
    for e in &entries {
        let path = dir.join(&e.path);
        if !present.contains(&e.path) {
            if purpose == Purpose::Replace && e.path != MARKER {
                continue;
            }
            return Err(Error::file(
                &path,
                "listed in SHA256SUMS but missing: the report is incomplete; render it again",
            ));
        }
        let actual = sha256_file(&path)?;
        if !actual.eq_ignore_ascii_case(&e.hash) {
            return Err(Error::file(
                &path,
                format!(
                    "changed since the report was rendered: SHA-256 {actual}, SHA256SUMS lists {}",
                    e.hash
                ),
            ));
        }
    }
    let listed: BTreeSet<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    for rel in &present {
        if rel == SUMS || listed.contains(rel.as_str()) || also_allowed.contains(&rel.as_str()) {
            continue;
        }
        return Err(Error::file(
            dir.join(rel),
            "not listed in SHA256SUMS: added after the report was rendered; remove it or render again",
        ));
    }
    Ok(())
}

/// `ascrepro verify`: only regular files and directories; every file but `SHA256SUMS` listed
/// there and hashing as listed; the marker, `index.html` and `results.json` among them.
pub fn verify(dir: &Path) -> Result<()> {
    check(dir, Layout::Current, Purpose::Verify)
}

/// Whether the existing, non-empty directory `dir` may be replaced by a new render: only a
/// report that passes [`verify`] but for files deleted from it (or a report of the legacy
/// layout), so nothing but what a render regenerates is ever deleted.
pub fn check_replaceable(dir: &Path) -> Result<()> {
    let why = match check(dir, Layout::Current, Purpose::Replace) {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    if check(dir, Layout::Legacy, Purpose::Replace).is_ok() {
        return Ok(());
    }
    Err(Error::file(
        dir,
        format!(
            "exists and is not a report ascrepro rendered, or was changed since ({why}); it is \
             not replaced: choose another --out, or move or remove the directory yourself"
        ),
    ))
}
