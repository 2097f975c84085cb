//! The TAU Urban Acoustic Scenes 2022 Mobile development layout: `meta.csv` (tab-separated:
//! `filename  scene_label  identifier  source_label`) lists every clip; split files (tab-separated,
//! first column `filename`, usually also `scene_label`: `evaluation_setup/fold1_train.csv`,
//! `evaluation_setup/fold1_evaluate.csv`, DCASE2024's `split25.csv`, ...) select a subset.
//! The synthetic dataset is written in the same layout, so one loader serves both.

use crate::data::{check_relative_path, city_of, Clip, Dataset};
use crate::error::{Error, Result};
use ascrepro_results::labels::{class_index, is_device_id, DeviceList, CLASSES};
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// File name of the clip list inside a TAU root.
pub const META: &str = "meta.csv";
/// Columns of `meta.csv`, in order.
pub const META_COLUMNS: [&str; 4] = ["filename", "scene_label", "identifier", "source_label"];

/// Reads `root/meta.csv` and the two split files (paths relative to `root`) into a dataset whose
/// `train` and `test` follow the split files' row order. Errors name the file, line and field.
pub fn load(root: &Path, train_split: &str, test_split: &str) -> Result<Dataset> {
    let meta = load_meta(root)?;
    let index = meta.index();
    let train = read_split(root, train_split, &meta.clips, &index)?;
    let test = read_split(root, test_split, &meta.clips, &index)?;
    Ok(Dataset {
        root: root.to_path_buf(),
        devices: meta.devices,
        train,
        test,
    })
}

/// The clips of one split CSV (relative to `root`), e.g. a validation split. Their device
/// indices are into the device list of the same meta.csv, as [`load`]'s are.
pub fn load_split(root: &Path, split: &str) -> Result<Vec<Clip>> {
    let meta = load_meta(root)?;
    read_split(root, split, &meta.clips, &meta.index())
}

/// What meta.csv lists: every clip, and the devices their indices point into.
#[derive(Debug, Clone)]
pub struct Meta {
    pub devices: DeviceList,
    pub clips: Vec<Clip>,
}

impl Meta {
    fn index(&self) -> HashMap<&str, usize> {
        self.clips
            .iter()
            .enumerate()
            .map(|(i, c)| (c.file.as_str(), i))
            .collect()
    }
}

/// Every clip listed in `root/meta.csv`, in file order. Any device id is kept (an evaluation
/// set names devices the development set lacks); the list is made once all rows are read, so a
/// clip's index does not depend on where its device first appears.
pub fn load_meta(root: &Path) -> Result<Meta> {
    let path = root.join(META);
    let text = read_text(&path)?;
    let mut lines = text.lines().enumerate();
    let header = lines.next().map(|(_, l)| l).unwrap_or("");
    let names: Vec<&str> = header.split('\t').map(str::trim).collect();
    if names != META_COLUMNS {
        return Err(Error::input(
            &path,
            Some(1),
            None,
            format!(
                "expected the tab-separated header `{}`, found `{}`",
                META_COLUMNS.join("\\t"),
                header.replace('\t', "\\t")
            ),
        ));
    }
    let mut clips = Vec::new();
    let mut rows_devices: Vec<&str> = Vec::new();
    for row in rows(&path, lines, &META_COLUMNS) {
        let (line_no, cols) = row?;
        let file = cols[0];
        let scene = class_index(cols[1]).ok_or_else(|| {
            Error::input(
                &path,
                Some(line_no),
                Some("scene_label"),
                format!(
                    "unknown scene `{}`; the scenes are {}",
                    cols[1],
                    CLASSES.join(", ")
                ),
            )
        })?;
        let identifier = cols[2];
        if identifier.is_empty() {
            return Err(Error::input(
                &path,
                Some(line_no),
                Some("identifier"),
                "empty recording location identifier",
            ));
        }
        let device = cols[3];
        if !is_device_id(device) {
            return Err(Error::input(
                &path,
                Some(line_no),
                Some("source_label"),
                format!(
                    "`{device}` is not a device id (letters, digits, `_` and `-`, e.g. a, s1, unknown)"
                ),
            ));
        }
        rows_devices.push(device);
        clips.push(Clip {
            file: file.to_string(),
            scene,
            device: usize::MAX, // set below, once every row's device is known
            identifier: identifier.to_string(),
            city: city_of(identifier),
        });
    }
    if clips.is_empty() {
        return Err(Error::file(&path, "lists no clips"));
    }
    let devices = DeviceList::with(&rows_devices);
    for (clip, d) in clips.iter_mut().zip(&rows_devices) {
        clip.device = devices.index(d).expect("listed above");
    }
    Ok(Meta { devices, clips })
}

