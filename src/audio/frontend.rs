//! Log-mel front ends reproducing the released PyTorch code of the systems: same conventions,
//! and numerically the same up to f32 rounding. The window, pre-emphasis coefficient and mel
//! filterbank are built exactly as torch builds them in f32 (what the released models were
//! trained with). The signal path (pre-emphasis, FFT, power, mel sums, log) runs in f32 for
//! the `cpmel-*` front ends, as the released code does, and in f64 for `tamel-*`, whose log-mel
//! is not divided by 5 and so would show f32 FFT rounding five times larger
//! (tests/frontend_parity.rs bounds both against libtorch, tests/resampler_parity.rs against
//! the authors' pipelines).
//!
//! Speed (benches/frontend.rs): each frame's real FFT is a complex FFT of half its length on the
//! frame packed as `x[2n] + i x[2n+1]` (whose 16 KB working set stays in the L1 cache; two frames
//! packed into one full-length complex FFT took 15% longer per frame, realfft's own real FFT slower
//! still), power spectra of a group of frames are stored bin-major so each sparse mel weight
//! multiplies the whole group, the loops are built for AVX2 when the CPU has it (bit-identical
//! results), the logarithm is a branch-free polynomial that vectorises and is taken as each
//! group's mel sums come out, and per-thread buffers are reused across clips. The half-length
//! spectra of a whole group are untangled in one pass that writes each bin's row once
//! (hand-vectorised for AVX2 in f32).
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

use rustfft::num_complex::Complex;
use rustfft::{Fft, FftNum, FftPlanner};
use std::cell::RefCell;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use super::resample::{Resampler, ResamplerId};

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

    /// The resampler of the systems built on this front end (`audio::resample` says why):
    /// CP-JKU's mel with `librosa.load`, torchaudio's mel with torchaudio's `Resample`. What
    /// `features` and `predict` use unless told otherwise; recipes always name theirs.
    pub fn authors_resampler(self) -> ResamplerId {
        match self {
            FrontendId::CpMel128 | FrontendId::CpMel512 => ResamplerId::Librosa,
            FrontendId::TaMel256 | FrontendId::TaMel256x502 => ResamplerId::Torchaudio,
        }
    }

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
    weights: Vec<f32>,
}

/// Frames transformed before their mel bands are summed: the power spectra of a group are
/// stored bin-major (`[bin][frame]`), so each filter weight multiplies `GROUP` frames at once.
const GROUP: usize = 8;

/// The real FFT of `n_fft` points as a complex FFT of `n_fft / 2` points of the frame packed as
/// `x[2n] + i x[2n+1]`, untangled by [`real_power`]: half the points of a complex FFT of the
/// frame, and a working set that stays in the L1 cache.
#[derive(Clone)]
struct PackedRealFft<T: FftNum> {
    fft: Arc<dyn Fft<T>>,
    /// `-i e^{-2 pi i k / n_fft}` for `k = 0 ..= n_fft / 4` (sine and cosine in f64, rounded).
    twiddles: Vec<Complex<T>>,
}

impl<T: Real> PackedRealFft<T> {
    fn new(n_fft: usize) -> Self {
        let twiddles = (0..=n_fft / 4)
            .map(|k| {
                let theta = 2.0 * std::f64::consts::PI * k as f64 / n_fft as f64;
                Complex::new(T::of_f64(-theta.sin()), T::of_f64(-theta.cos()))
            })
            .collect();
        PackedRealFft {
            fft: FftPlanner::<T>::new().plan_fft_forward(n_fft / 2),
            twiddles,
        }
    }
}

/// The FFT in the precision of the front end's signal path.
#[derive(Clone)]
enum Transform {
    Single(PackedRealFft<f32>),
    Double(PackedRealFft<f64>),
}

/// A front end with its window, sparse mel filterbank and FFT plan precomputed. Cheap to share
/// across threads (`&Frontend` is all `compute` needs).
#[derive(Clone)]
pub struct Frontend {
    id: FrontendId,
    params: Params,
    /// Window zero-padded centrally to `n_fft`, stored as its nonzero span only.
    window: Vec<f32>,
    window_offset: usize,
    filters: Vec<Filter>,
    fft: Transform,
    /// SHA-256 of a filterbank set by [`Frontend::with_mel_bank`] (named in the fingerprint).
    custom_bank: Option<String>,
    /// How clips at other rates are brought to `sample_rate` (part of the fingerprint).
    resampler: Resampler,
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
    /// The front end `id`, fed by `resampler` for clips at other rates.
    pub fn new(id: FrontendId, resampler: ResamplerId) -> Frontend {
        let params = Params::of(id);
        let window = hann(params.win_length, params.periodic_window)
            .into_iter()
            .map(|w| w as f32)
            .collect();
        let window_offset = (params.n_fft - params.win_length) / 2;
        let bank = match params.scale {
            MelScale::Kaldi => kaldi_bank(&params),
            MelScale::Htk => htk_bank(&params),
        };
        let filters = bank.into_iter().map(sparse).collect();
        let fft = match params.scale {
            MelScale::Kaldi => Transform::Single(PackedRealFft::new(params.n_fft)),
            MelScale::Htk => Transform::Double(PackedRealFft::new(params.n_fft)),
        };
        Frontend {
            id,
            params,
            window,
            window_offset,
            filters,
            fft,
            custom_bank: None,
            resampler: Resampler::new(resampler),
        }
    }

