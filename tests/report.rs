//! Report rendering and checking on a realistic run record (three systems after Cai et al.,
//! DCASE2023 Table 3): determinism, SHA256SUMS checks, timings exclusion, page content, offline.

use ascrepro::report::{render, verify};
use ascrepro_results::labels::{CLASSES, KNOWN_DEVICES};
use ascrepro_results::record::*;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

fn layer(
    name: &str,
    kind: &str,
    input: &[usize],
    output: &[usize],
    params: u64,
    macs: u64,
) -> LayerComplexity {
    LayerComplexity {
        name: name.into(),
        kind: kind.into(),
        input: input.to_vec(),
        output: output.to_vec(),
        params,
        macs,
    }
}

/// A complexity whose layers add up to the given totals.
fn complexity(params: u64, macs: u64) -> Complexity {
    let stem_p = params / 10;
    let stem_m = macs / 4;
    Complexity {
        input: vec![1, 128, 44],
        layers: vec![
            layer(
                "stem.conv",
                "Conv2d",
                &[1, 128, 44],
                &[24, 64, 22],
                stem_p,
                stem_m,
            ),
            layer(
                "stem.norm",
                "AdaResNorm",
                &[24, 64, 22],
                &[24, 64, 22],
                0,
                0,
            ),
            layer(
                "stage1.block0",
                "TFSepConv",
                &[24, 64, 22],
                &[12, 64, 22],
                params - stem_p - 10,
                macs - stem_m - 100,
            ),
            layer("pool1", "MaxPool2d", &[12, 64, 22], &[12, 32, 11], 0, 0),
            layer("head.conv", "Conv2d", &[12, 32, 11], &[10, 32, 11], 10, 100),
        ],
        params,
        macs,
    }
}

/// Device accuracies given in % (as Table 3 prints them); class accuracies around `acc`.
fn evaluation(devices: &[f64; 9], macro_acc: f64, log_loss: f64) -> Evaluation {
    let per_device = 300usize;
    let mut device_accuracy = BTreeMap::new();
    for (d, a) in KNOWN_DEVICES.iter().zip(devices) {
        device_accuracy.insert(
            d.to_string(),
            DeviceScore {
                clips: per_device,
                accuracy: a / 100.0,
                macro_accuracy: a / 100.0 - 0.004,
            },
        );
    }
    let class_accuracy: Vec<f64> = (0..10)
        .map(|i| (macro_acc + (i as f64 - 4.5) * 0.02).clamp(0.0, 1.0))
        .collect();
    let per_class = 270u64;
    let confusion: Vec<Vec<u64>> = class_accuracy
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let right = (a * per_class as f64).round() as u64;
            let wrong = per_class - right;
            (0..10)
                .map(|j| {
                    if j == i {
                        right
                    } else if j == (i + 1) % 10 {
                        wrong - wrong / 3
                    } else if j == (i + 3) % 10 {
                        wrong / 3
                    } else {
                        0
                    }
                })
                .collect()
        })
        .collect();
    Evaluation {
        clips: per_device * 9,
        accuracy: macro_acc + 0.001,
        macro_accuracy: macro_acc,
        log_loss,
        class_accuracy,
        device_accuracy,
        confusion,
    }
}

fn curve(epochs: usize, with_val: bool) -> Vec<EpochLog> {
    (1..=epochs)
        .map(|e| EpochLog {
            epoch: e,
            lr: 0.01 * e as f64 / epochs as f64,
            train_loss: 2.3 / (1.0 + 0.4 * e as f64),
            train_accuracy: 0.1 + 0.08 * e as f64,
            val_loss: with_val.then_some(2.4 / (1.0 + 0.3 * e as f64)),
            val_accuracy: with_val.then_some(0.1 + 0.07 * e as f64),
        })
        .collect()
}

fn published(label: &str, v: [f64; 12], by: Option<&str>) -> PublishedRow {
    let keys = [
        "a", "b", "c", "s1", "s2", "s3", "s4", "s5", "s6", "accuracy", "macs_m", "params_k",
    ];
    PublishedRow {
        table: "Table 3".into(),
        label: label.into(),
        values: keys.iter().map(|k| k.parse().unwrap()).zip(v).collect(),
        reproduced_by: by.map(str::to_string),
        profile: None,
        split: None,
        accuracy_unit: AccuracyUnit::Percent,
    }
}

