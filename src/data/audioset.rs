//! The AudioSet layout: multi-label clips for the pre-training stage (Zhou et al. 2025 pre-train
//! on AudioSet's balanced training segments, 527 classes). A user-supplied copy is a directory
//! holding:
//! - `class_labels_indices.csv`, AudioSet's own class list: the header `index,mid,display_name`,
//!   then one class per line, `index` counting from 0 in file order; display names may be
//!   double-quoted and then contain commas (`7,/m/09l8g,"Female speech, woman speaking"`);
//! - a segments CSV in AudioSet's own format (`balanced_train_segments.csv`,
//!   `eval_segments.csv`, `unbalanced_train_segments.csv`): any number of `#` comment lines,
//!   then `YTID, start_seconds, end_seconds, positive_labels` per line, `positive_labels` a
//!   double-quoted comma-separated list of MIDs (`--PJHxphWEs, 30.000, 40.000, "/m/09x0r,/t/dd00088"`);
//! - `audio/<YTID>.wav`: each listed clip's audio, already cut to its segment (any sample
//!   rate and channel count the WAV reader takes; the front end resamples).
//!
//! Copies of AudioSet always lack some clips (videos are taken down), so a listed clip without
//! its WAV is handled as [`Missing`] says: by default an error naming the first such clip, its
//! line and how many are missing, so that a run never trains on a different subset silently;
//! with [`Missing::Skip`] the dataset keeps the clips that are present and lists the skipped
//! ones in [`MultiLabelDataset::skipped`], for the caller to report.
//!
//! The synthetic multi-label set ([`crate::data::synth::multilabel`]) is written in this same
//! layout, so one loader reads both. Malformed lines, unknown MIDs and missing files are errors
//! naming the file and line.

use crate::data::check_relative_path;
use crate::data::csv::split_line;
use crate::data::tau::read_text;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Header of `class_labels_indices.csv`.
pub const CLASSES_HEADER: [&str; 3] = ["index", "mid", "display_name"];

/// One clip: its audio file and its positive classes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultiLabelClip {
    /// Path relative to the dataset root: `audio/<YTID>.wav`.
    pub file: String,
    /// Indices into [`MultiLabelDataset::classes`], ascending, no repeats, at least one.
    pub labels: Vec<usize>,
}

/// A multi-label dataset: one segments CSV's clips with the class list.
#[derive(Debug, Clone)]
pub struct MultiLabelDataset {
    /// Directory every [`MultiLabelClip::file`] is relative to.
    pub root: PathBuf,
    /// Display names, in class index order.
    pub classes: Vec<String>,
    /// MIDs, in class index order.
    pub mids: Vec<String>,
    /// The listed clips whose WAV exists, in file order.
    pub clips: Vec<MultiLabelClip>,
    /// Listed clips whose WAV is missing and that were left out ([`Missing::Skip`]), as
    /// `audio/<YTID>.wav`; always empty with [`Missing::Error`].
    pub skipped: Vec<String>,
}

impl MultiLabelDataset {
    /// Absolute (root-joined) path of a clip's audio file.
    pub fn path_of(&self, clip: &MultiLabelClip) -> PathBuf {
        self.root.join(&clip.file)
    }

    /// The clips' targets as a row-major [clips x classes] 0/1 matrix.
    pub fn targets(&self) -> Vec<f32> {
        let k = self.classes.len();
        let mut t = vec![0.0; self.clips.len() * k];
        for (i, c) in self.clips.iter().enumerate() {
            for &l in &c.labels {
                t[i * k + l] = 1.0;
            }
        }
        t
    }
}

/// What to do with a listed clip whose `audio/<YTID>.wav` does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Missing {
    /// Fail, naming the first missing clip and the number missing.
    #[default]
    Error,
    /// Leave the clip out and list it in [`MultiLabelDataset::skipped`].
    Skip,
}

/// Reads the class list and the segments CSV (paths relative to `root` unless absolute) and
/// checks that every listed clip's WAV exists ([`Missing::Error`]).
pub fn load(root: &Path, segments_csv: &Path, classes_csv: &Path) -> Result<MultiLabelDataset> {
    load_with(root, segments_csv, classes_csv, Missing::Error)
}

/// [`load`], with a choice of what to do with clips whose WAV is missing.
pub fn load_with(
    root: &Path,
    segments_csv: &Path,
    classes_csv: &Path,
    missing: Missing,
) -> Result<MultiLabelDataset> {
    let (mids, classes) = load_classes(&root.join(classes_csv))?;
    let path = root.join(segments_csv);
    let listed = read_segments(&path, &mids)?;
    let mut clips = Vec::with_capacity(listed.len());
    let mut absent: Vec<(usize, String)> = Vec::new();
    for (line, clip) in listed {
        if root.join(&clip.file).is_file() {
            clips.push(clip);
        } else {
            absent.push((line, clip.file));
        }
    }
    let total = clips.len() + absent.len();
    if let (Missing::Error, Some((line, file))) = (missing, absent.first()) {
        return Err(Error::input(
            &path,
            Some(*line),
            Some("YTID"),
            format!(
                "{} does not exist ({} of the {total} listed clips lack their WAV under {}); \
                 AudioSet copies usually lack some videos: choose `missing: skip` to use the \
                 clips that are present",
                root.join(file).display(),
                absent.len(),
                root.join("audio").display()
            ),
        ));
    }
    if clips.is_empty() {
        return Err(Error::file(
            &path,
            format!(
                "none of the {total} listed clips has its WAV under {}",
                root.join("audio").display()
            ),
        ));
    }
    Ok(MultiLabelDataset {
        root: root.to_path_buf(),
        classes,
        mids,
        clips,
        skipped: absent.into_iter().map(|(_, file)| file).collect(),
    })
}

