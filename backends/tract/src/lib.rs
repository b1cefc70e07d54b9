//! The pure-Rust inference engine (tract): loads ONNX models (whole or sub-models) from
//! bytes and runs them on f32 tensors. It is the reference engine of `dicesim split --verify`
//! and the ARM CPU backend.
#![warn(missing_docs)]

use std::collections::HashMap;
use std::sync::Arc;
use tract_onnx::prelude::*;

/// An error from the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The model could not be loaded or optimised.
    #[error("tract could not load the model: {0}")]
    Load(String),
    /// Inputs did not match the model.
    #[error("{0}")]
    Input(String),
    /// Running failed.
    #[error("tract failed while running: {0}")]
    Run(String),
}

/// Receives one output of [`Session::run_borrowed`]: name, shape, values (lent).
pub type OutputFn<'a> = dyn FnMut(&str, &[usize], &[f32]) + 'a;

/// Per-operator times of [`Session::node_times`].
#[derive(Debug, Clone)]
pub struct NodeTimes {
    /// Each executed operator of the optimised plan, in execution order: name, wall time
    /// of each run [us].
    pub nodes: Vec<(String, Vec<f64>)>,
    /// Wall time of each run [us].
    pub run_wall_us: Vec<f64>,
    /// CPU time of each run [us].
    pub run_cpu_us: Vec<f64>,
}

/// A dense f32 tensor, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Shape.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub data: Vec<f32>,
}