fn record() -> RunRecord {
    let stage = |id: &str, kind: &str, needs: &[&str], out: &str| StageRecord {
        id: id.into(),
        kind: kind.into(),
        hash: format!("{:0>64}", id.len()),
        needs: needs.iter().map(|s| s.to_string()).collect(),
        outputs: [(out.to_string(), "ab".repeat(32))].into_iter().collect(),
    };
    RunRecord {
        recipe_id: "cai2023_tfsepnet_dcase2023".into(),
        title: "TF-SepNet: device simulation and time-frequency separable convolution".into(),
        citation: "Y. Cai, M. Lin, C. Zhu, S. Li, X. Shao, \"DCASE2023 Task1 submission\", DCASE2023 Challenge, Tech. Rep., 2023.".into(),
        profile: "demo".into(),
        profile_note: "Synthetic TAU-like data (seed 7), 8 epochs instead of 100, C=40 teacher.".into(),
        identity: RunIdentity {
            run_hash: "1f".repeat(32),
            recipe_hash: "2e".repeat(32),
            data: [("synthetic-tau".to_string(), "3d".repeat(32))].into_iter().collect(),
            code_version: "0.1.0+7d9875d".into(),
            frontend: "frontend=cpmel-128;resampler=librosa".into(),
            platform: [
                ("libtorch", "2.11.0"),
                ("threads", "2"),
                ("cpu_capability", "avx2"),
                ("arch", "x86_64"),
                ("os", "linux"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        },
        stages: vec![
            stage("data", "synth", &[], "manifest.yaml"),
            stage("train_c40", "train", &["data"], "model.safetensors"),
            stage("train_c12_kd", "distil", &["data", "train_c40"], "model.safetensors"),
            stage("quant_c12_kd", "quantize", &["train_c12_kd"], "model_int8.safetensors"),
        ],
        systems: vec![
            SystemRecord {
                id: "train_c40".into(),
                label: "TF-SepNet C=40 + ResNorm".into(),
                model: "tfsepnet23 C=40 ResNorm".into(),
                training: "8 epochs, Freq-MixStyle".into(),
                precision: Precision::Fp32,
                complexity: complexity(53190, 10220340),
                evaluation: evaluation(
                    &[70.1, 55.0, 60.2, 58.8, 50.3, 55.5, 51.0, 52.2, 48.9],
                    0.5561,
                    1.234567,
                ),
                curve: curve(8, true),
                notes: vec![],
                split: None,
                pruning: None,
                quantization: None,
            },
            SystemRecord {
                id: "train_c12_kd".into(),
                label: "TF-SepNet C=12 + KD".into(),
                model: "tfsepnet23 C=12 AdaResNorm".into(),
                training: "8 epochs, device simulation, KD from train_c40 (λ 20, T 5)".into(),
                precision: Precision::Fp32,
                complexity: complexity(6838, 1650149),
                evaluation: evaluation(
                    &[66.0, 52.0, 58.0, 51.0, 49.0, 55.0, 53.0, 52.0, 47.0],
                    0.5512,
                    1.301,
                ),
                curve: curve(8, false),
                notes: vec!["teacher logits from <train_c40> & cached".into()],
                split: None,
                pruning: None,
                quantization: None,
            },
            SystemRecord {
                id: "quant_c12_kd".into(),
                label: "TF-SepNet C=12 + KD, INT8".into(),
                model: "tfsepnet23 C=12 AdaResNorm".into(),
                training: "post-training static quantization of train_c12_kd".into(),
                precision: Precision::Int8,
                complexity: complexity(6838, 1650149),
                evaluation: evaluation(
                    &[65.5, 51.6, 57.7, 50.2, 48.8, 54.6, 52.5, 51.4, 46.6],
                    0.5467,
                    1.31,
                ),
                curve: vec![],
                notes: vec![],
                split: None,
                pruning: None,
                quantization: None,
            },
        ],
        published: vec![
            published(
                "BC-ResNet, C=40 + ResNorm",
                [66.0, 52.4, 56.7, 54.2, 55.1, 59.0, 50.2, 50.4, 43.3, 54.2, 10.23, 87.04],
                None,
            ),
            published(
                "TF-SepNet, C=40 + ResNorm",
                [67.9, 57.8, 63.5, 56.4, 52.4, 57.5, 53.4, 55.5, 50.6, 57.2, 10.22, 53.19],
                Some("train_c40"),
            ),
            published(
                "+ Knowledge Distillation",
                [64.4, 52.9, 58.8, 52.0, 48.8, 55.7, 53.5, 53.1, 46.1, 53.9, 1.65, 6.83],
                Some("train_c12_kd"),
            ),
            published(
                "TF-SepNet, C=160 + (1)(2)",
                [89.4, 69.8, 78.0, 77.0, 74.0, 79.3, 76.4, 75.2, 69.2, 76.5, 242.18, 757.05],
                None,
            ),
        ],
        complexity_checks: vec![
            ComplexityCheck {
                label: "TF-SepNet, C=12 + (1)(2)".into(),
                model: "tfsepnet23 C=12 AdaResNorm".into(),
                published_params_k: Some(6.83),
                published_macs_m: Some(1.65),
                params: Some(6838),
                macs: Some(1650149),
                status: "match".into(),
            },
            ComplexityCheck {
                label: "TF-SepNet, C=160 + (1)(2)".into(),
                model: "tfsepnet23 C=160 AdaResNorm".into(),
                published_params_k: Some(757.05),
                published_macs_m: Some(242.18),
                params: Some(757050),
                macs: Some(121822560),
                status: "mismatch".into(),
            },
            ComplexityCheck {
                label: "BC-ResNet, C=40 + ResNorm".into(),
                model: "bcresnet C=40".into(),
                published_params_k: Some(87.04),
                published_macs_m: Some(10.23),
                params: None,
                macs: None,
                status: "not counted: architecture not implemented".into(),
            },
        ],
        findings: vec![
            Finding {
                kind: "contradiction".into(),
                text: "Table 3 prints 242.18 M MACs for TF-SepNet C=160; the architecture at 1×128×44 has 121,822,560 MACs.".into(),
            },
            Finding {
                kind: "note".into(),
                text: "Demo numbers use synthetic data.".into(),
            },
        ],
        effects: vec![],
        recipe_text: "id: cai2023_tfsepnet_dcase2023\n# <b>not markup</b> & more\nstudents:\n  - c12_kd\n".into(),
    }
}

fn timings(seconds: f64) -> Vec<StageTiming> {
    vec![
        StageTiming {
            kind: "data".into(),
            id: "synth".into(),
            seconds,
            cached: true,
        },
        StageTiming {
            kind: "train".into(),
            id: "train_c40".into(),
            seconds: seconds * 10.0,
            cached: false,
        },
    ]
}

/// Every file under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(
                    p.strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .replace('\\', "/"),
                );
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn rendered(tmp: &tempfile::TempDir, name: &str, seconds: f64) -> PathBuf {
    let out = tmp.path().join("reports").join(name);
    render(&record(), &timings(seconds), &out).unwrap();
    out
}

#[test]
fn rendering_is_deterministic_and_timings_are_excluded() {
    let tmp = tempfile::tempdir().unwrap();
    let a = rendered(&tmp, "a", 1.5);
    let b = rendered(&tmp, "b", 97.25);
    let (fa, fb) = (files(&a), files(&b));
    assert_eq!(fa, fb);
    for f in &fa {
        let (x, y) = (fs::read(a.join(f)).unwrap(), fs::read(b.join(f)).unwrap());
        assert!(x == y, "{f} differs between two renders of the same record");
    }
    // The timings carry the wall-clock times, so they sit beside the report, not in it.
    for ext in ["json", "html"] {
        let at = |name: &str| tmp.path().join(format!("reports/{name}.timings.{ext}"));
        assert_ne!(fs::read(at("a")).unwrap(), fs::read(at("b")).unwrap());
    }
    let sums = fs::read_to_string(a.join("SHA256SUMS")).unwrap();
    for f in &fa {
        let listed = sums.lines().any(|l| l.ends_with(&format!("  {f}")));
        assert_eq!(listed, f != "SHA256SUMS", "{f}");
    }
    for needed in [
        "index.html",
        "results.json",
        "assets/plotly.min.js",
        "results/device_wise.csv",
        "results/device_wise.parquet",
        "results/class_wise.csv",
        "results/published_vs_reproduced.parquet",
        "results/complexity_checks.csv",
        "results/layers_train_c12_kd.csv",
        "results/confusion_quant_c12_kd.parquet",
        "results/curves.csv",
        "ascrepro-report.txt",
    ] {
        assert!(fa.iter().any(|f| f == needed), "missing {needed}");
    }
    let timings_json = fs::read_to_string(tmp.path().join("reports/b.timings.json")).unwrap();
    assert!(timings_json.contains("97.25"));
    // No temp or swapped-out directories are left beside the reports.
    let siblings = files(&tmp.path().join("reports"));
    assert!(siblings
        .iter()
        .all(|f| f.starts_with("a/") || f.starts_with("b/") || f.contains(".timings.")));
    // results.json is the record itself (compared as text: serde_json's default float parser
    // is not exact in the last bit, so a parse-back comparison would be flaky).
    let json = fs::read_to_string(a.join("results.json")).unwrap();
    assert!(json == serde_json::to_string_pretty(&record()).unwrap() + "\n");
    verify(&a).unwrap();
}

#[test]
fn verify_names_changed_missing_and_added_files() {
    let tmp = tempfile::tempdir().unwrap();
    let out = rendered(&tmp, "r", 2.0);
    verify(&out).unwrap();

    // Timings (beside the report) may change freely.
    fs::write(tmp.path().join("reports/r.timings.json"), "[]").unwrap();
    verify(&out).unwrap();

    let csv = out.join("results/device_wise.csv");
    let original = fs::read(&csv).unwrap();
    let mut changed = original.clone();
    changed[10] ^= 1;
    fs::write(&csv, &changed).unwrap();
    let err = verify(&out).unwrap_err().to_string();
    assert!(
        err.contains("device_wise.csv") && err.contains("changed"),
        "{err}"
    );
    fs::write(&csv, &original).unwrap();
    verify(&out).unwrap();

    let parquet = out.join("results/class_wise.parquet");
    fs::remove_file(&parquet).unwrap();
    let err = verify(&out).unwrap_err().to_string();
    assert!(
        err.contains("class_wise.parquet") && err.contains("missing"),
        "{err}"
    );

    let out = rendered(&tmp, "r", 3.0);
    fs::write(out.join("results/extra.csv"), "x\n1\n").unwrap();
    let err = verify(&out).unwrap_err().to_string();
    assert!(
        err.contains("extra.csv") && err.contains("not listed"),
        "{err}"
    );

    fs::remove_file(out.join("results/extra.csv")).unwrap();
    fs::remove_file(out.join("SHA256SUMS")).unwrap();
    let err = verify(&out).unwrap_err().to_string();
    assert!(err.contains("SHA256SUMS"), "{err}");
}

#[test]
fn rerender_replaces_the_previous_report_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let out = rendered(&tmp, "r", 1.0);
    // Leftovers of an interrupted render are cleaned up too. (A file added to a report is
    // not: tests/verify.rs.)
    fs::create_dir_all(tmp.path().join("reports/.r.partial-zzz/results")).unwrap();
    render(&record(), &timings(1.0), &out).unwrap();
    assert!(!tmp.path().join("reports/.r.partial-zzz").exists());
    verify(&out).unwrap();
}

