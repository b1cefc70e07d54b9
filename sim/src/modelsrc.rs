//! The plan crate's loaders used by scenarios. Until `dicesim_plan::model` and
//! `Mapping::from_file` land, these say so in an error instead of failing to build.

use std::collections::BTreeMap;
use std::path::Path;

use dicesim_plan::graph::Graph;
use dicesim_plan::mapping::Mapping;
use dicesim_plan::PlanError;

fn missing(what: &str) -> PlanError {
    PlanError::Model(format!(
        "{what} is not available in this build of dicesim-plan yet"
    ))
}

/// A zoo model's graph.
pub(crate) fn zoo_graph(name: &str, input_size: usize) -> Result<Graph, PlanError> {
    let _ = (name, input_size);
    Err(missing("the model zoo"))
}

/// An ONNX model's graph.
pub(crate) fn load_graph(
    path: &Path,
    input_shapes: &BTreeMap<String, Vec<usize>>,
) -> Result<Graph, PlanError> {
    let _ = (path, input_shapes);
    Err(missing("ONNX loading"))
}

/// A mapping file.
pub(crate) fn mapping_from_file(path: &Path, graph: &Graph) -> Result<Mapping, PlanError> {
    let _ = (path, graph);
    Err(missing("mapping files"))
}
