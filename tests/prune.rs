//! Structured channel pruning (`compress::prune`): channel groups, AGP schedule, masked and
//! shrunk networks, NNI mask import, budget-derived widths.

use ascrepro::compress::prune::{
    counts_for_budget, import_nni_masks, AgpPruner, AgpSchedule, Budget, ChannelGroups,
    ChannelMask, PruneTarget,
};
use ascrepro::compress::{count, CountOptions};
use ascrepro::models::blocks::Vb;
use ascrepro::models::checkpoint::craft::{torch_archive, Pickle};
use ascrepro::models::cp_blocks::Channels;
use ascrepro::models::{
    build_net, cp_mobile, dcase25_baseline, sscp_mobile, tfsepnet64, ModelConfig, Net,
};
use std::collections::BTreeMap;
use std::path::Path;
use tch::{nn, Device, Kind, Tensor};

mod common;
use common::{eval, max_abs_diff, perturb_with, Perturb};

const INPUT: [i64; 3] = [1, 256, 65];

fn sscp64() -> ModelConfig {
    ModelConfig::SscpMobile(sscp_mobile::Config {
        channels: Channels::Base(64),
        num_classes: 10,
    })
}

/// A base network with random weights and non-trivial BatchNorm statistics and GRN parameters.
fn random_net(cfg: &ModelConfig) -> (nn::VarStore, Box<dyn Net>) {
    let vs = nn::VarStore::new(Device::Cpu);
    let net = build_net(&Vb::new(&vs.root()), cfg).unwrap();
    perturb_with(&vs, |name, v, _| {
        let leaf = name.rsplit('.').next().unwrap_or("");
        match (leaf, v.dim()) {
            ("weight" | "running_var", 1) => Perturb::AroundOne,
            ("bias" | "running_mean" | "gamma" | "beta", _) => Perturb::AroundZero,
            _ => Perturb::Keep,
        }
    });
    (vs, net)
}

/// Random importance (so the kept channels are scattered), pruned to `counts`; returns the
/// mask, the masked network's and the shrunk network's eval outputs, and the shrunk config.
fn masked_and_shrunk(
    cfg: &ModelConfig,
    counts: &[i64],
    x: &Tensor,
) -> (ChannelMask, Tensor, Tensor, Tensor, ModelConfig) {
    let groups = ChannelGroups::of(cfg).unwrap();
    let (vs, mut net) = random_net(cfg);
    let before = eval(net.as_ref(), x);
    let scores: Vec<Vec<f64>> = groups
        .groups
        .iter()
        .map(|g| {
            Vec::<f64>::try_from(&Tensor::rand([g.units], (Kind::Double, Device::Cpu))).unwrap()
        })
        .collect();
    let mask = groups.select(&scores, counts, None).unwrap();
    groups.apply(&mask, &vs, net.as_mut()).unwrap();
    let masked = eval(net.as_ref(), x);
    let shrunk = groups.shrink(&mask, &vs).unwrap();
    let small = eval(shrunk.net.as_ref(), x);
    (mask, before, masked, small, shrunk.config)
}

fn assert_equal_outputs(masked: &Tensor, shrunk: &Tensor, before: &Tensor) {
    let diff = max_abs_diff(masked, shrunk);
    let scale = masked.abs().max().double_value(&[]);
    assert!(
        diff <= 1e-5,
        "shrunk vs masked: max |diff| {diff} (outputs up to {scale})"
    );
    // The masking changed the network (a test that cannot pass vacuously).
    assert!(max_abs_diff(before, masked) > 1e-3);
}

