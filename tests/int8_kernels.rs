//! The integer INT8 kernels against PyTorch's quantized CPU kernels (fbgemm engine, one thread):
//! tests/python/int8_kernels.py runs each case in PyTorch and every u8 output here must be
//! identical. Also: every instruction set gives the same outputs as the portable path.

use ascrepro::compress::int8::{
    adaptive_avg_pool2d_1x1, add, avg_pool2d, conv2d_generic_with, conv2d_with, linear_with,
    max_pool2d, mean, quantize, relu, Affine, AtenCapability, Conv2dConfig, Fused, Isa,
    MemoryFormat, Pool2dConfig, QTensor, QWeight,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

mod common;

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

fn pair(v: &Value) -> [usize; 2] {
    let v = usizes(v);
    [v[0], v[1]]
}

fn qtensor(v: &Value) -> QTensor {
    let data = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u8)
        .collect();
    let affine = Affine::new(
        v["scale"].as_f64().unwrap() as f32,
        v["zp"].as_u64().unwrap() as u8,
    );
    let format = match v["format"].as_str().unwrap() {
        "channels_last" => MemoryFormat::ChannelsLast,
        _ => MemoryFormat::Contiguous,
    };
    QTensor::new(data, &usizes(&v["shape"]), affine, format).unwrap()
}

fn qweight(v: &Value) -> QWeight {
    let data = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap() as i8)
        .collect();
    let floats = |v: &Value| -> Vec<f32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    };
    let bias = (!v["bias"].is_null()).then(|| floats(&v["bias"]));
    QWeight::new(data, &usizes(&v["shape"]), floats(&v["scales"]), bias).unwrap()
}

fn fused(case: &Value) -> Fused {
    if case["relu"].as_bool().unwrap() {
        Fused::Relu
    } else {
        Fused::None
    }
}

fn pool(case: &Value) -> Pool2dConfig {
    Pool2dConfig {
        kernel: pair(&case["kernel"]),
        stride: pair(&case["stride"]),
        padding: pair(&case["padding"]),
        ceil_mode: case["ceil_mode"].as_bool().unwrap(),
    }
}

/// Differing positions of two outputs, `None` when identical (shape included).
fn mismatch(got: &QTensor, want: &QTensor) -> Option<String> {
    if got.shape() != want.shape() {
        return Some(format!("shape {:?} != {:?}", got.shape(), want.shape()));
    }
    let bad: Vec<(usize, u8, u8)> = (got.data().iter().zip(want.data()).enumerate())
        .filter(|(_, (g, w))| g != w)
        .map(|(i, (&g, &w))| (i, g, w))
        .collect();
    (!bad.is_empty()).then(|| {
        format!(
            "{} of {} differ, first (index, ours, PyTorch): {:?}",
            bad.len(),
            got.data().len(),
            &bad[..bad.len().min(5)]
        )
    })
}

