//! Writing a report's `SHA256SUMS` and marker; their check is `ascrepro_results::sums`.

use crate::error::Result;
use crate::fsio;
use ascrepro_results::sums::{files_under, sha256_file, MARKER, SUMS};
use std::path::Path;

/// The marker's content: what the directory is and that a new render replaces it whole.
const MARKER_TEXT: &str = "This directory is a report rendered by ascrepro. Every \
file in it is listed in SHA256SUMS (check: `ascrepro verify <this directory>`). Rendering a \
report into it again replaces the whole directory, so keep no other files here.\n";

/// Writes the marker, hashes every file under `dir` but `SHA256SUMS` and writes `SHA256SUMS`.
pub(crate) fn write_sums(dir: &Path) -> Result<()> {
    fsio::write(&dir.join(MARKER), MARKER_TEXT.as_bytes(), &[])?;
    let mut text = String::new();
    for rel in files_under(dir)? {
        if rel == SUMS {
            continue;
        }
        let hash = sha256_file(&dir.join(&rel))?;
        text.push_str(&format!("{hash}  {rel}\n"));
    }
    fsio::write(&dir.join(SUMS), text.as_bytes(), &[])
}
