//! The valid range of every numeric recipe field, and one way to check a value against it.
//!
//! Non-finite floats are outside every range. Upper bounds are generous (no DCASE system comes
//! near them) but finite, so no recipe can ask for absurd memory or time; the error states the
//! range.

use std::fmt;

/// An interval of the real line, each end open or closed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    lo: f64,
    hi: f64,
    lo_open: bool,
    hi_open: bool,
}

impl Range {
    /// `[lo, hi]`
    pub const fn closed(lo: f64, hi: f64) -> Range {
        Range {
            lo,
            hi,
            lo_open: false,
            hi_open: false,
        }
    }

    /// `(lo, hi]`
    pub const fn above(lo: f64, hi: f64) -> Range {
        Range {
            lo_open: true,
            ..Range::closed(lo, hi)
        }
    }

    /// `[lo, hi)`
    pub const fn below(lo: f64, hi: f64) -> Range {
        Range {
            hi_open: true,
            ..Range::closed(lo, hi)
        }
    }

    /// False for NaN and the infinities.
    pub fn contains(&self, v: f64) -> bool {
        let lo = if self.lo_open {
            v > self.lo
        } else {
            v >= self.lo
        };
        let hi = if self.hi_open {
            v < self.hi
        } else {
            v <= self.hi
        };
        v.is_finite() && lo && hi
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}, {}{}",
            if self.lo_open { '(' } else { '[' },
            self.lo,
            self.hi,
            if self.hi_open { ')' } else { ']' }
        )
    }
}

/// A number a recipe field holds.
pub trait Num: Copy {
    fn as_f64(self) -> f64;
    /// As an error message shows it.
    fn show(self) -> String;
}

macro_rules! int {
    ($($t:ty),*) => {$(
        impl Num for $t {
            fn as_f64(self) -> f64 {
                self as f64
            }
            fn show(self) -> String {
                self.to_string()
            }
        }
    )*};
}
int!(usize, u64, u32, i64);

impl Num for f64 {
    fn as_f64(self) -> f64 {
        self
    }

    /// Huge and tiny values in scientific notation (`1e308`, not 309 digits).
    fn show(self) -> String {
        let a = self.abs();
        if a.is_finite() && a != 0.0 && !(1e-4..1e9).contains(&a) {
            format!("{self:e}")
        } else {
            self.to_string()
        }
    }
}

/// Why `v` is not in `range`, if it is not.
pub fn check<T: Num>(v: T, range: Range) -> Result<(), String> {
    if range.contains(v.as_f64()) {
        Ok(())
    } else {
        Err(format!("must be in {range}, not {}", v.show()))
    }
}

/// Why a list of `n` entries is not of a length in `range`, if it is not.
pub fn check_len(n: usize, range: Range) -> Result<(), String> {
    check(n, range).map_err(|_| format!("must have a number of entries in {range}, not {n}"))
}

// List lengths: far above any report's, low enough that checks comparing entries stay instant.
pub const STAGES: Range = Range::closed(1.0, 1_000.0);
/// A profile's stage list (an empty one is refused with its own message).
pub const PROFILE_STAGES: Range = Range::closed(0.0, 1_000.0);
pub const MODELS: Range = Range::closed(1.0, 1_000.0);
pub const PROFILES: Range = Range::closed(1.0, 100.0);
pub const PUBLISHED_ROWS: Range = Range::closed(0.0, 10_000.0);
pub const SET_ENTRIES: Range = Range::closed(0.0, 1_000.0);
/// Devices, splits, subsets or teachers named in one list.
pub const NAMES: Range = Range::closed(0.0, 100.0);
pub const ENERGY_ROWS: Range = Range::closed(1.0, 1_000.0);

// Training.
pub const EPOCHS: Range = Range::closed(1.0, 10_000.0);
pub const BATCH_SIZE: Range = Range::closed(1.0, 65_536.0);
/// Evaluation every this many epochs (0: never).
pub const VALIDATE_EVERY: Range = Range::closed(0.0, 10_000.0);
pub const LR: Range = Range::above(0.0, 10.0);
/// As `torch.optim.Adam` requires.
pub const BETA: Range = Range::below(0.0, 1.0);
pub const WEIGHT_DECAY: Range = Range::closed(0.0, 10.0);
pub const SGDR_T0: Range = Range::closed(1.0, 10_000.0);
pub const SGDR_T_MULT: Range = Range::closed(1.0, 100.0);
/// Warm-up epochs: fewer than the epochs, so the cosine part has at least one.
pub fn warmup(epochs: usize) -> Range {
    Range::below(0.0, epochs as f64)
}

