//! Executors beyond one process: they compute the stages of a run plan as `ascrepro stage`
//! jobs, each after the jobs of its inputs, either as child processes on this machine
//! (`local`) or as Slurm batch jobs on a cluster sharing the cache (`slurm`). Neither knows
//! any stage's internals: a job is a node of the plan, its inputs and its resources.

pub mod local;
pub mod slurm;

use super::cache::Cache;
use super::run_plan::RunPlan;
use crate::error::Result;
use std::path::{Path, PathBuf};

/// `--executor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExecutorKind {
    /// This machine: `--jobs` stages at once.
    Local,
    /// A Slurm cluster: one batch job per stage, chained by `--dependency=afterok`.
    Slurm,
}

/// A stage to compute: its node and the jobs it must wait for.
#[derive(Debug, Clone)]
pub struct Job {
    pub node: usize,
    pub after: Vec<usize>,
}

/// Whether the cache holds node `n` complete.
pub fn is_cached(plan: &RunPlan, cache: &Cache, n: usize) -> bool {
    let node = &plan.nodes[n];
    cache.get(&node.kind, &node.hash).is_some()
}

/// The job nodes not complete in the cache, in plan order, each with the pending jobs
/// upstream of it.
pub fn pending(plan: &RunPlan, cache: &Cache) -> Vec<Job> {
    let todo: Vec<bool> = (0..plan.nodes.len())
        .map(|n| plan.nodes[n].job && !is_cached(plan, cache, n))
        .collect();
    (0..plan.nodes.len())
        .filter(|&n| todo[n])
        .map(|n| Job {
            node: n,
            after: plan
                .stored_ancestors(n)
                .into_iter()
                .filter(|&d| todo[d])
                .collect(),
        })
        .collect()
}

/// A file-name-safe form of a node's label, for logs and job scripts.
pub fn file_label(plan: &RunPlan, n: usize) -> String {
    plan.nodes[n]
        .label()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._@-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect()
}

pub fn logs_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("logs")
}

/// The last `lines` lines of a log, for error messages.
pub fn tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            // Progress bars redraw with carriage returns: keep what each line ended as.
            let all: Vec<&str> = text
                .lines()
                .map(|l| l.rsplit('\r').next().unwrap_or(l))
                .filter(|l| !l.trim().is_empty())
                .collect();
            let from = all.len().saturating_sub(lines);
            all[from..]
                .iter()
                .map(|l| format!("    | {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        }
        Err(e) => format!("    (no log at {}: {e})", path.display()),
    }
}

/// Why a job failed, for the run's error: the job's own `error:` line when its log ends with
/// one (it already names the stage, the file and what to do), else what ended it and the
/// log's tail.
pub fn job_failure(label: &str, how: &str, log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    match text.lines().rev().find_map(|l| l.strip_prefix("error: ")) {
        Some(own) => format!("{own} (job log: {})", log.display()),
        None => format!(
            "stage {label}: {how}; the end of its log {}:\n{}",
            log.display(),
            tail(log, 12)
        ),
    }
}

/// What `ascrepro status` prints: each job node's state, from the cache and, where Slurm
/// jobs were submitted, the scheduler.
pub fn status(plan: &RunPlan, run_dir: &Path, cache: &Cache) -> Result<String> {
    let submitted = slurm::Submissions::read(run_dir)?;
    let live = if submitted.is_empty() {
        Default::default()
    } else {
        slurm::job_states(&submitted.latest_ids())
    };
    let mut out = format!(
        "{} (profile {}), run {}\n",
        plan.recipe_id,
        plan.profile,
        run_dir.display()
    );
    let (mut done, mut total) = (0, 0);
    for (n, node) in plan.nodes.iter().enumerate().filter(|(_, n)| n.job) {
        total += 1;
        let job = submitted.latest(&node.label());
        let (line, failed) = match (is_cached(plan, cache, n), job) {
            (true, _) => {
                done += 1;
                ("done (in the cache)".to_string(), None)
            }
            (false, None) => ("not submitted".to_string(), None),
            (false, Some(id)) => match live.get(id) {
                Some(state) => (
                    format!("{} (job {id})", state.describe()),
                    state.failed().then_some(id),
                ),
                None => (
                    format!("ended without a result (job {id}; state no longer known)"),
                    None,
                ),
            },
        };
        out += &format!("  {:<9} {:<22} {line}\n", node.kind, node.id);
        if let Some(id) = failed {
            out += &tail(&slurm::log_path(run_dir, plan, n, id), 10);
            out += "\n";
        }
    }
    out += &format!("{done} of {total} stage jobs done");
    if done == total {
        out += &format!(
            "; run `ascrepro run {} --profile {}` (same options) to write the report",
            plan.recipe.display(),
            plan.profile
        );
    }
    out.push('\n');
    Ok(out)
}
