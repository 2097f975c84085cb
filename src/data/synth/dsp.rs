//! Building blocks of the synthetic audio: keyed random streams and cheap, exactly
//! reproducible time-domain signal processing (biquads, oscillators, envelopes, a feedback
//! delay network reverb, a compressor). Everything is f64 with the pure-Rust `libm`, so the
//! same draws give the same bytes on any machine.

use super::FS;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};
use std::f64::consts::PI;

// ---------------------------------------------------------------------------------------------
// Random numbers

/// A ChaCha8 stream keyed by (seed, name): independent of thread order and of other streams.
pub(super) struct Rng(ChaCha8Rng);

impl Rng {
    pub(super) fn new(seed: u64, key: &str) -> Rng {
        let mut h = Sha256::new();
        h.update(b"ascrepro-synth\0");
        h.update(seed.to_le_bytes());
        h.update(key.as_bytes());
        Rng(ChaCha8Rng::from_seed(h.finalize().into()))
    }

    /// Uniform in [0, 1).
    pub(super) fn uni(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    pub(super) fn range(&mut self, a: f64, b: f64) -> f64 {
        a + (b - a) * self.uni()
    }

    /// Log-uniform in [a, b) (a, b > 0): frequencies, times.
    pub(super) fn log_range(&mut self, a: f64, b: f64) -> f64 {
        a * libm::exp(libm::log(b / a) * self.uni())
    }

    pub(super) fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uni();
        let u2 = self.uni();
        libm::sqrt(-2.0 * libm::log(u1)) * libm::cos(2.0 * PI * u2)
    }

    /// exp(N(0, sigma)): multiplicative variation.
    pub(super) fn lognormal(&mut self, sigma: f64) -> f64 {
        libm::exp(sigma * self.normal())
    }

    pub(super) fn chance(&mut self, p: f64) -> bool {
        self.uni() < p
    }

    pub(super) fn index(&mut self, n: usize) -> usize {
        ((self.uni() * n as f64) as usize).min(n.saturating_sub(1))
    }

    pub(super) fn sign(&mut self) -> f64 {
        if self.chance(0.5) {
            1.0
        } else {
            -1.0
        }
    }

    pub(super) fn poisson(&mut self, lambda: f64) -> usize {
        let limit = libm::exp(-lambda.clamp(0.0, 50.0));
        let mut k = 0;
        let mut p = self.uni();
        while p > limit && k < 200 {
            k += 1;
            p *= self.uni();
        }
        k
    }

    /// Unit-variance triangular noise (sum of two uniforms): cheap, and Gaussian enough once
    /// filtered.
    pub(super) fn noise(&mut self) -> f64 {
        let x = self.0.next_u64();
        let a = (x >> 32) as f64;
        let b = (x & 0xffff_ffff) as f64;
        ((a + b) * (1.0 / 4_294_967_296.0) - 1.0) * 6f64.sqrt()
    }

    pub(super) fn noise_vec(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| self.noise()).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Signal processing building blocks (time domain: cheap and exactly reproducible)

pub(super) fn db(x: f64) -> f64 {
    libm::exp(x * (std::f64::consts::LN_10 / 20.0))
}

pub(super) fn rms(x: &[f64]) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    libm::sqrt(x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64)
}

pub(super) fn peak(x: &[f64]) -> f64 {
    x.iter().fold(0.0, |m, v| m.max(v.abs()))
}

/// Scales to unit RMS (silence stays silent).
pub(super) fn normalize(x: &mut [f64]) {
    let r = rms(x);
    if r > 1e-12 {
        x.iter_mut().for_each(|v| *v /= r);
    }
}

pub(super) fn add_into(dst: &mut [f64], src: &[f64], gain: f64) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d += gain * s;
    }
}

/// Adds `src` to `dst` starting at `start` (may be negative or run past the end).
pub(super) fn add_at(dst: &mut [f64], start: isize, src: &[f64], gain: f64) {
    for (i, s) in src.iter().enumerate() {
        let p = start + i as isize;
        if p >= 0 && (p as usize) < dst.len() {
            dst[p as usize] += gain * s;
        }
    }
}