    /// The front end `id` with the resampler of the systems built on it
    /// ([`FrontendId::authors_resampler`]).
    pub fn authors(id: FrontendId) -> Frontend {
        Frontend::new(id, id.authors_resampler())
    }

    /// This front end with another resampler (e.g. one with a checkpoint's embedded kernel).
    pub fn with_resampler(&self, resampler: Resampler) -> Frontend {
        Frontend {
            resampler,
            ..self.clone()
        }
    }

    pub fn resampler(&self) -> &Resampler {
        &self.resampler
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
        match &self.fft {
            Transform::Single(fft) => f32::with_scratch(|s| self.dispatch(samples, fft, s)),
            Transform::Double(fft) => f64::with_scratch(|s| self.dispatch(samples, fft, s)),
        }
    }

    /// `compute_in` built for AVX2 when the CPU has it. Same operations in the same order, no
    /// fused multiply-adds: the result is bit-identical either way, only wider vectors.
    fn dispatch<T: Real>(
        &self,
        samples: &[f32],
        fft: &PackedRealFft<T>,
        s: &mut Scratch<T>,
    ) -> Features {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            return unsafe { self.compute_avx2(samples, fft, s) };
        }
        self.compute_in::<T, false>(samples, fft, s)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn compute_avx2<T: Real>(
        &self,
        samples: &[f32],
        fft: &PackedRealFft<T>,
        s: &mut Scratch<T>,
    ) -> Features {
        self.compute_in::<T, true>(samples, fft, s)
    }

    /// `AVX2`: the caller has checked that the CPU supports AVX2 (hand-vectorised steps).
    #[inline(always)]
    fn compute_in<T: Real, const AVX2: bool>(
        &self,
        samples: &[f32],
        fft: &PackedRealFft<T>,
        s: &mut Scratch<T>,
    ) -> Features {
        let p = &self.params;
        let n_fft = p.n_fft;
        let n_bins = n_fft / 2 + 1;
        self.padded_signal(samples, &mut s.padded);
        let n_frames = self.n_frames(samples.len());
        let n_mels = p.n_mels;
        let mut data = vec![0f32; n_mels * n_frames];
        let (shift, scale) = p.normalise.unwrap_or((0.0, 1.0));
        let (log_offset, shift, scale) =
            (T::of_f64(p.log_offset), T::of_f64(shift), T::of_f64(scale));

        let half = n_fft / 2;
        s.buffer.resize(half, Complex::default());
        s.spectrum.resize(half * GROUP, Complex::default());
        s.fft_scratch
            .resize(fft.fft.get_outofplace_scratch_len(), Complex::default());
        s.power.resize(n_bins * GROUP, T::zero());
        let (offset, win) = (self.window_offset, self.window.len());

        for first in (0..n_frames).step_by(GROUP) {
            let frames = GROUP.min(n_frames - first);
            for (lane, spectrum) in s.spectrum.chunks_exact_mut(half).enumerate() {
                if lane >= frames {
                    // Past the last frame: a silent spectrum, summed and discarded.
                    spectrum.fill(Complex::default());
                    continue;
                }
                // The windowed frame, zeros outside the window's span, packed as
                // `x[2n] + i x[2n+1]`.
                let frame = as_reals(&mut s.buffer);
                let a = (first + lane) * p.hop + offset;
                frame[..offset].fill(T::zero());
                frame[offset + win..].fill(T::zero());
                for ((y, &x), &w) in frame[offset..offset + win]
                    .iter_mut()
                    .zip(&s.padded[a..a + win])
                    .zip(&self.window)
                {
                    *y = x * T::of_f32(w);
                }
                // Out of place: `buffer` is left undefined (refilled for the next frame).
                fft.fft.process_outofplace_with_scratch(
                    &mut s.buffer,
                    spectrum,
                    &mut s.fft_scratch,
                );
            }
            if AVX2 {
                // SAFETY: `AVX2` is only set by `compute_avx2`, run on CPUs with AVX2.
                unsafe { T::real_power_avx2(&s.spectrum, &fft.twiddles, &mut s.power) }
            } else {
                real_power(&s.spectrum, &fft.twiddles, &mut s.power);
            }
            for (m, filter) in self.filters.iter().enumerate() {
                // Even and odd weights in two sums: two independent chains of additions.
                let (mut even, mut odd) = ([T::zero(); GROUP], [T::zero(); GROUP]);
                let bins = &s.power[filter.start * GROUP..][..filter.weights.len() * GROUP];
                let weights = filter.weights.chunks_exact(2);
                let last = weights.remainder().first().copied();
                for (w, power) in weights.zip(bins.chunks_exact(2 * GROUP)) {
                    let (w0, w1) = (T::of_f32(w[0]), T::of_f32(w[1]));
                    for g in 0..GROUP {
                        even[g] = even[g] + w0 * power[g];
                        odd[g] = odd[g] + w1 * power[GROUP + g];
                    }
                }
                if let Some(w) = last {
                    let (w, power) = (T::of_f32(w), &bins[bins.len() - GROUP..]);
                    for g in 0..GROUP {
                        even[g] = even[g] + w * power[g];
                    }
                }
                // `log(mel + offset)`, normalised, in the signal path's precision: one
                // branch-free loop over the group's lanes (vectorised).
                let mut log_mel = [0f32; GROUP];
                for g in 0..GROUP {
                    let mel = even[g] + odd[g];
                    log_mel[g] = (((mel + log_offset).ln_positive() + shift) / scale).to_f32();
                }
                let row = &mut data[m * n_frames + first..][..frames];
                match <&mut [f32; GROUP]>::try_from(&mut *row) {
                    // A whole group: a fixed-size copy, no call.
                    Ok(row) => *row = log_mel,
                    Err(_) => row.copy_from_slice(&log_mel[..frames]),
                }
            }
        }
        Features {
            n_mels,
            n_frames,
            data,
        }
    }

