//! The columns a published table may have, typed: what each key of a recipe row's `values`
//! means, which keys are valid, and the reproduced figure a run holds for each.
//!
//! The five technical reports print device-wise tables (Cai 2023 Table 3, Zhang 2025 Tables
//! 2–3, Zhou 2025 Table 2, Ramezanee 2025 Table 2), a class-wise one (Zhou 2025 Table 1),
//! split-wise ones with one column per DCASE2024 training subset (Cai 2024 Tables 1 and 3),
//! accuracy with log loss (Ramezanee 2025 Table 3) and complexity figures (in K/M, or as plain
//! counts: Zhang 2025 Table 1, Cai 2024 Table 2's caption). No report prints parameter memory
//! in kB in a table, so there is no memory column.

use crate::labels::{CLASSES, KNOWN_DEVICES, UNSEEN_DEVICES};
use crate::record::SystemRecord;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// A DCASE2024 training subset, named as the challenge's split files are (`split25.csv`:
/// about 25 % of the full training split). DCASE2025 systems train on `split25` only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrainSplit {
    Split5,
    Split10,
    Split25,
    Split50,
    Split100,
}

impl TrainSplit {
    pub const ALL: [TrainSplit; 5] = [
        TrainSplit::Split5,
        TrainSplit::Split10,
        TrainSplit::Split25,
        TrainSplit::Split50,
        TrainSplit::Split100,
    ];

    /// Its share of the full training split, in % (as the reports head their columns).
    pub fn percent(self) -> u32 {
        match self {
            TrainSplit::Split5 => 5,
            TrainSplit::Split10 => 10,
            TrainSplit::Split25 => 25,
            TrainSplit::Split50 => 50,
            TrainSplit::Split100 => 100,
        }
    }

    pub fn key(self) -> String {
        format!("split{}", self.percent())
    }
}

/// A named group of devices whose accuracy a report prints as one figure, defined as the
/// report that prints it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DeviceGroup {
    /// Cai et al. 2023, Table 3: the header "Seen" over A, B, C, S1, S2, S3 (the devices of the
    /// training split).
    Seen,
    /// Cai et al. 2023, Table 3: the header "Unseen" over S4, S5, S6 (test split only).
    Unseen,
    /// Ramezanee et al. 2025, Table 2: the row "others" after a, b, c, s1, s2, s3: the clips of
    /// every other device, which their system routes to one general model.
    Others,
}

/// The devices the reports list one by one before "others" (those with their own model).
const NAMED_BEFORE_OTHERS: [&str; 6] = ["a", "b", "c", "s1", "s2", "s3"];

impl DeviceGroup {
    pub const ALL: [DeviceGroup; 3] = [DeviceGroup::Seen, DeviceGroup::Unseen, DeviceGroup::Others];

    pub fn key(self) -> &'static str {
        match self {
            DeviceGroup::Seen => "seen",
            DeviceGroup::Unseen => "unseen",
            DeviceGroup::Others => "others",
        }
    }

    /// The group's figure from a system's device-wise accuracy (a fraction), or None when the
    /// test set lacks what the definition needs.
    ///
    /// `seen` and `unseen` are the mean of their devices' accuracies, every one of which must
    /// be present: Table 3 groups per-device columns under these headers, and the DCASE
    /// device-wise figures are per device (on the TAU test split every device has the same
    /// number of clips, so the mean is also the pooled accuracy). `others` is the accuracy over
    /// the pooled clips of every device present besides a–s3 (Σ accuracy × clips / Σ clips), as
    /// one row of a device table counts its clips; None when no such device is present.
    pub fn accuracy(self, system: &SystemRecord) -> Option<f64> {
        let devices = &system.evaluation.device_accuracy;
        let mean_of = |ids: &[&str]| -> Option<f64> {
            let sum = ids
                .iter()
                .map(|d| devices.get(*d).map(|s| s.accuracy))
                .sum::<Option<f64>>()?;
            Some(sum / ids.len() as f64)
        };
        match self {
            DeviceGroup::Seen => {
                let seen: Vec<&str> = KNOWN_DEVICES
                    .iter()
                    .copied()
                    .filter(|d| !UNSEEN_DEVICES.contains(d))
                    .collect();
                mean_of(&seen)
            }
            DeviceGroup::Unseen => mean_of(&UNSEEN_DEVICES),
            DeviceGroup::Others => {
                let (correct, clips) = devices
                    .iter()
                    .filter(|(d, _)| !NAMED_BEFORE_OTHERS.contains(&d.as_str()))
                    .fold((0.0, 0usize), |(c, n), (_, s)| {
                        (c + s.accuracy * s.clips as f64, n + s.clips)
                    });
                (clips > 0).then(|| correct / clips as f64)
            }
        }
    }
}

