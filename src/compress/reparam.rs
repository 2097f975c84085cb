//! Structural re-parameterisation: every RepConv2d's parallel branches (3x3, 1x3, 3x1, 1x1)
//! become the one 3x3 conv they sum to, as Ramezanee et al. do after training. Exact in train
//! and eval mode (no BatchNorm sits inside a RepConv2d), it shrinks the deployed graph's
//! parameters and MACs; `complexity::count` applies it when `CountOptions::reparam` is set.
//!
//! The merged tensors are new (detached) tensors, as with BatchNorm folding: the VarStore the
//! model was built from keeps the branches. A checkpoint of the merged graph is loaded into a
//! model built in that graph (e.g. `dsflexinet::Config::reparameterized`).

use crate::models::Net;

/// Merges every re-parameterisable unit of `net`; returns how many were merged (0 for
/// architectures without RepConv2d, or when already merged).
pub fn reparameterize(net: &mut dyn Net) -> usize {
    net.reparameterize()
}
