//! Quantize, ReLU and add.

use super::requant::quantize_with_inverse;
use super::{Affine, AtenCapability, Fused, MemoryFormat, QTensor};
use crate::error::{Error, Result};

/// `torch.quantize_per_tensor(x, scale, zero_point, torch.quint8)` of an NCHW (or row-major)
/// float tensor: fbgemm `Quantize<uint8_t, LEGACY=false>`, i.e. `round(x * (1 / scale)) + zp`
/// (the zero point added after rounding), clamped to 0..255.
pub fn quantize(xs: &[f32], shape: &[usize], affine: Affine) -> Result<QTensor> {
    let inverse = 1.0 / affine.scale;
    let data = xs
        .iter()
        .map(|&x| quantize_with_inverse(x, inverse, affine.zero_point))
        .collect();
    QTensor::new(data, shape, affine, MemoryFormat::Contiguous)
}

/// Quantized `relu`: `max(q, zero_point)` on the input's grid.
pub fn relu(x: &QTensor) -> QTensor {
    let zp = x.affine().zero_point;
    let mut y = x.clone();
    y.data.iter_mut().for_each(|v| *v = (*v).max(zp));
    y
}

/// `torch.ops.quantized.add(a, b, scale, zero_point)` (`FloatFunctional.add` after convert), or
/// `add_relu`: ATen's `qadd_kernel` with the output in `a`'s memory format.
///
/// `qadd_kernel` dequantizes differently in its two loops. Its vectorised loop computes
/// `fma(scale, q, -scale * zp)` (the product `-scale * zp` rounded first); its scalar loop
/// computes `scale * (q - zp)`. They can differ in the last bit, which flips the rounding of a
/// few outputs in a hundred. With one thread and both inputs in the same memory format, ATen
/// walks the tensor in memory order, vectorised in steps of two `Vectorized<quint8>` (64
/// elements with AVX2, 128 with AVX-512), and the last `numel % step` elements go scalar; with
/// mixed formats every element goes scalar. `capability` says which ATen build ran.
pub fn add(
    a: &QTensor,
    b: &QTensor,
    output: Affine,
    fused: Fused,
    capability: AtenCapability,
) -> Result<QTensor> {
    if a.shape() != b.shape() {
        return Err(Error::Msg(format!(
            "int8 add: shapes {:?} and {:?} differ",
            a.shape(),
            b.shape()
        )));
    }
    let numel = a.data().len();
    let step = 2 * capability.quint8_lanes();
    let vectorised = if a.format() == b.format() {
        numel / step * step
    } else {
        0
    };
    // Dequantization depends on the value alone: tables of the 256 values replace the
    // per-element arithmetic, with the very same f32 operations.
    let table = |affine: Affine, fma: bool| -> [f32; 256] {
        let (s, z) = (affine.scale, affine.zero_point as f32);
        let premul = s * -z;
        std::array::from_fn(|q| {
            if fma {
                s.mul_add(q as f32, premul)
            } else {
                s * (q as f32 - z)
            }
        })
    };
    let (scalar_a, scalar_b) = (table(a.affine(), false), table(b.affine(), false));
    let inverse = 1.0 / output.scale;
    let finish = |sum: f32| {
        let sum = match fused {
            Fused::None => sum,
            Fused::Relu => sum.max(0.0),
        };
        quantize_with_inverse(sum, inverse, output.zero_point)
    };
    let data: Vec<u8> = if vectorised == 0 {
        a.data()
            .iter()
            .zip(b.data())
            .map(|(&qa, &qb)| finish(scalar_a[qa as usize] + scalar_b[qb as usize]))
            .collect()
    } else {
        let (vector_a, vector_b) = (table(a.affine(), true), table(b.affine(), true));
        let memory_index = memory_order(a.shape(), a.format());
        a.data()
            .iter()
            .zip(b.data())
            .enumerate()
            .map(|(i, (&qa, &qb))| {
                let (qa, qb) = (qa as usize, qb as usize);
                if memory_index(i) < vectorised {
                    finish(vector_a[qa] + vector_b[qb])
                } else {
                    finish(scalar_a[qa] + scalar_b[qb])
                }
            })
            .collect()
    };
    QTensor::new(data, a.shape(), output, a.format())
}

