//! The synthetic dataset: deterministic, TAU layout and counts, readable by the TAU loader,
//! correct WAV format, atomic output.

use ascrepro::data::manifest::Manifest;
use ascrepro::data::synth::{generate, SynthConfig};
use ascrepro::data::tau;
use ascrepro_results::labels::{CLASSES, KNOWN_DEVICES};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;

fn tiny() -> SynthConfig {
    SynthConfig {
        seed: 7,
        cities: 3,
        test_only_cities: 1,
        train_locations_per_city: 1,
        test_locations_per_city: 1,
        train_clips_per_class_a: 4,
        train_clips_per_class_device: 2,
        test_clips_per_class_device: 3,
        clips_per_segment: 2,
        device_sim_irs: 3,
        subsets: vec![50, 100],
        ..SynthConfig::default()
    }
}

fn split_files(root: &Path, rel: &str) -> Vec<String> {
    std::fs::read_to_string(root.join(rel))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect()
}

#[test]
fn tiny_dataset_is_deterministic_complete_and_loadable() {
    let cfg = tiny();
    let work = tempfile::tempdir().unwrap();
    let one = work.path().join("one");
    let two = work.path().join("nested/two");
    generate(&cfg, &one, None).unwrap();
    // The second run on one thread: no dependence on thread count or order.
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(|| generate(&cfg, &two, None))
        .unwrap();

    // Byte-identical: the manifests (every path, size and SHA-256) agree.
    let m1 = Manifest::create(&one, "synth", "tau2022-mobile").unwrap();
    let m2 = Manifest::create(&two, "synth", "tau2022-mobile").unwrap();
    assert_eq!(m1.files, m2.files);
    // Nothing but the dataset was left in the parent (no temporary directories).
    let names: Vec<_> = std::fs::read_dir(work.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");

    let wavs = m1
        .files
        .iter()
        .filter(|f| f.path.starts_with("audio/"))
        .count();
    assert_eq!(wavs, cfg.clip_count());
    let irs = m1
        .files
        .iter()
        .filter(|f| f.path.starts_with("irs/"))
        .count();
    assert_eq!(irs, 3);

    let ds = tau::load(
        &one,
        "evaluation_setup/fold1_train.csv",
        "evaluation_setup/fold1_evaluate.csv",
    )
    .unwrap();
    let meta = tau::load_meta(&one).unwrap().clips;
    assert_eq!(meta.len(), wavs);
    assert_eq!(ds.train.len() + ds.test.len(), wavs);

    // Counts per split, class and device.
    let count = |clips: &[ascrepro::data::Clip]| {
        let mut m = BTreeMap::new();
        for c in clips {
            *m.entry((c.scene, c.device)).or_insert(0usize) += 1;
        }
        m
    };
    let train = count(&ds.train);
    let test = count(&ds.test);
    for (s, scene) in CLASSES.iter().enumerate() {
        for (d, dev) in KNOWN_DEVICES.iter().enumerate() {
            let want_train = match *dev {
                "a" => 4,
                "b" | "c" | "s1" | "s2" | "s3" => 2,
                _ => 0,
            };
            assert_eq!(
                train.get(&(s, d)).copied().unwrap_or(0),
                want_train,
                "train {scene} {dev}"
            );
            assert_eq!(
                test.get(&(s, d)).copied().unwrap_or(0),
                3,
                "test {scene} {dev}"
            );
        }
    }
    // s4-s6 only in test; train and test locations disjoint; the test-only city only in test.
    assert!(ds.train.iter().all(|c| c.device <= 5));
    let train_ids: HashSet<_> = ds.train.iter().map(|c| c.identifier.clone()).collect();
    assert!(ds.test.iter().all(|c| !train_ids.contains(&c.identifier)));
    let train_cities: HashSet<_> = ds.train.iter().map(|c| c.city.clone()).collect();
    let test_cities: HashSet<_> = ds.test.iter().map(|c| c.city.clone()).collect();
    assert_eq!(train_cities.len(), 2);
    assert_eq!(test_cities.len(), 3);

    // TAU file naming: audio/<scene>-<city>-<location>-<segment>-<sub>-<device>.wav
    for c in &meta {
        let stem = c
            .file
            .strip_prefix("audio/")
            .unwrap()
            .strip_suffix(".wav")
            .unwrap();
        let rest = stem.strip_prefix(CLASSES[c.scene]).unwrap();
        let parts: Vec<&str> = rest.trim_start_matches('-').split('-').collect();
        assert_eq!(parts.len(), 5, "{}", c.file);
        assert_eq!(format!("{}-{}", parts[0], parts[1]), c.identifier);
        assert_eq!(parts[4], KNOWN_DEVICES[c.device]);
    }

    // Parallel captures: every b clip has its device-a twin.
    let all: HashSet<&str> = meta.iter().map(|c| c.file.as_str()).collect();
    for c in meta.iter().filter(|c| c.device != 0) {
        let twin = c
            .file
            .replace(&format!("-{}.wav", KNOWN_DEVICES[c.device]), "-a.wav");
        assert!(
            all.contains(twin.as_str()),
            "{} has no device-a twin",
            c.file
        );
    }

    // WAV format: 44.1 kHz, 24-bit, mono, 1 s.
    for c in meta.iter().step_by(37) {
        let r = hound::WavReader::open(one.join(&c.file)).unwrap();
        let spec = r.spec();
        assert_eq!(
            (spec.sample_rate, spec.bits_per_sample, spec.channels),
            (44_100, 24, 1)
        );
        assert_eq!(r.duration(), 44_100);
    }
    let ir = hound::WavReader::open(one.join("irs/ir_000.wav")).unwrap();
    assert_eq!(ir.spec().sample_rate, 44_100);

    // Nested subsets: split50 within split100, which is the whole training split.
    let s50: HashSet<_> = split_files(&one, "split50.csv").into_iter().collect();
    let s100: HashSet<_> = split_files(&one, "split100.csv").into_iter().collect();
    let fold: HashSet<_> = split_files(&one, "evaluation_setup/fold1_train.csv")
        .into_iter()
        .collect();
    assert!(!s50.is_empty() && s50.is_subset(&s100));
    assert!(s50.len() < s100.len());
    assert_eq!(s100, fold);
    tau::load(&one, "split50.csv", "evaluation_setup/fold1_evaluate.csv").unwrap();
}

#[test]
fn levels_are_realistic() {
    let cfg = SynthConfig {
        train_clips_per_class_a: 2,
        train_clips_per_class_device: 1,
        test_clips_per_class_device: 1,
        device_sim_irs: 0,
        subsets: vec![],
        ..tiny()
    };
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("d");
    generate(&cfg, &root, None).unwrap();
    let meta = tau::load_meta(&root).unwrap().clips;
    let mut rms_a = Vec::new();
    for c in &meta {
        let audio = ascrepro::audio::wav::read_wav(&root.join(&c.file)).unwrap();
        let x = &audio.samples;
        let peak = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let rms = (x.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / x.len() as f64).sqrt();
        let dbfs = 20.0 * rms.log10();
        assert!((-60.0..-3.0).contains(&dbfs), "{}: {dbfs:.1} dBFS", c.file);
        if KNOWN_DEVICES[c.device] != "c" {
            assert!(peak < 0.99, "{} clips (peak {peak})", c.file);
        }
        if c.device == 0 {
            rms_a.push(dbfs);
        }
    }
    let mean = rms_a.iter().sum::<f64>() / rms_a.len() as f64;
    assert!(
        (-35.0..-18.0).contains(&mean),
        "device a mean level {mean:.1} dBFS"
    );
}

#[test]
fn refuses_non_empty_output_and_bad_config() {
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("keep.txt"), "x").unwrap();
    let e = generate(&tiny(), work.path(), None)
        .expect_err("wrote into a non-empty directory")
        .to_string();
    assert!(e.contains("not empty"), "{e}");
    assert!(work.path().join("keep.txt").exists());

    let bad = SynthConfig {
        train_clips_per_class_device: 9,
        ..tiny()
    };
    let e = generate(&bad, &work.path().join("x"), None)
        .expect_err("accepted more parallel clips than device-a clips")
        .to_string();
    assert!(e.contains("train_clips_per_class_device"), "{e}");
    assert!(!work.path().join("x").exists());
}

