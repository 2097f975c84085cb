//! TF-SepNet-64: PyTorch parity (both depths), exact complexity against
//! `../shared/reference/complexity.tsv` (library and CLI), variable names against the released
//! checkpoint of Zhou et al. (DCASE2025), BatchNorm folding.

use ascrepro::compress::complexity::{count, CountOptions};
use ascrepro::models::blocks::{Ctx, Vb};
use ascrepro::models::{build_net, tfsepnet64, ModelConfig, ModelSpec, Net};
use std::collections::BTreeMap;
use std::path::PathBuf;
use tch::{nn, Device, Tensor};

mod common;
use common::complexity::{self, input_arg, reference_rows, tsv_text, var_shapes, Row};
use common::parity::{self, Reference};
use common::{fold_and_compare, max_abs_diff};

/// The reports' network at `depth`, without dropout (train-mode logits must be comparable).
fn config(depth: i64) -> ModelConfig {
    ModelConfig::Tfsepnet64(tfsepnet64::Config {
        depth,
        dropout: 0.0,
        ..tfsepnet64::Config::default()
    })
}

/// Runs tests/python/tfsepnet64.py: random (perturbed) weights, an input, PyTorch's eval and
/// train-mode logits and running statistics after the train step.
fn pytorch_reference(tag: &str, depth: i64) -> (PathBuf, Reference) {
    parity::run_script("tfsepnet64.py", tag, &["64".into(), depth.to_string()])
}

/// Our network with every variable copied by name from the PyTorch state dict in `file`.
fn net_from(file: &Reference, cfg: &ModelConfig) -> (nn::VarStore, Box<dyn Net>) {
    let vs = nn::VarStore::new(Device::Cpu);
    let net = build_net(&Vb::constant(&vs.root()), cfg).unwrap();
    parity::load_by_name(&vs, file, "");
    (vs, net)
}

