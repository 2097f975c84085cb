//! SpecAugment frequency and time masking (Park et al., 2019) on batch spectrograms, drawn as
//! torchaudio's `FrequencyMasking` / `TimeMasking` with `iid_masks=True` draw them (what the
//! CP-JKU, DCASE baseline and TF-SepNet code call): per sample and per mask, with `W` the
//! mask parameter, `width = floor(u * W)` and `start = floor(v * (size - u * W))`, `u, v`
//! uniform in `[0, 1)`. A width is therefore at most `W - 1` and a mask never leaves the axis;
//! `W = 0` disables the mask. Every channel of a sample gets the same masks (the models here
//! take one channel).

use crate::audio::frontend::FrontendId;
use rand::Rng;
use tch::{Kind, Tensor};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpecAugment {
    /// Frequency masks per sample.
    pub freq_masks: usize,
    /// torchaudio's `freq_mask_param` (CP-JKU's `freqm`): widths are drawn from `0..freq_width`.
    pub freq_width: usize,
    /// Time masks per sample.
    pub time_masks: usize,
    /// torchaudio's `time_mask_param` (CP-JKU's `timem`).
    pub time_width: usize,
    /// What masked cells are set to, in the front end's output units.
    pub value: f64,
}

/// The masks of one batch: per sample, the `[start, end)` intervals along frequency and time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskPlan {
    pub freq: Vec<Vec<(i64, i64)>>,
    pub time: Vec<Vec<(i64, i64)>>,
}

/// The masked value the reference implementation of each front-end family produces, expressed
/// in our features' units. The references mask before the last steps of their front end:
/// CP-JKU's `AugmentMelSTFT` (cpmel) fills `log(mel + 1e-5)` with 0 and then applies
/// `(x + 4.5) / 5`, giving 0.9; the DCASE baseline (tamel) fills the mel power with 0 and then
/// takes `log(x + 1e-5)`, giving ln(1e-5). (Cai et al.'s `SpecAugmentation` masks the final
/// cpmel output with 0: write `value: 0` in a recipe that follows it.)
pub fn reference_mask_value(frontend: FrontendId) -> f64 {
    match frontend {
        FrontendId::CpMel128 | FrontendId::CpMel512 => 4.5 / 5.0,
        FrontendId::TaMel256 | FrontendId::TaMel256x502 => 1e-5f64.ln(),
    }
}

impl SpecAugment {
    /// Draws the masks of a `[batch, _, n_freq, n_time]` batch: all frequency masks, then all
    /// time masks; for each mask, the widths of every sample, then their starts.
    pub fn plan(&self, batch: usize, n_freq: i64, n_time: i64, rng: &mut impl Rng) -> MaskPlan {
        MaskPlan {
            freq: draw_masks(batch, self.freq_masks, self.freq_width, n_freq, rng),
            time: draw_masks(batch, self.time_masks, self.time_width, n_time, rng),
        }
    }

    /// `x` (`[B, C, F, T]`) with the planned cells set to `value`; the mask is built on `x`'s
    /// device.
    pub fn apply(&self, x: &Tensor, plan: &MaskPlan) -> Tensor {
        let size = x.size();
        let (b, f, t) = (size[0], size[2], size[3]);
        let rows = |intervals: &[Vec<(i64, i64)>], n: i64| -> Vec<u8> {
            intervals
                .iter()
                .flat_map(|masks| {
                    (0..n).map(move |i| u8::from(masks.iter().any(|&(s, e)| s <= i && i < e)))
                })
                .collect()
        };
        let dev = x.device();
        let on = |v: Vec<u8>, shape: [i64; 4]| {
            Tensor::from_slice(&v)
                .to_device(dev)
                .reshape(shape)
                .to_kind(Kind::Bool)
        };
        let freq = on(rows(&plan.freq, f), [b, 1, f, 1]);
        let time = on(rows(&plan.time, t), [b, 1, 1, t]);
        x.masked_fill(&freq.logical_or(&time), self.value)
    }

    /// [`plan`](Self::plan) for `x`'s shape, then [`apply`](Self::apply).
    pub fn augment(&self, x: &Tensor, rng: &mut impl Rng) -> Tensor {
        let size = x.size();
        let plan = self.plan(size[0] as usize, size[2], size[3], rng);
        self.apply(x, &plan)
    }
}

