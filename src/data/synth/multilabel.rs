//! The synthetic multi-label set: the `demo` profile's stand-in for AudioSet, so the AudioSet
//! pre-training stage (multi-label, binary cross-entropy, mAP) runs end to end on a CPU.
//!
//! It is written in the layout of a user's AudioSet copy (see [`crate::data::audioset`]), so one
//! loader reads both:
//! - `class_labels_indices.csv`: the 15 classes, with synthetic MIDs `/synth/<source>`;
//! - `balanced_train_segments.csv` and `eval_segments.csv`: AudioSet's segment lists, each clip
//!   `<YTID>, 0.000, 1.000, "<mid>,<mid>"`;
//! - `audio/<YTID>.wav`: 1 s, 44.1 kHz, 24-bit mono;
//! - `synth_multilabel.yaml`: the configuration it was made from.
//!
//! The classes are the scene generator's sound sources: its 9 event kinds and 6 continuous
//! layers, rendered by the same code. A clip is a *place* (a city and a recording location of a
//! random scene: background colour, reverberation and the sources' parameters) with its quiet
//! background, plus 1..=`max_labels` distinct sources, each `snr_db_min..snr_db_max` dB above
//! the background (events while they sound, layers throughout). An event is redrawn until at
//! least [`MIN_EVENT_SECONDS`] of it at full level falls inside the clip (at most 16 draws,
//! then the fullest), so every label is audible in the audio. Each source draws from its own
//! stream keyed by the clip and the source, so a clip rendered without one of its sources
//! differs from it by that source alone (and by the peak limit's gain, when it acts).
//! As in the scene generator, streams are keyed by seed and name and the arithmetic is f64
//! with `libm`: the same configuration gives byte-identical files, and a clip depends on the
//! clip counts only through its YTID, so a larger set extends a smaller one.

use super::dsp::{add_into, db, peak, rms, Fdn, Rng};
use super::sources::{
    add_event, babble, engine, music, vent, whine, wind, BABBLE, ENGINE, MUSIC, N_EVENTS, N_LAYERS,
    VENT, WHINE, WIND,
};
use super::{background, City, Location, Staging, FS, PRE, PROFILES, SAMPLE_RATE, TOTAL};
use crate::audio::wav::write_wav_24;
use crate::error::{Error, IoContext, Result};
use indicatif::ProgressBar;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::Path;

/// Bumped whenever the generator's output changes for the same configuration.
pub const GENERATOR_VERSION: u32 = 1;

/// The classes, in index order: (source name, display name). The scene generator's events
/// first, in its event order, then its layers, in its layer order. Two display names hold a
/// comma, as many of AudioSet's do, so the quoting of the class list is exercised.
pub const SOURCES: [(&str, &str); N_EVENTS + N_LAYERS] = [
    ("steps", "Footsteps"),
    ("birds", "Bird song"),
    ("squeal", "Rail squeal"),
    ("announce", "Chime, public address"),
    ("bell", "Bell, door beeps"),
    ("passby", "Vehicle pass-by"),
    ("horn", "Vehicle horn"),
    ("rattle", "Rattle"),
    ("talker", "Speech"),
    ("engine", "Engine"),
    ("whine", "Electric motor whine"),
    ("babble", "Crowd babble"),
    ("wind", "Wind"),
    ("music", "Music"),
    ("vent", "Ventilation"),
];

/// An event counts as present once the clip holds this many seconds' worth of it at its full
/// level (its mean square over the clip, at unit level, is at least this over the clip length).
pub const MIN_EVENT_SECONDS: f64 = 0.05;
/// Draws of an event's timing before the best one is taken (almost all succeed at the first).
const EVENT_ATTEMPTS: usize = 16;

/// Configuration of the synthetic multi-label set. Every field has a default (the demo size);
/// unknown fields are rejected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MultiLabelSynthConfig {
    /// Master seed: every random draw derives from it and the name of what is drawn.
    pub seed: u64,
    /// Clips in `balanced_train_segments.csv`.
    pub clips: usize,
    /// Clips in `eval_segments.csv` (for the mAP that selects the pre-trained checkpoint).
    pub eval_clips: usize,
    /// Most labels (distinct sources) in one clip; each clip has 1..=max_labels, uniformly.
    pub max_labels: usize,
    /// Background level (RMS, dBFS): quiet, so the sources stand out.
    pub background_db: f64,
    /// Each source's level above the background (dB), drawn uniformly in [min, max].
    pub snr_db_min: f64,
    pub snr_db_max: f64,
}

