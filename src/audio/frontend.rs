//! Log-mel front ends reproducing the released PyTorch code of the systems: same conventions,
//! and numerically the same up to f32 rounding. The window, pre-emphasis coefficient and mel
//! filterbank are built exactly as torch builds them in f32 (what the released models were
//! trained with); the signal path (pre-emphasis, real FFT, power, mel sums, log) runs in f64,
//! so the result is torch's computation without its f32 FFT noise.
//!
//! Two families (SPEC "Front ends"):
//!
//! * `cpmel-*`: CP-JKU's `AugmentMelSTFT` in evaluation mode.
//!   1. Optional pre-emphasis `conv1d(x, [[-0.97, 1]])` without padding: `y[n] = x[n+1] -
//!      0.97 x[n]`, so the signal loses one sample (32000 -> 31999).
//!   2. `torch.stft(center=True, pad_mode="reflect")` with `hann_window(win, periodic=False)`
//!      (`0.5 - 0.5 cos(2 pi n / (win - 1))`), zero-padded centrally to `n_fft` as torch does
//!      (`(n_fft - win) / 2` zeros on the left).
//!   3. Power `re^2 + im^2` of the `n_fft/2 + 1` one-sided bins.
//!   4. Kaldi mel banks (`torchaudio.compliance.kaldi.get_mel_banks`, fmin 0, fmax sr/2, vtln
//!      warp 1 so VTLN is a no-op): mel scale `1127 ln(1 + f/700)`, `n_mels` triangles evenly
//!      spaced in mel, evaluated at bin centres `i sr / n_fft` for `i < n_fft/2`, no area
//!      normalisation; the Nyquist bin gets weight 0 (CP-JKU pads one zero column).
//!   5. `log(mel + 1e-5)`, then `(x + 4.5) / 5`.
//! * `tamel-*`: `torchaudio.transforms.MelSpectrogram` (+ `log(x + 1e-5)`): centred STFT with
//!   reflect padding and `hann_window(win)` (periodic: `0.5 - 0.5 cos(2 pi n / win)`), power 2,
//!   HTK mel scale `2595 log10(1 + f/700)`, `melscale_fbanks` triangles over the `n_fft/2 + 1`
//!   frequencies `linspace(0, sr/2)` (Nyquist included), no normalisation, fmin 0, fmax sr/2.
//!
//! | id | pre-emph. | n_fft | window | hop | mels | 1 s at 32 kHz |
//! |---|---|---|---|---|---|---|
//! | cpmel-128 | no | 2048 | 2048 symmetric | 744 | 128 | 128 x 44 |
//! | cpmel-512 | yes | 4096 | 3072 symmetric | 500 | 512 | 512 x 64 |
//! | tamel-256 | no | 4096 | 3072 periodic | 500 | 256 | 256 x 65 |
//! | tamel-256-502 | no | 4096 | 4096 periodic | 502 | 256 | 256 x 64 |
//!
//! `tamel-256-502` (DSFlexiNet, Ramezanee et al. 2025): the released inference code builds
//! `MelSpectrogram(sample_rate=32000, n_fft=4096, hop_length=502, n_mels=256, power=2)`, so the
//! window takes torchaudio's default length, `win_length = n_fft = 4096`.
//!
//! Frame count: centring pads `n_fft / 2` samples on each side, so a signal of `L` samples
//! (after pre-emphasis) gives `1 + L / hop` frames (integer division). Frame `t` is centred on
//! sample `t * hop`.
//!
//! Reflect padding mirrors without repeating the edge sample (`x[1], x[0] | x[0], x[1]` becomes
//! `x[2], x[1], x[0], x[1], x[2]`). torch refuses signals not longer than `n_fft / 2`; here
//! the reflection then continues periodically (numpy's `reflect`), a one-sample signal is held
//! constant and an empty one is silence, so every input has an output.

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// Identifies one of the front ends of the SPEC table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum FrontendId {
    #[serde(rename = "cpmel-128")]
    CpMel128,
    #[serde(rename = "cpmel-512")]
    CpMel512,
    #[serde(rename = "tamel-256")]
    TaMel256,
    #[serde(rename = "tamel-256-502")]
    TaMel256x502,
}

