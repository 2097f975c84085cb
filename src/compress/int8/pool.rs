//! Quantized pooling: `max_pool2d`, `avg_pool2d` and `adaptive_avg_pool2d(x, 1)`. All keep the
//! input's grid and memory format, as PyTorch's do.

use super::requant::quantize_with_inverse;
use super::{AtenCapability, QTensor};
use crate::error::{Error, Result};

/// Window, stride and zero padding per spatial dim (`[H, W]`); `ceil_mode` as in PyTorch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool2dConfig {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub ceil_mode: bool,
}

impl Pool2dConfig {
    /// `kernel` with stride `kernel`, no padding.
    pub fn new(kernel: [usize; 2]) -> Self {
        Pool2dConfig {
            kernel,
            stride: kernel,
            padding: [0, 0],
            ceil_mode: false,
        }
    }

    /// ATen's `pooling_output_shape` (dilation 1), after its argument checks.
    fn output(&self, x: &QTensor, op: &str) -> Result<[usize; 2]> {
        let [_, _, h, w] = x.nchw(op)?;
        let mut out = [0; 2];
        for d in 0..2 {
            let (size, k, s, p) = ([h, w][d], self.kernel[d], self.stride[d], self.padding[d]);
            if k == 0 || s == 0 || p > k / 2 || size + 2 * p < k {
                return Err(Error::Msg(format!(
                    "int8 {op}: bad window {self:?} for {:?}",
                    x.shape()
                )));
            }
            let round = if self.ceil_mode { s - 1 } else { 0 };
            let mut n = (size + 2 * p - k + round) / s + 1;
            if self.ceil_mode && (n - 1) * s >= size + p {
                n -= 1;
            }
            out[d] = n;
        }
        Ok(out)
    }
}

/// One pooling window along one dim: `[start, end)` inside the input and the padded length.
fn window(o: usize, k: usize, s: usize, p: usize, size: usize) -> (usize, usize, usize) {
    let start = (o * s) as isize - p as isize;
    let end = (start + k as isize).min((size + p) as isize);
    let padded = (end - start) as usize;
    (start.max(0) as usize, (end as usize).min(size), padded)
}

/// Quantized `max_pool2d` (dilation 1): the largest `u8` of each window, padding ignored.
pub fn max_pool2d(x: &QTensor, cfg: &Pool2dConfig) -> Result<QTensor> {
    let [n, c, h, w] = x.nchw("max_pool2d")?;
    let [oh, ow] = cfg.output(x, "max_pool2d")?;
    let mut out = Vec::with_capacity(n * c * oh * ow);
    for plane in x.data().chunks_exact(h * w) {
        for y in 0..oh {
            let (y0, y1, _) = window(y, cfg.kernel[0], cfg.stride[0], cfg.padding[0], h);
            for xo in 0..ow {
                let (x0, x1, _) = window(xo, cfg.kernel[1], cfg.stride[1], cfg.padding[1], w);
                let max = (y0..y1)
                    .flat_map(|yy| plane[yy * w + x0..yy * w + x1].iter().copied())
                    .max()
                    .unwrap_or(0);
                out.push(max);
            }
        }
    }
    QTensor::new(out, &[n, c, oh, ow], x.affine(), x.format())
}

/// Quantized `avg_pool2d` (no divisor override). PyTorch has two kernels that round
/// differently, chosen by memory format:
/// - NCHW (`avg_pool2d_out_frame`): `nearbyint(f32(sum - size * zp) * m + zp)` with
///   `m = f32(1.0 / divisor)` in double, the zero point added before rounding;
/// - channels-last (`_qavg_pool_nhwc_kernel`): `round(acc * m) + zp` with `m = 1.0f / divisor`
///   on channels vectorised in blocks (8 with AVX2, 16 with AVX-512), and ATen's scalar
///   `quantize_val`, which multiplies by `1 / (1 / m)`, on the remaining channels (the same
///   f32 value for every divisor below 64).
pub fn avg_pool2d(
    x: &QTensor,
    cfg: &Pool2dConfig,
    count_include_pad: bool,
    capability: AtenCapability,
) -> Result<QTensor> {
    let [n, c, h, w] = x.nchw("avg_pool2d")?;
    let [oh, ow] = cfg.output(x, "avg_pool2d")?;
    let zp = x.affine().zero_point;
    let vector_channels = c / (capability.quint8_lanes() / 4) * (capability.quint8_lanes() / 4);
    let channels_last = x.format() == super::MemoryFormat::ChannelsLast;
    let mut out = Vec::with_capacity(n * c * oh * ow);
    for (i, plane) in x.data().chunks_exact(h * w).enumerate() {
        let channel = i % c;
        for y in 0..oh {
            let (y0, y1, ph) = window(y, cfg.kernel[0], cfg.stride[0], cfg.padding[0], h);
            for xo in 0..ow {
                let (x0, x1, pw) = window(xo, cfg.kernel[1], cfg.stride[1], cfg.padding[1], w);
                let size = ((y1 - y0) * (x1 - x0)) as i32;
                let divisor = if count_include_pad {
                    (ph * pw) as i32
                } else {
                    size
                };
                let sum: i32 = (y0..y1)
                    .flat_map(|yy| plane[yy * w + x0..yy * w + x1].iter())
                    .map(|&v| v as i32)
                    .sum();
                let acc = (sum - size * zp as i32) as f32;
                let q = if channels_last {
                    let m = 1.0f32 / divisor as f32;
                    let inverse = if channel < vector_channels {
                        m
                    } else {
                        1.0 / (1.0 / m)
                    };
                    quantize_with_inverse(acc, inverse, zp)
                } else {
                    let m = (1.0f64 / divisor as f64) as f32;
                    (acc * m + zp as f32).round_ties_even().clamp(0.0, 255.0) as u8
                };
                out.push(q);
            }
        }
    }
    QTensor::new(out, &[n, c, oh, ow], x.affine(), x.format())
}

/// Quantized `adaptive_avg_pool2d(x, 1)` (global average pooling), `[N, C, 1, 1]`:
/// - NCHW (`adaptive_avg_pool_single_out_frame`): `nearbyint(f32(sum) * ((1.0f / H) / W))` on
///   the raw values (the zero point cancels);
/// - channels-last (`_qadaptive_avg_pool_kernel`): `round((sum - size * zp) * (1 / (1 / m))) + zp`
///   with `m = 1.0f / (H * W)`, on every channel.
pub fn adaptive_avg_pool2d_1x1(x: &QTensor) -> Result<QTensor> {
    let [n, c, h, w] = x.nchw("adaptive_avg_pool2d")?;
    let zp = x.affine().zero_point;
    let size = (h * w) as i64;
    let out = x
        .data()
        .chunks_exact(h * w)
        .map(|plane| {
            let sum: i64 = plane.iter().map(|&v| v as i64).sum();
            match x.format() {
                super::MemoryFormat::Contiguous => {
                    let r = (1.0f32 / h as f32) / w as f32;
                    (sum as f32 * r).round_ties_even() as u8
                }
                super::MemoryFormat::ChannelsLast => {
                    let m = 1.0f32 / size as f32;
                    let acc = (sum - size * zp as i64) as f32;
                    quantize_with_inverse(acc, 1.0 / (1.0 / m), zp)
                }
            }
        })
        .collect();
    QTensor::new(out, &[n, c, 1, 1], x.affine(), x.format())
}