/// How a row prints its accuracies: in % (59.5, the default) or as fractions (0.595, Zhou et
/// al. 2025 Table 2). Log loss, MACs and parameters are not affected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccuracyUnit {
    #[default]
    Percent,
    Fraction,
}

impl AccuracyUnit {
    pub fn is_percent(&self) -> bool {
        *self == AccuracyUnit::Percent
    }

    /// The factor that takes a printed accuracy to %.
    pub fn to_percent(self) -> f64 {
        match self {
            AccuracyUnit::Percent => 1.0,
            AccuracyUnit::Fraction => 100.0,
        }
    }
}

/// One column of a published table: the key of a recipe row's `values` (`a`, `unseen`,
/// `metro_station`, `split25`, `accuracy`, …).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PublishedColumn {
    /// Accuracy on one recording device's test clips: any device id (the nine of TAU 2022
    /// Mobile or another one), not a reserved name.
    Device(String),
    /// Accuracy over a named group of devices.
    DeviceGroup(DeviceGroup),
    /// Class-wise accuracy (recall) of one scene class, by index into `labels::CLASSES`.
    Class(usize),
    /// Accuracy of the system trained on one DCASE2024 subset (one column per subset).
    Split(TrainSplit),
    /// The mean over the five subsets' columns (Cai 2024 "Avg.").
    SplitMean,
    /// Overall accuracy: correct clips / clips (the reports' "Acc", "Overall", "Accuracy",
    /// "Top-1"). On the class-balanced TAU test split it equals the macro accuracy.
    Accuracy,
    /// Mean of the class-wise accuracies (the DCASE "macro average").
    MacroAccuracy,
    /// Mean negative log-likelihood of the true class (natural log).
    LogLoss,
    /// MACs per 1-second clip, in millions.
    MacsM,
    /// Parameter count, in thousands.
    ParamsK,
    /// Parameter count, as an exact number (Zhang 2025 Table 1's "Para. Num").
    Params,
    /// MACs per 1-second clip, as an exact number (Zhang 2025 Table 1 heads it "MMACs" but
    /// prints counts: 29982132).
    Macs,
}

/// The metric columns, by key.
const METRICS: [(&str, PublishedColumn); 7] = [
    ("accuracy", PublishedColumn::Accuracy),
    ("macro_accuracy", PublishedColumn::MacroAccuracy),
    ("log_loss", PublishedColumn::LogLoss),
    ("macs_m", PublishedColumn::MacsM),
    ("params_k", PublishedColumn::ParamsK),
    ("params", PublishedColumn::Params),
    ("macs", PublishedColumn::Macs),
];

const SPLIT_MEAN: &str = "split_mean";

/// Every reserved key (all but device ids).
fn reserved() -> Vec<String> {
    METRICS
        .iter()
        .map(|(k, _)| k.to_string())
        .chain(DeviceGroup::ALL.iter().map(|g| g.key().to_string()))
        .chain(CLASSES.iter().map(|c| c.to_string()))
        .chain(TrainSplit::ALL.iter().map(|s| s.key()))
        .chain([SPLIT_MEAN.to_string()])
        .collect()
}

/// The valid kinds of column, for error messages.
pub const COLUMN_KINDS: &str = "a column is a device id (a, b, c, s1–s6, or another id of lowercase letters, digits and `_`), \
a device group (seen = a–s3, unseen = s4–s6, others = every device but a–s3), \
a scene class (airport, bus, metro, metro_station, park, public_square, shopping_mall, street_pedestrian, street_traffic, tram), \
a DCASE2024 training subset (split5, split10, split25, split50, split100) or their mean (split_mean), \
or a metric (accuracy, macro_accuracy, log_loss, macs_m, params_k, params, macs)";

