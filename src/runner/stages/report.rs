//! The report: the run's record (identity, stages, systems, published rows, complexity checks)
//! rendered as HTML, tables and checksums into the report directory. The cache keeps its
//! SHA256SUMS, so an unchanged report is not rewritten.

use super::input_shape;
use crate::error::{IoContext, Result};
use crate::eval::{consistency, published};
use crate::recipe::Plan;
use crate::runner::cache::StageHash;
use crate::runner::graph::{Artefact, Context, NodeId, Outputs, Stage};
use ascrepro_results::record::{Finding, RunIdentity, RunRecord};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

pub struct ReportStage {
    pub data: NodeId,
    pub features: NodeId,
    /// Every node before it: the report lists them all.
    pub needs: Vec<NodeId>,
    pub out_dir: PathBuf,
    /// The front end's fingerprint, stated in the run's identity.
    pub frontend: String,
    /// What the report shows besides the artefacts: the recipe as read, its labels and
    /// published rows, the profile, and the whole tree's code version (which it states).
    pub shown: Shown,
}

/// What the report states that no artefact carries; its identity.
#[derive(serde::Serialize)]
pub struct Shown {
    pub recipe_text: String,
    pub recipe_hash: String,
    pub profile: String,
    pub code_version: String,
}

impl Shown {
    pub fn new(plan: &Plan, code_version: &str) -> Shown {
        Shown {
            recipe_text: plan.text.clone(),
            recipe_hash: plan.recipe_hash.clone(),
            profile: plan.profile.clone(),
            code_version: code_version.to_string(),
        }
    }
}

impl ReportStage {
    fn record(&self, cx: &Context, inputs: &Outputs) -> Result<RunRecord> {
        let plan = cx.plan;
        let r = &plan.recipe;
        let data = inputs.data(self.data);
        let mut data_hashes = BTreeMap::new();
        data_hashes.insert(data.name.clone(), data.manifest_hash.clone());
        let run_hash = StageHash::new("run")
            .part("recipe", &plan.recipe_hash)
            .part("profile", &plan.profile)
            .json("data", &data_hashes)
            .part("code", &cx.code_version)
            .json("platform", &cx.platform)
            .finish();
        let systems = inputs.systems.clone();
        let ran: Vec<&str> = systems.iter().map(|s| s.id.as_str()).collect();
        let input = input_shape(inputs, self.features);
        let (checks, mut findings) =
            published::complexity_checks(&r.published, &plan.published_models, input);
        findings.extend(consistency::arithmetic(&r.published));
        findings.extend(consistency::transcribed(&r.conflicts));
        for s in &systems {
            for n in &s.notes {
                if n.contains("REJECTED") {
                    findings.push(Finding {
                        kind: "note".into(),
                        text: format!("{}: {n}", s.label),
                    });
                }
            }
        }
        Ok(RunRecord {
            recipe_id: r.id.clone(),
            title: r.title.clone(),
            citation: r.citation.clone(),
            profile: plan.profile.clone(),
            profile_note: plan.profile_spec.note.clone(),
            identity: RunIdentity {
                run_hash,
                recipe_hash: plan.recipe_hash.clone(),
                data: data_hashes,
                code_version: cx.code_version.clone(),
                frontend: self.frontend.clone(),
                platform: cx.platform.clone(),
            },
            stages: inputs.records.clone(),
            published: published::rows(&r.published, &ran, &plan.profile),
            systems,
            complexity_checks: checks,
            findings,
            effects: crate::eval::effects::effects(&r.effects, &inputs.systems, |id| {
                r.stages
                    .iter()
                    .find(|s| s.id() == id)
                    .map_or_else(|| id.to_string(), |s| s.label().to_string())
            }),
            recipe_text: plan.text.clone(),
        })
    }
}

impl Stage for ReportStage {
    fn kind(&self) -> &'static str {
        "report"
    }

    fn id(&self) -> String {
        "index.html".into()
    }

    fn needs(&self) -> Vec<NodeId> {
        self.needs.clone()
    }

    fn code(&self) -> &'static [&'static str] {
        &[
            "src/report/",
            "templates/",
            "crates/results/src/",
            "src/eval/published.rs",
            "src/eval/effects.rs",
            "src/eval/consistency.rs",
            "src/compress/complexity.rs",
            "src/runner/stages/report.rs",
        ]
    }

    fn identity(&self, h: StageHash) -> StageHash {
        h.json("shown", &self.shown)
            .part("frontend", &self.frontend)
    }

    /// Only while the report directory still holds exactly what this entry rendered.
    fn reusable(&self, _cx: &Context, entry: &Path) -> Result<bool> {
        let now = crate::fsio::read(&self.out_dir.join("SHA256SUMS")).ok();
        let cached = crate::fsio::read(&entry.join("SHA256SUMS")).ok();
        Ok(now.is_some() && now == cached && crate::report::verify(&self.out_dir).is_ok())
    }

    fn produce(&self, cx: &Context, inputs: &Outputs, dir: &Path) -> Result<()> {
        let record = self.record(cx, inputs)?;
        crate::report::render(&record, &inputs.timings, &self.out_dir)?;
        // Read and written apart, so that an error names the side that failed.
        let (sums, kept) = (self.out_dir.join("SHA256SUMS"), dir.join("SHA256SUMS"));
        std::fs::write(&kept, std::fs::read(&sums).at(&sums)?).at(&kept)
    }

    fn load(&self, cx: &Context, inputs: &Outputs, _dir: Option<&Path>) -> Result<Artefact> {
        Ok(Artefact::Report(Rc::new(self.record(cx, inputs)?)))
    }
}