#[test]
fn config_yaml_defaults_and_unknown_fields() {
    let cfg: SynthConfig = serde_norway::from_str("seed: 3\ncities: 4\n").unwrap();
    assert_eq!(cfg.seed, 3);
    assert_eq!(cfg.cities, 4);
    assert_eq!(
        cfg.train_clips_per_class_a,
        SynthConfig::default().train_clips_per_class_a
    );
    let e = serde_norway::from_str::<SynthConfig>("seed: 3\nsede: 4\n").unwrap_err();
    assert!(e.to_string().contains("sede"), "{e}");
}

/// Not a regular test: a calibration aid for the generator's difficulty and device shift.
/// Generates a demo-sized dataset (timed) unless present, prints level statistics per device and
/// the per-device test accuracy of a linear classifier on log-mel statistics. Run with
/// `cargo test --release --test data_synth -- --ignored --nocapture calibrate`.
/// Environment: SYNTH_DIR (dataset directory), SYNTH_SEED, SYNTH_SEP, SYNTH_SEV, SYNTH_IRS
/// (configuration), SYNTH_ONLY (stop after generating), CALIB_CNN (also train a small CNN),
/// CALIB_EPOCHS, CALIB_A_ONLY (train the CNN on device a only), CALIB_DIR=N (add N copies of
/// each device-a clip convolved with IRs from irs/).
#[test]
#[ignore]
fn calibrate() {
    use rayon::prelude::*;
    let dir = std::env::var("SYNTH_DIR").unwrap_or_else(|_| "/tmp/ascrepro-synth-demo".into());
    let dir = Path::new(&dir);
    let mut cfg = SynthConfig::default();
    if let Ok(v) = std::env::var("SYNTH_SEP") {
        cfg.class_separation = v.parse().unwrap();
    }
    if let Ok(v) = std::env::var("SYNTH_IRS") {
        cfg.device_sim_irs = v.parse().unwrap();
    }
    if let Ok(v) = std::env::var("SYNTH_SEED") {
        cfg.seed = v.parse().unwrap();
    }
    if let Ok(v) = std::env::var("SYNTH_SEV") {
        cfg.device_severity = v.parse().unwrap();
    }
    if !dir.exists() {
        let t = std::time::Instant::now();
        generate(&cfg, dir, None).unwrap();
        println!(
            "generated {} clips in {:.1} s",
            cfg.clip_count(),
            t.elapsed().as_secs_f64()
        );
    }
    if std::env::var("SYNTH_ONLY").is_ok() {
        return;
    }
    let ds = tau::load(
        dir,
        "evaluation_setup/fold1_train.csv",
        "evaluation_setup/fold1_evaluate.csv",
    )
    .unwrap();

    let fb = mel_bank(2048, 64, 44_100.0, 50.0, 16_000.0);
    let feats = |clips: &[ascrepro::data::Clip]| -> Vec<(Vec<Vec<f64>>, f64, f32)> {
        clips
            .par_iter()
            .map(|c| {
                let a = ascrepro::audio::wav::read_wav(&ds.path_of(c)).unwrap();
                let x = &a.samples;
                let rms =
                    (x.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / x.len() as f64).sqrt();
                let pk = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                let frames = logmel_frames(x, &fb);
                (frames, 20.0 * rms.log10(), pk)
            })
            .collect()
    };
    let tr = feats(&ds.train);
    let te = feats(&ds.test);

    println!("device  n   mean dBFS  min   max   clipped");
    for (d, dev) in KNOWN_DEVICES.iter().enumerate() {
        let lv: Vec<(f64, f32)> = ds
            .train
            .iter()
            .zip(&tr)
            .chain(ds.test.iter().zip(&te))
            .filter(|(c, _)| c.device == d)
            .map(|(_, f)| (f.1, f.2))
            .collect();
        let n = lv.len() as f64;
        let mean = lv.iter().map(|v| v.0).sum::<f64>() / n;
        let min = lv.iter().map(|v| v.0).fold(f64::MAX, f64::min);
        let max = lv.iter().map(|v| v.0).fold(f64::MIN, f64::max);
        let clipped = lv.iter().filter(|v| v.1 >= 0.979).count();
        println!("{dev:6} {n:4} {mean:8.1} {min:6.1} {max:6.1} {clipped:5}");
    }

    let xtr: Vec<Vec<f64>> = tr.iter().map(|f| logmel_stats(&f.0)).collect();
    let ytr: Vec<usize> = ds.train.iter().map(|c| c.scene).collect();
    let xte: Vec<Vec<f64>> = te.iter().map(|f| logmel_stats(&f.0)).collect();
    let model = Logistic::fit(&xtr, &ytr, 10, 600, 0.5, 1e-3);
    let acc = |x: &[Vec<f64>], y: &[usize]| {
        x.iter()
            .zip(y)
            .filter(|(v, &t)| model.predict(v) == t)
            .count() as f64
            / y.len() as f64
    };
    println!("linear model: train accuracy {:.3}", acc(&xtr, &ytr));
    let mut line = String::from("test accuracy per device:");
    for (d, dev) in KNOWN_DEVICES.iter().enumerate() {
        let (x, y): (Vec<Vec<f64>>, Vec<usize>) = ds
            .test
            .iter()
            .zip(&xte)
            .filter(|(c, _)| c.device == d)
            .map(|(c, f)| (f.clone(), c.scene))
            .unzip();
        line += &format!(" {dev} {:.2}", acc(&x, &y));
    }
    println!("{line}");
    let mut conf = vec![[0usize; 10]; 10];
    for (c, f) in ds.test.iter().zip(&xte).filter(|(c, _)| c.device == 0) {
        conf[c.scene][model.predict(f)] += 1;
    }
    println!("device a confusion (rows true):");
    for (i, row) in conf.iter().enumerate() {
        println!("{:>18} {:?}", CLASSES[i], row);
    }
    if std::env::var("CALIB_CNN").is_ok() {
        let spec = |v: &[(Vec<Vec<f64>>, f64, f32)]| -> Vec<Vec<Vec<f64>>> {
            v.iter().map(|f| f.0.clone()).collect()
        };
        let yte: Vec<usize> = ds.test.iter().map(|c| c.scene).collect();
        let dte: Vec<usize> = ds.test.iter().map(|c| c.device).collect();
        let (mut xs, mut ys) = (spec(&tr), ytr.clone());
        if std::env::var("CALIB_A_ONLY").is_ok() {
            let keep: Vec<bool> = ds.train.iter().map(|c| c.device == 0).collect();
            xs = xs
                .into_iter()
                .zip(&keep)
                .filter(|(_, k)| **k)
                .map(|(x, _)| x)
                .collect();
            ys = ys
                .into_iter()
                .zip(&keep)
                .filter(|(_, k)| **k)
                .map(|(y, _)| y)
                .collect();
        }
        if std::env::var("CALIB_DIR").is_ok() {
            // Static device-impulse-response augmentation: two copies of every device-a
            // training clip, each convolved with a random IR from irs/.
            let irs: Vec<Vec<f32>> = (0..)
                .map(|i| dir.join(format!("irs/ir_{i:03}.wav")))
                .take_while(|p| p.exists())
                .map(|p| ascrepro::audio::wav::read_wav(&p).unwrap().samples)
                .collect();
            let copies: usize = std::env::var("CALIB_DIR").unwrap().parse().unwrap_or(2);
            let extra: Vec<(Vec<Vec<f64>>, usize)> = ds
                .train
                .par_iter()
                .enumerate()
                .filter(|(_, c)| c.device == 0)
                .flat_map_iter(|(i, c)| {
                    let x = ascrepro::audio::wav::read_wav(&ds.path_of(c))
                        .unwrap()
                        .samples;
                    let fb = &fb;
                    let irs = &irs;
                    (0..copies).map(move |k| {
                        let h = &irs[(i * 7 + k * 13) % irs.len()];
                        (
                            logmel_frames(&ascrepro::audio::conv::fft_convolve(&x, h), fb),
                            c.scene,
                        )
                    })
                })
                .collect();
            println!(
                "DIR augmentation: {} extra clips from {} IRs",
                extra.len(),
                irs.len()
            );
            for (x, y) in extra {
                xs.push(x);
                ys.push(y);
            }
        }
        cnn(&xs, &ys, &spec(&te), &yte, &dte);
    }
}

