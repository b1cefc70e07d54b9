//! Mappings: which compute unit (`"<device>.<unit>"`) runs each layer.
//!
//! Read from the mapping TOML of the contract (`[units]` with layer lists or inclusive
//! `{ from, to }` ranges in topological order) or from an AutoDiCE `mapping.json`
//! (`{"host_res": [layers]}`), validated against the graph (and the platform's units).

use serde::Serialize;

/// A complete assignment of layers to compute units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mapping {
    /// Distinct unit names, `"<device>.<unit>"`, in order of first use.
    pub units: Vec<String>,
    /// For each layer (graph topological order), an index into `units`.
    pub layer_unit: Vec<usize>,
}
