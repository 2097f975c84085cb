//! The DCASE2025 task 1 baseline: a simplified CP-Mobile (the organisers' baseline system).
//!
//! Base width C = 32; stage widths C, 1.8C, 1.8^2 C rounded to multiples of 8 (32, 56, 104);
//! expansion rate 2.1; blocks b3 strided (1, 2) and b4 (2, 1); no GRN. At 1x256x65 (tamel-256)
//! it has 61,148 parameters and 29,419,156 MACs, as the baseline's layer table states.
//! Variable names are the baseline's state-dict names (`in_c.0.0.weight`,
//! `stages.s1.b1.block.1.1.running_var`, `feed_forward.0.weight`, ...); see [`super::cp_blocks`].

use super::cp_blocks::{family_config, Channels, DepthwiseKind, Family};

pub const FAMILY: Family = Family {
    arch: "dcase25_baseline",
    channels_multiplier: 1.8,
    expansion_rate: 2.1,
    strides: &[(3, [1, 2]), (4, [2, 1])],
    depthwise: DepthwiseKind::Square,
    grn: false,
};

/// The baseline's base width.
pub const BASE_WIDTH: i64 = 32;

// `width` (base channels, default 32) or `widths` (explicit per-block widths).
family_config!(FAMILY, Some(BASE_WIDTH));

impl Config {
    /// The baseline as published: base width 32, 10 classes.
    pub fn baseline() -> Self {
        Config {
            channels: Channels::Base(BASE_WIDTH),
            num_classes: 10,
        }
    }
}
