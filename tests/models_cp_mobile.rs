//! The CP-Mobile family (dcase25_baseline, cp_mobile, sscp_mobile): PyTorch parity, complexity
//! against `../shared/reference/complexity.tsv` (library and CLI), variable names against Zhang
//! et al.'s released checkpoint, BatchNorm folding, quantization points.

use ascrepro::compress::complexity::{count, CountOptions};
use ascrepro::compress::ptq::{quantize_int8, PtqConfig};
use ascrepro::models::blocks::{Ctx, Vb};
use ascrepro::models::cp_blocks::{make_divisible, Channels};
use ascrepro::models::{
    build_net, cp_mobile, dcase25_baseline, sscp_mobile, Architecture, ModelConfig, ModelSpec, Net,
};
use std::collections::BTreeMap;
use std::path::PathBuf;
use tch::{nn, Device, Kind, Tensor};

mod common;
use common::complexity::{self, assert_params_are_varstore, input_arg, var_shapes, Row};
use common::parity::{self, Reference};
use common::{fold_and_compare, perturb_with, Perturb};

fn baseline() -> ModelConfig {
    ModelConfig::Dcase25Baseline(dcase25_baseline::Config::baseline())
}

fn cp_mobile(width: i64) -> ModelConfig {
    ModelConfig::CpMobile(cp_mobile::Config {
        channels: Channels::Base(width),
        num_classes: 10,
    })
}

fn sscp(widths: &[i64]) -> ModelConfig {
    ModelConfig::SscpMobile(sscp_mobile::Config::pruned(widths))
}

fn sscp_base(width: i64) -> ModelConfig {
    ModelConfig::SscpMobile(sscp_mobile::Config {
        channels: Channels::Base(width),
        num_classes: 10,
    })
}

fn counted(cfg: &ModelConfig, fold_bn: bool) -> (u64, u64) {
    let opts = CountOptions {
        fold_bn,
        reparam: false,
    };
    let c = count(cfg, [1, 256, 65], &opts).unwrap();
    (c.params, c.macs)
}

/// The script's arguments for `cfg`: ARCH base C | ARCH explicit w1,w2,...
fn script_args(cfg: &ModelConfig) -> Vec<String> {
    let channels = match cfg {
        ModelConfig::Dcase25Baseline(c) => &c.channels,
        ModelConfig::CpMobile(c) => &c.channels,
        ModelConfig::SscpMobile(c) => &c.channels,
        other => panic!("not a CP-Mobile: {}", other.describe()),
    };
    let (mode, value) = match channels {
        Channels::Base(c) => ("base", c.to_string()),
        Channels::Explicit(w) => (
            "explicit",
            w.iter().map(i64::to_string).collect::<Vec<_>>().join(","),
        ),
    };
    vec![cfg.arch().to_string(), mode.to_string(), value]
}

/// Runs tests/python/cp_mobile.py: random (perturbed) weights, an input, PyTorch's eval and
/// train-mode logits, running statistics after the train step, its own torchinfo-style count.
fn pytorch_reference(tag: &str, cfg: &ModelConfig) -> (PathBuf, Reference) {
    parity::run_script("cp_mobile.py", tag, &script_args(cfg))
}

/// A count the script wrote as base-4096 digits.
fn script_count(file: &Reference, key: &str) -> u64 {
    let digits = Vec::<f32>::try_from(&file[&format!("count.{key}")]).unwrap();
    digits.iter().fold(0, |acc, &d| acc * 4096 + d as u64)
}

