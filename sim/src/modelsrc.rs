//! The plan crate's loaders used by scenarios.

use std::collections::BTreeMap;
use std::path::Path;

use dicesim_plan::graph::Graph;
use dicesim_plan::mapping::Mapping;
use dicesim_plan::PlanError;

/// A zoo model's graph.
pub(crate) fn zoo_graph(name: &str, input_size: usize) -> Result<Graph, PlanError> {
    dicesim_plan::model::zoo_graph(name, input_size)
}

/// An ONNX model's graph.
pub(crate) fn load_graph(
    path: &Path,
    input_shapes: &BTreeMap<String, Vec<usize>>,
) -> Result<Graph, PlanError> {
    dicesim_plan::model::load_graph(path, input_shapes)
}

/// A mapping file.
pub(crate) fn mapping_from_file(path: &Path, graph: &Graph) -> Result<Mapping, PlanError> {
    Mapping::from_file(path, graph)
}
