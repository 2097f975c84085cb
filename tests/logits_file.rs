//! Teacher logits files: CSV and parquet round trips keep every f32 bit, rows follow the run's
//! clips (by exact or base name), and every way a file can mislead a teacher is refused with an
//! error naming the file and the offending line, row, clip or hash.

use ascrepro::data::manifest::hash_file;
use ascrepro::train::distill::{ensemble_mean, read_logits, write_logits};
use ascrepro_results::labels::CLASSES;
use polars::prelude::{Column, DataFrame, ParquetWriter};
use std::path::{Path, PathBuf};
use tch::Tensor;

fn clips(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

fn sha(path: &Path) -> String {
    hash_file(path).unwrap().1
}

/// Reads with the file's true hash, so only the content is on trial.
fn read(path: &Path, clips: &[String]) -> ascrepro::Result<Tensor> {
    read_logits(path, &sha(path), clips)
}

/// The error message of reading `path` for `clips`.
fn refusal(path: &Path, clips: &[String]) -> String {
    match read(path, clips) {
        Ok(_) => panic!("{} was accepted", path.display()),
        Err(e) => e.to_string(),
    }
}

fn bits(t: &Tensor) -> Vec<u32> {
    let flat = t.flatten(0, -1);
    Vec::<f32>::try_from(&flat)
        .unwrap()
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

/// Logits with values that lose bits under careless formatting or parsing.
fn awkward(rows: usize) -> Tensor {
    let special = [
        1e-38f32,
        -0.0,
        123456.79,
        1.0 / 3.0,
        f32::MIN_POSITIVE,
        1.4e-45,
        f32::MAX / 4.0,
        -f32::MAX / 4.0,
        0.1,
        -2.5e-7,
    ];
    let values: Vec<f32> = (0..rows * CLASSES.len())
        .map(|i| special[i % special.len()] * if i / 10 % 2 == 0 { 1.0 } else { -3.0 })
        .collect();
    Tensor::from_slice(&values).view([rows as i64, CLASSES.len() as i64])
}

fn header() -> String {
    format!("filename,{}\n", CLASSES.join(","))
}

fn row(name: &str, value: &str) -> String {
    format!("{name}{}\n", format!(",{value}").repeat(CLASSES.len()))
}

/// A row of ones but for `cell` in the column of `class`.
fn row_with(name: &str, class: &str, cell: &str) -> String {
    let cells: Vec<&str> = CLASSES
        .iter()
        .map(|c| if *c == class { cell } else { "1" })
        .collect();
    format!("{name},{}\n", cells.join(","))
}

fn write_text(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn round_trip(ext: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("teacher.{ext}"));
    let names = clips(&[
        "audio/airport-lisbon-1000-40000-0-a.wav",
        "audio/bus-lyon-1001-40001-0-s1.wav",
        "audio/with, comma \"and quote\".wav",
        "tram-vienna-285-8639-0-b.wav",
    ]);
    let logits = awkward(names.len());
    write_logits(&path, &names, &logits).unwrap();
    let back = read(&path, &names).unwrap();
    assert_eq!(back.size(), [4, 10]);
    assert_eq!(back.kind(), tch::Kind::Float);
    assert_eq!(bits(&back), bits(&logits));
    // Rows follow the clips asked for, not the file's order.
    let reversed: Vec<String> = names.iter().rev().cloned().collect();
    let back = read(&path, &reversed).unwrap();
    assert_eq!(bits(&back), bits(&logits.flip([0])));
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "temporary files left behind");
}

#[test]
fn csv_round_trip_is_bit_exact() {
    round_trip("csv");
}

#[test]
fn parquet_round_trip_is_bit_exact() {
    round_trip("parquet");
}

#[test]
fn csv_has_the_class_header_and_shortest_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.csv");
    let logits = Tensor::from_slice(&[0.1f32, -0.0, 2.0, 1e-38, 0., 0., 0., 0., 0., 1.5]);
    write_logits(&path, &clips(&["a.wav"]), &logits.view([1, 10])).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let expected_row = "a.wav,0.1,-0,2,0.00000000000000000000000000000000000001,0,0,0,0,0,1.5\n";
    assert_eq!(text, header() + expected_row);
}

