//! Every table of results in the five technical reports is expressible as published rows: the
//! fixture transcribes at least one real row of each, it validates, and each row reaches the
//! run record's published rows and the report's comparison tables with its own columns and
//! the reproduced figure of each column (device-wise, class-wise, groups, log loss, counts).

use ascrepro::eval::published;
use ascrepro::recipe::{self, Plan};
use ascrepro::report::render;
use ascrepro_results::record::*;
use polars::prelude::{DataFrame, ParquetReader, SerReader};
use std::collections::BTreeMap;
use std::path::Path;

mod common;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/published_tables.yaml"
);

/// A results table of a report: its file under shared/seeds, words of its caption, its name in
/// the fixture, and the rows the fixture transcribes from it (label, columns in table order).
struct ResultsTable {
    seed: &'static str,
    caption: &'static str,
    table: &'static str,
    rows: &'static [(&'static str, &'static [&'static str])],
}

/// Every results table of the five reports.
const TABLES: &[ResultsTable] = &[
    ResultsTable {
        seed: "cai2023_tfsepnet_dcase2023.txt",
        caption: "Table 3: Results.",
        table: "Cai 2023 Table 3",
        rows: &[(
            "+ Knowledge Distillation",
            &[
                "a", "b", "c", "s1", "s2", "s3", "s4", "s5", "s6", "accuracy", "macs_m", "params_k",
            ],
        )],
    },
    ResultsTable {
        seed: "cai2024_tfsepnet64_ssl_teachers_dcase2024.txt",
        caption: "Table 1: Accuracy of fine-tuned BEATs",
        table: "Cai 2024 Table 1",
        rows: &[("BEATs(SSL+SL)", SPLITS)],
    },
    ResultsTable {
        seed: "cai2024_tfsepnet64_ssl_teachers_dcase2024.txt",
        caption: "The number of parameters is 126,858",
        table: "Cai 2024 Table 2",
        rows: &[("TF-SepNet-64 (caption)", &["macs_m", "params"])],
    },
    ResultsTable {
        seed: "cai2024_tfsepnet64_ssl_teachers_dcase2024.txt",
        caption: "Table 3: Accuracy of submitted systems",
        table: "Cai 2024 Table 3",
        rows: &[("S2 (t = 3)", SPLITS)],
    },
    ResultsTable {
        seed: "ramezanee2025_repconv_dcase2025.txt",
        caption: "Table 2 : Device-Specific performance",
        table: "Ramezanee 2025 Table 2",
        rows: &[(
            "Student model, all samples",
            &["a", "b", "c", "s1", "s2", "s3", "others"],
        )],
    },
    ResultsTable {
        seed: "ramezanee2025_repconv_dcase2025.txt",
        caption: "Table 3: Performance metrics for the trained teachers",
        table: "Ramezanee 2025 Table 3",
        rows: &[
            ("DSFlexi_ver_a", &["accuracy", "log_loss"]),
            ("Ensemble models", &["accuracy", "log_loss"]),
        ],
    },
    ResultsTable {
        seed: "zhang2025_sscp_mobile_pruning_dcase2025.txt",
        caption: "Table 1: Configuration of three submission systems.",
        table: "Zhang 2025 Table 1",
        rows: &[(ZHANG_S1_CONFIG, &["params", "macs"])],
    },
    ResultsTable {
        seed: "zhang2025_sscp_mobile_pruning_dcase2025.txt",
        caption: "Table 2: Performance test of four submission systems.",
        table: "Zhang 2025 Table 2",
        rows: &[(
            "S1",
            &[
                "a", "b", "c", "s1", "s2", "s3", "s4", "s5", "s6", "accuracy",
            ],
        )],
    },
    ResultsTable {
        seed: "zhang2025_sscp_mobile_pruning_dcase2025.txt",
        caption: "Table 3: Comparative experiments",
        table: "Zhang 2025 Table 3",
        rows: &[
            ("General", &["a", "b", "c", "s1", "s2", "s3"]),
            ("Device-Specific", &["a", "b", "c", "s1", "s2", "s3"]),
        ],
    },
    ResultsTable {
        seed: "zhou2025_adaptf_sepnet_dcase2025.txt",
        caption: "Table 1: Class-wise accuracy (%)",
        table: "Zhou 2025 Table 1",
        rows: &[
            ("With device-specific finetuning", CLASSES),
            ("Without device-specific finetuning", CLASSES),
        ],
    },
    ResultsTable {
        seed: "zhou2025_adaptf_sepnet_dcase2025.txt",
        caption: "Table 2: Performance evaluation on different devices",
        table: "Zhou 2025 Table 2",
        rows: &[(
            "With",
            &[
                "a", "b", "c", "s1", "s2", "s3", "s4", "s5", "s6", "accuracy",
            ],
        )],
    },
];