#[test]
fn sscp_mobile_groups_follow_the_residual_structure() {
    let groups = ChannelGroups::of(&sscp64()).unwrap();
    let entries: Vec<Vec<usize>> = groups.groups.iter().map(|g| g.entries.clone()).collect();
    assert_eq!(
        entries,
        [
            vec![0],
            vec![1, 3, 5, 7],
            vec![2],
            vec![4],
            vec![6],
            vec![8],
            vec![9, 11],
            vec![10],
            vec![12],
            vec![13]
        ]
    );
    assert_eq!(
        groups.base_counts(),
        [16, 64, 144, 144, 144, 144, 112, 248, 248, 208]
    );
    let s1 = groups.counts_of_widths(&sscp_mobile::S1_WIDTHS).unwrap();
    assert_eq!(s1, [8, 32, 72, 72, 72, 72, 56, 124, 124, 104]);
    assert_eq!(groups.widths(&s1).unwrap(), sscp_mobile::S1_WIDTHS);
    // Tied entries must agree; untied widths that differ in the base must keep differing (a
    // 32 -> 32 block b4 would gain a residual add).
    let mut w = sscp_mobile::S1_WIDTHS.to_vec();
    w[3] = 30;
    assert!(groups
        .counts_of_widths(&w)
        .unwrap_err()
        .to_string()
        .contains("tied"));
    let mut c = s1.clone();
    c[6] = 32;
    assert!(groups
        .check_counts(&c)
        .unwrap_err()
        .to_string()
        .contains("residual"));

    // The stream's producers (stem, blocks b1-b3) lose the same channels, and b1's expansion
    // group its expansion conv's and both depthwise convs' channels.
    let (vs, mut net) = random_net(&sscp64());
    let scores: Vec<Vec<f64>> = groups
        .groups
        .iter()
        .map(|g| (0..g.units).map(|u| ((u * 37) % 101) as f64).collect())
        .collect();
    let mask = groups.select(&scores, &s1, None).unwrap();
    groups.apply(&mask, &vs, net.as_mut()).unwrap();
    let vars = vs.variables();
    let zero_rows = |name: &str| -> Vec<i64> {
        let w = vars[name].reshape([vars[name].size()[0], -1]).abs();
        let w = w.sum_dim_intlist([1i64].as_slice(), false, Kind::Float);
        let w = Vec::<f32>::try_from(&w).unwrap();
        (0..w.len() as i64)
            .filter(|&i| w[i as usize] == 0.0)
            .collect()
    };
    let stream = zero_rows("in_c.1.0.weight");
    assert_eq!(stream.len(), 32);
    for name in [
        "in_c2.1.0.weight",
        "in_c2.1.1.weight",
        "stages.s1.b1.proj_conv.0.weight",
        "stages.s1.b2.proj_conv.1.bias",
        "stages.s1.b3.proj_conv.0.weight",
    ] {
        assert_eq!(zero_rows(name), stream, "{name}");
    }
    let exp = zero_rows("stages.s1.b1.exp_conv.0.weight");
    assert_eq!(exp.len(), 72);
    for name in [
        "stages.s1.b1.depth_conv.0.weight",
        "stages.s1.b1.depth_conv2.1.weight",
    ] {
        assert_eq!(zero_rows(name), exp, "{name}");
    }
    // A different group prunes different channels.
    assert_ne!(zero_rows("stages.s1.b2.exp_conv.0.weight").len(), 0);
}

#[test]
fn sscp_mobile_shrunk_to_s1_equals_masked_and_counts_as_published() {
    let groups = ChannelGroups::of(&sscp64()).unwrap();
    let s1 = groups.counts_of_widths(&sscp_mobile::S1_WIDTHS).unwrap();
    let x = Tensor::randn([2, 1, 64, 32], (Kind::Float, Device::Cpu));
    let (mask, before, masked, shrunk, cfg) = masked_and_shrunk(&sscp64(), &s1, &x);
    assert_eq!(mask.counts(), s1);
    assert_equal_outputs(&masked, &shrunk, &before);
    assert_eq!(
        cfg,
        ModelConfig::SscpMobile(sscp_mobile::Config::pruned(&sscp_mobile::S1_WIDTHS))
    );
    let c = count(&cfg, INPUT, &CountOptions::default()).unwrap();
    assert_eq!((c.params, c.macs), (63_748, 29_982_132));
}

#[test]
fn cp_mobile_and_baseline_shrunk_equal_masked() {
    let x = Tensor::randn([2, 1, 64, 32], (Kind::Float, Device::Cpu));
    // CP-Mobile has GRN (channel statistics) in every block; the baseline has none.
    for cfg in [
        ModelConfig::CpMobile(cp_mobile::Config {
            channels: Channels::Base(32),
            num_classes: 10,
        }),
        ModelConfig::Dcase25Baseline(dcase25_baseline::Config::baseline()),
    ] {
        let groups = ChannelGroups::of(&cfg).unwrap();
        let counts: Vec<i64> = groups
            .base_counts()
            .iter()
            .map(|u| (u * 5 + 7) / 8)
            .collect();
        groups.check_counts(&counts).unwrap();
        let (_, before, masked, shrunk, small) = masked_and_shrunk(&cfg, &counts, &x);
        assert_equal_outputs(&masked, &shrunk, &before);
        let widths = groups.widths(&counts).unwrap();
        assert!(
            small.describe().contains(&format!("widths={}", widths[0])),
            "{}",
            small.describe()
        );
    }
}

