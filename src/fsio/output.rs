//! Writing one output file: checked against the policy, written beside it, renamed into place.

use super::kind_name;
use crate::error::{Error, IoContext, Result};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The directory `path` is written in (`.` for a bare file name).
pub(crate) fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Whether two metadata describe the same file (device and inode).
#[cfg(unix)]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
fn same_file(_: &std::fs::Metadata, _: &std::fs::Metadata) -> bool {
    false
}

/// Refuses an output path that may not be written (see the module documentation): one that
/// exists and is not a regular file, a symbolic link, or one of `inputs` (the files the command
/// reads; inputs that do not exist are ignored). A missing output is fine.
pub fn check_output(path: &Path, inputs: &[&Path]) -> Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(path, e)),
    };
    let ft = meta.file_type();
    if ft.is_symlink() {
        return Err(Error::file(
            path,
            "the output path is a symbolic link; ascrepro does not write through links: give \
             the real path, or remove the link",
        ));
    }
    if !ft.is_file() {
        return Err(Error::file(
            path,
            format!(
                "the output path exists and is {}; an output is written as a regular file: \
                 choose another output path",
                kind_name(&ft)
            ),
        ));
    }
    for input in inputs {
        if let Ok(im) = std::fs::metadata(input) {
            if same_file(&meta, &im) {
                return Err(Error::file(
                    path,
                    format!(
                        "the output is the same file as the input {}; writing it would destroy \
                         the input: choose another output path",
                        input.display()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// An output file being written: a temporary file beside `path` until [`OutputFile::commit`]
/// renames it into place; dropped without commit, it is removed and `path` is untouched.
pub struct OutputFile {
    tmp: tempfile::NamedTempFile,
    path: PathBuf,
    inputs: Vec<PathBuf>,
}

impl OutputFile {
    /// Starts writing `path`, an output of a command that reads `inputs`.
    pub fn create(path: &Path, inputs: &[&Path]) -> Result<OutputFile> {
        check_output(path, inputs)?;
        let parent = parent_of(path);
        if !parent.is_dir() {
            return Err(Error::file(
                path,
                format!(
                    "cannot write: directory {} does not exist",
                    parent.display()
                ),
            ));
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| Error::file(path, "an output file needs a file name"))?;
        let prefix = format!(".{name}.");
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(".partial");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // As `fs::write` creates files: 0666 less the umask (tempfile's default is 0600).
            builder.permissions(std::fs::Permissions::from_mode(0o666));
        }
        let tmp = builder.tempfile_in(parent).at(parent)?;
        Ok(OutputFile {
            tmp,
            path: path.to_path_buf(),
            inputs: inputs.iter().map(|p| p.to_path_buf()).collect(),
        })
    }

    /// The temporary file to write to.
    pub fn file(&mut self) -> &mut File {
        self.tmp.as_file_mut()
    }

    /// The temporary file's path (for writers that take a path, such as libtorch's).
    pub fn temp_path(&self) -> &Path {
        self.tmp.path()
    }

    /// Flushes the temporary file to disk and renames it to the output path, after checking
    /// the output path once more (it may have changed while the output was computed).
    pub fn commit(self) -> Result<()> {
        self.tmp.as_file().sync_all().at(self.tmp.path())?;
        self.commit_unsynced()
    }

    /// [`OutputFile::commit`] without flushing to disk first: for self-checking cache entries,
    /// where a file torn by a power cut is detected and recomputed, and a flush per entry
    /// would cost more than it saves.
    pub fn commit_unsynced(self) -> Result<()> {
        let OutputFile { tmp, path, inputs } = self;
        let inputs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
        check_output(&path, &inputs)?;
        tmp.persist(&path).map_err(|e| Error::io(&path, e.error))?;
        Ok(())
    }
}

/// Writes `bytes` to `path` (an output of a command that reads `inputs`) under the policy.
pub fn write(path: &Path, bytes: &[u8], inputs: &[&Path]) -> Result<()> {
    let mut out = OutputFile::create(path, inputs)?;
    out.file().write_all(bytes).at(out.temp_path())?;
    out.commit()
}
