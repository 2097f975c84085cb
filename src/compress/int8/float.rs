//! The float islands of the integer engine: ops PyTorch has no quantized kernel for (ResNorm,
//! AdaResNorm) and layers that tolerance tuning left in float, computed in `f32` in NCHW order.

use crate::error::{Error, Result};

/// A float activation: `f32` values in NCHW (or `[N, F]`) order.
#[derive(Debug, Clone, PartialEq)]
pub struct FTensor {
    pub data: Vec<f32>,
    pub shape: Vec<usize>,
}

impl FTensor {
    pub fn new(data: Vec<f32>, shape: &[usize]) -> Result<Self> {
        if data.len() != shape.iter().product::<usize>() {
            return Err(Error::Msg(format!(
                "float tensor: {} values for shape {shape:?}",
                data.len()
            )));
        }
        Ok(FTensor {
            data,
            shape: shape.to_vec(),
        })
    }

    fn nchw(&self, op: &str) -> Result<[usize; 4]> {
        match self.shape[..] {
            [n, c, h, w] => Ok([n, c, h, w]),
            _ => Err(Error::Msg(format!(
                "float {op}: expected an NCHW tensor, got shape {:?}",
                self.shape
            ))),
        }
    }
}

/// A float conv (dilation 1, zero padding) with its bias and optional ReLU.
#[derive(Debug, Clone, PartialEq)]
pub struct FloatConv {
    /// `[O, I/groups, KH, KW]`, row-major.
    pub weight: Vec<f32>,
    pub shape: [usize; 4],
    pub bias: Option<Vec<f32>>,
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub groups: usize,
    pub relu: bool,
}

impl FloatConv {
    pub fn forward(&self, x: &FTensor) -> Result<FTensor> {
        let [n, c, h, w] = x.nchw("conv2d")?;
        let [o, cg, kh, kw] = self.shape;
        let g = self.groups;
        if g == 0 || c != cg * g || o % g != 0 || h + 2 * self.padding[0] < kh {
            return Err(Error::Msg(format!(
                "float conv2d: weight {:?} (groups {g}) does not fit input {:?}",
                self.shape, x.shape
            )));
        }
        let [sh, sw] = self.stride;
        let [ph, pw] = self.padding;
        let oh = (h + 2 * ph - kh) / sh + 1;
        let ow = (w + 2 * pw - kw) / sw + 1;
        let og = o / g;
        let mut out = vec![0f32; n * o * oh * ow];
        for b in 0..n {
            for oc in 0..o {
                let group = oc / og;
                let bias = self.bias.as_ref().map_or(0.0, |v| v[oc]);
                let plane = &mut out[(b * o + oc) * oh * ow..][..oh * ow];
                plane.fill(bias);
                for ic in 0..cg {
                    let xin = &x.data[(b * c + group * cg + ic) * h * w..][..h * w];
                    let kernel = &self.weight[(oc * cg + ic) * kh * kw..][..kh * kw];
                    for (ki, row) in kernel.chunks_exact(kw).enumerate() {
                        for (kj, &wv) in row.iter().enumerate() {
                            for y in 0..oh {
                                let iy = (y * sh + ki) as isize - ph as isize;
                                if iy < 0 || iy >= h as isize {
                                    continue;
                                }
                                let src = &xin[iy as usize * w..][..w];
                                let dst = &mut plane[y * ow..][..ow];
                                for (xo, d) in dst.iter_mut().enumerate() {
                                    let ix = (xo * sw + kj) as isize - pw as isize;
                                    if ix >= 0 && ix < w as isize {
                                        *d += wv * src[ix as usize];
                                    }
                                }
                            }
                        }
                    }
                }
                if self.relu {
                    plane.iter_mut().for_each(|v| *v = v.max(0.0));
                }
            }
        }
        FTensor::new(out, &[n, o, oh, ow])
    }
}

/// A float linear layer `[O, I]` with its bias and optional ReLU.
#[derive(Debug, Clone, PartialEq)]
pub struct FloatLinear {
    pub weight: Vec<f32>,
    pub shape: [usize; 2],
    pub bias: Option<Vec<f32>>,
    pub relu: bool,
}

impl FloatLinear {
    pub fn forward(&self, x: &FTensor) -> Result<FTensor> {
        let [o, i] = self.shape;
        let n = match x.shape[..] {
            [n, k] if k == i => n,
            _ => {
                return Err(Error::Msg(format!(
                    "float linear: weight {:?} does not fit input {:?}",
                    self.shape, x.shape
                )))
            }
        };
        let mut out = Vec::with_capacity(n * o);
        for row in x.data.chunks_exact(i) {
            for (oc, w) in self.weight.chunks_exact(i).enumerate() {
                let mut acc = self.bias.as_ref().map_or(0.0, |b| b[oc]);
                acc += w.iter().zip(row).map(|(a, b)| a * b).sum::<f32>();
                out.push(if self.relu { acc.max(0.0) } else { acc });
            }
        }
        FTensor::new(out, &[n, o])
    }
}

