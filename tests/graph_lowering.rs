//! Every architecture that lowers to an operator graph computes, through the graph, what its
//! tch forward computes in eval mode; the graph's activation points are the ones PyTorch's eager
//! static quantization would observe.

mod common;

use ascrepro::models::blocks::{NormKind, Vb};
use ascrepro::models::graph::Op;
use ascrepro::models::{build_net, tfsepnet23, tfsepnet64, ModelConfig};
use common::{eval, max_abs_diff, perturb_with, Perturb};
use tch::{nn, Device, Kind, Tensor};

/// Random weights with non-trivial BatchNorm statistics and norm parameters.
fn perturbed(cfg: &ModelConfig) -> (nn::VarStore, Box<dyn ascrepro::models::Net>) {
    tch::manual_seed(7);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = build_net(&Vb::new(&vs.root()), cfg).unwrap();
    perturb_with(&vs, |name, _, _| {
        if name.ends_with("running_var") || name.ends_with("gamma") {
            Perturb::AroundOne
        } else if name.ends_with("running_mean") || name.ends_with("beta") {
            Perturb::AroundZero
        } else if name.ends_with("rho") {
            Perturb::Unit
        } else if name.contains("bn.") && name.ends_with("weight") {
            Perturb::AroundOne
        } else {
            Perturb::Keep
        }
    });
    (vs, net)
}

fn assert_lowering_matches(cfg: &ModelConfig, input: [i64; 4]) -> ascrepro::models::graph::Graph {
    let (_vs, net) = perturbed(cfg);
    let xs = Tensor::randn(input, (Kind::Float, Device::Cpu));
    let want = eval(net.as_ref(), &xs);
    let graph = net.lower().unwrap();
    graph.validate().unwrap();
    let got = graph.forward(&xs);
    assert_eq!(got.size(), want.size());
    let diff = max_abs_diff(&got, &want);
    let scale = want.abs().max().double_value(&[]).max(1.0);
    assert!(
        diff <= 1e-5 * scale,
        "{}: graph and forward differ by {diff} (max |logit| {scale})",
        cfg.describe()
    );
    graph
}

fn point_names(graph: &ascrepro::models::graph::Graph) -> Vec<&str> {
    graph
        .nodes()
        .iter()
        .filter(|n| n.op.is_point())
        .map(|n| n.name.as_str())
        .collect()
}

#[test]
fn tfsepnet64_lowers_to_its_forward() {
    for depth in [16, 17] {
        let cfg = ModelConfig::Tfsepnet64(tfsepnet64::Config {
            width: 16,
            depth,
            dropout: 0.1,
            ..tfsepnet64::Config::default()
        });
        let g = assert_lowering_matches(&cfg, [3, 1, 64, 32]);
        let points = point_names(&g);
        // input, 2 stem convs, per block (trans conv where the width changes) 4 convs, 2 adds
        // and a cat, the 5 norms, the classifier.
        let blocks = 9;
        let trans = 4;
        assert_eq!(
            points.len(),
            1 + 2 + blocks * 7 + trans + 5 + 1,
            "{points:?}"
        );
        for name in [
            "input",
            "conv_layers.0",
            "middle_layers.0",
            "middle_layers.1.freq_dw_conv",
            "middle_layers.1.freq_add",
            "middle_layers.1.cat",
            "classifier",
        ] {
            assert!(points.contains(&name), "{name} missing from {points:?}");
        }
        let pools = g
            .nodes()
            .iter()
            .filter(|n| matches!(n.op, Op::MaxPool { .. }))
            .count();
        assert_eq!(pools, if depth == 17 { 3 } else { 2 });
    }
    // Explicit (pruned) widths lower too.
    let cfg = ModelConfig::Tfsepnet64(tfsepnet64::Config {
        widths: Some(vec![6, 10, 14, 18, 22]),
        ..tfsepnet64::Config::default()
    });
    assert_lowering_matches(&cfg, [2, 1, 64, 32]);
}

#[test]
fn tfsepnet23_lowers_to_its_forward_with_either_norm() {
    for norm in [NormKind::AdaResNorm, NormKind::ResNorm { lambda: 0.5 }] {
        let cfg = ModelConfig::Tfsepnet23(tfsepnet23::Config::new(12, norm));
        let g = assert_lowering_matches(&cfg, [2, 1, 64, 40]);
        let points = point_names(&g);
        assert!(points.contains(&"stem") && points.contains(&"stem_norm"));
        assert!(points.contains(&"stage1.block0.freq_pw_conv"));
        assert!(points.contains(&"head"));
    }
}

#[test]
fn architectures_without_a_lowering_say_so() {
    let vs = nn::VarStore::new(Device::Cpu);
    let cfg = ModelConfig::from_spec(&ascrepro::models::ModelSpec::new("cp_mobile")).unwrap();
    let net = build_net(&Vb::new(&vs.root()), &cfg).unwrap();
    let err = net.lower().unwrap_err().to_string();
    assert!(err.contains("no operator-graph lowering"), "{err}");
}
