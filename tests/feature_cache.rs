//! The per-clip feature cache behind the runner's features stage: a second extraction reads
//! every clip from the cache and gives the same bits; a damaged entry is detected and
//! recomputed, never used; manifest hashes and computed hashes address the same entries; and
//! batch results do not depend on the number of threads.

mod common;

use ascrepro::audio::feature_cache::FeatureCache;
use ascrepro::audio::features::{extract_batch, extract_files, BatchStats, ClipFile};
use ascrepro::audio::frontend::{Features, Frontend, FrontendId};
use ascrepro::data::manifest::hash_file;
use std::path::{Path, PathBuf};

/// Six clips: mono and stereo, 32 and 44.1 kHz, one shorter than a second.
fn clips(dir: &Path) -> Vec<PathBuf> {
    let specs: [(u32, u16, f64); 6] = [
        (32000, 1, 1.0),
        (44100, 1, 1.0),
        (44100, 2, 1.0),
        (32000, 2, 0.3),
        (32000, 1, 1.0),
        (44100, 1, 0.7),
    ];
    specs
        .iter()
        .enumerate()
        .map(|(k, &(rate, channels, seconds))| {
            let path = dir.join(format!("clip{k}.wav"));
            let spec = hound::WavSpec {
                channels,
                sample_rate: rate,
                bits_per_sample: 16,
                sample_format: hound::SampleFormat::Int,
            };
            let mut w = hound::WavWriter::create(&path, spec).unwrap();
            let n = (f64::from(rate) * seconds) as usize;
            for i in 0..n {
                for c in 0..channels {
                    let t = i as f64 / f64::from(rate);
                    let f = 200.0 * (k + 1) as f64 + 150.0 * f64::from(c);
                    let v = 0.3 * (2.0 * std::f64::consts::PI * f * t).sin()
                        + 0.05 * (((i * 7919 + k * 31) % 101) as f64 / 50.0 - 1.0);
                    w.write_sample((v * 32767.0) as i16).unwrap();
                }
            }
            w.finalize().unwrap();
            path
        })
        .collect()
}

fn unhashed(paths: &[PathBuf]) -> Vec<ClipFile> {
    paths
        .iter()
        .map(|p| ClipFile {
            path: p.clone(),
            sha256: None,
        })
        .collect()
}

fn batch(files: &[ClipFile], fe: &Frontend, cache: &FeatureCache) -> (Vec<Features>, BatchStats) {
    extract_batch(files, fe, Some(cache), None).unwrap()
}

#[test]
fn second_extraction_hits_the_cache_with_identical_features() {
    let dir = common::temp_dir("feature_cache_hits");
    let paths = clips(&dir);
    let fe = Frontend::authors(FrontendId::CpMel128);
    let uncached = extract_files(&paths, &fe, None).unwrap();
    let cache = FeatureCache::open(&dir.join("cache"), &fe).unwrap();

    let (first, stats) = batch(&unhashed(&paths), &fe, &cache);
    assert_eq!(
        (stats.cache_hits, stats.extracted, stats.corrupt_entries),
        (0, 6, 0)
    );
    assert_eq!(first, uncached);
    // The two stereo files are counted, in input order, and summed up in one note.
    let mixed: Vec<(String, u16)> = stats
        .mixed_down
        .iter()
        .map(|(p, c)| (p.file_name().unwrap().to_string_lossy().to_string(), *c))
        .collect();
    assert_eq!(
        mixed,
        vec![("clip2.wav".into(), 2), ("clip3.wav".into(), 2)]
    );
    let note = stats.mixdown_note().unwrap();
    assert!(
        note.contains("2 of 6 files") && note.contains("clip2.wav"),
        "{note}"
    );

    // Second pass: everything from the cache, bit for bit, channel counts included.
    let (second, again) = batch(&unhashed(&paths), &fe, &cache);
    assert_eq!((again.cache_hits, again.extracted), (6, 0));
    assert_eq!(second, uncached);
    assert_eq!(again.mixed_down, stats.mixed_down);

    // Hashes from a manifest address the same entries (no file needs hashing).
    let hashed: Vec<ClipFile> = paths
        .iter()
        .map(|p| ClipFile {
            path: p.clone(),
            sha256: Some(hash_file(p).unwrap().1),
        })
        .collect();
    let (third, stats) = batch(&hashed, &fe, &cache);
    assert_eq!((stats.cache_hits, stats.extracted), (6, 0));
    assert_eq!(third, uncached);

    // A copy of a clip under another name shares its entry; another front end does not.
    let copy = dir.join("copy.wav");
    std::fs::copy(&paths[1], &copy).unwrap();
    let (_, stats) = batch(&unhashed(&[copy]), &fe, &cache);
    assert_eq!(stats.cache_hits, 1);
    let other = Frontend::authors(FrontendId::TaMel256);
    let other_cache = FeatureCache::open(&dir.join("cache"), &other).unwrap();
    let (_, stats) = batch(&unhashed(&paths[..2]), &other, &other_cache);
    assert_eq!((stats.cache_hits, stats.extracted), (0, 2));
}

