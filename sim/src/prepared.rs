//! The prepared scenario: everything about a (graph, platform, workload) triple that does not
//! depend on the mapping, precomputed once (per-unit layer-time tables, compact tensor lists,
//! routes), so that evaluating a mapping is cheap. This is what the explorer calls.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use dicesim_plan::graph::Graph;
use dicesim_plan::mapping::Mapping;
use dicesim_plan::partition::Plan;
use dicesim_stats::Summary;

use crate::engine::{Engine, Outcome, Target};
pub use crate::engine::{SimConn, SimPart, SimPlan, Window, Workload};
use crate::error::SimError;
use crate::kernel::{AsFastAsPossible, Time};
use crate::network::Network;
use crate::platform::Platform;

/// A tensor in compact form.
#[derive(Debug, Clone)]
pub(crate) struct CTensor {
    pub producer: Option<u32>,
    pub consumers: Vec<u32>,
    pub bytes: u64,
    pub graph_output: bool,
}

/// The cheap summary of one evaluation (what the search optimises).
#[derive(Debug, Clone, PartialEq)]
pub struct Metrics {
    /// Mean frame latency [ns].
    pub latency_mean_ns: f64,
    /// Median frame latency [ns].
    pub latency_p50_ns: Time,
    /// 95th percentile frame latency [ns].
    pub latency_p95_ns: Time,
    /// Largest frame latency [ns].
    pub latency_max_ns: Time,
    /// Frames per second from the first entry to the last exit.
    pub throughput_fps: f64,
    /// Time of the last exit [ns].
    pub makespan_ns: Time,
    /// Energy of the whole platform over the makespan, per frame [mJ].
    pub energy_mj_per_frame: f64,
    /// Whether every device's memory need fits.
    pub memory_ok: bool,
    /// Largest memory need relative to the device's memory (1.0 = full).
    pub max_memory_frac: f64,
    /// Number of partitions.
    pub partitions: usize,
}

/// The figures the search optimises, each from a run made for it, so that none depends on
/// how many frames the scenario asks for (docs/simulator.md, "Objectives").
#[derive(Debug, Clone, PartialEq)]
pub struct Objectives {
    /// The plan's latency [ns]: with a saturating workload (period 0), one frame through the
    /// otherwise idle plan; with an offered rate (period > 0), the workload's median latency
    /// at that rate.
    pub latency_ns: Time,
    /// One frame through the otherwise idle plan [ns].
    pub latency_unloaded_ns: Time,
    /// Saturated throughput: the steady-state rate with the workload's window [frames/s].
    pub throughput_fps: f64,
    /// Energy per frame [mJ]: at saturation (period 0), or at the offered rate.
    pub energy_mj_per_frame: f64,
    /// Share of the offered rate the plan cannot sustain: 0 when it keeps up (or the workload
    /// saturates), else (offered - sustained) / offered.
    pub overload: f64,
}

/// A (graph, platform, workload) prepared for fast evaluation of mappings.
#[derive(Debug, Clone)]
pub struct PreparedScenario {
    /// The model graph.
    pub graph: Graph,
    /// The platform.
    pub platform: Platform,
    /// Network resources and routes.
    pub network: Network,
    /// The workload.
    pub workload: Workload,
    /// `layer_ns[unit][layer]`: time of a layer on a unit [ns].
    pub layer_ns: Vec<Vec<Time>>,
    /// `run_overhead_ns[unit]`: fixed cost of a partition run on a unit [ns].
    pub run_overhead_ns: Vec<Time>,
    pub(crate) tensors: Vec<CTensor>,
    pub(crate) layer_outputs: Vec<Vec<u32>>,
    pub(crate) layer_params: Vec<u64>,
    /// `layer_bytes[l]`: bytes layer `l` moves through memory per run.
    pub(crate) layer_bytes: Vec<u64>,
    pub(crate) layer_reads_input: Vec<bool>,
    /// `layer_producers[l]`: the layers producing `l`'s inputs (graph inputs left out).
    pub(crate) layer_producers: Vec<Vec<u32>>,
    /// Set by `explore` for `[adapt] explore_latency = "events_p95"` (`docs/events.md`).
    pub(crate) robust: Option<std::sync::Arc<crate::adapt::Robust>>,
}

/// Time of layer `l` of `g` on unit `u` [ns]: see [`crate::compute`].
pub fn layer_time_ns(g: &Graph, l: usize, u: &crate::platform::Unit) -> Time {
    crate::compute::layer_time_ns(&g.layers[l], u)
}

