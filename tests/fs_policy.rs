//! The file-system policy (src/fsio) through the command line: inputs that are FIFOs are
//! refused instead of hanging, outputs never replace a FIFO, a link, an input or a data file,
//! manifests stay inside their data directory, a run never deletes a directory that is not
//! its report, and `--threads` is bounded.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `ascrepro args` in `dir`; a run longer than `secs` is killed and fails the test (a
/// regression must fail, not hang the suite).
fn ascrepro_within(dir: &Path, args: &[&str], secs: u64) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ascrepro"))
        .current_dir(dir)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ascrepro");
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`ascrepro {}` hung (killed after {secs} s)", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// [`ascrepro_within`] that must fail cleanly; returns stderr.
fn fails(dir: &Path, args: &[&str], secs: u64) -> String {
    let out = ascrepro_within(dir, args, secs);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "expected failure:\n{stderr}");
    assert!(!stderr.contains("panicked"), "panic:\n{stderr}");
    assert!(stderr.contains("error: "), "{stderr}");
    stderr
}

fn succeeds(dir: &Path, args: &[&str]) -> String {
    let out = ascrepro_within(dir, args, 120);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "expected success:\n{stderr}");
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn mkfifo(path: &Path) {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
}

fn is_fifo(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_fifo())
}

fn wav(path: &Path) {
    let samples: Vec<f32> = (0..32_000).map(|i| (i as f32 * 0.05).sin() * 0.3).collect();
    ascrepro::audio::wav::write_wav_24(path, &samples, 32_000).unwrap();
}

const FEATURES: [&str; 3] = ["features", "--frontend", "cpmel-128"];

fn features(out: &str, wav: &str) -> Vec<String> {
    let mut args: Vec<String> = FEATURES.iter().map(|s| s.to_string()).collect();
    args.extend(["--out".into(), out.into(), wav.into()]);
    args
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn fifo_inputs_are_refused_not_waited_on() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    mkfifo(&d.join("pipe.wav"));
    let e = fails(d, &refs(&features("x.npy", "pipe.wav")), 30);
    assert!(e.contains("pipe.wav") && e.contains("FIFO"), "{e}");

    mkfifo(&d.join("pipe.yaml"));
    let e = fails(d, &["plan", "pipe.yaml"], 30);
    assert!(e.contains("pipe.yaml") && e.contains("FIFO"), "{e}");

    std::fs::create_dir(d.join("data")).unwrap();
    let e = fails(
        d,
        &["manifest", "verify", "pipe.yaml", "--root", "data"],
        30,
    );
    assert!(e.contains("pipe.yaml") && e.contains("FIFO"), "{e}");

    // A FIFO inside a data directory is refused by name, not read.
    std::fs::write(d.join("data/a.txt"), "a").unwrap();
    mkfifo(&d.join("data/p.wav"));
    let e = fails(d, &["manifest", "create", "data", "--out", "m.yaml"], 30);
    assert!(e.contains("p.wav") && e.contains("FIFO"), "{e}");
}

