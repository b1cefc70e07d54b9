//! `dicesim validate`: calibrate the simulator on the emulation rig, then simulate and
//! emulate the same scenario and compare.
//!
//! Steps (all inside one rig, see `dicesim_hil::emulate`):
//! 1. **Links.** For every pair of devices that a partition edge connects, messages of
//!    several sizes (1 KiB up to twice the largest tensor on that pair) cross the shaped
//!    links one at a time, held for the route's latency first as workers do; `t = o + bytes /
//!    bw` is fitted by least squares on relative errors. Each link then gets
//!    `bandwidth = nominal x (fitted bw / route bottleneck)` and `latency = nominal + (o -
//!    route latency) / hops` (medians over the routes that cross it). See [`crate::link`].
//! 2. **Compute profile.** On every device's CPU at once, pinned as its worker and paced by
//!    its duty cycle (`dicesim profile --duty`), the whole model runs in tract with every
//!    operator timed in place (thread CPU time, as the rig paces its workers), fitted to 8
//!    contiguous sub-model runs ([`crate::profile::fit_to_chunks`]: per-run cost and
//!    chunk-level attribution).
//! 3. **Rig correction.** Each device then runs the whole model through the rig itself
//!    (worker, wire protocol, pacing, and whatever else the rig does meanwhile) for 20
//!    frames (fewer, at least 3, past 4 s of platform time), one device after the other;
//!    its median measured compute over the profile's prediction for that run is the
//!    device's correction (0.9-1.35 on this 2-core VM:
//!    the worker's other threads and the coordinator share the device's CPU). The workload
//!    is fixed by the model, not by the mapping under test.
//! 4. Profile times x `pace / dilation x correction` become each used unit's profile and
//!    the per-run cost its `run_overhead_us`; with the link figures they are written as a
//!    calibration file (`cal.toml` + one CSV per unit) in the calibration folder
//!    (`--calibration-out DIR`, else a temporary folder that is removed), which a
//!    scenario's `[calibration] file` applies to its platform. See [`crate::calibration`].
//! 5. Frames stream through the rig (the measured report); the simulator runs the scenario
//!    with the calibration and the rig's admission window (`window`).
//!
//! Compared figures: latency p50 and p95, throughput, each partition's mean compute time,
//! and each pair of partitions' transfer time (rig: the sum of its tensors' service times
//! on their connection, each from its hand-off or the previous message's arrival to its
//! last byte; simulator: calibrated route latency + their bytes / calibrated bottleneck).
//! Relative error = (simulated - measured) / measured.

use crate::calibration::{calibrate, Calibration};
use crate::profile::{profile_in_context, time_partitions, Pace};
use anyhow::{bail, Context, Result};
use dicesim_hil::report::RunReport;
use dicesim_sim::report::Report;
use serde_json::json;
use std::collections::BTreeMap;
use std::fmt::Write as _;
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

/// (simulated - measured) / measured.
pub fn rel(sim: f64, meas: f64) -> f64 {
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
    /// The calibration used.
    pub calibration: Calibration,
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
    /// JSON: the measured report's fields (the `run --json` shape), then `simulated` (the
    /// simulator's report), `measured` (the rig's, again), `rel_error` (latency p50/p95 and
    /// throughput), `errors` (every compared figure) and `calibration`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = match &self.measured {
            serde_json::Value::Object(m) => m.clone(),
            _ => serde_json::Map::new(),
        };
        v.insert("simulated".into(), self.simulated.clone());
        v.insert("measured".into(), self.measured.clone());
        v.insert(
            "rel_error".into(),
            json!({
                "latency_ms": {"p50": self.rows[0].rel_error, "p95": self.rows[1].rel_error},
                "throughput_fps": self.rows[2].rel_error,
            }),
        );
        v.insert(
            "errors".into(),
            serde_json::to_value(&self.rows).unwrap_or_default(),
        );
        v.insert(
            "calibration".into(),
            serde_json::to_value(&self.calibration).unwrap_or_default(),
        );
        serde_json::Value::Object(v)
    }
    /// A table.
    pub fn text(&self) -> String {
        let mut s = format!(
            "{:44} {:>12} {:>12} {:>9}\n",
            "metric", "simulated", "measured", "rel.err"
        );
        for r in &self.rows {
            let _ = writeln!(
                s,
                "{:44} {:>12.4} {:>12.4} {:>8.1}%",
                r.metric,
                r.simulated,
                r.measured,
                r.rel_error * 100.0
            );
        }
        s
    }
}

