//! BatchNorm folding: `conv -> BN` becomes one conv with a bias, exact in eval mode.
//!
//! With s = gamma / sqrt(running_var + eps): W' = W * s (per output channel) and
//! b' = beta + (b - running_mean) * s. The folded tensors are new (detached) tensors: the
//! VarStore the model was built from is left untouched.

use crate::models::blocks::{BatchNorm2d, Conv2d};
use crate::models::Net;

/// Folds `bn` into `conv` (which it follows), giving `conv` a bias.
pub fn fold_into_conv(conv: &mut Conv2d, bn: &BatchNorm2d) {
    let (weight, bias) = bn.fold(&conv.weight, conv.bias.as_ref());
    conv.weight = weight;
    conv.bias = Some(bias);
}

/// Folds every BatchNorm of `net` into the conv before it; returns how many were folded.
/// The result is an eval-only model: train mode no longer has batch statistics to use.
pub fn fold_bn(net: &mut dyn Net) -> usize {
    let mut folded = 0;
    net.visit_convs(&mut |unit| {
        if let Some(bn) = unit.bn.take() {
            fold_into_conv(&mut unit.conv, &bn);
            folded += 1;
        }
    });
    folded
}
