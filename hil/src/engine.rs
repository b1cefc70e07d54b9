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
        // tract runs a model on one thread; `threads` is honoured by scheduling, not here.
        let s = dicesim_tract::Session::from_onnx_bytes(onnx).context("tract")?;
        Ok(Box::new(TractSession(s)))
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
