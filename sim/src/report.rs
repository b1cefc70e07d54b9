//! The `run --json` report (contract shape, fields added after the contract's), its
//! deterministic JSON and a readable text table.

use dicesim_stats::Summary;
use serde::Serialize;

use crate::engine::{Outcome, SimPlan};
use crate::prepared::{Objectives, PreparedScenario};

/// The search objectives of the reported mapping (docs/simulator.md, "Objectives").
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ObjectivesReport {
    /// Unloaded latency (period 0), or the median latency at the offered rate [ms].
    pub latency_ms: f64,
    /// Saturated throughput: frames back to back under the window, steady state [frames/s].
    pub throughput_fps: f64,
    /// Energy per frame at saturation (period 0) or at the offered rate [mJ].
    pub energy_mj_per_frame: f64,
    /// Share of the offered rate the plan cannot sustain (0: it keeps up).
    pub overload: f64,
}

impl ObjectivesReport {
    fn of(o: &Objectives) -> Self {
        ObjectivesReport {
            latency_ms: ms(o.latency_ns as f64),
            throughput_fps: r6(o.throughput_fps),
            energy_mj_per_frame: r6(o.energy_mj_per_frame),
            overload: r6(o.overload),
        }
    }
}

/// ns -> ms, rounded like every report figure.
fn ms(ns: f64) -> f64 {
    r6(ns / 1e6)
}

/// The time busy fractions are relative to: the makespan (at least 1 ns).
fn busy_span(out: &Outcome) -> f64 {
    out.makespan_ns.max(1) as f64
}

/// Devices in platform order: busy share, energy, memory need against memory.
fn device_reports(prep: &PreparedScenario, plan: &SimPlan, out: &Outcome) -> Vec<DeviceReport> {
    let mem = prep.memory_bytes(plan);
    prep.platform
        .devices
        .iter()
        .enumerate()
        .map(|(d, dev)| {
            let need = mem[d] as f64 / (1024.0 * 1024.0);
            DeviceReport {
                name: dev.name.clone(),
                busy_frac: r6(out.device_busy_ns[d] as f64 / busy_span(out)),
                energy_mj: r6(out.device_energy_j[d] * 1e3),
                memory_peak_mb: r6(need),
                memory_mb: r6(dev.memory_mb),
                memory_ok: need <= dev.memory_mb,
            }
        })
        .collect()
}

/// Links in platform order: bytes carried, busy share, energy.
fn link_reports(prep: &PreparedScenario, out: &Outcome) -> Vec<LinkReport> {
    prep.platform
        .links
        .iter()
        .enumerate()
        .map(|(l, link)| LinkReport {
            name: link.name.clone(),
            bytes: out.link_bytes[l],
            busy_frac: r6(out.link_busy_ns[l] as f64 / busy_span(out)),
            energy_mj: r6(out.link_energy_j[l] * 1e3),
        })
        .collect()
}

/// Partitions in topological order: unit, first and last layer, compute time, bytes out.
fn partition_reports(prep: &PreparedScenario, plan: &SimPlan) -> Vec<PartitionReport> {
    let name = |l: Option<&usize>| {
        l.map(|&l| prep.graph.layers[l].name.clone())
            .unwrap_or_default()
    };
    plan.parts
        .iter()
        .enumerate()
        .map(|(i, part)| PartitionReport {
            id: i,
            unit: prep.platform.units[part.unit].full_name.clone(),
            first_layer: name(part.layers.first()),
            last_layer: name(part.layers.last()),
            layers: part.layers.len(),
            compute_ms: ms(part.compute_ns as f64),
            out_bytes: plan
                .conns
                .iter()
                .filter(|c| c.from == i)
                .map(|c| c.bytes)
                .sum(),
        })
        .collect()
}

/// The workload's latency is called queueing-dominated above this multiple of the
/// unloaded latency.
pub const QUEUEING_WARNING_RATIO: f64 = 2.0;

/// Rounds to 6 significant digits so the JSON is stable and readable.
pub fn r6(x: f64) -> f64 {
    if !x.is_finite() || x == 0.0 {
        return 0.0;
    }
    format!("{x:.5e}").parse().unwrap_or(0.0)
}

