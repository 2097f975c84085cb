//! The synthetic TAU-like dataset: the embedded demo data every recipe can run on.
//!
//! Written in the TAU Urban Acoustic Scenes 2022 Mobile layout (`audio/*.wav` at 44.1 kHz,
//! 24-bit mono, 1 s; `meta.csv`; `evaluation_setup/fold1_{train,evaluate}.csv`; DCASE2024-style
//! `split{N}.csv` subsets) plus `irs/*.wav`, device impulse responses for the device-simulation
//! augmentation, and `synth.yaml`, the configuration it was made from.
//!
//! The generative model, in short (details at each function):
//! - A *world*: cities (some only in the test split) with their own traits (mains frequency,
//!   voices, bird species, horns, overall colour); per scene and city, recording *locations* whose
//!   acoustics and sound sources are random draws around the scene's profile, so test locations
//!   are genuinely new.
//! - A *recording* (location, segment, sub-segment) is rendered for device a: a coloured,
//!   slowly modulated background with the scene's spectral envelope, continuous layers (engine,
//!   electric motor whine, speech babble, wind, music, ventilation) present with scene-specific
//!   probabilities, and Poisson events (footsteps, birds, rail squeal, chimes and announcements,
//!   bells and door beeps, car pass-bys, horns, rattles, talkers) with scene-specific rates, many
//!   shared between scenes; then the location's reverberation.
//! - The same recording captured by other devices, as in TAU: b and c are fixed phone-like
//!   channels (band limits, resonances, noise floor; b compresses, c clips); s1-s6 are the
//!   device-a signal through a random resonant impulse response and dynamic range compression.
//!   `irs/` holds other instances from the same family of random responses.
//!
//! Everything random comes from ChaCha8 streams keyed by the seed and the name of what is drawn
//! (never from thread order), and the arithmetic is f64 with the pure-Rust `libm`, so the same
//! configuration gives byte-identical files on any machine.

use crate::audio::wav::write_wav_24;
use crate::error::{Error, IoContext, Result};
use crate::labels::{CLASSES, DEVICES};
use indicatif::ProgressBar;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::f64::consts::PI;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Bumped whenever the generator's output changes for the same configuration.
pub const GENERATOR_VERSION: u32 = 1;
/// Sample rate of every written file.
pub const SAMPLE_RATE: u32 = 44_100;
/// Length of every impulse response in `irs/` (samples).
pub const IR_LEN: usize = 8192;

const FS: f64 = SAMPLE_RATE as f64;
const CLIP: usize = SAMPLE_RATE as usize;
/// Warm-up rendered before each clip and discarded, so filters, reverbs and ongoing sounds are
/// in a steady state when the clip starts (a 1 s clip is cut from a longer recording).
const PRE: usize = CLIP / 4;
const TOTAL: usize = PRE + CLIP;

/// Configuration of the synthetic dataset. Used directly as a recipe field: every field has a
/// default (the demo size), unknown fields are rejected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SynthConfig {
    /// Master seed: every random draw derives from it and the name of what is drawn.
    pub seed: u64,
    /// Number of cities (named after TAU's cities; beyond 12 they are numbered).
    pub cities: usize,
    /// How many of the cities (the last ones) appear only in the test split.
    pub test_only_cities: usize,
    /// Training recording locations per scene in each training city.
    pub train_locations_per_city: usize,
    /// Test recording locations per scene in each city (never used for training).
    pub test_locations_per_city: usize,
    /// Device a training clips per scene (device a dominates training, as in TAU).
    pub train_clips_per_class_a: usize,
    /// Training clips per scene for each of b, c, s1, s2, s3: parallel captures of the first
    /// device-a training recordings, so at most `train_clips_per_class_a`.
    pub train_clips_per_class_device: usize,
    /// Test clips per scene for each of the 9 devices (every test recording on every device).
    pub test_clips_per_class_device: usize,
    /// Consecutive 1 s clips cut from one segment, which share its sound layers (TAU cuts
    /// 10 s segments into 10 clips).
    pub clips_per_segment: usize,
    /// Impulse responses written to `irs/` for the device-simulation augmentation (24 kB each;
    /// a few dozen make the augmentation generalise to unseen devices).
    pub device_sim_irs: usize,
    /// Nested DCASE2024-style training subsets written as `split{N}.csv` (N percent of the
    /// training recordings, per scene; each subset contains the smaller ones).
    pub subsets: Vec<u32>,
    /// How far the scene profiles stand apart (1 = as designed, 0 = all scenes alike apart from
    /// their event types' frequencies): the difficulty knob.
    pub class_separation: f64,
    /// How strongly devices colour the sound (1 = as designed, 0 = nearly transparent): the
    /// device-shift knob.
    pub device_severity: f64,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            seed: 2022,
            cities: 6,
            test_only_cities: 1,
            train_locations_per_city: 3,
            test_locations_per_city: 1,
            train_clips_per_class_a: 60,
            train_clips_per_class_device: 12,
            test_clips_per_class_device: 15,
            clips_per_segment: 3,
            device_sim_irs: 48,
            subsets: vec![5, 10, 25, 50, 100],
            class_separation: 1.0,
            device_severity: 1.0,
        }
    }
}

impl SynthConfig {
    /// Checks value ranges. On failure returns the field name and what is wrong, so the recipe
    /// layer can point at the right line.
    pub fn check(&self) -> std::result::Result<(), (&'static str, String)> {
        let range = |field: &'static str, v: usize, lo: usize, hi: usize| {
            if v < lo || v > hi {
                Err((field, format!("{v} is out of range {lo}..={hi}")))
            } else {
                Ok(())
            }
        };
        range("cities", self.cities, 1, 1000)?;
        if self.test_only_cities >= self.cities {
            return Err((
                "test_only_cities",
                format!(
                    "{} leaves no training city out of {}",
                    self.test_only_cities, self.cities
                ),
            ));
        }
        range(
            "train_locations_per_city",
            self.train_locations_per_city,
            1,
            100,
        )?;
        range(
            "test_locations_per_city",
            self.test_locations_per_city,
            1,
            100,
        )?;
        range(
            "train_clips_per_class_a",
            self.train_clips_per_class_a,
            1,
            100_000,
        )?;
        range(
            "train_clips_per_class_device",
            self.train_clips_per_class_device,
            0,
            self.train_clips_per_class_a,
        )
        .map_err(|(f, m)| {
            (
                f,
                format!("{m} (devices b, c, s1-s3 capture device-a recordings in parallel)"),
            )
        })?;
        range(
            "test_clips_per_class_device",
            self.test_clips_per_class_device,
            1,
            100_000,
        )?;
        range("clips_per_segment", self.clips_per_segment, 1, 10)?;
        range("device_sim_irs", self.device_sim_irs, 0, 10_000)?;
        for (i, &p) in self.subsets.iter().enumerate() {
            if !(1..=100).contains(&p) {
                return Err(("subsets", format!("{p} is not a percentage in 1..=100")));
            }
            if self.subsets[..i].contains(&p) {
                return Err(("subsets", format!("{p} is listed twice")));
            }
        }
        for (field, v) in [
            ("class_separation", self.class_separation),
            ("device_severity", self.device_severity),
        ] {
            if !v.is_finite() || !(0.0..=3.0).contains(&v) {
                return Err((field, format!("{v} is out of range 0..=3")));
            }
        }
        Ok(())
    }

    /// Number of clips `generate` writes (all devices).
    pub fn clip_count(&self) -> usize {
        CLASSES.len()
            * (self.train_clips_per_class_a
                + 5 * self.train_clips_per_class_device
                + DEVICES.len() * self.test_clips_per_class_device)
    }
}

