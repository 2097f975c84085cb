//! RepConv2d (Ramezanee et al., DCASE2025): a 3x3 conv trained as four parallel branches
//! (3x3, 1x3, 3x1 and 1x1, no bias, summed) and deployed as the single 3x3 conv they add up to.
//!
//! Every branch is centred on the same input position (padding `(k - 1) / 2` per axis, same stride
//! and groups), so zero-padding each branch kernel to 3x3 and summing the kernels gives a conv
//! whose output equals the branches' sum, in train and eval mode alike (there is no BatchNorm
//! inside). Names follow the authors' released code: branches `conv1`..`conv4`; the merged conv
//! is `0` (they wrap it in a one-element `nn.Sequential`), the layout of their checkpoints.

use super::blocks::{Conv2d, ConvBn, ConvSpec, Ctx, Vb};
use tch::Tensor;

/// The branches: (name, kernel, padding).
const BRANCHES: [(&str, [i64; 2], [i64; 2]); 4] = [
    ("conv1", [3, 3], [1, 1]),
    ("conv2", [1, 3], [0, 1]),
    ("conv3", [3, 1], [1, 0]),
    ("conv4", [1, 1], [0, 0]),
];

/// Name of the merged conv under the RepConv2d's path.
const MERGED: &str = "0";

#[derive(Debug)]
enum Graph {
    /// Training-time graph: one unit per entry of [`BRANCHES`], in that order.
    Branches(Vec<ConvBn>),
    /// Inference graph: the single 3x3 conv.
    Merged(ConvBn),
}

/// Parallel 3x3 + 1x3 + 3x1 + 1x1 convs, or the one 3x3 conv they merge into.
#[derive(Debug)]
pub struct RepConv2d {
    pub name: String,
    graph: Graph,
}

impl RepConv2d {
    /// The training-time graph: variables `<vb>.conv1.weight` .. `<vb>.conv4.weight`.
    /// `spec` gives channels, stride and groups; its kernel, padding and bias are ignored.
    pub fn new(vb: &Vb, spec: &ConvSpec) -> Self {
        let branches = BRANCHES
            .iter()
            .map(|&(name, kernel, padding)| {
                let bvb = vb.sub(name);
                let conv = Conv2d::new(&bvb, &branch_spec(spec, kernel, padding));
                ConvBn::from_parts(bvb.name(), conv, None, false)
            })
            .collect();
        RepConv2d {
            name: vb.name(),
            graph: Graph::Branches(branches),
        }
    }

    /// The inference graph built directly (to load merged weights, such as the released
    /// checkpoints): variable `<vb>.0.weight`.
    pub fn merged(vb: &Vb, spec: &ConvSpec) -> Self {
        let conv = Conv2d::new(&vb.sub(MERGED), &branch_spec(spec, [3, 3], [1, 1]));
        RepConv2d {
            name: vb.name(),
            graph: Graph::Merged(ConvBn::from_parts(vb.name(), conv, None, false)),
        }
    }

    pub fn is_merged(&self) -> bool {
        matches!(self.graph, Graph::Merged(_))
    }

    /// The sum of the branches (no activation); every branch is recorded as its own layer.
    pub fn forward(&self, xs: &Tensor, ctx: &Ctx) -> Tensor {
        match &self.graph {
            Graph::Merged(unit) => unit.conv.forward(xs, ctx),
            Graph::Branches(units) => units
                .iter()
                .map(|u| u.conv.forward(xs, ctx))
                .reduce(|a, b| a + b)
                .expect("a RepConv2d has four branches"),
        }
    }

    /// The single 3x3 conv equal to this unit (a copy when already merged), named `<name>.0`.
    /// Its tensors are new and detached: the VarStore the branches live in is left untouched.
    pub fn merge(&self) -> Conv2d {
        let units = match &self.graph {
            Graph::Merged(unit) => return copy_conv(&unit.conv),
            Graph::Branches(units) => units,
        };
        let first = &units[0].conv;
        let weight = tch::no_grad(|| {
            units
                .iter()
                .map(|u| {
                    let w = u.conv.weight.detach();
                    let size = w.size();
                    let (pad_h, pad_w) = ((3 - size[2]) / 2, (3 - size[3]) / 2);
                    // Pad order is last axis first: (left, right, top, bottom).
                    w.constant_pad_nd([pad_w, pad_w, pad_h, pad_h])
                })
                .reduce(|a, b| a + b)
                .expect("a RepConv2d has four branches")
        });
        Conv2d {
            name: format!("{}.{MERGED}", self.name),
            weight,
            bias: None,
            stride: first.stride,
            padding: [1, 1],
            groups: first.groups,
        }
    }

