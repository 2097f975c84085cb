//! Quantized `mean`: `torch.mean(q, dim, keepdim)` on a `quint8` tensor, as ATen's
//! `mean_out_quantized_cpu` computes it on the fbgemm engine with one intra-op thread.
//!
//! ATen has two paths, and which one runs decides the rounding:
//! - the fast path (`qmean_inner_dim_kernel`), taken when the input is NCHW-contiguous
//!   (`is_contiguous()`) and the reduced dims are the innermost ones (`dim=3`, `dim=(2, 3)` of
//!   an NCHW tensor): an exact integer sum of the raw `u8` values of each group (`hsum`), then
//!   `nearbyint(f32(sum) / f32(n))`. The zero point cancels; nothing is dequantized.
//! - otherwise (every channels-last conv output, or `dim=2`): `dequantize()`, the float
//!   `at::mean` (ATen's cascade `sum`, then `div_` by the element count in f32), and
//!   `quantize_per_tensor` back onto the input's grid (fbgemm `Quantize`). The float sum is not
//!   exact, so its order of additions matters; [`float_sum`] replays it.
//!
//! Both paths keep the input's scale and zero point.

use super::requant::quantize_with_inverse;
use super::{MemoryFormat, QTensor};
use crate::error::{Error, Result};

/// `torch.mean(x, dims, keepdim)` of a quantized tensor (rank 4 for a channels-last one): the
/// mean over `dims` (negative dims count from the end, as in PyTorch) on `x`'s grid.
///
/// - NCHW input, innermost dims (`dims = [3]`, `[2, 3]`, `[-1, -2]`): ATen's
///   `qmean_inner_dim_kernel`, `nearbyint(f32(sum of u8) / n)`;
/// - any other case, which includes every channels-last input (a conv output) for `dims = [2]`
///   (frequency), `[3]` (time) and `[2, 3]` (global pooling in a classifier head), and NCHW
///   input for `dims = [2]`: dequantize, the float mean as ATen's CPU `sum` kernel computes
///   it, then quantize with `round(mean * (1 / scale)) + zero_point`.
///
/// The output is `[N, C, 1, T]`, `[N, C, F, 1]`, `[N, C, 1, 1]` with `keepdim`, or the shape
/// with the reduced dims removed (`[N, C]`) without. Its format is the one PyTorch's result
/// suggests: NCHW, except the fast path on a channels-last input that is NCHW-contiguous too
/// (one channel, or `H = W = 1`), where ATen allocates the result channels-last (which
/// `[N, 1, 1, 1]` still reads as NCHW); there, without `keepdim`, PyTorch fails ("required rank 4
/// tensor to use channels_last format"), and so does this function.
pub fn mean(x: &QTensor, dims: &[isize], keepdim: bool) -> Result<QTensor> {
    let shape = x.shape();
    let rank = shape.len();
    let fail = |msg: String| Err(Error::Msg(format!("int8 mean: {msg}")));
    if dims.is_empty() {
        return fail("no dims to reduce".into());
    }
    if shape.contains(&0) {
        return fail(format!("empty tensor {shape:?}"));
    }
    let mut reduced = vec![false; rank];
    for &d in dims {
        let wrapped = if d < 0 { d + rank as isize } else { d };
        if !(0..rank as isize).contains(&wrapped) {
            return fail(format!("dim {d} out of range for shape {shape:?}"));
        }
        if std::mem::replace(&mut reduced[wrapped as usize], true) {
            return fail(format!("dim {d} appears twice in {dims:?}"));
        }
    }
    let keep_shape: Vec<usize> = (0..rank)
        .map(|d| if reduced[d] { 1 } else { shape[d] })
        .collect();
    let out_shape: Vec<usize> = if keepdim {
        keep_shape.clone()
    } else {
        (0..rank)
            .filter(|&d| !reduced[d])
            .map(|d| shape[d])
            .collect()
    };
    let affine = x.affine();
    let q_strides = strides_of(shape, x.format());
    let q_format = suggested_format(shape, &q_strides);

    // `is_innnermost_dim`: the sorted dims are rank-1, rank-2, ... without a gap.
    let innermost = {
        let first = reduced.iter().position(|&r| r).unwrap_or(rank);
        reduced[first..].iter().all(|&r| r)
    };
    if nchw_contiguous(shape, x.format()) && innermost {
        // `qmean_inner_dim_kernel`: the result is allocated in the input's suggested format.
        if q_format == MemoryFormat::ChannelsLast && out_shape.len() != 4 {
            return fail(format!(
                "PyTorch cannot allocate its channels-last result of shape {out_shape:?} \
                 (required rank 4 tensor to use channels_last format)"
            ));
        }
        let n: usize = (0..rank)
            .filter(|&d| reduced[d])
            .map(|d| shape[d])
            .product();
        let data = x
            .data()
            .chunks_exact(n)
            .map(|group| {
                let sum: i64 = group.iter().map(|&v| v as i64).sum();
                (sum as f32 / n as f32).round_ties_even() as u8
            })
            .collect();
        // Allocated channels-last, the result may still suggest NCHW (`[N, 1, 1, 1]`).
        let format = suggested_format(&out_shape, &strides_of(&out_shape, q_format));
        return QTensor::new(data, &out_shape, affine, format);
    }

    // Dequantize into a float tensor laid out as `dequantize()` allocates it (the quantized
    // tensor's suggested format), sum as ATen's CPU kernel does, divide, requantize.
    let in_strides = strides_of(shape, q_format);
    let mut memory = vec![0.0f32; x.data().len()];
    // `dequantize()`'s value of each byte: `scale * (q - zero_point)` in f32.
    let table: [f32; 256] =
        std::array::from_fn(|q| affine.scale * (q as i32 - affine.zero_point as i32) as f32);
    match (q_format, shape) {
        // The layout every conv output has: a transpose, without per-element index arithmetic.
        (MemoryFormat::ChannelsLast, &[n, c, h, w]) => {
            let plane = h * w;
            for (i, chunk) in x.data().chunks_exact(plane).enumerate() {
                let (b, ch) = (i / c, i % c);
                let base = b * plane * c + ch;
                for (p, &v) in chunk.iter().enumerate() {
                    memory[base + p * c] = table[v as usize];
                }
            }
            debug_assert_eq!(n * c * plane, memory.len());
        }
        _ => {
            for (i, &v) in x.data().iter().enumerate() {
                memory[offset_of(i, shape, &in_strides)] = table[v as usize];
            }
        }
    }
    // The result is NCHW; its reduced dims have stride 0 where the iterator broadcasts them
    // (any reduced dim without `keepdim`, a reduced dim longer than 1 with it).
    let keep_strides = strides_of(&keep_shape, MemoryFormat::Contiguous);
    let out_strides: Vec<usize> = (0..rank)
        .map(|d| {
            if reduced[d] && (!keepdim || shape[d] != 1) {
                0
            } else {
                keep_strides[d]
            }
        })
        .collect();
    let count = (0..rank)
        .filter(|&d| reduced[d])
        .map(|d| shape[d])
        .product::<usize>() as f32;
    let sums = float_sum(
        &memory,
        shape,
        &in_strides,
        &out_strides,
        keep_shape.iter().product(),
    );
    let inverse = 1.0 / affine.scale;
    let data = sums
        .into_iter()
        .map(|s| quantize_with_inverse(s / count, inverse, affine.zero_point))
        .collect();
    QTensor::new(data, &out_shape, affine, MemoryFormat::Contiguous)
}

