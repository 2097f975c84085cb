//! The site: one browsable index over every report in a directory (`reports/`), and its check.
//!
//! A site root holds report directories (`<id>/`, each as [`super::render`] writes it), their
//! wall-clock timings beside them (`<id>.timings.html|json`, never checksummed), and the two
//! files [`write`] (`ascrepro site`) writes:
//! - `index.html`: one row per report, sorted by recipe id: title, citation, profile, a headline
//!   published-vs-reproduced figure ([`headline`]), the number of contradictions and notes, the
//!   report's checksum status, and links to the report and its timings page (always: git
//!   ignores timings, so a fresh checkout has none, and the page must not depend on them). As
//!   with the report, the data ([`SiteView`], built from each report's `results.json`) is kept
//!   apart from the layout (`templates/site.html`, sharing the report's styles). It holds no
//!   timestamp and no absolute path: the same reports give the same bytes.
//! - [`SITE_SUMS`] (`SHA256SUMS.site`, in `sha256sum` format): the SHA-256 of `index.html` and
//!   of each report's `SHA256SUMS` (`<id>/SHA256SUMS`), so that list and the reports' own
//!   cover every byte of the site but the timings (`cd reports && sha256sum -c
//!   SHA256SUMS.site` works too). Its own name keeps the site root from looking like a report.
//!
//! A report directory is a non-hidden subdirectory holding `results.json`, `SHA256SUMS` or the
//! report marker; hidden ones (`.<id>.partial-*`: a render in progress) are skipped.
//! `ascrepro verify <root>` ([`verify`], in `site/check.rs`) checks every report against its
//! `SHA256SUMS`, then that `index.html` and `SHA256SUMS.site` are exactly what [`write`] would
//! write now. `ascrepro run` calls [`update_after_run`] once it wrote a report: a report
//! written into a site ([`site_of`]) rewrites the site's index.

use crate::error::{Error, Result};
use crate::fsio;
use ascrepro_results::columns::PublishedColumn;
use ascrepro_results::frames::{self, published_vs_reproduced};
use ascrepro_results::record::{PublishedRow, RunRecord};
use ascrepro_results::report::{read_record, RECORD};
pub use ascrepro_results::site::SITE_SUMS;
use ascrepro_results::site::{exists, reports_of};
use ascrepro_results::sums::SUMS;
use ascrepro_results::table::{self as tables, Table};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

mod check;
pub use check::{verify, verify_dir, Verified};

/// The site index, at the root.
pub const INDEX: &str = "index.html";
/// The element that marks an `index.html` as the site's: [`write`] replaces only such a page.
const PAGE_MARKER: &str = r#"<meta name="ascrepro-page" content="site">"#;

/// The published columns a headline compares, most telling first: the overall figures.
const OVERALL: [PublishedColumn; 3] = [
    PublishedColumn::Accuracy,
    PublishedColumn::MacroAccuracy,
    PublishedColumn::SplitMean,
];

/// What `templates/site.html` lays out: plain strings, counts and flags.
#[derive(Debug, Clone, Serialize)]
pub struct SiteView {
    pub generator: String,
    pub page_marker: &'static str,
    pub sums_file: &'static str,
    /// Sorted by recipe id (then directory name).
    pub entries: Vec<SiteEntry>,
    /// Reports failing their checksums.
    pub failing: usize,
    pub any_demo: bool,
}

/// One report of the site.
#[derive(Debug, Clone, Serialize)]
pub struct SiteEntry {
    /// The report directory's name under the root.
    pub dir: String,
    pub anchor: String,
    /// The record's id and title; the directory's name where `results.json` cannot be read.
    pub recipe_id: String,
    pub title: String,
    pub citation: String,
    pub profile: String,
    pub is_demo: bool,
    pub headline: Option<Headline>,
    /// Why there is no headline.
    pub no_headline: String,
    /// Findings by kind; none where `results.json` cannot be read.
    pub contradictions: Option<usize>,
    pub notes: Option<usize>,
    /// The first failure of the report's checksums (paths relative to the root); None: verified.
    pub failure: Option<String>,
    pub report_href: String,
    pub findings_href: Option<String>,
    /// `<dir>.timings.html` beside the report, written by the run that wrote it (absent from a
    /// fresh checkout).
    pub timings_href: String,
}

