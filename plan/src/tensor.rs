//! Constant tensors: initializers, `Constant` nodes and values folded from them. Small integer
//! and float constants are decoded (shape arithmetic needs their values); large weights stay
//! as the borrowed protobuf bytes.

use crate::onnx::{dtype, TensorProto};
use bytes::Bytes;

/// Largest constant (in elements) whose values are decoded for folding.
pub const MAX_DECODED_ELEMS: usize = 1 << 16;

/// Most bytes constant folding may materialise (a ConstantOfShape fill), per node and per
/// model: 1 GiB holds the largest weights of the ONNX Model Zoo's "light" models (vgg19's
/// 411 MB fc6) while a hostile shape cannot make `inspect` allocate without bound.
pub const MAX_FOLD_BYTES: u64 = 1 << 30;

/// Elements of `shape` counting a zero dimension as 1, saturating: the bound every stride,
/// offset and partial product over the shape stays within. The analysis keeps it (times
/// the element size) within [`crate::model::MAX_TENSOR_BYTES`] for every tensor, zero-sized
/// ones included, so arithmetic over dimensions cannot overflow.
pub fn extent(shape: &[usize]) -> u64 {
    (shape.iter()).fold(1u64, |p, &d| p.saturating_mul(d.max(1) as u64))
}

/// Elements of `shape`, `None` when the count overflows.
pub fn checked_numel(shape: &[usize]) -> Option<usize> {
    if shape.contains(&0) {
        return Some(0);
    }
    (shape.iter()).try_fold(1usize, |p, &d| p.checked_mul(d))
}

/// Decoded values of a constant.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// Integer types (int64, int32, int8, uint8, bool) widened to i64.
    Int(Vec<i64>),
    /// Float types widened to f64.
    Float(Vec<f64>),
    /// Not decoded (too large or an unhandled type).
    Opaque,
}

/// A constant tensor.
#[derive(Debug, Clone)]
pub struct Const {
    /// ONNX element type.
    pub dtype: i32,
    /// Shape.
    pub shape: Vec<usize>,
    /// Values, when decoded.
    pub values: Values,
    /// The tensor as protobuf (named after the tensor), for writing sub-models.
    pub proto: TensorProto,
}

impl Const {
    /// Number of elements (saturating).
    pub fn numel(&self) -> usize {
        checked_numel(&self.shape).unwrap_or(usize::MAX)
    }

    /// Size in bytes (saturating).
    pub fn bytes(&self) -> u64 {
        (self.numel() as u64).saturating_mul(dtype::size_of(self.dtype).unwrap_or(4))
    }

    /// Integer values, if decoded as integers (floats with integral values convert too).
    pub fn ints(&self) -> Option<Vec<i64>> {
        match &self.values {
            Values::Int(v) => Some(v.clone()),
            Values::Float(v) => Some(v.iter().map(|x| *x as i64).collect()),
            Values::Opaque => None,
        }
    }

    /// Float values, if decoded.
    pub fn floats(&self) -> Option<Vec<f64>> {
        match &self.values {
            Values::Int(v) => Some(v.iter().map(|x| *x as f64).collect()),
            Values::Float(v) => Some(v.clone()),
            Values::Opaque => None,
        }
    }

    /// Reads a `TensorProto`, decoding its values when small. `name` replaces the proto's name.
    pub fn from_proto(name: &str, t: &TensorProto) -> Result<Const, String> {
        let dt = t.data_type.unwrap_or(0);
        let mut shape = Vec::with_capacity(t.dims.len());
        for &d in &t.dims {
            if d < 0 {
                return Err(format!("tensor '{name}' has a negative dimension {d}"));
            }
            shape.push(d as usize);
        }
        if t.data_location == Some(1) {
            return Err(format!(
                "tensor '{name}' stores its data in an external file; dicesim needs the weights inside the model (re-save it with onnx.save(model, path, save_as_external_data=False))"
            ));
        }
        let elem = dtype::size_of(dt).ok_or_else(|| {
            format!("tensor '{name}' has element type {dt}, which dicesim does not handle")
        })?;
        check_extent(name, &shape, elem)?;
        let numel = checked_numel(&shape).unwrap_or(usize::MAX);
        let raw = t.raw_data.as_ref().filter(|r| !r.is_empty());
        if let Some(raw) = raw {
            if raw.len() as u64 != numel as u64 * elem {
                return Err(format!(
                    "tensor '{name}': raw_data has {} bytes, but shape {:?} of {} needs {}",
                    raw.len(),
                    shape,
                    dtype::name(dt),
                    numel as u64 * elem
                ));
            }
        } else {
            let typed_len = match dt {
                dtype::FLOAT => t.float_data.len(),
                dtype::INT64 => t.int64_data.len(),
                dtype::DOUBLE => t.double_data.len(),
                dtype::INT32 | dtype::INT8 | dtype::UINT8 | dtype::BOOL | dtype::FLOAT16 => {
                    t.int32_data.len()
                }
                _ => 0,
            };
            if typed_len != numel {
                return Err(format!(
                    "tensor '{name}': holds {typed_len} values, but shape {shape:?} needs {numel}"
                ));
            }
        }
        let values = if numel <= MAX_DECODED_ELEMS {
            decode(dt, raw, t)
        } else {
            Values::Opaque
        };
        let mut proto = t.clone();
        proto.name = Some(name.to_string());
        Ok(Const {
            dtype: dt,
            shape,
            values,
            proto,
        })
    }

