//! The quantization table: for each quantize stage's system, its calibration, the accuracy of
//! the fully INT8 and the final model (integer engine) against fp32, the layers tolerance tuning
//! left in float, the parameter memory at the deployed precisions against 128 kB, and how often
//! the integer engine agrees with the simulated model. Only a run with quantize stages has it.

use super::content::pct;
use crate::error::Result;
use crate::record::{QuantizationRecord, SystemRecord, LIMIT_PARAM_BYTES};
use crate::table::{bool_col, f64_col, frame, str_col, u64_col, ColSpec, Fmt, Table, TableSpec};

/// The table of the systems that record quantization; none when no system does.
pub fn quantization_table(systems: &[SystemRecord]) -> Result<Option<Table>> {
    let quantized: Vec<(&SystemRecord, &QuantizationRecord)> = systems
        .iter()
        .filter_map(|s| s.quantization.as_ref().map(|q| (s, q)))
        .collect();
    if quantized.is_empty() {
        return Ok(None);
    }
    let text = |f: fn(&SystemRecord, &QuantizationRecord) -> String| {
        quantized.iter().map(|(s, q)| f(s, q)).collect::<Vec<_>>()
    };
    let acc = |f: fn(&QuantizationRecord) -> f64| {
        quantized
            .iter()
            .map(|(_, q)| Some(pct(f(q))))
            .collect::<Vec<_>>()
    };
    let count = |f: fn(&QuantizationRecord) -> u64| {
        quantized
            .iter()
            .map(|(_, q)| Some(f(q)))
            .collect::<Vec<_>>()
    };
    let df = frame(
        "quantization",
        vec![
            str_col("system_id", text(|s, _| s.id.clone())),
            str_col("system", text(|s, _| s.label.clone())),
            str_col("from", text(|_, q| q.from.clone())),
            str_col("observer", text(|_, q| q.observer.clone())),
            u64_col("calibration_clips", count(|q| q.calibration_clips as u64)),
            u64_col("points", count(|q| q.points as u64)),
            u64_col("int8_layers", count(|q| q.int8_layers as u64)),
            f64_col("acc_fp32", acc(|q| q.fp32_accuracy)),
            f64_col("acc_int8", acc(|q| q.int8_accuracy)),
            f64_col("acc_final", acc(|q| q.final_accuracy)),
            f64_col("tolerance", acc(|q| q.tolerance)),
            bool_col(
                "accepted",
                quantized.iter().map(|(_, q)| q.accepted).collect(),
            ),
            str_col(
                "float_layers",
                text(|_, q| {
                    let names: Vec<&str> = q.fallbacks.iter().map(|f| f.point.as_str()).collect();
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                }),
            ),
            u64_col("param_bytes", count(|q| q.parameter_bytes)),
            bool_col(
                "memory_within_limit",
                quantized
                    .iter()
                    .map(|(_, q)| q.parameter_bytes <= LIMIT_PARAM_BYTES)
                    .collect(),
            ),
            f64_col("engine_agreement", acc(|q| q.simulated_agreement)),
        ],
    )?;
    let int = Fmt::Int { limit: None };
    Ok(Some(Table {
        name: "quantization".into(),
        df,
        spec: TableSpec {
            id: "t-quantization".into(),
            caption: "INT8 post-training static quantization (kind: quantize): calibration, macro accuracy on the tuning set (the test split, %) of the fp32 model, of the model with every layer in INT8 and of the final model (both on the integer engine), the layers tolerance tuning left in float (most sensitive first), parameter memory at the deployed precisions (INT8 layers one byte per parameter, float layers four), and the share of test clips on which the integer engine predicts what the simulated (fake-quant) model predicts".into(),
            cols: vec![
                ColSpec::new("system", "System", Fmt::Text),
                ColSpec::new("from", "Quantized from", Fmt::Code),
                ColSpec::new("observer", "Observer", Fmt::Code),
                ColSpec::new("calibration_clips", "Calibration clips", int),
                ColSpec::new("points", "Activation points", int),
                ColSpec::new("acc_fp32", "fp32", Fmt::Pct(2)).group("Macro accuracy (%)"),
                ColSpec::new("acc_int8", "all INT8", Fmt::Pct(2)).group("Macro accuracy (%)"),
                ColSpec::new("acc_final", "final", Fmt::Pct(2)).group("Macro accuracy (%)"),
                ColSpec::new("tolerance", "Tolerance (points)", Fmt::Pct(2)),
                ColSpec::new("accepted", "Within tolerance", Fmt::PassFail),
                ColSpec::new("float_layers", "Layers left in float", Fmt::Code),
                ColSpec::new("param_bytes", "bytes", Fmt::Int { limit: Some(LIMIT_PARAM_BYTES) })
                    .group("Parameter memory"),
                ColSpec::new("memory_within_limit", "≤ 128 kB", Fmt::PassFail)
                    .group("Parameter memory"),
                ColSpec::new("engine_agreement", "Engine = simulated (%)", Fmt::Pct(2)),
            ],
            kind_col: None,
        },
    }))
}
