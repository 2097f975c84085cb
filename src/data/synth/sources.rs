//! The sound sources of the synthetic audio: continuous layers (engine, electric motor whine,
//! speech babble, wind, music, ventilation) and Poisson events (footsteps, birds, rail squeal,
//! chimes and announcements, bells and door beeps, car pass-bys, horns, rattles, talkers). The
//! scene generator mixes them with scene-specific probabilities and rates; the multi-label
//! generator uses them as its classes. Their parameters come from a recording [`Location`] and
//! its [`City`].

use super::dsp::{
    add_at, add_into, add_tone, ar_env, chain, normalize, rms, Biquad, Filt, Lfo, Rng,
};
use super::{City, Location, FS, TOTAL};
use ascrepro_results::labels::CLASSES;
use std::f64::consts::PI;

pub(super) const N_LAYERS: usize = 6;
pub(super) const ENGINE: usize = 0;
pub(super) const WHINE: usize = 1;
pub(super) const BABBLE: usize = 2;
pub(super) const WIND: usize = 3;
pub(super) const MUSIC: usize = 4;
pub(super) const VENT: usize = 5;

pub(super) const N_EVENTS: usize = 9;
pub(super) const STEPS: usize = 0;
pub(super) const BIRDS: usize = 1;
pub(super) const SQUEAL: usize = 2;
pub(super) const ANNOUNCE: usize = 3;
pub(super) const BELL: usize = 4;
pub(super) const PASSBY: usize = 5;
pub(super) const HORN: usize = 6;
pub(super) const RATTLE: usize = 7;
pub(super) const TALKER: usize = 8;

// ---------------------------------------------------------------------------------------------
// Continuous layers (each returns TOTAL samples at unit RMS)

/// Combustion engine: harmonic series on a drifting fundamental, firing harmonics emphasised,
/// plus low-passed combustion noise.
pub(super) fn engine(r: &mut Rng, f0: f64, fire: usize) -> Vec<f64> {
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
pub(super) fn whine(r: &mut Rng, (f1, f2): (f64, f64)) -> Vec<f64> {
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
pub(super) fn babble(r: &mut Rng, city: &City, talkers: usize, distance_lp: f64) -> Vec<f64> {
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
pub(super) fn wind(r: &mut Rng, scene: usize) -> Vec<f64> {
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
pub(super) fn music(r: &mut Rng, loc: &Location) -> Vec<f64> {
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
pub(super) fn vent(r: &mut Rng, loc: &Location, city: &City) -> Vec<f64> {
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
// Events (added to the source buffer with RMS about `gain` while active, from about `start`
// seconds into the buffer)

pub(super) fn add_event(
    kind: usize,
    start: f64,
    buf: &mut [f64],
    r: &mut Rng,
    loc: &Location,
    city: &City,
    gain: f64,
) {
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
