//! The integer engine against PyTorch's own eager-mode static quantization (fbgemm):
//! tests/python/quantized_tfsepnet.py quantizes the same TF-SepNet-64 (same weights, observers
//! and calibration batches) and dumps every activation point's int8 output, its scale and zero
//! point, every quantized weight and the quantized logits.
//!
//! - Our calibration gives PyTorch's grids (to float rounding of the two float forward passes).
//! - With PyTorch's grids and weights imported, every step of the engine, fed PyTorch's own
//!   int8 inputs, gives PyTorch's int8 output: identical for every integer op (the quantized
//!   means included); the float islands (ResNorm: f32 here, ATen's kernels there) within one
//!   step on a few elements at most.
//! - End to end, the logits are within one quantization step of PyTorch's.

mod common;

use ascrepro::compress::int8::engine::Value;
use ascrepro::compress::int8::{AtenCapability, Isa, QTensor};
use ascrepro::compress::observer::ObserverKind;
use ascrepro::compress::observer::QParams;
use ascrepro::compress::ptq::{quantize_int8, PtqConfig, QuantizedModel, QuantizedWeight};
use ascrepro::models::blocks::Vb;
use ascrepro::models::graph::Op;
use ascrepro::models::{build_net, tfsepnet64, ModelConfig};
use common::{perturb_with, Perturb};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use tch::{nn, Device, Kind, Tensor};

const WIDTH: i64 = 16;
const INPUT: [i64; 3] = [1, 128, 32];

fn config() -> ModelConfig {
    ModelConfig::Tfsepnet64(tfsepnet64::Config {
        width: WIDTH,
        depth: 17,
        dropout: 0.0,
        ..tfsepnet64::Config::default()
    })
}

/// The ATen capability of the venv's PyTorch, which decides the add kernel's loop split.
fn capability() -> AtenCapability {
    let out = std::process::Command::new(common::python())
        .args([
            "-c",
            "import torch; print(torch.backends.cpu.get_cpu_capability())",
        ])
        .output()
        .unwrap();
    let name = String::from_utf8_lossy(&out.stdout);
    AtenCapability::from_name(name.trim()).expect("PyTorch's ATen capability is AVX2 or AVX512")
}

struct Case {
    vs: nn::VarStore,
    calibration: Vec<Tensor>,
    test: Tensor,
    dump: HashMap<String, Tensor>,
}