#[test]
fn int8_kernels_match_pytorch_fbgemm() {
    let dir = common::temp_dir("int8_kernels");
    common::run_python("int8_kernels.py", [&dir]);
    let reference: Value =
        serde_json::from_slice(&std::fs::read(dir.join("cases.json")).unwrap()).unwrap();
    let capability = AtenCapability::from_name(reference["capability"].as_str().unwrap())
        .expect("PyTorch ran with an AVX2 or AVX512 ATen build");
    let isas: Vec<Isa> = [Isa::Portable, Isa::Avx2, Isa::Avx512Vnni]
        .into_iter()
        .filter(|isa| isa.is_available())
        .collect();
    let mut failures = Vec::new();
    let mut checked = 0;
    for case in reference["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        if case["op"] == "mean" {
            checked += 1;
            if let Some(m) = check_mean(case) {
                failures.push(format!("{name}: {m}"));
            }
            continue;
        }
        let want = qtensor(&case["out"]);
        let mut outputs: Vec<(String, QTensor)> = Vec::new();
        match case["op"].as_str().unwrap() {
            "conv2d" => {
                let cfg = Conv2dConfig {
                    stride: pair(&case["stride"]),
                    padding: pair(&case["padding"]),
                    groups: case["groups"].as_u64().unwrap() as usize,
                };
                let (x, w) = (qtensor(&case["x"]), qweight(&case["w"]));
                for &isa in &isas {
                    let y = conv2d_with(isa, &x, &w, &cfg, want.affine(), fused(case)).unwrap();
                    assert_eq!(y.format(), MemoryFormat::ChannelsLast);
                    outputs.push((format!("{isa:?}"), y));
                }
            }
            "linear" => {
                let (x, w) = (qtensor(&case["x"]), qweight(&case["w"]));
                for &isa in &isas {
                    let y = linear_with(isa, &x, &w, want.affine(), fused(case)).unwrap();
                    outputs.push((format!("{isa:?}"), y));
                }
            }
            "max_pool2d" => {
                let y = max_pool2d(&qtensor(&case["x"]), &pool(case)).unwrap();
                outputs.push(("max_pool2d".into(), y));
            }
            "avg_pool2d" => {
                let include_pad = case["count_include_pad"].as_bool().unwrap();
                let y = avg_pool2d(&qtensor(&case["x"]), &pool(case), include_pad, capability);
                outputs.push(("avg_pool2d".into(), y.unwrap()));
            }
            "adaptive_avg_pool2d" => {
                let y = adaptive_avg_pool2d_1x1(&qtensor(&case["x"])).unwrap();
                outputs.push(("adaptive_avg_pool2d".into(), y));
            }
            "add" => {
                let (a, b) = (qtensor(&case["a"]), qtensor(&case["b"]));
                let y = add(&a, &b, want.affine(), fused(case), capability).unwrap();
                assert_eq!(y.format(), a.format());
                outputs.push(("add".into(), y));
            }
            "quantize" => {
                let xs: Vec<f32> = case["input"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap() as f32)
                    .collect();
                let affine = Affine::new(
                    case["scale"].as_f64().unwrap() as f32,
                    case["zp"].as_u64().unwrap() as u8,
                );
                let q = quantize(&xs, &[xs.len()], affine).unwrap();
                let bits: Vec<i64> = case["dequantized_bits"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_i64().unwrap())
                    .collect();
                let ours: Vec<i64> = q
                    .dequantize()
                    .iter()
                    .map(|v| v.to_bits() as i32 as i64)
                    .collect();
                if ours != bits {
                    failures.push(format!("{name}: dequantize differs"));
                }
                outputs.push(("relu".into(), relu(&q)));
                if let Some(m) = mismatch(&relu(&q), &qtensor(&case["relu"])) {
                    failures.push(format!("{name} relu: {m}"));
                }
                outputs.push(("quantize".into(), q));
            }
            op => panic!("unknown op {op}"),
        }
        for (path, got) in &outputs {
            checked += 1;
            if path == "relu" {
                continue;
            }
            if let Some(m) = mismatch(got, &want) {
                failures.push(format!("{name} ({path}): {m}"));
            }
        }
    }
    assert!(checked >= 70, "only {checked} outputs checked");
    assert!(
        failures.is_empty(),
        "differences from PyTorch:\n{}",
        failures.join("\n")
    );
}

/// A `mean` case: PyTorch's bytes, shape and (suggested) memory format, or its refusal.
fn check_mean(case: &Value) -> Option<String> {
    let dims: Vec<isize> = case["dims"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_i64().unwrap() as isize)
        .collect();
    let got = mean(
        &qtensor(&case["x"]),
        &dims,
        case["keepdim"].as_bool().unwrap(),
    );
    match (got, case.get("error")) {
        (Err(_), Some(_)) => None,
        (Ok(_), Some(e)) => Some(format!("PyTorch fails ({e}), we do not")),
        (Err(e), None) => Some(format!("fails: {e}")),
        (Ok(y), None) => {
            let want = qtensor(&case["out"]);
            if y.affine() != want.affine() {
                return Some(format!("grid {:?} != {:?}", y.affine(), want.affine()));
            }
            if y.format() != want.format() {
                return Some(format!("format {:?} != {:?}", y.format(), want.format()));
            }
            mismatch(&y, &want)
        }
    }
}

