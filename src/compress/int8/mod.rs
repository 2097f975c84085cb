//! Integer INT8 inference kernels, bit-identical to PyTorch's quantized CPU operators on the
//! fbgemm engine (`torch.backends.quantized.engine = 'fbgemm'`, one intra-op thread).
//!
//! Activations are [`QTensor`]s: `u8` values in NCHW order with a per-tensor affine grid
//! ([`Affine`]). Weights are [`QWeight`]s: per-output-channel symmetric `i8` (zero point 0) with
//! an optional `f32` bias that is added during requantization, as fbgemm does.
//!
//! Some PyTorch kernels round differently depending on the memory format of their input (the
//! NCHW and channels-last paths of `avg_pool2d` are different code) and on which elements ATen
//! sends down its vectorised or its scalar loop (`add`, channels-last `avg_pool2d`). A
//! [`QTensor`] therefore carries the [`MemoryFormat`] PyTorch's tensor would have at the same
//! point (conv outputs are channels-last in PyTorch), and those kernels take the
//! [`AtenCapability`] the reference PyTorch ran with.
//!
//! The quantized `mean` ([`mean`]) is the exception to integer arithmetic: except on NCHW
//! tensors reduced over their innermost dims, PyTorch dequantizes, takes a float mean and
//! requantizes, so it replays ATen's float summation order.
//!
//! Accumulation is exact `i32` arithmetic. fbgemm's kernels pair `u8 x i8` products in `i16`
//! (`vpmaddubsw`, used by its depthwise kernels and its GEMM without AVX-512 VNNI), which
//! saturates when two large activations meet two large same-sign weights; with the fbgemm
//! qconfig's `reduce_range` activations (0..127) this cannot happen, and then the results agree.

// Every unsafe operation in its own `unsafe` block with its safety condition, in the SIMD
// kernels' `unsafe fn`s too; and an intrinsic the enabled target features do not cover does not
// compile silently there.
#![deny(unsafe_op_in_unsafe_fn)]

mod conv;
mod depthwise;
mod elementwise;
pub mod engine;
pub mod float;
mod gemm;
mod pointwise;
mod pool;
mod reduce;
mod requant;
mod taps;

pub use conv::{conv2d, conv2d_generic_with, conv2d_with, linear, linear_with, Conv2dConfig};
pub use elementwise::{add, add_broadcast, quantize, relu};
pub use gemm::Isa;
pub use pool::{adaptive_avg_pool2d_1x1, avg_pool2d, max_pool2d, Pool2dConfig};
pub use reduce::mean;

use crate::error::{Error, Result};

/// A per-tensor affine `quint8` grid: `real = scale * (q - zero_point)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine {
    pub scale: f32,
    pub zero_point: u8,
}

impl Affine {
    pub fn new(scale: f32, zero_point: u8) -> Self {
        Affine { scale, zero_point }
    }
}

/// The memory format PyTorch's tensor has at this point of the model. It does not change how
/// the data is stored here (always NCHW), only which PyTorch code path a kernel reproduces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryFormat {
    /// NCHW contiguous: `quantize_per_tensor` of an NCHW float tensor, `linear`.
    Contiguous,
    /// NHWC in memory: every quantized conv output.
    ChannelsLast,
}

/// An activation function fused into the op that produces a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fused {
    None,
    /// `ConvReLU2d`, `LinearReLU`, `add_relu`: clamps at the output zero point.
    Relu,
}

/// The vector width ATen's CPU kernels were dispatched with on the PyTorch side
/// (`torch.backends.cpu.get_cpu_capability()`, pinned by `ATEN_CPU_CAPABILITY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtenCapability {
    Avx2,
    Avx512,
}

impl AtenCapability {
    /// `Vectorized<c10::quint8>::size()`.
    fn quint8_lanes(self) -> usize {
        match self {
            AtenCapability::Avx2 => 32,
            AtenCapability::Avx512 => 64,
        }
    }

    /// From the name `torch.backends.cpu.get_cpu_capability()` prints.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "AVX2" => Some(AtenCapability::Avx2),
            "AVX512" => Some(AtenCapability::Avx512),
            _ => None,
        }
    }
}

/// A quantized activation: `u8` values in NCHW (or `[N, F]`) order on one affine grid.
#[derive(Debug, Clone, PartialEq)]
pub struct QTensor {
    data: Vec<u8>,
    shape: Vec<usize>,
    affine: Affine,
    format: MemoryFormat,
}