impl PublishedColumn {
    pub fn key(&self) -> String {
        match self {
            PublishedColumn::Device(d) => d.clone(),
            PublishedColumn::DeviceGroup(g) => g.key().to_string(),
            PublishedColumn::Class(i) => CLASSES[*i].to_string(),
            PublishedColumn::Split(s) => s.key(),
            PublishedColumn::SplitMean => SPLIT_MEAN.to_string(),
            other => METRICS
                .iter()
                .find(|(_, c)| c == other)
                .map(|(k, _)| k.to_string())
                .expect("every metric has a key"),
        }
    }

    /// True for the columns holding an accuracy (in % or as a fraction, per the row).
    pub fn is_accuracy(&self) -> bool {
        matches!(
            self,
            PublishedColumn::Device(_)
                | PublishedColumn::DeviceGroup(_)
                | PublishedColumn::Class(_)
                | PublishedColumn::Split(_)
                | PublishedColumn::SplitMean
                | PublishedColumn::Accuracy
                | PublishedColumn::MacroAccuracy
        )
    }

    /// Where the column goes in a table, as the DCASE reports order them: devices (the nine in
    /// table order, then others by id), device groups, classes, subsets, then the metrics.
    pub fn table_order(&self) -> (u8, usize, String) {
        match self {
            PublishedColumn::Device(d) => match KNOWN_DEVICES.iter().position(|x| x == d) {
                Some(i) => (0, i, String::new()),
                None => (0, KNOWN_DEVICES.len(), d.clone()),
            },
            PublishedColumn::DeviceGroup(g) => (1, *g as usize, String::new()),
            PublishedColumn::Class(i) => (2, *i, String::new()),
            PublishedColumn::Split(s) => (3, *s as usize, String::new()),
            PublishedColumn::SplitMean => (3, TrainSplit::ALL.len(), String::new()),
            other => (
                4,
                METRICS.iter().position(|(_, c)| c == other).unwrap_or(0),
                String::new(),
            ),
        }
    }

    /// The reproduced figure for this column in the unit a report prints it (accuracies in %,
    /// log loss as is, MACs in M or as a count, parameters in K or as a count), or None when
    /// the run holds none. Subset columns have none: a run trains on one subset, and which one
    /// is the profile's data, not a figure of the system.
    pub fn reproduced(&self, system: &SystemRecord) -> Option<f64> {
        let e = &system.evaluation;
        let c = &system.complexity;
        match self {
            PublishedColumn::Device(d) => e.device_accuracy.get(d).map(|s| 100.0 * s.accuracy),
            PublishedColumn::DeviceGroup(g) => g.accuracy(system).map(|a| 100.0 * a),
            PublishedColumn::Class(i) => e.class_accuracy.get(*i).map(|a| 100.0 * a),
            PublishedColumn::Split(_) | PublishedColumn::SplitMean => None,
            PublishedColumn::Accuracy => Some(100.0 * e.accuracy),
            PublishedColumn::MacroAccuracy => Some(100.0 * e.macro_accuracy),
            PublishedColumn::LogLoss => Some(e.log_loss),
            PublishedColumn::MacsM => Some(c.macs as f64 / 1e6),
            PublishedColumn::ParamsK => Some(c.params as f64 / 1e3),
            PublishedColumn::Params => Some(c.params as f64),
            PublishedColumn::Macs => Some(c.macs as f64),
        }
    }
}

impl fmt::Display for PublishedColumn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

/// Why a key is not a column: the message names the key, the closest reserved name when the
/// key looks like a misspelling of one, and the valid kinds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownColumn {
    pub key: String,
    pub suggestion: Option<String>,
}

impl fmt::Display for UnknownColumn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown column `{}`", self.key)?;
        if let Some(s) = &self.suggestion {
            write!(
                f,
                " (did you mean `{s}`? a device id this close to a reserved name is taken for a misspelling)"
            )?;
        }
        write!(f, "; {COLUMN_KINDS}")
    }
}

impl std::error::Error for UnknownColumn {}

impl FromStr for PublishedColumn {
    type Err = UnknownColumn;