    /// The signal after pre-emphasis, reflect-padded by `n_fft / 2` on each side, into `padded`.
    #[inline(always)]
    fn padded_signal<T: Real>(&self, samples: &[f32], padded: &mut Vec<T>) {
        let pad = self.params.n_fft / 2;
        let len = self.effective_len(samples.len());
        // Every element is written below: no need to clear.
        padded.resize(len + 2 * pad, T::zero());
        let signal = &mut padded[pad..pad + len];
        match self.params.preemphasis {
            // In the signal path's precision, as torch's f32 `conv1d` does it.
            Some(a) => {
                let a = T::of_f64(a);
                for ((y, &prev), &next) in signal
                    .iter_mut()
                    .zip(samples)
                    .zip(samples.get(1..).unwrap_or_default())
                {
                    *y = T::of_f32(next) - a * T::of_f32(prev);
                }
            }
            None => {
                for (y, &x) in signal.iter_mut().zip(samples) {
                    *y = T::of_f32(x);
                }
            }
        }
        reflect_edges(padded, pad, len);
    }

    /// The mel filterbank `compute` applies, as a dense row-major `[n_mels, n_fft/2 + 1]`
    /// matrix (for comparisons with dense implementations and for export).
    pub fn mel_bank(&self) -> Vec<f32> {
        let n_bins = self.params.n_fft / 2 + 1;
        let mut dense = vec![0f32; self.params.n_mels * n_bins];
        for (row, filter) in dense.chunks_exact_mut(n_bins).zip(&self.filters) {
            for (i, &w) in filter.weights.iter().enumerate() {
                row[filter.start + i] = w;
            }
        }
        dense
    }

    /// The STFT window (`win_length` values, before centring in the FFT frame), as torch
    /// builds it in f32.
    pub fn window(&self) -> &[f32] {
        &self.window
    }