#[test]
fn tfsepnet64_shrunk_equals_masked_through_its_shuffles() {
    let cfg = ModelConfig::Tfsepnet64(tfsepnet64::Config {
        dropout: 0.0,
        ..tfsepnet64::Config::default()
    });
    let groups = ChannelGroups::of(&cfg).unwrap();
    assert_eq!(groups.base_counts(), [32, 64, 96, 128, 160]);
    // Shuffled stages keep even counts whose routes through the halves fit.
    assert!(!groups.groups[1].is_feasible(41));
    let counts: Vec<i64> = groups
        .groups
        .iter()
        .map(|g| g.feasible_at_least(g.units * 5 / 8 + 1))
        .collect();
    let x = Tensor::randn([2, 1, 64, 32], (Kind::Float, Device::Cpu));
    let (mask, before, masked, shrunk, small) = masked_and_shrunk(&cfg, &counts, &x);
    assert_equal_outputs(&masked, &shrunk, &before);
    let ModelConfig::Tfsepnet64(small) = small else {
        panic!()
    };
    assert_eq!(small.widths, Some(mask.counts()));
}

#[test]
fn agp_schedule_is_cubic() {
    let s = AgpSchedule::new(0.0, 0.5, 10).unwrap();
    let at = |t| s.sparsity(t);
    assert_eq!(at(0), 0.0);
    assert!((at(1) - 0.5 * (1.0 - 0.9f64.powi(3))).abs() < 1e-12);
    assert!((at(5) - 0.4375).abs() < 1e-12);
    assert_eq!(at(10), 0.5);
    assert_eq!(at(20), 0.5);
    assert!(AgpSchedule::new(0.0, 1.0, 10).is_err());

    // Per group: 64 -> 32 channels over 10 steps keeps round(64 (1 - s_t)).
    let groups = ChannelGroups::of(&sscp64()).unwrap();
    let agp = AgpPruner::new(
        groups,
        &PruneTarget::Widths(sscp_mobile::S1_WIDTHS.to_vec()),
        10,
    )
    .unwrap();
    let stream: Vec<i64> = (0..=10).map(|t| agp.keep_counts(t)[1]).collect();
    assert_eq!(stream, [64, 55, 48, 43, 39, 36, 34, 33, 32, 32, 32]);
    assert_eq!(agp.keep_counts(0), agp.groups().base_counts());
    assert_eq!(agp.keep_counts(10), agp.target());

    // Steps on a network: masks only shrink and end at the target.
    let (vs, mut net) = random_net(&agp.groups().config);
    let mut previous: Option<ChannelMask> = None;
    for t in [1, 4, 10] {
        let mask = agp
            .prune_step(t, &vs, net.as_mut(), previous.as_ref())
            .unwrap();
        if let Some(p) = &previous {
            for (now, before) in mask.kept.iter().zip(&p.kept) {
                assert!(now.iter().all(|u| before.contains(u)));
            }
        }
        assert_eq!(mask.counts(), agp.keep_counts(t));
        previous = Some(mask);
    }
}

#[test]
fn budget_target_fits_both_limits() {
    let groups = ChannelGroups::of(&sscp64()).unwrap();
    let budget = Budget::dcase(16, INPUT);
    let counts = counts_for_budget(&groups, &budget).unwrap();
    let cfg = groups.pruned_config(&counts).unwrap();
    let c = count(&cfg, INPUT, &CountOptions::default()).unwrap();
    assert!(
        budget.admits(&c),
        "{counts:?}: {} params, {} MACs",
        c.params,
        c.macs
    );
    assert!(c.param_bytes(16) <= 128_000 && c.macs <= 30_000_000);
    // The unpruned network does not fit, so pruning happened; one ratio for all groups.
    assert!(counts.iter().zip(groups.base_counts()).all(|(c, b)| *c < b));
    // Within about a percent of the MAC limit (the ratio is the largest that fits).
    assert!(c.macs > 29_000_000, "{} MACs", c.macs);
    // One common ratio under the DCASE limits at float16 lands on the authors' S1 widths
    // (every base-64 width halved).
    assert_eq!(groups.widths(&counts).unwrap(), sscp_mobile::S1_WIDTHS);
}