/// The clips a split file selects, checked against meta.csv.
fn read_split(
    root: &Path,
    split: &str,
    meta: &[Clip],
    index: &HashMap<&str, usize>,
) -> Result<Vec<Clip>> {
    check_relative_path(split).map_err(|why| {
        Error::file(
            split,
            format!("split file path must be relative to the dataset root: {why}"),
        )
    })?;
    let path = root.join(split);
    let text = read_text(&path)?;
    let mut lines = text.lines().enumerate();
    let header = lines.next().map(|(_, l)| l).unwrap_or("");
    let names: Vec<&str> = header.split('\t').map(str::trim).collect();
    if names.first() != Some(&"filename") {
        return Err(Error::input(
            &path,
            Some(1),
            None,
            format!(
                "expected a tab-separated header starting with `filename` (e.g. `filename\\tscene_label`), found `{}`",
                header.replace('\t', "\\t")
            ),
        ));
    }
    let scene_col = names.iter().position(|n| *n == "scene_label");
    let mut clips = Vec::new();
    for row in rows(&path, lines, &names) {
        let (line_no, cols) = row?;
        let file = cols[0];
        let Some(&at) = index.get(file) else {
            return Err(Error::input(
                &path,
                Some(line_no),
                Some("filename"),
                format!("`{file}` is not listed in {}", root.join(META).display()),
            ));
        };
        let clip = &meta[at];
        if let Some(c) = scene_col {
            let label = cols[c];
            if class_index(label).is_none() {
                return Err(Error::input(
                    &path,
                    Some(line_no),
                    Some("scene_label"),
                    format!(
                        "unknown scene `{label}`; the scenes are {}",
                        CLASSES.join(", ")
                    ),
                ));
            }
            if label != CLASSES[clip.scene] {
                return Err(Error::input(
                    &path,
                    Some(line_no),
                    Some("scene_label"),
                    format!(
                        "`{label}` disagrees with {} which labels `{file}` as `{}`",
                        META, CLASSES[clip.scene]
                    ),
                ));
            }
        }
        clips.push(clip.clone());
    }
    if clips.is_empty() {
        return Err(Error::file(&path, "split file lists no clips"));
    }
    Ok(clips)
}

/// The non-blank data rows after the header: (1-based line, columns), each checked for the
/// header's column count and a relative `filename`, listed once, in its first column.
fn rows<'a>(
    path: &'a Path,
    lines: impl Iterator<Item = (usize, &'a str)> + 'a,
    names: &'a [&'a str],
) -> impl Iterator<Item = Result<(usize, Vec<&'a str>)>> + 'a {
    let mut seen = HashSet::new();
    lines
        .filter(|(_, line)| !line.trim().is_empty())
        .map(move |(i, line)| {
            let line_no = i + 1;
            let cols: Vec<&str> = line.split('\t').map(str::trim).collect();
            if cols.len() != names.len() {
                return Err(Error::input(
                    path,
                    Some(line_no),
                    None,
                    format!(
                        "expected {} tab-separated columns ({}), found {}",
                        names.len(),
                        names.join(", "),
                        cols.len()
                    ),
                ));
            }
            let file = cols[0];
            check_relative_path(file)
                .map_err(|why| Error::input(path, Some(line_no), Some("filename"), why))?;
            if !seen.insert(file) {
                return Err(Error::input(
                    path,
                    Some(line_no),
                    Some("filename"),
                    format!("`{file}` is listed twice"),
                ));
            }
            Ok((line_no, cols))
        })
}

/// A UTF-8 text file, without a leading byte-order mark.
pub(crate) fn read_text(path: &Path) -> Result<String> {
    let bytes = crate::fsio::read(path)?;
    let text =
        String::from_utf8(bytes).map_err(|_| Error::file(path, "is not valid UTF-8 text"))?;
    // Spreadsheet tools like to add a byte-order mark.
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    })
}
