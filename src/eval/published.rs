//! Published figures against reproduced ones: the rows a report transcribed, which system
//! reproduces each, and the published complexity figures recomputed from the architecture each
//! row describes.

use crate::compress::complexity::{count, CountOptions};
use crate::models::{ModelConfig, ModelSpec};
use crate::recipe::PublishedSpec;
use ascrepro_results::columns::PublishedColumn;
use ascrepro_results::instance;
use ascrepro_results::record::{ComplexityCheck, Finding, PublishedRow, LIMIT_MACS};
use std::collections::BTreeMap;

/// The published rows, each linked to the stage reproducing it when this run (of `profile`)
/// ran it (once, per split or per seed) and the row is not restricted to another profile.
pub fn rows(published: &[PublishedSpec], ran: &[&str], profile: &str) -> Vec<PublishedRow> {
    published
        .iter()
        .map(|p| PublishedRow {
            table: p.table.clone(),
            label: p.label.clone(),
            values: p.values.clone(),
            reproduced_by: p
                .stage
                .clone()
                .filter(|s| ran.iter().any(|r| instance::parse(r).0 == s))
                .filter(|_| p.profile.as_deref().is_none_or(|only| only == profile)),
            profile: p.profile.clone(),
            split: p.split,
            accuracy_unit: p.accuracy_unit,
        })
        .collect()
}

/// A published complexity figure: in K/M as most reports print it (matched by rounding or
/// truncation), or as an exact count (matched exactly).
struct Printed {
    value: f64,
    exact: bool,
}

impl Printed {
    /// The row's figure from the scaled column or, failing that, the count column.
    fn of(p: &PublishedSpec, scaled: PublishedColumn, count: PublishedColumn) -> Option<Printed> {
        let get = |c: &PublishedColumn| p.values.get(c).copied();
        get(&scaled)
            .map(|value| Printed {
                value,
                exact: false,
            })
            .or_else(|| get(&count).map(|value| Printed { value, exact: true }))
    }

    /// Whether our `count` is what was printed, `unit` being the scaled column's (1e3 or 1e6).
    fn matches(&self, count: u64, unit: f64) -> bool {
        if self.exact {
            count as f64 == self.value
        } else {
            printed_as(count as f64 / unit, self.value)
        }
    }

    /// The figure in the scaled column's unit.
    fn scaled(&self, unit: f64) -> f64 {
        if self.exact {
            self.value / unit
        } else {
            self.value
        }
    }

    /// As the finding quotes it: `6.83K params`, `1.65 MMACs`, `63748 params`.
    fn describe(printed: Option<&Printed>, scaled: &str, count: &str) -> String {
        match printed {
            Some(p) if p.exact => format!("{} {count}", p.value),
            Some(p) => format!("{}{scaled}", p.value),
            None => format!("– {count}"),
        }
    }
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
        let pp = Printed::of(p, PublishedColumn::ParamsK, PublishedColumn::Params);
        let pm = Printed::of(p, PublishedColumn::MacsM, PublishedColumn::Macs);
        let (params, macs, status) = match cfg
            .as_ref()
            .map(|c| count(c, input, &CountOptions::default()))
        {
            Ok(Ok(c)) => {
                let ok_p = pp.as_ref().is_none_or(|v| v.matches(c.params, 1e3));
                let ok_m = pm.as_ref().is_none_or(|v| v.matches(c.macs, 1e6));
                if !ok_p || !ok_m {
                    findings.push(Finding {
                        kind: "contradiction".into(),
                        text: format!(
                            "{} ({}): the report prints {} / {}, but the architecture it describes counts {} params / {} MACs ({:.2}K / {:.2}M) at input {}x{}x{}.",
                            p.label,
                            p.table,
                            Printed::describe(pp.as_ref(), "K params", "params"),
                            Printed::describe(pm.as_ref(), " MMACs", "MACs"),
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
                if let Some(f) = folded_over_limit(p, cfg.as_ref().expect("counted"), input, c.macs)
                {
                    findings.push(f);
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
            published_params_k: pp.map(|v| v.scaled(1e3)),
            published_macs_m: pm.map(|v| v.scaled(1e6)),
            params,
            macs,
            status,
        });
    }
    (checks, findings)
}

/// A finding when the network meets the MAC limit as trained but not as deployed: folding each
/// BatchNorm into the conv before it gives that conv a bias, which torchinfo's convention (the
/// challenge's) counts once per output element.
fn folded_over_limit(
    p: &PublishedSpec,
    cfg: &ModelConfig,
    input: [i64; 3],
    macs: u64,
) -> Option<Finding> {
    let fold = CountOptions {
        fold_bn: true,
        ..CountOptions::default()
    };
    let folded = count(cfg, input, &fold).ok()?;
    let trained = count(cfg, input, &CountOptions::default()).ok()?;
    (macs <= LIMIT_MACS && folded.macs > LIMIT_MACS).then(|| Finding {
        kind: "contradiction".into(),
        text: format!(
            "{} ({}): {macs} MACs as trained meets the {LIMIT_MACS} MAC limit, but with every BatchNorm folded into its conv for deployment the convs gain biases, counted once per output element as torchinfo does: {} MACs, above the limit ({} params instead of {}).",
            p.label,
            p.table,
            folded.macs,
            folded.params,
            trained.params
        ),
    })
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
