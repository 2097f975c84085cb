//! BC-ResNet (the comparison row of Cai et al., DCASE2023 Table 3): complexity against the
//! published figures, PyTorch parity, BatchNorm folding, options and quantization.

use ascrepro::compress::complexity::{count, CountOptions};
use ascrepro::compress::ptq::{quantize_int8, PtqConfig};
use ascrepro::models::bcresnet::Config;
use ascrepro::models::blocks::{Ctx, NormKind, Vb};
use ascrepro::models::{build, build_net, ModelConfig, ModelSpec, Net};
use std::path::Path;
use tch::{nn, Device, Kind, Tensor};

mod common;
use common::complexity::{cli_json, folding, reference_rows, Row};
use common::{ascrepro_fails, fold_and_compare, max_abs_diff, parity};

const RESNORM: NormKind = NormKind::ResNorm { lambda: 0.1 };

fn bcresnet(width: i64, norm: NormKind) -> ModelConfig {
    ModelConfig::Bcresnet(Config::new(width, norm))
}

/// The `bcresnet` row of the reference table: (variant, input, params, MACs, status).
fn reference_row() -> (String, [i64; 3], u64, u64, String) {
    let rows: Vec<Row> = reference_rows()
        .into_iter()
        .filter(|r| r.model == "bcresnet")
        .collect();
    assert_eq!(rows.len(), 1, "expected one bcresnet row in complexity.tsv");
    let row = rows[0].clone();
    (row.variant, row.input, row.params, row.macs, row.status)
}

/// `value / unit` printed with two decimals, as Table 3 prints params (K) and MACs (M).
fn printed(value: u64, unit: f64) -> String {
    format!("{:.2}", value as f64 / unit)
}

#[test]
fn complexity_matches_the_published_figures_to_their_printed_precision() {
    tch::set_num_threads(1);
    let (variant, input, params, macs, status) = reference_row();
    assert_eq!(variant, "C=40, ResNorm");
    assert_eq!(status, "published", "the row's figures are rounded");
    let c = count(&bcresnet(40, RESNORM), input, &CountOptions::default()).unwrap();
    assert_eq!(printed(c.params, 1e3), printed(params, 1e3), "params (K)");
    assert_eq!(printed(c.macs, 1e6), printed(macs, 1e6), "MACs (M)");
    // The exact count of the implemented variant (the module docs derive it).
    assert_eq!((c.params, c.macs), (87_040, 10_233_660));
    assert_eq!(c.params, c.layers.iter().map(|l| l.params).sum::<u64>());
    assert_eq!(c.macs, c.layers.iter().map(|l| l.macs).sum::<u64>());

    // Every learnable element is counted once: the count equals the VarStore's trainable size.
    let vs = nn::VarStore::new(Device::Cpu);
    let _model = build(&vs.root(), &bcresnet(40, RESNORM)).unwrap();
    let trainable: i64 = vs
        .trainable_variables()
        .iter()
        .map(|t| t.numel() as i64)
        .sum();
    assert_eq!(c.params as i64, trainable);

    // SubSpectralNorm counts as torchinfo counts BatchNorm2d(C * S): 2 * C * 5 params and MACs.
    let ssn = c
        .layers
        .iter()
        .find(|l| l.name == "stage4.block2.ssn")
        .unwrap();
    assert_eq!(
        (ssn.kind.as_str(), ssn.params, ssn.macs),
        ("SubSpectralNorm", 1000, 1000)
    );
    assert_eq!(ssn.output, vec![100, 16, 5]);
    let head = c.layers.iter().find(|l| l.name == "head.conv").unwrap();
    assert_eq!((head.params, head.output.clone()), (1000, vec![10, 16, 5]));
}

#[test]
fn count_at_160_bins_equals_torchinfo_where_subspectralnorm_is_the_original() {
    tch::set_num_threads(1);
    // At 160 bins every stage's bins (80, 40, 20) split into 5 equal sub-bands, so the PyTorch
    // reference runs the original view-based SubSpectralNorm through nn.BatchNorm2d and
    // torchinfo 1.8.0 sees every layer: its total_params / total_mult_adds for
    // tests/python/bcresnet.py `Net(40)` at (1, 1, 160, 44).
    let c = count(
        &bcresnet(40, RESNORM),
        [1, 160, 44],
        &CountOptions::default(),
    )
    .unwrap();
    assert_eq!((c.params, c.macs), (87_040, 12_695_020));
}

