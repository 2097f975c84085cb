//! What a report contradicts by itself: its printed figures that their own parts do not add up
//! to (an overall accuracy that is not the mean of its device-wise figures, an average column
//! that is not the mean of its subsets), and the self-contradictions a recipe transcribes
//! (`conflicts`: two places of the report stating different values for one setting).

use crate::recipe::{ConflictSpec, PublishedSpec};
use ascrepro_results::columns::PublishedColumn;
use ascrepro_results::labels::{CLASSES, KNOWN_DEVICES};
use ascrepro_results::record::Finding;

/// Decimals a figure was printed with (0–6).
fn decimals(x: f64) -> i32 {
    (0..6)
        .find(|d| {
            let scaled = x * 10f64.powi(*d);
            (scaled - scaled.round()).abs() < 1e-6
        })
        .unwrap_or(6)
}

/// Half the unit of a figure printed with `decimals`: how far it may be from the true one.
fn half_unit(decimals: i32) -> f64 {
    0.5 * 10f64.powi(-decimals)
}

/// Each printed total that the mean of its printed parts rules out: the true total is the
/// mean of the true parts, so the printed total and the mean of the printed parts differ by at
/// most the parts' rounding plus the total's.
pub fn arithmetic(published: &[PublishedSpec]) -> Vec<Finding> {
    let mut out = Vec::new();
    for p in published {
        let get = |c: &PublishedColumn| p.values.get(c).copied();
        let devices: Option<Vec<f64>> = KNOWN_DEVICES
            .iter()
            .map(|d| get(&PublishedColumn::Device(d.to_string())))
            .collect();
        let classes: Option<Vec<f64>> = (0..CLASSES.len())
            .map(|i| get(&PublishedColumn::Class(i)))
            .collect();
        let splits: Vec<f64> = p
            .values
            .iter()
            .filter(|(c, _)| matches!(c, PublishedColumn::Split(_)))
            .map(|(_, v)| *v)
            .collect();
        let checks = [
            (
                devices,
                PublishedColumn::Accuracy,
                "its nine device-wise figures",
            ),
            (
                classes,
                PublishedColumn::MacroAccuracy,
                "its ten class-wise figures",
            ),
            (
                (splits.len() > 1).then_some(splits),
                PublishedColumn::SplitMean,
                "its per-subset figures",
            ),
        ];
        for (parts, total_column, what) in checks {
            let (Some(parts), Some(total)) = (parts, get(&total_column)) else {
                continue;
            };
            let mean = parts.iter().sum::<f64>() / parts.len() as f64;
            // A row prints its figures to one precision, which a figure whose last digits are
            // zeros (66.0) does not show: the finest of the row's figures is the row's.
            let finest = parts
                .iter()
                .map(|x| decimals(*x))
                .fold(decimals(total), i32::max);
            let slack = 2.0 * half_unit(finest);
            if (mean - total).abs() > slack + 1e-9 {
                let shown = decimals(total) as usize + 2;
                out.push(Finding {
                    kind: "contradiction".into(),
                    text: format!(
                        "{} ({}): the printed {} {total} is not the mean of {what} ({mean:.shown$}); rounding of the printed figures allows at most ±{slack:.shown$}.",
                        p.label,
                        p.table,
                        total_column.key(),
                    ),
                });
            }
        }
    }
    out
}

/// The self-contradictions the recipe transcribes, as findings.
pub fn transcribed(conflicts: &[ConflictSpec]) -> Vec<Finding> {
    conflicts
        .iter()
        .map(|c| {
            let said: Vec<String> = c
                .statements
                .iter()
                .map(|s| format!("{} says \"{}\"", s.r#where, s.says))
                .collect();
            Finding {
                kind: "contradiction".into(),
                text: format!(
                    "The report contradicts itself on {}: {}. This recipe uses {}.",
                    c.about,
                    said.join("; "),
                    c.recipe_uses
                ),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn row(values: &[(&str, f64)]) -> PublishedSpec {
        PublishedSpec {
            table: "Table 3".into(),
            label: "row".into(),
            model: None,
            stage: None,
            profile: None,
            split: None,
            accuracy_unit: Default::default(),
            values: values
                .iter()
                .map(|(k, v)| (k.parse().unwrap(), *v))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn totals_within_rounding_pass_and_others_are_flagged() {
        // Cai et al. 2023, Table 3, BC-ResNet: the devices' mean is 54.144, printed 54.2:
        // within the ±0.1 that one-decimal rounding allows.
        let bc = [
            ("a", 66.0),
            ("b", 52.4),
            ("c", 56.7),
            ("s1", 54.2),
            ("s2", 55.1),
            ("s3", 59.0),
            ("s4", 50.2),
            ("s5", 50.4),
            ("s6", 43.3),
        ];
        let mut values = bc.to_vec();
        values.push(("accuracy", 54.2));
        assert!(arithmetic(&[row(&values)]).is_empty());
        values.pop();
        values.push(("accuracy", 54.4));
        let f = arithmetic(&[row(&values)]);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].text.contains("54.144"), "{}", f[0].text);
        // Cai et al. 2024, Table 3, S2: 56.56 printed as 56.6.
        let s2 = [
            ("split5", 49.0),
            ("split10", 52.3),
            ("split25", 57.9),
            ("split50", 60.7),
            ("split100", 62.9),
            ("split_mean", 56.6),
        ];
        assert!(arithmetic(&[row(&s2)]).is_empty());
        let mut bad = s2.to_vec();
        bad[5].1 = 56.8;
        assert_eq!(arithmetic(&[row(&bad)]).len(), 1);
    }
}