/// A small CNN on the log-mel spectrogram (no augmentation), reporting test accuracy per device.
fn cnn(xtr: &[Vec<Vec<f64>>], ytr: &[usize], xte: &[Vec<Vec<f64>>], yte: &[usize], dte: &[usize]) {
    use tch::nn::{self, ModuleT, OptimizerConfig};
    use tch::{Kind, Tensor};
    tch::manual_seed(0);
    tch::set_num_threads(2);
    let (t, b) = (xtr[0].len(), xtr[0][0].len());
    // One global mean and deviation from the training set (as the CP-JKU front ends do:
    // no per-band normalisation, so device colouring reaches the network unchanged).
    let cnt = (xtr.len() * t * b) as f64;
    let m: f64 = xtr.iter().flatten().flatten().sum::<f64>() / cnt;
    let v: f64 = xtr
        .iter()
        .flatten()
        .flatten()
        .map(|x| (x - m).powi(2))
        .sum::<f64>()
        / cnt;
    let (mu, sd) = (vec![m; b], vec![v; b]);
    let to_tensor = |xs: &[Vec<Vec<f64>>]| {
        let mut flat = Vec::with_capacity(xs.len() * t * b);
        for x in xs {
            for k in 0..b {
                for f in x {
                    flat.push(((f[k] - mu[k]) / sd[k].sqrt().max(1e-6)) as f32);
                }
            }
        }
        Tensor::from_slice(&flat).view([xs.len() as i64, 1, b as i64, t as i64])
    };
    let xt = to_tensor(xtr);
    let yt = Tensor::from_slice(&ytr.iter().map(|&v| v as i64).collect::<Vec<_>>());
    let xe = to_tensor(xte);
    let vs = nn::VarStore::new(tch::Device::Cpu);
    let root = vs.root();
    fn block(p: nn::Path, i: i64, o: i64) -> nn::SequentialT {
        let cfg = nn::ConvConfig {
            padding: 1,
            bias: false,
            ..Default::default()
        };
        nn::seq_t()
            .add(nn::conv2d(&p / "c", i, o, 3, cfg))
            .add(nn::batch_norm2d(&p / "bn", o, Default::default()))
            .add_fn(|x| x.relu())
    }
    let net = nn::seq_t()
        .add(block(&root / "b1", 1, 8))
        .add_fn(|x| x.max_pool2d_default(2))
        .add(block(&root / "b2", 8, 16))
        .add_fn(|x| x.max_pool2d_default(2))
        .add(block(&root / "b3", 16, 32))
        .add_fn(|x| x.max_pool2d_default(2))
        .add(block(&root / "b4", 32, 32))
        .add_fn(|x| x.adaptive_avg_pool2d([1, 1]).flatten(1, -1))
        .add_fn_t(|x, train| x.dropout(0.3, train))
        .add(nn::linear(&root / "fc", 32, 10, Default::default()));
    let epochs: i64 = std::env::var("CALIB_EPOCHS").map_or(20, |v| v.parse().unwrap());
    let mut opt = nn::Adam::default().build(&vs, 2e-3).unwrap();
    let n = xtr.len() as i64;
    let t0 = std::time::Instant::now();
    for epoch in 0..epochs {
        opt.set_lr(
            2e-3 * 0.5 * (1.0 + (std::f64::consts::PI * epoch as f64 / epochs as f64).cos()),
        );
        let perm = Tensor::randperm(n, (Kind::Int64, tch::Device::Cpu));
        let mut start = 0;
        while start < n {
            let len = (n - start).min(32);
            let idx = perm.narrow(0, start, len);
            let loss = net
                .forward_t(&xt.index_select(0, &idx), true)
                .cross_entropy_for_logits(&yt.index_select(0, &idx));
            opt.backward_step(&loss);
            start += len;
        }
    }
    let pred = tch::no_grad(|| net.forward_t(&xe, false).argmax(1, false));
    let pred: Vec<i64> = Vec::<i64>::try_from(&pred).unwrap();
    let train_pred = tch::no_grad(|| net.forward_t(&xt, false).argmax(1, false));
    let train_acc = Vec::<i64>::try_from(&train_pred)
        .unwrap()
        .iter()
        .zip(ytr)
        .filter(|(p, &y)| **p as usize == y)
        .count() as f64
        / ytr.len() as f64;
    let mut line = format!(
        "CNN ({epochs} epochs, {:.0} s): train {train_acc:.2}; test per device:",
        t0.elapsed().as_secs_f64()
    );
    let mut all = (0, 0);
    for (d, dev) in KNOWN_DEVICES.iter().enumerate() {
        let (mut ok, mut tot) = (0, 0);
        for i in 0..yte.len() {
            if dte[i] == d {
                tot += 1;
                ok += (pred[i] as usize == yte[i]) as usize;
            }
        }
        all.0 += ok;
        all.1 += tot;
        line += &format!(" {dev} {:.2}", ok as f64 / tot as f64);
    }
    println!("{line}; all {:.3}", all.0 as f64 / all.1 as f64);
}

