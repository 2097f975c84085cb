//! CP-Mobile (Schmid et al., CP-JKU's DCASE2023 task 1 submission), as in CP-JKU's released
//! `cp_mobile_clean.py`.
//!
//! Base width C (default 32, the released training script's); stage widths C, 2.3C, 2.3^2 C
//! rounded to multiples of 8 (32, 72, 168 at C = 32); expansion rate 3; blocks b2 strided (2, 2)
//! and b4 (2, 1); global response normalisation (scalar gamma and beta) between each block's
//! residual add and its ReLU. Variable names are the released code's state-dict names
//! (`in_c.0.0.weight`, `stages.s1.b1.block.0.1.weight`, `stages.s1.b1.after_block_norm.gamma`,
//! `feed_forward.1.bias`, ...); see [`super::cp_blocks`].

use super::cp_blocks::{family_config, DepthwiseKind, Family};

pub const FAMILY: Family = Family {
    arch: "cp_mobile",
    channels_multiplier: 2.3,
    expansion_rate: 3.0,
    strides: &[(2, [2, 2]), (4, [2, 1])],
    depthwise: DepthwiseKind::Square,
    grn: true,
};

/// Base width of the released training script.
pub const BASE_WIDTH: i64 = 32;

// `width` (base channels, default 32) or `widths` (explicit per-block widths).
family_config!(FAMILY, Some(BASE_WIDTH));
