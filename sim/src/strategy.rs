//! Mapping strategies: `single`, `even` and `pipeedge` (the `explicit` strategy reads a
//! mapping file). Each returns a [`Mapping`] over the prepared scenario's graph.

use dicesim_plan::mapping::Mapping;

use crate::error::SimError;
use crate::kernel::Time;
use crate::prepared::PreparedScenario;

/// Builds a mapping from a platform unit index per layer.
pub fn mapping_from_assignment(prep: &PreparedScenario, assign: &[usize]) -> Mapping {
    let mut units: Vec<String> = Vec::new();
    let mut ids: Vec<usize> = Vec::new();
    let layer_unit = assign
        .iter()
        .map(|&u| match ids.iter().position(|&x| x == u) {
            Some(i) => i,
            None => {
                ids.push(u);
                units.push(prep.platform.units[u].full_name.clone());
                ids.len() - 1
            }
        })
        .collect();
    Mapping { units, layer_unit }
}

/// Platform unit indices allowed by an optional `units = [...]` restriction.
pub fn allowed_units(
    prep: &PreparedScenario,
    restrict: Option<&[String]>,
) -> Result<Vec<usize>, SimError> {
    match restrict {
        None => Ok((0..prep.platform.units.len()).collect()),
        Some(names) => names
            .iter()
            .map(|n| {
                prep.platform.unit_index(n).ok_or_else(|| {
                    SimError::Mapping(format!(
                        "mapping.units names `{n}`, which the platform does not have (known: {})",
                        prep.platform.unit_names().join(", ")
                    ))
                })
            })
            .collect(),
    }
}

/// `single`: the one unit with the lowest latency whose device can hold the whole model
/// (ties: platform order). If none fits, the one with the lowest latency anyway (the report
/// then marks it infeasible).
pub fn single(prep: &PreparedScenario, units: &[usize]) -> Result<Mapping, SimError> {
    let nl = prep.graph.layers.len();
    let mut best: Option<(bool, Time, usize)> = None;
    for &u in units {
        let assign = vec![u; nl];
        let plan = prep.sim_plan(&assign);
        let mem = prep.memory_bytes(&plan);
        let d = prep.platform.units[u].device;
        let fits = mem[d] as f64 <= prep.platform.devices[d].memory_mb * 1024.0 * 1024.0;
        let t: Time = prep.layer_ns[u].iter().sum();
        let key = (!fits, t, u);
        if best.is_none_or(|b| key < b) {
            best = Some(key);
        }
    }
    let (_, _, u) = best.ok_or_else(|| SimError::Mapping("no unit to map to".into()))?;
    Ok(mapping_from_assignment(prep, &vec![u; nl]))
}

/// `even`: contiguous stages of about equal FLOPs, one per device (platform order) on its
/// fastest allowed unit (lowest whole-model time).
pub fn even(prep: &PreparedScenario, units: &[usize]) -> Result<Mapping, SimError> {
    let mut stage_units = Vec::new();
    for (d, _) in prep.platform.devices.iter().enumerate() {
        let best = units
            .iter()
            .copied()
            .filter(|&u| prep.platform.units[u].device == d)
            .min_by_key(|&u| (prep.layer_ns[u].iter().sum::<Time>(), u));
        if let Some(u) = best {
            stage_units.push(u);
        }
    }
    if stage_units.is_empty() {
        return Err(SimError::Mapping("no unit to map to".into()));
    }
    let nl = prep.graph.layers.len();
    let n = stage_units.len().min(nl.max(1));
    let total: f64 = prep.graph.layers.iter().map(|l| l.flops as f64).sum();
    let mut assign = Vec::with_capacity(nl);
    let mut acc = 0.0;
    let mut stage = 0;
    for (l, layer) in prep.graph.layers.iter().enumerate() {
        // leave at least one layer to each remaining stage
        let must_advance = nl - l <= n - 1 - stage && stage + 1 < n;
        let midpoint = acc + layer.flops as f64 / 2.0;
        if stage + 1 < n
            && l > 0
            && (must_advance || midpoint > total * (stage + 1) as f64 / n as f64)
        {
            stage += 1;
        }
        acc += layer.flops as f64;
        assign.push(stage_units[stage]);
    }
    Ok(mapping_from_assignment(prep, &assign))
}