#[test]
fn index_lays_out_the_dcase_tables_and_differences() {
    let tmp = tempfile::tempdir().unwrap();
    let out = rendered(&tmp, "r", 1.0);
    let html = fs::read_to_string(out.join("index.html")).unwrap();

    // Profile named prominently, demo warning.
    assert!(html.contains("Profile: <code>demo</code>"));
    assert!(html.contains("synthetic data and reduced settings"));
    // Identity.
    assert!(html.contains(&"1f".repeat(32)));
    assert!(html.contains("cpu_capability"));
    // Device-wise layout: grouped headers and every device column.
    for h in [
        "<th colspan=\"6\" class=\"grp\">Seen</th>",
        "<th colspan=\"3\" class=\"grp\">Unseen</th>",
    ] {
        assert!(html.contains(h), "missing {h}");
    }
    for d in KNOWN_DEVICES {
        assert!(html.contains(&format!("<th class=\"num\">{}</th>", d.to_uppercase())));
    }
    for c in CLASSES {
        assert!(html.contains(&format!("<th class=\"num\">{}</th>", c.replace('_', " "))));
    }
    assert!(html.contains("<th class=\"num\">Acc</th>"));
    assert!(html.contains("<th class=\"num\">Log loss</th>"));
    // Published Acc 53.9 with reproduced 55.2 (accuracy 0.5522: correct clips / clips; the
    // device-wise table's macro average is 55.1) and difference +1.3.
    assert!(html.contains("<td class=\"num\">53.9</td>"));
    assert!(html.contains("<td class=\"num\">55.1</td>"));
    assert!(html.contains("<td class=\"num\">55.2</td>"));
    assert!(
        html.contains("<td class=\"num diff pos2\">+1.3</td>"),
        "difference cell"
    );
    // Device A of the KD row: 66.0 reproduced vs 64.4 published.
    assert!(html.contains("<td class=\"num diff pos2\">+1.6</td>"));
    // A lower reproduced value is coloured as negative: S2 of C=40 is 50.3 vs 52.4.
    assert!(html.contains("<td class=\"num diff neg2\">-2.1</td>"));
    assert!(html.contains("not reproduced in this profile"));
    assert!(html.contains("profile `demo`"));
    // Complexity: exact integers, M, limits and the mismatching check highlighted.
    assert!(html.contains("1,650,149"));
    assert!(html.contains("6,838"));
    assert!(html.contains("1.650"));
    assert!(html.contains("<tr class=\"row-mismatch\">"));
    assert!(html.contains("242.18"));
    assert!(html.contains("121,822,560"));
    assert!(html.contains("<td class=\"num cx bad\">-120.357</td>"));
    assert!(html.contains("<span class=\"badge pass\">pass</span>"));
    assert!(html.contains("<details"));
    assert!(html.contains("6.838 kB"), "int8 memory of the C=12 model");
    // Findings and recipe, escaped.
    assert!(html.contains("class=\"alert\""));
    assert!(html.contains("121,822,560 MACs."));
    assert!(html.contains("# &lt;b&gt;not markup&lt;/b&gt; &amp; more"));
    assert!(html.contains("teacher logits from &lt;train_c40&gt; &amp; cached"));
    // Plots: fixed ids, local plotly.js; where the timings are.
    for id in [
        "plot-device-bars",
        "plot-curves-loss",
        "plot-curves-accuracy",
        "plot-confusion-0",
        "plot-confusion-2",
    ] {
        assert!(html.contains(&format!("id=\"{id}\"")), "missing plot {id}");
    }
    assert!(html.contains("<script src=\"assets/plotly.min.js\"></script>"));
    assert!(html.contains("<strong>not</strong> part of this report"));
    assert!(html.contains("&lt;this directory&gt;.timings.html"));
    let js = fs::read_to_string(out.join("assets/plotly.min.js")).unwrap();
    assert!(js.contains("plotly.js") && js.len() > 1_000_000);
}

