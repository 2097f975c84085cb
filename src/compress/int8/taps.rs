//! The inner loop of the direct convs ([`depthwise`](super::depthwise)): output channels that
//! each sum a few taps of one padded input buffer, `acc[t] = sum_i w[i] * src[offset[i] + t]`,
//! requantized as they are computed. Vectorised across output positions: `u8` taps widened to
//! `i32`, exact `i32` products and sums, then [`ChannelRequant`]'s arithmetic per lane, so every
//! instruction set gives the portable loop's bytes.

use super::gemm::Isa;
use super::requant::ChannelRequant;
#[cfg(target_arch = "x86_64")]
use super::requant::{bytes8, Requant16, Requant8};
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// The most taps per output channel the vector kernels take (a 5x5 kernel).
pub(super) const MAX_TAPS: usize = 25;

/// Where the taps of a conv read its input buffer, and which outputs they produce.
///
/// Outputs come in `rows` rows of `len` positions; position `x` of row `y` is output
/// `y * len + x` and reads tap `i` at `offsets[i] + y * stride + x`, or the zero point where the
/// tap has a mask whose byte at the output is 0.
#[derive(Debug, Default)]
pub(super) struct Taps {
    offsets: Vec<usize>,
    /// Per tap, the start in `masks` of its `positions()` mask bytes, if it has one.
    mask_at: Vec<Option<usize>>,
    masks: Vec<u8>,
    rows: usize,
    len: usize,
    stride: usize,
}

impl Taps {
    /// `masks[i]`, if any, holds one byte per output position: 0xFF reads, 0 the zero point.
    pub(super) fn new(
        offsets: Vec<usize>,
        masks: Vec<Option<Vec<u8>>>,
        rows: usize,
        len: usize,
        stride: usize,
    ) -> Self {
        assert_eq!(offsets.len(), masks.len());
        assert!(rows == 1 || stride >= len);
        let mut taps = Taps {
            offsets,
            mask_at: Vec::with_capacity(masks.len()),
            masks: Vec::new(),
            rows,
            len,
            stride,
        };
        for mask in masks {
            taps.mask_at.push(mask.map(|m| {
                assert_eq!(m.len(), rows * len);
                taps.masks.extend(m);
                taps.masks.len() - rows * len
            }));
        }
        taps
    }

    /// Output positions per channel.
    pub(super) fn positions(&self) -> usize {
        self.rows * self.len
    }

    /// One past the last input byte the taps read.
    pub(super) fn reach(&self) -> usize {
        let last = self.rows.saturating_sub(1) * self.stride + self.len;
        self.offsets.iter().max().map_or(0, |&o| o + last)
    }
}

