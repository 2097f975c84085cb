//! A model as a recipe or the command line names it: an architecture and the options that apply
//! to it. Each architecture's config reads the options it uses ([`super::Architecture::from_spec`])
//! and refuses the ones it does not, so a misplaced option is an error, not a silent no-op.

use super::blocks::NormKind;
use serde::{Deserialize, Serialize};

/// A problem with one field of a model entry: (field name, message).
pub type FieldError = (&'static str, String);

/// Architecture plus options; which options apply depends on `arch`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub arch: String,
    /// The width hyper-parameter (C, or the base channel count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<i64>,
    /// Depth variant, e.g. 16 or 17 for tfsepnet64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth: Option<i64>,
    /// Explicit channel widths (per stage or per block, as the architecture documents), so
    /// pruned widths can be expressed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub widths: Option<Vec<i64>>,
    /// `resnorm` or `adaresnorm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub norm: Option<String>,
    /// ResNorm's identity weight lambda.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resnorm_lambda: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropout: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shuffle_groups: Option<i64>,
    /// Build the inference graph directly (RepConv branches already merged), e.g. to load
    /// weights saved after re-parameterisation, as released checkpoints are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reparameterized: Option<bool>,
}

impl ModelSpec {
    pub fn new(arch: &str) -> Self {
        ModelSpec {
            arch: arch.to_string(),
            ..Default::default()
        }
    }

    /// Names of the options that are set.
    fn set_fields(&self) -> Vec<&'static str> {
        let mut set = Vec::new();
        let mut mark = |name: &'static str, present: bool| {
            if present {
                set.push(name);
            }
        };
        mark("width", self.width.is_some());
        mark("depth", self.depth.is_some());
        mark("widths", self.widths.is_some());
        mark("norm", self.norm.is_some());
        mark("resnorm_lambda", self.resnorm_lambda.is_some());
        mark("dropout", self.dropout.is_some());
        mark("shuffle_groups", self.shuffle_groups.is_some());
        mark("reparameterized", self.reparameterized.is_some());
        set
    }

    /// Refuses any set option not in `allowed` (the options `self.arch` uses).
    pub fn only(&self, allowed: &[&str]) -> Result<(), FieldError> {
        match self.set_fields().into_iter().find(|f| !allowed.contains(f)) {
            None => Ok(()),
            Some(field) => Err((
                field,
                format!(
                    "`{field}` does not apply to {} (its options: {})",
                    self.arch,
                    if allowed.is_empty() {
                        "none".to_string()
                    } else {
                        allowed.join(", ")
                    }
                ),
            )),
        }
    }

    /// `dropout`, defaulting to 0, checked to lie in [0, 1).
    pub fn dropout_or_zero(&self) -> Result<f64, FieldError> {
        let p = self.dropout.unwrap_or(0.0);
        if (0.0..1.0).contains(&p) {
            Ok(p)
        } else {
            Err(("dropout", format!("dropout must be in [0, 1) (got {p})")))
        }
    }

    /// The residual normalisation named by `norm` (+ `resnorm_lambda`); `default` when unset.
    pub fn norm_kind(&self, default: Option<NormKind>) -> Result<NormKind, FieldError> {
        match self.norm.as_deref() {
            Some("adaresnorm") => {
                if self.resnorm_lambda.is_some() {
                    return Err((
                        "resnorm_lambda",
                        "AdaResNorm learns its own balance; remove `resnorm_lambda`".into(),
                    ));
                }
                Ok(NormKind::AdaResNorm)
            }
            Some("resnorm") => {
                let default_lambda = match default {
                    Some(NormKind::ResNorm { lambda }) => Some(lambda),
                    _ => None,
                };
                let lambda = self.resnorm_lambda.or(default_lambda).ok_or((
                    "resnorm_lambda",
                    "resnorm needs `resnorm_lambda`".to_string(),
                ))?;
                if !lambda.is_finite() {
                    return Err((
                        "resnorm_lambda",
                        format!("ResNorm lambda must be finite, got {lambda}"),
                    ));
                }
                Ok(NormKind::ResNorm { lambda })
            }
            Some(other) => Err((
                "norm",
                format!("unknown norm `{other}` (use `resnorm` or `adaresnorm`)"),
            )),
            None => {
                if self.resnorm_lambda.is_some() {
                    return Err((
                        "resnorm_lambda",
                        "`resnorm_lambda` needs `norm: resnorm`".into(),
                    ));
                }
                default.ok_or((
                    "norm",
                    "needs `norm` (`resnorm` or `adaresnorm`)".to_string(),
                ))
            }
        }
    }
}

/// Refuses a dropout probability outside [0, 1) (a config's `validate`).
pub fn check_dropout(dropout: f64) -> Result<(), FieldError> {
    if (0.0..1.0).contains(&dropout) {
        Ok(())
    } else {
        Err((
            "dropout",
            format!("dropout must be in [0, 1), got {dropout}"),
        ))
    }
}

/// Refuses a ResNorm whose lambda is not finite (a config's `validate`).
pub fn check_norm(norm: NormKind) -> Result<(), FieldError> {
    match norm {
        NormKind::ResNorm { lambda } if !lambda.is_finite() => Err((
            "resnorm_lambda",
            format!("ResNorm lambda must be finite, got {lambda}"),
        )),
        _ => Ok(()),
    }
}

/// Largest channel count of any layer's width hyper-parameter: far above the published models
/// (8 to 256 channels), small enough that building the network cannot exhaust memory.
pub const MAX_CHANNELS: i64 = 1024;

/// Largest class count: AudioSet's 527 with room to spare; a typo must not build a classifier of
/// billions of rows.
pub const MAX_CLASSES: i64 = 100_000;

/// Refuses a width above [`MAX_CHANNELS`] (a config's `validate`; each architecture checks its
/// own lower bound and divisibility).
pub fn check_max_width(field: &'static str, width: i64) -> Result<(), FieldError> {
    if width > MAX_CHANNELS {
        return Err((
            field,
            format!("{field} {width} is above the largest supported width, {MAX_CHANNELS}"),
        ));
    }
    Ok(())
}

/// Refuses a class count outside 1..=[`MAX_CLASSES`] (a config's `validate`).
pub fn check_num_classes(num_classes: i64) -> Result<(), FieldError> {
    if !(1..=MAX_CLASSES).contains(&num_classes) {
        return Err((
            "num_classes",
            format!("num_classes must be in 1..={MAX_CLASSES}, got {num_classes}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_the_first_option_that_does_not_apply() {
        let mut s = ModelSpec::new("x");
        s.width = Some(4);
        s.depth = Some(17);
        assert_eq!(s.only(&["width", "depth"]), Ok(()));
        let (field, msg) = s.only(&["width"]).unwrap_err();
        assert_eq!(field, "depth");
        assert!(msg.contains("does not apply to x"), "{msg}");
    }

    #[test]
    fn norm_kind_uses_the_default_lambda_and_refuses_a_lambda_for_adaresnorm() {
        let mut s = ModelSpec::new("x");
        let d = Some(NormKind::ResNorm { lambda: 0.1 });
        assert_eq!(s.norm_kind(d), Ok(NormKind::ResNorm { lambda: 0.1 }));
        s.norm = Some("resnorm".into());
        assert_eq!(s.norm_kind(d), Ok(NormKind::ResNorm { lambda: 0.1 }));
        assert!(s.norm_kind(None).is_err());
        s.norm = Some("adaresnorm".into());
        s.resnorm_lambda = Some(0.5);
        assert_eq!(s.norm_kind(None).unwrap_err().0, "resnorm_lambda");
    }
}
