//! PyTorch's per-tensor affine `quint8` activation observers (`torch.ao.quantization.observer`
//! of torch 2.11), in plain Rust and bit-exact: the same `f32` histograms, the same searched
//! range and the same `(scale, zero_point)`.
//!
//! - [`MinMaxObserver`]: running min/max, then `_calculate_qparams`.
//! - [`HistogramObserver`]: fbgemm's default activation observer
//!   (`HistogramObserver.with_args(reduce_range=True)`): a 2048-bin `torch.histc` histogram that
//!   is re-binned onto the wider range whenever a batch extends it, then the L2
//!   `_non_linear_param_search` for a clipped range, then `_calculate_qparams`.
//!
//! Exactness follows ATen's x86 CPU kernels as they run with one intra-op thread and the AVX2 or
//! AVX-512 capability (the stubs used here, `sum` and `linspace`, dispatch to their AVX2 build on
//! AVX-512 machines too, so both give the same results): `linspace` is contracted to fused
//! multiply-adds and `sum` is ATen's 8-lane cascade sum. ATen's `DEFAULT` capability (no AVX2)
//! computes `linspace` without FMA and may differ in the last bit of a re-binned histogram.
//!
//! Unlike PyTorch, non-finite input is refused with an error (PyTorch's `HistogramObserver`
//! silently drops infinities and fails on NaN; its `MinMaxObserver` keeps them as the range),
//! and asking for the qparams of an observer that saw no values is an error rather than
//! PyTorch's warning and `(1.0, 0)`.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

/// Per-tensor affine quantization parameters of one activation point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QParams {
    pub scale: f64,
    pub zero_point: i64,
    pub quant_min: i64,
    pub quant_max: i64,
}

/// An activation observer: sees every calibration batch at one activation point, then gives
/// that point's quantization parameters.
pub trait Observer: std::fmt::Debug + Send {
    /// Records one batch of values (any shape, flattened). Empty batches are ignored, as
    /// PyTorch does; non-finite values are an error and leave the observer unchanged.
    fn observe(&mut self, xs: &[f32]) -> Result<()>;
    /// The quantization parameters of everything observed so far (PyTorch's
    /// `calculate_qparams`); an error when nothing was observed.
    fn qparams(&self) -> Result<QParams>;
}

/// Which observer an activation point gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObserverKind {
    /// `MinMaxObserver`.
    MinMax,
    /// `HistogramObserver` (fbgemm's default activation observer).
    Histogram,
}

impl ObserverKind {
    /// The recipe's name of the observer.
    pub fn name(self) -> &'static str {
        match self {
            ObserverKind::MinMax => "min_max",
            ObserverKind::Histogram => "histogram",
        }
    }

    /// A fresh observer of this kind for per-tensor affine `quint8`; `reduce_range` halves the
    /// quantized range to 0..127 as fbgemm's qconfig does.
    pub fn build(self, reduce_range: bool) -> Box<dyn Observer> {
        match self {
            ObserverKind::MinMax => Box::new(MinMaxObserver::new(reduce_range)),
            ObserverKind::Histogram => Box::new(HistogramObserver::new(reduce_range)),
        }
    }
}

/// `quint8`'s `(quant_min, quant_max)`: 0..127 with `reduce_range`, else 0..255.
pub fn quant_range(reduce_range: bool) -> (i64, i64) {
    if reduce_range {
        (0, 127)
    } else {
        (0, 255)
    }
}

/// PyTorch's `_calculate_qparams` for per-tensor affine quantization of the range
/// `[min, max]` (`min <= max`), in its `float32` arithmetic: the range is widened to include 0,
/// the scale clamped below at `finfo(float32).eps`, the zero point rounded half to even.
pub fn affine_qparams(min: f32, max: f32, quant_min: i64, quant_max: i64) -> QParams {
    let min_neg = min.min(0.0);
    let max_pos = max.max(0.0);
    let scale = ((max_pos - min_neg) / (quant_max - quant_min) as f32).max(f32::EPSILON);
    let zero_point =
        (quant_min - (min_neg / scale).round_ties_even() as i64).clamp(quant_min, quant_max);
    QParams {
        scale: scale as f64,
        zero_point,
        quant_min,
        quant_max,
    }
}

