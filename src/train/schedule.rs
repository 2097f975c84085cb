//! Learning-rate schedules, evaluated per optimisation step (fractional epochs).

use crate::recipe::ScheduleSpec;
use std::f64::consts::PI;

#[derive(Debug, Clone, PartialEq)]
pub enum LrSchedule {
    /// Linear 0 → peak over `warmup` epochs, then cosine to 0 at `total`.
    WarmupCosine { peak: f64, warmup: f64, total: f64 },
    /// Cosine from peak to 0 over `total` epochs.
    Cosine { peak: f64, total: f64 },
    /// SGDR: cosine annealing restarted after t0, t0·t_mult, t0·t_mult², … epochs.
    Sgdr { peak: f64, t0: f64, t_mult: f64 },
}

impl LrSchedule {
    pub fn from_spec(spec: &ScheduleSpec, peak: f64, epochs: usize) -> LrSchedule {
        let total = epochs as f64;
        match *spec {
            ScheduleSpec::WarmupCosine { warmup_epochs } => LrSchedule::WarmupCosine {
                peak,
                warmup: warmup_epochs as f64,
                total,
            },
            ScheduleSpec::Cosine => LrSchedule::Cosine { peak, total },
            ScheduleSpec::Sgdr { t0, t_mult } => LrSchedule::Sgdr {
                peak,
                t0: t0 as f64,
                t_mult: t_mult as f64,
            },
        }
    }

    /// Learning rate at fractional epoch `e` (epoch index + fraction of its steps done).
    pub fn at(&self, e: f64) -> f64 {
        let cosine = |peak: f64, t: f64, len: f64| {
            0.5 * peak * (1.0 + (PI * (t / len).clamp(0.0, 1.0)).cos())
        };
        match *self {
            LrSchedule::WarmupCosine {
                peak,
                warmup,
                total,
            } => {
                if e < warmup {
                    peak * e / warmup
                } else {
                    cosine(peak, e - warmup, (total - warmup).max(f64::MIN_POSITIVE))
                }
            }
            LrSchedule::Cosine { peak, total } => cosine(peak, e, total),
            LrSchedule::Sgdr { peak, t0, t_mult } => {
                let (mut start, mut len) = (0.0, t0);
                while e >= start + len {
                    start += len;
                    len *= t_mult;
                }
                cosine(peak, e - start, len)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine() {
        let s = LrSchedule::WarmupCosine {
            peak: 0.01,
            warmup: 10.0,
            total: 200.0,
        };
        assert_eq!(s.at(0.0), 0.0);
        assert!((s.at(5.0) - 0.005).abs() < 1e-12);
        assert!((s.at(10.0) - 0.01).abs() < 1e-12);
        assert!((s.at(105.0) - 0.005).abs() < 1e-12);
        assert!(s.at(200.0).abs() < 1e-12);
    }

    #[test]
    fn sgdr_restarts_at_t0_and_t0_tmult() {
        let s = LrSchedule::Sgdr {
            peak: 1.0,
            t0: 10.0,
            t_mult: 2.0,
        };
        assert_eq!(s.at(0.0), 1.0);
        assert!((s.at(5.0) - 0.5).abs() < 1e-12);
        assert_eq!(s.at(10.0), 1.0); // restart
        assert!((s.at(20.0) - 0.5).abs() < 1e-12); // middle of the 20-epoch period
        assert_eq!(s.at(30.0), 1.0); // second restart
    }
}