impl Default for MultiLabelSynthConfig {
    fn default() -> Self {
        MultiLabelSynthConfig {
            seed: 2017,
            clips: 300,
            eval_clips: 100,
            max_labels: 3,
            background_db: -50.0,
            snr_db_min: 6.0,
            snr_db_max: 20.0,
        }
    }
}

impl MultiLabelSynthConfig {
    /// Checks value ranges. On failure returns the field name and what is wrong.
    pub fn check(&self) -> std::result::Result<(), (&'static str, String)> {
        let count = |field: &'static str, v: usize, lo: usize, hi: usize| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err((field, format!("{v} is out of range {lo}..={hi}")))
            }
        };
        let level = |field: &'static str, v: f64, lo: f64, hi: f64| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err((field, format!("{v} is out of range {lo}..={hi} dB")))
            }
        };
        count("clips", self.clips, 1, 1_000_000)?;
        count("eval_clips", self.eval_clips, 1, 1_000_000)?;
        count("max_labels", self.max_labels, 1, SOURCES.len())?;
        level("background_db", self.background_db, -90.0, -20.0)?;
        level("snr_db_min", self.snr_db_min, 0.0, 40.0)?;
        level("snr_db_max", self.snr_db_max, self.snr_db_min, 40.0)?;
        // Headroom: the loudest source stays well below full scale before the peak limit.
        if self.background_db + self.snr_db_max > -10.0 {
            return Err((
                "snr_db_max",
                format!(
                    "background_db + snr_db_max = {} dBFS leaves no headroom; keep it at most -10",
                    self.background_db + self.snr_db_max
                ),
            ));
        }
        Ok(())
    }
}

/// The two segment lists, as AudioSet names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Eval,
}

impl Split {
    /// The segments CSV of the split.
    pub fn segments_file(self) -> &'static str {
        match self {
            Split::Train => "balanced_train_segments.csv",
            Split::Eval => "eval_segments.csv",
        }
    }

    /// YTIDs of the split's clips, in file order.
    pub fn clip_ids(self, cfg: &MultiLabelSynthConfig) -> Vec<String> {
        let (prefix, n) = match self {
            Split::Train => ("train", cfg.clips),
            Split::Eval => ("eval", cfg.eval_clips),
        };
        (0..n).map(|i| format!("{prefix}_{i:05}")).collect()
    }
}

/// The class list file, as AudioSet names it.
pub const CLASSES_CSV: &str = "class_labels_indices.csv";

/// The MID of class `source`: `/synth/<name>`.
pub fn source_mid(source: usize) -> String {
    format!("/synth/{}", SOURCES[source].0)
}

/// The labels (indices into [`SOURCES`], ascending) of the clip with YTID `id`.
pub fn clip_sources(cfg: &MultiLabelSynthConfig, id: &str) -> Vec<usize> {
    let mut r = Rng::new(cfg.seed, &format!("multilabel/{id}/labels"));
    let k = 1 + r.index(cfg.max_labels.clamp(1, SOURCES.len()));
    // The first k of a partial Fisher-Yates shuffle: k distinct sources.
    let mut pool: Vec<usize> = (0..SOURCES.len()).collect();
    for i in 0..k {
        let j = i + r.index(pool.len() - i);
        pool.swap(i, j);
    }
    let mut chosen = pool[..k].to_vec();
    chosen.sort_unstable();
    chosen
}

/// Renders the clip with YTID `id` with the given sources (indices into [`SOURCES`]; order and
/// repeats do not matter): 1 s of f32 samples, exactly what [`generate_multilabel`] writes for
/// `sources = clip_sources(cfg, id)` before 24-bit quantisation. Other source sets (a clip
/// without one of its labels, or with none) give the same place, background and the other
/// sources unchanged. Panics if a source index is not below `SOURCES.len()`.
pub fn render_clip(cfg: &MultiLabelSynthConfig, id: &str, sources: &[usize]) -> Vec<f32> {
    let mut place = Rng::new(cfg.seed, &format!("multilabel/{id}/place"));
    let city = City::draw(&mut place, "synth".into(), false);
    let scene = place.index(PROFILES.len());
    let loc = Location::draw(&mut place, &PROFILES[scene], &city, 0, scene, 0);
    let bg_db = cfg.background_db + 1.5 * place.normal();
    let mut x = background(&mut place, &loc);
    x.iter_mut().for_each(|v| *v *= db(bg_db));

    let mut sources = sources.to_vec();
    sources.sort_unstable();
    sources.dedup();
    for s in sources {
        let (name, _) = SOURCES[s];
        let mut r = Rng::new(cfg.seed, &format!("multilabel/{id}/source/{name}"));
        let gain = db(bg_db + r.range(cfg.snr_db_min, cfg.snr_db_max));
        let mut y = render_source(s, &mut r, &loc, &city);
        // Everything but wind (which acts on the microphone) sounds in the room.
        if s != N_EVENTS + WIND {
            reverberate(&mut y, &loc);
        }
        add_into(&mut x, &y, gain);
    }
    // As the scene generator's recordist: the gain is set so the clip never clips.
    let pk = peak(&x[PRE..]);
    if pk > 0.9 {
        x.iter_mut().for_each(|v| *v *= 0.9 / pk);
    }
    x[PRE..].iter().map(|&v| v as f32).collect()
}

