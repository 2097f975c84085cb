//! The HTML report of a run and its checksums.
//!
//! As in mdBook, the Rust side builds a view model and the templates (in `templates/`, compiled
//! into the binary) only lay it out. The tables and figures come from the results crate
//! (`ascrepro_results::frames::ReportTables`, `ascrepro_results::figures`), which a notebook
//! loads too, so the two cannot disagree. Every table is a polars DataFrame first: it is written
//! to `results/<name>.csv` and `.parquet` and shown through one generic table layout. Plots are
//! plotly divs with inline JSON and fixed ids over one local copy of plotly.js, so the report
//! works offline and the same record always gives byte-identical files.
//!
//! Layout of a rendered report:
//! `index.html`, `results.json` (the run record), `results/*.csv|parquet`,
//! `assets/plotly.min.js`, the marker `ascrepro-report.txt`, and `SHA256SUMS` listing every
//! other file, so `ascrepro verify` can refuse any file it does not list. The wall-clock
//! timings differ run to run and cannot be checksummed, so they are written beside the report
//! directory, not in it: `<dir>.timings.json` and `<dir>.timings.html`.

pub mod site;
mod sums;

use crate::error::{Error, IoContext, Result};
use crate::fsio::{self, OutputFile, StagedDir};
use ascrepro_results::frames::{self, ReportTables};
use ascrepro_results::record::{RunRecord, StageTiming, SystemRecord};
use ascrepro_results::table::{self, Table, TableView};
use ascrepro_results::{figures, sums as check};
use minijinja::{AutoEscape, Environment, Value};
use plotly::Plot;
use polars::prelude::*;
use serde::Serialize;
use std::fs;
use std::path::{Path, PathBuf};

/// Where plotly.js goes inside a report.
const PLOTLY_ASSET: &str = "assets/plotly.min.js";

/// Renders `record` into `out_dir` (created if needed): index.html, results.json, tables as CSV and parquet
/// (one file per table under results/), the plotly.js asset, the marker, and SHA256SUMS covering every file above.
/// Deterministic: the same record gives byte-identical files. Writes into a temp dir next to out_dir and swaps it in,
/// so an interrupted render never leaves a half-written report. An existing `out_dir` is replaced only if it is empty
/// or a report that passes [`verify`]; anything else is refused, never deleted.
/// `timings` go beside the report (see [`write_timings`]), as they differ run to run.
pub fn render(record: &RunRecord, timings: &[StageTiming], out_dir: &Path) -> Result<()> {
    let staged = StagedDir::new(out_dir, replaceable)?;
    write_report(record, staged.path())?;
    sums::write_sums(staged.path())?;
    staged.publish()?;
    write_timings(record, timings, out_dir)
}

/// Refuses `out_dir` as the report directory of a run before the run, as [`render`] would
/// after it: it must be absent, empty, or a report that passes [`verify`].
pub fn check_out_dir(out_dir: &Path) -> Result<()> {
    StagedDir::check(out_dir, replaceable)
}

fn replaceable(dir: &Path) -> Result<()> {
    Ok(check::check_replaceable(dir)?)
}

/// Re-checks the report in `dir`: only regular files and directories; SHA256SUMS lists every
/// other file (the marker, index.html and results.json among them) and each hashes the same.
/// Errors name the first file that changed/went missing/was added.
pub fn verify(dir: &Path) -> Result<()> {
    Ok(check::verify(dir)?)
}

/// Where the timings of the report in `out_dir` go: `<out_dir>.timings.json` and
/// `<out_dir>.timings.html`, beside it.
pub fn timings_paths(out_dir: &Path) -> (PathBuf, PathBuf) {
    let name = out_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report".into());
    let beside = |ext: &str| out_dir.with_file_name(format!("{name}.timings.{ext}"));
    (beside("json"), beside("html"))
}

