//! The 2025 systems' deployment stages end to end on the tiny synthetic set: `reparameterize`
//! (RepConv branches merged, equal predictions, the released graph's layout and counts) and
//! `finetune_devices` with a `general` model of its own and the training split of its source;
//! and the recipe errors of both.

mod common;
use ascrepro::models::{load_net, ModelConfig};
use ascrepro_results::record::RunRecord;
use common::{ascrepro_ok, run_recipe, run_recipe_ok, temp_dir};
use std::path::Path;
use tch::Device;

const DEPLOY: &str = include_str!("fixtures/deploy.yaml");

fn record(out: &Path) -> RunRecord {
    serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap()
}

fn system<'a>(r: &'a RunRecord, id: &str) -> &'a ascrepro_results::record::SystemRecord {
    r.systems
        .iter()
        .find(|s| s.id == id)
        .unwrap_or_else(|| panic!("no system {id}"))
}

#[test]
fn repconv_merge_and_device_models_with_their_own_general_model() {
    let d = &temp_dir("deploy_stages");
    run_recipe_ok(d, DEPLOY, "cache", "out");
    let r = record(&d.join("out"));

    // The merged model predicts what the trained one does, with fewer parameters and MACs.
    let (trained, merged) = (system(&r, "student"), system(&r, "merged"));
    assert_eq!(merged.evaluation.confusion, trained.evaluation.confusion);
    assert_eq!(merged.evaluation.accuracy, trained.evaluation.accuracy);
    assert!(merged.complexity.params < trained.complexity.params);
    assert!(merged.complexity.macs < trained.complexity.macs);
    let note = merged
        .notes
        .iter()
        .find(|n| n.starts_with("RepConv merge"))
        .unwrap_or_else(|| panic!("no merge note: {:?}", merged.notes));
    assert!(note.contains("equal the unmerged model's"), "{note}");
    assert_eq!(merged.split.as_deref(), Some("split50"));
    let effect = r
        .effects
        .iter()
        .find(|e| e.method == "RepConv merge")
        .unwrap();
    assert_eq!(effect.mean, Some(0.0), "{}", effect.statement);

    // Its weights are the deployed graph's: a model built merged loads them.
    let weights = std::fs::read_dir(d.join("cache/stages"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("reparameterize-")
        })
        .expect("a reparameterize entry")
        .join("model.safetensors");
    let (vs, cfg, _) = load_net(&weights, Device::Cpu).unwrap();
    let ModelConfig::Dsflexinet(c) = &cfg else {
        panic!("{cfg:?}")
    };
    assert!(c.reparameterized);
    assert!(vs
        .variables()
        .keys()
        .any(|k| k.ends_with("spatial_conv.0.weight")));

    // Device models: a and s1 their own; every other device goes to `unknown`, not `student`.
    let routed = system(&r, "per_device");
    let unknown = system(&r, "unknown");
    for dev in ["b", "c", "s2", "s3", "s4", "s5", "s6"] {
        assert_eq!(
            routed.evaluation.device_accuracy[dev].accuracy,
            unknown.evaluation.device_accuracy[dev].accuracy,
            "{dev} goes to the general model `unknown`"
        );
    }
    // They train on their source's subset: the plan shows them reading its features.
    let (plan, _) = ascrepro_ok(d, &["plan", "recipe.yaml", "--cache", "cache"]);
    for dev in ["a", "s1"] {
        let line = plan
            .lines()
            .find(|l| l.starts_with("finetune") && l.contains(&format!("per_device/{dev}")))
            .unwrap_or_else(|| panic!("no finetune per_device/{dev} in:\n{plan}"));
        assert!(line.contains("features:split50/"), "{line}");
    }
}

#[test]
fn the_recipe_refuses_what_these_stages_cannot_do() {
    let d = &temp_dir("deploy_stages_errors");
    // Merging a network without RepConv branches.
    let no_branches = DEPLOY.replace(
        "  student: {arch: dsflexinet, width: 8, dropout: 0.2}",
        "  student: {arch: dsflexinet, width: 8, dropout: 0.2, reparameterized: true}",
    );
    let o = run_recipe(d, &no_branches, "cache", "out");
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        e.contains("recipe.yaml:32") && e.contains("no RepConv branches to merge"),
        "{e}"
    );
    // A general model that is not an earlier train stage.
    let bad_general = DEPLOY.replace("    general: unknown", "    general: merged");
    let o = run_recipe(d, &bad_general, "cache", "out");
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(e.contains("general") && e.contains("merged"), "{e}");
}
