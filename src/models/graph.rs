//! A network as the dataflow graph of the ops its eval-mode forward pass runs: what backends
//! other than the tch forward execute (the integer INT8 engine, calibration, simulated
//! quantization), and what post-training quantization reasons about (which outputs are
//! activation points, which ops keep their input's grid).
//!
//! Each block lowers itself (`lower`) next to its `forward`, BatchNorm folded into the conv
//! before it. [`Graph::forward`] runs the graph with tch; `tests/graph_lowering.rs` holds it
//! equal to `forward` for every architecture that lowers, so the two cannot drift apart.

use super::blocks::{res_norm, NormKind};
use crate::error::{Error, Result};
use tch::{Kind, Tensor};

/// The output of a node: its index in [`Graph::nodes`].
pub type ValueId = usize;

/// A conv (BatchNorm folded in) with an optional fused ReLU.
#[derive(Debug)]
pub struct ConvOp {
    /// `[out, in / groups, kh, kw]`.
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub stride: [i64; 2],
    pub padding: [i64; 2],
    pub groups: i64,
    pub relu: bool,
}

/// A fully connected layer `[out, in]` with an optional fused ReLU.
#[derive(Debug)]
pub struct LinearOp {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub relu: bool,
}

/// ResNorm or AdaResNorm: float-only (PyTorch has no quantized kernel for it).
#[derive(Debug)]
pub struct NormOp {
    pub kind: NormKind,
    /// rho, gamma, beta of AdaResNorm, each `[1, C, 1, 1]`.
    pub ada: Option<(Tensor, Tensor, Tensor)>,
}

/// One op of a lowered network.
#[derive(Debug)]
pub enum Op {
    /// The network's input `[B, 1, F, T]`.
    Input,
    Conv(ConvOp),
    Linear(LinearOp),
    Norm(NormOp),
    /// Elementwise sum of two values (a residual connection), optionally followed by ReLU.
    Add {
        relu: bool,
    },
    /// Concatenation along channels.
    Cat,
    /// Channels `start .. start + len`.
    Slice {
        start: i64,
        len: i64,
    },
    /// ShuffleNet channel shuffle with `groups` groups.
    ChannelShuffle {
        groups: i64,
    },
    /// `MaxPool2d(kernel)`: stride `kernel`, no padding.
    MaxPool {
        kernel: i64,
    },
    /// Mean over `dims` (of `[B, C, F, T]`).
    Mean {
        dims: Vec<i64>,
        keepdim: bool,
    },
}

impl Op {
    /// Whether PyTorch's eager static quantization quantizes this op's output afresh (an
    /// activation point, with its own observer): the input, every conv and linear layer, every
    /// float-only op, every residual add and concat. The other ops keep their input's grid.
    pub fn is_point(&self) -> bool {
        match self {
            Op::Input | Op::Conv(_) | Op::Linear(_) | Op::Norm(_) | Op::Add { .. } | Op::Cat => {
                true
            }
            Op::Slice { .. } | Op::ChannelShuffle { .. } | Op::MaxPool { .. } | Op::Mean { .. } => {
                false
            }
        }
    }

    /// What the op is, for reports and errors (`Conv2d 3x1 dw`, `Add`).
    pub fn describe(&self) -> String {
        match self {
            Op::Input => "Input".into(),
            Op::Conv(c) => {
                let s = c.weight.size();
                let dw = if c.groups > 1 && c.groups == s[0] {
                    " depthwise"
                } else if c.groups > 1 {
                    " grouped"
                } else {
                    ""
                };
                format!("Conv2d {}x{}{dw}", s[2], s[3])
            }
            Op::Linear(_) => "Linear".into(),
            Op::Norm(n) => n.kind.describe(),
            Op::Add { .. } => "Add".into(),
            Op::Cat => "Cat".into(),
            Op::Slice { .. } => "Slice".into(),
            Op::ChannelShuffle { .. } => "ChannelShuffle".into(),
            Op::MaxPool { .. } => "MaxPool2d".into(),
            Op::Mean { .. } => "Mean".into(),
        }
    }
}

/// A node: an op, its inputs (earlier values) and its name (an activation point's name for
/// points: the name the fake-quant probe and PyTorch's module path give it).
#[derive(Debug)]
pub struct Node {
    pub name: String,
    pub op: Op,
    pub inputs: Vec<ValueId>,
}

/// A lowered network: nodes in execution order, node 0 the input, the last node the output.
#[derive(Debug)]
pub struct Graph {
    nodes: Vec<Node>,
}

impl Default for Graph {
    fn default() -> Self {
        Self::new()
    }
}

impl Graph {
    /// A graph holding only the input node (`input`).
    pub fn new() -> Self {
        Graph {
            nodes: vec![Node {
                name: "input".into(),
                op: Op::Input,
                inputs: vec![],
            }],
        }
    }

    pub fn input(&self) -> ValueId {
        0
    }