#[derive(Serialize)]
struct IndexView {
    title: String,
    citation: String,
    recipe_id: String,
    profile: String,
    profile_note: String,
    is_demo: bool,
    generator: String,
    plotly_js: &'static str,
    identity: Vec<TableView>,
    /// The evaluated systems (shown with the results, written with the identity tables).
    systems_table: TableView,
    complexity: TableView,
    /// Only for runs with prune stages.
    pruning: Option<TableView>,
    quantization: Option<TableView>,
    checks: TableView,
    systems: Vec<SystemView>,
    device_wise: TableView,
    class_wise: TableView,
    device_plot: String,
    curve_plots: Option<(String, String)>,
    curves_csv: String,
    curves_parquet: String,
    comparisons: Vec<TableView>,
    comparison_csv: String,
    comparison_parquet: String,
    contradictions: Vec<String>,
    notes: Vec<String>,
    effects: Vec<EffectView>,
    recipe_text: String,
}

/// One method's effect as the report prints it.
#[derive(Serialize)]
struct EffectView {
    method: String,
    with: String,
    without: String,
    claim: String,
    runs: usize,
    mean: String,
    sd: String,
    interval: String,
    /// `improves`, `hurts` or `not_established`: the row's colour.
    verdict: String,
    statement: String,
}

fn effect_view(e: &ascrepro_results::record::EffectRecord) -> EffectView {
    let signed = |x: f64| format!("{x:+.1}");
    EffectView {
        method: e.method.clone(),
        with: e.with.clone(),
        without: e.without.clone(),
        claim: e.claim.clone().unwrap_or_default(),
        runs: e.pairs.len(),
        mean: e.mean.map(signed).unwrap_or_else(|| "–".into()),
        sd: e
            .sd
            .map(|s| format!("{s:.1}"))
            .unwrap_or_else(|| "–".into()),
        interval: e
            .ci95
            .map(|[lo, hi]| format!("{} to {}", signed(lo), signed(hi)))
            .unwrap_or_else(|| "–".into()),
        verdict: serde_json::to_value(e.verdict)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        statement: e.statement.clone(),
    }
}

#[derive(Serialize)]
struct SystemView {
    anchor: String,
    id: String,
    label: String,
    model: String,
    training: String,
    precision: String,
    notes: Vec<String>,
    params: String,
    macs: String,
    macs_m: String,
    layer_count: usize,
    /// Set when the per-layer rows do not add up to the totals.
    layer_sum_note: Option<String>,
    layers: TableView,
    confusion: TableView,
    confusion_plot: String,
}

#[derive(Serialize)]
struct TimingsView {
    /// The report directory's name, for the link back (the page sits beside it).
    report_dir: String,
    json_file: String,
    title: String,
    recipe_id: String,
    rows: Vec<TimingRow>,
    total: String,
    cached: usize,
}

#[derive(Serialize)]
struct TimingRow {
    kind: String,
    id: String,
    seconds: String,
    cached: bool,
}

fn write(path: &Path, bytes: impl AsRef<[u8]>) -> Result<()> {
    fsio::write(path, bytes.as_ref(), &[])
}

fn json_err(what: &str, e: serde_json::Error) -> Error {
    Error::msg(format!("report: serialising {what}: {e}"))
}