/// Generates the dataset into `out` (which must not exist, or be an empty directory). The files
/// are built in a sibling temporary directory that is renamed into place at the end, so `out`
/// is either complete or absent.
pub fn generate(cfg: &SynthConfig, out: &Path, progress: Option<&ProgressBar>) -> Result<()> {
    cfg.check().map_err(|(field, msg)| {
        Error::msg(format!(
            "synthetic dataset configuration: field `{field}`: {msg}"
        ))
    })?;
    let out_empty_dir = match std::fs::read_dir(out) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(Error::file(
                    out,
                    "already exists and is not empty; the synthetic dataset is written to a new directory",
                ));
            }
            true
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(Error::io(out, e)),
    };
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).at(&parent)?;
    let tmp = tempfile::Builder::new()
        .prefix(".synth-")
        .suffix(".partial")
        .tempdir_in(&parent)
        .at(&parent)?;
    let root = tmp.path();
    for dir in ["audio", "evaluation_setup", "irs"] {
        std::fs::create_dir(root.join(dir)).at(root.join(dir))?;
    }

    let world = World::build(cfg);
    let recordings = plan(cfg, &world);
    if let Some(pb) = progress {
        pb.set_length((cfg.clip_count() + cfg.device_sim_irs) as u64);
    }
    recordings.par_iter().try_for_each(|rec| -> Result<()> {
        let a = render_recording(&world, rec);
        for &dev in &rec.devices {
            let y = render_device(&world, rec, dev, &a);
            let path = root.join(clip_file(&world, rec, dev));
            write_wav_24(&path, &y, SAMPLE_RATE)?;
            if let Some(pb) = progress {
                pb.inc(1);
            }
        }
        Ok(())
    })?;
    (0..cfg.device_sim_irs)
        .into_par_iter()
        .try_for_each(|i| -> Result<()> {
            let mut rng = Rng::new(cfg.seed, &format!("dir/{i}"));
            let ir = IrSystem::sample(&mut rng, cfg.device_severity).impulse_response();
            let path = root.join(format!("irs/ir_{i:03}.wav"));
            let ir32: Vec<f32> = ir.iter().map(|&v| v as f32).collect();
            write_wav_24(&path, &ir32, SAMPLE_RATE)?;
            if let Some(pb) = progress {
                pb.inc(1);
            }
            Ok(())
        })?;
    write_tables(cfg, &world, &recordings, root)?;
    let yaml = serde_norway::to_string(cfg)
        .map_err(|e| Error::msg(format!("cannot serialise the synth configuration: {e}")))?;
    let text = format!(
        "# Synthetic TAU-like dataset written by ascrepro (generator version {GENERATOR_VERSION}) from:\n{yaml}"
    );
    std::fs::write(root.join("synth.yaml"), text).at(root.join("synth.yaml"))?;

    if out_empty_dir {
        std::fs::remove_dir(out).at(out)?;
    }
    let kept = tmp.keep();
    if let Err(e) = std::fs::rename(&kept, out) {
        // Best effort: do not leave the half-published directory behind.
        let _ = std::fs::remove_dir_all(&kept);
        return Err(Error::io(out, e));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Random numbers

/// A ChaCha8 stream keyed by (seed, name): independent of thread order and of other streams.
struct Rng(ChaCha8Rng);

impl Rng {
    fn new(seed: u64, key: &str) -> Rng {
        let mut h = Sha256::new();
        h.update(b"ascrepro-synth\0");
        h.update(seed.to_le_bytes());
        h.update(key.as_bytes());
        Rng(ChaCha8Rng::from_seed(h.finalize().into()))
    }

    /// Uniform in [0, 1).
    fn uni(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    fn range(&mut self, a: f64, b: f64) -> f64 {
        a + (b - a) * self.uni()
    }

    /// Log-uniform in [a, b) (a, b > 0): frequencies, times.
    fn log_range(&mut self, a: f64, b: f64) -> f64 {
        a * libm::exp(libm::log(b / a) * self.uni())
    }

    fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uni();
        let u2 = self.uni();
        libm::sqrt(-2.0 * libm::log(u1)) * libm::cos(2.0 * PI * u2)
    }

    /// exp(N(0, sigma)): multiplicative variation.
    fn lognormal(&mut self, sigma: f64) -> f64 {
        libm::exp(sigma * self.normal())
    }

    fn chance(&mut self, p: f64) -> bool {
        self.uni() < p
    }

    fn index(&mut self, n: usize) -> usize {
        ((self.uni() * n as f64) as usize).min(n.saturating_sub(1))
    }

    fn sign(&mut self) -> f64 {
        if self.chance(0.5) {
            1.0
        } else {
            -1.0
        }
    }

    fn poisson(&mut self, lambda: f64) -> usize {
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
    fn noise(&mut self) -> f64 {
        let x = self.0.next_u64();
        let a = (x >> 32) as f64;
        let b = (x & 0xffff_ffff) as f64;
        ((a + b) * (1.0 / 4_294_967_296.0) - 1.0) * 6f64.sqrt()
    }

    fn noise_vec(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| self.noise()).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Signal processing building blocks (time domain: cheap and exactly reproducible)

fn db(x: f64) -> f64 {
    libm::exp(x * (std::f64::consts::LN_10 / 20.0))
}

fn rms(x: &[f64]) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    libm::sqrt(x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64)
}

fn peak(x: &[f64]) -> f64 {
    x.iter().fold(0.0, |m, v| m.max(v.abs()))
}

/// Scales to unit RMS (silence stays silent).
fn normalize(x: &mut [f64]) {
    let r = rms(x);
    if r > 1e-12 {
        x.iter_mut().for_each(|v| *v /= r);
    }
}

fn add_into(dst: &mut [f64], src: &[f64], gain: f64) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d += gain * s;
    }
}

/// Adds `src` to `dst` starting at `start` (may be negative or run past the end).
fn add_at(dst: &mut [f64], start: isize, src: &[f64], gain: f64) {
    for (i, s) in src.iter().enumerate() {
        let p = start + i as isize;
        if p >= 0 && (p as usize) < dst.len() {
            dst[p as usize] += gain * s;
        }
    }
}

