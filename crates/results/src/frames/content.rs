//! The report's tables, each built from the run record as a DataFrame plus the spec that lays
//! it out. Accuracies are stored in % (the unit the DCASE reports print), at full precision.

use crate::error::Result;
use crate::labels::{DeviceList, CLASSES, SEEN_DEVICES};
use crate::record::{Complexity, RunRecord, SystemRecord, LIMIT_MACS, LIMIT_PARAM_BYTES};
use crate::table::{bool_col, f64_col, frame, str_col, u64_col, ColSpec, Fmt, Table, TableSpec};

/// Devices a development-set model trained on are "seen"; every other, s4–s6 and the
/// evaluation set's new ids included, is "unseen".
pub(crate) fn device_group(d: &str) -> &'static str {
    if SEEN_DEVICES.contains(&d) {
        "Seen"
    } else {
        "Unseen"
    }
}

/// Columns of the device-wise table: the known devices (always, in table order; "–" where a
/// system has no clip of one), then every other device a system was evaluated on.
pub fn device_columns(systems: &[SystemRecord]) -> Vec<String> {
    DeviceList::with(
        systems
            .iter()
            .flat_map(|s| s.evaluation.device_accuracy.keys()),
    )
    .names()
    .to_vec()
}

fn shape(dims: &[usize]) -> String {
    dims.iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join("×")
}