const SPLITS: &[&str] = &[
    "split5",
    "split10",
    "split25",
    "split50",
    "split100",
    "split_mean",
];

const CLASSES: &[&str] = &ascrepro_results::labels::CLASSES;

fn plan(profile: &str) -> Plan {
    recipe::load(Path::new(FIXTURE), profile).unwrap_or_else(|e| panic!("{e}"))
}

fn find<'a>(rows: &'a [PublishedRow], table: &str, label: &str) -> &'a PublishedRow {
    rows.iter()
        .find(|r| r.table == table && r.label == label)
        .unwrap_or_else(|| panic!("no row `{label}` of `{table}`"))
}

fn column(key: &str) -> PublishedColumn {
    key.parse().unwrap()
}

#[test]
fn every_results_table_of_the_five_reports_is_transcribed_and_validates() {
    let demo = plan("demo");
    let rows = published::rows(&demo.recipe.published, &["student"], "demo");
    let mut transcribed = 0;
    for t in TABLES {
        let (seed, caption, table) = (t.seed, t.caption, t.table);
        let text = std::fs::read_to_string(common::shared(&format!("seeds/{seed}"))).unwrap();
        assert!(text.contains(caption), "{seed} has no `{caption}`");
        for (label, keys) in t.rows {
            let row = find(&rows, table, label);
            let mut columns: Vec<PublishedColumn> = row.values.keys().cloned().collect();
            columns.sort_by_key(PublishedColumn::table_order);
            let got: Vec<String> = columns.iter().map(PublishedColumn::key).collect();
            assert_eq!(got, *keys, "columns of `{label}` ({table})");
            transcribed += 1;
        }
    }
    assert_eq!(transcribed, rows.len(), "a fixture row outside TABLES");

    // Values as printed, the unit and subset with them.
    let zhou = find(&rows, "Zhou 2025 Table 2", "With");
    assert_eq!(zhou.accuracy_unit, AccuracyUnit::Fraction);
    assert_eq!(zhou.values[&column("a")], 0.676);
    assert_eq!(zhou.split, Some(TrainSplit::Split25));
    let classes = find(
        &rows,
        "Zhou 2025 Table 1",
        "Without device-specific finetuning",
    );
    assert_eq!(classes.values[&column("public_square")], 48.79);
    let zhang = find(&rows, "Zhang 2025 Table 1", ZHANG_S1_CONFIG);
    assert_eq!(zhang.values[&PublishedColumn::Macs], 29982132.0);
    assert_eq!(
        find(
            &rows,
            "Ramezanee 2025 Table 2",
            "Student model, all samples"
        )
        .values[&PublishedColumn::DeviceGroup(ascrepro_results::columns::DeviceGroup::Others)],
        53.4
    );

    // Reproduced where the profile runs the row's stage; a row restricted to `paper` is not
    // reproduced in `demo` but is in `paper`.
    let cai = find(&rows, "Cai 2023 Table 3", "+ Knowledge Distillation");
    assert_eq!(cai.reproduced_by.as_deref(), Some("student"));
    let zhang = find(&rows, "Zhang 2025 Table 2", "S1");
    assert_eq!(zhang.reproduced_by, None);
    let paper = plan("paper");
    let rows = published::rows(&paper.recipe.published, &["student"], "paper");
    let zhang = find(&rows, "Zhang 2025 Table 2", "S1");
    assert_eq!(zhang.reproduced_by.as_deref(), Some("student"));

    // The complexity a caption prints, as an exact count and in M, matches the architecture.
    let (checks, findings) =
        published::complexity_checks(&demo.recipe.published, &demo.published_models, [1, 512, 64]);
    assert_eq!(checks.len(), 1, "{checks:?}");
    assert_eq!(checks[0].status, "match", "{checks:?}");
    assert_eq!(checks[0].params, Some(126_858));
    assert_eq!(checks[0].published_params_k, Some(126.858));
    // The printed figures match; deployment is what breaks the limit: BatchNorm folded into
    // the convs (torchinfo counts their new biases per output element) gives 30,573,856 MACs.
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert!(
        findings[0].text.contains("29419648 MACs as trained")
            && findings[0].text.contains("30573856 MACs, above the limit")
            && findings[0].text.contains("124138 params instead of 126858"),
        "{}",
        findings[0].text
    );
}

/// Zhang 2025 Table 1's S1, its configuration columns (text) in the label.
const ZHANG_S1_CONFIG: &str = "S1 (4 PaSST, AGP, pruned from base channel 64 to 32)";

