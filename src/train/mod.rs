//! Training: the data module (feature tensors), teachers for distillation, optimiser, schedules,
//! losses and the loop.

pub mod adam;
pub mod checkpoint;
pub mod datamodule;
pub mod distill;
pub mod fit;
pub mod init;
pub mod loss;
mod parquet_guard;
pub mod pretrain;
pub mod schedule;

pub use adam::{Adam, WeightDecay};
pub use datamodule::FeatureSet;
pub use fit::{fit, fit_with, FitCallback, FitOptions, Fitted, NoCallback};
pub use loss::KdLoss;
pub use schedule::LrSchedule;
