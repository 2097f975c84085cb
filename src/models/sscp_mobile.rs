//! SSCP-Mobile (Zhang et al., DCASE2025 task 1): CP-Mobile with every 3x3 conv replaced by a
//! (3x1) and a (1x3) conv in parallel, summed, as in the authors' released `Network2`/`Block2`.
//!
//! The stem is `in_c` ((3x1) then (1x3), stride 2 each) plus `in_c2` ((1x3) then (3x1)); each
//! block's depthwise conv is `depth_conv` (3x1) + `depth_conv2` (1x3), both carrying the block's
//! stride. Unpruned widths follow the baseline's rule with multiplier 1.8 and expansion 2.2
//! (the authors trained base widths 64 and 96); blocks b3 strided (1, 2), b4 (2, 1); no GRN.
//! The submitted systems are structurally pruned, so their widths are given explicitly
//! (`widths`, see [`Channels::Explicit`]):
//! - S1/S2 (pruned 64 -> 32): `8,32, 72,32, 72,32, 72,32, 72,56, 124,56, 124,104`, the widths of
//!   the released `c64_unpruned_distilled_1.ckpt`: 63,748 params, 29,982,132 MACs at 1x256x65.
//! - S3/S4 (pruned 96 -> 64 -> 32): `8,32, 68,32, 68,32, 68,32, 68,58, 125,58, 125,101`, derived
//!   from the published 63,215 params and 29,221,122 MACs (the only solution in which blocks with
//!   equal input widths share an expansion width, as the pruning of S1 left them).
//!
//! Variable names are the released checkpoint's (without its `model.` prefix): `in_c.0.0.weight`,
//! `in_c2.1.1.running_mean`, `stages.s2.b5.depth_conv2.0.weight`, `feed_forward.1.bias`, ...

use super::cp_blocks::{family_config, Channels, DepthwiseKind, Family};

pub const FAMILY: Family = Family {
    arch: "sscp_mobile",
    channels_multiplier: 1.8,
    expansion_rate: 2.2,
    strides: &[(3, [1, 2]), (4, [2, 1])],
    depthwise: DepthwiseKind::Separable,
    grn: false,
};

/// Widths of systems S1/S2 (pruned from base 64), as in the released checkpoint.
pub const S1_WIDTHS: [i64; 14] = [8, 32, 72, 32, 72, 32, 72, 32, 72, 56, 124, 56, 124, 104];
/// Widths of systems S3/S4 (pruned 96 -> 64 -> 32), derived from the published counts.
pub const S3_WIDTHS: [i64; 14] = [8, 32, 68, 32, 68, 32, 68, 32, 68, 58, 125, 58, 125, 101];

// `width` (base channels of an unpruned network; one of them is required) or `widths` (explicit per-block widths).
family_config!(FAMILY, None);

impl Config {
    /// A pruned network with explicit widths, 10 classes.
    pub fn pruned(widths: &[i64]) -> Self {
        Config {
            channels: Channels::Explicit(widths.to_vec()),
            num_classes: 10,
        }
    }
}
