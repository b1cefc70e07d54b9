//! `dicesim profile`: per-layer times of a model on this host, and a fit of the simulator's
//! baseline compute model to them. The measuring thread is pinned to one CPU; the CSV gives
//! each layer's median and 10th/90th percentiles, and its header (`#` lines) records the CPU
//! model, governor, frequency and affinity of the host and the method.
//!
//! Two methods:
//! - **In context** (default, [`profile_in_context`]): the whole model runs in tract and
//!   every operator of tract's optimised plan is timed in place. **Fusion:** tract folds
//!   BatchNormalization and activations into the convolution before them; a fused operator's
//!   time is charged to the head of the chain (the convolution, see `move_fused_times`) and
//!   the layers folded into it get 0, so a partition cut inside a chain charges the
//!   convolution's side, where tract then runs the convolution. The in-context times are
//!   then fitted to contiguous sub-model runs ([`fit_to_chunks`]), which also measures the
//!   per-run cost of a partition (the simulator's `run_overhead_us`).
//! - **Isolated** (`--isolated`, [`profile_model`]): every layer runs as its own single-layer
//!   sub-model. A single-layer sub-model cannot fuse with its neighbours, so a fused pair
//!   (Conv + Relu) is measured as two layers: the activation is charged one extra pass over
//!   its tensor plus the per-run overhead of a sub-model, and the sum of the profile exceeds
//!   the whole model's time.

use crate::timing::{pause, random_inputs, thread_cpu_us, time_partition, timed_runs};
use anyhow::{bail, Result};
use dicesim_plan::graph::{Graph, Layer};
use dicesim_plan::mapping::Mapping;
use dicesim_plan::partition::Plan;
use dicesim_plan::Model;
use dicesim_stats::{index_percentile, median};
use std::collections::HashMap;
use std::time::Instant;

pub use crate::baseline::{fit, model_us, Fit};
pub use crate::chunks::{fit_to_chunks, Chunk};
pub use crate::csv::{host_info, write_csv};
pub use crate::timing::{allowed_cpus, pin_to, time_partitions, Pace};

/// One layer's measured time.
#[derive(Debug, Clone)]
pub struct LayerTime {
    /// Layer name.
    pub layer: String,
    /// Operator.
    pub op: String,
    /// Median [us].
    pub time_us: f64,
    /// 10th percentile [us].
    pub p10_us: f64,
    /// 90th percentile [us].
    pub p90_us: f64,
    /// FLOPs (the simulator's count).
    pub flops: u64,
    /// Bytes moved (inputs + outputs + parameters): the compute model's memory term.
    pub bytes: u64,
}

impl LayerTime {
    /// A layer's entry from its sorted run times [us] (0 for no runs).
    pub(crate) fn new(layer: &Layer, sorted: &[f64]) -> LayerTime {
        LayerTime {
            layer: layer.name.clone(),
            op: layer.op.clone(),
            time_us: median(sorted).unwrap_or(0.0),
            p10_us: index_percentile(sorted, 0.1).unwrap_or(0.0),
            p90_us: index_percentile(sorted, 0.9).unwrap_or(0.0),
            flops: layer.flops,
            bytes: layer.input_bytes + layer.output_bytes + layer.params_bytes,
        }
    }
}

/// Measures every layer of `model` (warm-up runs, then repetitions until about
/// `budget_ms` per layer, between 5 and 200 runs). Layers that tract cannot run alone (a
/// non-f32 input) are skipped with a warning on stderr.
pub fn profile_model(model: &Model, warmup: usize, budget_ms: f64) -> Result<Vec<LayerTime>> {
    let g = &model.graph;
    let names: Vec<String> = (0..g.layers.len()).map(|i| format!("h.l{i}")).collect();
    let plan = Plan::build(g, &Mapping::from_assignment(&names))?;
    let mut out = Vec::new();
    for (p, part) in plan.partitions.iter().enumerate() {
        let &[l] = part.layers.as_slice() else {
            bail!(
                "partition {p} has {} layers, expected one",
                part.layers.len()
            );
        };
        let layer = &g.layers[l];
        match time_partition(model, &plan, p, warmup, budget_ms, Pace::HOT) {
            Ok(t) => out.push(LayerTime::new(layer, &t)),
            Err(e) => eprintln!(
                "profile: skipping layer {} ({}): {e:#}",
                layer.name, layer.op
            ),
        }
    }
    Ok(out)
}

