//! Complexity helpers: the rows of `../shared/reference/complexity.tsv`, the CLI's
//! `complexity --json`, the VarStore cross-check and the BatchNorm-folding arithmetic.

use super::shared;
use ascrepro::compress::complexity::{count, CountOptions};
use ascrepro::models::blocks::Vb;
use ascrepro::models::{build_net, ModelConfig};
use ascrepro_results::record::Complexity;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::process::Command;
use tch::{nn, Device};

/// One row of complexity.tsv.
#[derive(Debug, Clone)]
pub struct Row {
    pub model: String,
    pub variant: String,
    pub input: [i64; 3],
    pub params: u64,
    pub macs: u64,
    /// `exact` or `published`.
    pub status: String,
}

/// The text of complexity.tsv.
pub fn tsv_text() -> String {
    let path = shared("reference/complexity.tsv");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every row of complexity.tsv, in order.
pub fn reference_rows() -> Vec<Row> {
    tsv_text()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            assert!(cols.len() >= 6, "short row in complexity.tsv: {l}");
            let dims: Vec<i64> = cols[2].split('x').map(|d| d.parse().unwrap()).collect();
            Row {
                model: cols[0].to_string(),
                variant: cols[1].to_string(),
                input: [dims[0], dims[1], dims[2]],
                params: cols[3].parse().unwrap(),
                macs: cols[4].parse().unwrap(),
                status: cols[5].to_string(),
            }
        })
        .collect()
}

/// `ascrepro complexity ARGS... --json`, parsed.
pub fn cli_json<S: AsRef<OsStr> + std::fmt::Debug>(args: &[S]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_ascrepro"))
        .arg("complexity")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ascrepro complexity {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `ascrepro complexity ARGS... --json` -> (params, macs).
pub fn cli_count<S: AsRef<OsStr> + std::fmt::Debug>(args: &[S]) -> (u64, u64) {
    let v = cli_json(args);
    (v["params"].as_u64().unwrap(), v["macs"].as_u64().unwrap())
}

/// `[C, F, T]` as the CLI's `--input CxFxT`.
pub fn input_arg(input: [i64; 3]) -> String {
    format!("{}x{}x{}", input[0], input[1], input[2])
}

/// Counted params equal the VarStore's trainable size, and every counted layer with params is
/// a VarStore path.
pub fn assert_params_are_varstore(cfg: &ModelConfig, c: &Complexity, what: &str) {
    let vs = nn::VarStore::new(Device::Cpu);
    let _net = build_net(&Vb::constant(&vs.root()), cfg).unwrap();
    let trainable: i64 = vs
        .trainable_variables()
        .iter()
        .map(|t| t.numel() as i64)
        .sum();
    assert_eq!(c.params as i64, trainable, "{what}");
    let vars = vs.variables();
    for layer in c.layers.iter().filter(|l| l.params > 0) {
        let has_var = vars
            .keys()
            .any(|k| k.starts_with(&format!("{}.", layer.name)));
        assert!(has_var, "layer `{}` is not a VarStore path", layer.name);
    }
}

/// Name -> shape of every variable of `cfg`'s network.
pub fn var_shapes(cfg: &ModelConfig) -> BTreeMap<String, Vec<i64>> {
    let vs = nn::VarStore::new(Device::Cpu);
    let _net = build_net(&Vb::constant(&vs.root()), cfg).unwrap();
    vs.variables()
        .into_iter()
        .map(|(n, t)| (n, t.size()))
        .collect()
}

/// Name -> shape of a released checkpoint's key list under `reference/released/`: counters and
/// the names `skip` picks dropped, `prefix` removed (every kept name must carry it).
pub fn released_keys(
    tsv: &str,
    prefix: &str,
    skip: impl Fn(&str) -> bool,
) -> BTreeMap<String, Vec<i64>> {
    let path = shared(&format!("reference/released/{tsv}"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .filter(|c| !c[0].ends_with("num_batches_tracked") && !skip(c[0]))
        .map(|c| {
            let name = c[0]
                .strip_prefix(prefix)
                .unwrap_or_else(|| panic!("a released key without `{prefix}`: {}", c[0]));
            let shape = c[1]
                .trim_matches(|ch| ch == '[' || ch == ']')
                .split(',')
                .filter(|d| !d.trim().is_empty())
                .map(|d| d.trim().parse().unwrap())
                .collect();
            (name.to_string(), shape)
        })
        .collect()
}

/// What folding every BatchNorm does to a count.
pub struct Folding {
    pub plain: Complexity,
    pub folded: Complexity,
    /// BatchNorm2d rows of the plain count.
    pub batchnorms: usize,
    /// Their channels (params / 2) and MACs.
    pub bn_channels: u64,
    pub bn_macs: u64,
    /// One MAC per output element of each BatchNorm: the bias each folded conv gains.
    pub bias_macs: u64,
}

/// Counts `cfg` at `input` with and without folding.
pub fn folding(cfg: &ModelConfig, input: [i64; 3]) -> Folding {
    let plain = count(cfg, input, &CountOptions::default()).unwrap();
    let folded = count(
        cfg,
        input,
        &CountOptions {
            fold_bn: true,
            ..Default::default()
        },
    )
    .unwrap();
    let bns: Vec<_> = plain
        .layers
        .iter()
        .filter(|l| l.kind == "BatchNorm2d")
        .collect();
    let bn_channels: u64 = bns.iter().map(|l| l.params / 2).sum();
    let bn_macs: u64 = bns.iter().map(|l| l.macs).sum();
    let bias_macs: u64 = bns
        .iter()
        .map(|l| l.output.iter().map(|&d| d as u64).product::<u64>())
        .sum();
    let batchnorms = bns.len();
    Folding {
        plain,
        folded,
        batchnorms,
        bn_channels,
        bn_macs,
        bias_macs,
    }
}
