//! Complexity counting with torchinfo's convention (the DCASE task 1 organisers'), see
//! `../shared/reference/complexity.tsv`: params are learnable elements (BatchNorm running
//! statistics excluded), MACs are counted per conv (plus its bias), 2 per BatchNorm channel,
//! 0 for pooling, activations and (Ada)ResNorm.
//!
//! The count comes from running the real model once, at batch 1, with a probe that records every
//! layer the forward pass executes: whatever a model's forward does is what gets counted.

use crate::error::{Error, Result};
use crate::models::blocks::{Ctx, LayerRecord, Probe, Vb};
use crate::models::{build_net, ModelConfig};
use ascrepro_results::record::{Complexity, LayerComplexity};
use std::cell::RefCell;
use tch::{nn, Device, Kind, Tensor};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CountOptions {
    /// Count the deployed graph: every BatchNorm folded into the conv before it (the conv gains
    /// a bias: +C params, +C*H*W MACs; the BatchNorm's 2C params and 2C MACs go).
    pub fold_bn: bool,
    /// Count the inference graph: RepConv branches merged into one conv each.
    pub reparam: bool,
}

#[derive(Default)]
struct Recorder {
    layers: RefCell<Vec<LayerComplexity>>,
}

impl Probe for Recorder {
    fn layer(&self, l: &LayerRecord<'_>) {
        let dims = |v: &[i64]| v.iter().map(|&d| d.max(0) as usize).collect();
        self.layers.borrow_mut().push(LayerComplexity {
            name: l.name.to_string(),
            kind: l.kind.to_string(),
            input: dims(&l.input),
            output: dims(&l.output),
            params: l.params,
            macs: l.macs,
        });
    }
}

/// Largest input (C x F x T elements) [`count`] accepts: 256 mel bands x 4096 frames.
pub const MAX_INPUT_ELEMENTS: i64 = 1 << 20;

/// torchinfo-convention count: per-layer rows + totals, for input `[C, F, T]` (batch 1).
pub fn count(cfg: &ModelConfig, input: [i64; 3], opts: &CountOptions) -> Result<Complexity> {
    cfg.validate()?;
    if input.iter().any(|&d| d < 1) {
        return Err(Error::msg(format!(
            "complexity of `{}`: input shape {input:?} must be positive",
            cfg.describe()
        )));
    }
    // The count runs a forward pass: bound the input so it cannot ask for terabytes.
    let elements = input.iter().try_fold(1i64, |acc, &d| acc.checked_mul(d));
    if elements.is_none_or(|n| n > MAX_INPUT_ELEMENTS) {
        return Err(Error::msg(format!(
            "complexity of `{}`: input shape {input:?} has more than {MAX_INPUT_ELEMENTS} \
             elements (DCASE inputs are about 1x256x65)",
            cfg.describe()
        )));
    }
    let rec = Recorder::default();
    tch::no_grad(|| -> Result<()> {
        // A throw-away model with constant variables: counting must not draw random numbers.
        let vs = nn::VarStore::new(Device::Cpu);
        let mut net = build_net(&Vb::constant(&vs.root()), cfg)?;
        if opts.reparam {
            net.reparameterize();
        }
        if opts.fold_bn {
            super::fold::fold_bn(net.as_mut());
        }
        let xs = Tensor::zeros(
            [1, input[0], input[1], input[2]],
            (Kind::Float, Device::Cpu),
        );
        // An input too small for the network's pooling makes libtorch fail inside the forward.
        crate::panic_guard::catch(|| {
            let _ = net.forward_ctx(&xs, &Ctx::with_probe(false, &rec));
        })
        .map_err(|torch| {
            Error::msg(format!(
                "complexity of `{}`: the network cannot take input shape {input:?}: libtorch: \
                 {torch}",
                cfg.describe()
            ))
        })
    })?;
    let layers = rec.layers.into_inner();
    Ok(Complexity {
        input: input.iter().map(|&d| d as usize).collect(),
        params: layers.iter().map(|l| l.params).sum(),
        macs: layers.iter().map(|l| l.macs).sum(),
        layers,
    })
}
