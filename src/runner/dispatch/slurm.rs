//! The Slurm executor: every stage job not yet in the cache becomes an `sbatch` job running
//! `ascrepro stage`, with `--dependency=afterok:` on the jobs of its inputs and the resources
//! its profile gives its kind. The cache (and the run directory in it, which holds the plan,
//! the job scripts and the logs) must be on a filesystem the nodes share. Submissions are
//! recorded in the run directory, so a rerun waits on jobs still queued rather than submitting
//! them twice, and resubmits only what is neither cached nor queued.

use super::{file_label, job_failure, logs_dir, pending};
use crate::error::{Error, IoContext, Result};
use crate::runner::cache::Cache;
use crate::runner::graph::Context;
use crate::runner::run_plan::{RunPlan, PLAN_FILE};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const SUBMISSIONS: &str = "jobs.tsv";

pub struct Slurm {
    exe: PathBuf,
}

/// A job's state as the scheduler reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobState {
    pub state: String,
    pub reason: String,
    /// Seconds it has run (or ran).
    pub elapsed: Option<f64>,
}

impl JobState {
    /// Queued or running (including the states between).
    pub fn live(&self) -> bool {
        matches!(
            self.state.as_str(),
            "PENDING"
                | "RUNNING"
                | "CONFIGURING"
                | "COMPLETING"
                | "SUSPENDED"
                | "REQUEUED"
                | "REQUEUE_HOLD"
                | "REQUEUE_FED"
                | "RESIZING"
                | "SIGNALING"
                | "STAGE_OUT"
        )
    }

    /// Ended without success.
    pub fn failed(&self) -> bool {
        !self.live() && self.state != "COMPLETED"
    }

    pub fn describe(&self) -> String {
        let mut s = self.state.to_lowercase();
        if !self.reason.is_empty() && self.reason != "None" {
            s += &format!(" ({})", self.reason);
        }
        if let Some(e) = self.elapsed.filter(|_| self.state != "PENDING") {
            s += &format!(", {e:.0} s");
        }
        s
    }
}

/// The jobs submitted for a run, oldest first (`jobs.tsv` in its directory: label, job id).
#[derive(Default)]
pub struct Submissions(Vec<(String, String)>);