/// Random inputs, weights and geometries: every available instruction set gives the portable
/// path's bytes, for full-range activations against extreme weights too.
#[test]
fn int8_simd_paths_agree_with_portable() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let isas: Vec<Isa> = [Isa::Avx2, Isa::Avx512Vnni]
        .into_iter()
        .filter(|isa| isa.is_available())
        .collect();
    for round in 0..40 {
        let groups = [1, 2, 4][rng.random_range(0..3)];
        let depthwise = rng.random_bool(0.4);
        let cg = if depthwise {
            1
        } else {
            rng.random_range(1..12)
        };
        let c = cg
            * if depthwise {
                rng.random_range(4..40)
            } else {
                groups
            };
        let groups = if depthwise { c } else { groups };
        let o = if depthwise {
            c
        } else {
            groups * rng.random_range(1..9)
        };
        let (kh, kw) = (rng.random_range(1..6), rng.random_range(1..6));
        let (h, w) = (rng.random_range(kh..kh + 20), rng.random_range(kw..kw + 20));
        let cfg = Conv2dConfig {
            stride: [rng.random_range(1..4), rng.random_range(1..4)],
            padding: [rng.random_range(0..=kh / 2), rng.random_range(0..=kw / 2)],
            groups,
        };
        let n = rng.random_range(1..3);
        let extreme = round % 3 == 0;
        let xs: Vec<u8> = (0..n * c * h * w)
            .map(|_| {
                if extreme {
                    [0, 255][rng.random_range(0..2)]
                } else {
                    rng.random()
                }
            })
            .collect();
        let zp = rng.random();
        let x = QTensor::new(
            xs,
            &[n, c, h, w],
            Affine::new(0.03, zp),
            MemoryFormat::Contiguous,
        )
        .unwrap();
        let ws: Vec<i8> = (0..o * cg * kh * kw)
            .map(|_| {
                if extreme {
                    [-128, 127][rng.random_range(0..2)]
                } else {
                    rng.random()
                }
            })
            .collect();
        let scales = (0..o).map(|_| rng.random_range(0.001..0.02)).collect();
        let bias = rng
            .random_bool(0.5)
            .then(|| (0..o).map(|_| rng.random_range(-1.0..1.0)).collect());
        let weight = QWeight::new(ws, &[o, cg, kh, kw], scales, bias).unwrap();
        let out = Affine::new(rng.random_range(0.05..2.0), rng.random());
        let fused = if rng.random_bool(0.5) {
            Fused::Relu
        } else {
            Fused::None
        };
        let expect = conv2d_with(Isa::Portable, &x, &weight, &cfg, out, fused).unwrap();
        for &isa in &isas {
            let got = conv2d_with(isa, &x, &weight, &cfg, out, fused).unwrap();
            assert_eq!(
                got,
                expect,
                "round {round}: {isa:?}, {cfg:?}, weight {:?}",
                weight.shape()
            );
        }
        // The same weights as a linear layer over flattened patches of the first row.
        let k = cg * kh * kw;
        let lin = QWeight::new(
            weight.data().to_vec(),
            &[o, k],
            weight.scales().to_vec(),
            None,
        )
        .unwrap();
        let rows = rng.random_range(1..40);
        let xl = QTensor::new(
            (0..rows * k).map(|_| rng.random()).collect(),
            &[rows, k],
            Affine::new(0.02, rng.random()),
            MemoryFormat::Contiguous,
        )
        .unwrap();
        let expect = linear_with(Isa::Portable, &xl, &lin, out, fused).unwrap();
        for &isa in &isas {
            assert_eq!(
                linear_with(isa, &xl, &lin, out, fused).unwrap(),
                expect,
                "{isa:?}"
            );
        }
    }
}

/// Random `[n, c, h, w]` activations (all 0 or 255 when `extreme`) on a random grid.
fn random_input(rng: &mut ChaCha8Rng, shape: [usize; 4], extreme: bool) -> QTensor {
    let xs = (0..shape.iter().product::<usize>())
        .map(|_| {
            if extreme {
                [0, 255][rng.random_range(0..2)]
            } else {
                rng.random()
            }
        })
        .collect();
    let zp = [0, 255, rng.random()][rng.random_range(0..3)];
    QTensor::new(
        xs,
        &shape,
        Affine::new(0.03, zp),
        MemoryFormat::ChannelsLast,
    )
    .unwrap()
}

/// Random `[o, cg, kh, kw]` weights (all -128 or 127 when `extreme`), with a bias half the time.
fn random_weight(rng: &mut ChaCha8Rng, shape: [usize; 4], extreme: bool) -> QWeight {
    let ws = (0..shape.iter().product::<usize>())
        .map(|_| {
            if extreme {
                [-128, 127][rng.random_range(0..2)]
            } else {
                rng.random()
            }
        })
        .collect();
    let o = shape[0];
    let scales = (0..o).map(|_| rng.random_range(0.0005..0.02)).collect();
    let bias = rng
        .random_bool(0.5)
        .then(|| (0..o).map(|_| rng.random_range(-2.0..2.0)).collect());
    QWeight::new(ws, &shape, scales, bias).unwrap()
}

