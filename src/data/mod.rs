//! Data: the clips a run trains and evaluates on. Four parts, each usable on its own:
//! - [`manifest`]: what data a recipe needs, with sizes and SHA-256 hashes, and the check that a
//!   data directory matches it;
//! - [`tau`]: reading the TAU Urban Acoustic Scenes 2022 Mobile layout (meta.csv + split CSVs);
//! - [`synth`]: generating the synthetic TAU-like dataset, in that same layout;
//! - [`audioset`]: reading the AudioSet layout (class list, segments CSV, `audio/<YTID>.wav`),
//!   multi-label clips for pre-training; [`synth::multilabel`] writes a synthetic set in it.

pub mod audioset;
pub mod csv;
pub mod manifest;
pub mod synth;
pub mod tau;
pub mod tree;

use ascrepro_results::labels::DeviceList;
use std::path::PathBuf;

/// One audio clip of a dataset, as listed in `meta.csv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clip {
    /// Path relative to the dataset root, as written in meta.csv, e.g.
    /// `audio/airport-lisbon-1000-40000-0-a.wav`.
    pub file: String,
    /// Index into [`ascrepro_results::labels::CLASSES`].
    pub scene: usize,
    /// Index into its dataset's [`DeviceList`] (the known devices have the same index in every
    /// dataset: [`ascrepro_results::labels::known_device_index`]).
    pub device: usize,
    /// Recording location, e.g. `lisbon-1000` (TAU's `identifier` column).
    pub identifier: String,
    /// City of the recording location: the identifier up to its first `-`.
    pub city: String,
}

impl Clip {
    /// The scene label, e.g. `airport`.
    pub fn scene_name(&self) -> &'static str {
        ascrepro_results::labels::CLASSES[self.scene]
    }
}

/// A dataset with one train/test split.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Directory every [`Clip::file`] is relative to.
    pub root: PathBuf,
    /// Every device meta.csv names: what [`Clip::device`] indexes.
    pub devices: DeviceList,
    pub train: Vec<Clip>,
    pub test: Vec<Clip>,
}

impl Dataset {
    /// Absolute (root-joined) path of a clip's audio file.
    pub fn path_of(&self, clip: &Clip) -> PathBuf {
        self.root.join(&clip.file)
    }

    /// The device id of a clip of this dataset, e.g. `s4`.
    pub fn device_name(&self, clip: &Clip) -> &str {
        self.devices.name(clip.device)
    }
}

/// Checks that `path` is a plain relative path inside a data root: `/`-separated, not absolute,
/// no `..`, `.` or empty components, no backslashes or control characters. Returns a short
/// reason when it is not. Manifests and split files use it so nothing can point outside the root.
pub fn check_relative_path(path: &str) -> std::result::Result<(), String> {
    if path.is_empty() {
        return Err("path is empty".into());
    }
    if path.starts_with('/') {
        return Err(format!(
            "`{path}` is absolute; paths must be relative to the data root"
        ));
    }
    if path.contains('\\') {
        return Err(format!(
            "`{path}` contains a backslash; use `/` as the separator"
        ));
    }
    if path.chars().any(char::is_control) {
        return Err(format!("`{path:?}` contains a control character"));
    }
    // A Windows drive prefix ("C:") would make the path absolute there.
    let first = path.split('/').next().unwrap_or("");
    if first.len() >= 2 && first.as_bytes()[1] == b':' {
        return Err(format!(
            "`{path}` starts with a drive prefix; paths must be relative"
        ));
    }
    for part in path.split('/') {
        match part {
            ".." => {
                return Err(format!(
                    "`{path}` contains `..`; paths must stay inside the data root"
                ))
            }
            "." | "" => {
                return Err(format!(
                    "`{path}` has an empty or `.` component; write it in normal form"
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

/// City of a TAU identifier (`lisbon-1000` -> `lisbon`).
pub(crate) fn city_of(identifier: &str) -> String {
    identifier
        .split_once('-')
        .map_or(identifier, |(city, _)| city)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        assert!(check_relative_path("audio/a.wav").is_ok());
        assert!(check_relative_path("meta.csv").is_ok());
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "audio/../../x",
            "a//b",
            "./a",
            "a\\b",
            "C:/x",
            "a/\n",
        ] {
            assert!(check_relative_path(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn cities() {
        assert_eq!(city_of("lisbon-1000"), "lisbon");
        assert_eq!(city_of("nowhere"), "nowhere");
    }
}
