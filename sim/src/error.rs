//! Errors of the simulator. Every variant is fatal for the command that hit it and is caused
//! by user input (a scenario, platform, mapping, profile or model file); its message names the
//! file and the key or line concerned and what was expected.

use std::path::{Path, PathBuf};

/// An error while loading or simulating a scenario.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A file could not be read or written.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error (part of the message, so not also a `source()`).
        error: std::io::Error,
    },
    /// A file that a key of another file names cannot be read (a missing platform, mapping,
    /// calibration, template or profile): the message names the referring file and key.
    #[error("{path}: {key}: cannot read {}: {}", target.display(), os_message(error))]
    Referenced {
        /// The file whose key names `target`.
        path: PathBuf,
        /// The key, e.g. `[platform] file` or `device[1].template`.
        key: String,
        /// The file that cannot be read (resolved against `path`'s folder).
        target: PathBuf,
        /// The OS error (part of the message, so not also a `source()`).
        error: std::io::Error,
    },
    /// A TOML file does not parse (the message carries line and column).
    #[error("{path}: TOML syntax or type error: {message}")]
    Toml {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A key that its table does not have (a misspelling, or a key in the wrong table).
    #[error("{path}: {key}")]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The table, the key and the closest valid key.
        key: dicesim_plan::tomlfile::UnknownKey,
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
    #[error("{}", plan_message(path, error))]
    Plan {
        /// The scenario or mapping file that led to the model or mapping.
        path: PathBuf,
        /// The plan crate's error (part of the message, so not also a `source()`).
        error: dicesim_plan::PlanError,
    },
    /// A mapping cannot be evaluated on this platform (an unknown unit, a layer count that
    /// does not match the model).
    #[error("{0}")]
    Mapping(String),
    /// Two devices whose partitions exchange tensors have no network route between them.
    #[error("no network route from device `{from}` to device `{to}` in platform `{}`", platform.display())]
    NoRoute {
        /// Sending device.
        from: String,
        /// Receiving device.
        to: String,
        /// The platform file.
        platform: PathBuf,
    },
    /// The simulation ended with frames that never completed: partitions wait on each other.
    /// Cannot happen for plans built by the partitioner (they are acyclic); fatal.
    #[error(
        "the partitions wait on each other: some frames never complete ({incomplete} of {frames})"
    )]
    Deadlock {
        /// Frames that did not complete.
        incomplete: usize,
        /// Frames simulated.
        frames: usize,
    },
    /// Nothing to search or choose from: no compute unit, or no layer to map.
    #[error("{what}: the search space is empty (no compute unit or no layer to map)")]
    EmptySearchSpace {
        /// Who was searching (a strategy or `explore`).
        what: &'static str,
    },
}

impl SimError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, error: std::io::Error) -> Self {
        SimError::Io {
            path: path.to_path_buf(),
            error,
        }
    }

    /// This error, with a failure to read `target` itself restated as a [`SimError::Referenced`]
    /// naming `key` of `path`, the key that named it. Other errors (inside `target`, or of a
    /// file `target` names) already name their file and pass unchanged.
    pub(crate) fn named_by(self, path: &Path, key: &str, target: &Path) -> Self {
        match self {
            SimError::Io { path: p, error } if p == target => SimError::Referenced {
                path: path.to_path_buf(),
                key: key.to_string(),
                target: p,
                error,
            },
            SimError::Plan {
                error: dicesim_plan::PlanError::Io { path: p, error },
                ..
            } if p == target => SimError::Referenced {
                path: path.to_path_buf(),
                key: key.to_string(),
                target: p,
                error,
            },
            other => other,
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

/// The plan crate's message on one line, prefixed with `path` unless it already names it.
fn plan_message(path: &Path, error: &dicesim_plan::PlanError) -> String {
    let msg = error.to_string();
    let p = path.display().to_string();
    if msg.starts_with(&p) {
        msg
    } else {
        format!("{p}: {msg}")
    }
}

/// The OS's words for `error`, without the " (os error N)" suffix that adds nothing for a
/// user.
fn os_message(error: &std::io::Error) -> String {
    let msg = error.to_string();
    match msg.find(" (os error ") {
        Some(i) => msg[..i].to_string(),
        None => msg,
    }
}

/// Reads a whole text file, mapping errors to [`SimError::Io`].
pub(crate) fn read_text(path: &Path) -> Result<String, SimError> {
    std::fs::read_to_string(path).map_err(|e| SimError::io(path, e))
}

/// Parses TOML text, mapping an unknown key to [`SimError::UnknownKey`] (with the closest
/// valid key) and other errors to [`SimError::Toml`] with a one-line message that starts
/// with the line and column (the parser's own rendering spans several lines).
pub(crate) fn parse_toml<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
) -> Result<T, SimError> {
    use dicesim_plan::tomlfile::{explain, TomlProblem};
    toml::from_str(text).map_err(|e| match explain(text, &e) {
        TomlProblem::UnknownKey(key) => SimError::UnknownKey {
            path: path.to_path_buf(),
            key,
        },
        TomlProblem::Other(message) => SimError::Toml {
            path: path.to_path_buf(),
            message,
        },
    })
}
