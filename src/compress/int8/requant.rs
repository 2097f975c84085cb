//! Float requantization and rounding, as fbgemm and ATen do them on x86 (f32 arithmetic,
//! round-half-to-even through `cvtps2dq`). PyTorch's fbgemm path requantizes with an f32
//! multiplier, never with fbgemm's fixed-point `RequantizeFixedPoint`, so neither do we.

use super::gemm::Isa;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// `_mm256_cvtps_epi32`: round half to even; NaN and out-of-range values give `i32::MIN`.
pub(crate) fn cvtps_epi32(x: f32) -> i32 {
    // The same instruction on one lane (SSE is part of x86_64; the default MXCSR rounding is
    // half to even). `round_ties_even` below compiles to a libm call without SSE4.1.
    // SAFETY: SSE is part of x86_64.
    #[cfg(target_arch = "x86_64")]
    return unsafe { _mm_cvtss_si32(_mm_set_ss(x)) };
    #[cfg(not(target_arch = "x86_64"))]
    {
        let r = x.round_ties_even();
        if (-2_147_483_648.0..2_147_483_648.0).contains(&r) {
            r as i32
        } else {
            i32::MIN
        }
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
    /// What the vector code broadcasts (see [`Requant8`]): the bias or `+0.0`, and the output
    /// bounds less the zero point, `low - zp` and `255 - zp`.
    lane_bias: f32,
    lane_min: i32,
    lane_max: i32,
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
        let bias = bias.map(|b| b / act_times_w_scale);
        let zero_point = output.zero_point as i32;
        let low = match fused {
            super::Fused::None => 0,
            super::Fused::Relu => zero_point,
        };
        ChannelRequant {
            offset: input.zero_point as i32 * weight_sum,
            bias,
            multiplier: act_times_w_scale / output.scale,
            zero_point,
            low,
            lane_bias: bias.unwrap_or(0.0),
            lane_min: low - zero_point,
            lane_max: 255 - zero_point,
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

impl ChannelRequant {
    /// `out[i] = self.apply(acc[i])` on `isa`'s vectors; every instruction set gives the same
    /// bytes (the vector code does the scalar code's f32 operations, one for one).
    pub(crate) fn apply_row(&self, isa: Isa, acc: &[i32], out: &mut [u8]) {
        assert_eq!(acc.len(), out.len());
        assert!(isa.is_available(), "{isa:?} is not available on this CPU");
        let done = match isa {
            Isa::Portable => 0,
            // SAFETY: the CPU has the instruction sets these functions enable (asserted above).
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { self.apply_row_avx2(acc, out) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Vnni => unsafe { self.apply_row_avx512(acc, out) },
            #[cfg(not(target_arch = "x86_64"))]
            _ => unreachable!(),
        };
        for (d, &a) in out[done..].iter_mut().zip(&acc[done..]) {
            *d = self.apply(a);
        }
    }

    /// The leading multiple of 8 of `acc`, requantized into `out`; returns how many.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn apply_row_avx2(&self, acc: &[i32], out: &mut [u8]) -> usize {
        let r = Requant8::new(self);
        // i32 lanes (a0-3 b0-3 c0-3 d0-3 | a4-7 b4-7 c4-7 d4-7) after the two packs, back in order.
        let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        let mut i = 0;
        while i + 32 <= acc.len() {
            // SAFETY: `acc[i..i + 32]` is in bounds; AVX2 is enabled.
            let v: [__m256i; 4] = std::array::from_fn(|j| unsafe {
                r.apply(_mm256_loadu_si256(acc.as_ptr().add(i + 8 * j).cast()))
            });
            // Lanes already lie in 0..=255: the saturating packs only narrow them.
            let ab = _mm256_packs_epi32(v[0], v[1]);
            let cd = _mm256_packs_epi32(v[2], v[3]);
            let bytes = _mm256_permutevar8x32_epi32(_mm256_packus_epi16(ab, cd), order);
            // SAFETY: `out[i..i + 32]` is in bounds; AVX2 is enabled.
            unsafe { _mm256_storeu_si256(out.as_mut_ptr().add(i).cast(), bytes) };
            i += 32;
        }
        while i + 8 <= acc.len() {
            // SAFETY: `acc[i..i + 8]` and `out[i..i + 8]` are in bounds; AVX2 is enabled.
            unsafe {
                let v = r.apply(_mm256_loadu_si256(acc.as_ptr().add(i).cast()));
                _mm_storel_epi64(out.as_mut_ptr().add(i).cast(), bytes8(v));
            }
            i += 8;
        }
        i
    }

    /// The leading multiple of 16 of `acc`, requantized into `out`; returns how many.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn apply_row_avx512(&self, acc: &[i32], out: &mut [u8]) -> usize {
        let r = Requant16::new(self);
        let mut i = 0;
        while i + 16 <= acc.len() {
            // SAFETY: `acc[i..i + 16]` and `out[i..i + 16]` are in bounds; AVX-512 F is enabled.
            unsafe {
                let v = r.apply(_mm512_loadu_si512(acc.as_ptr().add(i).cast()));
                _mm_storeu_si128(out.as_mut_ptr().add(i).cast(), v);
            }
            i += 16;
        }
        i
    }
}

/// [`ChannelRequant`] on 8 `i32` lanes (AVX2).
///
/// The scalar `clamp(q + zp, low, 255)` is computed as `clamp(q, low - zp, 255 - zp) + zp`, which
/// cannot overflow `i32`. Without a bias the vector code adds `+0.0`, which changes no value:
/// `raw as f32` is never `-0.0`.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(crate) struct Requant8 {
    offset: __m256i,
    bias: __m256,
    multiplier: __m256,
    low: __m256i,
    high: __m256i,
    zero_point: __m256i,
}

#[cfg(target_arch = "x86_64")]
impl Requant8 {
    #[target_feature(enable = "avx2")]
    pub(crate) fn new(r: &ChannelRequant) -> Self {
        Requant8 {
            offset: _mm256_set1_epi32(r.offset),
            bias: _mm256_set1_ps(r.lane_bias),
            multiplier: _mm256_set1_ps(r.multiplier),
            low: _mm256_set1_epi32(r.lane_min),
            high: _mm256_set1_epi32(r.lane_max),
            zero_point: _mm256_set1_epi32(r.zero_point),
        }
    }

    /// `ChannelRequant::apply` per lane, as `i32` in `0..=255`.
    #[target_feature(enable = "avx2")]
    pub(crate) fn apply(&self, acc: __m256i) -> __m256i {
        let raw = _mm256_sub_epi32(acc, self.offset);
        let x = _mm256_add_ps(_mm256_cvtepi32_ps(raw), self.bias);
        let q = _mm256_cvtps_epi32(_mm256_mul_ps(x, self.multiplier));
        let q = _mm256_min_epi32(_mm256_max_epi32(q, self.low), self.high);
        _mm256_add_epi32(q, self.zero_point)
    }
}

/// The low bytes of 8 `i32` lanes, in the low 8 bytes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub(crate) fn bytes8(v: __m256i) -> __m128i {
    let low_bytes = _mm256_setr_epi8(
        0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, //
        0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    );
    let v = _mm256_shuffle_epi8(v, low_bytes);
    _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(
        v,
        _mm256_setr_epi32(0, 4, 0, 0, 0, 0, 0, 0),
    ))
}

