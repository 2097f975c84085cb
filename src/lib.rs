//! ascrepro: regenerates the published results of low-complexity acoustic scene classification
//! systems (DCASE task 1 technical reports) from declarative recipes.

pub mod audio;
pub mod cli;
pub mod compress;
pub mod data;
pub mod error;
pub mod eval;
pub mod fsio;
pub mod models;
pub mod panic_guard;
pub mod recipe;
pub mod report;
pub mod runner;
pub mod train;
pub mod yaml_nesting;

pub use error::{Error, Result};
