//! Float requantization and rounding, as fbgemm and ATen do them on x86 (f32 arithmetic,
//! round-half-to-even through `cvtps2dq`). PyTorch's fbgemm path requantizes with an f32
//! multiplier, never with fbgemm's fixed-point `RequantizeFixedPoint`, so neither do we.

/// `_mm256_cvtps_epi32`: round half to even; NaN and out-of-range values give `i32::MIN`.
pub(crate) fn cvtps_epi32(x: f32) -> i32 {
    let r = x.round_ties_even();
    if (-2_147_483_648.0..2_147_483_648.0).contains(&r) {
        r as i32
    } else {
        i32::MIN
    }
}

/// fbgemm `QuantizeAvx2<uint8_t, LEGACY=false>` for one value, given `1 / scale`: multiply,
/// clip at the largest float below `i32::MAX`, round, add the zero point (wrapping, as
/// `_mm256_add_epi32`), clamp to 0..255. ATen's own `QuantizeAvx2` and `quantize_val` agree
/// with it on every finite input.
pub(crate) fn quantize_with_inverse(x: f32, inverse_scale: f32, zero_point: u8) -> u8 {
    const INT32_FLOAT_MAX: f32 = 2_147_483_520.0;
    let t = x * inverse_scale;
    // `_mm256_min_ps(t, c)` returns `c` when `t` is NaN.
    let t = if t.is_nan() || t > INT32_FLOAT_MAX {
        INT32_FLOAT_MAX
    } else {
        t
    };
    let q = cvtps_epi32(t).wrapping_add(zero_point as i32);
    q.clamp(0, 255) as u8
}

/// Requantization of one output channel of a conv or linear layer, as fbgemm's
/// `requantizeOutputProcessingAvx2` (OUT_CHANNEL granularity, float bias) computes it:
/// `raw = acc - a_zp * sum(w)`, `x = f32(raw) + bias / (a_scale * w_scale)`,
/// `q = cvtps(x * (a_scale * w_scale / out_scale)) + out_zp`, clamped to `[relu ? zp : 0, 255]`.
/// (fbgemm's scalar remainder loop in its depthwise kernel uses `lrintf` instead of `cvtps2dq`;
/// the two differ only when `|x * multiplier| >= 2^31`.)
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChannelRequant {
    /// `a_zp * sum(w)` over the channel's weights.
    offset: i32,
    /// `bias / act_times_w_scale`, when there is a bias.
    bias: Option<f32>,
    multiplier: f32,
    zero_point: i32,
    low: i32,
}

impl ChannelRequant {
    /// PyTorch's `GetQuantizationParams`: `act_times_w_scale = a_scale * w_scale` and
    /// `multiplier = act_times_w_scale / out_scale`, all in f32.
    pub(crate) fn new(
        weight_sum: i32,
        input: super::Affine,
        w_scale: f32,
        bias: Option<f32>,
        output: super::Affine,
        fused: super::Fused,
    ) -> Self {
        let act_times_w_scale = input.scale * w_scale;
        ChannelRequant {
            offset: input.zero_point as i32 * weight_sum,
            bias: bias.map(|b| b / act_times_w_scale),
            multiplier: act_times_w_scale / output.scale,
            zero_point: output.zero_point as i32,
            low: match fused {
                super::Fused::None => 0,
                super::Fused::Relu => output.zero_point as i32,
            },
        }
    }

    pub(crate) fn apply(&self, acc: i32) -> u8 {
        let raw = acc.wrapping_sub(self.offset);
        let x = match self.bias {
            Some(b) => raw as f32 + b,
            None => raw as f32,
        };
        // Saturating packs to i16 and u8 around the zero-point add amount to a clamp.
        let q = cvtps_epi32(x * self.multiplier) as i64 + self.zero_point as i64;
        q.clamp(self.low as i64, 255) as u8
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Affine, Fused};
    use super::*;

    #[test]
    fn int8_cvtps_rounds_half_to_even_and_flags_overflow() {
        assert_eq!(cvtps_epi32(2.5), 2);
        assert_eq!(cvtps_epi32(3.5), 4);
        assert_eq!(cvtps_epi32(-2.5), -2);
        assert_eq!(cvtps_epi32(2_147_483_648.0), i32::MIN);
        assert_eq!(cvtps_epi32(f32::NAN), i32::MIN);
        assert_eq!(cvtps_epi32(-2_147_483_648.0), i32::MIN);
    }

    #[test]
    fn int8_quantize_rounds_before_adding_the_zero_point() {
        // 0.5 / 1.0 rounds to 0 (even) before the zero point 3 is added; adding first would
        // give round(3.5) = 4.
        assert_eq!(quantize_with_inverse(0.5, 1.0, 3), 3);
        assert_eq!(quantize_with_inverse(1.5, 1.0, 3), 5);
        // Saturation at both ends, and zero points at the extremes.
        assert_eq!(quantize_with_inverse(1e30, 1.0, 0), 255);
        assert_eq!(quantize_with_inverse(-1e30, 1.0, 255), 0);
        assert_eq!(quantize_with_inverse(-1.0, 1.0, 0), 0);
        assert_eq!(quantize_with_inverse(1.0, 1.0, 255), 255);
        // fbgemm's wrap-around: the clip value plus a zero point above 127 overflows i32.
        assert_eq!(quantize_with_inverse(1e30, 1.0, 200), 0);
    }

    #[test]
    fn int8_requant_with_multiplier_above_one_saturates() {
        let input = Affine::new(0.5, 10);
        let output = Affine::new(0.01, 128);
        // multiplier = 0.5 * 0.25 / 0.01 = 12.5
        let r = ChannelRequant::new(3, input, 0.25, None, output, Fused::None);
        assert!(r.multiplier > 1.0);
        // raw = 31 - 30 = 1 -> 12.5 -> 12 (even) + 128
        assert_eq!(r.apply(31), 140);
        assert_eq!(r.apply(30 + 11), 255);
        assert_eq!(r.apply(30 - 11), 0);
        let relu = ChannelRequant::new(3, input, 0.25, None, output, Fused::Relu);
        assert_eq!(relu.apply(30 - 11), 128);
        assert_eq!(relu.apply(30 + 1), 140);
    }

    #[test]
    fn int8_requant_adds_the_bias_in_accumulator_units() {
        let input = Affine::new(0.5, 0);
        let output = Affine::new(1.0, 0);
        // act_times_w_scale = 0.5; bias 1.25 -> 2.5 accumulator units; multiplier 0.5.
        let r = ChannelRequant::new(0, input, 1.0, Some(1.25), output, Fused::None);
        // (1 + 2.5) * 0.5 = 1.75 -> 2
        assert_eq!(r.apply(1), 2);
        // (-0.5 + ... ) : acc 0 -> 2.5 * 0.5 = 1.25 -> 1
        assert_eq!(r.apply(0), 1);
        // A large positive accumulator saturates at 255, a negative one at 0.
        assert_eq!(r.apply(1 << 20), 255);
        assert_eq!(r.apply(-(1 << 20)), 0);
    }
}
