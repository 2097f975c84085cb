//! Teachers for knowledge distillation: the logits of trained models or their ensembles
//! ([`teacher_logits`]), and teacher logits files, how teachers that cannot run here (BEATs,
//! PaSST ensembles) enter distillation. One row per training clip: `filename` then the 10 logits, in the class order of
//! [`CLASSES`], as `.csv` or `.parquet`. Reading checks the file's SHA-256 first and refuses
//! anything that could silently give a clip the wrong teacher (reordered classes, duplicates,
//! missing or foreign clips), naming the file, the line or row, and the clip.

use crate::data::csv::split_line;
use crate::error::{Error, Result};
use crate::train::FeatureSet;
use ascrepro_results::labels::CLASSES;
use polars::prelude::{
    Column, DataFrame, DataType, Float32Chunked, ParquetReader, ParquetWriter, SerReader,
};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::io::Cursor;
use std::path::Path;
use tch::{Device, Kind, Tensor};

const N_CLASSES: usize = CLASSES.len();
/// How many clip names an error lists before summarising the rest as a count.
const SHOWN: usize = 5;

#[derive(Clone, Copy)]
enum Format {
    Csv,
    Parquet,
}

fn format_of(path: &Path) -> Result<Format> {
    let ext = path.extension().and_then(|e| e.to_str());
    match ext.map(str::to_ascii_lowercase).as_deref() {
        Some("csv") => Ok(Format::Csv),
        Some("parquet") => Ok(Format::Parquet),
        _ => Err(Error::file(
            path,
            "unsupported logits file type: the name must end in `.csv` or `.parquet`",
        )),
    }
}

/// Writes one row per clip (`filename` and the 10 logits of `logits`, a float tensor
/// [clips.len(), 10]) as CSV or parquet by the extension of `path`. Values keep their exact f32
/// bits. The file appears whole or not at all.
pub fn write_logits(path: &Path, clips: &[String], logits: &Tensor) -> Result<()> {
    let format = format_of(path)?;
    let values = checked_values(path, clips, logits)?;
    let bytes = match format {
        Format::Csv => csv_text(clips, &values).into_bytes(),
        Format::Parquet => parquet_bytes(path, clips, &values)?,
    };
    write_atomically(path, &bytes)
}

/// Reads the logits file at `path`, after checking that its SHA-256 is `sha256`: a Float32 CPU
/// tensor [clips.len(), 10] whose row i holds the logits of `clips[i]`. A filename in the file
/// names a clip by the whole clip string or, where that is unambiguous, by its base name.
pub fn read_logits(path: &Path, sha256: &str, clips: &[String]) -> Result<Tensor> {
    let format = format_of(path)?;
    // Hash and parse the same bytes, so the check covers exactly what is used.
    let bytes = crate::fsio::read(path)?;
    let actual = hex::encode(Sha256::digest(&bytes));
    if !actual.eq_ignore_ascii_case(sha256.trim()) {
        return Err(Error::file(
            path,
            format!(
                "SHA-256 mismatch: the recipe expects {sha256}, the file has {actual}; if the \
                 file was regenerated on purpose, update the recipe's `sha256` to {actual}"
            ),
        ));
    }
    let rows = match format {
        Format::Csv => parse_csv(path, &bytes)?,
        Format::Parquet => parse_parquet(path, &bytes, clips.len() + 1)?,
    };
    let values = arrange(path, &rows, clips)?;
    Ok(Tensor::f_from_slice(&values)?.f_reshape([clips.len() as i64, N_CLASSES as i64])?)
}

/// The elementwise mean of the members' logits as a Float32 CPU tensor: summed in member order,
/// then divided by the count, so an ensemble always gives the same bits.
pub fn ensemble_mean(members: &[Tensor]) -> Result<Tensor> {
    let Some(first) = members.first() else {
        return Err(Error::msg("teacher ensemble: no members to average"));
    };
    let shape = first.size();
    let mut sum = first.f_to(Device::Cpu)?.f_to_kind(Kind::Float)?;
    for (i, member) in members.iter().enumerate().skip(1) {
        let member_shape = member.size();
        if member_shape != shape {
            return Err(Error::msg(format!(
                "teacher ensemble: member {i} has logits {member_shape:?}, member 0 {shape:?}"
            )));
        }
        sum = sum.f_add(&member.f_to(Device::Cpu)?.f_to_kind(Kind::Float)?)?;
    }
    Ok(sum.f_div_scalar(members.len() as f64)?)
}

