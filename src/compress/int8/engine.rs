//! The integer inference engine: a quantized network as a [`Program`] of steps over the
//! kernels of this module, run on `u8` activations with `i8` weights and `i32` accumulation.
//!
//! Every value is either quantized ([`QTensor`]) or float ([`FTensor`]). A step whose output is
//! an activation point quantizes it on the point's grid, unless tolerance tuning left the point
//! in float; ops that keep their input's grid (slice, shuffle, max-pool, mean) stay in their
//! input's domain. An integer op reading a float value quantizes it on the value's grid first,
//! and a float op reading a quantized value dequantizes it: what PyTorch's QuantStub/DeQuantStub
//! pairs around a float-only op do.

use super::float::{self, FTensor, FloatConv, FloatLinear, FloatNorm};
use super::{
    add, add_broadcast, conv2d_with, linear_with, max_pool2d, quantize, Affine, AtenCapability,
    Conv2dConfig, Fused, Isa, MemoryFormat, Pool2dConfig, QTensor, QWeight,
};
use crate::error::{Error, Result};
use std::borrow::Cow;

/// What one step computes.
#[derive(Debug, Clone)]
pub enum Kernel {
    /// The network's input, quantized on the step's grid (PyTorch's QuantStub) unless float.
    Input,
    QConv {
        weight: QWeight,
        config: Conv2dConfig,
        fused: Fused,
    },
    FConv(FloatConv),
    QLinear {
        weight: QWeight,
        fused: Fused,
    },
    FLinear(FloatLinear),
    /// Always float; its output is quantized when the step is.
    Norm(FloatNorm),
    Add {
        relu: bool,
    },
    Cat,
    Slice {
        start: usize,
        len: usize,
    },
    ChannelShuffle {
        groups: usize,
    },
    MaxPool {
        kernel: usize,
    },
    Mean {
        dims: Vec<usize>,
        keepdim: bool,
    },
}

impl Kernel {
    /// Whether the kernel keeps its input's grid (and domain) instead of producing a new value.
    fn keeps_grid(&self) -> bool {
        matches!(
            self,
            Kernel::Slice { .. }
                | Kernel::ChannelShuffle { .. }
                | Kernel::MaxPool { .. }
                | Kernel::Mean { .. }
        )
    }
}

/// One step: a kernel, its inputs (earlier steps), the grid of its output and whether that
/// output is quantized (`false`: the point stays in float).
#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    pub kernel: Kernel,
    pub inputs: Vec<usize>,
    /// The output's grid; steps that keep their input's grid get it from the input.
    pub grid: Option<Affine>,
    pub quantized: bool,
}

/// A value flowing between steps.
#[derive(Debug, Clone)]
pub enum Value {
    Q(QTensor),
    F(FTensor),
}

impl Value {
    pub fn shape(&self) -> &[usize] {
        match self {
            Value::Q(q) => q.shape(),
            Value::F(f) => &f.shape,
        }
    }

    /// The values in float (dequantized if quantized).
    pub fn to_float(&self) -> FTensor {
        match self {
            Value::Q(q) => FTensor {
                data: q.dequantize(),
                shape: q.shape().to_vec(),
            },
            Value::F(f) => f.clone(),
        }
    }
}

/// A compiled quantized network.
#[derive(Debug, Clone)]
pub struct Program {
    steps: Vec<Step>,
    grids: Vec<Affine>,
    last_use: Vec<usize>,
    isa: Isa,
    capability: AtenCapability,
}

