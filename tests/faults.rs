//! Storage faults and kills, for real: a cache on a tmpfs that fills up inside each stage, a
//! read-only cache (both in a user and mount namespace: `unshare -Urm`), and `kill -9` at points
//! spread over a run. Each leaves the cache consistent (earlier entries verified, no entry for
//! the failed stage, no temp leftovers), says what happened, and a rerun gives the report an
//! uninterrupted run gives, byte for byte.

mod common;
use ascrepro::runner::{Cache, RunOptions};
use common::{run_recipe_ok, stage_status};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ascrepro");

/// The tiny recipe on half its clips: every stage kind of a run, in a few seconds.
fn recipe() -> String {
    let mut text = include_str!("fixtures/tiny.yaml").to_string();
    for (from, to) in [
        ("train_clips_per_class_a: 6", "train_clips_per_class_a: 3"),
        (
            "train_clips_per_class_device: 2",
            "train_clips_per_class_device: 1",
        ),
        (
            "test_clips_per_class_device: 2",
            "test_clips_per_class_device: 1",
        ),
    ] {
        assert!(text.contains(from), "fixture changed: {from}");
        text = text.replace(from, to);
    }
    text
}

/// A cached stage of the tiny recipe: its kind, id, identity and size on disk.
struct Node {
    kind: String,
    id: String,
    hash: String,
    bytes: u64,
}

impl Node {
    fn entry(&self) -> String {
        format!("{}-{}", self.kind, &self.hash[..24])
    }
}

/// An uninterrupted run, shared by the tests: its directory (recipe, `cache`, `out`), the
/// report's SHA256SUMS and the cached stages in run order.
struct Reference {
    dir: PathBuf,
    sums: String,
    nodes: Vec<Node>,
}

fn reference() -> &'static Reference {
    static REF: OnceLock<Reference> = OnceLock::new();
    REF.get_or_init(|| {
        let dir = common::temp_dir("faults-reference");
        run_recipe_ok(&dir, &recipe(), "cache", "out");
        let opts = RunOptions {
            cache: Some(dir.join("cache")),
            out: Some(dir.join("out")),
            quiet: true,
            ..RunOptions::new(dir.join("recipe.yaml"), "demo")
        };
        let nodes = ascrepro::runner::plan(&opts)
            .unwrap()
            .into_iter()
            .filter(|n| n.stored)
            .map(|n| {
                let mut node = Node {
                    kind: n.kind.to_string(),
                    id: n.id,
                    hash: n.hash,
                    bytes: 0,
                };
                node.bytes = tree_bytes(&dir.join("cache/stages").join(node.entry()));
                node
            })
            .collect();
        Reference {
            sums: sums(&dir.join("out")),
            dir,
            nodes,
        }
    })
}

fn sums(out: &Path) -> String {
    std::fs::read_to_string(out.join("SHA256SUMS")).unwrap()
}

fn tree_bytes(dir: &Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

/// Runs `script` as root of a new user and mount namespace (its mounts vanish with it).
fn in_namespace(script: &str, env: &[(&str, String)]) -> Output {
    let out = Command::new("unshare")
        .args(["-Urm", "sh", "-c", script])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("BIN", BIN)
        .output()
        .expect("unshare (util-linux) runs the fault tests");
    assert!(
        out.status.success(),
        "namespace script failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `dir`'s files (relative path, bytes), in order.
fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let rel = e.path().strip_prefix(dir).unwrap().to_path_buf();
            (rel, std::fs::read(e.path()).unwrap())
        })
        .collect()
}

/// Each stage entry present in `cache` is the reference run's, file for file and byte for byte
/// (entries are all or nothing); those `complete` accepts are present, the others absent; and
/// nothing is left in `tmp/` or half-written under `partial/`.
fn assert_consistent(cache: &Path, complete: &dyn Fn(&Node) -> bool, what: &str) {
    let r = reference();
    for n in &r.nodes {
        let entry = cache.join("stages").join(n.entry());
        match (entry.exists(), complete(n)) {
            (true, _) => assert!(
                files(&entry) == files(&r.dir.join("cache/stages").join(n.entry())),
                "{what}: {} {} is not the reference's entry",
                n.kind,
                n.id
            ),
            (false, true) => panic!("{what}: {} {} lost", n.kind, n.id),
            (false, false) => {}
        }
        assert!(
            !entry.exists() || complete(n),
            "{what}: {} {} published",
            n.kind,
            n.id
        );
    }
    let tmp: Vec<_> = std::fs::read_dir(cache.join("tmp")).unwrap().collect();
    assert!(tmp.is_empty(), "{what}: temp leftovers {tmp:?}");
    for stage in std::fs::read_dir(cache.join("partial")).unwrap().flatten() {
        for e in std::fs::read_dir(stage.path()).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            assert!(name.starts_with("epoch-"), "{what}: {name} in partial/");
        }
    }
}