fn draw_masks(
    batch: usize,
    masks: usize,
    param: usize,
    size: i64,
    rng: &mut impl Rng,
) -> Vec<Vec<(i64, i64)>> {
    let mut out = vec![Vec::new(); batch];
    // torchaudio returns the input untouched for a parameter below 1 (and draws nothing).
    let w = param.min(size.max(0) as usize) as f64;
    if w < 1.0 {
        return out;
    }
    for _ in 0..masks {
        let widths: Vec<f64> = (0..batch).map(|_| rng.random::<f64>() * w).collect();
        for (sample, value) in out.iter_mut().zip(widths) {
            let start = (rng.random::<f64>() * (size as f64 - value)) as i64;
            sample.push((start, start + value as i64));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use tch::Device;

    const SA: SpecAugment = SpecAugment {
        freq_masks: 2,
        freq_width: 5,
        time_masks: 1,
        time_width: 4,
        value: -7.25,
    };

    fn batch() -> Tensor {
        // Strictly positive, so no cell equals the mask value by accident.
        Tensor::rand([6, 1, 16, 12], (Kind::Float, Device::Cpu)) + 1.0
    }

    #[test]
    fn masks_exactly_the_planned_cells_with_the_value() {
        let x = batch();
        let plan = SA.plan(6, 16, 12, &mut ChaCha8Rng::seed_from_u64(3));
        let y = SA.apply(&x, &plan);
        assert_eq!(y.size(), x.size());
        for b in 0..6usize {
            assert_eq!(plan.freq[b].len(), 2);
            assert_eq!(plan.time[b].len(), 1);
            for &(s, e) in plan.freq[b].iter().chain(&plan.time[b]) {
                assert!(s >= 0 && s <= e, "interval {s}..{e}");
            }
            for &(s, e) in &plan.freq[b] {
                assert!(e - s < 5 && e <= 16, "frequency mask {s}..{e}");
            }
            for &(s, e) in &plan.time[b] {
                assert!(e - s < 4 && e <= 12, "time mask {s}..{e}");
            }
            for fi in 0..16i64 {
                for ti in 0..12i64 {
                    let masked = plan.freq[b].iter().any(|&(s, e)| s <= fi && fi < e)
                        || plan.time[b].iter().any(|&(s, e)| s <= ti && ti < e);
                    let got = y.double_value(&[b as i64, 0, fi, ti]);
                    let orig = x.double_value(&[b as i64, 0, fi, ti]);
                    if masked {
                        assert_eq!(got, -7.25, "cell {b},{fi},{ti} should be masked");
                    } else {
                        assert_eq!(got, orig, "cell {b},{fi},{ti} changed");
                    }
                }
            }
        }
        // Some cells were masked somewhere in the batch (widths can be 0 for single masks).
        assert!(y.eq(-7.25).any().int64_value(&[]) == 1);
    }

    #[test]
    fn widths_stay_below_the_parameter_and_inside_the_axis() {
        let sa = SpecAugment {
            freq_masks: 1,
            freq_width: 48,
            time_masks: 1,
            time_width: 200,
            value: 0.0,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let mut widest = 0;
        for _ in 0..200 {
            let plan = sa.plan(4, 64, 10, &mut rng);
            for (&(s, e), &(ts, te)) in plan.freq.iter().flatten().zip(plan.time.iter().flatten()) {
                assert!(e - s <= 47 && s >= 0 && e <= 64);
                // A parameter wider than the axis is clamped to it.
                assert!(te - ts <= 9 && ts >= 0 && te <= 10);
                widest = widest.max(e - s);
            }
        }
        assert!(
            widest >= 40,
            "widths should approach the parameter, widest {widest}"
        );
    }

    #[test]
    fn zero_parameter_draws_nothing_and_changes_nothing() {
        let sa = SpecAugment {
            freq_masks: 3,
            freq_width: 0,
            time_masks: 2,
            time_width: 0,
            value: 0.0,
        };
        let x = batch();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let y = sa.augment(&x, &mut rng);
        assert!(y.equal(&x));
        assert_eq!(
            rng.random::<u64>(),
            ChaCha8Rng::seed_from_u64(1).random::<u64>()
        );
    }

    #[test]
    fn seeded_same_seed_same_masks_other_seed_other_masks() {
        let x = batch();
        let a = SA.augment(&x, &mut ChaCha8Rng::seed_from_u64(21));
        let b = SA.augment(&x, &mut ChaCha8Rng::seed_from_u64(21));
        let c = SA.augment(&x, &mut ChaCha8Rng::seed_from_u64(22));
        assert!(a.equal(&b));
        assert!(!a.equal(&c));
        if tch::Cuda::is_available() {
            let g = SA.augment(
                &x.to_device(Device::Cuda(0)),
                &mut ChaCha8Rng::seed_from_u64(21),
            );
            assert_eq!(g.device(), Device::Cuda(0));
            assert!(g.to_device(Device::Cpu).equal(&a));
        }
    }

    #[test]
    fn reference_values_follow_each_front_end_family() {
        assert_eq!(reference_mask_value(FrontendId::CpMel128), 0.9);
        assert_eq!(reference_mask_value(FrontendId::CpMel512), 0.9);
        let ta = reference_mask_value(FrontendId::TaMel256);
        assert!((ta - (-11.512925464970229)).abs() < 1e-12);
        assert_eq!(reference_mask_value(FrontendId::TaMel256x502), ta);
    }
}