/// Min and max of `xs`, or an error when a value is not finite; `None` for an empty slice.
fn finite_min_max(xs: &[f32]) -> Result<Option<(f32, f32)>> {
    let Some(&first) = xs.first() else {
        return Ok(None);
    };
    let (mut lo, mut hi, mut finite) = (first, first, true);
    for &x in xs {
        lo = lo.min(x);
        hi = hi.max(x);
        finite &= x.is_finite();
    }
    if !finite {
        let bad = xs
            .iter()
            .find(|x| !x.is_finite())
            .copied()
            .unwrap_or(f32::NAN);
        return Err(Error::msg(format!(
            "activation observer: non-finite value {bad} in a calibration batch of {} values",
            xs.len()
        )));
    }
    Ok(Some((lo, hi)))
}

/// PyTorch's `MinMaxObserver` (per-tensor affine `quint8`).
#[derive(Debug, Clone, PartialEq)]
pub struct MinMaxObserver {
    range: Option<(f32, f32)>,
    quant_min: i64,
    quant_max: i64,
}

impl MinMaxObserver {
    /// An observer that has seen nothing yet.
    pub fn new(reduce_range: bool) -> Self {
        let (quant_min, quant_max) = quant_range(reduce_range);
        MinMaxObserver {
            range: None,
            quant_min,
            quant_max,
        }
    }

    /// The running `(min, max)`, `None` before the first value.
    pub fn range(&self) -> Option<(f32, f32)> {
        self.range
    }
}

impl Observer for MinMaxObserver {
    fn observe(&mut self, xs: &[f32]) -> Result<()> {
        if let Some((lo, hi)) = finite_min_max(xs)? {
            self.range = Some(match self.range {
                Some((a, b)) => (a.min(lo), b.max(hi)),
                None => (lo, hi),
            });
        }
        Ok(())
    }

    fn qparams(&self) -> Result<QParams> {
        let (lo, hi) = self
            .range
            .ok_or_else(|| Error::msg("MinMax observer: no values observed"))?;
        Ok(affine_qparams(lo, hi, self.quant_min, self.quant_max))
    }
}

/// `HistogramObserver`'s default number of bins.
pub const HISTOGRAM_BINS: usize = 2048;
/// `HistogramObserver.upsample_rate` in torch 2.11: each old bin is split into this many
/// sub-bins when the histogram is re-binned onto a wider range.
pub const UPSAMPLE_RATE: usize = 16;
/// `HistogramObserver.dst_nbins`: `2 ** bits` of `quint8`, also with `reduce_range`.
const DST_NBINS: usize = 256;

/// PyTorch's `HistogramObserver` (per-tensor affine `quint8`, 2048 bins).
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramObserver {
    /// `(min_val, max_val)`: the histogram's range, `None` before the first value.
    range: Option<(f32, f32)>,
    histogram: Vec<f32>,
    quant_min: i64,
    quant_max: i64,
}

impl HistogramObserver {
    /// An observer that has seen nothing yet.
    pub fn new(reduce_range: bool) -> Self {
        let (quant_min, quant_max) = quant_range(reduce_range);
        HistogramObserver {
            range: None,
            histogram: vec![0.0; HISTOGRAM_BINS],
            quant_min,
            quant_max,
        }
    }

    /// The histogram's `(min_val, max_val)`, `None` before the first value.
    pub fn range(&self) -> Option<(f32, f32)> {
        self.range
    }

    /// The `f32` bin weights (PyTorch's `histogram` buffer).
    pub fn histogram(&self) -> &[f32] {
        &self.histogram
    }

    /// The clipped range `_non_linear_param_search` picks, from which the qparams follow;
    /// `None` before the first value.
    pub fn searched_range(&self) -> Option<(f32, f32)> {
        self.range.map(|(min, max)| {
            let (start_bin, end_bin) = non_linear_param_search(&self.histogram, min, max);
            // `self.min_val + bin_width * start_bin`: 0-d float32 tensor ops, not fused.
            let bin_width = (max - min) / HISTOGRAM_BINS as f32;
            (
                min + bin_width * start_bin as f32,
                min + bin_width * (end_bin + 1) as f32,
            )
        })
    }
}

