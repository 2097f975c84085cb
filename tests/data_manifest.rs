//! Data manifests (create, save/load, verify, summary form) and the TAU layout loader, including
//! the errors they give on bad input.

use ascrepro::data::manifest::{Manifest, Options};
use ascrepro::data::tau;
use ascrepro::Error;
use std::fs;
use std::path::Path;

fn write(root: &Path, rel: &str, bytes: &[u8]) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, bytes).unwrap();
}

fn sample_tree() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "meta.csv", b"filename\tscene_label\n");
    write(d.path(), "audio/b.wav", b"bbbbbbbb");
    write(d.path(), "audio/a.wav", b"aaaa");
    write(d.path(), "audio/sub/c.wav", b"cc");
    write(d.path(), "evaluation_setup/fold1_train.csv", b"x\n");
    d
}

fn err_text(r: ascrepro::Result<()>) -> String {
    r.expect_err("expected an error").to_string()
}

#[test]
fn create_verify_save_load_roundtrip() {
    let d = sample_tree();
    let m = Manifest::create(d.path(), "toy", "tau2022-mobile").unwrap();
    let paths: Vec<&str> = m.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "audio/a.wav",
            "audio/b.wav",
            "audio/sub/c.wav",
            "evaluation_setup/fold1_train.csv",
            "meta.csv"
        ]
    );
    assert_eq!(m.files[0].size, 4);
    // sha256("aaaa")
    assert_eq!(
        m.files[0].sha256,
        "61be55a8e2f6b4e172338bddf184d6dbee29c98853e0a0485ecee7f27b9af0b4"
    );
    m.verify(d.path()).unwrap();

    let out = tempfile::tempdir().unwrap();
    let mp = out.path().join("toy.yaml");
    m.save(&mp).unwrap();
    let first = fs::read(&mp).unwrap();
    m.save(&mp).unwrap();
    assert_eq!(first, fs::read(&mp).unwrap(), "save is deterministic");
    let back = Manifest::load(&mp).unwrap();
    assert_eq!(back, m);
    assert_eq!(back.hash(), m.hash());
    assert_eq!(m.hash().len(), 64);
    // No temporary files left next to the manifest.
    assert_eq!(fs::read_dir(out.path()).unwrap().count(), 1);
}

#[test]
fn identity_depends_on_content_only() {
    let d = sample_tree();
    let m1 = Manifest::create(d.path(), "toy", "tau2022-mobile").unwrap();
    let m2 = Manifest::create(d.path(), "other-name", "tau2022-mobile").unwrap();
    assert_eq!(m1.hash(), m2.hash());
    write(d.path(), "audio/a.wav", b"aaab");
    let m3 = Manifest::create(d.path(), "toy", "tau2022-mobile").unwrap();
    assert_ne!(m1.hash(), m3.hash());
}

#[test]
fn changed_byte_is_named() {
    let d = sample_tree();
    let m = Manifest::create(d.path(), "toy", "tau2022-mobile").unwrap();
    write(d.path(), "audio/b.wav", b"bbbbXbbb");
    let e = err_text(m.verify(d.path()));
    assert!(e.contains("audio/b.wav"), "{e}");
    assert!(e.contains("content differs"), "{e}");
}

#[test]
fn size_change_is_named() {
    let d = sample_tree();
    let m = Manifest::create(d.path(), "toy", "tau2022-mobile").unwrap();
    write(d.path(), "audio/sub/c.wav", b"ccc");
    let e = err_text(m.verify(d.path()));
    assert!(e.contains("audio/sub/c.wav") && e.contains("size"), "{e}");
}

#[test]
fn first_bad_file_in_sorted_order_is_named() {
    let d = sample_tree();
    let m = Manifest::create(d.path(), "toy", "tau2022-mobile").unwrap();
    // A content change early in the order and a missing file later: the early one is named.
    write(d.path(), "audio/a.wav", b"aaab");
    fs::remove_file(d.path().join("meta.csv")).unwrap();
    let e = err_text(m.verify(d.path()));
    assert!(e.contains("audio/a.wav"), "{e}");
}

#[test]
fn missing_file_is_named() {
    let d = sample_tree();
    let m = Manifest::create(d.path(), "toy", "tau2022-mobile").unwrap();
    fs::remove_file(d.path().join("audio/b.wav")).unwrap();
    let e = err_text(m.verify(d.path()));
    assert!(e.contains("audio/b.wav") && e.contains("missing"), "{e}");
}