/// A filter specification (RBJ audio-EQ-cookbook biquads). Frequencies in Hz, gains in dB.
#[derive(Debug, Clone, Copy)]
pub(super) enum Filt {
    Lp(f64, f64),
    Hp(f64, f64),
    /// Band-pass with 0 dB peak gain.
    Bp(f64, f64),
    Peak(f64, f64, f64),
    LowShelf(f64, f64),
    HighShelf(f64, f64),
}

impl Filt {
    /// The same filter with its colouring scaled by `s` (gains times s; band limits moved
    /// towards 20 Hz / 20 kHz in log frequency).
    pub(super) fn scaled(self, s: f64) -> Filt {
        match self {
            Filt::Hp(f, q) => Filt::Hp(20.0 * libm::pow(f / 20.0, s), q),
            Filt::Lp(f, q) => Filt::Lp(20_000.0 * libm::pow(f / 20_000.0, s), q),
            Filt::Bp(f, q) => Filt::Bp(f, q),
            Filt::Peak(f, q, g) => Filt::Peak(f, q, g * s),
            Filt::LowShelf(f, g) => Filt::LowShelf(f, g * s),
            Filt::HighShelf(f, g) => Filt::HighShelf(f, g * s),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Biquad {
    b0: f64,
    b1: f64,
    b2: f64,
    a1: f64,
    a2: f64,
    z1: f64,
    z2: f64,
}

impl Biquad {
    pub(super) fn new(f: Filt) -> Biquad {
        let mut b = Biquad {
            b0: 1.0,
            b1: 0.0,
            b2: 0.0,
            a1: 0.0,
            a2: 0.0,
            z1: 0.0,
            z2: 0.0,
        };
        b.retune(f);
        b
    }

    /// Sets the coefficients, keeping the state (for time-varying filters).
    pub(super) fn retune(&mut self, f: Filt) {
        let freq = |hz: f64| hz.clamp(10.0, 0.45 * FS);
        let (fc, q, gain) = match f {
            Filt::Lp(h, q) | Filt::Hp(h, q) | Filt::Bp(h, q) => (freq(h), q, 0.0),
            Filt::Peak(h, q, g) => (freq(h), q, g),
            Filt::LowShelf(h, g) | Filt::HighShelf(h, g) => {
                (freq(h), std::f64::consts::FRAC_1_SQRT_2, g)
            }
        };
        let q = q.max(0.05);
        let w0 = 2.0 * PI * fc / FS;
        let (sw, cw) = (libm::sin(w0), libm::cos(w0));
        let alpha = sw / (2.0 * q);
        let a = libm::pow(10.0, gain / 40.0);
        let (b0, b1, b2, a0, a1, a2) = match f {
            Filt::Lp(..) => (
                (1.0 - cw) / 2.0,
                1.0 - cw,
                (1.0 - cw) / 2.0,
                1.0 + alpha,
                -2.0 * cw,
                1.0 - alpha,
            ),
            Filt::Hp(..) => (
                (1.0 + cw) / 2.0,
                -(1.0 + cw),
                (1.0 + cw) / 2.0,
                1.0 + alpha,
                -2.0 * cw,
                1.0 - alpha,
            ),
            Filt::Bp(..) => (alpha, 0.0, -alpha, 1.0 + alpha, -2.0 * cw, 1.0 - alpha),
            Filt::Peak(..) => (
                1.0 + alpha * a,
                -2.0 * cw,
                1.0 - alpha * a,
                1.0 + alpha / a,
                -2.0 * cw,
                1.0 - alpha / a,
            ),
            Filt::LowShelf(..) => {
                let k = 2.0 * libm::sqrt(a) * alpha;
                (
                    a * ((a + 1.0) - (a - 1.0) * cw + k),
                    2.0 * a * ((a - 1.0) - (a + 1.0) * cw),
                    a * ((a + 1.0) - (a - 1.0) * cw - k),
                    (a + 1.0) + (a - 1.0) * cw + k,
                    -2.0 * ((a - 1.0) + (a + 1.0) * cw),
                    (a + 1.0) + (a - 1.0) * cw - k,
                )
            }
            Filt::HighShelf(..) => {
                let k = 2.0 * libm::sqrt(a) * alpha;
                (
                    a * ((a + 1.0) + (a - 1.0) * cw + k),
                    -2.0 * a * ((a - 1.0) + (a + 1.0) * cw),
                    a * ((a + 1.0) + (a - 1.0) * cw - k),
                    (a + 1.0) - (a - 1.0) * cw + k,
                    2.0 * ((a - 1.0) - (a + 1.0) * cw),
                    (a + 1.0) - (a - 1.0) * cw - k,
                )
            }
        };
        self.b0 = b0 / a0;
        self.b1 = b1 / a0;
        self.b2 = b2 / a0;
        self.a1 = a1 / a0;
        self.a2 = a2 / a0;
    }

    #[inline]
    pub(super) fn tick(&mut self, x: f64) -> f64 {
        let y = self.b0 * x + self.z1;
        self.z1 = self.b1 * x - self.a1 * y + self.z2;
        self.z2 = self.b2 * x - self.a2 * y;
        y
    }

    pub(super) fn run(&mut self, buf: &mut [f64]) {
        for v in buf.iter_mut() {
            *v = self.tick(*v);
        }
    }
}

pub(super) fn chain(filters: &[Filt], buf: &mut [f64]) {
    for f in filters {
        Biquad::new(*f).run(buf);
    }
}

/// Spectral tilt of `t` dB per octave between ~100 Hz and ~12 kHz: high shelves two octaves
/// apart, each contributing two octaves' worth.
pub(super) fn tilt_filters(t: f64) -> [Filt; 4] {
    [
        Filt::HighShelf(150.0, 2.0 * t),
        Filt::HighShelf(600.0, 2.0 * t),
        Filt::HighShelf(2400.0, 2.0 * t),
        Filt::HighShelf(9600.0, 2.0 * t),
    ]
}

/// Sine oscillator by complex rotation (one multiply-add per sample, no per-sample sin()).
pub(super) struct Lfo {
    c: f64,
    s: f64,
    cw: f64,
    sw: f64,
}

impl Lfo {
    pub(super) fn new(hz: f64, phase: f64) -> Lfo {
        let w = 2.0 * PI * hz / FS;
        Lfo {
            c: libm::cos(phase),
            s: libm::sin(phase),
            cw: libm::cos(w),
            sw: libm::sin(w),
        }
    }

    pub(super) fn next(&mut self) -> f64 {
        let s = self.s;
        let c = self.c * self.cw - self.s * self.sw;
        self.s = self.s * self.cw + self.c * self.sw;
        self.c = c;
        s
    }
}

/// Adds a harmonic tone `sum_k amps[k] sin(k theta)` (unit RMS for unit envelope) with
/// instantaneous frequency `freq(t)` and envelope `env(t)` (t in seconds from the tone's start)
/// to `buf` from sample `start`. Harmonics above 0.45 fs are dropped (no aliasing).
pub(super) fn add_tone(
    buf: &mut [f64],
    start: isize,
    len: usize,
    amps: &[f64],
    freq: impl Fn(f64) -> f64,
    env: impl Fn(f64) -> f64,
) {
    if amps.is_empty() {
        return;
    }
    let norm = 1.0 / libm::sqrt(amps.iter().map(|a| a * a).sum::<f64>() / 2.0).max(1e-12);
    let (mut c, mut s) = (1.0f64, 0.0f64);
    let (mut cw, mut sw, mut kmax) = (1.0, 0.0, 0usize);
    for i in 0..len {
        let pos = start + i as isize;
        if pos >= buf.len() as isize {
            break;
        }
        let t = i as f64 / FS;
        if i % 16 == 0 {
            let f = freq(t).max(0.0);
            let w = 2.0 * PI * f / FS;
            cw = libm::cos(w);
            sw = libm::sin(w);
            kmax = if f > 0.0 {
                amps.len().min((0.45 * FS / f) as usize)
            } else {
                0
            };
            let r = 1.0 / libm::sqrt(c * c + s * s);
            c *= r;
            s *= r;
        }
        if pos >= 0 && kmax > 0 {
            let e = env(t);
            if e != 0.0 {
                // sin(k theta) by the Chebyshev recurrence.
                let (mut s0, mut s1) = (0.0, s);
                let mut acc = amps[0] * s;
                for a in &amps[1..kmax] {
                    let s2 = 2.0 * c * s1 - s0;
                    acc += a * s2;
                    s0 = s1;
                    s1 = s2;
                }
                buf[pos as usize] += acc * norm * e;
            }
        }
        let c2 = c * cw - s * sw;
        s = s * cw + c * sw;
        c = c2;
    }
}

/// Attack/release envelope for a sound of `dur` seconds.
pub(super) fn ar_env(t: f64, dur: f64, attack: f64, release: f64) -> f64 {
    if t < 0.0 || t > dur {
        0.0
    } else if t < attack {
        t / attack
    } else if t > dur - release {
        ((dur - t) / release).max(0.0)
    } else {
        1.0
    }
}

/// Feedback delay network (4 lines, Hadamard mixing, damping in the loop): cheap diffuse
/// reverberation with a given RT60.
pub(super) struct Fdn {
    lines: [Vec<f64>; 4],
    idx: [usize; 4],
    g: [f64; 4],
    lp: [f64; 4],
    damp: f64,
}

impl Fdn {
    pub(super) fn new(delays: [usize; 4], rt60: f64, damp: f64) -> Fdn {
        let g = delays.map(|d| libm::pow(10.0, -3.0 * d as f64 / (rt60.max(0.01) * FS)));
        Fdn {
            lines: delays.map(|d| vec![0.0; d.max(1)]),
            idx: [0; 4],
            g,
            lp: [0.0; 4],
            damp: damp.clamp(0.0, 0.95),
        }
    }

    pub(super) fn tick(&mut self, x: f64) -> f64 {
        let mut o = [0.0; 4];
        for (i, oi) in o.iter_mut().enumerate() {
            let v = self.lines[i][self.idx[i]];
            self.lp[i] = (1.0 - self.damp) * v + self.damp * self.lp[i];
            *oi = self.lp[i];
        }
        let y = o[0] + o[1] + o[2] + o[3];
        let h = [
            0.5 * (o[0] + o[1] + o[2] + o[3]),
            0.5 * (o[0] - o[1] + o[2] - o[3]),
            0.5 * (o[0] + o[1] - o[2] - o[3]),
            0.5 * (o[0] - o[1] - o[2] + o[3]),
        ];
        for (i, hi) in h.iter().enumerate() {
            let n = self.lines[i].len();
            self.lines[i][self.idx[i]] = x + self.g[i] * hi;
            self.idx[i] += 1;
            if self.idx[i] == n {
                self.idx[i] = 0;
            }
        }
        y
    }

    pub(super) fn run(mut self, x: &[f64]) -> Vec<f64> {
        x.iter().map(|&v| self.tick(v)).collect()
    }
}

/// Feed-forward compressor (peak envelope, gain updated every 8 samples).
#[derive(Debug, Clone, Copy)]
pub(super) struct Compressor {
    pub(super) threshold_db: f64,
    pub(super) ratio: f64,
    pub(super) attack: f64,
    pub(super) release: f64,
    pub(super) makeup_db: f64,
}

impl Compressor {
    pub(super) fn run(&self, x: &mut [f64]) {
        let aa = libm::exp(-1.0 / (self.attack * FS));
        let ar = libm::exp(-1.0 / (self.release * FS));
        let slope = 1.0 - 1.0 / self.ratio;
        let mut env = 0.0f64;
        let mut gain = db(self.makeup_db);
        for (i, v) in x.iter_mut().enumerate() {
            let a = v.abs();
            env = if a > env {
                aa * env + (1.0 - aa) * a
            } else {
                ar * env + (1.0 - ar) * a
            };
            if i % 8 == 0 {
                let level = 20.0 * libm::log10(env + 1e-9);
                let over = (level - self.threshold_db).max(0.0);
                gain = db(self.makeup_db - over * slope);
            }
            *v *= gain;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn biquad_lowpass_passes_dc() {
        let mut b = Biquad::new(Filt::Lp(1000.0, 0.707));
        let mut y = 0.0;
        for _ in 0..10_000 {
            y = b.tick(1.0);
        }
        assert!((y - 1.0).abs() < 1e-9);
    }
}
