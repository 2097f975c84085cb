//! The `released` profiles of the three 2025 recipes run end to end on a tiny TAU-layout dataset, with
//! the authors' checkpoints stood in for by files in their released formats (names, shapes,
//! top-level keys and embedded front ends of `shared/reference/released/`, checked by the
//! writer `tests/python/released_systems.py`; random weights, since the real files cannot be
//! fetched here). The recipes are the committed ones, with only each file's SHA-256 replaced by
//! the stand-in's.

mod common;

use ascrepro_results::record::RunRecord;
use common::{ascrepro_ok, run_python, shared, temp_dir};
use std::collections::BTreeMap;
use std::path::Path;

const TAU_ROOT: &str = "TAU-urban-acoustic-scenes-2022-mobile-development";

/// A TAU-layout dataset at the recipes' data root and its manifest where the recipes name it,
/// and the released stand-ins at their repository paths; returns {path: SHA-256}.
fn fixture(d: &Path) -> BTreeMap<String, String> {
    common::tiny_tau_dataset_at(&d.join("data").join(TAU_ROOT), 25, 0);
    std::fs::create_dir_all(d.join("data-manifests")).unwrap();
    ascrepro_ok(
        d,
        &[
            "manifest",
            "create",
            &format!("data/{TAU_ROOT}"),
            "--out",
            "data-manifests/tau2022-mobile-development.yaml",
        ],
    );
    let out = run_python(
        "released_systems.py",
        [
            d.join("data").as_os_str(),
            shared("reference/released").as_os_str(),
        ],
    );
    serde_json::from_slice(&out).expect("released_systems.py prints {path: sha256}")
}

/// The committed recipe with every released file's SHA-256 (from files.tsv) replaced by its
/// stand-in's; fails if the recipe names a file the fixture does not make or vice versa.
fn recipe_for_fixture(id: &str, hashes: &BTreeMap<String, String>) -> String {
    let mut text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("recipes/{id}.yaml")),
    )
    .unwrap();
    let files = std::fs::read_to_string(shared("reference/released/files.tsv")).unwrap();
    let mut replaced = 0;
    for line in files.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = line.split('\t').collect();
        let (path, sha) = (f[1], f[3]);
        if !text.contains(sha) {
            continue;
        }
        assert!(
            text.contains(path),
            "{id}: names {sha} without its path {path}"
        );
        let stand_in = hashes
            .get(path)
            .unwrap_or_else(|| panic!("{id} names {path}, which the fixture does not make"));
        text = text.replace(sha, stand_in);
        replaced += 1;
    }
    assert!(replaced > 0, "{id} names no released file");
    text
}

fn run_released(d: &Path, id: &str, hashes: &BTreeMap<String, String>) -> RunRecord {
    std::fs::write(d.join(format!("{id}.yaml")), recipe_for_fixture(id, hashes)).unwrap();
    let out = format!("out/{id}");
    ascrepro_ok(
        d,
        &[
            "run",
            &format!("{id}.yaml"),
            "--profile",
            "released",
            "--cache",
            "cache",
            "--out",
            &out,
            "--data-root",
            "data",
            "--threads",
            "1",
            "--quiet",
        ],
    );
    ascrepro_ok(d, &["verify", &out]);
    serde_json::from_str(&std::fs::read_to_string(d.join(&out).join("results.json")).unwrap())
        .unwrap()
}

fn system<'a>(r: &'a RunRecord, id: &str) -> &'a ascrepro_results::record::SystemRecord {
    r.systems
        .iter()
        .find(|s| s.id == id)
        .unwrap_or_else(|| panic!("no system {id} among {:?}", ids(r)))
}

fn ids(r: &RunRecord) -> Vec<&str> {
    r.systems.iter().map(|s| s.id.as_str()).collect()
}

#[test]
fn released_profiles_import_route_and_compare_with_the_device_wise_tables() {
    let d = &temp_dir("released_profiles");
    let hashes = fixture(d);

    // Zhou et al.: seven checkpoints, six device models and `device_unknown` for every other
    // device; the stage's id names the routed system, the general model is evaluated alone.
    let zhou = run_released(d, "zhou2025_adaptf_sepnet", &hashes);
    let routed = system(&zhou, "released");
    let general = system(&zhou, "released/general");
    let devices = &routed.evaluation.device_accuracy;
    for dev in ["a", "b", "c", "s1", "s2", "s3", "s4", "s5", "s6"] {
        assert!(
            devices.contains_key(dev),
            "routed system lacks device {dev}"
        );
    }
    // Unlisted devices go to the general model: the same figures on s4-s6.
    for dev in ["s4", "s5", "s6"] {
        assert_eq!(
            devices[dev], general.evaluation.device_accuracy[dev],
            "{dev} is routed to device_unknown"
        );
    }
    // Listed devices go to their own models (random weights: some device must differ).
    let seen_differ = routed.evaluation.confusion != general.evaluation.confusion
        || ["a", "b", "c", "s1", "s2", "s3"]
            .iter()
            .any(|dev| devices[*dev].accuracy != general.evaluation.device_accuracy[*dev].accuracy);
    assert!(seen_differ, "the device models were not used");
    let row = zhou
        .published
        .iter()
        .find(|p| p.label == "With (the released checkpoints)")
        .unwrap();
    assert_eq!(row.reproduced_by.as_deref(), Some("released"));
    // Rows of the other profiles are shown as not reproduced here.
    assert!(zhou
        .published
        .iter()
        .filter(|p| p.table == "Table 1")
        .all(|p| p.reproduced_by.is_none()));

    // Zhang et al.: four general models with their front end embedded, deployed at fp16.
    let zhang = run_released(d, "zhang2025_sscp_mobile", &hashes);
    for s in 1..=4 {
        let fp32 = system(&zhang, &format!("released_s{s}"));
        let fp16 = system(&zhang, &format!("released_s{s}_fp16"));
        assert_eq!(fp32.complexity.params, if s <= 2 { 63748 } else { 63215 });
        assert_eq!(fp16.evaluation.clips, fp32.evaluation.clips);
        let label = format!("S{s} (the released checkpoint)");
        let row = zhang.published.iter().find(|p| p.label == label).unwrap();
        assert_eq!(
            row.reproduced_by.as_deref(),
            Some(format!("released_s{s}_fp16").as_str())
        );
    }
    // Ramezanee et al.: per submission, six device models and GLOBAL.pth for every other
    // device, in the merged (deployed) DSFlexiNet graph.
    let ramezanee = run_released(d, "ramezanee2025_repconv", &hashes);
    for v in 1..=4 {
        let routed = system(&ramezanee, &format!("released_v{v}"));
        let general = system(&ramezanee, &format!("released_v{v}/general"));
        assert_eq!(routed.complexity.params, 31260);
        assert_eq!(routed.complexity.macs, 28642220);
        for dev in ["s4", "s5", "s6"] {
            assert_eq!(
                routed.evaluation.device_accuracy[dev],
                general.evaluation.device_accuracy[dev]
            );
        }
    }
    let row = ramezanee
        .published
        .iter()
        .find(|p| p.label == "Student (released V1)")
        .unwrap();
    assert_eq!(row.reproduced_by.as_deref(), Some("released_v1"));

    assert!(
        zhang.systems[0].notes.iter().any(|n| n.contains("mel")),
        "the embedded front end is reported: {:?}",
        zhang.systems[0].notes
    );
}