impl Program {
    /// Checks the steps (inputs precede their readers, every point has a grid) and resolves
    /// inherited grids. `capability` picks which ATen loop the `add` kernel reproduces.
    pub fn new(steps: Vec<Step>, isa: Isa, capability: AtenCapability) -> Result<Self> {
        if !isa.is_available() {
            return Err(Error::msg(format!("int8 engine: {isa:?} is not available")));
        }
        let mut grids: Vec<Affine> = Vec::with_capacity(steps.len());
        for (i, step) in steps.iter().enumerate() {
            let arity = match step.kernel {
                Kernel::Input => 0,
                Kernel::Add { .. } => 2,
                Kernel::Cat => step.inputs.len().max(1),
                _ => 1,
            };
            if step.inputs.len() != arity || step.inputs.iter().any(|&v| v >= i) {
                return Err(Error::msg(format!(
                    "int8 engine: step {i} `{}` has inputs {:?}",
                    step.name, step.inputs
                )));
            }
            let grid = match (step.grid, step.kernel.keeps_grid()) {
                (Some(g), _) => g,
                (None, true) => grids[step.inputs[0]],
                (None, false) => {
                    return Err(Error::msg(format!(
                        "int8 engine: step `{}` produces a new value but has no grid",
                        step.name
                    )))
                }
            };
            grids.push(grid);
        }
        if steps.is_empty() {
            return Err(Error::msg("int8 engine: an empty program"));
        }
        let mut last_use: Vec<usize> = (0..steps.len()).collect();
        for (i, step) in steps.iter().enumerate() {
            for &v in &step.inputs {
                last_use[v] = i;
            }
        }
        last_use[steps.len() - 1] = steps.len();
        Ok(Program {
            steps,
            grids,
            last_use,
            isa,
            capability,
        })
    }

    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The logits `[N, classes]` (row-major, dequantized) of the input `[N, 1, F, T]`.
    pub fn run(&self, input: &[f32], shape: &[usize]) -> Result<Vec<f32>> {
        let out = self.run_traced(input, shape, &mut |_, v| v)?;
        Ok(out.to_float().data)
    }

    /// [`Program::run`] with `trace` called on every step's output as it is computed; what it
    /// returns is what later steps read (tests substitute a reference's values this way, to
    /// check each step on the reference's inputs). Returns the output value.
    pub fn run_traced(
        &self,
        input: &[f32],
        shape: &[usize],
        trace: &mut dyn FnMut(usize, Value) -> Value,
    ) -> Result<Value> {
        let mut values: Vec<Option<Value>> = vec![None; self.steps.len()];
        for (i, step) in self.steps.iter().enumerate() {
            let v = {
                let ins: Vec<&Value> = step
                    .inputs
                    .iter()
                    .map(|&j| values[j].as_ref().expect("inputs precede their readers"))
                    .collect();
                self.execute(i, step, &ins, input, shape)
                    .map_err(|e| Error::msg(format!("int8 engine, step `{}`: {e}", step.name)))?
            };
            values[i] = Some(trace(i, v));
            for &j in &step.inputs {
                if self.last_use[j] == i {
                    values[j] = None;
                }
            }
        }
        values
            .pop()
            .flatten()
            .ok_or_else(|| Error::msg("int8 engine: no output"))
    }

