//! 1x1 convs with stride 1 and no padding. Each group's NCHW input already is the GEMM's
//! `K x P` activation matrix (`K` input channels by `P = H * W` positions), so there is no
//! im2col: its rows are only interleaved by fours into the GEMM's panel layout, then the GEMM
//! and the same [`ChannelRequant`] as the generic path run over them.

use super::conv::Geometry;
use super::gemm::{gemm, Isa, PackedWeights, PANEL};
use super::requant::ChannelRequant;
use super::{Affine, Fused, MemoryFormat, QTensor, QWeight};
use crate::error::Result;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Activation bytes packed per tile (the GEMM's working set stays in L2).
const TILE_BYTES: usize = 64 * 1024;

/// Whether [`conv`] handles this geometry: a 1x1 kernel, stride 1, no padding.
pub(super) fn applies(w: &QWeight, geo: &Geometry) -> bool {
    let [_, _, kh, kw] = w.shape();
    kh == 1 && kw == 1 && geo.stride == [1, 1] && geo.padding == [0, 0]
}

/// The 1x1 conv of `x` with `w` (`[O, C / groups, 1, 1]`), on `isa`.
pub(super) fn conv(
    isa: Isa,
    x: &QTensor,
    w: &QWeight,
    geo: &Geometry,
    groups: usize,
    output: Affine,
    fused: Fused,
) -> Result<QTensor> {
    let [n, c, h, wd] = geo.input;
    let [o, cg, _, _] = w.shape();
    let og = o / groups;
    let p = h * wd;
    let quads = cg.div_ceil(4);
    let tile = (TILE_BYTES / (quads * 4))
        .next_multiple_of(PANEL)
        .clamp(PANEL, p.next_multiple_of(PANEL));
    let mut patches = vec![0u8; tile * quads * 4];
    let mut acc = vec![0i32; og * tile];
    let mut out = vec![0u8; n * o * p];
    for g in 0..groups {
        let rows = &w.data()[g * og * cg..][..og * cg];
        let packed = PackedWeights::new(rows, og, cg);
        let requant: Vec<ChannelRequant> = (g * og..(g + 1) * og)
            .map(|oc| {
                let bias = w.bias().map(|b| b[oc]);
                let sum = packed.sum(oc - g * og);
                ChannelRequant::new(sum, x.affine(), w.scales()[oc], bias, output, fused)
            })
            .collect();
        for b in 0..n {
            let matrix = &x.data()[(b * c + g * cg) * p..][..cg * p];
            for p0 in (0..p).step_by(tile) {
                let count = tile.min(p - p0);
                let positions = count.next_multiple_of(PANEL);
                pack(isa, matrix, p, p0, count, quads, &mut patches);
                gemm(isa, &patches, positions, &packed, &mut acc);
                for (oi, r) in requant.iter().enumerate() {
                    let dst = &mut out[(b * o + g * og + oi) * p + p0..][..count];
                    r.apply_row(isa, &acc[oi * positions..][..count], dst);
                }
            }
        }
    }
    QTensor::new(out, &[n, o, h, wd], output, MemoryFormat::ChannelsLast)
}

/// Packs columns `p0 .. p0 + count` of the `K x p` row-major `matrix` (`K = matrix.len() / p`)
/// into the GEMM's panels: `patches[((i / 16) * quads + q) * 64 + (i % 16) * 4 + j] =
/// matrix[4q + j][p0 + i]`, zero past `K` and past `count` (up to the next whole panel).
fn pack(
    isa: Isa,
    matrix: &[u8],
    p: usize,
    p0: usize,
    count: usize,
    quads: usize,
    patches: &mut [u8],
) {
    let k = matrix.len() / p;
    let panels = count.div_ceil(PANEL);
    assert!(p0 + count <= p && patches.len() >= panels * quads * 64);
    for panel in 0..panels {
        let base = p0 + panel * PANEL;
        let full_panel = base + PANEL <= p0 + count;
        for q in 0..quads {
            let dst = &mut patches[(panel * quads + q) * 64..][..64];
            #[cfg(target_arch = "x86_64")]
            if full_panel && 4 * q + 4 <= k && isa != Isa::Portable {
                let rows: [&[u8]; 4] =
                    std::array::from_fn(|j| &matrix[(4 * q + j) * p + base..][..PANEL]);
                interleave4(rows, dst);
                continue;
            }
            for (i, quad) in dst.chunks_exact_mut(4).enumerate() {
                for (j, v) in quad.iter_mut().enumerate() {
                    let (row, col) = (4 * q + j, base + i);
                    *v = if row < k && col < p0 + count {
                        matrix[row * p + col]
                    } else {
                        0
                    };
                }
            }
        }
    }
}

/// `dst[4i + j] = rows[j][i]` for 16 columns, with SSE2 byte and word unpacks (x86_64 always
/// has SSE2).
#[cfg(target_arch = "x86_64")]
fn interleave4(rows: [&[u8]; 4], dst: &mut [u8]) {
    assert!(rows.iter().all(|r| r.len() >= 16) && dst.len() >= 64);
    // SAFETY: the four 16-byte reads and the 64-byte write are in bounds (asserted above);
    // SSE2 is part of x86_64.
    unsafe {
        let r: [__m128i; 4] = std::array::from_fn(|j| _mm_loadu_si128(rows[j].as_ptr().cast()));
        let (lo01, hi01) = (_mm_unpacklo_epi8(r[0], r[1]), _mm_unpackhi_epi8(r[0], r[1]));
        let (lo23, hi23) = (_mm_unpacklo_epi8(r[2], r[3]), _mm_unpackhi_epi8(r[2], r[3]));
        let out = [
            _mm_unpacklo_epi16(lo01, lo23),
            _mm_unpackhi_epi16(lo01, lo23),
            _mm_unpacklo_epi16(hi01, hi23),
            _mm_unpackhi_epi16(hi01, hi23),
        ];
        for (i, v) in out.iter().enumerate() {
            _mm_storeu_si128(dst.as_mut_ptr().add(16 * i).cast(), *v);
        }
    }
}