/// [`ChannelRequant`] on 16 `i32` lanes (AVX-512 F); the same arithmetic as [`Requant8`].
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(crate) struct Requant16 {
    offset: __m512i,
    bias: __m512,
    multiplier: __m512,
    low: __m512i,
    high: __m512i,
    zero_point: __m512i,
}

#[cfg(target_arch = "x86_64")]
impl Requant16 {
    #[target_feature(enable = "avx512f")]
    pub(crate) fn new(r: &ChannelRequant) -> Self {
        Requant16 {
            offset: _mm512_set1_epi32(r.offset),
            bias: _mm512_set1_ps(r.lane_bias),
            multiplier: _mm512_set1_ps(r.multiplier),
            low: _mm512_set1_epi32(r.lane_min),
            high: _mm512_set1_epi32(r.lane_max),
            zero_point: _mm512_set1_epi32(r.zero_point),
        }
    }

    /// `ChannelRequant::apply` per lane, as 16 bytes.
    #[target_feature(enable = "avx512f")]
    pub(crate) fn apply(&self, acc: __m512i) -> __m128i {
        let raw = _mm512_sub_epi32(acc, self.offset);
        let x = _mm512_add_ps(_mm512_cvtepi32_ps(raw), self.bias);
        // Round half to even (the default MXCSR mode), as `cvtps_epi32`.
        let q = _mm512_cvtps_epi32(_mm512_mul_ps(x, self.multiplier));
        let q = _mm512_min_epi32(_mm512_max_epi32(q, self.low), self.high);
        _mm512_cvtepi32_epi8(_mm512_add_epi32(q, self.zero_point))
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

    #[test]
    fn int8_requant_rows_agree_on_every_isa() {
        let input = Affine::new(0.03, 17);
        let mut accs: Vec<i32> = vec![i32::MIN, i32::MAX, 0, -1, 1, 17, -17, 1 << 30, -(1 << 30)];
        // A deterministic spread around the interesting range, 77 values (no multiple of 8).
        let mut s = 12345u32;
        while accs.len() < 77 {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            accs.push((s as i32) >> (s % 24));
        }
        let configs = [
            (0.01, None, Affine::new(0.2, 60), Fused::Relu),
            (0.01, Some(-0.7), Affine::new(0.2, 0), Fused::None),
            (2.5, Some(1e30), Affine::new(1e-6, 255), Fused::None),
            (0.5, None, Affine::new(0.0005, 128), Fused::Relu),
        ];
        for (w_scale, bias, output, fused) in configs {
            let r = ChannelRequant::new(-4321, input, w_scale, bias, output, fused);
            let expect: Vec<u8> = accs.iter().map(|&a| r.apply(a)).collect();
            for isa in [Isa::Portable, Isa::Avx2, Isa::Avx512Vnni] {
                if isa.is_available() {
                    for len in [accs.len(), 40, 33, 16, 8, 3, 0] {
                        let mut got = vec![0u8; len];
                        r.apply_row(isa, &accs[..len], &mut got);
                        assert_eq!(got, expect[..len], "{isa:?}, {len}, {r:?}");
                    }
                }
            }
        }
    }
}
