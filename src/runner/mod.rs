//! The runner: resolves a recipe's profile into a graph of typed stages (`stages`), then runs
//! it (`executor`): each stage identified by a [`StageHash`] of its spec, its inputs' identities
//! and the code it depends on (`code`), and cached by content, so a re-run recomputes only what
//! changed and an interrupted run resumes.

pub mod cache;
pub mod code;
pub mod dispatch;
pub mod executor;
pub mod graph;
pub mod platform;
pub mod run_plan;
pub mod stages;

pub use cache::{Cache, StageHash};
pub use code::CodeIndex;
pub use dispatch::ExecutorKind;
pub use executor::NodeStatus;
pub use platform::DeviceChoice;

use crate::error::{Error, Result};
use crate::recipe::{self, Plan};
use ascrepro_results::record::*;
use executor::Scope;
use graph::{Context, Graph};
use run_plan::{PlannedNode, RunPlan};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub struct RunOptions {
    pub recipe: PathBuf,
    pub profile: String,
    /// Report directory; default `reports/<recipe id>`.
    pub out: Option<PathBuf>,
    /// Cache directory; default `.cache/ascrepro` under the project.
    pub cache: Option<PathBuf>,
    /// Root of real datasets; default `data` under the project.
    pub data_root: Option<PathBuf>,
    /// libtorch intra-op threads per stage (part of the platform of numeric stages: results
    /// are identical only for equal counts).
    pub threads: usize,
    pub device: DeviceChoice,
    /// Who computes the stages: this process and its children, or Slurm.
    pub executor: ExecutorKind,
    /// Local executor: stages computed at once (1: in this process, one after another).
    pub jobs: usize,
    /// Slurm executor: submit and return without waiting.
    pub detach: bool,
    /// Slurm executor: the user asserts the cache is on a filesystem every node shares.
    pub shared_fs: bool,
    /// Directory relative recipe paths are read from; default the current directory.
    pub project: Option<PathBuf>,
    /// The ascrepro binary that jobs run; default this executable (tests name the CLI's).
    pub job_exe: Option<PathBuf>,
    pub quiet: bool,
    /// The code stage identities hash: this build's ([`CodeIndex::embedded`]) unless a test
    /// asks what an edit would recompute.
    pub code: CodeIndex,
}

impl RunOptions {
    /// Defaults for everything but the recipe and profile.
    pub fn new(recipe: impl Into<PathBuf>, profile: &str) -> RunOptions {
        RunOptions {
            recipe: recipe.into(),
            profile: profile.to_string(),
            out: None,
            cache: None,
            data_root: None,
            threads: 1,
            device: DeviceChoice::Auto,
            executor: ExecutorKind::Local,
            jobs: 1,
            detach: false,
            shared_fs: false,
            project: None,
            job_exe: None,
            quiet: false,
            code: CodeIndex::embedded(),
        }
    }
}

pub struct RunOutcome {
    pub out_dir: PathBuf,
    pub record: RunRecord,
    pub timings: Vec<StageTiming>,
    pub computed: usize,
    pub cached: usize,
}

/// The plan, its graph and the context to run it in.
struct Prepared {
    plan: Plan,
    graph: Graph,
    cache: Cache,
    project: PathBuf,
    data_root: PathBuf,
    out_dir: PathBuf,
    platform: std::collections::BTreeMap<String, String>,
}

/// What the process preparing a run does with it.
#[derive(Clone, Copy, PartialEq)]
enum Role {
    /// Computes stages here (or in child processes on this machine).
    Compute,
    /// Plans, submits, or writes the report from the cache: numeric stages run elsewhere.
    Plan,
}

/// `--device` as the run plans it: with Slurm, `auto` is the GPU for full-size (real-data)
/// profiles, whose training stages then ask for one, and the CPU for synthetic ones; elsewhere
/// `auto` is decided by what this machine sees.
fn planned_device(opts: &RunOptions, plan: &Plan) -> DeviceChoice {
    match (opts.executor, opts.device) {
        (ExecutorKind::Slurm, DeviceChoice::Auto) => {
            if plan.profile_spec.data.kind == recipe::DataKind::Tau2022 {
                DeviceChoice::Cuda
            } else {
                DeviceChoice::Cpu
            }
        }
        (_, d) => d,
    }
}

