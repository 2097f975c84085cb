//! Rich display in evcxr notebooks. evcxr shows a cell's final value by calling its
//! `evcxr_display` method, which prints MIME blocks (`EVCXR_BEGIN_CONTENT <type>` ...
//! `EVCXR_END_CONTENT`) on stdout. Each value here prints `text/html` (what Jupyter shows) and
//! `text/plain` (what a terminal REPL shows): DataFrames as tables, report tables as the report
//! lays them out, figures as interactive plotly.
//!
//! Figures draw with the plotly.js this crate bundles, never one from the network: display
//! [`plotly()`] once in a notebook (its first cell) to load it.

use crate::figures;
use crate::table::{self, escape_html as escape, Table};
use plotly::Plot;
use polars::prelude::*;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Rows of a DataFrame an HTML display shows (the rest is counted).
const MAX_ROWS: usize = 60;

/// One display: each `(mime type, content)` as an evcxr MIME block.
fn bundle(parts: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (mime, content) in parts {
        let _ = write!(
            out,
            "EVCXR_BEGIN_CONTENT {mime}\n{content}\nEVCXR_END_CONTENT\n"
        );
    }
    out
}

const TABLE_STYLE: &str = "<style>\
.ascrepro-table{border-collapse:collapse;font:12px/1.35 system-ui,sans-serif;margin:4px 0}\
.ascrepro-table th,.ascrepro-table td{border:1px solid #ddd;padding:2px 6px;vertical-align:top}\
.ascrepro-table th{background:#f4f4f4;text-align:left}\
.ascrepro-table td.num,.ascrepro-table th.num{text-align:right;font-variant-numeric:tabular-nums}\
.ascrepro-table td.na{color:#999}.ascrepro-table td.mono{font-family:monospace}\
.ascrepro-table caption{caption-side:top;text-align:left;font-weight:600;padding:2px 0}\
.ascrepro-table .pos1,.ascrepro-table .pos2,.ascrepro-table .pos3{color:#1a7f37}\
.ascrepro-table .neg1,.ascrepro-table .neg2,.ascrepro-table .neg3{color:#c62828}\
.ascrepro-table .over,.ascrepro-table .bad,.ascrepro-table .fail{color:#c62828;font-weight:600}\
.ascrepro-table tr.row-published td{background:#fafafa}\
</style>";

/// A cell of a raw DataFrame as text: floats to at most four decimals (the full value is in
/// the frame), the rest as polars prints it.
fn raw_cell(v: &AnyValue<'_>) -> (String, &'static str) {
    match v {
        AnyValue::Null => ("null".into(), "na"),
        AnyValue::Float64(x) => (trim_float(*x), "num"),
        AnyValue::Float32(x) => (trim_float(f64::from(*x)), "num"),
        AnyValue::String(s) => ((*s).to_string(), ""),
        AnyValue::StringOwned(s) => (s.to_string(), ""),
        AnyValue::Boolean(b) => (b.to_string(), ""),
        other if other.is_primitive_numeric() => (other.to_string(), "num"),
        other => (other.to_string(), ""),
    }
}

fn trim_float(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    let s = format!("{x:.4}");
    let s = s.trim_end_matches('0');
    s.strip_suffix('.').unwrap_or(s).to_string()
}

/// A DataFrame as an HTML table: column names with types, the first 60 rows.
pub fn dataframe_html(df: &DataFrame) -> String {
    let mut h = String::from(TABLE_STYLE);
    let _ = write!(
        h,
        "<table class=\"ascrepro-table\"><caption>{} rows × {} columns</caption><thead><tr>",
        df.height(),
        df.width()
    );
    for c in df.columns() {
        let _ = write!(
            h,
            "<th>{}<br><small>{}</small></th>",
            escape(c.name()),
            escape(&c.dtype().to_string())
        );
    }
    h.push_str("</tr></thead><tbody>");
    for i in 0..df.height().min(MAX_ROWS) {
        h.push_str("<tr>");
        for c in df.columns() {
            let (text, class) = c
                .get(i)
                .map(|v| raw_cell(&v))
                .unwrap_or_else(|e| (e.to_string(), "na"));
            let _ = write!(h, "<td class=\"{class}\">{}</td>", escape(&text));
        }
        h.push_str("</tr>");
    }
    h.push_str("</tbody></table>");
    if df.height() > MAX_ROWS {
        let _ = write!(
            h,
            "<p><small>… {} more rows (filter the frame, or <code>.slice(offset, n)</code>)</small></p>",
            df.height() - MAX_ROWS
        );
    }
    h
}

