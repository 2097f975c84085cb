//! `torchaudio.transforms.Resample(from, to)` with its defaults (`sinc_interp_hann`,
//! `lowpass_filter_width=6`, `rolloff=0.99`), as the DCASE2024/2025 baselines and the systems
//! built on them resample: the kernel is computed in f64 and kept in f32 (what the transform
//! caches and what Zhang et al.'s checkpoints embed as `mel.0.kernel`), then applied as
//! `conv1d(pad(x, (width, width + orig)), kernel, stride=orig)` cut to `ceil(new * len / orig)`.
//!
//! The dense kernel has `new` rows of `2 width + orig` taps (320 x 459 for 44.1 -> 32 kHz), but
//! outside `|t| < lowpass_filter_width` every tap is an exact f32 zero (the Hann window vanishes
//! there), so each row is kept as its nonzero span only: 16 or 17 taps for 44.1 -> 32 kHz, and rate
//! pairs with large reduced rates (44101 -> 32000) stay cheap. Zero taps add nothing to the
//! sum, so this is the same convolution.

use crate::error::{Error, Result};
use std::f64::consts::PI;

/// torchaudio's defaults.
const LOWPASS_FILTER_WIDTH: f64 = 6.0;
const ROLLOFF: f64 = 0.99;

/// One polyphase row: the taps from `start` (an index into the padded block of the dense row).
#[derive(Clone, Debug, PartialEq)]
struct Row {
    start: usize,
    taps: Vec<f32>,
}

/// A torchaudio resampling kernel for one reduced rate pair `orig -> new`.
#[derive(Clone, Debug, PartialEq)]
pub struct SincKernel {
    /// Reduced rates (divided by their gcd), as torchaudio uses them.
    orig: usize,
    new: usize,
    /// Zeros padded on the left of the signal (`width + orig` on the right).
    width: usize,
    rows: Vec<Row>,
    /// The full rates the kernel was made for.
    from_hz: u32,
    to_hz: u32,
}

impl SincKernel {
    /// torchaudio's kernel for `from_hz -> to_hz` (`_get_sinc_resample_kernel` with
    /// `dtype=None`), reproduced operation by operation: `t = i32_row / new` is an f32 division
    /// (an int64 tensor divided by an int gives the default dtype) added to the f64 tap offsets.
    pub fn torchaudio(from_hz: u32, to_hz: u32) -> SincKernel {
        let g = gcd(from_hz, to_hz);
        let (orig, new) = ((from_hz / g) as usize, (to_hz / g) as usize);
        let base = orig.min(new) as f64 * ROLLOFF;
        let width = (LOWPASS_FILTER_WIDTH * orig as f64 / base).ceil() as usize;
        let dense_len = 2 * width + orig;
        let scale = base / orig as f64;
        let rows = (0..new)
            .map(|i| {
                let shift = f64::from(-(i as f32) / new as f32);
                // Taps with |t| >= 6 are zero: only the span around the row's centre is evaluated
                // (one tap of margin each side, trimmed below).
                let centre = width as f64 - shift * orig as f64;
                let reach = LOWPASS_FILTER_WIDTH / base * orig as f64;
                let lo = ((centre - reach).floor() as isize - 1).max(0) as usize;
                let hi = ((centre + reach).ceil() as usize + 1).min(dense_len - 1);
                let tap = |j: usize| {
                    let idx = (j as f64 - width as f64) / orig as f64;
                    let t =
                        ((shift + idx) * base).clamp(-LOWPASS_FILTER_WIDTH, LOWPASS_FILTER_WIDTH);
                    let c = (t * PI / LOWPASS_FILTER_WIDTH / 2.0).cos();
                    let window = c * c;
                    let t = t * PI;
                    let sinc = if t == 0.0 { 1.0 } else { t.sin() / t };
                    (sinc * (window * scale)) as f32
                };
                trimmed(lo, (lo..=hi).map(tap).collect())
            })
            .collect();
        SincKernel {
            orig,
            new,
            width,
            rows,
            from_hz,
            to_hz,
        }
    }

    /// A kernel in torchaudio's dense layout (`[new, 1, 2 width + orig]`, row-major), as a
    /// checkpoint embeds it, for a rate pair whose reduced form has `rows` rows. The row-0 peak
    /// (torchaudio centres output 0 on input 0, at tap `width`) gives `width` and so `orig`;
    /// `to_hz` gives the scale. Errors say what does not fit.
    pub fn from_dense(values: &[f32], rows: usize, cols: usize, to_hz: u32) -> Result<SincKernel> {
        if rows == 0 || cols == 0 || values.len() != rows * cols {
            return Err(Error::msg(format!(
                "a resampling kernel of {} values does not have the shape [{rows}, 1, {cols}]",
                values.len()
            )));
        }
        if let Some(v) = values.iter().find(|v| !v.is_finite()) {
            return Err(Error::msg(format!(
                "the resampling kernel holds a non-finite tap ({v})"
            )));
        }
        if !(to_hz as usize).is_multiple_of(rows) {
            return Err(Error::msg(format!(
                "a resampling kernel with {rows} phases cannot produce {to_hz} Hz \
                 ({to_hz} is not a multiple of {rows})"
            )));
        }
        let row0 = &values[..cols];
        let width = (0..cols)
            .max_by(|&a, &b| row0[a].total_cmp(&row0[b]).then(b.cmp(&a)))
            .unwrap_or(0);
        let Some(orig) = cols.checked_sub(2 * width).filter(|&o| o > 0) else {
            return Err(Error::msg(format!(
                "the resampling kernel's first row peaks at tap {width} of {cols}: not a \
                 torchaudio kernel (its peak sits `width` taps in, with `width + orig` after it)"
            )));
        };
        let g = to_hz as usize / rows;
        let from_hz = u32::try_from(orig * g).map_err(|_| {
            Error::msg("the resampling kernel implies a source rate beyond 4 GHz".to_string())
        })?;
        let rows = values
            .chunks_exact(cols)
            .map(|row| trimmed(0, row.to_vec()))
            .collect();
        Ok(SincKernel {
            orig,
            new: values.len() / cols,
            width,
            rows,
            from_hz,
            to_hz,
        })
    }