fn prepare(opts: &RunOptions, role: Role) -> Result<Prepared> {
    // Pinned before anything can touch libtorch (reading a recipe builds model configurations);
    // Slurm's `auto` is settled once the recipe says which data the profile runs on.
    let slurm_auto = opts.executor == ExecutorKind::Slurm && opts.device == DeviceChoice::Auto;
    let first = if slurm_auto {
        DeviceChoice::Cpu
    } else {
        opts.device
    };
    let mut platform = platform::pin(opts.threads, first, role == Role::Compute)?.clone();
    let plan = recipe::load(&opts.recipe, &opts.profile)?;
    if slurm_auto && planned_device(opts, &plan) == DeviceChoice::Cuda {
        platform.insert("device".into(), "cuda".into());
    }
    let project = match &opts.project {
        Some(p) => p.clone(),
        None => std::env::current_dir().map_err(|e| Error::io(".", e))?,
    };
    let cache = Cache::open(
        &opts
            .cache
            .clone()
            .unwrap_or_else(|| project.join(".cache/ascrepro")),
    )?;
    let data_root = opts
        .data_root
        .clone()
        .unwrap_or_else(|| project.join("data"));
    let out_dir = opts
        .out
        .clone()
        .unwrap_or_else(|| project.join("reports").join(&plan.recipe.id));
    let graph = stages::build(
        &plan,
        &project,
        &data_root,
        out_dir.clone(),
        &platform::code_version(),
    )?;
    Ok(Prepared {
        plan,
        graph,
        cache,
        project,
        data_root,
        out_dir,
        platform,
    })
}

impl Prepared {
    fn context(&self, quiet: bool) -> Context<'_> {
        Context {
            plan: &self.plan,
            cache: &self.cache,
            project: self.project.clone(),
            data_root: self.data_root.clone(),
            device: platform::device(),
            code_version: platform::code_version(),
            platform: self.platform.clone(),
            quiet,
        }
    }
}

/// Validates the recipe's profile and lists its stage graph (kind, inputs, identity, cached or
/// not) without computing anything.
pub fn plan(opts: &RunOptions) -> Result<Vec<NodeStatus>> {
    let p = prepare(opts, Role::Plan)?;
    Ok(executor::status(&p.graph, &p.context(true), &opts.code))
}

/// Writes the run plan of the recipe's profile (what `ascrepro stage` computes nodes of)
/// without computing anything; returns its file.
pub fn write_plan(opts: &RunOptions) -> Result<PathBuf> {
    let p = prepare(opts, Role::Plan)?;
    Ok(p.run_plan(opts)?.write()?.join(run_plan::PLAN_FILE))
}

impl Prepared {
    /// The resolved run plan of this graph: what every executor's jobs compute from.
    fn run_plan(&self, opts: &RunOptions) -> Result<RunPlan> {
        let hashes = executor::identities(&self.graph, &opts.code, &self.platform);
        let on_gpu = self.platform["device"] != "cpu";
        let last = self.graph.nodes.len() - 1;
        let absolute =
            |p: &Path| -> Result<PathBuf> { std::path::absolute(p).map_err(|e| Error::io(p, e)) };
        let nodes = self
            .graph
            .nodes
            .iter()
            .zip(hashes)
            .enumerate()
            .map(|(i, (s, hash))| PlannedNode {
                kind: s.kind().into(),
                id: s.id(),
                hash,
                needs: s.needs().into_iter().map(|n| n.0).collect(),
                stored: s.cached(),
                job: s.cached() && i != last,
                resources: recipe::resources::resolve(
                    &self.plan.profile_spec,
                    s.kind(),
                    on_gpu && s.numeric(),
                    opts.threads as u32,
                ),
            })
            .collect();
        Ok(RunPlan {
            format: RunPlan::FORMAT,
            recipe: absolute(&opts.recipe)?,
            recipe_sha256: crate::data::manifest::hash_file(&opts.recipe)?.1,
            recipe_id: self.plan.recipe.id.clone(),
            profile: self.plan.profile.clone(),
            project: absolute(&self.project)?,
            cache: absolute(self.cache.root())?,
            data_root: absolute(&self.data_root)?,
            out: absolute(&self.out_dir)?,
            threads: opts.threads,
            device: planned_device(opts, &self.plan),
            code_version: platform::code_version(),
            platform: self.platform.clone(),
            nodes,
        })
    }
}

/// Writes the run plan that jobs compute from, a storage fault explained as a stage's is.
fn write_run_plan(plan: &RunPlan, cache: &Cache) -> Result<PathBuf> {
    plan.write().map_err(|e| {
        executor::explain_storage_fault(cache, "writing the run plan", "no stage was started", e)
    })
}

fn job_exe(opts: &RunOptions) -> Result<PathBuf> {
    match &opts.job_exe {
        Some(p) => Ok(p.clone()),
        None => std::env::current_exe().map_err(|e| Error::io("the running executable", e)),
    }
}