/// ResNorm `lambda * x + FreqIN(x)`, or AdaResNorm `(rho * x + (1 - rho) * FreqIN(x)) * gamma +
/// beta` with per-channel parameters. FreqIN normalises each (item, frequency bin) over channels
/// and time with the unbiased variance and eps 1e-5 (`models::blocks::freq_in`).
#[derive(Debug, Clone, PartialEq)]
pub enum FloatNorm {
    ResNorm {
        lambda: f32,
    },
    AdaResNorm {
        rho: Vec<f32>,
        gamma: Vec<f32>,
        beta: Vec<f32>,
    },
}

impl FloatNorm {
    pub fn forward(&self, x: &FTensor) -> Result<FTensor> {
        let [n, c, f, t] = x.nchw("ResNorm")?;
        if let FloatNorm::AdaResNorm { rho, .. } = self {
            if rho.len() != c {
                return Err(Error::Msg(format!(
                    "float AdaResNorm: {} channels of parameters for input {:?}",
                    rho.len(),
                    x.shape
                )));
            }
        }
        let count = (c * t) as f64;
        let mut out = vec![0f32; x.data.len()];
        let at = |b: usize, ch: usize, bin: usize| ((b * c + ch) * f + bin) * t;
        for b in 0..n {
            for bin in 0..f {
                // f64 statistics, so the f32 results agree with ATen's to rounding.
                let (mut sum, mut sq) = (0f64, 0f64);
                for ch in 0..c {
                    for &v in &x.data[at(b, ch, bin)..][..t] {
                        sum += v as f64;
                        sq += v as f64 * v as f64;
                    }
                }
                let mean = sum / count;
                let var = (sq - sum * mean) / (count - 1.0);
                let inv = 1.0 / (var + 1e-5).sqrt();
                for ch in 0..c {
                    let i = at(b, ch, bin);
                    let pairs = out[i..i + t].iter_mut().zip(&x.data[i..i + t]);
                    // f32 from here, as ATen computes: the loops vectorise.
                    let (mean, inv) = (mean as f32, inv as f32);
                    let normed = |v: f32| (v - mean) * inv;
                    match self {
                        FloatNorm::ResNorm { lambda } => {
                            for (o, &v) in pairs {
                                *o = v * lambda + normed(v);
                            }
                        }
                        FloatNorm::AdaResNorm { rho, gamma, beta } => {
                            let (r, g, be) = (rho[ch], gamma[ch], beta[ch]);
                            for (o, &v) in pairs {
                                *o = (r * v + (1.0 - r) * normed(v)) * g + be;
                            }
                        }
                    }
                }
            }
        }
        FTensor::new(out, &x.shape)
    }
}

/// Mean over `dims` of an NCHW tensor (`keepdim` keeps them as size 1).
pub fn mean(x: &FTensor, dims: &[usize], keepdim: bool) -> Result<FTensor> {
    let [n, c, h, w] = x.nchw("mean")?;
    let over_h = dims.contains(&2);
    let over_w = dims.contains(&3);
    if dims.iter().any(|&d| d != 2 && d != 3) {
        return Err(Error::Msg(format!(
            "float mean: dims {dims:?} (only 2 and 3 are supported)"
        )));
    }
    let (oh, ow) = (if over_h { 1 } else { h }, if over_w { 1 } else { w });
    let count = (if over_h { h } else { 1 } * if over_w { w } else { 1 }) as f64;
    let mut out = vec![0f64; n * c * oh * ow];
    for (plane, dst) in x
        .data
        .chunks_exact(h * w)
        .zip(out.chunks_exact_mut(oh * ow))
    {
        for y in 0..h {
            for xx in 0..w {
                let o = (if over_h { 0 } else { y }) * ow + if over_w { 0 } else { xx };
                dst[o] += plane[y * w + xx] as f64;
            }
        }
    }
    let data = out.into_iter().map(|v| (v / count) as f32).collect();
    let shape: Vec<usize> = if keepdim {
        vec![n, c, oh, ow]
    } else {
        let mut s = vec![n, c];
        if !over_h {
            s.push(h);
        }
        if !over_w {
            s.push(w);
        }
        s
    };
    FTensor::new(data, &shape)
}

/// `MaxPool2d(k)`: stride `k`, no padding, floor mode.
pub fn max_pool2d(x: &FTensor, k: usize) -> Result<FTensor> {
    let [n, c, h, w] = x.nchw("max_pool2d")?;
    let (oh, ow) = (h / k, w / k);
    let mut out = Vec::with_capacity(n * c * oh * ow);
    for plane in x.data.chunks_exact(h * w) {
        for y in 0..oh {
            for xx in 0..ow {
                let mut m = f32::NEG_INFINITY;
                for dy in 0..k {
                    for dx in 0..k {
                        m = m.max(plane[(y * k + dy) * w + xx * k + dx]);
                    }
                }
                out.push(m);
            }
        }
    }
    FTensor::new(out, &[n, c, oh, ow])
}

/// Elementwise sum, optionally followed by ReLU.
pub fn add(a: &FTensor, b: &FTensor, relu: bool) -> Result<FTensor> {
    if a.shape != b.shape {
        return Err(Error::Msg(format!(
            "float add: shapes {:?} and {:?} differ",
            a.shape, b.shape
        )));
    }
    let data = a
        .data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| if relu { (x + y).max(0.0) } else { x + y })
        .collect();
    FTensor::new(data, &a.shape)
}
