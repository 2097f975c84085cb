//! Published figures against reproduced ones: the rows a report transcribed, which system
//! reproduces each, and the published complexity figures recomputed from the architecture each
//! row describes.

use crate::compress::complexity::{count, CountOptions};
use crate::models::{ModelConfig, ModelSpec};
use crate::recipe::PublishedSpec;
use crate::results::{ComplexityCheck, Finding, PublishedRow};
use std::collections::BTreeMap;

/// The published rows, each linked to the system reproducing it when this run made it.
pub fn rows(published: &[PublishedSpec], ran: &[&str]) -> Vec<PublishedRow> {
    published
        .iter()
        .map(|p| PublishedRow {
            table: p.table.clone(),
            label: p.label.clone(),
            values: p.values.clone(),
            reproduced_by: p.stage.clone().filter(|s| ran.contains(&s.as_str())),
        })
        .collect()
}

/// Each published row naming a model: its printed params/MACs against our count at `input`,
/// with a contradiction finding for every mismatch.
pub fn complexity_checks(
    published: &[PublishedSpec],
    models: &BTreeMap<String, ModelSpec>,
    input: [i64; 3],
) -> (Vec<ComplexityCheck>, Vec<Finding>) {
    let mut findings = Vec::new();
    let mut checks = Vec::new();
    for p in published {
        let Some(key) = &p.model else { continue };
        let spec = &models[key];
        let cfg = ModelConfig::from_spec(spec).map_err(|(_, why)| why);
        let pp = p.values.get("params_k").copied();
        let pm = p.values.get("macs_m").copied();
        let (params, macs, status) = match cfg
            .as_ref()
            .map(|c| count(c, input, &CountOptions::default()))
        {
            Ok(Ok(c)) => {
                let ok_p = pp.is_none_or(|v| printed_as(c.params as f64 / 1e3, v));
                let ok_m = pm.is_none_or(|v| printed_as(c.macs as f64 / 1e6, v));
                if !ok_p || !ok_m {
                    findings.push(Finding {
                        kind: "contradiction".into(),
                        text: format!(
                            "{} ({}): the report prints {} params / {} MMACs, but the architecture it describes counts {} params / {} MACs ({:.2}K / {:.2}M) at input {}x{}x{}.",
                            p.label,
                            p.table,
                            pp.map(|v| format!("{v}K")).unwrap_or("–".into()),
                            pm.map(|v| format!("{v}")).unwrap_or("–".into()),
                            c.params,
                            c.macs,
                            c.params as f64 / 1e3,
                            c.macs as f64 / 1e6,
                            input[0],
                            input[1],
                            input[2]
                        ),
                    });
                }
                let status = if ok_p && ok_m { "match" } else { "mismatch" };
                (Some(c.params), Some(c.macs), status.to_string())
            }
            Ok(Err(e)) => (None, None, format!("not counted: {e}")),
            Err(why) => (None, None, format!("not counted: {why}")),
        };
        checks.push(ComplexityCheck {
            label: p.label.clone(),
            model: spec.arch.clone() + &describe_spec(spec),
            published_params_k: pp,
            published_macs_m: pm,
            params,
            macs,
            status,
        });
    }
    (checks, findings)
}

/// True when `exact`, rounded or truncated to the decimals of `printed`, gives `printed`
/// (reports do both: Table 3 prints 6,838 parameters as 6.83K).
fn printed_as(exact: f64, printed: f64) -> bool {
    let mut decimals = 0;
    while decimals < 4
        && ((printed * 10f64.powi(decimals)).round() - printed * 10f64.powi(decimals)).abs() > 1e-6
    {
        decimals += 1;
    }
    let scale = 10f64.powi(decimals);
    let target = (printed * scale).round();
    (exact * scale).round() == target || (exact * scale + 1e-9).floor() == target
}

fn describe_spec(m: &ModelSpec) -> String {
    let mut s = String::new();
    if let Some(w) = m.width {
        s += &format!(" C={w}");
    }
    if let Some(d) = m.depth {
        s += &format!(" depth {d}");
    }
    if let Some(w) = &m.widths {
        s += &format!(" widths {w:?}");
    }
    if let Some(n) = &m.norm {
        s += &format!(" {n}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::printed_as;

    #[test]
    fn printed_figures_match_by_rounding_or_truncation() {
        assert!(printed_as(6.838, 6.83)); // truncated
        assert!(printed_as(1.650149, 1.65));
        assert!(printed_as(10.22034, 10.22));
        assert!(printed_as(757.05, 757.05));
        assert!(!printed_as(121.82256, 242.18));
        assert!(!printed_as(6.85, 6.83));
    }
}
