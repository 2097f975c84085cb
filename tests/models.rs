//! Models: shapes, train/eval semantics, PyTorch parity, weight files, BatchNorm folding, INT8.

use ascrepro::compress::int8::{AtenCapability, Isa};
use ascrepro::compress::ptq::{quantize_int8, PtqConfig};
use ascrepro::models::blocks::{NormKind, Vb};
use ascrepro::models::{
    build, build_net, load_weights, save_weights, tfsepnet23, ModelConfig, Net,
};
use tch::{nn, nn::OptimizerConfig, Device, Kind, Tensor};

mod common;
use common::{fold_and_compare, max_abs_diff, parity, perturb_with, temp_dir, Perturb};

fn cfg(width: i64, norm: NormKind, dropout: f64, shuffle_groups: Option<i64>) -> ModelConfig {
    ModelConfig::Tfsepnet23(tfsepnet23::Config {
        width,
        norm,
        dropout,
        shuffle_groups,
        num_classes: 10,
    })
}

fn c12() -> ModelConfig {
    cfg(12, NormKind::AdaResNorm, 0.0, None)
}

/// Gives BatchNorms and AdaResNorms non-trivial values so eval paths are really exercised.
fn perturb(vs: &nn::VarStore) {
    perturb_with(vs, |name, _, _| {
        if name.ends_with("running_var") || name.ends_with("bn.weight") || name.ends_with("gamma") {
            Perturb::AroundOne
        } else if name.ends_with("running_mean")
            || name.ends_with("bn.bias")
            || name.ends_with("beta")
        {
            Perturb::AroundZero
        } else if name.ends_with("rho") {
            Perturb::Unit
        } else {
            Perturb::Keep
        }
    });
}

#[test]
fn forward_shapes() {
    tch::set_num_threads(1);
    tch::manual_seed(0);
    for (config, input) in [
        (c12(), [3, 1, 128, 44]),
        (
            cfg(20, NormKind::ResNorm { lambda: 0.1 }, 0.2, Some(2)),
            [2, 1, 128, 44],
        ),
        (c12(), [1, 1, 256, 65]),
    ] {
        let vs = nn::VarStore::new(Device::Cpu);
        let model = build(&vs.root(), &config).unwrap();
        let xs = Tensor::randn(input, (Kind::Float, Device::Cpu));
        for train in [false, true] {
            let ys = model.forward_t(&xs, train);
            assert_eq!(
                ys.size(),
                vec![input[0], 10],
                "{} train={train}",
                config.describe()
            );
        }
    }
}

#[test]
fn describe_and_config_serde() {
    assert_eq!(c12().describe(), "tfsepnet23 C=12 AdaResNorm");
    let json = serde_json::to_string(&c12()).unwrap();
    assert!(json.contains("\"arch\":\"tfsepnet23\""), "{json}");
    assert_eq!(serde_json::from_str::<ModelConfig>(&json).unwrap(), c12());
    let r: ModelConfig = serde_json::from_str(
        r#"{"arch":"tfsepnet23","width":40,"norm":{"kind":"res_norm","lambda":0.1},"dropout":0.1}"#,
    )
    .unwrap();
    assert_eq!(r, cfg(40, NormKind::ResNorm { lambda: 0.1 }, 0.1, None));
    assert!(serde_json::from_str::<ModelConfig>(
        r#"{"arch":"tfsepnet23","width":40,"norm":{"kind":"ada_res_norm"},"dropout":0.1,"depth":3}"#
    )
    .is_err());
    // Invalid widths are errors naming the field, never panics.
    let bad = cfg(13, NormKind::AdaResNorm, 0.0, None);
    let err = bad.validate().unwrap_err().to_string();
    assert!(err.contains("width"), "{err}");
    let vs = nn::VarStore::new(Device::Cpu);
    assert!(ascrepro::models::build(&vs.root(), &bad).is_err());
}

