//! Report tables. Each table is built once as a polars DataFrame (that frame is what
//! `results/<name>.csv` and `.parquet` hold, at full precision), then laid out for HTML by one
//! generic function, [`view`], driven by a column spec. Formatting lives only in the spec, so
//! the files keep raw values and the page shows them the way the DCASE reports print them.

use crate::error::{Error, Result};
use polars::prelude::*;
use serde::Serialize;

/// How one column's values are shown.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fmt {
    Text,
    /// Text left blank when it repeats the previous row's value (groups consecutive rows).
    TextGrouped,
    /// Monospace text (hashes, shapes, identifiers).
    Code,
    /// A value already in %, with this many decimals (the reports print accuracies with one,
    /// some with two).
    Pct(usize),
    /// A signed difference of percentages with this many decimals, coloured by sign and size.
    Diff(usize),
    /// A signed complexity difference (K or M) with one decimal more than the published
    /// figure's `printed` ones; flagged when larger than what a figure printed with that many
    /// decimals can hide by rounding or truncation (0.01 for two).
    DiffPrinted {
        printed: usize,
    },
    /// A signed difference of exact counts, thousands separated; flagged unless zero.
    DiffCount,
    /// A signed float with this many decimals, not coloured (a difference with no better side).
    Signed(usize),
    /// A float with this many decimals.
    Fixed(usize),
    /// A float as transcribed: the shortest decimal form that reads back as the same number.
    AsGiven,
    /// An exact integer with thousands separators, marked over `limit` when given.
    Int {
        limit: Option<u64>,
    },
    /// An integer count in millions (three decimals), marked over `limit` when given.
    Mega {
        limit: Option<u64>,
    },
    /// An integer count in thousands (three decimals: exact for integers).
    Kilo,
    /// A byte count in kB (1000 B, as the DCASE limit is stated), marked over `limit`.
    KBytes {
        limit: Option<u64>,
    },
    /// A long hash shortened for the page; the full value is the cell's tooltip.
    Hash,
    /// Lines of `name<TAB>hash`, each hash shortened.
    HashList,
    /// A boolean shown as a pass/fail badge.
    PassFail,
    /// A check status (`match`, `mismatch`, anything else) shown as a badge.
    Status,
}

impl Fmt {
    fn is_numeric(self) -> bool {
        !matches!(
            self,
            Fmt::Text
                | Fmt::TextGrouped
                | Fmt::Code
                | Fmt::Hash
                | Fmt::HashList
                | Fmt::PassFail
                | Fmt::Status
        )
    }
}

/// One shown column: which DataFrame column, its header, an optional header group, and its
/// format (optionally overridden for rows of a given kind, see [`TableSpec::kind_col`]).
#[derive(Debug, Clone)]
pub struct ColSpec {
    pub col: String,
    pub header: String,
    pub group: Option<String>,
    pub fmt: Fmt,
    pub by_kind: Vec<(String, Fmt)>,
}

impl ColSpec {
    pub fn new(col: impl Into<String>, header: impl Into<String>, fmt: Fmt) -> Self {
        ColSpec {
            col: col.into(),
            header: header.into(),
            group: None,
            fmt,
            by_kind: Vec::new(),
        }
    }

    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// Uses `fmt` instead for rows whose kind column equals `kind`.
    pub fn when(mut self, kind: &str, fmt: Fmt) -> Self {
        self.by_kind.push((kind.to_string(), fmt));
        self
    }
}

#[derive(Debug, Clone)]
pub struct TableSpec {
    /// HTML id of the table element.
    pub id: String,
    pub caption: String,
    pub cols: Vec<ColSpec>,
    /// A string column naming each row's kind: it becomes the row's CSS class (`row-<kind>`)
    /// and selects per-kind formats.
    pub kind_col: Option<String>,
}

/// A DataFrame with its name under `results/` and how the page shows it.
#[derive(Clone)]
pub struct Table {
    pub name: String,
    pub df: DataFrame,
    pub spec: TableSpec,
}

