//! Tolerance tuning: a model built to lose far more than 1 % at full INT8 through one layer
//! passes after that layer, named first by the measured sensitivity ranking, falls back to
//! float; the quantization record (what the report renders) lists it.

mod common;

use ascrepro::compress::int8::{AtenCapability, Isa};
use ascrepro::compress::ptq::{quantize_int8, PtqConfig, QuantizedModel};
use ascrepro::compress::tuning::{rank, tune};
use ascrepro::models::blocks::{NormKind, Vb};
use ascrepro::models::{build_net, tfsepnet23, ModelConfig};
use ascrepro_results::record::{FallbackRecord, QuantizationRecord};
use common::{eval, perturb_with, Perturb};
use tch::{nn, Device, Kind, Tensor};

/// The layer made fragile at INT8.
const FRAGILE: &str = "head";

fn accuracy(logits: &Tensor, labels: &Tensor) -> f64 {
    logits
        .argmax(1, false)
        .eq_tensor(labels)
        .to_kind(Kind::Double)
        .mean(Kind::Double)
        .double_value(&[])
}

#[test]
fn tuning_falls_back_the_layer_the_ranking_names_and_the_record_lists_it() {
    tch::set_num_threads(1);
    tch::manual_seed(21);
    let cfg = ModelConfig::Tfsepnet23(tfsepnet23::Config::new(8, NormKind::AdaResNorm));
    let vs = nn::VarStore::new(Device::Cpu);
    let net = build_net(&Vb::new(&vs.root()), &cfg).unwrap();
    perturb_with(&vs, |name, _, _| {
        if name.ends_with("running_var") {
            Perturb::AroundOne
        } else if name.ends_with("running_mean") {
            Perturb::AroundZero
        } else {
            Perturb::Keep
        }
    });
    // The head (a 1x1 conv) gets, in every output channel, a weight 1000 times the channel's
    // largest: with a symmetric per-channel scale every other weight of the channel rounds to
    // zero at INT8. The big weights read a channel that is always 0 (the AdaResNorm before the
    // head has gamma = beta = 0 there), so the fp32 model does not change.
    tch::no_grad(|| {
        let vars = vs.variables();
        for p in ["gamma", "beta"] {
            let _ = vars[&format!("stage4.norm.{p}")].narrow(1, 0, 1).fill_(0.0);
        }
        let w = vars[&format!("{FRAGILE}.conv.weight")].shallow_clone();
        let big = w.abs().amax([1i64, 2, 3].as_slice(), true) * 1000.0;
        w.narrow(1, 0, 1).copy_(&big);
    });

    // Labels: the fp32 model's own decisions, on the clips it decides with a wide margin (so
    // INT8 noise elsewhere cannot flip them).
    let xs = Tensor::randn([600, 1, 64, 40], (Kind::Float, Device::Cpu));
    let fp32 = eval(net.as_ref(), &xs);
    let top = fp32.topk(2, 1, true, true).0;
    let margin = top.select(1, 0) - top.select(1, 1);
    let keep = margin.argsort(0, true).narrow(0, 0, 300);
    let tuning_x = xs.index_select(0, &keep);
    let labels = fp32.index_select(0, &keep).argmax(1, false);
    let calibration = vec![xs.narrow(0, 0, 64)];

    let ptq = PtqConfig::default();
    let mut model = quantize_int8(&vs, &cfg, &calibration, &ptq).unwrap();
    let shape: Vec<usize> = tuning_x.size().iter().map(|&d| d as usize).collect();
    let values = Vec::<f32>::try_from(tuning_x.flatten(0, -1)).unwrap();
    let mut engine_accuracy = |m: &QuantizedModel| {
        let program = m.program(Isa::detect(), AtenCapability::Avx2)?;
        let logits = Tensor::from_slice(&program.run(&values, &shape)?).reshape([300, -1]);
        Ok(accuracy(&logits, &labels))
    };
    let fp32_logits = fp32.index_select(0, &keep);
    let tuning = tune(&mut model, 1.0, 0.01, &mut engine_accuracy, |m| {
        rank(
            m,
            &[tuning_x.shallow_clone()],
            &[fp32_logits.shallow_clone()],
        )
    })
    .unwrap();
    println!(
        "all INT8 {:.3}, final {:.3}, fallbacks {:?}, top of ranking {:?}",
        tuning.int8_accuracy,
        tuning.final_accuracy,
        tuning.fallbacks,
        &tuning.ranking[..3.min(tuning.ranking.len())]
    );
    assert!(
        tuning.int8_accuracy < 0.99,
        "the fragile layer should cost more than 1 %: {}",
        tuning.int8_accuracy
    );
    assert_eq!(
        tuning.ranking[0].point,
        FRAGILE,
        "{:?}",
        &tuning.ranking[..3]
    );
    assert_eq!(tuning.fallbacks.len(), 1, "{:?}", tuning.fallbacks);
    assert_eq!(tuning.fallbacks[0].point, FRAGILE);
    assert!(tuning.accepted && tuning.final_accuracy >= 0.99);
    assert_eq!(model.fallback(), vec![FRAGILE.to_string()]);
    // The fallen-back layer costs four bytes per parameter instead of one.
    let w = model.weight(FRAGILE).unwrap().params() as u64;
    let mut all_int8 = quantize_int8(&vs, &cfg, &calibration, &ptq).unwrap();
    assert_eq!(model.parameter_bytes(), all_int8.parameter_bytes() + 3 * w);
    // Undoing the fallback restores the fully quantized model.
    all_int8.fall_back(FRAGILE).unwrap();
    all_int8.quantize_again(FRAGILE).unwrap();
    assert!(all_int8.fallback().is_empty());

    let record = QuantizationRecord {
        from: "fragile".into(),
        observer: ptq.observer.name().into(),
        calibration_clips: 64,
        points: model.points().len(),
        int8_layers: model.int8_layers(),
        fp32_accuracy: tuning.fp32_accuracy,
        int8_accuracy: tuning.int8_accuracy,
        final_accuracy: tuning.final_accuracy,
        tolerance: tuning.tolerance,
        accepted: tuning.accepted,
        fallbacks: tuning
            .fallbacks
            .iter()
            .map(|f| FallbackRecord {
                point: f.point.clone(),
                op: f.op.clone(),
                sensitivity: tuning.ranking[0].error_reduction,
                accuracy: f.accuracy,
            })
            .collect(),
        parameter_bytes: model.parameter_bytes(),
        simulated_agreement: 1.0,
    };
    let notes = record.notes().join("\n");
    assert!(
        notes.contains(&format!("`{FRAGILE}` (Conv2d 1x1)")) && notes.contains("INT8 accepted"),
        "{notes}"
    );
}
