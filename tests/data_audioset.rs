//! The AudioSet loader: a hand-written copy in AudioSet's own formats (comment lines, `, `
//! separators, quoted display names and label lists), missing WAVs (an error naming the clip,
//! or skipped and counted on request), and malformed CSVs (errors naming file and line).

use ascrepro::audio::wav::write_wav_24;
use ascrepro::data::audioset::{load, load_with, Missing};
use ascrepro::Error;
use std::path::Path;

const CLASSES: &str = "\u{feff}index,mid,display_name
0,/m/09x0r,\"Speech\"
1,/m/09l8g,\"Female speech, woman speaking\"
2,/m/04rlf,Music
3,/t/dd00088,\"Say \"\"hello\"\"\"
";

const SEGMENTS: &str = "# Segments csv created Sun Mar  5 10:54:31 2017
# num_ytids=3, num_segs=3, num_unique_labels=4, num_positive_labels=5
# YTID, start_seconds, end_seconds, positive_labels
--PJHxphWEs, 30.000, 40.000, \"/m/09x0r,/t/dd00088\"
-0RWZT-miFs, 420.000, 430.000, \"/m/04rlf\"
-1nilez17Dg, 30.000, 40.000, \"/m/09l8g, /m/09x0r, /m/04rlf\"
";

const IDS: [&str; 3] = ["--PJHxphWEs", "-0RWZT-miFs", "-1nilez17Dg"];

/// A copy at `root`: the two CSVs (given texts) and a short WAV per YTID in `wavs`.
fn copy(root: &Path, classes: &str, segments: &str, wavs: &[&str]) {
    std::fs::create_dir_all(root.join("audio")).unwrap();
    std::fs::write(root.join("class_labels_indices.csv"), classes).unwrap();
    std::fs::write(root.join("balanced_train_segments.csv"), segments).unwrap();
    for id in wavs {
        write_wav_24(&root.join(format!("audio/{id}.wav")), &[0.0; 64], 32_000).unwrap();
    }
}

fn load_copy(root: &Path) -> ascrepro::Result<ascrepro::data::audioset::MultiLabelDataset> {
    load(
        root,
        Path::new("balanced_train_segments.csv"),
        Path::new("class_labels_indices.csv"),
    )
}

#[test]
fn reads_audiosets_own_formats() {
    let dir = tempfile::tempdir().unwrap();
    copy(dir.path(), CLASSES, SEGMENTS, &IDS);
    let ds = load_copy(dir.path()).unwrap();
    assert_eq!(
        ds.classes,
        [
            "Speech",
            "Female speech, woman speaking",
            "Music",
            "Say \"hello\""
        ]
    );
    assert_eq!(ds.mids, ["/m/09x0r", "/m/09l8g", "/m/04rlf", "/t/dd00088"]);
    let got: Vec<(&str, &[usize])> = ds
        .clips
        .iter()
        .map(|c| (c.file.as_str(), c.labels.as_slice()))
        .collect();
    assert_eq!(
        got,
        [
            ("audio/--PJHxphWEs.wav", &[0, 3][..]),
            ("audio/-0RWZT-miFs.wav", &[2][..]),
            ("audio/-1nilez17Dg.wav", &[0, 1, 2][..]),
        ]
    );
    assert!(ds.skipped.is_empty());
    assert!(ds.path_of(&ds.clips[0]).is_file());
    #[rustfmt::skip]
    assert_eq!(ds.targets(), [
        1.0, 0.0, 0.0, 1.0,
        0.0, 0.0, 1.0, 0.0,
        1.0, 1.0, 1.0, 0.0,
    ]);
    // Absolute CSV paths work too (class lists often live beside the audio, not in it).
    let abs = dir.path().join("class_labels_indices.csv");
    let again = load(dir.path(), Path::new("balanced_train_segments.csv"), &abs).unwrap();
    assert_eq!(again.clips, ds.clips);
}

#[test]
fn missing_wav_is_an_error_naming_it_unless_skipped() {
    let dir = tempfile::tempdir().unwrap();
    copy(dir.path(), CLASSES, SEGMENTS, &[IDS[0], IDS[2]]);
    let e = load_copy(dir.path()).unwrap_err();
    let text = e.to_string();
    match &e {
        Error::Input { at, .. } => {
            assert!(at.file.ends_with("balanced_train_segments.csv"), "{text}");
            assert_eq!(at.line, Some(5), "{text}");
            assert_eq!(at.field.as_deref(), Some("YTID"), "{text}");
        }
        other => panic!("expected an input error, got {other:?}"),
    }
    assert!(text.contains("-0RWZT-miFs.wav"), "{text}");
    assert!(text.contains("1 of the 3 listed clips"), "{text}");
    assert!(text.contains("missing: skip"), "{text}");

    let ds = load_with(
        dir.path(),
        Path::new("balanced_train_segments.csv"),
        Path::new("class_labels_indices.csv"),
        Missing::Skip,
    )
    .unwrap();
    assert_eq!(ds.clips.len(), 2);
    assert_eq!(ds.skipped, ["audio/-0RWZT-miFs.wav"]);

    // Skipping everything leaves nothing to train on: an error, not an empty dataset.
    let none = tempfile::tempdir().unwrap();
    copy(none.path(), CLASSES, SEGMENTS, &[]);
    let e = load_with(
        none.path(),
        Path::new("balanced_train_segments.csv"),
        Path::new("class_labels_indices.csv"),
        Missing::Skip,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("none of the 3 listed clips"), "{e}");
}

