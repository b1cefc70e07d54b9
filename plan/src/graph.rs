//! The model graph: layers (ONNX nodes that compute) in a topological order, with shapes and
//! per-layer cost. Built from an ONNX model by [`Graph::from_model`]; constant-producing nodes
//! (Constant, and Shape/Gather/Cast/... chains over static shapes) are folded away and do not
//! appear as layers.

use serde::Serialize;

/// One tensor of the graph (an activation, a graph input or output; not a weight).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TensorInfo {
    /// Tensor name as in the ONNX graph.
    pub name: String,
    /// Static shape.
    pub shape: Vec<usize>,
    /// ONNX element type (see [`crate::onnx::dtype`]).
    pub dtype: i32,
    /// Size in bytes.
    pub bytes: u64,
    /// Index of the producing layer; `None` for a graph input.
    pub producer: Option<usize>,
    /// Indices of the consuming layers, ascending.
    pub consumers: Vec<usize>,
}

/// One layer (a computing ONNX node).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Layer {
    /// Node name (generated as `<op>_<index>` when the ONNX node has none; unique).
    pub name: String,
    /// ONNX operator type.
    pub op: String,
    /// Operator class (what the device models give a throughput and thread scaling).
    pub class: crate::opclass::OpClass,
    /// Activation tensors read (graph inputs or other layers' outputs; weights excluded).
    pub inputs: Vec<String>,
    /// Tensors written.
    pub outputs: Vec<String>,
    /// Shape of the first output.
    pub output_shape: Vec<usize>,
    /// Floating-point operations, a multiply-add counted as 2.
    pub flops: u64,
    /// Bytes of the weights (initializers and folded constants) this layer reads.
    pub params_bytes: u64,
    /// Bytes of all outputs.
    pub output_bytes: u64,
    /// Bytes of all activation inputs.
    pub input_bytes: u64,
}

/// The analysed model graph.
#[derive(Debug, Clone, Serialize)]
pub struct Graph {
    /// Model name (the graph name, or the file stem).
    pub name: String,
    /// Layers in topological order; mapping ranges refer to this order.
    pub layers: Vec<Layer>,
    /// Activation tensors by name.
    pub tensors: std::collections::BTreeMap<String, TensorInfo>,
    /// Graph input tensor names (weights excluded).
    pub inputs: Vec<String>,
    /// Graph output tensor names.
    pub outputs: Vec<String>,
}

impl Graph {
    /// Sum of the layers' FLOPs (saturating, as each layer's count does).
    pub fn total_flops(&self) -> u64 {
        (self.layers.iter()).fold(0u64, |t, l| t.saturating_add(l.flops))
    }
    /// Sum of the layers' weight bytes (saturating).
    pub fn total_params_bytes(&self) -> u64 {
        (self.layers.iter()).fold(0u64, |t, l| t.saturating_add(l.params_bytes))
    }
    /// Index of the layer called `name`.
    pub fn layer_index(&self, name: &str) -> Option<usize> {
        self.layers.iter().position(|l| l.name == name)
    }
}
