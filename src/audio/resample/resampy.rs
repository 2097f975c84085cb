//! `librosa.load(path, sr=32000)` as CP-JKU's DCASE code calls it with librosa 0.8.1, whose
//! default `res_type='kaiser_best'` hands the signal to resampy's band-limited interpolation
//! (`resampy.resample(y, sr, 32000, filter='kaiser_best')`, resampy 0.4.3) and then
//! `librosa.util.fix_length` pads or cuts the result to `ceil(len * ratio)` samples.
//!
//! resampy ships `kaiser_best` as a table (`data/kaiser_best.npz`): the right wing of a
//! Kaiser-windowed sinc with 50 zero crossings and 2^13 taps per crossing. It is
//! `sinc_window(num_zeros=50, precision=13, window=kaiser(beta), rolloff)` with the stored
//! rolloff 0.9173473712608761 and beta 12.984585247040012 (the value that reproduces all
//! 409,601 stored taps exactly with scipy), so it is rebuilt here from that formula.
//!
//! The interpolation loop is resampy's `_resample_loop` step by step: f64 time register
//! `t * (1 / ratio)`, linear interpolation between table taps, left wing then right wing, and
//! the output accumulated in the input's dtype (numba stores `y[t] += w * x[n]` back into the
//! f32 array after every tap, so the sum is rounded to f32 tap by tap, as here).

use super::{memoized, Memo};
use crate::error::{Error, Result};
use std::sync::{Arc, OnceLock};

const NUM_ZEROS: usize = 50;
/// Taps per zero crossing (`precision = 13`).
const NUM_TABLE: usize = 1 << 13;
const ROLLOFF: f64 = 0.9173473712608761;
const BETA: f64 = 12.984585247040012;

/// The stored `half_window` of `kaiser_best`.
fn kaiser_best() -> &'static [f64] {
    static TABLE: OnceLock<Vec<f64>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let n = NUM_TABLE * NUM_ZEROS;
        let i0_beta = bessel_i0(BETA);
        (0..=n)
            .map(|j| {
                // np.linspace(0, num_zeros, n + 1): the step 2^-13 is exact.
                let x = ROLLOFF * (j as f64 / NUM_TABLE as f64);
                let sinc = if x == 0.0 {
                    1.0
                } else {
                    let px = std::f64::consts::PI * x;
                    px.sin() / px
                };
                // scipy.signal.windows.kaiser(2n + 1, beta)[n:]
                let r = j as f64 / n as f64;
                let taper = bessel_i0(BETA * (1.0 - r * r).sqrt()) / i0_beta;
                taper * (ROLLOFF * sinc)
            })
            .collect()
    })
}

/// Modified Bessel function of the first kind, order 0 (power series; for the Kaiser window's
/// arguments, up to 13, it converges to full f64 precision).
fn bessel_i0(x: f64) -> f64 {
    let q = x * x / 4.0;
    let (mut term, mut sum, mut k) = (1.0, 1.0, 1.0);
    while term > sum * 1e-17 {
        term *= q / (k * k);
        sum += term;
        k += 1.0;
    }
    sum
}

/// The interpolation table of one rate pair: the window scaled by the ratio when downsampling
/// (`sample_ratio * interp_win`) and its forward differences (`np.diff(..., append=last)`).
struct Table {
    win: Vec<f64>,
    delta: Vec<f64>,
}

fn table_for(ratio: f64) -> Arc<Table> {
    static CACHE: Memo<u64, Table> = OnceLock::new();
    memoized(&CACHE, ratio.to_bits(), || {
        let base = kaiser_best();
        let win: Vec<f64> = if ratio < 1.0 {
            base.iter().map(|w| ratio * w).collect()
        } else {
            base.to_vec()
        };
        let mut delta: Vec<f64> = win.windows(2).map(|p| p[1] - p[0]).collect();
        delta.push(0.0);
        Table { win, delta }
    })
}

/// `librosa.load`'s resampling of mono `x` from `from_hz` to `to_hz` (rates differ).
pub fn librosa_resample(x: &[f32], from_hz: u32, to_hz: u32) -> Result<Vec<f32>> {
    let (from, to) = (f64::from(from_hz), f64::from(to_hz));
    // resampy: shape = int(len * sr_new / sr_orig), refused below one sample.
    let n_out = (x.len() as f64 * to / from) as usize;
    if n_out < 1 {
        return Err(Error::msg(format!(
            "{} samples are too few to resample from {from_hz} Hz to {to_hz} Hz (resampy \
             refuses signals that would give no output sample)",
            x.len()
        )));
    }
    let ratio = to / from;
    let mut y = resampy_loop(x, n_out, ratio);
    // librosa.util.fix_length(y, int(np.ceil(len * ratio))): zero-pad or cut at the end.
    let n_samples = (x.len() as f64 * ratio).ceil() as usize;
    y.resize(n_samples, 0.0);
    Ok(y)
}

