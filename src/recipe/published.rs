//! Checks of the published rows a recipe transcribes, beyond what parsing checks (each column
//! key is parsed into a [`PublishedColumn`] already): references, subsets, value ranges.

use super::ranges;
use super::validate::keys;
use super::{Ctx, Recipe};
use crate::error::Result;
use ascrepro_results::columns::{AccuracyUnit, PublishedColumn};

pub(super) fn validate(ctx: &Ctx, r: &Recipe) -> Result<()> {
    for (i, p) in r.published.iter().enumerate() {
        let idx = i.to_string();
        let at = |field: &str| ["published", idx.as_str(), field].map(str::to_string);
        let err = |path: &[String], msg: String| {
            let refs: Vec<&str> = path.iter().map(String::as_str).collect();
            ctx.err(&refs, msg)
        };
        if let Some(m) = &p.model {
            if !r.models.contains_key(m) {
                return Err(err(&at("model"), format!("no model `{m}` in `models`")));
            }
        }
        if let Some(s) = &p.stage {
            if !r.stages.iter().any(|t| t.id() == s) {
                return Err(err(&at("stage"), format!("no stage `{s}`")));
            }
        }
        if let Some(name) = &p.profile {
            if !r.profiles.contains_key(name) {
                return Err(err(
                    &at("profile"),
                    format!(
                        "no profile `{name}` (the recipe has: {})",
                        keys(&r.profiles)
                    ),
                ));
            }
        }
        if p.values.is_empty() {
            return Err(err(
                &at("values"),
                "a published row needs at least one value".into(),
            ));
        }
        let split_columns: Vec<String> = p
            .values
            .keys()
            .filter(|c| matches!(c, PublishedColumn::Split(_) | PublishedColumn::SplitMean))
            .map(PublishedColumn::key)
            .collect();
        if let (Some(split), Some(first)) = (p.split, split_columns.first()) {
            return Err(err(
                &at("split"),
                format!(
                    "the row names one subset (`split: {}`) but also has a column per subset (`{first}`): a table printed one column per subset leaves `split` out, one printed one row per subset has no subset columns",
                    split.key()
                ),
            ));
        }
        if p.split.is_none() {
            // A table whose rows name their subset is printed one row per subset: a row
            // without one would be compared with the wrong run.
            let named = r
                .published
                .iter()
                .enumerate()
                .find(|(_, q)| q.table == p.table && q.split.is_some());
            if let Some((j, q)) = named {
                return Err(err(
                    &at("split"),
                    format!(
                        "`{}` is printed one row per training subset (row {j}, `{}`, names `split: {}`), but this row (`{}`) names none: add `split:` (split5, split10, split25, split50 or split100)",
                        p.table,
                        q.label,
                        q.split.map(|s| s.key()).unwrap_or_default(),
                        p.label
                    ),
                ));
            }
        }
        for (column, value) in &p.values {
            let path = ["published", idx.as_str(), "values", &column.key()].map(str::to_string);
            if let Some(why) = out_of_range(column, *value, p.accuracy_unit) {
                return Err(err(&path, why));
            }
        }
    }
    Ok(())
}

/// Why `value` cannot be a figure of `column` printed in `unit`, if it cannot.
fn out_of_range(column: &PublishedColumn, value: f64, unit: AccuracyUnit) -> Option<String> {
    // Exhaustive, so a new column needs its range here.
    let range = match column {
        PublishedColumn::Device(_)
        | PublishedColumn::DeviceGroup(_)
        | PublishedColumn::Class(_)
        | PublishedColumn::Split(_)
        | PublishedColumn::SplitMean
        | PublishedColumn::Accuracy
        | PublishedColumn::MacroAccuracy => match unit {
            AccuracyUnit::Percent => ranges::PERCENT,
            AccuracyUnit::Fraction => ranges::FRACTION,
        },
        PublishedColumn::LogLoss => ranges::LOG_LOSS,
        PublishedColumn::MacsM => ranges::MACS_M,
        PublishedColumn::ParamsK => ranges::PARAMS_K,
        PublishedColumn::Params => ranges::PARAMS,
        PublishedColumn::Macs => ranges::MACS,
    };
    if let Err(why) = ranges::check(value, range) {
        return Some(match unit {
            _ if !column.is_accuracy() || !value.is_finite() || value < 0.0 => why,
            AccuracyUnit::Percent => format!("{why} (an accuracy in %; a row printing fractions says `accuracy_unit: fraction`)"),
            AccuracyUnit::Fraction => format!("{why}: not an accuracy as a fraction (0–1), as the row's `accuracy_unit: fraction` says"),
        });
    }
    let count = matches!(column, PublishedColumn::Params | PublishedColumn::Macs);
    if count && value.fract() != 0.0 {
        return Some(format!(
            "{value} is not a whole count; counts in K or M go in `params_k` / `macs_m`"
        ));
    }
    None
}
