//! Reading files: regular files only, and never a blocking open. The policy of every file
//! ascrepro reads (`ascrepro::fsio` re-exports it), reports included.

use crate::error::{Error, IoContext, Result};
use std::fs::{File, FileType, Metadata, OpenOptions};
use std::io::Read;
use std::path::Path;

fn refuse_unless_regular(path: &Path, meta: &Metadata) -> Result<()> {
    if meta.is_file() {
        return Ok(());
    }
    Err(Error::file(
        path,
        format!(
            "is {}, not a regular file; give the path of a file",
            kind_name(&meta.file_type())
        ),
    ))
}

fn open_checked(path: &Path, follow: bool) -> Result<File> {
    let meta = if follow {
        std::fs::metadata(path)
    } else {
        std::fs::symlink_metadata(path)
    }
    .at(path)?;
    refuse_unless_regular(path, &meta)?;
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // O_NONBLOCK: opening a FIFO swapped in after the check returns at once instead of
        // waiting for a writer; on a regular file the flag changes nothing.
        let mut flags = libc::O_NONBLOCK;
        if !follow {
            flags |= libc::O_NOFOLLOW;
        }
        options.custom_flags(flags);
    }
    let file = options.open(path).map_err(|e| {
        #[cfg(unix)]
        if !follow && e.raw_os_error() == Some(libc::ELOOP) {
            return Error::file(path, "is a symbolic link, not a regular file");
        }
        Error::io(path, e)
    })?;
    refuse_unless_regular(path, &file.metadata().at(path)?)?;
    Ok(file)
}

/// Opens the regular file at `path` (a symbolic link to one is followed) for reading.
pub fn open(path: &Path) -> Result<File> {
    open_checked(path, true)
}

/// [`open`] that refuses a symbolic link at `path` too (files of a report).
pub fn open_nofollow(path: &Path) -> Result<File> {
    open_checked(path, false)
}

/// The whole content of the regular file at `path`.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    let mut file = open(path)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).at(path)?;
    Ok(bytes)
}

/// The whole content of the regular file at `path` as UTF-8 text.
pub fn read_to_string(path: &Path) -> Result<String> {
    String::from_utf8(read(path)?).map_err(|e| {
        Error::file(
            path,
            format!(
                "is not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// What a non-regular file is, for error messages.
pub fn kind_name(ft: &FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if ft.is_socket() {
            return "a socket";
        }
        if ft.is_char_device() {
            return "a character device";
        }
        if ft.is_block_device() {
            return "a block device";
        }
    }
    if ft.is_dir() {
        "a directory"
    } else if ft.is_symlink() {
        "a symbolic link"
    } else if ft.is_file() {
        "a regular file"
    } else {
        "not a regular file"
    }
}