/// Every output of the channels of `requant` (weights `weights[oc * taps..][..taps]`) into
/// `dst[oc * positions..][..positions]`.
pub(super) fn taps_requant(
    isa: Isa,
    src: &[u8],
    taps: &Taps,
    weights: &[i8],
    requant: &[ChannelRequant],
    zero_point: u8,
    dst: &mut [u8],
) {
    let n = taps.offsets.len();
    let positions = taps.positions();
    assert!((1..=MAX_TAPS).contains(&n));
    assert_eq!(weights.len(), requant.len() * n);
    assert_eq!(dst.len(), requant.len() * positions);
    // Every read below, vector or scalar, stays under these bounds.
    assert!(taps.reach() <= src.len());
    assert!(taps
        .mask_at
        .iter()
        .flatten()
        .all(|&m| m + positions <= taps.masks.len()));
    assert!(isa.is_available(), "{isa:?} is not available on this CPU");
    let covered = match isa {
        Isa::Portable => 0,
        // Many output channels per input channel on VNNI: four taps per `vpdpbusd`, the
        // interleaving shared by the channels (with four it does not pay: the grouped stem).
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni if requant.len() >= 8 => {
            // The kernel's quads per channel: the next one up, the extra taps with weight 0.
            let quads = [1, 3, 4, 7].into_iter().find(|&q| n <= 4 * q).unwrap();
            let packed: Vec<i32> = weights
                .chunks_exact(n)
                .flat_map(|w| {
                    (0..quads).map(move |q| {
                        let t = |j: usize| w.get(4 * q + j).map_or(0, |&v| v as u8);
                        i32::from_le_bytes([t(0), t(1), t(2), t(3)])
                    })
                })
                .collect();
            let args = (src, taps, &packed[..], requant, zero_point, &mut *dst);
            // SAFETY: the CPU has AVX-512 F, BW and VNNI (asserted above), and the buffers have
            // the lengths asserted above, as these functions require.
            unsafe {
                match quads {
                    1 => fixed_vnni::<4, 1>(args),
                    3 => fixed_vnni::<12, 3>(args),
                    4 => fixed_vnni::<16, 4>(args),
                    _ => fixed_vnni::<28, 7>(args),
                }
            }
        }
        #[cfg(target_arch = "x86_64")]
        _ => {
            // The vector kernels take a fixed number of taps (unrolled, in registers): the
            // next one up, the extra taps with weight 0. Each weight is the low `i16` of its
            // `i32` lane and the high one is 0, so `vpmaddwd` with a tap widened to `i32` (high
            // `i16` 0 too) gives the exact product, more cheaply than `vpmulld`.
            let fixed = [3, 9, 16, MAX_TAPS].into_iter().find(|&f| n <= f).unwrap();
            let padded: Vec<i32> = weights
                .chunks_exact(n)
                .flat_map(|w| (0..fixed).map(|i| w.get(i).map_or(0, |&v| v as i16 as u16 as i32)))
                .collect();
            let args = (src, taps, &padded[..], requant, zero_point, &mut *dst);
            // SAFETY: the CPU has the instruction sets these functions enable (asserted above),
            // and the buffers have the lengths asserted above, as they require.
            unsafe {
                match (isa, fixed) {
                    (Isa::Avx2, 3) => fixed_avx2::<3>(args),
                    (Isa::Avx2, 9) => fixed_avx2::<9>(args),
                    (Isa::Avx2, 16) => fixed_avx2::<16>(args),
                    (Isa::Avx2, _) => fixed_avx2::<MAX_TAPS>(args),
                    (_, 3) => fixed_avx512::<3>(args),
                    (_, 9) => fixed_avx512::<9>(args),
                    (_, 16) => fixed_avx512::<16>(args),
                    (_, _) => fixed_avx512::<MAX_TAPS>(args),
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        _ => unreachable!(),
    };
    for y in 0..taps.rows {
        for x in covered..taps.len {
            let (s, d) = (y * taps.stride + x, y * taps.len + x);
            for (oc, r) in requant.iter().enumerate() {
                let mut acc = 0i32;
                for i in 0..n {
                    let v = match taps.mask_at[i] {
                        Some(m) if taps.masks[m + d] == 0 => zero_point,
                        _ => src[taps.offsets[i] + s],
                    };
                    acc = acc.wrapping_add(weights[oc * n + i] as i32 * v as i32);
                }
                dst[oc * positions + d] = r.apply(acc);
            }
        }
    }
}

/// The arguments of the vector kernels: input buffer, taps, weights (`N` per channel, padded
/// with zeros; for VNNI, `Q` quads of four `i8` per channel), requantization per channel, the
/// zero point, output.
#[cfg(target_arch = "x86_64")]
type Args<'a> = (
    &'a [u8],
    &'a Taps,
    &'a [i32],
    &'a [ChannelRequant],
    u8,
    &'a mut [u8],
);

/// Vector starts along a row of `len` positions, `lanes` at a time: the last vector ends at the
/// row's end, overlapping the one before (it recomputes the same bytes). Nothing when the row is
/// shorter than a vector.
#[cfg(target_arch = "x86_64")]
fn vector_starts(len: usize, lanes: usize) -> impl Iterator<Item = usize> {
    let count = if len < lanes { 0 } else { len.div_ceil(lanes) };
    (0..count).map(move |v| (v * lanes).min(len - lanes))
}

/// Tap `i`'s offset and mask, for `i < N` (the taps past the real ones read tap 0's bytes).
#[cfg(target_arch = "x86_64")]
fn fixed_taps<const N: usize>(taps: &Taps) -> ([usize; N], [Option<usize>; N]) {
    let offsets = std::array::from_fn(|i| taps.offsets.get(i).copied().unwrap_or(taps.offsets[0]));
    let masks = std::array::from_fn(|i| taps.mask_at.get(i).copied().flatten());
    (offsets, masks)
}

/// [`taps_requant`] with `N` taps per channel, for every position of rows at least 16 long;
/// returns how many positions of each row it wrote (all or none). Each vector of taps is
/// widened once and serves every output channel.
///
/// # Safety
/// The CPU must support AVX-512 F and BW; `taps.offsets.len() <= N`, the weights hold `N` per channel,
/// and the buffers have the lengths [`taps_requant`] asserts.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn fixed_avx512<const N: usize>(
    (src, taps, weights, requant, zero_point, dst): Args,
) -> usize {
    const L: usize = 16;
    if taps.len < L {
        return 0;
    }
    let positions = taps.positions();
    let (offsets, masks) = fixed_taps::<N>(taps);
    let zp = _mm_set1_epi8(zero_point as i8);
    for y in 0..taps.rows {
        for x in vector_starts(taps.len, L) {
            let (s, d) = (y * taps.stride + x, y * taps.len + x);
            // SAFETY: `offsets[i] + s + 16 <= reach() <= src.len()` and `m + d + 16 <= m +
            // positions <= masks.len()`; SSE4.1 comes with AVX-512 F.
            let xs: [__m512i; N] = std::array::from_fn(|i| unsafe {
                let v = _mm_loadu_si128(src.as_ptr().add(offsets[i] + s).cast());
                let v = match masks[i] {
                    Some(m) => {
                        let keep = _mm_loadu_si128(taps.masks.as_ptr().add(m + d).cast());
                        _mm_blendv_epi8(zp, v, keep)
                    }
                    None => v,
                };
                _mm512_cvtepu8_epi32(v)
            });
            for (oc, r) in requant.iter().enumerate() {
                let w = &weights[oc * N..][..N];
                let mut acc = _mm512_madd_epi16(xs[0], _mm512_set1_epi32(w[0]));
                for i in 1..N {
                    let prod = _mm512_madd_epi16(xs[i], _mm512_set1_epi32(w[i]));
                    acc = _mm512_add_epi32(acc, prod);
                }
                // SAFETY: writes `dst[oc * positions + d..][..16]`, in bounds as `d + 16 <=
                // positions`.
                unsafe {
                    let at = dst.as_mut_ptr().add(oc * positions + d);
                    _mm_storeu_si128(at.cast(), Requant16::new(r).apply(acc));
                }
            }
        }
    }
    taps.len
}

/// [`fixed_avx512`] on AVX2, for rows at least 8 long.
///
/// # Safety
/// The CPU must support AVX2; `taps.offsets.len() <= N`, the weights hold `N` per channel, and
/// the buffers have the lengths [`taps_requant`] asserts.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn fixed_avx2<const N: usize>(
    (src, taps, weights, requant, zero_point, dst): Args,
) -> usize {
    const L: usize = 8;
    if taps.len < L {
        return 0;
    }
    let positions = taps.positions();
    let (offsets, masks) = fixed_taps::<N>(taps);
    let zp = _mm_set1_epi8(zero_point as i8);
    for y in 0..taps.rows {
        for x in vector_starts(taps.len, L) {
            let (s, d) = (y * taps.stride + x, y * taps.len + x);
            // SAFETY: `offsets[i] + s + 8 <= reach() <= src.len()` and `m + d + 8 <= m +
            // positions <= masks.len()`; SSE4.1 comes with AVX2.
            let xs: [__m256i; N] = std::array::from_fn(|i| unsafe {
                let v = _mm_loadl_epi64(src.as_ptr().add(offsets[i] + s).cast());
                let v = match masks[i] {
                    Some(m) => {
                        let keep = _mm_loadl_epi64(taps.masks.as_ptr().add(m + d).cast());
                        _mm_blendv_epi8(zp, v, keep)
                    }
                    None => v,
                };
                _mm256_cvtepu8_epi32(v)
            });
            for (oc, r) in requant.iter().enumerate() {
                let w = &weights[oc * N..][..N];
                let mut acc = _mm256_madd_epi16(xs[0], _mm256_set1_epi32(w[0]));
                for i in 1..N {
                    let prod = _mm256_madd_epi16(xs[i], _mm256_set1_epi32(w[i]));
                    acc = _mm256_add_epi32(acc, prod);
                }
                // SAFETY: writes `dst[oc * positions + d..][..8]`, in bounds as `d + 8 <=
                // positions`.
                unsafe {
                    let at = dst.as_mut_ptr().add(oc * positions + d);
                    _mm_storel_epi64(at.cast(), bytes8(Requant8::new(r).apply(acc)));
                }
            }
        }
    }
    taps.len
}

