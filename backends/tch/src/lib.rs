//! The LibTorch engine of the `tch` backend plugin (`libdicesim_backend_tch.so`), CPU only.
//!
//! tch loads TorchScript, not ONNX, so this plugin interprets the ONNX graph itself: the
//! model is analysed by `dicesim-plan` (constants folded, layers in topological order) and
//! every layer runs as LibTorch operators ([`ops`]). Weights become LibTorch tensors once,
//! when the session is created.
#![warn(missing_docs)]

pub mod ops;

use dicesim_backend_api::{
    all_inputs_given, model_input, DType, Engine, Options, OutputFn, TensorView, UnitKind,
};
use dicesim_plan::model::InputShapes;
use dicesim_plan::onnx::{self, NodeProto};
use dicesim_plan::tensor::{Const, Values};
use dicesim_plan::Model;
use std::collections::HashMap;
use tch::{Kind, Tensor};

/// The engine behind the plugin.
pub struct Torch;

/// One layer to run.
pub struct Step {
    /// Layer name (for errors).
    pub name: String,
    /// The ONNX node.
    pub node: NodeProto,
}

/// Constants a layer reads, as LibTorch tensors and (when small) decoded values.
#[derive(Default)]
pub struct Consts {
    /// Tensors by name.
    pub tensors: HashMap<String, Tensor>,
    /// Integer values by name (shape arguments: Reshape, Slice, Pad...).
    pub ints: HashMap<String, Vec<i64>>,
    /// Float values by name (Resize scales, Clip bounds...).
    pub floats: HashMap<String, Vec<f64>>,
}

/// A model ready to run on LibTorch.
pub struct TchSession {
    steps: Vec<Step>,
    consts: Consts,
    inputs: Vec<(String, Vec<i64>)>,
    outputs: Vec<String>,
    opset: i64,
    threads: usize,
}

fn le_chunks<const N: usize, T>(raw: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
    raw.chunks_exact(N)
        .map(|c| f(c.try_into().expect("chunk size")))
        .collect()
}

/// A constant as a LibTorch tensor (f32 for float types, i64 for integer types).
pub fn const_tensor(name: &str, c: &Const) -> Result<Tensor, String> {
    let shape: Vec<i64> = c.shape.iter().map(|&d| d as i64).collect();
    let p = &c.proto;
    let raw = p.raw_data.as_deref().unwrap_or(&[]);
    let t = match (&c.values, c.dtype) {
        (Values::Float(v), _) => {
            let v: Vec<f32> = v.iter().map(|&x| x as f32).collect();
            Tensor::from_slice(&v)
        }
        (Values::Int(v), _) => Tensor::from_slice(v),
        (Values::Opaque, onnx::dtype::FLOAT) => {
            if !raw.is_empty() {
                Tensor::from_slice(&le_chunks::<4, _>(raw, f32::from_le_bytes))
            } else {
                Tensor::from_slice(&p.float_data)
            }
        }
        (Values::Opaque, onnx::dtype::DOUBLE) => {
            let v: Vec<f32> = if !raw.is_empty() {
                le_chunks::<8, _>(raw, |b| f64::from_le_bytes(b) as f32)
            } else {
                p.double_data.iter().map(|&x| x as f32).collect()
            };
            Tensor::from_slice(&v)
        }
        (Values::Opaque, onnx::dtype::INT64) => {
            if !raw.is_empty() {
                Tensor::from_slice(&le_chunks::<8, _>(raw, i64::from_le_bytes))
            } else {
                Tensor::from_slice(&p.int64_data)
            }
        }
        (Values::Opaque, dt) => {
            return Err(format!(
                "constant '{name}' has ONNX element type {} ({dt}), which the tch backend does not read",
                onnx::dtype::name(dt)
            ))
        }
    };
    let n: i64 = shape.iter().product();
    if t.numel() as i64 != n {
        return Err(format!(
            "constant '{name}': {} values for shape {shape:?}",
            t.numel()
        ));
    }
    t.f_reshape(&shape).map_err(|e| e.to_string())
}

impl TchSession {
    /// Decodes and analyses ONNX bytes; converts the weights.
    pub fn new(bytes: &[u8], threads: usize) -> Result<TchSession, String> {
        let proto =
            onnx::decode_model(bytes.to_vec().into(), std::path::Path::new("<model bytes>"))
                .map_err(|e| e.to_string())?;
        let model =
            Model::analyse(proto, "model", &InputShapes::new()).map_err(|e| e.to_string())?;
        let mut consts = Consts::default();
        for (name, c) in &model.consts {
            if let Some(v) = match &c.values {
                Values::Int(v) => Some(v.clone()),
                _ => None,
            } {
                consts.ints.insert(name.clone(), v);
            }
            if let Some(v) = c.floats() {
                consts.floats.insert(name.clone(), v);
            }
            consts.tensors.insert(name.clone(), const_tensor(name, c)?);
        }
        let steps = (0..model.graph.layers.len())
            .map(|i| Step {
                name: model.graph.layers[i].name.clone(),
                node: model.node(i).clone(),
            })
            .collect();
        let inputs = model
            .graph
            .inputs
            .iter()
            .map(|n| {
                (
                    n.clone(),
                    model.graph.tensors[n]
                        .shape
                        .iter()
                        .map(|&d| d as i64)
                        .collect(),
                )
            })
            .collect();
        Ok(TchSession {
            steps,
            consts,
            inputs,
            outputs: model.graph.outputs.clone(),
            opset: model.opset,
            threads,
        })
    }