    /// This front end with another mel filterbank in the layout of [`mel_bank`](Self::mel_bank)
    /// (dense row-major `[n_mels, n_fft/2 + 1]`, any `n_mels`): the bank a released checkpoint
    /// embeds. The fingerprint names the bank by its SHA-256.
    pub fn with_mel_bank(&self, bank: &[f32], n_mels: usize) -> crate::error::Result<Frontend> {
        let n_bins = self.params.n_fft / 2 + 1;
        if n_mels == 0 || bank.len() != n_mels * n_bins {
            return Err(crate::error::Error::msg(format!(
                "a mel filterbank for front end {} needs {n_bins} frequency bins per band, got {} \
                 values for {n_mels} bands",
                self.id,
                bank.len()
            )));
        }
        if let Some(w) = bank.iter().find(|w| !w.is_finite()) {
            return Err(crate::error::Error::msg(format!(
                "mel filterbank holds a non-finite weight ({w})"
            )));
        }
        let bytes: Vec<u8> = bank.iter().flat_map(|w| w.to_le_bytes()).collect();
        let digest = <sha2::Sha256 as sha2::Digest>::digest(&bytes);
        let mut fe = self.clone();
        fe.params.n_mels = n_mels;
        fe.filters = bank
            .chunks_exact(n_bins)
            .map(|row| sparse(row.iter().map(|&w| f64::from(w)).collect()))
            .collect();
        fe.custom_bank = Some(format!("{n_mels}x{n_bins}:{}", hex::encode(digest)));
        Ok(fe)
    }

    /// Stable text naming every numeric parameter and the resampler (features of 44.1 kHz
    /// files depend on it too); changes iff the output can change.
    pub fn fingerprint(&self) -> String {
        let p = &self.params;
        let preemphasis = match p.preemphasis {
            Some(a) => format!("conv1d[-{a},1]"),
            None => "none".to_string(),
        };
        let scale = match (&self.custom_bank, p.scale) {
            (Some(bank), _) => format!("custom(sha256={bank})"),
            (None, MelScale::Kaldi) => {
                "kaldi(1127ln(1+f/700),bins<n_fft/2,nyquist=0,vtln_warp=1)".to_string()
            }
            (None, MelScale::Htk) => {
                "htk(2595log10(1+f/700),linspace(0,sr/2,n_fft/2+1),norm=none)".to_string()
            }
        };
        let normalise = match p.normalise {
            Some((shift, scale)) => format!("(x+{shift})/{scale}"),
            None => "none".to_string(),
        };
        format!(
            "frontend={id};impl=v3(f32-params,{signal}-signal-and-log);sr={sr};preemphasis={preemphasis};stft=center-reflect;\
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
            res = self.resampler.fingerprint(),
            signal = match self.fft {
                Transform::Single(_) => "f32",
                Transform::Double(_) => "f64",
            },
        )
    }
}

/// `buffer` as its interleaved real and imaginary parts.
fn as_reals<T: FftNum>(buffer: &mut [Complex<T>]) -> &mut [T] {
    // SAFETY: `Complex<T>` is `#[repr(C)] { re: T, im: T }`: `len` complex numbers are `2 len`
    // values of `T`, with `T`'s alignment; the borrow of `buffer` is carried over.
    unsafe { std::slice::from_raw_parts_mut(buffer.as_mut_ptr().cast::<T>(), 2 * buffer.len()) }
}

/// Untangles the `GROUP` packed transforms of one group (`spectra`: consecutive FFTs of
/// `M = n_fft / 2` points of `z[n] = x[2n] + i x[2n+1]`) and stores the powers `|X_k|^2`,
/// `k = 0 ..= M`, of each frame at its lane of the bin-major `power` (each bin's row is written
/// once). With `d = z_k - conj(z_{M-k})` and the twiddle `u_k = -i e^{-2 pi i k / n_fft}`:
/// `2 X_k = e + t` and `2 conj(X_{M-k}) = e - t`, where `e = z_k + conj(z_{M-k})`, `t = u_k d`
/// (`z_M` is `z_0`, so `k = 0` gives the DC and Nyquist bins).
#[inline(always)]
fn real_power<T: Real>(spectra: &[Complex<T>], twiddles: &[Complex<T>], power: &mut [T]) {
    let m = spectra.len() / GROUP;
    for k in 0..=m / 2 {
        real_bins(spectra, twiddles, power, k);
    }
}

/// Rows `k` and `M - k` of [`real_power`].
#[inline(always)]
fn real_bins<T: Real>(spectra: &[Complex<T>], twiddles: &[Complex<T>], power: &mut [T], k: usize) {
    let m = spectra.len() / GROUP;
    let quarter = T::of_f64(0.25);
    let u = twiddles[k];
    let (mut low, mut high) = ([T::zero(); GROUP], [T::zero(); GROUP]);
    for (j, z) in spectra.chunks_exact(m).enumerate() {
        let (zk, zr) = (z[k], z[(m - k) % m]);
        let (e_re, e_im) = (zk.re + zr.re, zk.im - zr.im);
        let (d_re, d_im) = (zk.re - zr.re, zk.im + zr.im);
        let (t_re, t_im) = (d_re * u.re - d_im * u.im, d_im * u.re + d_re * u.im);
        let (s_re, s_im) = (e_re + t_re, e_im + t_im);
        let (c_re, c_im) = (e_re - t_re, e_im - t_im);
        low[j] = (s_re * s_re + s_im * s_im) * quarter;
        high[j] = (c_re * c_re + c_im * c_im) * quarter;
    }
    power[k * GROUP..][..GROUP].copy_from_slice(&low);
    power[(m - k) * GROUP..][..GROUP].copy_from_slice(&high);
}

