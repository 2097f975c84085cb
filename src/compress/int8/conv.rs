//! Quantized conv2d and linear: `torch.ops.quantized.conv2d(_relu)` and
//! `torch.ops.quantized.linear(_relu)` with fbgemm (`PackedConvWeight::apply_impl`,
//! `PackedLinearWeight::apply_impl`): exact integer accumulation over the patch, padding holding
//! the activation zero point, then fbgemm's per-channel float requantization.

use super::gemm::{gemm, Isa, PackedWeights, PANEL};
use super::requant::ChannelRequant;
use super::{depthwise, pointwise};
use super::{Affine, Fused, MemoryFormat, QTensor, QWeight};
use crate::error::{Error, Result};

/// Geometry of a conv: stride and zero padding per spatial dim (`[H, W]`), and groups
/// (`groups == channels` is depthwise). Dilation is 1, as PyTorch's fbgemm conv requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dConfig {
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub groups: usize,
}

impl Default for Conv2dConfig {
    fn default() -> Self {
        Conv2dConfig {
            stride: [1, 1],
            padding: [0, 0],
            groups: 1,
        }
    }
}

/// Activation bytes packed per tile (the GEMM's working set stays in L2).
const TILE_BYTES: usize = 128 * 1024;

/// Quantized conv2d on the fastest instruction set this CPU has. The output is on the
/// `output` grid and channels-last, as PyTorch's.
pub fn conv2d(
    x: &QTensor,
    w: &QWeight,
    cfg: &Conv2dConfig,
    output: Affine,
    fused: Fused,
) -> Result<QTensor> {
    conv2d_with(Isa::detect(), x, w, cfg, output, fused)
}

/// [`conv2d`] on a chosen instruction set (which must be available; see [`Isa::is_available`]).
pub fn conv2d_with(
    isa: Isa,
    x: &QTensor,
    w: &QWeight,
    cfg: &Conv2dConfig,
    output: Affine,
    fused: Fused,
) -> Result<QTensor> {
    let geo = Geometry::new(x, w, cfg)?;
    if depthwise::applies(w) {
        depthwise::conv(isa, x, w, &geo, output, fused)
    } else if pointwise::applies(w, &geo) {
        pointwise::conv(isa, x, w, &geo, cfg.groups, output, fused)
    } else {
        conv2d_generic_with(isa, x, w, cfg, output, fused)
    }
}

/// The im2col + GEMM path of [`conv2d_with`], for any geometry. [`conv2d_with`] sends the shapes
/// it has direct kernels for elsewhere; this stays public so tests and benchmarks can check
/// those kernels against it.
pub fn conv2d_generic_with(
    isa: Isa,
    x: &QTensor,
    w: &QWeight,
    cfg: &Conv2dConfig,
    output: Affine,
    fused: Fused,
) -> Result<QTensor> {
    let geo = Geometry::new(x, w, cfg)?;
    let [n, c, h, wd] = geo.input;
    let [o, cg, kh, kw] = w.shape();
    let groups = cfg.groups;
    let og = o / groups;
    let k = cg * kh * kw;
    let [oh, ow] = geo.output;
    let requant: Vec<ChannelRequant> = (0..o)
        .map(|oc| {
            let sum = w.data()[oc * k..][..k].iter().map(|&v| v as i32).sum();
            let bias = w.bias().map(|b| b[oc]);
            ChannelRequant::new(sum, x.affine(), w.scales()[oc], bias, output, fused)
        })
        .collect();
    let quads = k.div_ceil(4);
    let rows = (TILE_BYTES / (quads * 4) / ow).clamp(1, oh);
    let max_positions = (rows * ow).next_multiple_of(PANEL);
    let mut patches = vec![0u8; max_positions * quads * 4];
    let mut acc = vec![0i32; og * max_positions];
    let mut out = vec![0u8; n * o * oh * ow];
    let zp = x.affine().zero_point;
    for g in 0..groups {
        let packed = PackedWeights::new(&w.data()[g * og * k..][..og * k], og, k);
        for b in 0..n {
            let image = &x.data()[(b * c + g * cg) * h * wd..][..cg * h * wd];
            for row0 in (0..oh).step_by(rows) {
                let count = rows.min(oh - row0) * ow;
                let positions = count.next_multiple_of(PANEL);
                geo.pack_patches(
                    image,
                    [cg, kh, kw],
                    zp,
                    row0,
                    count / ow,
                    quads,
                    &mut patches,
                );
                gemm(isa, &patches, positions, &packed, &mut acc);
                for oi in 0..og {
                    let oc = g * og + oi;
                    let dst = &mut out[((b * o + oc) * oh + row0) * ow..][..count];
                    requant[oc].apply_row(isa, &acc[oi * positions..][..count], dst);
                }
            }
        }
    }
    QTensor::new(out, &[n, o, oh, ow], output, MemoryFormat::ChannelsLast)
}

/// Validated conv shapes.
pub(super) struct Geometry {
    /// `[N, C, H, W]`.
    pub(super) input: [usize; 4],
    /// `[OH, OW]`.
    pub(super) output: [usize; 2],
    pub(super) stride: [usize; 2],
    pub(super) padding: [usize; 2],
}

