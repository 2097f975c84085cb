//! Every report under a site root (`reports/`), loaded, and the tables that compare them.

use crate::error::{Error, IoContext, Result};
use crate::figures;
use crate::frames::accuracy_pairs;
use crate::notebook::Figure;
use crate::report::{Report, RECORD};
use crate::sums::{self, MARKER, SUMS};
use crate::table::polars_err;
use polars::prelude::*;
use std::fs;
use std::path::{Path, PathBuf};

/// The site's checksum list, at the root: `index.html` and each report's `SHA256SUMS`.
pub const SITE_SUMS: &str = "SHA256SUMS.site";

pub fn exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

/// Whether `dir` itself is a report (or what is left of one).
pub fn is_report(dir: &Path) -> bool {
    [RECORD, SUMS, MARKER].iter().any(|f| exists(&dir.join(f)))
}

/// The report directories directly under `root`, sorted by name: the non-hidden directories
/// holding `results.json`, `SHA256SUMS` or the report marker (a hidden `.<id>.partial-*` is a
/// render in progress). Refuses a root that is missing, not a directory, or itself a report.
pub fn report_dirs(root: &Path) -> Result<Vec<String>> {
    let what = match fs::metadata(root) {
        Ok(m) if m.is_dir() => None,
        Ok(_) => Some("is not a directory"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some("does not exist"),
        Err(e) => return Err(Error::io(root, e)),
    };
    if let Some(what) = what {
        return Err(Error::file(
            root,
            format!("{what}: give the directory holding the report directories (e.g. `reports`)"),
        ));
    }
    if is_report(root) {
        return Err(Error::file(
            root,
            "is a report directory, not a site root: give the directory holding report \
             directories (e.g. `reports`)",
        ));
    }
    let mut dirs = Vec::new();
    for entry in fs::read_dir(root).at(root)? {
        let entry = entry.at(root)?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') || !entry.file_type().at(entry.path())?.is_dir() {
            continue;
        }
        if is_report(&entry.path()) {
            dirs.push(name);
        }
    }
    dirs.sort();
    Ok(dirs)
}

/// [`report_dirs`], refusing a root with none.
pub fn reports_of(root: &Path) -> Result<Vec<String>> {
    let dirs = report_dirs(root)?;
    if dirs.is_empty() {
        return Err(Error::file(
            root,
            format!(
                "holds no report directory (a directory with {RECORD} and {SUMS}, as `ascrepro \
                 run recipes/<id>.yaml --out {}/<id>` writes it)",
                root.display()
            ),
        ));
    }
    Ok(dirs)
}

/// Every report of a site root, each checked against its `SHA256SUMS`.
#[derive(Debug)]
pub struct Site {
    root: PathBuf,
    reports: Vec<Report>,
}