/// Reruns on `dir/cache` with space to spare; the report must be the uninterrupted one.
fn resume(dir: &Path, what: &str) -> String {
    let log = run_recipe_ok(dir, &recipe(), "cache", "out");
    assert_eq!(
        sums(&dir.join("out")),
        reference().sums,
        "{what}: report differs"
    );
    assert!(!log.contains("damaged"), "{what}: {log}");
    log
}

#[test]
fn a_full_disk_in_each_stage_keeps_the_cache_and_the_run_resumes() {
    let r = reference();
    let started = Instant::now();
    for (k, node) in r.nodes.iter().enumerate() {
        let what = format!("disk full in {} {}", node.kind, node.id);
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("recipe.yaml"), recipe()).unwrap();
        std::fs::create_dir_all(d.join("cache")).unwrap();
        // Every other stage cached, so the run reaches this one at once; the disk then has
        // room for half of what the stage writes. In one process (`--jobs 1`): with jobs, the
        // run plan (a few kB) is written first and can take the little room left, which is
        // explained as a fault of its own.
        let script = r#"set -e
            mount -t tmpfs -o size=256m tmpfs "$D/cache"
            cp -a "$REF/cache/." "$D/cache/"
            rm -rf "$D/cache/stages/$ENTRY"
            avail=$(df -B1 --output=avail "$D/cache" | tail -n 1)
            fallocate -l $((avail - FREE)) "$D/cache/filler"
            set +e
            cd "$D" && "$BIN" run recipe.yaml --cache "$D/cache" --out out --threads 1 --jobs 1 2>log
            echo $? >rc
            set -e
            rm "$D/cache/filler"
            mkdir after && cp -a "$D/cache/." after/"#;
        in_namespace(
            script,
            &[
                ("D", d.display().to_string()),
                ("REF", r.dir.display().to_string()),
                ("ENTRY", node.entry()),
                ("FREE", (node.bytes / 2).to_string()),
            ],
        );
        let log = std::fs::read_to_string(d.join("log")).unwrap();
        let rc = std::fs::read_to_string(d.join("rc")).unwrap();
        assert_ne!(rc.trim(), "0", "{what}: the run succeeded:\n{log}");
        assert!(!log.contains("panicked"), "{what}: {log}");
        let error = log.lines().find(|l| l.starts_with("error: ")).unwrap_or("");
        for part in [
            format!("stage `{}` ({})", node.id, node.kind),
            format!("{}/", d.join("cache").display()),
            "No space left on device".into(),
            "is intact".into(),
            "rerun the same command to resume".into(),
        ] {
            assert!(error.contains(&part), "{what}: `{part}` not in\n{log}");
        }

        std::fs::remove_dir_all(d.join("cache")).unwrap();
        std::fs::rename(d.join("after"), d.join("cache")).unwrap();
        assert_consistent(&d.join("cache"), &|n| n.hash != node.hash, &what);
        let log = resume(d, &what);
        assert_eq!(
            stage_status(&log, &node.kind, &node.id),
            "computed",
            "{log}"
        );
        if k > 0 {
            let first = &r.nodes[0];
            assert_eq!(stage_status(&log, &first.kind, &first.id), "cached");
        }
    }
    eprintln!(
        "disk full at {} stages: {:.1} s",
        r.nodes.len(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn a_read_only_cache_is_refused_before_computing_and_left_as_it_was() {
    let r = reference();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("recipe.yaml"), recipe()).unwrap();
    // The first four stages cached, the rest to compute; and an empty cache.
    let cached = 4;
    let cache = d.join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    let copy = Command::new("cp")
        .args(["-a", &format!("{}/cache/.", r.dir.display())])
        .arg(&cache)
        .status()
        .unwrap();
    assert!(copy.success());
    for n in &r.nodes[cached..] {
        std::fs::remove_dir_all(cache.join("stages").join(n.entry())).unwrap();
    }
    Cache::open(&d.join("empty")).unwrap();
    let script = r#"set -e
        cd "$D"
        for c in cache empty; do
            mount --bind "$c" "$c" && mount -o remount,bind,ro "$c"
            set +e
            "$BIN" run recipe.yaml --cache "$D/$c" --out "out-$c" --threads 1 2>"log-$c"
            echo $? >"rc-$c"
            set -e
        done"#;
    in_namespace(script, &[("D", d.display().to_string())]);
    for (c, todo) in [("cache", &r.nodes[cached..]), ("empty", &r.nodes[..])] {
        let log = std::fs::read_to_string(d.join(format!("log-{c}"))).unwrap();
        let rc = std::fs::read_to_string(d.join(format!("rc-{c}"))).unwrap();
        assert_ne!(rc.trim(), "0", "{c}: the run succeeded:\n{log}");
        assert!(!log.contains("computed in"), "{c}: computed on:\n{log}");
        assert!(!log.contains("panicked"), "{c}: {log}");
        for part in [
            format!("the cache {}", d.join(c).display()),
            "Read-only file system".to_string(),
            format!("{} stage(s) need computing", todo.len()),
            format!("{}:{}", todo[0].kind, todo[0].id),
            "make it writable".to_string(),
        ] {
            assert!(log.contains(&part), "{c}: `{part}` not in\n{log}");
        }
    }
    assert_consistent(
        &cache,
        &|n| r.nodes[..cached].iter().any(|m| m.hash == n.hash),
        "ro",
    );
    let log = resume(d, "read-only cache made writable");
    let first = &r.nodes[cached - 1];
    assert_eq!(stage_status(&log, &first.kind, &first.id), "cached");
}

/// Spawns a run on `dir` with its log lines sent to the returned channel.
fn spawn_run(dir: &Path) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    let mut child = Command::new(BIN)
        .current_dir(dir)
        .args(["run", "recipe.yaml", "--cache", "cache", "--out", "out"])
        .args(["--threads", "1"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

#[test]
fn kill_9_anywhere_resumes_to_the_uninterrupted_report() {
    let r = reference();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("recipe.yaml"), recipe()).unwrap();
    // (the stage whose log line starts the countdown, or none: from the start; then the delay)
    // Spread over data, features, device simulation, both trainings, evaluation, quantization
    // and the report; each run resumes what the previous one left.
    let kills: [(Option<(&str, &str)>, u64); 8] = [
        (None, 300),
        (Some(("data", "synth")), 300),
        (Some(("data", "synth")), 700),
        (Some(("devsim", "devsim-2x6")), 250),
        (Some(("train", "teacher")), 30),
        (Some(("train", "student")), 10),
        (Some(("evaluate", "student")), 60),
        (Some(("quantize", "student_int8")), 20),
    ];
    let mut interrupted = 0;
    for (i, (after, delay)) in kills.into_iter().enumerate() {
        let (mut child, lines) = spawn_run(d);
        if let Some((kind, id)) = after {
            let deadline = Instant::now() + Duration::from_secs(120);
            // Until the line, or the run's end (then the kill finds nothing to interrupt).
            while let Ok(line) = lines.recv_timeout(deadline - Instant::now()) {
                let w: Vec<&str> = line.split_whitespace().collect();
                if w.len() >= 2 && w[0] == kind && w[1] == id {
                    break;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(delay));
        if child.try_wait().unwrap().is_none() {
            interrupted += 1;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        // Whatever the kill left: complete reference entries only (temp leftovers are for
        // the next run to clear).
        let c = d.join("cache/stages");
        for n in r.nodes.iter().filter(|n| c.join(n.entry()).exists()) {
            assert!(
                files(&c.join(n.entry())) == files(&r.dir.join("cache/stages").join(n.entry())),
                "kill {i}: {} {} is not the reference's entry",
                n.kind,
                n.id
            );
        }
    }
    assert!(interrupted >= 5, "only {interrupted} kills landed in a run");
    resume(d, "after kills");
    assert_consistent(&d.join("cache"), &|_| true, "after kills");
}
