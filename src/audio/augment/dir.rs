//! Device impulse response (DIR) augmentation (Morocutti et al., EUSIPCO 2023) as the released
//! code applies it (CP-JKU's `DIRAugmentDataset`, Cai et al.'s `DeviceImpulseResponseAugmentation`
//! used by the TF-SepNet reports): each device-A training clip is, with probability `p`,
//! convolved with an impulse response drawn uniformly from the set. The full linear
//! convolution is cut to the clip's length (`convolve(x, ir, 'full')[:len(x)]`, the IR's onset
//! stays where it is) and the level is left as it comes out. It acts at the rate the system's
//! loader delivers clips, with the impulse responses loaded at that rate the same way: 32 kHz
//! for the librosa systems, the recorded rate for the torchaudio ones (`audio::resample`).

use crate::audio::conv::fft_convolve;
use crate::audio::{resample::Resampler, wav::read_wav};
use crate::error::{Error, IoContext, Result};
use ascrepro_results::labels::known_device_index;
use rand::Rng;
use std::path::{Path, PathBuf};

/// A set of impulse responses at one sample rate.
#[derive(Debug, Clone, PartialEq)]
pub struct ImpulseResponses {
    pub sample_rate: u32,
    /// File names (without directory), in set order; empty for sets built from samples.
    pub names: Vec<String>,
    irs: Vec<Vec<f32>>,
}

impl ImpulseResponses {
    /// The first `limit` `.wav` files of `dir` (all when `None`), sorted by name as device
    /// simulation sorts them, each brought to `sample_rate` by `resampler` (the system's: the
    /// authors load their impulse responses as they load clips).
    pub fn load(
        dir: &Path,
        limit: Option<usize>,
        sample_rate: u32,
        resampler: &Resampler,
    ) -> Result<ImpulseResponses> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .at(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("wav")))
            .collect();
        paths.sort();
        let want = limit.unwrap_or(paths.len());
        if paths.is_empty() || paths.len() < want {
            return Err(Error::msg(format!(
                "the impulse-response set {} has {} WAV files; {} needed",
                dir.display(),
                paths.len(),
                want.max(1)
            )));
        }
        paths.truncate(want);
        let mut irs = Vec::with_capacity(want);
        let mut names = Vec::with_capacity(want);
        for p in &paths {
            let audio = read_wav(p)?;
            irs.push(
                resampler
                    .resample(&audio.samples, audio.sample_rate, sample_rate)
                    .map_err(|e| Error::file(p, e.to_string()))?,
            );
            names.push(
                p.file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default(),
            );
        }
        Ok(ImpulseResponses {
            sample_rate,
            names,
            irs,
        })
    }

    /// A set from samples already at `sample_rate`.
    pub fn from_samples(sample_rate: u32, irs: Vec<Vec<f32>>) -> ImpulseResponses {
        ImpulseResponses {
            sample_rate,
            names: Vec::new(),
            irs,
        }
    }

    pub fn len(&self) -> usize {
        self.irs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.irs.is_empty()
    }

    /// Impulse response `k` (panics when out of range: indices come from plans over this set).
    pub fn get(&self, k: usize) -> &[f32] {
        &self.irs[k]
    }
}

/// DIR augmentation with application probability `p` per clip.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DirAugment {
    pub p: f64,
}

impl DirAugment {
    /// Only device-A recordings are convolved: both reference implementations check the device
    /// (`device == 'a'`), since the other devices already carry a device response. Device a has
    /// the same index in every dataset's device list.
    pub fn eligible(device: i64) -> bool {
        known_device_index("a").is_some_and(|a| a as i64 == device)
    }

    /// Per clip, the impulse response it gets (`None`: left as is). Two numbers are drawn per
    /// clip whatever the outcome, so the stream never depends on the data. With `p = 0` no clip
    /// is selected (`u < 0` never holds); with `p = 1` every eligible one is (`u < 1` always).
    pub fn plan(&self, eligible: &[bool], n_irs: usize, rng: &mut impl Rng) -> Vec<Option<usize>> {
        eligible
            .iter()
            .map(|&ok| {
                let u: f64 = rng.random();
                let k = if n_irs > 0 {
                    rng.random_range(0..n_irs)
                } else {
                    0
                };
                (ok && n_irs > 0 && u < self.p).then_some(k)
            })
            .collect()
    }

