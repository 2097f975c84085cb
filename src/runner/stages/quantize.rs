//! `kind: quantize`: post-training static INT8 quantization of a model stage's model
//! (`compress::ptq`), calibrated on a seeded subset of the training split, tuned against the
//! tolerance by falling back the most sensitive layers to float (`compress::tuning`), and
//! evaluated on the integer engine (`compress::int8::engine`): the reported INT8 accuracy comes
//! from integer arithmetic.
//!
//! The tuning set is the test split, as the reports' Intel Neural Compressor runs tune against
//! the evaluation loader. The engine reproduces the rounding of ATen's AVX2 build
//! (`AtenCapability::Avx2`) on every machine, so results do not depend on the CPU.

use super::Base;
use crate::compress::complexity::{count, CountOptions};
use crate::compress::int8::{AtenCapability, Isa};
use crate::compress::ptq::{quantize_int8, PtqConfig, QuantizedModel};
use crate::compress::tuning::{rank, tune};
use crate::error::Result;
use crate::eval;
use crate::models;
use crate::recipe::QuantizeStage;
use crate::runner::cache::StageHash;
use crate::runner::graph::{Artefact, Context, Graph, NodeId, Outputs, Stage};
use crate::train::FeatureSet;
use ascrepro_results::record::{
    Evaluation, FallbackRecord, Precision, QuantizationRecord, SystemRecord,
};
use rand::seq::index::sample;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::Path;
use std::rc::Rc;
use tch::{Device, Tensor};

/// Clips per engine batch.
const BATCH: usize = 32;

pub struct QuantizeNode {
    pub stage: QuantizeStage,
    pub model: NodeId,
    /// The fp32 model's evaluation, which the INT8 one is judged against.
    pub fp32: NodeId,
    pub features: NodeId,
}

pub fn add(g: &mut Graph, base: &Base, q: &QuantizeStage) -> Result<()> {
    let node = QuantizeNode {
        stage: q.clone(),
        model: g.model_of(&q.from)?,
        fp32: g.evaluation_of(&q.from)?,
        features: base.features,
    };
    g.add(node);
    Ok(())
}

/// Logits of the simulated (fake-quant) model, in batches on the CPU.
fn simulated_logits(model: &QuantizedModel, set: &FeatureSet) -> Tensor {
    let parts: Vec<Tensor> = (0..set.len() as i64)
        .step_by(256)
        .map(|start| {
            let len = 256.min(set.len() as i64 - start);
            model.simulate(&set.x.narrow(0, start, len))
        })
        .collect();
    Tensor::cat(&parts, 0)
}

fn agreement(a: &Tensor, b: &Tensor) -> f64 {
    a.argmax(1, false)
        .eq_tensor(&b.argmax(1, false))
        .to_kind(tch::Kind::Double)
        .mean(tch::Kind::Double)
        .double_value(&[])
}

