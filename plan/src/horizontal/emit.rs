//! The nodes and constants a horizontal split adds to the model: Slice (scatter, crop),
//! Concat and Sum (gather), copies of split layers, and weights cut along one axis. Every
//! node records where it runs: its unit and partition group ([`crate::mapping::Mapping::groups`]).

use crate::onnx::attrs::{int, ints};
use crate::onnx::{dtype, AttributeProto, NodeProto, TensorProto};
use crate::tensor::Const;
use bytes::Bytes;
use std::collections::{HashMap, HashSet};

/// Where a node runs: its unit and its partition group.
#[derive(Debug, Clone, Copy)]
pub(crate) struct At<'a> {
    pub unit: &'a str,
    pub group: u32,
}

/// Collects the new nodes and initializers of a rewrite.
pub(crate) struct Emitter {
    opset: i64,
    /// Nodes, in the order emitted (a topological order within one split).
    pub nodes: Vec<NodeProto>,
    /// Unit and partition group of each emitted node, by node name.
    pub units: HashMap<String, (String, u32)>,
    /// The last group handed out (group 0 is the layers outside splits).
    last_group: u32,
    /// New initializers.
    pub inits: Vec<TensorProto>,
    /// Names taken (tensors and nodes of the model, and those emitted).
    taken: HashSet<String>,
}

impl Emitter {
    /// An emitter for a model of default-domain opset `opset` whose names are `taken`.
    pub fn new(opset: i64, taken: HashSet<String>) -> Emitter {
        Emitter {
            opset,
            nodes: Vec::new(),
            units: HashMap::new(),
            last_group: 0,
            inits: Vec::new(),
            taken,
        }
    }

    /// `base`, or `base_1`, `base_2`, ... when taken; the name is then taken.
    pub fn fresh(&mut self, base: &str) -> String {
        let name = if self.taken.contains(base) {
            (1..)
                .map(|i| format!("{base}_{i}"))
                .find(|n| !self.taken.contains(n))
                .expect("an unbounded range always yields a free name")
        } else {
            base.to_string()
        };
        self.taken.insert(name.clone());
        name
    }

    /// A partition group of its own.
    pub fn new_group(&mut self) -> u32 {
        self.last_group += 1;
        self.last_group
    }

    /// Adds `node` (named by the caller, fresh) to run `at`.
    pub fn push(&mut self, node: NodeProto, at: At) {
        let name = node.name.clone().unwrap_or_default();
        self.units.insert(name, (at.unit.to_string(), at.group));
        self.nodes.push(node);
    }

    /// Adds a node `op` named fresh from `name` reading `inputs`, writing `out`.
    pub fn op(
        &mut self,
        name: &str,
        op: &str,
        inputs: Vec<String>,
        out: &str,
        attrs: Vec<AttributeProto>,
        at: At,
    ) {
        let node = NodeProto {
            name: Some(self.fresh(name)),
            op_type: Some(op.to_string()),
            input: inputs,
            output: vec![out.to_string()],
            attribute: attrs,
            ..Default::default()
        };
        self.push(node, at);
    }

    /// `out = x[starts..ends]` along `axes`, run `at` (attributes before opset 10,
    /// constant inputs from it on).
    pub fn slice(
        &mut self,
        name: &str,
        x: &str,
        out: &str,
        axes: &[i64],
        bounds: &[(i64, i64)],
        at: At,
    ) {
        let starts: Vec<i64> = bounds.iter().map(|b| b.0).collect();
        let ends: Vec<i64> = bounds.iter().map(|b| b.1).collect();
        if self.opset < 10 {
            let attrs = vec![
                ints("axes", axes),
                ints("starts", &starts),
                ints("ends", &ends),
            ];
            return self.op(name, "Slice", vec![x.into()], out, attrs, at);
        }
        let s = self.int64s(&format!("{out}.starts"), &starts);
        let e = self.int64s(&format!("{out}.ends"), &ends);
        let a = self.int64s(&format!("{out}.axes"), axes);
        self.op(name, "Slice", vec![x.into(), s, e, a], out, vec![], at);
    }