    /// `clip` convolved with `ir`, cut to the clip's length.
    pub fn convolve(clip: &[f32], ir: &[f32]) -> Vec<f32> {
        fft_convolve(clip, ir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::augment::WaveEdit;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn set() -> ImpulseResponses {
        ImpulseResponses::from_samples(
            32000,
            vec![
                vec![0.5, 0.25, -0.125],
                vec![0.0, 1.0, 0.0, -0.5],
                vec![0.9, -0.3, 0.1, 0.05, 0.02],
            ],
        )
    }

    fn clip(seed: usize) -> Vec<f32> {
        (0..400)
            .map(|i| ((i * 31 + seed * 7) % 97) as f32 / 48.0 - 1.0)
            .collect()
    }

    #[test]
    fn dir_p0_is_identity_and_p1_always_convolves_with_the_chosen_ir() {
        let irs = set();
        let a = known_device_index("a").unwrap() as i64;
        let b = known_device_index("b").unwrap() as i64;
        let devices = [a, b, a, a, b, a, a, a];
        let eligible: Vec<bool> = devices.iter().map(|&d| DirAugment::eligible(d)).collect();

        let none =
            DirAugment { p: 0.0 }.plan(&eligible, irs.len(), &mut ChaCha8Rng::seed_from_u64(1));
        assert!(none.iter().all(Option::is_none));
        for (i, pick) in none.iter().enumerate() {
            let x = clip(i);
            let edit = WaveEdit {
                ir: *pick,
                shift: 0,
            };
            assert_eq!(edit.apply(&x, Some(&irs)), x, "p = 0 changed clip {i}");
        }

        let all =
            DirAugment { p: 1.0 }.plan(&eligible, irs.len(), &mut ChaCha8Rng::seed_from_u64(1));
        for (i, (pick, &ok)) in all.iter().zip(&eligible).enumerate() {
            assert_eq!(
                pick.is_some(),
                ok,
                "p = 1 must convolve exactly the device-a clips"
            );
            let x = clip(i);
            let y = WaveEdit {
                ir: *pick,
                shift: 0,
            }
            .apply(&x, Some(&irs));
            match pick {
                Some(k) => {
                    assert_eq!(y, fft_convolve(&x, irs.get(*k)));
                    assert_eq!(y.len(), x.len());
                    assert_ne!(y, x);
                }
                None => assert_eq!(y, x),
            }
        }
        // With p = 1 the draws are the same as with p = 0: only the outcome differs.
        let mut r0 = ChaCha8Rng::seed_from_u64(1);
        let mut r1 = ChaCha8Rng::seed_from_u64(1);
        DirAugment { p: 0.0 }.plan(&eligible, irs.len(), &mut r0);
        DirAugment { p: 1.0 }.plan(&eligible, irs.len(), &mut r1);
        assert_eq!(r0.random::<u64>(), r1.random::<u64>());
    }

    #[test]
    fn dir_is_seeded_and_uses_every_ir_at_its_rate() {
        let irs = set();
        let eligible = vec![true; 200];
        let d = DirAugment { p: 0.4 };
        let a = d.plan(&eligible, irs.len(), &mut ChaCha8Rng::seed_from_u64(7));
        let b = d.plan(&eligible, irs.len(), &mut ChaCha8Rng::seed_from_u64(7));
        let c = d.plan(&eligible, irs.len(), &mut ChaCha8Rng::seed_from_u64(8));
        assert_eq!(a, b);
        assert_ne!(a, c);
        let chosen = a.iter().filter(|k| k.is_some()).count();
        assert!((50..=110).contains(&chosen), "{chosen} of 200 at p = 0.4");
        for k in 0..irs.len() {
            assert!(a.contains(&Some(k)), "IR {k} never drawn");
        }
    }

    #[test]
    fn loads_sorted_and_resampled_and_refuses_short_sets() {
        let dir = tempfile::tempdir().unwrap();
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 16000,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        for (name, v) in [("b.wav", 0.5f32), ("a.wav", 1.0), ("c.WAV", 0.25)] {
            let mut w = hound::WavWriter::create(dir.path().join(name), spec).unwrap();
            for i in 0..160 {
                w.write_sample(if i == 0 { v } else { 0.0 }).unwrap();
            }
            w.finalize().unwrap();
        }
        std::fs::write(dir.path().join("notes.txt"), "not an IR").unwrap();
        let librosa = Resampler::new(crate::audio::resample::ResamplerId::Librosa);
        let set = ImpulseResponses::load(dir.path(), Some(2), 32000, &librosa).unwrap();
        assert_eq!(set.names, vec!["a.wav", "b.wav"]);
        assert_eq!(set.get(0).len(), 320);
        assert_eq!(
            ImpulseResponses::load(dir.path(), None, 16000, &librosa)
                .unwrap()
                .len(),
            3
        );
        let err = ImpulseResponses::load(dir.path(), Some(4), 32000, &librosa).unwrap_err();
        assert!(
            err.to_string().contains("has 3 WAV files; 4 needed"),
            "{err}"
        );
    }
}