#[test]
fn damaged_entries_are_recomputed_never_used() {
    let dir = common::temp_dir("feature_cache_damage");
    let paths = clips(&dir);
    let fe = Frontend::authors(FrontendId::CpMel512);
    let cache = FeatureCache::open(&dir.join("cache"), &fe).unwrap();
    let (reference, _) = batch(&unhashed(&paths), &fe, &cache);

    let entry = |p: &Path| {
        let sha = hash_file(p).unwrap().1;
        cache.dir().join(&sha[..2]).join(format!("{sha}.f32"))
    };
    // One value changed by a bit, one file truncated, one replaced by another clip's entry.
    let e0 = entry(&paths[0]);
    let mut bytes = std::fs::read(&e0).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&e0, &bytes).unwrap();
    let e3 = entry(&paths[3]);
    let bytes = std::fs::read(&e3).unwrap();
    std::fs::write(&e3, &bytes[..bytes.len() / 2]).unwrap();
    std::fs::copy(entry(&paths[4]), entry(&paths[5])).unwrap();

    let (features, stats) = batch(&unhashed(&paths), &fe, &cache);
    assert_eq!(
        (stats.cache_hits, stats.extracted, stats.corrupt_entries),
        (3, 3, 3)
    );
    assert_eq!(features, reference);
    // The damaged entries were rewritten: all hits now.
    let (features, stats) = batch(&unhashed(&paths), &fe, &cache);
    assert_eq!((stats.cache_hits, stats.corrupt_entries), (6, 0));
    assert_eq!(features, reference);
}

#[test]
fn batch_results_do_not_depend_on_the_thread_count() {
    let dir = common::temp_dir("feature_cache_threads");
    let paths = clips(&dir);
    let fe = Frontend::authors(FrontendId::CpMel512);
    let run = |threads: usize, cache_dir: &str| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let cache = FeatureCache::open(&dir.join(cache_dir), &fe).unwrap();
        pool.install(|| {
            let plain = extract_files(&paths, &fe, None).unwrap();
            let (cached, stats) = batch(&unhashed(&paths), &fe, &cache);
            assert_eq!(stats.extracted, paths.len());
            assert_eq!(plain, cached);
            plain
        })
    };
    let one = run(1, "cache-1");
    let two = run(2, "cache-2");
    let four = run(4, "cache-4");
    assert_eq!(one, two);
    assert_eq!(one, four);
    // Entries written by different thread counts are byte-identical.
    for entry in walk(&dir.join("cache-1")) {
        let rel = entry.strip_prefix(dir.join("cache-1")).unwrap();
        let other = dir.join("cache-4").join(rel);
        assert_eq!(
            std::fs::read(&entry).unwrap(),
            std::fs::read(&other).unwrap()
        );
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
