//! The multi-label metric and loss against their references (tests/python/multilabel_reference.py):
//! per-class AP and mAP against scikit-learn's `average_precision_score` within 1e-12, on
//! random data full of tied scores, with a class without positives (left out of our mean,
//! scored 0 by sklearn's own macro average), a class whose scores are all tied and a class
//! that is all positives; the BCE loss against `torch.nn.BCEWithLogitsLoss()` in float32 and
//! float64, with large logits and soft targets.

mod common;

use ascrepro::eval::multilabel::{class_average_precision, mean_average_precision};
use ascrepro::train::loss::bce_with_logits;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use tch::{Kind, Tensor};

/// A row-major [n, c] matrix as nested JSON arrays.
fn rows(v: &[f32], c: usize) -> Value {
    Value::from(v.chunks(c).map(|r| r.to_vec()).collect::<Vec<_>>())
}

struct ApCase {
    n: usize,
    c: usize,
    scores: Vec<f32>,
    targets: Vec<f32>,
}

/// `levels` > 0: scores on that many levels (ties everywhere); 0: continuous scores.
fn ap_case(seed: u64, n: usize, c: usize, levels: u32, prevalence: f64) -> ApCase {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    let mut scores = Vec::with_capacity(n * c);
    let mut targets = Vec::with_capacity(n * c);
    for _ in 0..n {
        for _ in 0..c {
            let positive = r.random_bool(prevalence);
            // Positives score higher on average, so AP is far from both 0 and 1.
            let u: f64 = r.random::<f64>() * 0.8 + if positive { 0.25 } else { 0.0 };
            let s = if levels > 0 {
                (u * levels as f64).floor() / levels as f64
            } else {
                u
            };
            scores.push(s as f32);
            targets.push(if positive { 1.0 } else { 0.0 });
        }
    }
    // Class 1: no positive. Class 2: every score tied. Class 3: every clip positive.
    for i in 0..n {
        targets[i * c + 1] = 0.0;
        scores[i * c + 2] = 0.5;
        targets[i * c + 3] = 1.0;
    }
    // Class 0 surely has a positive and a negative.
    targets[0] = 1.0;
    targets[c] = 0.0;
    ApCase {
        n,
        c,
        scores,
        targets,
    }
}

fn bce_case(seed: u64, n: usize, c: usize, soft: bool) -> (Vec<f32>, Vec<f32>) {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    let mut logits: Vec<f32> = (0..n * c)
        .map(|_| (r.random::<f32>() - 0.5) * 8.0)
        .collect();
    // Saturated logits, where a naive log(sigmoid) would overflow.
    logits[0] = 60.0;
    logits[1] = -60.0;
    logits[2] = 17.5;
    let targets = (0..n * c)
        .map(|_| {
            if soft {
                r.random::<f32>()
            } else if r.random_bool(0.2) {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    (logits, targets)
}

#[test]
fn ap_and_bce_match_sklearn_and_torch() {
    let ap_cases = [
        ap_case(1, 64, 7, 6, 0.3),
        ap_case(2, 300, 5, 0, 0.1),
        ap_case(3, 200, 9, 20, 0.05),
        ap_case(4, 5, 4, 2, 0.5),
    ];
    let bce_cases = [bce_case(5, 16, 15, false), bce_case(6, 7, 3, true)];
    let input = json!({
        "ap": ap_cases.iter().map(|k| json!({
            "scores": rows(&k.scores, k.c),
            "targets": rows(&k.targets, k.c),
        })).collect::<Vec<_>>(),
        "bce": bce_cases.iter().enumerate().map(|(i, (x, y))| {
            let c = if i == 0 { 15 } else { 3 };
            json!({"logits": rows(x, c), "targets": rows(y, c)})
        }).collect::<Vec<_>>(),
    });
    let dir = common::temp_dir("multilabel_metrics");
    let path = dir.join("cases.json");
    std::fs::write(&path, input.to_string()).unwrap();
    let out: Value =
        serde_json::from_slice(&common::run_python("multilabel_reference.py", [&path])).unwrap();

    for (i, (k, reference)) in ap_cases
        .iter()
        .zip(out["ap"].as_array().unwrap())
        .enumerate()
    {
        let scores = Tensor::from_slice(&k.scores).reshape([k.n as i64, k.c as i64]);
        let targets = Tensor::from_slice(&k.targets).reshape([k.n as i64, k.c as i64]);
        let ours = class_average_precision(&scores, &targets);
        let theirs = reference["per_class"].as_array().unwrap();
        assert_eq!(ours.len(), theirs.len());
        for (c, (a, b)) in ours.iter().zip(theirs).enumerate() {
            match (a, b.as_f64()) {
                (Some(a), Some(b)) => {
                    assert!(
                        (a - b).abs() <= 1e-12,
                        "case {i} class {c}: {a} vs sklearn {b}"
                    )
                }
                (None, None) => {}
                _ => panic!("case {i} class {c}: {a:?} vs sklearn {b}"),
            }
        }
        assert_eq!(ours[1], None, "case {i}: the class without positives");
        assert!(
            (ours[3].unwrap() - 1.0).abs() <= 1e-12,
            "case {i}: the all-positive class"
        );
        let map = mean_average_precision(&scores, &targets);
        let present = reference["macro_present"].as_f64().unwrap();
        assert!(
            (map - present).abs() <= 1e-12,
            "case {i}: mAP {map} vs sklearn {present}"
        );
        // sklearn's own macro average counts the class without positives as AP 0.
        let all = reference["macro_all"].as_f64().unwrap();
        let with_zero = map * (k.c - 1) as f64 / k.c as f64;
        assert!(
            (with_zero - all).abs() <= 1e-12,
            "case {i}: {with_zero} vs {all}"
        );
        // Logits and probabilities rank alike: the same AP.
        let probs = scores.to_kind(Kind::Double).sigmoid();
        assert!((mean_average_precision(&probs, &targets) - map).abs() <= 1e-12);
    }

    for (i, ((x, y), reference)) in bce_cases
        .iter()
        .zip(out["bce"].as_array().unwrap())
        .enumerate()
    {
        let c = if i == 0 { 15 } else { 3 };
        let logits = Tensor::from_slice(x).reshape([-1, c]);
        let targets = Tensor::from_slice(y).reshape([-1, c]);
        let ours32 = bce_with_logits(&logits, &targets).double_value(&[]);
        let torch32 = reference["float32"].as_f64().unwrap();
        assert!(
            (ours32 - torch32).abs() <= 1e-6 * torch32.abs(),
            "case {i}: float32 {ours32} vs torch {torch32}"
        );
        let ours64 = bce_with_logits(
            &logits.to_kind(Kind::Double),
            &targets.to_kind(Kind::Double),
        )
        .double_value(&[]);
        let torch64 = reference["float64"].as_f64().unwrap();
        assert!(
            (ours64 - torch64).abs() <= 1e-12 * torch64.abs(),
            "case {i}: float64 {ours64} vs torch {torch64}"
        );
    }
}
