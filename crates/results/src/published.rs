//! A published row's reproduced figures: which runs (one per training seed) reproduce it, and
//! their mean and spread in each of its columns.

use crate::columns::{PublishedColumn, TrainSplit};
use crate::instance;
use crate::record::{PublishedRow, SystemRecord};
use std::collections::BTreeMap;

/// The runs of `stage` on `split` (`None`: not expanded over splits), one per training seed.
fn runs<'a>(
    stage: &str,
    split: Option<&str>,
    systems: &'a [SystemRecord],
) -> Vec<&'a SystemRecord> {
    systems
        .iter()
        .filter(|s| {
            let (base, inst) = instance::parse(&s.id);
            base == stage && inst.split.as_deref() == split
        })
        .collect()
}

/// The runs reproducing a published row's figures other than per-split ones, one per training
/// seed: its stage's, or, for a stage run once per split, those of the split the row names.
pub fn row_systems<'a>(row: &PublishedRow, systems: &'a [SystemRecord]) -> Vec<&'a SystemRecord> {
    let Some(stage) = row.reproduced_by.as_deref() else {
        return Vec::new();
    };
    let whole = runs(stage, None, systems);
    match row.split {
        Some(split) if whole.is_empty() => runs(stage, Some(&split.key()), systems),
        _ => whole,
    }
}

/// The reproduced figures of `row` in `column`, one per training seed. A split column (Cai et
/// al. 2024, Table 3: one column per training subset) is the accuracy of the row's stage run
/// on that split (`<stage>@<split>`); their average is, per seed, the mean over the row's split
/// columns, for the seeds that reproduced every one.
pub fn replicates(
    row: &PublishedRow,
    column: &PublishedColumn,
    systems: &[SystemRecord],
) -> Vec<f64> {
    let Some(stage) = row.reproduced_by.as_deref() else {
        return Vec::new();
    };
    let on_split = |split: TrainSplit| -> BTreeMap<usize, f64> {
        runs(stage, Some(&split.key()), systems)
            .into_iter()
            .filter_map(|s| {
                let seed = instance::parse(&s.id).1.seed;
                Some((seed, PublishedColumn::Accuracy.reproduced(s)?))
            })
            .collect()
    };
    match column {
        PublishedColumn::Split(split) => on_split(*split).into_values().collect(),
        PublishedColumn::SplitMean => {
            let per_split: Vec<BTreeMap<usize, f64>> = row
                .values
                .keys()
                .filter_map(|c| match c {
                    PublishedColumn::Split(s) => Some(on_split(*s)),
                    _ => None,
                })
                .collect();
            let Some(first) = per_split.first() else {
                return Vec::new();
            };
            first
                .keys()
                .filter_map(|seed| {
                    let values: Option<Vec<f64>> =
                        per_split.iter().map(|m| m.get(seed).copied()).collect();
                    values.map(|v| v.iter().sum::<f64>() / v.len() as f64)
                })
                .collect()
        }
        other => row_systems(row, systems)
            .into_iter()
            .filter_map(|s| other.reproduced(s))
            .collect(),
    }
}

/// The reproduced figure of `row` in `column`: the mean over its training seeds.
pub fn reproduced(
    row: &PublishedRow,
    column: &PublishedColumn,
    systems: &[SystemRecord],
) -> Option<f64> {
    let v = replicates(row, column, systems);
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// The standard deviation of `row`'s figure in `column` over its training seeds, when it ran
/// with more than one.
pub fn seed_sd(
    row: &PublishedRow,
    column: &PublishedColumn,
    systems: &[SystemRecord],
) -> Option<f64> {
    let v = replicates(row, column, systems);
    let n = v.len();
    (n > 1).then(|| {
        let m = v.iter().sum::<f64>() / n as f64;
        (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1) as f64).sqrt()
    })
}
