//! Errors of the plan crate. Every variant is a user-facing, fatal-for-the-command error
//! whose message names the file, node, layer or key concerned and what was expected.

use std::path::{Path, PathBuf};

/// An error while reading, analysing, mapping or splitting a model.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A file could not be read or written.
    // The OS error is part of the message, not a `source`: an error chain printed in full
    // (as the CLI does) would otherwise say it twice.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// The file is not a (complete) ONNX model.
    #[error("{path}: not an ONNX model: {reason}")]
    NotOnnx {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The model is ONNX but something in it is invalid or unsupported.
    #[error("{0}")]
    Model(String),
    /// A mapping is invalid.
    #[error("{0}")]
    Mapping(String),
}

impl PlanError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, error: std::io::Error) -> Self {
        PlanError::Io {
            path: path.to_path_buf(),
            error,
        }
    }
}

/// A TOML parse error as one line: `line L, column C: message`.
pub fn toml_error_line(text: &str, e: &toml::de::Error) -> String {
    let msg = e.message().trim().replace('\n', " ");
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let col = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
            format!("line {line}, column {col}: {msg}")
        }
        None => msg,
    }
}
