//! Complexity counts against `../shared/reference/complexity.tsv` (torchinfo convention).

use ascrepro::compress::complexity::{count, CountOptions};
use ascrepro::models::blocks::NormKind;
use ascrepro::models::{tfsepnet23, ModelConfig};

mod common;
use common::complexity::{self, assert_params_are_varstore, folding, input_arg, Row};

/// The `exact` rows of `model_id`.
fn reference_rows(model_id: &str) -> Vec<Row> {
    complexity::reference_rows()
        .into_iter()
        .filter(|r| r.model == model_id && r.status == "exact")
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
        assert_params_are_varstore(&cfg, &c, variant);
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
    // Each folded conv gains a bias: one param per channel and one MAC per output element.
    let f = folding(&cfg, [1, 128, 44]);
    assert!(f.folded.layers.iter().all(|l| l.kind != "BatchNorm2d"));
    assert_eq!(f.folded.params, f.plain.params - f.bn_channels);
    assert_eq!(f.folded.macs, f.plain.macs - f.bn_macs + f.bias_macs);
}

#[test]
fn too_small_input_is_an_error_not_a_panic() {
    tch::set_num_threads(1);
    let cfg = tfsepnet23_config("C=12, AdaResNorm");
    assert!(count(&cfg, [1, 4, 4], &CountOptions::default()).is_err());
    assert!(count(&cfg, [1, 0, 44], &CountOptions::default()).is_err());
}

/// The command a reviewer types for each row of complexity.tsv: (model id, variant) -> options.
fn reviewer_options(model: &str, variant: &str) -> Vec<String> {
    let widths = |w: [i64; 14]| {
        let list: Vec<String> = w.iter().map(|x| x.to_string()).collect();
        vec!["--widths".to_string(), list.join(",")]
    };
    match (model, variant) {
        ("tfsepnet23", v) | ("bcresnet", v) => {
            let mut parts = v.split(',').map(str::trim);
            let width = parts.next().unwrap().strip_prefix("C=").unwrap();
            let norm = parts.next().unwrap().to_lowercase();
            vec!["--width".into(), width.into(), "--norm".into(), norm]
        }
        ("tfsepnet64", v) if v.starts_with("depth 17") => vec!["--depth".into(), "17".into()],
        ("tfsepnet64", "depth 16") => vec!["--depth".into(), "16".into()],
        ("dcase25_baseline", _) => vec![],
        ("sscp_mobile", v) if v.starts_with("pruned 64->32") => {
            widths(ascrepro::models::sscp_mobile::S1_WIDTHS)
        }
        ("sscp_mobile", v) if v.starts_with("pruned 96->64->32") => {
            widths(ascrepro::models::sscp_mobile::S3_WIDTHS)
        }
        // The released graph (RepConv branches merged) and the training-time one.
        ("dsflexinet", v) if v.starts_with("re-parameterised") => vec!["--reparam".into()],
        ("dsflexinet", v) if v.starts_with("training-time") => vec![],
        other => panic!("complexity.tsv row {other:?} has no reviewer command in this test"),
    }
}

fn cli_count(model: &str, options: &[String], input: &str) -> (u64, u64) {
    let mut args = vec![model.to_string(), "--input".into(), input.to_string()];
    args.extend_from_slice(options);
    complexity::cli_count(&args)
}

/// Every row: `exact` ones exactly, `published` ones to their printed precision (K params with
/// two decimals, M MACs with two decimals, as Table 3 prints them) or exactly when printed whole.
#[test]
fn every_complexity_tsv_row_through_the_cli() {
    let mut checked = 0;
    for row in complexity::reference_rows() {
        let (model, variant) = (row.model.as_str(), row.variant.as_str());
        let (params, macs) = (row.params, row.macs);
        let input = input_arg(row.input);
        let (p, m) = cli_count(model, &reviewer_options(model, variant), &input);
        let rounded = |x: u64, unit: f64| ((x as f64 / unit) * 100.0).round() as u64;
        match row.status.as_str() {
            "exact" => assert_eq!((p, m), (params, macs), "{model} {variant}"),
            "published" if params % 10 == 0 && macs % 10_000 == 0 => {
                assert_eq!(
                    rounded(p, 1e3),
                    rounded(params, 1e3),
                    "{model} {variant} params"
                );
                assert_eq!(
                    rounded(m, 1e6),
                    rounded(macs, 1e6),
                    "{model} {variant} MACs"
                );
            }
            "published" => assert_eq!((p, m), (params, macs), "{model} {variant}"),
            other => panic!("unknown status {other}"),
        }
        checked += 1;
    }
    assert_eq!(checked, 14, "every row of complexity.tsv");
    // The folded figure written under the table.
    let folded = cli_count(
        "tfsepnet64",
        &["--depth".into(), "17".into(), "--fold-bn".into()],
        "1x512x64",
    );
    assert_eq!(folded.0, 124_138);
}
