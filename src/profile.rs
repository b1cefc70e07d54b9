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

use anyhow::{bail, Context, Result};
use dicesim_plan::mapping::Mapping;
use dicesim_plan::partition::Plan;
use dicesim_plan::{split, Model};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

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
    /// A layer's entry from its sorted run times [us].
    fn new(layer: &dicesim_plan::graph::Layer, sorted: &[f64]) -> LayerTime {
        LayerTime {
            layer: layer.name.clone(),
            op: layer.op.clone(),
            time_us: pct(sorted, 0.5),
            p10_us: pct(sorted, 0.1),
            p90_us: pct(sorted, 0.9),
            flops: layer.flops,
            bytes: layer.input_bytes + layer.output_bytes + layer.params_bytes,
        }
    }
}

fn pct(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = (q * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
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
        let t = match time_partition(model, &plan, p, warmup, budget_ms, Pace::HOT) {
            Ok(t) => t,
            Err(e) => {
                eprintln!(
                    "profile: skipping layer {} ({}): {e:#}",
                    layer.name, layer.op
                );
                continue;
            }
        };
        out.push(LayerTime::new(layer, &t));
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

/// When tract fuses a chain (Conv -> BatchNormalization -> Clip) it may name the fused
/// operator after the *last* layer of the chain, which then carries the convolution's time
/// while the convolution shows 0. This moves such a time back to the head of the chain: a
/// layer of a [`FUSIBLE`] kind with time, whose chain of single producers (each read only by
/// the next) reaches through layers with time 0 a Conv/Gemm/MatMul with time 0. A partition
/// cut inside the chain then charges the convolution's partition, where the work runs
/// when tract cannot fuse across the cut.
fn move_fused_times(g: &dicesim_plan::graph::Graph, per_layer: &mut [Vec<f64>]) {
    let zero = |v: &[f64]| v.iter().all(|x| *x == 0.0);
    let producer = |l: usize| -> Option<usize> {
        let layer = &g.layers[l];
        let mut ps = layer
            .inputs
            .iter()
            .filter_map(|t| g.tensors.get(t))
            .filter_map(|t| t.producer.map(|p| (p, t.consumers.len())));
        let (p, consumers) = ps.next()?;
        (ps.next().is_none() && consumers == 1).then_some(p)
    };
    for l in 0..g.layers.len() {
        if !FUSIBLE.contains(&g.layers[l].op.as_str()) || zero(&per_layer[l]) {
            continue;
        }
        let mut cur = l;
        while let Some(p) = producer(cur) {
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

/// Pins the calling thread to one CPU.
pub fn pin_to(cpu: usize) -> Result<()> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes within it;
    // sched_setaffinity(0, ...) affects only the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            bail!(
                "pinning a profiling thread to CPU {cpu}: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    Ok(())
}

/// The CPUs the calling thread may run on.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is valid; sched_getaffinity(0, ...) fills it for this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// CPU time used by the calling thread [us].
pub fn thread_cpu_us() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 * 1e6 + ts.tv_nsec as f64 / 1e3
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
    let run_us = pct(&whole, 0.5);
    let per_run_ms = start.elapsed().as_secs_f64() * 1e3 / (whole.len() + warmup) as f64;
    let runs = ((budget_ms / 2.0 / per_run_ms.max(1e-3)) as usize).clamp(5, 200);
    let nt = s.node_times(&ins, runs, &thread_cpu_us, &mut |w| pause(pace, w))?;
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
            None => {
                if t.iter().sum::<f64>() / runs as f64 > 1.0 {
                    unattributed.push(name.clone());
                }
            }
        }
    }
    move_fused_times(g, &mut per_layer);
    let layers: Vec<LayerTime> = g
        .layers
        .iter()
        .zip(per_layer)
        .map(|(layer, mut t)| {
            t.sort_by(f64::total_cmp);
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
        fit_to_chunks(
            model,
            &mut prof,
            chunks,
            warmup,
            budget_ms / chunks as f64,
            pace,
        )?;
    }
    Ok(prof)
}

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
    let mut t_sum = 0.0;
    let mut parts = Vec::new();
    for t in time_partitions(model, &plan, warmup, budget_ms, pace)? {
        let tc = pct(&t, 0.5);
        t_sum += tc;
        parts.push(tc);
    }
    let kp = plan.partitions.len();
    let o = if kp > 1 {
        ((t_sum - prof.run_us) / (kp - 1) as f64).max(0.0)
    } else {
        prof.run_overhead_us
    };
    prof.run_overhead_us = o;
    prof.chunks.clear();
    for (part, tc) in plan.partitions.iter().zip(parts) {
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
        prof.chunks.push(Chunk {
            first: g.layers[part.layers[0]].name.clone(),
            last: g.layers[*part.layers.last().unwrap_or(&0)].name.clone(),
            run_us: tc,
            layers_us: sc,
            scale,
        });
    }
    Ok(())
}

/// Random inputs for every input of a session (seeded: the same on every run).
fn random_inputs(s: &dicesim_tract::Session) -> HashMap<String, dicesim_tract::Tensor> {
    s.inputs()
        .iter()
        .enumerate()
        .map(|(i, (n, shape))| {
            (
                n.clone(),
                dicesim_tract::Tensor::random(shape, 1 + i as u64),
            )
        })
        .collect()
}

/// How timed runs follow each other.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// At least 1: after a run of wall time `w` the thread sleeps `(duty - 1) x w` (at most
    /// 20 ms), as a device that computes 1/duty of the time (1: back to back).
    pub duty: f64,
    /// Evict the caches between runs (sweep a buffer larger than the last-level cache), as
    /// for a device whose caches do not keep the model from one frame to the next (on the
    /// rig, other devices share the host's caches and run in between).
    pub cold: bool,
}

