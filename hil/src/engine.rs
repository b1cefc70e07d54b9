//! The inference engine behind a small trait, so that backends found by name (the plugin
//! loader's `libdicesim_backend_<name>.so`) slot in next to the built-in tract engine.

use anyhow::{bail, Context, Result};
pub use dicesim_tract::Tensor;
use std::collections::HashMap;
use std::sync::Arc;

/// An engine: loads ONNX bytes into runnable sessions.
pub trait Engine: Send + Sync {
    /// Backend name (`tract`, ...).
    fn name(&self) -> &str;
    /// Loads a (sub-)model. `threads` is a hint; engines may ignore it.
    fn load(&self, onnx: &[u8], threads: usize) -> Result<Box<dyn EngineSession>>;
    /// Loads a (sub-)model from bytes it may free as soon as it no longer needs them (an
    /// engine that can holds fewer copies of the weights at its peak).
    fn load_owned(&self, onnx: Vec<u8>, threads: usize) -> Result<Box<dyn EngineSession>> {
        self.load(&onnx, threads)
    }
    /// What this engine does with `threads` intra-op threads when that is not simply one
    /// pool per session (a worker logs it once per partition).
    fn thread_note(&self, threads: usize) -> Option<String> {
        let _ = threads;
        None
    }
}

/// A loaded model.
pub trait EngineSession: Send {
    /// Runs one frame on named inputs; returns named outputs.
    fn run(&mut self, inputs: &HashMap<String, Tensor>) -> Result<Vec<(String, Tensor)>>;
}

/// The built-in pure-Rust engine.
pub struct TractEngine;

struct TractSession(dicesim_tract::Session);

impl Engine for TractEngine {
    fn name(&self) -> &str {
        "tract"
    }
    fn load(&self, onnx: &[u8], _threads: usize) -> Result<Box<dyn EngineSession>> {
        // one thread per partition: tract's thread pools are per process and per size, so
        // two partitions with the same thread count would share one pool and its CPUs
        let s = dicesim_tract::Session::from_onnx_bytes(onnx).context("tract")?;
        Ok(Box::new(TractSession(s)))
    }
    fn load_owned(&self, onnx: Vec<u8>, _threads: usize) -> Result<Box<dyn EngineSession>> {
        let s = dicesim_tract::Session::from_onnx_vec(onnx).context("tract")?;
        Ok(Box::new(TractSession(s)))
    }
    fn thread_note(&self, threads: usize) -> Option<String> {
        (threads > 1).then(|| "the built-in tract engine runs a partition on one thread".into())
    }
}

impl EngineSession for TractSession {
    fn run(&mut self, inputs: &HashMap<String, Tensor>) -> Result<Vec<(String, Tensor)>> {
        Ok(self.0.run(inputs)?)
    }
}

/// A backend plugin (`libdicesim_backend_<name>.so`, found by the loader).
struct PluginEngine(dicesim_backend_loader::Backend);

struct PluginSession(dicesim_backend_loader::Session);

impl Engine for PluginEngine {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn load(&self, onnx: &[u8], threads: usize) -> Result<Box<dyn EngineSession>> {
        let opts = dicesim_backend_loader::Options {
            intra_op_threads: threads,
            ..Default::default()
        };
        let s = self.0.session_unchecked(onnx, &opts)?;
        Ok(Box::new(PluginSession(s)))
    }
    fn thread_note(&self, threads: usize) -> Option<String> {
        match self.name() {
            "tch" if threads > 0 => Some(
                "LibTorch's intra-op threads are process-wide: the partition that runs sets them for all (at::set_num_threads)".into(),
            ),
            "tract" if threads > 1 => Some(
                "tract's pool is per process and thread count: partitions with the same count share one, pinned where it started".into(),
            ),
            _ => None,
        }
    }
}

impl EngineSession for PluginSession {
    fn run(&mut self, inputs: &HashMap<String, Tensor>) -> Result<Vec<(String, Tensor)>> {
        use dicesim_backend_loader::{Tensor as HostTensor, TensorData};
        let host: Vec<(&str, HostTensor)> = inputs
            .iter()
            .map(|(k, t)| (k.as_str(), HostTensor::f32(t.shape.clone(), t.data.clone())))
            .collect();
        let ins: Vec<(&str, &HostTensor)> = host.iter().map(|(k, t)| (*k, t)).collect();
        self.0
            .run(&ins)?
            .into_iter()
            .map(|(n, t)| match t.data {
                TensorData::F32(data) => Ok((
                    n,
                    Tensor {
                        shape: t.shape,
                        data,
                    },
                )),
                _ => bail!("output '{n}' is not float32"),
            })
            .collect()
    }
}

/// The engine called `name`: `tract` is built in; any other name is a backend plugin
/// (`libdicesim_backend_<name>.so` next to the binary or on `DICESIM_PLUGIN_PATH`), whose
/// `check()` must pass (its message says what to install otherwise).
pub fn by_name(name: &str) -> Result<Arc<dyn Engine>> {
    if name == "tract" {
        return Ok(Arc::new(TractEngine));
    }
    let b = dicesim_backend_loader::Backend::load(name)?;
    b.check()?;
    Ok(Arc::new(PluginEngine(b)))
}
