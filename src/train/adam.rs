//! Adam with PyTorch's update rule, written out so its state (moments, step) can be saved with a
//! checkpoint: a resumed run then continues bit for bit where the interrupted one stopped.

use crate::error::Result;
use std::collections::BTreeMap;
use tch::{nn::VarStore, Tensor};

pub struct Adam {
    /// Trainable variables by name, in sorted order (VarStore iteration order is unspecified).
    params: Vec<(String, Tensor)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    pub step: i64,
    pub betas: (f64, f64),
    pub eps: f64,
    pub weight_decay: f64,
}

impl Adam {
    pub fn new(vs: &VarStore, betas: (f64, f64), weight_decay: f64) -> Adam {
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

    /// One update at learning rate `lr` (PyTorch `torch.optim.Adam`, amsgrad off).
    pub fn step(&mut self, lr: f64) {
        self.step += 1;
        let (b1, b2) = self.betas;
        let bc1 = 1.0 - b1.powi(self.step as i32);
        let bc2 = 1.0 - b2.powi(self.step as i32);
        tch::no_grad(|| {
            for (i, (_, p)) in self.params.iter_mut().enumerate() {
                let mut g = p.grad();
                if !g.defined() {
                    continue;
                }
                if self.weight_decay != 0.0 {
                    g = &g + &*p * self.weight_decay;
                }
                let _ = self.m[i].g_mul_scalar_(b1).g_add_(&(&g * (1.0 - b1)));
                let _ = self.v[i].g_mul_scalar_(b2).g_add_(&(&g * &g * (1.0 - b2)));
                let denom = self.v[i].sqrt() / bc2.sqrt() + self.eps;
                let update = &self.m[i] / denom * (lr / bc1);
                let _ = p.g_sub_(&update);
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
        let mut opt = Adam::new(&vs, (0.9, 0.999), 0.0);
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
