//! `kind: prune` end to end on the tiny synthetic set: SSCP-Mobile at base width 64 pruned with
//! AGP and KD to `sscp_mobile::S1_WIDTHS`, KD fine-tuned, pruned again to the 32-bit budget,
//! deployed at fp16; exact resumption of a killed prune stage; the recipe's errors.

mod common;
use ascrepro::compress::{count, CountOptions};
use ascrepro::models::cp_blocks::Channels;
use ascrepro::models::{load_net, sscp_mobile, ModelConfig};
use ascrepro_results::record::{LIMIT_MACS, LIMIT_PARAM_BYTES};
use common::{run_killed_after_epoch, run_recipe_ok, stage_status};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use tch::Device;

const PRUNE: &str = include_str!("fixtures/prune.yaml");

fn systems(out: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(out.join("results.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["systems"].as_array().unwrap().clone()
}

fn system<'a>(systems: &'a [Value], id: &str) -> &'a Value {
    systems
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no system `{id}`"))
}

/// The cache entries of stage kind `kind`, in name order.
fn entries(cache: &Path, kind: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(cache.join("stages"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("{kind}-"))
        })
        .collect();
    found.sort();
    found
}

/// The prune stage's entry whose model has `widths`.
fn pruned_entry(cache: &Path, widths: &[i64]) -> PathBuf {
    entries(cache, "prune")
        .into_iter()
        .find(|p| {
            let summary: Value =
                serde_json::from_slice(&std::fs::read(p.join("pruning.json")).unwrap()).unwrap();
            summary["widths_after"] == serde_json::json!(widths)
        })
        .expect("a prune entry with these widths")
}

fn s1() -> ModelConfig {
    ModelConfig::SscpMobile(sscp_mobile::Config {
        channels: Channels::Explicit(sscp_mobile::S1_WIDTHS.to_vec()),
        num_classes: 10,
    })
}

fn as_u64(v: &Value) -> u64 {
    v.as_u64().unwrap()
}

