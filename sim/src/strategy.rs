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
    Mapping {
        units,
        layer_unit,
        groups: Vec::new(),
    }
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
                prep.platform.find_unit(n).ok_or_else(|| {
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
    let (_, _, u) = best.ok_or(SimError::EmptySearchSpace { what: "single" })?;
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
        return Err(SimError::EmptySearchSpace { what: "even" });
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
/// Cost is O(2^U * L^2 * U^2) for U units, L layers; U is limited to [`PIPEEDGE_MAX_UNITS`].
pub fn pipeedge(prep: &PreparedScenario, units: &[usize]) -> Result<Mapping, SimError> {
    let nu = units.len();
    if nu == 0 {
        return Err(SimError::EmptySearchSpace { what: "pipeedge" });
    }
    if nu > PIPEEDGE_MAX_UNITS {
        return Err(SimError::Mapping(format!(
            "pipeedge: {nu} units is too many for the exact DP (at most {PIPEEDGE_MAX_UNITS}); \
             restrict them with mapping.units"
        )));
    }
    let mut dp = PipeEdgeDp::new(prep, units);
    dp.first_stages();
    dp.extend_stages();
    let Some((m, k)) = dp.best_end() else {
        return Err(SimError::Mapping(
            "pipeedge: no set of stages fits the devices' memory".into(),
        ));
    };
    Ok(mapping_from_assignment(prep, &dp.assignment(m, k)))
}

/// Most units the exact PipeEdge DP accepts (its tables grow as 2^units).
pub const PIPEEDGE_MAX_UNITS: usize = 12;

/// Unreachable DP state.
const INF: Time = Time::MAX;

/// The tables of PipeEdge's DP: `best[mask][i][k]` is the smallest bottleneck for layers
/// `[0, i)` on the units of `mask`, the last stage on unit `k` (indices into `units`).
struct PipeEdgeDp<'a> {
    prep: &'a PreparedScenario,
    units: &'a [usize],
    layers: usize,
    // prefix[k][i]: compute time of layers [0, i) on unit k
    prefix: Vec<Vec<Time>>,
    // cut[i]: bytes crossing the cut before layer i
    cut: Vec<u64>,
    // mem_prefix[i]: bytes held by layers [0, i) (weights + outputs)
    mem_prefix: Vec<u64>,
    best: Vec<Time>,
    // (previous mask, previous cut, previous unit; u8::MAX for a first stage)
    from: Vec<(u32, u32, u8)>,
}

impl<'a> PipeEdgeDp<'a> {
    fn new(prep: &'a PreparedScenario, units: &'a [usize]) -> Self {
        let g = &prep.graph;
        let nl = g.layers.len();
        let prefix = units
            .iter()
            .map(|&u| {
                let mut v = vec![0; nl + 1];
                for l in 0..nl {
                    v[l + 1] = v[l] + prep.layer_ns[u][l];
                }
                v
            })
            .collect();
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
        let size = (1usize << units.len()) * (nl + 1) * units.len();
        PipeEdgeDp {
            prep,
            units,
            layers: nl,
            prefix,
            cut,
            mem_prefix,
            best: vec![INF; size],
            from: vec![(0, 0, 0); size],
        }
    }

    fn idx(&self, m: usize, i: usize, k: usize) -> usize {
        (m * (self.layers + 1) + i) * self.units.len() + k
    }

    /// Memory of the device of unit `k` [bytes].
    fn limit(&self, k: usize) -> u64 {
        let d = self.prep.platform.units[self.units[k]].device;
        (self.prep.platform.devices[d].memory_mb * 1024.0 * 1024.0) as u64
    }

    /// Time to move `bytes` from unit `a` to unit `b` (INF without a route).
    fn xfer(&self, a: usize, b: usize, bytes: u64) -> Time {
        let p = &self.prep.platform;
        let (ua, ub) = (self.units[a], self.units[b]);
        let (da, db) = (p.units[ua].device, p.units[ub].device);
        if ua == ub || bytes == 0 {
            0
        } else if da == db {
            (bytes as f64 / p.device_copy_gbps(da)).round() as Time
        } else {
            match self.prep.network.route(da, db) {
                Some(r) => r.latency_ns + (bytes as f64 / r.bottleneck).round() as Time,
                None => INF,
            }
        }
    }

    /// One-stage plans: layers [0, j) on unit k where they fit.
    fn first_stages(&mut self) {
        for k in 0..self.units.len() {
            for j in 1..=self.layers {
                if self.mem_prefix[j] <= self.limit(k) {
                    let e = self.idx(1 << k, j, k);
                    self.best[e] = self.prefix[k][j];
                    self.from[e] = (0, 0, u8::MAX);
                }
            }
        }
    }

    /// Adds a stage to every reachable state, masks in increasing order.
    fn extend_stages(&mut self) {
        let nu = self.units.len();
        for m in 1..1usize << nu {
            for i in 1..self.layers {
                for k in 0..nu {
                    let cur = self.best[self.idx(m, i, k)];
                    if cur != INF {
                        self.extend_state(m, i, k, cur);
                    }
                }
            }
        }
    }

    /// From state (mask `m`, layers [0, i), last unit `k`, bottleneck `cur`): a next stage
    /// [i, j) on every unused unit `v`.
    fn extend_state(&mut self, m: usize, i: usize, k: usize, cur: Time) {
        for v in 0..self.units.len() {
            if m & (1 << v) != 0 {
                continue;
            }
            let t = self.xfer(k, v, self.cut[i]);
            if t == INF {
                continue;
            }
            let base = cur.max(t);
            let nm2 = m | (1 << v);
            for j in i + 1..=self.layers {
                if self.mem_prefix[j] - self.mem_prefix[i] > self.limit(v) {
                    break;
                }
                let c = base.max(self.prefix[v][j] - self.prefix[v][i]);
                let e = self.idx(nm2, j, v);
                if c < self.best[e] {
                    self.best[e] = c;
                    self.from[e] = (m as u32, i as u32, k as u8);
                }
            }
        }
    }

    /// The final state with the smallest bottleneck: fewest stages among equals, then
    /// lowest mask and unit (determinism).
    fn best_end(&self) -> Option<(usize, usize)> {
        let mut end: Option<(Time, u32, usize, usize)> = None;
        for m in 1..1usize << self.units.len() {
            for k in 0..self.units.len() {
                let c = self.best[self.idx(m, self.layers, k)];
                if c != INF {
                    let key = (c, m.count_ones(), m, k);
                    if end.is_none_or(|e| key < e) {
                        end = Some(key);
                    }
                }
            }
        }
        end.map(|(_, _, m, k)| (m, k))
    }

    /// The platform unit of each layer, walking back from final state (`m`, `k`).
    fn assignment(&self, mut m: usize, mut k: usize) -> Vec<usize> {
        let mut assign = vec![0usize; self.layers];
        let mut j = self.layers;
        loop {
            let (pm, pi, pk) = self.from[self.idx(m, j, k)];
            let i = if pk == u8::MAX { 0 } else { pi as usize };
            for a in assign.iter_mut().take(j).skip(i) {
                *a = self.units[k];
            }
            if pk == u8::MAX {
                return assign;
            }
            (m, j, k) = (pm as usize, i, pk as usize);
        }
    }
}
