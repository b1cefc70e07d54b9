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

/// The engine called `name`. Today only `tract` is built in; the plugin loader adds the
/// others here (load `libdicesim_backend_<name>.so`, run its `check()`, wrap its table).
pub fn by_name(name: &str) -> Result<Arc<dyn Engine>> {
    match name {
        "tract" => Ok(Arc::new(TractEngine)),
        other => bail!(
            "unknown backend '{other}': this build has the built-in 'tract' engine only \
             (backend plugins are not available yet)"
        ),
    }
}