/// What [`submit`] left running.
pub struct Submitted {
    pub run_dir: PathBuf,
    /// `kind:id` and Slurm job id of every stage job waited for.
    pub jobs: Vec<(String, String)>,
}

/// Runs the recipe's profile end to end and writes the report. With the local executor and
/// `jobs` > 1, or with Slurm, the stages are computed by `ascrepro stage` jobs first; the report
/// is then written here from the cache, by the same code as a one-process run, so every
/// executor gives the same bytes.
pub fn run(opts: &RunOptions) -> Result<RunOutcome> {
    let started = Instant::now();
    let p = prepare(
        opts,
        if opts.executor == ExecutorKind::Slurm {
            Role::Plan
        } else {
            Role::Compute
        },
    )?;
    // Refused now rather than after the training: `render` would refuse it at the end.
    crate::report::check_out_dir(&p.out_dir)?;
    let cx = p.context(opts.quiet);
    cx.say(&format!(
        "ascrepro: {} (profile {}) on {}, {} thread(s) per stage",
        p.plan.recipe.id, p.plan.profile, cx.platform["device"], cx.platform["threads"]
    ));
    let run_plan = p.run_plan(opts)?;
    let in_process = opts.executor == ExecutorKind::Local && opts.jobs <= 1;
    let hashes: Vec<String> = run_plan.nodes.iter().map(|n| n.hash.clone()).collect();
    if !in_process {
        // Before handing out jobs: a damaged entry is a job to run, not an input to trust.
        executor::discard_damaged(&p.graph, &p.cache, &hashes)?;
    }
    let pending = dispatch::pending(&run_plan, &p.cache);
    if !pending.is_empty() && !in_process {
        executor::check_writable(&p.graph, &cx, &hashes, None)?;
    }
    let jobs_seconds = match opts.executor {
        _ if in_process => BTreeMap::new(),
        // All cached: nothing to hand out (and a read-only cache is enough).
        _ if pending.is_empty() => BTreeMap::new(),
        ExecutorKind::Local => {
            let run_dir = write_run_plan(&run_plan, &p.cache)?;
            cx.say(&format!(
                "  {} stage(s) at once; plan and logs: {}",
                opts.jobs,
                run_dir.display()
            ));
            dispatch::local::run(
                &run_plan,
                &run_dir,
                &p.cache,
                &job_exe(opts)?,
                opts.jobs,
                &cx,
            )?
        }
        ExecutorKind::Slurm => {
            let slurm =
                dispatch::slurm::Slurm::connect(&run_plan, &job_exe(opts)?, opts.shared_fs)?;
            let run_dir = write_run_plan(&run_plan, &p.cache)?;
            let submitted = slurm.submit(&run_plan, &run_dir, &p.cache, &cx)?;
            slurm.wait(&run_plan, &run_dir, &p.cache, &submitted, &cx)?
        }
    };
    let (outs, computed) = executor::execute(&p.graph, &cx, &opts.code, Scope::All, &jobs_seconds)?;
    let report = *p.graph.all().last().expect("the report is the last node");
    let record = outs.report(report).as_ref().clone();
    crate::report::write_timings(&record, &outs.timings, &p.out_dir)?;
    // A report written into a site (`reports/<id>`): the site index over it is rewritten.
    if let Some(index) = crate::report::site::update_after_run(&p.out_dir)? {
        cx.say(&format!("Site index: {}", index.display()));
    }
    let total = outs.timings.len();
    let cached = total - computed;
    if computed == 0 {
        cx.say(&format!(
            "All {total} stages were cached: nothing recomputed ({:.1} s). Report: {}",
            started.elapsed().as_secs_f64(),
            p.out_dir.display()
        ));
    } else {
        cx.say(&format!(
            "{computed} of {total} stages computed, {cached} cached ({:.1} s). Report: {}",
            started.elapsed().as_secs_f64(),
            p.out_dir.display()
        ));
    }
    Ok(RunOutcome {
        out_dir: p.out_dir.clone(),
        record,
        timings: outs.timings,
        computed,
        cached,
    })
}

/// Slurm with `--detach`: submits every stage job not yet computed and returns. `ascrepro
/// status` follows them; running `ascrepro run` again writes the report once they are done.
pub fn submit(opts: &RunOptions) -> Result<Submitted> {
    let p = prepare(opts, Role::Plan)?;
    crate::report::check_out_dir(&p.out_dir)?;
    let cx = p.context(opts.quiet);
    let run_plan = p.run_plan(opts)?;
    let run_dir = write_run_plan(&run_plan, &p.cache)?;
    let slurm = dispatch::slurm::Slurm::connect(&run_plan, &job_exe(opts)?, opts.shared_fs)?;
    let jobs = slurm.submit(&run_plan, &run_dir, &p.cache, &cx)?;
    Ok(Submitted { run_dir, jobs })
}