/// Validation settings.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Keep the calibration (cal.toml and the unit profiles) in this folder.
    pub calibration_out: Option<PathBuf>,
}

/// Calibrates, emulates and simulates the scenario at `path`.
pub fn validate(path: &Path, opts: &Options) -> Result<Validation> {
    let (dir, temporary) = match &opts.calibration_out {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            (d.clone(), false)
        }
        // root writes and reads the calibration back: a fresh random 0700 directory, never
        // a predictable path another user could plant first
        None => (
            dicesim_hil::private::create_private_dir("dicesim-cal")
                .context("creating a private calibration directory")?,
            true,
        ),
    };
    let res = validate_in(path, &dir);
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    res
}

fn validate_in(path: &Path, dir: &Path) -> Result<Validation> {
    let (meas, calibration) = dicesim_hil::emulate::emulate_with(path, |rig| calibrate(rig, dir))?;
    if let Some(e) = &meas.error {
        bail!("the emulation failed: {e}");
    }
    let scenario = calibrated_scenario(path, &calibration, meas.window)?;
    if std::env::var_os("DICESIM_VALIDATE_DEBUG").is_some() {
        debug_partition_times(path)?;
    }
    let run = dicesim_sim::run_loaded(scenario, dicesim_sim::RunOptions::default())?;
    let sim = &run.report;
    let mut rows = vec![
        row("latency p50 [ms]", sim.latency_ms.p50, meas.latency_ms.p50),
        row("latency p95 [ms]", sim.latency_ms.p95, meas.latency_ms.p95),
        row("throughput [fps]", sim.throughput_fps, meas.throughput_fps),
    ];
    rows.extend(partition_rows(sim, &meas));
    rows.extend(edge_rows(&run.scenario, &meas));
    rows.extend(memory_rows(sim, &meas));
    Ok(Validation {
        simulated: serde_json::from_str(&sim.to_json())?,
        measured: serde_json::to_value(&meas)?,
        rows,
        calibration,
    })
}

/// The scenario at `path` with the calibration applied to its platform and the rig's
/// admission window (the rig's coordinator keeps at most `window` frames in flight).
fn calibrated_scenario(
    path: &Path,
    calibration: &Calibration,
    window: usize,
) -> Result<dicesim_sim::Scenario> {
    let mut scenario = dicesim_sim::Scenario::load(path)?;
    let mut workload = scenario.prep.workload;
    workload.window = dicesim_sim::Window::Frames(window.max(1) as u32);
    let mut platform = scenario.prep.platform.clone();
    platform.apply_calibration(&calibration.file)?;
    scenario.prep =
        dicesim_sim::PreparedScenario::new(scenario.prep.graph.clone(), platform, workload);
    Ok(scenario)
}

/// `DICESIM_VALIDATE_DEBUG`: each partition run whole and hot on this host vs its summed
/// profiled layers, on stderr.
fn debug_partition_times(path: &Path) -> Result<()> {
    let prep = dicesim_hil::coord::prepare(path)?;
    let prof = profile_in_context(&prep.model, 3, 1000.0, Pace::HOT, 0)?;
    let times = time_partitions(&prep.model, &prep.plan, 3, 300.0, Pace::HOT)?;
    for (p, (part, t)) in prep.plan.partitions.iter().zip(times).enumerate() {
        let sum: f64 = part.layers.iter().map(|&l| prof.layers[l].time_us).sum();
        eprintln!(
            "validate: part{p}: whole run {:.1} us, in-context layers {:.1} us + run overhead {:.1} us",
            dicesim_stats::median(&t).unwrap_or(f64::NAN),
            sum,
            prof.run_overhead_us
        );
    }
    Ok(())
}

