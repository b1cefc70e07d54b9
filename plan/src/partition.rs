//! Partitions: the sub-graphs that a mapping induces, one per (unit, connected piece), split
//! further where partitions would wait on each other in a cycle; and the edges between them.

use serde::Serialize;

/// A tensor crossing a partition boundary (or a graph input/output).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PortTensor {
    /// Tensor name.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Size in bytes.
    pub bytes: u64,
}

/// One partition: layers that run as one sub-model on one compute unit.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Partition {
    /// Index in [`Plan::partitions`] (which is a topological order of partitions).
    pub id: usize,
    /// Compute unit, `"<device>.<unit>"`.
    pub unit: String,
    /// Layer indices into [`crate::graph::Graph::layers`], ascending (topological).
    pub layers: Vec<usize>,
    /// Tensors it reads from outside (graph inputs or other partitions' outputs).
    pub inputs: Vec<PortTensor>,
    /// Tensors it produces that are read outside it (by other partitions or as graph outputs).
    pub outputs: Vec<PortTensor>,
}

/// Producer -> consumer: one tensor sent from one partition to another.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Edge {
    /// Producing partition id.
    pub from: usize,
    /// Consuming partition id.
    pub to: usize,
    /// Tensor name.
    pub tensor: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// Partitions of a mapped graph, their edges, in a topological order.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Partitions in topological order.
    pub partitions: Vec<Partition>,
    /// Edges between partitions, sorted by (from, to, tensor).
    pub edges: Vec<Edge>,
    /// Graph inputs: (tensor, consuming partition ids).
    pub graph_inputs: Vec<(PortTensor, Vec<usize>)>,
    /// Graph outputs: (tensor, producing partition id).
    pub graph_outputs: Vec<(PortTensor, usize)>,
}