/// [`real_power`] for f32 with AVX2, bit-identical: the same operations on four bins of a frame
/// at once (`a - b` is computed as `a + (-b)`, which IEEE defines to be the same), then an 8 x 8
/// transpose so that each bin's row of `GROUP` lanes is one store.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn real_power_f32_avx2(spectra: &[Complex<f32>], twiddles: &[Complex<f32>], power: &mut [f32]) {
    use std::arch::x86_64::*;
    const { assert!(GROUP == 8) };
    let m = spectra.len() / GROUP;
    // Blocks of bins `k0 .. k0 + 4` with `1 <= k0` and `k0 + 3 < M / 2`: rows `M - k` distinct.
    let blocks = (m / 2).saturating_sub(1) / 4;
    let quarter = _mm256_set1_ps(0.25);
    // Negates the imaginary parts: `conj`.
    let conj = _mm256_setr_ps(0.0, -0.0, 0.0, -0.0, 0.0, -0.0, 0.0, -0.0);
    for block in 0..blocks {
        let k0 = 1 + 4 * block;
        // SAFETY: 4 complex f32 = 8 floats (k0 + 3 <= M / 4 < twiddles.len()); unaligned load.
        let u = unsafe { _mm256_loadu_ps(twiddles[k0..k0 + 4].as_ptr().cast::<f32>()) };
        let (u_re, u_im) = (_mm256_moveldup_ps(u), _mm256_movehdup_ps(u));
        // For each frame j: [|X_k|^2 for k0 .. k0 + 3 | |X_{M-k}|^2 for k0 .. k0 + 3].
        // (Loops, not `array::from_fn`: its closure is not inlined, nor built for AVX2.)
        let mut v = [_mm256_setzero_ps(); GROUP];
        for (j, v) in v.iter_mut().enumerate() {
            let z = &spectra[j * m..][..m];
            let zk = &z[k0..k0 + 4];
            // z[M - k0 - 3 ..= M - k0]: reversed below into z[M - k0], .., z[M - k0 - 3].
            let zr = &z[m - k0 - 3..m - k0 + 1];
            // SAFETY: each slice holds 4 complex f32 = 8 floats; unaligned loads.
            let (zk, zr) = unsafe {
                (
                    _mm256_loadu_ps(zk.as_ptr().cast::<f32>()),
                    _mm256_loadu_ps(zr.as_ptr().cast::<f32>()),
                )
            };
            let zr = _mm256_castpd_ps(_mm256_permute4x64_pd::<0x1b>(_mm256_castps_pd(zr)));
            let y = _mm256_xor_ps(zr, conj);
            let (e, d) = (_mm256_add_ps(zk, y), _mm256_sub_ps(zk, y));
            // t = u d: (d_re u_re - d_im u_im, d_im u_re + d_re u_im).
            let swapped = _mm256_permute_ps::<0xb1>(d);
            let t = _mm256_addsub_ps(_mm256_mul_ps(d, u_re), _mm256_mul_ps(swapped, u_im));
            let (s, c) = (_mm256_add_ps(e, t), _mm256_sub_ps(e, t));
            // [|s_k0|^2, |s_k0+1|^2, |c_k0|^2, |c_k0+1|^2 | k0+2, k0+3]; re^2 + im^2.
            let p = _mm256_hadd_ps(_mm256_mul_ps(s, s), _mm256_mul_ps(c, c));
            let p = _mm256_castps_pd(_mm256_mul_ps(p, quarter));
            *v = _mm256_castpd_ps(_mm256_permute4x64_pd::<0xd8>(p));
        }
        // 8 x 8 transpose: frames j by [rows k0 .. k0 + 3, rows M - k0 .. M - k0 - 3].
        let mut t = [_mm256_setzero_ps(); 8];
        for h in 0..2 {
            // Frames 4h .. 4h + 3: their elements c and c + 4 in the halves of tt[4h + c].
            let lo = [
                _mm256_unpacklo_ps(v[4 * h], v[4 * h + 1]),
                _mm256_unpacklo_ps(v[4 * h + 2], v[4 * h + 3]),
            ];
            let hi = [
                _mm256_unpackhi_ps(v[4 * h], v[4 * h + 1]),
                _mm256_unpackhi_ps(v[4 * h + 2], v[4 * h + 3]),
            ];
            t[4 * h] = _mm256_shuffle_ps::<0x44>(lo[0], lo[1]);
            t[4 * h + 1] = _mm256_shuffle_ps::<0xee>(lo[0], lo[1]);
            t[4 * h + 2] = _mm256_shuffle_ps::<0x44>(hi[0], hi[1]);
            t[4 * h + 3] = _mm256_shuffle_ps::<0xee>(hi[0], hi[1]);
        }
        for c in 0..4 {
            let (low, high) = (
                _mm256_permute2f128_ps::<0x20>(t[c], t[4 + c]),
                _mm256_permute2f128_ps::<0x31>(t[c], t[4 + c]),
            );
            let (k, r) = (k0 + c, m - k0 - c);
            // SAFETY: rows k and M - k hold GROUP = 8 floats each; unaligned stores.
            unsafe {
                _mm256_storeu_ps(power[k * GROUP..][..GROUP].as_mut_ptr(), low);
                _mm256_storeu_ps(power[r * GROUP..][..GROUP].as_mut_ptr(), high);
            }
        }
    }
    real_bins(spectra, twiddles, power, 0);
    for k in 1 + 4 * blocks..=m / 2 {
        real_bins(spectra, twiddles, power, k);
    }
}