/// The headline of a report: one published overall figure beside the reproduced one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Headline {
    /// Published table and row, as transcribed.
    pub table: String,
    pub row: String,
    /// The reproducing system's label.
    pub system: String,
    /// The column compared, headed as in the report (`Acc`, `Macro acc`, `Avg.`).
    pub metric: String,
    /// In %, with the decimals the table prints.
    pub published: String,
    pub reproduced: String,
    /// reproduced − published as the report shows it, and the cell's CSS classes.
    pub difference: String,
    pub difference_class: String,
}

/// What [`write`] wrote.
#[derive(Debug, Clone)]
pub struct Written {
    pub index: PathBuf,
    pub reports: usize,
    /// Directory and first failure of every report failing its checksums.
    pub failing: Vec<(String, String)>,
}

/// The headline of `record`: the first published row (in the recipe's order) that this run
/// reproduces on an overall accuracy column ([`OVERALL`]). Its cells are read from the report's
/// own published-vs-reproduced table of that row's published table, laid out as the page lays
/// it out, so the system (one run, or the mean of several seeds), the figures and the
/// difference are exactly the page's.
pub fn headline(record: &RunRecord) -> Result<Option<Headline>> {
    for row in &record.published {
        let same: Vec<&PublishedRow> = record
            .published
            .iter()
            .filter(|r| r.table == row.table)
            .collect();
        let k = same
            .iter()
            .position(|r| std::ptr::eq(*r, row))
            .expect("a row is in its own table");
        let t = published_vs_reproduced("headline", "", &same, &record.systems, &record.profile)?;
        if let Some(h) = block_headline(&t, k)? {
            return Ok(Some(h));
        }
    }
    Ok(None)
}

/// The headline of the `k`-th published row of comparison table `t`, if it was reproduced on
/// an overall column: the block of table lines from its `published` line to the next one.
fn block_headline(t: &Table, k: usize) -> Result<Option<Headline>> {
    let df = &t.df;
    let bad = |e: polars::error::PolarsError| Error::msg(format!("site headline: {e}"));
    let text = |col: &str, i: usize| -> Result<String> {
        let v = df.column(col).and_then(|c| c.get(i)).map_err(bad)?;
        Ok(v.get_str().unwrap_or_default().to_string())
    };
    let kinds = (0..df.height())
        .map(|i| text("row", i))
        .collect::<Result<Vec<_>>>()?;
    let Some(start) = kinds
        .iter()
        .enumerate()
        .filter(|(_, kind)| *kind == "published")
        .nth(k)
        .map(|(i, _)| i)
    else {
        return Ok(None);
    };
    let end = (start + 1..kinds.len())
        .find(|&i| kinds[i] == "published")
        .unwrap_or(kinds.len());
    let line = |kind: &str| (start..end).find(|&i| kinds[i] == kind);
    let (Some(rep), Some(diff)) = (line("reproduced"), line("difference")) else {
        return Ok(None);
    };
    let view = tables::view(df, &t.spec)?;
    for column in &OVERALL {
        let key = column.key();
        let Some(j) = t.spec.cols.iter().position(|c| c.col == key) else {
            continue;
        };
        let col = df.column(&key).map_err(bad)?;
        let present = |i: usize| col.get(i).is_ok_and(|v| !v.is_null());
        if ![start, rep, diff].into_iter().all(present) {
            continue;
        }
        let cell = |i: usize| view.rows[i].cells[j].clone();
        return Ok(Some(Headline {
            table: text("table", start)?,
            row: text("published_label", start)?,
            system: text("system", rep)?,
            metric: view.header[j].label.clone(),
            published: cell(start).text,
            reproduced: cell(rep).text,
            difference: cell(diff).text,
            difference_class: cell(diff).class,
        }));
    }
    Ok(None)
}

/// Why a record has no headline.
fn no_headline(record: &RunRecord) -> String {
    if record.published.is_empty() {
        "the recipe transcribes no published table".into()
    } else {
        "no published row reproduced in this profile".into()
    }
}

/// `e` with the root's prefix taken off every path it names, so the page never depends on
/// how the root was spelled.
fn relative(e: &Error, root: &Path) -> String {
    let prefix = format!("{}/", root.display());
    e.to_string().replace(&prefix, "")
}

