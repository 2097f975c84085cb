//! How a state dict maps onto a model: the name prefix, the tensors set aside, and, when it
//! does not fit, the first mismatches of each kind.

use super::tensor::DType;
use std::collections::{HashMap, HashSet};

/// Name prefixes tried first when mapping a state dict onto a model.
pub const COMMON_PREFIXES: [&str; 5] = ["", "model.", "backbone.", "net.", "module."];

/// Top-level modules of a bare state dict that are a front end saved with the model, not part
/// of it: set aside rather than refused.
pub const FRONTEND_MODULES: [&str; 2] = ["mel", "frontend"];

/// How many mismatches of each kind an error lists.
const LIST_AT_MOST: usize = 5;

/// How a state dict maps onto a model's variables.
#[derive(Debug, Clone, PartialEq)]
pub struct Fit {
    /// Prefix stripped from the checkpoint names.
    pub prefix: String,
    /// (model variable, index into the checkpoint's tensors).
    pub assignments: Vec<(String, usize)>,
    /// Checkpoint tensors outside the model (indices).
    pub set_aside: Vec<usize>,
    /// `num_batches_tracked` counters dropped.
    pub dropped_counters: usize,
}

/// Why a state dict does not fit a model.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mismatch {
    pub prefix: String,
    /// Model variables without a tensor: (name, model shape).
    pub missing: Vec<(String, Vec<i64>)>,
    /// Checkpoint tensors (full names) the model has no variable for: (name, shape).
    pub unexpected: Vec<(String, Vec<i64>)>,
    /// (model name, checkpoint shape, model shape).
    pub wrong_shape: Vec<(String, Vec<i64>, Vec<i64>)>,
    /// (model name, checkpoint type) for non-float tensors.
    pub wrong_type: Vec<(String, String)>,
}

impl Mismatch {
    fn is_empty(&self) -> bool {
        self.missing.is_empty()
            && self.unexpected.is_empty()
            && self.wrong_shape.is_empty()
            && self.wrong_type.is_empty()
    }

    /// One paragraph: counts, then the first few of each kind.
    pub fn describe(&self) -> String {
        let mut counts = Vec::new();
        let mut first = Vec::new();
        if !self.missing.is_empty() {
            counts.push(format!("{} missing", self.missing.len()));
            first.extend(
                self.missing
                    .iter()
                    .take(LIST_AT_MOST)
                    .map(|(n, s)| format!("missing `{n}` {s:?}")),
            );
        }
        if !self.unexpected.is_empty() {
            counts.push(format!("{} unexpected", self.unexpected.len()));
            first.extend(
                self.unexpected
                    .iter()
                    .take(LIST_AT_MOST)
                    .map(|(n, s)| format!("unexpected `{n}` {s:?}")),
            );
        }
        if !self.wrong_shape.is_empty() {
            counts.push(format!("{} of the wrong shape", self.wrong_shape.len()));
            first.extend(self.wrong_shape.iter().take(LIST_AT_MOST).map(|(n, c, m)| {
                format!("`{n}` has shape {c:?} in the checkpoint, {m:?} in the model")
            }));
        }
        if !self.wrong_type.is_empty() {
            counts.push(format!("{} not floating point", self.wrong_type.len()));
            first.extend(
                self.wrong_type
                    .iter()
                    .take(LIST_AT_MOST)
                    .map(|(n, t)| format!("`{n}` is {t} in the checkpoint")),
            );
        }
        format!(
            "{}; first mismatches: {}",
            counts.join(", "),
            first.join("; ")
        )
    }
}

pub(super) const COUNTER: &str = "num_batches_tracked";