/// `pipeedge`: PipeEdge's dynamic programme. Contiguous stages in topological order, each
/// on a distinct unit; minimises the slowest stage, where a stage's time is its compute time
/// and each cut costs the transfer of the tensors crossing it (latency + bytes at the
/// route's bottleneck bandwidth, or a copy within a device). A stage must fit its device's
/// memory (weights + activations of the stage). The number of stages is chosen by the DP.
/// Cost is O(2^U * L^2 * U^2) for U units, L layers; U is limited to 12.
#[allow(clippy::needless_range_loop)] // indices address several tables at once
pub fn pipeedge(prep: &PreparedScenario, units: &[usize]) -> Result<Mapping, SimError> {
    let nu = units.len();
    if nu == 0 {
        return Err(SimError::Mapping("no unit to map to".into()));
    }
    if nu > 12 {
        return Err(SimError::Mapping(format!(
            "pipeedge: {nu} units is too many for the exact DP (at most 12); restrict them \
             with mapping.units"
        )));
    }
    let g = &prep.graph;
    let nl = g.layers.len();
    // prefix compute per unit
    let prefix: Vec<Vec<Time>> = units
        .iter()
        .map(|&u| {
            let mut v = vec![0; nl + 1];
            for l in 0..nl {
                v[l + 1] = v[l] + prep.layer_ns[u][l];
            }
            v
        })
        .collect();
    // bytes crossing the cut before layer i, and bytes held by a stage (weights + outputs)
    let mut cut = vec![0u64; nl + 1];
    for t in g.tensors.values() {
        if let (Some(p), Some(&last)) = (t.producer, t.consumers.last()) {
            for c in cut.iter_mut().take(last + 1).skip(p + 1) {
                *c += t.bytes;
            }
        }
    }
    let mut mem_prefix = vec![0u64; nl + 1];
    for l in 0..nl {
        mem_prefix[l + 1] = mem_prefix[l] + g.layers[l].params_bytes + g.layers[l].output_bytes;
    }
    let limit = |k: usize| {
        let d = prep.platform.units[units[k]].device;
        (prep.platform.devices[d].memory_mb * 1024.0 * 1024.0) as u64
    };
    let xfer = |a: usize, b: usize, bytes: u64| -> Time {
        let (ua, ub) = (units[a], units[b]);
        let (da, db) = (
            prep.platform.units[ua].device,
            prep.platform.units[ub].device,
        );
        if ua == ub || bytes == 0 {
            0
        } else if da == db {
            (bytes as f64 / prep.platform.device_copy_gbps(da)).round() as Time
        } else {
            match prep.network.route(da, db) {
                Some(r) => r.latency_ns + (bytes as f64 / r.bottleneck).round() as Time,
                None => Time::MAX,
            }
        }
    };
    let nm = 1usize << nu;
    const INF: Time = Time::MAX;
    // best[mask][i][k]: min bottleneck for layers [0, i) using `mask`, last stage on k
    let idx = |m: usize, i: usize, k: usize| (m * (nl + 1) + i) * nu + k;
    let mut best = vec![INF; nm * (nl + 1) * nu];
    let mut from: Vec<(u32, u32, u8)> = vec![(0, 0, 0); nm * (nl + 1) * nu];
    for k in 0..nu {
        for j in 1..=nl {
            if mem_prefix[j] <= limit(k) {
                let m = 1 << k;
                best[idx(m, j, k)] = prefix[k][j];
                from[idx(m, j, k)] = (0, 0, u8::MAX);
            }
        }
    }
    for m in 1..nm {
        for i in 1..nl {
            for k in 0..nu {
                let cur = best[idx(m, i, k)];
                if cur == INF {
                    continue;
                }
                for v in 0..nu {
                    if m & (1 << v) != 0 {
                        continue;
                    }
                    let t = xfer(k, v, cut[i]);
                    if t == INF {
                        continue;
                    }
                    let base = cur.max(t);
                    let nm2 = m | (1 << v);
                    for j in i + 1..=nl {
                        if mem_prefix[j] - mem_prefix[i] > limit(v) {
                            break;
                        }
                        let c = base.max(prefix[v][j] - prefix[v][i]);
                        let e = idx(nm2, j, v);
                        if c < best[e] {
                            best[e] = c;
                            from[e] = (m as u32, i as u32, k as u8);
                        }
                    }
                }
            }
        }
    }
    // fewest stages among equal bottlenecks, then lowest mask / unit for determinism
    let mut end: Option<(Time, u32, usize, usize)> = None;
    for m in 1..nm {
        for k in 0..nu {
            let c = best[idx(m, nl, k)];
            if c != INF {
                let key = (c, m.count_ones(), m, k);
                if end.is_none_or(|e| key < e) {
                    end = Some(key);
                }
            }
        }
    }
    let Some((_, _, mut m, mut k)) = end else {
        return Err(SimError::Mapping(
            "pipeedge: no set of stages fits the devices' memory".into(),
        ));
    };
    let mut assign = vec![0usize; nl];
    let mut j = nl;
    loop {
        let (pm, pi, pk) = from[idx(m, j, k)];
        let i = if pk == u8::MAX { 0 } else { pi as usize };
        for a in assign.iter_mut().take(j).skip(i) {
            *a = units[k];
        }
        if pk == u8::MAX {
            break;
        }
        (m, j, k) = (pm as usize, i, pk as usize);
    }
    Ok(mapping_from_assignment(prep, &assign))
}