impl Stage for QuantizeNode {
    fn kind(&self) -> &'static str {
        "quantize"
    }

    fn id(&self) -> String {
        self.stage.id.clone()
    }

    fn needs(&self) -> Vec<NodeId> {
        vec![self.model, self.fp32, self.features]
    }

    fn code(&self) -> &'static [&'static str] {
        &[
            "src/compress/",
            "src/models/",
            "src/eval/",
            "crates/results/src/record.rs",
            "src/runner/stages/quantize.rs",
        ]
    }

    fn numeric(&self) -> bool {
        true
    }

    fn identity(&self, h: StageHash) -> StageHash {
        h.json("stage", &self.stage)
    }

    fn produce(&self, cx: &Context, inputs: &Outputs, dir: &Path) -> Result<()> {
        let q = &self.stage;
        let f = inputs.features(self.features);
        let (train, test) = (&f.train, &f.test);
        let (vs, cfg, fp32_model) =
            models::load_weights(&inputs.model(self.model).weights, cx.device)?;
        // Calibration clips: a seeded random subset of the (non-augmented) training split.
        let n = q.calibration_clips.min(train.len());
        let mut rng = ChaCha8Rng::seed_from_u64(q.seed);
        let mut idx: Vec<i64> = sample(&mut rng, train.len(), n)
            .into_iter()
            .map(|i| i as i64)
            .collect();
        idx.sort_unstable();
        let batches: Vec<Tensor> = idx
            .chunks(BATCH)
            .map(|c| train.batch(c, Device::Cpu).0)
            .collect();
        let ptq = PtqConfig {
            observer: q.observer,
            reduce_range: true,
        };
        let mut model = quantize_int8(&vs, &cfg, &batches, &ptq)?;
        let metrics = |logits: &Tensor| eval::metrics(logits, &test.y, &test.device, &f.devices);
        let mut logits = None;
        let mut accuracy = |m: &QuantizedModel| -> Result<f64> {
            let program = m.program(Isa::detect(), AtenCapability::Avx2)?;
            let l = eval::predict_int8(&program, test, BATCH)?;
            let acc = metrics(&l).macro_accuracy;
            logits = Some(l);
            Ok(acc)
        };
        let fp32_accuracy = inputs.evaluation(self.fp32).macro_accuracy;
        let tuning = tune(&mut model, fp32_accuracy, q.tolerance, &mut accuracy, |m| {
            let fp32_logits = eval::predict(fp32_model.as_ref(), test, 256, cx.device);
            let xs: Vec<Tensor> = (0..test.len() as i64)
                .step_by(256)
                .map(|s| test.x.narrow(0, s, 256.min(test.len() as i64 - s)))
                .collect();
            let want: Vec<Tensor> = (0..test.len() as i64)
                .step_by(256)
                .map(|s| fp32_logits.narrow(0, s, 256.min(test.len() as i64 - s)))
                .collect();
            rank(m, &xs, &want)
        })?;
        let logits = logits.expect("tuning measures the model");
        let simulated = simulated_logits(&model, test);
        let sensitivity = |p: &str| {
            tuning
                .ranking
                .iter()
                .find(|s| s.point == p)
                .map_or(0.0, |s| s.error_reduction)
        };
        let record = QuantizationRecord {
            from: q.from.clone(),
            observer: ptq.observer.name().to_string(),
            calibration_clips: n,
            points: model.points().len(),
            int8_layers: model.int8_layers(),
            fp32_accuracy,
            int8_accuracy: tuning.int8_accuracy,
            final_accuracy: tuning.final_accuracy,
            tolerance: q.tolerance,
            accepted: tuning.accepted,
            fallbacks: tuning
                .fallbacks
                .iter()
                .map(|b| FallbackRecord {
                    point: b.point.clone(),
                    op: b.op.clone(),
                    sensitivity: sensitivity(&b.point),
                    accuracy: b.accuracy,
                })
                .collect(),
            parameter_bytes: model.parameter_bytes(),
            simulated_agreement: agreement(&logits, &simulated),
        };
        super::write_evaluation(dir, &metrics(&logits))?;
        super::write_json(&dir.join("quantization.json"), &record)
    }

    fn load(&self, _cx: &Context, _inputs: &Outputs, dir: Option<&Path>) -> Result<Artefact> {
        let dir = dir.expect("cached stage");
        let evaluation: Evaluation = super::read_json(&dir.join("evaluation.json"))?;
        let record: QuantizationRecord = super::read_json(&dir.join("quantization.json"))?;
        Ok(Artefact::Quantized(Rc::new((evaluation, record))))
    }

    fn systems(&self, own: &Artefact, inputs: &Outputs) -> Result<Vec<SystemRecord>> {
        let Artefact::Quantized(done) = own else {
            unreachable!("load makes a quantized evaluation")
        };
        let (evaluation, record) = done.as_ref();
        let q = &self.stage;
        let m = inputs.model(self.model);
        let folded = CountOptions {
            fold_bn: true,
            reparam: true,
        };
        Ok(vec![SystemRecord {
            id: q.id.clone(),
            label: q.label.clone(),
            model: m.config.describe(),
            training: format!(
                "post-training static INT8 quantization of `{}` ({} calibration clips, {} \
                 observer), evaluated on the integer engine",
                q.from, record.calibration_clips, record.observer
            ),
            precision: Precision::Int8,
            complexity: count(
                &m.config,
                super::input_shape(inputs, self.features),
                &folded,
            )?,
            evaluation: evaluation.clone(),
            curve: Vec::new(),
            notes: record.notes(),
            split: m.split.clone(),
            pruning: None,
            quantization: Some(record.clone()),
        }])
    }
}