/// A filter specification (RBJ audio-EQ-cookbook biquads). Frequencies in Hz, gains in dB.
#[derive(Debug, Clone, Copy)]
enum Filt {
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
    fn scaled(self, s: f64) -> Filt {
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
struct Biquad {
    b0: f64,
    b1: f64,
    b2: f64,
    a1: f64,
    a2: f64,
    z1: f64,
    z2: f64,
}

impl Biquad {
    fn new(f: Filt) -> Biquad {
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
    fn retune(&mut self, f: Filt) {
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
    fn tick(&mut self, x: f64) -> f64 {
        let y = self.b0 * x + self.z1;
        self.z1 = self.b1 * x - self.a1 * y + self.z2;
        self.z2 = self.b2 * x - self.a2 * y;
        y
    }

    fn run(&mut self, buf: &mut [f64]) {
        for v in buf.iter_mut() {
            *v = self.tick(*v);
        }
    }
}

fn chain(filters: &[Filt], buf: &mut [f64]) {
    for f in filters {
        Biquad::new(*f).run(buf);
    }
}

/// Spectral tilt of `t` dB per octave between ~100 Hz and ~12 kHz: high shelves two octaves
/// apart, each contributing two octaves' worth.
fn tilt_filters(t: f64) -> [Filt; 4] {
    [
        Filt::HighShelf(150.0, 2.0 * t),
        Filt::HighShelf(600.0, 2.0 * t),
        Filt::HighShelf(2400.0, 2.0 * t),
        Filt::HighShelf(9600.0, 2.0 * t),
    ]
}

/// Sine oscillator by complex rotation (one multiply-add per sample, no per-sample sin()).
struct Lfo {
    c: f64,
    s: f64,
    cw: f64,
    sw: f64,
}

impl Lfo {
    fn new(hz: f64, phase: f64) -> Lfo {
        let w = 2.0 * PI * hz / FS;
        Lfo {
            c: libm::cos(phase),
            s: libm::sin(phase),
            cw: libm::cos(w),
            sw: libm::sin(w),
        }
    }

    fn next(&mut self) -> f64 {
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
fn add_tone(
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
fn ar_env(t: f64, dur: f64, attack: f64, release: f64) -> f64 {
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
struct Fdn {
    lines: [Vec<f64>; 4],
    idx: [usize; 4],
    g: [f64; 4],
    lp: [f64; 4],
    damp: f64,
}

impl Fdn {
    fn new(delays: [usize; 4], rt60: f64, damp: f64) -> Fdn {
        let g = delays.map(|d| libm::pow(10.0, -3.0 * d as f64 / (rt60.max(0.01) * FS)));
        Fdn {
            lines: delays.map(|d| vec![0.0; d.max(1)]),
            idx: [0; 4],
            g,
            lp: [0.0; 4],
            damp: damp.clamp(0.0, 0.95),
        }
    }

    fn tick(&mut self, x: f64) -> f64 {
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

    fn run(mut self, x: &[f64]) -> Vec<f64> {
        x.iter().map(|&v| self.tick(v)).collect()
    }
}

/// Feed-forward compressor (peak envelope, gain updated every 8 samples).
#[derive(Debug, Clone, Copy)]
struct Compressor {
    threshold_db: f64,
    ratio: f64,
    attack: f64,
    release: f64,
    makeup_db: f64,
}

impl Compressor {
    fn run(&self, x: &mut [f64]) {
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

// ---------------------------------------------------------------------------------------------
// Scene profiles

const N_LAYERS: usize = 6;
const ENGINE: usize = 0;
const WHINE: usize = 1;
const BABBLE: usize = 2;
const WIND: usize = 3;
const MUSIC: usize = 4;
const VENT: usize = 5;

const N_EVENTS: usize = 9;
const STEPS: usize = 0;
const BIRDS: usize = 1;
const SQUEAL: usize = 2;
const ANNOUNCE: usize = 3;
const BELL: usize = 4;
const PASSBY: usize = 5;
const HORN: usize = 6;
const RATTLE: usize = 7;
const TALKER: usize = 8;

/// A scene's generative profile; each location draws its own values around it.
#[derive(Debug, Clone, Copy)]
struct Profile {
    /// Background RMS (dBFS) at device a.
    level_db: f64,
    /// Background spectral tilt (dB/octave).
    tilt: f64,
    /// Background resonances: (Hz, dB, Q).
    bumps: [(f64, f64, f64); 3],
    /// Background amplitude modulation: rate (Hz), depth (0..1).
    am: (f64, f64),
    /// Continuous layers: presence probability per segment, level relative to background (dB).
    layers: [(f64, f64); N_LAYERS],
    /// Events: rate per second, level relative to background (dB).
    events: [(f64, f64); N_EVENTS],
    /// Reverberation: RT60 (s), room size factor, wet level relative to dry (dB).
    reverb: (f64, f64, f64),
    /// Engine fundamental (Hz).
    engine_f0: f64,
}

/// How strongly the scene resonances in [`PROFILES`] are applied.
const BUMP_SCALE: f64 = 2.2;

#[allow(clippy::too_many_arguments)] // a table row constructor
const fn p(
    level_db: f64,
    tilt: f64,
    bumps: [(f64, f64, f64); 3],
    am: (f64, f64),
    layers: [(f64, f64); N_LAYERS],
    events: [(f64, f64); N_EVENTS],
    reverb: (f64, f64, f64),
    engine_f0: f64,
) -> Profile {
    Profile {
        level_db,
        tilt,
        bumps,
        am,
        layers,
        events,
        reverb,
        engine_f0,
    }
}

/// Scene profiles in [`CLASSES`] order. Layers: engine, whine, babble, wind, music, vent.
/// Events: steps, birds, squeal, announce, bell, pass-by, horn, rattle, talker.
#[rustfmt::skip]
const PROFILES: [Profile; 10] = [
    // airport: large hall, crowd, announcements, trolleys
    p(-28.0, -4.0, [(120.0, 3.0, 1.0), (500.0, 2.0, 0.8), (2500.0, -2.0, 0.7)], (0.3, 0.1),
      [(0.25, -6.0), (0.05, -10.0), (0.85, 0.0), (0.0, 0.0), (0.15, -6.0), (0.6, -4.0)],
      [(0.8, 2.0), (0.0, 0.0), (0.0, 0.0), (0.35, 6.0), (0.05, 2.0), (0.0, 0.0), (0.0, 0.0), (0.4, 0.0), (0.5, 4.0)],
      (1.6, 2.5, -1.0), 45.0),
    // bus: diesel engine, cabin rattles, stop beeps
    p(-23.0, -6.0, [(70.0, 6.0, 1.2), (300.0, 2.0, 1.0), (1800.0, -2.0, 1.0)], (0.5, 0.15),
      [(0.9, 0.0), (0.05, -8.0), (0.4, -6.0), (0.0, 0.0), (0.05, -10.0), (0.2, -8.0)],
      [(0.1, -2.0), (0.0, 0.0), (0.02, 0.0), (0.2, 3.0), (0.1, 3.0), (0.25, -4.0), (0.03, 0.0), (0.8, 0.0), (0.35, 3.0)],
      (0.25, 0.5, -8.0), 32.0),
    // metro: electric motor whine, rail noise, squeal, rattles
    p(-21.0, -5.0, [(60.0, 5.0, 1.0), (900.0, 3.0, 0.7), (3000.0, -1.0, 1.0)], (1.8, 0.3),
      [(0.3, -4.0), (0.8, -2.0), (0.3, -8.0), (0.0, 0.0), (0.02, -10.0), (0.3, -6.0)],
      [(0.05, -4.0), (0.0, 0.0), (0.5, 4.0), (0.25, 4.0), (0.2, 3.0), (0.0, 0.0), (0.0, 0.0), (0.9, 2.0), (0.2, 2.0)],
      (0.35, 0.6, -8.0), 55.0),
    // metro_station: reverberant underground hall, arriving trains, crowd
    p(-26.0, -4.0, [(250.0, 2.0, 0.8), (80.0, 2.0, 1.0), (1200.0, 1.0, 1.0)], (0.2, 0.15),
      [(0.2, -6.0), (0.4, -4.0), (0.65, -2.0), (0.05, -6.0), (0.1, -8.0), (0.5, -4.0)],
      [(0.7, 2.0), (0.0, 0.0), (0.3, 4.0), (0.35, 5.0), (0.1, 2.0), (0.0, 0.0), (0.0, 0.0), (0.2, 0.0), (0.4, 3.0)],
      (2.0, 2.0, 0.0), 50.0),
    // park: quiet, birds, wind, distant traffic
    p(-34.0, -3.0, [(3000.0, 3.0, 0.7), (150.0, -2.0, 0.8), (700.0, 1.0, 1.0)], (0.15, 0.25),
      [(0.2, -8.0), (0.0, 0.0), (0.2, -6.0), (0.6, 0.0), (0.03, -8.0), (0.0, 0.0)],
      [(0.3, 1.0), (1.5, 6.0), (0.0, 0.0), (0.0, 0.0), (0.02, 0.0), (0.05, -6.0), (0.01, -6.0), (0.0, 0.0), (0.25, 3.0)],
      (0.1, 1.0, -18.0), 40.0),
    // public_square: open space, people, some traffic and birds
    p(-29.0, -4.0, [(200.0, 2.0, 0.8), (1000.0, 1.0, 0.8), (4000.0, 1.0, 0.8)], (0.2, 0.15),
      [(0.35, -6.0), (0.02, -8.0), (0.5, -3.0), (0.3, -3.0), (0.12, -6.0), (0.05, -8.0)],
      [(0.6, 2.0), (0.5, 3.0), (0.02, 0.0), (0.03, 0.0), (0.08, 2.0), (0.3, -2.0), (0.05, -2.0), (0.05, 0.0), (0.5, 3.0)],
      (0.6, 2.0, -10.0), 40.0),
    // shopping_mall: indoor crowd, music, chimes
    p(-27.0, -3.5, [(200.0, 2.0, 0.8), (2000.0, 2.0, 0.7), (6000.0, -2.0, 0.8)], (0.2, 0.1),
      [(0.02, -10.0), (0.02, -10.0), (0.9, 0.0), (0.0, 0.0), (0.55, -3.0), (0.6, -4.0)],
      [(0.7, 2.0), (0.0, 0.0), (0.0, 0.0), (0.2, 4.0), (0.2, 3.0), (0.0, 0.0), (0.0, 0.0), (0.15, 0.0), (0.6, 4.0)],
      (1.2, 1.8, -2.0), 40.0),
    // street_pedestrian: footsteps, talk, some traffic
    p(-28.0, -4.5, [(100.0, 2.0, 1.0), (1500.0, 2.0, 0.7), (5000.0, -1.0, 1.0)], (0.3, 0.2),
      [(0.45, -5.0), (0.03, -8.0), (0.6, -2.0), (0.2, -3.0), (0.1, -8.0), (0.05, -8.0)],
      [(1.0, 3.0), (0.25, 0.0), (0.02, 0.0), (0.02, 0.0), (0.05, 0.0), (0.4, -1.0), (0.04, 0.0), (0.1, 0.0), (0.6, 4.0)],
      (0.5, 1.5, -10.0), 40.0),
    // street_traffic: engines, pass-bys, horns
    p(-23.0, -5.0, [(90.0, 4.0, 1.0), (800.0, 2.0, 0.7), (3000.0, 0.0, 1.0)], (0.4, 0.3),
      [(0.85, -2.0), (0.05, -8.0), (0.1, -8.0), (0.3, -4.0), (0.02, -10.0), (0.0, 0.0)],
      [(0.2, 0.0), (0.05, -3.0), (0.02, 0.0), (0.0, 0.0), (0.0, 0.0), (1.2, 2.0), (0.15, 3.0), (0.1, -2.0), (0.1, 2.0)],
      (0.3, 1.5, -12.0), 35.0),
    // tram: motor whine and engine, squeal, bells, rattles
    p(-23.0, -5.0, [(100.0, 3.0, 1.0), (700.0, 2.0, 0.8), (2500.0, -1.0, 1.0)], (1.0, 0.2),
      [(0.5, -3.0), (0.7, -3.0), (0.4, -6.0), (0.0, 0.0), (0.03, -10.0), (0.2, -8.0)],
      [(0.08, -3.0), (0.0, 0.0), (0.5, 3.0), (0.3, 4.0), (0.25, 3.0), (0.2, -4.0), (0.03, 0.0), (0.7, 1.0), (0.3, 3.0)],
      (0.3, 0.6, -8.0), 45.0),
];

/// The profiles pulled towards (separation < 1) or pushed away from (> 1) their mean.
fn separated_profiles(sep: f64) -> [Profile; 10] {
    let n = PROFILES.len() as f64;
    let mean = |f: &dyn Fn(&Profile) -> f64| PROFILES.iter().map(f).sum::<f64>() / n;
    let lerp = |m: f64, x: f64| m + sep * (x - m);
    let mut out = PROFILES;
    let m_level = mean(&|p| p.level_db);
    let m_tilt = mean(&|p| p.tilt);
    let m_am_depth = mean(&|p| p.am.1);
    let m_rt = mean(&|p| libm::log(p.reverb.0));
    let m_size = mean(&|p| libm::log(p.reverb.1));
    let m_wet = mean(&|p| p.reverb.2);
    let m_f0 = mean(&|p| libm::log(p.engine_f0));
    for (o, src) in out.iter_mut().zip(PROFILES.iter()) {
        o.level_db = lerp(m_level, src.level_db);
        o.tilt = lerp(m_tilt, src.tilt);
        for b in o.bumps.iter_mut() {
            b.1 *= sep;
        }
        o.am.1 = lerp(m_am_depth, src.am.1).clamp(0.0, 0.9);
        for i in 0..N_LAYERS {
            let mp = mean(&|p| p.layers[i].0);
            let ml = mean(&|p| p.layers[i].1);
            o.layers[i] = (
                lerp(mp, src.layers[i].0).clamp(0.0, 1.0),
                lerp(ml, src.layers[i].1),
            );
        }
        for i in 0..N_EVENTS {
            let mr = mean(&|p| p.events[i].0);
            let ml = mean(&|p| p.events[i].1);
            o.events[i] = (
                lerp(mr, src.events[i].0).max(0.0),
                lerp(ml, src.events[i].1),
            );
        }
        o.reverb = (
            libm::exp(lerp(m_rt, libm::log(src.reverb.0))),
            libm::exp(lerp(m_size, libm::log(src.reverb.1))),
            lerp(m_wet, src.reverb.2),
        );
        o.engine_f0 = libm::exp(lerp(m_f0, libm::log(src.engine_f0)));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The world: cities, locations, devices

const CITY_NAMES: [&str; 12] = [
    "lisbon",
    "lyon",
    "prague",
    "barcelona",
    "helsinki",
    "london",
    "paris",
    "stockholm",
    "vienna",
    "amsterdam",
    "madrid",
    "milan",
];

struct City {
    name: String,
    test_only: bool,
    /// Added to every location's tilt (dB/octave) and level (dB).
    tilt: f64,
    level: f64,
    /// A city-wide colouration (building materials, typical surfaces).
    bump: Filt,
    engine_scale: f64,
    /// Voices: formant scaling (language, population) and pitch scaling.
    formant: f64,
    pitch: f64,
    mains: f64,
    bird_f: f64,
    horn_f: f64,
}

impl City {
    fn sample(seed: u64, i: usize, test_only: bool) -> City {
        let mut r = Rng::new(seed, &format!("city/{i}"));
        let name = CITY_NAMES
            .get(i)
            .map_or_else(|| format!("city{}", i + 1), |s| s.to_string());
        City {
            name,
            test_only,
            tilt: 0.2 * r.normal(),
            level: 1.5 * r.normal(),
            bump: Filt::Peak(
                r.log_range(100.0, 5000.0),
                r.range(0.7, 1.5),
                2.5 * r.normal(),
            ),
            engine_scale: r.lognormal(0.15),
            formant: r.range(0.92, 1.08),
            pitch: r.range(0.9, 1.1),
            mains: if r.chance(0.5) { 50.0 } else { 60.0 },
            bird_f: r.log_range(2500.0, 6000.0),
            horn_f: r.range(330.0, 500.0),
        }
    }
}

/// One recording location: a scene in a city, with everything drawn once for it.
struct Location {
    scene: usize,
    city: usize,
    number: u32,
    level_db: f64,
    /// Background filters: tilt, high-pass, scene and location resonances, city colour.
    bg_filters: Vec<Filt>,
    am: (f64, f64),
    layers: [(f64, f64); N_LAYERS],
    events: [(f64, f64); N_EVENTS],
    rt60: f64,
    delays: [usize; 4],
    damp: f64,
    wet_db: f64,
    engine_f0: f64,
    engine_fire: usize,
    whine: (f64, f64),
    squeal_f: f64,
    chime: Vec<f64>,
    bell_f: f64,
    door_beeps: bool,
    vent: (f64, f64),
    rattle: [f64; 3],
    rattle_q: f64,
    floor_lp: f64,
    hard_shoes: bool,
    bird_f: f64,
    bird_sweep: f64,
    bird_trill: bool,
    music_root: f64,
    music_tempo: f64,
    distance_lp: f64,
}

impl Location {
    fn sample(
        seed: u64,
        prof: &Profile,
        city: &City,
        ci: usize,
        scene: usize,
        number: u32,
    ) -> Location {
        let mut r = Rng::new(seed, &format!("location/{ci}/{number}"));
        let tilt = prof.tilt + city.tilt + 0.3 * r.normal();
        let mut bg_filters: Vec<Filt> = tilt_filters(tilt).to_vec();
        bg_filters.push(Filt::Hp(r.range(20.0, 45.0), 0.707));
        // The scene's resonances are its most consistent spectral signature across locations
        // (and what device responses disturb most).
        for &(f, g, q) in &prof.bumps {
            bg_filters.push(Filt::Peak(
                f * r.lognormal(0.1),
                q,
                BUMP_SCALE * g + r.normal(),
            ));
        }
        for _ in 0..2 {
            bg_filters.push(Filt::Peak(
                r.log_range(80.0, 8000.0),
                r.range(0.7, 2.0),
                1.5 * r.normal(),
            ));
        }
        bg_filters.push(city.bump);
        let mut layers = prof.layers;
        for l in layers.iter_mut() {
            l.0 = (l.0 * r.lognormal(0.5)).min(0.97);
            l.1 += 3.0 * r.normal();
        }
        let mut events = prof.events;
        for e in events.iter_mut() {
            e.0 *= r.lognormal(0.6);
            e.1 += 3.0 * r.normal();
        }
        let size = prof.reverb.1 * r.lognormal(0.25);
        let delays = [29.7, 37.1, 41.1, 43.7].map(|ms: f64| {
            (ms * 1e-3 * size * r.range(0.85, 1.15) * FS)
                .round()
                .max(8.0) as usize
        });
        let chime_n = 2 + r.index(2);
        let chime_base = r.log_range(500.0, 1400.0);
        let chime = (0..chime_n)
            .map(|_| chime_base * libm::pow(2.0, r.index(8) as f64 / 12.0 * 1.5))
            .collect();
        Location {
            scene,
            city: ci,
            number,
            level_db: prof.level_db + city.level + 2.5 * r.normal(),
            bg_filters,
            am: (
                prof.am.0 * r.lognormal(0.3),
                (prof.am.1 * r.lognormal(0.3)).min(0.9),
            ),
            layers,
            events,
            rt60: prof.reverb.0 * r.lognormal(0.3),
            delays,
            damp: r.range(0.2, 0.7),
            wet_db: prof.reverb.2 + 3.0 * r.normal(),
            engine_f0: prof.engine_f0 * city.engine_scale * r.lognormal(0.2),
            engine_fire: if r.chance(0.5) { 2 } else { 4 },
            whine: (r.log_range(150.0, 500.0), r.log_range(300.0, 1000.0)),
            squeal_f: r.log_range(1500.0, 5500.0),
            chime,
            bell_f: r.log_range(500.0, 1500.0),
            door_beeps: r.chance(0.5),
            vent: (r.log_range(150.0, 2000.0), r.range(1.5, 6.0)),
            rattle: [
                r.log_range(400.0, 1200.0),
                r.log_range(1000.0, 2500.0),
                r.log_range(2000.0, 5000.0),
            ],
            rattle_q: r.range(6.0, 25.0),
            floor_lp: r.log_range(700.0, 3500.0),
            hard_shoes: r.chance(0.5),
            bird_f: city.bird_f * r.lognormal(0.15),
            bird_sweep: r.range(-2500.0, 2500.0),
            bird_trill: r.chance(0.3),
            music_root: 110.0 * libm::pow(2.0, r.index(12) as f64 / 12.0),
            music_tempo: r.range(80.0, 130.0),
            distance_lp: r.log_range(2500.0, 6000.0),
        }
    }
}

/// A device-simulation impulse response: band limits, tilts, resonances and notches, optional
/// short reverberant tail; normalised to unit energy.
struct IrSystem {
    filters: Vec<Filt>,
    /// Reverberant tail: FDN settings and its gain relative to the dry path.
    tail: Option<(Tail, f64)>,
    norm: f64,
}

/// FDN delays (samples), RT60 (s), damping.
#[derive(Debug, Clone, Copy)]
struct Tail {
    delays: [usize; 4],
    rt60: f64,
    damp: f64,
}

impl IrSystem {
    /// A random member of the family (microphone / loudspeaker / housing responses).
    fn sample(r: &mut Rng, severity: f64) -> IrSystem {
        let mut f = Vec::new();
        let hp = r.log_range(80.0, 900.0);
        let lp = r.log_range(2500.0, 14_000.0);
        for _ in 0..(1 + r.index(2)) {
            f.push(Filt::Hp(hp, 0.707));
            f.push(Filt::Lp(lp, 0.707));
        }
        f.push(Filt::LowShelf(
            r.log_range(150.0, 500.0),
            r.range(-9.0, 9.0),
        ));
        f.push(Filt::HighShelf(
            r.log_range(1500.0, 5000.0),
            r.range(-14.0, 6.0),
        ));
        for _ in 0..(3 + r.index(3)) {
            f.push(Filt::Peak(
                r.log_range(250.0, 9000.0),
                r.log_range(1.0, 8.0),
                r.sign() * r.range(4.0, 16.0),
            ));
        }
        if r.chance(0.6) {
            f.push(Filt::Peak(
                r.log_range(1000.0, 6000.0),
                r.range(4.0, 12.0),
                r.range(8.0, 16.0),
            ));
        }
        let filters: Vec<Filt> = f.into_iter().map(|x| x.scaled(severity)).collect();
        let tail = r.chance(0.7).then(|| {
            let size = r.range(0.08, 0.4);
            let delays = [29.7, 37.1, 41.1, 43.7].map(|ms: f64| {
                (ms * 1e-3 * size * r.range(0.85, 1.15) * FS)
                    .round()
                    .max(8.0) as usize
            });
            let rt60 = r.range(0.03, 0.15);
            let damp = r.range(0.1, 0.6);
            let tail_db = r.range(-24.0, -12.0) + 10.0 * libm::log10(severity.max(1e-3));
            (Tail { delays, rt60, damp }, tail_db)
        });
        Self::build(filters, tail)
    }

    fn build(filters: Vec<Filt>, tail: Option<(Tail, f64)>) -> IrSystem {
        let mut sys = IrSystem {
            filters,
            tail: None,
            norm: 1.0,
        };
        let mut dry = vec![0.0; IR_LEN];
        dry[0] = 1.0;
        chain(&sys.filters, &mut dry);
        let e_dry: f64 = dry.iter().map(|v| v * v).sum();
        let mut ir = dry.clone();
        if let Some((spec, tail_db)) = tail {
            let t = Fdn::new(spec.delays, spec.rt60, spec.damp).run(&dry);
            let e_t: f64 = t.iter().map(|v| v * v).sum();
            if e_t > 0.0 {
                let wet = libm::sqrt(e_dry / e_t * libm::pow(10.0, tail_db / 10.0));
                add_into(&mut ir, &t, wet);
                sys.tail = Some((spec, wet));
            }
        }
        let e: f64 = ir.iter().map(|v| v * v).sum();
        sys.norm = 1.0 / libm::sqrt(e.max(1e-30));
        sys
    }

    /// The system applied to `x` (equal to convolving with the untruncated impulse response).
    fn apply(&self, x: &[f64]) -> Vec<f64> {
        let mut y = x.to_vec();
        chain(&self.filters, &mut y);
        if let Some((spec, wet)) = &self.tail {
            let t = Fdn::new(spec.delays, spec.rt60, spec.damp).run(&y);
            add_into(&mut y, &t, *wet);
        }
        y.iter_mut().for_each(|v| *v *= self.norm);
        y
    }

    /// The impulse response as written to `irs/` (with a short fade-out at the end).
    fn impulse_response(&self) -> Vec<f64> {
        let mut d = vec![0.0; IR_LEN];
        d[0] = 1.0;
        let mut h = self.apply(&d);
        let fade = 512;
        for i in 0..fade {
            h[IR_LEN - fade + i] *= 0.5 * (1.0 + libm::cos(PI * i as f64 / fade as f64));
        }
        h
    }
}

enum Device {
    /// Device a: the reference (studio-grade binaural microphones).
    Reference,
    /// b, c: real-like phone channels.
    Real {
        filters: Vec<Filt>,
        compressor: Option<Compressor>,
        drive_db: f64,
        clip: Option<f64>,
        noise_db: f64,
        noise_filters: Vec<Filt>,
        hum_db: Option<f64>,
    },
    /// s1-s6: impulse response + dynamic range compression.
    Simulated {
        ir: IrSystem,
        drc: Compressor,
        gain_db: f64,
    },
}

fn devices(seed: u64, severity: f64) -> Vec<Device> {
    let s = severity;
    let mut out = vec![
        Device::Reference,
        // b: 4th-order high-pass, presence peak, dull top, automatic gain control.
        Device::Real {
            filters: [
                Filt::Hp(130.0, 0.707),
                Filt::Hp(130.0, 0.707),
                Filt::Peak(650.0, 1.0, -3.0),
                Filt::Peak(2800.0, 1.0, 5.0),
                Filt::HighShelf(6000.0, -6.0),
                Filt::Lp(10_000.0, 0.707),
            ]
            .map(|f| f.scaled(s))
            .to_vec(),
            compressor: Some(Compressor {
                threshold_db: -30.0,
                ratio: 1.0 + 2.0 * s,
                attack: 0.005,
                release: 0.25,
                makeup_db: 4.0 * s,
            }),
            drive_db: 0.0,
            clip: None,
            noise_db: -66.0,
            noise_filters: vec![Filt::Lp(4000.0, 0.707), Filt::Hp(200.0, 0.707)],
            hum_db: None,
        },
        // c: thin low end, sharp 4.5 kHz resonance, hot input stage that clips.
        Device::Real {
            filters: [
                Filt::Hp(220.0, 0.707),
                Filt::Hp(220.0, 0.707),
                Filt::LowShelf(500.0, -4.0),
                Filt::Peak(1500.0, 0.8, 2.0),
                Filt::Peak(4500.0, 2.0, 7.0),
                Filt::Lp(14_000.0, 0.707),
            ]
            .map(|f| f.scaled(s))
            .to_vec(),
            compressor: None,
            drive_db: 5.0 * s.min(1.5),
            clip: Some(0.98),
            noise_db: -60.0,
            noise_filters: vec![],
            hum_db: Some(-72.0),
        },
    ];
    for k in 1..=6 {
        let mut r = Rng::new(seed, &format!("sim-device/s{k}"));
        let ir = IrSystem::sample(&mut r, severity);
        let threshold_db = r.range(-38.0, -26.0);
        let ratio = 1.0 + r.range(1.0, 7.0) * s;
        let drc = Compressor {
            threshold_db,
            ratio,
            attack: r.range(0.001, 0.005),
            release: r.range(0.05, 0.25),
            // Keeps a typical -25 dBFS scene near its level (peak envelope sits ~8 dB higher).
            makeup_db: 0.7 * (1.0 - 1.0 / ratio) * (-17.0 - threshold_db).max(0.0),
        };
        out.push(Device::Simulated {
            ir,
            drc,
            gain_db: 2.0 * r.normal() * s,
        });
    }
    out
}

struct World {
    seed: u64,
    cities: Vec<City>,
    locations: Vec<Location>,
    /// Per scene, its train and test locations.
    scenes: Vec<SceneLocations>,
    devices: Vec<Device>,
}

/// Train and test locations of each scene, as indices into `World::locations`.
struct SceneLocations {
    train: Vec<usize>,
    test: Vec<usize>,
}

impl World {
    fn build(cfg: &SynthConfig) -> World {
        let profiles = separated_profiles(cfg.class_separation);
        let first_test_only = cfg.cities - cfg.test_only_cities;
        let cities: Vec<City> = (0..cfg.cities)
            .map(|i| City::sample(cfg.seed, i, i >= first_test_only))
            .collect();
        let mut locations = Vec::new();
        let mut index = Vec::new();
        let mut next_number = vec![1000u32; cities.len()];
        for (scene, prof) in profiles.iter().enumerate() {
            let mut sl = SceneLocations {
                train: vec![],
                test: vec![],
            };
            for (ci, city) in cities.iter().enumerate() {
                let n_train = if city.test_only {
                    0
                } else {
                    cfg.train_locations_per_city
                };
                for k in 0..(n_train + cfg.test_locations_per_city) {
                    let number = next_number[ci];
                    next_number[ci] += 1;
                    let loc = Location::sample(cfg.seed, prof, city, ci, scene, number);
                    if k < n_train {
                        sl.train.push(locations.len());
                    } else {
                        sl.test.push(locations.len());
                    }
                    locations.push(loc);
                }
            }
            index.push(sl);
        }
        World {
            seed: cfg.seed,
            cities,
            locations,
            scenes: index,
            devices: devices(cfg.seed, cfg.device_severity),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Recording plan and tables

struct Recording {
    loc: usize,
    segment: u32,
    sub: u32,
    test: bool,
    devices: Vec<usize>,
}

fn plan(cfg: &SynthConfig, world: &World) -> Vec<Recording> {
    let mut out = Vec::new();
    let cps = cfg.clips_per_segment;
    for (scene, sl) in world.scenes.iter().enumerate() {
        let split = |locs: &[usize], n: usize, test: bool, out: &mut Vec<Recording>| {
            // Visit locations in a seeded random order, so with fewer recordings than
            // locations the unused ones are not always the same cities.
            let mut r = Rng::new(world.seed, &format!("visit-order/{scene}/{test}"));
            let mut locs = locs.to_vec();
            for i in (1..locs.len()).rev() {
                locs.swap(i, r.index(i + 1));
            }
            for j in 0..n {
                // Round-robin over locations; consecutive visits to a location form segments.
                let loc = locs[j % locs.len()];
                let k = j / locs.len();
                let devices = if test {
                    (0..DEVICES.len()).collect()
                } else if j < cfg.train_clips_per_class_device {
                    vec![0, 1, 2, 3, 4, 5]
                } else {
                    vec![0]
                };
                out.push(Recording {
                    loc,
                    segment: 10_000 + (k / cps) as u32,
                    sub: (k % cps) as u32,
                    test,
                    devices,
                });
            }
        };
        split(&sl.train, cfg.train_clips_per_class_a, false, &mut out);
        split(&sl.test, cfg.test_clips_per_class_device, true, &mut out);
    }
    out
}

fn identifier(world: &World, loc: &Location) -> String {
    format!("{}-{}", world.cities[loc.city].name, loc.number)
}

fn stem(world: &World, rec: &Recording) -> String {
    let loc = &world.locations[rec.loc];
    format!(
        "{}-{}-{}-{}",
        CLASSES[loc.scene],
        identifier(world, loc),
        rec.segment,
        rec.sub
    )
}

fn clip_file(world: &World, rec: &Recording, dev: usize) -> String {
    format!("audio/{}-{}.wav", stem(world, rec), DEVICES[dev])
}

fn write_tables(cfg: &SynthConfig, world: &World, recs: &[Recording], root: &Path) -> Result<()> {
    struct Row {
        file: String,
        scene: usize,
        ident: String,
        dev: usize,
        test: bool,
    }
    let mut rows = Vec::new();
    for rec in recs {
        let loc = &world.locations[rec.loc];
        for &dev in &rec.devices {
            rows.push(Row {
                file: clip_file(world, rec, dev),
                scene: loc.scene,
                ident: identifier(world, loc),
                dev,
                test: rec.test,
            });
        }
    }
    rows.sort_by(|a, b| a.file.cmp(&b.file));
    let mut meta = String::from("filename\tscene_label\tidentifier\tsource_label\n");
    let mut train = String::from("filename\tscene_label\n");
    let mut test = String::from("filename\tscene_label\n");
    for r in &rows {
        let scene = CLASSES[r.scene];
        let _ = writeln!(meta, "{}\t{scene}\t{}\t{}", r.file, r.ident, DEVICES[r.dev]);
        let split = if r.test { &mut test } else { &mut train };
        let _ = writeln!(split, "{}\t{scene}", r.file);
    }
    let write = |rel: &str, text: &str| std::fs::write(root.join(rel), text).at(root.join(rel));
    write("meta.csv", &meta)?;
    write("evaluation_setup/fold1_train.csv", &train)?;
    write("evaluation_setup/fold1_evaluate.csv", &test)?;

    // Nested subsets: per scene, training recordings in a seeded random order; subset N takes
    // the first N percent (rounded up) with all their devices.
    let mut rank = std::collections::HashMap::new();
    for scene in 0..CLASSES.len() {
        let mut keyed: Vec<(String, String)> = recs
            .iter()
            .filter(|r| !r.test && world.locations[r.loc].scene == scene)
            .map(|r| {
                let s = stem(world, r);
                let mut h = Sha256::new();
                h.update(cfg.seed.to_le_bytes());
                h.update(b"subset\0");
                h.update(s.as_bytes());
                (hex::encode(h.finalize()), s)
            })
            .collect();
        keyed.sort();
        let n = keyed.len();
        for (i, (_, s)) in keyed.into_iter().enumerate() {
            rank.insert(s, (i, n));
        }
    }
    for &pct in &cfg.subsets {
        let mut lines = Vec::new();
        for rec in recs.iter().filter(|r| !r.test) {
            let (i, n) = rank[&stem(world, rec)];
            if i < (n * pct as usize).div_ceil(100) {
                let scene = CLASSES[world.locations[rec.loc].scene];
                for &dev in &rec.devices {
                    lines.push(format!("{}\t{scene}\n", clip_file(world, rec, dev)));
                }
            }
        }
        // Same order as the other split files.
        lines.sort_unstable();
        let body = format!("filename\tscene_label\n{}", lines.concat());
        write(&format!("split{pct}.csv"), &body)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Rendering

/// Per-segment state: which continuous layers sound, and their settings.
struct Segment {
    on: [bool; N_LAYERS],
    layer_db: [f64; N_LAYERS],
    level_db: f64,
    engine_f0: f64,
    talkers: usize,
}

fn render_recording(world: &World, rec: &Recording) -> Vec<f64> {
    let loc = &world.locations[rec.loc];
    let city = &world.cities[loc.city];
    let seg_key = format!("segment/{}/{}/{}", loc.city, loc.number, rec.segment);
    let mut sr = Rng::new(world.seed, &seg_key);
    let mut seg = Segment {
        on: [false; N_LAYERS],
        layer_db: [0.0; N_LAYERS],
        level_db: loc.level_db + 1.5 * sr.normal(),
        engine_f0: loc.engine_f0 * sr.lognormal(0.08),
        talkers: 2 + sr.index(6),
    };
    for i in 0..N_LAYERS {
        seg.on[i] = sr.chance(loc.layers[i].0);
        seg.layer_db[i] = loc.layers[i].1 + 2.0 * sr.normal();
    }
    let mut r = Rng::new(world.seed, &format!("{seg_key}/{}", rec.sub));
    let bg_db = seg.level_db + 0.7 * r.normal();

    // Diffuse background: coloured noise with slow amplitude modulation.
    let mut bg = r.noise_vec(TOTAL);
    chain(&loc.bg_filters, &mut bg);
    if loc.am.1 > 0.0 {
        let mut lfo = Lfo::new(loc.am.0, r.range(0.0, 2.0 * PI));
        let mut lfo2 = Lfo::new(loc.am.0 * r.range(1.7, 2.9), r.range(0.0, 2.0 * PI));
        for v in bg.iter_mut() {
            *v *= 1.0 + loc.am.1 * (0.7 * lfo.next() + 0.3 * lfo2.next());
        }
    }
    normalize(&mut bg);
    bg.iter_mut().for_each(|v| *v *= db(bg_db));

    // Sources in the room (reverberated).
    let mut src = vec![0.0; TOTAL];
    let layer_gain = |i: usize| db(bg_db + seg.layer_db[i]);
    if seg.on[ENGINE] {
        add_into(
            &mut src,
            &engine(&mut r, seg.engine_f0, loc.engine_fire),
            layer_gain(ENGINE),
        );
    }
    if seg.on[WHINE] {
        add_into(&mut src, &whine(&mut r, loc.whine), layer_gain(WHINE));
    }
    if seg.on[BABBLE] {
        add_into(
            &mut src,
            &babble(&mut r, city, seg.talkers, loc.distance_lp),
            layer_gain(BABBLE),
        );
    }
    if seg.on[MUSIC] {
        add_into(&mut src, &music(&mut r, loc), layer_gain(MUSIC));
    }
    if seg.on[VENT] {
        add_into(&mut src, &vent(&mut r, loc, city), layer_gain(VENT));
    }
    for e in 0..N_EVENTS {
        let n = r.poisson(loc.events[e].0 * TOTAL as f64 / FS);
        for _ in 0..n {
            let gain = db(bg_db + loc.events[e].1 + 3.0 * r.normal());
            add_event(e, &mut src, &mut r, loc, city, gain);
        }
    }
    let dry_rms = rms(&src);
    if dry_rms > 0.0 {
        let wet = Fdn::new(loc.delays, loc.rt60, loc.damp).run(&src);
        let wet_rms = rms(&wet);
        if wet_rms > 0.0 {
            add_into(&mut src, &wet, dry_rms / wet_rms * db(loc.wet_db));
        }
    }

    // Wind acts on the microphone itself: not reverberated.
    let mut x = bg;
    add_into(&mut x, &src, 1.0);
    if seg.on[WIND] {
        add_into(&mut x, &wind(&mut r, loc.scene), layer_gain(WIND));
    }
    // Device a self-noise.
    let floor = db(-90.0);
    for v in x.iter_mut() {
        *v += floor * r.noise();
    }
    // The recordist sets the gain so device a never clips.
    let pk = peak(&x[PRE..]);
    if pk > 0.9 {
        x.iter_mut().for_each(|v| *v *= 0.9 / pk);
    }
    x
}

/// The recording as captured by device `dev` (the last 1 s, as f32).
fn render_device(world: &World, rec: &Recording, dev: usize, a: &[f64]) -> Vec<f32> {
    let loc = &world.locations[rec.loc];
    let mut r = Rng::new(
        world.seed,
        &format!(
            "capture/{}/{}/{}/{}/{}",
            loc.city, loc.number, rec.segment, rec.sub, DEVICES[dev]
        ),
    );
    let mut clip_allowed = false;
    let y = match &world.devices[dev] {
        Device::Reference => a.to_vec(),
        Device::Real {
            filters,
            compressor,
            drive_db,
            clip,
            noise_db,
            noise_filters,
            hum_db,
        } => {
            let mut y = a.to_vec();
            chain(filters, &mut y);
            // Hand-held phones sit at slightly different distances from the sources.
            let g = db(drive_db + 1.5 * r.normal());
            y.iter_mut().for_each(|v| *v *= g);
            if let Some(c) = compressor {
                c.run(&mut y);
            }
            let mut n = r.noise_vec(TOTAL);
            chain(noise_filters, &mut n);
            normalize(&mut n);
            add_into(&mut y, &n, db(*noise_db));
            if let Some(h) = hum_db {
                let mains = world.cities[loc.city].mains;
                add_tone(&mut y, 0, TOTAL, &[1.0, 0.6, 0.4], |_| mains, |_| db(*h));
            }
            if let Some(c) = clip {
                y.iter_mut().for_each(|v| *v = v.clamp(-*c, *c));
                clip_allowed = true;
            }
            y
        }
        Device::Simulated { ir, drc, gain_db } => {
            let mut y = ir.apply(a);
            drc.run(&mut y);
            let g = db(gain_db + 0.5 * r.normal());
            y.iter_mut().for_each(|v| *v *= g);
            y
        }
    };
    let mut out: Vec<f32> = y[PRE..].iter().map(|&v| v as f32).collect();
    if !clip_allowed {
        let pk = out.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        if pk > 0.98 {
            out.iter_mut().for_each(|v| *v *= 0.98 / pk);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Continuous layers (each returns TOTAL samples at unit RMS)

/// Combustion engine: harmonic series on a drifting fundamental, firing harmonics emphasised,
/// plus low-passed combustion noise.
fn engine(r: &mut Rng, f0: f64, fire: usize) -> Vec<f64> {
    let mut x = vec![0.0; TOTAL];
    let amps: Vec<f64> = (1..=20)
        .map(|k| {
            let emph = if k % fire == 0 { 2.0 } else { 1.0 };
            libm::pow(k as f64, -0.8) * r.range(0.4, 1.4) * emph
        })
        .collect();
    let drift = r.range(-0.08, 0.08);
    let (wr, wd, ph) = (
        r.range(0.2, 0.8),
        r.range(0.005, 0.03),
        r.range(0.0, 2.0 * PI),
    );
    add_tone(
        &mut x,
        0,
        TOTAL,
        &amps,
        |t| f0 * (1.0 + drift * t + wd * libm::sin(2.0 * PI * wr * t + ph)),
        |_| 1.0,
    );
    let mut n = r.noise_vec(TOTAL);
    chain(&[Filt::Lp(300.0, 0.707), Filt::Lp(300.0, 0.707)], &mut n);
    normalize(&mut n);
    add_into(&mut x, &n, r.range(0.3, 0.8));
    normalize(&mut x);
    x
}

/// Electric traction motor: a tone sweeping as the vehicle accelerates or brakes, with a gear
/// mesh partial.
fn whine(r: &mut Rng, (f1, f2): (f64, f64)) -> Vec<f64> {
    let mut x = vec![0.0; TOTAL];
    let (a, b) = if r.chance(0.5) { (f1, f2) } else { (f2, f1) };
    let span = TOTAL as f64 / FS * r.range(1.0, 3.0);
    let f = move |t: f64| a + (b - a) * (t / span);
    add_tone(&mut x, 0, TOTAL, &[1.0, 0.35, 0.2, 0.08], f, |_| 1.0);
    let gear = r.range(3.2, 4.5);
    add_tone(&mut x, 0, TOTAL, &[1.0], move |t| gear * f(t), |_| 0.3);
    normalize(&mut x);
    x
}

const VOWELS: [[f64; 3]; 8] = [
    [730.0, 1090.0, 2440.0],
    [270.0, 2290.0, 3010.0],
    [300.0, 870.0, 2240.0],
    [530.0, 1840.0, 2480.0],
    [570.0, 840.0, 2410.0],
    [660.0, 1720.0, 2410.0],
    [440.0, 1020.0, 2240.0],
    [490.0, 1350.0, 1690.0],
];

/// A speech-like talker: glottal pulse trains with intonation through syllable-wise formant
/// filters, occasional fricatives, pauses. `len` samples at unit RMS.
fn talker(r: &mut Rng, city: &City, len: usize) -> Vec<f64> {
    let female = r.chance(0.5);
    let f0 = city.pitch
        * if female {
            r.range(180.0, 250.0)
        } else {
            r.range(95.0, 140.0)
        };
    let fscale = city.formant * if female { 1.12 } else { 1.0 };
    let mut src = vec![0.0; len];
    let mut out = vec![0.0; len];
    let mut syllables: Vec<(usize, [f64; 3])> = Vec::new();
    let dur = len as f64 / FS;
    let (rate, ph) = (r.range(0.3, 1.0), r.range(0.0, 2.0 * PI));
    let mut t = r.range(0.0, 0.15);
    while t < dur {
        let syl = r.range(0.1, 0.28);
        let v = VOWELS[r.index(VOWELS.len())].map(|f| f * fscale * r.range(0.92, 1.08));
        syllables.push(((t * FS) as usize, v));
        let amp = r.range(0.5, 1.0);
        let mut p = t;
        while p < t + syl {
            let i = (p * FS) as usize;
            if i >= len {
                break;
            }
            src[i] += amp * libm::sin(PI * (p - t) / syl);
            let f = f0
                * (1.0 + 0.15 * libm::sin(2.0 * PI * rate * p + ph))
                * (1.0 - 0.1 * p / dur.max(0.5));
            p += 1.0 / (f * (1.0 + 0.02 * r.normal())).max(50.0);
        }
        if r.chance(0.3) {
            let fl = r.range(0.03, 0.08);
            let a0 = (t * FS) as usize;
            let n = ((fl * FS) as usize).min(len.saturating_sub(a0));
            let mut burst = r.noise_vec(n);
            chain(&[Filt::Hp(r.range(3000.0, 5000.0), 0.707)], &mut burst);
            for (i, b) in burst.iter().enumerate() {
                out[a0 + i] += 0.25 * amp * b * libm::sin(PI * i as f64 / n as f64);
            }
        }
        t += syl;
        if r.chance(0.2) {
            t += r.range(0.05, 0.35);
        }
    }
    Biquad::new(Filt::Lp(900.0, 0.6)).run(&mut src);
    let first = syllables.first().map_or([500.0, 1500.0, 2500.0], |s| s.1);
    let bw = [90.0, 110.0, 170.0];
    let gains = [1.0, 0.9, 0.5];
    let mut bank: [Biquad; 3] =
        std::array::from_fn(|k| Biquad::new(Filt::Bp(first[k], first[k] / bw[k])));
    let mut next = 0;
    for i in 0..len {
        if next < syllables.len() && syllables[next].0 == i {
            let f = syllables[next].1;
            for k in 0..3 {
                bank[k].retune(Filt::Bp(f[k], f[k] / bw[k]));
            }
            next += 1;
        }
        while next < syllables.len() && syllables[next].0 < i {
            next += 1;
        }
        let s = src[i];
        out[i] +=
            gains[0] * bank[0].tick(s) + gains[1] * bank[1].tick(s) + gains[2] * bank[2].tick(s);
    }
    normalize(&mut out);
    out
}

/// Crowd babble: several talkers, dulled by distance.
fn babble(r: &mut Rng, city: &City, talkers: usize, distance_lp: f64) -> Vec<f64> {
    let mut x = vec![0.0; TOTAL];
    for _ in 0..talkers {
        let t = talker(r, city, TOTAL);
        add_into(&mut x, &t, r.range(0.5, 1.0));
    }
    chain(
        &[Filt::Lp(distance_lp, 0.707), Filt::Hp(120.0, 0.707)],
        &mut x,
    );
    normalize(&mut x);
    x
}

/// Wind: gusty low-frequency rumble at the microphone, with foliage rustle outdoors.
fn wind(r: &mut Rng, scene: usize) -> Vec<f64> {
    let mut x = r.noise_vec(TOTAL);
    let fc = r.log_range(80.0, 300.0);
    chain(&[Filt::Lp(fc, 0.707), Filt::Lp(fc, 0.707)], &mut x);
    normalize(&mut x);
    let mut rustle = r.noise_vec(TOTAL);
    chain(&[Filt::Bp(r.log_range(1500.0, 4000.0), 0.7)], &mut rustle);
    normalize(&mut rustle);
    let rustle_gain = if CLASSES[scene] == "park" { 0.5 } else { 0.15 };
    let mut g1 = Lfo::new(r.range(0.15, 0.6), r.range(0.0, 2.0 * PI));
    let mut g2 = Lfo::new(r.range(0.5, 1.5), r.range(0.0, 2.0 * PI));
    let depth = r.range(0.5, 1.2);
    for (v, s) in x.iter_mut().zip(&rustle) {
        let gust = libm::exp(depth * (0.6 * g1.next() + 0.4 * g2.next()));
        *v = gust * (*v + rustle_gain * gust * s);
    }
    normalize(&mut x);
    x
}

/// Background music from loudspeakers: chords on the bar, a melody on the beat.
fn music(r: &mut Rng, loc: &Location) -> Vec<f64> {
    const SCALE: [i32; 7] = [0, 2, 4, 5, 7, 9, 11];
    const PROGRESSION: [usize; 4] = [0, 3, 4, 5];
    let mut x = vec![0.0; TOTAL];
    let beat = 60.0 / loc.music_tempo * r.range(0.97, 1.03);
    let semis = |deg: usize| SCALE[deg % 7] + 12 * (deg / 7) as i32;
    let hz = |s: i32| loc.music_root * libm::pow(2.0, s as f64 / 12.0);
    let mut t = -r.range(0.0, 4.0 * beat);
    let mut b = r.index(16);
    let amps = [1.0, 0.5, 0.33, 0.2, 0.12];
    while t < TOTAL as f64 / FS {
        let chord = PROGRESSION[(b / 4) % 4];
        let mut notes: Vec<(i32, f64, f64)> = Vec::new();
        if b.is_multiple_of(4) {
            for d in [0, 2, 4] {
                notes.push((semis(chord + d) + 12, 1.2, 0.5));
            }
            notes.push((semis(chord) - 12, 0.8, 0.8));
        }
        notes.push((semis(chord + r.index(7)) + 24, 0.3, 0.7));
        for (s, decay, g) in notes {
            let f = hz(s);
            let len = (3.0 * decay * FS) as usize;
            add_tone(
                &mut x,
                (t * FS) as isize,
                len,
                &amps,
                |_| f,
                |u| g * libm::exp(-u / decay) * (u / 0.005).min(1.0),
            );
        }
        t += beat;
        b += 1;
    }
    chain(&[Filt::Hp(150.0, 0.707), Filt::Lp(6000.0, 0.707)], &mut x);
    normalize(&mut x);
    x
}

/// Ventilation: a band of fan noise, low rumble and a little mains hum.
fn vent(r: &mut Rng, loc: &Location, city: &City) -> Vec<f64> {
    let mut band = r.noise_vec(TOTAL);
    chain(&[Filt::Bp(loc.vent.0, loc.vent.1)], &mut band);
    normalize(&mut band);
    let mut rumble = r.noise_vec(TOTAL);
    chain(
        &[Filt::Lp(150.0, 0.707), Filt::Lp(150.0, 0.707)],
        &mut rumble,
    );
    normalize(&mut rumble);
    add_into(&mut band, &rumble, 0.7);
    let mains = city.mains;
    add_tone(&mut band, 0, TOTAL, &[0.3, 0.6, 0.2], |_| mains, |_| 0.3);
    normalize(&mut band);
    band
}

// ---------------------------------------------------------------------------------------------
// Events (added to the source buffer with RMS about `gain` while active)

fn add_event(kind: usize, buf: &mut [f64], r: &mut Rng, loc: &Location, city: &City, gain: f64) {
    let start = r.range(0.0, TOTAL as f64 / FS);
    let at = |t: f64| (t * FS) as isize;
    match kind {
        STEPS => {
            // A walker: periodic steps, each a decaying noise burst through the floor's
            // low-pass, with a heel click on hard shoes.
            let dur = r.range(1.0, 3.0);
            let period = r.range(0.45, 0.6);
            let approach = r.chance(0.5);
            let mut t = start - r.range(0.0, 1.0);
            let end = t + dur;
            while t < end {
                let n = (0.08 * FS) as usize;
                let tau = r.range(0.006, 0.02);
                let mut burst: Vec<f64> = (0..n)
                    .map(|i| r.noise() * libm::exp(-(i as f64) / FS / tau))
                    .collect();
                chain(
                    &[Filt::Lp(loc.floor_lp, 0.707), Filt::Hp(60.0, 0.707)],
                    &mut burst,
                );
                if loc.hard_shoes {
                    let mut click: Vec<f64> = (0..n)
                        .map(|i| r.noise() * libm::exp(-(i as f64) / FS / 0.002))
                        .collect();
                    chain(&[Filt::Bp(r.range(2500.0, 5000.0), 2.0)], &mut click);
                    add_into(&mut burst, &click, 0.7);
                }
                let active = (4.0 * tau * FS) as usize;
                let s = rms(&burst[..active.min(n)]).max(1e-12);
                let progress = ((t - (end - dur)) / dur).clamp(0.0, 1.0);
                let ramp = if approach {
                    0.4 + 0.6 * progress
                } else {
                    1.0 - 0.6 * progress
                };
                add_at(buf, at(t), &burst, gain * ramp * r.range(0.7, 1.0) / s);
                t += period * (1.0 + 0.05 * r.normal());
            }
        }
        BIRDS => {
            let notes = 2 + r.index(7);
            let mut t = start;
            let base = loc.bird_f * r.lognormal(0.1);
            let trill_hz = r.range(20.0, 40.0);
            for _ in 0..notes {
                let d = r.range(0.03, 0.15);
                let f1 = base * r.range(0.9, 1.1);
                let f2 = (f1 + loc.bird_sweep * r.range(0.5, 1.0)).max(1000.0);
                let trill = loc.bird_trill;
                add_tone(
                    buf,
                    at(t),
                    (d * FS) as usize,
                    &[1.0, 0.12],
                    |u| f1 + (f2 - f1) * u / d,
                    |u| {
                        let e = libm::sin(PI * u / d);
                        let m = if trill {
                            0.5 + 0.5 * libm::sin(2.0 * PI * trill_hz * u)
                        } else {
                            1.0
                        };
                        gain * e * e * m
                    },
                );
                t += d + r.range(0.03, 0.15);
            }
        }
        SQUEAL => {
            let d = r.range(0.3, 2.0);
            let f0 = loc.squeal_f * r.lognormal(0.05);
            let (vib, am, ph) = (
                r.range(5.0, 10.0),
                r.range(8.0, 30.0),
                r.range(0.0, 2.0 * PI),
            );
            add_tone(
                buf,
                at(start - 0.5),
                (d * FS) as usize,
                &[1.0, 0.25, 0.1],
                |u| f0 * (1.0 + 0.004 * libm::sin(2.0 * PI * vib * u)),
                |u| {
                    gain * ar_env(u, d, 0.05, 0.1) * (0.6 + 0.4 * libm::sin(2.0 * PI * am * u + ph))
                },
            );
        }
        ANNOUNCE => {
            if r.chance(0.6) {
                // The location's chime: two or three decaying notes.
                let mut t = start;
                for &f in &loc.chime {
                    add_tone(
                        buf,
                        at(t),
                        (1.2 * FS) as usize,
                        &[1.0, 0.3, 0.1],
                        |_| f,
                        |u| gain * libm::exp(-u / 0.3) * (u / 0.004).min(1.0),
                    );
                    t += r.range(0.25, 0.4);
                }
            } else {
                // Public-address speech: band-limited talker.
                let d = r.range(1.0, 2.5);
                let mut s = talker(r, city, (d * FS) as usize);
                chain(
                    &[
                        Filt::Hp(350.0, 0.707),
                        Filt::Lp(3400.0, 0.707),
                        Filt::Peak(1500.0, 1.0, 4.0),
                    ],
                    &mut s,
                );
                normalize(&mut s);
                add_at(buf, at(start - 0.5), &s, gain);
            }
        }
        BELL => {
            if loc.door_beeps {
                let f = r.range(1500.0, 3000.0);
                let period = r.range(0.2, 0.3);
                let bl = r.range(0.06, 0.1);
                for k in 0..(3 + r.index(4)) {
                    add_tone(
                        buf,
                        at(start + k as f64 * period),
                        (bl * FS) as usize,
                        &[1.0, 0.2],
                        |_| f,
                        |u| gain * ar_env(u, bl, 0.003, 0.003),
                    );
                }
            } else {
                // Struck bell: inharmonic partials, higher ones decaying faster.
                let strikes = 1 + r.index(2);
                for k in 0..strikes {
                    let t0 = start + k as f64 * r.range(0.3, 0.6);
                    let tau = r.range(0.2, 0.8);
                    for (ratio, amp) in [(1.0, 1.0), (2.76, 0.6), (5.4, 0.35), (8.93, 0.2)] {
                        let f = loc.bell_f * ratio;
                        let t_k = tau / ratio.sqrt();
                        add_tone(
                            buf,
                            at(t0),
                            (4.0 * tau * FS) as usize,
                            &[1.0],
                            |_| f,
                            |u| gain * amp * libm::exp(-u / t_k) * (u / 0.002).min(1.0),
                        );
                    }
                }
            }
        }
        PASSBY => {
            // Vehicle passing: tyre noise and engine harmonics swelling to the closest point,
            // with a Doppler drop in pitch.
            let tc = start + r.range(-0.5, 0.5);
            let w = r.range(0.25, 0.9);
            let f0 = loc.engine_f0 * r.range(0.8, 1.6);
            let doppler = r.range(0.03, 0.08);
            let t0 = tc - 4.0 * w;
            let n = (8.0 * w * FS) as usize;
            let mut tyre = r.noise_vec(n);
            chain(&[Filt::Bp(r.range(600.0, 1400.0), 0.6)], &mut tyre);
            normalize(&mut tyre);
            for (i, v) in tyre.iter_mut().enumerate() {
                let d = (i as f64 / FS - 4.0 * w) / w;
                *v *= 1.0 / (1.0 + d * d);
            }
            add_at(buf, at(t0), &tyre, gain);
            let amps: Vec<f64> = (1..=12).map(|k| libm::pow(k as f64, -0.7)).collect();
            add_tone(
                buf,
                at(t0),
                n,
                &amps,
                |u| f0 * (1.0 + doppler * libm::tanh(-1.5 * (u - 4.0 * w) / w)),
                |u| {
                    let d = (u - 4.0 * w) / w;
                    0.6 * gain / (1.0 + d * d)
                },
            );
        }
        HORN => {
            let d = r.range(0.2, 0.8);
            let f = city.horn_f * r.range(0.95, 1.05);
            let amps = [1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.25, 0.2, 0.15, 0.1];
            let two = r.chance(0.5);
            add_tone(
                buf,
                at(start),
                (d * FS) as usize,
                &amps,
                |_| f,
                |u| gain * ar_env(u, d, 0.01, 0.03),
            );
            if two {
                add_tone(
                    buf,
                    at(start),
                    (d * FS) as usize,
                    &amps,
                    |_| 1.26 * f,
                    |u| 0.8 * gain * ar_env(u, d, 0.01, 0.03),
                );
            }
        }
        RATTLE => {
            // Loose fittings: random impacts exciting a few metallic resonances.
            let d = r.range(0.3, 1.5);
            let n = ((d + 0.15) * FS) as usize;
            let mut imp = vec![0.0; n];
            let rate = r.range(15.0, 50.0);
            let count = r.poisson(rate * d);
            for _ in 0..count {
                let i = ((r.uni() * d * FS) as usize).min(n - 1);
                imp[i] += r.sign() * r.range(0.3, 1.0);
            }
            let mut y = vec![0.0; n];
            for (k, g) in [1.0, 0.7, 0.5].iter().enumerate() {
                let mut z = imp.clone();
                chain(&[Filt::Bp(loc.rattle[k], loc.rattle_q)], &mut z);
                add_into(&mut y, &z, *g);
            }
            let mut click = imp;
            chain(&[Filt::Hp(2000.0, 0.707)], &mut click);
            add_into(&mut y, &click, 0.3);
            let active = (d * FS) as usize;
            let s = rms(&y[..active.min(n)]).max(1e-12);
            add_at(buf, at(start - 0.3), &y, gain / s);
        }
        TALKER => {
            let d = r.range(0.5, 2.5);
            let s = talker(r, city, (d * FS) as usize);
            add_at(buf, at(start - 0.5), &s, gain);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid() {
        assert!(SynthConfig::default().check().is_ok());
        let bad = SynthConfig {
            train_clips_per_class_device: 100,
            ..SynthConfig::default()
        };
        assert_eq!(bad.check().unwrap_err().0, "train_clips_per_class_device");
    }

    #[test]
    fn ir_has_unit_energy_and_matches_apply() {
        let mut r = Rng::new(1, "t");
        let sys = IrSystem::sample(&mut r, 1.0);
        let h = sys.impulse_response();
        let e: f64 = h.iter().map(|v| v * v).sum();
        assert!((e - 1.0).abs() < 0.02, "energy {e}");
        assert!(peak(&h) <= 1.0);
    }

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