#[test]
fn prune_with_kd_then_fine_tune_chain_and_deploy() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let log = run_recipe_ok(d, PRUNE, "cache", "out");
    assert_eq!(stage_status(&log, "prune", "pruned"), "computed");
    assert_eq!(stage_status(&log, "prune", "pruned_fp32"), "computed");
    let sys = systems(&d.join("out"));
    let base = system(&sys, "base");
    let pruned = system(&sys, "pruned");
    let input: Vec<i64> = base["complexity"]["input"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    let input = [input[0], input[1], input[2]];

    // Pruned to exactly S1's widths, counted as that architecture, within both limits at fp16.
    let s1_count = count(&s1(), input, &CountOptions::default()).unwrap();
    assert_eq!(pruned["model"], s1().describe());
    assert_eq!(as_u64(&pruned["complexity"]["params"]), s1_count.params);
    assert_eq!(as_u64(&pruned["complexity"]["macs"]), s1_count.macs);
    assert!(s1_count.param_bytes(16) <= LIMIT_PARAM_BYTES && s1_count.macs <= LIMIT_MACS);
    let entry = pruned_entry(&d.join("cache"), &sscp_mobile::S1_WIDTHS);
    let (_, cfg, _) = load_net(&entry.join("model.safetensors"), Device::Cpu).unwrap();
    assert_eq!(cfg, s1());

    // The report states widths, parameters and MACs before and after.
    let notes: Vec<&str> = pruned["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    let widths = |w: &[i64]| w.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
    let base64: Vec<i64> = sscp_mobile::S1_WIDTHS.iter().map(|w| 2 * w).collect();
    assert!(
        notes[0].contains(&format!(
            "[{}] → [{}]",
            widths(&base64),
            widths(&sscp_mobile::S1_WIDTHS)
        )),
        "{notes:?}"
    );
    let base_params = as_u64(&base["complexity"]["params"]);
    let base_macs = as_u64(&base["complexity"]["macs"]) as f64 / 1e6;
    assert!(
        notes[1].contains(&format!(
            "parameters {base_params} → {}, MACs {base_macs:.2} M → {:.2} M",
            s1_count.params,
            s1_count.macs as f64 / 1e6
        )),
        "{notes:?}"
    );
    assert!(pruned["training"]
        .as_str()
        .unwrap()
        .contains("KD from `base`"));

    // The report's pruning table: one row per prune stage, the record results.json holds.
    assert_eq!(
        pruned["pruning"]["widths_after"],
        serde_json::json!(sscp_mobile::S1_WIDTHS)
    );
    assert_eq!(as_u64(&pruned["pruning"]["params_before"]), base_params);
    assert_eq!(as_u64(&pruned["pruning"]["macs_after"]), s1_count.macs);
    let csv = std::fs::read_to_string(d.join("out/results/pruning.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "{csv}");
    assert!(
        rows[0].starts_with("pruned,")
            && rows[1].starts_with("pruned_fp32,")
            && rows[2].starts_with("tf_pruned,"),
        "{csv}"
    );
    let html = std::fs::read_to_string(d.join("out/index.html")).unwrap();
    assert!(html.contains("id=\"t-pruning\""));
    assert!(system(&sys, "finetuned").get("pruning").is_none());

    // Every pruned model is evaluated on the test clips.
    for id in [
        "pruned",
        "finetuned",
        "pruned_fp32",
        "pruned_fp16",
        "tf_pruned",
        "tf_pruned_int8",
    ] {
        let e = &system(&sys, id)["evaluation"];
        assert!(as_u64(&e["clips"]) > 0, "{id}: {e}");
    }

    // The fine-tuning stage trains the pruned architecture, from the pruned weights.
    let finetuned = system(&sys, "finetuned");
    // A device model of the pruned network keeps its widths.
    let per_device = system(&sys, "finetuned_per_device");
    assert_eq!(per_device["complexity"], finetuned["complexity"]);
    assert_eq!(finetuned["model"], s1().describe());
    assert_eq!(finetuned["complexity"], pruned["complexity"]);

    // Chained: the fine-tuned S1 model pruned to the 32-bit budget, every block narrower.
    let chained = system(&sys, "pruned_fp32");
    let params = as_u64(&chained["complexity"]["params"]);
    assert!(params * 4 <= LIMIT_PARAM_BYTES, "{params}");
    assert!(params < s1_count.params);
    // The chained entry: the one that starts from S1 widths.
    let summary: Value = entries(&d.join("cache"), "prune")
        .into_iter()
        .map(|e| serde_json::from_slice::<Value>(&std::fs::read(e.join("pruning.json")).unwrap()))
        .map(Result::unwrap)
        .find(|s| s["widths_before"] == serde_json::json!(sscp_mobile::S1_WIDTHS))
        .expect("a prune entry starting from the S1 widths");
    let after: Vec<i64> = serde_json::from_value(summary["widths_after"].clone()).unwrap();
    assert!(after
        .iter()
        .zip(sscp_mobile::S1_WIDTHS)
        .all(|(a, b)| *a < b));

    // fp16 deployment of the pruned model: its architecture at 2 bytes a parameter.
    let half = system(&sys, "pruned_fp16");
    assert_eq!(half["model"], s1().describe());
    assert_eq!(half["precision"], "fp16");

    // INT8 of a pruned model, on the integer engine: its pruned architecture, every INT8 figure
    // the engine's.
    let int8 = system(&sys, "tf_pruned_int8");
    assert_eq!(int8["model"], system(&sys, "tf_pruned")["model"]);
    assert_eq!(int8["precision"], "int8");
    let q = &int8["quantization"];
    assert_eq!(q["from"], "tf_pruned");
    assert_eq!(q["observer"], "min_max");
    assert_eq!(
        q["final_accuracy"].as_f64().unwrap(),
        int8["evaluation"]["macro_accuracy"].as_f64().unwrap()
    );
    assert!(q["simulated_agreement"].as_f64().unwrap() >= 0.9, "{q}");
    assert!(html.contains("id=\"t-quantization\""));
}

#[test]
fn killed_prune_stage_resumes_to_the_uninterrupted_model() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // Base and one prune stage of 5 epochs, AGP over the first 3; the kill lands after the last
    // AGP step, so the resumed run has only the checkpointed mask to train and shrink with.
    let recipe = PRUNE
        .replace(
            "    prune_epochs: 2\n    training: {epochs: 3}",
            "    prune_epochs: 3\n    training: {epochs: 5}",
        )
        .replace(
            "stages: [base, pruned, finetuned, pruned_fp32, pruned_fp16, tf_base, tf_pruned, tf_pruned_int8, finetuned_per_device]",
            "stages: [base, pruned]",
        );
    assert!(recipe.contains("training: {epochs: 5}") && recipe.contains("stages: [base, pruned]"));
    run_recipe_ok(d, &recipe, "cache-ref", "out-ref");

    // The same cache without the prune stage's entry: only it runs again.
    let copied = Command::new("cp")
        .args(["-r", "cache-ref", "cache-int"])
        .current_dir(d)
        .status()
        .unwrap();
    assert!(copied.success());
    for e in entries(&d.join("cache-int"), "prune") {
        std::fs::remove_dir_all(e).unwrap();
    }
    run_killed_after_epoch(d, "cache-int", "out-int", "prune", 3);
    assert!(entries(&d.join("cache-int"), "prune").is_empty());

    let log = run_recipe_ok(d, &recipe, "cache-int", "out-int");
    assert_eq!(stage_status(&log, "train", "base"), "cached");
    assert_eq!(stage_status(&log, "prune", "pruned"), "computed");
    let (reference, resumed) = (
        entries(&d.join("cache-ref"), "prune"),
        entries(&d.join("cache-int"), "prune"),
    );
    assert_eq!(reference.len(), 1);
    assert_eq!(resumed.len(), 1);
    for file in ["model.safetensors", "pruning.json", "curve.json"] {
        let a = std::fs::read(reference[0].join(file)).unwrap();
        let b = std::fs::read(resumed[0].join(file)).unwrap();
        assert!(a == b, "{file} differs after resuming");
    }
}

/// Recipe errors of the prune kind name the file, line and field.
#[test]
fn prune_recipe_errors_name_the_field() {
    let file = Path::new("r.yaml");
    for (from, to, field, says) in [
        (
            "    prune_epochs: 2\n",
            "    prune_epochs: 4\n",
            "stages.1.prune_epochs",
            "at most all of them",
        ),
        (
            "target: {kind: budget, bits: 32}",
            "target: {kind: budget, bits: 12}",
            "stages.3.target.bits",
            "8, 16 or 32",
        ),
        (
            "    from: pruned\n",
            "    from: pruned_fp16\n",
            "stages.4.from",
            "must be a train or released or prune stage",
        ),
        (
            "    model: sscp64\n    init: {from: pruned",
            "    model: other\n    init: {from: pruned",
            "stages.2.model",
            "cut from model `sscp64`",
        ),
        (
            "importance: l1",
            "importance: l2",
            "stages[1].importance",
            "`l1`",
        ),
        (
            "target: {kind: widths,",
            "target: {kind: ratio,",
            "stages[1].target.kind",
            "`widths` or `budget`",
        ),
        // Checked against the source's architecture before anything runs.
        (
            "widths: [8, 32, 72, 32, 72, 32, 72, 32, 72, 56, 124, 56, 124, 104]",
            "widths: [8, 32, 72]",
            "stages.1.target.widths",
            "the width list has 14 entries",
        ),
        (
            "widths: [8, 32, 72, 32, 72, 32, 72, 32, 72, 56, 124, 56, 124, 104]",
            "widths: [8, 32, 72, 32, 72, 32, 72, 32, 72, 56, 124, 56, 124, 300]",
            "stages.1.target.widths",
            "cannot keep 300 of its 208 channels",
        ),
        (
            "    width: 64\n",
            "    width: 64\n  tfsep:\n    arch: tfsepnet23\n    width: 4\n    norm: adaresnorm\n",
            "stages.1.from",
            "channel groups are known for",
        ),
    ] {
        let mut text = PRUNE.replacen(from, to, 1);
        if to.contains("arch: tfsepnet23") {
            text = text.replace("    model: sscp64\n", "    model: tfsep\n");
        }
        if to.contains("model: other") {
            text = text.replace(
                "models:\n",
                "models:\n  other:\n    arch: sscp_mobile\n    width: 32\n",
            );
        }
        assert_ne!(text, PRUNE, "{from}");
        let e = ascrepro::recipe::parse_str(&text, file)
            .unwrap_err()
            .to_string();
        // The line the replacement changed; for an architecture without channel groups (every
        // stage now trains `tfsep`), the prune stage's `from`.
        let needle = match field {
            "stages.1.from" => "    from: base",
            _ => to.lines().find(|l| !from.contains(l)).unwrap(),
        };
        let line = text.lines().position(|l| l.contains(needle)).unwrap() + 1;
        assert!(e.contains(&format!("r.yaml:{line}")), "{to}: {e}");
        assert!(e.contains(field) && e.contains(says), "{to}: {e}");
    }
}