#[test]
fn base_names_match_clips() {
    let dir = tempfile::tempdir().unwrap();
    let text = header() + &row("airport-lisbon-1000-40000-0-a.wav", "1") + &row("b.wav", "2");
    let path = write_text(dir.path(), "t.csv", &text);
    let names = clips(&["b.wav", "audio/airport-lisbon-1000-40000-0-a.wav"]);
    let logits = read(&path, &names).unwrap();
    let expected: Vec<f32> = [vec![2.0f32; 10], vec![1.0; 10]].concat();
    assert_eq!(
        Vec::<f32>::try_from(&logits.flatten(0, -1)).unwrap(),
        expected
    );
}

#[test]
fn ambiguous_base_names_need_exact_names() {
    let dir = tempfile::tempdir().unwrap();
    let names = clips(&["dev/x.wav", "eval/x.wav"]);
    let path = write_text(dir.path(), "t.csv", &(header() + &row("x.wav", "1")));
    let e = refusal(&path, &names);
    assert!(e.contains("t.csv:2") && e.contains("`x.wav`"), "{e}");
    assert!(
        e.contains("exact names") && e.contains("2 clips (`dev/x.wav`, `eval/x.wav`)"),
        "{e}"
    );
    let exact = header() + &row("eval/x.wav", "1") + &row("dev/x.wav", "2");
    let path = write_text(dir.path(), "exact.csv", &exact);
    let logits = read(&path, &names).unwrap();
    assert_eq!(logits.double_value(&[0, 0]), 2.0);
    assert_eq!(logits.double_value(&[1, 0]), 1.0);
}

#[test]
fn missing_clip_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_text(dir.path(), "t.csv", &(header() + &row("a.wav", "1")));
    let e = refusal(&path, &clips(&["a.wav", "audio/b.wav", "audio/c.wav"]));
    assert!(
        e.contains("t.csv") && e.contains("training clips without logits (2)"),
        "{e}"
    );
    assert!(
        e.contains("`audio/b.wav`") && e.contains("`audio/c.wav`"),
        "{e}"
    );
}

#[test]
fn many_missing_clips_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_text(dir.path(), "t.csv", &header());
    let names: Vec<String> = (0..40).map(|i| format!("c{i}.wav")).collect();
    let e = refusal(&path, &names);
    assert!(
        e.contains("without logits (40)") && e.contains("and 35 more"),
        "{e}"
    );
    assert!(!e.contains("c39.wav"), "{e}");
}

#[test]
fn extra_clip_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let text = header() + &row("a.wav", "1") + &row("stranger.wav", "2");
    let path = write_text(dir.path(), "t.csv", &text);
    let e = refusal(&path, &clips(&["a.wav"]));
    assert!(
        e.contains("t.csv") && e.contains("rows of clips the run does not train on (1)"),
        "{e}"
    );
    assert!(e.contains("`stranger.wav` (line 3)"), "{e}");
}

#[test]
fn duplicate_filename_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let text = header() + &row("a.wav", "1") + &row("b.wav", "1") + &row("a.wav", "2");
    let path = write_text(dir.path(), "t.csv", &text);
    let e = refusal(&path, &clips(&["a.wav", "b.wav"]));
    assert!(
        e.contains("t.csv:4") && e.contains("duplicate filename `a.wav`"),
        "{e}"
    );
    assert!(e.contains("line 2"), "{e}");
    // The same clip by its exact and its base name is a duplicate too.
    let text = header() + &row("audio/a.wav", "1") + &row("a.wav", "2");
    let path = write_text(dir.path(), "u.csv", &text);
    let e = refusal(&path, &clips(&["audio/a.wav"]));
    assert!(
        e.contains("u.csv:3") && e.contains("clip `audio/a.wav` is given twice"),
        "{e}"
    );
}

#[test]
fn wrong_hash_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_text(dir.path(), "t.csv", &(header() + &row("a.wav", "1")));
    let stale = "0".repeat(64);
    let e = read_logits(&path, &stale, &clips(&["a.wav"]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("t.csv") && e.contains(&stale) && e.contains(&sha(&path)),
        "{e}"
    );
    assert!(e.contains("update the recipe's `sha256`"), "{e}");
}

