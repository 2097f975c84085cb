//! The HTML report of a run and its checksums.
//!
//! As in mdBook, the Rust side builds a view model and the templates (in `templates/`, compiled
//! into the binary) only lay it out. Every table is a polars DataFrame first: it is written to
//! `results/<name>.csv` and `.parquet` and shown through one generic table layout. Plots are
//! plotly divs with inline JSON and fixed ids over one local copy of plotly.js, so the report
//! works offline and the same record always gives byte-identical files.
//!
//! Layout of a rendered report:
//! `index.html`, `results.json` (the run record), `results/*.csv|parquet`,
//! `assets/plotly.min.js`, the marker `ascrepro-report.txt`, and `SHA256SUMS` listing every
//! other file, so `ascrepro verify` can refuse any file it does not list. The wall-clock
//! timings differ run to run and cannot be checksummed, so they are written beside the report
//! directory, not in it: `<dir>.timings.json` and `<dir>.timings.html`.

mod content;
mod plots;
mod pruning;
mod published;
mod quantization;
pub mod site;
mod sums;
mod tables;

use crate::error::{Error, IoContext, Result};
use crate::fsio::{self, StagedDir};
use crate::results::{RunRecord, StageTiming, SystemRecord};
use minijinja::{AutoEscape, Environment, Value};
use serde::Serialize;
use std::fs;
use std::path::{Path, PathBuf};
pub use sums::{parse_sums, SumsEntry, SumsError};
use tables::{write_table, Table, TableView};

/// Where plotly.js goes inside a report.
const PLOTLY_ASSET: &str = "assets/plotly.min.js";

/// Renders `record` into `out_dir` (created if needed): index.html, results.json, tables as CSV and parquet
/// (one file per table under results/), the plotly.js asset, the marker, and SHA256SUMS covering every file above.
/// Deterministic: the same record gives byte-identical files. Writes into a temp dir next to out_dir and swaps it in,
/// so an interrupted render never leaves a half-written report. An existing `out_dir` is replaced only if it is empty
/// or a report that passes [`verify`]; anything else is refused, never deleted.
/// `timings` go beside the report (see [`write_timings`]), as they differ run to run.
pub fn render(record: &RunRecord, timings: &[StageTiming], out_dir: &Path) -> Result<()> {
    let staged = StagedDir::new(out_dir, sums::check_replaceable)?;
    write_report(record, staged.path())?;
    sums::write_sums(staged.path())?;
    staged.publish()?;
    write_timings(record, timings, out_dir)
}

/// Refuses `out_dir` as the report directory of a run before the run, as [`render`] would
/// after it: it must be absent, empty, or a report that passes [`verify`].
pub fn check_out_dir(out_dir: &Path) -> Result<()> {
    StagedDir::check(out_dir, sums::check_replaceable)
}

