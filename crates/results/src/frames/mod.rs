//! The report's tables as DataFrames, each with the spec that lays it out
//! ([`crate::table::Table`]). [`ReportTables::build`] is the one list of them: the renderer
//! writes each to `results/<name>.csv|parquet` and shows it; [`crate::Report`] rebuilds the
//! same frames from `results.json`.

mod content;
mod pruning;
mod published;
mod quantization;
mod record_lists;

pub use content::{
    class_wise, complexity_checks, complexity_summary, confusion, curves, device_columns,
    device_wise, identity_tables, layer_sums, layers, slug, system_slugs, systems_table,
};
pub use pruning::pruning_table;
pub use published::{accuracy_pairs, published_vs_reproduced, AccuracyPair};
pub use quantization::quantization_table;
pub use record_lists::{effects, findings};

use crate::error::Result;
use crate::record::RunRecord;
use crate::table::Table;

/// The file (under `results/`) of the combined published-vs-reproduced table.
pub const PUBLISHED_VS_REPRODUCED: &str = "published_vs_reproduced";

/// Every table of a report, built from its run record.
pub struct ReportTables {
    /// Run identity, data manifests, platform, stage graph.
    pub identity: Vec<Table>,
    pub systems: Table,
    pub complexity: Table,
    /// Only for runs with prune stages.
    pub pruning: Option<Table>,
    /// Only for runs with quantize stages.
    pub quantization: Option<Table>,
    pub complexity_checks: Table,
    pub device_wise: Table,
    pub class_wise: Table,
    pub curves: Table,
    /// Per system, in the record's order: its layers and its confusion matrix.
    pub per_system: Vec<SystemTables>,
    /// Every published row beside its reproduction (one file).
    pub published: Table,
    /// The same, one table per published table (`Table 3`, ...), as the page shows them.
    pub published_by_table: Vec<Table>,
    pub findings: Table,
    pub effects: Table,
}

/// The tables of one system.
pub struct SystemTables {
    pub layers: Table,
    pub confusion: Table,
}

impl ReportTables {
    pub fn build(r: &RunRecord) -> Result<ReportTables> {
        let slugs = system_slugs(&r.systems);
        let per_system = r
            .systems
            .iter()
            .zip(&slugs)
            .map(|(s, slug)| {
                Ok(SystemTables {
                    layers: layers(s, slug)?,
                    confusion: confusion(s, slug)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let all: Vec<_> = r.published.iter().collect();
        let published = published_vs_reproduced(
            PUBLISHED_VS_REPRODUCED,
            "Published vs reproduced",
            &all,
            &r.systems,
            &r.profile,
        )?;
        let mut names: Vec<&str> = Vec::new();
        for row in &r.published {
            if !names.contains(&row.table.as_str()) {
                names.push(&row.table);
            }
        }
        let published_by_table = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let rows: Vec<_> = r.published.iter().filter(|p| p.table == *name).collect();
                let caption = format!(
                    "{name}: published (as printed in the report) vs reproduced in profile `{}`; difference = reproduced − published (accuracies in %, the reproduced value rounded as the report prints; MACs/params: our exact count, flagged beyond ±0.01)",
                    r.profile
                );
                published_vs_reproduced(
                    &format!("published_{i}"),
                    &caption,
                    &rows,
                    &r.systems,
                    &r.profile,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ReportTables {
            identity: identity_tables(r)?,
            systems: systems_table(&r.systems)?,
            complexity: complexity_summary(&r.systems)?,
            pruning: pruning_table(&r.systems)?,
            quantization: quantization_table(&r.systems)?,
            complexity_checks: complexity_checks(r)?,
            device_wise: device_wise(&r.systems, &r.profile)?,
            class_wise: class_wise(&r.systems, &r.profile)?,
            curves: curves(&r.systems)?,
            per_system,
            published,
            published_by_table,
            findings: findings(r)?,
            effects: effects(r)?,
        })
    }

    /// Every table the report writes under `results/` (the per-table published views are
    /// shown only: their rows are all in [`ReportTables::published`]).
    pub fn files(&self) -> Vec<&Table> {
        let mut out: Vec<&Table> = self.identity.iter().collect();
        out.extend([&self.systems, &self.complexity]);
        out.extend(self.pruning.iter());
        out.extend(self.quantization.iter());
        out.extend([
            &self.complexity_checks,
            &self.device_wise,
            &self.class_wise,
            &self.curves,
        ]);
        for s in &self.per_system {
            out.extend([&s.layers, &s.confusion]);
        }
        out.extend([&self.published, &self.findings, &self.effects]);
        out
    }

    /// The table written as `results/<name>.csv|parquet`.
    pub fn get(&self, name: &str) -> Option<&Table> {
        self.files().into_iter().find(|t| t.name == name)
    }
}
