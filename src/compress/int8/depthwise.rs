//! Direct conv for convs whose output channels each read one input channel (`I / groups == 1`):
//! depthwise convs, depthwise convs with a channel multiplier (TF-SepNet's grouped stem conv,
//! four outputs per input channel) and convs of a one-channel input (its first stem conv). No
//! im2col and no GEMM: a handful of taps per output, vectorised across output positions by
//! [`taps`](super::taps).
//!
//! Each input channel is first copied into a buffer that holds the zero-point padding, laid out
//! so that every tap is a read at a fixed offset from the output position:
//!
//! * "same" convs (stride 1, output as wide as the input: TF-SepNet's 3x1 and 1x3 depthwise
//!   convs): the channel plane with zero-point rows above and below. Output position
//!   `t = y * w + x` reads tap `(ky, kx)` at `t + ky * w + kx`, across row ends; the taps that
//!   leave the row at its ends read the zero point instead there, by a per-position mask.
//! * any other geometry: the zero-point-padded plane split into `sh * sw` phase planes
//!   (`phase[py][px][i][j] = padded[i * sh + py][j * sw + px]`) of `hq x wq` each, so that every
//!   tap of a strided conv becomes a stride-1 read: output `(y, x)` takes tap `(ky, kx)` from
//!   phase `(ky % sh, kx % sw)` at `(y + ky / sh, x + kx / sw)`, i.e. at offset `y * wq + x`.
//!
//! Accumulation is `sum w * x` over the taps with padding holding the activation zero point, as
//! the GEMM path computes it, then the same [`ChannelRequant`]: identical bytes on every path.

use super::conv::Geometry;
use super::gemm::Isa;
use super::requant::ChannelRequant;
use super::taps::{taps_requant, Taps, MAX_TAPS};
use super::{Affine, Fused, MemoryFormat, QTensor, QWeight};
use crate::error::Result;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Whether [`conv`] handles a conv with these weights: one input channel per output channel,
/// at most [`MAX_TAPS`] taps (larger kernels go through the GEMM).
pub(super) fn applies(w: &QWeight) -> bool {
    let [_, cg, kh, kw] = w.shape();
    cg == 1 && kh * kw <= MAX_TAPS
}

/// The conv of `x` with `w` (`[O, 1, KH, KW]`, `groups == C`), on `isa`.
pub(super) fn conv(
    isa: Isa,
    x: &QTensor,
    w: &QWeight,
    geo: &Geometry,
    output: Affine,
    fused: Fused,
) -> Result<QTensor> {
    let [n, c, h, wd] = geo.input;
    let [o, _, kh, kw] = w.shape();
    let og = o / c;
    let [oh, ow] = geo.output;
    let zp = x.affine().zero_point;
    let layout = Layout::new(geo, [kh, kw], isa.lanes());
    let mut buf = vec![zp; layout.len];
    // Whole rows of `wq` positions, when the kernel computes more than the output keeps.
    let wide_len = if layout.wide {
        og * layout.taps.positions()
    } else {
        0
    };
    let mut wide = vec![0u8; wide_len];
    let mut out = vec![0u8; n * o * oh * ow];
    let taps = kh * kw;
    let requant: Vec<ChannelRequant> = (0..o)
        .map(|oc| {
            let sum = w.data()[oc * taps..][..taps]
                .iter()
                .map(|&v| v as i32)
                .sum();
            let bias = w.bias().map(|b| b[oc]);
            ChannelRequant::new(sum, x.affine(), w.scales()[oc], bias, output, fused)
        })
        .collect();
    for g in 0..c {
        let weights = &w.data()[g * og * taps..][..og * taps];
        let requant = &requant[g * og..][..og];
        for b in 0..n {
            layout.fill(&x.data()[(b * c + g) * h * wd..][..h * wd], &mut buf);
            let dst = &mut out[(b * o + g * og) * oh * ow..][..og * oh * ow];
            if wide.is_empty() {
                taps_requant(isa, &buf, &layout.taps, weights, requant, zp, dst);
            } else {
                taps_requant(isa, &buf, &layout.taps, weights, requant, zp, &mut wide);
                let wq = layout.taps.positions() / oh;
                for (row, src) in dst.chunks_exact_mut(ow).zip(wide.chunks_exact(wq)) {
                    row.copy_from_slice(&src[..ow]);
                }
            }
        }
    }
    QTensor::new(out, &[n, o, oh, ow], output, MemoryFormat::ChannelsLast)
}

