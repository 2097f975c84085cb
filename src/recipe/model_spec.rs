//! Recipe model entries → typed model configurations.

use super::ModelSpec;
use crate::models::blocks::NormKind;
use crate::models::{tfsepnet23, ModelConfig};

/// Architectures the reports describe. Those without a builder yet may appear in a recipe (their
/// published rows are then shown as not counted) but cannot be trained.
pub const KNOWN_ARCHS: [&str; 8] = [
    "tfsepnet23",
    "tfsepnet64",
    "bcresnet",
    "dcase25_baseline",
    "cp_mobile",
    "sscp_mobile",
    "dsflexinet",
    "beats",
];

/// A problem with one field of a model entry (`None`: the entry as a whole).
pub type FieldError = (Option<&'static str>, String);

/// Checks a model entry without requiring its architecture to be buildable.
pub fn check(m: &ModelSpec) -> Result<(), FieldError> {
    if !KNOWN_ARCHS.contains(&m.arch.as_str()) {
        return Err((
            Some("arch"),
            format!(
                "unknown architecture `{}` (known: {})",
                m.arch,
                KNOWN_ARCHS.join(", ")
            ),
        ));
    }
    match to_config(m) {
        Err((_, msg)) if msg.starts_with(NOT_BUILT) => Ok(()),
        other => other.map(|_| ()),
    }
}

const NOT_BUILT: &str = "no builder for architecture";

/// The typed configuration of a model entry.
pub fn to_config(m: &ModelSpec) -> Result<ModelConfig, FieldError> {
    match m.arch.as_str() {
        "tfsepnet23" => {
            let width = m
                .width
                .ok_or((Some("width"), "tfsepnet23 needs `width` (C)".to_string()))?;
            if width < 2 || width % 2 != 0 {
                return Err((
                    Some("width"),
                    format!("width must be an even number >= 2 (got {width})"),
                ));
            }
            let norm = norm_kind(m)?;
            let dropout = m.dropout.unwrap_or(0.0);
            if !(0.0..1.0).contains(&dropout) {
                return Err((
                    Some("dropout"),
                    format!("dropout must be in [0, 1) (got {dropout})"),
                ));
            }
            if let Some(g) = m.shuffle_groups {
                // Every block width (C, 1.5C, 2C, 2.5C, rounded) must split into `g` groups.
                let widths =
                    [1.0, 1.5, 2.0, 2.5].map(|k: f64| (k * width as f64).round_ties_even() as i64);
                if g < 1 || widths.iter().any(|w| w % g != 0) {
                    return Err((
                        Some("shuffle_groups"),
                        format!("{g} shuffle groups do not divide the block widths {widths:?}"),
                    ));
                }
            }
            Ok(ModelConfig::Tfsepnet23(tfsepnet23::Config {
                width,
                norm,
                dropout,
                shuffle_groups: m.shuffle_groups,
                num_classes: 10,
            }))
        }
        other => Err((
            None,
            format!("{NOT_BUILT} `{other}` in this version of ascrepro"),
        )),
    }
}

fn norm_kind(m: &ModelSpec) -> Result<NormKind, FieldError> {
    match m.norm.as_deref() {
        Some("adaresnorm") => {
            if m.resnorm_lambda.is_some() {
                return Err((
                    Some("resnorm_lambda"),
                    "AdaResNorm learns its own balance; remove `resnorm_lambda`".into(),
                ));
            }
            Ok(NormKind::AdaResNorm)
        }
        Some("resnorm") => Ok(NormKind::ResNorm {
            lambda: m.resnorm_lambda.ok_or((
                Some("resnorm_lambda"),
                "resnorm needs `resnorm_lambda`".to_string(),
            ))?,
        }),
        Some(other) => Err((
            Some("norm"),
            format!("unknown norm `{other}` (use `resnorm` or `adaresnorm`)"),
        )),
        None => Err((
            Some("norm"),
            "needs `norm` (`resnorm` or `adaresnorm`)".into(),
        )),
    }
}