impl Observer for HistogramObserver {
    fn observe(&mut self, xs: &[f32]) -> Result<()> {
        let Some((x_min, x_max)) = finite_min_max(xs)? else {
            return Ok(());
        };
        let Some((cur_min, cur_max)) = self.range else {
            // `reset_histogram`.
            self.histogram = histc(xs, x_min, x_max);
            self.range = Some((x_min, x_max));
            return Ok(());
        };
        let (new_min, new_max) = (cur_min.min(x_min), cur_max.max(x_max));
        let update = histc(xs, new_min, new_max);
        let old = if new_min == cur_min && new_max == cur_max {
            std::mem::take(&mut self.histogram)
        } else if cur_min == cur_max {
            // `_combine_histograms` of a one-value histogram: its whole weight moves to the
            // bin of that value in the new range.
            let weight = aten_sum(&self.histogram);
            histc(&[cur_min], new_min, new_max)
                .into_iter()
                .map(|one_hot| one_hot * weight)
                .collect()
        } else {
            upscale_histogram(&self.histogram, cur_min, cur_max, new_min, new_max)
        };
        self.histogram = update.iter().zip(&old).map(|(u, o)| u + o).collect();
        self.range = Some((new_min, new_max));
        Ok(())
    }

    fn qparams(&self) -> Result<QParams> {
        let (lo, hi) = self
            .searched_range()
            .ok_or_else(|| Error::msg("Histogram observer: no values observed"))?;
        Ok(affine_qparams(lo, hi, self.quant_min, self.quant_max))
    }
}

/// `torch.histc(xs, HISTOGRAM_BINS, min, max)` of float32 values that all lie in `[min, max]`
/// (ATen's linear-interpolation histogram kernel; counts are accumulated in `f32`).
fn histc(xs: &[f32], min: f32, max: f32) -> Vec<f32> {
    let edges = HISTOGRAM_BINS + 1;
    // histc widens an empty range by 1 on each side (in double, then the float32 bin edges).
    let (lo, hi) = if min == max {
        ((min as f64 - 1.0) as f32, (max as f64 + 1.0) as f32)
    } else {
        (min, max)
    };
    // The kernel takes the outermost edges from the linspace it builds.
    let (left, right) = (
        linspace_at(lo, hi, edges, 0),
        linspace_at(lo, hi, edges, edges - 1),
    );
    let width = right - left;
    let mut hist = vec![0f32; HISTOGRAM_BINS];
    for &x in xs {
        // Written as PyTorch's skip test, so that values outside or NaN edges drop out alike.
        if !(x >= left && x <= right) {
            continue;
        }
        let pos = ((x - left) * HISTOGRAM_BINS as f32 / width) as usize;
        // The last bin includes its right edge; `min` also keeps absurd (overflowing) ranges,
        // undefined behaviour in ATen, from indexing out of bounds.
        hist[pos.min(HISTOGRAM_BINS - 1)] += 1.0;
    }
    hist
}

/// Element `idx` of `torch.linspace(start, end, steps)` in float32, as ATen's CPU kernel
/// computes it (serially, the first half from `start` and the second from `end`), with the
/// fused multiply-adds its AVX2 build contracts these expressions to.
fn linspace_at(start: f32, end: f32, steps: usize, idx: usize) -> f32 {
    let step = (end - start) / (steps - 1) as f32;
    if idx < steps / 2 {
        step.mul_add(idx as f32, start)
    } else {
        (-step).mul_add((steps - idx - 1) as f32, end)
    }
}

