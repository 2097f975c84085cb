//! Writing a whole output directory: staged in a hidden sibling, renamed into place, and an
//! existing directory replaced only when it is empty or recognisably the caller's own output.

use super::kind_name;
use super::output::parent_of;
use crate::error::{Error, IoContext, Result};
use std::fs;
use std::path::{Path, PathBuf};

/// Decides whether an existing, non-empty output directory may be replaced: `Ok` if it is the
/// caller's own earlier output, else the error to refuse with (naming it, saying what to do).
pub type MayReplace = fn(&Path) -> Result<()>;

/// What stands at the output path.
enum Existing {
    Nothing,
    Empty,
    Replaceable,
}

fn existing(out: &Path, may_replace: MayReplace) -> Result<Existing> {
    let meta = match fs::symlink_metadata(out) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Existing::Nothing),
        Err(e) => return Err(Error::io(out, e)),
    };
    let ft = meta.file_type();
    if ft.is_symlink() {
        return Err(Error::file(
            out,
            "the output directory is a symbolic link; ascrepro does not write through links: \
             give the real path, or remove the link",
        ));
    }
    if !ft.is_dir() {
        return Err(Error::file(
            out,
            format!(
                "exists and is {}; the output needs a directory of its own: choose another \
                 output path",
                kind_name(&ft)
            ),
        ));
    }
    if fs::read_dir(out).at(out)?.next().is_none() {
        return Ok(Existing::Empty);
    }
    may_replace(out)?;
    Ok(Existing::Replaceable)
}

/// A directory being written: files go to [`StagedDir::path`], and [`StagedDir::publish`]
/// renames it to the output path, so the output is either complete or absent. Dropped without
/// publishing, the staged files are removed.
pub struct StagedDir {
    tmp: tempfile::TempDir,
    out: PathBuf,
    parent: PathBuf,
    name: String,
    may_replace: MayReplace,
}

/// Name prefix of the hidden siblings of `name` (`.<name>.partial-*`, `.<name>.old-*`).
fn sibling(name: &str, tag: &str) -> String {
    format!(".{name}.{tag}-")
}

impl StagedDir {
    /// Refuses `out` as an output directory as [`StagedDir::new`] would, writing nothing:
    /// for commands that should refuse before long work.
    pub fn check(out: &Path, may_replace: MayReplace) -> Result<()> {
        existing(out, may_replace).map(|_| ())
    }

    /// Starts writing directory `out` (its parent is created if needed), refusing at once what
    /// [`StagedDir::publish`] would refuse, before any work is done.
    pub fn new(out: &Path, may_replace: MayReplace) -> Result<StagedDir> {
        let name = out
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| Error::file(out, "an output directory needs a name"))?;
        let parent = parent_of(out).to_path_buf();
        existing(out, may_replace)?;
        fs::create_dir_all(&parent).at(&parent)?;
        remove_stale(&parent, &name, may_replace)?;
        let tmp = tempfile::Builder::new()
            .prefix(&sibling(&name, "partial"))
            .tempdir_in(&parent)
            .at(&parent)?;
        Ok(StagedDir {
            tmp,
            out: out.to_path_buf(),
            parent,
            name,
            may_replace,
        })
    }

    /// Where the files are written until [`StagedDir::publish`].
    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// Puts the staged directory at the output path. A replaced directory is first moved
    /// aside (a rename each, so readers see the old or the new directory, never a mix), then
    /// deleted only if it is still one `may_replace` accepts.
    pub fn publish(self) -> Result<()> {
        let StagedDir {
            tmp,
            out,
            parent,
            name,
            may_replace,
        } = self;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // tempfile creates 0700 directories; an output is meant to be read by others.
            fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).at(tmp.path())?;
        }
        let aside = match existing(&out, may_replace)? {
            // POSIX rename replaces an empty directory (and fails if a file appeared in it).
            Existing::Nothing | Existing::Empty => None,
            Existing::Replaceable => {
                let aside = tempfile::Builder::new()
                    .prefix(&sibling(&name, "old"))
                    .tempdir_in(&parent)
                    .at(&parent)?
                    .keep();
                fs::rename(&out, &aside).at(&out)?;
                Some(aside)
            }
        };
        let staged = tmp.keep();
        if let Err(e) = fs::rename(&staged, &out) {
            // Put the previous directory back so a failed swap changes nothing.
            if let Some(aside) = &aside {
                let _ = fs::rename(aside, &out);
            }
            let _ = fs::remove_dir_all(&staged);
            return Err(Error::io(&out, e));
        }
        if let Some(aside) = aside {
            remove_if_ours(&aside, may_replace)?;
        }
        Ok(())
    }
}

/// Deletes a moved-aside directory if it is still the caller's own output; otherwise (a file
/// was added in the moment between the check and the move) keeps it and says where.
fn remove_if_ours(dir: &Path, may_replace: MayReplace) -> Result<()> {
    // An empty one is the unused target of a move that failed.
    if fs::remove_dir(dir).is_ok() {
        return Ok(());
    }
    match may_replace(dir) {
        Ok(()) => fs::remove_dir_all(dir).at(dir),
        Err(e) => {
            eprintln!(
                "warning: {}: the replaced output was kept, as it changed while being replaced: {e}",
                dir.display()
            );
            Ok(())
        }
    }
}

/// Removes leftovers of an interrupted write of `name` in `parent`: staged directories, and
/// moved-aside ones that are still recognisably the caller's output.
fn remove_stale(parent: &Path, name: &str, may_replace: MayReplace) -> Result<()> {
    let partial = sibling(name, "partial");
    let old = sibling(name, "old");
    for entry in fs::read_dir(parent).at(parent)? {
        let entry = entry.at(parent)?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if !entry.file_type().at(&path)?.is_dir() {
            continue;
        }
        if file_name.starts_with(&partial) {
            fs::remove_dir_all(&path).at(&path)?;
        } else if file_name.starts_with(&old) {
            remove_if_ours(&path, may_replace)?;
        }
    }
    Ok(())
}
