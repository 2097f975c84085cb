//! The PyTorch parity harness: a tests/python/<model>.py script builds the same network with
//! random (perturbed) weights and writes its state dict, an input `x`, `eval_logits`,
//! `train_logits` and the running statistics after that train step (`after.<name>`) as
//! safetensors; our network loads the state dict by variable name and must reproduce the rest.

use super::{max_abs_diff, run_python, temp_dir};
use std::collections::HashMap;
use std::path::PathBuf;
use tch::{nn, Tensor};

/// A parity script's output, read back.
pub type Reference = HashMap<String, Tensor>;

/// Runs tests/python/`script` OUT `args...` in a fresh directory for `tag`; returns the directory
/// (for the caller to remove) and the file's tensors.
pub fn run_script(script: &str, tag: &str, args: &[String]) -> (PathBuf, Reference) {
    let dir = temp_dir(tag);
    let out = dir.join("parity.safetensors");
    let out_arg = out.as_os_str().to_owned();
    run_python(
        script,
        std::iter::once(out_arg).chain(args.iter().map(Into::into)),
    );
    let file = Tensor::read_safetensors(&out)
        .unwrap()
        .into_iter()
        .collect();
    (dir, file)
}

/// Whether a key of the script's file is a state-dict entry (not an input, output, statistic
/// after the train step or count).
fn is_state(key: &str) -> bool {
    !key.starts_with("after.")
        && !key.starts_with("count.")
        && !["x", "eval_logits", "train_logits"].contains(&key)
}

/// Copies every variable of `vs` from the state dict of the same name; both sides must have the
/// same variables with the same shapes. `what` prefixes failure messages.
pub fn load_by_name(vs: &nn::VarStore, file: &Reference, what: &str) {
    let ours = vs.variables();
    for (name, var) in &ours {
        let src = file
            .get(name)
            .unwrap_or_else(|| panic!("{what}PyTorch state dict has no `{name}`"));
        assert_eq!(src.size(), var.size(), "{what}{name}");
        tch::no_grad(|| var.shallow_clone().copy_(src));
    }
    let theirs = file.keys().filter(|k| is_state(k)).count();
    assert_eq!(theirs, ours.len(), "{what}same number of variables");
}

/// Our eval logits against PyTorch's (< 1e-4); returns the difference.
pub fn assert_eval(file: &Reference, eval: &Tensor, what: &str) -> f64 {
    let d = max_abs_diff(eval, &file["eval_logits"]);
    assert!(d < 1e-4, "{what}eval logits differ from PyTorch by {d}");
    d
}

/// Our train-mode logits against PyTorch's (< 1e-4); returns the difference.
pub fn assert_train(file: &Reference, train: &Tensor, what: &str) -> f64 {
    let d = max_abs_diff(train, &file["train_logits"]);
    assert!(
        d < 1e-4,
        "{what}train-mode logits differ from PyTorch by {d}"
    );
    d
}

/// Every running statistic of `vs` against PyTorch's after the train step (< 1e-5); returns how
/// many were compared and the largest difference.
pub fn assert_running_stats(vs: &nn::VarStore, file: &Reference, what: &str) -> (usize, f64) {
    let (mut stats, mut d_max) = (0, 0f64);
    for (name, var) in vs.variables() {
        if name.ends_with("running_mean") || name.ends_with("running_var") {
            let d = max_abs_diff(&var, &file[&format!("after.{name}")]);
            assert!(
                d < 1e-5,
                "{what}running stat {name} differs from PyTorch by {d}"
            );
            d_max = d_max.max(d);
            stats += 1;
        }
    }
    (stats, d_max)
}

/// Max differences of one parity run.
pub struct Diffs {
    pub eval: f64,
    pub train: f64,
    /// Running statistics compared, and their largest difference.
    pub stats: usize,
    pub stats_max: f64,
}

/// Eval logits, then train-mode logits (one train step, updating the statistics), then the
/// running statistics of `vs` against the script's; `forward(x, train)` runs our network.
pub fn assert_matches(
    vs: &nn::VarStore,
    file: &Reference,
    forward: impl Fn(&Tensor, bool) -> Tensor,
    what: &str,
) -> Diffs {
    let x = &file["x"];
    let eval = assert_eval(file, &forward(x, false), what);
    let train = assert_train(file, &forward(x, true), what);
    let (stats, stats_max) = assert_running_stats(vs, file, what);
    Diffs {
        eval,
        train,
        stats,
        stats_max,
    }
}