/// [`add`] of NCHW operands of which at least one is broadcast (a size-1 dim stretched to the
/// other's size): a broadcast operand is a strided view in ATen, so every element takes the
/// scalar loop. The output, `[N, C, H, W]` of the larger sizes, is in `format`.
pub fn add_broadcast(
    a: &QTensor,
    b: &QTensor,
    output: Affine,
    fused: Fused,
    format: MemoryFormat,
) -> Result<QTensor> {
    let ([an, ac, ah, aw], [bn, bc, bh, bw]) = (a.nchw("add")?, b.nchw("add")?);
    let size = |x: usize, y: usize| match (x, y) {
        _ if x == y => Ok(x),
        (1, y) => Ok(y),
        (x, 1) => Ok(x),
        _ => Err(Error::Msg(format!(
            "int8 add: shapes {:?} and {:?} do not broadcast",
            a.shape(),
            b.shape()
        ))),
    };
    let [n, c, h, w] = [size(an, bn)?, size(ac, bc)?, size(ah, bh)?, size(aw, bw)?];
    let table = |affine: Affine| -> [f32; 256] {
        let (s, z) = (affine.scale, affine.zero_point as f32);
        std::array::from_fn(|q| s * (q as f32 - z))
    };
    let (ta, tb) = (table(a.affine()), table(b.affine()));
    let inverse = 1.0 / output.scale;
    let finish = |sum: f32| {
        let sum = match fused {
            Fused::None => sum,
            Fused::Relu => sum.max(0.0),
        };
        quantize_with_inverse(sum, inverse, output.zero_point)
    };
    // Start of the row (item, channel, row) of an operand of size `dims`.
    let row = |[dn, dc, dh, dw]: [usize; 4], i: usize, ch: usize, y: usize| {
        let pick = |size: usize, k: usize| if size == 1 { 0 } else { k };
        ((pick(dn, i) * dc + pick(dc, ch)) * dh + pick(dh, y)) * dw
    };
    let mut data = Vec::with_capacity(n * c * h * w);
    for i in 0..n {
        for ch in 0..c {
            for y in 0..h {
                let ra = &a.data()[row([an, ac, ah, aw], i, ch, y)..][..aw];
                let rb = &b.data()[row([bn, bc, bh, bw], i, ch, y)..][..bw];
                match (aw == w, bw == w) {
                    (true, true) => data.extend(
                        ra.iter()
                            .zip(rb)
                            .map(|(&qa, &qb)| finish(ta[qa as usize] + tb[qb as usize])),
                    ),
                    (true, false) => {
                        let vb = tb[rb[0] as usize];
                        data.extend(ra.iter().map(|&qa| finish(ta[qa as usize] + vb)));
                    }
                    (false, true) => {
                        let va = ta[ra[0] as usize];
                        data.extend(rb.iter().map(|&qb| finish(va + tb[qb as usize])));
                    }
                    (false, false) => {
                        let v = finish(ta[ra[0] as usize] + tb[rb[0] as usize]);
                        data.extend(std::iter::repeat_n(v, w));
                    }
                }
            }
        }
    }
    QTensor::new(data, &[n, c, h, w], output, format)
}

/// Maps a logical (NCHW / row-major) index to its position in PyTorch's memory for `format`.
pub(crate) fn memory_order(shape: &[usize], format: MemoryFormat) -> impl Fn(usize) -> usize {
    let dims = match (format, shape) {
        (MemoryFormat::ChannelsLast, &[_, c, h, w]) => Some([c, h, w]),
        _ => None,
    };
    move |i| match dims {
        None => i,
        Some([c, h, w]) => {
            let (b, rest) = (i / (c * h * w), i % (c * h * w));
            let (ch, pixel) = (rest / (h * w), rest % (h * w));
            (b * h * w + pixel) * c + ch
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int8_relu_clamps_at_the_zero_point() {
        let x = quantize(&[-1.0, 0.0, 0.4, 2.0], &[4], Affine::new(0.1, 7)).unwrap();
        assert_eq!(x.data(), &[0, 7, 11, 27]);
        assert_eq!(relu(&x).data(), &[7, 7, 11, 27]);
        let top = QTensor::new(
            vec![0, 254, 255],
            &[3],
            Affine::new(1.0, 255),
            MemoryFormat::Contiguous,
        )
        .unwrap();
        assert_eq!(relu(&top).data(), &[255, 255, 255]);
    }

    #[test]
    fn int8_add_saturates_and_relu_clamps() {
        let g = Affine::new(1.0, 100);
        let a = QTensor::new(vec![255, 0, 100, 150], &[4], g, MemoryFormat::Contiguous).unwrap();
        let b = QTensor::new(vec![255, 0, 90, 100], &[4], g, MemoryFormat::Contiguous).unwrap();
        let y = add(&a, &b, g, Fused::None, AtenCapability::Avx2).unwrap();
        assert_eq!(y.data(), &[255, 0, 90, 150]);
        let y = add(&a, &b, g, Fused::Relu, AtenCapability::Avx2).unwrap();
        assert_eq!(y.data(), &[255, 100, 100, 150]);
    }

    #[test]
    fn int8_memory_order_of_channels_last() {
        let at = memory_order(&[1, 2, 2, 3], MemoryFormat::ChannelsLast);
        // Channel 1, pixel (0, 0) follows channel 0 of the same pixel.
        assert_eq!(at(6), 1);
        assert_eq!(at(1), 2);
        assert_eq!(at(11), 11);
    }
}