    /// Appends a node; returns its value.
    pub fn push(&mut self, name: impl Into<String>, op: Op, inputs: &[ValueId]) -> ValueId {
        self.nodes.push(Node {
            name: name.into(),
            op,
            inputs: inputs.to_vec(),
        });
        self.nodes.len() - 1
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub fn nodes_mut(&mut self) -> &mut [Node] {
        &mut self.nodes
    }

    /// The value the network outputs (logits).
    pub fn output(&self) -> ValueId {
        self.nodes.len() - 1
    }

    /// The index of the last node reading each value (the output's is `len`), so interpreters
    /// can drop values as soon as they are dead.
    pub fn last_uses(&self) -> Vec<usize> {
        let mut last: Vec<usize> = (0..self.nodes.len()).collect();
        for (i, node) in self.nodes.iter().enumerate() {
            for &v in &node.inputs {
                last[v] = i;
            }
        }
        last[self.output()] = self.nodes.len();
        last
    }

    /// Checks that every node reads earlier values only and has as many inputs as its op takes.
    pub fn validate(&self) -> Result<()> {
        for (i, node) in self.nodes.iter().enumerate() {
            let arity = match node.op {
                Op::Input => 0,
                Op::Add { .. } => 2,
                Op::Cat => node.inputs.len().max(1),
                _ => 1,
            };
            if node.inputs.len() != arity || node.inputs.iter().any(|&v| v >= i) {
                return Err(Error::msg(format!(
                    "lowered graph: node {i} `{}` ({}) has inputs {:?}",
                    node.name,
                    node.op.describe(),
                    node.inputs
                )));
            }
        }
        Ok(())
    }

    /// The eval-mode forward pass of the graph with tch, `xs` `[B, 1, F, T]`.
    pub fn forward(&self, xs: &Tensor) -> Tensor {
        self.run(xs, &mut |_, _, ys| ys)
    }

    /// [`Graph::forward`] with `hook` called on every node's output (the tensor it returns is
    /// what later nodes read): calibration observes the points this way.
    pub fn run(
        &self,
        xs: &Tensor,
        hook: &mut dyn FnMut(ValueId, &Node, Tensor) -> Tensor,
    ) -> Tensor {
        tch::no_grad(|| {
            let last = self.last_uses();
            let mut values: Vec<Option<Tensor>> = (0..self.nodes.len()).map(|_| None).collect();
            for (i, node) in self.nodes.iter().enumerate() {
                let ys = {
                    let inputs: Vec<&Tensor> = node
                        .inputs
                        .iter()
                        .map(|&v| values[v].as_ref().expect("inputs precede their readers"))
                        .collect();
                    match node.op {
                        Op::Input => xs.shallow_clone(),
                        _ => eval_op(&node.op, &inputs),
                    }
                };
                values[i] = Some(hook(i, node, ys));
                for &v in &node.inputs {
                    if last[v] == i {
                        values[v] = None;
                    }
                }
            }
            values[self.output()]
                .take()
                .expect("the output is computed")
        })
    }
}

/// One op in float with tch. The input node has no computation (callers pass the input).
pub fn eval_op(op: &Op, inputs: &[&Tensor]) -> Tensor {
    let x = inputs[0];
    match op {
        Op::Input => x.shallow_clone(),
        Op::Conv(c) => {
            let ys = x.conv2d(
                &c.weight,
                c.bias.as_ref(),
                c.stride,
                c.padding,
                [1, 1],
                c.groups,
            );
            if c.relu {
                ys.relu()
            } else {
                ys
            }
        }
        Op::Linear(l) => {
            let ys = x.linear(&l.weight, l.bias.as_ref());
            if l.relu {
                ys.relu()
            } else {
                ys
            }
        }
        Op::Norm(n) => res_norm(x, n.kind, n.ada.as_ref()),
        Op::Add { relu } => {
            let ys = x + inputs[1];
            if *relu {
                ys.relu()
            } else {
                ys
            }
        }
        Op::Cat => Tensor::cat(inputs, 1),
        Op::Slice { start, len } => x.narrow(1, *start, *len),
        Op::ChannelShuffle { groups } => {
            let (b, c, f, t) = x.size4().expect("channel shuffle of a 4-d tensor");
            x.reshape([b, c / groups, *groups, f, t])
                .permute([0, 2, 1, 3, 4])
                .reshape([b, c, f, t])
        }
        Op::MaxPool { kernel } => {
            let k = *kernel;
            x.max_pool2d([k, k], [k, k], [0, 0], [1, 1], false)
        }
        Op::Mean { dims, keepdim } => x.mean_dim(dims.as_slice(), *keepdim, None::<Kind>),
    }
}

/// The error of lowering an architecture that has no lowering.
pub fn unsupported() -> Error {
    Error::msg(
        "the architecture has no operator-graph lowering, so it cannot run on the INT8 engine \
         (architectures that lower: tfsepnet23, tfsepnet64)",
    )
}