/// The graph's tensors in the engine's compact form (in name order), per layer the
/// tensors it produces, and whether it reads a graph input.
fn tensor_tables(graph: &Graph) -> (Vec<CTensor>, Vec<Vec<u32>>, Vec<bool>) {
    let nl = graph.layers.len();
    let mut tensors = Vec::new();
    let mut layer_outputs = vec![Vec::new(); nl];
    let mut layer_reads_input = vec![false; nl];
    for (name, t) in &graph.tensors {
        let id = tensors.len() as u32;
        if let Some(p) = t.producer {
            layer_outputs[p].push(id);
        } else {
            for &c in &t.consumers {
                layer_reads_input[c] = true;
            }
        }
        tensors.push(CTensor {
            producer: t.producer.map(|p| p as u32),
            consumers: t.consumers.iter().map(|&c| c as u32).collect(),
            bytes: t.bytes,
            graph_output: graph.outputs.contains(name),
        });
    }
    (tensors, layer_outputs, layer_reads_input)
}

/// Per layer, the layers that produce its inputs.
fn layer_producers(graph: &Graph) -> Vec<Vec<u32>> {
    (graph.layers.iter())
        .map(|l| {
            (l.inputs.iter())
                .filter_map(|t| graph.tensors.get(t).and_then(|t| t.producer))
                .map(|p| p as u32)
                .collect()
        })
        .collect()
}

impl PreparedScenario {
    /// Precomputes tables for `graph` on `platform`.
    pub fn new(graph: Graph, platform: Platform, workload: Workload) -> PreparedScenario {
        let network = Network::new(&platform);
        let layer_ns = platform
            .units
            .iter()
            .map(|u| {
                (0..graph.layers.len())
                    .map(|l| layer_time_ns(&graph, l, u))
                    .collect()
            })
            .collect();
        let run_overhead_ns = platform
            .units
            .iter()
            .map(|u| (u.run_overhead_us * 1000.0).round() as Time)
            .collect();
        let (tensors, layer_outputs, layer_reads_input) = tensor_tables(&graph);
        let layer_params = graph.layers.iter().map(|l| l.params_bytes).collect();
        let layer_bytes = graph
            .layers
            .iter()
            .map(crate::compute::layer_bytes)
            .collect();
        let layer_producers = layer_producers(&graph);
        PreparedScenario {
            graph,
            platform,
            network,
            workload,
            layer_ns,
            run_overhead_ns,
            tensors,
            layer_outputs,
            layer_params,
            layer_bytes,
            layer_reads_input,
            layer_producers,
            robust: None,
        }
    }