/// What the template lays out: plain strings and CSS classes only.
#[derive(Debug, Clone, Serialize)]
pub struct TableView {
    pub id: String,
    pub caption: String,
    pub csv: Option<String>,
    pub parquet: Option<String>,
    pub groups: Vec<GroupView>,
    pub header: Vec<HeaderView>,
    pub rows: Vec<RowView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupView {
    pub label: String,
    pub span: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct HeaderView {
    pub label: String,
    pub class: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RowView {
    pub class: String,
    pub cells: Vec<CellView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CellView {
    pub text: String,
    pub class: String,
    pub title: String,
}

pub(crate) fn polars_err(what: &str, e: PolarsError) -> Error {
    Error::msg(format!("report table {what}: {e}"))
}

/// The one DataFrame → HTML table layout function.
pub fn view(df: &DataFrame, spec: &TableSpec) -> Result<TableView> {
    let columns = spec
        .cols
        .iter()
        .map(|c| df.column(&c.col).map_err(|e| polars_err(&spec.id, e)))
        .collect::<Result<Vec<_>>>()?;
    let kinds = match &spec.kind_col {
        Some(k) => {
            let col = df.column(k).map_err(|e| polars_err(&spec.id, e))?;
            (0..df.height())
                .map(|i| {
                    col.get(i)
                        .map(|v| v.get_str().map(str::to_string))
                        .map_err(|e| polars_err(&spec.id, e))
                })
                .collect::<Result<Vec<_>>>()?
        }
        None => vec![None; df.height()],
    };

    let mut groups: Vec<GroupView> = Vec::new();
    if spec.cols.iter().any(|c| c.group.is_some()) {
        let mut current: Option<&Option<String>> = None;
        for c in &spec.cols {
            match (current, groups.last_mut()) {
                (Some(g), Some(last)) if *g == c.group => last.span += 1,
                _ => groups.push(GroupView {
                    label: c.group.clone().unwrap_or_default(),
                    span: 1,
                }),
            }
            current = Some(&c.group);
        }
    }

    let header = spec
        .cols
        .iter()
        .map(|c| HeaderView {
            label: c.header.clone(),
            class: if c.fmt.is_numeric() { "num" } else { "" }.to_string(),
        })
        .collect();

    let mut rows = Vec::with_capacity(df.height());
    let mut previous: Vec<Option<String>> = vec![None; spec.cols.len()];
    for (i, kind) in kinds.iter().enumerate() {
        let mut cells = Vec::with_capacity(spec.cols.len());
        for (j, (c, col)) in spec.cols.iter().zip(&columns).enumerate() {
            let fmt = kind
                .as_deref()
                .and_then(|k| c.by_kind.iter().find(|(kk, _)| kk == k))
                .map_or(c.fmt, |(_, f)| *f);
            let value = col.get(i).map_err(|e| polars_err(&spec.id, e))?;
            let text_value = value.get_str().map(str::to_string);
            let mut cell = format_cell(&value, fmt);
            if fmt == Fmt::TextGrouped && text_value.is_some() && text_value == previous[j] {
                cell.text.clear();
                cell.class.push_str(" repeat");
            }
            previous[j] = text_value;
            cells.push(cell);
        }
        rows.push(RowView {
            class: kind.as_deref().map(row_class).unwrap_or_default(),
            cells,
        });
    }

    Ok(TableView {
        id: spec.id.clone(),
        caption: spec.caption.clone(),
        csv: None,
        parquet: None,
        groups,
        header,
        rows,
    })
}

/// `row-<first words of kind>`: only `[a-z0-9-]`, cut at the first `:` so a status like
/// `not counted: no architecture` gives `row-not-counted`.
fn row_class(kind: &str) -> String {
    let head = kind.split(':').next().unwrap_or_default().trim();
    let slug: String = head
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    format!("row-{slug}")
}

enum Val<'a> {
    Null,
    Str(&'a str),
    Int(u64),
    Float(f64),
    Bool(bool),
}

fn classify<'a>(v: &'a AnyValue<'_>) -> Val<'a> {
    match v {
        AnyValue::Null => Val::Null,
        AnyValue::Boolean(b) => Val::Bool(*b),
        AnyValue::UInt8(x) => Val::Int(u64::from(*x)),
        AnyValue::UInt16(x) => Val::Int(u64::from(*x)),
        AnyValue::UInt32(x) => Val::Int(u64::from(*x)),
        AnyValue::UInt64(x) => Val::Int(*x),
        AnyValue::Int16(x) => int_or_float(i64::from(*x)),
        AnyValue::Int32(x) => int_or_float(i64::from(*x)),
        AnyValue::Int64(x) => int_or_float(*x),
        AnyValue::Float32(x) => Val::Float(f64::from(*x)),
        AnyValue::Float64(x) => Val::Float(*x),
        other => match other.get_str() {
            Some(s) => Val::Str(s),
            None => Val::Null,
        },
    }
}

fn int_or_float<'a>(x: i64) -> Val<'a> {
    u64::try_from(x).map_or(Val::Float(x as f64), Val::Int)
}

fn cell(text: impl Into<String>, class: &str) -> CellView {
    CellView {
        text: text.into(),
        class: class.to_string(),
        title: String::new(),
    }
}

fn format_cell(value: &AnyValue<'_>, fmt: Fmt) -> CellView {
    let num = if fmt.is_numeric() { "num" } else { "" };
    match (classify(value), fmt) {
        (Val::Null, _) => cell("–", &format!("{num} na")),
        (Val::Float(x), _) if !x.is_finite() => cell("n/a", &format!("{num} na")),
        (Val::Str(s), Fmt::Code) => cell(s, "mono"),
        (Val::Str(s), Fmt::Hash) => CellView {
            text: short_hash(s),
            class: "mono".into(),
            title: s.to_string(),
        },
        (Val::Str(s), Fmt::HashList) => CellView {
            text: s
                .lines()
                .map(|l| match l.split_once('\t') {
                    Some((name, hash)) => format!("{name} {}", short_hash(hash)),
                    None => l.to_string(),
                })
                .collect::<Vec<_>>()
                .join("\n"),
            class: "mono lines".into(),
            title: s.replace('\t', " "),
        },
        (Val::Str(s), Fmt::Status) => {
            let class = match s {
                "match" => "badge pass",
                "mismatch" => "badge fail",
                _ => "badge neutral",
            };
            cell(s, class)
        }
        (Val::Str(s), _) => cell(s, ""),
        (Val::Bool(b), Fmt::PassFail) => {
            if b {
                cell("pass", "badge pass")
            } else {
                cell("fail", "badge fail")
            }
        }
        (Val::Bool(b), _) => cell(b.to_string(), ""),
        (Val::Int(n), fmt) => format_int(n, fmt),
        (Val::Float(x), fmt) => format_float(x, fmt),
    }
}

fn limit_class(n: u64, limit: Option<u64>) -> &'static str {
    match limit {
        Some(l) if n > l => "num over",
        Some(_) => "num within",
        None => "num",
    }
}

fn format_int(n: u64, fmt: Fmt) -> CellView {
    match fmt {
        Fmt::Int { limit } => cell(thousands(n), limit_class(n, limit)),
        Fmt::Mega { limit } => cell(format!("{:.3}", n as f64 / 1e6), limit_class(n, limit)),
        Fmt::Kilo => cell(format!("{:.3}", n as f64 / 1e3), "num"),
        Fmt::KBytes { limit } => cell(format!("{:.3} kB", n as f64 / 1e3), limit_class(n, limit)),
        Fmt::PassFail => format_cell(&AnyValue::Boolean(n != 0), Fmt::PassFail),
        Fmt::Text | Fmt::TextGrouped | Fmt::Code | Fmt::Hash | Fmt::HashList | Fmt::Status => {
            cell(n.to_string(), "")
        }
        _ => format_float(n as f64, fmt),
    }
}

fn format_float(x: f64, fmt: Fmt) -> CellView {
    match fmt {
        Fmt::Pct(d) | Fmt::Fixed(d) => cell(format!("{x:.d$}"), "num"),
        Fmt::AsGiven => cell(format!("{x}"), "num"),
        Fmt::Signed(d) => cell(signed(x, d), "num"),
        Fmt::Diff(d) => {
            let text = signed(x, d);
            let size = x.abs();
            let class = if text == signed(0.0, d) {
                "num diff zero"
            } else if x > 0.0 {
                match size {
                    s if s < 1.0 => "num diff pos1",
                    s if s < 5.0 => "num diff pos2",
                    _ => "num diff pos3",
                }
            } else {
                match size {
                    s if s < 1.0 => "num diff neg1",
                    s if s < 5.0 => "num diff neg2",
                    _ => "num diff neg3",
                }
            };
            cell(text, class)
        }
        Fmt::DiffPrinted { printed } => {
            let hidden = 10f64.powi(-(printed as i32));
            let class = if x.abs() < hidden + 1e-9 {
                "num cx ok"
            } else {
                "num cx bad"
            };
            cell(signed(x, printed + 1), class)
        }
        Fmt::DiffCount => {
            let class = if x == 0.0 { "num cx ok" } else { "num cx bad" };
            let sign = if x > 0.0 {
                "+"
            } else if x < 0.0 {
                "-"
            } else {
                ""
            };
            let magnitude = x.abs();
            if magnitude.fract() == 0.0 && magnitude < 1.8e19 {
                cell(format!("{sign}{}", thousands(magnitude as u64)), class)
            } else {
                cell(signed(x, 3), class)
            }
        }
        Fmt::Int { .. } | Fmt::Mega { .. } | Fmt::Kilo | Fmt::KBytes { .. } => {
            if x >= 0.0 && x.fract() == 0.0 && x < 1.8e19 {
                format_int(x as u64, fmt)
            } else {
                cell(format!("{x}"), "num")
            }
        }
        _ => cell(format!("{x}"), ""),
    }
}

/// `+1.4`, `-0.3`, and `0.0` (never `+0.0` or `-0.0`).
fn signed(x: f64, decimals: usize) -> String {
    let s = format!("{x:+.decimals$}");
    let zero = format!("{:.decimals$}", 0.0);
    if s[1..] == zero {
        zero
    } else {
        s
    }
}

pub fn short_hash(h: &str) -> String {
    if h.chars().count() > 16 {
        let head: String = h.chars().take(16).collect();
        format!("{head}…")
    } else {
        h.to_string()
    }
}

/// `s` safe as HTML text or a quoted attribute value (`/` left alone, so paths read as
/// written).
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `1650149` → `1,650,149`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Column constructors, so builders read as a list of named columns.
pub fn str_col(name: &str, values: Vec<String>) -> Column {
    Column::new(name.into(), values)
}

pub fn opt_str_col(name: &str, values: Vec<Option<String>>) -> Column {
    Column::new(name.into(), values)
}

pub fn f64_col(name: &str, values: Vec<Option<f64>>) -> Column {
    Column::new(name.into(), values)
}

pub fn u64_col(name: &str, values: Vec<Option<u64>>) -> Column {
    Column::new(name.into(), values)
}

pub fn bool_col(name: &str, values: Vec<bool>) -> Column {
    Column::new(name.into(), values)
}

pub fn frame(what: &str, columns: Vec<Column>) -> Result<DataFrame> {
    DataFrame::new_infer_height(columns).map_err(|e| polars_err(what, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_650_149), "1,650,149");
        assert_eq!(signed(-0.04, 1), "0.0");
        assert_eq!(signed(1.26, 1), "+1.3");
        assert_eq!(signed(-2.0, 1), "-2.0");
        assert_eq!(row_class("not counted: no model"), "row-not-counted");
    }
}
