//! Plotly figures of a run record. The report places each as a `<div>` with a fixed id and its
//! inline JSON (`Plot::to_inline_html`) over one local copy of plotly.js, so the page works
//! offline and depends only on the record; a notebook shows the same plots
//! ([`crate::notebook::Figure`]).

use crate::error::{Error, Result};
use crate::frames::AccuracyPair;
use crate::labels::CLASSES;
use crate::record::{PublishedRow, RunRecord, SystemRecord, LIMIT_MACS};
use plotly::common::{
    ColorScale, ColorScalePalette, DashType, Font, HoverInfo, Line, Marker, Mode, Orientation,
    Title,
};
use plotly::layout::{Annotation, Axis, BarMode, Legend, Margin};
use plotly::{Bar, Configuration, HeatMap, Layout, Plot, Scatter};

/// Colours per system (by position), shared by every figure so one system keeps its colour.
const PALETTE: [&str; 10] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

fn colour(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// The plotly.js bundled by the `plotly` crate (feature `plotly_embed_js`). The crate exposes it
/// only wrapped in `<script>` tags together with MathJax; take the first script's body.
pub fn plotly_js() -> Result<String> {
    let sources = Plot::offline_js_sources();
    let open = "<script type=\"text/javascript\">";
    let body = sources
        .find(open)
        .map(|at| &sources[at + open.len()..])
        .and_then(|rest| rest.find("</script>").map(|end| &rest[..end]));
    match body {
        Some(js) if js.contains("plotly") => Ok(js.to_string()),
        _ => Err(Error::msg(
            "the plotly crate's embedded plotly.js was not found (is feature plotly_embed_js on?)",
        )),
    }
}

fn config() -> Configuration {
    Configuration::new().responsive(true).display_logo(false)
}

/// Width of figures laid out two per row: fixed, because plotly sizes a figure from its
/// container only when drawn, and grid cells may not have their final width yet.
const HALF_WIDTH: usize = 590;

/// Titles are HTML headings above each figure: a plotly title would sit under the mode bar.
fn base_layout(height: usize) -> Layout {
    Layout::new()
        .height(height)
        .font(Font::new().size(12))
        .margin(Margin::new().left(60).right(20).top(30).bottom(60))
}

/// A horizontal legend under the plot, leaving the narrow figure's width to the data.
fn below() -> Legend {
    Legend::new()
        .orientation(Orientation::Horizontal)
        .x(0.0)
        .y(-0.25)
}

/// Confusion matrix as a heatmap of row-normalised recall (%), with the clip counts written in
/// each cell. Rows (true classes) run top to bottom in table order.
pub fn confusion(system: &SystemRecord) -> Plot {
    let matrix = &system.evaluation.confusion;
    let classes: Vec<String> = CLASSES.iter().map(|c| c.to_string()).collect();
    // Plotly draws the first category at the bottom: reverse rows so `airport` is on top.
    let mut y = classes.clone();
    y.reverse();
    let mut z: Vec<Vec<f64>> = Vec::with_capacity(classes.len());
    let mut annotations = Vec::new();
    for (r, true_class) in classes.iter().enumerate().rev() {
        let row = matrix.get(r).cloned().unwrap_or_default();
        let total: u64 = row.iter().sum();
        let mut z_row = Vec::with_capacity(classes.len());
        for (c, predicted) in classes.iter().enumerate() {
            let count = row.get(c).copied().unwrap_or(0);
            let pct = if total > 0 {
                100.0 * count as f64 / total as f64
            } else {
                0.0
            };
            z_row.push(pct);
            annotations.push(
                Annotation::new()
                    .x(predicted.as_str())
                    .y(true_class.as_str())
                    .text(count.to_string())
                    .show_arrow(false)
                    .font(Font::new().size(10).color(if pct > 60.0 {
                        "#ffffff"
                    } else {
                        "#1a1a1a"
                    })),
            );
        }
        z.push(z_row);
    }
    let trace = HeatMap::new(classes.clone(), y, z)
        .color_scale(ColorScale::Palette(ColorScalePalette::Blues))
        .reverse_scale(true)
        .zmin(0.0)
        .zmax(100.0)
        .hover_template("true %{y}<br>predicted %{x}<br>%{z:.1f}% of the class<extra></extra>");
    let mut plot = Plot::new();
    plot.add_trace(trace);
    plot.set_layout(
        Layout::new()
            .height(540)
            .width(HALF_WIDTH)
            .font(Font::new().size(12))
            .margin(Margin::new().left(130).right(20).top(30).bottom(130))
            .x_axis(
                Axis::new()
                    .title(Title::with_text("predicted"))
                    .tick_angle(-40.0),
            )
            .y_axis(Axis::new().title(Title::with_text("true")))
            .annotations(annotations),
    );
    plot.set_configuration(config());
    plot
}

/// Device-wise accuracy (%), one bar group per device and one bar per system.
pub fn device_bars(systems: &[SystemRecord]) -> Plot {
    let mut plot = Plot::new();
    let devices = crate::frames::device_columns(systems);
    for (i, s) in systems.iter().enumerate() {
        let mut x = Vec::new();
        let mut y = Vec::new();
        for d in &devices {
            if let Some(score) = s.evaluation.device_accuracy.get(d) {
                x.push(d.to_uppercase());
                y.push(100.0 * score.accuracy);
            }
        }
        plot.add_trace(
            Bar::new(x, y)
                .name(s.label.as_str())
                .marker(Marker::new().color(colour(i)))
                .hover_template("%{x}: %{y:.1f}%"),
        );
    }
    plot.set_layout(
        base_layout(420)
            .bar_mode(BarMode::Group)
            .y_axis(Axis::new().title(Title::with_text("accuracy (%)")))
            .x_axis(Axis::new().title(Title::with_text("device")))
            .legend(Legend::new()),
    );
    plot.set_configuration(config());
    plot
}

/// Training curves: one figure for loss, one for accuracy; solid = training, dashed =
/// held-out validation when recorded. `None` when no system has a curve.
pub fn curves(systems: &[SystemRecord]) -> Option<(Plot, Plot)> {
    if systems.iter().all(|s| s.curve.is_empty()) {
        return None;
    }
    let mut loss = Plot::new();
    let mut acc = Plot::new();
    for (i, s) in systems.iter().enumerate() {
        if s.curve.is_empty() {
            continue;
        }
        let epochs: Vec<usize> = s.curve.iter().map(|e| e.epoch).collect();
        let line = |dash: DashType| Line::new().color(colour(i)).dash(dash);
        let group = format!("sys{i}");
        loss.add_trace(
            Scatter::new(
                epochs.clone(),
                s.curve.iter().map(|e| e.train_loss).collect(),
            )
            .name(format!("{} (train)", s.label))
            .legend_group(group.as_str())
            .mode(Mode::Lines)
            .line(line(DashType::Solid)),
        );
        acc.add_trace(
            Scatter::new(
                epochs.clone(),
                s.curve.iter().map(|e| 100.0 * e.train_accuracy).collect(),
            )
            .name(format!("{} (train)", s.label))
            .legend_group(group.as_str())
            .mode(Mode::Lines)
            .line(line(DashType::Solid)),
        );
        let val: Vec<(usize, f64, f64)> = s
            .curve
            .iter()
            .filter_map(|e| Some((e.epoch, e.val_loss?, e.val_accuracy?)))
            .collect();
        if !val.is_empty() {
            let x: Vec<usize> = val.iter().map(|v| v.0).collect();
            loss.add_trace(
                Scatter::new(x.clone(), val.iter().map(|v| v.1).collect())
                    .name(format!("{} (validation)", s.label))
                    .legend_group(group.as_str())
                    .mode(Mode::LinesMarkers)
                    .line(line(DashType::Dash)),
            );
            acc.add_trace(
                Scatter::new(x, val.iter().map(|v| 100.0 * v.2).collect())
                    .name(format!("{} (validation)", s.label))
                    .legend_group(group.as_str())
                    .mode(Mode::LinesMarkers)
                    .line(line(DashType::Dash)),
            );
        }
    }
    loss.set_layout(
        base_layout(420)
            .width(HALF_WIDTH)
            .legend(below())
            .x_axis(Axis::new().title(Title::with_text("epoch")))
            .y_axis(Axis::new().title(Title::with_text("loss"))),
    );
    acc.set_layout(
        base_layout(420)
            .width(HALF_WIDTH)
            .legend(below())
            .x_axis(Axis::new().title(Title::with_text("epoch")))
            .y_axis(Axis::new().title(Title::with_text("accuracy (%)"))),
    );
    loss.set_configuration(config());
    acc.set_configuration(config());
    Some((loss, acc))
}

/// Every published accuracy this run reproduced: published on x, reproduced on y (both in %),
/// one colour per published table, the diagonal where they agree. `None` when the run
/// reproduced no published accuracy.
pub fn published_vs_reproduced(record: &RunRecord) -> Option<Plot> {
    let rows: Vec<&PublishedRow> = record.published.iter().collect();
    let pairs = crate::frames::accuracy_pairs(&rows, &record.systems);
    let mut groups: Vec<(String, Vec<AccuracyPair>)> = Vec::new();
    for p in pairs {
        match groups.iter_mut().find(|(t, _)| *t == p.table) {
            Some((_, of_table)) => of_table.push(p),
            None => groups.push((p.table.clone(), vec![p])),
        }
    }
    accuracy_scatter(groups)
}

/// [`published_vs_reproduced`] over several runs, one colour per recipe.
pub fn published_vs_reproduced_site(records: &[&RunRecord]) -> Option<Plot> {
    let groups = records
        .iter()
        .map(|r| {
            let rows: Vec<&PublishedRow> = r.published.iter().collect();
            (
                r.recipe_id.clone(),
                crate::frames::accuracy_pairs(&rows, &r.systems),
            )
        })
        .filter(|(_, pairs)| !pairs.is_empty())
        .collect();
    accuracy_scatter(groups)
}

/// Published (x) against reproduced (y) accuracy, one trace per named group, and the
/// diagonal.
fn accuracy_scatter(groups: Vec<(String, Vec<AccuracyPair>)>) -> Option<Plot> {
    let values = groups
        .iter()
        .flat_map(|(_, g)| g.iter().flat_map(|p| [p.published, p.reproduced]));
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() {
        return None;
    }
    let mut plot = Plot::new();
    for (i, (name, pairs)) in groups.iter().enumerate() {
        plot.add_trace(
            Scatter::new(
                pairs.iter().map(|p| p.published).collect(),
                pairs.iter().map(|p| p.reproduced).collect(),
            )
            .name(name.as_str())
            .mode(Mode::Markers)
            .marker(Marker::new().color(colour(i)).size(9))
            .text_array(
                pairs
                    .iter()
                    .map(|p| format!("{} · {} · {}", p.table, p.label, p.column))
                    .collect(),
            )
            .hover_template("%{text}<br>published %{x:.1f}%, reproduced %{y:.1f}%<extra></extra>"),
        );
    }
    let (lo, hi) = ((lo / 10.0).floor() * 10.0, (hi / 10.0).ceil() * 10.0);
    plot.add_trace(
        Scatter::new(vec![lo, hi], vec![lo, hi])
            .name("reproduced = published")
            .mode(Mode::Lines)
            .line(Line::new().color("#999999").dash(DashType::Dot))
            .hover_info(HoverInfo::Skip),
    );
    plot.set_layout(
        base_layout(460)
            .legend(below())
            .x_axis(Axis::new().title(Title::with_text("published accuracy (%)")))
            .y_axis(Axis::new().title(Title::with_text("reproduced accuracy (%)"))),
    );
    plot.set_configuration(config());
    Some(plot)
}

/// Accuracy (%) against MACs per clip (millions) of every system of every run, one colour per
/// run, each point's hover naming the system, its parameter memory as deployed and its
/// precision; the DCASE 2024/2025 limit of 30 M MACs dashed.
pub fn accuracy_against_macs(records: &[&RunRecord]) -> Plot {
    let mut plot = Plot::new();
    let mut top = 0f64;
    for (i, r) in records.iter().enumerate() {
        let systems = &r.systems;
        let y: Vec<f64> = systems
            .iter()
            .map(|s| 100.0 * s.evaluation.accuracy)
            .collect();
        top = y.iter().copied().fold(top, f64::max);
        plot.add_trace(
            Scatter::new(
                systems
                    .iter()
                    .map(|s| s.complexity.macs as f64 / 1e6)
                    .collect(),
                y,
            )
            .name(r.recipe_id.as_str())
            .mode(Mode::Markers)
            .marker(Marker::new().color(colour(i)).size(8))
            .text_array(
                systems
                    .iter()
                    .map(|s| {
                        format!(
                            "{} · {:.1} kB at {}",
                            s.label,
                            s.param_bytes() as f64 / 1e3,
                            s.precision
                        )
                    })
                    .collect(),
            )
            .hover_template("%{text}<br>%{x:.2f} M MACs, accuracy %{y:.1f}%<extra></extra>"),
        );
    }
    let limit = LIMIT_MACS as f64 / 1e6;
    plot.add_trace(
        Scatter::new(vec![limit, limit], vec![0.0, (top / 10.0).ceil() * 10.0])
            .name("30 M MACs limit")
            .mode(Mode::Lines)
            .line(Line::new().color("#999999").dash(DashType::Dash))
            .hover_info(HoverInfo::Skip),
    );
    plot.set_layout(
        base_layout(460)
            .legend(below())
            .x_axis(Axis::new().title(Title::with_text("MACs per clip (millions)")))
            .y_axis(Axis::new().title(Title::with_text("accuracy (%)"))),
    );
    plot.set_configuration(config());
    plot
}