impl Geometry {
    pub(super) fn new(x: &QTensor, w: &QWeight, cfg: &Conv2dConfig) -> Result<Self> {
        let input = x.nchw("conv2d")?;
        let [o, cg, kh, kw] = w.shape();
        let err = |m: String| Error::Msg(format!("int8 conv2d: {m}"));
        if cfg.groups == 0 || input[1] != cg * cfg.groups || o % cfg.groups != 0 {
            return Err(err(format!(
                "weight {:?} with {} groups does not fit input {:?}",
                w.shape(),
                cfg.groups,
                x.shape()
            )));
        }
        if cfg.stride.contains(&0) {
            return Err(err("stride 0".into()));
        }
        let out_len = |d: usize| -> Result<usize> {
            let padded = input[2 + d] + 2 * cfg.padding[d];
            let k = [kh, kw][d];
            if padded < k {
                return Err(err(format!("kernel {k} larger than padded input {padded}")));
            }
            Ok((padded - k) / cfg.stride[d] + 1)
        };
        Ok(Geometry {
            input,
            output: [out_len(0)?, out_len(1)?],
            stride: cfg.stride,
            padding: cfg.padding,
        })
    }

    /// im2col of output rows `row0 .. row0 + rows` of one group of one image into the GEMM's
    /// panel layout; out-of-image taps read the zero point, as fbgemm pads.
    #[allow(clippy::too_many_arguments)]
    fn pack_patches(
        &self,
        image: &[u8],
        [channels, kh, kw]: [usize; 3],
        zero_point: u8,
        row0: usize,
        rows: usize,
        quads: usize,
        patches: &mut [u8],
    ) {
        let [_, _, h, w] = self.input;
        let ow = self.output[1];
        let [sh, sw] = self.stride;
        let [ph, pw] = self.padding;
        for term in 0..channels * kh * kw {
            let (ic, ky, kx) = (term / (kh * kw), term / kw % kh, term % kw);
            let plane = &image[ic * h * w..][..h * w];
            let (q, j) = (term / 4, term % 4);
            // Output columns whose tap lands inside the image: ph <= x * sw + kx < w + pw.
            let first = pw.saturating_sub(kx).div_ceil(sw).min(ow);
            let end = if w + pw > kx {
                ((w + pw - kx).div_ceil(sw)).min(ow)
            } else {
                0
            }
            .max(first);
            for r in 0..rows {
                let y = (row0 + r) * sh + ky;
                let line = (ph..h + ph)
                    .contains(&y)
                    .then(|| &plane[(y - ph) * w..][..w]);
                for xo in 0..ow {
                    let p = r * ow + xo;
                    let v = match line {
                        Some(line) if (first..end).contains(&xo) => line[xo * sw + kx - pw],
                        _ => zero_point,
                    };
                    patches[((p / PANEL) * quads + q) * 64 + (p % PANEL) * 4 + j] = v;
                }
            }
        }
    }
}

/// Quantized linear layer (`x: [N, I]`, weight `[O, I]`) on the fastest instruction set.
/// The output `[N, O]` is on the `output` grid.
pub fn linear(x: &QTensor, w: &QWeight, output: Affine, fused: Fused) -> Result<QTensor> {
    linear_with(Isa::detect(), x, w, output, fused)
}

/// [`linear`] on a chosen instruction set.
pub fn linear_with(
    isa: Isa,
    x: &QTensor,
    w: &QWeight,
    output: Affine,
    fused: Fused,
) -> Result<QTensor> {
    let [o, k, kh, kw] = w.shape();
    let n = match x.shape()[..] {
        [n, i] if i == k && kh == 1 && kw == 1 => n,
        _ => {
            return Err(Error::Msg(format!(
                "int8 linear: weight {:?} does not fit input {:?}",
                w.shape(),
                x.shape()
            )))
        }
    };
    let packed = PackedWeights::new(w.data(), o, k);
    let quads = packed.quads();
    let positions = n.next_multiple_of(PANEL);
    let mut patches = vec![0u8; positions * quads * 4];
    for (p, row) in x.data().chunks_exact(k).enumerate() {
        for (term, &v) in row.iter().enumerate() {
            let (q, j) = (term / 4, term % 4);
            patches[((p / PANEL) * quads + q) * 64 + (p % PANEL) * 4 + j] = v;
        }
    }
    let mut acc = vec![0i32; o * positions];
    gemm(isa, &patches, positions, &packed, &mut acc);
    let mut out = vec![0u8; n * o];
    for oc in 0..o {
        let bias = w.bias().map(|b| b[oc]);
        let r = ChannelRequant::new(
            packed.sum(oc),
            x.affine(),
            w.scales()[oc],
            bias,
            output,
            fused,
        );
        for p in 0..n {
            out[p * o + oc] = r.apply(acc[oc * positions + p]);
        }
    }
    QTensor::new(out, &[n, o], output, MemoryFormat::Contiguous)
}