/// How one input channel is laid out in the padded buffer, and the taps that read it.
struct Layout {
    input: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    /// "Same" layout (see the module doc), else phase planes.
    same: bool,
    /// Rows and columns of each phase plane (`hq` unused in the "same" layout).
    hq: usize,
    wq: usize,
    /// Whether the kernel computes whole `wq`-wide rows, to be cut to the output's width.
    wide: bool,
    taps: Taps,
    /// Bytes of the buffer, with whatever the last positions read past the planes.
    len: usize,
}

impl Layout {
    /// `lanes`: the kernel's vector width, which decides whether it runs along the output's
    /// rows or along whole `wq`-wide rows.
    fn new(geo: &Geometry, [kh, kw]: [usize; 2], lanes: usize) -> Self {
        let [_, _, h, w] = geo.input;
        let [sh, sw] = geo.stride;
        let [ph, pw] = geo.padding;
        let [oh, ow] = geo.output;
        let same = geo.stride == [1, 1] && ow == w;
        let mut layout = Layout {
            input: [h, w],
            stride: geo.stride,
            padding: geo.padding,
            same,
            hq: 0,
            wq: 0,
            wide: false,
            taps: Taps::default(),
            len: 0,
        };
        if same {
            // Output position t = y * w + x reads tap (ky, kx) at t + ky * w + kx: the buffer
            // starts `pw` before the first padded row, so that the read is never negative.
            let offsets = (0..kh * kw).map(|t| (t / kw) * w + t % kw).collect();
            // Taps left or right of the centre column read the zero point where they leave the
            // row: 0xFF marks the positions where they read the buffer (the same every row).
            let masks = (0..kh * kw)
                .map(|t| {
                    let kx = t % kw;
                    (kx != pw).then(|| {
                        let row: Vec<u8> = (0..w)
                            .map(|x| {
                                if (pw..w + pw).contains(&(x + kx)) {
                                    0xFF
                                } else {
                                    0
                                }
                            })
                            .collect();
                        row.repeat(oh)
                    })
                })
                .collect();
            layout.taps = Taps::new(offsets, masks, 1, oh * ow, oh * ow);
            layout.len = pw + (h + 2 * ph) * w + pw;
        } else {
            let (hq, wq) = ((h + 2 * ph).div_ceil(sh), (w + 2 * pw).div_ceil(sw));
            let plane = hq * wq;
            let offsets: Vec<usize> = (0..kh * kw)
                .map(|t| {
                    let (ky, kx) = (t / kw, t % kw);
                    ((ky % sh) * sw + kx % sw) * plane + (ky / sh) * wq + kx / sw
                })
                .collect();
            let masks = vec![None; kh * kw];
            // Along the output's rows when a vector fits in one; else along `wq`-wide rows,
            // whose surplus positions are dropped afterwards.
            let (rows, len, wide) = if wq == ow {
                (1, oh * ow, false)
            } else if ow >= lanes {
                (oh, ow, false)
            } else {
                (1, oh * wq, true)
            };
            layout.taps = Taps::new(offsets, masks, rows, len, wq);
            layout.hq = hq;
            layout.wq = wq;
            layout.wide = wide;
            layout.len = layout.taps.reach().max(sh * sw * plane);
        }
        layout.len = layout.len.max(layout.taps.reach());
        layout
    }

