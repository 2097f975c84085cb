//! Compression and its accounting: complexity counting (torchinfo convention), BatchNorm folding,
//! RepConv re-parameterisation, and post-training static INT8 quantization (simulated).
//!
//! Everything here works through `models::Net` (the forward-with-probe and the conv-unit
//! visitor), never through model-specific code.

pub mod complexity;
pub mod fold;
pub mod int8;
pub mod quantize;
pub mod reparam;

pub use complexity::{count, CountOptions};
pub use fold::fold_bn;
pub use quantize::{quantize_int8, Int8Model};
pub use reparam::reparameterize;