/// Writes every file of the report into `root` (an empty directory).
fn write_report(record: &RunRecord, root: &Path) -> Result<()> {
    for sub in ["results", "assets"] {
        let dir = root.join(sub);
        fs::create_dir_all(&dir).at(&dir)?;
    }
    write(&root.join(PLOTLY_ASSET), figures::plotly_js()?)?;

    let mut record_json =
        serde_json::to_string_pretty(record).map_err(|e| json_err("results.json", e))?;
    record_json.push('\n');
    write(&root.join("results.json"), record_json)?;

    let tables = ReportTables::build(record)?;
    let views = tables
        .files()
        .into_iter()
        .map(|t| write_table(root, t).map(|v| (t.name.clone(), v)))
        .collect::<Result<Vec<_>>>()?;
    let written = |t: &Table| -> TableView {
        views
            .iter()
            .find(|(name, _)| *name == t.name)
            .map(|(_, v)| v.clone())
            .expect("every table of the report was written")
    };
    let systems = record
        .systems
        .iter()
        .zip(&tables.per_system)
        .enumerate()
        .map(|(i, (s, t))| system_view(s, i, written(&t.layers), written(&t.confusion)))
        .collect();
    let combined = written(&tables.published);
    let comparisons = tables
        .published_by_table
        .iter()
        .map(|t| {
            let mut v = table::view(&t.df, &t.spec)?;
            v.csv = combined.csv.clone();
            v.parquet = combined.parquet.clone();
            Ok(v)
        })
        .collect::<Result<Vec<_>>>()?;
    let curves = written(&tables.curves);

    let contradictions: Vec<String> = record
        .findings
        .iter()
        .filter(|f| f.kind == "contradiction")
        .map(|f| f.text.clone())
        .collect();
    let notes: Vec<String> = record
        .findings
        .iter()
        .filter(|f| f.kind != "contradiction")
        .map(|f| f.text.clone())
        .collect();

    let view = IndexView {
        title: record.title.clone(),
        citation: record.citation.clone(),
        recipe_id: record.recipe_id.clone(),
        profile: record.profile.clone(),
        profile_note: record.profile_note.clone(),
        is_demo: record.profile != "paper",
        generator: format!("ascrepro {}", env!("CARGO_PKG_VERSION")),
        plotly_js: PLOTLY_ASSET,
        identity: tables.identity.iter().map(written).collect(),
        systems_table: written(&tables.systems),
        complexity: written(&tables.complexity),
        pruning: tables.pruning.as_ref().map(written),
        quantization: tables.quantization.as_ref().map(written),
        checks: written(&tables.complexity_checks),
        systems,
        device_wise: written(&tables.device_wise),
        class_wise: written(&tables.class_wise),
        device_plot: inline(figures::device_bars(&record.systems), "plot-device-bars"),
        curve_plots: figures::curves(&record.systems).map(|(loss, acc)| {
            (
                inline(loss, "plot-curves-loss"),
                inline(acc, "plot-curves-accuracy"),
            )
        }),
        curves_csv: curves.csv.clone().unwrap_or_default(),
        curves_parquet: curves.parquet.clone().unwrap_or_default(),
        comparisons,
        comparison_csv: combined.csv.clone().unwrap_or_default(),
        comparison_parquet: combined.parquet.clone().unwrap_or_default(),
        contradictions,
        notes,
        effects: record.effects.iter().map(effect_view).collect(),
        recipe_text: record.recipe_text.clone(),
    };

    write(
        &root.join("index.html"),
        render_template(&environment()?, "index.html", &view)?,
    )
}

/// Writes the wall-clock record of a run beside the report in `out_dir` (see
/// [`timings_paths`]); also after a run whose checksummed report did not change.
pub fn write_timings(record: &RunRecord, timings: &[StageTiming], out_dir: &Path) -> Result<()> {
    let (json_path, html_path) = timings_paths(out_dir);
    let mut timings_json =
        serde_json::to_string_pretty(timings).map_err(|e| json_err("timings.json", e))?;
    timings_json.push('\n');
    write(&json_path, timings_json)?;
    let file_name = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let timings_view = TimingsView {
        report_dir: file_name(out_dir),
        json_file: file_name(&json_path),
        title: record.title.clone(),
        recipe_id: record.recipe_id.clone(),
        rows: timings
            .iter()
            .map(|t| TimingRow {
                kind: t.kind.clone(),
                id: t.id.clone(),
                seconds: format!("{:.2}", t.seconds),
                cached: t.cached,
            })
            .collect(),
        total: format!("{:.2}", timings.iter().map(|t| t.seconds).sum::<f64>()),
        cached: timings.iter().filter(|t| t.cached).count(),
    };
    write(
        &html_path,
        render_template(&environment()?, "timings.html", &timings_view)?,
    )
}