    /// Copies one `h x w` channel into the buffer. Padding positions are never written here,
    /// so they keep the zero point the buffer was created with.
    fn fill(&self, image: &[u8], buf: &mut [u8]) {
        let [h, w] = self.input;
        let [sh, sw] = self.stride;
        let [ph, pw] = self.padding;
        if self.same {
            buf[pw + ph * w..][..h * w].copy_from_slice(image);
            return;
        }
        let plane = self.hq * self.wq;
        let (mut py, mut i) = (ph % sh, ph / sh);
        if sw == 2 {
            // Even and odd input columns in one pass; they land in phases pw % 2 and
            // (pw + 1) % 2, from phase columns pw / 2 and (pw + 1) / 2 on.
            let (ne, no) = (w.div_ceil(2), w / 2);
            for row in image.chunks_exact(w) {
                let at = |px: usize, j0: usize| (py * 2 + px) * plane + i * self.wq + j0;
                let (even, odd) = (at(pw % 2, pw / 2), at((pw + 1) % 2, pw.div_ceil(2)));
                // Disjoint: the two phase planes of row phase `py`.
                let (lo, hi) = buf.split_at_mut(even.max(odd));
                let (even, odd) = if even < odd {
                    (&mut lo[even..][..ne], &mut hi[..no])
                } else {
                    (&mut hi[..ne], &mut lo[odd..][..no])
                };
                split_columns(row, even, odd);
                py += 1;
                if py == sh {
                    (py, i) = (0, i + 1);
                }
            }
            return;
        }
        // Per column phase: the first input column in it, the phase column it lands in, and
        // how many input columns the phase takes.
        let columns: Vec<[usize; 4]> = (0..sw)
            .map(|px| {
                let x0 = (px + sw - pw % sw) % sw;
                [px, x0, (x0 + pw) / sw, w.saturating_sub(x0).div_ceil(sw)]
            })
            .filter(|&[_, _, _, n]| n > 0)
            .collect();
        for row in image.chunks_exact(w) {
            for &[px, x0, j0, n] in &columns {
                let dst = &mut buf[(py * sw + px) * plane + i * self.wq + j0..][..n];
                for (d, &v) in dst.iter_mut().zip(row[x0..].iter().step_by(sw)) {
                    *d = v;
                }
            }
            py += 1;
            if py == sh {
                (py, i) = (0, i + 1);
            }
        }
    }
}

/// `even[j] = row[2 * j]`, `odd[j] = row[2 * j + 1]`.
fn split_columns(row: &[u8], even: &mut [u8], odd: &mut [u8]) {
    assert!(even.len() == row.len().div_ceil(2) && odd.len() == row.len() / 2);
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    while 2 * done + 32 <= row.len() {
        // SAFETY: reads `row[2 * done..][..32]` and writes `even[done..][..16]` and
        // `odd[done..][..16]`, in bounds by the loop condition and the lengths asserted above;
        // SSE2 is part of x86_64.
        unsafe {
            let low_bytes = _mm_set1_epi16(0xFF);
            let a = _mm_loadu_si128(row.as_ptr().add(2 * done).cast());
            let b = _mm_loadu_si128(row.as_ptr().add(2 * done + 16).cast());
            let e = _mm_packus_epi16(_mm_and_si128(a, low_bytes), _mm_and_si128(b, low_bytes));
            let o = _mm_packus_epi16(_mm_srli_epi16(a, 8), _mm_srli_epi16(b, 8));
            _mm_storeu_si128(even.as_mut_ptr().add(done).cast(), e);
            _mm_storeu_si128(odd.as_mut_ptr().add(done).cast(), o);
        }
        done += 16;
    }
    for (j, v) in even.iter_mut().enumerate().skip(done) {
        *v = row[2 * j];
    }
    for (j, v) in odd.iter_mut().enumerate().skip(done) {
        *v = row[2 * j + 1];
    }
}