    /// The rates the kernel converts between.
    pub fn rates(&self) -> (u32, u32) {
        (self.from_hz, self.to_hz)
    }

    /// The kernel in torchaudio's dense layout, `[new][2 width + orig]` row-major.
    pub fn dense(&self) -> Vec<f32> {
        let cols = 2 * self.width + self.orig;
        let mut out = vec![0f32; self.new * cols];
        for (dense, row) in out.chunks_exact_mut(cols).zip(&self.rows) {
            dense[row.start..row.start + row.taps.len()].copy_from_slice(&row.taps);
        }
        out
    }

    /// Largest absolute difference between two kernels' taps, `None` when their shapes differ.
    pub fn max_difference(&self, other: &SincKernel) -> Option<f32> {
        let (a, b) = (self.dense(), other.dense());
        (self.new == other.new && a.len() == b.len()).then(|| {
            a.iter()
                .zip(&b)
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max)
        })
    }

    /// Resamples `x`; output length `ceil(new * len / orig)` as torchaudio computes it.
    pub fn apply(&self, x: &[f32]) -> Vec<f32> {
        let target = ((self.new * x.len()) as f64 / self.orig as f64).ceil() as usize;
        let mut out = Vec::with_capacity(target);
        for j in 0..target {
            let (block, phase) = (j / self.new, j % self.new);
            let row = &self.rows[phase];
            // Padded index p holds x[p - width].
            let first = (block * self.orig + row.start) as isize - self.width as isize;
            let mut acc = 0f64;
            for (k, &w) in row.taps.iter().enumerate() {
                let i = first + k as isize;
                if i >= 0 && (i as usize) < x.len() {
                    acc += f64::from(w) * f64::from(x[i as usize]);
                }
            }
            out.push(acc as f32);
        }
        out
    }
}

/// A row without its leading and trailing zero taps (`start` is where `taps[0]` sits).
fn trimmed(start: usize, taps: Vec<f32>) -> Row {
    let Some(first) = taps.iter().position(|&w| w != 0.0) else {
        return Row {
            start,
            taps: Vec::new(),
        };
    };
    let last = taps.iter().rposition(|&w| w != 0.0).unwrap_or(first);
    Row {
        start: start + first,
        taps: taps[first..=last].to_vec(),
    }
}

pub(super) fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_44k_kernel_has_torchaudios_shape_and_17_live_taps() {
        let k = SincKernel::torchaudio(44100, 32000);
        assert_eq!((k.orig, k.new, k.width), (441, 320, 9));
        assert_eq!(k.dense().len(), 320 * 459);
        assert!(k.rows.iter().all(|r| (16..=17).contains(&r.taps.len())));
        // Output 0 is centred on input 0: tap `width` of row 0 is the peak, base / orig.
        let peak = k.dense()[9];
        assert!(
            (f64::from(peak) - 320.0 * 0.99 / 441.0).abs() < 1e-7,
            "{peak}"
        );
    }

    #[test]
    fn a_dense_kernel_reads_back_with_its_rates() {
        let k = SincKernel::torchaudio(44100, 32000);
        let back = SincKernel::from_dense(&k.dense(), 320, 459, 32000).unwrap();
        assert_eq!(back.rates(), (44100, 32000));
        assert_eq!(back.max_difference(&k), Some(0.0));
        let x: Vec<f32> = (0..4410).map(|i| (i as f32 * 0.01).sin()).collect();
        assert_eq!(back.apply(&x), k.apply(&x));
        assert!(SincKernel::from_dense(&[1.0; 10], 2, 4, 32000).is_err());
        assert!(SincKernel::from_dense(&k.dense(), 320, 459, 32001).is_err());
        let mut nan = k.dense();
        nan[5] = f32::NAN;
        assert!(SincKernel::from_dense(&nan, 320, 459, 32000).is_err());
    }

    #[test]
    fn lengths_follow_torchaudio() {
        let k = SincKernel::torchaudio(44100, 32000);
        assert_eq!(k.apply(&vec![0.0; 44100]).len(), 32000);
        assert_eq!(k.apply(&vec![0.0; 1000]).len(), 726); // ceil(725.62)
        assert_eq!(k.apply(&[0.5]).len(), 1);
        assert!(k.apply(&[]).is_empty());
        let up = SincKernel::torchaudio(32000, 44100);
        assert_eq!(up.apply(&vec![0.0; 1000]).len(), 1379); // ceil(1378.125)
    }

    #[test]
    fn odd_rate_pairs_build_only_their_live_taps() {
        let k = SincKernel::torchaudio(44101, 32000);
        assert_eq!((k.orig, k.new), (44101, 32000));
        assert!(k.rows.iter().all(|r| r.taps.len() <= 2 * 9 + 1));
        let x: Vec<f32> = (0..44101)
            .map(|n| (2.0 * std::f64::consts::PI * 1000.0 * n as f64 / 44101.0).sin() as f32)
            .collect();
        let y = k.apply(&x);
        assert_eq!(y.len(), 32000);
        let err = (200..31800)
            .map(|n| {
                let ideal = (2.0 * std::f64::consts::PI * 1000.0 * n as f64 / 32000.0).sin();
                (f64::from(y[n]) - ideal).abs()
            })
            .fold(0.0, f64::max);
        assert!(err < 1e-3, "{err}");
    }
}
