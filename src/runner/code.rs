//! The code a stage's artefacts depend on. build.rs embeds the SHA-256 of every source file,
//! template and the lock file; a stage names the files and folders its output can depend on,
//! and its identity hashes only those, so editing a template re-renders the report and
//! recomputes nothing else, while editing the trainer retrains but keeps the data and features.

use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

include!(concat!(env!("OUT_DIR"), "/code_files.rs"));

/// Files every stage depends on: the dependency versions (numerics) and the class order.
const ALWAYS: [&str; 2] = ["Cargo.lock", "crates/results/src/labels.rs"];

/// Each source file's SHA-256 by its path in the repository.
#[derive(Debug, Clone, PartialEq)]
pub struct CodeIndex {
    files: BTreeMap<String, String>,
}

impl CodeIndex {
    /// The code this binary was built from.
    pub fn embedded() -> CodeIndex {
        CodeIndex {
            files: CODE_FILES
                .iter()
                .map(|(p, h)| (p.to_string(), h.to_string()))
                .collect(),
        }
    }

    /// This code with `path` changed: the identities stages would have after an edit of that
    /// file, without rebuilding (what the invalidation tests and `plan --edited` ask).
    pub fn edited(mut self, path: &str) -> Result<CodeIndex> {
        match self.files.get_mut(path) {
            Some(h) => {
                *h = hex::encode(Sha256::digest(format!("edited {h}")));
                Ok(self)
            }
            None => Err(Error::msg(format!(
                "`{path}` is not a source file of this build (give a path such as src/train/fit.rs or templates/index.html)"
            ))),
        }
    }

    /// The files `deps` (file paths, or folders ending in `/`) name, plus those every stage
    /// depends on.
    pub fn files<'a>(&'a self, deps: &[&str]) -> Vec<&'a str> {
        self.files
            .keys()
            .filter(|f| ALWAYS.contains(&f.as_str()) || deps.iter().any(|d| covers(d, f)))
            .map(String::as_str)
            .collect()
    }

    /// Hash of the files `deps` name (see [`CodeIndex::files`]).
    pub fn hash(&self, deps: &[&str]) -> String {
        let mut h = Sha256::new();
        for f in self.files(deps) {
            h.update(f.as_bytes());
            h.update([0]);
            h.update(self.files[f].as_bytes());
        }
        hex::encode(h.finalize())
    }

    /// The entries of `deps` that name no file (a stage declaring code that does not exist).
    pub fn unknown<'a>(&self, deps: &[&'a str]) -> Vec<&'a str> {
        deps.iter()
            .filter(|d| !self.files.keys().any(|f| covers(d, f)))
            .copied()
            .collect()
    }
}

fn covers(dep: &str, file: &str) -> bool {
    if dep.ends_with('/') {
        file.starts_with(dep)
    } else {
        file == dep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edit_changes_only_the_hashes_that_cover_it() {
        let code = CodeIndex::embedded();
        let edited = code.clone().edited("templates/index.html").unwrap();
        assert_eq!(
            code.hash(&["src/train/"]),
            edited.hash(&["src/train/"]),
            "a template edit reached the trainer's identity"
        );
        assert_ne!(code.hash(&["templates/"]), edited.hash(&["templates/"]));
        assert!(code.clone().edited("src/no_such_file.rs").is_err());
        assert_eq!(code.unknown(&["src/train/", "src/nope/"]), ["src/nope/"]);
        assert!(code.files(&[]).contains(&"Cargo.lock"));
    }
}
