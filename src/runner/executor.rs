//! The generic executor: computes every node's identity, then runs the graph in dependency
//! order, each node from the cache or computed under its lock, and logs what it did. It knows
//! no stage's internals.

use super::cache::StageHash;
use super::code::CodeIndex;
use super::graph::{Context, Graph, NodeId, Outputs};
use crate::error::{IoContext, Result};
use crate::results::{StageRecord, StageTiming};
use std::collections::{BTreeMap, BTreeSet};
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

/// Runs the nodes in order, all of them or only what `targets` need; returns their artefacts
/// and the run's log.
pub fn execute(
    graph: &Graph,
    cx: &Context,
    code: &CodeIndex,
    targets: Option<&[NodeId]>,
) -> Result<(Outputs, usize)> {
    let hashes = identities(graph, code, &cx.platform);
    let wanted = targets.map(|t| upstream(graph, t));
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
            if let Some(e) = cx.cache.get(kind, hash) {
                if !s.reusable(cx, &e.dir)? {
                    std::fs::remove_dir_all(&e.dir).at(&e.dir)?;
                }
            }
            let t0 = Instant::now();
            let (entry, fresh) = cx.cache.get_or_compute(
                kind,
                hash,
                || {
                    cx.say(&format!(
                        "  {kind:<9} {id:<22} waiting for another run computing it"
                    ))
                },
                |dir| s.produce(cx, &outs, dir),
            )?;
            let seconds = t0.elapsed().as_secs_f64();
            cx.say(&format!(
                "  {kind:<9} {id:<22} {}",
                if fresh {
                    format!("computed in {seconds:.1} s")
                } else {
                    "cached".to_string()
                }
            ));
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
                outputs: entry.output_hashes()?,
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