impl Pace {
    /// Back to back, caches kept.
    pub const HOT: Pace = Pace {
        duty: 1.0,
        cold: false,
    };
}

/// Bytes swept to evict the caches (twice this host class's 32 MiB last-level cache).
const SWEEP_BYTES: usize = 64 << 20;

/// After a run of wall time `wall_us`: evicts the caches if `pace.cold`, then sleeps
/// `(duty - 1) x wall_us`.
fn pause(pace: Pace, wall_us: f64) {
    if pace.cold {
        thread_local! {
            static SWEEP: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        SWEEP.with(|b| {
            let mut b = b.borrow_mut();
            if b.is_empty() {
                b.resize(SWEEP_BYTES, 0);
            }
            // one write per cache line, so every line is fetched and dirtied
            let mut i = 0;
            while i < b.len() {
                b[i] = b[i].wrapping_add(1);
                i += 64;
            }
            std::hint::black_box(&*b);
        });
    }
    if pace.duty > 1.0 {
        std::thread::sleep(std::time::Duration::from_secs_f64(
            (wall_us * (pace.duty - 1.0) / 1e6).min(MAX_PAUSE_S),
        ));
    }
}

/// The longest pause between paced runs [s]: what a pause does to the caches is done by
/// then, and long runs of big models on slow devices would otherwise take minutes.
const MAX_PAUSE_S: f64 = 0.02;

/// Sorted thread CPU times [us] of runs of `s` on `ins`: `warmup` untimed runs (at least
/// one), then 5-200 runs within about `budget_ms` (pauses included), paced by `pace`.
fn timed_runs(
    s: &dicesim_tract::Session,
    ins: &HashMap<String, dicesim_tract::Tensor>,
    warmup: usize,
    budget_ms: f64,
    pace: Pace,
) -> Result<Vec<f64>> {
    for _ in 0..warmup.max(1) {
        let t0 = Instant::now();
        s.run(ins)?;
        pause(pace, t0.elapsed().as_secs_f64() * 1e6);
    }
    let mut t = Vec::new();
    let start = Instant::now();
    while t.len() < 5 || (t.len() < 200 && start.elapsed().as_secs_f64() * 1e3 < budget_ms) {
        let (t0, c0) = (Instant::now(), thread_cpu_us());
        s.run(ins)?;
        t.push(thread_cpu_us() - c0);
        pause(pace, t0.elapsed().as_secs_f64() * 1e6);
    }
    t.sort_by(f64::total_cmp);
    Ok(t)
}

/// Sorted thread CPU times [us] of every partition of `plan`, each run alone as a
/// sub-model in tract (as [`timed_runs`]) on the activations the model really produces:
/// the partitions run in order from one random frame (the rig's kind of input), each fed
/// its producers' outputs, as on the rig (a partition fed fresh random inputs instead
/// measured the same on the cases checked; this removes the question).
pub fn time_partitions(
    model: &Model,
    plan: &Plan,
    warmup: usize,
    budget_ms: f64,
    pace: Pace,
) -> Result<Vec<Vec<f64>>> {
    // the rig's kind of frame (the coordinator's random inputs, seed 1)
    let mut values = dicesim_hil::coord::random_inputs(model, 1);
    let mut out = Vec::new();
    for p in 0..plan.partitions.len() {
        let bytes = dicesim_plan::onnx::encode_model(&split::sub_model(model, plan, p));
        let s = dicesim_tract::Session::from_onnx_bytes(&bytes)?;
        let mut ins = random_inputs(&s);
        for (name, t) in ins.iter_mut() {
            if let Some(v) = values.get(name) {
                if v.shape == t.shape {
                    *t = v.clone();
                }
            }
        }
        out.push(timed_runs(&s, &ins, warmup, budget_ms, pace)?);
        for (name, t) in s.run(&ins)? {
            values.insert(name, t);
        }
    }
    Ok(out)
}

/// Sorted thread CPU times [us] of partition `p` of `plan` run alone as a sub-model in
/// tract (warm-up runs, then 5-200 runs within about `budget_ms`, paced by `pace`).
pub fn time_partition(
    model: &Model,
    plan: &Plan,
    p: usize,
    warmup: usize,
    budget_ms: f64,
    pace: Pace,
) -> Result<Vec<f64>> {
    let bytes = dicesim_plan::onnx::encode_model(&split::sub_model(model, plan, p));
    let s = dicesim_tract::Session::from_onnx_bytes(&bytes)?;
    timed_runs(&s, &random_inputs(&s), warmup, budget_ms, pace)
}

fn read(p: &str) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

/// `key: value` lines describing this host (CPU model, governor, frequency, affinity).
pub fn host_info() -> Vec<(String, String)> {
    let cpuinfo = read("/proc/cpuinfo").unwrap_or_default();
    let field = |k: &str| {
        cpuinfo
            .lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| "unknown".into())
    };
    let status = read("/proc/self/status").unwrap_or_default();
    let affinity = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let cf = "/sys/devices/system/cpu/cpu0/cpufreq/";
    let khz = |f: &str| read(&format!("{cf}{f}")).and_then(|v| v.parse::<f64>().ok());
    let freq = match (khz("scaling_cur_freq"), khz("scaling_max_freq")) {
        (Some(c), Some(m)) => format!("{:.0} MHz (max {:.0} MHz)", c / 1e3, m / 1e3),
        (Some(c), None) => format!("{:.0} MHz", c / 1e3),
        _ => format!("{} MHz (/proc/cpuinfo; no cpufreq)", field("cpu MHz")),
    };
    vec![
        ("cpu".into(), field("model name")),
        (
            "governor".into(),
            read(&format!("{cf}scaling_governor")).unwrap_or_else(|| "unknown (no cpufreq)".into()),
        ),
        ("frequency".into(), freq),
        ("affinity".into(), affinity),
    ]
}