/// `class_labels_indices.csv`: MIDs and display names, in index order.
fn load_classes(path: &Path) -> Result<(Vec<String>, Vec<String>)> {
    let text = read_text(path)?;
    let mut lines = text.lines().enumerate();
    let header = lines.next().map(|(_, l)| l).unwrap_or("");
    let names = split_line(header).unwrap_or_default();
    if names != CLASSES_HEADER {
        return Err(Error::input(
            path,
            Some(1),
            None,
            format!(
                "expected AudioSet's header `{}`, found `{header}`",
                CLASSES_HEADER.join(",")
            ),
        ));
    }
    let mut mids: Vec<String> = Vec::new();
    let mut display = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, line) in lines.filter(|(_, l)| !l.trim().is_empty()) {
        let line_no = i + 1;
        let bad = |field: Option<&str>, msg: String| Error::input(path, Some(line_no), field, msg);
        let cols = split_line(line).map_err(|why| bad(None, why))?;
        let [index, mid, name] = cols.as_slice() else {
            return Err(bad(
                None,
                format!(
                    "expected 3 comma-separated columns (index, mid, display_name), found {}",
                    cols.len()
                ),
            ));
        };
        if index.parse::<usize>().ok() != Some(mids.len()) {
            return Err(bad(
                Some("index"),
                format!(
                    "`{index}`: expected {}, the classes are numbered from 0 in file order",
                    mids.len()
                ),
            ));
        }
        if mid.is_empty() || mid.contains(char::is_whitespace) {
            return Err(bad(
                Some("mid"),
                format!("`{mid}` is not a MID (e.g. `/m/09x0r`)"),
            ));
        }
        if let Some(first) = seen.insert(mid.clone(), line_no) {
            return Err(bad(
                Some("mid"),
                format!("`{mid}` is listed twice (first at line {first})"),
            ));
        }
        if name.is_empty() {
            return Err(bad(Some("display_name"), "empty display name".into()));
        }
        mids.push(mid.clone());
        display.push(name.clone());
    }
    if mids.is_empty() {
        return Err(Error::file(path, "lists no classes"));
    }
    Ok((mids, display))
}

/// The segments CSV's clips with their lines, checked against the class list.
fn read_segments(path: &Path, mids: &[String]) -> Result<Vec<(usize, MultiLabelClip)>> {
    let text = read_text(path)?;
    let index: HashMap<&str, usize> = mids
        .iter()
        .enumerate()
        .map(|(i, m)| (m.as_str(), i))
        .collect();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut clips = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let bad = |field: Option<&str>, msg: String| Error::input(path, Some(line_no), field, msg);
        let cols = split_line(line).map_err(|why| bad(None, why))?;
        let [ytid, start, end, labels] = cols.as_slice() else {
            return Err(bad(
                None,
                format!(
                    "expected 4 comma-separated columns (YTID, start_seconds, end_seconds, \
                     \"positive_labels\"), found {}; quote the label list",
                    cols.len()
                ),
            ));
        };
        let file = format!("audio/{ytid}.wav");
        if ytid.is_empty() || ytid.contains('/') || ytid.starts_with('.') {
            return Err(bad(
                Some("YTID"),
                format!("`{ytid}` cannot name a file in audio/"),
            ));
        }
        check_relative_path(&file).map_err(|why| bad(Some("YTID"), why))?;
        if let Some(first) = seen.insert(ytid.clone(), line_no) {
            return Err(bad(
                Some("YTID"),
                format!("`{ytid}` is listed twice (first at line {first})"),
            ));
        }
        let seconds = |field: &str, v: &str| {
            v.parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .ok_or_else(|| bad(Some(field), format!("`{v}` is not a time in seconds")))
        };
        let (t0, t1) = (
            seconds("start_seconds", start)?,
            seconds("end_seconds", end)?,
        );
        if t1 <= t0 {
            return Err(bad(
                Some("end_seconds"),
                format!("{end} is not after start_seconds {start}"),
            ));
        }
        let mut found = Vec::new();
        for mid in labels.split(',').map(str::trim) {
            let Some(&c) = index.get(mid) else {
                return Err(bad(
                    Some("positive_labels"),
                    if mid.is_empty() {
                        format!("empty MID in `{labels}`")
                    } else {
                        format!("`{mid}` is not in the class list")
                    },
                ));
            };
            found.push(c);
        }
        found.sort_unstable();
        found.dedup();
        clips.push((
            line_no,
            MultiLabelClip {
                file,
                labels: found,
            },
        ));
    }
    if clips.is_empty() {
        return Err(Error::file(path, "lists no clips"));
    }
    Ok(clips)
}
