//! Multi-label pre-training resumes from its epoch checkpoints to exactly the uninterrupted
//! result, and learns (mAP above chance on separable data).

use ascrepro::models::{ModelConfig, ModelSpec};
use ascrepro::recipe::TrainingSpec;
use ascrepro::train::pretrain::{fit_multilabel, MultiLabelSet, PretrainOptions};
use tch::{Device, Kind, Tensor};

fn set(n: i64, seed: i64) -> MultiLabelSet {
    tch::manual_seed(seed);
    let targets = Tensor::rand([n, 3], (Kind::Float, Device::Cpu))
        .gt(0.5)
        .to_kind(Kind::Float);
    // Each label lifts its own band of mel bins, so the labels are learnable.
    let x = Tensor::randn([n, 1, 32, 16], (Kind::Float, Device::Cpu)) * 0.3;
    for c in 0..3 {
        let lift = targets.narrow(1, c, 1).reshape([n, 1, 1, 1]) * 2.0;
        let mut band = x.narrow(2, c * 8, 8);
        band += lift;
    }
    MultiLabelSet { x, targets }
}

fn options<'a>(
    model: &'a ModelConfig,
    training: &'a TrainingSpec,
    dir: &'a std::path::Path,
) -> PretrainOptions<'a> {
    PretrainOptions {
        id: "pre",
        model,
        training,
        seed: 3,
        device: Device::Cpu,
        progress: None,
        checkpoint_dir: dir,
    }
}

#[test]
fn resumes_exactly_and_learns() {
    let spec: ModelSpec = serde_norway::from_str(
        "{arch: tfsepnet23, width: 4, norm: adaresnorm, dropout: 0.1, shuffle_groups: 1}",
    )
    .unwrap();
    let model = ModelConfig::from_spec(&spec)
        .unwrap()
        .with_classes(3)
        .unwrap();
    // SGDR restarting every epoch: an epoch's learning rates do not depend on the run's
    // length, so a 1-epoch run is exactly the first epoch of a 3-epoch one.
    let training = |epochs: usize| -> TrainingSpec {
        serde_norway::from_str(&format!(
            "{{epochs: {epochs}, batch_size: 16, optimizer: {{kind: adam, lr: 0.01}}, schedule: {{kind: sgdr, t0: 1, t_mult: 1}}, mixup: {{alpha: 0.3}}}}"
        ))
        .unwrap()
    };
    let (train, eval) = (set(64, 1), set(32, 2));
    let tmp = tempfile::tempdir().unwrap();
    let three = training(3);
    let (vs, curve) = fit_multilabel(
        &options(&model, &three, &tmp.path().join("a")),
        &train,
        &eval,
    )
    .unwrap();
    assert_eq!(curve.len(), 3);
    assert!(curve[2].eval_map > 0.7, "{curve:?}");

    // A run stopped after its first epoch, then resumed from its checkpoint.
    let dir = tmp.path().join("b");
    let one = training(1);
    fit_multilabel(&options(&model, &one, &dir), &train, &eval).unwrap();
    assert!(dir.join("epoch-00001").is_dir());
    let (vs2, curve2) = fit_multilabel(&options(&model, &three, &dir), &train, &eval).unwrap();
    assert_eq!(curve, curve2);
    for (name, t) in vs.variables() {
        assert!(t.equal(&vs2.variables()[&name]), "{name} differs");
    }
}