/// A profile taken in context: the whole model runs in tract and every operator of tract's
/// optimised plan is timed in place; see [`attribute`] for how operator times become layer
/// times. All times are thread CPU time [us] (each run's operator wall times are scaled by
/// that run's CPU / wall ratio), as the emulation rig paces its workers by CPU time.
#[derive(Debug, Clone)]
pub struct ContextProfile {
    /// Per-layer times (layers tract fused into another have time 0).
    pub layers: Vec<LayerTime>,
    /// Median CPU time of a whole run through the engine's public entry (inputs handed in,
    /// outputs taken out) [us].
    pub run_us: f64,
    /// Median per-run cost outside every operator: `run_us` minus the summed layer times
    /// (handing inputs to the engine, taking outputs, the run's state) [us].
    pub run_overhead_us: f64,
    /// Operators (over 1 us per run) whose names match no layer; their time is in
    /// `run_overhead_us`.
    pub unattributed: Vec<String>,
    /// The chunks the profile was fitted to (empty: not fitted; see [`fit_to_chunks`]).
    pub chunks: Vec<Chunk>,
}

/// The layer an operator of tract's plan comes from: the layer of the same name, else the
/// layer whose name followed by `.` is the longest prefix of the operator's name (tract
/// names the operators it derives from a node `<node>.<suffix>`).
pub fn attribute(node: &str, layers: &HashMap<&str, usize>) -> Option<usize> {
    if let Some(&i) = layers.get(node) {
        return Some(i);
    }
    let mut end = node.len();
    while let Some(dot) = node[..end].rfind('.') {
        if let Some(&i) = layers.get(&node[..dot]) {
            return Some(i);
        }
        end = dot;
    }
    None
}

/// Operators that tract folds into the convolution or matrix product before them.
const FUSIBLE: &[&str] = &[
    "BatchNormalization",
    "Relu",
    "Clip",
    "LeakyRelu",
    "Sigmoid",
    "HardSigmoid",
    "HardSwish",
    "Add",
    "Mul",
];

/// The single producer of layer `l` when `l` is its only reader (a link of a fusable chain).
fn sole_producer(g: &Graph, l: usize) -> Option<usize> {
    let mut ps = g.layers[l]
        .inputs
        .iter()
        .filter_map(|t| g.tensors.get(t))
        .filter_map(|t| t.producer.map(|p| (p, t.consumers.len())));
    let (p, consumers) = ps.next()?;
    (ps.next().is_none() && consumers == 1).then_some(p)
}

/// When tract fuses a chain (Conv -> BatchNormalization -> Clip) it may name the fused
/// operator after the *last* layer of the chain, which then carries the convolution's time
/// while the convolution shows 0. This moves such a time back to the head of the chain: a
/// layer of a [`FUSIBLE`] kind with time, whose chain of single producers (each read only by
/// the next) reaches through layers with time 0 a Conv/Gemm/MatMul with time 0. A partition
/// cut inside the chain then charges the convolution's partition, where the work runs
/// when tract cannot fuse across the cut.
fn move_fused_times(g: &Graph, per_layer: &mut [Vec<f64>]) {
    let zero = |v: &[f64]| v.iter().all(|x| *x == 0.0);
    for l in 0..g.layers.len() {
        if !FUSIBLE.contains(&g.layers[l].op.as_str()) || zero(&per_layer[l]) {
            continue;
        }
        let mut cur = l;
        while let Some(p) = sole_producer(g, cur) {
            if !zero(&per_layer[p]) {
                break;
            }
            if matches!(g.layers[p].op.as_str(), "Conv" | "Gemm" | "MatMul") {
                let t = std::mem::take(&mut per_layer[l]);
                per_layer[l] = vec![0.0; t.len()];
                per_layer[p] = t;
                break;
            }
            if !FUSIBLE.contains(&g.layers[p].op.as_str()) {
                break;
            }
            cur = p;
        }
    }
}