/// The strides (in elements) PyTorch allocates a tensor of `shape` with in `format`
/// (`get_channels_last_strides_2d` for channels-last).
fn strides_of(shape: &[usize], format: MemoryFormat) -> Vec<usize> {
    match (format, shape) {
        (MemoryFormat::ChannelsLast, &[_, c, h, w]) => vec![h * w * c, 1, w * c, c],
        _ => {
            let mut strides = vec![1; shape.len()];
            for d in (0..shape.len().saturating_sub(1)).rev() {
                strides[d] = strides[d + 1] * shape[d + 1];
            }
            strides
        }
    }
}

/// Whether a tensor tagged `format` is `is_contiguous()` in PyTorch: a channels-last tensor is
/// when it has one channel or one pixel.
fn nchw_contiguous(shape: &[usize], format: MemoryFormat) -> bool {
    match (format, shape) {
        (MemoryFormat::ChannelsLast, &[_, c, h, w]) => c == 1 || h * w == 1,
        _ => true,
    }
}

/// `suggest_memory_format()`: channels-last when `is_channels_last_strides_2d` holds for the
/// strides (rank 4 only), which resolves the ambiguous shapes (`[N, 1, 1, 1]`) to NCHW.
fn suggested_format(shape: &[usize], strides: &[usize]) -> MemoryFormat {
    if shape.len() != 4 || strides[1] == 0 {
        return MemoryFormat::Contiguous;
    }
    let mut min = 0;
    for d in [1, 3, 2, 0] {
        if shape[d] == 0 || strides[d] < min || (d == 0 && min == strides[1]) {
            return MemoryFormat::Contiguous;
        }
        min = strides[d] * shape[d];
    }
    MemoryFormat::ChannelsLast
}

