//! The local executor: `--jobs N` stage jobs at once, each an `ascrepro stage` child process
//! with its log under the run directory, started as soon as its inputs are in the cache, the
//! stages with the most work behind them first. Each child runs libtorch with the plan's
//! thread count, so what it computes is what a one-process run computes.

use super::{file_label, job_failure, logs_dir, pending, Job};
use crate::error::{Error, IoContext, Result};
use crate::runner::cache::Cache;
use crate::runner::graph::Context;
use crate::runner::run_plan::{RunPlan, PLAN_FILE};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Running {
    node: usize,
    child: Child,
    started: Instant,
    log: PathBuf,
}

/// Computes every pending job of the plan; returns each computed stage's seconds by label.
pub fn run(
    plan: &RunPlan,
    run_dir: &Path,
    cache: &Cache,
    exe: &Path,
    jobs: usize,
    cx: &Context,
) -> Result<BTreeMap<String, f64>> {
    let plan_file = run_dir.join(PLAN_FILE);
    let mut waiting: Vec<Job> = pending(plan, cache);
    let priority: BTreeMap<usize, usize> = waiting
        .iter()
        .map(|j| (j.node, plan.descendants(j.node)))
        .collect();
    let mut done: BTreeSet<usize> = BTreeSet::new();
    let mut running: Vec<Running> = Vec::new();
    let mut seconds = BTreeMap::new();
    let mut failures: Vec<String> = Vec::new();
    loop {
        // Start what is ready, unless a job failed: then only the running ones finish.
        if failures.is_empty() {
            let mut ready: Vec<usize> = waiting
                .iter()
                .filter(|j| j.after.iter().all(|d| done.contains(d)))
                .map(|j| j.node)
                .collect();
            ready.sort_by_key(|n| (std::cmp::Reverse(priority[n]), *n));
            for n in ready.into_iter().take(jobs.saturating_sub(running.len())) {
                waiting.retain(|j| j.node != n);
                running.push(start(plan, exe, &plan_file, run_dir, n)?);
                let node = &plan.nodes[n];
                cx.say(&format!("  {:<9} {:<22} started", node.kind, node.id));
            }
        }
        if running.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        let mut still = Vec::new();
        for mut r in running {
            match r.child.try_wait().map_err(|e| Error::io(exe, e))? {
                None => still.push(r),
                Some(status) => {
                    let node = &plan.nodes[r.node];
                    let took = r.started.elapsed().as_secs_f64();
                    if status.success() {
                        done.insert(r.node);
                        seconds.insert(node.label(), took);
                        cx.say(&format!(
                            "  {:<9} {:<22} computed in {took:.1} s",
                            node.kind, node.id
                        ));
                    } else {
                        failures.push(job_failure(
                            &node.label(),
                            &format!("the job failed ({status})"),
                            &r.log,
                        ));
                    }
                }
            }
        }
        running = still;
    }
    if !failures.is_empty() {
        let not_run: Vec<String> = waiting.iter().map(|j| plan.nodes[j.node].label()).collect();
        let mut msg = failures.join("\n");
        if !not_run.is_empty() {
            msg += &format!("\nNot started: {}.", not_run.join(", "));
        }
        msg += &format!(
            "\nThe stages that completed are in the cache {}; rerun the same command to \
             compute only what is missing.",
            cache.root().display()
        );
        return Err(Error::msg(msg));
    }
    Ok(seconds)
}

fn start(
    plan: &RunPlan,
    exe: &Path,
    plan_file: &Path,
    run_dir: &Path,
    n: usize,
) -> Result<Running> {
    let log = logs_dir(run_dir).join(format!("{}.local.log", file_label(plan, n)));
    let file = std::fs::File::create(&log).at(&log)?;
    let err = file.try_clone().at(&log)?;
    let child = Command::new(exe)
        .arg("stage")
        .arg(plan_file)
        .arg("--node")
        .arg(plan.nodes[n].label())
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .spawn()
        .map_err(|e| Error::io(exe, e))?;
    Ok(Running {
        node: n,
        child,
        started: Instant::now(),
        log,
    })
}