/// Floating-point type of a front end's signal path.
trait Real: FftNum + Default {
    fn of_f32(v: f32) -> Self;
    fn of_f64(v: f64) -> Self;
    fn to_f32(self) -> f32;
    /// Natural logarithm of a finite normal `self > 0` (see [`ln_positive`]).
    fn ln_positive(self) -> Self;
    /// Runs `f` with this thread's buffers for this type.
    fn with_scratch<R>(f: impl FnOnce(&mut Scratch<Self>) -> R) -> R;
    /// [`real_power`], hand-vectorised where that pays.
    ///
    /// # Safety
    /// The CPU supports AVX2.
    #[inline(always)]
    unsafe fn real_power_avx2(
        spectra: &[Complex<Self>],
        twiddles: &[Complex<Self>],
        power: &mut [Self],
    ) {
        real_power(spectra, twiddles, power);
    }
}

/// Per-thread buffers of `compute`, reused across clips (one clip per thread at a time).
struct Scratch<T> {
    /// Pre-emphasised, reflect-padded signal.
    padded: Vec<T>,
    /// One windowed frame packed as `x[2n] + i x[2n+1]` (the FFT's input, then its scratch).
    buffer: Vec<Complex<T>>,
    /// The packed FFTs of the `GROUP` frames of a group.
    spectrum: Vec<Complex<T>>,
    fft_scratch: Vec<Complex<T>>,
    /// Power spectra of one group of frames, `[bin][frame]`.
    power: Vec<T>,
}

impl<T> Default for Scratch<T> {
    fn default() -> Self {
        Scratch {
            padded: Vec::new(),
            buffer: Vec::new(),
            spectrum: Vec::new(),
            fft_scratch: Vec::new(),
            power: Vec::new(),
        }
    }
}

thread_local! {
    static SCRATCH_F32: RefCell<Scratch<f32>> = RefCell::new(Scratch::default());
    static SCRATCH_F64: RefCell<Scratch<f64>> = RefCell::new(Scratch::default());
}

impl Real for f32 {
    fn of_f32(v: f32) -> Self {
        v
    }
    fn of_f64(v: f64) -> Self {
        v as f32
    }
    fn to_f32(self) -> f32 {
        self
    }
    fn ln_positive(self) -> Self {
        ln_positive_f32(self)
    }
    fn with_scratch<R>(f: impl FnOnce(&mut Scratch<Self>) -> R) -> R {
        SCRATCH_F32.with(|s| f(&mut s.borrow_mut()))
    }
    #[inline(always)]
    unsafe fn real_power_avx2(
        spectra: &[Complex<Self>],
        twiddles: &[Complex<Self>],
        power: &mut [Self],
    ) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the caller guarantees AVX2.
        unsafe {
            real_power_f32_avx2(spectra, twiddles, power)
        }
        #[cfg(not(target_arch = "x86_64"))]
        real_power(spectra, twiddles, power);
    }
}

impl Real for f64 {
    fn of_f32(v: f32) -> Self {
        f64::from(v)
    }
    fn of_f64(v: f64) -> Self {
        v
    }
    fn to_f32(self) -> f32 {
        self as f32
    }
    fn ln_positive(self) -> Self {
        ln_positive(self)
    }
    fn with_scratch<R>(f: impl FnOnce(&mut Scratch<Self>) -> R) -> R {
        SCRATCH_F64.with(|s| f(&mut s.borrow_mut()))
    }
}