    /// Input `k` of `step` quantized (on its own grid if it is float).
    fn q<'v>(&self, step: &Step, ins: &[&'v Value], k: usize) -> Result<Cow<'v, QTensor>> {
        match ins[k] {
            Value::Q(q) => Ok(Cow::Borrowed(q)),
            Value::F(f) => Ok(Cow::Owned(quantize(
                &f.data,
                &f.shape,
                self.grids[step.inputs[k]],
            )?)),
        }
    }

    fn execute(
        &self,
        i: usize,
        step: &Step,
        ins: &[&Value],
        input: &[f32],
        shape: &[usize],
    ) -> Result<Value> {
        let grid = self.grids[i];
        // Float results of a point become quantized when the point is.
        let finish = |f: FTensor| -> Result<Value> {
            if step.quantized {
                Ok(Value::Q(quantize(&f.data, &f.shape, grid)?))
            } else {
                Ok(Value::F(f))
            }
        };
        let fused = |relu: bool| if relu { Fused::Relu } else { Fused::None };
        match &step.kernel {
            Kernel::Input => finish(FTensor::new(input.to_vec(), shape)?),
            Kernel::QConv {
                weight,
                config,
                fused,
            } => {
                let x = self.q(step, ins, 0)?;
                let y = conv2d_with(self.isa, &x, weight, config, grid, *fused)?;
                Ok(Value::Q(y))
            }
            Kernel::FConv(conv) => finish(conv.forward(&ins[0].to_float())?),
            Kernel::QLinear { weight, fused } => {
                let x = self.q(step, ins, 0)?;
                Ok(Value::Q(linear_with(self.isa, &x, weight, grid, *fused)?))
            }
            Kernel::FLinear(lin) => finish(lin.forward(&ins[0].to_float())?),
            Kernel::Norm(norm) => finish(norm.forward(&ins[0].to_float())?),
            Kernel::Add { relu } if step.quantized => {
                let (a, b) = (self.q(step, ins, 0)?, self.q(step, ins, 1)?);
                if a.shape() == b.shape() {
                    return Ok(Value::Q(add(&a, &b, grid, fused(*relu), self.capability)?));
                }
                // The output takes `a`'s format, or, when `a` is the broadcast one, the
                // format opposite `b`'s (the strided view ATen's scalar loop walks).
                let flip = |f: MemoryFormat| match f {
                    MemoryFormat::Contiguous => MemoryFormat::ChannelsLast,
                    MemoryFormat::ChannelsLast => MemoryFormat::Contiguous,
                };
                let shape = broadcast_shape(a.shape(), b.shape())?;
                let format = if a.shape() == shape.as_slice() {
                    a.format()
                } else {
                    flip(b.format())
                };
                Ok(Value::Q(add_broadcast(&a, &b, grid, fused(*relu), format)?))
            }
            Kernel::Add { relu } => {
                let (a, b) = (ins[0].to_float(), ins[1].to_float());
                let shape = broadcast_shape(&a.shape, &b.shape)?;
                let a = FTensor::new(broadcast(&a.data, &a.shape, &shape)?, &shape)?;
                let b = FTensor::new(broadcast(&b.data, &b.shape, &shape)?, &shape)?;
                Ok(Value::F(float::add(&a, &b, *relu)?))
            }
            Kernel::Cat if step.quantized => {
                // Quantized cat: each input dequantized and quantized onto the output grid, a
                // function of the byte alone, so one 256-entry table per input.
                let parts = (0..ins.len())
                    .map(|k| {
                        let q = self.q(step, ins, k)?;
                        let table = requantize_table(q.affine(), grid);
                        let data: Vec<u8> = q.data().iter().map(|&v| table[v as usize]).collect();
                        Ok((data, q.shape().to_vec()))
                    })
                    .collect::<Result<Vec<_>>>()?;
                let (data, shape) = cat(&parts)?;
                Ok(Value::Q(QTensor::new(
                    data,
                    &shape,
                    grid,
                    MemoryFormat::Contiguous,
                )?))
            }
            Kernel::Cat => {
                let parts: Vec<(Vec<f32>, Vec<usize>)> = ins
                    .iter()
                    .map(|v| {
                        let f = v.to_float();
                        (f.data, f.shape)
                    })
                    .collect();
                let (data, shape) = cat(&parts)?;
                Ok(Value::F(FTensor::new(data, &shape)?))
            }
            Kernel::Slice { start, len } => match ins[0] {
                Value::Q(q) => {
                    let (data, shape) = slice_channels(q.data(), q.shape(), *start, *len)?;
                    Ok(Value::Q(QTensor::new(
                        data,
                        &shape,
                        q.affine(),
                        q.format(),
                    )?))
                }
                Value::F(f) => {
                    let (data, shape) = slice_channels(&f.data, &f.shape, *start, *len)?;
                    Ok(Value::F(FTensor::new(data, &shape)?))
                }
            },
            Kernel::ChannelShuffle { groups } => match ins[0] {
                Value::Q(q) => {
                    let data = shuffle_channels(q.data(), q.shape(), *groups)?;
                    Ok(Value::Q(QTensor::new(
                        data,
                        q.shape(),
                        q.affine(),
                        q.format(),
                    )?))
                }
                Value::F(f) => {
                    let data = shuffle_channels(&f.data, &f.shape, *groups)?;
                    Ok(Value::F(FTensor::new(data, &f.shape)?))
                }
            },
            Kernel::MaxPool { kernel } => match ins[0] {
                Value::Q(q) => Ok(Value::Q(max_pool2d(q, &Pool2dConfig::new([*kernel; 2]))?)),
                Value::F(f) => Ok(Value::F(float::max_pool2d(f, *kernel)?)),
            },
            Kernel::Mean { dims, keepdim } => match ins[0] {
                Value::Q(q) => {
                    let dims: Vec<isize> = dims.iter().map(|&d| d as isize).collect();
                    Ok(Value::Q(super::mean(q, &dims, *keepdim)?))
                }
                Value::F(f) => Ok(Value::F(float::mean(f, dims, *keepdim)?)),
            },
        }
    }
}

fn nchw(shape: &[usize], op: &str) -> Result<[usize; 4]> {
    match shape[..] {
        [n, c, h, w] => Ok([n, c, h, w]),
        _ => Err(Error::msg(format!("{op}: expected NCHW, got {shape:?}"))),
    }
}