#[test]
fn pages_reference_nothing_external() {
    let tmp = tempfile::tempdir().unwrap();
    let out = rendered(&tmp, "r", 1.0);
    // The timings page sits beside the report and links into it.
    let beside = tmp.path().join("reports");
    for (page, base) in [("r/index.html", &out), ("r.timings.html", &beside)] {
        let html = fs::read_to_string(beside.join(page)).unwrap();
        for attr in ["src=\"", "href=\"", "src='", "href='"] {
            for (at, _) in html.match_indices(attr) {
                let value = &html[at + attr.len()..];
                let value = &value[..value.find(['"', '\'']).unwrap_or(value.len())];
                assert!(
                    !value.starts_with("http:")
                        && !value.starts_with("https:")
                        && !value.starts_with("//"),
                    "{page} references {value}"
                );
                if attr.starts_with("href") && !value.starts_with('#') {
                    assert!(base.join(value).exists(), "{page} links to missing {value}");
                }
            }
        }
        assert!(!html.contains("cdn."), "{page} mentions a CDN");
    }
}

/// Devices beyond the development set's nine (the DCASE2025 evaluation set's `d`, `s7`–`s10`,
/// `unknown`) get device-wise columns after the known ones, in table order, as unseen devices.
#[test]
fn new_device_ids_get_their_own_columns_after_the_known_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let mut r = record();
    for (id, acc) in [("unknown", 0.41), ("s10", 0.42), ("d", 0.43), ("s7", 0.44)] {
        r.systems[0].evaluation.device_accuracy.insert(
            id.to_string(),
            DeviceScore {
                clips: 50,
                accuracy: acc,
                macro_accuracy: acc,
            },
        );
    }
    let out = tmp.path().join("r");
    render(&r, &timings(1.0), &out).unwrap();
    let csv = fs::read_to_string(out.join("results/device_wise.csv")).unwrap();
    let header = csv.lines().next().unwrap();
    assert_eq!(
        header,
        "system_id,system,a,b,c,s1,s2,s3,s4,s5,s6,d,s7,s10,unknown,acc,log_loss,clips"
    );
    let first = csv.lines().nth(1).unwrap();
    assert!(first.contains(",43.0,44.0,42.0,41.0,"), "{first}");
    let html = fs::read_to_string(out.join("index.html")).unwrap();
    assert!(
        html.contains("<th colspan=\"7\" class=\"grp\">Unseen</th>"),
        "new devices are not grouped as unseen"
    );
}

