//! The backend conformance suite's helpers, shared by its tests and benchmarks: which
//! plugins are under test, seeded inputs, chaining sub-models, comparing results.
//!
//! Which plugins: `DICESIM_TEST_BACKENDS` (comma-separated), by default every plugin the
//! project ships (`tract`, `ort`, `tch`). A plugin that is missing or whose engine fails its
//! check fails the tests when `CI=true` (or `DICESIM_REQUIRE_BACKENDS=1`); elsewhere the
//! suite says loudly that it skipped that plugin.
#![warn(missing_docs)]

use dicesim_backend_loader::{Backend, Options, Tensor};
use dicesim_plan::partition::Plan;
use dicesim_plan::{onnx, split, Model};
use std::collections::HashMap;

/// Relative tolerance between engines: `max|a-b| / max|ref|`.
pub const TOLERANCE: f64 = 1e-4;

/// Every plugin the project ships.
pub const SHIPPED: &[&str] = &["tract", "ort", "tch"];

/// Names of the plugins under test.
pub fn names_under_test() -> Vec<String> {
    match std::env::var("DICESIM_TEST_BACKENDS") {
        Ok(s) if !s.trim().is_empty() => s
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        _ => SHIPPED.iter().map(|s| s.to_string()).collect(),
    }
}

/// Whether a missing plugin must fail the tests.
pub fn required() -> bool {
    let on = |k: &str| {
        std::env::var(k)
            .map(|v| v == "1" || v.eq_ignore_ascii_case("true"))
            .unwrap_or(false)
    };
    on("CI") || on("DICESIM_REQUIRE_BACKENDS")
}

/// Loads and checks plugin `name`. A failure panics under CI, and is reported and skipped
/// elsewhere.
pub fn load(name: &str) -> Option<Backend> {
    let r = Backend::load(name).and_then(|b| b.check().map(|_| b));
    match r {
        Ok(b) => Some(b),
        Err(e) if required() => panic!(
            "backend '{name}' is required here (CI=true or DICESIM_REQUIRE_BACKENDS=1) but unusable: {e}"
        ),
        Err(e) => {
            eprintln!("\n*** SKIPPING backend '{name}': {e}\n*** (set CI=true to make this a failure)\n");
            None
        }
    }
}

/// Every plugin under test that is usable here.
pub fn backends() -> Vec<Backend> {
    names_under_test().iter().filter_map(|n| load(n)).collect()
}

/// Deterministic values in [-1, 1) from `seed` (splitmix64; identical on every machine).
pub fn random_f32(shape: &[usize], seed: u64) -> Tensor {
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
    Tensor::f32(shape.to_vec(), data)
}

/// Seeded inputs for every graph input of `model`.
pub fn model_inputs(model: &Model, seed: u64) -> HashMap<String, Tensor> {
    model
        .graph
        .inputs
        .iter()
        .enumerate()
        .map(|(i, n)| {
            (
                n.clone(),
                random_f32(&model.graph.tensors[n].shape, seed + i as u64),
            )
        })
        .collect()
}

/// `max|got - want| / max|want|` ([`dicesim_backend_api::rel_error`]); infinite on a
/// shape, type or length mismatch or a NaN.
pub fn rel_error(want: &Tensor, got: &Tensor) -> f64 {
    match (want.as_f32(), got.as_f32()) {
        (Some(w), Some(g)) if want.shape == got.shape => dicesim_backend_api::rel_error(w, g),
        _ => f64::INFINITY,
    }
}

/// Runs ONNX bytes once on `b`.
pub fn run_once(
    b: &Backend,
    bytes: &[u8],
    inputs: &HashMap<String, Tensor>,
    opts: &Options,
) -> Result<HashMap<String, Tensor>, String> {
    let mut s = b.session(bytes, opts).map_err(|e| e.to_string())?;
    Ok(s.run_map(inputs)
        .map_err(|e| e.to_string())?
        .into_iter()
        .collect())
}

/// Runs the sub-models of `plan` in order on `b`, feeding each from the graph inputs and
/// earlier outputs; returns every tensor produced.
pub fn run_split(
    b: &Backend,
    model: &Model,
    plan: &Plan,
    inputs: &HashMap<String, Tensor>,
) -> Result<HashMap<String, Tensor>, String> {
    let mut avail = inputs.clone();
    for p in 0..plan.partitions.len() {
        let bytes = onnx::encode_model(&split::sub_model(model, plan, p));
        let mut ins = HashMap::new();
        for t in &plan.partitions[p].inputs {
            let x = avail
                .get(&t.name)
                .ok_or_else(|| format!("partition {p} needs '{}', not produced yet", t.name))?;
            ins.insert(t.name.clone(), x.clone());
        }
        let outs = run_once(b, &bytes, &ins, &Options::default())
            .map_err(|e| format!("partition {p}: {e}"))?;
        avail.extend(outs);
    }
    Ok(avail)
}