/// The entry of report directory `name` under `root`.
fn entry(root: &Path, name: &str) -> Result<SiteEntry> {
    let dir = root.join(name);
    let failure = super::verify(&dir).err().map(|e| relative(&e, root));
    let (_, timings_html) = super::timings_paths(&dir);
    // Linked whether or not it is here: git ignores timings, and the page must not depend on
    // files a fresh checkout lacks.
    let timings_href = timings_html
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut e = SiteEntry {
        dir: name.to_string(),
        anchor: format!("r-{}", frames::slug(name)),
        recipe_id: name.to_string(),
        title: name.to_string(),
        citation: String::new(),
        profile: String::new(),
        is_demo: false,
        headline: None,
        no_headline: String::new(),
        contradictions: None,
        notes: None,
        failure,
        report_href: format!("{name}/{INDEX}"),
        findings_href: None,
        timings_href,
    };
    match read_record(&dir.join(RECORD)).map_err(Error::from) {
        Ok(r) => {
            let contradictions = r
                .findings
                .iter()
                .filter(|f| f.kind == "contradiction")
                .count();
            e.headline = headline(&r)?;
            e.no_headline = no_headline(&r);
            e.notes = Some(r.findings.len() - contradictions);
            e.contradictions = Some(contradictions);
            e.findings_href = Some(format!("{name}/{INDEX}#findings"));
            e.is_demo = r.profile != "paper";
            e.recipe_id = r.recipe_id;
            e.title = r.title;
            e.citation = r.citation;
            e.profile = r.profile;
        }
        Err(err) => e.no_headline = relative(&err, root),
    }
    Ok(e)
}

fn view(root: &Path, dirs: &[String]) -> Result<SiteView> {
    let mut entries = dirs
        .iter()
        .map(|d| entry(root, d))
        .collect::<Result<Vec<_>>>()?;
    entries.sort_by(|a, b| (&a.recipe_id, &a.dir).cmp(&(&b.recipe_id, &b.dir)));
    Ok(SiteView {
        generator: format!("ascrepro {}", env!("CARGO_PKG_VERSION")),
        page_marker: PAGE_MARKER,
        sums_file: SITE_SUMS,
        failing: entries.iter().filter(|e| e.failure.is_some()).count(),
        any_demo: entries.iter().any(|e| e.is_demo),
        entries,
    })
}

/// The site's data: one entry per report directory under `root`.
pub fn build(root: &Path) -> Result<SiteView> {
    let dirs = reports_of(root)?;
    view(root, &dirs)
}