/// Natural logarithm of a finite `x >= f64::MIN_POSITIVE`, accurate to about 1 ulp, without
/// branches or calls so that loops over it vectorise. `x = 2^e m` with `m` in `[sqrt(1/2),
/// sqrt(2))`; `ln m = 2 atanh(f) = 2 (f + f^3/3 + f^5/5 + ...)` with `f = (m - 1) / (m + 1)`,
/// `|f| < 0.172`, summed to `f^21` (the next term is below 2^-53 of the result).
#[inline(always)]
fn ln_positive(x: f64) -> f64 {
    const MANTISSA: u64 = (1 << 52) - 1;
    const ONE: u64 = 0x3ff0_0000_0000_0000;
    let bits = x.to_bits();
    // The biased exponent placed in the mantissa of 2^52 reads back exactly as 2^52 + e + 1023.
    let e =
        f64::from_bits(0x4330_0000_0000_0000 | (bits >> 52)) - (4_503_599_627_370_496.0 + 1023.0);
    let m = f64::from_bits((bits & MANTISSA) | ONE);
    let big = m > std::f64::consts::SQRT_2;
    let (m, e) = if big { (0.5 * m, e + 1.0) } else { (m, e) };
    let f = (m - 1.0) / (m + 1.0);
    let s = f * f;
    let mut series = 1.0 / 21.0;
    for k in (0..10).rev() {
        series = series * s + 1.0 / (2 * k + 1) as f64;
    }
    e * std::f64::consts::LN_2 + 2.0 * f * series
}

