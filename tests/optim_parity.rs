//! Adam, AdamW and the learning-rate schedules against PyTorch's own (`torch.optim.Adam`,
//! `AdamW`, `LinearLR` + `CosineAnnealingLR`, `CosineAnnealingLR`,
//! `CosineAnnealingWarmRestarts`) over 300 to 420 steps of the same small network from the same
//! weights (tests/python/optim_reference.py): every step's learning rate and the final
//! parameters within 1e-6.

mod common;

use ascrepro::recipe::ScheduleSpec;
use ascrepro::train::{Adam, LrSchedule, WeightDecay};
use std::collections::HashMap;
use tch::{nn, Device, Kind, Tensor};

/// Names of the MLP's parameters, as PyTorch's `Sequential` names them.
const PARAMS: [&str; 4] = ["0.weight", "0.bias", "2.weight", "2.bias"];

struct Case {
    name: &'static str,
    betas: (f64, f64),
    decay: WeightDecay,
    lr: f64,
    schedule: ScheduleSpec,
    epochs: usize,
    per_epoch: usize,
}

fn reference() -> HashMap<String, Tensor> {
    let dir = common::temp_dir("optim_parity");
    let out = dir.join("reference.safetensors");
    common::run_python("optim_reference.py", [&out]);
    Tensor::read_safetensors(&out)
        .unwrap()
        .into_iter()
        .collect()
}

/// Trains the reference MLP with our optimiser and schedule; returns each step's learning
/// rate and the final parameters.
fn train(r: &HashMap<String, Tensor>, case: &Case) -> (Vec<f64>, Vec<Tensor>) {
    let vs = nn::VarStore::new(Device::Cpu);
    let root = vs.root();
    let params: Vec<Tensor> = PARAMS
        .iter()
        .map(|p| {
            let init = &r[&format!("init.{p}")];
            root.var_copy(&p.replace('.', "_"), init)
        })
        .collect();
    let (x, y) = (&r["x"], r["y"].to_kind(Kind::Int64));
    let mut adam = Adam::new(&vs, case.betas, case.decay);
    let schedule = LrSchedule::from_spec(&case.schedule, case.lr, case.epochs);
    let steps = case.epochs * case.per_epoch;
    let mut lrs = Vec::with_capacity(steps);
    for k in 0..steps {
        let lr = schedule.at(k as f64 / case.per_epoch as f64);
        lrs.push(lr);
        adam.zero_grad();
        let h = x.linear(&params[0], Some(&params[1])).relu();
        let logits = h.linear(&params[2], Some(&params[3]));
        logits.cross_entropy_for_logits(&y).backward();
        adam.step(lr);
    }
    (lrs, params)
}

#[test]
fn optimisers_and_schedules_follow_pytorch() {
    tch::set_num_threads(1);
    let r = reference();
    let cases = [
        Case {
            name: "adam_warmup_cosine",
            betas: (0.9, 0.999),
            decay: WeightDecay::L2(0.0),
            lr: 0.01,
            schedule: ScheduleSpec::WarmupCosine { warmup_epochs: 1 },
            epochs: 6,
            per_epoch: 50,
        },
        Case {
            name: "adam_l2_cosine",
            betas: (0.8, 0.99),
            decay: WeightDecay::L2(1e-3),
            lr: 0.003,
            schedule: ScheduleSpec::Cosine,
            epochs: 6,
            per_epoch: 50,
        },
        Case {
            name: "adamw_sgdr",
            betas: (0.9, 0.999),
            decay: WeightDecay::Decoupled(0.05),
            lr: 0.004,
            schedule: ScheduleSpec::Sgdr { t0: 2, t_mult: 2 },
            epochs: 14,
            per_epoch: 30,
        },
    ];
    for case in &cases {
        let (lrs, params) = train(&r, case);
        let theirs: Vec<f32> = Vec::try_from(&r[&format!("{}.lr", case.name)]).unwrap();
        assert_eq!(lrs.len(), theirs.len(), "{}", case.name);
        let lr_diff = lrs
            .iter()
            .zip(&theirs)
            .map(|(a, b)| (a - f64::from(*b)).abs())
            .fold(0.0, f64::max);
        let moved = common::max_abs_diff(&params[0], &r[&format!("init.{}", PARAMS[0])]);
        let param_diff = PARAMS
            .iter()
            .zip(&params)
            .map(|(p, ours)| common::max_abs_diff(ours, &r[&format!("{}.{p}", case.name)]))
            .fold(0.0, f64::max);
        eprintln!(
            "{}: {} steps, learning rates within {lr_diff:.1e}, parameters within \
             {param_diff:.1e} (they moved by up to {moved:.2})",
            case.name,
            lrs.len()
        );
        assert!(
            lr_diff <= 1e-6,
            "{}: learning rates differ by {lr_diff}",
            case.name
        );
        assert!(
            param_diff <= 1e-6,
            "{}: parameters differ by {param_diff}",
            case.name
        );
        assert!(
            moved > 0.05,
            "{}: training barely moved the weights",
            case.name
        );
    }
}