/// One source at unit level (layers: unit RMS; events: unit RMS while they sound), TOTAL
/// samples.
fn render_source(source: usize, r: &mut Rng, loc: &Location, city: &City) -> Vec<f64> {
    if source < N_EVENTS {
        return render_event(source, r, loc, city);
    }
    match source - N_EVENTS {
        ENGINE => {
            let f0 = loc.engine_f0 * r.lognormal(0.08);
            engine(r, f0, loc.engine_fire)
        }
        WHINE => whine(r, loc.whine),
        BABBLE => {
            let talkers = 2 + r.index(6);
            babble(r, city, talkers, loc.distance_lp)
        }
        WIND => wind(r, loc.scene),
        MUSIC => music(r, loc),
        VENT => vent(r, loc, city),
        layer => unreachable!("layer {layer} of {N_LAYERS}"),
    }
}

/// One event starting inside the clip, redrawn until at least [`MIN_EVENT_SECONDS`] of it
/// sounds there (some kinds start before their nominal time, or are only a few short notes);
/// after [`EVENT_ATTEMPTS`] draws, the fullest one.
fn render_event(kind: usize, r: &mut Rng, loc: &Location, city: &City) -> Vec<f64> {
    let need = MIN_EVENT_SECONDS * FS;
    let mut best: Option<(f64, Vec<f64>)> = None;
    for _ in 0..EVENT_ATTEMPTS {
        let mut buf = vec![0.0; TOTAL];
        let start = r.range(PRE as f64 / FS, TOTAL as f64 / FS);
        add_event(kind, start, &mut buf, r, loc, city, 1.0);
        let energy: f64 = buf[PRE..].iter().map(|v| v * v).sum();
        if energy >= need {
            return buf;
        }
        if best.as_ref().is_none_or(|(e, _)| energy > *e) {
            best = Some((energy, buf));
        }
    }
    best.map(|(_, buf)| buf).unwrap_or_else(|| vec![0.0; TOTAL])
}

/// Adds the location's reverberation, at its wet level relative to the dry sound.
fn reverberate(y: &mut [f64], loc: &Location) {
    let dry_rms = rms(y);
    if dry_rms == 0.0 {
        return;
    }
    let wet = Fdn::new(loc.delays, loc.rt60, loc.damp).run(y);
    let wet_rms = rms(&wet);
    if wet_rms > 0.0 {
        add_into(y, &wet, dry_rms / wet_rms * db(loc.wet_db));
    }
}

