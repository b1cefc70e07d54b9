//! Fitting an in-context profile to contiguous sub-model runs ([`fit_to_chunks`]).

use crate::profile::ContextProfile;
use crate::timing::{time_partitions, Pace};
use anyhow::Result;
use dicesim_plan::mapping::Mapping;
use dicesim_plan::partition::{Partition, Plan};
use dicesim_plan::Model;
use dicesim_stats::median;

/// One contiguous chunk of a model run as its own sub-model ([`fit_to_chunks`]).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Chunk {
    /// First and last layer (topological order).
    pub first: String,
    /// Last layer.
    pub last: String,
    /// Median CPU time of the chunk's sub-model per run [us].
    pub run_us: f64,
    /// Its layers' in-context times before the fit [us].
    pub layers_us: f64,
    /// Factor applied to its layers.
    pub scale: f64,
}

/// Fits an in-context profile to sub-model runs: the model is cut into `k` contiguous
/// chunks of equal layer counts (fixed by the model, not by any mapping), each runs alone as
/// a sub-model (paced like the profile), and with `T_c` its median CPU time, `T` the whole
/// model's and `S_c` its layers' in-context sum:
/// - the per-run cost is `o = max(0, (sum T_c - T) / (k - 1))` (what a run pays once
///   however many layers it has: handing inputs over, cold start, output copies);
/// - each chunk's layers are scaled by `(T_c - o) / S_c` (clamped to 0.25..4), so that what
///   tract does differently at a sub-model's edges, or charges in context to a
///   neighbouring layer, is put back inside the chunk that pays it.
///
/// A partition's prediction `sum of its layers + o` then equals each chunk's measured run.
pub fn fit_to_chunks(
    model: &Model,
    prof: &mut ContextProfile,
    k: usize,
    warmup: usize,
    budget_ms: f64,
    pace: Pace,
) -> Result<()> {
    let g = &model.graph;
    let n = g.layers.len();
    let k = k.min(n);
    if k < 2 {
        return Ok(());
    }
    let names: Vec<String> = (0..n).map(|i| format!("h.c{}", i * k / n)).collect();
    let plan = Plan::build(g, &Mapping::from_assignment(&names))?;
    let parts: Vec<f64> = time_partitions(model, &plan, warmup, budget_ms, pace)?
        .iter()
        .map(|t| median(t).unwrap_or(0.0))
        .collect();
    let t_sum: f64 = parts.iter().sum();
    let kp = plan.partitions.len();
    let o = if kp > 1 {
        ((t_sum - prof.run_us) / (kp - 1) as f64).max(0.0)
    } else {
        prof.run_overhead_us
    };
    prof.run_overhead_us = o;
    prof.chunks.clear();
    for (part, tc) in plan.partitions.iter().zip(parts) {
        let chunk = scale_chunk(model, prof, part, tc, o);
        prof.chunks.push(chunk);
    }
    Ok(())
}

/// Scales the layers of one chunk (`part`, measured `tc` [us] per run) so that they and
/// the per-run cost `o` add up to `tc`; returns the chunk's record.
fn scale_chunk(
    model: &Model,
    prof: &mut ContextProfile,
    part: &Partition,
    tc: f64,
    o: f64,
) -> Chunk {
    let g = &model.graph;
    let sc: f64 = part.layers.iter().map(|&l| prof.layers[l].time_us).sum();
    let scale = if sc > 0.0 {
        ((tc - o) / sc).clamp(0.25, 4.0)
    } else {
        1.0
    };
    for &l in &part.layers {
        let lt = &mut prof.layers[l];
        lt.time_us *= scale;
        lt.p10_us *= scale;
        lt.p90_us *= scale;
    }
    Chunk {
        first: g.layers[part.layers[0]].name.clone(),
        last: g.layers[*part.layers.last().unwrap_or(&0)].name.clone(),
        run_us: tc,
        layers_us: sc,
        scale,
    }
}
