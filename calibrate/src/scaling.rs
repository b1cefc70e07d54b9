//! `dicesim profile --threads 1,2,... [--cores LIST]`: every layer timed alone (a one-layer
//! sub-model) at each intra-op thread count through an engine that honours the count, on
//! the CPUs given; the per-class serial fractions are fitted from these times
//! ([`crate::scaling_fit`]).
//!
//! Times are wall-clock medians (with several threads, the calling thread's CPU time says
//! nothing). The process is pinned to the CPUs first, so every engine thread started later
//! inherits them. Engines and what they do with the count ([`thread_support`]):
//! - `ort` (ONNX Runtime): an intra-op pool of that many threads per session;
//! - `tch` (LibTorch): process-wide `at::set_num_threads`, set before each session runs
//!   (one session runs at a time here, so that is per layer);
//! - `tract` (built in): its matrix products and convolutions run on a pool of that many
//!   threads; every other operator runs on the calling thread alone.

use crate::profile::LayerTime;
use crate::scaling_fit::{fit_classes, ClassFit, LayerScaling};
use anyhow::{anyhow, bail, Context, Result};
use dicesim_hil::engine::{self, Engine, EngineSession, Tensor};
use dicesim_plan::coreset::UnitRef;
use dicesim_plan::mapping::Mapping;
use dicesim_plan::partition::Plan;
use dicesim_plan::{split, Model};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// What backend `name` does with an intra-op thread count above 1, or an error saying it
/// cannot be profiled with several threads.
pub fn thread_support(name: &str) -> Result<&'static str> {
    match name {
        "ort" => Ok("ONNX Runtime: an intra-op pool of N threads per session"),
        "tch" => Ok("LibTorch: process-wide intra-op threads (at::set_num_threads), set before each layer runs"),
        "tract" => Ok("tract: matrix products and convolutions on a pool of N threads, other operators on one thread"),
        _ => bail!(
            "profile: backend '{name}' is not known to honour intra-op threads (multi-threaded: ort, tch, tract); profile it with --threads 1"
        ),
    }
}

/// The engine that times the layers: the built-in tract with its thread pool, or a backend
/// plugin found by name (its check must pass).
pub fn engine(name: &str) -> Result<Arc<dyn Engine>> {
    if name == "tract" {
        return Ok(Arc::new(TractThreads));
    }
    engine::by_name(name).with_context(|| format!("profile: backend '{name}'"))
}

/// The built-in tract engine, running sessions on its pool of `threads` threads (the
/// worker's tract engine runs one thread).
struct TractThreads;

struct TractThreadsSession {
    session: dicesim_tract::Session,
    threads: usize,
}

impl Engine for TractThreads {
    fn name(&self) -> &str {
        "tract"
    }
    fn load(&self, onnx: &[u8], threads: usize) -> Result<Box<dyn EngineSession>> {
        let session = dicesim_tract::Session::from_onnx_bytes(onnx).context("tract")?;
        Ok(Box::new(TractThreadsSession { session, threads }))
    }
}

impl EngineSession for TractThreadsSession {
    fn run(&mut self, inputs: &HashMap<String, Tensor>) -> Result<Vec<(String, Tensor)>> {
        let ins: Vec<(&str, &[usize], &[f32])> = inputs
            .iter()
            .map(|(n, t)| (n.as_str(), t.shape.as_slice(), t.data.as_slice()))
            .collect();
        let mut outs = Vec::new();
        let mut keep = |name: &str, shape: &[usize], data: &[f32]| {
            let t = Tensor {
                shape: shape.to_vec(),
                data: data.to_vec(),
            };
            outs.push((name.to_string(), t));
        };
        self.session.run_borrowed(&ins, self.threads, &mut keep)?;
        Ok(outs)
    }
}

/// The CPUs of a `--cores` list (`0-3`, `0,2`, `0-1,4`).
pub fn parse_cores(text: &str) -> Result<Vec<usize>> {
    let r = UnitRef::parse(&format!("host.cpu[{text}]"))
        .map_err(|e| anyhow!("--cores {text}: {}", e.replace("unit `host.cpu[", "`[")))?;
    let cores = r.cores.map(|c| c.cores()).unwrap_or_default();
    if cores.is_empty() {
        bail!("--cores {text}: no CPU named");
    }
    Ok(cores.into_iter().map(|c| c as usize).collect())
}

