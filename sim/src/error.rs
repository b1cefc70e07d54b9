//! Errors of the simulator. Every variant is fatal for the command that hit it and is caused
//! by user input (a scenario, platform, mapping, profile or model file); its message names the
//! file and the key or line concerned and what was expected.

use std::path::{Path, PathBuf};

/// An error while loading or simulating a scenario.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A TOML file does not parse (the message carries line and column).
    #[error("{path}: TOML syntax or type error: {message}")]
    Toml {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A value is present but invalid, or a required key is missing.
    #[error("{path}: `{key}`: {expected}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The key (dotted path, e.g. `device[1].unit[0].gflops`), or `line N` in a CSV.
        key: String,
        /// What was expected.
        expected: String,
    },
    /// The model or the mapping was refused by the plan crate.
    #[error("{path}: {source}")]
    Plan {
        /// The scenario or mapping file that led to the model or mapping.
        path: PathBuf,
        /// The plan crate's error.
        source: dicesim_plan::PlanError,
    },
    /// A mapping cannot be evaluated on this platform (e.g. two devices with no route).
    #[error("{0}")]
    Mapping(String),
}

impl SimError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        SimError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// An invalid value at `key` of `path`.
    pub fn invalid(path: &Path, key: impl Into<String>, expected: impl Into<String>) -> Self {
        SimError::Invalid {
            path: path.to_path_buf(),
            key: key.into(),
            expected: expected.into(),
        }
    }
}

/// Reads a whole text file, mapping errors to [`SimError::Io`].
pub(crate) fn read_text(path: &Path) -> Result<String, SimError> {
    std::fs::read_to_string(path).map_err(|e| SimError::io(path, e))
}

/// Parses TOML text, mapping errors to [`SimError::Toml`] (whose message has the line).
pub(crate) fn parse_toml<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
) -> Result<T, SimError> {
    toml::from_str(text).map_err(|e| SimError::Toml {
        path: path.to_path_buf(),
        message: dicesim_plan::error::toml_error_line(text, &e),
    })
}
