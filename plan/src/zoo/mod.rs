//! Model zoo (placeholder until the zoo lands).
use crate::error::PlanError;
/// Zoo names.
pub fn names() -> &'static [&'static str] {
    &[]
}
/// Default input size.
pub fn default_input_size(_name: &str) -> Option<usize> {
    None
}
/// Builds a zoo model.
pub fn build(name: &str, _input_size: usize) -> Result<crate::onnx::ModelProto, PlanError> {
    Err(PlanError::Model(format!("unknown zoo model '{name}'")))
}