/// What a hostile recipe puts in a text field: an element, an attribute break-out from both
/// quote styles, a script close and an HTML comment opener.
const HOSTILE: &str = "\"'></script><script>alert(1)</script><img src=x onerror=alert(2)><!--";

/// `record()` with HOSTILE appended to every string the record holds (ids, labels, notes,
/// published tables, findings, the recipe text), wherever the record still reads back.
fn hostile_record() -> RunRecord {
    fn poison(v: &mut serde_json::Value) {
        // Every string leaf, one at a time: keep the change when the record still deserialises
        // (enum tags and parsed keys do not).
        let mut paths = Vec::new();
        collect(v, &mut Vec::new(), &mut paths);
        for path in paths {
            let before = v.clone();
            if let Some(serde_json::Value::String(s)) = v.pointer_mut(&path) {
                s.push_str(HOSTILE);
            }
            if serde_json::from_value::<RunRecord>(v.clone()).is_err() {
                *v = before;
            }
        }
    }
    fn collect(v: &serde_json::Value, at: &mut Vec<String>, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(_) => out.push(format!("/{}", at.join("/"))),
            serde_json::Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    at.push(i.to_string());
                    collect(item, at, out);
                    at.pop();
                }
            }
            serde_json::Value::Object(map) => {
                for (k, item) in map {
                    at.push(k.replace('~', "~0").replace('/', "~1"));
                    collect(item, at, out);
                    at.pop();
                }
            }
            _ => {}
        }
    }
    let mut v = serde_json::to_value(record()).unwrap();
    poison(&mut v);
    serde_json::from_value(v).unwrap()
}