/// The system reproducing the fixture's rows: device-wise accuracies with unequal clip counts
/// among s4–s6, so the pooled `others` (52.5) differs from their mean (50.0).
fn student() -> SystemRecord {
    let devices = [
        ("a", 0.70, 300),
        ("b", 0.60, 300),
        ("c", 0.62, 300),
        ("s1", 0.58, 300),
        ("s2", 0.56, 300),
        ("s3", 0.60, 300),
        ("s4", 0.50, 100),
        ("s5", 0.60, 200),
        ("s6", 0.40, 100),
    ];
    let device_accuracy: BTreeMap<String, DeviceScore> = devices
        .iter()
        .map(|(d, a, n)| {
            (
                d.to_string(),
                DeviceScore {
                    clips: *n,
                    accuracy: *a,
                    macro_accuracy: *a,
                },
            )
        })
        .collect();
    SystemRecord {
        id: "student".into(),
        label: "Student".into(),
        model: "tfsepnet23 C=4".into(),
        training: "1 epoch".into(),
        precision: Precision::Fp32,
        complexity: Complexity {
            input: vec![1, 128, 44],
            layers: vec![],
            params: 6838,
            macs: 1_650_149,
        },
        evaluation: Evaluation {
            clips: 2200,
            accuracy: 0.59,
            macro_accuracy: 0.585,
            log_loss: 1.234,
            class_accuracy: (0..10).map(|i| 0.40 + 0.03 * i as f64).collect(),
            device_accuracy,
            confusion: vec![vec![0; 10]; 10],
        },
        curve: vec![],
        notes: vec![],
        split: None,
        pruning: None,
        quantization: None,
    }
}

fn record(published: Vec<PublishedRow>) -> RunRecord {
    RunRecord {
        recipe_id: "published_tables".into(),
        title: "Published tables".into(),
        citation: "Test fixture.".into(),
        profile: "demo".into(),
        profile_note: "Test fixture.".into(),
        identity: RunIdentity {
            run_hash: "1f".repeat(32),
            recipe_hash: "2e".repeat(32),
            data: BTreeMap::new(),
            code_version: "0.1.0+test".into(),
            frontend: "frontend=cpmel-128".into(),
            platform: BTreeMap::new(),
        },
        stages: vec![],
        systems: vec![student()],
        published,
        complexity_checks: vec![],
        findings: vec![],
        effects: vec![],
        recipe_text: String::new(),
    }
}

/// The comparison table as written to results/, one row per (label, row kind).
struct Comparison(DataFrame);

impl Comparison {
    fn index(&self, table: &str, label: &str, kind: &str) -> usize {
        let col = |n: &str| self.0.column(n).unwrap().str().unwrap().clone();
        let (t, l, k) = (col("table"), col("published_label"), col("row"));
        (0..self.0.height())
            .find(|&i| t.get(i) == Some(table) && l.get(i) == Some(label) && k.get(i) == Some(kind))
            .unwrap_or_else(|| panic!("no `{kind}` row for `{label}` ({table})"))
    }

    fn value(&self, table: &str, label: &str, kind: &str, key: &str) -> Option<f64> {
        let i = self.index(table, label, kind);
        self.0.column(key).unwrap().f64().unwrap().get(i)
    }

    fn text(&self, table: &str, label: &str, kind: &str, col: &str) -> Option<String> {
        let i = self.index(table, label, kind);
        self.0
            .column(col)
            .unwrap()
            .str()
            .unwrap()
            .get(i)
            .map(str::to_string)
    }
}

