//! Timing runs on this host: pinning, thread CPU time, pacing between runs, and sorted
//! run times of whole models and of sub-models.

use anyhow::{anyhow, Result};
use dicesim_hil::sys;
use dicesim_plan::partition::Plan;
use dicesim_plan::{split, Model};
use dicesim_tract::{Session, Tensor};
use std::collections::HashMap;
use std::time::Instant;

/// Pins the calling thread to one CPU.
pub fn pin_to(cpu: usize) -> Result<()> {
    sys::pin_to_cpu(cpu).map_err(|e| anyhow!("pinning a profiling thread to CPU {cpu}: {e}"))
}

/// The CPUs the calling thread may run on.
pub fn allowed_cpus() -> Vec<usize> {
    sys::allowed_cpus()
}

/// CPU time used by the calling thread [us].
pub fn thread_cpu_us() -> f64 {
    let t = sys::thread_cpu_time();
    t.as_secs() as f64 * 1e6 + t.subsec_nanos() as f64 / 1e3
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

/// The longest pause between paced runs [s]: what a pause does to the caches is done by
/// then, and long runs of big models on slow devices would otherwise take minutes.
const MAX_PAUSE_S: f64 = 0.02;

/// Writes one byte per cache line of a buffer larger than the last-level cache, so every
/// line is fetched and dirtied.
fn evict_caches() {
    thread_local! {
        static SWEEP: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    SWEEP.with(|b| {
        let mut b = b.borrow_mut();
        if b.is_empty() {
            b.resize(SWEEP_BYTES, 0);
        }
        let mut i = 0;
        while i < b.len() {
            b[i] = b[i].wrapping_add(1);
            i += 64;
        }
        std::hint::black_box(&*b);
    });
}

/// After a run of wall time `wall_us`: evicts the caches if `pace.cold`, then sleeps
/// `(duty - 1) x wall_us`.
pub(crate) fn pause(pace: Pace, wall_us: f64) {
    if pace.cold {
        evict_caches();
    }
    if pace.duty > 1.0 {
        std::thread::sleep(std::time::Duration::from_secs_f64(
            (wall_us * (pace.duty - 1.0) / 1e6).min(MAX_PAUSE_S),
        ));
    }
}

/// Random inputs for every input of a session (seeded: the same on every run).
pub(crate) fn random_inputs(s: &Session) -> HashMap<String, Tensor> {
    s.inputs()
        .iter()
        .enumerate()
        .map(|(i, (n, shape))| (n.clone(), Tensor::random(shape, 1 + i as u64)))
        .collect()
}

/// Sorted thread CPU times [us] of runs of `s` on `ins`: `warmup` untimed runs (at least
/// one), then 5-200 runs within about `budget_ms` (pauses included), paced by `pace`.
pub(crate) fn timed_runs(
    s: &Session,
    ins: &HashMap<String, Tensor>,
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
    dicesim_stats::sort(&mut t);
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
        let s = Session::from_onnx_bytes(&bytes)?;
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
    let s = Session::from_onnx_bytes(&bytes)?;
    timed_runs(&s, &random_inputs(&s), warmup, budget_ms, pace)
}
