//! `dicesim validate`: simulate and emulate the same scenario and compare.
//!
//! Compared figures: latency p50 and p95, throughput, each partition's mean compute time,
//! and each partition-to-partition edge's transfer time. The rig measures an edge's
//! transfer from the sender's hand-off of the tensor to its transport to its last byte at
//! the receiver (one host clock), so the prediction it is compared with is the route
//! latency plus the serialisation time `bytes / route bottleneck` (no queueing behind
//! other messages on the connection, no TCP/tbf effects). The simulation admits frames as the rig does: at most the
//! rig's `window` frames in flight (the workload's `window` key). Relative error = (simulated - measured) / measured.

use anyhow::{Context, Result};
use serde_json::json;
use std::path::{Path, PathBuf};

/// One compared figure.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    /// What is compared.
    pub metric: String,
    /// Simulator's value.
    pub simulated: f64,
    /// Rig's value.
    pub measured: f64,
    /// (simulated - measured) / measured (infinite when measured is 0 and simulated is not).
    pub rel_error: f64,
}

fn rel(sim: f64, meas: f64) -> f64 {
    if meas == 0.0 {
        if sim == 0.0 {
            0.0
        } else {
            f64::INFINITY
        }
    } else {
        (sim - meas) / meas
    }
}

fn row(metric: impl Into<String>, simulated: f64, measured: f64) -> Row {
    Row {
        metric: metric.into(),
        simulated,
        measured,
        rel_error: rel(simulated, measured),
    }
}

/// A scenario's comparison.
#[derive(Debug, Clone)]
pub struct Validation {
    /// The simulator's report (its `run --json` form).
    pub simulated: serde_json::Value,
    /// The rig's report (its `emulate --json` form).
    pub measured: serde_json::Value,
    /// The compared figures; the first three are latency p50, latency p95, throughput.
    pub rows: Vec<Row>,
}

impl Validation {
    /// Relative error of latency p50.
    pub fn latency_error(&self) -> f64 {
        self.rows[0].rel_error
    }
    /// Relative error of throughput.
    pub fn throughput_error(&self) -> f64 {
        self.rows[2].rel_error
    }
    /// JSON with both reports and the errors.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "simulated": self.simulated,
            "measured": self.measured,
            "errors": self.rows,
        })
    }
    /// A table.
    pub fn text(&self) -> String {
        let mut s = format!(
            "{:34} {:>12} {:>12} {:>9}\n",
            "metric", "simulated", "measured", "rel.err"
        );
        for r in &self.rows {
            s += &format!(
                "{:34} {:>12.4} {:>12.4} {:>8.1}%\n",
                r.metric,
                r.simulated,
                r.measured,
                r.rel_error * 100.0
            );
        }
        s
    }
}

/// Simulates and emulates the scenario at `path`.
pub fn validate(path: &Path) -> Result<Validation> {
    let meas = dicesim_hil::emulate::emulate(path)?;
    if let Some(e) = &meas.error {
        anyhow::bail!("the emulation failed: {e}");
    }
    let mut scenario = dicesim_sim::Scenario::load(path)?;
    // the rig's coordinator keeps at most `window` frames in flight: simulate the same
    // admission
    scenario.prep.workload.window = Some(meas.window.max(1) as u32);
    if let Some(hg) = meas.host_gflops {
        scenario.prep = host_profiled(path, &scenario.prep, &scenario.mapping, &meas, hg)?;
    }
    let run = dicesim_sim::run_loaded(scenario, dicesim_sim::RunOptions::default())?;
    let sim = &run.report;
    let mut rows = vec![
        row("latency p50 [ms]", sim.latency_ms.p50, meas.latency_ms.p50),
        row("latency p95 [ms]", sim.latency_ms.p95, meas.latency_ms.p95),
        row("throughput [fps]", sim.throughput_fps, meas.throughput_fps),
    ];
    for (sp, mp) in sim.partitions.iter().zip(&meas.partitions) {
        rows.push(row(
            format!("part{} compute [ms] {}", mp.id, mp.unit),
            sp.compute_ms,
            mp.compute_ms.mean,
        ));
    }
    let pf = &run.scenario.prep.platform;
    let net = &run.scenario.prep.network;
    let dev = |p: usize| {
        pf.unit_index(&meas.partitions[p].unit)
            .map(|u| pf.units[u].device)
    };
    for e in &meas.edges {
        let (Some(a), Some(b)) = (e.from, e.to) else {
            continue;
        };
        let (Some(da), Some(db)) = (dev(a), dev(b)) else {
            continue;
        };
        let per_msg = e.bytes as f64 / e.count.max(1) as f64;
        let pred = match net.route(da, db) {
            Some(r) if r.bottleneck > 0.0 => {
                r.latency_ns as f64 / 1e6 + per_msg / r.bottleneck / 1e6
            }
            Some(r) => r.latency_ns as f64 / 1e6,
            None => 0.0,
        };
        rows.push(row(
            format!("edge part{a}->part{b} {} [ms]", e.tensor),
            pred,
            e.transfer_ms_mean,
        ));
    }
    Ok(Validation {
        simulated: serde_json::from_str(&sim.to_json())?,
        measured: serde_json::to_value(&meas)?,
        rows,
    })
}