/// Prefix of the memory rows' metric (`memory <device> [MiB]`).
pub const MEMORY_METRIC: &str = "memory ";

/// Each device's memory: the simulator's need vs its worker's peak resident set (VmHWM).
fn memory_rows(sim: &Report, meas: &RunReport) -> Vec<Row> {
    (meas.devices.iter())
        .filter_map(|md| {
            let sd = sim.devices.iter().find(|d| d.name == md.name)?;
            let metric = format!("{MEMORY_METRIC}{} [MiB]", md.name);
            Some(row(metric, sd.memory_peak_mb, md.memory_peak_mb?))
        })
        .collect()
}

/// Each partition's compute time: simulated vs the rig's mean.
fn partition_rows(sim: &Report, meas: &RunReport) -> Vec<Row> {
    sim.partitions
        .iter()
        .zip(&meas.partitions)
        .map(|(sp, mp)| {
            row(
                format!("part{} compute [ms] {}", mp.id, mp.unit),
                sp.compute_ms,
                mp.compute_ms.mean,
            )
        })
        .collect()
}

/// A partition pair's tensors travel one after another on one connection, all handed over
/// together, and the rig times each by its service time on the connection (from its
/// hand-off, or the previous message's arrival if later, to its last byte): the pair's
/// transfer is the sum of its tensors' means; the simulator sends them as one transfer of
/// their summed bytes. Returns (pair) -> (tensors, bytes per frame, measured [ms]).
fn measured_pairs(meas: &RunReport) -> BTreeMap<(usize, usize), (usize, f64, f64)> {
    let mut pairs: BTreeMap<(usize, usize), (usize, f64, f64)> = BTreeMap::new();
    for e in &meas.edges {
        let (Some(a), Some(b)) = (e.from, e.to) else {
            continue;
        };
        let x = pairs.entry((a, b)).or_insert((0, 0.0, 0.0));
        x.0 += 1;
        x.1 += e.bytes as f64 / e.count.max(1) as f64;
        x.2 += e.transfer_ms_mean;
    }
    pairs
}

/// Each partition pair's transfer time: calibrated route latency + bytes / bottleneck vs
/// the rig's.
fn edge_rows(scenario: &dicesim_sim::Scenario, meas: &RunReport) -> Vec<Row> {
    let pf = &scenario.prep.platform;
    let net = &scenario.prep.network;
    let dev = |p: usize| {
        pf.unit_index(&meas.partitions[p].unit)
            .map(|u| pf.units[u].device)
    };
    let mut rows = Vec::new();
    for ((a, b), (n, bytes, measured)) in measured_pairs(meas) {
        let (Some(da), Some(db)) = (dev(a), dev(b)) else {
            continue;
        };
        let pred = match net.route(da, db) {
            Some(r) if r.bottleneck > 0.0 => r.latency_ns as f64 / 1e6 + bytes / r.bottleneck / 1e6,
            Some(r) => r.latency_ns as f64 / 1e6,
            None => 0.0,
        };
        let metric = format!(
            "edge part{a}->part{b} [ms] ({n} tensor(s), {:.0} kB)",
            bytes / 1e3
        );
        rows.push(row(metric, pred, measured));
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_error_is_signed_and_infinite_only_against_zero() {
        assert_eq!(rel(11.0, 10.0), 0.1);
        assert_eq!(rel(9.0, 10.0), -0.1);
        assert_eq!(rel(0.0, 0.0), 0.0);
        assert!(rel(1.0, 0.0).is_infinite());
    }
}
