//! The runner: resolves a recipe's profile into a graph of typed stages (`stages`), then runs
//! it (`executor`): each stage identified by a [`StageHash`] of its spec, its inputs' identities
//! and the code it depends on (`code`), and cached by content, so a re-run recomputes only what
//! changed and an interrupted run resumes.

pub mod cache;
pub mod code;
pub mod executor;
pub mod graph;
pub mod platform;
pub mod stages;

pub use cache::{Cache, StageHash};
pub use code::CodeIndex;
pub use executor::NodeStatus;

use crate::error::{Error, Result};
use crate::recipe::{self, Plan};
use crate::results::*;
use graph::{Context, Graph};
use std::path::PathBuf;
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
    /// libtorch intra-op threads (part of the platform: results are identical only for equal counts).
    pub threads: usize,
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

fn prepare(opts: &RunOptions) -> Result<Prepared> {
    let platform = platform::pin(opts.threads).clone();
    let plan = recipe::load(&opts.recipe, &opts.profile)?;
    let project = std::env::current_dir().map_err(|e| Error::io(".", e))?;
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
    let p = prepare(opts)?;
    Ok(executor::status(&p.graph, &p.context(true), &opts.code))
}

/// Runs the recipe's profile end to end and writes the report.
pub fn run(opts: &RunOptions) -> Result<RunOutcome> {
    let started = Instant::now();
    let p = prepare(opts)?;
    // Refused now rather than after the training: `render` would refuse it at the end.
    crate::report::check_out_dir(&p.out_dir)?;
    let cx = p.context(opts.quiet);
    cx.say(&format!(
        "ascrepro: {} (profile {}) on {}, {} thread(s)",
        p.plan.recipe.id, p.plan.profile, cx.platform["device"], cx.platform["threads"]
    ));
    let (outs, computed) = executor::execute(&p.graph, &cx, &opts.code, None)?;
    let report = *p.graph.all().last().expect("the report is the last node");
    let record = outs.report(report).as_ref().clone();
    crate::report::write_timings(&record, &outs.timings, &p.out_dir)?;
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

/// Writes the logits of recipe stage `stage`'s model on every training clip to `out` (CSV or
/// parquet by its extension; the format a `{kind: logits}` teacher reads), computing only the
/// stages it needs. Returns the file's SHA-256, which the recipe names.
pub fn export_logits(opts: &RunOptions, stage: &str, out: &std::path::Path) -> Result<String> {
    let p = prepare(opts)?;
    let model = p.graph.model_of(stage).map_err(|_| {
        Error::msg(format!(
            "stage `{stage}` makes no model in profile `{}` (it runs: {})",
            p.plan.profile,
            p.plan.profile_spec.stages.join(", ")
        ))
    })?;
    let (data, features) = p.graph.inputs();
    let cx = p.context(opts.quiet);
    let (outs, _) = executor::execute(&p.graph, &cx, &opts.code, Some(&[model, features]))?;
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
