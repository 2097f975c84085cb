//! ascrepro's results without its engine: the run record a report holds (`results.json`), the
//! tables and figures the HTML report shows, built as polars DataFrames and plotly plots, and
//! the loader a notebook uses. No libtorch: a notebook compiles this crate in minutes.
//!
//! ```no_run
//! use ascrepro_results::prelude::*;
//! let site = Site::open("reports")?; // every report, each checked against its SHA256SUMS
//! let devices = site.device_wise()?; // one row per system, one column per device
//! let report = site.report("cai2023_tfsepnet").expect("a report of that recipe");
//! let figure = report.published_vs_reproduced_figure();
//! # Ok::<(), ascrepro_results::Error>(())
//! ```
//!
//! The renderer of the HTML report (`ascrepro::report`) builds every table and figure with the
//! functions of [`frames`] and [`figures`], so what a notebook shows and what the report shows
//! come from the same code.

pub mod columns;
mod error;
pub mod figures;
pub mod files;
pub mod frames;
pub mod instance;
pub mod labels;
pub mod notebook;
pub mod published;
pub mod record;
pub mod report;
pub mod site;
pub mod sums;
pub mod table;

pub use error::{Error, IoContext, Result};
pub use report::Report;
pub use site::Site;
/// The versions this crate builds with, for notebooks that make their own frames and figures
/// (no second `:dep` to keep in step).
pub use {plotly, polars};

/// What a notebook's first cell imports: the loaders, the display trait, polars.
pub mod prelude {
    pub use crate::notebook::{Figure, NotebookDisplay};
    pub use crate::record::*;
    pub use crate::{Report, Site};
    pub use polars::prelude::*;
}