/// Eval-mode logits for every row of `set`, on the CPU: of the model saved at `weights[0]`, or
/// the mean over the models of an ensemble ([`ensemble_mean`]).
pub fn teacher_logits(weights: &[&Path], set: &FeatureSet, device: Device) -> Result<Tensor> {
    let mut members = Vec::with_capacity(weights.len());
    for w in weights {
        let (_vs, _cfg, model) = crate::models::load_weights(w, device)?;
        members.push(crate::eval::predict(model.as_ref(), set, 256, device));
    }
    match members.len() {
        1 => Ok(members.pop().expect("one member")),
        _ => ensemble_mean(&members),
    }
}

/// The logits as row-major f32s, after the checks that keep a written file readable.
fn checked_values(path: &Path, clips: &[String], logits: &Tensor) -> Result<Vec<f32>> {
    let refuse = |message: String| Err(Error::file(path, format!("cannot write: {message}")));
    let (shape, kind, rows) = (logits.size(), logits.kind(), clips.len());
    if shape != [rows as i64, N_CLASSES as i64] || !logits.is_floating_point() {
        return refuse(format!(
            "logits {shape:?} of {kind:?}, not floats [{rows}, 10]"
        ));
    }
    let mut seen = HashMap::new();
    for clip in clips {
        if clip.is_empty() || clip.contains(['\n', '\r']) || seen.insert(clip, ()).is_some() {
            return refuse(format!("clip `{clip}` is empty, not one line, or twice"));
        }
    }
    let flat = logits.f_to(Device::Cpu)?.f_to_kind(Kind::Float)?;
    let values = Vec::<f32>::try_from(&flat.f_flatten(0, -1)?)?;
    match values.iter().position(|v| !v.is_finite()) {
        Some(i) => refuse(format!(
            "clip `{}` has {} for `{}`; a logits file holds only finite values",
            clips[i / N_CLASSES],
            values[i],
            CLASSES[i % N_CLASSES]
        )),
        None => Ok(values),
    }
}

fn csv_text(clips: &[String], values: &[f32]) -> String {
    let mut text = format!("filename,{}\n", CLASSES.join(","));
    for (clip, row) in clips.iter().zip(values.chunks_exact(N_CLASSES)) {
        if clip.contains([',', '"']) || clip.trim() != clip {
            let _ = write!(text, "\"{}\"", clip.replace('"', "\"\""));
        } else {
            text.push_str(clip);
        }
        for v in row {
            // `{}` of an f32 is the shortest text that parses back to the same bits.
            let _ = write!(text, ",{v}");
        }
        text.push('\n');
    }
    text
}

fn parquet_bytes(path: &Path, clips: &[String], values: &[f32]) -> Result<Vec<u8>> {
    let mut columns = vec![Column::new("filename".into(), clips)];
    for (k, class) in CLASSES.iter().enumerate() {
        let column: Vec<f32> = values.iter().skip(k).step_by(N_CLASSES).copied().collect();
        columns.push(Column::new((*class).into(), column));
    }
    let polars = |e| Error::file(path, format!("cannot encode parquet: {e}"));
    let mut frame = DataFrame::new_infer_height(columns).map_err(polars)?;
    let mut bytes = Vec::new();
    ParquetWriter::new(&mut bytes)
        .finish(&mut frame)
        .map_err(polars)?;
    Ok(bytes)
}

/// Writes `bytes` to a temporary file beside `path`, flushed to disk, then renames it into place.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::fsio::write(path, bytes, &[])
}

/// Where a row sits in its file: a 1-based CSV line or a 0-based parquet row index.
#[derive(Clone, Copy)]
enum At {
    Line(usize),
    Row(usize),
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            At::Line(line) => write!(f, "line {line}"),
            At::Row(row) => write!(f, "row {row}"),
        }
    }
}

impl At {
    /// An error at this line or row, in `column` when known.
    fn error(self, path: &Path, column: Option<&str>, message: String) -> Error {
        match (self, column) {
            (At::Line(line), _) => Error::input(path, Some(line), column, message),
            (At::Row(row), Some(column)) => {
                Error::file(path, format!("row {row}, column `{column}`: {message}"))
            }
            (At::Row(row), None) => Error::file(path, format!("row {row}: {message}")),
        }
    }
}