#[test]
fn nan_and_inf_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (i, bad) in ["NaN", "inf", "-infinity"].iter().enumerate() {
        let text = header() + &row("a.wav", "1") + &row_with("b.wav", "bus", bad);
        let path = write_text(dir.path(), &format!("t{i}.csv"), &text);
        let e = refusal(&path, &clips(&["a.wav", "b.wav"]));
        assert!(
            e.contains(&format!("t{i}.csv:3")) && e.contains("`b.wav`"),
            "{e}"
        );
        assert!(
            e.contains("field `bus`") && e.contains("not a finite"),
            "{e}"
        );
    }
    // Writing refuses them too, so no file is made that reading would refuse.
    let path = dir.path().join("w.csv");
    let logits = Tensor::from_slice(&[0f32, 0., 0., f32::NAN, 0., 0., 0., 0., 0., 0.]);
    let e = write_logits(&path, &clips(&["a.wav"]), &logits.view([1, 10])).unwrap_err();
    assert!(e.to_string().contains("`a.wav`") && e.to_string().contains("for `metro_station`"));
    assert!(!path.exists());
}

fn parquet_file(dir: &Path, name: &str, filenames: &[&str], column: Vec<f64>) -> PathBuf {
    let mut columns = vec![Column::new("filename".into(), filenames)];
    for class in CLASSES {
        columns.push(Column::new(class.into(), column.clone()));
    }
    let mut frame = DataFrame::new_infer_height(columns).unwrap();
    let path = dir.join(name);
    ParquetWriter::new(std::fs::File::create(&path).unwrap())
        .finish(&mut frame)
        .unwrap();
    path
}

#[test]
fn parquet_float64_is_read_and_nan_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let names = clips(&["audio/a.wav", "audio/b.wav"]);
    let path = parquet_file(
        dir.path(),
        "ok.parquet",
        &["a.wav", "b.wav"],
        vec![0.5, -1.25],
    );
    let logits = read(&path, &names).unwrap();
    assert_eq!(logits.double_value(&[1, 9]), -1.25);
    let path = parquet_file(
        dir.path(),
        "nan.parquet",
        &["a.wav", "b.wav"],
        vec![0.5, f64::NAN],
    );
    let e = refusal(&path, &names);
    assert!(
        e.contains("nan.parquet") && e.contains("row 1") && e.contains("`b.wav`"),
        "{e}"
    );
    assert!(e.contains("not a finite"), "{e}");
    let path = parquet_file(
        dir.path(),
        "big.parquet",
        &["a.wav", "b.wav"],
        vec![1e300, 0.0],
    );
    let e = refusal(&path, &names);
    assert!(
        e.contains("row 0") && e.contains("`a.wav`") && e.contains("inf"),
        "{e}"
    );
}

#[test]
fn swapped_class_order_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let swapped = header().replace("airport,bus", "bus,airport");
    let path = write_text(dir.path(), "t.csv", &(swapped + &row("a.wav", "1")));
    let e = refusal(&path, &clips(&["a.wav"]));
    assert!(e.contains("t.csv:1") && e.contains(header().trim()), "{e}");
    assert!(
        e.contains("in this order") && e.contains("filename,bus,airport"),
        "{e}"
    );
    // Parquet columns are held to the same order.
    let mut columns = vec![Column::new("filename".into(), ["a.wav"])];
    for class in CLASSES.iter().rev() {
        columns.push(Column::new((*class).into(), [1f32]));
    }
    let mut frame = DataFrame::new_infer_height(columns).unwrap();
    let path = dir.path().join("t.parquet");
    ParquetWriter::new(std::fs::File::create(&path).unwrap())
        .finish(&mut frame)
        .unwrap();
    let e = refusal(&path, &clips(&["a.wav"]));
    assert!(
        e.contains("t.parquet") && e.contains("filename,tram,"),
        "{e}"
    );
}

#[test]
fn wrong_column_count_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let short = header().replace(",tram", "");
    let path = write_text(dir.path(), "h.csv", &(short + &row("a.wav", "1")));
    let e = refusal(&path, &clips(&["a.wav"]));
    assert!(
        e.contains("h.csv:1") && e.contains("10 columns, expected 11"),
        "{e}"
    );
    let text = header() + &row("a.wav", "1") + "b.wav,1,2,3\n";
    let path = write_text(dir.path(), "r.csv", &text);
    let e = refusal(&path, &clips(&["a.wav", "b.wav"]));
    assert!(
        e.contains("r.csv:3") && e.contains("`b.wav`: 4 fields, expected 11"),
        "{e}"
    );
}