/// Latency statistics [ms].
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LatencyMs {
    /// Mean.
    pub mean: f64,
    /// Median (nearest rank).
    pub p50: f64,
    /// 95th percentile (nearest rank).
    pub p95: f64,
    /// Maximum.
    pub max: f64,
}

/// Per-device figures.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DeviceReport {
    /// Device name.
    pub name: String,
    /// Fraction of the makespan during which at least one of its units was busy.
    pub busy_frac: f64,
    /// Energy over the makespan [mJ] (idle + busy power).
    pub energy_mj: f64,
    /// Memory need [MiB]: weights + peak live activations + receive buffers.
    pub memory_peak_mb: f64,
    /// Memory available [MiB].
    pub memory_mb: f64,
    /// Whether the need fits.
    pub memory_ok: bool,
}

/// Per-link figures.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LinkReport {
    /// Link name.
    pub name: String,
    /// Bytes carried.
    pub bytes: u64,
    /// Fraction of the makespan during which it carried at least one flow.
    pub busy_frac: f64,
    /// Energy of the bytes carried [mJ].
    pub energy_mj: f64,
}

/// Per-unit figures.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UnitReport {
    /// `"<device>.<unit>"`.
    pub name: String,
    /// Fraction of the makespan it was busy.
    pub busy_frac: f64,
}

/// Per-partition figures.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PartitionReport {
    /// Partition index.
    pub id: usize,
    /// `"<device>.<unit>"`.
    pub unit: String,
    /// First layer name.
    pub first_layer: String,
    /// Last layer name.
    pub last_layer: String,
    /// Number of layers.
    pub layers: usize,
    /// Compute time per frame [ms].
    pub compute_ms: f64,
    /// Bytes it sends to other partitions per frame.
    pub out_bytes: u64,
}

/// The `run --json` report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Frames simulated.
    pub frames: u32,
    /// Per-frame latency, first partition entry to last partition exit.
    pub latency_ms: LatencyMs,
    /// Frames / (last exit - first entry).
    pub throughput_fps: f64,
    /// Time from the start to the last exit [ms].
    pub makespan_ms: f64,
    /// Energy of devices and links over the makespan per frame [mJ].
    pub energy_mj_per_frame: f64,
    /// Devices in platform order.
    pub devices: Vec<DeviceReport>,
    /// Links in platform order.
    pub links: Vec<LinkReport>,
    /// Whether every device's memory need fits (false: the mapping is infeasible).
    pub feasible: bool,
    /// One frame through the otherwise idle plan [ms].
    pub latency_unloaded_ms: f64,
    /// Frames in flight at most (the admission window; `null`: unlimited).
    pub window: Option<usize>,
    /// What `explore` optimises for this mapping (a `pareto.csv` row), each from a run made
    /// for it.
    pub objectives: ObjectivesReport,
    /// Model name.
    pub model: String,
    /// Platform name.
    pub platform: String,
    /// Mapping strategy used.
    pub strategy: String,
    /// Units in platform order.
    pub units: Vec<UnitReport>,
    /// Partitions in topological order.
    pub partitions: Vec<PartitionReport>,
    /// With platform events only (`docs/events.md`): frames that never completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_frames: Option<u32>,
    /// With platform events only: the re-plans, in time order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replans: Option<Vec<crate::events::ReplanReport>>,
}

impl Report {
    /// Builds the report of one simulation.
    pub fn new(
        scenario: &str,
        strategy: &str,
        prep: &PreparedScenario,
        plan: &SimPlan,
        out: &Outcome,
        objectives: &Objectives,
    ) -> Report {
        let p = &prep.platform;
        let s = Summary::of(&out.latencies_ns()).unwrap_or_default();
        let frames = out.entry_ns.len().max(1) as f64;
        let devices = device_reports(prep, plan, out);
        Report {
            scenario: scenario.to_string(),
            frames: out.entry_ns.len() as u32,
            latency_ms: LatencyMs {
                mean: ms(s.mean),
                p50: ms(s.p50 as f64),
                p95: ms(s.p95 as f64),
                max: ms(s.max as f64),
            },
            throughput_fps: r6(out.throughput_fps()),
            makespan_ms: ms(out.makespan_ns as f64),
            energy_mj_per_frame: r6(out.total_energy_mj() / frames),
            feasible: devices.iter().all(|d| d.memory_ok),
            latency_unloaded_ms: ms(objectives.latency_unloaded_ns as f64),
            window: prep.workload.window.frames(plan.parts.len()),
            objectives: ObjectivesReport::of(objectives),
            devices,
            links: link_reports(prep, out),
            model: prep.graph.name.clone(),
            platform: p.name.clone(),
            strategy: strategy.to_string(),
            units: p
                .units
                .iter()
                .enumerate()
                .map(|(u, unit)| UnitReport {
                    name: unit.full_name.clone(),
                    busy_frac: r6(out.unit_busy_ns[u] as f64 / busy_span(out)),
                })
                .collect(),
            partitions: partition_reports(prep, plan),
            failed_frames: None,
            replans: None,
        }
    }