#[test]
fn the_cli_prints_the_same_count() {
    let v = cli_json(&[
        "bcresnet", "--width", "40", "--norm", "resnorm", "--input", "1x128x44",
    ]);
    assert_eq!(v["params"], 87_040);
    assert_eq!(v["macs"], 10_233_660);
    assert_eq!(v["model"], "bcresnet C=40 ResNorm(lambda=0.1)");

    // Options the architecture does not have are refused, naming the option.
    let err = ascrepro_fails(
        Path::new("."),
        &[
            "complexity",
            "bcresnet",
            "--width",
            "40",
            "--depth",
            "17",
            "--input",
            "1x128x44",
        ],
    );
    assert!(err.contains("--depth") && err.contains("bcresnet"), "{err}");
}

#[test]
fn spec_options_and_validation() {
    let mut spec = ModelSpec::new("bcresnet");
    spec.width = Some(40);
    // ResNorm with lambda 0.1 unless told otherwise (Cai et al.'s BC-ResNet always has it).
    let cfg = ModelConfig::from_spec(&spec).unwrap();
    assert_eq!(cfg, bcresnet(40, RESNORM));
    spec.norm = Some("adaresnorm".into());
    spec.dropout = Some(0.1);
    match ModelConfig::from_spec(&spec).unwrap() {
        ModelConfig::Bcresnet(c) => {
            assert_eq!(
                (c.norm, c.dropout, c.sub_bands),
                (NormKind::AdaResNorm, 0.1, 5)
            )
        }
        other => panic!("{other:?}"),
    }
    spec.shuffle_groups = Some(2);
    assert_eq!(
        ModelConfig::from_spec(&spec).unwrap_err().0,
        "shuffle_groups"
    );
    let mut no_width = ModelSpec::new("bcresnet");
    no_width.norm = Some("resnorm".into());
    assert_eq!(ModelConfig::from_spec(&no_width).unwrap_err().0, "width");

    let json = serde_json::to_string(&bcresnet(40, RESNORM)).unwrap();
    assert!(json.contains("\"arch\":\"bcresnet\""), "{json}");
    assert_eq!(
        serde_json::from_str::<ModelConfig>(&json).unwrap(),
        bcresnet(40, RESNORM)
    );
    let mut bad = Config::new(40, RESNORM);
    bad.sub_bands = 0;
    let err = ModelConfig::Bcresnet(bad)
        .validate()
        .unwrap_err()
        .to_string();
    assert!(err.contains("sub_bands"), "{err}");
}