struct Row {
    name: String,
    at: At,
    logits: [f32; N_CLASSES],
}

/// `filename` then the classes in table order; anything else is refused, since a teacher's
/// classes in another order would silently scramble its logits.
fn check_columns(names: &[&str]) -> std::result::Result<(), String> {
    let expected = format!("filename,{}", CLASSES.join(","));
    let (n, found) = (names.len(), names.join(","));
    if n != N_CLASSES + 1 {
        Err(format!(
            "{n} columns, expected 11: `{expected}`; found `{found}`"
        ))
    } else if names[0] != "filename" || names[1..] != CLASSES {
        Err(format!(
            "the columns must be `{expected}`, classes in this order; found `{found}`"
        ))
    } else {
        Ok(())
    }
}

fn parse_csv(path: &Path, bytes: &[u8]) -> Result<Vec<Row>> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| Error::file(path, format!("not UTF-8 text: {e}")))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = (1..)
        .zip(text.lines())
        .filter(|(_, line)| !line.trim().is_empty());
    let Some((header_line, header)) = lines.next() else {
        let expected = CLASSES.join(",");
        let message = format!("empty file: expected a header `filename,{expected}`");
        return Err(Error::file(path, message));
    };
    let fail = |line, message| Error::input(path, Some(line), None, message);
    let names = split_line(header).map_err(|m| fail(header_line, m))?;
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    check_columns(&names).map_err(|m| fail(header_line, m))?;
    let mut rows = Vec::new();
    for (line, text) in lines {
        let mut fields = split_line(text).map_err(|m| fail(line, m))?.into_iter();
        let filename = fields.next().unwrap_or_default();
        let cells: Vec<String> = fields.collect();
        if cells.len() != N_CLASSES {
            let n = cells.len() + 1;
            let message = format!("clip `{filename}`: {n} fields, expected 11 (name, logits)");
            return Err(fail(line, message));
        }
        let mut logits = [0f32; N_CLASSES];
        for ((logit, cell), class) in logits.iter_mut().zip(&cells).zip(CLASSES) {
            *logit = cell.trim().parse().map_err(|_| {
                let message = format!("clip `{filename}`: `{cell}` is not a number");
                Error::input(path, Some(line), Some(class), message)
            })?;
        }
        let (name, at) = (filename, At::Line(line));
        rows.push(Row { name, at, logits });
    }
    Ok(rows)
}

/// The file's first `max_rows` rows (one past the clips is enough to name an extra one). The
/// decoder sizes its buffers by the row count the file declares, so the slice also bounds its
/// memory; it panics on some malformed files, which [`crate::panic_guard`] turns into an error.
fn parse_parquet(path: &Path, bytes: &[u8], max_rows: usize) -> Result<Vec<Row>> {
    let unreadable = |e: String| Error::file(path, format!("not a readable parquet file: {e}"));
    let frame = crate::panic_guard::catch(|| {
        super::parquet_guard::check_sizes(bytes, max_rows)?;
        ParquetReader::new(Cursor::new(bytes))
            .with_slice(Some((0, max_rows)))
            .finish()
            .map_err(|e| e.to_string())
    })
    .map_err(unreadable)?
    .map_err(unreadable)?;
    let names: Vec<&str> = frame
        .get_column_names()
        .iter()
        .map(|n| n.as_str())
        .collect();
    check_columns(&names).map_err(|m| Error::file(path, m))?;
    let columns = frame.columns();
    let filenames = columns[0].str().map_err(|_| {
        let dtype = columns[0].dtype();
        Error::file(
            path,
            format!("column `filename` holds {dtype}, expected text"),
        )
    })?;
    let as_f32: Vec<Float32Chunked> = (columns[1..].iter())
        .map(|column| f32_column(path, column))
        .collect::<Result<_>>()?;
    // A malformed file can decode to columns shorter than the frame; polars' `get` panics then.
    let height = frame.height();
    if filenames.len() != height || as_f32.iter().any(|c| c.len() != height) {
        return Err(Error::file(
            path,
            "not a readable parquet file: its columns differ in length",
        ));
    }
    let mut rows = Vec::with_capacity(height);
    for row in 0..height {
        let at = At::Row(row);
        let filename = filenames
            .get(row)
            .ok_or_else(|| at.error(path, Some("filename"), "no filename".to_string()))?;
        let mut logits = [0f32; N_CLASSES];
        for ((logit, column), class) in logits.iter_mut().zip(&as_f32).zip(CLASSES) {
            let null = || at.error(path, Some(class), format!("clip `{filename}`: no value"));
            *logit = column.get(row).ok_or_else(null)?;
        }
        let name = filename.to_string();
        rows.push(Row { name, at, logits });
    }
    Ok(rows)
}