impl Submissions {
    pub fn read(run_dir: &Path) -> Result<Submissions> {
        let path = run_dir.join(SUBMISSIONS);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Submissions::default()),
            Err(e) => return Err(Error::io(&path, e)),
        };
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let Some((label, id)) = line.split_once('\t') else {
                return Err(Error::input(
                    &path,
                    Some(i + 1),
                    None,
                    "expected `label<TAB>job id`",
                ));
            };
            out.push((label.to_string(), id.to_string()));
        }
        Ok(Submissions(out))
    }

    fn append(&mut self, run_dir: &Path, label: &str, id: &str) -> Result<()> {
        use std::io::Write;
        let path = run_dir.join(SUBMISSIONS);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .at(&path)?;
        writeln!(f, "{label}\t{id}").at(&path)?;
        self.0.push((label.to_string(), id.to_string()));
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The newest job id submitted for `label`.
    pub fn latest(&self, label: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(l, _)| l == label)
            .map(|(_, id)| id.as_str())
    }

    pub fn latest_ids(&self) -> Vec<String> {
        let mut labels: Vec<&str> = self.0.iter().map(|(l, _)| l.as_str()).collect();
        labels.dedup();
        let mut ids: Vec<String> = labels
            .iter()
            .filter_map(|l| self.latest(l))
            .map(str::to_string)
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

/// Where job `id` of node `n` writes its output.
pub fn log_path(run_dir: &Path, plan: &RunPlan, n: usize, id: &str) -> PathBuf {
    logs_dir(run_dir).join(format!("{}.{id}.log", file_label(plan, n)))
}

fn slurm_command(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program).args(args).output().map_err(|e| {
        Error::msg(format!(
            "--executor slurm: cannot run `{program}` ({e}); run on a machine where Slurm's \
             commands are on the PATH (a cluster's login node)"
        ))
    })?;
    if !out.status.success() {
        return Err(Error::msg(format!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The states of `ids` the scheduler still knows: `squeue` for live jobs, then `scontrol`
/// (jobs ended within MinJobAge), then `sacct` where accounting is on.
pub fn job_states(ids: &[String]) -> BTreeMap<String, JobState> {
    let mut states = BTreeMap::new();
    if ids.is_empty() {
        return states;
    }
    if let Ok(text) = slurm_command("squeue", &["-h", "-o", "%i|%T|%r|%M"]) {
        for line in text.lines() {
            let f: Vec<&str> = line.trim().split('|').collect();
            if f.len() == 4 && ids.iter().any(|id| id == f[0]) {
                states.insert(
                    f[0].to_string(),
                    JobState {
                        state: f[1].to_string(),
                        reason: f[2].to_string(),
                        elapsed: parse_duration(f[3]),
                    },
                );
            }
        }
    }
    let unlisted: Vec<&String> = ids.iter().filter(|id| !states.contains_key(*id)).collect();
    for id in unlisted {
        if let Ok(text) = slurm_command("scontrol", &["show", "job", "-o", id]) {
            let field = |name: &str| {
                text.split_whitespace()
                    .find_map(|kv| kv.strip_prefix(name))
                    .map(str::to_string)
            };
            if let Some(state) = field("JobState=") {
                states.insert(
                    id.clone(),
                    JobState {
                        state,
                        reason: field("Reason=").unwrap_or_default(),
                        elapsed: field("RunTime=").and_then(|t| parse_duration(&t)),
                    },
                );
                continue;
            }
        }
        if let Ok(text) = slurm_command(
            "sacct",
            &["-n", "-P", "-X", "-j", id, "-o", "State,Elapsed"],
        ) {
            if let Some((state, elapsed)) = text.lines().next().and_then(|l| l.split_once('|')) {
                // sacct says "CANCELLED by 0": the state is the first word.
                let state = state.split_whitespace().next().unwrap_or("").to_string();
                if !state.is_empty() {
                    states.insert(
                        id.clone(),
                        JobState {
                            state,
                            reason: String::new(),
                            elapsed: parse_duration(elapsed),
                        },
                    );
                }
            }
        }
    }
    states
}

/// Slurm's elapsed times: `M:SS`, `H:MM:SS`, `D-HH:MM:SS`.
fn parse_duration(s: &str) -> Option<f64> {
    let (days, rest) = match s.split_once('-') {
        Some((d, r)) => (d.parse::<f64>().ok()?, r),
        None => (0.0, s),
    };
    let mut secs = 0.0;
    for part in rest.split(':') {
        secs = secs * 60.0 + part.parse::<f64>().ok()?;
    }
    Some(days * 86400.0 + secs)
}

impl Slurm {
    /// Checks that Slurm answers and that its nodes can see the cache and this binary.
    pub fn connect(plan: &RunPlan, exe: &Path, shared_fs: bool) -> Result<Slurm> {
        slurm_command("sbatch", &["--version"])?;
        let nodes = slurm_command("sinfo", &["-h", "-N", "-o", "%n %o"])?;
        let remote: Vec<String> = nodes
            .lines()
            .flat_map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .filter(|n| !is_this_host(n))
            .collect();
        if !remote.is_empty() && !shared_fs {
            for (what, path) in [("cache", plan.cache.as_path()), ("ascrepro binary", exe)] {
                if let Some(fs) = local_filesystem(path) {
                    return Err(Error::msg(format!(
                        "--executor slurm: the {what} {} is on a local filesystem ({fs}), but \
                         the cluster has other nodes ({}): their jobs would not see it. Put \
                         --cache (and the binary) on a filesystem every node mounts, or pass \
                         --shared-fs if it is shared in a way this check does not recognise.",
                        path.display(),
                        remote.join(", ")
                    )));
                }
            }
        }
        Ok(Slurm {
            exe: exe.to_path_buf(),
        })
    }

    /// Submits every pending stage job that has no job still queued or running, chained to its
    /// inputs' jobs; returns every job to wait for, by label.
    pub fn submit(
        &self,
        plan: &RunPlan,
        run_dir: &Path,
        cache: &Cache,
        cx: &Context,
    ) -> Result<Vec<(String, String)>> {
        let mut submissions = Submissions::read(run_dir)?;
        let live = job_states(&submissions.latest_ids());
        let mut ids: BTreeMap<usize, String> = BTreeMap::new();
        for job in pending(plan, cache) {
            let node = &plan.nodes[job.node];
            let label = node.label();
            if let Some(id) = submissions
                .latest(&label)
                .filter(|id| live.get(*id).is_some_and(JobState::live))
            {
                cx.say(&format!(
                    "  {:<9} {:<22} already queued (job {id})",
                    node.kind, node.id
                ));
                ids.insert(job.node, id.to_string());
                continue;
            }
            let after: Vec<&str> = job.after.iter().map(|d| ids[d].as_str()).collect();
            let script = self.script(plan, run_dir, job.node)?;
            let mut args = vec![
                "--parsable".to_string(),
                "--kill-on-invalid-dep=yes".to_string(),
            ];
            if !after.is_empty() {
                args.push(format!("--dependency=afterok:{}", after.join(":")));
            }
            args.push(script.to_string_lossy().into_owned());
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = slurm_command("sbatch", &refs)?;
            // --parsable prints `id` or `id;cluster`.
            let id = out.trim().split(';').next().unwrap_or("").to_string();
            if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Error::msg(format!(
                    "sbatch printed no job id: `{}`",
                    out.trim()
                )));
            }
            submissions.append(run_dir, &label, &id)?;
            cx.say(&format!(
                "  {:<9} {:<22} submitted as job {id}",
                node.kind, node.id
            ));
            ids.insert(job.node, id);
        }
        Ok(ids
            .into_iter()
            .map(|(n, id)| (plan.nodes[n].label(), id))
            .collect())
    }

    /// The batch script of node `n`: its resources as `#SBATCH` lines, then `ascrepro stage`.
    fn script(&self, plan: &RunPlan, run_dir: &Path, n: usize) -> Result<PathBuf> {
        let node = &plan.nodes[n];
        let r = &node.resources;
        let quote = |p: &Path| format!("'{}'", p.to_string_lossy().replace('\'', "'\\''"));
        let mut s = String::from("#!/bin/sh\n");
        // `<recipe>.<kind>.<stage>`: what squeue shows.
        s += &format!(
            "#SBATCH --job-name={}.{}\n",
            plan.recipe_id,
            file_label(plan, n).replacen('-', ".", 1)
        );
        let log = logs_dir(run_dir).join(format!("{}.%j.log", file_label(plan, n)));
        s += &format!("#SBATCH --output={}\n", log.display());
        s += &format!("#SBATCH --cpus-per-task={}\n", r.cpus);
        s += &format!("#SBATCH --mem={}\n", r.mem);
        s += &format!("#SBATCH --time={}\n", r.time);
        if r.gpus > 0 {
            s += &format!("#SBATCH --gres=gpu:{}\n", r.gpus);
        }
        if let Some(p) = &r.partition {
            s += &format!("#SBATCH --partition={p}\n");
        }
        s += &format!(
            "exec {} stage {} --node '{}'\n",
            quote(&self.exe),
            quote(&run_dir.join(PLAN_FILE)),
            node.label().replace('\'', "'\\''")
        );
        let dir = run_dir.join("jobs");
        std::fs::create_dir_all(&dir).at(&dir)?;
        let path = dir.join(format!("{}.sh", file_label(plan, n)));
        std::fs::write(&path, s).at(&path)?;
        Ok(path)
    }

    /// Waits for `jobs` to end, saying when each starts and ends; returns each computed
    /// stage's run time by label. A failed or cancelled job is reported with its log's tail.
    pub fn wait(
        &self,
        plan: &RunPlan,
        run_dir: &Path,
        cache: &Cache,
        jobs: &[(String, String)],
        cx: &Context,
    ) -> Result<BTreeMap<String, f64>> {
        let index: BTreeMap<String, usize> = plan
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.label(), i))
            .collect();
        let mut open: Vec<(String, String)> = jobs.to_vec();
        let mut seen_running: Vec<String> = Vec::new();
        let mut seconds = BTreeMap::new();
        let mut failures = Vec::new();
        while !open.is_empty() {
            let ids: Vec<String> = open.iter().map(|(_, id)| id.clone()).collect();
            let states = job_states(&ids);
            let mut still = Vec::new();
            for (label, id) in open {
                let n = index[&label];
                let node = &plan.nodes[n];
                match states.get(&id) {
                    Some(s) if s.live() => {
                        if s.state == "RUNNING" && !seen_running.contains(&id) {
                            seen_running.push(id.clone());
                            cx.say(&format!(
                                "  {:<9} {:<22} running (job {id})",
                                node.kind, node.id
                            ));
                        }
                        still.push((label, id));
                    }
                    state => {
                        let took = state.and_then(|s| s.elapsed).unwrap_or(0.0);
                        if super::is_cached(plan, cache, n) {
                            cx.say(&format!(
                                "  {:<9} {:<22} computed in {took:.1} s (job {id})",
                                node.kind, node.id
                            ));
                            seconds.insert(label, took);
                        } else {
                            let what = state.map_or("ended".to_string(), |s| s.describe());
                            failures.push(job_failure(
                                &label,
                                &format!("job {id} {what} without a result"),
                                &log_path(run_dir, plan, n, &id),
                            ));
                        }
                    }
                }
            }
            open = still;
            if !open.is_empty() {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        if !failures.is_empty() {
            return Err(Error::msg(format!(
                "{}\nThe stages that completed are in the cache {}; rerun the same command to \
                 submit only what is missing.",
                failures.join("\n"),
                cache.root().display()
            )));
        }
        Ok(seconds)
    }
}

fn is_this_host(name: &str) -> bool {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into the buffer.
    let host = if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        String::new()
    };
    name == "localhost" || name.starts_with("127.") || name == "::1" || name == host
}

/// The filesystem type of `path` when it is one only this machine sees (None: a network or
/// cluster filesystem, or one this check does not know, which gets the benefit of the doubt).
fn local_filesystem(path: &Path) -> Option<&'static str> {
    let probe = path
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    let c = std::ffi::CString::new(probe.to_string_lossy().as_bytes()).ok()?;
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and `st` a properly sized out-parameter.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    local_type(st.f_type as i64)
}