#[test]
fn extra_file_is_named() {
    let d = sample_tree();
    let m = Manifest::create(d.path(), "toy", "tau2022-mobile").unwrap();
    write(d.path(), "audio/zz-extra.wav", b"z");
    let e = err_text(m.verify(d.path()));
    assert!(
        e.contains("audio/zz-extra.wav") && e.contains("not listed"),
        "{e}"
    );
}

#[test]
fn manifest_inside_the_data_directory_can_be_excluded() {
    let d = sample_tree();
    let mp = d.path().join("manifest.yaml");
    let opts = Options {
        exclude: vec![mp.clone()],
        progress: None,
    };
    let m = Manifest::create_with(d.path(), "toy", "tau2022-mobile", &opts).unwrap();
    m.save(&mp).unwrap();
    assert!(m.files.iter().all(|f| f.path != "manifest.yaml"));
    m.verify_with(d.path(), &opts).unwrap();
    // Without the exclusion, the manifest itself is an unlisted file.
    let e = err_text(m.verify(d.path()));
    assert!(e.contains("manifest.yaml"), "{e}");
}

#[test]
fn summary_form_verifies_and_detects_changes() {
    let d = sample_tree();
    let full = Manifest::create(d.path(), "toy", "tau2022-mobile").unwrap();
    let s = Manifest::create_summary(d.path(), "toy", "tau2022-mobile").unwrap();
    assert!(s.is_summary() && s.files.is_empty());
    assert_eq!(s.file_count, Some(5));
    assert_eq!(s.hash(), full.hash());
    s.verify(d.path()).unwrap();

    let out = tempfile::tempdir().unwrap();
    let mp = out.path().join("s.yaml");
    s.save(&mp).unwrap();
    assert_eq!(Manifest::load(&mp).unwrap(), s);

    write(d.path(), "audio/a.wav", b"aaab");
    let e = err_text(s.verify(d.path()));
    assert!(e.contains("list hash differs"), "{e}");
    write(d.path(), "audio/new.wav", b"n");
    let e = err_text(s.verify(d.path()));
    assert!(e.contains("6 files") && e.contains("lists 5"), "{e}");
}

fn load_err(yaml: &str) -> (String, Error) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("m.yaml");
    fs::write(&p, yaml).unwrap();
    let e = Manifest::load(&p).expect_err("expected a load error");
    (e.to_string(), e)
}

const HASH: &str = "61be55a8e2f6b4e172338bddf184d6dbee29c98853e0a0485ecee7f27b9af0b4";

#[test]
fn unknown_field_names_file_and_line() {
    let yaml = format!(
        "dataset: toy\nlayout: tau2022-mobile\nfiles:\n- path: audio/a.wav\n  size: 4\n  sha256: {HASH}\n  colour: red\n"
    );
    let (text, e) = load_err(&yaml);
    assert!(text.contains("m.yaml:7"), "{text}");
    assert!(text.contains("colour"), "{text}");
    assert!(matches!(e, Error::Input { .. }));

    let (text, _) = load_err("dataset: toy\nlayout: x\nsurprise: 1\n");
    assert!(
        text.contains("m.yaml:3") && text.contains("surprise"),
        "{text}"
    );
}

#[test]
fn wrong_type_names_file_and_line() {
    let yaml = format!(
        "dataset: toy\nlayout: x\nfiles:\n- path: audio/a.wav\n  size: four\n  sha256: {HASH}\n"
    );
    let (text, _) = load_err(&yaml);
    assert!(text.contains("m.yaml:5"), "{text}");
}

#[test]
fn escaping_paths_are_rejected_naming_the_entry() {
    for bad in ["../secret.wav", "/etc/passwd", "audio/../../x"] {
        let yaml = format!(
            "dataset: toy\nlayout: x\nfiles:\n- path: audio/a.wav\n  size: 4\n  sha256: {HASH}\n- path: {bad}\n  size: 4\n  sha256: {HASH}\n"
        );
        let (text, _) = load_err(&yaml);
        assert!(text.contains("m.yaml:7"), "{text}");
        assert!(text.contains("files[1].path"), "{text}");
    }
}