/// A report table as its page lays it out: the spec's headers and formats.
pub fn table_html(t: &Table) -> String {
    let view = match table::view(&t.df, &t.spec) {
        Ok(v) => v,
        Err(e) => return format!("<pre>{}</pre>", escape(&e.to_string())),
    };
    let mut h = String::from(TABLE_STYLE);
    let _ = write!(
        h,
        "<table class=\"ascrepro-table\"><caption>{}</caption><thead>",
        escape(&view.caption)
    );
    if !view.groups.is_empty() {
        h.push_str("<tr>");
        for g in &view.groups {
            let _ = write!(h, "<th colspan=\"{}\">{}</th>", g.span, escape(&g.label));
        }
        h.push_str("</tr>");
    }
    h.push_str("<tr>");
    for c in &view.header {
        let _ = write!(h, "<th class=\"{}\">{}</th>", c.class, escape(&c.label));
    }
    h.push_str("</tr></thead><tbody>");
    for r in &view.rows {
        let _ = write!(h, "<tr class=\"{}\">", escape(&r.class));
        for c in &r.cells {
            let _ = write!(
                h,
                "<td class=\"{}\" title=\"{}\">{}</td>",
                escape(&c.class),
                escape(&c.title),
                escape(&c.text).replace('\n', "<br>")
            );
        }
        h.push_str("</tr>");
    }
    h.push_str("</tbody></table>");
    h
}

/// evcxr's display of values this crate does not own (polars' DataFrame): import it with
/// `use ascrepro_results::prelude::*;`.
pub trait NotebookDisplay {
    /// What [`NotebookDisplay::evcxr_display`] prints: the value's evcxr MIME blocks.
    fn mime_bundle(&self) -> String;

    fn evcxr_display(&self) {
        print!("{}", self.mime_bundle());
    }
}

impl NotebookDisplay for DataFrame {
    fn mime_bundle(&self) -> String {
        bundle(&[
            ("text/html", &dataframe_html(self)),
            ("text/plain", &self.to_string()),
        ])
    }
}

/// A report table shows as the report lays it out (a terminal gets the raw frame).
impl NotebookDisplay for Table {
    fn mime_bundle(&self) -> String {
        bundle(&[
            ("text/html", &table_html(self)),
            ("text/plain", &format!("{}\n{}", self.spec.caption, self.df)),
        ])
    }
}

/// A plotly figure of a report, with a title for terminals and file names.
#[derive(Clone)]
pub struct Figure {
    pub title: String,
    plot: Plot,
}

impl std::fmt::Debug for Figure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Figure({:?})", self.title)
    }
}

/// Distinguishes the `<div>`s of figures shown in one notebook.
static SHOWN: AtomicUsize = AtomicUsize::new(0);

impl Figure {
    pub fn new(title: impl Into<String>, plot: Plot) -> Figure {
        Figure {
            title: title.into(),
            plot,
        }
    }

    /// The plotly plot, to restyle or extend.
    pub fn plot(&self) -> &Plot {
        &self.plot
    }

    pub fn into_plot(self) -> Plot {
        self.plot
    }

    /// A `<div>` and the script that draws the figure into it once plotly.js is loaded
    /// ([`plotly()`]); it says so in the div if plotly.js never loads.
    pub fn to_html(&self) -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let id = format!(
            "ascrepro-fig-{}-{nanos:x}-{}",
            std::process::id(),
            SHOWN.fetch_add(1, Ordering::Relaxed)
        );
        // `</` inside the JSON would end the script element early.
        let spec = self.plot.to_json().replace("</", "<\\/");
        format!(
            "<div id=\"{id}\" class=\"ascrepro-figure\"></div>\n\
             <script type=\"text/javascript\">\n\
             (function () {{\n\
               var spec = {spec};\n\
               var tries = 0;\n\
               function draw() {{\n\
                 var el = document.getElementById(\"{id}\");\n\
                 if (!el) return;\n\
                 if (window.Plotly) {{ window.Plotly.newPlot(el, spec.data, spec.layout, spec.config); return; }}\n\
                 if (++tries < 100) {{ setTimeout(draw, 100); return; }}\n\
                 el.textContent = \"plotly.js is not loaded: display ascrepro_results::notebook::plotly() in a cell above, then run this cell again.\";\n\
               }}\n\
               draw();\n\
             }})();\n\
             </script>"
        )
    }

    /// A standalone HTML page of the figure, plotly.js inlined (opens offline).
    pub fn write_html(&self, path: impl AsRef<std::path::Path>) {
        self.plot.write_html(path)
    }
}

