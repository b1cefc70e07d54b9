//! dicesim device fitting (`dicesim device fit`): a device file's unit figures (the
//! operator-class compute model of `sim::compute`) fitted to measured whole-model latencies
//! of that board, with leave-one-model-out cross-validation.
//!
//! - [`measured`]: the rows (CSV, the columns of the shared ncnn table);
//! - [`base`]: the base device file (what measurements do not determine);
//! - [`model`]: which figures a fit moves, and a unit's prediction of a row;
//! - [`fit`]: the optimisation;
//! - [`board`]: one board's fit, unit by unit, with cross-validation;
//! - [`devicefile`]: the fitted device file, with its rows and errors as comments;
//! - [`library`]: which device file of a folder a board's rows describe;
//! - [`check`]: device files against measured rows, simulated as `dicesim run` does.
#![warn(missing_docs)]

pub mod base;
pub mod board;
pub mod check;
pub mod devicefile;
pub mod fit;
pub mod library;
pub mod measured;
pub mod model;

use std::path::{Path, PathBuf};

/// What can go wrong in a fit.
#[derive(Debug, thiserror::Error)]
pub enum FitError {
    /// A file is unreadable or malformed; the message says where and what was expected.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The rows do not allow a fit (no rows for the board, an unknown model).
    #[error("{0}")]
    Rows(String),
    /// The optimiser failed.
    #[error("fit failed: {0}")]
    Fit(String),
}

impl FitError {
    /// An error in `path`.
    pub fn file(path: &Path, message: impl Into<String>) -> FitError {
        FitError::File {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}
