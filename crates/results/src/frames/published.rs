//! The published-vs-reproduced tables: each published row as printed, the system reproducing
//! it with the same columns, and the difference cell by cell. Which figure a column compares
//! with is the column's own ([`PublishedColumn::reproduced`]); here it is only laid out.

use super::content::{clean, device_group, slug};
use crate::columns::{AccuracyUnit, DeviceGroup, PublishedColumn};
use crate::error::Result;
use crate::labels::{CLASSES, KNOWN_DEVICES};
use crate::published;
use crate::record::{PublishedRow, SystemRecord};
use crate::table::{f64_col, frame, opt_str_col, str_col, ColSpec, Fmt, Table, TableSpec};

/// The columns of `rows`, in the DCASE table order.
fn columns(rows: &[&PublishedRow]) -> Vec<PublishedColumn> {
    let mut cols: Vec<PublishedColumn> =
        rows.iter().flat_map(|r| r.values.keys().cloned()).collect();
    cols.sort_by_key(PublishedColumn::table_order);
    cols.dedup();
    cols
}

/// A published figure on the page's scale: accuracies printed as fractions go to %.
fn published_value(row: &PublishedRow, column: &PublishedColumn) -> Option<f64> {
    let v = *row.values.get(column)?;
    Some(
        if column.is_accuracy() && row.accuracy_unit != AccuracyUnit::Percent {
            clean(v * row.accuracy_unit.to_percent())
        } else {
            v
        },
    )
}

/// The reproduced figure; accuracies rid of binary noise, as the other tables store them.
fn reproduced_value(
    row: &PublishedRow,
    column: &PublishedColumn,
    systems: &[SystemRecord],
) -> Option<f64> {
    let v = published::reproduced(row, column, systems)?;
    Some(if column.is_accuracy() { clean(v) } else { v })
}

/// Decimals a published figure was printed with (0–6).
fn printed_decimals(x: f64) -> usize {
    (0..6)
        .find(|d| {
            let scaled = x * 10f64.powi(*d as i32);
            (scaled - scaled.round()).abs() < 1e-6
        })
        .unwrap_or(6)
}

/// The decimals a table prints its accuracies with: the most any of its published accuracies
/// shows (at least one). Per table, not per cell: a figure printed `48.30` reads back as 48.3.
fn accuracy_decimals<'a>(rows: impl Iterator<Item = &'a PublishedRow>) -> usize {
    rows.flat_map(|r| {
        r.values
            .keys()
            .filter(|c| c.is_accuracy())
            .filter_map(|c| published_value(r, c))
    })
    .map(printed_decimals)
    .max()
    .unwrap_or(0)
    .max(1)
}

/// reproduced − published. Accuracies: the reproduced value is first rounded as the report
/// printed its figures (`decimals`, its table's), so the difference is what a reader sees cell
/// by cell.
fn difference(column: &PublishedColumn, reproduced: f64, published: f64, decimals: usize) -> f64 {
    if column.is_accuracy() {
        let scale = 10f64.powi(decimals as i32);
        ((reproduced * scale).round() - (published * scale).round()) / scale
    } else {
        clean(reproduced - published)
    }
}

/// Header and header group of a column, as the DCASE tables head them.
fn header(column: &PublishedColumn) -> (String, &'static str) {
    let performance = |h: &str| (h.to_string(), "Performance");
    match column {
        PublishedColumn::Device(d) if KNOWN_DEVICES.contains(&d.as_str()) => {
            (d.to_uppercase(), device_group(d))
        }
        PublishedColumn::Device(d) => (d.to_uppercase(), "Other devices"),
        PublishedColumn::DeviceGroup(g) => {
            let h = match g {
                DeviceGroup::Seen => "Seen (A–S3)",
                DeviceGroup::Unseen => "Unseen (S4–S6)",
                DeviceGroup::Others => "Others",
            };
            (h.to_string(), "Device groups")
        }
        PublishedColumn::Class(i) => (CLASSES[*i].replace('_', " "), "Classes"),
        PublishedColumn::Split(s) => (format!("{}%", s.percent()), "Training subset"),
        PublishedColumn::SplitMean => ("Avg.".into(), "Training subset"),
        PublishedColumn::Accuracy => performance("Acc"),
        PublishedColumn::MacroAccuracy => performance("Macro acc"),
        PublishedColumn::LogLoss => performance("Log loss"),
        PublishedColumn::MacsM => performance("MACs (M)"),
        PublishedColumn::ParamsK => performance("Params (K)"),
        PublishedColumn::Params => performance("Params"),
        PublishedColumn::Macs => performance("MACs"),
    }
}

