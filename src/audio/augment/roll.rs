//! Time rolling: a random circular shift along time. The CP-JKU / DCASE baseline datasets roll
//! each waveform by an integer drawn uniformly from `[-max, max]` (numpy's `random_integers`,
//! both ends included; `roll_sec = 0.1` s by default); [`roll_frames`] is the same on a batch
//! spectrogram, shifting frames instead of samples.

use rand::Rng;
use tch::{Kind, Tensor};

/// One shift per clip, uniform over `-max_shift..=max_shift`.
pub fn draw_shifts(n: usize, max_shift: usize, rng: &mut impl Rng) -> Vec<i64> {
    let m = max_shift as i64;
    (0..n).map(|_| rng.random_range(-m..=m)).collect()
}

/// `torch.roll(x, shift)`: `out[(i + shift) mod n] = x[i]`.
pub fn roll(x: &[f32], shift: i64) -> Vec<f32> {
    let n = x.len();
    if n == 0 {
        return Vec::new();
    }
    let s = shift.rem_euclid(n as i64) as usize;
    let mut out = Vec::with_capacity(n);
    out.extend_from_slice(&x[n - s..]);
    out.extend_from_slice(&x[..n - s]);
    out
}

/// Rolls each sample of `x` (`[B, ..., T]`) along its last dimension by its own shift, as
/// [`roll`] does; the gather index is built on `x`'s device.
pub fn roll_frames(x: &Tensor, shifts: &[i64]) -> Tensor {
    let size = x.size();
    let t = *size.last().expect("a batch tensor has a time dimension");
    assert_eq!(
        shifts.len() as i64,
        size[0],
        "one shift per sample of the batch"
    );
    // out[.., j] = x[.., (j - s) mod T]
    let index: Vec<i64> = shifts
        .iter()
        .flat_map(|&s| (0..t).map(move |j| (j - s).rem_euclid(t)))
        .collect();
    let mut shape = vec![size[0]];
    shape.extend(std::iter::repeat_n(1, size.len() - 2));
    shape.push(t);
    let index = Tensor::from_slice(&index)
        .to_device(x.device())
        .reshape(shape)
        .expand(&size, false);
    x.gather(size.len() as i64 - 1, &index.to_kind(Kind::Int64), false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn roll_is_a_cyclic_permutation() {
        let x: Vec<f32> = (0..37).map(|i| (i * i % 23) as f32 - 5.0).collect();
        for shift in [-80i64, -37, -1, 0, 1, 5, 36, 37, 100] {
            let y = roll(&x, shift);
            assert_eq!(y.len(), x.len());
            for (i, v) in x.iter().enumerate() {
                let j = (i as i64 + shift).rem_euclid(37) as usize;
                assert_eq!(y[j], *v, "shift {shift}, sample {i}");
            }
            let mut a = x.clone();
            let mut b = y.clone();
            a.sort_by(f32::total_cmp);
            b.sort_by(f32::total_cmp);
            assert_eq!(a, b, "roll must keep the multiset of values");
        }
        assert_eq!(roll(&[1.0, 2.0, 3.0], 1), vec![3.0, 1.0, 2.0]);
        assert!(roll(&[], 3).is_empty());
    }

    #[test]
    fn shifts_cover_both_ends_and_are_seeded() {
        let a = draw_shifts(2000, 3, &mut ChaCha8Rng::seed_from_u64(4));
        assert_eq!(a, draw_shifts(2000, 3, &mut ChaCha8Rng::seed_from_u64(4)));
        assert_ne!(a, draw_shifts(2000, 3, &mut ChaCha8Rng::seed_from_u64(5)));
        for v in -3..=3 {
            assert!(a.contains(&v), "shift {v} never drawn");
        }
        assert!(a.iter().all(|s| s.abs() <= 3));
    }

    #[test]
    fn roll_frames_rolls_each_sample_like_roll() {
        let (b, c, f, t) = (3i64, 2i64, 4i64, 9i64);
        let x =
            Tensor::arange(b * c * f * t, (Kind::Float, tch::Device::Cpu)).reshape([b, c, f, t]);
        let shifts = [2i64, -4, 11];
        let y = roll_frames(&x, &shifts);
        assert_eq!(y.size(), x.size());
        assert_eq!(y.device(), x.device());
        for (k, &s) in shifts.iter().enumerate() {
            for ch in 0..c {
                for m in 0..f {
                    let row: Vec<f32> = x.get(k as i64).get(ch).get(m).try_into().unwrap();
                    let got: Vec<f32> = y.get(k as i64).get(ch).get(m).try_into().unwrap();
                    assert_eq!(got, roll(&row, s));
                }
            }
        }
        if tch::Cuda::is_available() {
            let on_gpu = roll_frames(&x.to_device(tch::Device::Cuda(0)), &shifts);
            assert_eq!(on_gpu.device(), tch::Device::Cuda(0));
            assert!(on_gpu.to_device(tch::Device::Cpu).equal(&y));
        }
    }
}