    fn from_str(key: &str) -> Result<Self, UnknownColumn> {
        if let Some((_, c)) = METRICS.iter().find(|(k, _)| *k == key) {
            return Ok(c.clone());
        }
        if let Some(g) = DeviceGroup::ALL.iter().find(|g| g.key() == key) {
            return Ok(PublishedColumn::DeviceGroup(*g));
        }
        if let Some(i) = CLASSES.iter().position(|c| *c == key) {
            return Ok(PublishedColumn::Class(i));
        }
        if let Some(s) = TrainSplit::ALL.iter().find(|s| s.key() == key) {
            return Ok(PublishedColumn::Split(*s));
        }
        if key == SPLIT_MEAN {
            return Ok(PublishedColumn::SplitMean);
        }
        let normalised = key.trim().to_lowercase().replace([' ', '-'], "_");
        let suggestion = closest_reserved(&normalised);
        let is_id = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if is_id && suggestion.is_none() {
            return Ok(PublishedColumn::Device(key.to_string()));
        }
        let suggestion = suggestion.or_else(|| {
            (normalised != key && KNOWN_DEVICES.contains(&normalised.as_str()))
                .then_some(normalised)
        });
        Err(UnknownColumn {
            key: key.to_string(),
            suggestion,
        })
    }
}

/// The reserved name `key` is a likely misspelling of: equal after normalising, or at most one
/// edit away (two for names longer than five letters). Device ids are short (a, s7), so none
/// of them comes this close to a reserved name.
fn closest_reserved(key: &str) -> Option<String> {
    reserved()
        .into_iter()
        .map(|r| (edit_distance(key, &r), r))
        .filter(|(d, r)| *d <= if r.chars().count() > 5 { 2 } else { 1 })
        .min_by_key(|(d, _)| *d)
        .map(|(_, r)| r)
}

/// Optimal-string-alignment distance: insertions, deletions, substitutions and transpositions
/// of neighbours (`airprot` is one edit from `airport`).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // d[i][j]: distance between the first i chars of a and the first j of b.
    let mut d: Vec<Vec<usize>> = (0..=a.len())
        .map(|i| (0..=b.len()).map(|j| if i == 0 { j } else { i }).collect())
        .collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// Ordered by key, as the recipe's maps always were, so a recipe's hash and a run record's JSON
/// do not depend on this type; tables order columns by [`PublishedColumn::table_order`].
impl Ord for PublishedColumn {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

impl PartialOrd for PublishedColumn {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Serialize for PublishedColumn {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.key())
    }
}

impl<'de> Deserialize<'de> for PublishedColumn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let key = String::deserialize(d)?;
        key.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_to_their_kind_and_back() {
        for key in [
            "a",
            "s6",
            "d",
            "s10",
            "unknown",
            "seen",
            "unseen",
            "others",
            "airport",
            "tram",
            "metro_station",
            "split5",
            "split100",
            "split_mean",
            "accuracy",
            "macro_accuracy",
            "log_loss",
            "macs_m",
            "params_k",
            "params",
            "macs",
        ] {
            let c: PublishedColumn = key.parse().unwrap();
            assert_eq!(c.key(), key);
        }
        assert_eq!("s7".parse(), Ok(PublishedColumn::Device("s7".into())));
        assert_eq!("park".parse(), Ok(PublishedColumn::Class(4)));
        assert_eq!(
            "split25".parse(),
            Ok(PublishedColumn::Split(TrainSplit::Split25))
        );
    }

    #[test]
    fn misspellings_are_refused_with_a_suggestion() {
        for (bad, meant) in [
            ("metro_staton", "metro_station"),
            ("airprot", "airport"),
            ("trams", "tram"),
            ("acuracy", "accuracy"),
            ("split_25", "split25"),
            ("unsen", "unseen"),
            ("Metro Station", "metro_station"),
            ("S1", "s1"),
        ] {
            let e = bad.parse::<PublishedColumn>().unwrap_err();
            assert_eq!(e.suggestion.as_deref(), Some(meant), "{bad}");
            assert!(e.to_string().contains("a scene class (airport"), "{e}");
        }
        assert_eq!(
            "5%".parse::<PublishedColumn>().unwrap_err().suggestion,
            None
        );
    }

    #[test]
    fn table_order_is_the_dcase_order() {
        let mut cols: Vec<PublishedColumn> = [
            "params_k",
            "accuracy",
            "s10",
            "tram",
            "unseen",
            "s1",
            "a",
            "split_mean",
            "split5",
        ]
        .iter()
        .map(|k| k.parse().unwrap())
        .collect();
        cols.sort_by_key(PublishedColumn::table_order);
        let keys: Vec<String> = cols.iter().map(PublishedColumn::key).collect();
        assert_eq!(
            keys,
            [
                "a",
                "s1",
                "s10",
                "unseen",
                "tram",
                "split5",
                "split_mean",
                "accuracy",
                "params_k"
            ]
        );
    }
}