fn mel_bank(n_fft: usize, n_mels: usize, sr: f64, fmin: f64, fmax: f64) -> Vec<Vec<(usize, f64)>> {
    let mel = |f: f64| 2595.0 * (1.0 + f / 700.0).log10();
    let hz = |m: f64| 700.0 * (10f64.powf(m / 2595.0) - 1.0);
    let pts: Vec<f64> = (0..n_mels + 2)
        .map(|i| hz(mel(fmin) + (mel(fmax) - mel(fmin)) * i as f64 / (n_mels + 1) as f64))
        .collect();
    (0..n_mels)
        .map(|m| {
            (0..=n_fft / 2)
                .filter_map(|k| {
                    let f = k as f64 * sr / n_fft as f64;
                    let w = if f < pts[m] || f > pts[m + 2] {
                        0.0
                    } else if f <= pts[m + 1] {
                        (f - pts[m]) / (pts[m + 1] - pts[m])
                    } else {
                        (pts[m + 2] - f) / (pts[m + 2] - pts[m + 1])
                    };
                    (w > 0.0).then_some((k, w))
                })
                .collect()
        })
        .collect()
}

/// Per-band mean, standard deviation and mean absolute frame difference of the log-mel
/// spectrogram.
fn logmel_frames(x: &[f32], fb: &[Vec<(usize, f64)>]) -> Vec<Vec<f64>> {
    let n = 2048;
    let hop = 1024;
    let mut planner = realfft::RealFftPlanner::<f64>::new();
    let fft = planner.plan_fft_forward(n);
    let win: Vec<f64> = (0..n)
        .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos())
        .collect();
    let mut frames: Vec<Vec<f64>> = Vec::new();
    let mut start = 0;
    while start + n <= x.len() {
        let mut buf: Vec<f64> = (0..n).map(|i| x[start + i] as f64 * win[i]).collect();
        let mut spec = fft.make_output_vec();
        fft.process(&mut buf, &mut spec).unwrap();
        let pw: Vec<f64> = spec.iter().map(|c| c.norm_sqr()).collect();
        frames.push(
            fb.iter()
                .map(|band| (band.iter().map(|(k, w)| pw[*k] * w).sum::<f64>() + 1e-10).ln())
                .collect(),
        );
        start += hop;
    }
    frames
}