/// File-name-safe form of a system id.
pub fn slug(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// One slug per system, unique (a clash gets the system's position appended).
pub fn system_slugs(systems: &[SystemRecord]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(systems.len());
    for (i, s) in systems.iter().enumerate() {
        let mut candidate = slug(&s.id);
        if candidate.is_empty() || out.contains(&candidate) {
            candidate = format!("{candidate}_{i}");
        }
        out.push(candidate);
    }
    out
}

fn key_value(
    name: &str,
    caption: &str,
    headers: [&str; 2],
    rows: Vec<(String, String)>,
    value_fmt: Fmt,
) -> Result<Table> {
    let (keys, values): (Vec<String>, Vec<String>) = rows.into_iter().unzip();
    Ok(Table {
        name: name.to_string(),
        df: frame(name, vec![str_col("key", keys), str_col("value", values)])?,
        spec: TableSpec {
            id: format!("t-{name}"),
            caption: caption.to_string(),
            cols: vec![
                ColSpec::new("key", headers[0], Fmt::Text),
                ColSpec::new("value", headers[1], value_fmt),
            ],
            kind_col: None,
        },
    })
}

/// Run identity, data manifests, platform and the stage graph.
pub fn identity_tables(r: &RunRecord) -> Result<Vec<Table>> {
    let id = &r.identity;
    let identity = key_value(
        "identity",
        "Run identity",
        ["Item", "Value"],
        vec![
            ("recipe".into(), r.recipe_id.clone()),
            ("profile".into(), r.profile.clone()),
            ("run hash".into(), id.run_hash.clone()),
            ("recipe hash".into(), id.recipe_hash.clone()),
            ("code version".into(), id.code_version.clone()),
            ("front end".into(), id.frontend.clone()),
        ],
        Fmt::Code,
    )?;
    let data = key_value(
        "data_manifests",
        "Data manifests read by the run",
        ["Dataset", "Manifest hash"],
        id.data
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        Fmt::Code,
    )?;
    let platform = key_value(
        "platform",
        "Numeric platform (part of the run hash)",
        ["Setting", "Value"],
        id.platform
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        Fmt::Code,
    )?;
    let st = &r.stages;
    let stages = Table {
        name: "stages".into(),
        df: frame(
            "stages",
            vec![
                str_col("id", st.iter().map(|s| s.id.clone()).collect()),
                str_col("kind", st.iter().map(|s| s.kind.clone()).collect()),
                str_col("hash", st.iter().map(|s| s.hash.clone()).collect()),
                str_col("needs", st.iter().map(|s| s.needs.join(", ")).collect()),
                str_col(
                    "outputs",
                    st.iter()
                        .map(|s| {
                            s.outputs
                                .iter()
                                .map(|(f, h)| format!("{f}\t{h}"))
                                .collect::<Vec<_>>()
                                .join("\n")
                        })
                        .collect(),
                ),
            ],
        )?,
        spec: TableSpec {
            id: "t-stages".into(),
            caption: "Stages (hash = cache key of the stage's inputs; outputs = SHA-256 per artefact; hover for full hashes)"
                .into(),
            cols: vec![
                ColSpec::new("id", "Stage", Fmt::Code),
                ColSpec::new("kind", "Kind", Fmt::Text),
                ColSpec::new("hash", "Hash", Fmt::Hash),
                ColSpec::new("needs", "Needs", Fmt::Text),
                ColSpec::new("outputs", "Outputs", Fmt::HashList),
            ],
            kind_col: None,
        },
    };
    Ok(vec![identity, data, platform, stages])
}

/// The evaluated systems and how each was made.
pub fn systems_table(systems: &[SystemRecord]) -> Result<Table> {
    let df = frame(
        "systems",
        vec![
            str_col("id", systems.iter().map(|s| s.id.clone()).collect()),
            str_col("system", systems.iter().map(|s| s.label.clone()).collect()),
            str_col("model", systems.iter().map(|s| s.model.clone()).collect()),
            str_col("precision", systems.iter().map(precision).collect()),
            str_col(
                "training",
                systems.iter().map(|s| s.training.clone()).collect(),
            ),
            str_col(
                "notes",
                systems.iter().map(|s| s.notes.join("; ")).collect(),
            ),
        ],
    )?;
    Ok(Table {
        name: "systems".into(),
        df,
        spec: TableSpec {
            id: "t-systems".into(),
            caption: "Systems evaluated in this run (id = the stage that produced it)".into(),
            cols: vec![
                ColSpec::new("system", "System", Fmt::Text),
                ColSpec::new("id", "Id", Fmt::Code),
                ColSpec::new("model", "Model", Fmt::Text),
                ColSpec::new("precision", "Precision", Fmt::Code),
                ColSpec::new("training", "Training", Fmt::Text),
                ColSpec::new("notes", "Notes", Fmt::Text),
            ],
            kind_col: None,
        },
    })
}

/// The precision a system is deployed at, with the layers tolerance tuning left in float.
fn precision(s: &SystemRecord) -> String {
    match &s.quantization {
        Some(q) if !q.fallbacks.is_empty() => {
            format!("{} ({} layers fp32)", s.precision, q.fallbacks.len())
        }
        _ => s.precision.to_string(),
    }
}

/// Totals and limits per system.
pub fn complexity_summary(systems: &[SystemRecord]) -> Result<Table> {
    let c = |f: fn(&SystemRecord) -> u64| systems.iter().map(|s| Some(f(s))).collect::<Vec<_>>();
    let deployed: Vec<u64> = systems.iter().map(SystemRecord::param_bytes).collect();
    let df = frame(
        "complexity_summary",
        vec![
            str_col("system_id", systems.iter().map(|s| s.id.clone()).collect()),
            str_col("system", systems.iter().map(|s| s.label.clone()).collect()),
            str_col("model", systems.iter().map(|s| s.model.clone()).collect()),
            str_col("precision", systems.iter().map(precision).collect()),
            str_col(
                "input",
                systems.iter().map(|s| shape(&s.complexity.input)).collect(),
            ),
            u64_col("params", c(|s| s.complexity.params)),
            u64_col("macs", c(|s| s.complexity.macs)),
            u64_col("bytes_fp32", c(|s| s.complexity.param_bytes(32))),
            u64_col("bytes_fp16", c(|s| s.complexity.param_bytes(16))),
            u64_col("bytes_int8", c(|s| s.complexity.param_bytes(8))),
            u64_col(
                "bytes_deployed",
                deployed.iter().map(|b| Some(*b)).collect(),
            ),
            bool_col(
                "memory_within_limit",
                deployed.iter().map(|b| *b <= LIMIT_PARAM_BYTES).collect(),
            ),
            bool_col(
                "macs_within_limit",
                systems
                    .iter()
                    .map(|s| s.complexity.macs <= LIMIT_MACS)
                    .collect(),
            ),
        ],
    )?;
    let mem = Fmt::KBytes {
        limit: Some(LIMIT_PARAM_BYTES),
    };
    let macs_limit = Some(LIMIT_MACS);
    Ok(Table {
        name: "complexity_summary".into(),
        df,
        spec: TableSpec {
            id: "t-complexity".into(),
            caption: format!(
                "Complexity totals (torchinfo convention) against the DCASE limits: parameter memory ≤ {} kB at the deployed precision, MACs ≤ {} M per 1-second clip",
                LIMIT_PARAM_BYTES / 1000,
                LIMIT_MACS / 1_000_000
            ),
            cols: vec![
                ColSpec::new("system", "System", Fmt::Text),
                ColSpec::new("model", "Model", Fmt::Text),
                ColSpec::new("precision", "Precision", Fmt::Code),
                ColSpec::new("input", "Input", Fmt::Code),
                ColSpec::new("params", "Params", Fmt::Int { limit: None }).group("Count"),
                ColSpec::new("macs", "MACs", Fmt::Int { limit: macs_limit }).group("Count"),
                ColSpec::new("macs", "MACs (M)", Fmt::Mega { limit: macs_limit }).group("Count"),
                ColSpec::new("bytes_fp32", "fp32", mem).group("Parameter memory"),
                ColSpec::new("bytes_fp16", "fp16", mem).group("Parameter memory"),
                ColSpec::new("bytes_int8", "int8", mem).group("Parameter memory"),
                ColSpec::new("bytes_deployed", "deployed", mem).group("Parameter memory"),
                ColSpec::new("memory_within_limit", "≤ 128 kB", Fmt::PassFail).group("Limits"),
                ColSpec::new("macs_within_limit", "≤ 30 M MACs", Fmt::PassFail).group("Limits"),
            ],
            kind_col: None,
        },
    })
}

/// The per-layer table of one system.
pub fn layers(system: &SystemRecord, slug: &str) -> Result<Table> {
    let l = &system.complexity.layers;
    let name = format!("layers_{slug}");
    let df = frame(
        &name,
        vec![
            str_col("name", l.iter().map(|x| x.name.clone()).collect()),
            str_col("kind", l.iter().map(|x| x.kind.clone()).collect()),
            str_col("input", l.iter().map(|x| shape(&x.input)).collect()),
            str_col("output", l.iter().map(|x| shape(&x.output)).collect()),
            u64_col("params", l.iter().map(|x| Some(x.params)).collect()),
            u64_col("macs", l.iter().map(|x| Some(x.macs)).collect()),
        ],
    )?;
    Ok(Table {
        name,
        df,
        spec: TableSpec {
            id: format!("t-layers-{slug}"),
            caption: format!("{}: per-layer complexity", system.label),
            cols: vec![
                ColSpec::new("name", "Layer", Fmt::Code),
                ColSpec::new("kind", "Kind", Fmt::Text),
                ColSpec::new("input", "Input", Fmt::Code),
                ColSpec::new("output", "Output", Fmt::Code),
                ColSpec::new("params", "Params", Fmt::Int { limit: None }),
                ColSpec::new("macs", "MACs", Fmt::Int { limit: None }),
            ],
            kind_col: None,
        },
    })
}

/// Sums of the per-layer rows, to show beside the totals when they disagree.
pub fn layer_sums(c: &Complexity) -> (u64, u64) {
    c.layers
        .iter()
        .fold((0, 0), |(p, m), l| (p + l.params, m + l.macs))
}

/// Published complexity figures against our count.
pub fn complexity_checks(r: &RunRecord) -> Result<Table> {
    let ch = &r.complexity_checks;
    let diff = |ours: Option<u64>, published: Option<f64>, unit: f64| match (ours, published) {
        (Some(o), Some(p)) => Some(clean(o as f64 / unit - p)),
        _ => None,
    };
    let df = frame(
        "complexity_checks",
        vec![
            str_col("label", ch.iter().map(|c| c.label.clone()).collect()),
            str_col("model", ch.iter().map(|c| c.model.clone()).collect()),
            f64_col(
                "published_params_k",
                ch.iter().map(|c| c.published_params_k).collect(),
            ),
            u64_col("params", ch.iter().map(|c| c.params).collect()),
            f64_col(
                "params_diff_k",
                ch.iter()
                    .map(|c| diff(c.params, c.published_params_k, 1e3))
                    .collect(),
            ),
            f64_col(
                "published_macs_m",
                ch.iter().map(|c| c.published_macs_m).collect(),
            ),
            u64_col("macs", ch.iter().map(|c| c.macs).collect()),
            f64_col(
                "macs_diff_m",
                ch.iter()
                    .map(|c| diff(c.macs, c.published_macs_m, 1e6))
                    .collect(),
            ),
            str_col("status", ch.iter().map(|c| c.status.clone()).collect()),
        ],
    )?;
    Ok(Table {
        name: "complexity_checks".into(),
        df,
        spec: TableSpec {
            id: "t-checks".into(),
            caption: "Published complexity figures recomputed from the architecture each row describes (Δ = ours − published; flagged beyond the 0.01 a two-decimal figure can hide)".into(),
            cols: vec![
                ColSpec::new("label", "Published row", Fmt::Text),
                ColSpec::new("model", "Architecture counted", Fmt::Text),
                ColSpec::new("published_params_k", "published (K)", Fmt::AsGiven).group("Params"),
                ColSpec::new("params", "ours", Fmt::Int { limit: None }).group("Params"),
                ColSpec::new("params", "ours (K)", Fmt::Kilo).group("Params"),
                ColSpec::new("params_diff_k", "Δ (K)", Fmt::DiffPrinted { printed: 2 }).group("Params"),
                ColSpec::new("published_macs_m", "published (M)", Fmt::AsGiven).group("MACs"),
                ColSpec::new("macs", "ours", Fmt::Int { limit: None }).group("MACs"),
                ColSpec::new("macs", "ours (M)", Fmt::Mega { limit: None }).group("MACs"),
                ColSpec::new("macs_diff_m", "Δ (M)", Fmt::DiffPrinted { printed: 2 }).group("MACs"),
                ColSpec::new("status", "Status", Fmt::Status),
            ],
            kind_col: Some("status".into()),
        },
    })
}

/// Rounds away binary noise (`0.55 * 100 = 55.00000000000001`) so the CSV files read cleanly;
/// 1e-10 is far below any figure a report prints.
pub(crate) fn clean(x: f64) -> f64 {
    (x * 1e10).round() / 1e10
}

pub fn pct(x: f64) -> f64 {
    clean(100.0 * x)
}

/// Device-wise accuracy in the DCASE layout.
pub fn device_wise(systems: &[SystemRecord], profile: &str) -> Result<Table> {
    let mut cols = vec![
        str_col("system_id", systems.iter().map(|s| s.id.clone()).collect()),
        str_col("system", systems.iter().map(|s| s.label.clone()).collect()),
    ];
    let mut spec_cols = vec![ColSpec::new("system", "System", Fmt::Text)];
    for d in device_columns(systems) {
        let d = d.as_str();
        cols.push(f64_col(
            d,
            systems
                .iter()
                .map(|s| s.evaluation.device_accuracy.get(d).map(|x| pct(x.accuracy)))
                .collect(),
        ));
        spec_cols.push(ColSpec::new(d, d.to_uppercase(), Fmt::Pct(1)).group(device_group(d)));
    }
    cols.push(f64_col(
        "acc",
        systems
            .iter()
            .map(|s| Some(pct(s.evaluation.macro_accuracy)))
            .collect(),
    ));
    cols.push(f64_col(
        "log_loss",
        systems
            .iter()
            .map(|s| Some(s.evaluation.log_loss))
            .collect(),
    ));
    cols.push(u64_col(
        "clips",
        systems
            .iter()
            .map(|s| Some(s.evaluation.clips as u64))
            .collect(),
    ));
    spec_cols.push(ColSpec::new("acc", "Acc", Fmt::Pct(1)).group("Overall"));
    spec_cols.push(ColSpec::new("log_loss", "Log loss", Fmt::Fixed(3)).group("Overall"));
    spec_cols.push(ColSpec::new("clips", "Clips", Fmt::Int { limit: None }).group("Overall"));
    Ok(Table {
        name: "device_wise".into(),
        df: frame("device_wise", cols)?,
        spec: TableSpec {
            id: "t-device-wise".into(),
            caption: format!(
                "Device-wise accuracy (%), profile `{profile}`. Device columns: accuracy on that device's test clips (– = device absent from the test set); Acc: macro average of the class-wise accuracies; log loss: mean negative log-likelihood of the true class"
            ),
            cols: spec_cols,
            kind_col: None,
        },
    })
}

/// Class-wise accuracy (recall per class) in the DCASE layout.
pub fn class_wise(systems: &[SystemRecord], profile: &str) -> Result<Table> {
    let mut cols = vec![
        str_col("system_id", systems.iter().map(|s| s.id.clone()).collect()),
        str_col("system", systems.iter().map(|s| s.label.clone()).collect()),
    ];
    let mut spec_cols = vec![ColSpec::new("system", "System", Fmt::Text)];
    for (i, c) in CLASSES.iter().enumerate() {
        cols.push(f64_col(
            c,
            systems
                .iter()
                .map(|s| s.evaluation.class_accuracy.get(i).map(|x| pct(*x)))
                .collect(),
        ));
        spec_cols.push(ColSpec::new(*c, c.replace('_', " "), Fmt::Pct(1)));
    }
    cols.push(f64_col(
        "acc",
        systems
            .iter()
            .map(|s| Some(pct(s.evaluation.macro_accuracy)))
            .collect(),
    ));
    spec_cols.push(ColSpec::new("acc", "Macro avg", Fmt::Pct(1)));
    Ok(Table {
        name: "class_wise".into(),
        df: frame("class_wise", cols)?,
        spec: TableSpec {
            id: "t-class-wise".into(),
            caption: format!(
                "Class-wise accuracy (%), profile `{profile}`: the share of each class's test clips classified correctly"
            ),
            cols: spec_cols,
            kind_col: None,
        },
    })
}

/// Confusion matrix counts of one system (rows = true class).
pub fn confusion(system: &SystemRecord, slug: &str) -> Result<Table> {
    let m = &system.evaluation.confusion;
    let name = format!("confusion_{slug}");
    let mut cols = vec![str_col(
        "true_class",
        CLASSES.iter().map(|c| c.to_string()).collect(),
    )];
    let mut spec_cols = vec![ColSpec::new("true_class", "true \\ predicted", Fmt::Text)];
    for (j, c) in CLASSES.iter().enumerate() {
        cols.push(u64_col(
            c,
            (0..CLASSES.len())
                .map(|i| m.get(i).and_then(|row| row.get(j)).copied())
                .collect(),
        ));
        spec_cols.push(ColSpec::new(
            *c,
            c.replace('_', " "),
            Fmt::Int { limit: None },
        ));
    }
    Ok(Table {
        name,
        df: frame("confusion", cols)?,
        spec: TableSpec {
            id: format!("t-confusion-{slug}"),
            caption: format!("{}: confusion matrix (clip counts)", system.label),
            cols: spec_cols,
            kind_col: None,
        },
    })
}

/// Per-epoch training curves of every system, long format.
pub fn curves(systems: &[SystemRecord]) -> Result<Table> {
    let rows: Vec<(&SystemRecord, &crate::record::EpochLog)> = systems
        .iter()
        .flat_map(|s| s.curve.iter().map(move |e| (s, e)))
        .collect();
    let df = frame(
        "curves",
        vec![
            str_col(
                "system_id",
                rows.iter().map(|(s, _)| s.id.clone()).collect(),
            ),
            str_col(
                "system",
                rows.iter().map(|(s, _)| s.label.clone()).collect(),
            ),
            u64_col(
                "epoch",
                rows.iter().map(|(_, e)| Some(e.epoch as u64)).collect(),
            ),
            f64_col("lr", rows.iter().map(|(_, e)| Some(e.lr)).collect()),
            f64_col(
                "train_loss",
                rows.iter().map(|(_, e)| Some(e.train_loss)).collect(),
            ),
            f64_col(
                "train_accuracy",
                rows.iter()
                    .map(|(_, e)| Some(pct(e.train_accuracy)))
                    .collect(),
            ),
            f64_col("val_loss", rows.iter().map(|(_, e)| e.val_loss).collect()),
            f64_col(
                "val_accuracy",
                rows.iter().map(|(_, e)| e.val_accuracy.map(pct)).collect(),
            ),
        ],
    )?;
    Ok(Table {
        name: "curves".into(),
        df,
        spec: TableSpec {
            id: "t-curves".into(),
            caption: "Training curves (accuracy in %)".into(),
            cols: vec![
                ColSpec::new("system", "System", Fmt::TextGrouped),
                ColSpec::new("epoch", "Epoch", Fmt::Int { limit: None }),
                ColSpec::new("lr", "LR", Fmt::Fixed(6)),
                ColSpec::new("train_loss", "Train loss", Fmt::Fixed(4)),
                ColSpec::new("train_accuracy", "Train acc", Fmt::Pct(1)),
                ColSpec::new("val_loss", "Val loss", Fmt::Fixed(4)),
                ColSpec::new("val_accuracy", "Val acc", Fmt::Pct(1)),
            ],
            kind_col: None,
        },
    })
}
