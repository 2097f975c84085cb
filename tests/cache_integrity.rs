//! Integrity of what the cache hands back: a stage entry or an epoch checkpoint with a flipped
//! bit, a truncated, missing or extra file, or from an older layout is discarded with a note and
//! recomputed to the same bytes, never used and never a libtorch error.

mod common;
use ascrepro::train::checkpoint;
use ascrepro::train::{Adam, WeightDecay};
use common::{run_recipe_ok, stage_status};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tch::{nn, Device, Kind, Tensor};

const TINY: &str = include_str!("fixtures/tiny.yaml");

/// The entry directories of stage kind `kind`, in name order.
fn entries(cache: &Path, kind: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(cache.join("stages"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            name.starts_with(&format!("{kind}-"))
        })
        .collect();
    out.sort();
    out
}

fn flip_bit(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn damaged_stage_entries_are_recomputed_to_the_same_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    run_recipe_ok(d, TINY, "cache", "out");
    let cache = d.join("cache");
    let sums = |dir: &Path| std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
    let reference = sums(&d.join("out"));
    let features = entries(&cache, "features").remove(0);
    let trains = entries(&cache, "train");
    let evaluations = entries(&cache, "evaluate");
    let quantize = entries(&cache, "quantize").remove(0);
    let before = |p: &Path| std::fs::read(p).unwrap();
    let (feat_bytes, model_bytes) = (
        before(&features.join("train.safetensors")),
        before(&trains[0].join("model.safetensors")),
    );

    // One bit flipped deep in the features, one model truncated, a stray file in an
    // evaluation, and an entry in the older layout (no manifest).
    flip_bit(&features.join("train.safetensors"), feat_bytes.len() / 2);
    let model = std::fs::OpenOptions::new()
        .write(true)
        .open(trains[0].join("model.safetensors"))
        .unwrap();
    model.set_len(model_bytes.len() as u64 / 3).unwrap();
    std::fs::write(evaluations[0].join("stray.txt"), "left by hand").unwrap();
    // (Ignored if absent: the layout before manifests, where this test must fail further on.)
    let _ = std::fs::remove_file(quantize.join(".manifest"));

    let log = run_recipe_ok(d, TINY, "cache", "out");
    for (kind, id) in [("features", "cpmel-128"), ("quantize", "student_int8")] {
        assert_eq!(stage_status(&log, kind, id), "computed", "{log}");
    }
    assert_eq!(stage_status(&log, "data", "synth"), "cached", "{log}");
    for why in [
        "train.safetensors: checksum mismatch",
        "model.safetensors has",
        "unexpected file stray.txt",
        "no checksum manifest",
    ] {
        assert!(log.contains(why), "no note `{why}`:\n{log}");
    }
    assert_eq!(log.matches("damaged entry of").count(), 4, "{log}");
    // Recomputed bit for bit, and the report (which lists every output's hash) unchanged.
    assert_eq!(before(&features.join("train.safetensors")), feat_bytes);
    assert_eq!(before(&trains[0].join("model.safetensors")), model_bytes);
    assert!(!evaluations[0].join("stray.txt").exists());
    assert_eq!(sums(&d.join("out")), reference);
    let again = run_recipe_ok(d, TINY, "cache", "out");
    assert!(again.contains("nothing recomputed"), "{again}");
}

/// A small network, its optimiser after one step, saved as epoch checkpoints `epochs`.
fn checkpoints(dir: &Path, epochs: &[usize]) -> (nn::VarStore, Adam) {
    tch::manual_seed(3);
    let vs = nn::VarStore::new(Device::Cpu);
    let lin = nn::linear(vs.root() / "fc", 8, 3, Default::default());
    let mut adam = Adam::new(&vs, (0.9, 0.999), WeightDecay::L2(0.0));
    for &epoch in epochs {
        let x = Tensor::randn([4, 8], (Kind::Float, Device::Cpu));
        adam.zero_grad();
        x.apply(&lin).sum(Kind::Float).backward();
        adam.step(0.01);
        checkpoint::save(dir, epoch, &vs, &adam, None, &epoch).unwrap();
    }
    (vs, adam)
}

fn weights(tensors: &BTreeMap<String, Tensor>) -> Tensor {
    tensors["w.fc.weight"].shallow_clone()
}

#[test]
fn a_damaged_epoch_checkpoint_is_discarded_for_the_one_before() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("partial");
    checkpoints(&dir, &[1, 2, 3]);
    let (epoch, first) = checkpoint::load::<usize>(&dir).unwrap().unwrap();
    assert_eq!(epoch, 3);
    // Loading changes nothing: the same checkpoint again.
    let (_, second) = checkpoint::load::<usize>(&dir).unwrap().unwrap();
    assert!(weights(&first).equal(&weights(&second)));

    // The newest with a flipped bit in its tensors: the one before is used, the damaged one
    // is gone. A half-written temp directory of a killed run is cleared too.
    let newest = dir.join("epoch-00003/state.safetensors");
    let len = std::fs::metadata(&newest).unwrap().len() as usize;
    flip_bit(&newest, len - 5);
    std::fs::create_dir_all(dir.join("tmp-424242")).unwrap();
    std::fs::write(dir.join("tmp-424242/state.safetensors"), "half").unwrap();
    let (epoch, _) = checkpoint::load::<usize>(&dir)
        .expect("a damaged checkpoint is not an error")
        .unwrap();
    assert_eq!(epoch, 2);
    assert!(!dir.join("epoch-00003").exists());
    assert!(!dir.join("tmp-424242").exists());

    // Only two are kept; the older one truncated (what libtorch's reader chokes on): from
    // scratch.
    assert!(!dir.join("epoch-00001").exists());
    let state = dir.join("epoch-00002/state.safetensors");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&state)
        .unwrap();
    f.set_len(40).unwrap();
    assert!(checkpoint::load::<usize>(&dir).unwrap().is_none());
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
}
