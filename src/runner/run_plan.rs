//! The resolved run plan: what `ascrepro run` writes into the run directory before anything is
//! computed, and what `ascrepro stage` (every executor's unit of work) computes one node of.
//! It names the recipe (and its hash), the options that shape identities, and every node's
//! kind, inputs, identity and job resources. The run directory is named by the plan's own
//! SHA-256, so a plan file cannot be edited unnoticed, and the same run reuses its directory.

use crate::error::{Error, IoContext, Result};
use crate::recipe::resources::Resources;
use crate::runner::platform::DeviceChoice;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Bumped when the file's meaning changes.
const FORMAT: u32 = 1;
pub const PLAN_FILE: &str = "plan.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunPlan {
    /// [`RunPlan::FORMAT`] when written by this ascrepro.
    pub format: u32,
    pub recipe: PathBuf,
    /// SHA-256 of the recipe file's bytes when the plan was made.
    pub recipe_sha256: String,
    pub recipe_id: String,
    pub profile: String,
    /// Directory that relative recipe paths (manifests) are read from.
    pub project: PathBuf,
    pub cache: PathBuf,
    pub data_root: PathBuf,
    pub out: PathBuf,
    pub threads: usize,
    pub device: DeviceChoice,
    pub code_version: String,
    /// The numeric platform the identities were computed for.
    pub platform: BTreeMap<String, String>,
    pub nodes: Vec<PlannedNode>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedNode {
    pub kind: String,
    pub id: String,
    pub hash: String,
    /// Indices of the nodes it reads.
    pub needs: Vec<usize>,
    /// False for nodes only loaded (never computed into the cache).
    pub stored: bool,
    /// Whether executors compute it as a job (every stored node but the report, which the
    /// submitting process writes from the cache once the jobs are done).
    pub job: bool,
    pub resources: Resources,
}

impl PlannedNode {
    /// `kind:id`, how progress lines and `--node` name it.
    pub fn label(&self) -> String {
        format!("{}:{}", self.kind, self.id)
    }
}

impl RunPlan {
    pub const FORMAT: u32 = FORMAT;

    fn bytes(&self) -> Vec<u8> {
        let mut text = serde_json::to_string_pretty(self).expect("plain data serialises");
        text.push('\n');
        text.into_bytes()
    }

    /// The run directory: `<cache>/runs/<recipe id>.<profile>.<first 16 hex of the plan's
    /// SHA-256>`.
    pub fn run_dir(&self) -> PathBuf {
        let digest = hex::encode(Sha256::digest(self.bytes()));
        self.cache.join("runs").join(format!(
            "{}.{}.{}",
            self.recipe_id,
            self.profile,
            &digest[..16]
        ))
    }

    /// Writes the plan into its run directory (once: an existing one is the same plan) and
    /// returns the directory.
    pub fn write(&self) -> Result<PathBuf> {
        let dir = self.run_dir();
        let path = dir.join(PLAN_FILE);
        if path.exists() {
            return Ok(dir);
        }
        std::fs::create_dir_all(dir.join("logs")).at(&dir)?;
        let tmp = dir.join(format!(".{PLAN_FILE}.{}", std::process::id()));
        std::fs::write(&tmp, self.bytes()).at(&tmp)?;
        std::fs::rename(&tmp, &path).at(&path)?;
        Ok(dir)
    }

    /// Reads a plan file (or the `plan.json` of a run directory) and checks it against the
    /// SHA-256 its directory is named by.
    pub fn load(path: &Path) -> Result<(RunPlan, PathBuf)> {
        let file = if path.is_dir() {
            path.join(PLAN_FILE)
        } else {
            path.to_path_buf()
        };
        let bytes = std::fs::read(&file).map_err(|e| {
            Error::msg(format!(
                "cannot read the run plan {}: {e}. A plan is written by `ascrepro run` into \
                 <cache>/runs/<run>/plan.json; where jobs run on other machines the cache must \
                 be on a filesystem they share.",
                file.display()
            ))
        })?;
        let plan: RunPlan = serde_json::from_slice(&bytes)
            .map_err(|e| Error::file(&file, format!("not a run plan: {e}")))?;
        if plan.format != FORMAT {
            return Err(Error::file(
                &file,
                format!(
                    "run plan format {} (this ascrepro reads {FORMAT}): rerun `ascrepro run`",
                    plan.format
                ),
            ));
        }
        let dir = file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let digest = hex::encode(Sha256::digest(&bytes));
        let named = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !named.ends_with(&format!(".{}", &digest[..16])) {
            return Err(Error::file(
                &file,
                format!(
                    "the plan's SHA-256 ({}) is not the one its run directory is named by: it \
                     was edited or damaged; rerun `ascrepro run` to write a new one",
                    &digest[..16]
                ),
            ));
        }
        Ok((plan, dir))
    }

    /// The node named `kind:id`, or by its index.
    pub fn find(&self, name: &str) -> Result<usize> {
        if let Ok(i) = name.parse::<usize>() {
            if i < self.nodes.len() {
                return Ok(i);
            }
        }
        self.nodes
            .iter()
            .position(|n| n.label() == name || n.hash.starts_with(name) && name.len() >= 8)
            .ok_or_else(|| {
                let known: Vec<String> = self
                    .nodes
                    .iter()
                    .filter(|n| n.stored)
                    .map(PlannedNode::label)
                    .collect();
                Error::msg(format!(
                    "the plan has no node `{name}`; its stages: {}",
                    known.join(", ")
                ))
            })
    }

    /// The stored nodes upstream of `node`, directly or not: a stage's job loads every
    /// artefact upstream of it (an input's artefact is loaded from its own inputs'), so all of
    /// them must be in the cache first.
    pub fn stored_ancestors(&self, node: usize) -> Vec<usize> {
        let mut seen = vec![false; self.nodes.len()];
        let mut stack: Vec<usize> = self.nodes[node].needs.clone();
        while let Some(n) = stack.pop() {
            if !std::mem::replace(&mut seen[n], true) {
                stack.extend(&self.nodes[n].needs);
            }
        }
        (0..self.nodes.len())
            .filter(|&n| seen[n] && self.nodes[n].stored)
            .collect()
    }

    /// How many nodes read `node`'s output, directly or not: the local executor starts the
    /// stages with the most work behind them first.
    pub fn descendants(&self, node: usize) -> usize {
        let mut reached = vec![false; self.nodes.len()];
        reached[node] = true;
        let mut count = 0;
        for (i, n) in self.nodes.iter().enumerate().skip(node + 1) {
            if n.needs.iter().any(|&d| reached[d]) {
                reached[i] = true;
                count += 1;
            }
        }
        count
    }
}
