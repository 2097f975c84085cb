//! `ascrepro verify` on a site root: every report, then the index and `SHA256SUMS.site`
//! against what [`super::write`] would write now.

use super::{index_is_ours, render, sums_text, view, INDEX, SITE_SUMS};
use crate::error::{Error, Result};
use crate::fsio;
use ascrepro_results::site::{exists, is_report, report_dirs, reports_of};
use ascrepro_results::sums;
use std::path::Path;

/// What `ascrepro verify` checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    Report,
    Site { reports: usize },
}

/// The command that rewrites the site at `root`, for messages.
fn rerun(root: &Path) -> String {
    format!("run `ascrepro site {}` to write it", root.display())
}

/// `ascrepro verify <site root>`: every report against its `SHA256SUMS` (the first failure
/// names its file), then `index.html` and `SHA256SUMS.site` against what [`super::write`]
/// would write now. Returns the number of reports.
pub fn verify(root: &Path) -> Result<usize> {
    let dirs = reports_of(root)?;
    for d in &dirs {
        crate::report::verify(&root.join(d))?;
    }
    let html = render(&view(root, &dirs)?)?;
    let index = root.join(INDEX);
    if !exists(&index) {
        return Err(Error::file(
            &index,
            format!("missing: the site has no index; {}", rerun(root)),
        ));
    }
    let on_disk = fsio::read(&index)?;
    if on_disk != html.as_bytes() {
        let line = first_difference(&on_disk, html.as_bytes());
        return Err(Error::input(
            &index,
            Some(line),
            None,
            format!(
                "differs from what `ascrepro site` renders from the reports now (stale, or \
                 edited by hand); {}",
                rerun(root)
            ),
        ));
    }
    check_site_sums(root, &sums_text(root, html.as_bytes(), &dirs)?)?;
    Ok(dirs.len())
}

/// The 1-based line of the first byte where `a` and `b` differ.
fn first_difference(a: &[u8], b: &[u8]) -> usize {
    let at = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    1 + a[..at].iter().filter(|&&c| c == b'\n').count()
}

/// `SHA256SUMS.site` against `expected`, naming the first entry that differs.
fn check_site_sums(root: &Path, expected: &str) -> Result<()> {
    let path = root.join(SITE_SUMS);
    if !exists(&path) {
        return Err(Error::file(&path, format!("missing; {}", rerun(root))));
    }
    let text = fsio::read_to_string(&path)?;
    if text == expected {
        return Ok(());
    }
    let listed = sums::parse_sums(&text).map_err(|e| {
        Error::input(
            &path,
            e.line,
            None,
            format!("{}; {}", e.message, rerun(root)),
        )
    })?;
    let wanted =
        sums::parse_sums(expected).map_err(|e| Error::msg(format!("site checksums: {e}")))?;
    let why = wanted
        .iter()
        .find_map(|w| match listed.iter().find(|l| l.path == w.path) {
            None => Some(format!("does not list `{}`", w.path)),
            Some(l) if !l.hash.eq_ignore_ascii_case(&w.hash) => Some(format!(
                "lists `{}` with SHA-256 {}, but it hashes {} now",
                w.path, l.hash, w.hash
            )),
            Some(_) => None,
        })
        .or_else(|| {
            listed
                .iter()
                .find(|l| !wanted.iter().any(|w| w.path == l.path))
                .map(|l| format!("lists `{}`, which is not a report of the site", l.path))
        })
        .unwrap_or_else(|| "is not laid out as `ascrepro site` writes it".into());
    Err(Error::file(&path, format!("{why}; {}", rerun(root))))
}

/// `ascrepro verify DIR`: the report in `dir`, or, when `dir` is a site root (no report
/// files of its own; report directories, a site index or `SHA256SUMS.site` in it), the site.
pub fn verify_dir(dir: &Path) -> Result<Verified> {
    let site = !is_report(dir)
        && (exists(&dir.join(SITE_SUMS))
            || index_is_ours(dir)
            || report_dirs(dir).is_ok_and(|d| !d.is_empty()));
    if site {
        Ok(Verified::Site {
            reports: verify(dir)?,
        })
    } else {
        crate::report::verify(dir).map(|()| Verified::Report)
    }
}

#[cfg(test)]
mod tests {
    use super::first_difference;

    #[test]
    fn first_difference_is_a_line_number() {
        assert_eq!(first_difference(b"a\nb\nc", b"a\nb\nd"), 3);
        assert_eq!(first_difference(b"x", b"y"), 1);
        assert_eq!(first_difference(b"a\n", b"a\nmore"), 2);
    }
}
