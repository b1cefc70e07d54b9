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

/// Runs the whole `model` (the original, before any horizontal split) and the sub-models
/// written in `dir` (as described by `plan`) on
/// the same seeded input, and compares every graph output (built-in tract engine).
pub fn verify_split(model: &Model, plan: &PlanFile, dir: &Path, seed: u64) -> Result<Verification> {
    verify_with(model, plan, dir, seed, "tract", &mut |bytes, inputs| {
        let sess = Session::from_onnx_bytes(bytes)?;
        Ok(sess.run(inputs)?)
    })
}

/// As [`verify_split`], on backend plugin `backend` (whole model and sub-models alike).
pub fn verify_split_backend(
    model: &Model,
    plan: &PlanFile,
    dir: &Path,
    seed: u64,
    backend: &dicesim_backend_loader::Backend,
) -> Result<Verification> {
    use dicesim_backend_loader::Tensor as HostTensor;
    backend.check()?;
    let name = backend.name().to_string();
    verify_with(model, plan, dir, seed, &name, &mut |bytes, inputs| {
        let mut sess = backend.session_unchecked(bytes, &Default::default())?;
        let host: Vec<(String, HostTensor)> = inputs
            .iter()
            .map(|(k, t)| (k.clone(), HostTensor::f32(t.shape.clone(), t.data.clone())))
            .collect();
        let ins: Vec<(&str, &HostTensor)> = host.iter().map(|(k, t)| (k.as_str(), t)).collect();
        sess.run(&ins)?
            .into_iter()
            .map(|(n, t)| {
                let shape = t.shape.clone();
                match t.data {
                    dicesim_backend_loader::TensorData::F32(data) => {
                        Ok((n, Tensor { shape, data }))
                    }
                    _ => Err(anyhow!("output '{n}' is not f32")),
                }
            })
            .collect()
    })
}

type RunFn<'a> = dyn FnMut(&[u8], &HashMap<String, Tensor>) -> Result<Vec<(String, Tensor)>> + 'a;

fn verify_with(
    model: &Model,
    plan: &PlanFile,
    dir: &Path,
    seed: u64,
    engine: &str,
    run: &mut RunFn<'_>,
) -> Result<Verification> {
    let inputs = random_inputs(model, seed);
    let reference: HashMap<String, Tensor> =
        run(&onnx::encode_model(&model.static_proto()), &inputs)
            .with_context(|| format!("running the whole model in {engine}"))?
            .into_iter()
            .collect();
    let mut avail = inputs;
    for p in &plan.partitions {
        let path = dir.join(&p.file);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
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
        for (name, t) in run(&bytes, &ins)
            .with_context(|| format!("running sub-model {} in {engine}", path.display()))?
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