    /// `out = concat(xs)` along `axis`, run `at`.
    pub fn concat(&mut self, name: &str, xs: Vec<String>, axis: i64, out: &str, at: At) {
        self.op(name, "Concat", xs, out, vec![int("axis", axis)], at);
    }

    /// A new int64 initializer (a fresh name from `base`).
    pub fn int64s(&mut self, base: &str, v: &[i64]) -> String {
        let name = self.fresh(base);
        let raw: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.inits.push(TensorProto {
            dims: vec![v.len() as i64],
            data_type: Some(dtype::INT64),
            name: Some(name.clone()),
            raw_data: Some(Bytes::from(raw)),
            ..Default::default()
        });
        name
    }

    /// A new initializer: `c` cut to `range` along `axis` (a fresh name from `base`).
    pub fn weight_slice(
        &mut self,
        c: &Const,
        axis: usize,
        range: (usize, usize),
        base: &str,
    ) -> Result<String, String> {
        let data = const_bytes(c).ok_or_else(|| {
            format!(
                "weight '{}' ({}) cannot be cut: its values are not stored as raw or typed data",
                c.proto.name.as_deref().unwrap_or("?"),
                dtype::name(c.dtype)
            )
        })?;
        let elem = dtype::size_of(c.dtype).unwrap_or(4) as usize;
        let raw = cut(&data, &c.shape, elem, axis, range);
        let mut dims: Vec<i64> = c.shape.iter().map(|&d| d as i64).collect();
        dims[axis] = (range.1 - range.0) as i64;
        let name = self.fresh(base);
        self.inits.push(TensorProto {
            dims,
            data_type: Some(c.dtype),
            name: Some(name.clone()),
            raw_data: Some(raw),
            ..Default::default()
        });
        Ok(name)
    }
}

/// The little-endian bytes of a constant's values.
fn const_bytes(c: &Const) -> Option<Bytes> {
    let t = &c.proto;
    if let Some(r) = t
        .raw_data
        .as_ref()
        .filter(|r| !r.is_empty() || c.numel() == 0)
    {
        return Some(r.clone());
    }
    let v: Vec<u8> = match c.dtype {
        dtype::FLOAT => t.float_data.iter().flat_map(|x| x.to_le_bytes()).collect(),
        dtype::INT64 => t.int64_data.iter().flat_map(|x| x.to_le_bytes()).collect(),
        dtype::DOUBLE => t.double_data.iter().flat_map(|x| x.to_le_bytes()).collect(),
        dtype::INT32 => t.int32_data.iter().flat_map(|x| x.to_le_bytes()).collect(),
        _ => return None,
    };
    Some(Bytes::from(v))
}

/// `data` (a tensor of `shape`, `elem` bytes per value) cut to `range` along `axis`; a
/// view without copying when the cut is one contiguous block.
fn cut(data: &Bytes, shape: &[usize], elem: usize, axis: usize, range: (usize, usize)) -> Bytes {
    let outer: usize = shape[..axis].iter().product();
    let inner: usize = shape[axis + 1..].iter().product::<usize>() * elem;
    let (dim, len) = (shape[axis], (range.1 - range.0) * inner);
    if outer == 1 {
        return data.slice(range.0 * inner..range.0 * inner + len);
    }
    let mut out = Vec::with_capacity(outer * len);
    for o in 0..outer {
        let start = (o * dim + range.0) * inner;
        out.extend_from_slice(&data[start..start + len]);
    }
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_along_an_inner_axis_takes_each_outer_block() {
        // shape [2, 3] of one-byte values 0..6, columns 1..3
        let data = Bytes::from((0u8..6).collect::<Vec<_>>());
        assert_eq!(&cut(&data, &[2, 3], 1, 1, (1, 3))[..], &[1, 2, 4, 5]);
        assert_eq!(&cut(&data, &[2, 3], 1, 0, (1, 2))[..], &[3, 4, 5]);
    }
}
