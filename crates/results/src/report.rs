//! One rendered report, loaded: checked against its `SHA256SUMS`, its run record read, and
//! its tables and figures rebuilt by the code that rendered them.

use crate::error::{Error, Result};
use crate::figures;
use crate::files;
use crate::frames::ReportTables;
use crate::notebook::Figure;
use crate::record::RunRecord;
use crate::sums;
use crate::table::Table;
use polars::prelude::DataFrame;
use std::path::{Path, PathBuf};

/// The run record of a report directory.
pub const RECORD: &str = "results.json";

/// A report directory as `ascrepro run` writes it.
pub struct Report {
    dir: PathBuf,
    record: RunRecord,
    tables: ReportTables,
}

impl std::fmt::Debug for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Report")
            .field("dir", &self.dir)
            .field("recipe", &self.record.recipe_id)
            .field("profile", &self.record.profile)
            .field("systems", &self.record.systems.len())
            .finish()
    }
}

/// Reads a run record, naming the file and line of anything it cannot read.
pub fn read_record(path: &Path) -> Result<RunRecord> {
    let text = files::read_to_string(path)?;
    serde_json::from_str(&text).map_err(|e| {
        Error::at_line(
            path,
            Some(e.line()),
            format!("not a run record this ascrepro reads: {e}"),
        )
    })
}

impl Report {
    /// Opens the report in `dir`. Refuses it, naming the file, unless every file is listed in
    /// its `SHA256SUMS` and hashes as listed (`ascrepro verify`'s check): a figure read here
    /// is the figure the report was rendered with.
    pub fn open(dir: impl AsRef<Path>) -> Result<Report> {
        let dir = dir.as_ref().to_path_buf();
        sums::verify(&dir)?;
        let record = read_record(&dir.join(RECORD))?;
        let tables = ReportTables::build(&record)?;
        Ok(Report {
            dir,
            record,
            tables,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The recipe id (`cai2023_tfsepnet`, ...).
    pub fn id(&self) -> &str {
        &self.record.recipe_id
    }

    /// Everything the run recorded (`results.json`).
    pub fn record(&self) -> &RunRecord {
        &self.record
    }

    /// Every table of the report, as rendered.
    pub fn tables(&self) -> &ReportTables {
        &self.tables
    }

    /// The table written as `results/<name>.csv|parquet`, with the page's layout (it shows
    /// in a notebook as the report prints it).
    pub fn table(&self, name: &str) -> Result<&Table> {
        self.tables.get(name).ok_or_else(|| {
            let names: Vec<&str> = self
                .tables
                .files()
                .iter()
                .map(|t| t.name.as_str())
                .collect();
            Error::msg(format!(
                "report {} has no table `{name}`; it has: {}",
                self.dir.display(),
                names.join(", ")
            ))
        })
    }

    /// The evaluated systems: id, label, model, precision, training, notes.
    pub fn systems(&self) -> DataFrame {
        self.tables.systems.df.clone()
    }

    /// Accuracy (%) per device, one row per system, with overall accuracy, log loss, clips.
    pub fn device_wise(&self) -> DataFrame {
        self.tables.device_wise.df.clone()
    }

    /// Accuracy (%) per scene class, one row per system.
    pub fn class_wise(&self) -> DataFrame {
        self.tables.class_wise.df.clone()
    }

    /// Every published row, the system reproducing it and the difference, cell by cell.
    pub fn published_vs_reproduced(&self) -> DataFrame {
        self.tables.published.df.clone()
    }

    /// Training curves: one row per system and epoch.
    pub fn curves(&self) -> DataFrame {
        self.tables.curves.df.clone()
    }

    /// Parameters, MACs and memory per system, against the DCASE limits.
    pub fn complexity(&self) -> DataFrame {
        self.tables.complexity.df.clone()
    }

    /// Published complexity figures against our count of each architecture.
    pub fn complexity_checks(&self) -> DataFrame {
        self.tables.complexity_checks.df.clone()
    }

    /// Contradictions and notes.
    pub fn findings(&self) -> DataFrame {
        self.tables.findings.df.clone()
    }

    /// The credited methods' measured effects.
    pub fn effects(&self) -> DataFrame {
        self.tables.effects.df.clone()
    }

    /// The systems reproducing a published row, the first training seed's of each, in row
    /// order, each once.
    pub fn reproducing_systems(&self) -> Vec<&str> {
        let r = &self.record;
        let mut ids: Vec<&str> = Vec::new();
        for row in &r.published {
            if let Some(s) = crate::published::row_systems(row, &r.systems).first() {
                if !ids.contains(&s.id.as_str()) {
                    ids.push(&s.id);
                }
            }
        }
        ids
    }

    fn system_index(&self, system_id: &str) -> Result<usize> {
        let systems = &self.record.systems;
        systems
            .iter()
            .position(|s| s.id == system_id)
            .ok_or_else(|| {
                let ids: Vec<&str> = systems.iter().map(|s| s.id.as_str()).collect();
                Error::msg(format!(
                    "report {} has no system `{system_id}`; its systems: {}",
                    self.dir.display(),
                    ids.join(", ")
                ))
            })
    }

    /// The confusion matrix of one system (rows: true class; columns: predicted).
    pub fn confusion(&self, system_id: &str) -> Result<DataFrame> {
        let i = self.system_index(system_id)?;
        Ok(self.tables.per_system[i].confusion.df.clone())
    }

    /// Per-layer parameters and MACs of one system.
    pub fn layers(&self, system_id: &str) -> Result<DataFrame> {
        let i = self.system_index(system_id)?;
        Ok(self.tables.per_system[i].layers.df.clone())
    }

    /// Device-wise accuracy, one bar per system (the report's figure).
    pub fn device_figure(&self) -> Figure {
        Figure::new(
            format!("{}: device-wise accuracy", self.id()),
            figures::device_bars(&self.record.systems),
        )
    }

    /// Published against reproduced accuracies; `None` when the run reproduced none.
    pub fn published_vs_reproduced_figure(&self) -> Option<Figure> {
        figures::published_vs_reproduced(&self.record).map(|plot| {
            Figure::new(
                format!("{}: published vs reproduced accuracy", self.id()),
                plot,
            )
        })
    }

    /// Accuracy against MACs of every system.
    pub fn accuracy_against_macs_figure(&self) -> Figure {
        Figure::new(
            format!("{}: accuracy against MACs", self.id()),
            figures::accuracy_against_macs(&[&self.record]),
        )
    }

    /// Training loss and accuracy curves; `None` when no system recorded one.
    pub fn curve_figures(&self) -> Option<(Figure, Figure)> {
        figures::curves(&self.record.systems).map(|(loss, acc)| {
            (
                Figure::new(format!("{}: training loss", self.id()), loss),
                Figure::new(format!("{}: training accuracy", self.id()), acc),
            )
        })
    }

    /// The confusion matrix of one system as a heatmap.
    pub fn confusion_figure(&self, system_id: &str) -> Result<Figure> {
        let s = &self.record.systems[self.system_index(system_id)?];
        Ok(Figure::new(
            format!("{}: confusion of {}", self.id(), s.label),
            figures::confusion(s),
        ))
    }
}