fn system_view(
    s: &SystemRecord,
    index: usize,
    layers: TableView,
    confusion: TableView,
) -> SystemView {
    let c = &s.complexity;
    let (param_sum, mac_sum) = frames::layer_sums(c);
    let layer_sum_note = (!c.layers.is_empty() && (param_sum != c.params || mac_sum != c.macs))
        .then(|| {
            format!(
                "the per-layer rows add up to {} params and {} MACs, not the totals above",
                table::thousands(param_sum),
                table::thousands(mac_sum)
            )
        });
    SystemView {
        anchor: format!("system-{index}"),
        id: s.id.clone(),
        label: s.label.clone(),
        model: s.model.clone(),
        training: s.training.clone(),
        precision: s.precision.to_string(),
        notes: s.notes.clone(),
        params: table::thousands(c.params),
        macs: table::thousands(c.macs),
        macs_m: format!("{:.3}", c.macs as f64 / 1e6),
        layer_count: c.layers.len(),
        layer_sum_note,
        layers,
        confusion,
        confusion_plot: inline(figures::confusion(s), &format!("plot-confusion-{index}")),
    }
}

/// A figure as the page embeds it: a `<div>` with a fixed id and its inline JSON.
fn inline(plot: Plot, div_id: &str) -> String {
    plot.to_inline_html(Some(div_id))
}

fn polars_err(what: &str, e: PolarsError) -> Error {
    Error::msg(format!("report table {what}: {e}"))
}

/// Writes `results/<name>.csv` and `results/<name>.parquet` under `root` and returns the view
/// with links to both files.
fn write_table(root: &Path, table: &Table) -> Result<TableView> {
    let mut df = table.df.clone();
    let csv_rel = format!("results/{}.csv", table.name);
    let parquet_rel = format!("results/{}.parquet", table.name);
    let csv_path = root.join(&csv_rel);
    let mut csv = OutputFile::create(&csv_path, &[])?;
    CsvWriter::new(csv.file())
        .include_header(true)
        .finish(&mut df)
        .map_err(|e| polars_err(&csv_rel, e))?;
    csv.commit()?;
    let parquet_path = root.join(&parquet_rel);
    let mut parquet = OutputFile::create(&parquet_path, &[])?;
    ParquetWriter::new(parquet.file())
        .finish(&mut df)
        .map_err(|e| polars_err(&parquet_rel, e))?;
    parquet.commit()?;
    let mut v = table::view(&df, &table.spec)?;
    v.csv = Some(csv_rel);
    v.parquet = Some(parquet_rel);
    Ok(v)
}

/// Templates compiled into the binary, so it renders from any working directory.
fn environment() -> Result<Environment<'static>> {
    let mut env = Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_formatter(html_formatter);
    let templates = [
        ("macros.html", include_str!("../../templates/macros.html")),
        ("styles.html", include_str!("../../templates/styles.html")),
        ("index.html", include_str!("../../templates/index.html")),
        ("timings.html", include_str!("../../templates/timings.html")),
        ("site.html", include_str!("../../templates/site.html")),
    ];
    for (name, source) in templates {
        env.add_template(name, source)
            .map_err(|e| Error::msg(format!("report template {name}: {e:#}")))?;
    }
    Ok(env)
}

/// Like minijinja's default HTML escaping but leaves `/` alone, so paths and links in the page
/// source read as written (`/` needs no escaping in HTML text or quoted attributes).
fn html_formatter(
    out: &mut minijinja::Output<'_>,
    state: &minijinja::State<'_, '_>,
    value: &Value,
) -> std::result::Result<(), minijinja::Error> {
    match (state.auto_escape(), value.as_str()) {
        (AutoEscape::Html, Some(s)) if !value.is_safe() => {
            let escaped = table::escape_html(s);
            out.write_str(&escaped).map_err(|e| {
                minijinja::Error::new(minijinja::ErrorKind::WriteFailure, e.to_string())
            })
        }
        _ => minijinja::escape_formatter(out, state, value),
    }
}

fn render_template(env: &Environment<'_>, name: &str, ctx: &impl Serialize) -> Result<String> {
    env.get_template(name)
        .and_then(|t| t.render(ctx))
        .map_err(|e| Error::msg(format!("report template {name}: {e:#}")))
}
