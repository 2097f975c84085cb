//! Mixing augmentations on batch spectrograms: Mixup / Soft Mixup and Freq-MixStyle.

use rand::seq::SliceRandom;
use rand::Rng;
use rand_distr::{Beta, Distribution};
use tch::{Kind, Tensor};

/// A random pairing of a batch with itself and per-sample mixing weights.
#[derive(Debug, Clone, PartialEq)]
pub struct MixPlan {
    /// Partner index of each sample.
    pub perm: Vec<i64>,
    /// Weight of the sample itself (the partner gets 1 − lambda).
    pub lambda: Vec<f32>,
}

impl MixPlan {
    fn lambdas(&self, like: &Tensor, dims: usize) -> Tensor {
        let mut shape = vec![self.lambda.len() as i64];
        shape.extend(std::iter::repeat_n(1, dims - 1));
        Tensor::from_slice(&self.lambda)
            .to_device(like.device())
            .reshape(shape)
    }

    fn partner(&self, t: &Tensor) -> Tensor {
        t.index_select(0, &Tensor::from_slice(&self.perm).to_device(t.device()))
    }

    /// lambda · t + (1 − lambda) · t[perm], along the batch dimension.
    pub fn mix(&self, t: &Tensor) -> Tensor {
        let l = self.lambdas(t, t.dim());
        t * &l + self.partner(t) * (1.0 - &l)
    }

    /// Mixed loss for hard labels: lambda · loss(y) + (1 − lambda) · loss(y[perm]), where
    /// `per_sample` maps labels to a per-sample loss vector.
    pub fn mix_loss(&self, labels: &Tensor, per_sample: impl Fn(&Tensor) -> Tensor) -> Tensor {
        let l = self.lambdas(labels, 1);
        let own: Tensor = per_sample(labels) * &l;
        let other: Tensor = per_sample(&self.partner(labels)) * (1.0 - &l);
        (own + other).mean(Kind::Float)
    }
}

/// Mixup (Zhang et al.) as in the CP-JKU recipes: per-sample lambda ~ Beta(alpha, alpha), folded to
/// max(lambda, 1 − lambda) so each mixed sample stays closer to its own label. "Soft Mixup"
/// applies the same plan to inputs, hard labels and teacher logits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mixup {
    pub alpha: f64,
}

impl Mixup {
    pub fn plan(&self, batch: usize, rng: &mut impl Rng) -> MixPlan {
        draw_plan(batch, self.alpha, true, rng)
    }
}

fn draw_plan(batch: usize, alpha: f64, fold: bool, rng: &mut impl Rng) -> MixPlan {
    let beta = Beta::new(alpha, alpha).expect("alpha validated > 0");
    let mut perm: Vec<i64> = (0..batch as i64).collect();
    perm.shuffle(rng);
    let lambda = (0..batch)
        .map(|_| {
            let l: f64 = beta.sample(rng);
            (if fold { l.max(1.0 - l) } else { l }) as f32
        })
        .collect();
    MixPlan { perm, lambda }
}

/// Freq-MixStyle (Schmid et al., CP-JKU DCASE22): with probability `p` per batch, normalises each
/// frequency band of each sample (statistics over channels and time) and re-styles it with
/// statistics mixed with those of a random partner, lambda ~ Beta(alpha, alpha).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FreqMixStyle {
    pub alpha: f64,
    pub p: f64,
}

impl FreqMixStyle {
    const EPS: f64 = 1e-6;

    /// `x`: [B, C, F, T]. Returns `x` itself (shallow clone) when the batch is not selected.
    pub fn apply(&self, x: &Tensor, rng: &mut impl Rng) -> Tensor {
        // Draw every random number even when skipping, so the stream does not depend on p's outcome.
        let apply = rng.random::<f64>() < self.p;
        let b = x.size()[0] as usize;
        // MixStyle draws lambda without folding it to max(l, 1 − l).
        let plan = draw_plan(b, self.alpha, false, rng);
        if !apply {
            return x.shallow_clone();
        }
        let dims: &[i64] = &[1, 3];
        let mu = x.mean_dim(dims, true, Kind::Float).detach();
        let var = x.var_dim(dims, true, true).detach();
        let sig = (var + Self::EPS).sqrt();
        let normed = (x - &mu) / &sig;
        let mu_mix = plan.mix(&mu);
        let sig_mix = plan.mix(&sig);
        normed * sig_mix + mu_mix
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn mixup_plan_is_seeded_and_folded() {
        let m = Mixup { alpha: 0.3 };
        let a = m.plan(16, &mut ChaCha8Rng::seed_from_u64(1));
        let b = m.plan(16, &mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!(a, b);
        assert!(a.lambda.iter().all(|l| (0.5..=1.0).contains(l)));
        let mut sorted = a.perm.clone();
        sorted.sort();
        assert_eq!(sorted, (0..16).collect::<Vec<_>>());
    }

    #[test]
    fn mix_is_convex_combination_of_partner() {
        let plan = MixPlan {
            perm: vec![1, 0],
            lambda: vec![0.75, 0.5],
        };
        let x = Tensor::from_slice(&[1.0f32, 3.0]).reshape([2, 1]);
        let y = plan.mix(&x);
        let v: Vec<f32> = y.reshape([-1]).try_into().unwrap();
        assert_eq!(v, vec![0.75 * 1.0 + 0.25 * 3.0, 0.5 * 3.0 + 0.5 * 1.0]);
    }

    #[test]
    fn freq_mixstyle_restyles_band_statistics() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let x = Tensor::randn([8, 1, 16, 20], (Kind::Float, tch::Device::Cpu)) * 2.0 + 1.0;
        let fms = FreqMixStyle { alpha: 0.3, p: 1.0 };
        let y = fms.apply(&x, &mut rng);
        // Each output band's mean lies between the sample's own and its partner's band mean:
        // check the batch-level property that band means stay within the input's range.
        let mu_x = x.mean_dim(&[1i64, 3][..], true, Kind::Float);
        let mu_y = y.mean_dim(&[1i64, 3][..], true, Kind::Float);
        let lo = mu_x.min().double_value(&[]);
        let hi = mu_x.max().double_value(&[]);
        assert!(
            mu_y.min().double_value(&[]) >= lo - 1e-4 && mu_y.max().double_value(&[]) <= hi + 1e-4
        );
        // Changed something, but kept the shape.
        assert_eq!(y.size(), x.size());
        assert!((&y - &x).abs().max().double_value(&[]) > 1e-3);
        // p = 0 is the identity.
        let id = FreqMixStyle { alpha: 0.3, p: 0.0 }.apply(&x, &mut rng);
        assert_eq!((&id - &x).abs().max().double_value(&[]), 0.0);
    }
}