fn logmel_stats(frames: &[Vec<f64>]) -> Vec<f64> {
    let nb = frames[0].len();
    let nf = frames.len() as f64;
    let mut out = Vec::with_capacity(3 * nb);
    for b in 0..nb {
        let mean = frames.iter().map(|f| f[b]).sum::<f64>() / nf;
        let var = frames.iter().map(|f| (f[b] - mean).powi(2)).sum::<f64>() / nf;
        let diff = frames
            .windows(2)
            .map(|w| (w[1][b] - w[0][b]).abs())
            .sum::<f64>()
            / (nf - 1.0);
        out.extend([mean, var.sqrt(), diff]);
    }
    out
}

/// Multinomial logistic regression on standardised features (full-batch gradient descent).
struct Logistic {
    mu: Vec<f64>,
    sd: Vec<f64>,
    w: Vec<Vec<f64>>,
}

impl Logistic {
    fn fit(x: &[Vec<f64>], y: &[usize], k: usize, iters: usize, lr: f64, l2: f64) -> Logistic {
        let d = x[0].len();
        let n = x.len() as f64;
        let mu: Vec<f64> = (0..d)
            .map(|j| x.iter().map(|v| v[j]).sum::<f64>() / n)
            .collect();
        let sd: Vec<f64> = (0..d)
            .map(|j| {
                (x.iter().map(|v| (v[j] - mu[j]).powi(2)).sum::<f64>() / n)
                    .sqrt()
                    .max(1e-9)
            })
            .collect();
        let mut m = Logistic {
            mu,
            sd,
            w: vec![vec![0.0; d + 1]; k],
        };
        let xs: Vec<Vec<f64>> = x.iter().map(|v| m.standardise(v)).collect();
        for _ in 0..iters {
            let mut g = vec![vec![0.0; d + 1]; k];
            for (v, &t) in xs.iter().zip(y) {
                let p = m.probs(v);
                for (c, (gc, pc)) in g.iter_mut().zip(&p).enumerate() {
                    let e = pc - if c == t { 1.0 } else { 0.0 };
                    for (gj, vj) in gc.iter_mut().zip(v) {
                        *gj += e * vj;
                    }
                }
            }
            for (wc, gc) in m.w.iter_mut().zip(&g) {
                for (w, gj) in wc.iter_mut().zip(gc) {
                    *w -= lr * (gj / n + l2 * *w);
                }
            }
        }
        m
    }

    fn standardise(&self, v: &[f64]) -> Vec<f64> {
        let mut s: Vec<f64> = v
            .iter()
            .zip(self.mu.iter().zip(&self.sd))
            .map(|(x, (m, s))| (x - m) / s)
            .collect();
        s.push(1.0);
        s
    }

    fn probs(&self, v: &[f64]) -> Vec<f64> {
        let z: Vec<f64> = self
            .w
            .iter()
            .map(|w| w.iter().zip(v).map(|(a, b)| a * b).sum())
            .collect();
        let m = z.iter().cloned().fold(f64::MIN, f64::max);
        let e: Vec<f64> = z.iter().map(|v| (v - m).exp()).collect();
        let s: f64 = e.iter().sum();
        e.iter().map(|v| v / s).collect()
    }

    fn predict(&self, v: &[f64]) -> usize {
        let s = self.standardise(v);
        let p = self.probs(&s);
        (0..p.len()).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap()
    }
}