/// The memory offset of logical (row-major) index `i`.
fn offset_of(mut i: usize, shape: &[usize], strides: &[usize]) -> usize {
    let mut offset = 0;
    for d in (0..shape.len()).rev() {
        offset += (i % shape[d]) * strides[d];
        i /= shape[d];
    }
    offset
}

/// `Vectorized<float>::size()` of the `sum` kernel that runs. ATen registers `sum_stub` with
/// `REGISTER_DISPATCH`, which leaves the AVX-512 slot empty, so AVX-512 machines run the AVX2
/// kernel too (8 lanes), and the generic build has 32-byte vectors as well.
const LANES: usize = 8;

type Lanes = [f32; LANES];

/// ATen's CPU `sum` of a float tensor over the dims where `out_strides` is 0 (or has size 1):
/// the `TensorIterator` of a reduction (dims sorted by stride with the reduced ones innermost,
/// then coalesced), walked serially, with `cascade_sum`'s 2-D loop on each step. `memory` is the
/// input in memory order, `in_strides` its strides in elements; the result is `out_len` values in
/// the order of `out_strides`.
fn float_sum(
    memory: &[f32],
    shape: &[usize],
    in_strides: &[usize],
    out_strides: &[usize],
    out_len: usize,
) -> Vec<f32> {
    let (shape, strides) = reorder_and_coalesce(shape, [out_strides, in_strides]);
    let mut out = vec![0.0f32; out_len];
    let mut sum = CascadeSum {
        input: memory,
        out: &mut out,
    };
    let dim = |d: usize| -> (usize, [usize; 2]) {
        shape
            .get(d)
            .map_or((1, [0, 0]), |&s| (s, [strides[0][d], strides[1][d]]))
    };
    let ((size0, s0), (size1, s1)) = (dim(0), dim(1));
    // `serial_for_each`: the first two dims in one call, the outer ones counted (dim 2 fastest).
    let outer = shape.len().saturating_sub(2);
    let mut counter = vec![0usize; outer];
    loop {
        let (mut po, mut pi) = (0, 0);
        for (k, &c) in counter.iter().enumerate() {
            po += c * strides[0][k + 2];
            pi += c * strides[1][k + 2];
        }
        sum.step(po, pi, [s0[0], s0[1], s1[0], s1[1]], size0, size1);
        let mut k = 0;
        while k < outer {
            counter[k] += 1;
            if counter[k] < shape[k + 2] {
                break;
            }
            counter[k] = 0;
            k += 1;
        }
        if k == outer {
            break;
        }
    }
    out
}

/// `TensorIteratorBase::reorder_dimensions` and `coalesce_dimensions` for a reduction with
/// operands `[output, input]`: the shape and per-operand strides, fastest dim first.
fn reorder_and_coalesce(shape: &[usize], ops: [&[usize]; 2]) -> (Vec<usize>, [Vec<usize>; 2]) {
    let ndim = shape.len();
    // 1 when dim0 should come after dim1, -1 before, 0 when ambiguous.
    let should_swap = |d0: usize, d1: usize| -> i32 {
        for (arg, strides) in ops.iter().enumerate() {
            let (s0, s1) = (strides[d0], strides[d1]);
            if arg == 0 && (s0 == 0) != (s1 == 0) {
                // Reduced dims (output stride 0) go first.
                return if s1 == 0 { 1 } else { -1 };
            }
            if s0 == 0 || s1 == 0 {
                continue;
            }
            if s0 != s1 {
                return if s0 < s1 { -1 } else { 1 };
            }
            if shape[d0] > shape[d1] {
                return 1;
            }
        }
        0
    };
    let mut perm: Vec<usize> = (0..ndim).rev().collect();
    // Insertion sort that steps over ambiguous pairs, as ATen's does.
    for i in 1..ndim {
        let mut d1 = i;
        for d0 in (0..i).rev() {
            match should_swap(perm[d0], perm[d1]) {
                c if c > 0 => {
                    perm.swap(d0, d1);
                    d1 = d0;
                }
                c if c < 0 => break,
                _ => {}
            }
        }
    }
    let mut shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let mut strides = ops.map(|s| perm.iter().map(|&p| s[p]).collect::<Vec<_>>());
    if shape.len() > 1 {
        let mut prev = 0;
        for d in 1..shape.len() {
            let (a, b) = (shape[prev], shape[d]);
            let can = a == 1 || b == 1 || strides.iter().all(|s| a * s[prev] == s[d]);
            if can {
                if a == 1 {
                    strides.iter_mut().for_each(|s| s[prev] = s[d]);
                }
                shape[prev] *= b;
            } else {
                prev += 1;
                if prev != d {
                    strides.iter_mut().for_each(|s| s[prev] = s[d]);
                    shape[prev] = b;
                }
            }
        }
        shape.truncate(prev + 1);
        strides.iter_mut().for_each(|s| s.truncate(prev + 1));
    }
    (shape, strides)
}