/// Pins this process's calling thread (and so every engine thread started later) to
/// `cores`, or keeps the CPUs it may use; checks that the largest thread count has a CPU
/// per thread. Returns the CPUs.
pub fn pin(threads: &[usize], cores: Option<&[usize]>) -> Result<Vec<usize>> {
    let cpus = match cores {
        Some(c) => {
            dicesim_hil::sys::pin_to_cpus(c)
                .map_err(|e| anyhow!("profile: pinning to CPUs {c:?}: {e}"))?;
            c.to_vec()
        }
        None => crate::timing::allowed_cpus(),
    };
    let most = threads.iter().copied().max().unwrap_or(1);
    if !cpus.is_empty() && most > cpus.len() {
        bail!(
            "profile: --threads {most} needs {most} CPUs, {} given ({cpus:?}): more threads than CPUs measures contention, not scaling",
            cpus.len()
        );
    }
    Ok(cpus)
}

/// A profile at several thread counts.
#[derive(Debug, Clone)]
pub struct ScalingProfile {
    /// Thread counts, in the order of the request.
    pub threads: Vec<usize>,
    /// Per-layer times at the largest thread count (the profile's `time_us`: a unit's
    /// profile is measured on all its cores).
    pub layers: Vec<LayerTime>,
    /// Per-layer medians at every thread count.
    pub scaling: Vec<LayerScaling>,
}

impl ScalingProfile {
    /// The per-class fit of the serial fraction.
    pub fn fit(&self) -> Vec<ClassFit> {
        fit_classes(&self.threads, &self.scaling)
    }
}

/// How each layer is timed.
#[derive(Debug, Clone, Copy)]
pub struct Runs {
    /// Untimed runs first (at least one).
    pub warmup: usize,
    /// Measuring time per layer and thread count [ms] (5 to 200 runs).
    pub budget_ms: f64,
}

/// Times every layer of `model` alone at each of `threads` on `engine`, fed the
/// activations the model produces from one random frame. A layer the engine cannot run
/// alone (a non-f32 input, an operator it refuses) is skipped with a warning on stderr.
pub fn measure(
    model: &Model,
    engine: &dyn Engine,
    threads: &[usize],
    runs: Runs,
) -> Result<ScalingProfile> {
    let g = &model.graph;
    let names: Vec<String> = (0..g.layers.len()).map(|i| format!("h.l{i}")).collect();
    let plan = Plan::build(g, &Mapping::from_assignment(&names))?;
    let mut values = dicesim_hil::coord::random_inputs(model, 1);
    let most = threads.iter().position(|k| Some(k) == threads.iter().max());
    let mut prof = ScalingProfile {
        threads: threads.to_vec(),
        layers: Vec::new(),
        scaling: Vec::new(),
    };
    for p in 0..plan.partitions.len() {
        let l = plan.partitions[p].layers[0];
        let layer = &g.layers[l];
        match time_layer(model, &plan, p, engine, threads, runs, &mut values) {
            Ok(sorted) => {
                let times_us = sorted.iter().map(|t| t[t.len() / 2]).collect();
                prof.layers
                    .push(LayerTime::new(layer, &sorted[most.unwrap_or(0)]));
                prof.scaling.push(LayerScaling {
                    layer: layer.name.clone(),
                    class: layer.class,
                    times_us,
                });
            }
            Err(e) => eprintln!(
                "profile: skipping layer {} ({}): {e:#}",
                layer.name, layer.op
            ),
        }
    }
    Ok(prof)
}

/// Sorted wall times [us] of partition `p` (one layer) at each thread count; then runs it
/// once more to put its outputs into `values` for the layers after it.
fn time_layer(
    model: &Model,
    plan: &Plan,
    p: usize,
    engine: &dyn Engine,
    threads: &[usize],
    runs: Runs,
    values: &mut HashMap<String, Tensor>,
) -> Result<Vec<Vec<f64>>> {
    let ins = layer_inputs(model, plan, p, values)?;
    let bytes = dicesim_plan::onnx::encode_model(&split::sub_model(model, plan, p));
    let mut out = Vec::new();
    let mut last = None;
    for &k in threads {
        let mut s = engine.load(&bytes, k)?;
        out.push(wall_runs(s.as_mut(), &ins, runs)?);
        last = Some(s);
    }
    if let Some(mut s) = last {
        values.extend(s.run(&ins)?);
    }
    Ok(out)
}

