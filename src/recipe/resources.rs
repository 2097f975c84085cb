//! What a batch-scheduler job of each stage kind asks for: `resources:` in a profile, by stage
//! kind (`default` for every kind), over built-in defaults that depend on the data's size and
//! on whether the run computes on a GPU. Scheduling only: never part of a stage's identity.

use super::schema::{DataKind, ProfileSpec};
use super::Ctx;
use crate::error::Result;
use serde::{Deserialize, Serialize};

/// One kind's request, as Slurm's `sbatch` options take it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceSpec {
    /// GPUs (`--gres=gpu:N`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus: Option<u32>,
    /// CPU cores (`--cpus-per-task`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    /// Memory (`--mem`), e.g. `16G`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem: Option<String>,
    /// Wall-time limit (`--time`), e.g. `04:00:00` or `2-00:00:00`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
}

/// A fully resolved request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    pub gpus: u32,
    pub cpus: u32,
    pub mem: String,
    pub time: String,
    pub partition: Option<String>,
}

/// The stage kinds a job can be (the kinds of cached stages), and `default`.
pub const RESOURCE_KEYS: &[&str] = &[
    "default",
    "data",
    "features",
    "devsim",
    "energy_ir",
    "irs",
    "waveforms",
    "train",
    "pretrain",
    "prune",
    "finetune",
    "evaluate",
    "quantize",
    "half",
    "released",
    "report",
];

/// Kinds that train (and so run for hours at full size).
const TRAINING: &[&str] = &["train", "pretrain", "prune", "finetune"];

impl ResourceSpec {
    fn over(&self, base: Resources) -> Resources {
        Resources {
            gpus: self.gpus.unwrap_or(base.gpus),
            cpus: self.cpus.unwrap_or(base.cpus),
            mem: self.mem.clone().unwrap_or(base.mem),
            time: self.time.clone().unwrap_or(base.time),
            partition: self.partition.clone().or(base.partition),
        }
    }
}

/// What a job of `kind` asks for in `profile`: the profile's `resources.<kind>`, over its
/// `resources.default`, over the built-in defaults. `numeric_on_gpu`: the stage computes on the
/// run's device and that device is a GPU, so its job needs one.
pub fn resolve(profile: &ProfileSpec, kind: &str, numeric_on_gpu: bool, threads: u32) -> Resources {
    let full_size = profile.data.kind == DataKind::Tau2022;
    let training = TRAINING.contains(&kind);
    let builtin = Resources {
        gpus: u32::from(numeric_on_gpu),
        // Feature extraction, device simulation and evaluation spread over the job's cores;
        // libtorch's training threads are the run's `--threads`.
        cpus: if full_size { threads.max(8) } else { threads },
        mem: match (full_size, training) {
            (true, true) => "64G",
            (true, false) => "32G",
            (false, _) => "4G",
        }
        .into(),
        time: match (full_size, training) {
            (true, true) => "2-00:00:00",
            (true, false) => "08:00:00",
            (false, _) => "01:00:00",
        }
        .into(),
        partition: None,
    };
    let with_default = match profile.resources.get("default") {
        Some(d) => d.over(builtin),
        None => builtin,
    };
    match profile.resources.get(kind) {
        Some(k) => k.over(with_default),
        None => with_default,
    }
}

pub(super) fn validate(ctx: &Ctx, profile: &str, p: &ProfileSpec) -> Result<()> {
    for (key, spec) in &p.resources {
        let at = |field: &str| -> Vec<String> {
            let mut v = vec![
                "profiles".into(),
                profile.into(),
                "resources".into(),
                key.clone(),
            ];
            if !field.is_empty() {
                v.push(field.into());
            }
            v
        };
        let err = |field: &str, msg: String| {
            let path = at(field);
            let refs: Vec<&str> = path.iter().map(String::as_str).collect();
            ctx.err(&refs, msg)
        };
        if !RESOURCE_KEYS.contains(&key.as_str()) {
            return Err(err(
                "",
                format!(
                    "`{key}` is not a stage kind; resources are given by kind: {}",
                    RESOURCE_KEYS.join(", ")
                ),
            ));
        }
        if spec.cpus == Some(0) {
            return Err(err("cpus", "must be at least 1".into()));
        }
        if let Some(mem) = &spec.mem {
            if !is_memory(mem) {
                return Err(err(
                    "mem",
                    format!("`{mem}` is not a memory size: a number with an optional K, M, G or T, e.g. 16G"),
                ));
            }
        }
        if let Some(time) = &spec.time {
            if !is_time(time) {
                return Err(err(
                    "time",
                    format!(
                        "`{time}` is not a Slurm time limit: minutes, HH:MM:SS, or D-HH[:MM[:SS]], e.g. 04:00:00"
                    ),
                ));
            }
        }
        if let Some(part) = &spec.partition {
            if part.is_empty() || part.chars().any(|c| c.is_whitespace() || c == ',') {
                return Err(err(
                    "partition",
                    format!("`{part}` is not one partition name"),
                ));
            }
        }
    }
    Ok(())
}

fn is_memory(s: &str) -> bool {
    let digits = s.trim_end_matches(['K', 'M', 'G', 'T']);
    s.len() - digits.len() <= 1 && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Slurm's `--time` forms: `M`, `M:S`, `H:M:S`, `D-H`, `D-H:M`, `D-H:M:S`.
fn is_time(s: &str) -> bool {
    let number = |p: &str| !p.is_empty() && p.len() <= 4 && p.bytes().all(|b| b.is_ascii_digit());
    let (days, rest) = match s.split_once('-') {
        Some((d, r)) => (Some(d), r),
        None => (None, s),
    };
    if days.is_some_and(|d| !number(d)) {
        return false;
    }
    let parts: Vec<&str> = rest.split(':').collect();
    parts.len() <= 3 && parts.iter().all(|p| number(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slurm_memory_and_time_forms() {
        for ok in ["16G", "512", "64000M", "1T"] {
            assert!(is_memory(ok), "{ok}");
        }
        for bad in ["", "G", "16GB", "1.5G", "-1G"] {
            assert!(!is_memory(bad), "{bad}");
        }
        for ok in ["60", "10:00", "04:00:00", "2-00", "2-12:00", "2-00:00:00"] {
            assert!(is_time(ok), "{ok}");
        }
        for bad in ["", "1:2:3:4", "a", "2-", "-4", "1h"] {
            assert!(!is_time(bad), "{bad}");
        }
    }
}