#[test]
fn non_numeric_cell_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bad = row_with("b.wav", "tram", "high");
    let path = write_text(dir.path(), "t.csv", &(header() + &row("a.wav", "1") + &bad));
    let e = refusal(&path, &clips(&["a.wav", "b.wav"]));
    assert!(
        e.contains("t.csv:3: field `tram`") && e.contains("`b.wav`"),
        "{e}"
    );
    assert!(e.contains("`high` is not a number"), "{e}");
    // A parquet class column of text is refused by name and type.
    let mut columns = vec![Column::new("filename".into(), ["a.wav"])];
    for class in CLASSES {
        let cell = if class == "park" { "high" } else { "1" };
        columns.push(Column::new(class.into(), [cell]));
    }
    let mut frame = DataFrame::new_infer_height(columns).unwrap();
    let path = dir.path().join("t.parquet");
    ParquetWriter::new(std::fs::File::create(&path).unwrap())
        .finish(&mut frame)
        .unwrap();
    let e = refusal(&path, &clips(&["a.wav"]));
    assert!(
        e.contains("t.parquet") && e.contains("column `airport` holds str"),
        "{e}"
    );
}

#[test]
fn empty_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["t.csv", "t.parquet"] {
        let path = write_text(dir.path(), name, "");
        let e = refusal(&path, &clips(&["a.wav"]));
        assert!(e.contains(name), "{e}");
    }
    let e = refusal(&dir.path().join("t.csv"), &clips(&["a.wav"]));
    assert!(e.contains("empty file"), "{e}");
    let path = write_text(dir.path(), "junk.parquet", "filename,airport\n");
    let e = refusal(&path, &clips(&["a.wav"]));
    assert!(
        e.contains("junk.parquet") && e.contains("not a readable parquet"),
        "{e}"
    );
}

#[test]
fn unsupported_extension_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_text(dir.path(), "t.tsv", &(header() + &row("a.wav", "1")));
    let e = refusal(&path, &clips(&["a.wav"]));
    assert!(
        e.contains("t.tsv") && e.contains(".csv") && e.contains(".parquet"),
        "{e}"
    );
    let path = dir.path().join("t.npy");
    let e = write_logits(
        &path,
        &clips(&["a.wav"]),
        &Tensor::zeros([1, 10], tch::kind::FLOAT_CPU),
    );
    let e = e.unwrap_err().to_string();
    assert!(
        e.contains("t.npy") && e.contains(".csv") && e.contains(".parquet"),
        "{e}"
    );
}

#[test]
fn write_refuses_a_shape_that_is_not_one_row_per_clip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.csv");
    let logits = Tensor::zeros([2, 10], tch::kind::FLOAT_CPU);
    let e = write_logits(&path, &clips(&["a.wav"]), &logits)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("t.csv") && e.contains("[2, 10]") && e.contains("not floats [1, 10]"),
        "{e}"
    );
    let e = write_logits(&path, &clips(&["a.wav", "a.wav"]), &logits).unwrap_err();
    assert!(
        e.to_string()
            .contains("`a.wav` is empty, not one line, or twice"),
        "{e}"
    );
    assert!(!path.exists());
}

#[test]
fn ensemble_mean_is_exact() {
    let a = awkward(3) / 7.0;
    let b = Tensor::from_slice(&(0..30).map(|i| i as f32 / 3.0).collect::<Vec<_>>()).view([3, 10]);
    let c = b.neg() * 1.1;
    let mean = ensemble_mean(&[a.shallow_clone(), b.shallow_clone()]).unwrap();
    let expected = (&a + &b) / 2.0;
    assert_eq!(bits(&mean), bits(&expected));
    // Three members: summed in order, then divided, element by element in f32.
    let mean = ensemble_mean(&[a.shallow_clone(), b.shallow_clone(), c.shallow_clone()]).unwrap();
    let [a, b, c] = [&a, &b, &c].map(|t| Vec::<f32>::try_from(&t.flatten(0, -1)).unwrap());
    let expected: Vec<u32> = (0..30)
        .map(|i| ((a[i] + b[i] + c[i]) / 3.0).to_bits())
        .collect();
    assert_eq!(bits(&mean), expected);
    assert!(ensemble_mean(&[]).is_err());
    let e = ensemble_mean(&[
        Tensor::zeros([3, 10], tch::kind::FLOAT_CPU),
        Tensor::zeros([2, 10], tch::kind::FLOAT_CPU),
    ]);
    assert!(e.unwrap_err().to_string().contains("member 1"));
}