    /// A new int64 constant.
    pub fn from_ints(name: &str, shape: Vec<usize>, v: Vec<i64>) -> Const {
        let raw: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        Const::with_raw(name, dtype::INT64, shape, Values::Int(v), raw)
    }

    /// A new float32 constant.
    pub fn from_floats(name: &str, shape: Vec<usize>, v: Vec<f64>) -> Const {
        let raw: Vec<u8> = v.iter().flat_map(|x| (*x as f32).to_le_bytes()).collect();
        Const::with_raw(name, dtype::FLOAT, shape, Values::Float(v), raw)
    }

    /// A new constant of type `dt` from values (integers for integer types).
    pub fn from_values(name: &str, dt: i32, shape: Vec<usize>, values: Values) -> Option<Const> {
        let raw: Vec<u8> = match (&values, dt) {
            (Values::Int(v), dtype::INT64) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            (Values::Int(v), dtype::INT32) => {
                v.iter().flat_map(|x| (*x as i32).to_le_bytes()).collect()
            }
            (Values::Int(v), dtype::INT8) => v.iter().map(|x| *x as i8 as u8).collect(),
            (Values::Int(v), dtype::UINT8 | dtype::BOOL) => v.iter().map(|x| *x as u8).collect(),
            (Values::Float(v), dtype::FLOAT) => {
                v.iter().flat_map(|x| (*x as f32).to_le_bytes()).collect()
            }
            (Values::Float(v), dtype::DOUBLE) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            _ => return None,
        };
        Some(Const::with_raw(name, dt, shape, values, raw))
    }

    /// The first element of this constant (as made by [`Const::from_values`]) repeated to
    /// `shape`: decoded when small, otherwise only the bytes, as an initializer holding it
    /// would be. `None` when those bytes would exceed [`MAX_FOLD_BYTES`].
    pub fn filled(&self, shape: Vec<usize>) -> Option<Const> {
        let elem = dtype::size_of(self.dtype).unwrap_or(0);
        let n = checked_numel(&shape)?;
        if extent(&shape).saturating_mul(elem.max(1)) > MAX_FOLD_BYTES {
            return None;
        }
        let values = match &self.values {
            _ if n > MAX_DECODED_ELEMS => Values::Opaque,
            Values::Int(v) => Values::Int(vec![v.first().copied().unwrap_or(0); n]),
            Values::Float(v) => Values::Float(vec![v.first().copied().unwrap_or(0.0); n]),
            Values::Opaque => Values::Opaque,
        };
        let raw = self.proto.raw_data.as_deref().unwrap_or_default();
        let raw = raw.get(..elem as usize).unwrap_or_default().repeat(n);
        let name = self.proto.name.clone().unwrap_or_default();
        Some(Const::with_raw(&name, self.dtype, shape, values, raw))
    }

    fn with_raw(name: &str, dt: i32, shape: Vec<usize>, values: Values, raw: Vec<u8>) -> Const {
        let proto = TensorProto {
            dims: shape.iter().map(|&d| dim_i64(d)).collect(),
            data_type: Some(dt),
            name: Some(name.to_string()),
            raw_data: Some(Bytes::from(raw)),
            ..Default::default()
        };
        Const {
            dtype: dt,
            shape,
            values,
            proto,
        }
    }
}

/// A dimension as ONNX stores it (dimensions the analysis keeps fit; saturating).
pub fn dim_i64(d: usize) -> i64 {
    i64::try_from(d).unwrap_or(i64::MAX)
}

/// Refuses a constant whose [`extent`] in bytes exceeds [`crate::model::MAX_TENSOR_BYTES`]
/// (a zero-sized one too: its dimensions still enter strides and products).
fn check_extent(name: &str, shape: &[usize], elem: u64) -> Result<(), String> {
    let limit = crate::model::MAX_TENSOR_BYTES;
    if extent(shape).saturating_mul(elem.max(1)) <= limit {
        return Ok(());
    }
    Err(format!(
        "tensor '{name}' of shape {shape:?} is larger than the {} GiB dicesim accepts: refused (a malformed shape?)",
        limit >> 30
    ))
}

fn decode(dt: i32, raw: Option<&Bytes>, t: &TensorProto) -> Values {
    match raw {
        Some(r) => match dt {
            dtype::INT64 => Values::Int(
                r.chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
            ),
            dtype::INT32 => Values::Int(
                r.chunks_exact(4)
                    .map(|c| i32::from_le_bytes(c.try_into().unwrap()) as i64)
                    .collect(),
            ),
            dtype::INT8 => Values::Int(r.iter().map(|&b| b as i8 as i64).collect()),
            dtype::UINT8 | dtype::BOOL => Values::Int(r.iter().map(|&b| b as i64).collect()),
            dtype::FLOAT => Values::Float(
                r.chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
                    .collect(),
            ),
            dtype::DOUBLE => Values::Float(
                r.chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
            ),
            _ => Values::Opaque,
        },
        None => match dt {
            dtype::INT64 => Values::Int(t.int64_data.clone()),
            dtype::INT32 | dtype::INT8 | dtype::UINT8 | dtype::BOOL => {
                Values::Int(t.int32_data.iter().map(|&x| x as i64).collect())
            }
            dtype::FLOAT => Values::Float(t.float_data.iter().map(|&x| x as f64).collect()),
            dtype::DOUBLE => Values::Float(t.double_data.clone()),
            _ => Values::Opaque,
        },
    }
}