/// The site index page of `view`.
pub fn render(view: &SiteView) -> Result<String> {
    super::render_template(&super::environment()?, "site.html", view)
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The text of `SHA256SUMS.site`: `index.html` (as `index` holds it), then each report's
/// `SHA256SUMS`, by directory name.
fn sums_text(root: &Path, index: &[u8], dirs: &[String]) -> Result<String> {
    let mut text = format!("{}  {INDEX}\n", sha256(index));
    for d in dirs {
        let path = root.join(d).join(SUMS);
        if exists(&path) {
            text += &format!("{}  {d}/{SUMS}\n", sha256(&fsio::read(&path)?));
        }
    }
    Ok(text)
}

/// Whether `root/index.html` is the site's own page (present and marked).
fn index_is_ours(root: &Path) -> bool {
    fsio::read(&root.join(INDEX)).is_ok_and(|b| {
        b.windows(PAGE_MARKER.len())
            .any(|w| w == PAGE_MARKER.as_bytes())
    })
}

/// `ascrepro site`: writes `index.html` and `SHA256SUMS.site` over every report under `root`.
/// A report failing its checksums is listed as failing, not refused; an `index.html` the site
/// did not write is refused, never replaced.
pub fn write(root: &Path) -> Result<Written> {
    let dirs = reports_of(root)?;
    let view = view(root, &dirs)?;
    let index = root.join(INDEX);
    if exists(&index) && !index_is_ours(root) {
        return Err(Error::file(
            &index,
            "exists and was not written by `ascrepro site`; it is not replaced: move it away, \
             or write the site elsewhere",
        ));
    }
    let html = render(&view)?;
    let sums = sums_text(root, html.as_bytes(), &dirs)?;
    fsio::write(&index, html.as_bytes(), &[])?;
    fsio::write(&root.join(SITE_SUMS), sums.as_bytes(), &[])?;
    Ok(Written {
        index,
        reports: view.entries.len(),
        failing: view
            .entries
            .into_iter()
            .filter_map(|e| Some((e.dir, e.failure?)))
            .collect(),
    })
}

/// The site root a report written to `out_dir` belongs to: its parent, when that is named
/// `reports` or already holds a site index.
pub fn site_of(out_dir: &Path) -> Option<PathBuf> {
    let parent = match out_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    (parent.file_name().is_some_and(|n| n == "reports") || index_is_ours(parent))
        .then(|| parent.to_path_buf())
}

/// After `ascrepro run` wrote the report in `out_dir`: rewrites the site it belongs to
/// ([`site_of`]), if any; returns the index written.
pub fn update_after_run(out_dir: &Path) -> Result<Option<PathBuf>> {
    let Some(root) = site_of(out_dir) else {
        return Ok(None);
    };
    write(&root).map(|w| Some(w.index)).map_err(|e| {
        Error::msg(format!(
            "the report {} was written, but the site index over its directory was not: {e}",
            out_dir.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ascrepro_results::record::AccuracyUnit;
    use std::collections::BTreeMap;

    /// The committed demo report's record, with its published rows replaced by `rows`.
    fn record(rows: Vec<PublishedRow>) -> RunRecord {
        let mut r: RunRecord =
            serde_json::from_str(include_str!("../../reports/cai2023_tfsepnet/results.json"))
                .unwrap();
        r.published = rows;
        r.systems[0].id = "teacher".into();
        r.systems[0].label = "the teacher".into();
        r.systems[0].evaluation.accuracy = 0.5522;
        r.systems[0].evaluation.macro_accuracy = 0.5511;
        r.systems[1].id = "student".into();
        r.systems[1].label = "the student".into();
        r.systems[1].evaluation.accuracy = 0.4;
        r.systems[1].evaluation.macro_accuracy = 0.41;
        r
    }

    fn row(table: &str, label: &str, by: Option<&str>, values: &[(&str, f64)]) -> PublishedRow {
        PublishedRow {
            table: table.into(),
            label: label.into(),
            values: values
                .iter()
                .map(|(k, v)| (k.parse().unwrap(), *v))
                .collect::<BTreeMap<_, _>>(),
            reproduced_by: by.map(str::to_string),
            profile: None,
            split: None,
            accuracy_unit: AccuracyUnit::Percent,
        }
    }

    #[test]
    fn headline_is_the_first_reproduced_row_with_an_overall_accuracy() {
        let r = record(vec![
            // Not reproduced in this run.
            row("Table 3", "big", None, &[("accuracy", 70.0)]),
            // Reproduced, but no overall accuracy: complexity only.
            row("Table 1", "counts", Some("student"), &[("macs_m", 1.65)]),
            // The headline: the table prints one decimal, so 55.22 shows as 55.2.
            row(
                "Table 3",
                "teacher row",
                Some("teacher"),
                &[("accuracy", 53.9), ("a", 60.0)],
            ),
            row(
                "Table 3",
                "student row",
                Some("student"),
                &[("accuracy", 51.9)],
            ),
        ]);
        let h = headline(&r).unwrap().unwrap();
        assert_eq!(
            h,
            Headline {
                table: "Table 3".into(),
                row: "teacher row".into(),
                system: "the teacher".into(),
                metric: "Acc".into(),
                published: "53.9".into(),
                reproduced: "55.2".into(),
                difference: "+1.3".into(),
                difference_class: "num diff pos2".into(),
            }
        );
    }

    #[test]
    fn headline_falls_back_to_macro_accuracy_and_reads_fractions_in_percent() {
        let mut frac = row(
            "Table 2",
            "fractions",
            Some("student"),
            &[("macro_accuracy", 0.455)],
        );
        frac.accuracy_unit = AccuracyUnit::Fraction;
        let h = headline(&record(vec![frac])).unwrap().unwrap();
        assert_eq!(h.metric, "Macro acc");
        assert_eq!(
            (h.published.as_str(), h.reproduced.as_str()),
            ("45.5", "41.0")
        );
        assert_eq!(h.difference, "-4.5");
        assert_eq!(h.difference_class, "num diff neg2");
    }

    #[test]
    fn no_headline_says_why() {
        let none = record(vec![row("Table 3", "big", None, &[("accuracy", 70.0)])]);
        assert_eq!(headline(&none).unwrap(), None);
        assert_eq!(
            no_headline(&none),
            "no published row reproduced in this profile"
        );
        let empty = record(vec![]);
        assert_eq!(
            no_headline(&empty),
            "the recipe transcribes no published table"
        );
        // A row naming a system this run did not make is not reproduced.
        let gone = record(vec![row("T", "x", Some("absent"), &[("accuracy", 50.0)])]);
        assert_eq!(headline(&gone).unwrap(), None);
    }
}