/// [`taps_requant`] for several output channels with `N = 4 * Q` taps (padded with zero
/// weights), on AVX-512 VNNI: per vector of 16 positions the taps are interleaved by fours into
/// `Q` vectors of `u8` quads, and each channel sums them with `Q` `vpdpbusd`, exact in `i32`.
///
/// # Safety
/// The CPU must support AVX-512 F, BW and VNNI; `taps.offsets.len() <= N`, the weights hold `Q`
/// quads per channel, and the buffers have the lengths [`taps_requant`] asserts.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn fixed_vnni<const N: usize, const Q: usize>(
    (src, taps, weights, requant, zero_point, dst): Args,
) -> usize {
    const L: usize = 16;
    if taps.len < L {
        return 0;
    }
    let positions = taps.positions();
    let (offsets, masks) = fixed_taps::<N>(taps);
    let zp = _mm_set1_epi8(zero_point as i8);
    for y in 0..taps.rows {
        for x in vector_starts(taps.len, L) {
            let (s, d) = (y * taps.stride + x, y * taps.len + x);
            // SAFETY: `offsets[i] + s + 16 <= reach() <= src.len()` and `m + d + 16 <= m +
            // positions <= masks.len()`; SSE4.1 comes with AVX-512 F.
            let load = |i: usize| unsafe {
                let v = _mm_loadu_si128(src.as_ptr().add(offsets[i] + s).cast());
                match masks[i] {
                    Some(m) => {
                        let keep = _mm_loadu_si128(taps.masks.as_ptr().add(m + d).cast());
                        _mm_blendv_epi8(zp, v, keep)
                    }
                    None => v,
                }
            };
            // Byte j of lane p of quad vector q: tap 4q + j at position p.
            let quads: [__m512i; Q] = std::array::from_fn(|q| {
                let r: [__m128i; 4] = std::array::from_fn(|j| load(4 * q + j));
                let (lo01, hi01) = (_mm_unpacklo_epi8(r[0], r[1]), _mm_unpackhi_epi8(r[0], r[1]));
                let (lo23, hi23) = (_mm_unpacklo_epi8(r[2], r[3]), _mm_unpackhi_epi8(r[2], r[3]));
                let v = _mm512_castsi128_si512(_mm_unpacklo_epi16(lo01, lo23));
                let v = _mm512_inserti32x4::<1>(v, _mm_unpackhi_epi16(lo01, lo23));
                let v = _mm512_inserti32x4::<2>(v, _mm_unpacklo_epi16(hi01, hi23));
                _mm512_inserti32x4::<3>(v, _mm_unpackhi_epi16(hi01, hi23))
            });
            for (oc, r) in requant.iter().enumerate() {
                let w = &weights[oc * Q..][..Q];
                let mut acc = _mm512_setzero_si512();
                for (v, &wq) in quads.iter().zip(w) {
                    acc = _mm512_dpbusd_epi32(acc, *v, _mm512_set1_epi32(wq));
                }
                // SAFETY: writes `dst[oc * positions + d..][..16]`, in bounds as `d + 16 <=
                // positions`.
                unsafe {
                    let at = dst.as_mut_ptr().add(oc * positions + d);
                    _mm_storeu_si128(at.cast(), Requant16::new(r).apply(acc));
                }
            }
        }
    }
    taps.len
}