/// Generates the set into `out` (which must not exist, or be an empty directory). The files are
/// built in a sibling temporary directory renamed into place at the end, so `out` is either
/// complete or absent.
pub fn generate_multilabel(
    cfg: &MultiLabelSynthConfig,
    out: &Path,
    progress: Option<&ProgressBar>,
) -> Result<()> {
    cfg.check().map_err(|(field, msg)| {
        Error::msg(format!(
            "synthetic multi-label set configuration: field `{field}`: {msg}"
        ))
    })?;
    let staging = Staging::new(out)?;
    let root = staging.root();
    std::fs::create_dir(root.join("audio")).at(root.join("audio"))?;

    let splits = [Split::Train, Split::Eval].map(|split| {
        let clips: Vec<(String, Vec<usize>)> = split
            .clip_ids(cfg)
            .into_iter()
            .map(|id| {
                let sources = clip_sources(cfg, &id);
                (id, sources)
            })
            .collect();
        (split, clips)
    });
    if let Some(pb) = progress {
        pb.set_length((cfg.clips + cfg.eval_clips) as u64);
    }
    splits
        .iter()
        .flat_map(|(_, clips)| clips)
        .collect::<Vec<_>>()
        .par_iter()
        .try_for_each(|(id, sources)| -> Result<()> {
            let y = render_clip(cfg, id, sources);
            write_wav_24(&root.join(format!("audio/{id}.wav")), &y, SAMPLE_RATE)?;
            if let Some(pb) = progress {
                pb.inc(1);
            }
            Ok(())
        })?;

    let write = |name: &str, text: &str| crate::fsio::write(&root.join(name), text.as_bytes(), &[]);
    let mut classes = String::from("index,mid,display_name\n");
    for (i, (_, display)) in SOURCES.iter().enumerate() {
        let _ = writeln!(classes, "{i},{},\"{display}\"", source_mid(i));
    }
    write(CLASSES_CSV, &classes)?;
    for (split, clips) in &splits {
        write(split.segments_file(), &segments_csv(cfg, clips))?;
    }
    let yaml = serde_norway::to_string(cfg).map_err(|e| {
        Error::msg(format!(
            "cannot serialise the multi-label synth configuration: {e}"
        ))
    })?;
    write(
        "synth_multilabel.yaml",
        &format!(
            "# Synthetic multi-label set written by ascrepro (generator version {GENERATOR_VERSION}) from:\n{yaml}"
        ),
    )?;
    staging.publish()
}

/// A segments CSV in AudioSet's format: three comment lines (the last names the columns), then
/// `YTID, start_seconds, end_seconds, "mid,mid,..."`.
fn segments_csv(cfg: &MultiLabelSynthConfig, clips: &[(String, Vec<usize>)]) -> String {
    let labels: usize = clips.iter().map(|(_, s)| s.len()).sum();
    let mut used: Vec<usize> = clips.iter().flat_map(|(_, s)| s.iter().copied()).collect();
    used.sort_unstable();
    used.dedup();
    let mut text = format!(
        "# Segments csv created by ascrepro synth-multilabel (generator version {GENERATOR_VERSION}, seed {})\n\
         # num_ytids={n}, num_segs={n}, num_unique_labels={}, num_positive_labels={labels}\n\
         # YTID, start_seconds, end_seconds, positive_labels\n",
        cfg.seed,
        used.len(),
        n = clips.len(),
    );
    for (id, sources) in clips {
        let mids: Vec<String> = sources.iter().map(|&s| source_mid(s)).collect();
        let seconds = (TOTAL - PRE) as f64 / FS;
        let _ = writeln!(text, "{id}, 0.000, {seconds:.3}, \"{}\"", mids.join(","));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::super::sources::{
        ANNOUNCE, BELL, BIRDS, HORN, PASSBY, RATTLE, SQUEAL, STEPS, TALKER,
    };
    use super::*;

    #[test]
    fn source_table_follows_the_renderers_indices() {
        let events = [
            (STEPS, "steps"),
            (BIRDS, "birds"),
            (SQUEAL, "squeal"),
            (ANNOUNCE, "announce"),
            (BELL, "bell"),
            (PASSBY, "passby"),
            (HORN, "horn"),
            (RATTLE, "rattle"),
            (TALKER, "talker"),
        ];
        for (i, name) in events {
            assert_eq!(SOURCES[i].0, name);
        }
        let layers = [
            (ENGINE, "engine"),
            (WHINE, "whine"),
            (BABBLE, "babble"),
            (WIND, "wind"),
            (MUSIC, "music"),
            (VENT, "vent"),
        ];
        for (i, name) in layers {
            assert_eq!(SOURCES[N_EVENTS + i].0, name);
        }
    }

    #[test]
    fn labels_are_distinct_sorted_and_bounded() {
        let cfg = MultiLabelSynthConfig::default();
        for id in Split::Train.clip_ids(&cfg).iter().take(50) {
            let s = clip_sources(&cfg, id);
            assert!((1..=cfg.max_labels).contains(&s.len()), "{id}: {s:?}");
            assert!(s.windows(2).all(|w| w[0] < w[1]), "{id}: {s:?}");
        }
    }

    #[test]
    fn config_ranges() {
        assert!(MultiLabelSynthConfig::default().check().is_ok());
        let bad = MultiLabelSynthConfig {
            max_labels: 16,
            ..Default::default()
        };
        assert_eq!(bad.check().unwrap_err().0, "max_labels");
        let bad = MultiLabelSynthConfig {
            snr_db_min: 10.0,
            snr_db_max: 5.0,
            ..Default::default()
        };
        assert_eq!(bad.check().unwrap_err().0, "snr_db_max");
    }
}