fn parity(depth: i64) {
    tch::set_num_threads(1);
    let (dir, file) = pytorch_reference(&format!("tfsepnet64_parity_{depth}"), depth);
    let (vs, net) = net_from(&file, &config(depth));
    let what = format!("depth {depth}: ");
    let forward = |x: &Tensor, train| tch::no_grad(|| net.forward_ctx(x, &Ctx::new(train)));
    let d = parity::assert_matches(&vs, &file, forward, &what);
    assert_eq!(d.stats, 2 * 42, "two running statistics per BatchNorm");
    println!(
        "depth {depth}: max |ours - PyTorch|: eval logits {:.1e}, train logits {:.1e}, \
         running stats {:.1e}",
        d.eval, d.train, d.stats_max
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn pytorch_parity_depth17() {
    parity(17);
}

#[test]
fn pytorch_parity_depth16() {
    parity(16);
}

#[test]
fn folding_batchnorm_keeps_eval_outputs() {
    tch::set_num_threads(1);
    let (dir, file) = pytorch_reference("tfsepnet64_fold", 17);
    let (vs, mut net) = net_from(&file, &config(17));
    let (folded, d, after) = fold_and_compare(net.as_mut(), &file["x"]);
    assert_eq!(
        folded,
        2 + 9 * 4 + 4,
        "stem units, four per block, four transitions"
    );
    println!("folding every BatchNorm changed eval logits by at most {d:.1e}");
    assert!(d < 1e-5, "folding changed eval logits by {d}");
    let d = max_abs_diff(&after, &file["eval_logits"]);
    assert!(d < 1e-4, "folded logits differ from PyTorch by {d}");
    assert!(
        vs.variables().contains_key("conv_layers.0._bn.weight"),
        "folding leaves the VarStore alone"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// The `exact` tfsepnet64 rows of complexity.tsv.
fn exact_rows() -> Vec<Row> {
    reference_rows()
        .into_iter()
        .filter(|r| r.model == "tfsepnet64" && r.status == "exact")
        .collect()
}

/// "depth 17 (extra max-pool ...)" -> 17.
fn depth_of(variant: &str) -> i64 {
    variant
        .strip_prefix("depth ")
        .and_then(|r| r.split_whitespace().next())
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("variant without a depth: {variant}"))
}

/// The params the `# Folding:` comment of complexity.tsv states for the folded network.
fn folded_params() -> u64 {
    let text = tsv_text();
    let line = text
        .lines()
        .find(|l| l.starts_with("# Folding:") && l.contains("tfsepnet64"))
        .expect("complexity.tsv states the folded tfsepnet64 count");
    let rest = &line[line.find("leaves exactly ").expect(line) + "leaves exactly ".len()..];
    rest.split_whitespace().next().unwrap().parse().unwrap()
}

/// `ascrepro complexity tfsepnet64 --depth D --input CxFxT [--fold-bn] --json` -> (params, macs).
fn cli_count(depth: i64, input: [i64; 3], fold: bool) -> (u64, u64) {
    let mut args = vec![
        "tfsepnet64".to_string(),
        "--depth".into(),
        depth.to_string(),
    ];
    args.extend(["--input".into(), input_arg(input)]);
    if fold {
        args.push("--fold-bn".into());
    }
    complexity::cli_count(&args)
}

#[test]
fn complexity_matches_every_exact_reference_row_in_library_and_cli() {
    tch::set_num_threads(1);
    let rows = exact_rows();
    let depths: Vec<i64> = rows.iter().map(|r| depth_of(&r.variant)).collect();
    assert!(
        depths.contains(&16) && depths.contains(&17),
        "expected rows for depths 16 and 17, found {depths:?}"
    );
    for (row, &depth) in rows.iter().zip(&depths) {
        let cfg = config(depth);
        let c = count(&cfg, row.input, &CountOptions::default()).unwrap();
        assert_eq!(
            (c.params, c.macs),
            (row.params, row.macs),
            "{}",
            row.variant
        );
        assert_eq!(
            cli_count(depth, row.input, false),
            (row.params, row.macs),
            "CLI, {}",
            row.variant
        );
    }
    let folded = folded_params();
    let c = count(
        &config(17),
        [1, 512, 64],
        &CountOptions {
            fold_bn: true,
            reparam: false,
        },
    )
    .unwrap();
    assert_eq!(c.params, folded, "params after folding every BatchNorm");
    assert_eq!(cli_count(17, [1, 512, 64], true).0, folded, "CLI --fold-bn");
}

/// Name -> shape of `zhou2025_device_a_ckpt.keys.tsv`, `backbone.` removed, counters dropped.
fn released_keys() -> BTreeMap<String, Vec<i64>> {
    complexity::released_keys("zhou2025_device_a_ckpt.keys.tsv", "backbone.", |_| false)
}

#[test]
fn variable_names_and_shapes_equal_the_released_checkpoint() {
    // The ModelSpec a recipe gives for Zhou et al.'s released device models.
    let mut spec = ModelSpec::new("tfsepnet64");
    spec.width = Some(64);
    spec.depth = Some(17);
    let cfg = ModelConfig::from_spec(&spec).unwrap();
    let ours = var_shapes(&cfg);
    let released = released_keys();
    assert_eq!(released.len(), 212, "254 tensors minus 42 counters");
    for (name, shape) in &released {
        assert_eq!(ours.get(name), Some(shape), "released `{name}`");
    }
    assert_eq!(ours, released);
}

#[test]
fn options_and_bad_configs() {
    let mut spec = ModelSpec::new("tfsepnet64");
    assert_eq!(
        ModelConfig::from_spec(&spec).unwrap().describe(),
        "tfsepnet64 C=64 depth 17"
    );
    spec.norm = Some("resnorm".into());
    let (field, msg) = ModelConfig::from_spec(&spec).unwrap_err();
    assert_eq!(field, "norm", "{msg}");
    spec.norm = None;
    spec.depth = Some(15);
    assert_eq!(ModelConfig::from_spec(&spec).unwrap_err().0, "depth");
    spec.depth = None;
    spec.width = Some(30);
    assert_eq!(ModelConfig::from_spec(&spec).unwrap_err().0, "width");
    spec.width = Some(32);
    spec.dropout = Some(1.5);
    assert_eq!(ModelConfig::from_spec(&spec).unwrap_err().0, "dropout");
    // A configuration survives a round trip through the JSON in weight files.
    let cfg = config(16);
    let json = serde_json::to_string(&cfg).unwrap();
    assert!(json.contains("\"arch\":\"tfsepnet64\""), "{json}");
    assert_eq!(serde_json::from_str::<ModelConfig>(&json).unwrap(), cfg);
    // A narrow network runs on a small input and gives one logit per class.
    tch::set_num_threads(1);
    let vs = nn::VarStore::new(Device::Cpu);
    let small = ModelConfig::Tfsepnet64(tfsepnet64::Config {
        width: 8,
        ..tfsepnet64::Config::default()
    });
    let net = build_net(&Vb::new(&vs.root()), &small).unwrap();
    let x = Tensor::randn([2, 1, 64, 32], (tch::Kind::Float, Device::Cpu));
    for train in [false, true] {
        assert_eq!(net.forward_ctx(&x, &Ctx::new(train)).size(), [2, 10]);
    }
}