#[test]
fn malformed_hash_and_mixed_forms_are_rejected() {
    let (text, _) =
        load_err("dataset: toy\nlayout: x\nfiles:\n- path: a\n  size: 1\n  sha256: xyz\n");
    assert!(text.contains("files[0].sha256"), "{text}");
    let (text, _) = load_err(&format!(
        "dataset: toy\nlayout: x\nfile_count: 1\nlist_hash: {HASH}\nfiles:\n- path: a\n  size: 1\n  sha256: {HASH}\n"
    ));
    assert!(text.contains("list_hash"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// TAU layout

const META: &str = "filename\tscene_label\tidentifier\tsource_label\n\
audio/airport-lisbon-1000-40000-0-a.wav\tairport\tlisbon-1000\ta\n\
audio/airport-lisbon-1000-40000-0-s4.wav\tairport\tlisbon-1000\ts4\n\
audio/park-lyon-1001-40001-0-b.wav\tpark\tlyon-1001\tb\n\
audio/tram-prague-1002-40002-3-c.wav\ttram\tprague-1002\tc\n";

fn tau_tree(meta: &str, train: &str, test: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "meta.csv", meta.as_bytes());
    write(
        d.path(),
        "evaluation_setup/fold1_train.csv",
        train.as_bytes(),
    );
    write(
        d.path(),
        "evaluation_setup/fold1_evaluate.csv",
        test.as_bytes(),
    );
    d
}

const TRAIN: &str = "filename\tscene_label\n\
audio/airport-lisbon-1000-40000-0-a.wav\tairport\n\
audio/park-lyon-1001-40001-0-b.wav\tpark\n";
const TEST: &str = "filename\tscene_label\n\
audio/tram-prague-1002-40002-3-c.wav\ttram\n\
audio/airport-lisbon-1000-40000-0-s4.wav\tairport\n";

fn tau_err(meta: &str, train: &str, test: &str) -> String {
    let d = tau_tree(meta, train, test);
    tau::load(
        d.path(),
        "evaluation_setup/fold1_train.csv",
        "evaluation_setup/fold1_evaluate.csv",
    )
    .expect_err("expected an error")
    .to_string()
}

#[test]
fn tau_layout_loads() {
    let d = tau_tree(META, TRAIN, TEST);
    let ds = tau::load(
        d.path(),
        "evaluation_setup/fold1_train.csv",
        "evaluation_setup/fold1_evaluate.csv",
    )
    .unwrap();
    assert_eq!(ds.train.len(), 2);
    assert_eq!(ds.test.len(), 2);
    let c = &ds.train[1];
    assert_eq!(c.file, "audio/park-lyon-1001-40001-0-b.wav");
    assert_eq!(c.scene, 4);
    assert_eq!(c.device, 1);
    assert_eq!(c.identifier, "lyon-1001");
    assert_eq!(c.city, "lyon");
    assert_eq!(ds.device_name(&ds.test[1]), "s4");
    assert_eq!(ds.test[0].scene_name(), "tram");
    // CRLF line endings and a filename-only split (fold1_test.csv style) are fine too.
    let d = tau_tree(
        &META.replace('\n', "\r\n"),
        "filename\naudio/park-lyon-1001-40001-0-b.wav\n",
        TEST,
    );
    let ds = tau::load(
        d.path(),
        "evaluation_setup/fold1_train.csv",
        "evaluation_setup/fold1_evaluate.csv",
    )
    .unwrap();
    assert_eq!(ds.train.len(), 1);
}

#[test]
fn tau_unknown_scene_names_line_and_field() {
    let meta = META.replace("park\tlyon", "forest\tlyon");
    let e = tau_err(&meta, TRAIN, TEST);
    assert!(
        e.contains("meta.csv:4") && e.contains("scene_label") && e.contains("forest"),
        "{e}"
    );
}

#[test]
fn tau_malformed_device_id_names_line_and_field() {
    let meta = META.replace("\tc\n", "\ts 9\n");
    let e = tau_err(&meta, TRAIN, TEST);
    assert!(
        e.contains("meta.csv:5") && e.contains("source_label") && e.contains("s 9"),
        "{e}"
    );
}

/// The DCASE2025 evaluation set names devices the development set lacks: they are kept, after
/// the nine known ones (whose indices never move), and evaluation reports them by name.
#[test]
fn tau_new_device_ids_load_and_evaluate_under_their_names() {
    use ascrepro_results::labels::KNOWN_DEVICES;
    let meta = format!(
        "{META}audio/bus-paris-1003-40003-0-unknown.wav\tbus\tparis-1003\tunknown\n\
         audio/bus-paris-1003-40003-0-s7.wav\tbus\tparis-1003\ts7\n\
         audio/metro-paris-1004-40004-0-d.wav\tmetro\tparis-1004\td\n"
    );
    let test = "filename\tscene_label\n\
                audio/bus-paris-1003-40003-0-unknown.wav\tbus\n\
                audio/airport-lisbon-1000-40000-0-s4.wav\tairport\n\
                audio/metro-paris-1004-40004-0-d.wav\tmetro\n\
                audio/bus-paris-1003-40003-0-s7.wav\tbus\n";
    let d = tau_tree(&meta, TRAIN, test);
    let ds = tau::load(
        d.path(),
        "evaluation_setup/fold1_train.csv",
        "evaluation_setup/fold1_evaluate.csv",
    )
    .unwrap();
    let names: Vec<&str> = ds.devices.names().iter().map(String::as_str).collect();
    assert_eq!(&names[..9], KNOWN_DEVICES);
    assert_eq!(&names[9..], ["d", "s7", "unknown"]);
    let test_devices: Vec<&str> = ds.test.iter().map(|c| ds.device_name(c)).collect();
    assert_eq!(test_devices, ["unknown", "s4", "d", "s7"]);
    // Known devices keep their development-set indices.
    assert_eq!(ds.train[1].device, 1);
    assert_eq!(ds.test[1].device, 6);

    // Logits right on the first three clips, wrong on the s7 one.
    let y: Vec<i64> = ds.test.iter().map(|c| c.scene as i64).collect();
    let device: Vec<i64> = ds.test.iter().map(|c| c.device as i64).collect();
    let logits = tch::Tensor::zeros([4, 10], (tch::Kind::Float, tch::Device::Cpu));
    for (i, &c) in y.iter().enumerate() {
        let predicted = if i == 3 { (c + 1) % 10 } else { c };
        let _ = logits.get(i as i64).get(predicted).fill_(5.0);
    }
    let e = ascrepro::eval::metrics(&logits, &y, &device, &ds.devices);
    let keys: Vec<&str> = e.device_accuracy.keys().map(String::as_str).collect();
    assert_eq!(keys, ["d", "s4", "s7", "unknown"]);
    assert_eq!(e.device_accuracy["unknown"].clips, 1);
    assert_eq!(e.device_accuracy["d"].accuracy, 1.0);
    assert_eq!(e.device_accuracy["s7"].accuracy, 0.0);
}

#[test]
fn tau_wrong_column_count_names_line() {
    let meta = META.replace("\tlisbon-1000\ts4", " lisbon-1000\ts4");
    let e = tau_err(&meta, TRAIN, TEST);
    assert!(e.contains("meta.csv:3") && e.contains("found 3"), "{e}");
    let train = format!("{TRAIN}audio/x.wav\tpark\textra\n");
    let e = tau_err(META, &train, TEST);
    assert!(
        e.contains("fold1_train.csv:4") && e.contains("columns"),
        "{e}"
    );
}

#[test]
fn tau_split_row_missing_from_meta_is_named() {
    let test = format!("{TEST}audio/bus-paris-1-1-0-a.wav\tbus\n");
    let e = tau_err(META, TRAIN, &test);
    assert!(
        e.contains("fold1_evaluate.csv:4") && e.contains("not listed"),
        "{e}"
    );
}

#[test]
fn tau_scene_disagreement_is_named() {
    let train = TRAIN.replace("0-b.wav\tpark", "0-b.wav\tbus");
    let e = tau_err(META, &train, TEST);
    assert!(
        e.contains("fold1_train.csv:3") && e.contains("disagrees"),
        "{e}"
    );
}

#[test]
fn tau_escaping_paths_are_rejected() {
    let meta = META.replace(
        "audio/park-lyon-1001-40001-0-b.wav",
        "../park-lyon-1001-40001-0-b.wav",
    );
    let e = tau_err(&meta, TRAIN, TEST);
    assert!(e.contains("meta.csv:4") && e.contains(".."), "{e}");
    let d = tau_tree(META, TRAIN, TEST);
    for split in ["/etc/passwd", "../fold1_train.csv"] {
        let e = tau::load(d.path(), split, "evaluation_setup/fold1_evaluate.csv")
            .expect_err("escaping split path accepted")
            .to_string();
        assert!(e.contains(split), "{e}");
    }
}

#[test]
fn tau_bad_header_and_missing_file() {
    let e = tau_err("file\tscene\n", TRAIN, TEST);
    assert!(e.contains("meta.csv:1") && e.contains("header"), "{e}");
    let d = tau_tree(META, TRAIN, TEST);
    let e = tau::load(d.path(), "evaluation_setup/fold2_train.csv", "x.csv")
        .expect_err("missing split accepted")
        .to_string();
    assert!(e.contains("fold2_train.csv"), "{e}");
}
