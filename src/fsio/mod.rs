//! File-system policy: every file ascrepro reads from the user and every output it writes goes
//! through this module, so one set of rules holds everywhere.
//!
//! Reading ([`open`], [`read`], [`read_to_string`]):
//! - An input must be a regular file. A symbolic link to one is followed (datasets are often
//!   linked in); a directory, FIFO, socket or device is refused, naming the path. The file is
//!   opened with `O_NONBLOCK` and checked again on the open descriptor, so a FIFO swapped in
//!   between the check and the open cannot hang the command.
//!
//! Writing one file ([`OutputFile`], [`write`]):
//! - The bytes go to a temporary file beside the output and are renamed over it, so a crash
//!   never leaves half a file.
//! - An existing *regular* output file is replaced (re-running a command rewrites its output);
//!   the new file is a new inode, so other hard links to the old one keep the old content.
//! - Refused, naming the path: an output that exists and is not a regular file (a directory,
//!   FIFO, socket or device: renaming over `/dev/null` would turn it into a plain file); an
//!   output that is a symbolic link (not followed: the rename would replace the link, and
//!   following it could write anywhere; give the real path); an output that is one of the
//!   command's inputs (same file, also through a hard link or symlink), which the write would
//!   destroy. Commands add their own rules (`manifest create` refuses an output inside the data
//!   directory it hashes).
//!
//! Writing a directory ([`StagedDir`]):
//! - Everything is written into a hidden sibling directory that is renamed into place, so the
//!   output is complete or absent. An existing output directory is replaced only when it is
//!   empty or the caller recognises it as its own earlier output (a report whose `SHA256SUMS`
//!   checks and lists every file); anything else is refused, never deleted. A symbolic link
//!   or a non-directory at the output path is refused.

mod dir;
mod output;

pub use ascrepro_results::files::{kind_name, open, open_nofollow, read, read_to_string};
pub use dir::StagedDir;
pub use output::{check_output, write, OutputFile};