/// Local filesystems by their statfs magic numbers (linux/magic.h).
fn local_type(magic: i64) -> Option<&'static str> {
    Some(match magic {
        0xEF53 => "ext4",
        0x5846_5342 => "xfs",
        0x9123_683E => "btrfs",
        0x0102_1994 => "tmpfs",
        0x794C_7630 => "overlayfs",
        0x2FC1_2FC1 => "zfs",
        0xF2F5_2010 => "f2fs",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slurm_durations_and_states() {
        assert_eq!(parse_duration("1:05"), Some(65.0));
        assert_eq!(parse_duration("01:00:05"), Some(3605.0));
        assert_eq!(parse_duration("2-00:00:01"), Some(172801.0));
        assert_eq!(parse_duration("INVALID"), None);
        let s = |state: &str| JobState {
            state: state.into(),
            reason: String::new(),
            elapsed: None,
        };
        assert!(s("PENDING").live() && !s("PENDING").failed());
        assert!(!s("COMPLETED").live() && !s("COMPLETED").failed());
        for ended in [
            "CANCELLED",
            "FAILED",
            "TIMEOUT",
            "OUT_OF_MEMORY",
            "NODE_FAIL",
        ] {
            assert!(s(ended).failed(), "{ended}");
        }
    }

    #[test]
    fn local_and_shared_filesystems() {
        assert_eq!(local_type(0xEF53), Some("ext4"));
        assert_eq!(local_type(0x0102_1994), Some("tmpfs"));
        // NFS, Lustre, GPFS, BeeGFS: shared.
        for shared in [0x6969, 0x0BD0_0BD0, 0x4750_4653, 0x1983_0326] {
            assert_eq!(local_type(shared), None);
        }
    }
}