    /// Pretty JSON, identical bytes for identical inputs.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("report serialises")
    }

    /// A warning when the workload's median latency is mostly waiting: more than
    /// [`QUEUEING_WARNING_RATIO`] times the unloaded latency.
    pub fn queueing_warning(&self) -> Option<String> {
        let (p50, unloaded) = (self.latency_ms.p50, self.latency_unloaded_ms);
        if unloaded <= 0.0 || p50 <= QUEUEING_WARNING_RATIO * unloaded {
            return None;
        }
        Some(format!(
            "warning: {}: latency p50 {p50} ms is {:.1}x the unloaded latency {unloaded} ms: \
             frames wait in queues (the workload offers frames faster than the plan serves \
             them; period_ms = 0 saturates); the plan's own latency is latency_unloaded_ms",
            self.scenario,
            p50 / unloaded
        ))
    }

    /// The report as a readable table.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(s, "scenario   {}", self.scenario);
        let _ = writeln!(
            s,
            "model      {} on {} (mapping: {})",
            self.model, self.platform, self.strategy
        );
        let _ = writeln!(
            s,
            "frames     {}   latency ms mean {} p50 {} p95 {} max {}",
            self.frames,
            self.latency_ms.mean,
            self.latency_ms.p50,
            self.latency_ms.p95,
            self.latency_ms.max
        );
        let _ = writeln!(
            s,
            "throughput {} fps   makespan {} ms   energy {} mJ/frame   {}",
            self.throughput_fps,
            self.makespan_ms,
            self.energy_mj_per_frame,
            if self.feasible {
                "memory fits"
            } else {
                "INFEASIBLE: memory exceeded"
            }
        );
        let _ = writeln!(
            s,
            "plan       unloaded latency {} ms   saturated throughput {} fps   window {}",
            self.latency_unloaded_ms,
            self.objectives.throughput_fps,
            self.window
                .map_or("unlimited".to_string(), |w| format!("{w} frames"))
        );
        s += &self.tables_text();
        if let Some(r) = &self.replans {
            s += &crate::events::replans_text(r, self.failed_frames.unwrap_or(0));
        }
        s
    }

    /// The device, link and partition tables of [`Report::to_text`].
    fn tables_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "\n{:<16} {:>9} {:>12} {:>12} {:>12}",
            "device", "busy", "energy mJ", "need MiB", "capacity MiB"
        );
        for d in &self.devices {
            let _ = writeln!(
                s,
                "{:<16} {:>8.1}% {:>12} {:>12} {:>12}{}",
                d.name,
                d.busy_frac * 100.0,
                d.energy_mj,
                d.memory_peak_mb,
                d.memory_mb,
                if d.memory_ok { "" } else { "  OVER" }
            );
        }
        let _ = writeln!(s, "\n{:<16} {:>14} {:>9}", "link", "bytes", "busy");
        for l in &self.links {
            let _ = writeln!(
                s,
                "{:<16} {:>14} {:>8.1}%",
                l.name,
                l.bytes,
                l.busy_frac * 100.0
            );
        }
        let _ = writeln!(
            s,
            "\n{:>4} {:<14} {:>7} {:>11} {:>12}  layers",
            "part", "unit", "layers", "compute ms", "out bytes"
        );
        for p in &self.partitions {
            let _ = writeln!(
                s,
                "{:>4} {:<14} {:>7} {:>11} {:>12}  {} .. {}",
                p.id, p.unit, p.layers, p.compute_ms, p.out_bytes, p.first_layer, p.last_layer
            );
        }
        s
    }
}