#[test]
fn an_output_never_replaces_a_fifo_a_link_a_directory_or_its_input() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    wav(&d.join("in.wav"));
    let original = std::fs::read(d.join("in.wav")).unwrap();

    mkfifo(&d.join("pipe.npy"));
    let e = fails(d, &refs(&features("pipe.npy", "in.wav")), 60);
    assert!(e.contains("pipe.npy") && e.contains("FIFO"), "{e}");
    assert!(is_fifo(&d.join("pipe.npy")), "the FIFO was replaced");

    std::fs::write(d.join("target.npy"), "kept").unwrap();
    std::os::unix::fs::symlink("target.npy", d.join("link.npy")).unwrap();
    let e = fails(d, &refs(&features("link.npy", "in.wav")), 60);
    assert!(e.contains("link.npy") && e.contains("symbolic link"), "{e}");
    assert!(std::fs::symlink_metadata(d.join("link.npy"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        std::fs::read_to_string(d.join("target.npy")).unwrap(),
        "kept"
    );

    std::fs::create_dir(d.join("dir.npy")).unwrap();
    let e = fails(d, &refs(&features("dir.npy", "in.wav")), 60);
    assert!(e.contains("dir.npy") && e.contains("directory"), "{e}");

    // The input itself, by its name and through a hard link.
    let e = fails(d, &refs(&features("in.wav", "in.wav")), 60);
    assert!(e.contains("in.wav") && e.contains("input"), "{e}");
    std::fs::hard_link(d.join("in.wav"), d.join("same.wav")).unwrap();
    let e = fails(d, &refs(&features("same.wav", "in.wav")), 60);
    assert!(e.contains("same.wav") && e.contains("input"), "{e}");
    assert_eq!(std::fs::read(d.join("in.wav")).unwrap(), original);

    // An existing regular output is rewritten: re-running a command is allowed.
    std::fs::write(d.join("out.npy"), "old").unwrap();
    succeeds(d, &refs(&features("out.npy", "in.wav")));
    assert!(std::fs::read(d.join("out.npy"))
        .unwrap()
        .starts_with(b"\x93NUMPY"));
}

#[test]
fn manifest_create_keeps_its_output_out_of_the_data_it_hashes() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::create_dir(d.join("data")).unwrap();
    std::fs::write(d.join("data/f1.txt"), "one").unwrap();
    std::fs::write(d.join("data/f2.txt"), "two").unwrap();
    for out in ["data/f1.txt", "data/new.yaml"] {
        let e = fails(d, &["manifest", "create", "data", "--out", out], 30);
        assert!(
            e.contains(out) && e.contains("inside the data directory"),
            "{e}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(d.join("data/f1.txt")).unwrap(),
        "one"
    );
    assert!(!d.join("data/new.yaml").exists());
    succeeds(d, &["manifest", "create", "data", "--out", "m.yaml"]);
}

#[test]
fn manifest_create_refuses_a_link_out_of_the_data_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::create_dir_all(d.join("data/sub")).unwrap();
    std::fs::write(d.join("data/sub/a.txt"), "a").unwrap();
    std::fs::write(d.join("secret.txt"), "not data").unwrap();
    // A link that stays inside the data directory is followed and listed.
    std::os::unix::fs::symlink("sub/a.txt", d.join("data/inner.txt")).unwrap();
    succeeds(d, &["manifest", "create", "data", "--out", "m.yaml"]);
    let m = std::fs::read_to_string(d.join("m.yaml")).unwrap();
    assert!(m.contains("inner.txt"), "{m}");

    std::os::unix::fs::symlink("../secret.txt", d.join("data/escape.txt")).unwrap();
    let e = fails(d, &["manifest", "create", "data", "--out", "m2.yaml"], 30);
    assert!(
        e.contains("escape.txt") && e.contains("outside the data directory"),
        "{e}"
    );
    assert!(!d.join("m2.yaml").exists());
}

#[test]
fn threads_beyond_the_bound_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    for n in ["100000", "0"] {
        let e = fails(
            tmp.path(),
            &["run", "missing.yaml", "--threads", n, "--quiet"],
            30,
        );
        assert!(e.contains("--threads") && e.contains("256"), "{e}");
    }
}

#[test]
fn run_refuses_to_replace_a_directory_that_is_not_its_report() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("recipe.yaml"), include_str!("fixtures/tiny.yaml")).unwrap();
    std::fs::create_dir_all(d.join("mine/notes")).unwrap();
    std::fs::write(d.join("mine/notes/thesis.tex"), "years of work").unwrap();
    let e = fails(
        d,
        &[
            "run",
            "recipe.yaml",
            "--out",
            "mine",
            "--cache",
            "cache",
            "--threads",
            "1",
            "--quiet",
        ],
        600,
    );
    assert!(e.contains("mine") && e.contains("--out"), "{e}");
    assert_eq!(
        std::fs::read_to_string(d.join("mine/notes/thesis.tex")).unwrap(),
        "years of work"
    );
}