fn parity(tag: &str, cfg: &ModelConfig, batchnorms: usize) {
    tch::set_num_threads(1);
    let (dir, file) = pytorch_reference(tag, cfg);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = build_net(&Vb::constant(&vs.root()), cfg).unwrap();
    let what = format!("{tag}: ");
    parity::load_by_name(&vs, &file, &what);
    let forward = |x: &Tensor, train| tch::no_grad(|| net.forward_ctx(x, &Ctx::new(train)));
    let d = parity::assert_matches(&vs, &file, forward, &what);
    assert_eq!(d.stats, 2 * batchnorms, "{tag}: BatchNorm count");

    // The same network counted by PyTorch forward hooks (torchinfo's convention).
    assert_eq!(
        counted(cfg, false),
        (script_count(&file, "params"), script_count(&file, "macs")),
        "{tag}: complexity against the PyTorch count"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn pytorch_parity_dcase25_baseline() {
    // 2 stem units, 3 per block, the classifier's.
    parity("cp_baseline", &baseline(), 2 + 6 * 3 + 1);
}

#[test]
fn pytorch_parity_cp_mobile() {
    parity("cp_mobile", &cp_mobile(32), 2 + 6 * 3 + 1);
}

#[test]
fn pytorch_parity_sscp_mobile_released_widths() {
    // Two stems of 2 units, 4 per block, the classifier's.
    parity("cp_sscp_s1", &sscp(&sscp_mobile::S1_WIDTHS), 4 + 6 * 4 + 1);
}

#[test]
fn pytorch_parity_sscp_mobile_base_width() {
    // The width rule of the unpruned networks, and a strided block b3 with a residual.
    parity("cp_sscp_base16", &sscp_base(16), 4 + 6 * 4 + 1);
}

fn reference_rows() -> Vec<Row> {
    complexity::reference_rows()
        .into_iter()
        .filter(|r| ["dcase25_baseline", "sscp_mobile"].contains(&r.model.as_str()))
        .collect()
}

/// The ModelSpec of a complexity.tsv row.
fn spec_of(row: &Row) -> ModelSpec {
    let mut spec = ModelSpec::new(&row.model);
    match (row.model.as_str(), row.variant.as_str()) {
        ("dcase25_baseline", v) if v.contains("base 32") => spec.width = Some(32),
        ("sscp_mobile", v) if v.starts_with("pruned 64->32") => {
            spec.widths = Some(sscp_mobile::S1_WIDTHS.to_vec())
        }
        ("sscp_mobile", v) if v.starts_with("pruned 96->64->32") => {
            spec.widths = Some(sscp_mobile::S3_WIDTHS.to_vec())
        }
        (m, v) => panic!("unknown {m} row `{v}`"),
    }
    spec
}

/// `ascrepro complexity ARCH [--width C | --widths a,b,...] --input CxFxT --json` -> (params, macs).
fn cli_count(spec: &ModelSpec, input: [i64; 3]) -> (u64, u64) {
    let mut args = vec![spec.arch.clone()];
    if let Some(w) = spec.width {
        args.extend(["--width".to_string(), w.to_string()]);
    }
    if let Some(w) = &spec.widths {
        let list = w.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        args.extend(["--widths".to_string(), list]);
    }
    let shape = input_arg(input);
    args.extend(["--input".to_string(), shape]);
    complexity::cli_count(&args)
}

#[test]
fn complexity_matches_every_reference_row_in_library_and_cli() {
    tch::set_num_threads(1);
    let rows = reference_rows();
    assert_eq!(
        rows.len(),
        3,
        "one dcase25_baseline and two sscp_mobile rows"
    );
    for row in &rows {
        let spec = spec_of(row);
        let cfg = ModelConfig::from_spec(&spec).unwrap();
        let c = count(&cfg, row.input, &CountOptions::default()).unwrap();
        let expected = (row.params, row.macs);
        assert_eq!(
            (c.params, c.macs),
            expected,
            "{} {}",
            row.model,
            row.variant
        );
        assert_eq!(
            cli_count(&spec, row.input),
            expected,
            "CLI, {} {}",
            row.model,
            row.variant
        );

        // Params agree with the VarStore; every counted layer with params is a VarStore path.
        assert_params_are_varstore(&cfg, &c, &row.variant);
    }
    // The baseline is the default width of dcase25_baseline.
    assert_eq!(
        cli_count(&ModelSpec::new("dcase25_baseline"), [1, 256, 65]),
        (61_148, 29_419_156)
    );
}

#[test]
fn baseline_layers_match_its_published_layer_table() {
    // Rows of the baseline's documentation (module, params, MACs), conv and BatchNorm summed.
    let table: [(&str, u64, u64); 5] = [
        ("in_c.0", 88, 304_144),
        ("in_c.1", 2_368, 2_506_816),
        ("stages.s1.b3.block.1", 704, 331_904),
        ("stages.s2.b5.block.0", 6_960, 1_935_600),
        ("stages.s3.b6.block.2", 12_688, 3_594_448),
    ];
    let c = count(&baseline(), [1, 256, 65], &CountOptions::default()).unwrap();
    for (module, params, macs) in table {
        let rows: Vec<_> = c
            .layers
            .iter()
            .filter(|l| l.name.starts_with(&format!("{module}.")))
            .collect();
        assert_eq!(rows.len(), 2, "{module}: conv and BatchNorm");
        let sum = |f: fn(&&ascrepro_results::record::LayerComplexity) -> u64| {
            rows.iter().map(f).sum::<u64>()
        };
        assert_eq!(
            (sum(|l| l.params), sum(|l| l.macs)),
            (params, macs),
            "{module}"
        );
    }
    let dw = c
        .layers
        .iter()
        .find(|l| l.name == "stages.s1.b3.block.1.0")
        .unwrap();
    assert_eq!(
        (dw.input.clone(), dw.output.clone()),
        (vec![64, 64, 17], vec![64, 64, 9])
    );
}

/// Name -> shape of Zhang et al.'s released checkpoint: `model.` removed, counters and the
/// front end's `mel.*` tensors dropped.
fn released_keys() -> BTreeMap<String, Vec<i64>> {
    complexity::released_keys(
        "zhang2025_c64_unpruned_distilled_1_ckpt.keys.tsv",
        "model.",
        |name| name.starts_with("mel."),
    )
}

#[test]
fn sscp_variable_names_and_shapes_equal_the_released_checkpoint() {
    // The ModelSpec a recipe gives for the released c64_unpruned_distilled_1.ckpt.
    let mut spec = ModelSpec::new("sscp_mobile");
    spec.widths = Some(vec![
        8, 32, 72, 32, 72, 32, 72, 32, 72, 56, 124, 56, 124, 104,
    ]);
    let cfg = ModelConfig::from_spec(&spec).unwrap();
    assert_eq!(cfg, sscp(&sscp_mobile::S1_WIDTHS));
    let ours = var_shapes(&cfg);
    let released = released_keys();
    assert_eq!(released.len(), 145, "29 BatchNorms x 4 + 29 conv weights");
    for (name, shape) in &released {
        assert_eq!(ours.get(name), Some(shape), "released `{name}`");
    }
    assert_eq!(ours, released);
}

#[test]
fn reference_names_of_the_baseline_and_cp_mobile() {
    let b = var_shapes(&baseline());
    assert_eq!(b["in_c.0.0.weight"], vec![8, 1, 3, 3]);
    assert_eq!(b["stages.s1.b1.block.1.0.weight"], vec![64, 1, 3, 3]);
    assert_eq!(b["stages.s2.b4.block.2.1.running_var"], vec![56]);
    assert_eq!(b["feed_forward.0.weight"], vec![10, 104, 1, 1]);
    assert_eq!(
        b.len(),
        21 * 4 + 21,
        "4 tensors per BatchNorm, one weight per conv"
    );
    let m = var_shapes(&cp_mobile(32));
    assert_eq!(m["stages.s2.b5.block.0.0.weight"], vec![216, 72, 1, 1]);
    assert_eq!(m["stages.s3.b6.after_block_norm.gamma"], vec![1]);
    assert_eq!(m["feed_forward.1.weight"], vec![10]);
    assert_eq!(m.len(), 21 * 4 + 21 + 6 * 2);
}

#[test]
fn residual_adds_where_a_block_keeps_its_width() {
    let vs = nn::VarStore::new(Device::Cpu);
    let vb = Vb::constant(&vs.root());
    let net = dcase25_baseline::Config::baseline().build(&vb);
    let with: Vec<bool> = net.blocks().iter().map(|b| b.has_shortcut()).collect();
    assert_eq!(with, [true, true, true, false, true, false]);
    let strides: Vec<[i64; 2]> = net.plan.blocks.iter().map(|b| b.stride).collect();
    assert_eq!(strides, [[1, 1], [1, 1], [1, 2], [2, 1], [1, 1], [1, 1]]);
    // cp_mobile at base 32: stage widths 32, 72, 168, expansion 3.
    let plan = cp_mobile::FAMILY.plan(&Channels::Base(32));
    let widths: Vec<(i64, i64)> = plan.blocks.iter().map(|b| (b.exp_ch, b.out_ch)).collect();
    assert_eq!(
        widths,
        [
            (96, 32),
            (96, 32),
            (96, 32),
            (96, 72),
            (216, 72),
            (216, 168)
        ]
    );
    assert_eq!(make_divisible(32.0 * 2.3, 8), 72);
    // Explicit widths: a block whose output width differs from its input has no residual add.
    let mut w = sscp_mobile::S1_WIDTHS;
    w[3] = 24;
    let net = sscp_mobile::Config::pruned(&w).build(&vb.sub("other"));
    let with: Vec<bool> = net.blocks().iter().map(|b| b.has_shortcut()).collect();
    assert_eq!(with, [false, false, true, false, true, false]);
}

/// Gives every BatchNorm and GRN non-trivial values so eval paths and folding are exercised.
fn perturb(vs: &nn::VarStore) {
    perturb_with(vs, |name, _, vars| {
        let bn = |suffix: &str| {
            name.strip_suffix(suffix)
                .is_some_and(|p| vars.contains_key(&format!("{p}running_mean")))
        };
        // GRN's gamma stays small: each GRN scales its block's output by about 1 + gamma.
        if name.ends_with("running_var") || bn("weight") {
            Perturb::AroundOne
        } else if name.ends_with("running_mean")
            || bn("bias")
            || name.ends_with("gamma")
            || name.ends_with("beta")
        {
            Perturb::AroundZero
        } else {
            Perturb::Keep
        }
    });
}

#[test]
fn folding_batchnorm_keeps_eval_outputs() {
    tch::set_num_threads(1);
    tch::manual_seed(3);
    for (cfg, batchnorms) in [
        (baseline(), 21),
        (cp_mobile(16), 21),
        (sscp(&sscp_mobile::S1_WIDTHS), 29),
    ] {
        let vs = nn::VarStore::new(Device::Cpu);
        let mut net: Box<dyn Net> = build_net(&Vb::new(&vs.root()), &cfg).unwrap();
        perturb(&vs);
        let xs = Tensor::randn([2, 1, 256, 65], (Kind::Float, Device::Cpu));
        let (folded, d, _) = fold_and_compare(net.as_mut(), &xs);
        assert_eq!(folded, batchnorms, "{}", cfg.describe());
        assert!(
            d < 1e-5,
            "{}: folding changed eval outputs by {d}",
            cfg.describe()
        );
        // Folded counts: every BatchNorm's 2C params go, each conv gains a C bias.
        let (p, _) = counted(&cfg, false);
        let (pf, _) = counted(&cfg, true);
        let bn_channels: u64 = vs
            .variables()
            .iter()
            .filter(|(n, _)| n.ends_with("running_mean"))
            .map(|(_, t)| t.numel() as u64)
            .sum();
        assert_eq!(pf, p - bn_channels, "{}", cfg.describe());
    }
}

#[test]
fn int8_quantization_refuses_the_cp_mobile_family() {
    tch::set_num_threads(1);
    // SSCP-Mobile deploys at fp16 (Zhang et al.): it has no INT8 engine lowering, and
    // quantizing it says so.
    let cfg = sscp(&sscp_mobile::S1_WIDTHS);
    let vs = nn::VarStore::new(Device::Cpu);
    let _model = build_net(&Vb::new(&vs.root()), &cfg).unwrap();
    let calibration = vec![Tensor::randn([2, 1, 256, 65], (Kind::Float, Device::Cpu))];
    let err = quantize_int8(&vs, &cfg, &calibration, &PtqConfig::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("no operator-graph lowering"), "{err}");
}

#[test]
fn options_configs_and_errors() {
    let mut spec = ModelSpec::new("dcase25_baseline");
    assert_eq!(ModelConfig::from_spec(&spec).unwrap(), baseline());
    assert_eq!(baseline().describe(), "dcase25_baseline width=32");
    spec.depth = Some(17);
    assert_eq!(ModelConfig::from_spec(&spec).unwrap_err().0, "depth");

    let mut spec = ModelSpec::new("cp_mobile");
    spec.norm = Some("resnorm".into());
    assert_eq!(ModelConfig::from_spec(&spec).unwrap_err().0, "norm");

    let mut spec = ModelSpec::new("sscp_mobile");
    let (field, msg) = ModelConfig::from_spec(&spec).unwrap_err();
    assert!(field == "width" && msg.contains("widths"), "{msg}");
    spec.width = Some(64);
    spec.widths = Some(sscp_mobile::S1_WIDTHS.to_vec());
    assert_eq!(ModelConfig::from_spec(&spec).unwrap_err().0, "widths");
    spec.width = None;
    spec.widths = Some(vec![8, 32, 72]);
    let (field, msg) = ModelConfig::from_spec(&spec).unwrap_err();
    assert!(field == "widths" && msg.contains("14"), "{msg}");
    let mut w = sscp_mobile::S1_WIDTHS.to_vec();
    w[5] = 0;
    spec.widths = Some(w);
    let (field, msg) = ModelConfig::from_spec(&spec).unwrap_err();
    assert!(field == "widths" && msg.contains("#6"), "{msg}");
    spec.widths = None;
    spec.width = Some(-3);
    assert_eq!(ModelConfig::from_spec(&spec).unwrap_err().0, "width");

    // Serde: the tag is the module name; the weights-file JSON round-trips.
    for cfg in [baseline(), cp_mobile(24), sscp(&sscp_mobile::S3_WIDTHS)] {
        let json = serde_json::to_string(&cfg).unwrap();
        assert!(
            json.contains(&format!("\"arch\":\"{}\"", cfg.arch())),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<ModelConfig>(&json).unwrap(), cfg);
    }
    assert_eq!(
        sscp(&sscp_mobile::S1_WIDTHS).describe(),
        "sscp_mobile widths=8,32,72,32,72,32,72,32,72,56,124,56,124,104"
    );
    assert!(serde_json::from_str::<ModelConfig>(
        r#"{"arch":"cp_mobile","channels":{"base":32},"depth":3}"#
    )
    .is_err());
    // A bad configuration from a weights file is an error, not a panic.
    let bad: ModelConfig =
        serde_json::from_str(r#"{"arch":"sscp_mobile","channels":{"explicit":[1,2]}}"#).unwrap();
    assert!(bad.validate().is_err());
    let vs = nn::VarStore::new(Device::Cpu);
    assert!(build_net(&Vb::constant(&vs.root()), &bad).is_err());
}