    /// Replaces the branches by their merged conv; false when already merged.
    pub fn reparameterize(&mut self) -> bool {
        if self.is_merged() {
            return false;
        }
        let conv = self.merge();
        self.graph = Graph::Merged(ConvBn::from_parts(self.name.clone(), conv, None, false));
        true
    }

    /// Every conv unit: the four branches, or the merged conv.
    pub fn visit_convs(&mut self, f: &mut dyn FnMut(&mut ConvBn)) {
        match &mut self.graph {
            Graph::Merged(unit) => f(unit),
            Graph::Branches(units) => units.iter_mut().for_each(f),
        }
    }
}

fn branch_spec(spec: &ConvSpec, kernel: [i64; 2], padding: [i64; 2]) -> ConvSpec {
    ConvSpec::new(spec.in_ch, spec.out_ch, kernel)
        .stride(spec.stride)
        .padding(padding)
        .groups(spec.groups)
}

fn copy_conv(conv: &Conv2d) -> Conv2d {
    Conv2d {
        name: conv.name.clone(),
        weight: conv.weight.detach().copy(),
        bias: conv.bias.as_ref().map(|b| b.detach().copy()),
        stride: conv.stride,
        padding: conv.padding,
        groups: conv.groups,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{nn, Device, Kind};

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b).abs().max().double_value(&[])
    }

    #[test]
    fn merged_conv_equals_the_sum_of_the_branches() {
        tch::manual_seed(7);
        // Odd sizes and stride 2 check that every branch samples the same positions.
        for (spec, input) in [
            (ConvSpec::new(3, 5, [3, 3]).stride([2, 2]), [2, 3, 13, 10]),
            (ConvSpec::new(6, 6, [3, 3]).groups(6), [2, 6, 9, 7]),
        ] {
            let vs = nn::VarStore::new(Device::Cpu);
            let mut rep = RepConv2d::new(&Vb::new(&vs.root().sub("rep")), &spec);
            let xs = Tensor::randn(input, (Kind::Float, Device::Cpu));
            let y0 = tch::no_grad(|| rep.forward(&xs, &Ctx::new(false)));
            let merged = rep.merge();
            assert_eq!(merged.name, "rep.0");
            assert_eq!(
                merged.weight.size(),
                [spec.out_ch, spec.in_ch / spec.groups, 3, 3]
            );
            assert!(rep.reparameterize());
            assert!(!rep.reparameterize(), "merging twice is a no-op");
            let y1 = tch::no_grad(|| rep.forward(&xs, &Ctx::new(false)));
            assert_eq!(y0.size(), y1.size());
            let d = max_abs_diff(&y0, &y1);
            assert!(d < 1e-5, "merged output differs by {d}");
            let mut units = 0;
            rep.visit_convs(&mut |u| {
                units += 1;
                assert_eq!(u.conv.name, "rep.0");
            });
            assert_eq!(units, 1);
        }
    }

    #[test]
    fn variables_carry_the_released_names() {
        let vs = nn::VarStore::new(Device::Cpu);
        let spec = ConvSpec::new(16, 32, [3, 3]).stride([2, 2]);
        let _ = RepConv2d::new(&Vb::constant(&vs.root().sub("conv2")), &spec);
        let _ = RepConv2d::merged(&Vb::constant(&vs.root().sub("merged")), &spec);
        let mut names: Vec<(String, Vec<i64>)> = vs
            .variables()
            .into_iter()
            .map(|(n, t)| (n, t.size()))
            .collect();
        names.sort();
        let expected = [
            ("conv2.conv1.weight", vec![32, 16, 3, 3]),
            ("conv2.conv2.weight", vec![32, 16, 1, 3]),
            ("conv2.conv3.weight", vec![32, 16, 3, 1]),
            ("conv2.conv4.weight", vec![32, 16, 1, 1]),
            ("merged.0.weight", vec![32, 16, 3, 3]),
        ]
        .map(|(n, s)| (n.to_string(), s));
        assert_eq!(names, expected);
    }
}