/// Maps checkpoint tensors `(name, shape, dtype)` onto model variables `(name, shape)`.
///
/// The prefix is the one under which the most model variables are present: the common ones
/// ([`COMMON_PREFIXES`]) and every prefix that turns some checkpoint name into a model name are
/// tried. Under that prefix, a name the model lacks is unexpected, except (prefix `""`) a front
/// end saved alongside (first component in [`FRONTEND_MODULES`]); names outside a non-empty
/// prefix belong to other modules (a front end, a teacher) and are set aside.
pub fn fit(
    model: &[(String, Vec<i64>)],
    ckpt: &[(String, Vec<i64>, DType)],
) -> std::result::Result<Fit, Mismatch> {
    let names: Vec<&str> = ckpt
        .iter()
        .map(|(n, _, _)| n.as_str())
        .filter(|n| !is_counter(n))
        .collect();
    let model_names: HashSet<&str> = model.iter().map(|(n, _)| n.as_str()).collect();
    // A prefix scores one per model variable present under it: each name is split at its start
    // and after each '.' whose rest could be a variable, so the work is linear in the names
    // (a hostile file may hold hundreds of thousands).
    let longest = model_names.iter().map(|n| n.len()).max().unwrap_or(0);
    let mut seen = HashSet::new();
    let mut scores: HashMap<&str, usize> = HashMap::new();
    let mut found: Vec<&str> = Vec::new();
    for n in names.iter().filter(|n| seen.insert(**n)) {
        let from = n.len().saturating_sub(longest);
        let splits = std::iter::once(0).chain(n.match_indices('.').map(|(i, _)| i + 1));
        for i in splits.filter(|&i| i >= from) {
            if model_names.contains(&n[i..]) {
                let score = scores.entry(&n[..i]).or_insert(0);
                if *score == 0 {
                    found.push(&n[..i]);
                }
                *score += 1;
            }
        }
    }
    // Most variables present; ties go to the earlier candidate (common prefixes first).
    let mut prefix = String::new();
    let mut best = 0;
    for c in COMMON_PREFIXES.iter().copied().chain(found) {
        let s = scores.get(c).copied().unwrap_or(0);
        if s > best {
            best = s;
            prefix = c.to_string();
        }
    }

    let index: HashMap<&str, usize> = ckpt
        .iter()
        .enumerate()
        .map(|(i, (n, _, _))| (n.as_str(), i))
        .collect();
    let mut m = Mismatch {
        prefix: prefix.clone(),
        ..Default::default()
    };
    let mut assignments = Vec::new();
    // Mismatched tensors are listed in the checkpoint's order (usually the forward order).
    let mut wrong_shape = Vec::new();
    let mut wrong_type = Vec::new();
    for (var, shape) in model {
        match index.get(format!("{prefix}{var}").as_str()) {
            None => m.missing.push((var.clone(), shape.clone())),
            Some(&i) => {
                let (_, cshape, dtype) = &ckpt[i];
                if cshape != shape {
                    wrong_shape.push((i, (var.clone(), cshape.clone(), shape.clone())));
                } else if !dtype.is_float() {
                    wrong_type.push((i, (var.clone(), dtype.name().to_string())));
                } else {
                    assignments.push((var.clone(), i));
                }
            }
        }
    }
    wrong_shape.sort_by_key(|(i, _)| *i);
    wrong_type.sort_by_key(|(i, _)| *i);
    m.wrong_shape = wrong_shape.into_iter().map(|(_, w)| w).collect();
    m.wrong_type = wrong_type.into_iter().map(|(_, w)| w).collect();
    // Top-level modules of the model (a front end named like one is part of it).
    let model_roots: HashSet<&str> = model_names
        .iter()
        .filter_map(|n| n.split_once('.').map(|(root, _)| root))
        .collect();
    let mut set_aside = Vec::new();
    let mut dropped_counters = 0;
    for (i, (name, shape, _)) in ckpt.iter().enumerate() {
        if is_counter(name) {
            dropped_counters += 1;
            continue;
        }
        match name.strip_prefix(prefix.as_str()) {
            None => set_aside.push(i),
            Some(local) if model_names.contains(local) => {}
            Some(local) => {
                let root = local.split('.').next().unwrap_or("");
                let frontend = FRONTEND_MODULES.contains(&root) && !model_roots.contains(root);
                if prefix.is_empty() && frontend {
                    set_aside.push(i);
                } else {
                    m.unexpected.push((name.clone(), shape.clone()));
                }
            }
        }
    }
    if m.is_empty() {
        Ok(Fit {
            prefix,
            assignments,
            set_aside,
            dropped_counters,
        })
    } else {
        Err(m)
    }
}

fn is_counter(name: &str) -> bool {
    name == COUNTER || name.ends_with(".num_batches_tracked")
}