/// How a column's cells are shown: published figures with the decimals the report printed
/// (`decimals`: the most any published cell of the column has; for accuracies, of the table),
/// reproduced ones alike (one more for complexity), differences as [`difference`] computes them.
fn column_spec(column: &PublishedColumn, decimals: usize) -> ColSpec {
    let key = column.key();
    let (label, group) = header(column);
    let spec = match column {
        c if c.is_accuracy() => {
            ColSpec::new(&key, label, Fmt::Pct(decimals)).when("difference", Fmt::Diff(decimals))
        }
        PublishedColumn::LogLoss => ColSpec::new(&key, label, Fmt::Fixed(decimals.max(2)))
            .when("reproduced", Fmt::Fixed(3))
            .when("difference", Fmt::Signed(3)),
        PublishedColumn::MacsM | PublishedColumn::ParamsK => {
            let d = decimals.max(2);
            ColSpec::new(&key, label, Fmt::Fixed(d))
                .when("reproduced", Fmt::Fixed(d + 1))
                .when("difference", Fmt::DiffPrinted { printed: d })
        }
        _ => ColSpec::new(&key, label, Fmt::Int { limit: None }).when("difference", Fmt::DiffCount),
    };
    spec.group(group)
}

/// Why a row has no reproduced figures in this run.
fn not_reproduced(row: &PublishedRow, profile: &str) -> String {
    match (&row.reproduced_by, &row.profile) {
        (Some(id), _) => {
            format!("not reproduced in this profile (system `{id}` is not in this run)")
        }
        (None, Some(only)) if only != profile => {
            format!(
                "not reproduced in this profile (the recipe compares it in profile `{only}` only)"
            )
        }
        (None, _) => "not reproduced in this profile".to_string(),
    }
}

/// What a caption must say about rows that are not shown exactly as printed.
fn caption_notes(rows: &[&PublishedRow], columns: &[PublishedColumn]) -> String {
    let mut notes = String::new();
    let fractions: Vec<&str> = rows
        .iter()
        .filter(|r| r.accuracy_unit == AccuracyUnit::Fraction)
        .map(|r| r.label.as_str())
        .collect();
    if !fractions.is_empty() {
        notes += &format!(
            ". Printed as fractions, shown here in % (×100): {}",
            fractions.join("; ")
        );
    }
    if columns
        .iter()
        .any(|c| matches!(c, PublishedColumn::Split(_) | PublishedColumn::SplitMean))
    {
        notes += ". Training-subset columns hold one system per DCASE2024 subset; a run trains on one subset, so they are published only";
    }
    let finer = columns.iter().any(|c| {
        matches!(c, PublishedColumn::MacsM | PublishedColumn::ParamsK)
            && column_decimals(rows, c) > 2
    });
    if finer {
        notes += ". A MACs (M) or Params (K) figure printed with more than two decimals is flagged beyond what its own decimals can hide";
    }
    notes
}

/// The most decimals a published figure of `column` shows.
fn column_decimals(rows: &[&PublishedRow], column: &PublishedColumn) -> usize {
    rows.iter()
        .filter_map(|r| published_value(r, column))
        .map(printed_decimals)
        .max()
        .unwrap_or(0)
}

/// One published accuracy beside its reproduction, both in %.
#[derive(Debug, Clone, PartialEq)]
pub struct AccuracyPair {
    pub table: String,
    pub label: String,
    /// The column's key (`a`, `unseen`, `accuracy`, `split25`, ...).
    pub column: String,
    pub published: f64,
    pub reproduced: f64,
}

/// Every published accuracy of `rows` that this run reproduced, in row and column order.
pub fn accuracy_pairs(rows: &[&PublishedRow], systems: &[SystemRecord]) -> Vec<AccuracyPair> {
    let mut pairs = Vec::new();
    for row in rows {
        for column in columns(&[row]).iter().filter(|c| c.is_accuracy()) {
            let (Some(published), Some(reproduced)) = (
                published_value(row, column),
                reproduced_value(row, column, systems),
            ) else {
                continue;
            };
            pairs.push(AccuracyPair {
                table: row.table.clone(),
                label: row.label.clone(),
                column: column.key(),
                published,
                reproduced,
            });
        }
    }
    pairs
}