fn case(observer: &str) -> Case {
    tch::manual_seed(11);
    let vs = nn::VarStore::new(Device::Cpu);
    let _net = build_net(&Vb::new(&vs.root()), &config()).unwrap();
    perturb_with(&vs, |name, _, _| {
        if name.ends_with("running_var") || (name.contains("_bn.") && name.ends_with("weight")) {
            Perturb::AroundOne
        } else if name.ends_with("running_mean") || name.ends_with("_bn.bias") {
            Perturb::AroundZero
        } else {
            Perturb::Keep
        }
    });
    let [c, f, t] = INPUT;
    let calibration: Vec<Tensor> = (0..2)
        .map(|_| Tensor::randn([32, c, f, t], (Kind::Float, Device::Cpu)))
        .collect();
    let test = Tensor::randn([8, c, f, t], (Kind::Float, Device::Cpu));
    let dir = common::temp_dir(&format!("int8_engine_{observer}"));
    let weights = dir.join("weights.safetensors");
    let named: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    Tensor::write_safetensors(&named, &weights).unwrap();
    let data = dir.join("data.safetensors");
    let all = Tensor::cat(&calibration, 0);
    Tensor::write_safetensors(&[("calibration", &all), ("test", &test)], &data).unwrap();
    let out = dir.join("dump.safetensors");
    common::run_python(
        "quantized_tfsepnet.py",
        [
            "tfsepnet64",
            &WIDTH.to_string(),
            "17",
            "--weights",
            path(&weights),
            "--data",
            path(&data),
            "--out",
            path(&out),
            "--observer",
            observer,
        ],
    );
    let dump = Tensor::read_safetensors(&out)
        .unwrap()
        .into_iter()
        .collect();
    Case {
        vs,
        calibration,
        test,
        dump,
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn scalar(dump: &HashMap<String, Tensor>, key: &str) -> f64 {
    dump[key].double_value(&[])
}

fn bytes(t: &Tensor) -> Vec<u8> {
    Vec::<u8>::try_from(t.flatten(0, -1)).unwrap()
}

/// PyTorch's grids, by point.
fn pytorch_grids(
    model: &QuantizedModel,
    dump: &HashMap<String, Tensor>,
) -> BTreeMap<String, QParams> {
    model
        .points()
        .into_iter()
        .map(|p| {
            let q = QParams {
                scale: scalar(dump, &format!("scale/{}", p.name)),
                zero_point: scalar(dump, &format!("zp/{}", p.name)) as i64,
                ..p.qparams
            };
            (p.name, q)
        })
        .collect()
}

fn pytorch_weight(dump: &HashMap<String, Tensor>, name: &str) -> QuantizedWeight {
    let w = &dump[&format!("weight/{name}")];
    QuantizedWeight {
        shape: w.size().iter().map(|&d| d as usize).collect(),
        int8: Vec::<i8>::try_from(w.flatten(0, -1)).unwrap(),
        scales: Vec::<f64>::try_from(&dump[&format!("wscale/{name}")])
            .unwrap()
            .into_iter()
            .map(|s| s as f32)
            .collect(),
        bias: dump
            .get(&format!("bias/{name}"))
            .map(|b| Vec::<f32>::try_from(b).unwrap()),
    }
}

fn batches(c: &Case) -> Vec<Tensor> {
    c.calibration.iter().map(|b| b.shallow_clone()).collect()
}

/// Our calibration against PyTorch's, then every step on PyTorch's inputs, then end to end.
fn agrees_with_pytorch(observer: ObserverKind, name: &str) {
    let c = case(name);
    let ptq = PtqConfig {
        observer,
        reduce_range: true,
    };
    let mut model = quantize_int8(&c.vs, &config(), &batches(&c), &ptq).unwrap();

    // 1. Grids: the two float forward passes differ in the last bits (BatchNorm folded by
    // `1 / sqrt` here and `rsqrt` there), so scales agree to float rounding.
    let theirs = pytorch_grids(&model, &c.dump);
    let mut exact = 0;
    for p in model.points() {
        let t = theirs[&p.name];
        let rel = (p.qparams.scale - t.scale).abs() / t.scale;
        assert!(
            rel < 1e-4 && (p.qparams.zero_point - t.zero_point).abs() <= 1,
            "{}: ours {:?}, PyTorch's {t:?}",
            p.name,
            p.qparams
        );
        exact += usize::from(rel == 0.0 && p.qparams.zero_point == t.zero_point);
    }
    println!("{name}: {exact} of {} grids bit-identical", theirs.len());

    // 2. Weights: our per-channel quantization of our folded weights. A channel's largest
    // negative weight sits exactly on the tie -127.5 (scale = max|w| / 127.5), so the last bit
    // of the folding decides between -128 and -127; every other weight is identical.
    let convs: Vec<String> = model
        .graph()
        .nodes()
        .iter()
        .filter(|n| matches!(n.op, Op::Conv(_)))
        .map(|n| n.name.clone())
        .collect();
    let (mut differ, mut total) = (0usize, 0usize);
    for conv in &convs {
        let t = pytorch_weight(&c.dump, conv);
        let ours = model.weight(conv).unwrap();
        for (&a, &b) in ours.int8.iter().zip(&t.int8) {
            if a != b {
                assert!(a.min(b) == -128 && a.max(b) == -127, "{conv}: {a} vs {b}");
                differ += 1;
            }
        }
        total += t.int8.len();
        model.set_weight(conv, t).unwrap();
    }
    println!("{name}: {differ} of {total} int8 weights at the -127.5 tie differ");

    // 3. Every step on PyTorch's inputs.
    model.set_grids(&theirs).unwrap();
    let program = model.program(Isa::detect(), capability()).unwrap();
    let steps = program.steps();
    let x = Vec::<f32>::try_from(c.test.flatten(0, -1)).unwrap();
    let shape: Vec<usize> = c.test.size().iter().map(|&d| d as usize).collect();
    let mut report = Vec::new();
    let logits = program
        .run_traced(&x, &shape, &mut |i, v| {
            let node = &model.graph().nodes()[i];
            let key = match node.op {
                Op::Mean { .. } => format!("mean/{}", model.graph().nodes()[node.inputs[0]].name),
                _ if node.op.is_point() => format!("act/{}", node.name),
                _ => return v,
            };
            let Value::Q(q) = v else {
                panic!("{}: a float value", node.name)
            };
            let want = bytes(&c.dump[&key]);
            let off: Vec<i32> = q
                .data()
                .iter()
                .zip(&want)
                .map(|(&a, &b)| (a as i32 - b as i32).abs())
                .collect();
            let max = off.iter().copied().max().unwrap_or(0);
            let n = off.iter().filter(|&&d| d != 0).count();
            let float_island = matches!(node.op, Op::Norm(_));
            if float_island {
                assert!(
                    max <= 1 && n * 50 <= want.len(),
                    "{}: {n} of {} values differ, by up to {max}",
                    steps[i].name,
                    want.len()
                );
            } else {
                assert_eq!(
                    n,
                    0,
                    "{key}: {n} of {} int8 values differ (by up to {max})",
                    want.len()
                );
            }
            report.push(format!("{key}: {n}/{}", want.len()));
            Value::Q(QTensor::new(want, q.shape(), q.affine(), q.format()).unwrap())
        })
        .unwrap();
    let compared = report.len();
    println!(
        "{name}: {compared} steps compared; off by one: {:?}",
        report
            .iter()
            .filter(|r| !r.contains(": 0/"))
            .collect::<Vec<_>>()
    );
    assert!(compared >= 76, "{compared} steps compared");
    let step = scalar(&c.dump, "scale/classifier");
    let want = c.dump["logits_q"].flatten(0, -1);
    let got = Tensor::from_slice(&logits.to_float().data);
    let d = (&got - &want).abs().max().double_value(&[]);
    assert!(
        d <= step * 1.0001,
        "logits on PyTorch's inputs differ by {d} (one step: {step})"
    );

    // 4. End to end on our own values.
    let ours = Tensor::from_slice(&program.run(&x, &shape).unwrap());
    let d = (&ours - &want).abs().max().double_value(&[]);
    println!("{name}: end-to-end logits within {d} of PyTorch's (one step {step})");
    assert!(
        d <= step * 1.0001,
        "end-to-end logits differ by {d} (one step: {step})"
    );
}

/// The two PyTorch comparisons draw their weights and data from libtorch's global generator
/// (`case` seeds it): run side by side, their draws interleave and each test sees other data
/// on every run. One at a time, each always checks the same case.
static ONE_CASE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn engine_matches_pytorch_quantized_tfsepnet64_minmax() {
    let _one = ONE_CASE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    tch::set_num_threads(1);
    agrees_with_pytorch(ObserverKind::MinMax, "minmax");
}

#[test]
fn engine_matches_pytorch_quantized_tfsepnet64_histogram() {
    let _one = ONE_CASE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    tch::set_num_threads(1);
    agrees_with_pytorch(ObserverKind::Histogram, "histogram");
}

/// The committed demo report (regenerated bit for bit from the code by `make check-reports`):
/// its INT8 system was evaluated on the integer engine, whose predictions equal the simulated
/// model's on at least 99.9 % of the demo test clips.
#[test]
fn demo_int8_predictions_equal_the_simulated_model_on_the_test_set() {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("reports/cai2023_tfsepnet/results.json");
    let record: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let systems = record["systems"].as_array().unwrap();
    let int8 = systems
        .iter()
        .find(|s| s["precision"] == "int8")
        .expect("the demo has an INT8 system");
    let q = &int8["quantization"];
    let agreement = q["simulated_agreement"].as_f64().unwrap();
    assert!(
        agreement >= 0.999,
        "engine = simulated on {agreement} of the test clips"
    );
    assert_eq!(
        q["final_accuracy"].as_f64().unwrap(),
        int8["evaluation"]["macro_accuracy"].as_f64().unwrap()
    );
}