/// The scenario with every used unit's per-layer times predicted from a profile of the
/// model's layers on this host (tract, one thread, as the rig's workers) times the rig's
/// slow-down of the unit's device: `host_gflops / g`, `g` the largest GFLOP/s of the units
/// the device's partitions run on (the factor the rig paces that device's worker with, in
/// platform time). Layers the profile skips keep the compute model.
fn host_profiled(
    path: &Path,
    prep: &dicesim_sim::PreparedScenario,
    mapping: &dicesim_plan::mapping::Mapping,
    meas: &dicesim_hil::report::RunReport,
    host_gflops: f64,
) -> Result<dicesim_sim::PreparedScenario> {
    let model = dicesim_hil::coord::load_model(path)?;
    let layers = crate::profile::profile_model(&model, 2, 5.0)?;
    let mut host: std::collections::BTreeMap<String, f64> = layers
        .iter()
        .map(|l| (l.layer.clone(), l.time_us))
        .collect();
    let debug = std::env::var_os("DICESIM_VALIDATE_DEBUG").is_some();
    let whole = std::env::var_os("DICESIM_VALIDATE_WHOLE_PARTITIONS").is_some();
    if debug || whole {
        // each partition run whole on this host vs its summed layer times; with
        // DICESIM_VALIDATE_WHOLE_PARTITIONS its layers are scaled to the whole run's time
        let plan = dicesim_plan::partition::Plan::build(&model.graph, mapping)?;
        for (p, part) in plan.partitions.iter().enumerate() {
            let t = crate::profile::time_partition(&model, &plan, p, 2, 50.0)?;
            let names: Vec<&String> = part
                .layers
                .iter()
                .map(|&l| &model.graph.layers[l].name)
                .collect();
            let sum: f64 = names.iter().filter_map(|n| host.get(*n)).sum();
            let w = t[t.len() / 2];
            if debug {
                eprintln!(
                    "validate: part{p} on this host: whole {w:.1} us, sum of layers {sum:.1} us"
                );
            }
            if whole && sum > 0.0 {
                for n in names {
                    if let Some(v) = host.get_mut(n) {
                        *v *= w / sum;
                    }
                }
            }
        }
    }
    let mut platform = prep.platform.clone();
    let mut g_dev = vec![0f64; platform.devices.len()];
    for p in &meas.partitions {
        if let Some(u) = platform.unit_index(&p.unit) {
            let d = platform.units[u].device;
            g_dev[d] = g_dev[d].max(platform.units[u].gflops);
        }
    }
    for u in platform.units.iter_mut() {
        let g = g_dev[u.device];
        if g > 0.0 {
            let f = host_gflops / g;
            u.profile = Some(host.iter().map(|(k, t)| (k.clone(), t * f)).collect());
        }
    }
    Ok(dicesim_sim::PreparedScenario::new(
        prep.graph.clone(),
        platform,
        prep.workload,
    ))
}

fn pct(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    v[((q * (v.len() - 1) as f64).round() as usize).min(v.len() - 1)]
}

/// Validates every `*.toml` scenario in `dir`; prints one line per scenario and the median
/// and p90 of |relative error| of latency p50 and throughput. Returns (latency median,
/// latency p90, throughput median, throughput p90).
pub fn suite(dir: &Path) -> Result<(f64, f64, f64, f64)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let (mut lat, mut thr) = (Vec::new(), Vec::new());
    for f in &files {
        match validate(f) {
            Ok(v) => {
                println!(
                    "{:40} latency p50 {:>7.1}%  throughput {:>7.1}%",
                    f.file_name().unwrap_or_default().to_string_lossy(),
                    v.latency_error() * 100.0,
                    v.throughput_error() * 100.0
                );
                lat.push(v.latency_error().abs());
                thr.push(v.throughput_error().abs());
            }
            Err(e) => println!("{}: FAILED: {e:#}", f.display()),
        }
    }
    let r = (
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.9),
        pct(&mut thr, 0.5),
        pct(&mut thr, 0.9),
    );
    println!(
        "{} scenarios validated: |error| latency p50: median {:.1}%, p90 {:.1}%; throughput: median {:.1}%, p90 {:.1}%",
        lat.len(),
        r.0 * 100.0,
        r.1 * 100.0,
        r.2 * 100.0,
        r.3 * 100.0
    );
    Ok(r)
}