/// An NNI mask file: `{module: {param: mask}}`, all tensors in one float storage.
fn write_nni_masks(path: &Path, masks: &BTreeMap<String, BTreeMap<String, Tensor>>) {
    let mut storage = Vec::new();
    let mut layout = Vec::new();
    for (module, params) in masks {
        for (param, t) in params {
            let values = Vec::<f32>::try_from(&t.flatten(0, -1).to_kind(Kind::Float)).unwrap();
            layout.push((module.clone(), param.clone(), storage.len() / 4, t.size()));
            storage.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        }
    }
    let numel = (storage.len() / 4) as i64;
    let mut p = Pickle::new();
    p.op(b'}').mark();
    for (module, params) in masks {
        p.str(module).op(b'}').mark();
        for param in params.keys() {
            let (_, _, offset, size) = layout
                .iter()
                .find(|(m, q, _, _)| m == module && q == param)
                .unwrap();
            let mut stride = vec![1i64; size.len()];
            for i in (0..size.len().saturating_sub(1)).rev() {
                stride[i] = stride[i + 1] * size[i + 1];
            }
            p.str(param)
                .tensor("0", numel, *offset as i64, size, &stride);
        }
        p.op(b'u');
    }
    p.op(b'u');
    std::fs::write(path, torch_archive(&p.stop(), &storage)).unwrap();
}

#[test]
fn nni_masks_import_to_s1_widths_and_bad_masks_are_refused() {
    let cfg = sscp64();
    let groups = ChannelGroups::of(&cfg).unwrap();
    let (vs, _) = random_net(&cfg);
    let importance = groups.importance(&vs).unwrap();
    let s1 = groups.counts_of_widths(&sscp_mobile::S1_WIDTHS).unwrap();
    let mask = groups.select(&importance, &s1, None).unwrap();
    // As NNI saves them: per conv and BatchNorm module, masks shaped like weight and bias.
    let mut masks: BTreeMap<String, BTreeMap<String, Tensor>> = BTreeMap::new();
    for (name, m) in groups.variable_masks(&mask, &vs).unwrap() {
        let (module, param) = name.rsplit_once('.').unwrap();
        masks
            .entry(module.into())
            .or_default()
            .insert(param.into(), m);
    }
    assert!(masks.contains_key("in_c.0.0") && masks.contains_key("stages.s2.b5.depth_conv2.0"));
    // The classifier, unpruned, may be listed too.
    masks.entry("feed_forward.0".into()).or_default().insert(
        "weight".into(),
        Tensor::ones([10, 208, 1, 1], (Kind::Float, Device::Cpu)),
    );
    let dir = common::temp_dir("prune_nni");
    let path = dir.join("c64_mask.pth");
    write_nni_masks(&path, &masks);
    assert_eq!(
        import_nni_masks(&path, &groups).unwrap(),
        sscp_mobile::S1_WIDTHS
    );

    type Masks = BTreeMap<String, BTreeMap<String, Tensor>>;
    let refused = |edit: &dyn Fn(&mut Masks), want: &str| {
        let mut bad: Masks = masks
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.iter().map(|(p, t)| (p.clone(), t.copy())).collect(),
                )
            })
            .collect();
        edit(&mut bad);
        let path = dir.join("bad_mask.pth");
        write_nni_masks(&path, &bad);
        let err = import_nni_masks(&path, &groups).unwrap_err().to_string();
        assert!(err.contains("bad_mask.pth") && err.contains(want), "{err}");
    };
    // The weight mask of `module` (a view: filling it edits the mask).
    let weight = |m: &mut Masks, module: &str| m[module]["weight"].shallow_clone();
    let ones = |size: &[i64]| Tensor::ones(size, (Kind::Float, Device::Cpu));
    refused(
        &|m| drop(weight(m, "in_c.0.0").fill_(0.5)),
        "`in_c.0.0.weight`: value 0.5",
    );
    refused(
        &|m| {
            let exp = m.get_mut("stages.s1.b1.exp_conv.0").unwrap();
            exp.insert("weight".into(), ones(&[144, 64, 1, 2]));
        },
        "`stages.s1.b1.exp_conv.0.weight`: shape [144, 64, 1, 2]",
    );
    // One weight of a kept expansion channel zeroed.
    let kept_exp = mask.kept[2][0];
    refused(
        &|m| {
            drop(
                weight(m, "stages.s1.b1.exp_conv.0")
                    .get(kept_exp)
                    .get(0)
                    .fill_(0.0),
            )
        },
        "`stages.s1.b1.exp_conv.0.weight`: output channel",
    );
    refused(
        &|m| drop(weight(m, "feed_forward.0").get(3).fill_(0.0)),
        "class outputs",
    );
    // One stream channel more pruned in the second stem than in the first.
    let kept_stream = mask.kept[1][0];
    refused(
        &|m| drop(weight(m, "in_c2.1.0").get(kept_stream).fill_(0.0)),
        "a group's layers are pruned together",
    );
    refused(
        &|m| {
            let w = BTreeMap::from([("weight".to_string(), ones(&[1]))]);
            m.insert("in_c.9.0".into(), w);
        },
        "`in_c.9.0.weight`: `sscp_mobile width=64` has no parameter",
    );
}
