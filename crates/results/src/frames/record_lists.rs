//! The run's findings and method effects as tables: the report lists them in prose, these are
//! the same records as rows.

use crate::error::Result;
use crate::record::RunRecord;
use crate::table::{f64_col, frame, str_col, u64_col, ColSpec, Fmt, Table, TableSpec};

/// Every finding of the run: `contradiction` (a published figure our recomputation refutes)
/// or `note`, with its text.
pub fn findings(r: &RunRecord) -> Result<Table> {
    let f = &r.findings;
    Ok(Table {
        name: "findings".into(),
        df: frame(
            "findings",
            vec![
                str_col("kind", f.iter().map(|x| x.kind.clone()).collect()),
                str_col("text", f.iter().map(|x| x.text.clone()).collect()),
            ],
        )?,
        spec: TableSpec {
            id: "t-findings".into(),
            caption: "Findings: contradictions and notes".into(),
            cols: vec![
                ColSpec::new("kind", "Kind", Fmt::Text),
                ColSpec::new("text", "Finding", Fmt::Text),
            ],
            kind_col: Some("kind".into()),
        },
    })
}

/// Each credited method's paired effect in accuracy points (with minus without), its spread
/// over training seeds, the 95 % interval and the verdict.
pub fn effects(r: &RunRecord) -> Result<Table> {
    let e = &r.effects;
    let verdict = |v: crate::record::Verdict| {
        serde_json::to_value(v)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    };
    Ok(Table {
        name: "effects".into(),
        df: frame(
            "effects",
            vec![
                str_col("method", e.iter().map(|x| x.method.clone()).collect()),
                str_col("with", e.iter().map(|x| x.with.clone()).collect()),
                str_col("without", e.iter().map(|x| x.without.clone()).collect()),
                u64_col(
                    "runs",
                    e.iter().map(|x| Some(x.pairs.len() as u64)).collect(),
                ),
                f64_col("mean", e.iter().map(|x| x.mean).collect()),
                f64_col("sd", e.iter().map(|x| x.sd).collect()),
                f64_col("ci95_low", e.iter().map(|x| x.ci95.map(|c| c[0])).collect()),
                f64_col(
                    "ci95_high",
                    e.iter().map(|x| x.ci95.map(|c| c[1])).collect(),
                ),
                str_col("verdict", e.iter().map(|x| verdict(x.verdict)).collect()),
                str_col("statement", e.iter().map(|x| x.statement.clone()).collect()),
            ],
        )?,
        spec: TableSpec {
            id: "t-effects".into(),
            caption: "Effects of the credited methods (accuracy points, with − without)".into(),
            cols: vec![
                ColSpec::new("method", "Method", Fmt::Text),
                ColSpec::new("with", "With", Fmt::Text),
                ColSpec::new("without", "Without", Fmt::Text),
                ColSpec::new("runs", "Runs", Fmt::Int { limit: None }),
                ColSpec::new("mean", "Mean", Fmt::Signed(1)),
                ColSpec::new("sd", "SD", Fmt::Fixed(1)),
                ColSpec::new("ci95_low", "95 % low", Fmt::Signed(1)),
                ColSpec::new("ci95_high", "95 % high", Fmt::Signed(1)),
                ColSpec::new("verdict", "Verdict", Fmt::Text),
                ColSpec::new("statement", "Statement", Fmt::Text),
            ],
            kind_col: Some("verdict".into()),
        },
    })
}
