//! `dicesim infer` and `dicesim backends`: one model through one backend plugin.

use crate::npy;
use anyhow::{anyhow, bail, Context, Result};
use dicesim_backend_loader::{Backend, Options, Tensor};
use dicesim_plan::onnx;
use std::path::Path;

/// Graph inputs of a model that are not initializers, in model order.
pub fn model_inputs(proto: &onnx::ModelProto, path: &Path) -> Result<Vec<String>> {
    let g = proto
        .graph
        .as_ref()
        .ok_or_else(|| anyhow!("{}: the model has no graph", path.display()))?;
    let inits: std::collections::HashSet<&str> = g
        .initializer
        .iter()
        .filter_map(|t| t.name.as_deref())
        .collect();
    let names = g
        .input
        .iter()
        .filter_map(|i| i.name.clone())
        .filter(|n| !inits.contains(n.as_str()))
        .collect();
    Ok(names)
}

/// Runs `model` on the tensors of `input` (.npy or .npz) with `backend`; writes `output` (.npz).
pub fn infer(
    model: &Path,
    backend: &str,
    input: &Path,
    output: &Path,
    threads: usize,
) -> Result<()> {
    let bytes = onnx::read_file_bytes(model)?;
    let names = model_inputs(&onnx::decode_model(bytes.clone(), model)?, model)?;
    let single = (names.len() == 1).then(|| names[0].as_str());
    let mut tensors = npy::read_tensors(input, single)?;
    // `numpy.savez(f, x)` names a positional array arr_0.
    if let (Some(name), [(key, _)]) = (single, tensors.as_mut_slice()) {
        if key == "arr_0" {
            *key = name.to_string();
        }
    }
    for n in &names {
        if !tensors.iter().any(|(k, _)| k == n) {
            bail!(
                "{}: no array named '{n}' (the model's inputs: {}; the file has: {})",
                input.display(),
                names.join(", "),
                tensors
                    .iter()
                    .map(|t| t.0.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    let b = Backend::load(backend)?;
    let opts = Options {
        intra_op_threads: threads,
        ..Options::default()
    };
    let mut sess = b
        .session(&bytes, &opts)
        .with_context(|| format!("loading {}", model.display()))?;
    let ins: Vec<(&str, &Tensor)> = tensors.iter().map(|(k, t)| (k.as_str(), t)).collect();
    let t0 = std::time::Instant::now();
    let outs = sess.run(&ins)?;
    let dt = t0.elapsed();
    npy::write_npz(output, &outs)?;
    for (n, t) in &outs {
        println!("output {n} {:?}", t.shape);
    }
    eprintln!(
        "ran {} on {} in {:.3} ms; wrote {}",
        model.display(),
        b.name(),
        dt.as_secs_f64() * 1e3,
        output.display()
    );
    Ok(())
}