/// A numeric column as f32s (doubles round to the nearest f32).
fn f32_column(path: &Path, column: &Column) -> Result<Float32Chunked> {
    let cast = match column.dtype().is_primitive_numeric() {
        true => column.cast(&DataType::Float32).ok(),
        false => None,
    };
    cast.and_then(|c| c.f32().ok().cloned()).ok_or_else(|| {
        let (name, dtype) = (column.name(), column.dtype());
        Error::file(
            path,
            format!("column `{name}` holds {dtype}, expected numbers"),
        )
    })
}

/// The rows' logits in the order of `clips`, refusing anything but exactly one finite row per
/// clip.
fn arrange(path: &Path, rows: &[Row], clips: &[String]) -> Result<Vec<f32>> {
    let mut exact = HashMap::new();
    let mut by_base: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, clip) in clips.iter().enumerate() {
        if exact.insert(clip.as_str(), i).is_some() {
            let message = format!("the run lists clip `{clip}` twice");
            return Err(Error::file(path, message));
        }
        let base = clip.rsplit('/').next().unwrap_or(clip);
        by_base.entry(base).or_default().push(i);
    }
    let mut values = vec![0f32; clips.len() * N_CLASSES];
    let mut given_at: Vec<Option<At>> = vec![None; clips.len()];
    let mut seen: HashMap<&str, At> = HashMap::new();
    let mut foreign = Vec::new();
    for Row { name, at, logits } in rows {
        let fail = |column, message| at.error(path, column, message);
        if let Some(first) = seen.insert(name, *at) {
            let message = format!("duplicate filename `{name}` (also at {first})");
            return Err(fail(None, message));
        }
        if let Some((logit, class)) = logits.iter().zip(CLASSES).find(|(v, _)| !v.is_finite()) {
            let message = format!("clip `{name}`: {logit} is not a finite logit");
            return Err(fail(Some(class), message));
        }
        let clip = match (exact.get(name.as_str()), by_base.get(name.as_str())) {
            (Some(&i), _) => i,
            (None, Some(same_base)) if same_base.len() == 1 => same_base[0],
            (None, Some(same_base)) => {
                let quoted = |&i: &usize| format!("`{}`", clips[i]);
                let names: Vec<String> = same_base.iter().map(quoted).collect();
                let (n, names) = (names.len(), first_few(&names));
                let message = format!(
                    "filename `{name}` is the base name of {n} clips ({names}), so this file \
                     must name clips by their exact names"
                );
                return Err(fail(None, message));
            }
            (None, None) => {
                foreign.push(format!("`{name}` ({at})"));
                continue;
            }
        };
        if let Some(first) = given_at[clip].replace(*at) {
            let message = format!("clip `{}` is given twice (also at {first})", clips[clip]);
            return Err(fail(None, message));
        }
        values[clip * N_CLASSES..][..N_CLASSES].copy_from_slice(logits);
    }
    let missing: Vec<String> = (clips.iter().zip(&given_at))
        .filter(|(_, at)| at.is_none())
        .map(|(clip, _)| format!("`{clip}`"))
        .collect();
    let mut problems = Vec::new();
    if !missing.is_empty() {
        let (n, names) = (missing.len(), first_few(&missing));
        problems.push(format!("training clips without logits ({n}): {names}"));
    }
    if !foreign.is_empty() {
        let (n, names) = (foreign.len(), first_few(&foreign));
        problems.push(format!(
            "rows of clips the run does not train on ({n}): {names}"
        ));
    }
    if problems.is_empty() {
        return Ok(values);
    }
    let problems = problems.join("; ");
    let message = format!("{problems}; the file must hold exactly the run's training clips");
    Err(Error::file(path, message))
}

fn first_few(items: &[String]) -> String {
    let shown = items[..items.len().min(SHOWN)].join(", ");
    match items.len().saturating_sub(SHOWN) {
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}
