//! The local executor and `ascrepro stage`: `--jobs 2` writes the same report as `--jobs 1`;
//! a stage job computes exactly its node, refuses missing inputs and an edited plan; `status`
//! reads the cache.

mod common;
use common::{ascrepro_fails, ascrepro_ok as ok, ascrepro_ok_env, only_run_dir, run_plan_path};

const TINY: &str = include_str!("fixtures/tiny.yaml");

#[test]
fn two_jobs_write_the_report_of_one() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("tiny.yaml"), TINY).unwrap();
    ok(
        d,
        &[
            "run",
            "tiny.yaml",
            "--cache",
            "c1",
            "--out",
            "r1",
            "--jobs",
            "1",
            "--quiet",
        ],
    );
    let (_, log) = ok(
        d,
        &[
            "run",
            "tiny.yaml",
            "--cache",
            "c2",
            "--out",
            "r2",
            "--jobs",
            "2",
        ],
    );
    let sums = |r: &str| std::fs::read_to_string(d.join(r).join("SHA256SUMS")).unwrap();
    assert_eq!(sums("r1"), sums("r2"), "--jobs 2 changed the report");
    // The stages ran as jobs, each with its log in the run directory.
    assert!(log.contains("2 stage(s) at once"), "{log}");
    assert!(
        log.contains("train     teacher                started"),
        "{log}"
    );
    let logs = only_run_dir(&d.join("c2")).join("logs");
    assert!(logs.join("train-teacher.local.log").exists());
    // Everything cached: a rerun with jobs computes nothing and starts no job.
    let (_, again) = ok(
        d,
        &[
            "run",
            "tiny.yaml",
            "--cache",
            "c2",
            "--out",
            "r2",
            "--jobs",
            "2",
        ],
    );
    assert!(!again.contains("started"), "{again}");
    assert!(again.contains("stages were cached"), "{again}");
}

#[test]
fn a_stage_job_computes_its_node_from_cached_inputs_only() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("tiny.yaml"), TINY).unwrap();
    let (out, _) = ok(d, &["plan", "tiny.yaml", "--cache", "c", "--out", "r"]);
    let plan = run_plan_path(&out);

    // The teacher's inputs are not computed yet: refused, nothing written.
    let err = ascrepro_fails(d, &["stage", &plan, "--node", "train:teacher"]);
    assert!(
        err.contains("data:synth") && err.contains("not in the cache"),
        "{err}"
    );
    let err = ascrepro_fails(d, &["stage", &plan, "--node", "train:nope"]);
    assert!(
        err.contains("no node `train:nope`") && err.contains("train:teacher"),
        "{err}"
    );

    ok(d, &["stage", &plan, "--node", "data:synth", "--quiet"]);
    ok(
        d,
        &["stage", &plan, "--node", "features:cpmel-128", "--quiet"],
    );
    let err = ascrepro_fails(d, &["stage", &plan, "--node", "train:teacher"]);
    assert!(
        err.contains("devsim:devsim-2x6") && !err.contains("features"),
        "{err}"
    );
    ok(
        d,
        &["stage", &plan, "--node", "devsim:devsim-2x6", "--quiet"],
    );
    let (status, _) = ok(d, &["status", &plan]);
    assert!(
        status.contains("data      synth                  done"),
        "{status}"
    );
    assert!(
        status.contains("train     teacher                not submitted"),
        "{status}"
    );
    assert!(status.contains("3 of 8 stage jobs done"), "{status}");
    // Exactly one node: the teacher's evaluation is not computed with it.
    ok(d, &["stage", &plan, "--node", "train:teacher", "--quiet"]);
    let (status, _) = ok(d, &["status", &plan]);
    assert!(
        status.contains("train     teacher                done"),
        "{status}"
    );
    assert!(
        status.contains("evaluate  teacher                not submitted"),
        "{status}"
    );

    // An edited plan is refused.
    let text = std::fs::read_to_string(&plan).unwrap();
    std::fs::write(&plan, text.replace("\"threads\": 1", "\"threads\": 2")).unwrap();
    let err = ascrepro_fails(d, &["stage", &plan, "--node", "evaluate:teacher"]);
    assert!(err.contains("edited or damaged"), "{err}");
    std::fs::write(&plan, &text).unwrap();
    // So is a recipe changed since the plan was made.
    std::fs::write(d.join("tiny.yaml"), TINY.replace("seed: 7", "seed: 8")).unwrap();
    let err = ascrepro_fails(d, &["stage", &plan, "--node", "evaluate:teacher"]);
    assert!(
        err.contains("the recipe changed since the run plan was made"),
        "{err}"
    );
}

/// Only libtorch's thread count is part of a numeric stage's identity; the Rust stages split
/// their parallel work per clip, so any rayon pool gives the same bytes (what lets `--jobs`
/// share the cores without changing a result).
#[test]
fn rust_stages_give_the_same_bytes_on_any_number_of_threads() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("tiny.yaml"), TINY).unwrap();
    let mut manifests = Vec::new();
    for threads in ["1", "2"] {
        let cache = format!("c{threads}");
        let (out, _) = ok(d, &["plan", "tiny.yaml", "--cache", &cache]);
        let plan = run_plan_path(&out);
        for node in ["data:synth", "features:cpmel-128", "devsim:devsim-2x6"] {
            ascrepro_ok_env(
                d,
                &[("RAYON_NUM_THREADS", threads.as_ref())],
                &["stage", &plan, "--node", node, "--quiet"],
            );
        }
        let mut entries: Vec<(String, String)> = std::fs::read_dir(d.join(&cache).join("stages"))
            .unwrap()
            .flatten()
            .map(|e| {
                let manifest = std::fs::read_to_string(e.path().join(".manifest")).unwrap();
                (e.file_name().to_string_lossy().to_string(), manifest)
            })
            .collect();
        entries.sort();
        assert_eq!(entries.len(), 3);
        manifests.push(entries);
    }
    assert_eq!(manifests[0], manifests[1]);
}