/// resampy's `_resample_loop` over `n_out` output samples.
fn resampy_loop(x: &[f32], n_out: usize, ratio: f64) -> Vec<f32> {
    let table = table_for(ratio);
    let (win, delta) = (&table.win, &table.delta);
    let scale = ratio.min(1.0);
    let time_increment = 1.0 / ratio;
    let index_step = (scale * NUM_TABLE as f64) as usize;
    let nwin = win.len();
    let n_orig = x.len();
    let num_table = NUM_TABLE as f64;
    let mut y = vec![0f32; n_out];
    for (t, out) in y.iter_mut().enumerate() {
        let time_register = t as f64 * time_increment;
        let n = time_register as usize;
        let mut acc = 0f32;
        // Left wing: x[n], x[n - 1], ...
        let frac = scale * (time_register - n as f64);
        let index_frac = frac * num_table;
        let offset = index_frac as usize;
        let eta = index_frac - offset as f64;
        let i_max = (n + 1).min((nwin - offset) / index_step);
        for i in 0..i_max {
            let k = offset + i * index_step;
            let weight = win[k] + eta * delta[k];
            acc = (f64::from(acc) + weight * f64::from(x[n - i])) as f32;
        }
        // Right wing: x[n + 1], x[n + 2], ...
        let frac = scale - frac;
        let index_frac = frac * num_table;
        let offset = index_frac as usize;
        let eta = index_frac - offset as f64;
        let k_max = n_orig
            .saturating_sub(n + 1)
            .min((nwin - offset) / index_step);
        for k in 0..k_max {
            let j = offset + k * index_step;
            let weight = win[j] + eta * delta[j];
            acc = (f64::from(acc) + weight * f64::from(x[n + k + 1])) as f32;
        }
        *out = acc;
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    fn tone(freq: f64, rate: u32, len: usize, amp: f64) -> Vec<f32> {
        (0..len)
            .map(|n| (amp * (2.0 * PI * freq * n as f64 / f64::from(rate)).sin()) as f32)
            .collect()
    }

    #[test]
    fn the_table_has_resampys_size_and_ends() {
        let t = kaiser_best();
        assert_eq!(t.len(), 409_601);
        assert_eq!(t[0], ROLLOFF);
        // Taps of resampy 0.4.3's data/kaiser_best.npz.
        for (j, stored) in [
            (1, 0.9173473523046404),
            (12_345, -0.19586227550392074),
            (204_800, 0.0004977063778016244),
            (409_600, -5.2887095330227954e-08),
        ] {
            let rel = ((t[j] - stored) / stored).abs();
            assert!(rel < 1e-12, "tap {j}: {} vs stored {stored}", t[j]);
        }
    }

    #[test]
    fn lengths_follow_resampy_and_fix_length() {
        assert_eq!(
            librosa_resample(&[0.1; 44100], 44100, 32000).unwrap().len(),
            32000
        );
        // resampy gives int(725.62) = 725, fix_length pads to ceil = 726.
        let y = librosa_resample(&[0.1; 1000], 44100, 32000).unwrap();
        assert_eq!(y.len(), 726);
        assert_eq!(y[725], 0.0);
        assert_eq!(
            librosa_resample(&[0.1; 1000], 32000, 44100).unwrap().len(),
            1379
        );
        assert!(librosa_resample(&[0.1], 44100, 32000).is_err());
        assert!(librosa_resample(&[], 44100, 32000).is_err());
    }

    #[test]
    fn a_sine_keeps_frequency_amplitude_and_phase() {
        let y = librosa_resample(&tone(1000.0, 44100, 44100, 0.5), 44100, 32000).unwrap();
        let ideal = tone(1000.0, 32000, y.len(), 0.5);
        let err = (300..y.len() - 300)
            .map(|n| (y[n] - ideal[n]).abs())
            .fold(0f32, f32::max);
        assert!(err < 1e-4, "{err}");
        let up = librosa_resample(&tone(3000.0, 32000, 32000, 0.7), 32000, 44100).unwrap();
        let ideal = tone(3000.0, 44100, up.len(), 0.7);
        let err = (300..up.len() - 300)
            .map(|n| (up[n] - ideal[n]).abs())
            .fold(0f32, f32::max);
        assert!(err < 1e-4, "{err}");
    }

    #[test]
    fn content_above_16khz_is_removed() {
        for freq in [16_500.0, 18_000.0, 21_000.0] {
            let x = tone(freq, 44100, 44100, 1.0);
            let y = librosa_resample(&x, 44100, 32000).unwrap();
            let rms = |v: &[f32]| {
                (v.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
            };
            let db = 20.0 * (rms(&y[300..y.len() - 300]) / rms(&x)).log10();
            assert!(db < -80.0, "{freq} Hz only {db:.1} dB down");
        }
    }
}