impl FrontendId {
    /// Every front end, in the SPEC's order.
    pub const ALL: [FrontendId; 4] = [
        FrontendId::CpMel128,
        FrontendId::CpMel512,
        FrontendId::TaMel256,
        FrontendId::TaMel256x502,
    ];

    /// The id as written in recipes, e.g. `"cpmel-128"`.
    pub fn as_str(self) -> &'static str {
        match self {
            FrontendId::CpMel128 => "cpmel-128",
            FrontendId::CpMel512 => "cpmel-512",
            FrontendId::TaMel256 => "tamel-256",
            FrontendId::TaMel256x502 => "tamel-256-502",
        }
    }
}

impl fmt::Display for FrontendId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parse errors are `Error::Msg` naming the given id and listing the valid ones; callers add
/// the file and field.
impl FromStr for FrontendId {
    type Err = crate::error::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FrontendId::ALL
            .into_iter()
            .find(|id| id.as_str() == s.trim())
            .ok_or_else(|| {
                let valid: Vec<&str> = FrontendId::ALL.iter().map(|id| id.as_str()).collect();
                crate::error::Error::msg(format!(
                    "unknown front end `{s}`; valid front ends are: {}",
                    valid.join(", ")
                ))
            })
    }
}

/// A log-mel spectrogram, row-major `[mel][frame]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Features {
    pub n_mels: usize,
    pub n_frames: usize,
    pub data: Vec<f32>,
}

impl Features {
    /// Value at mel band `mel`, frame `frame`.
    pub fn at(&self, mel: usize, frame: usize) -> f32 {
        self.data[mel * self.n_frames + frame]
    }