impl Site {
    /// Opens every report under `root` ([`Report::open`]: refused, naming the file, unless it
    /// checks against its `SHA256SUMS`). Where the root has a `SHA256SUMS.site` (as `ascrepro
    /// site` writes it), each file it lists must hash as listed and each report's `SHA256SUMS`
    /// must be among them.
    pub fn open(root: impl AsRef<Path>) -> Result<Site> {
        let root = root.as_ref().to_path_buf();
        let dirs = reports_of(&root)?;
        let reports = dirs
            .iter()
            .map(|d| Report::open(root.join(d)))
            .collect::<Result<Vec<_>>>()?;
        check_site_sums(&root, &dirs)?;
        Ok(Site { root, reports })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The reports, by directory name.
    pub fn reports(&self) -> &[Report] {
        &self.reports
    }

    /// The report of recipe `id` (`cai2023_tfsepnet`, ...).
    pub fn report(&self, id: &str) -> Option<&Report> {
        self.reports.iter().find(|r| r.id() == id)
    }

    /// One row per report: recipe, title, profile, systems, published rows, the published
    /// accuracies it reproduced, contradictions and notes.
    pub fn overview(&self) -> Result<DataFrame> {
        let count = |f: &dyn Fn(&Report) -> usize| -> Vec<u64> {
            self.reports.iter().map(|r| f(r) as u64).collect()
        };
        let findings = |kind_is_contradiction: bool| {
            count(&|r: &Report| {
                r.record()
                    .findings
                    .iter()
                    .filter(|f| (f.kind == "contradiction") == kind_is_contradiction)
                    .count()
            })
        };
        let text =
            |f: &dyn Fn(&Report) -> String| -> Vec<String> { self.reports.iter().map(f).collect() };
        DataFrame::new_infer_height(vec![
            Column::new("recipe".into(), text(&|r| r.id().to_string())),
            Column::new("title".into(), text(&|r| r.record().title.clone())),
            Column::new("profile".into(), text(&|r| r.record().profile.clone())),
            Column::new("systems".into(), count(&|r| r.record().systems.len())),
            Column::new(
                "published_rows".into(),
                count(&|r| r.record().published.len()),
            ),
            Column::new(
                "reproduced_accuracies".into(),
                count(&|r| {
                    let rows: Vec<_> = r.record().published.iter().collect();
                    accuracy_pairs(&rows, &r.record().systems).len()
                }),
            ),
            Column::new("contradictions".into(), findings(true)),
            Column::new("notes".into(), findings(false)),
        ])
        .map_err(|e| polars_err("overview", e))
    }

    /// Every report's device-wise table, one row per system, a `recipe` column first; a
    /// device one report has no clip of is null there.
    pub fn device_wise(&self) -> Result<DataFrame> {
        self.stacked("device_wise", Report::device_wise)
    }

    /// Every report's class-wise table, a `recipe` column first.
    pub fn class_wise(&self) -> Result<DataFrame> {
        self.stacked("class_wise", Report::class_wise)
    }

    /// Every report's systems, a `recipe` column first.
    pub fn systems(&self) -> Result<DataFrame> {
        self.stacked("systems", Report::systems)
    }

    /// Every report's complexity summary, a `recipe` column first.
    pub fn complexity(&self) -> Result<DataFrame> {
        self.stacked("complexity_summary", Report::complexity)
    }

    /// Every report's findings (`kind`, `text`), a `recipe` column first.
    pub fn findings(&self) -> Result<DataFrame> {
        self.stacked("findings", Report::findings)
    }

    /// Every report's method effects, a `recipe` column first.
    pub fn effects(&self) -> Result<DataFrame> {
        self.stacked("effects", Report::effects)
    }

    /// The rows of a site table (a `recipe` and a `system_id` column, as [`Site::device_wise`]
    /// has) whose system reproduces a published row ([`Report::reproducing_systems`]).
    pub fn reproducing(&self, frame: &DataFrame) -> Result<DataFrame> {
        let err = |e| polars_err("reproducing", e);
        let recipe = frame
            .column("recipe")
            .and_then(|c| c.str().cloned())
            .map_err(err)?;
        let system = frame
            .column("system_id")
            .and_then(|c| c.str().cloned())
            .map_err(err)?;
        let reproducing: Vec<(&str, Vec<&str>)> = self
            .reports
            .iter()
            .map(|r| (r.id(), r.reproducing_systems()))
            .collect();
        let mask: BooleanChunked = (0..frame.height())
            .map(|i| {
                let (Some(r), Some(s)) = (recipe.get(i), system.get(i)) else {
                    return false;
                };
                reproducing
                    .iter()
                    .any(|(id, systems)| *id == r && systems.contains(&s))
            })
            .collect();
        frame.filter(&mask).map_err(err)
    }

    /// Every published accuracy a report reproduced, one row each: recipe, published table,
    /// row label, column, published and reproduced accuracy (%) and their difference.
    pub fn accuracy_pairs(&self) -> Result<DataFrame> {
        let mut recipe = Vec::new();
        let mut table = Vec::new();
        let mut label = Vec::new();
        let mut column = Vec::new();
        let mut published = Vec::new();
        let mut reproduced = Vec::new();
        for r in &self.reports {
            let rows: Vec<_> = r.record().published.iter().collect();
            for p in accuracy_pairs(&rows, &r.record().systems) {
                recipe.push(r.id().to_string());
                table.push(p.table);
                label.push(p.label);
                column.push(p.column);
                published.push(p.published);
                reproduced.push(p.reproduced);
            }
        }
        let difference: Vec<f64> = reproduced
            .iter()
            .zip(&published)
            .map(|(r, p)| r - p)
            .collect();
        DataFrame::new_infer_height(vec![
            Column::new("recipe".into(), recipe),
            Column::new("table".into(), table),
            Column::new("published_label".into(), label),
            Column::new("column".into(), column),
            Column::new("published".into(), published),
            Column::new("reproduced".into(), reproduced),
            Column::new("difference".into(), difference),
        ])
        .map_err(|e| polars_err("accuracy_pairs", e))
    }

    /// Published against reproduced accuracy over every report, one colour per recipe.
    pub fn published_vs_reproduced_figure(&self) -> Option<Figure> {
        let records: Vec<_> = self.reports.iter().map(Report::record).collect();
        figures::published_vs_reproduced_site(&records)
            .map(|plot| Figure::new("published vs reproduced accuracy, every report", plot))
    }

    /// Accuracy against MACs of every system of every report, one colour per report.
    pub fn accuracy_against_macs_figure(&self) -> Figure {
        let records: Vec<_> = self.reports.iter().map(Report::record).collect();
        Figure::new(
            "accuracy against MACs, every system of every report",
            figures::accuracy_against_macs(&records),
        )
    }

    /// One frame per report stacked under a `recipe` column; columns in order of first
    /// appearance, null where a report lacks one.
    fn stacked(&self, what: &str, frame: impl Fn(&Report) -> DataFrame) -> Result<DataFrame> {
        let frames: Vec<(String, DataFrame)> = self
            .reports
            .iter()
            .map(|r| (r.id().to_string(), frame(r)))
            .collect();
        stack(&frames).map_err(|e| polars_err(what, e))
    }
}

/// `frames` stacked under a leading `recipe` column, each padded with null columns to the
/// union of their columns (in order of first appearance, with the first frame's type).
fn stack(frames: &[(String, DataFrame)]) -> PolarsResult<DataFrame> {
    let mut schema: Vec<(PlSmallStr, DataType)> = Vec::new();
    for (_, df) in frames {
        for c in df.columns() {
            if !schema.iter().any(|(n, _)| n == c.name()) {
                schema.push((c.name().clone(), c.dtype().clone()));
            }
        }
    }
    let mut out: Option<DataFrame> = None;
    for (recipe, df) in frames {
        let height = df.height();
        let mut columns = vec![Column::new("recipe".into(), vec![recipe.as_str(); height])];
        for (name, dtype) in &schema {
            columns.push(match df.column(name) {
                Ok(c) => c.cast(dtype)?,
                Err(_) => Column::full_null(name.clone(), height, dtype),
            });
        }
        let part = DataFrame::new(height, columns)?;
        match &mut out {
            None => out = Some(part),
            Some(all) => {
                all.vstack_mut(&part)?;
            }
        }
    }
    Ok(out.unwrap_or_default())
}

/// Each entry of `SHA256SUMS.site`, when the root has one, against the file it names; each
/// report's `SHA256SUMS` must be listed.
fn check_site_sums(root: &Path, dirs: &[String]) -> Result<()> {
    let path = root.join(SITE_SUMS);
    if !exists(&path) {
        return Ok(());
    }
    let entries = sums::parse_sums(&crate::files::read_to_string(&path)?)
        .map_err(|e| Error::at_line(&path, e.line, e.message))?;
    for e in &entries {
        let actual = sums::sha256_file(&root.join(&e.path))?;
        if !actual.eq_ignore_ascii_case(&e.hash) {
            return Err(Error::file(
                root.join(&e.path),
                format!(
                    "changed since the site was written: SHA-256 {actual}, {SITE_SUMS} lists {}",
                    e.hash
                ),
            ));
        }
    }
    for d in dirs {
        let listed = format!("{d}/{SUMS}");
        if !entries.iter().any(|e| e.path == listed) {
            return Err(Error::file(
                &path,
                format!(
                    "does not list `{listed}`: the report {d} was added after the site was \
                     written (run `ascrepro site {}`)",
                    root.display()
                ),
            ));
        }
    }
    Ok(())
}
