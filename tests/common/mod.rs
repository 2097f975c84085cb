//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod complexity;
pub mod parity;

use ascrepro::models::blocks::Ctx;
use ascrepro::models::Net;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tch::{nn, Device, Kind, Tensor};

/// The set-up's Python (`make setup` creates `.venv` with torch==2.11.0). The PyTorch reference
/// tests need it; its absence is a set-up error, not a reason to skip.
pub fn python() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(
        p.exists(),
        "{} not found: run `make setup` (the PyTorch reference tests need the project's venv)",
        p.display()
    );
    p
}

/// A fresh, empty directory under the target directory for one test.
pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(tag);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A PyTorch reference script under tests/python/.
pub fn python_script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(name)
}

/// Runs tests/python/`script` with `args` in the venv's Python (one OpenMP thread), asserting
/// it succeeds; returns its stdout.
pub fn run_python<S: AsRef<OsStr>>(script: &str, args: impl IntoIterator<Item = S>) -> Vec<u8> {
    let out = Command::new(python())
        .arg(python_script(script))
        .args(args)
        .env("OMP_NUM_THREADS", "1")
        .output()
        .expect("spawn the venv's python");
    assert!(
        out.status.success(),
        "tests/python/{script} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `ascrepro predict` of the small TF-SepNet (C=8, AdaResNorm) that the checkpoint fixtures hold.
pub const PREDICT_TFSEPNET23_C8: [&str; 9] = [
    "predict",
    "--model",
    "tfsepnet23",
    "--width",
    "8",
    "--norm",
    "adaresnorm",
    "--frontend",
    "cpmel-128",
];

/// A path under `../shared` (the spec, reports and reference tables beside the repository).
pub fn shared(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared")
        .join(rel)
}

pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

/// Eval-mode logits without gradients.
pub fn eval(net: &dyn Net, x: &Tensor) -> Tensor {
    tch::no_grad(|| net.forward_ctx(x, &Ctx::new(false)))
}

/// Folds every BatchNorm of `net` and compares eval outputs on `xs`: (BatchNorms folded,
/// max |before - after|, the folded outputs).
pub fn fold_and_compare(net: &mut dyn Net, xs: &Tensor) -> (usize, f64, Tensor) {
    let before = eval(net, xs);
    let folded = ascrepro::compress::fold::fold_bn(net);
    let after = eval(net, xs);
    (folded, max_abs_diff(&before, &after), after)
}

/// How [`perturb_with`] redraws one variable.
pub enum Perturb {
    /// Left as it is.
    Keep,
    /// U(0.5, 1.5): scales and variances.
    AroundOne,
    /// U(-0.2, 0.2): shifts and means.
    AroundZero,
    /// U(0, 1): mixing weights.
    Unit,
}

/// Gives the variables `rule` picks (by name, tensor and all variables) non-trivial values, so
/// eval paths and folding are really exercised.
pub fn perturb_with(
    vs: &nn::VarStore,
    rule: impl Fn(&str, &Tensor, &HashMap<String, Tensor>) -> Perturb,
) {
    let vars = vs.variables();
    // In name order: the map's own order differs run to run, and so would the draws.
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort();
    tch::no_grad(|| {
        for name in names {
            let v = &vars[name];
            let draw = || Tensor::rand(v.size(), (Kind::Float, Device::Cpu));
            let new = match rule(name, v, &vars) {
                Perturb::Keep => continue,
                Perturb::AroundOne => draw() + 0.5,
                Perturb::AroundZero => (draw() - 0.5) * 0.4,
                Perturb::Unit => draw(),
            };
            v.shallow_clone().copy_(&new);
        }
    });
}

/// Runs the `ascrepro` binary in `dir`.
pub fn ascrepro(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ascrepro"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("spawn ascrepro")
}

/// Runs the `ascrepro` binary in `dir` with `env` set, asserting it succeeds; returns its
/// stdout and stderr.
pub fn ascrepro_ok_env(dir: &Path, env: &[(&str, &OsStr)], args: &[&str]) -> (String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_ascrepro"))
        .current_dir(dir)
        .envs(env.iter().copied())
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

/// [`ascrepro_ok_env`] with the environment as it is.
pub fn ascrepro_ok(dir: &Path, args: &[&str]) -> (String, String) {
    ascrepro_ok_env(dir, &[], args)
}

/// The run plan file that `ascrepro plan` printed.
pub fn run_plan_path(plan_stdout: &str) -> String {
    plan_stdout
        .lines()
        .find_map(|l| l.strip_prefix("run plan: "))
        .expect("plan prints its run plan")
        .to_string()
}

/// The run directory of a cache that holds one run.
pub fn only_run_dir(cache: &Path) -> PathBuf {
    let runs: Vec<PathBuf> = std::fs::read_dir(cache.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs.into_iter().next().unwrap()
}

/// Runs the `ascrepro` binary in `dir`, asserting a clean failure: a non-zero exit, an
/// `error: ` line and no panic. Returns its stderr.
pub fn ascrepro_fails(dir: &Path, args: &[&str]) -> String {
    let out = ascrepro(dir, args);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success(),
        "expected failure, got success:\n{stderr}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "panic:\n{stderr}"
    );
    assert!(stderr.contains("error: "), "{stderr}");
    stderr
}

/// The smallest TAU-layout synthetic dataset (seed 5) at `dir/data/ds`, with `irs` device IRs.
pub fn tiny_tau_dataset(dir: &Path, irs: usize) {
    tiny_tau_dataset_at(&dir.join("data/ds"), 5, irs);
}

/// The smallest TAU-layout synthetic dataset of `seed` at `root`, with `irs` device IRs.
pub fn tiny_tau_dataset_at(root: &Path, seed: u64, irs: usize) {
    let cfg = ascrepro::data::synth::SynthConfig {
        seed,
        cities: 2,
        test_only_cities: 1,
        train_locations_per_city: 1,
        test_locations_per_city: 1,
        train_clips_per_class_a: 2,
        train_clips_per_class_device: 1,
        test_clips_per_class_device: 1,
        clips_per_segment: 1,
        device_sim_irs: irs,
        ..Default::default()
    };
    ascrepro::data::synth::generate(&cfg, root, None).unwrap();
}

/// `ascrepro run recipe.yaml` in `dir` (the recipe text written there), one libtorch thread.
pub fn run_recipe(dir: &Path, recipe: &str, cache: &str, out: &str) -> Output {
    std::fs::write(dir.join("recipe.yaml"), recipe).unwrap();
    ascrepro(dir, &run_args(cache, out))
}

/// `ascrepro run recipe.yaml` with cache `cache`, report `out` and one thread.
fn run_args<'a>(cache: &'a str, out: &'a str) -> [&'a str; 8] {
    [
        "run",
        "recipe.yaml",
        "--cache",
        cache,
        "--out",
        out,
        "--threads",
        "1",
    ]
}

/// [`run_recipe`] that must succeed; returns its log (stderr).
pub fn run_recipe_ok(dir: &Path, recipe: &str, cache: &str, out: &str) -> String {
    let o = run_recipe(dir, recipe, cache, out);
    let stderr = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "run failed:\n{stderr}");
    stderr
}

/// The status word of stage `kind id` in a run's log ("cached", "computed"); exactly one line
/// (besides the local executor's `started` line of a stage it runs as a job).
pub fn stage_status(log: &str, kind: &str, id: &str) -> String {
    let found: Vec<String> = log
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() >= 3 && w[0] == kind && w[1] == id && w[2] != "started")
                .then(|| w[2].to_string())
        })
        .collect();
    assert_eq!(found.len(), 1, "expected one `{kind} {id}` line in:\n{log}");
    found[0].clone()
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> String {
    ascrepro::data::manifest::hash_file(path).unwrap().1
}

/// Runs `recipe.yaml` in `dir` with the cache `cache` and report `out` (one thread, quiet), and
/// kills it with SIGKILL once a `kind` stage's resumable work holds the checkpoint of epoch
/// `epoch`; fails if the run ends first or no such checkpoint appears within five minutes.
pub fn run_killed_after_epoch(dir: &Path, cache: &str, out: &str, kind: &str, epoch: usize) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ascrepro"))
        .current_dir(dir)
        .args(run_args(cache, out))
        .arg("--quiet")
        .spawn()
        .unwrap();
    let partial = dir.join(cache).join("partial");
    let wanted = format!("epoch-{epoch:05}");
    let stage = format!("{kind}-");
    let reached = || {
        std::fs::read_dir(&partial)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|s| s.file_name().to_string_lossy().starts_with(&stage))
            .any(|s| {
                std::fs::read_dir(s.path())
                    .into_iter()
                    .flatten()
                    .flatten()
                    .any(|e| {
                        let n = e.file_name().to_string_lossy().to_string();
                        n.starts_with("epoch-") && n >= wanted
                    })
            })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    while !reached() {
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint of epoch {epoch} appeared"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "run ended before it could be interrupted"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}
