//! Half-precision (fp16) deployment, as Zhang et al. deploy their pruned SSCP-Mobile
//! (`model.half()`): every parameter and buffer stored in IEEE binary16, so 63,748 parameters
//! take 127,496 bytes and fit the 128 kB limit that they exceed at fp32.
//!
//! On CUDA the network computes in half, as the authors' inference does. On the CPU, where
//! libtorch's half kernels are slow or missing, the weights are rounded to half and the network
//! computes in f32: the stored model is the same, only the arithmetic between layers is wider.

use crate::models::{AscModel, Net};
use tch::{nn, Kind, Tensor};

/// How a [`HalfModel`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HalfCompute {
    /// Weights, activations and arithmetic in half (CUDA).
    Half,
    /// Weights rounded to half, activations and arithmetic in f32 (CPU).
    RoundedWeightsF32,
}

/// A network whose variables are stored at half precision; eval only.
pub struct HalfModel {
    net: Box<dyn Net>,
    /// Holds the variables `net` computes with.
    _vs: nn::VarStore,
    compute: HalfCompute,
}

impl std::fmt::Debug for HalfModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HalfModel")
            .field("net", &self.net)
            .field("compute", &self.compute)
            .finish()
    }
}

impl HalfModel {
    /// `net` (with its variables `vs`) at half precision: in half on CUDA, with half-rounded
    /// weights in f32 elsewhere.
    pub fn new(mut vs: nn::VarStore, net: Box<dyn Net>) -> HalfModel {
        let compute = if vs.device().is_cuda() {
            vs.half();
            HalfCompute::Half
        } else {
            round_to_half(&vs);
            HalfCompute::RoundedWeightsF32
        };
        HalfModel {
            net,
            _vs: vs,
            compute,
        }
    }

    pub fn compute(&self) -> HalfCompute {
        self.compute
    }
}

impl AscModel for HalfModel {
    fn forward_t(&self, xs: &Tensor, _train: bool) -> Tensor {
        tch::no_grad(|| match self.compute {
            HalfCompute::Half => self
                .net
                .forward_t(&xs.to_kind(Kind::Half), false)
                .to_kind(Kind::Float),
            HalfCompute::RoundedWeightsF32 => self.net.forward_t(xs, false),
        })
    }
}

/// Rounds every floating-point variable of `vs` (parameters and BatchNorm statistics, as
/// `model.half()` converts both) to the nearest half-precision value, kept in its own kind.
pub fn round_to_half(vs: &nn::VarStore) {
    tch::no_grad(|| {
        for (_, mut v) in vs.variables() {
            if v.is_floating_point() {
                let rounded = v.to_kind(Kind::Half).to_kind(v.kind());
                v.copy_(&rounded);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::blocks::Vb;
    use crate::models::{build_net, sscp_mobile, ModelConfig};
    use tch::Device;

    #[test]
    fn weights_round_to_half_and_the_model_computes_with_them() {
        let cfg = ModelConfig::SscpMobile(sscp_mobile::Config::pruned(&sscp_mobile::S1_WIDTHS));
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let net = build_net(&Vb::new(&vs.root()), &cfg).unwrap();
        let before: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .map(|(n, t)| (n, t.copy()))
            .collect();
        let xs = Tensor::randn([2, 1, 256, 65], (Kind::Float, Device::Cpu));
        let fp32 = tch::no_grad(|| net.forward_t(&xs, false));
        let half = HalfModel::new(vs, net);
        assert_eq!(half.compute(), HalfCompute::RoundedWeightsF32);
        let after = half._vs.variables();
        let mut changed = 0;
        for (name, old) in &before {
            let new = &after[name];
            // Each value is the half nearest the old one, and exactly representable in half.
            let want = old.to_kind(Kind::Half).to_kind(Kind::Float);
            assert!(new.equal(&want), "{name} is not rounded to half");
            if !new.equal(old) {
                changed += 1;
            }
        }
        assert!(changed > 0, "no variable changed: rounding was not applied");
        let out = half.forward_t(&xs, false);
        let d = (&out - &fp32).abs().max().double_value(&[]);
        // Close to fp32 (half keeps ~3 significant digits), but not the fp32 model itself.
        assert!(d > 0.0 && d < 0.05, "fp16 vs fp32 logits differ by {d}");
    }
}
