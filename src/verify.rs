//! `split --verify`: run the whole model and the chained sub-models on the same seeded random
//! input and compare the graph outputs.

use anyhow::{anyhow, Context, Result};
use dicesim_plan::onnx;
use dicesim_plan::split::PlanFile;
use dicesim_plan::Model;
use dicesim_tract::{Session, Tensor};
use std::collections::HashMap;
use std::path::Path;

/// Outcome of a verification.
#[derive(Debug, Clone)]
pub struct Verification {
    /// Per graph output: (name, relative error).
    pub outputs: Vec<(String, f64)>,
}

impl Verification {
    /// The largest relative error over all outputs.
    pub fn max_rel_error(&self) -> f64 {
        self.outputs.iter().map(|o| o.1).fold(0.0, f64::max)
    }
}

pub use dicesim_hil::coord::random_inputs;
pub use dicesim_tract::rel_error;

/// Runs the whole `model` and the sub-models written in `dir` (as described by `plan`) on
/// the same seeded input, and compares every graph output.
pub fn verify_split(model: &Model, plan: &PlanFile, dir: &Path, seed: u64) -> Result<Verification> {
    let inputs = random_inputs(model, seed);
    let whole = Session::from_onnx_bytes(&onnx::encode_model(&model.static_proto()))
        .context("loading the whole model in tract")?;
    let reference: HashMap<String, Tensor> = whole
        .run(&inputs)
        .context("running the whole model in tract")?
        .into_iter()
        .collect();
    let mut avail = inputs;
    for p in &plan.partitions {
        let path = dir.join(&p.file);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let sess = Session::from_onnx_bytes(&bytes)
            .with_context(|| format!("loading sub-model {} in tract", path.display()))?;
        let mut ins = HashMap::new();
        for t in &p.inputs {
            let x = avail.get(&t.name).ok_or_else(|| {
                anyhow!(
                    "partition {} needs '{}', which no earlier partition produced",
                    p.id,
                    t.name
                )
            })?;
            ins.insert(t.name.clone(), x.clone());
        }
        for (name, t) in sess
            .run(&ins)
            .with_context(|| format!("running sub-model {}", path.display()))?
        {
            avail.insert(name, t);
        }
    }
    let mut outputs = Vec::new();
    for name in &model.graph.outputs {
        let want = reference
            .get(name)
            .ok_or_else(|| anyhow!("the whole model did not produce output '{name}'"))?;
        let got = avail
            .get(name)
            .ok_or_else(|| anyhow!("no sub-model produced graph output '{name}'"))?;
        if want.shape != got.shape {
            return Err(anyhow!(
                "output '{name}': whole model gives shape {:?}, sub-models {:?}",
                want.shape,
                got.shape
            ));
        }
        outputs.push((name.clone(), rel_error(&want.data, &got.data)));
    }
    Ok(Verification { outputs })
}
