//! Reading node attributes with errors that name the node.

use crate::onnx::{AttributeProto, NodeProto};

/// Attribute access for one node.
pub struct Attrs<'a> {
    node: &'a NodeProto,
    label: &'a str,
}

impl<'a> Attrs<'a> {
    /// Wraps `node`; `label` names it in errors (e.g. `node 'conv1' (Conv)`).
    pub fn new(node: &'a NodeProto, label: &'a str) -> Self {
        Attrs { node, label }
    }

    fn get(&self, name: &str) -> Option<&'a AttributeProto> {
        self.node
            .attribute
            .iter()
            .find(|a| a.name.as_deref() == Some(name))
    }

    /// Whether the attribute is present.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// An integer attribute or `default`.
    pub fn int(&self, name: &str, default: i64) -> i64 {
        self.get(name).and_then(|a| a.i).unwrap_or(default)
    }

    /// A float attribute or `default`.
    pub fn float(&self, name: &str, default: f32) -> f32 {
        self.get(name).and_then(|a| a.f).unwrap_or(default)
    }

    /// An integer-list attribute, `None` when absent.
    pub fn ints(&self, name: &str) -> Option<Vec<i64>> {
        self.get(name).map(|a| a.ints.clone())
    }

    /// A float-list attribute, `None` when absent.
    pub fn floats(&self, name: &str) -> Option<Vec<f32>> {
        self.get(name).map(|a| a.floats.clone())
    }

    /// A string attribute or `default`.
    pub fn string(&self, name: &str, default: &str) -> String {
        self.get(name)
            .and_then(|a| a.s.as_ref())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .unwrap_or_else(|| default.to_string())
    }

    /// A tensor attribute.
    pub fn tensor(&self, name: &str) -> Option<&'a crate::onnx::TensorProto> {
        self.get(name).and_then(|a| a.t.as_ref())
    }

    /// An error message about this node.
    pub fn err(&self, what: impl std::fmt::Display) -> String {
        format!("{}: {}", self.label, what)
    }
}