/// Parameters of the baseline compute model fitted to a profile.
#[derive(Debug, Clone, Copy)]
pub struct Fit {
    /// [GFLOP/s].
    pub gflops: f64,
    /// [GB/s].
    pub mem_gbps: f64,
    /// [us].
    pub layer_overhead_us: f64,
    /// Median over layers of |model - measured| / measured.
    pub median_rel_error: f64,
}

/// The simulator's baseline model: `max(flops / gflops, bytes / mem_gbps) + overhead` [us].
pub fn model_us(l: &LayerTime, gflops: f64, mem_gbps: f64, overhead_us: f64) -> f64 {
    (l.flops as f64 / gflops / 1e3).max(l.bytes as f64 / mem_gbps / 1e3) + overhead_us
}

/// Least-squares fit of the log ratios model/measured (relative errors that weigh over- and
/// under-estimates alike; squared plain relative errors favour under-estimating everything)
/// over a grid (overhead from 0 to the smallest
/// layer time, GFLOP/s and GB/s on log grids), refined once around the best point.
pub fn fit(layers: &[LayerTime]) -> Option<Fit> {
    // layers fused into another (time 0 in an in-context profile) carry no information
    let layers: Vec<&LayerTime> = layers.iter().filter(|l| l.time_us > 0.0).collect();
    if layers.is_empty() {
        return None;
    }
    let tmin = layers
        .iter()
        .map(|l| l.time_us)
        .fold(f64::INFINITY, f64::min);
    let cost = |g: f64, m: f64, o: f64| -> f64 {
        layers
            .iter()
            .map(|l| {
                let r = (model_us(l, g, m, o).max(1e-6) / l.time_us.max(1e-3)).ln();
                r * r
            })
            .sum()
    };
    let logs = |lo: f64, hi: f64, n: usize| -> Vec<f64> {
        (0..n)
            .map(|i| (lo.ln() + (hi.ln() - lo.ln()) * i as f64 / (n - 1) as f64).exp())
            .collect()
    };
    let mut best = (f64::INFINITY, 1.0, 1.0, 0.0);
    let search = |gs: &[f64], ms: &[f64], os: &[f64], best: &mut (f64, f64, f64, f64)| {
        for &o in os {
            for &g in gs {
                for &m in ms {
                    let c = cost(g, m, o);
                    if c < best.0 {
                        *best = (c, g, m, o);
                    }
                }
            }
        }
    };
    let os: Vec<f64> = (0..=24).map(|i| tmin * i as f64 / 24.0).collect();
    search(
        &logs(0.1, 2000.0, 48),
        &logs(0.1, 500.0, 40),
        &os,
        &mut best,
    );
    let (_, g, m, o) = best;
    let os2: Vec<f64> = (0..=16)
        .map(|i| (o - tmin / 24.0 + tmin / 96.0 * i as f64).max(0.0))
        .collect();
    search(
        &logs(g / 1.3, g * 1.3, 17),
        &logs(m / 1.3, m * 1.3, 17),
        &os2,
        &mut best,
    );
    let (_, g, m, o) = best;
    let mut errs: Vec<f64> = layers
        .iter()
        .map(|l| ((model_us(l, g, m, o) - l.time_us) / l.time_us.max(1e-3)).abs())
        .collect();
    errs.sort_by(f64::total_cmp);
    Some(Fit {
        gflops: g,
        mem_gbps: m,
        layer_overhead_us: o,
        median_rel_error: pct(&errs, 0.5),
    })
}

