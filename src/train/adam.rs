//! Adam and AdamW with PyTorch's update rule (`torch.optim.Adam`/`AdamW`, single-tensor path,
//! the same tensor operations in the same order), written out so their state (moments, step)
//! can be saved with a checkpoint: a resumed run then continues bit for bit where the
//! interrupted one stopped.

use crate::error::Result;
use std::collections::BTreeMap;
use tch::{nn::VarStore, Kind, Tensor};

pub struct Adam {
    /// Trainable variables by name, in sorted order (VarStore iteration order is unspecified).
    params: Vec<(String, Tensor)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    pub step: i64,
    pub betas: (f64, f64),
    pub eps: f64,
    pub weight_decay: WeightDecay,
}

/// How weight decay enters the update.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WeightDecay {
    /// `torch.optim.Adam`: `grad + decay * param`.
    L2(f64),
    /// `torch.optim.AdamW`: `param *= 1 - lr * decay` before the Adam step.
    Decoupled(f64),
}

impl Adam {
    /// The optimiser a recipe names: Adam with L2 weight decay, or AdamW with decoupled decay.
    pub fn for_spec(vs: &VarStore, spec: &crate::recipe::OptimizerSpec) -> Adam {
        use crate::recipe::OptimizerSpec;
        let (betas, decay) = match *spec {
            OptimizerSpec::Adam {
                betas,
                weight_decay,
                ..
            } => (betas, WeightDecay::L2(weight_decay)),
            OptimizerSpec::AdamW {
                betas,
                weight_decay,
                ..
            } => (betas, WeightDecay::Decoupled(weight_decay)),
        };
        Adam::new(vs, (betas[0], betas[1]), decay)
    }

    pub fn new(vs: &VarStore, betas: (f64, f64), weight_decay: WeightDecay) -> Adam {
        let vars: BTreeMap<String, Tensor> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        let params: Vec<(String, Tensor)> = vars.into_iter().collect();
        let m = params.iter().map(|(_, p)| p.zeros_like()).collect();
        let v = params.iter().map(|(_, p)| p.zeros_like()).collect();
        Adam {
            params,
            m,
            v,
            step: 0,
            betas,
            eps: 1e-8,
            weight_decay,
        }
    }

    pub fn zero_grad(&mut self) {
        for (_, p) in &mut self.params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.detach_().zero_();
            }
        }
    }

    /// One update at learning rate `lr` (amsgrad off). The scalars are computed as PyTorch's
    /// Python code computes them (`beta ** step`, `bias_correction2 ** 0.5`).
    pub fn step(&mut self, lr: f64) {
        self.step += 1;
        let (b1, b2) = self.betas;
        let step = self.step as f64;
        let bc1 = 1.0 - b1.powf(step);
        let bc2_sqrt = (1.0 - b2.powf(step)).powf(0.5);
        let step_size = lr / bc1;
        tch::no_grad(|| {
            for (i, (_, p)) in self.params.iter_mut().enumerate() {
                let mut g = p.grad();
                if !g.defined() {
                    continue;
                }
                match self.weight_decay {
                    // torch: grad.add(param, alpha=decay), a fused multiply-add in its
                    // vectorised kernel: the f64 sum of f32 values rounds the same way.
                    WeightDecay::L2(d) if d != 0.0 => {
                        let decay = f64::from(d as f32);
                        g = (g.to_kind(Kind::Double) + p.to_kind(Kind::Double) * decay)
                            .to_kind(g.kind());
                    }
                    WeightDecay::Decoupled(d) if d != 0.0 => {
                        let _ = p.g_mul_scalar_(1.0 - lr * d);
                    }
                    _ => {}
                }
                // torch: exp_avg.lerp_(grad, 1 - beta1);
                // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2), whose kernel
                // computes (value * grad) * grad;
                // param.addcdiv_(exp_avg, denom, value=-step_size): (value * exp_avg) / denom.
                let _ = self.m[i].lerp_(&g, 1.0 - b1);
                let _ = self.v[i].g_mul_scalar_(b2).addcmul_(&(&g * (1.0 - b2)), &g);
                let denom = (self.v[i].sqrt() / bc2_sqrt).g_add_scalar_(self.eps);
                let _ = p.addcdiv_(&(&self.m[i] * -step_size), &denom);
            }
        });
    }

    /// Moments as named tensors (`adam.m.<var>`, `adam.v.<var>`) for a checkpoint.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(2 * self.params.len());
        for (i, (name, _)) in self.params.iter().enumerate() {
            out.push((format!("adam.m.{name}"), self.m[i].shallow_clone()));
            out.push((format!("adam.v.{name}"), self.v[i].shallow_clone()));
        }
        out
    }

    /// Restores moments saved by [`Adam::state`]; `step` is restored by the caller.
    pub fn load_state(&mut self, tensors: &BTreeMap<String, Tensor>) -> Result<()> {
        for (i, (name, _)) in self.params.iter().enumerate() {
            for (prefix, dst) in [("adam.m.", &mut self.m[i]), ("adam.v.", &mut self.v[i])] {
                let key = format!("{prefix}{name}");
                let src = tensors.get(&key).ok_or_else(|| {
                    crate::Error::msg(format!("checkpoint lacks optimiser state `{key}`"))
                })?;
                tch::no_grad(|| dst.copy_(src));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{nn, Device, Kind};

    /// Two steps on f(w) = sum(w²) against the closed form of PyTorch's Adam.
    #[test]
    fn matches_pytorch_update_rule() {
        let vs = VarStore::new(Device::Cpu);
        let w = vs.root().var("w", &[2], nn::Init::Const(1.0));
        let mut opt = Adam::new(&vs, (0.9, 0.999), WeightDecay::L2(0.0));
        let mut expected = vec![1.0f64, 1.0];
        let (mut m, mut v) = (vec![0.0f64; 2], vec![0.0f64; 2]);
        for t in 1..=2 {
            opt.zero_grad();
            (&w * &w).sum(Kind::Float).backward();
            opt.step(0.1);
            for j in 0..2 {
                let g = 2.0 * expected[j];
                m[j] = 0.9 * m[j] + 0.1 * g;
                v[j] = 0.999 * v[j] + 0.001 * g * g;
                let mh = m[j] / (1.0 - 0.9f64.powi(t));
                let vh = v[j] / (1.0 - 0.999f64.powi(t));
                expected[j] -= 0.1 * mh / (vh.sqrt() + 1e-8);
            }
        }
        let got: Vec<f32> = w.detach().try_into().unwrap();
        for j in 0..2 {
            assert!(
                (got[j] as f64 - expected[j]).abs() < 1e-6,
                "{got:?} vs {expected:?}"
            );
        }
    }
}