/// `torch.sum` of a contiguous float32 vector of at least 8 values: ATen's `cascade_sum` with
/// its AVX2 `Vectorized<float>` (8 lanes), 4 interleaved accumulators and 4 cascade levels.
fn aten_sum(xs: &[f32]) -> f32 {
    const LANES: usize = 8;
    const ILP: usize = 4;
    const LEVELS: usize = 4;
    type Lanes = [f32; LANES];
    fn add(acc: &mut Lanes, v: &Lanes) {
        for (a, b) in acc.iter_mut().zip(v) {
            *a += b;
        }
    }
    let vector = |v: usize| -> Lanes {
        let mut out = [0f32; LANES];
        out.copy_from_slice(&xs[v * LANES..(v + 1) * LANES]);
        out
    };
    let n_vec = xs.len() / LANES;
    let rows = n_vec / ILP;

    // `multi_row_sum` over rows of ILP vectors.
    let ceil_log2 = |x: usize| {
        if x <= 2 {
            1
        } else {
            (usize::BITS - (x - 1).leading_zeros()) as usize
        }
    };
    let level_power = (ceil_log2(rows) / LEVELS).max(4);
    let level_step = 1usize << level_power;
    let level_mask = level_step - 1;
    let mut acc = [[[0f32; LANES]; ILP]; LEVELS];
    let mut i = 0;
    while i + level_step <= rows {
        for _ in 0..level_step {
            for (k, a) in acc[0].iter_mut().enumerate() {
                add(a, &vector(i * ILP + k));
            }
            i += 1;
        }
        for j in 1..LEVELS {
            let (lower, upper) = acc.split_at_mut(j);
            for (up, low) in upper[0].iter_mut().zip(lower[j - 1].iter_mut()) {
                add(up, low);
                *low = [0.0; LANES];
            }
            if i & (level_mask << (j * level_power)) != 0 {
                break;
            }
        }
    }
    for i in i..rows {
        for (k, a) in acc[0].iter_mut().enumerate() {
            add(a, &vector(i * ILP + k));
        }
    }
    let levels = acc;
    for level in &levels[1..] {
        for (a, l) in acc[0].iter_mut().zip(level) {
            add(a, l);
        }
    }

    // `row_sum`: leftover vectors, then the ILP accumulators, then the lanes and scalar tail.
    let mut partial = acc[0];
    for v in rows * ILP..n_vec {
        add(&mut partial[0], &vector(v));
    }
    for k in 1..ILP {
        let other = partial[k];
        add(&mut partial[0], &other);
    }
    let mut total = 0f32;
    for x in &xs[n_vec * LANES..] {
        total += x;
    }
    for lane in partial[0] {
        total += lane;
    }
    total
}

/// `_upscale_histogram`: the histogram of `[orig_min, orig_max]` split into sub-bins whose
/// mid-points are re-binned onto `[new_min, new_max]` (float32 throughout, as PyTorch).
fn upscale_histogram(
    histogram: &[f32],
    orig_min: f32,
    orig_max: f32,
    new_min: f32,
    new_max: f32,
) -> Vec<f32> {
    let fine = HISTOGRAM_BINS * UPSAMPLE_RATE;
    let bin_size = (orig_max - orig_min) / fine as f32;
    let half_bin = 0.5 * bin_size;
    let boundaries: Vec<f32> = (0..=HISTOGRAM_BINS)
        .map(|i| linspace_at(new_min, new_max, HISTOGRAM_BINS + 1, i))
        .collect();
    let mut out = vec![0f32; HISTOGRAM_BINS];
    for i in 0..fine {
        let mid = linspace_at(orig_min, orig_max, fine + 1, i) + half_bin;
        // `bucketize(right=True) - 1`, clamped into the bins.
        let bucket = upper_bound(&boundaries, mid).saturating_sub(1);
        // `repeat_interleave(upsample_rate) / upsample_rate`, summed by `bincount` in order.
        out[bucket.min(HISTOGRAM_BINS - 1)] += histogram[i / UPSAMPLE_RATE] / UPSAMPLE_RATE as f32;
    }
    out
}

/// ATen's `cus_upper_bound` (`bucketize(right=True)`): the binary search itself, so that a
/// boundary vector that rounding left not quite sorted gives PyTorch's answer too.
fn upper_bound(boundaries: &[f32], value: f32) -> usize {
    let (mut start, mut end) = (0, boundaries.len());
    while start < end {
        let mid = start + (end - start) / 2;
        // `!(boundary > value)`: also true for NaN, as in ATen.
        if boundaries[mid].partial_cmp(&value) == Some(Ordering::Greater) {
            end = mid;
        } else {
            start = mid + 1;
        }
    }
    start
}

