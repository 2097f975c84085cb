//! The results crate over the committed reports: each loads (checked against its SHA256SUMS),
//! every table it rebuilds from results.json is the one the report wrote, the renderer
//! regenerates the report from that record alone, and a tampered file is refused by name.

use ascrepro_results::notebook::{dataframe_html, table_html};
use ascrepro_results::{Report, Site};
use polars::prelude::*;
use std::fs;
use std::path::{Path, PathBuf};

fn site_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("reports")
}

fn report_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(site_root())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            fs::copy(e.path(), target).unwrap();
        }
    }
}

#[test]
fn every_committed_report_loads_and_its_frames_are_the_files_it_wrote() {
    let dirs = report_dirs();
    assert_eq!(dirs.len(), 5, "the five recipes' reports are committed");
    for dir in dirs {
        let report = Report::open(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let tables = report.tables();
        let files = tables.files();
        assert!(files.len() > 10, "{}", dir.display());
        for t in files {
            let path = dir.join("results").join(format!("{}.parquet", t.name));
            let file = fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let written = ParquetReader::new(file).finish().unwrap();
            assert!(
                written.equals_missing(&t.df),
                "{}: the frame rebuilt from results.json differs from the file",
                path.display()
            );
        }
        // What a notebook shows: frames of the right shape, figures that serialise.
        let systems = report.record().systems.len();
        assert_eq!(report.device_wise().height(), systems);
        assert_eq!(report.class_wise().height(), systems);
        assert_eq!(report.findings().height(), report.record().findings.len());
        let first = &report.record().systems[0].id;
        assert_eq!(report.confusion(first).unwrap().height(), 10);
        assert!(report.confusion("no such system").is_err());
        assert!(report.device_figure().to_html().contains("Plotly.newPlot"));
        assert!(dataframe_html(&report.device_wise()).contains("<table"));
        assert!(table_html(report.table("device_wise").unwrap()).contains("<table"));
    }
}

#[test]
fn the_renderer_regenerates_each_report_from_its_record_alone() {
    let tmp = tempfile::tempdir().unwrap();
    for dir in report_dirs() {
        let report = Report::open(&dir).unwrap();
        let out = tmp.path().join(dir.file_name().unwrap());
        ascrepro::report::render(report.record(), &[], &out).unwrap();
        assert_eq!(
            fs::read_to_string(out.join("SHA256SUMS")).unwrap(),
            fs::read_to_string(dir.join("SHA256SUMS")).unwrap(),
            "{}: rendering its results.json again gives other files",
            dir.display()
        );
    }
}

#[test]
fn the_site_loads_and_compares_the_reports() {
    let site = Site::open(site_root()).unwrap();
    assert_eq!(site.reports().len(), 5);
    let devices = site.device_wise().unwrap();
    let rows: usize = site
        .reports()
        .iter()
        .map(|r| r.record().systems.len())
        .sum();
    assert_eq!(devices.height(), rows);
    assert_eq!(devices.get_column_names()[0].as_str(), "recipe");
    for d in ["a", "b", "c", "s1", "s6"] {
        assert!(devices.column(d).is_ok(), "device column {d}");
    }
    assert_eq!(site.class_wise().unwrap().height(), rows);
    // Each report reproduces published rows; the filter keeps exactly its systems.
    let reproducing = site.reproducing(&devices).unwrap();
    let expected: usize = site
        .reports()
        .iter()
        .map(|r| r.reproducing_systems().len())
        .sum();
    assert!(expected >= 5);
    assert_eq!(reproducing.height(), expected);
    let pairs = site.accuracy_pairs().unwrap();
    assert!(pairs.height() > 0);
    assert!(site.published_vs_reproduced_figure().is_some());
    let macs = site.accuracy_against_macs_figure().to_html();
    assert_eq!(
        macs.matches("\"type\":\"scatter\"").count(),
        6,
        "five reports and the limit"
    );
    assert!(site.findings().unwrap().height() > 0);
}

#[test]
fn a_tampered_file_is_refused_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let site = tmp.path().join("reports");
    copy_dir(&site_root(), &site);
    let dir = site.join("cai2023_tfsepnet");
    Report::open(&dir).unwrap();

    let csv = dir.join("results/device_wise.csv");
    let text = fs::read_to_string(&csv).unwrap();
    fs::write(&csv, text.replacen(',', ";", 1)).unwrap();
    let e = Report::open(&dir).unwrap_err().to_string();
    assert!(e.contains("results/device_wise.csv"), "{e}");
    assert!(e.contains("changed since the report was rendered"), "{e}");
    let e = Site::open(&site).unwrap_err().to_string();
    assert!(e.contains("results/device_wise.csv"), "{e}");
    fs::write(&csv, text).unwrap();

    // The record itself, re-listed in SHA256SUMS: the site's list still catches it.
    let json = dir.join("results.json");
    let record = fs::read_to_string(&json).unwrap();
    fs::write(
        &json,
        record.replacen("\"accuracy\": 0.", "\"accuracy\": 0.9", 1),
    )
    .unwrap();
    let e = Report::open(&dir).unwrap_err().to_string();
    assert!(e.contains("results.json"), "{e}");
    let sums = dir.join("SHA256SUMS");
    let listed = fs::read_to_string(&sums).unwrap();
    let new_hash = ascrepro_results::sums::sha256_file(&json).unwrap();
    let relisted: String = listed
        .lines()
        .map(|l| match l.strip_suffix("  results.json") {
            Some(_) => format!("{new_hash}  results.json\n"),
            None => format!("{l}\n"),
        })
        .collect();
    fs::write(&sums, relisted).unwrap();
    Report::open(&dir).expect("consistent with its own SHA256SUMS again");
    let e = Site::open(&site).unwrap_err().to_string();
    assert!(e.contains("cai2023_tfsepnet/SHA256SUMS"), "{e}");
    assert!(e.contains("changed since the site was written"), "{e}");

    // An unlisted file and a missing one.
    fs::write(&json, record).unwrap();
    fs::write(&sums, listed).unwrap();
    fs::write(dir.join("results/extra.csv"), "x\n").unwrap();
    let e = Report::open(&dir).unwrap_err().to_string();
    assert!(
        e.contains("results/extra.csv") && e.contains("not listed"),
        "{e}"
    );
    fs::remove_file(dir.join("results/extra.csv")).unwrap();
    fs::remove_file(dir.join("results/class_wise.parquet")).unwrap();
    let e = Report::open(&dir).unwrap_err().to_string();
    assert!(
        e.contains("results/class_wise.parquet") && e.contains("missing"),
        "{e}"
    );
}