/// `cascade_sum`'s loop body (aten/src/ATen/native/cpu/SumKernel.cpp) over f32 with f32
/// accumulators, results added into the output (`CastStoreAccumulate`).
struct CascadeSum<'a> {
    input: &'a [f32],
    out: &'a mut [f32],
}

impl CascadeSum<'_> {
    fn scalar(&self, at: usize) -> [f32; 1] {
        [self.input[at]]
    }

    fn vector(&self, at: usize) -> Lanes {
        self.input[at..at + LANES].try_into().unwrap()
    }

    fn store(&mut self, at: usize, value: f32) {
        self.out[at] += value;
    }

    /// One call of the 2-D loop: `strides` is `[out0, in0, out1, in1]` in elements.
    fn step(&mut self, po: usize, pi: usize, strides: [usize; 4], size0: usize, size1: usize) {
        let (mut in_s, mut out_s) = ([strides[1], strides[3]], [strides[0], strides[2]]);
        let (mut size0, mut size1) = (size0, size1);
        // Move the reduction to the first dim.
        if out_s[0] != 0 && out_s[1] == 0 {
            in_s.swap(0, 1);
            out_s.swap(0, 1);
            std::mem::swap(&mut size0, &mut size1);
        }
        if out_s[0] != 0 && out_s[1] != 0 {
            // Not a reduction: out = out + in.
            for j in 0..size1 {
                for i in 0..size0 {
                    let x = self.input[pi + j * strides[3] + i * strides[1]];
                    self.store(po + j * strides[2] + i * strides[0], x);
                }
            }
            return;
        }
        let out_stride = out_s[1];
        if in_s[0] == 1 && size0 >= LANES {
            // vectorized_inner_sum: the reduced dim is contiguous.
            let vec_size = size0 / LANES;
            for j in 0..size1 {
                let row = pi + j * in_s[1];
                let acc = row_sum(vec_size, |i| self.vector(row + i * LANES));
                let mut total = 0.0f32;
                for k in vec_size * LANES..size0 {
                    total += self.input[row + k];
                }
                for lane in acc {
                    total += lane;
                }
                self.store(po + j * out_stride, total);
            }
        } else if in_s[1] == 1 && size1 >= LANES {
            // vectorized_outer_sum: the kept dim is contiguous; 4 vectors of columns at once.
            let mut j = 0;
            while j + 4 * LANES <= size1 {
                let row = pi + j;
                let sums: [Lanes; 4] =
                    multi_row_sum(size0, |i, k| self.vector(row + i * in_s[0] + k * LANES));
                for (r, lanes) in sums.iter().enumerate() {
                    for (l, &v) in lanes.iter().enumerate() {
                        self.store(po + (j + r * LANES + l) * out_stride, v);
                    }
                }
                j += 4 * LANES;
            }
            while j + LANES <= size1 {
                let row = pi + j;
                let sums = row_sum(size0, |i| self.vector(row + i * in_s[0]));
                for (l, &v) in sums.iter().enumerate() {
                    self.store(po + (j + l) * out_stride, v);
                }
                j += LANES;
            }
            while j < size1 {
                let row = pi + j;
                let [s] = row_sum(size0, |i| self.scalar(row + i * in_s[0]));
                self.store(po + j * out_stride, s);
                j += 1;
            }
        } else if in_s[0] < in_s[1] {
            // scalar_inner_sum
            for j in 0..size1 {
                let row = pi + j * in_s[1];
                let [s] = row_sum(size0, |i| self.scalar(row + i * in_s[0]));
                self.store(po + j * out_stride, s);
            }
        } else {
            // scalar_outer_sum: 4 outputs at once.
            let mut j = 0;
            while j + 3 < size1 {
                let row = pi + j * in_s[1];
                let sums: [[f32; 1]; 4] =
                    multi_row_sum(size0, |i, k| self.scalar(row + i * in_s[0] + k * in_s[1]));
                for (k, [s]) in sums.into_iter().enumerate() {
                    self.store(po + (j + k) * out_stride, s);
                }
                j += 4;
            }
            while j < size1 {
                let row = pi + j * in_s[1];
                let [s] = row_sum(size0, |i| self.scalar(row + i * in_s[0]));
                self.store(po + j * out_stride, s);
                j += 1;
            }
        }
    }
}