impl Tensor {
    /// Deterministic values in [-1, 1) from `seed` (splitmix64: identical on every machine).
    /// The inputs of `split --verify` and of `hil`'s output check.
    pub fn random(shape: &[usize], seed: u64) -> Tensor {
        let n: usize = shape.iter().product();
        let mut s = seed;
        let data = (0..n)
            .map(|_| {
                s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = s;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^= z >> 31;
                ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect();
        Tensor {
            shape: shape.to_vec(),
            data,
        }
    }
}

/// Relative error of `got` against `want` (`max |got - want| / max |want|`), defined once
/// in the backend API and re-exported for the engine's users.
pub use dicesim_backend_api::rel_error;

/// Decodes the ONNX protobuf from `bytes` in place (`model_for_read` would first copy them
/// all into a buffer of its own: a whole extra copy of the weights at the load's peak).
fn decode(bytes: &[u8]) -> Result<tract_onnx::pb::ModelProto, EngineError> {
    <tract_onnx::pb::ModelProto as prost::Message>::decode(bytes)
        .map_err(|e| EngineError::Load(format!("decoding the ONNX protobuf: {e}")))
}

/// A loaded, optimised model ready to run.
pub struct Session {
    plan: Arc<TypedRunnableModel>,
    inputs: Vec<(String, Vec<usize>)>,
    outputs: Vec<String>,
}

impl Session {
    /// Loads ONNX bytes. Input shapes come from the model's declared (static) input shapes.
    pub fn from_onnx_bytes(bytes: &[u8]) -> Result<Session, EngineError> {
        Self::from_proto(decode(bytes)?)
    }

    /// Loads ONNX bytes it owns, freeing them once decoded: a load then holds at most two
    /// copies of the weights at once (the bytes and the decoded protobuf, then the protobuf
    /// and the engine's) instead of three.
    pub fn from_onnx_vec(bytes: Vec<u8>) -> Result<Session, EngineError> {
        // Decoded from `Bytes` (owning the vector, no copy), each field's bytes are sliced
        // from the buffer, then copied once into the protobuf. Decoded from a slice, prost
        // copies every field twice (into a `Bytes`, then into the field): for a moment an
        // extra copy of the largest tensor (vgg16's first fully connected layer: 392 MiB).
        let proto = <tract_onnx::pb::ModelProto as prost::Message>::decode(
            prost::bytes::Bytes::from(bytes),
        )
        .map_err(|e| EngineError::Load(format!("decoding the ONNX protobuf: {e}")))?;
        Self::from_proto(proto)
    }

    fn from_proto(proto: tract_onnx::pb::ModelProto) -> Result<Session, EngineError> {
        let load = |e: anyhow::Error| EngineError::Load(format!("{e:#}"));
        let model = tract_onnx::onnx()
            .model_for_proto_model(&proto)
            .map_err(load)?;
        // the decoded protobuf holds another copy of the weights: free it before optimising
        drop(proto);
        let inputs = model
            .input_outlets()
            .map_err(load)?
            .iter()
            .map(|o| {
                let name = model.node(o.node).name.clone();
                let fact = model.outlet_fact(*o).map_err(load)?;
                let shape = fact
                    .shape
                    .as_concrete_finite()
                    .map_err(load)?
                    .map(|s| s.to_vec())
                    .ok_or_else(|| {
                        EngineError::Load(format!("input '{name}' has no static shape"))
                    })?;
                Ok((name, shape))
            })
            .collect::<Result<Vec<_>, EngineError>>()?;
        let outputs = model
            .output_outlets()
            .map_err(load)?
            .iter()
            .map(|o| {
                model
                    .outlet_label(*o)
                    .map(str::to_string)
                    .unwrap_or_else(|| model.node(o.node).name.clone())
            })
            .collect();
        let plan = model
            .into_optimized()
            .map_err(load)?
            .into_runnable()
            .map_err(load)?;
        Ok(Session {
            plan,
            inputs,
            outputs,
        })
    }

    /// Input names and shapes, in model order.
    pub fn inputs(&self) -> &[(String, Vec<usize>)] {
        &self.inputs
    }

    /// Output names, in model order.
    pub fn outputs(&self) -> &[String] {
        &self.outputs
    }

    /// Runs on borrowed f32 inputs `(name, shape, values)` (each copied once into the
    /// engine) and lends each output `(name, shape, values)` to `out`, in model order.
    /// `threads > 1` runs the operators on a pool of that many threads.
    pub fn run_borrowed(
        &self,
        inputs: &[(&str, &[usize], &[f32])],
        threads: usize,
        out: &mut OutputFn<'_>,
    ) -> Result<(), EngineError> {
        let mut tv: TVec<TValue> = tvec![];
        for (name, shape) in &self.inputs {
            let (_, s, d) = inputs
                .iter()
                .find(|(n, _, _)| n == name)
                .ok_or_else(|| EngineError::Input(format!("input '{name}' was not given")))?;
            if *s != shape.as_slice() {
                return Err(EngineError::Input(format!(
                    "input '{name}' has shape {s:?}; the model expects {shape:?}"
                )));
            }
            let x = tract_onnx::prelude::Tensor::from_shape(s, d)
                .map_err(|e| EngineError::Input(format!("{e:#}")))?;
            tv.push(x.into_tvalue());
        }
        if let Some((n, _, _)) = inputs
            .iter()
            .find(|(n, _, _)| !self.inputs.iter().any(|(m, _)| m == n))
        {
            return Err(EngineError::Input(format!(
                "the model has no input '{n}' (inputs: {})",
                self.inputs
                    .iter()
                    .map(|i| i.0.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let result = if threads > 1 {
            let pool = executor(threads)?;
            tract_linalg::multithread::multithread_tract_scope(pool, || self.plan.run(tv))
        } else {
            self.plan.run(tv)
        };
        let result = result.map_err(|e| EngineError::Run(format!("{e:#}")))?;
        for (v, name) in result.into_iter().zip(&self.outputs) {
            let t = v
                .cast_to::<f32>()
                .map_err(|e| EngineError::Run(format!("{e:#}")))?;
            let view = t
                .to_plain_array_view::<f32>()
                .map_err(|e| EngineError::Run(format!("{e:#}")))?;
            match view.as_slice() {
                Some(s) => out(name, t.shape(), s),
                None => {
                    let v: Vec<f32> = view.iter().copied().collect();
                    out(name, t.shape(), &v)
                }
            }
        }
        Ok(())
    }

    /// Runs the model `runs` times on `inputs` (after one untimed run) and times every
    /// operator of tract's optimised plan in place. Operators tract fused stay fused (a
    /// Conv's operator carries its folded BatchNormalization and activation); operators tract
    /// inserted carry names derived from the ONNX node they came from (`conv1.pack`, ...).
    /// `cpu_us` reads the calling thread's CPU time [us] (taken around every run);
    /// `after_run` is called with each run's wall time [us] (to pace the runs).
    pub fn node_times(
        &self,
        inputs: &HashMap<String, Tensor>,
        runs: usize,
        cpu_us: &dyn Fn() -> f64,
        after_run: &mut dyn FnMut(f64),
    ) -> Result<NodeTimes, EngineError> {
        let run = |e: anyhow::Error| EngineError::Run(format!("{e:#}"));
        let mut tv: TVec<TValue> = tvec![];
        for (name, shape) in &self.inputs {
            let t = inputs
                .get(name)
                .ok_or_else(|| EngineError::Input(format!("input '{name}' was not given")))?;
            let x = tract_onnx::prelude::Tensor::from_shape(shape, &t.data)
                .map_err(|e| EngineError::Input(format!("{e:#}")))?;
            tv.push(x.into_tvalue());
        }
        let mut state = TypedSimpleState::new(&self.plan).map_err(run)?;
        // node id -> index in `times`, in execution order
        let mut slot: HashMap<usize, usize> = HashMap::new();
        let mut times: Vec<(usize, Vec<f64>)> = Vec::new();
        let (mut run_wall_us, mut run_cpu_us) = (Vec::new(), Vec::new());
        for r in 0..=runs {
            let (t0, c0) = (std::time::Instant::now(), cpu_us());
            state
                .run_plan_with_eval(tv.clone(), |ctx, st, node, ins| {
                    let t0 = std::time::Instant::now();
                    let out = tract_onnx::tract_core::plan::eval(ctx, st, node, ins);
                    if r > 0 {
                        let dt = t0.elapsed().as_secs_f64() * 1e6;
                        let i = *slot.entry(node.id).or_insert_with(|| {
                            times.push((node.id, Vec::new()));
                            times.len() - 1
                        });
                        times[i].1.push(dt);
                    }
                    out
                })
                .map_err(run)?;
            let (wall, cpu) = (t0.elapsed().as_secs_f64() * 1e6, cpu_us() - c0);
            if r > 0 {
                run_wall_us.push(wall);
                run_cpu_us.push(cpu);
            }
            after_run(wall);
        }
        let model = self.plan.model();
        Ok(NodeTimes {
            nodes: times
                .into_iter()
                .map(|(n, t)| (model.node(n).name.clone(), t))
                .collect(),
            run_wall_us,
            run_cpu_us,
        })
    }

    /// Runs on named inputs; returns the outputs in model order.
    pub fn run(
        &self,
        inputs: &HashMap<String, Tensor>,
    ) -> Result<Vec<(String, Tensor)>, EngineError> {
        let mut tv: TVec<TValue> = tvec![];
        for (name, shape) in &self.inputs {
            let t = inputs
                .get(name)
                .ok_or_else(|| EngineError::Input(format!("input '{name}' was not given")))?;
            if &t.shape != shape {
                return Err(EngineError::Input(format!(
                    "input '{name}' has shape {:?}; the model expects {:?}",
                    t.shape, shape
                )));
            }
            let x = tract_onnx::prelude::Tensor::from_shape(&t.shape, &t.data)
                .map_err(|e| EngineError::Input(format!("{e:#}")))?;
            tv.push(x.into_tvalue());
        }
        let out = self
            .plan
            .run(tv)
            .map_err(|e| EngineError::Run(format!("{e:#}")))?;
        out.into_iter()
            .zip(&self.outputs)
            .map(|(v, name)| {
                let t = v
                    .into_tensor()
                    .cast_to::<f32>()
                    .map_err(|e| EngineError::Run(format!("{e:#}")))?
                    .into_owned();
                let shape = t.shape().to_vec();
                let data = t
                    .to_plain_array_view::<f32>()
                    .map_err(|e| EngineError::Run(format!("{e:#}")))?
                    .iter()
                    .copied()
                    .collect();
                Ok((name.clone(), Tensor { shape, data }))
            })
            .collect()
    }
}

/// A pool of `n` threads, built once per size and shared by every session of the process.
fn executor(n: usize) -> Result<tract_linalg::multithread::Executor, EngineError> {
    use std::sync::{Mutex, OnceLock};
    use tract_linalg::multithread::Executor;
    static POOLS: OnceLock<Mutex<HashMap<usize, Executor>>> = OnceLock::new();
    let mut pools = POOLS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(e) = pools.get(&n) {
        return Ok(e.clone());
    }
    let e = std::panic::catch_unwind(|| Executor::multithread(n))
        .map_err(|_| EngineError::Run(format!("could not start a pool of {n} threads")))?;
    pools.insert(n, e.clone());
    Ok(e)
}