#[test]
fn recipe_text_full_of_markup_reaches_no_page_as_active_content() {
    let rec = hostile_record();
    // The poisoning reached the free-text fields (a check on the test itself).
    assert!(rec.title.ends_with(HOSTILE) && rec.systems[0].label.ends_with(HOSTILE));
    assert!(rec.systems[1].notes[0].ends_with(HOSTILE));
    assert!(rec.published[0].label.ends_with(HOSTILE));
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("reports").join("hostile");
    render(&rec, &timings(1.0), &out).unwrap();
    let pages: Vec<String> = files(&out)
        .into_iter()
        .filter(|f| f.ends_with(".html"))
        .collect();
    // The text does reach the page, escaped for HTML and for the plots' JSON.
    let index = fs::read_to_string(out.join("index.html")).unwrap();
    assert!(index.contains("&lt;script&gt;alert(1)"));
    assert!(index.contains("\\u003cscript\\u003ealert(1)"));
    for page in &pages {
        let html = fs::read_to_string(out.join(page)).unwrap();
        assert!(!html.contains("<img"), "{page}: an injected element");
        assert!(
            !html.contains("<script>alert"),
            "{page}: an injected script"
        );
        assert!(!html.contains("\"'>"), "{page}: an attribute break-out");
        assert!(!html.contains("<!--"), "{page}: an injected comment");
        // Every script element is ours: the local plotly.js, or a plot whose JSON holds no
        // `</` or `<!` that could end or hide the element early.
        let mut rest = html.as_str();
        while let Some(at) = rest.find("<script") {
            let tag_end = at + rest[at..].find('>').unwrap() + 1;
            let tag = &rest[at..tag_end];
            let close = tag_end + rest[tag_end..].find("</script>").unwrap();
            let body = &rest[tag_end..close];
            if tag.contains(" src=") {
                assert!(body.is_empty(), "{page}: {tag}");
            } else {
                assert_eq!(tag, "<script type=\"text/javascript\">", "{page}");
                assert!(
                    body.trim_start().starts_with("Plotly.newPlot("),
                    "{page}: {body}"
                );
                assert!(
                    !body.contains("</") && !body.contains("<!"),
                    "{page}: {body}"
                );
            }
            rest = &rest[close + "</script>".len()..];
        }
    }
}
