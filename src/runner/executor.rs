//! The generic executor: computes every node's identity, then runs the graph in dependency
//! order, each node from the cache or computed under its lock, and logs what it did. It knows
//! no stage's internals.

use super::cache::{Cache, Notice, StageHash};
use super::code::CodeIndex;
use super::graph::{Context, Graph, NodeId, Outputs};
use crate::error::{Error, Result};
use ascrepro_results::record::{StageRecord, StageTiming};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Instant;

/// One node as `plan` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeStatus {
    pub kind: &'static str,
    pub id: String,
    /// `kind:id` of the nodes it reads.
    pub needs: Vec<String>,
    pub hash: String,
    /// True when the cache holds it complete (always false for nodes that are not cached).
    pub cached: bool,
    /// False for nodes loaded in memory only.
    pub stored: bool,
}

/// Each node's identity, in graph order: its kind, its spec, the code it depends on, the
/// platform where it is numeric, and the identities of the nodes it reads. Computes nothing.
pub fn identities(
    graph: &Graph,
    code: &CodeIndex,
    platform: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut hashes: Vec<String> = Vec::with_capacity(graph.nodes.len());
    for s in &graph.nodes {
        let mut h = StageHash::new(s.kind()).part("code", &code.hash(s.code()));
        if s.numeric() {
            h = h.json("platform", platform);
        }
        for n in s.needs() {
            h = h.part(graph.stage(n).kind(), &hashes[n.0]);
        }
        hashes.push(s.identity(h).finish());
    }
    hashes
}

fn label(graph: &Graph, n: NodeId) -> String {
    let s = graph.stage(n);
    format!("{}:{}", s.kind(), s.id())
}

/// What `plan` prints: every node with its inputs, identity, and whether it is cached.
pub fn status(graph: &Graph, cx: &Context, code: &CodeIndex) -> Vec<NodeStatus> {
    let hashes = identities(graph, code, &cx.platform);
    graph
        .nodes
        .iter()
        .zip(hashes)
        .map(|(s, hash)| NodeStatus {
            kind: s.kind(),
            id: s.id(),
            needs: s.needs().into_iter().map(|n| label(graph, n)).collect(),
            cached: s.cached() && cx.cache.get(s.kind(), &hash).is_some(),
            stored: s.cached(),
            hash,
        })
        .collect()
}

/// The nodes `targets` read, directly or not, and the targets themselves.
fn upstream(graph: &Graph, targets: &[NodeId]) -> BTreeSet<NodeId> {
    let mut wanted: BTreeSet<NodeId> = targets.iter().copied().collect();
    // Needs always come before their readers, so one backward pass closes the set.
    for i in (0..graph.nodes.len()).rev() {
        if wanted.contains(&NodeId(i)) {
            wanted.extend(graph.nodes[i].needs());
        }
    }
    wanted
}

/// What a run says of a damaged entry it discards: even when quiet, as it is about the user's
/// files, not progress.
pub(super) fn damaged_notice(kind: &str, id: &str, why: &str) -> String {
    format!("  cache     damaged entry of {kind} `{id}` discarded ({why}); recomputing it")
}

/// Discards every damaged entry of the graph's stored nodes (saying so), so that executors
/// hand them out as jobs; a verified entry is left as it is.
pub(super) fn discard_damaged(graph: &Graph, cache: &Cache, hashes: &[String]) -> Result<()> {
    for (s, hash) in graph.nodes.iter().zip(hashes).filter(|(s, _)| s.cached()) {
        if let Some(why) = cache.discard_if_damaged(s.kind(), hash)? {
            eprintln!("{}", damaged_notice(s.kind(), &s.id(), &why));
        }
    }
    Ok(())
}

/// Refuses to compute `node` unless every stored node it reads is complete in the cache.
fn check_inputs_cached(
    graph: &Graph,
    cx: &Context,
    hashes: &[String],
    node: NodeId,
    wanted: &BTreeSet<NodeId>,
) -> Result<()> {
    let missing: Vec<String> = wanted
        .iter()
        .filter(|&&n| n != node)
        .filter(|&&n| {
            let s = graph.stage(n);
            s.cached() && cx.cache.get(s.kind(), &hashes[n.0]).is_none()
        })
        .map(|&n| label(graph, n))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::msg(format!(
        "stage {} was not computed: its input(s) {} are not in the cache {}. A stage job runs \
         after the jobs of its inputs; run the whole plan with `ascrepro run` (any \
         executor), which computes the inputs first.",
        label(graph, node),
        missing.join(", "),
        cx.cache.root().display()
    )))
}

