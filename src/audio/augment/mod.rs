//! Training augmentations. Randomness comes from a caller-supplied ChaCha RNG (never libtorch's
//! generator), so what a batch gets depends only on (stage seed, epoch, batch index), on CPU and
//! GPU alike, and a resumed run draws exactly what the uninterrupted one drew.
//!
//! Two levels, in the order the reference code applies them (Cai et al.'s `LitAcousticScene…
//! training_step`, CP-JKU's datasets):
//! * waveform (Rust, per clip, before feature extraction): device impulse response convolution
//!   ([`dir`]), then time rolling ([`roll`]); the RMS-energy-driven IR augmentation of the
//!   RepConv report ([`energy`]) and device simulation ([`devsim`]) make extra clips offline;
//! * batch spectrogram (tch, on the batch's device): time rolling by frames, Freq-MixStyle,
//!   SpecAugment ([`specaugment`]), Mixup ([`mix`]).

pub mod devsim;
pub mod dir;
pub mod energy;
pub mod mix;
pub mod roll;
pub mod specaugment;

pub use dir::{DirAugment, ImpulseResponses};
pub use energy::{EnergyLevel, EnergyTable};
pub use mix::{FreqMixStyle, MixPlan, Mixup};
pub use specaugment::SpecAugment;

use rand::Rng;

/// What happens to one clip's waveform: convolution with an impulse response, then a circular
/// shift (CP-JKU's dataset order: `DIRAugmentDataset` inside the roll wrapper).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WaveEdit {
    /// Index into the impulse-response set.
    pub ir: Option<usize>,
    /// Samples to roll by (`torch.roll` convention: positive moves samples later).
    pub shift: i64,
}

impl WaveEdit {
    pub fn is_identity(&self) -> bool {
        self.ir.is_none() && self.shift == 0
    }

    /// The edited clip. `irs` must hold `self.ir` when it is set.
    pub fn apply(&self, clip: &[f32], irs: Option<&ImpulseResponses>) -> Vec<f32> {
        let convolved = match (self.ir, irs) {
            (Some(k), Some(set)) => DirAugment::convolve(clip, set.get(k)),
            _ => clip.to_vec(),
        };
        roll::roll(&convolved, self.shift)
    }
}

/// The waveform-level augmentations of a training stage.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WaveformAugment {
    pub dir: Option<DirAugment>,
    /// Largest roll in samples (0: no rolling).
    pub max_shift: usize,
}

impl WaveformAugment {
    /// One edit per clip. `dir_eligible[i]` says whether clip `i` may get an impulse response
    /// (see [`DirAugment::eligible`]); `n_irs` is the size of the impulse-response set. All DIR
    /// draws come first, then all roll draws; nothing is drawn for a disabled augmentation.
    pub fn plan(&self, dir_eligible: &[bool], n_irs: usize, rng: &mut impl Rng) -> Vec<WaveEdit> {
        let irs = match &self.dir {
            Some(d) => d.plan(dir_eligible, n_irs, rng),
            None => vec![None; dir_eligible.len()],
        };
        let shifts = match self.max_shift {
            0 => vec![0; dir_eligible.len()],
            m => roll::draw_shifts(dir_eligible.len(), m, rng),
        };
        irs.into_iter()
            .zip(shifts)
            .map(|(ir, shift)| WaveEdit { ir, shift })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::conv::fft_convolve;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn irs() -> ImpulseResponses {
        ImpulseResponses::from_samples(16000, vec![vec![1.0, 0.5, -0.25], vec![0.0, 0.0, 1.0, 0.3]])
    }

    #[test]
    fn wave_edit_convolves_then_rolls() {
        let set = irs();
        let clip: Vec<f32> = (0..50).map(|i| (i as f32 * 0.37).sin()).collect();
        let edit = WaveEdit {
            ir: Some(1),
            shift: -7,
        };
        let expected = roll::roll(&fft_convolve(&clip, set.get(1)), -7);
        assert_eq!(edit.apply(&clip, Some(&set)), expected);
        assert_eq!(WaveEdit::default().apply(&clip, Some(&set)), clip);
        assert!(WaveEdit::default().is_identity());
        assert!(!edit.is_identity());
    }

    #[test]
    fn waveform_plan_is_seeded_and_draws_nothing_when_disabled() {
        let aug = WaveformAugment {
            dir: Some(DirAugment { p: 0.5 }),
            max_shift: 100,
        };
        let eligible = vec![true; 32];
        let a = aug.plan(&eligible, 2, &mut ChaCha8Rng::seed_from_u64(5));
        let b = aug.plan(&eligible, 2, &mut ChaCha8Rng::seed_from_u64(5));
        let c = aug.plan(&eligible, 2, &mut ChaCha8Rng::seed_from_u64(6));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.iter().any(|e| e.ir.is_some()) && a.iter().any(|e| e.ir.is_none()));
        assert!(a.iter().all(|e| e.shift.abs() <= 100));

        // Disabled augmentations leave the caller's stream untouched.
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let none = WaveformAugment::default().plan(&eligible, 2, &mut rng);
        assert!(none.iter().all(WaveEdit::is_identity));
        assert_eq!(
            rng.random::<u64>(),
            ChaCha8Rng::seed_from_u64(9).random::<u64>()
        );
    }
}
