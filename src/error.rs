//! One error type for the whole crate. Every variant renders as a single paragraph that names
//! the file (and line or field when known) and, where it helps, what the user should do.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where in the user's input something went wrong.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub field: Option<String>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": field `{field}`")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad user input: recipe, manifest, data file, checkpoint, command-line value.
    #[error("{at}: {message}")]
    Input { at: Location, message: String },
    /// An I/O operation on a named path failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// libtorch reported an error.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// Anything else, already phrased for the user.
    #[error("{0}")]
    Msg(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Bad input in `file`, optionally at a line and a field.
    pub fn input(
        file: impl AsRef<Path>,
        line: Option<usize>,
        field: Option<&str>,
        message: impl Into<String>,
    ) -> Self {
        Error::Input {
            at: Location {
                file: file.as_ref().to_path_buf(),
                line,
                field: field.map(str::to_string),
            },
            message: message.into(),
        }
    }

    /// Bad input in a whole file (no line or field).
    pub fn file(file: impl AsRef<Path>, message: impl Into<String>) -> Self {
        Self::input(file, None, None, message)
    }

    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    pub fn msg(message: impl Into<String>) -> Self {
        Error::Msg(message.into())
    }
}

/// Attaches a path to `std::io::Result`s: `fs::read(p).at(p)?`.
pub trait IoContext<T> {
    fn at(self, path: impl AsRef<Path>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}

/// The results crate's errors are the same kinds, located the same way.
impl From<ascrepro_results::Error> for Error {
    fn from(e: ascrepro_results::Error) -> Self {
        match e {
            ascrepro_results::Error::File {
                path,
                line,
                message,
            } => Error::input(path, line, None, message),
            ascrepro_results::Error::Io { path, source } => Error::Io { path, source },
            ascrepro_results::Error::Msg(m) => Error::Msg(m),
        }
    }
}