impl QTensor {
    /// `data` in NCHW order for a rank-4 `shape`, row-major otherwise.
    pub fn new(
        data: Vec<u8>,
        shape: &[usize],
        affine: Affine,
        format: MemoryFormat,
    ) -> Result<Self> {
        let n: usize = shape.iter().product();
        if data.len() != n {
            return Err(Error::Msg(format!(
                "int8 tensor: {} values for shape {shape:?}",
                data.len()
            )));
        }
        if format == MemoryFormat::ChannelsLast && shape.len() != 4 {
            return Err(Error::Msg(format!(
                "int8 tensor: channels-last needs rank 4, got shape {shape:?}"
            )));
        }
        Ok(QTensor {
            data,
            shape: shape.to_vec(),
            affine,
            format,
        })
    }

    pub fn data(&self) -> &[u8] {
        &self.data
    }
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    pub fn affine(&self) -> Affine {
        self.affine
    }
    pub fn format(&self) -> MemoryFormat {
        self.format
    }
    pub fn into_data(self) -> Vec<u8> {
        self.data
    }

    /// The same values, tagged with another PyTorch memory format (`.contiguous(...)`).
    pub fn with_format(mut self, format: MemoryFormat) -> Result<Self> {
        if format == MemoryFormat::ChannelsLast && self.shape.len() != 4 {
            return Err(Error::Msg(format!(
                "int8 tensor: channels-last needs rank 4, got shape {:?}",
                self.shape
            )));
        }
        self.format = format;
        Ok(self)
    }

    /// `[N, C, H, W]`, or an error naming `op`.
    fn nchw(&self, op: &str) -> Result<[usize; 4]> {
        match self.shape[..] {
            [n, c, h, w] => Ok([n, c, h, w]),
            _ => Err(Error::Msg(format!(
                "int8 {op}: expected an NCHW tensor, got shape {:?}",
                self.shape
            ))),
        }
    }

    /// PyTorch's `dequantize()` (fbgemm `Dequantize`): `scale * (q - zero_point)` in f32.
    pub fn dequantize(&self) -> Vec<f32> {
        let Affine { scale, zero_point } = self.affine;
        // The value of each of the 256 bytes, computed once.
        let table: [f32; 256] =
            std::array::from_fn(|q| scale * (q as i32 - zero_point as i32) as f32);
        self.data.iter().map(|&q| table[q as usize]).collect()
    }
}

/// Per-output-channel symmetric `qint8` weights of a conv (`[O, I/groups, KH, KW]`) or a linear
/// layer (`[O, I]`), with their float bias.
#[derive(Debug, Clone, PartialEq)]
pub struct QWeight {
    data: Vec<i8>,
    /// `[O, I/groups, KH, KW]`; a linear layer is `[O, I, 1, 1]`.
    shape: [usize; 4],
    scales: Vec<f32>,
    bias: Option<Vec<f32>>,
}

impl QWeight {
    /// `shape` is `[O, I/groups, KH, KW]` or `[O, I]`; one scale (and bias) per output channel.
    pub fn new(
        data: Vec<i8>,
        shape: &[usize],
        scales: Vec<f32>,
        bias: Option<Vec<f32>>,
    ) -> Result<Self> {
        let shape = match shape[..] {
            [o, i, kh, kw] => [o, i, kh, kw],
            [o, i] => [o, i, 1, 1],
            _ => {
                return Err(Error::Msg(format!(
                    "int8 weight: expected rank 2 or 4, got shape {shape:?}"
                )))
            }
        };
        let bad = |what: &str, len: usize| {
            Err(Error::Msg(format!(
                "int8 weight: {len} {what} for shape {shape:?}"
            )))
        };
        if data.len() != shape.iter().product::<usize>() || shape.contains(&0) {
            return bad("values", data.len());
        }
        if scales.len() != shape[0] {
            return bad("scales", scales.len());
        }
        if let Some(b) = &bias {
            if b.len() != shape[0] {
                return bad("biases", b.len());
            }
        }
        Ok(QWeight {
            data,
            shape,
            scales,
            bias,
        })
    }

    pub fn data(&self) -> &[i8] {
        &self.data
    }
    pub fn shape(&self) -> [usize; 4] {
        self.shape
    }
    pub fn scales(&self) -> &[f32] {
        &self.scales
    }
    pub fn bias(&self) -> Option<&[f32]> {
        self.bias.as_deref()
    }
}