/// `_non_linear_param_search`: the first and last bin of the range with (locally) the least
/// L2 quantization error, trimming the histogram's tails one bin at a time.
fn non_linear_param_search(histogram: &[f32], min: f32, max: f32) -> (usize, usize) {
    let bins = histogram.len();
    let total = aten_sum(histogram) as f64;
    // `torch.cumsum` of float32 on CPU accumulates in double and rounds each prefix.
    let mut running = 0f64;
    let cumsum: Vec<f32> = histogram
        .iter()
        .map(|&h| {
            running += h as f64;
            running as f32
        })
        .collect();

    let stepsize = 1e-5;
    let (mut alpha, mut beta) = (0.0f64, 1.0f64);
    let (mut start_bin, mut end_bin) = (0, bins - 1);
    let mut norm_min = f64::INFINITY;
    while alpha < beta {
        let next_alpha = alpha + stepsize;
        let next_beta = beta - stepsize;
        // `cSum[l] < next_alpha * total` compares in float32 (the Python float is cast to the
        // tensor's dtype). The prefix sums never decrease, so PyTorch's linear scans are
        // partition points.
        let low = (next_alpha * total) as f32;
        let high = (next_beta * total) as f32;
        let l = start_bin + cumsum[start_bin..end_bin].partition_point(|&c| c < low);
        let r = start_bin + cumsum[start_bin + 1..=end_bin].partition_point(|&c| c <= high);

        let (mut next_start, mut next_end) = (start_bin, end_bin);
        if l - start_bin > end_bin - r {
            next_start = l;
            alpha = next_alpha;
        } else {
            next_end = r;
            beta = next_beta;
        }
        if next_start == start_bin && next_end == end_bin {
            continue;
        }
        let norm = quantization_error(histogram, min, max, next_start, next_end);
        if norm > norm_min {
            break;
        }
        norm_min = norm;
        start_bin = next_start;
        end_bin = next_end;
    }
    (start_bin, end_bin)
}

/// ATen's floor division of float32 (`torch.div(a, b, rounding_mode="floor")`, its vectorised
/// form), for a positive finite `b`.
fn div_floor(a: f32, b: f32) -> f32 {
    let basic = a / b;
    let rem = a % b;
    // ATen's fix-up for quotients that overflow.
    let floor = if basic.abs() == f32::INFINITY && a.abs() != f32::INFINITY {
        a
    } else {
        a - rem
    };
    let mut div = floor / b;
    if rem != 0.0 && (b < 0.0) != (rem < 0.0) {
        div -= 1.0;
    }
    if div == 0.0 {
        return 0f32.copysign(basic);
    }
    let mut floordiv = div.floor();
    if div - floordiv > 0.5 {
        floordiv += 1.0;
    }
    floordiv
}

/// `_compute_quantization_error` of quantizing bins `start_bin..=end_bin` onto `DST_NBINS`
/// levels: the widths come from Python floats (double) and every tensor op is float32, as in
/// PyTorch, and the per-bin norms are summed with [`aten_sum`].
fn quantization_error(
    histogram: &[f32],
    min: f32,
    max: f32,
    start_bin: usize,
    end_bin: usize,
) -> f64 {
    let bins = histogram.len();
    let bin_width = (max as f64 - min as f64) / bins as f64;
    let dst_bin_width = bin_width * (end_bin - start_bin + 1) as f64 / DST_NBINS as f64;
    if dst_bin_width == 0.0 {
        return 0.0;
    }
    let bw = bin_width as f32;
    let dbw = dst_bin_width as f32;
    let half = (dst_bin_width / 2.0) as f32;
    let neg_half = (-dst_bin_width / 2.0) as f32;
    let top = (DST_NBINS - 1) as f32;
    // `_get_norm(begin, end, density) = density * (end³ - begin³) / 3`, left to right.
    let cube = |x: f32| x * x * x;
    let get_norm = |begin: f32, end: f32, density: f32| density * ((cube(end) - cube(begin)) / 3.0);
    let inner = (cube(half) - cube(neg_half)) / 3.0;
    let norms: Vec<f32> = histogram
        .iter()
        .enumerate()
        .map(|(i, &h)| {
            let src_begin = (i as i64 - start_bin as i64) as f32 * bw;
            let src_end = src_begin + bw;
            let dst_of_begin = div_floor(src_begin, dbw).clamp(0.0, top);
            let dst_of_begin_center = (dst_of_begin + 0.5) * dbw;
            let dst_of_end = div_floor(src_end, dbw).clamp(0.0, top);
            let density = h / bw;
            let mut norm = get_norm(src_begin - dst_of_begin_center, half, density);
            norm += (dst_of_end - dst_of_begin - 1.0) * (density * inner);
            let dst_of_end_center = dst_of_end * dbw + half;
            norm += get_norm(neg_half, src_end - dst_of_end_center, density);
            norm
        })
        .collect();
    aten_sum(&norms) as f64
}