/// Runs tests/python/bcresnet.py, loads its weights into our model and compares eval logits,
/// train-mode logits and the running statistics after the train step; folds a copy of the
/// loaded weights and compares its eval logits.
fn run_parity(tag: &str, config: Config, norm_arg: &str, freq_bins: i64) {
    tch::set_num_threads(1);
    let lambda = match config.norm {
        NormKind::ResNorm { lambda } => lambda,
        NormKind::AdaResNorm => 0.0,
    };
    let args = [
        config.width.to_string(),
        norm_arg.to_string(),
        lambda.to_string(),
        config.sub_bands.to_string(),
        freq_bins.to_string(),
    ];
    let (dir, file) = parity::run_script("bcresnet.py", tag, &args);

    let config = ModelConfig::Bcresnet(config);
    let vs = nn::VarStore::new(Device::Cpu);
    let net: Box<dyn Net> = build_net(&Vb::new(&vs.root()), &config).unwrap();
    parity::load_by_name(&vs, &file, "");
    let ours = vs.variables();

    let x = &file["x"];
    let eval = common::eval(net.as_ref(), x);
    parity::assert_eval(&file, &eval, "");

    // Folding (before the train step changes the statistics) keeps eval outputs; the
    // SubSpectralNorms stay: 4 transition + 9 temporal BatchNorms fold.
    let folded_vs = nn::VarStore::new(Device::Cpu);
    let mut folded: Box<dyn Net> = build_net(&Vb::constant(&folded_vs.root()), &config).unwrap();
    let mut folded_vars = folded_vs.variables();
    for (name, var) in folded_vars.iter_mut() {
        tch::no_grad(|| var.copy_(&ours[name]));
    }
    let (n_folded, _, y) = fold_and_compare(folded.as_mut(), x);
    assert_eq!(n_folded, 13);
    let d = max_abs_diff(&eval, &y);
    assert!(d < 1e-5, "folding changed eval outputs by {d}");

    let train = tch::no_grad(|| net.forward_ctx(x, &Ctx::new(true)));
    parity::assert_train(&file, &train, "");
    let (stats, _) = parity::assert_running_stats(&vs, &file, "");
    // Per block: SubSpectralNorm and temporal BN (+ transition BN in 4 blocks), mean and var.
    assert_eq!(stats, 2 * (9 * 2 + 4));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn pytorch_parity_resnorm_uneven_sub_bands() {
    // 128 bins: 64, 32 and 16 bins per stage, none divisible by 5. C = 7 checks the truncated
    // stage widths (7, 10, 14, 17).
    run_parity("bcresnet_res", Config::new(7, RESNORM), "res", 128);
}

#[test]
fn pytorch_parity_adaresnorm_original_sub_bands() {
    // 160 bins: 80, 40 and 20 bins per stage, the original view-based SubSpectralNorm.
    run_parity(
        "bcresnet_ada",
        Config::new(8, NormKind::AdaResNorm),
        "ada",
        160,
    );
}

#[test]
fn dropout_and_batch_statistics_only_in_train_mode() {
    tch::set_num_threads(1);
    tch::manual_seed(1);
    let mut config = Config::new(8, RESNORM);
    config.dropout = 0.5;
    let vs = nn::VarStore::new(Device::Cpu);
    let model = build(&vs.root(), &ModelConfig::Bcresnet(config)).unwrap();
    let rm = vs.variables()["stage1.block1.ssn._bn.running_mean"].shallow_clone();
    let xs = Tensor::randn([3, 1, 128, 44], (Kind::Float, Device::Cpu));
    let before = rm.copy();
    let e1 = model.forward_t(&xs, false);
    assert_eq!(e1.size(), vec![3, 10]);
    assert_eq!(max_abs_diff(&e1, &model.forward_t(&xs, false)), 0.0);
    assert_eq!(
        max_abs_diff(&rm, &before),
        0.0,
        "eval must not touch running stats"
    );
    let t1 = model.forward_t(&xs, true);
    // Every sub-band's statistics moved (the uneven split writes each band back).
    let moved = (&rm - &before).abs().view([8, 5]).min_dim(0, false).0;
    assert!(
        moved.min().double_value(&[]) > 0.0,
        "train updates every band"
    );
    assert!(
        max_abs_diff(&t1, &model.forward_t(&xs, true)) > 1e-6,
        "dropout in train mode"
    );
}

#[test]
fn folded_count_keeps_subspectralnorm() {
    tch::set_num_threads(1);
    let cfg = bcresnet(40, RESNORM);
    let f = folding(&cfg, [1, 128, 44]);
    let (plain, folded) = (&f.plain, &f.folded);
    assert_eq!(f.batchnorms, 13);
    assert!(folded.layers.iter().all(|l| l.kind != "BatchNorm2d"));
    assert_eq!(
        folded
            .layers
            .iter()
            .filter(|l| l.kind == "SubSpectralNorm")
            .count(),
        9
    );
    assert_eq!(folded.params, plain.params - f.bn_channels);
    assert_eq!(folded.macs, plain.macs - f.bn_macs + f.bias_macs);
}

#[test]
fn int8_quantization_refuses_bc_resnet_which_has_no_engine_lowering() {
    // BC-ResNet is a comparison baseline in Cai et al. 2023, never deployed at INT8: it has no
    // operator-graph lowering, and quantizing it says so instead of simulating it.
    let config = bcresnet(8, RESNORM);
    let vs = nn::VarStore::new(Device::Cpu);
    let _model = build(&vs.root(), &config).unwrap();
    let calibration = vec![Tensor::randn([2, 1, 128, 44], (Kind::Float, Device::Cpu))];
    let err = quantize_int8(&vs, &config, &calibration, &PtqConfig::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bcresnet") && err.contains("no operator-graph lowering"),
        "{err}"
    );
}
