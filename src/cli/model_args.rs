//! The model options `complexity` and `predict` share: they become a [`ModelSpec`], the same
//! entry a recipe's `models:` section holds.

use crate::error::{Error, Result};
use crate::models::{ModelConfig, ModelSpec};
use clap::Args;

#[derive(Args, Debug, Clone, Default)]
pub struct ModelArgs {
    /// The width hyper-parameter (C, or the base channel count).
    #[arg(long)]
    pub width: Option<i64>,
    /// Depth variant (tfsepnet64: 16 or 17).
    #[arg(long)]
    pub depth: Option<i64>,
    /// Explicit channel widths, comma-separated (e.g. pruned widths of sscp_mobile).
    #[arg(long, value_delimiter = ',')]
    pub widths: Option<Vec<i64>>,
    /// resnorm or adaresnorm.
    #[arg(long)]
    pub norm: Option<String>,
    /// ResNorm's lambda (with --norm resnorm).
    #[arg(long)]
    pub resnorm_lambda: Option<f64>,
}

impl ModelArgs {
    /// The options given, by flag name.
    pub fn given(&self) -> Vec<&'static str> {
        [
            ("--width", self.width.is_some()),
            ("--depth", self.depth.is_some()),
            ("--widths", self.widths.is_some()),
            ("--norm", self.norm.is_some()),
            ("--resnorm-lambda", self.resnorm_lambda.is_some()),
        ]
        .into_iter()
        .filter_map(|(flag, set)| set.then_some(flag))
        .collect()
    }

    pub fn spec(&self, arch: &str) -> ModelSpec {
        ModelSpec {
            arch: arch.to_string(),
            width: self.width,
            depth: self.depth,
            widths: self.widths.clone(),
            norm: self.norm.clone(),
            resnorm_lambda: self.resnorm_lambda,
            ..Default::default()
        }
    }
}

/// [`ModelConfig::from_spec`] with the failing field named as its flag.
pub fn config(spec: &ModelSpec) -> Result<ModelConfig> {
    ModelConfig::from_spec(spec)
        .map_err(|(field, msg)| Error::msg(format!("--{}: {msg}", field.replace('_', "-"))))
}