/// Re-checks the report in `dir`: only regular files and directories; SHA256SUMS lists every
/// other file (the marker, index.html and results.json among them) and each hashes the same.
/// Errors name the first file that changed/went missing/was added.
pub fn verify(dir: &Path) -> Result<()> {
    sums::verify(dir)
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

fn effect_view(e: &crate::results::EffectRecord) -> EffectView {
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
    write(&root.join(PLOTLY_ASSET), plots::plotly_js()?)?;

    let mut record_json =
        serde_json::to_string_pretty(record).map_err(|e| json_err("results.json", e))?;
    record_json.push('\n');
    write(&root.join("results.json"), record_json)?;

    let mut tables_written = |mut t: Table| write_table(root, &mut t);

    let mut identity_tables = content::identity_tables(record)?;
    identity_tables.push(content::systems_table(&record.systems)?);
    let mut identity = identity_tables
        .into_iter()
        .map(&mut tables_written)
        .collect::<Result<Vec<_>>>()?;
    let systems_table = identity.pop().expect("the systems table was pushed last");
    let complexity = tables_written(content::complexity_summary(&record.systems)?)?;
    let pruning = match pruning::pruning_table(&record.systems)? {
        Some(t) => Some(tables_written(t)?),
        None => None,
    };
    let quantization = match quantization::quantization_table(&record.systems)? {
        Some(t) => Some(tables_written(t)?),
        None => None,
    };
    let checks = tables_written(content::complexity_checks(record)?)?;
    let device_wise = tables_written(content::device_wise(&record.systems, &record.profile)?)?;
    let class_wise = tables_written(content::class_wise(&record.systems, &record.profile)?)?;
    let curves = tables_written(content::curves(&record.systems)?)?;

    let slugs = content::system_slugs(&record.systems);
    let mut systems = Vec::with_capacity(record.systems.len());
    for (i, (s, slug)) in record.systems.iter().zip(&slugs).enumerate() {
        systems.push(system_view(s, slug, i, &mut tables_written)?);
    }

    let (comparisons, comparison_files) = comparison_views(record, &mut tables_written)?;

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
        identity,
        systems_table,
        complexity,
        pruning,
        quantization,
        checks,
        systems,
        device_wise,
        class_wise,
        device_plot: plots::device_bars(&record.systems, "plot-device-bars"),
        curve_plots: plots::curves(&record.systems, "plot-curves-loss", "plot-curves-accuracy"),
        curves_csv: curves.csv.clone().unwrap_or_default(),
        curves_parquet: curves.parquet.clone().unwrap_or_default(),
        comparisons,
        comparison_csv: comparison_files.0,
        comparison_parquet: comparison_files.1,
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
    slug: &str,
    index: usize,
    tables_written: &mut impl FnMut(Table) -> Result<TableView>,
) -> Result<SystemView> {
    let c = &s.complexity;
    let (param_sum, mac_sum) = content::layer_sums(c);
    let layer_sum_note = (!c.layers.is_empty() && (param_sum != c.params || mac_sum != c.macs))
        .then(|| {
            format!(
                "the per-layer rows add up to {} params and {} MACs, not the totals above",
                tables::thousands(param_sum),
                tables::thousands(mac_sum)
            )
        });
    Ok(SystemView {
        anchor: format!("system-{index}"),
        id: s.id.clone(),
        label: s.label.clone(),
        model: s.model.clone(),
        training: s.training.clone(),
        precision: s.precision.to_string(),
        notes: s.notes.clone(),
        params: tables::thousands(c.params),
        macs: tables::thousands(c.macs),
        macs_m: format!("{:.3}", c.macs as f64 / 1e6),
        layer_count: c.layers.len(),
        layer_sum_note,
        layers: tables_written(content::layers(s, slug)?)?,
        confusion: tables_written(content::confusion(s, slug)?)?,
        confusion_plot: plots::confusion(s, &format!("plot-confusion-{index}")),
    })
}

/// One comparison table per published table (`Table 3`, …) for the page; one combined file.
fn comparison_views(
    record: &RunRecord,
    tables_written: &mut impl FnMut(Table) -> Result<TableView>,
) -> Result<(Vec<TableView>, (String, String))> {
    let all: Vec<_> = record.published.iter().collect();
    let combined = tables_written(published::published_vs_reproduced(
        "published_vs_reproduced",
        "Published vs reproduced",
        &all,
        &record.systems,
        &record.profile,
    )?)?;
    let files = (
        combined.csv.clone().unwrap_or_default(),
        combined.parquet.clone().unwrap_or_default(),
    );
    let mut names: Vec<&str> = Vec::new();
    for row in &record.published {
        if !names.contains(&row.table.as_str()) {
            names.push(&row.table);
        }
    }
    let mut views = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let rows: Vec<_> = record
            .published
            .iter()
            .filter(|r| r.table == *name)
            .collect();
        let caption = format!(
            "{name}: published (as printed in the report) vs reproduced in profile `{}`; difference = reproduced − published (accuracies in %, the reproduced value rounded as the report prints; MACs/params: our exact count, flagged beyond ±0.01)",
            record.profile
        );
        let t = published::published_vs_reproduced(
            &format!("published_{i}"),
            &caption,
            &rows,
            &record.systems,
            &record.profile,
        )?;
        let mut v = tables::view(&t.df, &t.spec)?;
        v.csv = Some(files.0.clone());
        v.parquet = Some(files.1.clone());
        views.push(v);
    }
    Ok((views, files))
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
            let mut escaped = String::with_capacity(s.len());
            for ch in s.chars() {
                match ch {
                    '&' => escaped.push_str("&amp;"),
                    '<' => escaped.push_str("&lt;"),
                    '>' => escaped.push_str("&gt;"),
                    '"' => escaped.push_str("&quot;"),
                    '\'' => escaped.push_str("&#39;"),
                    c => escaped.push(c),
                }
            }
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
