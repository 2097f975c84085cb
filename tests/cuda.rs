//! The GPU path, where CUDA is present (skips, saying so on stderr, elsewhere): a demo stage
//! (the tiny fixture's teacher, with its augmentations and device simulation) trains on the
//! GPU twice from scratch to bit-identical weights, its identity names the GPU platform and
//! differs from the CPU's, and its evaluation runs there too.

use std::io::Write;
use std::path::Path;
use std::process::Command;

const TINY: &str = include_str!("fixtures/tiny.yaml");

fn ascrepro(dir: &Path, args: &[&str]) -> (String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_ascrepro"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("spawn ascrepro");
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    );
    assert!(
        o.status.success(),
        "ascrepro {} failed:\n{out}\n{err}",
        args.join(" ")
    );
    (out, err)
}

/// Whether `ascrepro` finds a GPU (`plan --device cuda` fails cleanly where none is visible).
fn cuda_visible(dir: &Path) -> Result<(), String> {
    let o = Command::new(env!("CARGO_BIN_EXE_ascrepro"))
        .current_dir(dir)
        .args(["plan", "tiny.yaml", "--cache", "probe", "--device", "cuda"])
        .output()
        .expect("spawn ascrepro");
    if o.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&o.stderr).trim().to_string())
    }
}

fn plan_file(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix("run plan: "))
        .expect("plan prints its run plan")
        .to_string()
}

#[test]
fn a_demo_stage_trains_bit_identically_twice_on_the_gpu() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("tiny.yaml"), TINY).unwrap();
    if let Err(why) = cuda_visible(d) {
        let _ = writeln!(std::io::stderr(), "SKIPPED cuda: no GPU visible ({why})");
        return;
    }
    let mut manifests = Vec::new();
    let mut hashes = Vec::new();
    for cache in ["g1", "g2"] {
        let (out, _) = ascrepro(
            d,
            &["plan", "tiny.yaml", "--cache", cache, "--device", "cuda"],
        );
        let plan = plan_file(&out);
        let text = std::fs::read_to_string(&plan).unwrap();
        assert!(text.contains("\"device\": \"cuda\""), "{text}");
        for node in [
            "data:synth",
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