    /// The frames of one mel band.
    pub fn row(&self, mel: usize) -> &[f32] {
        &self.data[mel * self.n_frames..(mel + 1) * self.n_frames]
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum MelScale {
    /// `torchaudio.compliance.kaldi.get_mel_banks` + a zero Nyquist column.
    Kaldi,
    /// `torchaudio.functional.melscale_fbanks(mel_scale="htk", norm=None)`.
    Htk,
}

/// Every numeric parameter of a front end.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Params {
    sample_rate: u32,
    preemphasis: Option<f64>,
    n_fft: usize,
    win_length: usize,
    periodic_window: bool,
    hop: usize,
    n_mels: usize,
    scale: MelScale,
    f_min: f64,
    f_max: f64,
    log_offset: f64,
    /// `(x + shift) / scale` after the log.
    normalise: Option<(f64, f64)>,
}

impl Params {
    fn of(id: FrontendId) -> Params {
        let cp = Params {
            sample_rate: 32000,
            preemphasis: None,
            n_fft: 2048,
            win_length: 2048,
            periodic_window: false,
            hop: 744,
            n_mels: 128,
            scale: MelScale::Kaldi,
            f_min: 0.0,
            f_max: 16000.0,
            log_offset: 1e-5,
            normalise: Some((4.5, 5.0)),
        };
        let ta = Params {
            periodic_window: true,
            n_fft: 4096,
            win_length: 3072,
            hop: 500,
            n_mels: 256,
            scale: MelScale::Htk,
            normalise: None,
            ..cp
        };
        match id {
            FrontendId::CpMel128 => cp,
            FrontendId::CpMel512 => Params {
                // CP-JKU's f32 buffer `[[-0.97, 1]]` holds -0.97 rounded to f32.
                preemphasis: Some(f64::from(0.97f32)),
                n_fft: 4096,
                win_length: 3072,
                hop: 500,
                n_mels: 512,
                ..cp
            },
            FrontendId::TaMel256 => ta,
            FrontendId::TaMel256x502 => Params {
                win_length: 4096,
                hop: 502,
                ..ta
            },
        }
    }
}

/// One mel filter: weights for the power bins `start .. start + weights.len()`.
#[derive(Clone, Debug)]
struct Filter {
    start: usize,
    weights: Vec<f64>,
}

/// A front end with its window, sparse mel filterbank and FFT plan precomputed. Cheap to share
/// across threads (`&Frontend` is all `compute` needs).
#[derive(Clone)]
pub struct Frontend {
    id: FrontendId,
    params: Params,
    /// Window zero-padded centrally to `n_fft`, stored as its nonzero span only.
    window: Vec<f64>,
    window_offset: usize,
    filters: Vec<Filter>,
    fft: Arc<dyn RealToComplex<f64>>,
}

impl fmt::Debug for Frontend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frontend")
            .field("id", &self.id)
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl Frontend {
    pub fn new(id: FrontendId) -> Frontend {
        let params = Params::of(id);
        let window = hann(params.win_length, params.periodic_window);
        let window_offset = (params.n_fft - params.win_length) / 2;
        let bank = match params.scale {
            MelScale::Kaldi => kaldi_bank(&params),
            MelScale::Htk => htk_bank(&params),
        };
        let filters = bank.into_iter().map(sparse).collect();
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(params.n_fft);
        Frontend {
            id,
            params,
            window,
            window_offset,
            filters,
            fft,
        }
    }

    pub fn id(&self) -> FrontendId {
        self.id
    }

    pub fn sample_rate(&self) -> u32 {
        self.params.sample_rate
    }

    pub fn n_mels(&self) -> usize {
        self.params.n_mels
    }

    /// Frames produced for `n_samples` input samples (pre-emphasis drops one, then `1 + L/hop`).
    pub fn n_frames(&self, n_samples: usize) -> usize {
        1 + self.effective_len(n_samples) / self.params.hop
    }

    fn effective_len(&self, n_samples: usize) -> usize {
        match self.params.preemphasis {
            Some(_) => n_samples.saturating_sub(1),
            None => n_samples,
        }
    }

    /// Log-mel of mono samples already at `sample_rate()`.
    pub fn compute(&self, samples: &[f32]) -> Features {
        let p = &self.params;
        let signal: Vec<f64> = match p.preemphasis {
            Some(a) => samples
                .windows(2)
                .map(|w| f64::from(w[1]) - a * f64::from(w[0]))
                .collect(),
            None => samples.iter().map(|&s| f64::from(s)).collect(),
        };
        let padded = reflect_pad(&signal, p.n_fft / 2);
        let n_frames = self.n_frames(samples.len());
        let n_mels = p.n_mels;
        let mut data = vec![0f32; n_mels * n_frames];

        // Per-call buffers, reused for every frame of the clip (one clip per thread at a time).
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = vec![0f64; spectrum.len()];
        let span = self.window_offset..self.window_offset + self.window.len();

        for t in 0..n_frames {
            let frame = &padded[t * p.hop..t * p.hop + p.n_fft];
            // Zeros outside the window's span: the FFT may overwrite its input.
            input.fill(0.0);
            for ((dst, &x), &w) in input[span.clone()]
                .iter_mut()
                .zip(&frame[span.clone()])
                .zip(&self.window)
            {
                *dst = x * w;
            }
            self.fft
                .process_with_scratch(&mut input, &mut spectrum, &mut scratch)
                .expect("FFT buffers come from the plan itself");
            for (pw, c) in power.iter_mut().zip(&spectrum) {
                *pw = power_of(c);
            }
            for (m, filter) in self.filters.iter().enumerate() {
                let bins = &power[filter.start..filter.start + filter.weights.len()];
                let mel: f64 = filter.weights.iter().zip(bins).map(|(w, b)| w * b).sum();
                let mut v = (mel + p.log_offset).ln();
                if let Some((shift, scale)) = p.normalise {
                    v = (v + shift) / scale;
                }
                data[m * n_frames + t] = v as f32;
            }
        }
        Features {
            n_mels,
            n_frames,
            data,
        }
    }

    /// Stable text naming every numeric parameter and the resampler design (features of
    /// 44.1 kHz files depend on it too); changes iff the output can change.
    pub fn fingerprint(&self) -> String {
        let p = &self.params;
        let preemphasis = match p.preemphasis {
            Some(a) => format!("conv1d[-{a},1]"),
            None => "none".to_string(),
        };
        let scale = match p.scale {
            MelScale::Kaldi => "kaldi(1127ln(1+f/700),bins<n_fft/2,nyquist=0,vtln_warp=1)",
            MelScale::Htk => "htk(2595log10(1+f/700),linspace(0,sr/2,n_fft/2+1),norm=none)",
        };
        let normalise = match p.normalise {
            Some((shift, scale)) => format!("(x+{shift})/{scale}"),
            None => "none".to_string(),
        };
        format!(
            "frontend={id};impl=v1(f32-params,f64-signal);sr={sr};preemphasis={preemphasis};stft=center-reflect;\
             n_fft={n_fft};win={win};window=hann({kind});hop={hop};power=2;mel={scale};\
             n_mels={n_mels};fmin={fmin};fmax={fmax};log=ln(x+{off});normalise={normalise};\
             resampler={res}",
            id = self.id,
            sr = p.sample_rate,
            n_fft = p.n_fft,
            win = p.win_length,
            kind = if p.periodic_window {
                "periodic"
            } else {
                "symmetric"
            },
            hop = p.hop,
            n_mels = p.n_mels,
            fmin = p.f_min,
            fmax = p.f_max,
            off = p.log_offset,
            res = super::resample::RESAMPLER_ID,
        )
    }
}

fn power_of(c: &Complex<f64>) -> f64 {
    c.re * c.re + c.im * c.im
}

// Window and filterbanks are built the way torch builds them in f32 (same operations, same
// order, f32 rounding after each), because the released models were trained on exactly those
// f32 parameters: a pure f64 bank differs by up to ~1e-5 in weight, and a strong tone that
// falls on a triangle's edge bin turns that into ~2e-4 on the log scale. Transcendentals are
// evaluated in f64 and rounded (torch's SLEEF f32 versions can differ by 1 ulp); the Kaldi banks
// come out bit-identical to torch's, the window and HTK banks within 1 ulp.

/// `torch.hann_window(n, periodic)` in f32: `arange * (2 pi / (M - 1))`, `cos`, `* -0.5`,
/// `+ 0.5`, with `M = n + 1` when periodic (torch computes `n + 1` points and drops the last).
fn hann(n: usize, periodic: bool) -> Vec<f64> {
    let m = if periodic { n + 1 } else { n };
    if m <= 1 {
        return vec![1.0; n];
    }
    let step = (2.0 * std::f64::consts::PI / (m - 1) as f64) as f32;
    (0..n)
        .map(|i| {
            let c = f64::from(i as f32 * step).cos() as f32;
            f64::from(c * -0.5f32 + 0.5f32)
        })
        .collect()
}

/// `pad` samples of reflection on each side (see the module docs for short signals).
fn reflect_pad(x: &[f64], pad: usize) -> Vec<f64> {
    let len = x.len();
    let total = len + 2 * pad;
    match len {
        0 => vec![0.0; total],
        1 => vec![x[0]; total],
        _ => {
            let period = 2 * (len - 1);
            (0..total)
                .map(|i| {
                    // Position relative to x[0], folded into one reflection period.
                    let j = (i as isize - pad as isize).rem_euclid(period as isize) as usize;
                    x[if j < len { j } else { period - j }]
                })
                .collect()
        }
    }
}

/// `torch.linspace(start, end, steps)` in f32 as the CPU kernel computes it: the first half
/// counts up from `start`, the second half down from `end`, each a fused multiply-add.
fn linspace_f32(start: f64, end: f64, steps: usize) -> Vec<f32> {
    let (s, e) = (start as f32, end as f32);
    if steps <= 1 {
        return vec![s; steps];
    }
    let step = (e - s) / (steps - 1) as f32;
    let half = steps / 2;
    (0..steps)
        .map(|i| {
            if i < half {
                step.mul_add(i as f32, s)
            } else {
                (-step).mul_add((steps - i - 1) as f32, e)
            }
        })
        .collect()
}

/// `torchaudio.compliance.kaldi.get_mel_banks(n_mels, n_fft, sr, f_min, f_max, 100, -500, 1)`
/// in f32, plus CP-JKU's zero column: `n_mels` rows of `n_fft/2 + 1` weights.
fn kaldi_bank(p: &Params) -> Vec<Vec<f64>> {
    let mel_scalar = |f: f64| 1127.0 * (1.0 + f / 700.0).ln();
    let (lo, hi) = (mel_scalar(p.f_min), mel_scalar(p.f_max));
    let delta = ((hi - lo) / (p.n_mels + 1) as f64) as f32;
    let lo = lo as f32;
    let bin_width = (f64::from(p.sample_rate) / p.n_fft as f64) as f32;
    let mel: Vec<f32> = (0..p.n_fft / 2)
        .map(|i| {
            let f = i as f32 * bin_width;
            1127.0f32 * (f64::from(1.0f32 + f / 700.0f32).ln() as f32)
        })
        .collect();
    (0..p.n_mels)
        .map(|m| {
            let left = m as f32 * delta + lo;
            let centre = (m as f32 + 1.0) * delta + lo;
            let right = (m as f32 + 2.0) * delta + lo;
            let mut row: Vec<f64> = mel
                .iter()
                .map(|&x| {
                    let up = (x - left) / (centre - left);
                    let down = (right - x) / (right - centre);
                    f64::from(up.min(down).max(0.0))
                })
                .collect();
            row.push(0.0);
            row
        })
        .collect()
}

/// `torchaudio.functional.melscale_fbanks(n_fft/2 + 1, f_min, f_max, n_mels, sr, None, "htk")`
/// in f32, transposed to `n_mels` rows of `n_fft/2 + 1` weights.
fn htk_bank(p: &Params) -> Vec<Vec<f64>> {
    let to_mel = |f: f64| 2595.0 * (1.0 + f / 700.0).log10();
    // torchaudio uses `sample_rate // 2` for the frequency axis.
    let freqs = linspace_f32(0.0, f64::from(p.sample_rate / 2), p.n_fft / 2 + 1);
    let m_pts = linspace_f32(to_mel(p.f_min), to_mel(p.f_max), p.n_mels + 2);
    // 700 * (10 ** (m / 2595) - 1)
    let f_pts: Vec<f32> = m_pts
        .iter()
        .map(|&m| 700.0f32 * (10f64.powf(f64::from(m / 2595.0f32)) as f32 - 1.0f32))
        .collect();
    (0..p.n_mels)
        .map(|m| {
            let diff_lo = f_pts[m + 1] - f_pts[m];
            let diff_hi = f_pts[m + 2] - f_pts[m + 1];
            freqs
                .iter()
                .map(|&f| {
                    let down = -(f_pts[m] - f) / diff_lo;
                    let up = (f_pts[m + 2] - f) / diff_hi;
                    f64::from(down.min(up).max(0.0))
                })
                .collect()
        })
        .collect()
}

/// Keeps a filter's nonzero span only: a triangle covers a few bins of thousands.
fn sparse(row: Vec<f64>) -> Filter {
    match row.iter().position(|&w| w != 0.0) {
        Some(start) => {
            let end = row.iter().rposition(|&w| w != 0.0).map_or(start, |e| e + 1);
            Filter {
                start,
                weights: row[start..end].to_vec(),
            }
        }
        None => Filter {
            start: 0,
            weights: Vec::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_for_one_second() {
        let one_second = vec![0.0f32; 32000];
        for (id, mels, frames) in [
            (FrontendId::CpMel128, 128, 44),
            (FrontendId::CpMel512, 512, 64),
            (FrontendId::TaMel256, 256, 65),
            (FrontendId::TaMel256x502, 256, 64),
        ] {
            let fe = Frontend::new(id);
            assert_eq!(fe.sample_rate(), 32000);
            assert_eq!(fe.n_mels(), mels, "{id}");
            assert_eq!(fe.n_frames(32000), frames, "{id}");
            let f = fe.compute(&one_second);
            assert_eq!(
                (f.n_mels, f.n_frames, f.data.len()),
                (mels, frames, mels * frames)
            );
        }
    }

    #[test]
    fn frame_counts_match_compute_for_any_length() {
        for id in FrontendId::ALL {
            let fe = Frontend::new(id);
            for len in [
                0, 1, 2, 3, 100, 499, 500, 501, 743, 744, 745, 2048, 2049, 16000, 54321,
            ] {
                let x: Vec<f32> = (0..len)
                    .map(|i| ((i * 7919) % 97) as f32 / 97.0 - 0.5)
                    .collect();
                let f = fe.compute(&x);
                assert_eq!(f.n_frames, fe.n_frames(len), "{id} len {len}");
                assert_eq!(f.data.len(), f.n_mels * f.n_frames);
                assert!(f.data.iter().all(|v| v.is_finite()), "{id} len {len}");
            }
        }
    }

    #[test]
    fn silence_is_the_log_floor() {
        let fe = Frontend::new(FrontendId::CpMel128);
        let f = fe.compute(&vec![0.0; 32000]);
        let floor = (((1e-5f64).ln() + 4.5) / 5.0) as f32;
        assert!(f.data.iter().all(|&v| v == floor));
        let fe = Frontend::new(FrontendId::TaMel256);
        let f = fe.compute(&vec![0.0; 32000]);
        assert!(f.data.iter().all(|&v| v == (1e-5f64).ln() as f32));
    }

    #[test]
    fn ids_parse_print_and_serialise() {
        for id in FrontendId::ALL {
            assert_eq!(id.to_string().parse::<FrontendId>().unwrap(), id);
            let json = serde_json::to_string(&id).unwrap();
            assert_eq!(json, format!("\"{id}\""));
            assert_eq!(serde_json::from_str::<FrontendId>(&json).unwrap(), id);
        }
        let err = "cpmel-64".parse::<FrontendId>().unwrap_err().to_string();
        assert!(
            err.contains("cpmel-64") && err.contains("tamel-256-502"),
            "{err}"
        );
    }

    #[test]
    fn fingerprints_differ_and_are_stable() {
        let prints: Vec<String> = FrontendId::ALL
            .iter()
            .map(|&id| Frontend::new(id).fingerprint())
            .collect();
        for (i, a) in prints.iter().enumerate() {
            assert_eq!(a, &Frontend::new(FrontendId::ALL[i]).fingerprint());
            for b in &prints[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn reflect_padding_matches_torch_and_numpy() {
        let x = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(
            reflect_pad(&x, 2),
            vec![3.0, 2.0, 1.0, 2.0, 3.0, 4.0, 3.0, 2.0]
        );
        // Longer than the signal: numpy's np.pad(x, 5, mode="reflect").
        assert_eq!(
            reflect_pad(&[1.0, 2.0, 3.0], 5),
            vec![2.0, 1.0, 2.0, 3.0, 2.0, 1.0, 2.0, 3.0, 2.0, 1.0, 2.0, 3.0, 2.0]
        );
    }

    #[test]
    fn frontend_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Frontend>();
    }
}
