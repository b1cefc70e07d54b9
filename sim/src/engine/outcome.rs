//! What one simulation measured.

use crate::kernel::Time;

/// One job (a partition running one frame), recorded when tracing.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    /// Unit index.
    pub unit: usize,
    /// Partition index.
    pub part: usize,
    /// Frame.
    pub frame: u32,
    /// Start [ns].
    pub start: Time,
    /// End [ns].
    pub end: Time,
}

/// One transfer, recorded when tracing.
#[derive(Debug, Clone, PartialEq)]
pub struct TransferRecord {
    /// Connection index.
    pub conn: usize,
    /// Frame.
    pub frame: u32,
    /// Bytes.
    pub bytes: u64,
    /// Start (production, or end of the previous transfer on the connection) [ns].
    pub start: Time,
    /// End of the flow (delivery) [ns].
    pub end: Time,
    /// Links crossed (empty for a copy within a device).
    pub links: Vec<usize>,
}

/// Everything measured in one simulation.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Entry time of each frame [ns].
    pub entry_ns: Vec<Time>,
    /// Exit time of each frame [ns].
    pub exit_ns: Vec<Time>,
    /// Time of the last exit [ns].
    pub makespan_ns: Time,
    /// Busy time of each unit [ns].
    pub unit_busy_ns: Vec<Time>,
    /// Time at least one unit of each device was busy [ns].
    pub device_busy_ns: Vec<Time>,
    /// Energy of each device over the makespan [J].
    pub device_energy_j: Vec<f64>,
    /// Bytes carried by each link.
    pub link_bytes: Vec<u64>,
    /// Time each link carried at least one flow [ns].
    pub link_busy_ns: Vec<Time>,
    /// Energy of each link [J].
    pub link_energy_j: Vec<f64>,
    /// Busy time of each partition [ns].
    pub part_busy_ns: Vec<Time>,
    /// Jobs (when recording).
    pub jobs: Vec<JobRecord>,
    /// Transfers (when recording).
    pub transfers: Vec<TransferRecord>,
}

impl Outcome {
    /// An empty outcome sized for `frames` frames, `units` units, `devices` devices, `links`
    /// links and `parts` partitions (entries not yet set are `Time::MAX`).
    pub(crate) fn sized(
        frames: usize,
        units: usize,
        devices: usize,
        links: usize,
        parts: usize,
    ) -> Self {
        Outcome {
            entry_ns: vec![Time::MAX; frames],
            exit_ns: vec![0; frames],
            unit_busy_ns: vec![0; units],
            device_busy_ns: vec![0; devices],
            device_energy_j: vec![0.0; devices],
            link_bytes: vec![0; links],
            link_busy_ns: vec![0; links],
            link_energy_j: vec![0.0; links],
            part_busy_ns: vec![0; parts],
            ..Outcome::default()
        }
    }

    /// Per-frame latencies [ns].
    pub fn latencies_ns(&self) -> Vec<Time> {
        self.entry_ns
            .iter()
            .zip(&self.exit_ns)
            .map(|(a, b)| b - a)
            .collect()
    }

    /// Frames / (last exit - first entry).
    pub fn throughput_fps(&self) -> f64 {
        let first = self.entry_ns.iter().copied().min().unwrap_or(0);
        let span = self.makespan_ns.saturating_sub(first);
        if span == 0 {
            0.0
        } else {
            self.entry_ns.len() as f64 / (span as f64 * 1e-9)
        }
    }

    /// Energy of devices and links [mJ].
    pub fn total_energy_mj(&self) -> f64 {
        (self.device_energy_j.iter().sum::<f64>() + self.link_energy_j.iter().sum::<f64>()) * 1e3
    }
}

/// Integrates power over time; updated at every state change.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PowerMeter {
    pub power_w: f64,
    pub last: Time,
    pub energy_j: f64,
}

impl PowerMeter {
    /// A meter drawing `power_w` from time 0.
    pub fn new(power_w: f64) -> Self {
        PowerMeter {
            power_w,
            ..PowerMeter::default()
        }
    }

    /// At `now` the power changes by `delta_w`.
    pub fn change(&mut self, now: Time, delta_w: f64) {
        self.energy_j += self.power_w * (now - self.last) as f64 * 1e-9;
        self.last = now;
        self.power_w += delta_w;
    }
}