fn add_lanes<const L: usize>(acc: &mut [f32; L], x: [f32; L]) {
    acc.iter_mut().zip(x).for_each(|(a, b)| *a += b);
}

/// `utils::CeilLog2`.
fn ceil_log2(x: usize) -> usize {
    if x <= 2 {
        1
    } else {
        (usize::BITS - (x - 1).leading_zeros()) as usize
    }
}

/// `multi_row_sum`: `R` sums of `size` rows at once (`load(i, k)` is row `i`, sum `k`), in
/// four levels of partial sums whose chunks are `2^level_power` rows long.
fn multi_row_sum<const L: usize, const R: usize>(
    size: usize,
    load: impl Fn(usize, usize) -> [f32; L],
) -> [[f32; L]; R] {
    const LEVELS: usize = 4;
    let level_power = (ceil_log2(size) / LEVELS).max(4);
    let level_step = 1usize << level_power;
    let level_mask = level_step - 1;
    let mut acc = [[[0.0f32; L]; R]; LEVELS];
    let mut i = 0;
    while i + level_step <= size {
        for _ in 0..level_step {
            for (k, a) in acc[0].iter_mut().enumerate() {
                add_lanes(a, load(i, k));
            }
            i += 1;
        }
        for j in 1..LEVELS {
            let (below, above) = acc.split_at_mut(j);
            for (lower, upper) in below[j - 1].iter_mut().zip(above[0].iter_mut()) {
                add_lanes(upper, std::mem::replace(lower, [0.0; L]));
            }
            if i & (level_mask << (j * level_power)) != 0 {
                break;
            }
        }
    }
    while i < size {
        for (k, a) in acc[0].iter_mut().enumerate() {
            add_lanes(a, load(i, k));
        }
        i += 1;
    }
    let (first, rest) = acc.split_at_mut(1);
    for level in rest.iter() {
        for (sum, &upper) in first[0].iter_mut().zip(level) {
            add_lanes(sum, upper);
        }
    }
    acc[0]
}

/// `row_sum`: element `i` of the row is `load(i)`; four interleaved partial sums, the tail
/// added to the first, then the other three.
fn row_sum<const L: usize>(size: usize, load: impl Fn(usize) -> [f32; L]) -> [f32; L] {
    let ilp = size / 4;
    let mut partial: [[f32; L]; 4] = multi_row_sum(ilp, |i, k| load(i * 4 + k));
    for i in ilp * 4..size {
        add_lanes(&mut partial[0], load(i));
    }
    for k in 1..4 {
        let p = partial[k];
        add_lanes(&mut partial[0], p);
    }
    partial[0]
}

#[cfg(test)]
mod tests {
    use super::super::Affine;
    use super::*;

    fn tensor(data: Vec<u8>, shape: &[usize], format: MemoryFormat) -> QTensor {
        QTensor::new(data, shape, Affine::new(0.5, 10), format).unwrap()
    }

    #[test]
    fn int8_mean_fast_path_rounds_raw_sums_half_to_even() {
        // Rows [1, 2] and [3, 4]: means 1.5 -> 2 and 3.5 -> 4; [0, 1]: 0.5 -> 0.
        let x = tensor(
            vec![1, 2, 3, 4, 0, 1],
            &[1, 1, 3, 2],
            MemoryFormat::Contiguous,
        );
        let y = mean(&x, &[-1], true).unwrap();
        assert_eq!(y.shape(), &[1, 1, 3, 1]);
        assert_eq!(y.data(), &[2, 4, 0]);
        assert_eq!(y.format(), MemoryFormat::Contiguous);
        let y = mean(&x, &[2, 3], false).unwrap();
        assert_eq!(y.shape(), &[1, 1]);
        assert_eq!(y.data(), &[2]); // 11 / 6
    }