/// Refuses, before anything is computed, a run that must write into a cache it cannot write.
pub(super) fn check_writable(
    graph: &Graph,
    cx: &Context,
    hashes: &[String],
    wanted: Option<&BTreeSet<NodeId>>,
) -> Result<()> {
    let todo: Vec<String> = (0..graph.nodes.len())
        .filter(|&i| wanted.is_none_or(|w| w.contains(&NodeId(i))))
        .filter(|&i| {
            let s = graph.stage(NodeId(i));
            s.cached() && cx.cache.get(s.kind(), &hashes[i]).is_none()
        })
        .map(|i| label(graph, NodeId(i)))
        .collect();
    if todo.is_empty() {
        return Ok(());
    }
    cx.cache.check_writable().map_err(|e| {
        Error::msg(format!(
            "the cache {} cannot be written ({e}), and {} stage(s) need computing ({}). \
             Nothing was computed and the cache is unchanged: make it writable or pass \
             --cache with a writable directory, then rerun.",
            cx.cache.root().display(),
            todo.len(),
            todo.join(", ")
        ))
    })
}

/// Which nodes [`execute`] runs.
#[derive(Clone, Copy)]
pub enum Scope<'a> {
    /// Every node: a whole run.
    All,
    /// The targets and what they read, computing whatever is missing.
    Upstream(&'a [NodeId]),
    /// One node, computed if missing, from inputs that must all be in the cache already
    /// (`ascrepro stage`, what every executor's job runs).
    Only(NodeId),
}

/// Runs the nodes of `scope` in order; returns their artefacts and how many were computed.
/// `ran`: stages this run's jobs computed (by `kind:id`, with their seconds), logged and
/// timed as computed rather than as found in the cache; their lines were said as they ended.
pub fn execute(
    graph: &Graph,
    cx: &Context,
    code: &CodeIndex,
    scope: Scope,
    ran: &BTreeMap<String, f64>,
) -> Result<(Outputs, usize)> {
    let hashes = identities(graph, code, &cx.platform);
    let wanted = match scope {
        Scope::All => None,
        Scope::Upstream(targets) => Some(upstream(graph, targets)),
        Scope::Only(node) => {
            let wanted = upstream(graph, &[node]);
            check_inputs_cached(graph, cx, &hashes, node, &wanted)?;
            Some(wanted)
        }
    };
    check_writable(graph, cx, &hashes, wanted.as_ref())?;
    let mut outs = Outputs::default();
    let mut computed = 0;
    for (i, (s, hash)) in graph.nodes.iter().zip(&hashes).enumerate() {
        let node = NodeId(i);
        if wanted.as_ref().is_some_and(|w| !w.contains(&node)) {
            continue;
        }
        outs.hashes.insert(node, hash.clone());
        outs.current = Some(hash.clone());
        let (kind, id) = (s.kind(), s.id());
        let artefact = if s.cached() {
            let t0 = Instant::now();
            let (entry, fresh) = cx
                .cache
                .get_or_compute(
                    kind,
                    hash,
                    |notice| match notice {
                        Notice::Waiting => cx.say(&format!(
                            "  {kind:<9} {id:<22} waiting for another run computing it"
                        )),
                        // Shown even when quiet: it is about the user's files, not progress.
                        Notice::Damaged(why) => eprintln!("{}", damaged_notice(kind, &id, &why)),
                    },
                    |dir| s.reusable(cx, dir),
                    |dir| s.produce(cx, &outs, dir),
                )
                .map_err(|e| explain_fault(cx.cache, kind, &id, e))?;
            let by_job = ran.get(&format!("{kind}:{id}")).copied();
            let fresh = fresh || by_job.is_some();
            let seconds = by_job.unwrap_or_else(|| t0.elapsed().as_secs_f64());
            if by_job.is_none() {
                cx.say(&format!(
                    "  {kind:<9} {id:<22} {}",
                    if fresh {
                        format!("computed in {seconds:.1} s")
                    } else {
                        "cached".to_string()
                    }
                ));
            }
            computed += usize::from(fresh);
            outs.timings.push(StageTiming {
                kind: kind.to_string(),
                id: id.clone(),
                seconds,
                cached: !fresh,
            });
            let artefact = s.load(cx, &outs, Some(&entry.dir))?;
            outs.records.push(StageRecord {
                id,
                kind: kind.to_string(),
                hash: hash.clone(),
                needs: s.needs().into_iter().map(|n| label(graph, n)).collect(),
                outputs: entry.output_hashes(),
            });
            artefact
        } else {
            s.load(cx, &outs, None)?
        };
        let systems = s.systems(&artefact, &outs)?;
        outs.systems.extend(systems);
        outs.artefacts.insert(node, artefact);
    }
    Ok((outs, computed))
}

