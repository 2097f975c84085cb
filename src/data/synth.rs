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
//!
//! Beside this file, `synth/` holds the building blocks (`dsp`: random streams, filters,
//! reverberation; `sources`: the layers and events) and [`multilabel`], the synthetic
//! multi-label set made of the same sources.

mod dsp;
pub mod multilabel;
mod sources;

pub use multilabel::{generate_multilabel, MultiLabelSynthConfig};

use crate::audio::wav::write_wav_24;
use crate::error::{Error, IoContext, Result};
use ascrepro_results::labels::{CLASSES, KNOWN_DEVICES};
use dsp::{
    add_into, add_tone, chain, db, normalize, peak, rms, tilt_filters, Compressor, Fdn, Filt, Lfo,
    Rng,
};
use indicatif::ProgressBar;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sources::{
    add_event, babble, engine, music, vent, whine, wind, BABBLE, ENGINE, MUSIC, N_EVENTS, N_LAYERS,
    VENT, WHINE, WIND,
};
use std::f64::consts::PI;
use std::fmt::Write as _;
use std::path::Path;

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
                + KNOWN_DEVICES.len() * self.test_clips_per_class_device)
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
    let staging = Staging::new(out)?;
    let root = staging.root();
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
    crate::fsio::write(&root.join("synth.yaml"), text.as_bytes(), &[])?;
    staging.publish()
}

/// A dataset directory being written (see [`crate::fsio::StagedDir`]): `out` must be absent or
/// an empty directory, as a dataset is never written over another directory's files.
struct Staging(crate::fsio::StagedDir);

impl Staging {
    fn new(out: &Path) -> Result<Staging> {
        crate::fsio::StagedDir::new(out, refuse_non_empty).map(Staging)
    }

    /// Where the files are written until [`Staging::publish`].
    fn root(&self) -> &Path {
        self.0.path()
    }

    fn publish(self) -> Result<()> {
        self.0.publish()
    }
}

fn refuse_non_empty(out: &Path) -> Result<()> {
    Err(Error::file(
        out,
        "already exists and is not empty; the synthetic dataset is written to a new directory",
    ))
}

// ---------------------------------------------------------------------------------------------
// Scene profiles

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
        City::draw(&mut r, name, test_only)
    }

    /// A city's traits from the stream `r` (the multi-label generator draws one per clip).
    fn draw(r: &mut Rng, name: String, test_only: bool) -> City {
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
        Location::draw(&mut r, prof, city, ci, scene, number)
    }

    /// A location's acoustics and sources from the stream `r` (the multi-label generator
    /// draws one per clip).
    fn draw(
        r: &mut Rng,
        prof: &Profile,
        city: &City,
        ci: usize,
        scene: usize,
        number: u32,
    ) -> Location {
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
                    (0..KNOWN_DEVICES.len()).collect()
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
    format!("audio/{}-{}.wav", stem(world, rec), KNOWN_DEVICES[dev])
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
        let _ = writeln!(
            meta,
            "{}\t{scene}\t{}\t{}",
            r.file, r.ident, KNOWN_DEVICES[r.dev]
        );
        let split = if r.test { &mut test } else { &mut train };
        let _ = writeln!(split, "{}\t{scene}", r.file);
    }
    let write = |rel: &str, text: &str| crate::fsio::write(&root.join(rel), text.as_bytes(), &[]);
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

/// The location's diffuse background: coloured noise with slow amplitude modulation, TOTAL
/// samples at unit RMS.
fn background(r: &mut Rng, loc: &Location) -> Vec<f64> {
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
    bg
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

    let mut bg = background(&mut r, loc);
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
            let start = r.range(0.0, TOTAL as f64 / FS);
            add_event(e, start, &mut src, &mut r, loc, city, gain);
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
            loc.city, loc.number, rec.segment, rec.sub, KNOWN_DEVICES[dev]
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
}
