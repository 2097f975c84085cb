//! Sample-rate conversion as each system's authors do it. Real TAU clips are 44.1 kHz and every
//! front end works at 32 kHz, so the resampler shapes every feature above ~14 kHz: it is part of
//! a front end's definition and of its fingerprint (`Frontend::fingerprint`), and cached
//! features of one resampler are never reused for another.
//!
//! | resampler | what it reproduces | where it sits in the chain | systems |
//! |---|---|---|---|
//! | `librosa` | `librosa.load(path, sr=32000)`, librosa 0.8.1: default `res_type='kaiser_best'`, i.e. resampy's `kaiser_best` filter, then `fix_length` | in the loader: clips enter the pipeline at 32 kHz, so online waveform augmentations (DIR, time roll) act at 32 kHz, on impulse responses loaded at 32 kHz the same way | Cai et al. 2023 and 2024 (TF-SepNet), Zhou et al. 2025. Zhou et al.'s released code loads with `librosa.load(path, sr=self.sr)` (`data/data_module.py`) and pins `librosa==0.8.1`; Cai et al. build on CP-JKU's DCASE2023 code, whose `BasicDCASE22Dataset` and `load_dirs` call `librosa.load(..., sr=32000)` (their own repository could not be read here) |
//! | `torchaudio` | `torchaudio.transforms.Resample(44100, 32000)` with its defaults (Hann-windowed sinc, `lowpass_filter_width=6`, `rolloff=0.99`) | the first module of the model's front end (`nn.Sequential(Resample, MelSpectrogram)`): clips stay at 44.1 kHz through the dataset, so DIR and time roll act at 44.1 kHz (the baselines' `get_training_set(resample_rate=44100)`) | the DCASE2024/2025 baselines and the systems built on them: Zhang et al. 2025 (their checkpoints embed this kernel as `mel.0.kernel`), Ramezanee et al. 2025 (`torchaudio.functional.resample` in their released inference code) |
//!
//! Offline augmentations (Cai et al. 2023's device simulation, Ramezanee et al.'s RMS-energy IR
//! copies) are made from the clips at their recorded rate, as their authors write new WAV files,
//! and the copies then go through the system's resampler like any clip.
//!
//! Both are reproduced operation by operation (see `torchaudio.rs` and `resampy.rs`);
//! `tests/resampler_parity.rs` checks them against the Python libraries themselves.

mod resampy;
mod torchaudio;

pub use torchaudio::SincKernel;

use crate::error::{Error, Result};
use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock};

/// Which authors' resampling a system uses (recipes' `resampler:`, `--resampler`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ResamplerId {
    #[serde(rename = "torchaudio")]
    Torchaudio,
    #[serde(rename = "librosa")]
    Librosa,
}

impl ResamplerId {
    pub const ALL: [ResamplerId; 2] = [ResamplerId::Torchaudio, ResamplerId::Librosa];

    /// The name used in recipes and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            ResamplerId::Torchaudio => "torchaudio",
            ResamplerId::Librosa => "librosa",
        }
    }

    /// Whether the systems using it resample while loading a clip (`librosa.load(sr=...)`), so
    /// that waveform augmentations see the front end's rate; otherwise resampling is the first
    /// step of the front end and waveform augmentations see the recorded rate.
    pub fn resamples_on_load(self) -> bool {
        match self {
            ResamplerId::Librosa => true,
            ResamplerId::Torchaudio => false,
        }
    }

    /// Every parameter that decides the output, for fingerprints.
    fn definition(self) -> &'static str {
        match self {
            ResamplerId::Torchaudio => {
                "torchaudio.transforms.Resample(sinc_interp_hann,lowpass_filter_width=6,\
                 rolloff=0.99,kernel=f64->f32,len=ceil(new*len/orig);v1)"
            }
            ResamplerId::Librosa => {
                "librosa.load(res_type=kaiser_best)=resampy-0.4.3(zeros=50,precision=13,\
                 kaiser_beta=12.984585247040012,rolloff=0.9173473712608761,f32-accumulation)\
                 +fix_length(ceil(len*ratio));v1"
            }
        }
    }
}

impl fmt::Display for ResamplerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parse errors name the value and list the valid ones; callers add the file and field.
impl FromStr for ResamplerId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        ResamplerId::ALL
            .into_iter()
            .find(|r| r.as_str() == s.trim())
            .ok_or_else(|| {
                let valid: Vec<&str> = ResamplerId::ALL.iter().map(|r| r.as_str()).collect();
                Error::msg(format!(
                    "unknown resampler `{s}`; valid resamplers are: {}",
                    valid.join(", ")
                ))
            })
    }
}

/// A resampler ready to run: the authors' method, and for `torchaudio` optionally the kernel a
/// checkpoint embeds, used for the rate pair it was made for.
#[derive(Clone, Debug)]
pub struct Resampler {
    id: ResamplerId,
    embedded: Option<(Arc<SincKernel>, String)>,
}

impl Resampler {
    pub fn new(id: ResamplerId) -> Resampler {
        Resampler { id, embedded: None }
    }

    /// torchaudio resampling with `kernel` (as a checkpoint embeds it) for its rate pair.
    pub fn with_kernel(kernel: SincKernel) -> Resampler {
        let bytes: Vec<u8> = kernel
            .dense()
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect();
        let digest = <sha2::Sha256 as sha2::Digest>::digest(&bytes);
        Resampler {
            id: ResamplerId::Torchaudio,
            embedded: Some((Arc::new(kernel), hex::encode(digest))),
        }
    }