/// A stage that failed on a storage fault (full disk, read-only or unwritable file system, I/O
/// error): the stage, the path, the OS error, that the cache is intact and how to resume.
/// Other errors (bad input, libtorch) already say what they need to and pass unchanged.
fn explain_fault(cache: &Cache, kind: &str, id: &str, e: Error) -> Error {
    explain_storage_fault(
        cache,
        &format!("stage `{id}` ({kind})"),
        "nothing of this one was published (its epoch checkpoints are kept)",
        e,
    )
}

/// [`explain_fault`] for what a run writes besides stages (the run plan): `what` failed, what
/// was kept, and the remedy.
pub(super) fn explain_storage_fault(cache: &Cache, what: &str, kept: &str, e: Error) -> Error {
    let Some((path, io)) = storage_fault(&e) else {
        return e;
    };
    use std::io::ErrorKind as K;
    let remedy = match io.kind() {
        K::StorageFull | K::QuotaExceeded | K::FileTooLarge => "free space there",
        K::ReadOnlyFilesystem => "make it writable",
        K::PermissionDenied => "give this user write access",
        _ => "check the device",
    };
    Error::msg(format!(
        "{what} failed: {}: {io}. The cache {} is intact: completed stages are kept and \
         {kept}; {remedy} (or pass --cache with another directory) and rerun the same command \
         to resume.",
        path.display(),
        cache.root().display()
    ))
}

/// The path and OS error of a storage fault, also from libtorch's safetensors writer (which
/// only formats its I/O error, so its OS error code is read back from that text).
fn storage_fault(e: &Error) -> Option<(PathBuf, std::io::Error)> {
    let (path, io) = match e {
        Error::Io { path, source } => (
            path.clone(),
            match source.raw_os_error() {
                Some(code) => std::io::Error::from_raw_os_error(code),
                None => std::io::Error::new(source.kind(), source.to_string()),
            },
        ),
        Error::Torch(tch::TchError::SafeTensorError { path, err }) => {
            let text = format!("{err:?}");
            let code = text
                .split("code: ")
                .nth(1)?
                .split(|c: char| !c.is_ascii_digit());
            let code = code.into_iter().next()?.parse().ok()?;
            (PathBuf::from(path), std::io::Error::from_raw_os_error(code))
        }
        _ => return None,
    };
    use std::io::ErrorKind as K;
    let fault = matches!(
        io.kind(),
        K::StorageFull
            | K::QuotaExceeded
            | K::FileTooLarge
            | K::ReadOnlyFilesystem
            | K::PermissionDenied
    ) || io.raw_os_error() == Some(libc::EIO);
    fault.then_some((path, io))
}

/// The plan as `ascrepro plan` prints it: one line per node, then a count of what would run.
pub fn format_plan(nodes: &[NodeStatus]) -> String {
    let mut out = String::new();
    for n in nodes {
        let state = match (n.stored, n.cached) {
            (false, _) => "loaded",
            (true, true) => "cached",
            (true, false) => "to compute",
        };
        let needs = if n.needs.is_empty() {
            "-".to_string()
        } else {
            n.needs.join(", ")
        };
        out += &format!(
            "{:<10} {:<24} {}  {:<10}  needs {needs}\n",
            n.kind,
            n.id,
            &n.hash[..16],
            state
        );
    }
    let todo = nodes.iter().filter(|n| n.stored && !n.cached).count();
    let stored = nodes.iter().filter(|n| n.stored).count();
    out += &format!(
        "{} stages: {} cached, {todo} to compute\n",
        stored,
        stored - todo
    );
    out
}