/// The shape two NCHW operands broadcast to (dims of size 1 stretch).
fn broadcast_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    if a.len() != b.len() {
        return Err(Error::msg(format!(
            "add: shapes {a:?} and {b:?} differ in rank"
        )));
    }
    a.iter()
        .zip(b)
        .map(|(&x, &y)| match (x, y) {
            _ if x == y => Ok(x),
            (1, y) => Ok(y),
            (x, 1) => Ok(x),
            _ => Err(Error::msg(format!(
                "add: shapes {a:?} and {b:?} do not broadcast"
            ))),
        })
        .collect()
}

/// `data` of NCHW `shape` repeated along its size-1 dims to `target`.
fn broadcast<T: Copy>(data: &[T], shape: &[usize], target: &[usize]) -> Result<Vec<T>> {
    if shape == target {
        return Ok(data.to_vec());
    }
    let ([n, c, h, w], [tn, tc, th, tw]) = (nchw(shape, "add")?, nchw(target, "add")?);
    let pick = |size: usize, i: usize| if size == 1 { 0 } else { i };
    let mut out = Vec::with_capacity(tn * tc * th * tw);
    for b in 0..tn {
        for ch in 0..tc {
            let plane = &data[(pick(n, b) * c + pick(c, ch)) * h * w..][..h * w];
            for y in 0..th {
                let row = &plane[pick(h, y) * w..][..w];
                if w == tw {
                    out.extend_from_slice(row);
                } else {
                    out.extend(std::iter::repeat_n(row[0], tw));
                }
            }
        }
    }
    Ok(out)
}

/// Output byte of every input byte when a tensor on `from` is requantized onto `to`
/// (`dequantize` then `quantize`, as [`QTensor::dequantize`] and [`quantize`] compute them).
fn requantize_table(from: Affine, to: Affine) -> [u8; 256] {
    let inverse = 1.0 / to.scale;
    std::array::from_fn(|q| {
        let x = from.scale * (q as i32 - from.zero_point as i32) as f32;
        super::requant::quantize_with_inverse(x, inverse, to.zero_point)
    })
}

fn slice_channels<T: Copy>(
    data: &[T],
    shape: &[usize],
    start: usize,
    len: usize,
) -> Result<(Vec<T>, Vec<usize>)> {
    let [n, c, h, w] = nchw(shape, "slice")?;
    if start + len > c {
        return Err(Error::msg(format!(
            "slice: channels {start}..{} of {c}",
            start + len
        )));
    }
    let plane = h * w;
    let mut out = Vec::with_capacity(n * len * plane);
    for item in data.chunks_exact(c * plane) {
        out.extend_from_slice(&item[start * plane..(start + len) * plane]);
    }
    Ok((out, vec![n, len, h, w]))
}

fn shuffle_channels<T: Copy>(data: &[T], shape: &[usize], groups: usize) -> Result<Vec<T>> {
    let [_, c, h, w] = nchw(shape, "channel shuffle")?;
    if groups == 0 || c % groups != 0 {
        return Err(Error::msg(format!(
            "channel shuffle: {c} channels in {groups} groups"
        )));
    }
    let plane = h * w;
    let per = c / groups;
    let mut out = Vec::with_capacity(data.len());
    for item in data.chunks_exact(c * plane) {
        // Output channel j * per + i reads input channel i * groups + j.
        for j in 0..groups {
            for i in 0..per {
                let src = i * groups + j;
                out.extend_from_slice(&item[src * plane..(src + 1) * plane]);
            }
        }
    }
    Ok(out)
}

/// Concatenation along channels of NCHW parts (values and shapes).
fn cat<T: Copy>(parts: &[(Vec<T>, Vec<usize>)]) -> Result<(Vec<T>, Vec<usize>)> {
    let [n, _, h, w] = nchw(&parts[0].1, "cat")?;
    let mut channels = 0;
    for (_, shape) in parts {
        let [pn, pc, ph, pw] = nchw(shape, "cat")?;
        if (pn, ph, pw) != (n, h, w) {
            return Err(Error::msg(format!(
                "cat: shapes {:?} and {shape:?} differ outside channels",
                parts[0].1
            )));
        }
        channels += pc;
    }
    let mut out = Vec::with_capacity(n * channels * h * w);
    for b in 0..n {
        for (data, shape) in parts {
            let size = shape[1] * h * w;
            out.extend_from_slice(&data[b * size..(b + 1) * size]);
        }
    }
    Ok((out, vec![n, channels, h, w]))
}
