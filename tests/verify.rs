//! What `ascrepro verify` accepts (a report holds exactly the files its SHA256SUMS lists, all
//! regular files, its pages among them) and what a render may replace (only such a report, or
//! an empty directory). The record is the committed demo report's, so rendering takes moments.

use ascrepro::report::{render, verify};
use ascrepro_results::record::{RunRecord, StageTiming};
use sha2::{Digest, Sha256};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn record() -> RunRecord {
    serde_json::from_str(include_str!("../reports/cai2023_tfsepnet/results.json")).unwrap()
}

fn timings() -> Vec<StageTiming> {
    vec![StageTiming {
        kind: "train".into(),
        id: "student".into(),
        seconds: 12.5,
        cached: false,
    }]
}

fn rendered(tmp: &Path, name: &str) -> PathBuf {
    let out = tmp.join(name);
    render(&record(), &timings(), &out).unwrap();
    verify(&out).unwrap();
    out
}

/// `ascrepro verify dir`: Ok(stdout) or Err(stderr), never a panic.
fn verify_cli(dir: &Path) -> Result<String, String> {
    let o = Command::new(env!("CARGO_BIN_EXE_ascrepro"))
        .arg("verify")
        .arg(dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!stderr.contains("panicked"), "{stderr}");
    if o.status.success() {
        Ok(String::from_utf8_lossy(&o.stdout).to_string())
    } else {
        Err(stderr)
    }
}

fn refused(dir: &Path, needle: &str) {
    let e = verify_cli(dir).expect_err("verify should refuse");
    assert!(e.contains(needle), "expected `{needle}` in: {e}");
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        } else {
            fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn append_sums(dir: &Path, line: &str) {
    let mut s = fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
    s.push_str(line);
    fs::write(dir.join("SHA256SUMS"), s).unwrap();
}

#[test]
fn timings_are_written_beside_the_report_and_nothing_unlisted_passes() {
    let tmp = tempfile::tempdir().unwrap();
    let out = rendered(tmp.path(), "r");
    assert!(verify_cli(&out).is_ok());
    assert!(tmp.path().join("r.timings.json").is_file());
    assert!(tmp.path().join("r.timings.html").is_file());
    assert!(!out.join("timings.json").exists() && !out.join("timings.html").exists());

    fs::write(out.join("timings.evil.js"), "alert(1)").unwrap();
    refused(&out, "timings.evil.js");
    fs::remove_file(out.join("timings.evil.js")).unwrap();

    fs::write(out.join("timings.html"), "<script>alert(1)</script>").unwrap();
    refused(&out, "timings.html");
    fs::remove_file(out.join("timings.html")).unwrap();
    assert!(verify_cli(&out).is_ok());
}

#[test]
fn a_listed_symlink_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = rendered(tmp.path(), "r");
    let outside = tmp.path().join("passwd");
    fs::write(&outside, "root:x:0:0\n").unwrap();
    std::os::unix::fs::symlink(&outside, out.join("results/passwd.csv")).unwrap();
    append_sums(
        &out,
        &format!("{}  results/passwd.csv\n", sha(b"root:x:0:0\n")),
    );
    refused(&out, "passwd.csv");
    let e = verify_cli(&out).unwrap_err();
    assert!(e.contains("symbolic link"), "{e}");
}

#[test]
fn sums_that_list_nothing_or_no_report_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    fs::create_dir(&empty).unwrap();
    fs::write(empty.join("SHA256SUMS"), "").unwrap();
    refused(&empty, "SHA256SUMS");

    // Every file listed and matching, but no report page: not a report.
    let other = tmp.path().join("other");
    fs::create_dir(&other).unwrap();
    fs::write(other.join("a.txt"), "a").unwrap();
    fs::write(other.join("SHA256SUMS"), format!("{}  a.txt\n", sha(b"a"))).unwrap();
    refused(&other, "not a complete ascrepro report");
}

#[test]
fn sums_paths_that_escape_or_repeat_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = rendered(tmp.path(), "r");
    let good = fs::read_to_string(out.join("SHA256SUMS")).unwrap();
    let first = good.lines().next().unwrap().to_string();
    for (bad, needle) in [
        (format!("{first}\n"), "twice"),
        (format!("{}  ../r.timings.json\n", "0".repeat(64)), ".."),
        (format!("{}  /etc/passwd\n", "0".repeat(64)), "absolute"),
    ] {
        fs::write(out.join("SHA256SUMS"), format!("{good}{bad}")).unwrap();
        refused(&out, needle);
    }
}

#[test]
fn render_replaces_only_an_empty_directory_or_its_own_report() {
    let tmp = tempfile::tempdir().unwrap();
    // Someone's directory: refused, and everything in it kept.
    let mine = tmp.path().join("mine");
    fs::create_dir_all(mine.join("deep")).unwrap();
    fs::write(mine.join("deep/notes.txt"), "keep me").unwrap();
    let e = render(&record(), &timings(), &mine)
        .unwrap_err()
        .to_string();
    assert!(e.contains("mine") && e.contains("--out"), "{e}");
    assert_eq!(
        fs::read_to_string(mine.join("deep/notes.txt")).unwrap(),
        "keep me"
    );

    // An empty directory is used; its own report is replaced.
    let out = tmp.path().join("r");
    fs::create_dir(&out).unwrap();
    render(&record(), &timings(), &out).unwrap();
    render(&record(), &timings(), &out).unwrap();
    verify(&out).unwrap();

    // A report with a file added by hand is no longer only the render's: refused, kept.
    fs::write(out.join("results/my_analysis.csv"), "x\n1\n").unwrap();
    let e = render(&record(), &timings(), &out).unwrap_err().to_string();
    assert!(e.contains("my_analysis.csv"), "{e}");
    assert!(out.join("results/my_analysis.csv").is_file());

    // A report of the layout before the marker (timings inside, unlisted), as committed, is
    // recognised and replaced; `verify` no longer passes it.
    let legacy = tmp.path().join("legacy");
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("reports/cai2023_tfsepnet"),
        &legacy,
    );
    if legacy.join("timings.html").exists() {
        assert!(verify_cli(&legacy).is_err());
    }
    render(&record(), &timings(), &legacy).unwrap();
    verify(&legacy).unwrap();

    // A file is not a report directory, nor is a link to one.
    let file = tmp.path().join("file");
    fs::write(&file, "x").unwrap();
    assert!(render(&record(), &timings(), &file).is_err());
    assert_eq!(fs::read_to_string(&file).unwrap(), "x");
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&out, &link).unwrap();
    let e = render(&record(), &timings(), &link)
        .unwrap_err()
        .to_string();
    assert!(e.contains("symbolic link"), "{e}");
}