    /// Runs on borrowed inputs (copied once into LibTorch) and lends each output to `out`.
    pub fn run(&self, inputs: &[TensorView<'_>], out: &mut OutputFn<'_>) -> Result<(), String> {
        let _guard = tch::no_grad_guard();
        if self.threads > 0 && tch::get_num_threads() != self.threads as i32 {
            tch::set_num_threads(self.threads as i32);
        }
        let mut env: HashMap<String, Tensor> = HashMap::new();
        for t in inputs {
            let want = model_input(&self.inputs, t.name)?;
            let got: Vec<i64> = t.shape.iter().map(|&d| d as i64).collect();
            if &got != want {
                return Err(format!(
                    "input '{}' has shape {got:?}; the model expects {want:?}",
                    t.name
                ));
            }
            if t.dtype != DType::F32 {
                return Err(format!(
                    "input '{}' is {}; the model expects f32",
                    t.name,
                    t.dtype.name()
                ));
            }
            let x =
                Tensor::f_from_data_size(t.data, &got, Kind::Float).map_err(|e| e.to_string())?;
            env.insert(t.name.to_string(), x);
        }
        all_inputs_given(&self.inputs, inputs)?;
        for s in &self.steps {
            let outs = ops::run_node(s, &env, &self.consts, self.opset)
                .map_err(|e| format!("layer '{}' ({}): {e}", s.name, s.node.op_type()))?;
            for (name, t) in s.node.output.iter().zip(outs) {
                if !name.is_empty() {
                    env.insert(name.clone(), t);
                }
            }
        }
        for name in &self.outputs {
            let t = env
                .get(name)
                .or_else(|| self.consts.tensors.get(name))
                .ok_or_else(|| format!("no layer produced output '{name}'"))?;
            let (t, dtype) = match t.kind() {
                Kind::Int64 => (t.f_contiguous().map_err(|e| e.to_string())?, DType::I64),
                _ => (
                    t.f_to_dtype(Kind::Float, false, false)
                        .and_then(|t| t.f_contiguous())
                        .map_err(|e| e.to_string())?,
                    DType::F32,
                ),
            };
            let shape: Vec<u64> = t.size().iter().map(|&d| d as u64).collect();
            let nbytes = t.numel() * dtype.size();
            // SAFETY: a contiguous CPU tensor of `numel` elements of `dtype`.
            let bytes: &[u8] = if nbytes == 0 {
                &[]
            } else {
                // SAFETY: as above; `t` outlives `bytes`, which is only read before the loop
                // moves on.
                unsafe { std::slice::from_raw_parts(t.data_ptr() as *const u8, nbytes) }
            };
            out(name, dtype, &shape, bytes);
        }
        Ok(())
    }
}

impl Engine for Torch {
    type Session = TchSession;
    const NAME: &'static str = "tch";
    const VERSION: &'static str =
        concat!(env!("CARGO_PKG_VERSION"), " (tch 0.26.0, LibTorch 2.13.0)");

    fn check() -> Result<String, String> {
        // Linking already proved LibTorch loads; make sure it computes.
        let t = Tensor::f_from_slice(&[1f32, 2.0])
            .and_then(|t| t.f_sum(Kind::Float))
            .and_then(|t| t.f_reshape([1]))
            .map_err(|e| format!("LibTorch does not run: {e}; run scripts/setup.sh"))?;
        if Vec::<f32>::try_from(&t).map_err(|e| e.to_string())? != [3.0] {
            return Err("LibTorch computed a wrong sum; reinstall with scripts/setup.sh".into());
        }
        Ok(format!(
            "LibTorch CPU, {} threads by default",
            tch::get_num_threads()
        ))
    }

    fn create(onnx: &[u8], opts: &Options) -> Result<TchSession, String> {
        if opts.unit_kind != UnitKind::Cpu {
            return Err("the tch plugin runs on CPU units only".into());
        }
        TchSession::new(onnx, opts.intra_op_threads)
    }

    fn run(
        s: &mut TchSession,
        inputs: &[TensorView<'_>],
        out: &mut OutputFn<'_>,
    ) -> Result<(), String> {
        s.run(inputs, out)
    }
}
