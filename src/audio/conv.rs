//! Linear convolution through the FFT, used for device impulse responses (synthetic devices,
//! device simulation and DIR augmentation).

use realfft::RealFftPlanner;

/// `y[n] = sum_m x[m] * h[n - m]` for `n` in `0..x.len()`: the full linear convolution truncated
/// to the input's length (the IR's onset stays where it is, as in the CP-JKU DIR augmentation).
pub fn fft_convolve(x: &[f32], h: &[f32]) -> Vec<f32> {
    if x.is_empty() || h.is_empty() {
        return vec![0.0; x.len()];
    }
    let full = x.len() + h.len() - 1;
    let n = full.next_power_of_two();
    let mut planner = RealFftPlanner::<f64>::new();
    let fwd = planner.plan_fft_forward(n);
    let inv = planner.plan_fft_inverse(n);
    let spectrum = |v: &[f32]| {
        let mut buf = vec![0.0f64; n];
        for (b, s) in buf.iter_mut().zip(v) {
            *b = *s as f64;
        }
        let mut out = fwd.make_output_vec();
        fwd.process(&mut buf, &mut out)
            .expect("buffer sizes come from the plan");
        out
    };
    let xs = spectrum(x);
    let hs = spectrum(h);
    let mut prod: Vec<_> = xs.iter().zip(&hs).map(|(a, b)| a * b).collect();
    let mut y = inv.make_output_vec();
    inv.process(&mut prod, &mut y)
        .expect("buffer sizes come from the plan");
    let scale = 1.0 / n as f64;
    y[..x.len()].iter().map(|v| (v * scale) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn direct(x: &[f32], h: &[f32]) -> Vec<f32> {
        (0..x.len())
            .map(|n| {
                (0..=n)
                    .filter(|&m| n - m < h.len())
                    .map(|m| x[m] as f64 * h[n - m] as f64)
                    .sum::<f64>() as f32
            })
            .collect()
    }

    #[test]
    fn matches_direct_convolution() {
        let x: Vec<f32> = (0..1000)
            .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
            .collect();
        let h: Vec<f32> = (0..77)
            .map(|i| (-(i as f32) / 10.0).exp() * if i % 3 == 0 { 1.0 } else { -0.5 })
            .collect();
        let a = fft_convolve(&x, &h);
        let b = direct(&x, &h);
        assert_eq!(a.len(), x.len());
        let err = a
            .iter()
            .zip(&b)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0f32, f32::max);
        assert!(err < 1e-4, "max error {err}");
    }

    #[test]
    fn unit_impulse_is_identity() {
        let x: Vec<f32> = (0..300).map(|i| (i as f32 * 0.1).sin()).collect();
        let y = fft_convolve(&x, &[1.0]);
        assert!(x.iter().zip(&y).all(|(a, b)| (a - b).abs() < 1e-6));
    }
}