/// `conv2d_with` on every instruction set gives the generic im2col + GEMM path's bytes.
fn check_against_generic(rng: &mut ChaCha8Rng, x: &QTensor, w: &QWeight, cfg: &Conv2dConfig) {
    let out = Affine::new(rng.random_range(0.02..1.0), rng.random());
    let fused = [Fused::None, Fused::Relu][rng.random_range(0..2)];
    let expect = conv2d_generic_with(Isa::Portable, x, w, cfg, out, fused).unwrap();
    for isa in [Isa::Portable, Isa::Avx2, Isa::Avx512Vnni] {
        if isa.is_available() {
            let got = conv2d_with(isa, x, w, cfg, out, fused).unwrap();
            assert_eq!(
                mismatch(&got, &expect),
                None,
                "{isa:?}: input {:?}, weight {:?}, {cfg:?}",
                x.shape(),
                w.shape()
            );
        }
    }
}

/// The direct kernels for convs with one input channel per output channel (depthwise, with a
/// channel multiplier, one-channel input) and the 1x1 path, on random geometries, against the
/// generic path: the same bytes, on every instruction set.
#[test]
fn int8_direct_conv_paths_match_the_generic_path() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let conv = |stride: [usize; 2], padding: [usize; 2], groups: usize| Conv2dConfig {
        stride,
        padding,
        groups,
    };
    // TF-SepNet-64's own shapes (C = 64, stem at a quarter of the input height).
    let fixed: [([usize; 4], [usize; 4], Conv2dConfig); 8] = [
        ([1, 1, 128, 64], [32, 1, 3, 3], conv([2, 2], [1, 1], 1)),
        ([1, 32, 64, 32], [128, 1, 3, 3], conv([2, 2], [1, 1], 32)),
        ([1, 32, 128, 16], [32, 1, 3, 1], conv([1, 1], [1, 0], 32)),
        ([1, 48, 64, 8], [48, 1, 1, 3], conv([1, 1], [0, 1], 48)),
        ([1, 80, 16, 2], [80, 1, 1, 3], conv([1, 1], [0, 1], 80)),
        ([1, 128, 128, 16], [64, 128, 1, 1], conv([1, 1], [0, 0], 1)),
        ([1, 80, 1, 2], [80, 80, 1, 1], conv([1, 1], [0, 0], 1)),
        ([1, 160, 16, 2], [10, 160, 1, 1], conv([1, 1], [0, 0], 1)),
    ];
    for (shape, wshape, cfg) in fixed {
        let x = random_input(&mut rng, shape, false);
        let w = random_weight(&mut rng, wshape, false);
        check_against_generic(&mut rng, &x, &w, &cfg);
    }
    for round in 0..150 {
        let extreme = round % 5 == 0;
        let n = rng.random_range(1..3);
        let (kh, kw): (usize, usize) = (rng.random_range(1..6), rng.random_range(1..6));
        let stride = [rng.random_range(1..4), rng.random_range(1..4)];
        // "Same" padding (the TF-SepNet depthwise layout) a third of the time.
        let padding = if round % 3 == 0 {
            [kh / 2, kw / 2]
        } else {
            [rng.random_range(0..=kh / 2), rng.random_range(0..=kw / 2)]
        };
        let h = rng.random_range(kh.saturating_sub(2 * padding[0]).max(1)..kh + 25);
        let w = rng.random_range(kw.saturating_sub(2 * padding[1]).max(1)..kw + 40);
        let (c, o) = match round % 3 {
            0 => {
                let c = rng.random_range(1..20);
                (c, c)
            }
            1 => {
                let c = rng.random_range(1..8);
                (c, c * [2, 3, 4][rng.random_range(0..3)])
            }
            _ => (1, rng.random_range(1..40)),
        };
        let x = random_input(&mut rng, [n, c, h, w], extreme);
        let wt = random_weight(&mut rng, [o, 1, kh, kw], extreme);
        check_against_generic(&mut rng, &x, &wt, &conv(stride, padding, c));
    }
    for round in 0..60 {
        let extreme = round % 5 == 0;
        let groups = [1, 1, 2, 3][rng.random_range(0..4)];
        let cg = rng.random_range(1..70);
        let o = groups * rng.random_range(1..40);
        let shape = [
            rng.random_range(1..3),
            cg * groups,
            rng.random_range(1..24),
            rng.random_range(1..24),
        ];
        let x = random_input(&mut rng, shape, extreme);
        let wt = random_weight(&mut rng, [o, cg, 1, 1], extreme);
        check_against_generic(&mut rng, &x, &wt, &conv([1, 1], [0, 0], groups));
    }
}
