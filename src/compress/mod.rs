//! Compression and its accounting: complexity counting (torchinfo convention), BatchNorm folding,
//! RepConv re-parameterisation, structured channel pruning, post-training static INT8
//! quantization (`ptq`) with PyTorch's activation observers (`observer`) and tolerance tuning
//! (`tuning`), the integer INT8 engine and its kernels (`int8`), and half-precision deployment.
//!
//! Everything here works through `models::Net` (the forward-with-probe, the conv-unit visitor
//! and the lowering to an operator graph), never through model-specific code; the one exception
//! is structured pruning's channel groups, which follow each family's residual structure
//! (`prune::ChannelGroups::of`).

pub mod complexity;
pub mod fold;
pub mod half;
pub mod int8;
pub mod observer;
pub mod prune;
pub mod ptq;
pub mod reparam;
pub mod tuning;

pub use complexity::{count, CountOptions};
pub use fold::fold_bn;
pub use ptq::{quantize_int8, QuantizedModel};
pub use reparam::reparameterize;