// Augmentations.
pub const PROBABILITY: Range = Range::closed(0.0, 1.0);
/// Beta(alpha, alpha) of Mixup and Freq-MixStyle.
pub const BETA_ALPHA: Range = Range::above(0.0, 100.0);
/// Impulse responses used (MicIRP has 67; the synthetic set at most 10000).
pub const IRS: Range = Range::closed(1.0, 10_000.0);
pub const CLIPS_PER_IR: Range = Range::closed(1.0, 1_000_000.0);
/// Copies per clip in an RMS-energy table row.
pub const ENERGY_COPIES: Range = Range::closed(0.0, 1_000.0);
/// Seconds of waveform roll (clips are 1 s or 10 s).
pub const ROLL_SECONDS: Range = Range::above(0.0, 60.0);
pub const ROLL_FRAMES: Range = Range::closed(1.0, 100_000.0);
pub const MASKS: Range = Range::closed(0.0, 100.0);
pub const MASK_WIDTH: Range = Range::closed(0.0, 10_000.0);
/// Masked cells' value, in feature units (log-mel values lie within about ±30).
pub const MASK_VALUE: Range = Range::closed(-1e6, 1e6);

// Distillation and compression.
pub const TEMPERATURE: Range = Range::above(0.0, 100.0);
/// `CE + lambda * KL`: a weight of the KL term (the 2023 report: 20).
pub const KD_WEIGHT: Range = Range::closed(0.0, 1_000.0);
/// `lambda * CE + (1 - lambda) * T^2 * KL`: a mixing fraction.
pub const KD_FRACTION: Range = Range::closed(0.0, 1.0);
/// Training seeds a profile repeats its training stages with.
pub const SEEDS: Range = Range::closed(1.0, 100.0);
pub const CALIBRATION_CLIPS: Range = Range::closed(1.0, 1_000_000.0);
/// Accuracy loss accepted by quantization, as a fraction.
pub const TOLERANCE: Range = Range::closed(0.0, 1.0);

// Models.
/// A width or channel count: the architectures' own bound.
pub const CHANNELS: Range = Range::closed(1.0, crate::models::spec::MAX_CHANNELS as f64);
/// Entries of an explicit `widths` list.
pub const WIDTHS_LEN: Range = Range::closed(1.0, 1_000.0);
pub const DEPTH: Range = Range::closed(1.0, 1_000.0);
pub const DROPOUT: Range = Range::below(0.0, 1.0);
pub const RESNORM_LAMBDA: Range = Range::closed(0.0, 100.0);

// Published figures, by column.
pub const PERCENT: Range = Range::closed(0.0, 100.0);
pub const FRACTION: Range = Range::closed(0.0, 1.0);
pub const LOG_LOSS: Range = Range::closed(0.0, 100.0);
pub const MACS_M: Range = Range::closed(0.0, 1e6);
pub const PARAMS_K: Range = Range::closed(0.0, 1e7);
pub const PARAMS: Range = Range::closed(0.0, 1e10);
pub const MACS: Range = Range::closed(0.0, 1e12);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_and_non_finite_values() {
        assert!(check(0.0, LR).is_err());
        assert!(check(10.0, LR).is_ok());
        assert!(check(1.0, BETA).is_err());
        assert!(check(0.0, BETA).is_ok());
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(check(v, MASK_VALUE).is_err());
        }
        assert_eq!(
            check(1e308, LR).unwrap_err(),
            "must be in (0, 10], not 1e308"
        );
        assert_eq!(
            check(usize::MAX, BATCH_SIZE).unwrap_err(),
            format!("must be in [1, 65536], not {}", usize::MAX)
        );
        assert_eq!(warmup(3).to_string(), "[0, 3)");
        assert_eq!(
            check_len(0, STAGES).unwrap_err(),
            "must have a number of entries in [1, 1000], not 0"
        );
        assert_eq!(MACS_M.to_string(), "[0, 1000000]");
    }
}
