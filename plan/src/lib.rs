//! dicesim plan: the model graph read from ONNX, shape inference and per-layer cost, the model
//! zoo, mappings of layers to compute units, partitions, and the ONNX sub-model writer.
//! The simulator, the search and real execution all read the same plan.
#![warn(missing_docs)]

pub mod attr;
pub mod coreset;
pub mod error;
pub mod graph;
pub mod horizontal;
pub mod mapping;
pub mod model;
pub mod onnx;
pub mod opclass;
pub mod ops;
pub mod partition;
pub mod split;
pub mod tensor;
pub mod tomlfile;
pub mod zoo;

pub use error::PlanError;
pub use graph::Graph;
pub use model::Model;
