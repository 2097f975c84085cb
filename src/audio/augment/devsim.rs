//! Offline device simulation (Cai et al. 2023, Section 2.3): random device-a training clips,
//! each convolved with a device impulse response into a new "recording". The convolved clip is
//! rescaled to the original clip's RMS, so the response changes the colour of the sound, not
//! its level.

use crate::audio::conv::fft_convolve;
use crate::audio::resample::Resampler;
use crate::audio::wav::Audio;
use crate::error::Result;
use rand::seq::index::sample;
use rand::Rng;

/// The (impulse response, clip) pairs to render: for each of `irs` responses in order,
/// `clips_per_ir` distinct clips drawn from `pool` (indices of device-a training clips).
pub fn plan(
    irs: usize,
    pool: &[usize],
    clips_per_ir: usize,
    rng: &mut impl Rng,
) -> Vec<(usize, usize)> {
    let mut jobs = Vec::with_capacity(irs * clips_per_ir);
    for ir in 0..irs {
        for k in sample(rng, pool.len(), clips_per_ir) {
            jobs.push((ir, pool[k]));
        }
    }
    jobs
}

/// `clip` convolved with `ir` at the clip's recorded rate (simulated recordings are new WAV
/// files, later read and resampled like any clip; the response is brought to the clip's rate
/// by the system's resampler), rescaled to the clip's RMS.
pub fn simulate(clip: &Audio, ir: &Audio, resampler: &Resampler) -> Result<Vec<f32>> {
    let h = resampler.resample(&ir.samples, ir.sample_rate, clip.sample_rate)?;
    let mut y = fft_convolve(&clip.samples, &h);
    let rms = |v: &[f32]| {
        (v.iter().map(|s| (*s as f64).powi(2)).sum::<f64>() / v.len().max(1) as f64).sqrt()
    };
    let (a, b) = (rms(&clip.samples), rms(&y));
    if b > 0.0 {
        let g = (a / b) as f32;
        y.iter_mut().for_each(|s| *s *= g);
    }
    Ok(y)
}