impl NotebookDisplay for Figure {
    fn mime_bundle(&self) -> String {
        let plain = format!(
            "Figure: {} (plotly; shown in Jupyter, or write it with .write_html(path))",
            self.title
        );
        bundle(&[("text/html", &self.to_html()), ("text/plain", &plain)])
    }
}

/// The bundled plotly.js as a display: shown once, it lets every later [`Figure`] draw.
pub struct PlotlyJs(String);

/// plotly.js for this notebook, from the copy this crate bundles (no network).
pub fn plotly() -> crate::Result<PlotlyJs> {
    figures::plotly_js().map(PlotlyJs)
}

impl NotebookDisplay for PlotlyJs {
    fn mime_bundle(&self) -> String {
        // Notebook pages may carry require.js, under which plotly.js registers an AMD module
        // instead of `window.Plotly`: hide `define` while it loads.
        let html = format!(
            "<script type=\"text/javascript\">window.__ascreproDefine = window.define; window.define = undefined;</script>\n\
             <script type=\"text/javascript\">{}</script>\n\
             <script type=\"text/javascript\">window.define = window.__ascreproDefine;</script>\n\
             <small>plotly.js loaded from ascrepro-results (offline)</small>",
            self.0.replace("</script", "<\\/script")
        );
        bundle(&[
            ("text/html", &html),
            (
                "text/plain",
                "plotly.js is loaded in Jupyter (a terminal shows no figures)",
            ),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The MIME blocks of a bundle, as evcxr reads them from stdout.
    fn blocks(bundle: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut rest = bundle;
        while let Some(start) = rest.find("EVCXR_BEGIN_CONTENT ") {
            let after = &rest[start + "EVCXR_BEGIN_CONTENT ".len()..];
            let (mime, body) = after.split_once('\n').unwrap();
            let end = body.find("\nEVCXR_END_CONTENT").unwrap();
            out.push((mime.to_string(), body[..end].to_string()));
            rest = &body[end..];
        }
        out
    }

    #[test]
    fn a_dataframe_shows_as_html_in_jupyter_and_as_text_in_a_terminal() {
        let df = DataFrame::new_infer_height(vec![
            Column::new("system".into(), ["<b>a & b</b>", "c"]),
            Column::new("acc".into(), [Some(54.123456), None]),
        ])
        .unwrap();
        let b = blocks(&df.mime_bundle());
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].0, "text/html");
        assert!(
            b[0].1.contains("&lt;b&gt;a &amp; b&lt;/b&gt;"),
            "{}",
            b[0].1
        );
        assert!(b[0].1.contains(">54.1235<") && b[0].1.contains(">null<"));
        assert_eq!(b[1], ("text/plain".to_string(), df.to_string()));
    }

    #[test]
    fn a_figure_draws_once_plotly_is_loaded_and_names_itself_in_a_terminal() {
        let mut plot = Plot::new();
        plot.add_trace(plotly::Scatter::new(vec![1, 2], vec![3, 4]).name("</script><x>"));
        let b = blocks(&Figure::new("curves", plot).mime_bundle());
        assert_eq!(b[0].0, "text/html");
        assert!(b[0].1.contains("Plotly.newPlot"));
        // The trace name cannot close the script element early.
        assert_eq!(b[0].1.matches("</script>").count(), 1);
        assert_eq!(b[1].0, "text/plain");
        assert!(b[1].1.starts_with("Figure: curves"));
        let js = plotly().unwrap().mime_bundle();
        assert_eq!(
            js.matches("</script>").count(),
            3,
            "plotly.js is inlined whole"
        );
        assert!(js.contains("Plotly"));
    }
}