    pub fn id(&self) -> ResamplerId {
        self.id
    }

    /// Mono `samples` from `from_hz` to `to_hz`; the same rate returns them unchanged.
    pub fn resample(&self, samples: &[f32], from_hz: u32, to_hz: u32) -> Result<Vec<f32>> {
        if from_hz == 0 || to_hz == 0 {
            return Err(Error::msg(format!(
                "cannot resample from {from_hz} Hz to {to_hz} Hz: sample rates must be positive"
            )));
        }
        if from_hz == to_hz {
            return Ok(samples.to_vec());
        }
        match self.id {
            ResamplerId::Torchaudio => match &self.embedded {
                Some((k, _)) if k.rates() == (from_hz, to_hz) => Ok(k.apply(samples)),
                _ => Ok(torchaudio_kernel(from_hz, to_hz).apply(samples)),
            },
            ResamplerId::Librosa => resampy::librosa_resample(samples, from_hz, to_hz),
        }
    }

    /// Stable text naming the method (and an embedded kernel by its SHA-256).
    pub fn fingerprint(&self) -> String {
        match &self.embedded {
            Some((k, sha)) => {
                let (from, to) = k.rates();
                format!(
                    "{}+embedded-kernel({from}->{to},sha256={sha})",
                    self.id.definition()
                )
            }
            None => self.id.definition().to_string(),
        }
    }
}

/// torchaudio's default kernel for a rate pair, built once per process.
pub fn torchaudio_kernel(from_hz: u32, to_hz: u32) -> Arc<SincKernel> {
    static CACHE: Memo<(u32, u32), SincKernel> = OnceLock::new();
    memoized(&CACHE, (from_hz, to_hz), || {
        SincKernel::torchaudio(from_hz, to_hz)
    })
}

/// Per-process tables, one per key (kernels and filter tables cost about as much to build as
/// resampling a few clips).
type Memo<K, V> = OnceLock<Mutex<HashMap<K, Arc<V>>>>;

/// The value for `key`, built by `build` the first time. Built outside the lock: a concurrent
/// duplicate build gives an identical value, and the first one stored is kept.
fn memoized<K: Eq + Hash + Copy, V>(
    cache: &Memo<K, V>,
    key: K,
    build: impl FnOnce() -> V,
) -> Arc<V> {
    let cache = cache.get_or_init(Default::default);
    if let Some(v) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Arc::clone(v);
    }
    let value = Arc::new(build());
    let mut map = cache.lock().unwrap_or_else(|e| e.into_inner());
    Arc::clone(map.entry(key).or_insert(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_unknown_ones_list_the_valid() {
        for id in ResamplerId::ALL {
            assert_eq!(id.as_str().parse::<ResamplerId>().unwrap(), id);
        }
        let e = "sox".parse::<ResamplerId>().unwrap_err().to_string();
        assert!(
            e.contains("`sox`") && e.contains("torchaudio, librosa"),
            "{e}"
        );
    }

    #[test]
    fn same_rate_is_identity_and_zero_rate_an_error() {
        let x: Vec<f32> = (0..100).map(|i| (i as f32 * 0.37).sin()).collect();
        for id in ResamplerId::ALL {
            let r = Resampler::new(id);
            assert_eq!(r.resample(&x, 32000, 32000).unwrap(), x);
            assert!(r.resample(&x, 0, 32000).is_err());
            assert!(r.resample(&x, 44100, 0).is_err());
        }
    }

    #[test]
    fn the_two_methods_differ_and_so_do_their_fingerprints() {
        let x: Vec<f32> = (0..4410)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
            .collect();
        let a = Resampler::new(ResamplerId::Torchaudio);
        let b = Resampler::new(ResamplerId::Librosa);
        assert_ne!(
            a.resample(&x, 44100, 32000).unwrap(),
            b.resample(&x, 44100, 32000).unwrap()
        );
        assert_ne!(a.fingerprint(), b.fingerprint());
    }

    #[test]
    fn an_embedded_kernel_is_used_for_its_rate_pair_only() {
        let mut dense = SincKernel::torchaudio(44100, 32000).dense();
        dense.iter_mut().for_each(|w| *w *= 2.0);
        let k = SincKernel::from_dense(&dense, 320, 459, 32000).unwrap();
        let r = Resampler::with_kernel(k);
        let plain = Resampler::new(ResamplerId::Torchaudio);
        let x: Vec<f32> = (0..4410).map(|i| (i as f32 * 0.01).sin()).collect();
        let doubled: Vec<f32> = plain
            .resample(&x, 44100, 32000)
            .unwrap()
            .iter()
            .map(|v| v * 2.0)
            .collect();
        let got = r.resample(&x, 44100, 32000).unwrap();
        let err = got
            .iter()
            .zip(&doubled)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(err < 1e-6, "{err}");
        assert_eq!(
            r.resample(&x, 48000, 32000).unwrap(),
            plain.resample(&x, 48000, 32000).unwrap()
        );
        assert!(r.fingerprint().contains("embedded-kernel(44100->32000"));
        assert_ne!(r.fingerprint(), plain.fingerprint());
    }
}