/// Published rows beside the systems that reproduce them in `profile`, with differences.
pub fn published_vs_reproduced(
    name: &str,
    caption: &str,
    rows: &[&PublishedRow],
    systems: &[SystemRecord],
    profile: &str,
) -> Result<Table> {
    let columns = columns(rows);
    let with_split = rows.iter().any(|r| r.split.is_some());
    let table_decimals =
        |table: &str| accuracy_decimals(rows.iter().copied().filter(|r| r.table == table));
    let mut table_col = Vec::new();
    let mut label_col = Vec::new();
    let mut split_col = Vec::new();
    let mut kind_col = Vec::new();
    let mut sys_id_col = Vec::new();
    let mut sys_col = Vec::new();
    let mut values: Vec<Vec<Option<f64>>> = vec![Vec::new(); columns.len()];
    for row in rows {
        // A row of per-split columns is reproduced by its stage's per-split systems.
        let per_split = row
            .values
            .keys()
            .any(|c| matches!(c, PublishedColumn::Split(_)));
        let runs = published::row_systems(row, systems);
        let seeds = runs.len();
        let system = match (runs.first(), &row.reproduced_by) {
            (Some(s), _) if seeds == 1 => Some((s.id.clone(), s.label.clone())),
            (Some(_), Some(stage)) => Some((
                stage.clone(),
                format!("`{stage}`: mean of {seeds} training seeds"),
            )),
            (None, Some(stage)) if per_split => Some((
                stage.clone(),
                format!("`{stage}` run once per training split (`{stage}@split…`)"),
            )),
            _ => None,
        };
        let mut push = |kind: &str, sys_id: Option<String>, sys: Option<String>| {
            table_col.push(row.table.clone());
            label_col.push(row.label.clone());
            split_col.push(row.split.map(|s| s.key()));
            kind_col.push(kind.to_string());
            sys_id_col.push(sys_id);
            sys_col.push(sys);
        };
        push("published", None, None);
        for (c, v) in columns.iter().zip(values.iter_mut()) {
            v.push(published_value(row, c));
        }
        match system {
            Some((id, label)) => {
                push("reproduced", Some(id), Some(label));
                push("difference", None, None);
                // Runs with several training seeds show their spread under the mean.
                let spread = columns
                    .iter()
                    .any(|c| published::seed_sd(row, c, systems).is_some());
                if spread {
                    push("seed sd", None, None);
                }
                let decimals = table_decimals(&row.table);
                for (c, v) in columns.iter().zip(values.iter_mut()) {
                    let rep = reproduced_value(row, c, systems);
                    v.push(rep);
                    v.push(match (rep, published_value(row, c)) {
                        (Some(r), Some(p)) => Some(difference(c, r, p, decimals)),
                        _ => None,
                    });
                    if spread {
                        v.push(published::seed_sd(row, c, systems).map(clean));
                    }
                }
            }
            None => {
                push("not reproduced", None, Some(not_reproduced(row, profile)));
                for v in values.iter_mut() {
                    v.push(None);
                }
            }
        }
    }
    let mut cols = vec![
        str_col("table", table_col),
        str_col("published_label", label_col),
    ];
    let mut spec_cols = vec![ColSpec::new(
        "published_label",
        "Published row",
        Fmt::TextGrouped,
    )];
    // Only tables printed one row per subset get the column, so the others keep their files.
    if with_split {
        cols.push(opt_str_col("split", split_col));
        spec_cols.push(ColSpec::new("split", "Subset", Fmt::Code));
    }
    cols.extend([
        str_col("row", kind_col),
        opt_str_col("system_id", sys_id_col),
        opt_str_col("system", sys_col),
    ]);
    spec_cols.extend([
        ColSpec::new("row", "", Fmt::Text),
        ColSpec::new("system", "System", Fmt::Text),
    ]);
    // On the page every table is shown alone; the file of all tables takes the finest.
    let shown_accuracy_decimals = accuracy_decimals(rows.iter().copied());
    for (c, v) in columns.iter().zip(values) {
        let decimals = if c.is_accuracy() {
            shown_accuracy_decimals
        } else {
            column_decimals(rows, c)
        };
        cols.push(f64_col(&c.key(), v));
        spec_cols.push(column_spec(c, decimals));
    }
    Ok(Table {
        name: name.to_string(),
        df: frame(name, cols)?,
        spec: TableSpec {
            id: format!("t-{}", slug(name)),
            caption: format!("{caption}{}", caption_notes(rows, &columns)),
            cols: spec_cols,
            kind_col: Some("row".into()),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_use_printed_precision() {
        let acc = PublishedColumn::Accuracy;
        let a = PublishedColumn::Device("a".into());
        assert_eq!(printed_decimals(53.9), 1);
        assert_eq!(printed_decimals(54.0), 0);
        assert_eq!(printed_decimals(6.83), 2);
        assert_eq!(printed_decimals(29.4196), 4);
        assert!((difference(&a, 55.34, 53.9, 1) - 1.4).abs() < 1e-9);
        assert!((difference(&acc, 53.86, 53.9, 1) - 0.0).abs() < 1e-9);
        assert!((difference(&acc, 68.806, 68.81, 2) - 0.0).abs() < 1e-9);
        // 48.30 as printed in a two-decimal table: 48.304 rounds to it.
        assert!((difference(&acc, 48.304, 48.3, 2) - 0.0).abs() < 1e-9);
        assert!((difference(&PublishedColumn::ParamsK, 6.838, 6.83, 1) - 0.008).abs() < 1e-9);
        assert!((difference(&PublishedColumn::Params, 63750.0, 63748.0, 1) - 2.0).abs() < 1e-9);
    }
}