/// The inputs of partition `p`: the activations in `values` where their shape fits, else
/// seeded random values; an error for an input that is not f32.
fn layer_inputs(
    model: &Model,
    plan: &Plan,
    p: usize,
    values: &HashMap<String, Tensor>,
) -> Result<HashMap<String, Tensor>> {
    let mut ins = HashMap::new();
    for (i, t) in plan.partitions[p].inputs.iter().enumerate() {
        let info = &model.graph.tensors[&t.name];
        if info.dtype != 1 {
            bail!("input '{}' is not float32", t.name);
        }
        let v = match values.get(&t.name) {
            Some(v) if v.shape == t.shape => v.clone(),
            _ => Tensor::random(&t.shape, 1 + i as u64),
        };
        ins.insert(t.name.clone(), v);
    }
    Ok(ins)
}

/// Sorted wall times [us] of runs of `s`: warm-up runs, then 5 to 200 runs within about
/// `budget_ms`.
fn wall_runs(
    s: &mut dyn EngineSession,
    ins: &HashMap<String, Tensor>,
    runs: Runs,
) -> Result<Vec<f64>> {
    for _ in 0..runs.warmup.max(1) {
        s.run(ins)?;
    }
    let mut t = Vec::new();
    let start = Instant::now();
    while t.len() < 5 || (t.len() < 200 && start.elapsed().as_secs_f64() * 1e3 < runs.budget_ms) {
        let t0 = Instant::now();
        std::hint::black_box(s.run(ins)?);
        t.push(t0.elapsed().as_secs_f64() * 1e6);
    }
    dicesim_stats::sort(&mut t);
    Ok(t)
}

/// What the CSV header says about the run.
#[derive(Debug, Clone, Copy)]
pub struct CsvHeader<'a> {
    /// Model name.
    pub model: &'a str,
    /// Backend name.
    pub backend: &'a str,
    /// The CPUs the profile ran on.
    pub cpus: &'a [usize],
    /// Whether the process was pinned to them (`--cores`).
    pub pinned: bool,
}

/// Writes the profile CSV: the usual columns at the largest thread count, then one
/// `time_us_t<k>` column per thread count; the header records the host, the CPUs, what the
/// engine does with threads and the fitted serial fractions.
pub fn write_csv(path: &Path, h: CsvHeader<'_>, prof: &ScalingProfile) -> Result<()> {
    let mut f = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
    );
    write_header(&mut f, h, prof)?;
    let mut w = ::csv::Writer::from_writer(f);
    let mut head: Vec<String> = crate::csv::PROFILE_COLUMNS.map(String::from).to_vec();
    head.extend(prof.threads.iter().map(|k| format!("time_us_t{k}")));
    w.write_record(&head)?;
    for (l, s) in prof.layers.iter().zip(&prof.scaling) {
        let mut row = crate::csv::profile_fields(l);
        row.extend(s.times_us.iter().map(|t| format!("{t:.3}")));
        w.write_record(&row)?;
    }
    w.flush()?;
    Ok(())
}

fn write_header(
    f: &mut impl Write,
    h: CsvHeader<'_>,
    prof: &ScalingProfile,
) -> std::io::Result<()> {
    let list: Vec<String> = prof.threads.iter().map(|k| k.to_string()).collect();
    let most = prof.threads.iter().max().copied().unwrap_or(1);
    writeln!(
        f,
        "# dicesim profile of {}, backend {}, threads {}; time_us at {most} threads",
        h.model,
        h.backend,
        list.join(",")
    )?;
    for (k, v) in crate::csv::host_info() {
        writeln!(f, "# {k}: {v}")?;
    }
    let how = if h.pinned { "pinned to" } else { "allowed" };
    writeln!(f, "# cpus: {:?} ({how})", h.cpus)?;
    if let Ok(note) = thread_support(h.backend) {
        writeln!(f, "# threads: {note}")?;
    }
    writeln!(
        f,
        "# method: isolated, wall time (each layer run alone as a sub-model at each thread count: no fusion across layers)"
    )?;
    for c in prof.fit() {
        if let Some(s) = c.serial_fraction {
            writeln!(f, "# serial_fraction {}: {s:.3}", c.class.name())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_lists_parse_and_errors_name_the_flag() {
        assert_eq!(parse_cores("0-3").unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(parse_cores("1,3").unwrap(), vec![1, 3]);
        let e = parse_cores("3-1").unwrap_err().to_string();
        assert!(
            e.starts_with("--cores 3-1") && e.contains("backwards"),
            "{e}"
        );
        assert!(parse_cores("x").is_err());
    }

    #[test]
    fn unknown_backends_cannot_be_profiled_with_threads() {
        assert!(thread_support("ort").is_ok());
        let e = thread_support("ncnn").unwrap_err().to_string();
        assert!(e.contains("--threads 1"), "{e}");
    }
}