    #[test]
    fn int8_mean_fallback_requantizes_on_the_input_grid() {
        // Channels-last [1, 2, 2, 2] over dim 2: channel 0 columns (10, 13) and (11, 16),
        // means in real units 0.75 and 1.75 -> q = 10 + round(1.5) = 12, 10 + round(3.5) = 14.
        let data = vec![10, 11, 13, 16, 0, 0, 20, 20];
        let x = tensor(data, &[1, 2, 2, 2], MemoryFormat::ChannelsLast);
        let y = mean(&x, &[2], true).unwrap();
        assert_eq!(y.shape(), &[1, 2, 1, 2]);
        assert_eq!(y.data(), &[12, 14, 10, 10]);
        assert_eq!(y.format(), MemoryFormat::Contiguous);
        assert_eq!(y.affine(), x.affine());
    }

    #[test]
    fn int8_mean_checks_its_dims() {
        let x = tensor(vec![0; 8], &[1, 2, 2, 2], MemoryFormat::ChannelsLast);
        assert!(mean(&x, &[], true).is_err());
        assert!(mean(&x, &[4], true).is_err());
        assert!(mean(&x, &[-5], true).is_err());
        assert!(mean(&x, &[3, -1], true).is_err());
        // One pixel per channel: NCHW-contiguous too, so the fast path, which allocates its
        // result channels-last and cannot drop dims.
        let x = tensor(vec![0; 4], &[2, 2, 1, 1], MemoryFormat::ChannelsLast);
        assert_eq!(
            mean(&x, &[3], true).unwrap().format(),
            MemoryFormat::ChannelsLast
        );
        assert!(mean(&x, &[2, 3], false).is_err());
        // One channel: the fast path too, and its [N, 1, 1, 1] result suggests NCHW.
        let x = tensor(vec![0; 18], &[2, 1, 3, 3], MemoryFormat::ChannelsLast);
        assert_eq!(
            mean(&x, &[3], true).unwrap().format(),
            MemoryFormat::ChannelsLast
        );
        assert_eq!(
            mean(&x, &[2, 3], true).unwrap().format(),
            MemoryFormat::Contiguous
        );
    }

    #[test]
    fn int8_mean_suggested_format_resolves_ambiguous_strides() {
        let cl = |s: &[usize]| suggested_format(s, &strides_of(s, MemoryFormat::ChannelsLast));
        assert_eq!(cl(&[2, 8, 5, 7]), MemoryFormat::ChannelsLast);
        assert_eq!(cl(&[2, 1, 5, 7]), MemoryFormat::ChannelsLast);
        assert_eq!(cl(&[2, 8, 1, 1]), MemoryFormat::ChannelsLast);
        assert_eq!(cl(&[2, 1, 1, 1]), MemoryFormat::Contiguous);
        let nchw = |s: &[usize]| suggested_format(s, &strides_of(s, MemoryFormat::Contiguous));
        assert_eq!(nchw(&[2, 8, 1, 1]), MemoryFormat::Contiguous);
        assert_eq!(nchw(&[2, 8, 5, 7]), MemoryFormat::Contiguous);
    }

    #[test]
    fn int8_mean_float_sum_matches_atens_order() {
        // 2^24 then 63 ones: exactly 2^24 + 63, a running f32 sum gives 2^24 (every 1 lost),
        // ATen's 8 lanes x 4 partial sums give 2^24 + 62 (only the 1 that meets 2^24 in lane 0
        // is lost). `torch.ones(64)` with `x[0] = 2**24`: `x.sum() - 2**24 == 62`.
        let mut xs = vec![1.0f32; 64];
        xs[0] = 16_777_216.0;
        assert_eq!(float_sum(&xs, &[64], &[1], &[0], 1), vec![16_777_278.0]);
        // The same row as a column of a [64, 1] tensor reduced over dim 0 (stride 1, kept dim of
        // size 1): coalesced to the same 1-D reduction.
        assert_eq!(
            float_sum(&xs, &[64, 1], &[1, 1], &[0, 1], 1),
            vec![16_777_278.0]
        );
    }
}