#[test]
fn published_rows_render_beside_each_columns_reproduced_figure() {
    let demo = plan("demo");
    let mut rows = published::rows(&demo.recipe.published, &["student"], "demo");
    // No report prints a seen/unseen figure; Cai 2023 Table 3 heads its columns with them.
    rows.push(PublishedRow {
        table: "Device groups".into(),
        label: "Seen and unseen".into(),
        values: [(column("seen"), 60.0), (column("unseen"), 50.0)]
            .into_iter()
            .collect(),
        reproduced_by: Some("student".into()),
        profile: None,
        split: None,
        accuracy_unit: AccuracyUnit::Percent,
    });
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("report");
    render(&record(rows), &[], &out).unwrap();
    let file = std::fs::File::open(out.join("results/published_vs_reproduced.parquet")).unwrap();
    let t = Comparison(ParquetReader::new(file).finish().unwrap());
    let close = |got: Option<f64>, want: f64| {
        let got = got.expect("a figure");
        assert!((got - want).abs() < 1e-9, "{got} != {want}");
    };

    // Device-wise, overall accuracy (correct / clips) and complexity.
    let cai = ("Cai 2023 Table 3", "+ Knowledge Distillation");
    close(t.value(cai.0, cai.1, "published", "a"), 64.4);
    close(t.value(cai.0, cai.1, "reproduced", "a"), 70.0);
    close(t.value(cai.0, cai.1, "difference", "a"), 5.6);
    close(t.value(cai.0, cai.1, "reproduced", "accuracy"), 59.0);
    close(t.value(cai.0, cai.1, "reproduced", "macs_m"), 1.650149);
    close(t.value(cai.0, cai.1, "difference", "params_k"), 0.008);
    // Device groups: `others` pooled over s4–s6's clips; seen/unseen the mean of their devices.
    let ram = ("Ramezanee 2025 Table 2", "Student model, all samples");
    close(t.value(ram.0, ram.1, "reproduced", "others"), 52.5);
    close(t.value(ram.0, ram.1, "difference", "others"), -0.9);
    close(t.value(ram.0, ram.1, "difference", "b"), 5.0);
    let groups = ("Device groups", "Seen and unseen");
    close(t.value(groups.0, groups.1, "reproduced", "seen"), 61.0);
    close(t.value(groups.0, groups.1, "reproduced", "unseen"), 50.0);
    // Class-wise, two decimals as printed.
    let zhou = ("Zhou 2025 Table 1", "With device-specific finetuning");
    close(t.value(zhou.0, zhou.1, "reproduced", "airport"), 40.0);
    close(t.value(zhou.0, zhou.1, "difference", "tram"), 67.0 - 63.1);
    // Fractions are shown in %.
    let zf = ("Zhou 2025 Table 2", "With");
    close(t.value(zf.0, zf.1, "published", "a"), 67.6);
    close(t.value(zf.0, zf.1, "difference", "accuracy"), 59.0 - 59.5);
    // Log loss against the evaluation's.
    let dsf = ("Ramezanee 2025 Table 3", "DSFlexi_ver_a");
    close(t.value(dsf.0, dsf.1, "reproduced", "log_loss"), 1.234);
    close(
        t.value(dsf.0, dsf.1, "difference", "log_loss"),
        1.234 - 1.31,
    );
    // Subset columns are published only, even for a reproduced row.
    let s2 = ("Cai 2024 Table 3", "S2 (t = 3)");
    close(t.value(s2.0, s2.1, "published", "split25"), 57.9);
    assert_eq!(t.value(s2.0, s2.1, "reproduced", "split25"), None);
    assert_eq!(t.value(s2.0, s2.1, "reproduced", "split_mean"), None);
    // Exact counts, published only (no stage).
    let zc = ("Zhang 2025 Table 1", ZHANG_S1_CONFIG);
    close(t.value(zc.0, zc.1, "published", "macs"), 29982132.0);
    assert!(t.text(zc.0, zc.1, "not reproduced", "system").is_some());
    // Restricted to another profile.
    let why = t.text("Zhang 2025 Table 2", "S1", "not reproduced", "system");
    assert!(
        why.as_deref()
            .is_some_and(|w| w.contains("profile `paper` only")),
        "{why:?}"
    );
    assert_eq!(
        t.text("Zhang 2025 Table 2", "S1", "published", "split")
            .as_deref(),
        Some("split25")
    );

    // The page heads each kind of column as the reports do and says what it converted.
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    for header in [
        "<th class=\"num\">A</th>",
        "<th class=\"num\">Others</th>",
        "<th class=\"num\">Seen (A–S3)</th>",
        "<th class=\"num\">metro station</th>",
        "<th class=\"num\">5%</th>",
        "<th class=\"num\">Avg.</th>",
        "<th class=\"num\">Log loss</th>",
        "<th class=\"num\">Params</th>",
        "<th class=\"num\">MACs</th>",
        "<th>Subset</th>",
        "class=\"grp\">Classes</th>",
        "class=\"grp\">Training subset</th>",
    ] {
        assert!(html.contains(header), "missing {header}");
    }
    // Published cells keep the decimals printed: 68.81 and 51.70 (Zhang), 48.30 (Zhou's table
    // prints two decimals), 29,982,132, 1.31.
    for cell in [
        "<td class=\"num\">68.81</td>",
        "<td class=\"num\">51.70</td>",
        "<td class=\"num\">48.30</td>",
        "<td class=\"num\">29,982,132</td>",
        "<td class=\"num\">1.31</td>",
        "<td class=\"num\">67.6</td>",
    ] {
        assert!(html.contains(cell), "missing {cell}");
    }
    assert!(html.contains("Printed as fractions, shown here in % (×100): With"));
    assert!(html.contains("Training-subset columns hold one system per DCASE2024 subset"));
}