/// [`ln_positive`] in f32, within 2 ulp: the series to `f^11` (the next term is below 2^-31 of
/// the result), `ln 2` split in two so that `e ln 2` keeps full precision.
#[inline(always)]
fn ln_positive_f32(x: f32) -> f32 {
    const MANTISSA: u32 = (1 << 23) - 1;
    const ONE: u32 = 0x3f80_0000;
    // ln 2 = LN2_HI + LN2_LO, LN2_HI with 8 significant bits: `e * LN2_HI` is exact.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let bits = x.to_bits();
    let e = f32::from_bits(0x4b00_0000 | (bits >> 23)) - (8_388_608.0 + 127.0);
    let m = f32::from_bits((bits & MANTISSA) | ONE);
    let big = m > std::f32::consts::SQRT_2;
    let (m, e) = if big { (0.5 * m, e + 1.0) } else { (m, e) };
    let f = (m - 1.0) / (m + 1.0);
    let s = f * f;
    let mut series = 1.0 / 11.0;
    for k in (0..5).rev() {
        series = series * s + 1.0 / (2 * k + 1) as f32;
    }
    e * LN2_HI + (e * LN2_LO + 2.0 * f * series)
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

/// Fills `padded[..pad]` and `padded[pad + len..]` with the reflection of the signal in
/// `padded[pad..pad + len]` (see the module docs for signals shorter than the padding).
fn reflect_edges<T: Copy + Default>(padded: &mut [T], pad: usize, len: usize) {
    debug_assert_eq!(padded.len(), len + 2 * pad);
    match len {
        0 => padded.fill(T::default()),
        1 => {
            let x = padded[pad];
            padded.fill(x);
        }
        _ if len > pad => {
            // One reflection each side: x[pad], .., x[1] | x | x[len - 2], .., x[len - 1 - pad].
            for i in 0..pad {
                padded[i] = padded[2 * pad - i];
                padded[pad + len + i] = padded[pad + len - 2 - i];
            }
        }
        _ => {
            let period = 2 * (len - 1);
            for i in (0..pad).chain(pad + len..padded.len()) {
                // Position relative to x[0], folded into one reflection period.
                let j = (i as isize - pad as isize).rem_euclid(period as isize) as usize;
                padded[i] = padded[pad + if j < len { j } else { period - j }];
            }
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

/// Keeps a filter's nonzero span only: a triangle covers a few bins of thousands. The weights
/// are f32 values (torch's), held in f64 by the bank builders.
fn sparse(row: Vec<f64>) -> Filter {
    match row.iter().position(|&w| w != 0.0) {
        Some(start) => {
            let end = row.iter().rposition(|&w| w != 0.0).map_or(start, |e| e + 1);
            Filter {
                start,
                weights: row[start..end].iter().map(|&w| w as f32).collect(),
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
            let fe = Frontend::authors(id);
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
            let fe = Frontend::authors(id);
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
        // cpmel: f32 arithmetic, as torch does it (within 2 ulp of the exact floor).
        let fe = Frontend::authors(FrontendId::CpMel128);
        let f = fe.compute(&vec![0.0; 32000]);
        let floor = f.data[0];
        assert!(f.data.iter().all(|&v| v == floor));
        let exact = (((1e-5f64).ln() + 4.5) / 5.0) as f32;
        assert!(
            (floor - exact).abs() <= 2.0 * f32::EPSILON * exact.abs(),
            "{floor} {exact}"
        );
        // tamel: f64 arithmetic, rounded once.
        let fe = Frontend::authors(FrontendId::TaMel256);
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
            .map(|&id| Frontend::authors(id).fingerprint())
            .collect();
        for (i, a) in prints.iter().enumerate() {
            assert_eq!(a, &Frontend::authors(FrontendId::ALL[i]).fingerprint());
            for b in &prints[i + 1..] {
                assert_ne!(a, b);
            }
        }
        // The resampler is part of the identity.
        for id in FrontendId::ALL {
            let [a, b] = ResamplerId::ALL.map(|r| Frontend::new(id, r).fingerprint());
            assert_ne!(a, b);
        }
    }

    #[test]
    fn reflect_padding_matches_torch_and_numpy() {
        let reflect_pad = |x: &[f32], pad: usize| {
            let mut padded = vec![0.0; x.len() + 2 * pad];
            padded[pad..pad + x.len()].copy_from_slice(x);
            reflect_edges(&mut padded, pad, x.len());
            padded
        };
        let x = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(
            reflect_pad(&x, 2),
            vec![3.0, 2.0, 1.0, 2.0, 3.0, 4.0, 3.0, 2.0]
        );
        assert_eq!(
            reflect_pad(&x, 3),
            vec![4.0, 3.0, 2.0, 1.0, 2.0, 3.0, 4.0, 3.0, 2.0, 1.0]
        );
        // Longer than the signal: numpy's np.pad(x, 5, mode="reflect").
        assert_eq!(
            reflect_pad(&[1.0, 2.0, 3.0], 5),
            vec![2.0, 1.0, 2.0, 3.0, 2.0, 1.0, 2.0, 3.0, 2.0, 1.0, 2.0, 3.0, 2.0]
        );
        assert_eq!(reflect_pad(&[7.0], 2), vec![7.0; 5]);
        assert_eq!(reflect_pad(&[], 2), vec![0.0; 4]);
    }

    #[test]
    fn ln_positive_matches_the_standard_library() {
        let mut worst = 0f64;
        let mut x = 1e-5f64;
        while x < 1e12 {
            for v in [x, x * 1.000_000_1, x * std::f64::consts::SQRT_2] {
                let (ours, std) = (ln_positive(v), v.ln());
                worst = worst.max((ours - std).abs() / std.abs().max(1.0));
            }
            x *= 1.013;
        }
        assert!(
            worst <= 4.0 * f64::EPSILON,
            "worst relative error {worst:e}"
        );
        assert_eq!(ln_positive(1.0), 0.0);
    }

    #[test]
    fn ln_positive_f32_is_within_two_ulp() {
        let mut worst = 0f64;
        let mut x = 1e-5f32;
        while x < 1e12 {
            for v in [x, x * 1.000_001, x * std::f32::consts::SQRT_2] {
                let exact = f64::from(v).ln();
                let y = (exact as f32).abs();
                let ulp = f64::from(f32::from_bits(y.to_bits() + 1) - y);
                worst = worst.max((f64::from(ln_positive_f32(v)) - exact).abs() / ulp);
            }
            x *= 1.013;
        }
        assert!(worst <= 2.0, "worst error {worst} ulp");
        assert_eq!(ln_positive_f32(1.0), 0.0);
    }

    #[test]
    fn wide_vector_build_gives_the_same_bits() {
        // `compute` runs the AVX2 build where the CPU has it; the baseline build must agree
        // bit for bit (no fused multiply-adds, same operation order).
        let x: Vec<f32> = (0..40_000)
            .map(|i| ((i * 7919 % 1009) as f32 / 504.5 - 1.0) * 0.3)
            .collect();
        for id in FrontendId::ALL {
            let fe = Frontend::authors(id);
            let baseline = match &fe.fft {
                Transform::Single(fft) => {
                    f32::with_scratch(|s| fe.compute_in::<_, false>(&x, fft, s))
                }
                Transform::Double(fft) => {
                    f64::with_scratch(|s| fe.compute_in::<_, false>(&x, fft, s))
                }
            };
            assert_eq!(fe.compute(&x), baseline, "{id}");
        }
    }

    #[test]
    fn frontend_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Frontend>();
    }
}
