//! `ascrepro site DIR` (one index over every report in DIR, with SHA256SUMS.site) and
//! `ascrepro verify DIR` on such a site: every report, the index and the site's checksums.
//! The site is built from a copy of the committed demo report and a second report rendered
//! from its record under another recipe id, with no published row reproduced.

use ascrepro::report::render;
use ascrepro_results::record::{RunRecord, StageTiming};
use sha2::{Digest, Sha256};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const COMMITTED: &str = "reports/cai2023_tfsepnet";
const SECOND: &str = "zhou2025_adaptf_sepnet";

fn committed() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(COMMITTED)
}

fn record() -> RunRecord {
    serde_json::from_str(&fs::read_to_string(committed().join("results.json")).unwrap()).unwrap()
}

/// `ascrepro ARGS`: Ok(stdout) or Err(stderr), never a panic.
fn ascrepro(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Result<String, String> {
    let o = Command::new(env!("CARGO_BIN_EXE_ascrepro"))
        .args(args.iter().map(|a| a.as_ref()))
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

fn site(dir: &Path) -> Result<String, String> {
    ascrepro(&[&"site", &dir])
}

fn verify(dir: &Path) -> Result<String, String> {
    ascrepro(&[&"verify", &dir])
}

fn refused(result: Result<String, String>, needles: &[&str]) -> String {
    let e = result.expect_err("the command should refuse");
    for n in needles {
        assert!(e.contains(n), "expected `{n}` in: {e}");
    }
    assert_eq!(e.trim_end().lines().count(), 1, "one paragraph: {e}");
    e
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

/// A site root holding a copy of the committed report (with its timings page when there is
/// one here) and a second report, rendered here, that reproduces no published row and has no
/// timings page.
fn site_root(tmp: &Path) -> PathBuf {
    let root = tmp.join("reports-copy");
    copy_tree(&committed(), &root.join("cai2023_tfsepnet"));
    let timings = committed().with_file_name("cai2023_tfsepnet.timings.html");
    if timings.is_file() {
        fs::copy(&timings, root.join("cai2023_tfsepnet.timings.html")).unwrap();
    }
    let mut second = record();
    second.recipe_id = SECOND.into();
    second.title = "A second report".into();
    for row in &mut second.published {
        row.reproduced_by = None;
    }
    let timings: Vec<StageTiming> = Vec::new();
    render(&second, &timings, &root.join(SECOND)).unwrap();
    fs::remove_file(root.join(format!("{SECOND}.timings.html"))).unwrap();
    root
}

/// The row of report `dir` in the index.
fn row<'a>(html: &'a str, dir: &str) -> &'a str {
    let start = html
        .find(&format!("<tr id=\"r-{dir}\">"))
        .unwrap_or_else(|| panic!("no row for {dir}"));
    let end = start + html[start..].find("</tr>").unwrap();
    &html[start..end]
}

#[test]
fn site_lists_every_report_and_verify_checks_them_all() {
    let tmp = tempfile::tempdir().unwrap();
    let root = site_root(tmp.path());
    let out = site(&root).unwrap();
    assert!(out.contains("2 report(s)"), "{out}");
    let html = fs::read_to_string(root.join("index.html")).unwrap();

    // Sorted by recipe id; each links its report.
    let first = html.find("<tr id=\"r-cai2023_tfsepnet\">").unwrap();
    let second = html.find(&format!("<tr id=\"r-{SECOND}\">")).unwrap();
    assert!(first < second);
    let r = record();
    let cai = row(&html, "cai2023_tfsepnet");
    assert!(cai.contains(&r.title) && cai.contains("<code>cai2023_tfsepnet</code>"));
    assert!(cai.contains(&r.citation));
    assert!(cai.contains("<code>demo</code> <span class=\"badge neutral\">demo</span>"));
    assert!(cai.contains("<a href=\"cai2023_tfsepnet/index.html\">report</a>"));
    assert!(cai.contains("<a href=\"cai2023_tfsepnet/index.html#findings\">findings</a>"));
    assert!(cai.contains("<span class=\"badge pass\">verified</span>"));
    assert!(cai.contains("<a href=\"cai2023_tfsepnet.timings.html\">timings</a>"));

    // Headline: the first published row a system of the run reproduces, on its accuracy, as
    // Table 3 prints it (one decimal): the mean over the stage's training seeds (`<id>`,
    // `<id>#2`, ...), computed here from the systems.
    let (label, published, runs) = r
        .published
        .iter()
        .find_map(|p| {
            let stage = p.reproduced_by.as_ref()?;
            let runs: Vec<_> = r
                .systems
                .iter()
                .filter(|s| {
                    &s.id == stage
                        || s.id
                            .strip_prefix(&format!("{stage}#"))
                            .is_some_and(|n| n.parse::<usize>().is_ok())
                })
                .collect();
            let acc = *p.values.get(&"accuracy".parse().unwrap())?;
            (!runs.is_empty()).then(|| (p.label.clone(), acc, runs))
        })
        .expect("the committed report reproduces a published row");
    let reproduced = runs
        .iter()
        .map(|s| 100.0 * s.evaluation.accuracy)
        .sum::<f64>()
        / runs.len() as f64;
    assert!(cai.contains(&label), "{cai}");
    let system = match runs.as_slice() {
        [one] => one.label.clone(),
        many => format!("mean of {} training seeds", many.len()),
    };
    assert!(cai.contains(&system), "{cai}");
    assert!(
        cai.contains(&format!("<td class=\"num\">{published:.1}</td>")),
        "{cai}"
    );
    assert!(
        cai.contains(&format!("<td class=\"num\">{reproduced:.1}</td>")),
        "{cai}"
    );
    let diff = ((reproduced * 10.0).round() - (published * 10.0).round()) / 10.0;
    assert!(
        cai.contains(&format!(">{diff:+.1}</td>")) || diff == 0.0,
        "{cai}"
    );

    // Findings, counted by kind.
    let contradictions = r
        .findings
        .iter()
        .filter(|f| f.kind == "contradiction")
        .count();
    let notes = r.findings.len() - contradictions;
    let over = if contradictions > 0 { " over" } else { "" };
    assert!(
        cai.contains(&format!(
            "<td class=\"num{over}\">{contradictions}</td>\n<td class=\"num\">{notes}</td>"
        )),
        "{cai}"
    );

    // The second report: no headline.
    let zhou = row(&html, SECOND);
    assert!(
        zhou.contains("no published row reproduced in this profile"),
        "{zhou}"
    );

    // SHA256SUMS.site: the index and each report's SHA256SUMS, as sha256sum writes them.
    let sums = fs::read_to_string(root.join("SHA256SUMS.site")).unwrap();
    let mut expected = format!("{}  index.html\n", sha(html.as_bytes()));
    for d in ["cai2023_tfsepnet", SECOND] {
        let bytes = fs::read(root.join(d).join("SHA256SUMS")).unwrap();
        expected += &format!("{}  {d}/SHA256SUMS\n", sha(&bytes));
    }
    assert_eq!(sums, expected);

    // Deterministic: again, the same bytes, also without the timings (git ignores them, so a
    // fresh checkout has none); and the site verifies.
    site(&root).unwrap();
    assert_eq!(fs::read_to_string(root.join("index.html")).unwrap(), html);
    assert!(zhou.contains(&format!("<a href=\"{SECOND}.timings.html\">timings</a>")));
    let _ = fs::remove_file(root.join("cai2023_tfsepnet.timings.html"));
    verify(&root).unwrap();
    site(&root).unwrap();
    assert_eq!(fs::read_to_string(root.join("index.html")).unwrap(), html);
    let ok = verify(&root).unwrap();
    assert!(ok.contains("all 2 report(s)"), "{ok}");
    // A report of the site still verifies on its own.
    let one = verify(&root.join(SECOND)).unwrap();
    assert!(one.contains("every file matches SHA256SUMS"), "{one}");
}

#[test]
fn verify_names_a_tampered_report_file_and_a_stale_index() {
    let tmp = tempfile::tempdir().unwrap();
    let root = site_root(tmp.path());
    site(&root).unwrap();
    verify(&root).unwrap();

    // One byte of one report's results file.
    let results = root.join("cai2023_tfsepnet/results.json");
    let original = fs::read(&results).unwrap();
    let text = String::from_utf8(original.clone()).unwrap();
    let at = text.find("\"title\": \"").unwrap() + "\"title\": \"".len();
    let mut tampered = original.clone();
    tampered[at] ^= 0x20; // flips the case of the title's first letter
    fs::write(&results, &tampered).unwrap();
    refused(verify(&root), &["cai2023_tfsepnet/results.json", "changed"]);
    // `site` lists it as failing, naming the file, and says so.
    let listed = ascrepro(&[&"site", &root]);
    assert!(listed.is_ok(), "{listed:?}");
    let html = fs::read_to_string(root.join("index.html")).unwrap();
    let cai = row(&html, "cai2023_tfsepnet");
    assert!(
        cai.contains("<span class=\"badge fail\">fails</span>"),
        "{cai}"
    );
    assert!(cai.contains("cai2023_tfsepnet/results.json"), "{cai}");
    assert!(
        !cai.contains(root.to_str().unwrap()),
        "absolute path in the page: {cai}"
    );
    fs::write(&results, &original).unwrap();
    refused(verify(&root), &["index.html", "ascrepro site"]);
    site(&root).unwrap();
    verify(&root).unwrap();

    // An index edited by hand.
    let index = root.join("index.html");
    let html = fs::read_to_string(&index).unwrap();
    fs::write(&index, html.replacen("verified", "VERIFIED", 1)).unwrap();
    refused(verify(&root), &["index.html", "ascrepro site"]);
    fs::remove_file(&index).unwrap();
    refused(verify(&root), &["index.html", "missing", "ascrepro site"]);
    site(&root).unwrap();

    // A site checksum list that does not match.
    let sums = root.join("SHA256SUMS.site");
    let good = fs::read_to_string(&sums).unwrap();
    let bad: Vec<String> = good
        .lines()
        .enumerate()
        .map(|(i, l)| match i {
            1 => format!("{}{}", "0".repeat(4), &l[4..]),
            _ => l.to_string(),
        })
        .collect();
    fs::write(&sums, bad.join("\n") + "\n").unwrap();
    refused(
        verify(&root),
        &[
            "SHA256SUMS.site",
            "cai2023_tfsepnet/SHA256SUMS",
            "ascrepro site",
        ],
    );
    fs::write(&sums, good).unwrap();
    verify(&root).unwrap();
}

#[test]
fn site_refuses_what_is_not_a_site_and_keeps_a_foreign_index() {
    let tmp = tempfile::tempdir().unwrap();
    refused(site(&tmp.path().join("nope")), &["nope", "does not exist"]);
    let empty = tmp.path().join("empty");
    fs::create_dir(&empty).unwrap();
    refused(site(&empty), &["empty", "no report directory"]);

    let root = site_root(tmp.path());
    refused(
        site(&root.join("cai2023_tfsepnet")),
        &["is a report directory, not a site root"],
    );
    fs::write(root.join("index.html"), "<html>my own page</html>").unwrap();
    refused(
        site(&root),
        &["index.html", "not written by `ascrepro site`"],
    );
    assert_eq!(
        fs::read_to_string(root.join("index.html")).unwrap(),
        "<html>my own page</html>"
    );
    refused(verify(&root), &["index.html", "ascrepro site"]);
}

#[test]
fn a_run_updates_the_site_its_report_is_written_into() {
    use ascrepro::report::site::{site_of, INDEX};
    let tmp = tempfile::tempdir().unwrap();
    // `ascrepro run` writes into `reports/<id>` by default: that is a site.
    let reports = tmp.path().join("reports");
    assert_eq!(site_of(&reports.join("x")), Some(reports.clone()));
    assert_eq!(
        site_of(Path::new("reports/x")),
        Some(PathBuf::from("reports"))
    );
    // Elsewhere, only where `ascrepro site` wrote the index.
    let other = tmp.path().join("out");
    fs::create_dir_all(&other).unwrap();
    assert_eq!(site_of(&other.join("x")), None);
    fs::write(other.join(INDEX), "<html>someone's page</html>").unwrap();
    assert_eq!(site_of(&other.join("x")), None);
    let root = site_root(tmp.path());
    site(&root).unwrap();
    assert_eq!(site_of(&root.join("x")), Some(root.clone()));
}
