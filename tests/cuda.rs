//! The GPU path, where CUDA is present (skips, saying so on stderr, elsewhere): a demo stage
//! (the tiny fixture's teacher, with its augmentations and device simulation) trains on the
//! GPU twice from scratch to bit-identical weights, its identity names the GPU platform and
//! differs from the CPU's, and its evaluation runs there too.

mod common;
use common::{ascrepro_ok as ascrepro, run_plan_path};
use std::io::Write;
use std::path::Path;
use std::process::Command;

const TINY: &str = include_str!("fixtures/tiny.yaml");

/// Computes the first stage of a `--device cuda` plan: fails cleanly (saying why) where no
/// GPU is visible, since a process that computes needs the device its plan names.
fn first_stage_on_cuda(dir: &Path, plan: &str) -> Result<(), String> {
    let o = Command::new(env!("CARGO_BIN_EXE_ascrepro"))
        .current_dir(dir)
        .args(["stage", plan, "--node", "data:synth", "--quiet"])
        .output()
        .expect("spawn ascrepro");
    if o.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&o.stderr).trim().to_string())
    }
}

#[test]
fn a_demo_stage_trains_bit_identically_twice_on_the_gpu() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("tiny.yaml"), TINY).unwrap();
    let mut manifests = Vec::new();
    let mut hashes = Vec::new();
    for cache in ["g1", "g2"] {
        let (out, _) = ascrepro(
            d,
            &["plan", "tiny.yaml", "--cache", cache, "--device", "cuda"],
        );
        let plan = run_plan_path(&out);
        let text = std::fs::read_to_string(&plan).unwrap();
        assert!(text.contains("\"device\": \"cuda\""), "{text}");
        // Planning for the GPU needs none (a cluster's login node has none); computing does.
        if let Err(why) = first_stage_on_cuda(d, &plan) {
            assert!(why.contains("--device cuda"), "{why}");
            let _ = writeln!(std::io::stderr(), "SKIPPED cuda: no GPU visible ({why})");
            return;
        }
        for node in [
            "features:cpmel-128",
            "devsim:devsim-2x6",
            "train:teacher",
            "evaluate:teacher",
        ] {
            ascrepro(d, &["stage", &plan, "--node", node, "--quiet"]);
        }
        let teacher = out
            .lines()
            .find(|l| l.starts_with("train      teacher"))
            .unwrap()
            .split_whitespace()
            .nth(2)
            .unwrap()
            .to_string();
        let entry = std::fs::read_dir(d.join(cache).join("stages"))
            .unwrap()
            .flatten()
            .find(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("train-{teacher}"))
            })
            .expect("the teacher's cache entry");
        manifests.push(std::fs::read_to_string(entry.path().join(".manifest")).unwrap());
        hashes.push(teacher);
    }
    assert_eq!(hashes[0], hashes[1]);
    assert_eq!(manifests[0], manifests[1], "two GPU trainings differ");
    // A GPU run is another platform: the CPU's identity of the same stage differs.
    let (cpu, _) = ascrepro(d, &["plan", "tiny.yaml", "--cache", "c", "--device", "cpu"]);
    let cpu_teacher = cpu
        .lines()
        .find(|l| l.starts_with("train      teacher"))
        .unwrap()
        .split_whitespace()
        .nth(2)
        .unwrap();
    assert_ne!(cpu_teacher, hashes[0]);
}