#[test]
fn missing_option_reads_from_yaml() {
    let m: Missing = serde_norway::from_str("skip").unwrap();
    assert_eq!(m, Missing::Skip);
    assert_eq!(Missing::default(), Missing::Error);
    assert!(serde_norway::from_str::<Missing>("ignore").is_err());
}

/// (what is wrong, the classes CSV, the segments CSV, the file and line the error must name,
/// and a word it must contain).
type Case = (
    &'static str,
    String,
    String,
    &'static str,
    usize,
    &'static str,
);

fn malformed() -> Vec<Case> {
    let seg = |line: &str| format!("{SEGMENTS}{line}\n");
    let cls = |line: &str| format!("{CLASSES}{line}\n");
    let c = || CLASSES.to_string();
    let s = || SEGMENTS.to_string();
    const SEG: &str = "balanced_train_segments.csv";
    const CLS: &str = "class_labels_indices.csv";
    vec![
        (
            "header",
            "index,name\n0,/m/x,X\n".into(),
            s(),
            CLS,
            1,
            "index,mid,display_name",
        ),
        (
            "index order",
            cls("5,/m/y,\"Y\""),
            s(),
            CLS,
            6,
            "expected 4",
        ),
        (
            "index not a number",
            cls("four,/m/y,Y"),
            s(),
            CLS,
            6,
            "index",
        ),
        (
            "duplicate MID",
            cls("4,/m/04rlf,\"Again\""),
            s(),
            CLS,
            6,
            "first at line 4",
        ),
        (
            "unterminated quote",
            cls("4,/m/y,\"Open"),
            s(),
            CLS,
            6,
            "unterminated",
        ),
        (
            "empty display name",
            cls("4,/m/y,\"\""),
            s(),
            CLS,
            6,
            "display",
        ),
        (
            "two columns",
            cls("4,/m/y"),
            s(),
            CLS,
            6,
            "3 comma-separated",
        ),
        (
            "unquoted label list",
            c(),
            seg("abc, 0.0, 10.0, /m/09x0r,/m/04rlf"),
            SEG,
            7,
            "quote",
        ),
        (
            "unknown MID",
            c(),
            seg("abc, 0.0, 10.0, \"/m/09x0r,/m/nope\""),
            SEG,
            7,
            "/m/nope",
        ),
        (
            "empty label list",
            c(),
            seg("abc, 0.0, 10.0, \"\""),
            SEG,
            7,
            "empty MID",
        ),
        (
            "bad start",
            c(),
            seg("abc, soon, 10.0, \"/m/09x0r\""),
            SEG,
            7,
            "start_seconds",
        ),
        (
            "end before start",
            c(),
            seg("abc, 10.0, 5.0, \"/m/09x0r\""),
            SEG,
            7,
            "not after",
        ),
        (
            "duplicate YTID",
            c(),
            seg("-0RWZT-miFs, 0.0, 10.0, \"/m/09x0r\""),
            SEG,
            7,
            "first at line 5",
        ),
        (
            "YTID with a slash",
            c(),
            seg("../x, 0.0, 10.0, \"/m/09x0r\""),
            SEG,
            7,
            "YTID",
        ),
        (
            "text after a quote",
            c(),
            seg("abc, 0.0, 10.0, \"/m/09x0r\" x"),
            SEG,
            7,
            "closing quote",
        ),
        (
            "no clips",
            c(),
            "# only comments\n".into(),
            SEG,
            0,
            "no clips",
        ),
    ]
}

#[test]
fn malformed_csvs_name_file_and_line() {
    for (what, classes, segments, file, line, word) in malformed() {
        let dir = tempfile::tempdir().unwrap();
        copy(dir.path(), &classes, &segments, &IDS);
        let e = load_copy(dir.path()).expect_err(what);
        let text = e.to_string();
        let Error::Input { at, .. } = &e else {
            panic!("{what}: expected an input error, got {e:?}");
        };
        assert!(at.file.ends_with(file), "{what}: {text}");
        let expected_line = (line > 0).then_some(line);
        assert_eq!(at.line, expected_line, "{what}: {text}");
        if line > 0 {
            assert!(text.contains(&format!("{file}:{line}")), "{what}: {text}");
        }
        assert!(text.contains(word), "{what}: `{word}` not in: {text}");
    }
}

#[test]
fn unreadable_files_are_errors_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    copy(dir.path(), CLASSES, SEGMENTS, &IDS);
    std::fs::remove_file(dir.path().join("class_labels_indices.csv")).unwrap();
    let e = load_copy(dir.path()).unwrap_err().to_string();
    assert!(e.contains("class_labels_indices.csv"), "{e}");
    std::fs::write(
        dir.path().join("class_labels_indices.csv"),
        [0xff, 0xfe, 0x00],
    )
    .unwrap();
    let e = load_copy(dir.path()).unwrap_err().to_string();
    assert!(e.contains("UTF-8"), "{e}");
}