    /// Resolves a mapping's unit names to platform unit indices, one per layer.
    pub fn assignment(&self, m: &Mapping) -> Result<Vec<usize>, SimError> {
        let ids = m
            .units
            .iter()
            .map(|n| {
                self.platform.find_unit(n).ok_or_else(|| {
                    SimError::Mapping(format!(
                        "mapping names unit `{n}`, which platform `{}` does not have (known: {})",
                        self.platform.path.display(),
                        self.platform.unit_names().join(", ")
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if m.layer_unit.len() != self.graph.layers.len() {
            return Err(SimError::Mapping(format!(
                "mapping covers {} layers, the model has {}",
                m.layer_unit.len(),
                self.graph.layers.len()
            )));
        }
        Ok(m.layer_unit.iter().map(|&i| ids[i]).collect())
    }

    /// Partitions of an assignment (platform unit per layer), exactly as
    /// `dicesim_plan::partition::Plan::build` forms them (so the search evaluates the
    /// partitions that `dicesim split` writes and real execution runs): layers in topological
    /// order join a partition of their unit (first one holding one of their producers, then
    /// the most recently created one) unless that would make partitions wait on each other in
    /// a cycle; partitions are then ordered topologically, ties by their first layer.
    ///
    /// This is an index-only port of that algorithm (no names, no strings), several times
    /// faster than building the `Plan`; `tests/partitions.rs` checks on random mappings of
    /// zoo DAGs that both give the same [`SimPlan`]. A unit's layers that are not adjacent in
    /// the topological order (parallel branches: a ResNet downsample, Inception towers) are
    /// therefore one partition when the data flow allows, not one per contiguous run.
    pub fn sim_plan(&self, assign: &[usize]) -> SimPlan {
        let mut groups = self.group_layers(assign);
        let new_id = topological_ids(&groups.preds);
        let parts = self.ordered_parts(&mut groups, &new_id);
        SimPlan {
            parts,
            conns: merge_conns(self.crossing_tensors(&groups.part_of)),
        }
    }

    /// Layers in topological order join a partition of their unit unless that closes a
    /// cycle (see [`PreparedScenario::sim_plan`]); partitions in order of creation.
    fn group_layers(&self, assign: &[usize]) -> LayerGroups {
        let mut gr = LayerGroups {
            part_of: vec![u32::MAX; assign.len()],
            part_unit: Vec::new(),
            preds: Vec::new(),
        };
        let mut producers: Vec<u32> = Vec::new();
        let mut seen: Vec<bool> = Vec::new();
        let mut stack: Vec<u32> = Vec::new();
        for (l, &u) in assign.iter().enumerate() {
            producers.clear();
            producers.extend(
                self.layer_producers[l]
                    .iter()
                    .map(|&p| gr.part_of[p as usize]),
            );
            producers.sort_unstable();
            producers.dedup();
            let (part_unit, preds) = (&gr.part_unit, &gr.preds);
            // joining `p` must not close a cycle: no other producer may be reachable from it
            let mut ok = |p: u32| {
                producers
                    .iter()
                    .all(|&q| q == p || !reaches(preds, p, q, &mut seen, &mut stack))
            };
            let chosen = producers
                .iter()
                .copied()
                .find(|&p| part_unit[p as usize] == u && ok(p))
                .or_else(|| {
                    (0..part_unit.len() as u32).rev().find(|&p| {
                        part_unit[p as usize] == u && producers.binary_search(&p).is_err() && ok(p)
                    })
                });
            let p = chosen.unwrap_or_else(|| gr.open(u));
            for &q in &producers {
                if q != p && !gr.preds[p as usize].contains(&q) {
                    gr.preds[p as usize].push(q);
                }
            }
            gr.part_of[l] = p;
        }
        gr
    }

    /// The partitions renumbered by `new_id`, with their layers, compute time and whether
    /// they read a graph input; `gr.part_of` is renumbered too.
    fn ordered_parts(&self, gr: &mut LayerGroups, new_id: &[u32]) -> Vec<SimPart> {
        let empty = SimPart {
            unit: 0,
            layers: Vec::new(),
            compute_ns: 0,
            mem_bytes: 0,
            source: false,
        };
        let mut parts = vec![empty; gr.part_unit.len()];
        for (old, &u) in gr.part_unit.iter().enumerate() {
            let p = &mut parts[new_id[old] as usize];
            p.unit = u;
            p.compute_ns = self.run_overhead_ns[u];
        }
        for l in 0..gr.part_of.len() {
            let pi = new_id[gr.part_of[l] as usize];
            gr.part_of[l] = pi;
            let p = &mut parts[pi as usize];
            p.layers.push(l);
            p.compute_ns += self.layer_ns[p.unit][l];
            p.mem_bytes += self.layer_bytes[l];
            p.source |= self.layer_reads_input[l];
        }
        parts
    }

    /// One connection per (producing partition, consuming partition) and tensor.
    fn crossing_tensors(&self, part_of: &[u32]) -> Vec<SimConn> {
        let mut conns = Vec::new();
        let mut to: Vec<u32> = Vec::new();
        for t in &self.tensors {
            let Some(pl) = t.producer else {
                continue;
            };
            let pp = part_of[pl as usize];
            to.clear();
            to.extend(
                t.consumers
                    .iter()
                    .map(|&c| part_of[c as usize])
                    .filter(|&q| q != pp),
            );
            to.sort_unstable();
            to.dedup();
            for &cp in &to {
                conns.push(SimConn {
                    from: pp as usize,
                    to: cp as usize,
                    bytes: t.bytes,
                });
            }
        }
        conns
    }

    /// The engine's view of a plan built by `dicesim_plan::partition::Plan::build`.
    pub fn sim_plan_from(&self, plan: &Plan) -> Result<SimPlan, SimError> {
        let mut parts = Vec::new();
        for p in &plan.partitions {
            let unit = self.platform.find_unit(&p.unit).ok_or_else(|| {
                SimError::Mapping(format!(
                    "partition {} runs on unknown unit `{}`",
                    p.id, p.unit
                ))
            })?;
            parts.push(SimPart {
                unit,
                layers: p.layers.clone(),
                compute_ns: self.run_overhead_ns[unit]
                    + p.layers
                        .iter()
                        .map(|&l| self.layer_ns[unit][l])
                        .sum::<Time>(),
                mem_bytes: p.layers.iter().map(|&l| self.layer_bytes[l]).sum(),
                source: p.layers.iter().any(|&l| self.layer_reads_input[l]),
            });
        }
        let conns = plan
            .edges
            .iter()
            .map(|e| SimConn {
                from: e.from,
                to: e.to,
                bytes: e.bytes,
            })
            .collect();
        Ok(SimPlan {
            parts,
            conns: merge_conns(conns),
        })
    }

    /// Memory need of each device for `plan` [bytes], by each unit's memory model
    /// ([`crate::memory::UnitMemory`]): the engine's base once per physical unit used, the
    /// weights of its partitions x their class's or the unit's weights factor, plus for each of its units the
    /// largest peak of live activations among the partitions it runs (a unit runs one
    /// partition at a time) x the activations factor, plus one receive buffer per incoming
    /// connection and the input frame for source partitions.
    pub fn memory_bytes(&self, plan: &SimPlan) -> Vec<u64> {
        self.memory_terms(plan).device_bytes(&self.platform)
    }

    /// Simulates `plan` (as fast as possible) and returns the full outcome.
    pub fn simulate(&self, plan: &SimPlan, record: bool) -> Result<Outcome, SimError> {
        Engine::new(self.target(), plan, record)?.run(&mut AsFastAsPossible)
    }

    /// What the engine simulates on: this platform, its routes and the workload.
    pub fn target(&self) -> Target<'_> {
        Target {
            platform: &self.platform,
            network: &self.network,
            workload: self.workload,
        }
    }

    /// Simulates `plan` under `workload` instead of the scenario's (as fast as possible).
    pub fn simulate_workload(
        &self,
        plan: &SimPlan,
        workload: Workload,
    ) -> Result<Outcome, SimError> {
        let target = Target {
            workload,
            ..self.target()
        };
        Engine::new(target, plan, false)?.run(&mut AsFastAsPossible)
    }

    /// One frame through the otherwise idle plan [ns].
    pub fn unloaded_latency_ns(&self, plan: &SimPlan) -> Result<Time, SimError> {
        let one = Workload {
            frames: 1,
            period_ns: 0,
            window: Window::Unlimited,
        };
        let out = self.simulate_workload(plan, one)?;
        Ok(out.latencies_ns().first().copied().unwrap_or(0))
    }

    /// Saturated throughput [frames/s] and energy per frame [mJ]: frames offered back to
    /// back under the scenario's window, the rate measured while the pipeline is full and
    /// at most what its busiest core, GPU or network resource allows ([`saturated_rate`]),
    /// the energy over the whole run.
    pub fn saturated(&self, plan: &SimPlan) -> Result<(f64, f64), SimError> {
        let frames = saturation_frames(plan.parts.len(), self.workload.window);
        let w = Workload {
            frames,
            period_ns: 0,
            window: self.workload.window,
        };
        let out = self.simulate_workload(plan, w)?;
        let energy = out.total_energy_mj() / frames as f64;
        let window = self.workload.window.frames(plan.parts.len());
        let busiest = self.busiest_core_ns(&out) as f64 / frames as f64;
        let per_frame = busiest.max(self.busiest_link_ns(plan)).max(1.0);
        Ok((saturated_rate(&out, window, 1e9 / per_frame), energy))
    }

    /// The busy time of a run's busiest core or GPU [ns]: a job on a core set holds each of
    /// its cores, so on every core the jobs of the units that hold it follow each other
    /// (a CPU's whole unit holds all its cores).
    fn busiest_core_ns(&self, out: &Outcome) -> Time {
        let units = &self.platform.units;
        let mut load: Vec<Vec<Time>> = vec![Vec::new(); units.len()];
        for (u, &busy) in units.iter().zip(&out.unit_busy_ns) {
            if busy == 0 {
                continue;
            }
            let cores = &mut load[u.parent];
            for core in u.core_set.cores() {
                let core = core as usize;
                if cores.len() <= core {
                    cores.resize(core + 1, 0);
                }
                cores[core] += busy;
            }
        }
        load.iter().flatten().copied().max().unwrap_or(0)
    }

    /// The time the busiest network resource (a direction of a link, a shared medium)
    /// needs for what `plan` sends across it per frame [ns].
    fn busiest_link_ns(&self, plan: &SimPlan) -> f64 {
        let mut bytes = vec![0u64; self.network.resources.len()];
        let device = |p: usize| self.platform.units[plan.parts[p].unit].device;
        for c in &plan.conns {
            if let Some(route) = self.network.route(device(c.from), device(c.to)) {
                for &r in &route.resources {
                    bytes[r] += c.bytes;
                }
            }
        }
        (bytes.iter().zip(&self.network.resources))
            .map(|(&b, r)| b as f64 / r.capacity)
            .fold(0.0, f64::max)
    }

    /// The search's objectives of `plan` (see [`Objectives`]).
    pub fn objectives(&self, plan: &SimPlan) -> Result<Objectives, SimError> {
        self.objectives_with(plan, None)
    }

    /// [`PreparedScenario::objectives`], reusing `workload_run` (an outcome of `plan` under
    /// the scenario's workload) where an offered rate needs one instead of simulating it
    /// again.
    pub fn objectives_with(
        &self,
        plan: &SimPlan,
        workload_run: Option<&Outcome>,
    ) -> Result<Objectives, SimError> {
        let unloaded = self.unloaded_latency_ns(plan)?;
        let (throughput, saturated_energy) = self.saturated(plan)?;
        if self.workload.period_ns == 0 {
            return Ok(Objectives {
                latency_ns: unloaded,
                latency_unloaded_ns: unloaded,
                throughput_fps: throughput,
                energy_mj_per_frame: saturated_energy,
                overload: 0.0,
            });
        }
        let simulated;
        let out = match workload_run {
            Some(out) => out,
            None => {
                simulated = self.simulate(plan, false)?;
                &simulated
            }
        };
        let offered = 1e9 / self.workload.period_ns as f64;
        let s = Summary::of(&out.latencies_ns()).unwrap_or_default();
        Ok(Objectives {
            latency_ns: s.p50,
            latency_unloaded_ns: unloaded,
            throughput_fps: throughput,
            energy_mj_per_frame: out.total_energy_mj() / out.entry_ns.len().max(1) as f64,
            overload: overload(offered, throughput),
        })
    }

    /// Evaluates a mapping: partitions it, simulates the workload, summarises.
    pub fn evaluate(&self, m: &Mapping) -> Result<Metrics, SimError> {
        let assign = self.assignment(m)?;
        self.evaluate_assignment(&assign)
    }

    /// Evaluates an assignment of a platform unit index to each layer (the explorer's fast
    /// path: no name look-ups).
    pub fn evaluate_assignment(&self, assign: &[usize]) -> Result<Metrics, SimError> {
        let plan = self.sim_plan(assign);
        let out = self.simulate(&plan, false)?;
        let mem = self.memory_bytes(&plan);
        Ok(self.metrics(&plan, &out, &mem))
    }

    /// Summarises an outcome.
    pub fn metrics(&self, plan: &SimPlan, out: &Outcome, mem: &[u64]) -> Metrics {
        let mut max_frac = 0.0f64;
        for (d, &b) in mem.iter().enumerate() {
            let limit = self.platform.devices[d].memory_mb * 1024.0 * 1024.0;
            max_frac = max_frac.max(b as f64 / limit);
        }
        let lat = out.latencies_ns();
        let s = Summary::of(&lat).unwrap_or_default();
        Metrics {
            latency_mean_ns: s.mean,
            latency_p50_ns: s.p50,
            latency_p95_ns: s.p95,
            latency_max_ns: s.max,
            throughput_fps: out.throughput_fps(),
            makespan_ns: out.makespan_ns,
            energy_mj_per_frame: out.total_energy_mj() / out.entry_ns.len().max(1) as f64,
            memory_ok: max_frac <= 1.0,
            max_memory_frac: max_frac,
            partitions: plan.parts.len(),
        }
    }
}

/// Frames of a saturated run: enough for the window to fill three times over, so that
/// the exits before the last entry reach a steady state.
fn saturation_frames(partitions: usize, window: Window) -> u32 {
    let w = window.frames(partitions).unwrap_or(partitions + 2);
    (3 * w + SATURATION_EXTRA_FRAMES).min(SATURATION_MAX_FRAMES) as u32
}

/// Frames added to three times the window in a saturated run.
const SATURATION_EXTRA_FRAMES: usize = 8;
/// Most frames of a saturated run.
const SATURATION_MAX_FRAMES: usize = 256;

/// The saturated rate of a run with `window` frames in flight [frames/s], at most `cap`
/// (what the busiest core, GPU or link allows): over the exits while frames were still
/// being admitted (up to the last entry; after it the pipeline drains, and a unit that
/// runs two segments of a frame then runs only the later one, faster than in steady
/// state), from the `window`-th on (the first `window` frames entered together). Frames
/// can leave in bursts (a convoy through units that several segments share): the cap keeps
/// a burst from reading as the rate. Runs with too few such exits (no window: every frame
/// entered early) take the second half of all exits, or the whole run's rate.
fn saturated_rate(out: &Outcome, window: Option<usize>, cap: f64) -> f64 {
    let last_entry = out.entry_ns.iter().copied().max().unwrap_or(0);
    let mut full: Vec<Time> = (out.exit_ns.iter().copied())
        .filter(|&x| x <= last_entry)
        .collect();
    full.sort_unstable();
    let from = window.unwrap_or(usize::MAX).min(full.len() / 2);
    let second_half = || {
        let mut all = out.exit_ns.clone();
        all.sort_unstable();
        steady_rate(&all, all.len() / 2)
    };
    let measured = steady_rate(&full, from)
        .or_else(second_half)
        .unwrap_or_else(|| out.throughput_fps());
    measured.min(cap)
}

/// Frames per second between exit `from` and the last one of ascending `exits` (`None`
/// with fewer than three exits or no time between them).
fn steady_rate(exits: &[Time], from: usize) -> Option<f64> {
    let n = exits.len();
    if n < 3 || from + 1 >= n || exits[n - 1] <= exits[from] {
        return None;
    }
    Some((n - 1 - from) as f64 / ((exits[n - 1] - exits[from]) as f64 * 1e-9))
}

/// Share of `offered` [frames/s] that `sustained` misses (0 when it keeps up; relative
/// differences under 1e-9 are rounding).
fn overload(offered: f64, sustained: f64) -> f64 {
    let short = (offered - sustained) / offered;
    if short > 1e-9 {
        short
    } else {
        0.0
    }
}

/// Layers grouped into partitions, before the partitions are put in topological order.
struct LayerGroups {
    // partition of each layer
    part_of: Vec<u32>,
    // unit of each partition
    part_unit: Vec<usize>,
    // partitions each partition reads from
    preds: Vec<Vec<u32>>,
}

impl LayerGroups {
    /// Opens a new partition on unit `u`.
    fn open(&mut self, u: usize) -> u32 {
        self.part_unit.push(u);
        self.preds.push(Vec::new());
        (self.part_unit.len() - 1) as u32
    }
}

/// Topological order of partitions given their predecessors, ties by creation index (the
/// order of their first layer): the new index of each partition.
fn topological_ids(preds: &[Vec<u32>]) -> Vec<u32> {
    let np = preds.len();
    let mut indeg: Vec<usize> = preds.iter().map(Vec::len).collect();
    let mut succs: Vec<Vec<u32>> = vec![Vec::new(); np];
    for (p, ps) in preds.iter().enumerate() {
        for &q in ps {
            succs[q as usize].push(p as u32);
        }
    }
    let mut ready: BinaryHeap<Reverse<u32>> = (0..np as u32)
        .filter(|&p| indeg[p as usize] == 0)
        .map(Reverse)
        .collect();
    let mut new_id = vec![0u32; np];
    let mut k = 0;
    while let Some(Reverse(p)) = ready.pop() {
        new_id[p as usize] = k;
        k += 1;
        for &q in &succs[p as usize] {
            indeg[q as usize] -= 1;
            if indeg[q as usize] == 0 {
                ready.push(Reverse(q));
            }
        }
    }
    debug_assert_eq!(k as usize, np, "acyclic by construction");
    new_id
}

/// Whether partition `from` reaches partition `to` (walking back from `to` over `preds`).
fn reaches(
    preds: &[Vec<u32>],
    from: u32,
    to: u32,
    seen: &mut Vec<bool>,
    stack: &mut Vec<u32>,
) -> bool {
    seen.clear();
    seen.resize(preds.len(), false);
    stack.clear();
    stack.push(to);
    while let Some(x) = stack.pop() {
        if x == from {
            return true;
        }
        for &q in &preds[x as usize] {
            if !seen[q as usize] {
                seen[q as usize] = true;
                stack.push(q);
            }
        }
    }
    false
}

fn merge_conns(mut conns: Vec<SimConn>) -> Vec<SimConn> {
    conns.sort_unstable_by_key(|c| (c.from, c.to));
    let mut out: Vec<SimConn> = Vec::with_capacity(conns.len());
    for c in conns {
        match out.last_mut() {
            Some(l) if l.from == c.from && l.to == c.to => l.bytes += c.bytes,
            _ => out.push(c),
        }
    }
    out
}