/// Writes the profile CSV (`layer,time_us,p10_us,p90_us,flops,bytes,op`) with the host
/// header; the simulator's unit `profile = "file.csv"` reads its first two columns.
pub fn write_csv(
    path: &Path,
    model: &str,
    threads: usize,
    layers: &[LayerTime],
    context: Option<&ContextProfile>,
) -> Result<()> {
    let mut f = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
    );
    writeln!(
        f,
        "# dicesim profile of {model}, backend tract, threads {threads}"
    )?;
    for (k, v) in host_info() {
        writeln!(f, "# {k}: {v}")?;
    }
    match context {
        None => writeln!(
            f,
            "# method: isolated (each layer run alone as a sub-model: no fusion across layers, fused pairs over-estimated)"
        )?,
        Some(c) => {
            writeln!(
                f,
                "# method: in context (whole model, each of tract's operators timed in place; a fused operator is charged to the layer whose name it carries, the layers fused into it get 0)"
            )?;
            writeln!(f, "# whole_run_us: {:.3}", c.run_us)?;
            writeln!(f, "# run_overhead_us: {:.3}", c.run_overhead_us)?;
            for ch in &c.chunks {
                writeln!(
                    f,
                    "# chunk {} .. {}: sub-model {:.1} us, layers in context {:.1} us, scaled x {:.3}",
                    ch.first, ch.last, ch.run_us, ch.layers_us, ch.scale
                )?;
            }
            if !c.unattributed.is_empty() {
                writeln!(f, "# unattributed operators: {}", c.unattributed.join(" "))?;
            }
        }
    }
    writeln!(f, "layer,time_us,p10_us,p90_us,flops,bytes,op")?;
    for l in layers {
        writeln!(
            f,
            "{},{:.3},{:.3},{:.3},{},{},{}",
            l.layer, l.time_us, l.p10_us, l.p90_us, l.flops, l.bytes, l.op
        )?;
    }
    f.flush()?;
    Ok(())
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