/// Per-layer CPU times of `runs` operator-timed runs of `s`, and the operators (over 1 us
/// per run) that match no layer.
fn operator_times(
    g: &Graph,
    s: &dicesim_tract::Session,
    ins: &HashMap<String, dicesim_tract::Tensor>,
    runs: usize,
    pace: Pace,
) -> Result<(Vec<Vec<f64>>, Vec<String>)> {
    let nt = s.node_times(ins, runs, &thread_cpu_us, &mut |w| pause(pace, w))?;
    // each run's operator wall times, scaled to that run's CPU time
    let scale: Vec<f64> = nt
        .run_wall_us
        .iter()
        .zip(&nt.run_cpu_us)
        .map(|(w, c)| if *w > 0.0 { (c / w).min(1.0) } else { 1.0 })
        .collect();
    let names: HashMap<&str, usize> = g
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| (l.name.as_str(), i))
        .collect();
    let mut per_layer = vec![vec![0f64; runs]; g.layers.len()];
    let mut unattributed = Vec::new();
    for (name, t) in &nt.nodes {
        match attribute(name, &names) {
            Some(i) => {
                for ((d, x), k) in per_layer[i].iter_mut().zip(t).zip(&scale) {
                    *d += x * k;
                }
            }
            None if t.iter().sum::<f64>() / runs as f64 > 1.0 => unattributed.push(name.clone()),
            None => {}
        }
    }
    Ok((per_layer, unattributed))
}

/// Profiles `model` in context on the calling thread: `warmup` untimed runs, then whole
/// runs and operator-timed runs, each for about half of `budget_ms` (5 to 200 runs each).
/// `pace` sets what happens between runs ([`Pace`]: a duty cycle, evicted caches;
/// `budget_ms` counts the pauses too).
/// A layer's time per run is the sum of its operators' times; an operator tract fused from
/// several layers (Conv + BatchNormalization + Relu) is charged to the head of the fused
/// chain (the convolution; see `move_fused_times`), the others get 0. With `chunks` > 1 the
/// profile is then fitted to that many sub-model runs ([`fit_to_chunks`]), which also
/// measures the per-run cost.
pub fn profile_in_context(
    model: &Model,
    warmup: usize,
    budget_ms: f64,
    pace: Pace,
    chunks: usize,
) -> Result<ContextProfile> {
    let g = &model.graph;
    let bytes = dicesim_plan::onnx::encode_model(&model.static_proto());
    let s = dicesim_tract::Session::from_onnx_bytes(&bytes)?;
    let ins = random_inputs(&s);
    // whole runs through the public entry (as a worker runs a partition)
    let start = Instant::now();
    let whole = timed_runs(&s, &ins, warmup, budget_ms / 2.0, pace)?;
    let run_us = median(&whole).unwrap_or(0.0);
    let per_run_ms = start.elapsed().as_secs_f64() * 1e3 / (whole.len() + warmup) as f64;
    let runs = ((budget_ms / 2.0 / per_run_ms.max(1e-3)) as usize).clamp(5, 200);
    let (mut per_layer, unattributed) = operator_times(g, &s, &ins, runs, pace)?;
    move_fused_times(g, &mut per_layer);
    let layers: Vec<LayerTime> = g
        .layers
        .iter()
        .zip(per_layer)
        .map(|(layer, mut t)| {
            dicesim_stats::sort(&mut t);
            LayerTime::new(layer, &t)
        })
        .collect();
    let sum: f64 = layers.iter().map(|l| l.time_us).sum();
    let mut prof = ContextProfile {
        layers,
        run_us,
        run_overhead_us: (run_us - sum).max(0.0),
        unattributed,
        chunks: Vec::new(),
    };
    if chunks > 1 {
        let chunk_ms = budget_ms / chunks as f64;
        fit_to_chunks(model, &mut prof, chunks, warmup, chunk_ms, pace)?;
    }
    Ok(prof)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators_are_charged_to_the_longest_dotted_prefix_layer() {
        let names: HashMap<&str, usize> =
            [("conv1", 0), ("layer1.0.conv1", 1), ("layer1.0", 2)].into();
        assert_eq!(attribute("conv1", &names), Some(0));
        assert_eq!(attribute("conv1.pack", &names), Some(0));
        assert_eq!(attribute("layer1.0.conv1.im2col.0", &names), Some(1));
        assert_eq!(attribute("layer1.0.add", &names), Some(2));
        // a prefix must end at a dot: conv10 is not conv1's
        assert_eq!(attribute("conv10", &names), None);
        assert_eq!(attribute("input", &names), None);
    }
}
