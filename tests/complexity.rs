//! Complexity counts against `../shared/reference/complexity.tsv` (torchinfo convention).

use ascrepro::compress::complexity::{count, CountOptions};
use ascrepro::models::blocks::NormKind;
use ascrepro::models::{build, tfsepnet23, ModelConfig};
use std::path::PathBuf;

struct Row {
    variant: String,
    input: [i64; 3],
    params: u64,
    macs: u64,
}

fn reference_rows(model_id: &str) -> Vec<Row> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/reference/complexity.tsv");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            assert!(cols.len() >= 6, "short row in {}: {l}", path.display());
            if cols[0] != model_id || cols[5] != "exact" {
                return None;
            }
            let dims: Vec<i64> = cols[2].split('x').map(|d| d.parse().unwrap()).collect();
            Some(Row {
                variant: cols[1].to_string(),
                input: [dims[0], dims[1], dims[2]],
                params: cols[3].parse().unwrap(),
                macs: cols[4].parse().unwrap(),
            })
        })
        .collect()
}

/// "C=12, AdaResNorm" -> config.
fn tfsepnet23_config(variant: &str) -> ModelConfig {
    let mut parts = variant.split(',').map(str::trim);
    let width: i64 = parts
        .next()
        .and_then(|p| p.strip_prefix("C="))
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("variant without C=: {variant}"));
    let norm = match parts.next() {
        Some("AdaResNorm") => NormKind::AdaResNorm,
        Some("ResNorm") => NormKind::ResNorm { lambda: 0.1 },
        other => panic!("unknown norm {other:?} in {variant}"),
    };
    ModelConfig::Tfsepnet23(tfsepnet23::Config::new(width, norm))
}

#[test]
fn tfsepnet23_matches_every_exact_reference_row() {
    tch::set_num_threads(1);
    let rows = reference_rows("tfsepnet23");
    assert!(
        rows.len() >= 6,
        "expected the six tfsepnet23 rows, found {}",
        rows.len()
    );
    for row in &rows {
        let cfg = tfsepnet23_config(&row.variant);
        let c = count(&cfg, row.input, &CountOptions::default()).unwrap();
        assert_eq!(
            (c.params, c.macs),
            (row.params, row.macs),
            "{} at {:?}",
            row.variant,
            row.input
        );
        assert_eq!(c.params, c.layers.iter().map(|l| l.params).sum::<u64>());
    }
}

#[test]
fn tfsepnet23_c160_macs() {
    tch::set_num_threads(1);
    let cfg = tfsepnet23_config("C=160, AdaResNorm");
    let c = count(&cfg, [1, 128, 44], &CountOptions::default()).unwrap();
    assert_eq!(c.macs, 121_822_560);
    assert_eq!(c.params, 757_050);
}

#[test]
fn params_agree_with_the_varstore_and_names_are_varstore_paths() {
    tch::set_num_threads(1);
    for variant in ["C=12, AdaResNorm", "C=40, ResNorm"] {
        let cfg = tfsepnet23_config(variant);
        let c = count(&cfg, [1, 128, 44], &CountOptions::default()).unwrap();
        let vs = tch::nn::VarStore::new(tch::Device::Cpu);
        let _model = build(&vs.root(), &cfg).unwrap();
        let trainable: i64 = vs
            .trainable_variables()
            .iter()
            .map(|t| t.numel() as i64)
            .sum();
        assert_eq!(c.params as i64, trainable, "{variant}");
        let vars = vs.variables();
        for layer in c.layers.iter().filter(|l| l.params > 0) {
            let has_var = vars
                .keys()
                .any(|k| k.starts_with(&format!("{}.", layer.name)));
            assert!(has_var, "layer `{}` is not a VarStore path", layer.name);
        }
        // Shapes chain: stem output 2C x 64 x 22, head output 10 x 16 x 5.
        let stem = c.layers.iter().find(|l| l.name == "stem.conv").unwrap();
        assert_eq!(stem.output[1..], [64, 22]);
        let head = c.layers.iter().find(|l| l.name == "head.conv").unwrap();
        assert_eq!(head.output, vec![10, 16, 5]);
    }
}

#[test]
fn folding_batchnorm_moves_params_into_conv_biases() {
    tch::set_num_threads(1);
    let cfg = tfsepnet23_config("C=12, AdaResNorm");
    let plain = count(&cfg, [1, 128, 44], &CountOptions::default()).unwrap();
    let folded = count(
        &cfg,
        [1, 128, 44],
        &CountOptions {
            fold_bn: true,
            ..Default::default()
        },
    )
    .unwrap();
    let bns: Vec<_> = plain
        .layers
        .iter()
        .filter(|l| l.kind == "BatchNorm2d")
        .collect();
    let bn_channels: u64 = bns.iter().map(|l| l.params / 2).sum();
    let bn_macs: u64 = bns.iter().map(|l| l.macs).sum();
    // Each folded conv gains a bias: one param per channel and one MAC per output element.
    let bias_macs: u64 = bns
        .iter()
        .map(|l| l.output.iter().map(|&d| d as u64).product::<u64>())
        .sum();
    assert!(folded.layers.iter().all(|l| l.kind != "BatchNorm2d"));
    assert_eq!(folded.params, plain.params - bn_channels);
    assert_eq!(folded.macs, plain.macs - bn_macs + bias_macs);
}

#[test]
fn too_small_input_is_an_error_not_a_panic() {
    tch::set_num_threads(1);
    let cfg = tfsepnet23_config("C=12, AdaResNorm");
    assert!(count(&cfg, [1, 4, 4], &CountOptions::default()).is_err());
    assert!(count(&cfg, [1, 0, 44], &CountOptions::default()).is_err());
}
