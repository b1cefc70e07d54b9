//! The measured run report: the `run --json` contract shape (as the simulator prints it),
//! filled from measurements, plus measured-only fields. Quantities that were not measured
//! (energy without a sensor) are `null`, never estimated.

use dicesim_sim::report::{r6, LatencyMs};
use serde::Serialize;

/// Per-device figures.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceM {
    /// Device name.
    pub name: String,
    /// Sum of its partitions' compute times over the makespan.
    pub busy_frac: f64,
    /// Energy over the run [mJ]; null without a sensor of its own.
    pub energy_mj: Option<f64>,
    /// Peak resident memory of its worker process (VmHWM) [MiB]; null where the worker could
    /// not tell (no `/proc`, or a worker lost before it reported).
    pub memory_peak_mb: Option<f64>,
    /// The simulator's memory need of the device for this plan [MiB], by its units' memory
    /// models (docs/simulator.md#memory); null where the plan cannot be simulated.
    pub memory_predicted_mb: Option<f64>,
    /// (predicted - measured) / measured peak memory; null without both figures.
    pub memory_error: Option<f64>,
    /// Worker address.
    pub worker: String,
    /// The backend its worker ran (as the worker reported it).
    pub backend: String,
}

/// Per-link figures (tensors between devices, attributed to the links of their route).
#[derive(Debug, Clone, Serialize)]
pub struct LinkM {
    /// Link name.
    pub name: String,
    /// Bytes carried (frames with their headers).
    pub bytes: u64,
    /// Sum of transfer times over the makespan (at most 1).
    pub busy_frac: f64,
}

/// Statistics of a time series [ms].
#[derive(Debug, Clone, Serialize, Default)]
pub struct Stats {
    /// Mean.
    pub mean: f64,
    /// Median (nearest rank).
    pub p50: f64,
    /// 95th percentile (nearest rank).
    pub p95: f64,
    /// Maximum.
    pub max: f64,
}

impl Stats {
    /// Of a series of values [ms].
    pub fn of(v: &[f64]) -> Stats {
        let Some(s) = dicesim_stats::Summary::of(v) else {
            return Stats::default();
        };
        Stats {
            mean: r6(s.mean),
            p50: r6(s.p50),
            p95: r6(s.p95),
            max: r6(s.max),
        }
    }
}

/// Per-partition figures.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionM {
    /// Partition id.
    pub id: usize,
    /// `"<device>.<unit>"`, with its core set if the mapping gave one (`"d1.cpu[0-1]"`).
    pub unit: String,
    /// Layers.
    pub layers: usize,
    /// Engine compute time per frame [ms].
    pub compute_ms: Stats,
    /// Sub-model load time on the worker [ms].
    pub load_ms: f64,
}

/// Per-edge figures, measured by the receiver.
#[derive(Debug, Clone, Serialize)]
pub struct EdgeM {
    /// Producer partition; null for graph inputs (sent by the coordinator).
    pub from: Option<usize>,
    /// Consumer partition; null for graph outputs (received by the coordinator).
    pub to: Option<usize>,
    /// Tensor.
    pub tensor: String,
    /// Messages received.
    pub count: u64,
    /// Bytes received (frames with headers).
    pub bytes: u64,
    /// Mean time from a message's first byte to its last at the receiver [ms].
    pub transfer_ms_mean: f64,
}

/// Verification of the first frames against the whole model run locally.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyM {
    /// Frames compared.
    pub frames: u32,
    /// Largest `max|a-b| / max|ref|` over those frames' outputs.
    pub max_rel_error: f64,
    /// Within 1e-5.
    pub ok: bool,
}

/// One re-plan on the rig (`[adapt]`), measured: the fields of the simulator's
/// [`ReplanReport`](dicesim_sim::events::ReplanReport) (times in platform time, divided by
/// the time dilation like every other; `at_ms` when the lost worker was last heard from,
/// from the start of streaming; `detect_ms` from then to the coordinator giving it up;
/// `plan_ms` choosing the mapping and partitioning; `deploy_ms` resetting the workers left,
/// shipping what they lack and deploying), and the recovery.
#[derive(Debug, Clone, Serialize)]
pub struct ReplanM {
    /// As the simulator reports a re-plan.
    #[serde(flatten)]
    pub replan: dicesim_sim::events::ReplanReport,
    /// From the lost worker's last message to the first frame out of the new plan [ms];
    /// null when none came out.
    pub recovery_ms: Option<f64>,
}