#[test]
fn batchnorm_stats_update_only_in_train_and_dropout_only_in_train() {
    tch::set_num_threads(1);
    tch::manual_seed(1);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = build(&vs.root(), &cfg(12, NormKind::AdaResNorm, 0.5, None)).unwrap();
    let rm = vs.variables()["stage1.block0.freq_dw_conv._bn.running_mean"].shallow_clone();
    let xs = Tensor::randn([4, 1, 128, 44], (Kind::Float, Device::Cpu));

    let before = rm.copy();
    let e1 = model.forward_t(&xs, false);
    let e2 = model.forward_t(&xs, false);
    assert_eq!(
        max_abs_diff(&rm, &before),
        0.0,
        "eval must not touch running stats"
    );
    assert_eq!(
        max_abs_diff(&e1, &e2),
        0.0,
        "eval is deterministic (no dropout)"
    );

    let t1 = model.forward_t(&xs, true);
    assert!(
        max_abs_diff(&rm, &before) > 0.0,
        "train updates running stats"
    );
    let t2 = model.forward_t(&xs, true);
    assert!(
        max_abs_diff(&t1, &t2) > 1e-6,
        "dropout is active in train mode"
    );
}

/// tests/python/tfsepnet23.py builds the same network in PyTorch with random weights.
fn run_parity(tag: &str, config: &ModelConfig, py_args: [&str; 4]) {
    tch::set_num_threads(1);
    let args: Vec<String> = py_args.iter().map(|a| a.to_string()).collect();
    let (dir, file) = parity::run_script("tfsepnet23.py", tag, &args);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = build(&vs.root(), config).unwrap();
    // Name mapping: the PyTorch modules use our VarStore names; PyTorch's
    // `num_batches_tracked` buffers were left out by the script.
    parity::load_by_name(&vs, &file, "");
    parity::assert_matches(&vs, &file, |x, train| model.forward_t(x, train), "");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn pytorch_parity_adaresnorm_c12() {
    run_parity("ada", &c12(), ["12", "ada", "0", "0"]);
}

#[test]
fn pytorch_parity_resnorm_c8_shuffle2() {
    let config = cfg(8, NormKind::ResNorm { lambda: 0.1 }, 0.0, Some(2));
    run_parity("res", &config, ["8", "res", "0.1", "2"]);
}

#[test]
fn weights_roundtrip_is_exact_and_deterministic() {
    tch::set_num_threads(1);
    tch::manual_seed(2);
    let dir = temp_dir("roundtrip");
    let config = cfg(12, NormKind::AdaResNorm, 0.1, None);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = build(&vs.root(), &config).unwrap();
    perturb(&vs);
    let (a, b) = (dir.join("a.safetensors"), dir.join("b.safetensors"));
    save_weights(&vs, &config, &a).unwrap();
    save_weights(&vs, &config, &b).unwrap();
    assert_eq!(
        std::fs::read(&a).unwrap(),
        std::fs::read(&b).unwrap(),
        "identical bytes"
    );

    let (vs2, config2, model2) = load_weights(&a, Device::Cpu).unwrap();
    assert_eq!(config2, config);
    assert_eq!(vs2.variables().len(), vs.variables().len());
    let xs = Tensor::randn([3, 1, 128, 44], (Kind::Float, Device::Cpu));
    assert_eq!(
        max_abs_diff(&model.forward_t(&xs, false), &model2.forward_t(&xs, false)),
        0.0
    );
    let c = dir.join("c.safetensors");
    save_weights(&vs2, &config2, &c).unwrap();
    assert_eq!(
        std::fs::read(&a).unwrap(),
        std::fs::read(&c).unwrap(),
        "reloaded model saves the same bytes"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn weight_file_errors_name_the_file_and_tensor() {
    tch::set_num_threads(1);
    let dir = temp_dir("errors");
    let missing = dir.join("missing.safetensors");
    let err = load_weights(&missing, Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("missing.safetensors"), "{err}");

    let garbage = dir.join("garbage.safetensors");
    std::fs::write(&garbage, b"not a safetensors file").unwrap();
    let err = load_weights(&garbage, Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("garbage.safetensors"), "{err}");

    // A file written for C=12 whose header claims C=20: every tensor is mis-shaped.
    let vs = nn::VarStore::new(Device::Cpu);
    let _m = build(&vs.root(), &c12()).unwrap();
    let wrong = dir.join("wrong.safetensors");
    let c20 = cfg(20, NormKind::AdaResNorm, 0.0, None);
    save_weights(&vs, &c20, &wrong).unwrap();
    let err = load_weights(&wrong, Device::Cpu).unwrap_err().to_string();
    assert!(
        err.contains("wrong.safetensors")
            && err.contains("head.conv.weight")
            && err.contains("shape"),
        "{err}"
    );

    // ResNorm has no rho/gamma/beta: loading AdaResNorm weights as ResNorm finds unexpected tensors.
    let unexpected = dir.join("unexpected.safetensors");
    save_weights(
        &vs,
        &cfg(12, NormKind::ResNorm { lambda: 0.1 }, 0.0, None),
        &unexpected,
    )
    .unwrap();
    let err = load_weights(&unexpected, Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unexpected tensor") && err.contains("beta"),
        "{err}"
    );

    // AdaResNorm config over ResNorm weights: missing tensors.
    let vs_r = nn::VarStore::new(Device::Cpu);
    let _r = build(
        &vs_r.root(),
        &cfg(12, NormKind::ResNorm { lambda: 0.1 }, 0.0, None),
    )
    .unwrap();
    let short = dir.join("short.safetensors");
    save_weights(&vs_r, &c12(), &short).unwrap();
    let err = load_weights(&short, Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("missing tensor"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn folding_batchnorm_keeps_eval_outputs() {
    tch::set_num_threads(1);
    tch::manual_seed(3);
    let vs = nn::VarStore::new(Device::Cpu);
    let mut net: Box<dyn Net> = build_net(&Vb::new(&vs.root()), &c12()).unwrap();
    perturb(&vs);
    let before_vars: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .map(|(n, t)| (n, t.copy()))
        .collect();
    let xs = Tensor::randn([4, 1, 128, 44], (Kind::Float, Device::Cpu));
    let (folded, d, _) = fold_and_compare(net.as_mut(), &xs);
    assert_eq!(
        folded,
        9 * 4 + 4,
        "one BatchNorm per dw/pw unit and per projection"
    );
    assert!(d < 1e-5, "folding changed eval outputs by {d}");
    let vars = vs.variables();
    for (name, t) in &before_vars {
        assert_eq!(
            max_abs_diff(t, &vars[name]),
            0.0,
            "folding must not modify the VarStore ({name})"
        );
    }
}

/// A toy task the network learns in a few dozen steps on small 32 x 44 inputs: class k makes
/// mel bins 3k..3k+3 alternate in time.
fn toy_batch(n: i64, seed: i64) -> (Tensor, Tensor) {
    tch::manual_seed(seed);
    let labels = Tensor::randint(10, [n], (Kind::Int64, Device::Cpu));
    let xs = Tensor::randn([n, 1, 32, 44], (Kind::Float, Device::Cpu)) * 0.5;
    let bands = Tensor::arange(32, (Kind::Int64, Device::Cpu)).divide_scalar_mode(3, "floor");
    let mask = bands
        .unsqueeze(0)
        .eq_tensor(&labels.unsqueeze(1))
        .to_kind(Kind::Float);
    let alternate = Tensor::arange(44, (Kind::Float, Device::Cpu)).remainder(2.0) * 2.0 - 1.0;
    let pattern = mask.reshape([n, 1, 32, 1]) * alternate.reshape([1, 1, 1, 44]) * 1.5;
    (xs + pattern, labels)
}

#[test]
fn int8_model_stays_close_to_fp32_and_weights_sit_on_the_int8_grid() {
    tch::set_num_threads(1);
    tch::manual_seed(4);
    let config = c12();
    let vs = nn::VarStore::new(Device::Cpu);
    let model = build(&vs.root(), &config).unwrap();
    let mut opt = nn::Adam::default().build(&vs, 1e-2).unwrap();
    for step in 0..60 {
        let (xs, ys) = toy_batch(32, 100 + step);
        let loss = model.forward_t(&xs, true).cross_entropy_for_logits(&ys);
        opt.backward_step(&loss);
    }
    let calibration: Vec<Tensor> = (0..4).map(|i| toy_batch(32, 1000 + i).0).collect();
    let q = quantize_int8(&vs, &config, &calibration, &PtqConfig::default()).unwrap();

    let (xs, ys) = toy_batch(200, 5000);
    let fp = tch::no_grad(|| model.forward_t(&xs, false));
    // The integer engine's logits, and the simulated model's.
    let program = q.program(Isa::detect(), AtenCapability::Avx2).unwrap();
    let shape: Vec<usize> = xs.size().iter().map(|&d| d as usize).collect();
    let values = Vec::<f32>::try_from(xs.flatten(0, -1)).unwrap();
    let qi = Tensor::from_slice(&program.run(&values, &shape).unwrap()).reshape([200, -1]);
    let sim = q.simulate(&xs);
    let argmax_agree = |a: &Tensor, b: &Tensor| {
        a.argmax(1, false)
            .eq_tensor(&b.argmax(1, false))
            .to_kind(Kind::Float)
            .mean(Kind::Float)
            .double_value(&[])
    };
    let agree = argmax_agree(&fp, &qi);
    let acc = |l: &Tensor| {
        l.argmax(1, false)
            .eq_tensor(&ys)
            .to_kind(Kind::Float)
            .mean(Kind::Float)
            .double_value(&[])
    };
    let rel = (&fp - &qi).abs().mean(Kind::Float).double_value(&[])
        / fp.abs().mean(Kind::Float).double_value(&[]);
    println!(
        "fp32 acc {:.3}, int8 acc {:.3}, argmax agreement {agree:.3}, relative error {rel:.4}",
        acc(&fp),
        acc(&qi)
    );
    assert!(acc(&fp) > 0.5, "toy training failed: accuracy {}", acc(&fp));
    assert!(agree >= 0.9, "argmax agreement {agree}");
    assert!(rel < 0.1, "relative logit error {rel}");
    assert!(rel > 0.0, "quantization had no effect");
    assert!(
        argmax_agree(&qi, &sim) >= 0.99,
        "engine and simulation disagree"
    );
    let sim_rel = (&sim - &qi).abs().max().double_value(&[]);
    assert!(
        sim_rel < 0.1 * fp.abs().max().double_value(&[]),
        "engine vs simulated {sim_rel}"
    );

    // 1 stem + 9 blocks (4 of them with a projection) * 4 + 4 projections + head.
    assert_eq!(q.int8_layers(), 1 + 9 * 4 + 4 + 1);
    for p in q.points() {
        let qp = p.qparams;
        assert!(
            (0..=127).contains(&qp.zero_point) && qp.scale > 0.0,
            "{}: {qp:?}",
            p.name
        );
        if let Some(w) = q.weight(&p.name) {
            assert_eq!(w.scales.len(), w.shape[0], "{}", p.name);
            assert!(w.scales.iter().all(|&s| s > 0.0), "{}", p.name);
            // Symmetric per channel: every channel reaches its extreme.
            let per = w.int8.len() / w.shape[0];
            for c in w.int8.chunks_exact(per) {
                let m = c.iter().map(|&v| (v as i32).abs()).max().unwrap();
                assert!(m >= 127, "{}: a channel's largest |q| is {m}", p.name);
            }
        }
    }
    let names: Vec<String> = q.points().into_iter().map(|p| p.name).collect();
    assert!(names.contains(&"input".to_string()));
    assert!(names.contains(&"stage4.block2.cat".to_string()));
    // The original VarStore is untouched (BatchNorms still there, weights not quantized).
    assert!(vs.variables().contains_key("head.conv.weight"));
}

#[test]
fn quantize_rejects_bad_input() {
    tch::set_num_threads(1);
    let vs = nn::VarStore::new(Device::Cpu);
    let _m = build(&vs.root(), &c12()).unwrap();
    assert!(quantize_int8(&vs, &c12(), &[], &PtqConfig::default()).is_err());
    let other = cfg(20, NormKind::AdaResNorm, 0.0, None);
    let x = Tensor::zeros([1, 1, 128, 44], (Kind::Float, Device::Cpu));
    assert!(quantize_int8(&vs, &other, &[x], &PtqConfig::default()).is_err());
}