/// `ascrepro stage`: computes one node of a run plan into the cache, refusing if its inputs
/// are not there, if the recipe changed since the plan was made, or if this binary or machine
/// would give the node another identity than the plan's. A node already cached is left as it
/// is.
pub fn compute_stage(plan_path: &Path, node: &str, quiet: bool) -> Result<()> {
    let (rp, _dir) = RunPlan::load(plan_path)?;
    let index = rp.find(node)?;
    let recipe_now = crate::data::manifest::hash_file(&rp.recipe)?.1;
    if recipe_now != rp.recipe_sha256 {
        return Err(Error::file(
            &rp.recipe,
            "the recipe changed since the run plan was made: rerun `ascrepro run` to plan it again",
        ));
    }
    if rp.code_version != platform::code_version() {
        return Err(Error::msg(format!(
            "the run plan was made by ascrepro {} and this is {}: run the jobs with the binary \
             that made the plan (on a cluster, one on the shared filesystem)",
            rp.code_version,
            platform::code_version()
        )));
    }
    let opts = RunOptions {
        out: Some(rp.out.clone()),
        cache: Some(rp.cache.clone()),
        data_root: Some(rp.data_root.clone()),
        threads: rp.threads,
        device: rp.device,
        project: Some(rp.project.clone()),
        quiet,
        ..RunOptions::new(rp.recipe.clone(), &rp.profile)
    };
    let p = prepare(&opts, Role::Compute)?;
    if p.platform != rp.platform {
        let differs: Vec<String> = rp
            .platform
            .iter()
            .filter(|(k, v)| p.platform.get(*k) != Some(v))
            .map(|(k, v)| {
                format!(
                    "{k}: plan {v}, here {}",
                    p.platform.get(k).map_or("-", String::as_str)
                )
            })
            .collect();
        return Err(Error::msg(format!(
            "this machine's numeric platform differs from the run plan's ({}): its results \
             would not be the planned stage's. Run the job where the plan's platform holds \
             (e.g. ask for a GPU in the profile's resources), or plan again here.",
            differs.join("; ")
        )));
    }
    let hashes = executor::identities(&p.graph, &opts.code, &p.platform);
    if hashes.len() != rp.nodes.len() || hashes.iter().zip(&rp.nodes).any(|(h, n)| *h != n.hash) {
        return Err(Error::msg(
            "the stage graph made here differs from the run plan's (a data manifest or the \
             recipe's inputs changed): rerun `ascrepro run` to plan it again",
        ));
    }
    let cx = p.context(quiet);
    executor::execute(
        &p.graph,
        &cx,
        &opts.code,
        Scope::Only(graph::NodeId(index)),
        &BTreeMap::new(),
    )?;
    Ok(())
}

/// `ascrepro status`: every stage job of the run in `run` (its directory or plan file), from the
/// cache and, for Slurm jobs, the scheduler.
pub fn status(run: &Path) -> Result<String> {
    let (rp, dir) = RunPlan::load(run)?;
    let cache = Cache::open(&rp.cache)?;
    dispatch::status(&rp, &dir, &cache)
}

/// Writes the logits of recipe stage `stage`'s model on every training clip to `out` (CSV or
/// parquet by its extension; the format a `{kind: logits}` teacher reads), computing only the
/// stages it needs. Returns the file's SHA-256, which the recipe names.
pub fn export_logits(opts: &RunOptions, stage: &str, out: &std::path::Path) -> Result<String> {
    let p = prepare(opts, Role::Compute)?;
    let model = p.graph.model_of(stage).map_err(|_| {
        Error::msg(format!(
            "stage `{stage}` makes no model in profile `{}` (it runs: {})",
            p.plan.profile,
            p.plan.profile_spec.stages.join(", ")
        ))
    })?;
    let (data, features) = p.graph.inputs();
    let cx = p.context(opts.quiet);
    let (outs, _) = executor::execute(
        &p.graph,
        &cx,
        &opts.code,
        Scope::Upstream(&[model, features]),
        &BTreeMap::new(),
    )?;
    let clips: Vec<String> = outs
        .data(data)
        .dataset
        .train
        .iter()
        .map(|c| c.file.clone())
        .collect();
    let weights = outs.model(model).weights.clone();
    let logits = crate::train::distill::teacher_logits(
        &[&weights],
        &outs.features(features).train,
        cx.device,
    )?;
    crate::train::distill::write_logits(out, &clips, &logits)?;
    Ok(crate::data::manifest::hash_file(out)?.1)
}