/// The measured report.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// Scenario name.
    pub scenario: String,
    /// Frames requested.
    pub frames: u32,
    /// Per completed frame: first input sent to last output received.
    pub latency_ms: LatencyMs,
    /// Completed frames / (last exit - first entry).
    pub throughput_fps: f64,
    /// From the first frame's entry to the last exit [ms].
    pub makespan_ms: f64,
    /// Energy per frame [mJ]; null unless every device has a sensor of its own.
    pub energy_mj_per_frame: Option<f64>,
    /// Devices that run partitions, in platform order.
    pub devices: Vec<DeviceM>,
    /// Links in platform order.
    pub links: Vec<LinkM>,
    /// `hil` or `emulate`.
    pub mode: String,
    /// Engine.
    pub backend: String,
    /// Model name.
    pub model: String,
    /// Platform name.
    pub platform: String,
    /// Mapping strategy.
    pub strategy: String,
    /// Frames in flight at most.
    pub window: usize,
    /// Frames whose outputs all arrived.
    pub frames_completed: u32,
    /// Frames that did not complete (a fault); empty on success.
    pub failed_frames: Vec<u64>,
    /// The fault, if any.
    pub error: Option<String>,
    /// Output check.
    pub verification: Option<VerifyM>,
    /// Partitions in topological order.
    pub partitions: Vec<PartitionM>,
    /// Edges: graph inputs, partition to partition, graph outputs.
    pub edges: Vec<EdgeM>,
    /// Measured throughput [frames/ms] x the mean time per frame of the slowest pipeline
    /// stage [ms], where a stage is one partition's compute or all transfers between one
    /// ordered pair of partitions in a frame (the sum over the tensors they exchange;
    /// coordinator input/output transfers are not stages). 1: the pipeline runs as fast as
    /// its slowest stage allows; below 1: stalls, contention or overheads outside the stages
    /// (a stage time is the part's own time, so sharing a device or link also lowers it).
    pub pipeline_efficiency: f64,
    /// Emulation only: the factor by which the rig ran slower than the platform; all times
    /// above are divided by it (throughput multiplied) to give platform time. 1 otherwise.
    pub time_dilation: f64,
    /// Emulation only: the host's calibrated whole-model GFLOP/s on one core; a device whose
    /// units have at most `g` GFLOP/s runs host time x `host_gflops / g` (platform time).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_gflops: Option<f64>,
    /// Energy of the whole host over the run measured by the coordinator (RAPL) [mJ], where
    /// the coordinator's host has a sensor; in emulation this is every device together.
    pub host_energy_mj: Option<f64>,
    /// Re-plans after lost workers, in order; absent when there was none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub replans: Vec<ReplanM>,
}

impl RunReport {
    /// A readable summary.
    pub fn text(&self) -> String {
        let mut s = self.headline();
        if let Some(v) = &self.verification {
            s += &format!(
                "verify: {} frames, max relative error {:.3e} ({})\n",
                v.frames,
                v.max_rel_error,
                if v.ok { "ok" } else { "FAILED" }
            );
        }
        s += &self.partitions_text();
        s += &self.edges_text();
        s += &self.devices_text();
        s += &format!(
            "pipeline efficiency {:.3}, time dilation {}\n",
            self.pipeline_efficiency, self.time_dilation
        );
        s += &self.replans_text();
        if let Some(e) = &self.error {
            s += &format!(
                "FAULT: {e}; {} frames did not complete\n",
                self.failed_frames.len()
            );
        }
        s
    }

    /// The first line of [`RunReport::text`]: what ran and its figures.
    fn headline(&self) -> String {
        format!(
            "{} [{} on {}, {}]: {}/{} frames, latency mean {:.3} ms p95 {:.3} ms, throughput {:.2} fps, makespan {:.1} ms\n",
            self.scenario,
            self.mode,
            self.platform,
            self.backend,
            self.frames_completed,
            self.frames,
            self.latency_ms.mean,
            self.latency_ms.p95,
            self.throughput_fps,
            self.makespan_ms
        )
    }

    /// One line per partition of [`RunReport::text`].
    fn partitions_text(&self) -> String {
        (self.partitions.iter())
            .map(|p| {
                format!(
                    "part{} {:12} {:4} layers  compute mean {:.3} ms  p95 {:.3} ms\n",
                    p.id, p.unit, p.layers, p.compute_ms.mean, p.compute_ms.p95
                )
            })
            .collect()
    }

    /// One line per edge of [`RunReport::text`].
    fn edges_text(&self) -> String {
        let end = |x: Option<usize>| x.map(|p| format!("part{p}")).unwrap_or("coord".into());
        (self.edges.iter())
            .map(|e| {
                format!(
                    "edge {} -> {} {:20} {:>10} B in {:>4} msgs, transfer mean {:.3} ms\n",
                    end(e.from),
                    end(e.to),
                    e.tensor,
                    e.bytes,
                    e.count,
                    e.transfer_ms_mean
                )
            })
            .collect()
    }

    /// One line per device of [`RunReport::text`].
    fn devices_text(&self) -> String {
        (self.devices.iter())
            .map(|d| {
                format!(
                    "device {:10} busy {:.3}  memory use (peak RSS) {}, predicted {}  energy {}\n",
                    d.name,
                    d.busy_frac,
                    d.memory_peak_mb
                        .map(|m| format!("{m:.1} MiB"))
                        .unwrap_or("unknown".into()),
                    memory_predicted_text(d),
                    d.energy_mj
                        .map(|e| format!("{e:.1} mJ"))
                        .unwrap_or("not measured".into())
                )
            })
            .collect()
    }

    /// One line per re-plan of [`RunReport::text`].
    fn replans_text(&self) -> String {
        let mut s = String::new();
        for m in &self.replans {
            let r = &m.replan;
            s += &format!(
                "replan at {:.1} ms ({}): {} -> {}; detect {:.1} ms, plan {:.1} ms, deploy {:.1} ms, {} frames re-run, first frame out after {}\n",
                r.at_ms,
                r.reason,
                r.mapping_before.join(" | "),
                r.mapping_after.join(" | "),
                r.detect_ms,
                r.plan_ms,
                r.deploy_ms,
                r.frames_rerun,
                m.recovery_ms
                    .map(|m| format!("{m:.1} ms"))
                    .unwrap_or("never".into())
            );
        }
        s
    }
}

/// `P MiB (+E%)`: the predicted memory need and its error against the measured peak.
fn memory_predicted_text(d: &DeviceM) -> String {
    match (d.memory_predicted_mb, d.memory_error) {
        (Some(p), Some(e)) => format!("{p:.1} MiB ({:+.1}%)", e * 100.0),
        (Some(p), None) => format!("{p:.1} MiB"),
        _ => "unknown".into(),
    }
}
