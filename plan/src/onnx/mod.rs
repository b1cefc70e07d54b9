//! ONNX protobuf types (prost, generated from `onnx.proto` of onnx 1.23) and lossless
//! reading and writing of model files.
//!
//! The generated code is committed so that building needs no `protoc`. To regenerate after
//! updating `onnx.proto`: compile it with `protox` + `prost-build` with
//! `Config::bytes(["."])` (byte fields as `bytes::Bytes`, which lets decoding from a
//! memory-mapped file borrow tensor data instead of copying it).

#[allow(missing_docs, clippy::all, clippy::pedantic)]
mod generated {
    include!("generated.rs");
}
pub use generated::*;

use crate::error::PlanError;
use bytes::Bytes;
use prost::Message;
use std::path::Path;

/// Reads an ONNX model file. The file is memory-mapped and decoded zero-copy: the byte
/// fields of the returned model (tensor `raw_data`) borrow the mapping.
pub fn load_model(path: &Path) -> Result<ModelProto, PlanError> {
    let bytes = read_file_bytes(path)?;
    decode_model(bytes, path)
}

/// Memory-maps a file as `Bytes` (falls back to reading it for empty files, which cannot
/// be mapped).
pub fn read_file_bytes(path: &Path) -> Result<Bytes, PlanError> {
    let file = std::fs::File::open(path).map_err(|e| PlanError::io(path, e))?;
    let meta = file.metadata().map_err(|e| PlanError::io(path, e))?;
    if meta.is_dir() {
        return Err(PlanError::io(
            path,
            std::io::Error::other("is a directory, expected an ONNX model file"),
        ));
    }
    let len = meta.len();
    if len == 0 {
        return Ok(Bytes::new());
    }
    // SAFETY: the mapping is read-only; dicesim never writes to an input model while it
    // runs. A file truncated by another process while mapped can fault, as with any mmap
    // reader; that is outside what a CLI can guard against.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| PlanError::io(path, e))?;
    Ok(Bytes::from_owner(map))
}

/// Decodes ONNX model bytes; `path` only names the source in errors.
pub fn decode_model(bytes: Bytes, path: &Path) -> Result<ModelProto, PlanError> {
    if bytes.is_empty() {
        return Err(PlanError::NotOnnx {
            path: path.to_path_buf(),
            reason: "the file is empty".into(),
        });
    }
    let model = ModelProto::decode(bytes).map_err(|e| PlanError::NotOnnx {
        path: path.to_path_buf(),
        reason: format!(
            "protobuf decoding failed ({e}); the file is truncated or not an ONNX model"
        ),
    })?;
    if model.graph.is_none() {
        return Err(PlanError::NotOnnx {
            path: path.to_path_buf(),
            reason: "it decodes as protobuf but has no graph (field 7 of ModelProto)".into(),
        });
    }
    Ok(model)
}

/// Encodes a model to bytes.
pub fn encode_model(model: &ModelProto) -> Vec<u8> {
    model.encode_to_vec()
}

/// Writes a model file. The model is encoded straight into a memory-mapped output file, so
/// weight bytes are copied once (from the source mapping into the new file's pages).
pub fn save_model(model: &ModelProto, path: &Path) -> Result<(), PlanError> {
    let len = model.encoded_len();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| PlanError::io(path, e))?;
    if len == 0 {
        return Ok(());
    }
    file.set_len(len as u64)
        .map_err(|e| PlanError::io(path, e))?;
    // SAFETY: the file was just created (truncated) by us and is not shared.
    let mut map =
        unsafe { memmap2::MmapMut::map_mut(&file) }.map_err(|e| PlanError::io(path, e))?;
    let mut buf: &mut [u8] = &mut map[..];
    model
        .encode(&mut buf)
        .expect("the mapping has exactly encoded_len() bytes");
    map.flush_async().map_err(|e| PlanError::io(path, e))?;
    Ok(())
}

/// A fully static tensor shape.
pub fn static_shape(shape: &[usize]) -> TensorShapeProto {
    TensorShapeProto {
        dim: shape
            .iter()
            .map(|&d| tensor_shape_proto::Dimension {
                value: Some(tensor_shape_proto::dimension::Value::DimValue(
                    crate::tensor::dim_i64(d),
                )),
                denotation: None,
            })
            .collect(),
    }
}

/// A graph input or output: a tensor of element type `dt` (a [`dtype`] value) and a fully
/// static shape.
pub fn tensor_value_info(name: &str, shape: &[usize], dt: i32) -> ValueInfoProto {
    ValueInfoProto {
        name: Some(name.to_string()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(dt),
                shape: Some(static_shape(shape)),
            })),
            denotation: None,
        }),
        ..Default::default()
    }
}

/// Node attributes, built.
pub mod attrs {
    use super::{attribute_proto::AttributeType, AttributeProto};
    use bytes::Bytes;

    /// An integer attribute.
    pub fn int(name: &str, i: i64) -> AttributeProto {
        AttributeProto {
            name: Some(name.to_string()),
            r#type: Some(AttributeType::Int as i32),
            i: Some(i),
            ..Default::default()
        }
    }

    /// A list-of-integers attribute.
    pub fn ints(name: &str, v: &[i64]) -> AttributeProto {
        AttributeProto {
            name: Some(name.to_string()),
            r#type: Some(AttributeType::Ints as i32),
            ints: v.to_vec(),
            ..Default::default()
        }
    }

    /// A float attribute.
    pub fn float(name: &str, f: f32) -> AttributeProto {
        AttributeProto {
            name: Some(name.to_string()),
            r#type: Some(AttributeType::Float as i32),
            f: Some(f),
            ..Default::default()
        }
    }

    /// A string attribute.
    pub fn string(name: &str, s: &str) -> AttributeProto {
        AttributeProto {
            name: Some(name.to_string()),
            r#type: Some(AttributeType::String as i32),
            s: Some(Bytes::copy_from_slice(s.as_bytes())),
            ..Default::default()
        }
    }
}

/// ONNX `TensorProto.DataType` values used by dicesim.
pub mod dtype {
    /// float32
    pub const FLOAT: i32 = 1;
    /// uint8
    pub const UINT8: i32 = 2;
    /// int8
    pub const INT8: i32 = 3;
    /// int32
    pub const INT32: i32 = 6;
    /// int64
    pub const INT64: i32 = 7;
    /// bool
    pub const BOOL: i32 = 9;
    /// float16
    pub const FLOAT16: i32 = 10;
    /// float64
    pub const DOUBLE: i32 = 11;

    /// Size in bytes of one element, `None` for types dicesim does not handle.
    pub fn size_of(dt: i32) -> Option<u64> {
        match dt {
            FLOAT | INT32 => Some(4),
            UINT8 | INT8 | BOOL => Some(1),
            INT64 | DOUBLE => Some(8),
            FLOAT16 => Some(2),
            _ => None,
        }
    }

    /// Human-readable name.
    pub fn name(dt: i32) -> &'static str {
        match dt {
            FLOAT => "float32",
            UINT8 => "uint8",
            INT8 => "int8",
            INT32 => "int32",
            INT64 => "int64",
            BOOL => "bool",
            FLOAT16 => "float16",
            DOUBLE => "float64",
            _ => "unsupported",
        }
    }
}
