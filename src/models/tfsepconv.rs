//! The time-frequency separable convolution block of TF-SepNet, with its lowering.

use super::blocks::{ChannelShuffle, ConvBn, ConvSpec, Ctx, UnitNames, Vb};
use super::graph::{Graph, Op, ValueId};
use tch::{Kind, Tensor};

/// Time-frequency separable convolution block (Cai et al., DCASE2023 Fig. 2), the block of both
/// TF-SepNet (2023) and TF-SepNet-64 (2024/2025): the two reports' blocks are the same.
///
/// Optional 1x1 conv-BN-ReLU when the width changes; channel shuffle; split in halves; the first
/// half goes through a (3x1) depthwise conv-BN-ReLU, a mean over frequency, a 1x1 conv-BN-ReLU,
/// dropout and a residual add; the second half does the same along time; the halves are
/// concatenated. Sub-units carry the names of Cai et al.'s released `TimeFreqSepConvolutions`
/// (`trans_conv`, `freq_dw_conv`, `freq_pw_conv`, `temp_dw_conv`, `temp_pw_conv`, each with
/// `_conv`/`_bn`), so released checkpoints import by name.
#[derive(Debug)]
pub struct TfSepConv {
    pub name: String,
    pub trans_conv: Option<ConvBn>,
    pub shuffle: ChannelShuffle,
    pub freq_dw_conv: ConvBn,
    pub freq_pw_conv: ConvBn,
    pub temp_dw_conv: ConvBn,
    pub temp_pw_conv: ConvBn,
    pub dropout: f64,
    halves: [i64; 2],
    /// Activation points of the lowered graph: the two residual adds and the concat.
    freq_add: String,
    time_add: String,
    cat: String,
}

impl TfSepConv {
    /// `shuffle_groups`: `None` means half the output channels.
    pub fn new(
        vb: &Vb,
        in_ch: i64,
        out_ch: i64,
        dropout: f64,
        shuffle_groups: Option<i64>,
    ) -> Self {
        let unit = |name: &str, spec: &ConvSpec| {
            ConvBn::named(&vb.sub(name), spec, true, true, UnitNames::Underscored)
        };
        let trans_conv =
            (in_ch != out_ch).then(|| unit("trans_conv", &ConvSpec::new(in_ch, out_ch, [1, 1])));
        let groups = shuffle_groups.unwrap_or(out_ch / 2).max(1);
        let h1 = out_ch / 2;
        let h2 = out_ch - h1;
        let dw = |name: &str, c: i64, kernel: [i64; 2], padding: [i64; 2]| {
            unit(
                name,
                &ConvSpec::new(c, c, kernel).padding(padding).groups(c),
            )
        };
        let pw = |name: &str, c: i64| unit(name, &ConvSpec::new(c, c, [1, 1]));
        TfSepConv {
            name: vb.name(),
            trans_conv,
            shuffle: ChannelShuffle::new(vb.child_name("shuffle"), groups),
            freq_dw_conv: dw("freq_dw_conv", h1, [3, 1], [1, 0]),
            freq_pw_conv: pw("freq_pw_conv", h1),
            temp_dw_conv: dw("temp_dw_conv", h2, [1, 3], [0, 1]),
            temp_pw_conv: pw("temp_pw_conv", h2),
            dropout,
            halves: [h1, h2],
            freq_add: vb.child_name("freq_add"),
            time_add: vb.child_name("time_add"),
            cat: vb.child_name("cat"),
        }
    }

    pub fn forward(&self, xs: &Tensor, ctx: &Ctx) -> Tensor {
        let x = match &self.trans_conv {
            Some(p) => p.forward(xs, ctx),
            None => xs.shallow_clone(),
        };
        let x = self.shuffle.forward(&x, ctx);
        let parts = x.split_with_sizes(self.halves, 1);
        let branch = |id: &Tensor, dw: &ConvBn, pw: &ConvBn, dim: i64| {
            let y = dw.forward(id, ctx);
            let y = y.mean_dim([dim].as_slice(), true, None::<Kind>);
            let y = pw.forward(&y, ctx).dropout(self.dropout, ctx.train);
            y + id
        };
        let f = branch(&parts[0], &self.freq_dw_conv, &self.freq_pw_conv, 2);
        let t = branch(&parts[1], &self.temp_dw_conv, &self.temp_pw_conv, 3);
        Tensor::cat(&[f, t], 1)
    }

    /// The block as graph nodes, mirroring [`TfSepConv::forward`] in eval mode.
    pub fn lower(&self, g: &mut Graph, x: ValueId) -> ValueId {
        let x = match &self.trans_conv {
            Some(p) => p.lower(g, x),
            None => x,
        };
        let x = self.shuffle.lower(g, x);
        let [h1, h2] = self.halves;
        let branch = |g: &mut Graph, start: i64, len: i64, dw: &ConvBn, pw: &ConvBn, dim, add| {
            let part = g.push(
                format!("{}.split{start}", self.name),
                Op::Slice { start, len },
                &[x],
            );
            let y = dw.lower(g, part);
            let mean = Op::Mean {
                dims: vec![dim],
                keepdim: true,
            };
            let y = g.push(format!("{}.mean", dw.name), mean, &[y]);
            let y = pw.lower(g, y);
            g.push(add, Op::Add { relu: false }, &[y, part])
        };
        let f = branch(
            g,
            0,
            h1,
            &self.freq_dw_conv,
            &self.freq_pw_conv,
            2,
            &self.freq_add,
        );
        let t = branch(
            g,
            h1,
            h2,
            &self.temp_dw_conv,
            &self.temp_pw_conv,
            3,
            &self.time_add,
        );
        g.push(&self.cat, Op::Cat, &[f, t])
    }

    /// Every conv unit of the block, in forward order.
    pub fn visit_convs(&mut self, f: &mut dyn FnMut(&mut ConvBn)) {
        if let Some(p) = &mut self.trans_conv {
            f(p);
        }
        f(&mut self.freq_dw_conv);
        f(&mut self.freq_pw_conv);
        f(&mut self.temp_dw_conv);
        f(&mut self.temp_pw_conv);
    }
}
