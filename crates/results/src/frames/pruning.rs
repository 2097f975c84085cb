//! The pruning table: for each prune stage's system, the widths per block, parameters and MACs
//! before and after pruning, and the pruned model's accuracy. Only a run with prune stages has
//! it (other reports are unchanged).

use super::content::pct;
use crate::error::Result;
use crate::record::{PruningRecord, SystemRecord, LIMIT_MACS};
use crate::table::{f64_col, frame, str_col, u64_col, ColSpec, Fmt, Table, TableSpec};

/// The table of the systems that record pruning; none when no system does.
pub fn pruning_table(systems: &[SystemRecord]) -> Result<Option<Table>> {
    let pruned: Vec<(&SystemRecord, &PruningRecord)> = systems
        .iter()
        .filter_map(|s| s.pruning.as_ref().map(|p| (s, p)))
        .collect();
    if pruned.is_empty() {
        return Ok(None);
    }
    let text = |f: fn(&SystemRecord, &PruningRecord) -> String| {
        pruned.iter().map(|(s, p)| f(s, p)).collect::<Vec<_>>()
    };
    let count =
        |f: fn(&PruningRecord) -> u64| pruned.iter().map(|(_, p)| Some(f(p))).collect::<Vec<_>>();
    let df = frame(
        "pruning",
        vec![
            str_col("system_id", text(|s, _| s.id.clone())),
            str_col("system", text(|s, _| s.label.clone())),
            str_col("from", text(|_, p| p.from.clone())),
            str_col("widths_before", text(|_, p| widths(&p.widths_before))),
            str_col("widths_after", text(|_, p| widths(&p.widths_after))),
            u64_col("params_before", count(|p| p.params_before)),
            u64_col("params_after", count(|p| p.params_after)),
            u64_col("macs_before", count(|p| p.macs_before)),
            u64_col("macs_after", count(|p| p.macs_after)),
            f64_col(
                "acc",
                pruned
                    .iter()
                    .map(|(s, _)| Some(pct(s.evaluation.macro_accuracy)))
                    .collect(),
            ),
        ],
    )?;
    let macs = Fmt::Mega {
        limit: Some(LIMIT_MACS),
    };
    let int = Fmt::Int { limit: None };
    Ok(Some(Table {
        name: "pruning".into(),
        df,
        spec: TableSpec {
            id: "t-pruning".into(),
            caption: "Structured pruning (kind: prune): the explicit widths per block, parameters and MACs of the network before and after pruning, and the pruned model's accuracy on the test split (macro average of the class-wise accuracies, %)".into(),
            cols: vec![
                ColSpec::new("system", "System", Fmt::Text),
                ColSpec::new("from", "Pruned from", Fmt::Code),
                ColSpec::new("widths_before", "before", Fmt::Code).group("Widths per block"),
                ColSpec::new("widths_after", "after", Fmt::Code).group("Widths per block"),
                ColSpec::new("params_before", "before", int).group("Params"),
                ColSpec::new("params_after", "after", int).group("Params"),
                ColSpec::new("macs_before", "before", macs).group("MACs (M)"),
                ColSpec::new("macs_after", "after", macs).group("MACs (M)"),
                ColSpec::new("acc", "Acc after", Fmt::Pct(1)),
            ],
            kind_col: None,
        },
    }))
}

/// A width list as the recipe writes it.
fn widths(w: &[i64]) -> String {
    w.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
}
